/*-------------------------------------------------------------------------
 *
 * expire.c
 *	  State TTL: sweeping expired keys out, and reclaiming their memory.
 *	  See expire.h for the semantics.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#include "checkpoint.h"
#include "evict.h"
#include "expire.h"
#include "window.h"

/* Entries a step looks at, at most. */
#define KS_EXPIRE_SCAN			(64 * 1024)

/* Sweeps start every tenth of the TTL, but no closer than this ... */
#define KS_EXPIRE_MIN_INTERVAL_US	(100 * 1000)
/* ... and no farther apart than this. */
#define KS_EXPIRE_MAX_INTERVAL_US	(60 * 1000 * 1000)

/* Keys compacted between checks for interrupts. */
#define KS_COMPACT_INTERRUPT_EVERY	256

/* Expire one key (step 1 of expire.h). */
static void
KsExpireKey(KsAggRun *run, KsKeyEntry *e)
{
	/* a key a checkpoint being written still needs: write it first */
	if (KsKeyPendingSave(run->kt, e))
		KsCheckpointSaveKey(run, e);
	if (!KsAggReleaseStates(run->rt, e))
		run->garbage_states++;
	KsKeySetFlags(run->kt, e, e->flags | KS_KEY_EXPIRED);
	KsKeyMarkDirty(run->kt, e);
	run->keys_expired++;
}

/* Expire a key a row reached past its TTL (see expire.h). */
void
KsExpireIfOutlived(void *arg, KsKeyEntry *e, TimestampTz now)
{
	KsAggRun   *run = (KsAggRun *) arg;

	/* (a key this chunk made or brought back has no time yet: re-review today 15, F1) */
	if (e->touched != DT_NOBEGIN && KsExpiredAt(run, e->touched, now))
		KsExpireKey(run, e);
}

/*
 * The event-time TTL of a windowed aggregation (window.h) over entries
 * [from, to) of its pane table or (sliding windows) its window table:
 * expired panes are expired as keys are, expired windows are marked for
 * removal at the next publish.
 */
void
KsWindowExpireRange(KsAggRun *run, KsKeyTable *kt, uint64 from, uint64 to)
{
	int64		size = run->def->window_size_us;
	TimestampTz upto = KsWindowExpiredUpTo(run);
	uint64		i;

	if (upto == DT_NOBEGIN)
		return;
	for (i = from; i < to; i++)
	{
		KsKeyEntry *e = KsKeyTableEntry(kt, i);
		TimestampTz start;

		if (e->flags & (KS_KEY_FREE | KS_KEY_EXPIRED))
			continue;
		start = DatumGetTimestampTz(e->keys[0]);
		if (!KsWindowEndsBy(start, size, upto))
			continue;
		if (kt == run->windows)
			KsKeyMarkPublish(kt, e);	/* publish removes it (window.c) */
		else
			KsExpireKey(run, e);	/* a pane whose last window is past the TTL */
	}
}

/*
 * Move every live key's states into a new state context and drop the old
 * one with whatever expired internal states left in it.  Serialization
 * and deserialization are the aggregates' own (user code, as the owner);
 * an error leaves some keys' states in the old context, which is then
 * kept, and fails the step like any other error.
 */
static void
KsCompactStates(KsAggRun *run)
{
	KsAggRuntime *rt = run->rt;
	MemoryContext old = rt->statecxt;
	MemoryContext tmp;
	StringInfoData buf;
	KsKeyIter	iter;
	KsKeyEntry *e;
	uint64		n = 0;

	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate compaction",
								ALLOCSET_DEFAULT_SIZES);
	rt->statecxt = AllocSetContextCreate(MemoryContextGetParent(old),
										 "keyedstate transition states",
										 ALLOCSET_DEFAULT_SIZES);
	rt->econtext->ecxt_per_tuple_memory = rt->statecxt;
	KsKeyIterInit(&iter, run->kt);
	while ((e = KsKeyIterNext(&iter)) != NULL)
	{
		MemoryContext oldcxt;

		if (e->flags & KS_KEY_EXPIRED)
			continue;
		if (++n % KS_COMPACT_INTERRUPT_EVERY == 0)
		{
			KsCheckInterrupts();
			/* serialize and deserialize functions are user code: timed by slices (run.h) */
			KsRunOwnerCodeEnd();
		}
		KsRunOwnerCodeBegin(run);
		oldcxt = MemoryContextSwitchTo(tmp);
		initStringInfo(&buf);
		KsAggSerializeStates(rt, e->states, e->replay, &buf);
		MemoryContextSwitchTo(oldcxt);
		KsAggDeserializeStates(rt, e->states, &e->replay, buf.data, buf.len, run->name);
		MemoryContextReset(tmp);
	}
	KsRunOwnerCodeEnd();
	MemoryContextDelete(tmp);
	MemoryContextDelete(old);
	run->garbage_states = 0;
}

/*
 * Compact the states when freed internal ones outnumber the live keys, or
 * are a quarter of them while reading waits for memory (evict.h): what
 * they hold counts as in use until then.
 */
void
KsExpireCompact(KsAggRun *run)
{
	if ((run->garbage_states > 1024 && (uint64) run->garbage_states > run->kt->nentries) ||
		(run->evict_holding && run->garbage_states > 0 &&
		 (uint64) run->garbage_states * 4 > run->kt->nentries))
	{
		KsRunTimeoutPause(true);
		KsCompactStates(run);
		KsRunTimeoutResume(run);
	}
}

/* Compact the keys and their states once most keys have gone (see expire.h). */
void
KsExpireCompactKeys(KsAggRun *run)
{
	bool		sparse;

	if (run->ckpt != NULL || run->def->window_size_us > 0 || run->kt->npublish > 0 ||
		run->kt->saving_epoch != 0)
		return;
	sparse = KsKeyTableSparse(run->kt);
	/* over the budget as allocated: free blocks of entries go back (evict.h) */
	if (!sparse && !(run->kt->nfree >= KS_KEY_BLOCK_ENTRIES && KsEvictOverAllocated(run)))
		return;
	KsRunTimeoutPause(true);
	KsKeyTableCompact(run->kt);
	/* the states of the keys that went are free chunks the allocator keeps */
	if (sparse)
		KsCompactStates(run);
	KsRunTimeoutResume(run);
}

/* Milliseconds between the starts of two sweeps of a TTL (see expire.h). */
int64
KsExpireIntervalMs(KsAggRun *run)
{
	/* event time (windows): sweep soon after the watermark moved, not otherwise */
	if (run->def->window_size_us > 0)
		return KS_EXPIRE_MIN_INTERVAL_US / 1000;
	return Min(Max(run->def->ttl_us / 10, KS_EXPIRE_MIN_INTERVAL_US),
			   KS_EXPIRE_MAX_INTERVAL_US) / 1000;
}

/* Expire what the TTL removes, a bounded part per call (see expire.h). */
void
KsExpireStep(KsAggRun *run, TimestampTz now, long *timeout)
{
	KsKeyTable *kt = run->kt;
	KsKeyTable *wt = run->windows;
	int64		interval;
	uint64		end;
	uint64		wend = 0;
	uint64		i;
	/* keys or windows a TTL since lengthened or removed had expired, not swept yet (run.h) */
	bool		floor_pass = run->def->ttl_floor != run->floor_swept;

	if (run->def->ttl_us <= 0 && !floor_pass && !run->expire_running)
	{
		run->expire_cursor = run->expire_wcursor = 0;
		run->expire_running = false;
		run->expire_next = 0;
		/* keys the memory budget evicted may have left internal states behind */
		KsExpireCompact(run);
		return;
	}
	interval = KsExpireIntervalMs(run) * 1000;
	/* a changed TTL (alter_aggregation) has its own schedule: sweep now */
	if (run->expire_ttl_us != run->def->ttl_us || floor_pass)
	{
		run->expire_ttl_us = run->def->ttl_us;
		run->expire_next = 0;
	}
	if (!run->expire_running)
	{
		if (run->def->window_size_us > 0 && run->watermark == run->expire_wm &&
			run->expire_next != 0)
			return;
		if (now < run->expire_next)
		{
			*timeout = Min(*timeout, (long) ((run->expire_next - now + 999) / 1000));
			return;
		}
		run->expire_next = now + interval;
		run->expire_running = true;
		run->expire_floor = run->def->ttl_floor;
		run->expire_cursor = run->expire_wcursor = 0;
		run->expire_wm = run->watermark;
		/*
		 * And through the cold keys, from the first (KsColdSweep, cold.h);
		 * one running goes through them again once done: the rows it read
		 * were checked against an older time or watermark.
		 */
		if (run->cold_rows > 0 && run->cold_sweeping)
			run->cold_sweep_again = true;
		else if (run->cold_rows > 0)
		{
			run->cold_sweeping = true;
			run->cold_sweep_hash = (int64) PG_INT32_MIN - 1;
			run->cold_sweep_place = 0;
			run->cold_sweep_id = 0;
		}
	}

	end = Min(run->expire_cursor + KS_EXPIRE_SCAN, kt->nallocated);
	if (wt != NULL)
		wend = Min(run->expire_wcursor + KS_EXPIRE_SCAN, wt->nallocated);
	if (run->def->window_size_us > 0)
	{
		/* event time: panes, and a sliding window's windows, in step */
		if (run->watermark != DT_NOBEGIN)
		{
			KsWindowExpireRange(run, kt, run->expire_cursor, end);
			if (wt != NULL)
				KsWindowExpireRange(run, wt, run->expire_wcursor, wend);
		}
		run->expire_wcursor = wend;
	}
	else
	{
		for (i = run->expire_cursor; i < end; i++)
		{
			KsKeyEntry *e = KsKeyTableEntry(kt, i);

			if ((e->flags & (KS_KEY_FREE | KS_KEY_EXPIRED)) == 0 &&
				KsExpiredAt(run, e->touched, now))
				KsExpireKey(run, e);
		}
	}
	if (end >= kt->nallocated && (wt == NULL || wend >= wt->nallocated))
	{
		/* the sweep is over; the next starts one interval after this one did */
		run->expire_running = false;
		run->floor_swept = run->expire_floor;
		run->expire_cursor = 0;
		*timeout = Min(*timeout, (long) Max((run->expire_next - now + 999) / 1000, 0));
	}
	else
	{
		run->expire_cursor = end;
		*timeout = 0;
	}

	KsExpireCompact(run);
}
