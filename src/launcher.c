/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher background worker.  See launcher.h.
 *
 * A database slot (shmem.h) says whether a database wants a worker: its
 * `requested` counter is bumped by backends (create_aggregation, pause,
 * resume, ...) and copied to `seen` by the worker when it reloads.  The
 * launcher starts a worker for a database when none runs and either a
 * request is newer than what the last worker saw or the last worker did
 * not leave on purpose (it crashed, failed or was terminated).  Database
 * workers are BGW_NEVER_RESTART: the launcher alone restarts them, at most
 * once a second per database.
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

/* The launcher's handles of the workers it started, by database slot. */
static BackgroundWorkerHandle *ks_handles[KS_MAX_DATABASES];

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

/* Start the worker of a database slot. */
static void
KsStartDatabaseWorker(int i, Oid dboid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "keyedstate");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "KsDatabaseWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "keyedstate worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "keyedstate worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (ks_handles[i] != NULL)
		pfree(ks_handles[i]);
	ks_handles[i] = NULL;
	if (!RegisterDynamicBackgroundWorker(&worker, &ks_handles[i]))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start keyedstate worker for database %u", dboid),
				 errhint("Increase max_worker_processes.")));
}

/*
 * One pass: start the workers that should run and do not; forget the
 * databases that are gone, giving back their aggregations' shared memory.
 */
static void
KsLauncherPass(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		Oid			dboid;
		pid_t		pid;

		if (!KsLauncherWantsWorker(i, now, KS_MIN_START_GAP_MS, KS_RESTART_DELAY_MS, &dboid))
			continue;

		/* a worker we started may not have claimed the slot yet */
		if (ks_handles[i] != NULL &&
			GetBackgroundWorkerPid(ks_handles[i], &pid) != BGWH_STOPPED)
			continue;

		if (!KsDatabaseUsable(dboid))
		{
			KsForgetDatabase(dboid);
			KsReleaseDatabaseSlots(dboid);
			KsLauncherForgetDatabase(i, dboid);
			continue;
		}
		KsLauncherStarted(i, now);
		KsStartDatabaseWorker(i, dboid);
	}
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
