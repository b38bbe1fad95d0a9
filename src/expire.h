/*-------------------------------------------------------------------------
 *
 * expire.h
 *	  State TTL: keys not changed for longer than the aggregation's ttl go.
 *
 * This is Flink's StateTtlConfig in processing time.  Each key remembers
 * when a row last changed it (KsKeyEntry.touched: the time its batch was
 * applied; a row replayed after a crash counts as applied when it is
 * replayed).  Steps sweep the key table incrementally, a bounded number of
 * entries per step, starting a new sweep every tenth of the TTL (at least
 * every 0.1 s, at most every minute apart); a key found older than the TTL
 * is expired:
 *	1. its transition states are freed at once, and it is flagged
 *	   KS_KEY_EXPIRED and dirty for publish and checkpoint;
 *	2. the step's publish removes its row and its entry from the store, so
 *	   it leaves the view, lookups included, with the step's offset;
 *	3. the next checkpoint writes it as a tombstone (checkpoint.h), so no
 *	   recovery brings an older version back; after that the entry returns
 *	   to the key table's free list.
 * A row for the key before step 3 revives the entry with fresh states.
 * So an expired key returning starts from a fresh state, as in Flink, and
 * a key disappears between ttl and ttl plus one sweep interval (plus a
 * step) after its last change.  Recovery keeps each key's time: keys whose
 * TTL ran out while no worker ran are never loaded, and are written as
 * tombstones by the first checkpoint.
 *
 * Internal transition states (transtype internal) cannot be freed one by
 * one: they may own several allocations.  Their memory is reclaimed by a
 * compaction that moves every live key's states into a new context (by
 * serializing and deserializing them, as a checkpoint and a recovery
 * would) once more keys expired with such states than are live.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_EXPIRE_H
#define KS_EXPIRE_H

#include "run.h"

/* KsExpiredAt, whether a key outlived the TTL, is in run.h (cold.c asks too). */

/*
 * Expire a key in memory (step 1) if it outlived the TTL at `now`, when a
 * row reaches it before a sweep did (the apply buffer's expire_key).
 */
extern void KsExpireIfOutlived(void *arg, KsKeyEntry *e, TimestampTz now);

/*
 * Expire what the TTL removes, a bounded part of the key table per call
 * (inside a step, as the owner); lowers *timeout to when the next sweep
 * is due.
 */
extern void KsExpireStep(KsAggRun *run, TimestampTz now, long *timeout);

/*
 * Milliseconds between the starts of two sweeps: a tenth of the TTL, at
 * least 0.1 s and at most a minute (0.1 s for windows, whose TTL runs in
 * event time).
 */
extern int64 KsExpireIntervalMs(KsAggRun *run);

/*
 * Internal states of expired or evicted keys (run->garbage_states) cannot
 * be freed one by one: once they outnumber the live keys, move the live
 * keys' states into a new context (called by KsExpireStep).
 */
extern void KsExpireCompact(KsAggRun *run);

/*
 * Give back the memory of keys that went (evicted, expired) once they are
 * as many as the keys left: the key table's entries, blocks and index
 * (KsKeyTableCompact) and the states' memory.  Over the memory budget as
 * allocated (evict.h), a block's worth of free entries is enough to give
 * the blocks of entries back (not the states').  Only between steps' work:
 * no checkpoint being written, nothing left to publish; not for windows.
 */
extern void KsExpireCompactKeys(KsAggRun *run);

#endif							/* KS_EXPIRE_H */
