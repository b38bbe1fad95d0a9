/*-------------------------------------------------------------------------
 *
 * dbslots.c
 *	  The database slots of the shared struct: asking for a database's
 *	  worker and waking it, the worker claiming its database, the launcher
 *	  starting workers, DROP DATABASE making the worker leave, and the
 *	  interrupts backends send to a worker's step.  See shmem.h for the
 *	  locking protocol, which this file follows with shmem.c.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "shmem.h"

/* The database slot of this worker process (KsClaimDatabase). */
static KsDbSlot *ks_mydb = NULL;

/* How long DROP DATABASE waits for the worker to leave. */
#define KS_DROP_WAIT_MS			5000

static KsDbSlot *KsLookupDbLocked(Oid dboid);

/* Stop the worker's current step of an aggregation (see shmem.h). */
void
KsInterruptAggregation(Oid dboid, int32 aggid)
{
	KsSlotRef	ref;
	KsDbSlot   *db;
	bool		in_step = false;
	int			pid = 0;

	if (KsSharedState == NULL || !KsFindAggSlot(dboid, aggid, &ref))
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL)
	{
		db->interrupt_requests++;
		pid = db->worker_pid;
	}
	LWLockRelease(KsSharedState->lock);
	LWLockAcquire(&ref.slot->lock, LW_EXCLUSIVE);
	if (KsSlotRefValid(&ref))
	{
		ref.slot->interrupt_pid = MyProcPid;
		ref.slot->interrupt_lxid = MyProc->lxid;
		ref.slot->interrupt_requests++;
		in_step = ref.slot->in_step;
	}
	LWLockRelease(&ref.slot->lock);
	/* the worker is a process of ours: cancel its step as a backend's query */
	if (in_step && pid != 0)
		(void) kill(pid, SIGINT);
}

/* Set the latch of a process by pgprocno; -1 means none. */
static void
KsSetLatchOf(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/* The database slot of a database, with KsShared->lock held; NULL if none. */
static KsDbSlot *
KsLookupDbLocked(Oid dboid)
{
	int			i;

	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		if (KsSharedState->dbs[i].dboid == dboid)
			return &KsSharedState->dbs[i];
	}
	return NULL;
}

/* Ask for a database worker (see shmem.h). */
void
KsRequestDatabaseWorker(Oid dboid, bool bump)
{
	KsDbSlot   *db;
	int			i;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db == NULL)
	{
		for (i = 0; i < KS_MAX_DATABASES && db == NULL; i++)
		{
			if (KsSharedState->dbs[i].dboid == InvalidOid)
				db = &KsSharedState->dbs[i];
		}
		if (db == NULL)
		{
			LWLockRelease(KsSharedState->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("keyedstate supports aggregations in at most %d databases",
							KS_MAX_DATABASES)));
		}
		memset(db, 0, sizeof(KsDbSlot));
		db->dboid = dboid;
		db->worker_procno = -1;
	}
	if (bump)
	{
		db->requested++;
		KsSetLatchOf(db->worker_procno);
		KsSetLatchOf(KsSharedState->launcher_procno);
	}
	LWLockRelease(KsSharedState->lock);
}

/*
 * Wake the worker of a database.  Called at commit of transactions that
 * inserted into a source table, so it takes no lock: a stale procno only
 * sets some other process's latch, which every latch user tolerates.
 */
void
KsWakeDatabaseWorker(Oid dboid)
{
	int			i;

	if (KsSharedState == NULL)
		return;
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *s = &KsSharedState->dbs[i];

		if (s->dboid == dboid)
		{
			KsSetLatchOf(s->worker_procno);
			return;
		}
	}
}

/* The database this backend is dropping, for KsDatabaseDropEnded. */
static Oid	ks_dropping_db = InvalidOid;

/* DROP DATABASE: make the worker leave and keep it away (see shmem.h). */
void
KsDatabaseDropping(Oid dboid)
{
	KsDbSlot   *db;
	int			pid = 0;
	TimestampTz deadline;

	if (KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL)
	{
		db->dropping_pid = MyProcPid;
		pid = db->worker_pid;
	}
	LWLockRelease(KsSharedState->lock);
	if (db == NULL)
		return;
	ks_dropping_db = dboid;
	if (pid == 0)
		return;

	(void) kill(pid, SIGTERM);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KS_DROP_WAIT_MS);
	while (GetCurrentTimestamp() < deadline)
	{
		bool		gone;

		LWLockAcquire(KsSharedState->lock, LW_SHARED);
		gone = db->dboid != dboid || db->worker_pid == 0;
		LWLockRelease(KsSharedState->lock);
		if (gone)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The transaction of a DROP DATABASE ended: the launcher may act again. */
void
KsDatabaseDropEnded(void)
{
	KsDbSlot   *db;

	if (!OidIsValid(ks_dropping_db) || KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(ks_dropping_db);
	if (db != NULL && db->dropping_pid == MyProcPid)
		db->dropping_pid = 0;
	KsSetLatchOf(KsSharedState->launcher_procno);
	LWLockRelease(KsSharedState->lock);
	ks_dropping_db = InvalidOid;
}

/* before_shmem_exit: let the launcher know this database has no worker. */
static void
KsWorkerDetach(int code, Datum arg)
{
	if (ks_mydb == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (ks_mydb->worker_pid == MyProcPid)
	{
		ks_mydb->worker_pid = 0;
		ks_mydb->worker_procno = -1;
	}
	LWLockRelease(KsSharedState->lock);
}

/* Claim this database's slot; false if another worker already runs here. */
bool
KsClaimDatabase(Oid dboid)
{
	KsDbSlot   *db;
	bool		ok = false;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL && db->dropping_pid == 0 &&
		!(db->worker_pid != 0 && db->worker_pid != MyProcPid && kill(db->worker_pid, 0) == 0))
	{
		db->worker_pid = MyProcPid;
		db->worker_procno = MyProc->pgprocno;
		db->idle_exit = false;
		ks_mydb = db;
		ok = true;
	}
	LWLockRelease(KsSharedState->lock);
	if (ok)
		before_shmem_exit(KsWorkerDetach, (Datum) 0);
	return ok;
}

/* Whether a backend asked this worker to leave its database. */
bool
KsDatabaseLeaveRequested(void)
{
	return ks_mydb != NULL && ks_mydb->dropping_pid != 0;
}

/* The database's request counter. */
uint32
KsDatabaseRequests(void)
{
	return ks_mydb->requested;
}

/* Record the request counter the worker applied. */
void
KsDatabaseRequestsSeen(uint32 seen)
{
	ks_mydb->seen = seen;
}

/* Leave if nothing was requested since `seen` (see shmem.h). */
bool
KsDatabaseIdleExit(uint32 seen)
{
	bool		leave;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	leave = (ks_mydb->requested == seen);
	if (leave)
		ks_mydb->idle_exit = true;
	LWLockRelease(KsSharedState->lock);
	return leave;
}

/* Whether one was asked for any aggregation of the database since then. */
bool
KsDatabaseInterruptedSince(Oid dboid, const KsStepMark *mark)
{
	return ks_mydb != NULL && ks_mydb->dboid == dboid &&
		ks_mydb->interrupt_requests != mark->db_requests;
}

/* before_shmem_exit: no launcher to wake any more. */
static void
KsLauncherDetach(int code, Datum arg)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->launcher_procno = -1;
	LWLockRelease(KsSharedState->lock);
}

/* The launcher is here; give the remembered databases their slots. */
void
KsLauncherAttach(const Oid *oids, int n)
{
	int			i;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->launcher_procno = MyProc->pgprocno;
	for (i = 0; i < n; i++)
	{
		KsDbSlot   *db = KsLookupDbLocked(oids[i]);
		int			j;

		for (j = 0; j < KS_MAX_DATABASES && db == NULL; j++)
		{
			if (KsSharedState->dbs[j].dboid == InvalidOid)
			{
				db = &KsSharedState->dbs[j];
				memset(db, 0, sizeof(KsDbSlot));
				db->dboid = oids[i];
				db->worker_procno = -1;
				db->requested = 1;
			}
		}
	}
	LWLockRelease(KsSharedState->lock);
	before_shmem_exit(KsLauncherDetach, (Datum) 0);
}

/* Whether database slot i wants a worker started now (see shmem.h). */
bool
KsLauncherWantsWorker(int i, TimestampTz now, int min_gap_ms, int restart_ms, Oid *dboid)
{
	KsDbSlot   *db = &KsSharedState->dbs[i];
	bool		wanted;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	/* a backend that dropped the database and went away without telling */
	if (db->dropping_pid != 0 && BackendPidGetProc(db->dropping_pid) == NULL)
		db->dropping_pid = 0;
	*dboid = db->dboid;
	/* new requests start at once, restarts after a failure are spaced */
	wanted = OidIsValid(db->dboid) && db->worker_pid == 0 && db->dropping_pid == 0 &&
		((db->requested != db->seen &&
		  TimestampDifferenceExceeds(db->last_start, now, min_gap_ms)) ||
		 (!db->idle_exit &&
		  TimestampDifferenceExceeds(db->last_start, now, restart_ms)));
	LWLockRelease(KsSharedState->lock);
	return wanted;
}

/* The launcher started a worker for slot i. */
void
KsLauncherStarted(int i, TimestampTz now)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->dbs[i].last_start = now;
	LWLockRelease(KsSharedState->lock);
}

/* A database is gone: free its slot (its aggregations' went first). */
void
KsLauncherForgetDatabase(int i, Oid dboid)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (KsSharedState->dbs[i].dboid == dboid)
		KsSharedState->dbs[i].dboid = InvalidOid;
	LWLockRelease(KsSharedState->lock);
}

/* Serialize writers of the file of databases. */
void
KsLockDatabaseFile(void)
{
	LWLockAcquire(KsSharedState->filelock, LW_EXCLUSIVE);
}

/* Done writing the file of databases. */
void
KsUnlockDatabaseFile(void)
{
	LWLockRelease(KsSharedState->filelock);
}

/* Interrupts asked for this worker's database so far (see KsStepMark). */
uint64
KsDatabaseInterruptRequests(void)
{
	return ks_mydb != NULL ? ks_mydb->interrupt_requests : 0;
}
