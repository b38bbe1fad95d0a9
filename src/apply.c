/*-------------------------------------------------------------------------
 *
 * apply.c
 *	  Applying input rows to the keyed state in prefetching chunks.
 *	  See apply.h for why rows are applied a chunk at a time.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "apply.h"

/*
 * Rows per chunk: enough that the prefetches of one pass have landed when
 * the next pass reaches them, few enough that a chunk's entries and states
 * stay in the L1/L2 caches between passes.
 */
#define KS_APPLY_CHUNK		256

/*
 * Rows slower than this to apply (a slow transition function) are applied
 * one at a time, so that the read loop sees the time each takes and ends
 * the step within its budget (source.c): a chunk of 256 rows of 20 ms
 * each would take 5 s, the whole step timeout.  The chunk starts at one
 * row and doubles after each chunk applied faster than this per row.
 */
#define KS_APPLY_SLOW_US	100

/* A buffer for rows of ncols columns (see apply.h). */
KsApplyBuffer *
KsApplyBufferCreate(KsKeyTable *kt, KsAggRuntime *rt, int ncols,
					int64 *cur_offset, MemoryContext parent)
{
	KsApplyBuffer *buf = MemoryContextAllocZero(parent, sizeof(KsApplyBuffer));

	buf->kt = kt;
	buf->rt = rt;
	buf->cur_offset = cur_offset;
	buf->ncols = ncols;
	buf->maxrows = KS_APPLY_CHUNK;
	buf->chunkrows = 1;
	buf->typlens = MemoryContextAllocZero(parent, sizeof(int16) * ncols);
	buf->typbyvals = MemoryContextAllocZero(parent, sizeof(bool) * ncols);
	buf->values = MemoryContextAllocZero(parent, sizeof(Datum) * ncols * buf->maxrows);
	buf->isnull = MemoryContextAllocZero(parent, sizeof(bool) * ncols * buf->maxrows);
	buf->hashes = MemoryContextAllocZero(parent, sizeof(uint32) * buf->maxrows);
	buf->places = MemoryContextAllocZero(parent, sizeof(uint32) * buf->maxrows);
	buf->entries = MemoryContextAllocZero(parent, sizeof(KsKeyEntry *) * buf->maxrows);
	buf->late = MemoryContextAllocZero(parent, sizeof(bool) * buf->maxrows);
	buf->wm_before = MemoryContextAllocZero(parent, sizeof(TimestampTz) * buf->maxrows);
	buf->wm_pending = DT_NOBEGIN;
	buf->misses = MemoryContextAllocZero(parent, sizeof(uint32) * buf->maxrows);
	buf->missplaces = MemoryContextAllocZero(parent, sizeof(uint32) * buf->maxrows);
	buf->timecol = -1;
	buf->watermark = DT_NOBEGIN;
	buf->win_floor = DT_NOBEGIN;
	buf->rowcxt = AllocSetContextCreate(parent, "keyedstate input chunk",
										ALLOCSET_DEFAULT_SIZES);
	return buf;
}

/* Learn the input columns' storage from the first row's descriptor. */
static void
KsApplyLearnTypes(KsApplyBuffer *buf, TupleDesc desc)
{
	int			i;

	if (desc->natts != buf->ncols)
		elog(ERROR, "keyedstate input row has %d columns, expected %d",
			 desc->natts, buf->ncols);
	buf->anybyref = false;
	for (i = 0; i < buf->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		buf->typlens[i] = att->attlen;
		buf->typbyvals[i] = att->attbyval;
		if (!att->attbyval)
			buf->anybyref = true;
	}
	buf->typesknown = true;
}

/*
 * Add one input row.  The slot's by-reference values live in the
 * executor's per-tuple memory or in a pinned buffer, both gone at the next
 * row, so they are copied into the chunk's own context.
 */
void
KsApplyBufferAdd(KsApplyBuffer *buf, TupleTableSlot *slot)
{
	int			ncols = buf->ncols;
	Datum	   *values;
	bool	   *isnull;

	if (!buf->typesknown)
		KsApplyLearnTypes(buf, slot->tts_tupleDescriptor);

	slot_getallattrs(slot);
	/* a part: another part's key, or a row its seed had consumed, is not ours */
	if (buf->ngroups > 0)
	{
		uint32		hash = KsKeyHash(buf->kt, slot->tts_values + 1, slot->tts_isnull + 1);
		int			group = KsKeyGroupOf(buf->kt, buf->ngroups, buf->group_skip, hash,
										 slot->tts_values + 1, slot->tts_isnull + 1);

		if (group < buf->first_group || group > buf->last_group ||
			(buf->group_starts != NULL &&
			 DatumGetInt64(slot->tts_values[0]) <= buf->group_starts[group]))
		{
			/* ... but its time moves the watermark all the same (apply.h); an infinite one fails its part */
			if (buf->timecol >= 0 && !slot->tts_isnull[buf->timecol] &&
				!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(slot->tts_values[buf->timecol])) &&
				DatumGetTimestampTz(slot->tts_values[buf->timecol]) > buf->wm_pending)
				buf->wm_pending = DatumGetTimestampTz(slot->tts_values[buf->timecol]);
			return;
		}
		buf->hashes[buf->nrows] = hash;
	}
	if (buf->timecol >= 0)
	{
		buf->wm_before[buf->nrows] = buf->wm_pending;
		buf->wm_pending = DT_NOBEGIN;
	}
	values = buf->values + buf->nrows * ncols;
	isnull = buf->isnull + buf->nrows * ncols;
	memcpy(values, slot->tts_values, sizeof(Datum) * ncols);
	memcpy(isnull, slot->tts_isnull, sizeof(bool) * ncols);
	if (buf->anybyref)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(buf->rowcxt);
		int			i;

		for (i = 0; i < ncols; i++)
		{
			if (!buf->typbyvals[i] && !isnull[i])
				values[i] = datumCopy(values[i], false, buf->typlens[i]);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	if (++buf->nrows >= buf->chunkrows || (buf->reload_rows > 0 && buf->nrows >= buf->reload_rows))
		KsApplyBufferFlush(buf);
}

/*
 * A windowed row's time against the watermark (see apply.h): late when its
 * last window, that of its pane, ends at or before watermark - ttl, or
 * before the reach of a TTL since lengthened (win_floor); otherwise it may
 * advance the watermark.  The time is never NULL (the
 * query requires it).
 */
static void
KsApplyWatermark(KsApplyBuffer *buf, int i)
{
	TimestampTz t = DatumGetTimestampTz(buf->values[i * buf->ncols + buf->timecol]);
	TimestampTz upto;

	/*
	 * An infinite time belongs to no pane of a sliding window: the query
	 * leaves such rows out (window.c), so only a query stored by a build
	 * before that comes here.  A tumbling window keeps it in an infinite
	 * window, as date_bin() does, which a TTL never reaches ('infinity') or
	 * has removed as soon as there is a watermark ('-infinity': late).  It
	 * never moves the watermark (exactness review 16, finding 1: one that
	 * did expired every window once a TTL came; and refused only with a
	 * TTL, a row consumed before one came failed the replay after it).
	 */
	if (TIMESTAMP_NOT_FINITE(t) && buf->win_size > buf->win_slide)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("time %s is infinite", t == DT_NOEND ? "infinity" : "-infinity"),
				 errdetail("A row of a sliding window must have a finite time.")));
	upto = KsWindowReach(buf->win_floor, buf->win_ttl, buf->watermark);
	if (upto != DT_NOBEGIN)
	{
		/* its pane's start, where the latest window holding the row starts */
		TimestampTz pane = t;

		if (!TIMESTAMP_NOT_FINITE(t))
			pane -= ((t - SetEpochTimestamp()) % buf->win_slide + buf->win_slide) % buf->win_slide;
		if (KsWindowEndsBy(pane, buf->win_size, upto))
		{
			buf->late[i] = true;
			buf->rows_late++;
			return;
		}
	}
	/* an infinite time (a tumbling window without a TTL keeps it) never moves it */
	if (!TIMESTAMP_NOT_FINITE(t) && (buf->watermark == DT_NOBEGIN || t > buf->watermark))
		buf->watermark = t;
}

/* Other parts' rows read after the last buffered one move the watermark (apply.h). */
static void
KsApplyPendingWatermark(KsApplyBuffer *buf)
{
	if (buf->wm_pending > buf->watermark)
		buf->watermark = buf->wm_pending;
	buf->wm_pending = DT_NOBEGIN;
}

/* Apply every buffered row, in order, in the passes described in apply.h. */
void
KsApplyBufferFlush(KsApplyBuffer *buf)
{
	KsKeyTable *kt = buf->kt;
	KsAggRuntime *rt = buf->rt;
	int			ncols = buf->ncols;
	int			n = buf->nrows;
	int64		reloaded = 0;
	TimestampTz started;
	int			i;

	if (n == 0)
	{
		KsApplyPendingWatermark(buf);
		return;
	}
	started = GetCurrentTimestamp();

	/* pass 1: hash the keys (columns 1 .. nkeys), prefetch their index slots */
	for (i = 0; i < n; i++)
	{
		*buf->cur_offset = DatumGetInt64(buf->values[i * ncols]);
		buf->late[i] = false;
		if (buf->timecol >= 0)
		{
			/* other parts' rows read before this one (apply.h) */
			if (buf->wm_before[i] > buf->watermark)
				buf->watermark = buf->wm_before[i];
			KsApplyWatermark(buf, i);
		}
		if (buf->ngroups == 0)
			buf->hashes[i] = KsKeyHash(kt, buf->values + i * ncols + 1,
									   buf->isnull + i * ncols + 1);
		buf->places[i] = KsKeyPlace(kt, buf->values + i * ncols + 1,
									buf->isnull + i * ncols + 1, buf->hashes[i]);
		KsKeyTablePrefetchSlot(kt, buf->places[i]);
	}

	/* pass 2: prefetch the entry each key probably has */
	for (i = 0; i < n; i++)
		if (!buf->late[i])
			KsKeyTablePrefetchEntry(kt, buf->places[i]);

	/* keys that may be cold, and are not in memory, come back first */
	if (buf->cold_load != NULL)
	{
		int			nmiss = 0;

		for (i = 0; i < n; i++)
		{
			KsKeyEntry *e;

			if (buf->late[i] || !buf->cold_maybe(buf->cold_arg, buf->hashes[i]))
				continue;
			e = KsKeyTableFindPlaced(kt, buf->values + i * ncols + 1, buf->isnull + i * ncols + 1,
									 buf->places[i]);
			if (e == NULL || (e->flags & KS_KEY_EVICTED))
			{
				buf->missplaces[nmiss] = buf->places[i];
				buf->misses[nmiss++] = buf->hashes[i];
			}
		}
		if (nmiss > 0)
		{
			TimestampTz loading = GetCurrentTimestamp();

			reloaded = buf->cold_load(buf->cold_arg, buf->misses, buf->missplaces, nmiss);
			/*
			 * (keyedstate's own reads, once per chunk, bounded apart: not
			 * what sizes the chunks, or keys slow to read back, keys of one
			 * hash, came back one row at a time for good, each read
			 * reading them all: review exactness 23, F1)
			 */
			started += GetCurrentTimestamp() - loading;
		}
	}

	/* pass 3: find or create the entries, prefetch by-reference states */
	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e;
		bool		found;

		*buf->cur_offset = DatumGetInt64(buf->values[i * ncols]);
		buf->entries[i] = NULL;
		if (buf->late[i])
			continue;
		e = KsKeyTableLookupPlaced(kt, buf->values + i * ncols + 1,
								   buf->isnull + i * ncols + 1, buf->hashes[i], buf->places[i], &found);
		/* a key a checkpoint being written still needs: write it first */
		if (found && KsKeyPendingSave(kt, e))
			buf->save_key(buf->save_arg, e);
		/* an evicted key was loaded back above: never start it afresh */
		if (found && (e->flags & KS_KEY_EVICTED))
			elog(ERROR, "keyedstate found no cold row for an evicted key");
		/*
		 * past the TTL though no sweep met it yet: expired now, as a
		 * sweep, a reload from keyedstate_internal.cold or a recovery would have
		 * (exactness review 16, finding 2: it took the row into its old
		 * state, for as long as a pause or a lock held the sweep back)
		 */
		if (found && buf->expire_key != NULL && !(e->flags & KS_KEY_EXPIRED))
			buf->expire_key(buf->save_arg, e, buf->now);
		if (!found || (e->flags & KS_KEY_EXPIRED))
		{
			/*
			 * A new key, or one expired (expire.h) and back: fresh states,
			 * and the spelling of its first row since, as the GROUP BY
			 * over the rows since shows (finding 3: 4.00 where the only
			 * row since said 4.0000).
			 */
			if (found)
				KsKeyTableRespell(kt, e, buf->values + i * ncols + 1, buf->isnull + i * ncols + 1);
			KsKeySetFlags(kt, e, e->flags & ~KS_KEY_EXPIRED);
			KsAggInitStates(rt, e->states);
			/* and no time yet: a window's rows may be older than 2000 (pass 4) */
			e->touched = DT_NOBEGIN;
		}
		else
			KsAggPrefetchStates(rt, e->states);
		buf->entries[i] = e;
	}

	/* pass 4: advance the states in input order */
	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e = buf->entries[i];
		Datum	   *values = buf->values + i * ncols;
		bool	   *isnull = buf->isnull + i * ncols;

		if (e == NULL)
			continue;			/* a late row */
		*buf->cur_offset = DatumGetInt64(values[0]);
		KsAggAdvance(rt, e->states, &e->replay, values, isnull);
		if (buf->timecol >= 0)
			e->touched = Max(e->touched, DatumGetTimestampTz(values[buf->timecol]));
		else
			e->touched = buf->now;
		KsKeyMarkDirty(kt, e);
	}

	buf->nrows = 0;
	KsApplyPendingWatermark(buf);
	if (buf->anybyref)
		MemoryContextReset(buf->rowcxt);

	/*
	 * Slow rows one at a time, fast ones in chunks twice as long each time;
	 * and keys coming back larger than the cap per chunk, in fewer rows, so
	 * that a budget's hold acts between them (exactness review 24, F1: a
	 * chunk of 256 rows loaded back up to 256 keys of tens of kB at once,
	 * 79MB under 1MB).
	 */
	if (GetCurrentTimestamp() - started > (int64) KS_APPLY_SLOW_US * n)
		buf->chunkrows = 1;
	else if (buf->reload_cap > 0 && reloaded > buf->reload_cap)
		buf->chunkrows = (int) Max((int64) n * buf->reload_cap / reloaded, 1);
	else if (n == buf->chunkrows && buf->chunkrows < buf->maxrows &&
			 (buf->reload_cap == 0 || reloaded * 2 <= buf->reload_cap))
		buf->chunkrows = Min(buf->chunkrows * 2, buf->maxrows);	/* (not a power of two now) */
}
