/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher background worker.  See launcher.h.
 *
 * A database slot (shmem.h) says whether a database wants workers: its
 * pool size (set by its workers from its number of aggregations), and its
 * `requested` counter, bumped by backends (create_aggregation, pause,
 * resume, ...) and copied to each worker's `seen` when that worker
 * reloads.  The launcher starts worker w of a database when w is in the
 * pool, it does not run, and either a request is newer than what it last
 * saw or it did not leave on purpose (it crashed, failed or was
 * terminated).  Database workers are BGW_NEVER_RESTART: the launcher alone
 * restarts them, at most once a second each.  keyedstate.max_workers
 * bounds the workers of all databases together: each pass shares it out
 * again (KsLauncherSharePool), and every database's first worker is
 * started before any second one, even beyond the bound.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "store.h"

/* Restart a database's worker at most this often. */
#define KS_RESTART_DELAY_MS		1000

/* ...and never more often than this. */
#define KS_MIN_START_GAP_MS		100

/* Warn that keyedstate.max_workers holds a worker back at most this often. */
#define KS_LIMIT_WARN_MS		60000

/* The launcher's handles of the workers it started, by database slot and number. */
static BackgroundWorkerHandle *ks_handles[KS_MAX_DATABASES][KS_MAX_DB_WORKERS];

/* When the launcher last warned that the pool, or the server's worker slots, are full. */
static TimestampTz ks_limit_warned = 0;
static TimestampTz ks_slots_warned[KS_MAX_DATABASES];
static TimestampTz ks_slots_warned_any = 0;	/* the last of those, for any database */

/* Register the launcher as a static background worker. */
void
KsLauncherInit(void)
{
	BackgroundWorker worker;

	/* pg_upgrade's servers: no aggregation runs while objects are restored */
	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "keyedstate");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "KsLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "keyedstate launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "keyedstate launcher");
	RegisterBackgroundWorker(&worker);
}

/* Read the remembered databases (at most max); returns how many. */
static int
KsReadDatabases(Oid *oids, int max)
{
	FILE	   *f = AllocateFile(KS_DATABASES_FILE, "r");
	int			n = 0;
	unsigned int oid;

	if (f == NULL)
		return 0;
	while (n < max && fscanf(f, "%u", &oid) == 1)
		oids[n++] = (Oid) oid;
	FreeFile(f);
	return n;
}

/* Write the list of databases atomically; false (after elevel's report) if it could not. */
static bool
KsWriteDatabases(const Oid *oids, int n, int elevel)
{
	const char *tmp = KS_DATABASES_FILE ".tmp";
	FILE	   *f = AllocateFile(tmp, "w");
	int			i;

	if (f == NULL)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		return false;
	}
	for (i = 0; i < n; i++)
		fprintf(f, "%u\n", oids[i]);
	if (FreeFile(f) != 0)
	{
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
		return false;
	}
	return durable_rename(tmp, KS_DATABASES_FILE, elevel) == 0;
}

/*
 * Remember that a database has aggregations, so that the launcher starts
 * its worker after a restart.  Harmless if the creating transaction rolls
 * back: the worker then finds nothing and leaves.
 */
void
KsRememberDatabase(Oid dboid)
{
	Oid			oids[KS_MAX_DATABASES];
	int			n;
	int			i;

	KsLockDatabaseFile();
	n = KsReadDatabases(oids, KS_MAX_DATABASES);
	for (i = 0; i < n; i++)
		if (oids[i] == dboid)
			break;
	if (i == n && n < KS_MAX_DATABASES)
	{
		oids[n++] = dboid;
		(void) KsWriteDatabases(oids, n, ERROR);
	}
	KsUnlockDatabaseFile();
}

/* Whether the file lists a database (see launcher.h). */
bool
KsDatabaseRemembered(Oid dboid)
{
	Oid			oids[KS_MAX_DATABASES];
	int			n;
	int			i;

	KsLockDatabaseFile();
	n = KsReadDatabases(oids, KS_MAX_DATABASES);
	KsUnlockDatabaseFile();
	for (i = 0; i < n; i++)
		if (oids[i] == dboid)
			return true;
	return false;
}

/* Forget a database that no longer exists, or has no aggregations. */
static void
KsForgetDatabase(Oid dboid)
{
	Oid			oids[KS_MAX_DATABASES];
	int			n;
	int			m = 0;
	int			i;

	static TimestampTz warned = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			elevel = DEBUG1;

	/*
	 * Housekeeping: a file that cannot be written (a full or read-only
	 * disk) is warned of once a minute, and the database forgotten again
	 * at the next start.  An ERROR ended the launcher, and the postmaster
	 * started it again every second (review robustness2, F2).
	 */
	if (TimestampDifferenceExceeds(warned, now, 60 * 1000))
		elevel = WARNING;
	KsLockDatabaseFile();
	n = KsReadDatabases(oids, KS_MAX_DATABASES);
	for (i = 0; i < n; i++)
		if (oids[i] != dboid)
			oids[m++] = oids[i];
	if (m != n && !KsWriteDatabases(oids, m, elevel) && elevel == WARNING)
		warned = now;
	KsUnlockDatabaseFile();
}

/* What a database is to the launcher: gone, closed to workers, or open. */
typedef enum KsDbUsability
{
	KS_DB_GONE,
	KS_DB_CLOSED,				/* no connections allowed, or a template: wait */
	KS_DB_OPEN
} KsDbUsability;

/* Whether a database exists and accepts connections; its name into name. */
static KsDbUsability
KsDatabaseUsability(Oid dboid, NameData *name)
{
	HeapTuple	tup;
	KsDbUsability result = KS_DB_GONE;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		result = (db->datallowconn && !db->datistemplate) ? KS_DB_OPEN : KS_DB_CLOSED;
		if (name != NULL)
			namestrcpy(name, NameStr(db->datname));
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	return result;
}

/*
 * A dynamic background worker of ours connected to database `dboid`,
 * started once recovery ends, never restarted by the postmaster (the
 * launcher decides), reporting to the launcher; the caller names it.
 */
static void
KsDynamicWorker(BackgroundWorker *worker, const char *function, const char *type, Oid dboid)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "keyedstate");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	worker->bgw_main_arg = ObjectIdGetDatum(dboid);
	worker->bgw_notify_pid = MyProcPid;
}

/* A database's name for a process title (DBA review 38, F5), or its OID once it is gone. */
static const char *
KsDatabaseLabel(Oid dboid)
{
	static NameData name;

	if (KsDatabaseUsability(dboid, &name) == KS_DB_GONE)
		snprintf(NameStr(name), NAMEDATALEN, "%u", dboid);
	return NameStr(name);
}

/* Start worker w of a database slot; false if no background worker slot is free. */
static bool
KsStartDatabaseWorker(int i, int w, Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle **handle = &ks_handles[i][w];

	KsDynamicWorker(&worker, "KsDatabaseWorkerMain", "keyedstate worker", dboid);
	snprintf(worker.bgw_name, BGW_MAXLEN, "keyedstate worker %d for database %s", w, KsDatabaseLabel(dboid));
	memcpy(worker.bgw_extra, &w, sizeof(int));

	if (*handle != NULL)
		pfree(*handle);
	*handle = NULL;
	if (RegisterDynamicBackgroundWorker(&worker, handle))
		return true;
	/*
	 * Out of background worker slots: said once for each database, then at
	 * most once a minute for all of them (many databases short of slots
	 * logged three lines a minute each).
	 */
	if (ks_slots_warned[i] == 0 ||
		TimestampDifferenceExceeds(ks_slots_warned_any, GetCurrentTimestamp(), KS_LIMIT_WARN_MS))
	{
		NameData	dbname;

		ks_slots_warned[i] = ks_slots_warned_any = GetCurrentTimestamp();
		/* named as the DBA knows it (a shared catalog: the launcher reads it) */
		if (KsDatabaseUsability(dboid, &dbname) == KS_DB_GONE)
			snprintf(NameStr(dbname), NAMEDATALEN, "%u", dboid);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start keyedstate worker for database \"%s\"", NameStr(dbname)),
				 errdetail("No background worker slot is free (max_worker_processes is %d).",
						   max_worker_processes),
				 errhint("Increase max_worker_processes.  Keep it above keyedstate.max_workers (the workers for owners beside each database's first one) plus one worker for each database with aggregations, the launcher, and what parallel query and replication need.")));
	}
	return false;
}

/* Whether a worker the launcher started is still there (or starting). */
static bool
KsHandleAlive(BackgroundWorkerHandle *handle)
{
	pid_t		pid;

	return handle != NULL && GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED;
}

/* How many database workers the launcher started are still there. */
static int
KsCountWorkers(void)
{
	int			n = 0;
	int			i;
	int			w;

	for (i = 0; i < KS_MAX_DATABASES; i++)
		for (w = 0; w < KS_MAX_DB_WORKERS; w++)
			if (KsHandleAlive(ks_handles[i][w]))
				n++;
	return n;
}

/*
 * Start worker w of database slot i if it should run; *running counts the
 * workers of the pool.  Returns false when no background worker slot is
 * free: the rest of the pass would fail alike.  A worker max_workers holds
 * back does not end the pass: owners' workers after it start all the same
 * (review pool1, F1: a new owner's in another database waited).
 */
static bool
KsLauncherConsider(int i, int w, TimestampTz now, int *running)
{
	Oid			dboid;

	/* keyedstate.enabled off: none starts (review robustness3, F6: no way to stop them all) */
	if (!ks_enabled || !KsLauncherWantsWorker(i, w, now, KS_MIN_START_GAP_MS, KS_RESTART_DELAY_MS, &dboid))
		return true;

	/* a worker we started may not have claimed the slot yet */
	if (KsHandleAlive(ks_handles[i][w]))
		return true;

	/* a database's first worker, and one per owner, start even beyond max_workers */
	if (w > 0 && *running >= ks_max_workers && !KsLauncherOwnersWorker(i, w))
	{
		/* a documented way to run (its aggregations share workers): LOG, not WARNING */
		if (TimestampDifferenceExceeds(ks_limit_warned, now, KS_LIMIT_WARN_MS))
		{
			NameData	name;

			ks_limit_warned = now;
			if (KsDatabaseUsability(dboid, &name) != KS_DB_GONE)
				ereport(LOG,
						(errmsg("keyedstate.max_workers (%d) keeps a worker of database \"%s\" from starting",
								ks_max_workers, NameStr(name)),
						 errdetail("Its aggregations share the database's other workers."),
						 errhint("Increase keyedstate.max_workers (and max_worker_processes) to run them apart.")));
		}
		return true;
	}

	/* every worker of the pool (review pool1, F3: a second one restarted each second) */
	switch (KsDatabaseUsability(dboid, NULL))
	{
		case KS_DB_GONE:
			/* dropped: once none of its workers is left */
			if (w == 0 && !KsLauncherDbRunning(i))
			{
				KsForgetDatabase(dboid);
				KsReleaseDatabaseSlots(dboid);
				KsLauncherForgetDatabase(i, dboid);
			}
			return true;
		case KS_DB_CLOSED:
			/* ALLOW_CONNECTIONS false, or a template: until it opens again */
			return true;
		case KS_DB_OPEN:
			break;
	}
	if (KsStartDatabaseWorker(i, w, dboid))
		KsLauncherStarted(i, w, now, true);
	else
	{
		KsLauncherStarted(i, w, now, false);
		/* the pool planned more workers than can start: plan those that run (U19) */
		if (w > 0)
		{
			KsLauncherCapPool(ks_max_workers, false);
			return false;
		}
	}
	(*running)++;
	return true;
}

/*
 * Databases the launcher looks into once (see launcher.h): those that
 * accept connections and the file did not list when it started.
 */
static Oid *ks_probes = NULL;
static int	ks_nprobes = 0;
static int	ks_maxprobes = 0;
static int	ks_next_probe = 0;
static BackgroundWorkerHandle *ks_probe_handle = NULL;
static TimestampTz ks_probe_started = 0;

/*
 * A probe still connecting after this long waits for a lock on its
 * database (a transaction renaming it, even a prepared one): it is ended,
 * and the database probed again after the others, which must not wait.
 */
#define KS_PROBE_TIMEOUT_MS		10000

/* Add a database to the probes to start (those started make room first). */
static void
KsAddProbe(Oid dboid)
{
	if (ks_nprobes == ks_maxprobes && ks_next_probe > 0)
	{
		memmove(ks_probes, ks_probes + ks_next_probe, sizeof(Oid) * (ks_nprobes - ks_next_probe));
		ks_nprobes -= ks_next_probe;
		ks_next_probe = 0;
	}
	if (ks_nprobes == ks_maxprobes)
	{
		ks_maxprobes *= 2;
		ks_probes = repalloc(ks_probes, sizeof(Oid) * ks_maxprobes);
	}
	ks_probes[ks_nprobes++] = dboid;
}

/* List the databases to look into, all but the `n` remembered ones. */
static void
KsListProbes(const Oid *remembered, int n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	ks_maxprobes = 16;
	ks_probes = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * ks_maxprobes);
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		int			i;

		if (!db->datallowconn || db->datistemplate)
			continue;
		for (i = 0; i < n && remembered[i] != db->oid; i++)
			;
		if (i < n)
			continue;
		KsAddProbe(db->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/* Start the next probe once the last one is done (one at a time). */
static void
KsProbeNext(void)
{
	BackgroundWorker worker;

	if (KsHandleAlive(ks_probe_handle))
	{
		if (ks_probe_started != 0 &&
			TimestampDifferenceExceeds(ks_probe_started, GetCurrentTimestamp(), KS_PROBE_TIMEOUT_MS))
		{
			ereport(LOG,
					(errmsg("keyedstate probe of database %u did not finish within %d s",
							ks_probes[ks_next_probe - 1], KS_PROBE_TIMEOUT_MS / 1000),
					 errdetail("It waits to connect to the database, or for a lock on keyedstate's catalog there.  It is ended, and the database is probed again after the others.")));
			TerminateBackgroundWorker(ks_probe_handle);
			KsAddProbe(ks_probes[ks_next_probe - 1]);
			ks_probe_started = 0;
		}
		return;
	}
	if (ks_next_probe >= ks_nprobes)
		return;
	KsDynamicWorker(&worker, "KsProbeMain", "keyedstate probe", ks_probes[ks_next_probe]);
	snprintf(worker.bgw_name, BGW_MAXLEN, "keyedstate probe of database %s", KsDatabaseLabel(ks_probes[ks_next_probe]));
	if (ks_probe_handle != NULL)
		pfree(ks_probe_handle);
	ks_probe_handle = NULL;
	/* out of background worker slots: the next pass tries again */
	if (RegisterDynamicBackgroundWorker(&worker, &ks_probe_handle))
	{
		ks_next_probe++;
		ks_probe_started = GetCurrentTimestamp();
	}
}

/*
 * Entry point of a probe: remember the database if keyedstate is
 * installed in it, and ask for its worker (which leaves at once if it has
 * no aggregation).
 */
void
KsProbeMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	bool		installed;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	KsConnectWithoutDatabaseSettings(dboid);
	StartTransactionCommand();
	installed = KsInstalled();
	if (!installed)				/* (an earlier build's installation: catalog.h) */
		KsWarnEarlierInstall();
	else
		installed = KsDatabaseHasWork();
	CommitTransactionCommand();
	if (installed)
	{
		KsRememberDatabase(dboid);
		if (!KsTryRequestDatabaseWorker(dboid, true))
			ereport(LOG,
					(errmsg("keyedstate found no free database slot for a database where it is installed"),
					 errdetail("Its aggregations do not run until one is free.")));
	}
	proc_exit(0);
}

/*
 * One pass: start the workers that should run and do not, every
 * database's first worker before any other; forget the databases that are
 * gone, giving back their aggregations' shared memory, and those left
 * without aggregations; start the next probe.
 */
static void
KsLauncherPass(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			running = KsCountWorkers();
	int			i;
	int			w;

	/* (which lifts a cap on the pool that has had its time: KsLauncherCapPool) */
	KsLauncherSharePool(ks_max_workers);
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		Oid			dboid;

		/* no aggregation left there (DROP EXTENSION): its slot is free again */
		if (KsLauncherForgetIfEmpty(i, &dboid))
			KsForgetDatabase(dboid);
	}
	KsProbeNext();
	for (i = 0; i < KS_MAX_DATABASES; i++)
		if (!KsLauncherConsider(i, 0, now, &running))
			return;
	for (w = 1; w < KS_MAX_DB_WORKERS; w++)
		for (i = 0; i < KS_MAX_DATABASES; i++)
			if (!KsLauncherConsider(i, w, now, &running))
				return;
}

/* Entry point of the launcher. */
void
KsLauncherMain(Datum main_arg)
{
	Oid			oids[KS_MAX_DATABASES];
	int			n;

	/* SIGTERM: leave at the top of the loop (see there) */
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/* a reload signalled before our handler was discarded (see worker.c) */
	ProcessConfigFile(PGC_SIGHUP);

	/* shared catalogs only: never hold a connection to a database */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("keyedstate launcher");

	/* every remembered database gets a worker, which leaves if idle */
	KsLockDatabaseFile();
	n = KsReadDatabases(oids, KS_MAX_DATABASES);
	KsUnlockDatabaseFile();
	KsLauncherAttach(oids, n);
	KsListProbes(oids, n);

	for (;;)
	{
		/*
		 * Exit code 1, as worker_spi's: terminated alone (pg_terminate_backend),
		 * the postmaster starts the launcher again after its restart time;
		 * exit code 0 would end it for good, and with it every worker's
		 * restart.  At a server shutdown the postmaster starts nothing again.
		 */
		if (ShutdownRequestPending)
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* max_workers or max_worker_processes may have changed: plan them again */
			KsLauncherCapPool(ks_max_workers, true);
		}
		KsLauncherPass();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 KS_RESTART_DELAY_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
