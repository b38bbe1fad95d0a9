/*-------------------------------------------------------------------------
 *
 * dbslots.c
 *	  The database slots of the shared struct: asking for a database's
 *	  worker and waking it, the worker claiming its database, the launcher
 *	  forgetting databases, DROP DATABASE making the worker leave, and the
 *	  interrupts backends send to a worker's step.  See shmem.h for the
 *	  locking protocol, which this file follows with shmem.c.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "settings.h"
#include "shmem.h"

/* The database slot of this worker process, and its number (KsClaimDatabase). */
static KsDbSlot *ks_mydb = NULL;
static int	ks_myindex = -1;

/* How long DROP DATABASE waits for the worker to leave. */
#define KS_DROP_WAIT_MS			5000

/*
 * Stop the workers' current steps of an aggregation, of each part of any layout (see shmem.h).
 *
 * The SIGINT is sent while we hold the part's slot lock and see it in a
 * step: the worker leaves a step under that lock (KsSlotLeaveStep), after
 * it stopped accepting cancels, and clears a pending cancel when it enters
 * its next step (sent later, it could land in the next step the worker
 * began meanwhile).  Even so a SIGINT may be delivered
 * late, in the worker's next step (of another aggregation of the same
 * owner: a worker runs one owner's only): the worker counts the SIGINTs it
 * receives (run.h), and a step cancelled by one not meant for it is
 * unloaded and replays, not failed.  Nothing here is seen by the workers of
 * other owners: their steps never count our request.
 */
void
KsInterruptAggregation(Oid dboid, int32 aggid)
{
	KsDbSlot   *db;
	int			i;
	int			w;

	if (KsSharedState == NULL)
		return;
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		/* the runner is KsShared->lock's: take it first, as the protocol orders */
		LWLockAcquire(KsSharedState->lock, LW_SHARED);
		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		if (slot->in_use && slot->dboid == dboid && slot->part.parent == aggid)
		{
			slot->interrupt_pid = MyProcPid;
			slot->interrupt_lxid = MyProc->lxid;
			slot->interrupt_requests++;
			/* the worker running it now (the pool may move it, see shmem.h) */
			if (slot->in_step && slot->runner_pid != 0)
			{
				/* counted first: the worker tells ours from other SIGINTs */
				db = KsLookupDbLocked(dboid);
				for (w = 0; db != NULL && w < KS_MAX_DB_WORKERS; w++)
					if (db->workers[w].pid == slot->runner_pid)
						pg_atomic_fetch_add_u32(&db->workers[w].interrupts, 1);
				(void) kill(slot->runner_pid, SIGINT);
			}
		}
		LWLockRelease(&slot->lock);
		LWLockRelease(KsSharedState->lock);
	}
}

/* The database slot of a database, with KsShared->lock held; NULL if none. */
KsDbSlot *
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

/* Give a free database slot to a database (KsShared->lock held exclusive). */
static void
KsInitDbSlotLocked(KsDbSlot *db, Oid dboid)
{
	int			w;

	memset(db, 0, sizeof(KsDbSlot));
	db->dboid = dboid;
	db->nworkers = 1;
	for (w = 0; w < KS_MAX_DB_WORKERS; w++)
	{
		db->workers[w].procno = -1;
		pg_atomic_init_u32(&db->workers[w].interrupts, 0);
	}
}

/* Bump a database's request counter, waking its workers and the launcher. */
void
KsDatabaseRequestLocked(Oid dboid)
{
	KsDbSlot   *db = KsLookupDbLocked(dboid);
	int			w;

	if (db == NULL)
		return;
	db->requested++;
	for (w = 0; w < KS_MAX_DB_WORKERS; w++)
		KsSetLatchOf(db->workers[w].procno);
	KsSetLatchOf(KsSharedState->launcher_procno);
}

/* Ask the workers of a database, if it has a slot, to reload (see shmem.h). */
void
KsDatabaseAskReload(Oid dboid)
{
	if (KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsDatabaseRequestLocked(dboid);
	LWLockRelease(KsSharedState->lock);
}

/* Ask for a database worker, or say there is no slot for it (see shmem.h). */
bool
KsTryRequestDatabaseWorker(Oid dboid, bool bump)
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
			return false;
		}
		KsInitDbSlotLocked(db, dboid);
	}
	/* wanted again: the launcher must not forget it */
	db->empty = false;
	if (bump)
		KsDatabaseRequestLocked(dboid);
	else
		db->reservers++;
	LWLockRelease(KsSharedState->lock);
	return true;
}

/* Ask for a database worker (see shmem.h). */
void
KsRequestDatabaseWorker(Oid dboid, bool bump)
{
	if (!KsTryRequestDatabaseWorker(dboid, bump))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("keyedstate supports aggregations in at most %d databases",
						KS_MAX_DATABASES),
				 errdetail("Each database with aggregations takes one of %d database slots until its aggregations are dropped.",
						   KS_MAX_DATABASES),
				 errhint("Drop the aggregations of a database that no longer needs them.")));
}

/* Whether any worker of a database runs (KsShared->lock held). */
static bool
KsDbHasWorkerLocked(KsDbSlot *db)
{
	int			w;

	for (w = 0; w < KS_MAX_DB_WORKERS; w++)
		if (db->workers[w].pid != 0)
			return true;
	return false;
}

/*
 * Whether a database slot can be freed (KsShared->lock held): emptied by
 * its worker, or never asked for by a commit and reserved by none; no
 * worker, no aggregation's slot (reservations take KsShared->lock too: one
 * in progress shows here), no DROP DATABASE keeping workers away.
 */
static bool
KsDbForgettableLocked(KsDbSlot *db)
{
	if (!OidIsValid(db->dboid) || db->dropping_pid != 0 || KsDbHasWorkerLocked(db) ||
		!(db->empty ? db->requested == db->workers[0].seen : db->requested == 0 && db->reservers == 0))
		return false;
	for (int j = 0; j < KsSharedState->max_aggs; j++)
		if (KsSharedState->aggs[j].in_use && KsSharedState->aggs[j].dboid == db->dboid)
			return false;
	return true;
}

/* End a reservation: with a request if it committed (see shmem.h). */
void
KsEndDatabaseReservation(Oid dboid, bool committed)
{
	KsDbSlot   *db;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL && db->reservers > 0)
		db->reservers--;
	/* committed: asked for under the same lock, so that no launcher frees it in between */
	if (db != NULL && committed)
	{
		db->empty = false;
		KsDatabaseRequestLocked(dboid);
	}
	/* the last reservation of a slot no commit asked for: free now */
	else if (db != NULL && KsDbForgettableLocked(db))
		db->dboid = InvalidOid;
	LWLockRelease(KsSharedState->lock);
	if (committed && db == NULL)
		KsRequestDatabaseWorker(dboid, true);
}

/* The database this backend keeps the workers away from, for KsDatabaseKeepAwayEnded. */
static Oid	ks_dropping_db = InvalidOid;

/* DROP DATABASE and the like: make the workers leave and keep them away (see shmem.h). */
void
KsDatabaseKeepAway(Oid dboid)
{
	KsDbSlot   *db;
	int			pids[KS_MAX_DB_WORKERS];
	int			npids = 0;
	int			w;
	TimestampTz deadline;

	if (KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL)
	{
		db->dropping_pid = MyProcPid;
		for (w = 0; w < KS_MAX_DB_WORKERS; w++)
			if (db->workers[w].pid != 0)
				pids[npids++] = db->workers[w].pid;
	}
	LWLockRelease(KsSharedState->lock);
	if (db == NULL)
		return;
	ks_dropping_db = dboid;
	if (npids == 0)
		return;

	for (w = 0; w < npids; w++)
		(void) kill(pids[w], SIGTERM);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KS_DROP_WAIT_MS);
	while (GetCurrentTimestamp() < deadline)
	{
		bool		gone;

		LWLockAcquire(KsSharedState->lock, LW_SHARED);
		gone = db->dboid != dboid || !KsDbHasWorkerLocked(db);
		LWLockRelease(KsSharedState->lock);
		if (gone)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The transaction of a DROP DATABASE (or the like) ended: the launcher may act again. */
void
KsDatabaseKeepAwayEnded(void)
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

/*
 * before_shmem_exit: let the launcher know this worker is gone, and let go
 * of the aggregation slots it ran (another worker may claim them).
 */
static void
KsWorkerDetach(int code, Datum arg)
{
	int			i;

	if (ks_mydb == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (ks_mydb->workers[ks_myindex].pid == MyProcPid)
	{
		ks_mydb->workers[ks_myindex].pid = 0;
		ks_mydb->workers[ks_myindex].procno = -1;
	}
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->runner_pid == MyProcPid)
		{
			slot->runner_pid = 0;
			slot->runner_procno = -1;
		}
	}
	LWLockRelease(KsSharedState->lock);
}

/* This worker's slot in its database's pool, NULL before its claim (see shmem.h). */
KsDbWorker *
KsMyDbWorker(void)
{
	return ks_mydb != NULL ? &ks_mydb->workers[ks_myindex] : NULL;
}

/* Claim worker number `index` of this database's pool (see shmem.h). */
bool
KsClaimDatabase(Oid dboid, int index)
{
	KsDbSlot   *db;
	KsDbWorker *me;
	bool		ok = false;

	if (index < 0 || index >= KS_MAX_DB_WORKERS)
		return false;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	me = db != NULL ? &db->workers[index] : NULL;
	if (db != NULL && db->dropping_pid == 0 &&
		!(me->pid != 0 && me->pid != MyProcPid && kill(me->pid, 0) == 0))
	{
		me->pid = MyProcPid;
		me->procno = MyProc->pgprocno;
		me->idle_exit = false;
		me->quit_signalled = false;
		me->fault_signal = 0;
		pg_atomic_write_u32(&me->interrupts, 0);
		ks_mydb = db;
		ks_myindex = index;
		ok = true;
	}
	LWLockRelease(KsSharedState->lock);
	if (ok)
		before_shmem_exit(KsWorkerDetach, (Datum) 0);
	return ok;
}

/* The SIGINTs KsInterruptAggregation sent this worker so far (see shmem.h). */
uint32
KsWorkerInterruptsSent(void)
{
	return ks_mydb != NULL ? pg_atomic_read_u32(&ks_mydb->workers[ks_myindex].interrupts) : 0;
}

/* Whether this process is a keyedstate database worker (see shmem.h). */
bool
KsInDatabaseWorker(void)
{
	return ks_mydb != NULL;
}

/* This worker's number in its database's pool. */
int
KsDatabaseWorkerIndex(void)
{
	return ks_myindex;
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
	ks_mydb->workers[ks_myindex].seen = seen;
}

/* Report the database's number of aggregations; returns its pool (see shmem.h). */
int
KsDatabaseSetPool(int naggregations, int nparked, int nowners)
{
	int			n;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (ks_mydb->naggs != naggregations || ks_mydb->nparked != nparked || ks_mydb->nowners != nowners)
	{
		/* share the pool again now, so that a new aggregation finds its worker */
		ks_mydb->naggs = naggregations;
		ks_mydb->nparked = nparked;
		ks_mydb->nowners = nowners;
		KsSharePoolLocked(ks_max_workers);
		KsSetLatchOf(KsSharedState->launcher_procno);
	}
	n = Min(Max(ks_mydb->nworkers, 1), KS_MAX_DB_WORKERS);
	LWLockRelease(KsSharedState->lock);
	return n;
}

/* Whether a slot of the database is assigned to worker w (KsShared->lock held). */
static bool
KsWorkerHasAggLocked(Oid dboid, int w)
{
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == dboid && slot->worker == w)
			return true;
	}
	return false;
}

/* Leave if nothing was requested since `seen` (see shmem.h). */
bool
KsDatabaseIdleExit(uint32 seen)
{
	bool		leave;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	leave = ks_mydb->requested == seen && !KsWorkerHasAggLocked(ks_mydb->dboid, ks_myindex);
	if (leave)
	{
		ks_mydb->workers[ks_myindex].idle_exit = true;
		/*
		 * no aggregation at all (dropped, or DROP EXTENSION): forgettable,
		 * once the first worker leaves (it stays while leftover triggers
		 * wait: another leaving first made the launcher forget the database
		 * when that one was terminated, re-review today 18, F1)
		 */
		if (ks_mydb->naggs == 0 && ks_myindex == 0)
			ks_mydb->empty = true;
	}
	LWLockRelease(KsSharedState->lock);
	return leave;
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
	KsSharedState->launcher_attached = true;
	for (i = 0; i < n; i++)
	{
		KsDbSlot   *db = KsLookupDbLocked(oids[i]);
		int			j;

		for (j = 0; j < KS_MAX_DATABASES && db == NULL; j++)
		{
			if (KsSharedState->dbs[j].dboid == InvalidOid)
			{
				db = &KsSharedState->dbs[j];
				KsInitDbSlotLocked(db, oids[i]);
				db->requested = 1;
			}
		}
	}
	LWLockRelease(KsSharedState->lock);
	before_shmem_exit(KsLauncherDetach, (Datum) 0);
}

/* Whether any worker of database slot i runs. */
bool
KsLauncherDbRunning(int i)
{
	bool		running;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	running = KsDbHasWorkerLocked(&KsSharedState->dbs[i]);
	LWLockRelease(KsSharedState->lock);
	return running;
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

/* Free a database slot whose database has no aggregations (see shmem.h). */
bool
KsLauncherForgetIfEmpty(int i, Oid *dboid)
{
	KsDbSlot   *db = &KsSharedState->dbs[i];
	bool		forget;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	*dboid = db->dboid;
	forget = KsDbForgettableLocked(db);
	if (forget)
		db->dboid = InvalidOid;
	LWLockRelease(KsSharedState->lock);
	return forget;
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
