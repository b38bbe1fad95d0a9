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

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

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
static TimestampTz ks_slots_warned = 0;

/* Register the launcher as a static background worker. */
void
KsLauncherInit(void)
{
	BackgroundWorker worker;

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

/* Write the list of databases atomically. */
static void
KsWriteDatabases(const Oid *oids, int n)
{
	const char *tmp = KS_DATABASES_FILE ".tmp";
	FILE	   *f = AllocateFile(tmp, "w");
	int			i;

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	for (i = 0; i < n; i++)
		fprintf(f, "%u\n", oids[i]);
	if (FreeFile(f) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	(void) durable_rename(tmp, KS_DATABASES_FILE, ERROR);
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
		KsWriteDatabases(oids, n);
	}
	KsUnlockDatabaseFile();
}

/* Forget a database that no longer exists. */
static void
KsForgetDatabase(Oid dboid)
{
	Oid			oids[KS_MAX_DATABASES];
	int			n;
	int			m = 0;
	int			i;

	KsLockDatabaseFile();
	n = KsReadDatabases(oids, KS_MAX_DATABASES);
	for (i = 0; i < n; i++)
		if (oids[i] != dboid)
			oids[m++] = oids[i];
	if (m != n)
		KsWriteDatabases(oids, m);
	KsUnlockDatabaseFile();
}

/* Whether a database exists and accepts connections. */
static bool
KsDatabaseUsable(Oid dboid)
{
	HeapTuple	tup;
	bool		ok = false;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		ok = db->datallowconn && !db->datistemplate;
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	return ok;
}

/* Start worker w of a database slot. */
static void
KsStartDatabaseWorker(int i, int w, Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle **handle = &ks_handles[i][w];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "keyedstate");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "KsDatabaseWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "keyedstate worker %d for database %u", w, dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "keyedstate worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &w, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;

	if (*handle != NULL)
		pfree(*handle);
	*handle = NULL;
	/* out of background worker slots: said at most once a minute */
	if (!RegisterDynamicBackgroundWorker(&worker, handle) &&
		TimestampDifferenceExceeds(ks_slots_warned, GetCurrentTimestamp(), KS_LIMIT_WARN_MS))
	{
		ks_slots_warned = GetCurrentTimestamp();
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start keyedstate worker for database %u", dboid),
				 errhint("Increase max_worker_processes, or lower keyedstate.max_workers.")));
	}
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
 * workers of the pool.  Returns false once the pool is full.
 */
static bool
KsLauncherConsider(int i, int w, TimestampTz now, int *running)
{
	Oid			dboid;

	if (!KsLauncherWantsWorker(i, w, now, KS_MIN_START_GAP_MS, KS_RESTART_DELAY_MS, &dboid))
		return true;

	/* a worker we started may not have claimed the slot yet */
	if (KsHandleAlive(ks_handles[i][w]))
		return true;

	/* a database's first worker starts even beyond max_workers (shmem.h) */
	if (w > 0 && *running >= ks_max_workers)
	{
		if (TimestampDifferenceExceeds(ks_limit_warned, now, KS_LIMIT_WARN_MS))
		{
			ks_limit_warned = now;
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("keyedstate.max_workers (%d) keeps a worker of database %u from starting",
							ks_max_workers, dboid),
					 errdetail("Its aggregations wait, or share the database's other workers."),
					 errhint("Increase keyedstate.max_workers (and max_worker_processes).")));
		}
		return false;
	}

	if (w == 0 && !KsDatabaseUsable(dboid))
	{
		/* gone (or closed to connections): once none of its workers is left */
		if (!KsLauncherDbRunning(i))
		{
			KsForgetDatabase(dboid);
			KsReleaseDatabaseSlots(dboid);
			KsLauncherForgetDatabase(i, dboid);
		}
		return true;
	}
	KsLauncherStarted(i, w, now);
	KsStartDatabaseWorker(i, w, dboid);
	(*running)++;
	return true;
}

/*
 * One pass: start the workers that should run and do not, every
 * database's first worker before any other; forget the databases that are
 * gone, giving back their aggregations' shared memory.
 */
static void
KsLauncherPass(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			running = KsCountWorkers();
	int			i;
	int			w;

	KsLauncherSharePool(ks_max_workers);
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

	pqsignal(SIGTERM, die);
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

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		KsLauncherPass();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 KS_RESTART_DELAY_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
