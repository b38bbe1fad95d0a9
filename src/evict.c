/*-------------------------------------------------------------------------
 *
 * evict.c
 *	  The memory budget and the eviction clock.  See evict.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cold.h"
#include "evict.h"
#include "settings.h"
#include "source.h"

/* Bytes of a context and its children in use: allocated, less what is free in them. */
static int64
KsContextInUse(MemoryContext cxt)
{
	MemoryContextCounters counters;
	MemoryContext child;
	int64		bytes;

	memset(&counters, 0, sizeof(counters));
	cxt->methods->stats(cxt, NULL, NULL, &counters, false);
	bytes = (int64) (counters.totalspace - counters.freespace);
	for (child = cxt->firstchild; child != NULL; child = child->nextchild)
		bytes += KsContextInUse(child);
	return bytes;
}

/* Memory of the state now (see evict.h). */
int64
KsEvictMemoryUsed(KsAggRun *run)
{
	return KsContextInUse(run->loadcxt) + KsKeyTableMappedInUse(run->kt) + run->slot->shared_bytes;
}

/* An upper bound of KsEvictMemoryUsed, cheap to compute: what status reports. */
static int64
KsEvictMemoryBound(KsAggRun *run)
{
	return KsRunMemoryBytes(run) + run->slot->shared_bytes;
}

/* Whether the memory allocated exceeds the budget (see evict.h). */
bool
KsEvictOverAllocated(KsAggRun *run)
{
	return run->memory_budget > 0 && KsEvictMemoryBound(run) > run->memory_budget;
}

/* An aggregation holding memory that max_state_memory bounds */
typedef struct KsSharer
{
	Oid			owner;
	Oid			dboid;
	int32		aggid;
	int64		used;			/* its memory, worker and shared */
} KsSharer;

/* Order sharers by owner, then aggregation. */
static int
KsSharerCmp(const void *a, const void *b)
{
	const KsSharer *x = a;
	const KsSharer *y = b;

	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	if (x->dboid != y->dboid)
		return x->dboid < y->dboid ? -1 : 1;
	return x->aggid < y->aggid ? -1 : x->aggid > y->aggid ? 1 : 0;
}

/*
 * The share of keyedstate.max_state_memory of run's aggregation (all its
 * parts): an owner's share, split among the owner's aggregations.  Every
 * owner of aggregations holding memory (every state but failed) has an
 * equal share at least; what the owners using less than theirs leave goes
 * evenly to the others (run's owner always among them), in steps of a
 * 64th of the setting, so that budgets do not move with every key.  So
 * the owners add up to the setting, and no role shrinks another owner's
 * share by more than the memory she uses: split among the slots, as it
 * first was, any role diluted every other owner's budget with aggregations
 * of her own, one paused with parallelism 16 over an empty table counting
 * 16 times (security review 21, F1); split evenly among the owners, a
 * role with CREATEROLE, owning empty aggregations through roles of her
 * own, divided everyone's share by as many, and failed another owner's
 * sliding window (review security 26, F1).  *owners, *aggs: the owners,
 * and the aggregations of run's owner.
 */
static int64
KsEvictShare(KsAggRun *run, int *owners, int *aggs)
{
	KsSharer   *all = palloc(sizeof(KsSharer) * ks_max_aggregations);
	int64		total = (int64) ks_max_state_memory * 1024;
	int64		equal;
	int64		unused = 0;
	int64		owner_used = 0;
	int			over = 1;		/* run's owner */
	int			n = 0;
	int			i;

	for (i = 0; i < ks_max_aggregations; i++)
		if (KsSlotSharer(i, &all[n].owner, &all[n].dboid, &all[n].aggid, &all[n].used))
			n++;
	qsort(all, n, sizeof(KsSharer), KsSharerCmp);
	*owners = *aggs = 0;
	for (i = 0; i < n; i++)
	{
		bool		new_owner = i == 0 || all[i].owner != all[i - 1].owner;

		if (new_owner)
			(*owners)++;
		if (all[i].owner == run->owner &&
			(new_owner || KsSharerCmp(&all[i], &all[i - 1]) != 0))
			(*aggs)++;
	}
	/* (its own slot may not show its owner yet: a view's new owner, a reload away) */
	*owners = Max(*owners, 1);
	*aggs = Max(*aggs, 1);
	equal = total / *owners;
	/* each other owner's memory against the equal share: what she leaves, or one more over it */
	for (i = 0; i < n; i++)
	{
		owner_used += all[i].used;
		if (i + 1 < n && all[i + 1].owner == all[i].owner)
			continue;
		if (all[i].owner != run->owner)
		{
			if (owner_used < equal)
				unused += equal - owner_used;
			else
				over++;
		}
		owner_used = 0;
	}
	pfree(all);
	return (equal + (unused / over) / (total / 64 + 1) * (total / 64 + 1)) / *aggs;
}

/* The budget now (see evict.h). */
int64
KsEvictBudget(KsAggRun *run)
{
	KsAggDef   *def = run->def;
	int64		budget = def->memory_limit;
	int			owners = 0;
	int			aggs = 0;
	int64		share = ks_max_state_memory > 0 ? KsEvictShare(run, &owners, &aggs) : 0;

	/* a part's share of its aggregation's: in proportion to its key groups */
	if (def->is_part && budget > 0)
		budget = Max(budget * (def->last_group - def->first_group + 1) / def->max_parallelism, 1);
	if (def->is_part && share > 0)
		share = Max(share * (def->last_group - def->first_group + 1) / def->max_parallelism, 1);

	/*
	 * Sliding windows merge panes that must all be in memory: no budget
	 * (evict.h), but past twice their share of max_state_memory they fail
	 * (KsEvictRefuseGrowth).  Twice the most they were given since the run
	 * started, under this max_state_memory: what other owners leave unused
	 * goes to them too, and a window grown into it failed as soon as the
	 * others came to use their own shares, on their timing, not its own
	 * (re-review today 30, F7).
	 */
	if (def->window_size_us > def->window_slide_us)
	{
		budget = 0;
		if (share > 0 && run->window_share_of == ks_max_state_memory)
			share = Max(share, run->window_share);
		run->window_share = share;
		run->window_share_of = ks_max_state_memory;
	}
	else if (share > 0)
		budget = budget > 0 ? Min(budget, share) : share;
	/*
	 * A share too small to hold a key index: said once per aggregation and
	 * max_state_memory, whatever its loads, and again only if it shrinks by
	 * a quarter (aggregations of other owners moving it by a 64th said it
	 * every few seconds: review dba 65, F3)
	 */
	if (share >= (int64) KS_MIN_MEMORY_LIMIT_KB * 1024 * 5 / 4 ||
		run->share_warned_of != ks_max_state_memory)
		run->share_warned = 0;
	if (share > 0 && budget == share && budget < (int64) KS_MIN_MEMORY_LIMIT_KB * 1024 &&
		(run->share_warned == 0 || share < run->share_warned / 4 * 3))
	{
		run->share_warned = share;
		run->share_warned_of = ks_max_state_memory;
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keyedstate.max_state_memory gives aggregation %s only %lld kB", run->name,
						(long long) (share / 1024)),
				 errdetail("It is shared by the aggregations of %d owners, and its owner's share by %d aggregations; below %d kB one keeps only a few keys in memory and evicts the others at every checkpoint.",
						   owners, aggs, KS_MIN_MEMORY_LIMIT_KB),
				 errhint("Raise keyedstate.max_state_memory.")));
	}
	/* a new budget has its own target */
	if (budget != run->memory_budget)
		run->evict_target = 0;
	run->memory_budget = budget;
	return budget;
}

/*
 * Memory in use past the budget that eviction cannot bring down, keys
 * whose states are on average larger than the whole budget (a string_agg
 * of large values): the aggregation fails, naming its budget, once it is
 * more than twice the budget and KS_EVICT_SLACK beyond it, rather than
 * growing without bound in the worker and in the shared memory of every
 * owner.  Many small keys (a drain of new keys, which are not evictable
 * until written) never count: they go at the next checkpoints.
 */
#define KS_EVICT_SLACK		((int64) 16 * 1024 * 1024)

static void
KsEvictRefuseGrowth(KsAggRun *run, int64 used)
{
	/* a sliding window, which cannot evict: past twice its share, whatever its keys */
	bool		window = run->window_share > 0;
	int64		limit = window ? run->window_share : run->memory_budget;

	/*
	 * (or a key whose cold row is larger than the budget: it comes back for
	 * each row of it, alone, and kept memory under that slack while every
	 * row read it back and wrote it again, quadratic in its size, however
	 * many small keys beside it: review today 34, F1)
	 */
	if (limit <= 0 || used <= 2 * limit ||
		((used <= limit + KS_EVICT_SLACK ||
		  (!window && (run->kt->nentries == 0 || used / (int64) run->kt->nentries <= limit))) &&
		 (window || run->cold_row_max <= limit)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("aggregation %s uses " INT64_FORMAT " kB of memory, more than twice %s (" INT64_FORMAT " kB)",
					run->name, used / 1024,
					window ? "its share of keyedstate.max_state_memory" : "its budget", limit / 1024),
			 window ? errdetail("A sliding window keeps all its panes in memory: it cannot evict keys.") :
			 errdetail("Its keys in memory have states larger than the budget, and evicting keys cannot bring it down."),
			 window ? errhint("Raise keyedstate.max_state_memory, or shorten the window, then call keyedstate.resume().") :
			 errhint("Raise its memory_limit (or keyedstate.max_state_memory), then call keyedstate.resume().")));
}

/*
 * Note whether the capture found anything to evict, and with how many
 * keys; and whether keys it skipped only because it writes them (changed
 * since they came back, or not published yet) could go once it commits.
 */
static void
KsEvictSetStalled(KsAggRun *run, bool stalled, bool writing, int64 used)
{
	run->evict_stalled = stalled;
	run->stall_writing = stalled && writing;
	run->stalled_keys = run->kt->nentries;
	run->stalled_used = used;
}

/*
 * Whether eviction is stalled: the last capture found nothing to evict.
 * Keys added since can be evicted (a victim is written by the capture that
 * chooses it): the stall ends once the keys in memory grew by a twentieth,
 * and at least 64, over what that capture found, or the memory in use by a
 * quarter of the budget (KsEvictHold).  Before, it lasted until
 * the next regular checkpoint, and a drain of new keys after the fixed
 * memory alone had filled a small budget read on without a hold up to 218
 * times the budget (re-review today 13).
 */
static bool
KsEvictStalled(KsAggRun *run)
{
	if (run->evict_stalled &&
		run->kt->nentries > run->stalled_keys + Max(run->stalled_keys / 20, 64))
		run->evict_stalled = false;
	/* (a capture writing keys that can go: until its checkpoint commits, KsEvictDone, or is given up) */
	if (run->stall_writing && run->ckpt == NULL)
		run->evict_stalled = false;
	if (!run->evict_stalled)
		run->stall_writing = false;
	return run->evict_stalled;
}

/* Whether keys should be evicted now (see evict.h). */
bool
KsEvictDue(KsAggRun *run)
{
	int64		used;
	TimestampTz now = GetCurrentTimestamp();

	/* the share of max_state_memory changes with the settings and the aggregations */
	if (TimestampDifferenceExceeds(run->budget_checked, now, KS_EVICT_BUDGET_CHECK_MS))
	{
		run->budget_checked = now;
		(void) KsEvictBudget(run);
	}
	if (run->memory_budget <= 0)
	{
		/* a sliding window's share, measured at most every 100 ms as below */
		if (run->window_share > 0 && TimestampDifferenceExceeds(run->used_checked, now, 100))
		{
			run->used_checked = now;
			KsEvictRefuseGrowth(run, KsEvictMemoryUsed(run));
		}
		return false;
	}
	if (KsEvictStalled(run))
	{
		/* nothing to evict: measured at most every 100 ms, as below */
		if (TimestampDifferenceExceeds(run->used_checked, now, 100))
		{
			run->used_checked = now;
			KsEvictRefuseGrowth(run, KsEvictMemoryUsed(run));
		}
		return false;
	}
	/* reading waits for memory: whatever the number of keys (evict.h) */
	if (run->evict_holding)
		return true;
	if (run->evict_target > 0)
		return (int64) run->kt->nentries > run->evict_target + run->evict_target / 20;
	if (KsEvictMemoryBound(run) <= run->memory_budget)
		return false;
	/* measuring what is in use walks the free lists: at most every 100 ms */
	if (TimestampDifferenceExceeds(run->used_checked, now, 100))
	{
		run->used_checked = now;
		used = KsEvictMemoryUsed(run);
		run->used_over = used > run->memory_budget;
	}
	return run->used_over;
}

/* Whether reading should wait for an evicting checkpoint (see evict.h). */
bool
KsEvictHold(KsAggRun *run)
{
	TimestampTz now;
	Oid			cold;
	Oid			coldindex;

	/*
	 * Evicted keys come back from keyedstate_internal.cold: while another
	 * session holds it (a VACUUM FULL, a CLUSTER), reading waits, the step
	 * skipped, status naming the holder (review robustness3, F3: the step
	 * waited for the lock, status saying 'running').  The locks stay for
	 * the step's reads.
	 */
	if (run->cold_keys > 0 && !KsColdLockNow(&cold, &coldindex))
	{
		run->ckpt_blocked = true;
		run->ckpt_holder = KsLockHolderPid(cold, AccessShareLock);
		run->evict_holding = true;
		return true;
	}
	if (run->memory_budget <= 0 || run->consumed < run->seed_until ||
		KsEvictMemoryBound(run) <= run->memory_budget)
	{
		run->evict_holding = false;
		return false;
	}
	now = GetCurrentTimestamp();
	/* (at once when keys loaded back since may have filled a quarter of the budget) */
	if (TimestampDifferenceExceeds(run->hold_checked, now, KS_EVICT_HOLD_CHECK_MS) ||
		run->reload_bytes - run->reload_measured > run->memory_budget / 4)
	{
		int64		used = KsEvictMemoryUsed(run);

		run->reload_measured = run->reload_bytes;
		run->used_last = used;
		run->used_last_at = now;
		run->hold_checked = now;
		/*
		 * Keys larger than the budget fail here, within the step: reading
		 * does not wait when eviction cannot help, and one step could grow
		 * a key by hundreds of megabytes (exactness review 14).
		 */
		KsEvictRefuseGrowth(run, used);
		run->evict_holding = used > run->memory_budget;
		/*
		 * a stall ends too once memory grew by a quarter of the budget (keys
		 * of large states: 64 more keys were hundreds of times the budget,
		 * exactness review 24, F1)
		 */
		run->stalled_used = Min(run->stalled_used, used);
		if (run->evict_stalled && used > run->stalled_used + run->memory_budget / 4)
			run->evict_stalled = run->stall_writing = false;
	}
	/*
	 * Not while the last capture found nothing to evict.  But while the
	 * checkpoint cannot lock its catalog row (its owner's uncommitted
	 * alter_aggregation(), say) it does hold: the budget, and the DBA's
	 * keyedstate.max_state_memory, must not give way to an open
	 * transaction (review robustness2, F7: 206 MB under a 1 MB budget).
	 */
	if (KsEvictStalled(run) && !run->stall_writing)
		run->evict_holding = false;
	return run->evict_holding;
}

/* Choose the victims of a capture (see evict.h). */
KsKeyEntry **
KsEvictChoose(KsAggRun *run, uint32 epoch, int64 *n)
{
	KsKeyTable *kt = run->kt;
	int64		budget = KsEvictBudget(run);
	int64		used;
	int64		live = (int64) kt->nentries;
	int64		want;
	uint64		visited = 0;
	int64		writing = 0;
	KsKeyEntry **victims;

	*n = 0;
	if (budget <= 0)
		return NULL;
	/*
	 * what the hold measured while reading, if since the last eviction and
	 * within its pause (a capture follows it: measuring again cost 9% of a
	 * drain under a small budget)
	 */
	if (run->used_last_at != 0 &&
		!TimestampDifferenceExceeds(run->used_last_at, GetCurrentTimestamp(),
									KS_EVICT_HOLD_CHECK_MS))
		used = run->used_last;
	else
		used = KsEvictMemoryUsed(run);
	KsEvictRefuseGrowth(run, used);
	/* no key at all and still over: the fixed memory is; reading must not wait */
	if (kt->nallocated == 0)
	{
		KsEvictSetStalled(run, used > budget, false, used);
		return NULL;
	}
	/* once over the budget, a target follows the memory a key takes now */
	if (used > budget || run->evict_target > 0)
		run->evict_target = Max((int64) ((double) live * KS_EVICT_LOW_WATER * budget / Max(used, 1)), 1);
	KsEvictSetStalled(run, false, false, used);
	if (run->evict_target == 0)
		return NULL;
	want = Min(live - run->evict_target, (int64) KS_COLD_MAX_PER_CHECKPOINT);
	/* at the target and still over: more evictions would not help (fixed memory) */
	if (want <= 0)
	{
		KsEvictSetStalled(run, used > budget, false, used);
		return NULL;
	}

	victims = MemoryContextAllocHuge(run->loadcxt, sizeof(KsKeyEntry *) * want);
	/* two turns of the clock at most: the first may only clear marks */
	while (*n < want && visited < 2 * kt->nallocated)
	{
		KsKeyEntry *e;

		if (run->evict_hand >= kt->nallocated)
			run->evict_hand = 0;
		e = KsKeyTableEntry(kt, run->evict_hand++);
		visited++;
		if ((visited & 4095) == 0)
			KsCheckInterrupts();
		if (e->flags & (KS_KEY_FREE | KS_KEY_EXPIRED | KS_KEY_EVICT))
			continue;
		/* (published by the step before the next capture) */
		if (e->flags & KS_KEY_DIRTY_PUBLISH)
		{
			writing++;
			continue;
		}
		if (!DsaPointerIsValid(e->shared))
			continue;
		/* a stale cold row goes with the next checkpoint that writes the key */
		if (e->cold_id != 0 && !(e->flags & KS_KEY_COLD_CURRENT))
		{
			writing++;
			continue;
		}
		if (e->flags & KS_KEY_REFERENCED)
		{
			e->flags &= ~KS_KEY_REFERENCED;
			continue;
		}
		e->flags |= KS_KEY_EVICT;
		/* part of the capture: written before it changes (checkpoint.h) */
		if (e->ckpt_epoch == 0)
			e->ckpt_epoch = epoch;
		victims[(*n)++] = e;
	}
	/* every key was changed lately or is not written yet: the regular checkpoints go on */
	KsEvictSetStalled(run, *n == 0, writing > 0, used);
	if (*n == 0)
	{
		pfree(victims);
		return NULL;
	}
	return victims;
}

/* Evict the victims of a committed capture (see evict.h). */
void
KsEvictDone(KsAggRun *run, KsKeyEntry **victims, int64 n, uint32 epoch)
{
	int64		i;

	run->used_last_at = 0;
	/*
	 * keys the capture skipped because it was writing them can go now: the
	 * next capture chooses among them, reading held meanwhile (exactness
	 * review 24, F1: keys that came back and changed were never victims of
	 * the capture that writes them, the stall let reading go on, and every
	 * key of an aggregation of large states came into memory, 79MB under 1MB)
	 */
	if (run->stall_writing)
		run->evict_stalled = run->stall_writing = false;

	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e = victims[i];

		if (e->ckpt_epoch == epoch)
			e->ckpt_epoch = 0;
		/* a victim that changed since the capture stays (evict.h) */
		if (!(e->flags & KS_KEY_EVICT))
			continue;
		e->flags &= ~KS_KEY_EVICT;
		if (!KsAggReleaseStates(run->rt, e))
			run->garbage_states++;	/* compacted later (expire.h) */
		KsKeySetFlags(run->kt, e, e->flags | KS_KEY_EXPIRED | KS_KEY_EVICTED);
		run->kt->nevicted++;
		/* the publish removes its row, then the entry goes (keytable.h) */
		KsKeyMarkPublish(run->kt, e);
		run->evictions++;
		run->cold_keys++;
		KsColdFilterAdd(run, e->hash);
	}
	if (victims != NULL)
		pfree(victims);
}
