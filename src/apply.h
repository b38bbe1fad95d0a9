/*-------------------------------------------------------------------------
 *
 * apply.h
 *	  Applying input rows to the keyed state, in chunks, with prefetching.
 *
 * Per input row the worker hashes the key, finds the key's entry and calls
 * each aggregate's transition function.  With many keys the entries do not
 * fit in the CPU caches, and a row-at-a-time loop spends most of its time
 * waiting for memory: the index slot, then the entry, then a by-reference
 * transition state, each a cache miss that depends on the one before.
 *
 * So rows are collected into a chunk (by-reference values copied out of
 * the executor's per-tuple memory) and applied in passes over the chunk:
 *	1. hash every key and prefetch its index slot;
 *	2. prefetch the entry whose slot holds the same hash;
 *	3. find or create each row's entry (now in cache) and prefetch its
 *	   by-reference transition states; before that, the keys of the chunk
 *	   that are not in memory but may be cold (evicted by the memory
 *	   budget, cold.h) are loaded back, all in one index scan;
 *	4. advance the states, row by row, in input order.
 * The misses of a whole chunk overlap instead of following one another.
 * Passes 1 and 2 are only hints: pass 3 does the real lookup, so a key
 * created by an earlier row of the same chunk is found, and the result is
 * exactly that of applying the rows one by one in offset order.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_APPLY_H
#define KS_APPLY_H

#include "aggcall.h"
#include "keytable.h"

#include "datatype/timestamp.h"
#include "executor/tuptable.h"

typedef struct KsApplyBuffer
{
	KsKeyTable *kt;
	KsAggRuntime *rt;
	int64	   *cur_offset;		/* where to say which row is applied */
	TimestampTz now;			/* when the rows are applied (state TTL) */

	/*
	 * Time windows (window.h): the input column of the row's time (or -1);
	 * a key's time is then the newest time of its rows.  With a TTL, a row
	 * whose every window ends at or before watermark - ttl is late: it is
	 * dropped and counted, and the watermark (the newest time applied)
	 * advances as the rows are applied, in offset order.
	 */
	void		(*save_key) (void *arg, KsKeyEntry *entry);	/* write it before it changes */
	void	   *save_arg;		/* (and expire_key's) */
	/* a key in memory past the TTL no sweep met yet: expire it, if it is (NULL: no TTL) */
	void		(*expire_key) (void *arg, KsKeyEntry *entry, TimestampTz now);

	/* the cold tier: whether a hash may be a cold key's, and loading keys back */
	bool		(*cold_maybe) (void *arg, uint32 hash);
	/* ... returning the bytes of the cold rows it read */
	int64		(*cold_load) (void *arg, const uint32 *hashes, const uint32 *places, int n);
	void	   *cold_arg;
	int64		reload_cap;		/* bytes a chunk may load back (0: any), chunks sized to it, */
	int			reload_rows;	/* ... rows a chunk has at most if every row's key comes back (0: any) */
	uint32	   *misses;			/* per buffered row at most: hashes ... */
	uint32	   *missplaces;		/* ... and the keys' places (KsKeyPlace) */

	int			timecol;
	int64		win_size;
	int64		win_slide;
	int64		win_ttl;		/* 0: no TTL, nothing is late but ... */
	TimestampTz win_floor;		/* ... rows of windows ending at or before this (window.h) */
	TimestampTz watermark;
	int64		rows_late;
	bool	   *late;			/* per buffered row */

	/*
	 * A part of an aggregation keeps the keys of its key groups only
	 * (hash modulo ngroups), and a part a rescale seeded only each group's
	 * rows after group_starts[group] (seed.c); ngroups 0: every row.
	 */
	int			ngroups;
	int			first_group;
	int			last_group;
	const int64 *group_starts;
	int			group_skip;		/* key columns the group leaves out (a pane) */

	/*
	 * A windowed part's watermark is the aggregation's: the rows of other
	 * parts (and those a seed had consumed) move it too, in offset order.
	 * wm_before[i] is the newest time of such rows read before buffered
	 * row i, wm_pending of those read since the last buffered row.
	 */
	TimestampTz *wm_before;
	TimestampTz wm_pending;

	int			ncols;			/* input columns: offset, keys, arguments */
	int16	   *typlens;		/* per column, set from the first row */
	bool	   *typbyvals;
	bool		anybyref;		/* some column needs copying */
	bool		typesknown;

	int			nrows;
	int			maxrows;
	int			chunkrows;		/* rows applied together now, 1 .. maxrows */
	Datum	   *values;			/* maxrows x ncols */
	bool	   *isnull;
	uint32	   *hashes;
	uint32	   *places;			/* where each key goes in the key table (KsKeyPlace) */
	KsKeyEntry **entries;
	MemoryContext rowcxt;		/* copies of by-reference values; reset per chunk */
} KsApplyBuffer;

/*
 * A buffer applying rows of `ncols` columns to a key table and runtime;
 * *cur_offset is set to the offset of the row being applied, for error
 * reports.
 */
extern KsApplyBuffer *KsApplyBufferCreate(KsKeyTable *kt, KsAggRuntime *rt, int ncols,
										  int64 *cur_offset, MemoryContext parent);

/* Add one input row (column 0 is its offset); applies a full chunk. */
extern void KsApplyBufferAdd(KsApplyBuffer *buf, TupleTableSlot *slot);

/* Apply every row added so far. */
extern void KsApplyBufferFlush(KsApplyBuffer *buf);

/*
 * The end at or before which a window is past a TTL of ttl_us (0: none),
 * given the watermark and the floor of a TTL since lengthened, or
 * DT_NOBEGIN: late rows here, expired windows in window.h.
 */
static inline TimestampTz
KsWindowReach(TimestampTz floor, int64 ttl_us, TimestampTz watermark)
{
	if (ttl_us > 0 && watermark != DT_NOBEGIN)
		return Max(floor, watermark - ttl_us);
	return floor;
}

/*
 * Whether a window of `size` starting at `start` ends at or before `upto`
 * (not DT_NOBEGIN).  The window of an infinite time (a tumbling window
 * keeps them) ends never, or of -infinity at once: start +
 * size would wrap around.
 */
static inline bool
KsWindowEndsBy(TimestampTz start, int64 size, TimestampTz upto)
{
	if (start == DT_NOEND)
		return false;
	if (start == DT_NOBEGIN)
		return true;
	return start + size <= upto;
}

#endif							/* KS_APPLY_H */
