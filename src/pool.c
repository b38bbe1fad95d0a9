/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The pool of a database's workers: assigning aggregations to them,
 *	  balancing, parking, claiming and handing over aggregation slots
 *	  (the server's pool is poolshare.c's).  See shmem.h for the pool and
 *	  the locking protocol, which this file follows with shmem.c,
 *	  dbslots.c and poolshare.c.
 *
 * The assignment is a field of the aggregation slot, written under
 * KsShared->lock by whichever worker of the database reloads first; every
 * worker then runs exactly the slots assigned to it.  A slot whose
 * assignment changes keeps its runner until that worker has taken a final
 * checkpoint and let go (KsUnclaimAggSlot); only then may the new worker
 * claim it.  A runner that died lets go by itself (KsWorkerDetach), or is
 * found dead by kill(pid, 0).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "shmem.h"

/*
 * After the pool emptied one of an owner's workers for another owner, it
 * does not spread that owner's aggregations out again for a minute
 * (keyedstate.pool_settle_time, a developer option): a role that creates
 * and drops an aggregation in a loop would otherwise move another owner's
 * aggregations back and forth, a reload each time.
 */

/* Whether a slot's runner is a live process other than this one. */
static bool
KsRunnerElsewhere(KsAggSlot *slot)
{
	return slot->runner_pid != 0 && slot->runner_pid != MyProcPid &&
		kill(slot->runner_pid, 0) == 0;
}

/* Aggregations of a database assigned to each worker below n (lock held). */
static void
KsCountLoadsLocked(Oid dboid, int nworkers, int *loads)
{
	int			i;

	memset(loads, 0, sizeof(int) * nworkers);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == dboid &&
			slot->worker >= 0 && slot->worker < nworkers)
			loads[slot->worker]++;
	}
}

/*
 * The owner of the aggregations assigned to each worker below n (InvalidOid:
 * none), and whether a worker has several owners' (KsShared->lock held;
 * each slot's lock is taken after it, as the protocol orders).
 */
static void
KsWorkerOwnersLocked(Oid dboid, int nworkers, Oid *owners, bool *mixed)
{
	int			i;

	memset(owners, 0, sizeof(Oid) * nworkers);
	memset(mixed, 0, sizeof(bool) * nworkers);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		Oid			owner;
		int			w = slot->worker;

		if (!slot->in_use || slot->dboid != dboid || w < 0 || w >= nworkers)
			continue;
		LWLockAcquire(&slot->lock, LW_SHARED);
		owner = slot->owner;
		LWLockRelease(&slot->lock);
		if (!OidIsValid(owners[w]))
			owners[w] = owner;
		else if (owners[w] != owner)
			mixed[w] = true;
	}
}

/*
 * The worker for an aggregation of `owner`: an empty worker first (so
 * that parts spread), then the least loaded one running only this owner's;
 * -1 if every worker runs another owner's (see owner.h: a worker never
 * runs several owners' aggregations).  The aggregation then waits, and
 * KsBalanceAggSlots empties a worker of an owner that has several.
 */
static int
KsChooseWorkerLocked(Oid dboid, int nworkers, Oid owner)
{
	int			loads[KS_MAX_DB_WORKERS];
	Oid			owners[KS_MAX_DB_WORKERS];
	bool		mixed[KS_MAX_DB_WORKERS];
	int			best = -1;
	int			w;

	KsCountLoadsLocked(dboid, nworkers, loads);
	KsWorkerOwnersLocked(dboid, nworkers, owners, mixed);
	for (w = 0; w < nworkers; w++)
		if (loads[w] == 0)
			return w;
	for (w = 0; w < nworkers; w++)
		if (!mixed[w] && owners[w] == owner && (best < 0 || loads[w] < loads[best]))
			best = w;
	return best;
}

/* Set a slot's parked_resume (KsShared->lock held): under its lock too, as shmem.h says. */
static void
KsSetParkedLocked(KsAggSlot *slot, int64 resume_count)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->parked_resume = resume_count;
	LWLockRelease(&slot->lock);
}

/* Assign an aggregation to a worker of the pool (see shmem.h). */
int
KsAssignAggSlot(Oid dboid, int32 aggid, const KsPartInfo *part, Oid owner, int nworkers)
{
	KsAggSlot  *slot;
	int			w;

	Assert(nworkers >= 1 && nworkers <= KS_MAX_DB_WORKERS);
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	slot = KsLookupSlotLocked(dboid, aggid);
	if (slot == NULL)
	{
		slot = KsFreeSlotFindLocked();
		if (slot == NULL)
		{
			/* the caller says so (it knows the aggregation's name) */
			LWLockRelease(KsSharedState->lock);
			return -2;
		}
		KsInitSlotLocked(slot, dboid, aggid);
		/* readers gather an aggregation's parts by this (its slot lock's, see shmem.h) */
		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		slot->part = *part;
		slot->owner = owner;
		LWLockRelease(&slot->lock);
	}
	else if (slot->owner != owner)
	{
		/* ALTER VIEW ... OWNER TO: it may no longer share its worker's owner */
		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		slot->owner = owner;
		LWLockRelease(&slot->lock);
		slot->worker = -1;
	}
	/* wanted by a worker again (resumed): waiting for one shows as such (re-review today 30, F1) */
	if (slot->parked_resume >= 0)
		KsSetParkedLocked(slot, -1);
	if (slot->worker < 0 || slot->worker >= nworkers)
	{
		slot->worker = KsChooseWorkerLocked(dboid, nworkers, owner);
		/* its worker may not run: the request makes the launcher start it */
		if (slot->worker >= 0 && slot->worker != KsDatabaseWorkerIndex())
			KsDatabaseRequestLocked(dboid);
	}
	w = slot->worker;
	LWLockRelease(KsSharedState->lock);
	return w;
}

/* Whether an aggregation needs no worker (see shmem.h). */
bool
KsAggSlotParked(Oid dboid, int32 aggid, int64 resume_count)
{
	KsAggSlot  *slot;
	bool		parked = false;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	slot = KsLookupSlotLocked(dboid, aggid);
	if (slot != NULL)
	{
		LWLockAcquire(&slot->lock, LW_SHARED);
		/*
		 * (a resume raises the count: it runs again.  Parked at the count
		 * read, it is parked whatever the definitions read say: only a
		 * resume or a rebuild, which raise it, end a pause or a failure, so
		 * "not paused" at the same count is a snapshot taken before the
		 * pause committed, whose reload gave a parked aggregation a worker
		 * again, or none: it then waited for one, checkpoint() with it)
		 */
		parked = slot->parked_resume == resume_count;
		LWLockRelease(&slot->lock);
	}
	LWLockRelease(KsSharedState->lock);
	return parked;
}

/* Assign a parked aggregation to no worker (see shmem.h). */
void
KsUnassignAggSlot(Oid dboid, int32 aggid)
{
	KsAggSlot  *slot;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	slot = KsLookupSlotLocked(dboid, aggid);
	if (slot != NULL && slot->worker >= 0)
	{
		slot->worker = -1;
		/* its runner hands it over (to none) at its reload */
		KsDatabaseRequestLocked(dboid);
	}
	LWLockRelease(KsSharedState->lock);
}

/* Park a slot whose runner has nothing left to do (see shmem.h). */
void
KsParkAggSlot(KsAggSlot *slot, int64 resume_count)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (slot->in_use && slot->parked_resume != resume_count)
	{
		KsSetParkedLocked(slot, resume_count);
		/* a reload leaves it out of the pool */
		KsDatabaseRequestLocked(slot->dboid);
	}
	LWLockRelease(KsSharedState->lock);
}

/* Give the parked parts of n aggregations (n < 0: all) a worker again (see shmem.h). */
void
KsUnparkAggSlots(Oid dboid, const int32 *aggids, int n)
{
	int			i;
	int			j;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		/* (the part is the slot lock's, but never changes its parent) */
		for (j = 0; j < (n < 0 ? 1 : n); j++)
			if (slot->in_use && slot->dboid == dboid && (n < 0 || slot->part.parent == aggids[j]) &&
				slot->parked_resume >= 0)
			{
				KsSetParkedLocked(slot, -1);
				KsDatabaseRequestLocked(dboid);
			}
	}
	LWLockRelease(KsSharedState->lock);
}

/* The newest aggregation of the database on worker w, of `owner` if valid. */
static KsAggSlot *
KsNewestOnLocked(Oid dboid, int w, Oid owner, bool other_owner)
{
	KsAggSlot  *found = NULL;
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		Oid			o;

		if (!slot->in_use || slot->dboid != dboid || slot->worker != w ||
			(found != NULL && slot->aggid <= found->aggid))
			continue;
		LWLockAcquire(&slot->lock, LW_SHARED);
		o = slot->owner;
		LWLockRelease(&slot->lock);
		if (!OidIsValid(owner) || (o == owner) != other_owner)
			found = slot;
	}
	return found;
}

/* Move one aggregation between workers, never mixing owners (see shmem.h). */
long
KsBalanceAggSlots(Oid dboid, int nworkers, bool waiting)
{
	KsDbSlot   *db;
	TimestampTz now = GetCurrentTimestamp();
	long		wait = 0;
	int			loads[KS_MAX_DB_WORKERS];
	Oid			owners[KS_MAX_DB_WORKERS];
	bool		mixed[KS_MAX_DB_WORKERS];
	int			most = 0;
	int			from = -1;
	int			to = -1;
	int			w;
	int			v;
	KsAggSlot  *move = NULL;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	KsCountLoadsLocked(dboid, nworkers, loads);
	KsWorkerOwnersLocked(dboid, nworkers, owners, mixed);

	/* 1. a worker given several owners' (before an owner change): one leaves it */
	for (w = 0; w < nworkers && move == NULL; w++)
		if (mixed[w])
			move = KsNewestOnLocked(dboid, w, owners[w], true);
	if (move != NULL)
	{
		move->worker = -1;
		KsDatabaseRequestLocked(dboid);
		LWLockRelease(KsSharedState->lock);
		return 0;
	}

	/*
	 * 2. an aggregation waits for a worker of its own: the least loaded
	 * worker of an owner that has several gives one of its aggregations to
	 * that owner's other least loaded worker, until it is empty
	 */
	if (waiting)
	{
		for (w = 0; w < nworkers; w++)
			for (v = 0; v < nworkers; v++)
				if (v != w && loads[w] > 0 && loads[v] > 0 && owners[v] == owners[w] &&
					(from < 0 || loads[w] < loads[from] ||
					 (w == from && loads[v] < loads[to])))
				{
					from = w;
					to = v;
				}
		if (from >= 0 && (move = KsNewestOnLocked(dboid, from, InvalidOid, false)) != NULL)
		{
			move->worker = to;
			if (db != NULL)
			{
				db->workers[from].emptied_owner = owners[from];
				db->workers[from].emptied_at = now;
			}
			KsDatabaseRequestLocked(dboid);
		}
		LWLockRelease(KsSharedState->lock);
		return 0;
	}

	/* 3. the newest aggregation of the most loaded worker moves, if loads differ by two */
	for (w = 1; w < nworkers; w++)
		if (loads[w] > loads[most])
			most = w;
	move = KsNewestOnLocked(dboid, most, InvalidOid, false);
	if (move != NULL)
	{
		/* to an empty worker, or one running only its owner's */
		for (w = 0; w < nworkers; w++)
			if ((loads[w] == 0 || (!mixed[w] && owners[w] == owners[most])) &&
				(to < 0 || loads[w] < loads[to]))
				to = w;
	}
	if (move != NULL && to >= 0 && loads[most] - loads[to] >= 2)
	{
		/* an owner just made to give up a worker (of any): later */
		for (w = 0; db != NULL && w < KS_MAX_DB_WORKERS; w++)
		{
			TimestampTz settled = TimestampTzPlusMilliseconds(db->workers[w].emptied_at,
															  ks_pool_settle);

			if (db->workers[w].emptied_owner == owners[most] && now < settled)
				wait = Max(wait, Max(TimestampDifferenceMilliseconds(now, settled), 1));
		}
		if (wait == 0)
		{
			move->worker = to;
			/* the old worker hands it over at its reload, the new one claims it */
			KsDatabaseRequestLocked(dboid);
		}
	}
	LWLockRelease(KsSharedState->lock);
	return wait;
}

/* Claim the slot of an aggregation assigned to this worker (see shmem.h). */
bool
KsClaimAggSlot(Oid dboid, int32 aggid, KsSlotRef *ref)
{
	KsAggSlot  *slot;
	bool		ok;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	slot = KsLookupSlotLocked(dboid, aggid);
	ok = slot != NULL && slot->worker == KsDatabaseWorkerIndex() && !KsRunnerElsewhere(slot);
	if (ok)
	{
		slot->runner_pid = MyProcPid;
		slot->runner_procno = MyProc->pgprocno;
		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		slot->reserved_xid = InvalidTransactionId;
		LWLockRelease(&slot->lock);
		ref->slot = slot;
		ref->generation = slot->generation;
	}
	LWLockRelease(KsSharedState->lock);
	return ok;
}

/* Whether a slot this worker runs is still assigned to it. */
bool
KsAggSlotStillMine(const KsSlotRef *ref)
{
	bool		mine;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	mine = ref->slot->in_use && ref->slot->generation == ref->generation &&
		ref->slot->worker == KsDatabaseWorkerIndex();
	LWLockRelease(KsSharedState->lock);
	return mine;
}

/* Let go of a slot this worker ran (see shmem.h). */
void
KsUnclaimAggSlot(KsAggSlot *slot)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (slot->runner_pid == MyProcPid)
	{
		slot->runner_pid = 0;
		slot->runner_procno = -1;
	}
	/* wake the worker it is assigned to now */
	if (slot->in_use)
		KsDatabaseRequestLocked(slot->dboid);
	LWLockRelease(KsSharedState->lock);
}

/*
 * Take an orphaned slot (no live runner, still the one found) so that it
 * can be freed without a worker claiming it meanwhile; false if it is not
 * one any more.
 */
bool
KsClaimOrphanSlot(const KsSlotRef *ref)
{
	KsAggSlot  *slot = ref->slot;
	bool		ok;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	ok = slot->in_use && slot->generation == ref->generation && !KsRunnerElsewhere(slot);
	if (ok)
	{
		slot->runner_pid = MyProcPid;
		slot->runner_procno = MyProc->pgprocno;
	}
	LWLockRelease(KsSharedState->lock);
	return ok;
}

/* Whether no other worker runs any of the aggregations (or parts) ids[]. */
bool
KsAggSlotsIdle(Oid dboid, const Datum *ids, int n)
{
	bool		idle = true;
	int			i;
	int			j;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	for (i = 0; i < KsSharedState->max_aggs && idle; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (!slot->in_use || slot->dboid != dboid || !KsRunnerElsewhere(slot))
			continue;
		for (j = 0; j < n; j++)
			if (slot->aggid == DatumGetInt32(ids[j]))
				idle = false;
	}
	LWLockRelease(KsSharedState->lock);
	return idle;
}
