/*-------------------------------------------------------------------------
 *
 * wakeups.c
 *	  Waking the workers, and finding the aggregations below a partitioned
 *	  table, from backends: reads of the shared slots without a lock.  See
 *	  shmem.h for the locking protocol, which these reads do not take part
 *	  in: a slot they read may be changing, and a stale process number only
 *	  sets some other process's latch, which every latch user tolerates; a
 *	  stale list of aggregations only checks one more, or one fewer, of
 *	  those whose parts are being loaded or unloaded at that moment.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "storage/latch.h"
#include "storage/proc.h"

#include "shmem.h"

/* Set the latch of a process by pgprocno (see shmem.h). */
void
KsSetLatchOf(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/* Whether a slot's source lies below partitioned table relid (its above: see shmem.h). */
static bool
KsSlotBelow(const KsAggSlot *slot, Oid relid)
{
	for (int k = 0; k < KS_SLOT_ABOVE && OidIsValid(slot->above[k]); k++)
		if (slot->above[k] == relid)
			return true;
	return false;
}

/*
 * Bump a slot's wakes and set its runner's latch; false when no worker
 * runs it now (the caller wakes the database's workers).
 */
static bool
KsWakeSlot(KsAggSlot *slot)
{
	int			procno = slot->runner_procno;

	pg_atomic_fetch_add_u32(&slot->wakes, 1);
	KsSetLatchOf(procno);
	return procno >= 0;
}

/*
 * Wake the workers of a database.  Called at commit of transactions that
 * inserted into a source table, so it takes no lock: a stale procno only
 * sets some other process's latch, which every latch user tolerates.
 */
void
KsWakeDatabaseWorker(Oid dboid)
{
	int			i;
	int			w;

	if (KsSharedState == NULL)
		return;
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *s = &KsSharedState->dbs[i];

		if (s->dboid == dboid)
		{
			for (w = 0; w < KS_MAX_DB_WORKERS; w++)
				KsSetLatchOf(s->workers[w].procno);
			return;
		}
	}
}

/* Wake the workers running an aggregation's parts (see shmem.h); no lock, as above. */
void
KsWakeAggregation(Oid dboid, int32 aggid)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	int			nparts;
	int			n = KsFindAggParts(dboid, aggid, refs, KsSharedState->max_aggs, &nparts);
	bool		all = n < nparts;
	int			i;

	for (i = 0; i < n; i++)
		all |= !KsWakeSlot(refs[i].slot);
	if (all)
		KsWakeDatabaseWorker(dboid);
	pfree(refs);
}

/* Wake the runners of aggregations whose sources got rows (see shmem.h). */
void
KsWakeAggregationsAtCommit(Oid dboid, const int32 *aggids, int n, const Oid *relids, int nrelids)
{
	bool		all = false;
	int			i;
	int			j;

	if (KsSharedState == NULL)
		return;
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		bool		hit;

		/* (a paused one consumes nothing: its rows wait for the resume, newuser review 2, F3) */
		if (!slot->in_use || slot->dboid != dboid || slot->state == KS_PAUSED)
			continue;
		for (j = 0; j < n && aggids[j] != slot->part.parent; j++)
			;
		hit = j < n;
		/* or rows went through a table above its source (see shmem.h) */
		for (int r = 0; !hit && r < nrelids; r++)
			hit = KsSlotBelow(slot, relids[r]);
		if (hit)
			all |= !KsWakeSlot(slot);
	}
	if (all)
		KsWakeDatabaseWorker(dboid);
}

/* The aggregations with a part whose source lies below partitioned table relid (see shmem.h). */
int
KsAggregationsBelow(Oid dboid, Oid relid, int32 *aggids, int max)
{
	int			n = 0;

	if (KsSharedState == NULL)
		return 0;
	for (int i = 0; i < KsSharedState->max_aggs && n < max; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		int32		aggid = slot->part.parent;
		int			j;

		if (!slot->in_use || slot->dboid != dboid || !KsSlotBelow(slot, relid))
			continue;
		for (j = 0; j < n && aggids[j] != aggid; j++)
			;
		if (j == n)
			aggids[n++] = aggid;
	}
	return n;
}
