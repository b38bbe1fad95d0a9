/*-------------------------------------------------------------------------
 *
 * evict.h
 *	  The memory budget of an aggregation's state, and the choice of the
 *	  keys to evict to the cold tier (cold.h).
 *
 * An aggregation's budget is its memory_limit, or its share of
 * keyedstate.max_state_memory (divided equally among the aggregations of
 * the cluster that have a slot, each part of one running in parallel
 * counting as one), whichever is smaller.  A part of an aggregation
 * running in parallel has the share of memory_limit of its key groups
 * (memory_limit * its groups / max_parallelism), evicts its own keys to
 * keyedstate_internal.cold under its own id, and holds and evicts on its own
 * (what parts do, hooks.h), so the parts together keep within
 * memory_limit.  Aggregations with
 * sliding windows have none: their merges see only the panes in memory.
 * A tumbling window's panes are keys like any (a TTL sweeps cold keys too,
 * in event time for windows, cold.h).  It bounds the
 * worker's memory for keys and transition states together with the shared
 * memory of the published rows, as keyedstate.status reports them
 * (memory_bytes against memory_limit).
 *
 * Memory in use counts what the aggregation's contexts have allocated
 * (keys, transition states, the cold filter, batches) less what is free in
 * them (freed memory stays with the allocator for new keys), the blocks of
 * key entries less their free entries, and the shared rows.  Status
 * reports the memory allocated, free entries and chunks included; when
 * that exceeds the budget and a block's worth of entries is free, the key
 * table is compacted and gives whole blocks back (expire.h).
 * Keys go only at checkpoints, so the budget is enforced as a number of
 * keys kept in memory: once the memory in use exceeds the budget, every
 * checkpoint capture sets the target to the keys in memory scaled to
 * KS_EVICT_LOW_WATER of the budget by the memory in use now, and evicts the
 * keys above it.  A capture is requested as soon as the keys exceed the
 * target by 5% (before there is a target: when the memory in use exceeds
 * the budget), unless the last capture found no victim (every key changed
 * since the clock passed it).  The target starts afresh when the budget
 * changes.
 *
 * Holding the budget.  Keys come in as fast as rows are read, but go only
 * once a checkpoint has written them, so a drain of new keys would
 * overshoot the budget by whatever it reads while the evicting checkpoint
 * is written.  So a step stops reading (KsEvictHold, asked between rows)
 * while the memory in use exceeds the budget, and the evicting checkpoint
 * is then written in long slices (KS_CKPT_HOLD_SLICE_MS, every sealed chunk
 * at once) until it commits; its victims leave at the next publish, and
 * reading goes on.  Consumption is then as fast as keys can be written
 * (a drain of new keys under a small budget writes every key it evicts),
 * and memory stays within the budget plus what a few rows add: keys that
 * come back from the cold tier come a quarter of the budget per chunk of
 * rows at most (apply.c; chunks sized by the cold rows' mean size, the
 * step's end looked at between them), and the hold measures again as soon
 * as a quarter came back since it last did.  Reading is not held when no capture can
 * help: the last one found no victim, and skipped no key it was writing
 * (changed since it came back, or unpublished: those it held until its
 * checkpoint committed, KsEvictDone, and the next capture chooses among
 * them).  It is held while the
 * checkpoint cannot lock its definition row (a backend holds it: its
 * owner's uncommitted alter_aggregation(), pause() or resume()), and
 * status says whom it waits for (KS_WAIT_CATALOG): reading on, memory grew
 * past any budget for as long as the transaction stayed open (review
 * robustness2, F7).  The exact measure walks
 * the contexts' free lists, so it is taken at most every
 * KS_EVICT_HOLD_CHECK_MS; the cheap bound (memory allocated) answers
 * first while it is under the budget.
 *
 * Victims are chosen by a clock (second chance): a key a row changed since
 * the hand last passed it (KS_KEY_REFERENCED) loses its mark and stays;
 * one without is a victim.  Keys the last publish has not published yet,
 * and keys whose cold row is stale (changed since they came back) stay
 * until a checkpoint has written them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_EVICT_H
#define KS_EVICT_H

#include "run.h"

/* How often an idle aggregation looks at its budget again (settings, sharers). */
#define KS_EVICT_BUDGET_CHECK_MS	1000

/*
 * How often a step over the budget measures the memory in use again.  Not
 * less often where measuring takes long (many blocks of states): reading
 * goes on between two measures, and a drain of new keys under 1MB grew to
 * 22MB in 100 ms, failing the aggregation (more than twice its budget).
 */
#define KS_EVICT_HOLD_CHECK_MS		5

/* The fraction of the budget the keys are brought back to. */
#define KS_EVICT_LOW_WATER		0.85

/* Bytes of memory the aggregation's state uses now, worker and shared. */
extern int64 KsEvictMemoryUsed(KsAggRun *run);

/*
 * Whether the memory allocated (what status reports) exceeds the budget,
 * free entries and chunks included: then free blocks of key entries are
 * given back (expire.h).
 */
extern bool KsEvictOverAllocated(KsAggRun *run);

/* The aggregation's budget now, in bytes (0: none); sets run->memory_budget. */
extern int64 KsEvictBudget(KsAggRun *run);

/* Whether the state exceeds its budget and keys should be evicted now. */
extern bool KsEvictDue(KsAggRun *run);

/*
 * Whether the step should stop reading rows now: the memory in use is over
 * the budget and an evicting checkpoint can bring it back (see above).
 * Cheap enough to be asked every few rows; sets run->evict_holding.
 */
extern bool KsEvictHold(KsAggRun *run);

/*
 * At a checkpoint capture of epoch `epoch` (its list taken): flag the
 * victims (KS_KEY_EVICT) and put them in the capture; returns them
 * (palloc'd in the run's memory), *n their number.
 */
extern KsKeyEntry **KsEvictChoose(KsAggRun *run, uint32 epoch, int64 *n);

/*
 * After the capture's checkpoint committed: evict the victims that did not
 * change since (their states go, their rows leave the store at the next
 * publish), and free the list.
 */
extern void KsEvictDone(KsAggRun *run, KsKeyEntry **victims, int64 n, uint32 epoch);

#endif							/* KS_EVICT_H */
