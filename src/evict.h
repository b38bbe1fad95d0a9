/*-------------------------------------------------------------------------
 *
 * evict.h
 *	  The memory budget of an aggregation's state, and the choice of the
 *	  keys to evict to the cold tier (cold.h).
 *
 * An aggregation's budget is its memory_limit, or its share of
 * keyedstate.max_state_memory (divided equally among the aggregations of
 * the cluster that have a slot), whichever is smaller.  Aggregations with
 * time windows have none: their merges see only the panes in memory (a
 * TTL sweeps cold keys too, cold.h).  It bounds the
 * worker's memory for keys and transition states together with the shared
 * memory of the published rows, as keyedstate.status reports them
 * (memory_bytes against memory_limit).
 *
 * Memory in use counts what the key table's and the states' contexts have
 * allocated less what is free in them (freed memory stays with the
 * allocator for new keys), the key entries in use and the shared rows.
 * Keys go only at checkpoints, so the budget is enforced as a number of
 * keys kept in memory: once the memory in use exceeds the budget, every
 * checkpoint capture sets the target to the keys in memory scaled to
 * KS_EVICT_LOW_WATER of the budget by the memory in use now, and evicts the
 * keys above it.  A capture is requested as soon as the keys exceed the
 * target by 5% (before there is a target: when the memory in use exceeds
 * the budget), unless the last capture found no victim (every key changed
 * since the clock passed it).  Steps do not stop reading for it: stopping
 * at twice the target made consumption crawl under churn (012's sync timed
 * out).  The evicting
 * checkpoint is written in slices like any other, so memory overshoots by
 * what is read while it is written.  The target starts
 * afresh when the budget changes.
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

/* The fraction of the budget the keys are brought back to. */
#define KS_EVICT_LOW_WATER		0.85

/* Bytes of memory the aggregation's state uses now, worker and shared. */
extern int64 KsEvictMemoryUsed(KsAggRun *run);

/* The aggregation's budget now, in bytes (0: none); sets run->memory_budget. */
extern int64 KsEvictBudget(KsAggRun *run);

/* Whether the state exceeds its budget and keys should be evicted now. */
extern bool KsEvictDue(KsAggRun *run);

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
