/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  Writing changed keys with the consumed offset.
 *	  See checkpoint.h for the guarantees and the format of a chunk.
 *
 * Checkpoints are incremental.  A checkpoint serializes the keys changed
 * since the previous one, in key-group order, into chunks of about
 * KS_CHUNK_BYTES, and inserts one keyedstate_internal.state row per chunk: a few
 * large out-of-line values instead of one upserted row per key, so its
 * cost is that of serializing the keys and writing their bytes once.
 * When the deltas written since the last full checkpoint outgrow it, the
 * next checkpoint is full: it writes every key, and the older rows, which
 * nothing reads once it has committed, are deleted a few a step after it
 * (KsCheckpointDeleteObsolete).  Recovery (recovery.c) reads the rows
 * newest first, down to the latest full checkpoint, and keeps the first
 * version of each key it meets, so it reads at most about twice the live
 * state.  A chunk is about 4 MB, most of the pause of the step inserting it.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "checkpoint.h"
#include "cold.h"
#include "evict.h"
#include "serialize.h"
#include "store.h"

/* How far ahead of the serialization entries are prefetched. */
#define KS_CKPT_PREFETCH		16

/* Bytes after which a chunk is written out: under a power of two, not to double its buffer. */
#define KS_CHUNK_BYTES			(4 * 1024 * 1024 - 64 * 1024)

/* Keys serialized between checks for interrupts (and of the slice's time). */
#define KS_CKPT_INTERRUPT_EVERY	256

/* How long a step writes a checkpoint: a slice of keys, and at most one chunk. */
#define KS_CKPT_SLICE_MS		10

/* ... while reading waits for it to evict (evict.h): every chunk it seals. */
#define KS_CKPT_HOLD_SLICE_MS	200

/* A chunk sealed (header and CRC filled in) but not inserted yet. */
typedef struct KsSealedChunk
{
	KsChunkRow	row;
	bytea	   *data;
	KsColdBatch cold;			/* cold rows of the keys it marks evicted */
} KsSealedChunk;

/*
 * A checkpoint being written: its capture, and the chunk being built.  It
 * lives in the run's memory from its capture (KsCheckpointStart) until it
 * is committed (KsCheckpointDone) or the run is unloaded.
 */
struct KsChunkWriter
{
	KsAggRun   *run;
	int64		checkpoint_id;
	bool		full;
	bool		final;			/* a clean stop's last checkpoint */
	int64		offset;			/* the consumed offset captured */
	bool		rebuilding;		/* whether that offset is still a rebuild's */
	TimestampTz watermark;		/* windows: the watermark at that offset */
	uint64		request;		/* the checkpoint request it satisfies */
	bool		awaited;		/* ... and whether a backend waits for it */
	TimestampTz started;
	double		pause_ms;		/* the longest step spent on it (KsCheckpointPaused) */

	/* the capture: keys of the list of `epoch`, or every key when full */
	uint32		epoch;
	KsKeyEntry **list;
	int64		nlist;
	uint64		pos;			/* next list index, or entry number when full */
	uint64		end;
	int64		keys;			/* keys written so far */

	int32		chunk;			/* number of the chunk being built */
	int32		chain_chunks;	/* committed: the chain's chunk rows (recovery.c) */
	StringInfo	buf;			/* the run's chunk buffer: a bytea being built */
	int32		nkeys;
	int			first_group;
	int			last_group;
	int64		bytes;			/* bytes written so far */
	MemoryContext tmp;			/* serialization garbage, reset per chunk */
	dsa_area   *dsa;			/* where the published rows are */
	List	   *sealed;			/* KsSealedChunk: sealed, to insert */

	/* the memory budget (evict.h, cold.h) */
	KsKeyEntry **victims;		/* keys to evict once this commits */
	int64		nexpired_cold;	/* cold rows the TTL removed with this commit (cold.h) */
	int64		nstale_gone;	/* stale cold rows deleted with it (a row deleted by hand is not) */
	int64		nvictims;
	KsColdBatch cold;			/* cold rows of the chunk being built */
	KsColdBatch rewrites;		/* cold rows rewritten in place, with the commit */
	uint64		ncold;			/* cold rows numbered so far */
	KsColdRowId *stale;			/* cold rows of keys written whole: deleted */
	KsKeyEntry **stale_keys;
	int64		nstale;
	int64		maxstale;
};

/* The CRC-32C of a chunk, over what checkpoint.h says. */
pg_crc32c
KsChunkCrc(const KsChunkRow *row, const char *data, Size len)
{
	char		cols[sizeof(int32) + sizeof(int64) + sizeof(int32) + 1 +
					 2 * sizeof(int16) + sizeof(int32)];
	char	   *p = cols;
	uint8		full = row->full ? 1 : 0;
	pg_crc32c	crc;

	memcpy(p, &row->aggregation_id, sizeof(int32));
	p += sizeof(int32);
	memcpy(p, &row->checkpoint_id, sizeof(int64));
	p += sizeof(int64);
	memcpy(p, &row->chunk, sizeof(int32));
	p += sizeof(int32);
	memcpy(p, &full, 1);
	p += 1;
	memcpy(p, &row->first_group, sizeof(int16));
	p += sizeof(int16);
	memcpy(p, &row->last_group, sizeof(int16));
	p += sizeof(int16);
	memcpy(p, &row->nkeys, sizeof(int32));

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, cols, sizeof(cols));
	COMP_CRC32C(crc, data + KS_CHUNK_FLAGS_AT, len - KS_CHUNK_FLAGS_AT);
	FIN_CRC32C(crc);
	return crc;
}

/* An empty StringInfo allocated in a given context. */
static StringInfo
KsMakeStringInfoIn(MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	StringInfo	buf = makeStringInfo();

	MemoryContextSwitchTo(oldcxt);
	return buf;
}

/* Prepare the insert of one chunk, once per load of a run. */
static void
KsPrepareCheckpointPlan(KsAggRun *run)
{
	Oid			argtypes[8] = {INT4OID, INT8OID, INT4OID, BOOLOID, INT2OID, INT2OID,
	INT4OID, BYTEAOID};

	if (run->ckpt_plan != NULL)
		return;
	run->ckpt_plan = SPI_prepare("INSERT INTO keyedstate_internal.state (aggregation_id, checkpoint_id, chunk, "
								 "is_full, first_key_group, last_key_group, nkeys, data) "
								 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
								 8, argtypes);
	if (run->ckpt_plan == NULL)
		elog(ERROR, "could not prepare keyedstate checkpoint: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(run->ckpt_plan);
}

/*
 * Start the next chunk: room for the bytea header, then the chunk's header
 * (format, CRC and flags, the last two filled in by KsChunkSeal).  The
 * buffer is built as the bytea itself, so writing it copies nothing.
 */
static void
KsChunkReset(struct KsChunkWriter *w)
{
	static const char header[VARHDRSZ + KS_CHUNK_HEADER] = {0};

	resetStringInfo(w->buf);
	appendBinaryStringInfo(w->buf, header, VARHDRSZ + KS_CHUNK_HEADER);
	w->buf->data[VARHDRSZ] = (char) KS_CHUNK_FORMAT;
	w->nkeys = 0;
}

/*
 * Seal the chunk built so far, if it holds any key or is the `last` of its
 * checkpoint (no key follows): its header and CRC are filled in and it
 * joins the chunks waiting to be inserted.  The last chunk marks the end
 * and binds the offset and the chain (checkpoint.h); a full checkpoint's
 * marks where recovery's chain begins even without keys (every key cold
 * or expired: exactness review 40, F1).
 */
static void
KsChunkSeal(struct KsChunkWriter *w, bool last)
{
	KsSealedChunk *sc;
	char	   *chunk;
	pg_crc32c	crc;
	MemoryContext oldcxt;

	if (w->nkeys == 0 && !last)
		return;
	if (w->nkeys == 0)
		w->first_group = w->last_group = 0;
	oldcxt = MemoryContextSwitchTo(w->run->loadcxt);
	sc = palloc(sizeof(KsSealedChunk));
	sc->data = (bytea *) w->buf->data;
	sc->cold = w->cold;
	memset(&w->cold, 0, sizeof(KsColdBatch));
	SET_VARSIZE(sc->data, w->buf->len);
	chunk = VARDATA(sc->data);
	chunk[KS_CHUNK_FLAGS_AT] = last ? KS_CHUNK_LAST : 0;
	if (last)
	{
		int32		chain = (w->full ? 0 : w->run->ckpt_chain_chunks) + w->chunk + 1;

		memcpy(chunk + KS_CHUNK_OFFSET_AT, &w->offset, sizeof(int64));
		memcpy(chunk + KS_CHUNK_CHAIN_AT, &chain, sizeof(int32));
	}
	sc->row.aggregation_id = w->run->def->id;
	sc->row.checkpoint_id = w->checkpoint_id;
	sc->row.chunk = w->chunk;
	sc->row.full = w->full;
	sc->row.first_group = (int16) w->first_group;
	sc->row.last_group = (int16) w->last_group;
	sc->row.nkeys = w->nkeys;
	crc = KsChunkCrc(&sc->row, chunk, w->buf->len - VARHDRSZ);
	memcpy(chunk + KS_CHUNK_CRC_AT, &crc, sizeof(crc));
	w->sealed = lappend(w->sealed, sc);
	w->bytes += w->buf->len - VARHDRSZ;
	w->chunk++;

	/* the sealed chunk keeps the buffer's memory: start a new one, grown as needed */
	w->buf->data = palloc(1024);
	w->buf->maxlen = 1024;
	w->buf->len = 0;
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(w->tmp);
	KsChunkReset(w);
}

/* Insert up to `max` sealed chunks, oldest first (-1: all of them). */
static void
KsChunkInsert(struct KsChunkWriter *w, int max)
{
	while (w->sealed != NIL && max-- != 0)
	{
		KsSealedChunk *sc = linitial(w->sealed);
		Datum		args[8];
		int			ret;

		args[0] = Int32GetDatum(sc->row.aggregation_id);
		args[1] = Int64GetDatum(sc->row.checkpoint_id);
		args[2] = Int32GetDatum(sc->row.chunk);
		args[3] = BoolGetDatum(sc->row.full);
		args[4] = Int16GetDatum(sc->row.first_group);
		args[5] = Int16GetDatum(sc->row.last_group);
		args[6] = Int32GetDatum(sc->row.nkeys);
		args[7] = PointerGetDatum(sc->data);
		KsBecomeWorker();
		ret = KsStateExecute(w->run->ckpt_plan, NULL, 0, NULL, args);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
		/* the cold rows of the keys it marks evicted, in the same transaction */
		KsColdInsert(w->run, &sc->cold);
		KsBecomeOwner(w->run);
		w->sealed = list_delete_first(w->sealed);
		pfree(sc->data);
		pfree(sc);
	}
}

/* Remember a key's stale cold row, deleted when this checkpoint commits. */
static void
KsChunkStale(struct KsChunkWriter *w, KsKeyEntry *e)
{
	if (w->nstale >= w->maxstale)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(w->run->loadcxt);

		w->maxstale = Max(w->maxstale * 2, 64);
		if (w->stale == NULL)
		{
			w->stale = palloc_extended(sizeof(KsColdRowId) * w->maxstale, MCXT_ALLOC_HUGE);
			w->stale_keys = palloc_extended(sizeof(KsKeyEntry *) * w->maxstale, MCXT_ALLOC_HUGE);
		}
		else
		{
			w->stale = repalloc_huge(w->stale, sizeof(KsColdRowId) * w->maxstale);
			w->stale_keys = repalloc_huge(w->stale_keys, sizeof(KsKeyEntry *) * w->maxstale);
		}
		MemoryContextSwitchTo(oldcxt);
	}
	w->stale[w->nstale].hash = e->hash;
	w->stale[w->nstale].place = KsColdPlaceOf(w->run, e);
	w->stale[w->nstale].id = e->cold_id;
	w->stale[w->nstale].tid = e->cold_tid;
	w->stale_keys[w->nstale] = e;
	w->nstale++;
}

/*
 * Append one key of the capture to the chunk being built: its group,
 * flags, time, values, states and published row (a tombstone for an
 * expired key), as they are now.  A victim of the memory budget, or a key
 * whose cold row holds its state, is written as an evicted marker instead,
 * a victim's cold row with it (cold.h).  Serialize functions are user
 * code: as the owner.
 */
static void
KsChunkAddKey(struct KsChunkWriter *w, KsKeyEntry *e)
{
	KsAggRun   *run = w->run;
	int			group = KsKeyGroupOf(run->kt, run->def->max_parallelism, KsRunGroupSkip(run),
									 e->hash, e->keys, e->keynulls);
	uint16		g = (uint16) group;
	MemoryContext oldcxt;
	int			at;

	if (w->nkeys == 0)
		w->first_group = w->last_group = group;
	w->first_group = Min(w->first_group, group);
	w->last_group = Max(w->last_group, group);
	e->saved_epoch = w->epoch;
	w->keys++;
	w->nkeys++;

	/* came back and changed, while the budget evicts: its cold row rewritten (cold.h) */
	if (e->cold_id != 0 && run->evict_target > 0 &&
		!(e->flags & (KS_KEY_COLD_CURRENT | KS_KEY_RECOLDED | KS_KEY_EXPIRED)))
	{
		KsColdAdd(run, &w->rewrites, e, e->cold_id, &e->cold_tid, run->loadcxt, w->tmp);
		ItemPointerSetInvalid(&e->cold_tid);
		e->flags |= KS_KEY_COLD_CURRENT | KS_KEY_RECOLDED;
	}
	if (e->flags & (KS_KEY_EVICT | KS_KEY_COLD_CURRENT))
	{
		if (!(e->flags & KS_KEY_COLD_CURRENT))
		{
			uint64		id = KsColdId(w->checkpoint_id, ++w->ncold);

			KsColdAdd(run, &w->cold, e, id, NULL, run->loadcxt, w->tmp);
			e->cold_id = id;
			ItemPointerSetInvalid(&e->cold_tid);
			e->flags |= KS_KEY_COLD_CURRENT;
		}
		appendBinaryStringInfo(w->buf, (const char *) &g, sizeof(uint16));
		appendStringInfoChar(w->buf, KS_STORED_EVICTED);
		appendBinaryStringInfo(w->buf, (const char *) &e->touched, sizeof(TimestampTz));
		at = KsBeginBytes(w->buf);
		KsKeySerialize(run->kt, e, w->buf);
		KsEndBytes(w->buf, at);
		KsWriteUint32(w->buf, 0);
		KsWriteUint32(w->buf, 0);
		return;
	}
	/* written whole: a cold row it came back from is stale now */
	if (e->cold_id != 0)
		KsChunkStale(w, e);

	appendBinaryStringInfo(w->buf, (const char *) &g, sizeof(uint16));
	appendStringInfoChar(w->buf, (e->flags & KS_KEY_EXPIRED) ? KS_STORED_EXPIRED : 0);
	appendBinaryStringInfo(w->buf, (const char *) &e->touched, sizeof(TimestampTz));
	at = KsBeginBytes(w->buf);
	KsKeySerialize(run->kt, e, w->buf);
	KsEndBytes(w->buf, at);
	if (e->flags & KS_KEY_EXPIRED)
	{
		/* a tombstone: older versions of the key are gone */
		KsWriteUint32(w->buf, 0);
		KsWriteUint32(w->buf, 0);
		return;
	}
	at = KsBeginBytes(w->buf);
	/* serial functions allocate their results: keep them out of the buffer's context */
	oldcxt = MemoryContextSwitchTo(w->tmp);
	KsAggSerializeStates(run->rt, e->states, e->replay, w->buf);
	MemoryContextSwitchTo(oldcxt);
	KsEndBytes(w->buf, at);
	/* the key's published row: that of its states, which changed since only if written first */
	if (DsaPointerIsValid(e->shared_tuple))
	{
		MinimalTuple mt = KsStoreTupleAddress(w->dsa, e->shared_tuple);

		KsWriteBytes(w->buf, mt, mt->t_len);
	}
	else
		KsWriteUint32(w->buf, 0);
}

/* Capture a checkpoint (see checkpoint.h). */
void
KsCheckpointStart(KsAggRun *run, bool final)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(run->loadcxt);
	struct KsChunkWriter *w = palloc0(sizeof(struct KsChunkWriter));
	bool		pending;

	w->run = run;
	w->request = KsSlotCheckpointRequested(run->slot, &pending);
	w->awaited = pending;
	w->started = GetCurrentTimestamp();
	w->checkpoint_id = run->ckpt_last_id + 1;
	/* full when there is none yet, or when the deltas since it outgrew it */
	w->full = !run->ckpt_have_full || run->ckpt_delta_bytes >= run->ckpt_full_bytes;
	w->final = final;
	w->offset = run->consumed;
	w->rebuilding = run->consumed < run->rebuild_until;
	w->watermark = run->def->window_size_us > 0 ? run->watermark : DT_NOBEGIN;
	w->tmp = AllocSetContextCreate(run->loadcxt, "keyedstate checkpoint chunk",
								   ALLOCSET_DEFAULT_SIZES);
	if (run->ckpt_buf == NULL)
		run->ckpt_buf = KsMakeStringInfoIn(run->loadcxt);
	w->buf = run->ckpt_buf;
	w->dsa = KsGetDsa();
	KsChunkReset(w);

	w->epoch = KsKeyCapture(run->kt, &w->list, &w->nlist);
	w->end = w->full ? run->kt->nallocated : (uint64) w->nlist;
	/* the memory budget's victims join the capture (evict.h), after the list */
	w->victims = KsEvictChoose(run, w->epoch, &w->nvictims);
	if (!w->full)
		w->end += w->nvictims;
	run->kt->saving_epoch = w->epoch;
	run->kt->saving_full = w->full;
	run->ckpt = w;
	MemoryContextSwitchTo(oldcxt);
}

/* Write a key of the capture before it changes (see checkpoint.h). */
void
KsCheckpointSaveKey(void *arg, KsKeyEntry *e)
{
	KsAggRun   *run = (KsAggRun *) arg;

	KsChunkAddKey(run->ckpt, e);
	/* sealed as they fill; the slices insert them, one a step */
	if (run->ckpt->buf->len >= KS_CHUNK_BYTES)
		KsChunkSeal(run->ckpt, false);
}

/* Whether entry e is one the capture still has to write. */
static inline bool
KsCaptureNeeds(struct KsChunkWriter *w, KsKeyEntry *e)
{
	if (e->saved_epoch == w->epoch)
		return false;
	/* a full one writes no tombstones, but for expired keys whose cold row must go */
	if (w->full)
		return !(e->flags & KS_KEY_FREE) && (!(e->flags & KS_KEY_EXPIRED) || e->cold_id != 0);
	return e->ckpt_epoch == w->epoch;
}

/* Write more of the captured checkpoint (see checkpoint.h). */
KsCkptProgress
KsCheckpointContinue(KsAggRun *run, bool all)
{
	struct KsChunkWriter *w = run->ckpt;
	KsKeyTable *kt = run->kt;
	bool		hold = run->evict_holding && !all;
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													hold ? KS_CKPT_HOLD_SLICE_MS : KS_CKPT_SLICE_MS);
	int64		n = 0;
	bool		flushed = false;

	KsBecomeWorker();
	if (!KsLockDefinitionRow(run))
	{
		/* whom it waits for, for status and checkpoint() (evict.h) */
		run->ckpt_holder = KsDefinitionRowHolder(run);
		KsBecomeOwner(run);
		return KS_CKPT_SKIPPED;
	}
	/* the memory budget's hold waits for the tables and the row (evict.h) */
	run->ckpt_blocked = !all && !KsLockStateTables();
	if (run->ckpt_blocked)
	{
		/* whom it waits for, for status (review robustness3, F3: 'running', and no one named) */
		run->ckpt_holder = KsStateTablesHolder();
		KsBecomeOwner(run);
		return KS_CKPT_BLOCKED;
	}
	/* (its parsing locks the table: only once it is ours, or a run's first waited: CI, 008) */
	KsPrepareCheckpointPlan(run);
	KsBecomeOwner(run);
	/* a chunk that keys written before they changed filled, if any */
	if (!all)
		KsChunkInsert(w, hold ? -1 : 1);
	while (w->pos < w->end)
	{
		/* the list (or every key), then the victims not on it */
		KsKeyEntry *e = w->full ? KsKeyTableEntry(kt, w->pos) :
			w->pos < (uint64) w->nlist ? w->list[w->pos] : w->victims[w->pos - w->nlist];

		if (++n % KS_CKPT_INTERRUPT_EVERY == 0)
		{
			CHECK_FOR_INTERRUPTS();
			if (!all && ((flushed && !hold) || GetCurrentTimestamp() >= until))
				break;
		}
		/* the entries are met at random: fetch ahead */
		if (!w->full && w->pos + KS_CKPT_PREFETCH < (uint64) w->nlist)
			KsKeyTablePrefetchLines(kt, w->list[w->pos + KS_CKPT_PREFETCH]);
		w->pos++;
		if (!KsCaptureNeeds(w, e))
			continue;
		if (w->buf->len >= KS_CHUNK_BYTES)
		{
			KsChunkSeal(w, false);
			KsChunkInsert(w, all || hold ? -1 : 1);
			flushed = true;
		}
		KsChunkAddKey(w, e);
	}
	if (w->pos < w->end || (!all && list_length(w->sealed) > 1))
		return KS_CKPT_MORE;

	KsChunkSeal(w, true);
	KsChunkInsert(w, -1);
	KsBecomeWorker();
	/* cold rows of keys it wrote whole go with its commit; those it rewrites, in it (cold.h) */
	w->nstale_gone = KsColdDelete(run->def->id, w->stale, (int) w->nstale);
	KsColdInsert(run, &w->rewrites);
	/* and the cold rows the TTL's sweep found expired */
	w->nexpired_cold = KsColdDeleteExpired(run);
	/* the chunks recovery must find: this checkpoint's, and a delta's chain before it */
	w->chain_chunks = (w->full ? 0 : run->ckpt_chain_chunks) + w->chunk;
	KsCheckpointCommit(run, w->offset, w->watermark, w->checkpoint_id, w->full, w->final, w->rebuilding,
					   run->cold_rows + (int64) w->ncold - w->nstale_gone - w->nexpired_cold, w->chain_chunks);
	KsBecomeOwner(run);
	return KS_CKPT_WRITTEN;
}

/* Count a step's pause for w, from `from` (0: not timed) until `now`. */
static void
KsNotePause(struct KsChunkWriter *w, TimestampTz from, TimestampTz now)
{
	if (from != 0)
		w->pause_ms = Max(w->pause_ms, (now - from) / 1000.0);
}

/* A step's pause for the checkpoint being written (see checkpoint.h). */
void
KsCheckpointPaused(KsAggRun *run, TimestampTz from)
{
	if (run->ckpt != NULL)
		KsNotePause(run->ckpt, from, GetCurrentTimestamp());
}

/* After commit: the written keys are clean and the offset is committed. */
void
KsCheckpointDone(KsAggRun *run, TimestampTz paused_from)
{
	struct KsChunkWriter *w = run->ckpt;
	int64		i;

	/*
	 * The worker commits without waiting for its WAL to reach the disk
	 * (worker.c): a checkpoint lost in a crash is replaced by the one
	 * before and the rows after it, exactly.  One that a backend waits for
	 * (checkpoint(), a pause) or a clean stop's is flushed before it counts.
	 */
	if (w->awaited || w->final || run->def->paused)
		XLogFlush(XactLastCommitEnd);

	/*
	 * The stale cold rows are gone: an expired key kept in the store for
	 * its row leaves it at the next publish, then the table (before the
	 * capture's end could remove it from the table first).
	 */
	for (i = 0; i < w->nstale; i++)
	{
		KsKeyEntry *e = w->stale_keys[i];

		if (e->cold_id != w->stale[i].id)
			continue;
		e->cold_id = 0;
		e->flags &= ~KS_KEY_RECOLDED;
		ItemPointerSetInvalid(&e->cold_tid);
		if (e->flags & KS_KEY_EXPIRED)
			KsKeyMarkPublish(run->kt, e);
	}
	KsKeyCaptureDone(run->kt, w->list, w->nlist, w->epoch);
	run->kt->saving_epoch = 0;
	/* (in the run's memory, which lives as long as the run: every checkpoint's would stay) */
	if (w->stale != NULL)
	{
		pfree(w->stale);
		pfree(w->stale_keys);
	}
	run->cold_rows += (int64) w->ncold - w->nstale_gone - w->nexpired_cold;
	run->cold_keys -= w->nexpired_cold;
	run->keys_expired += w->nexpired_cold;
	KsEvictDone(run, w->victims, w->nvictims, w->epoch);
	KsColdFilterFit(run);
	run->checkpointed = w->offset;
	run->last_checkpoint = GetCurrentTimestamp();
	/* a streak of passing errors is over (run.c) */
	run->retry_at = 0;
	run->ckpt_last_id = w->checkpoint_id;
	if (w->full)
		run->ckpt_obsolete_rows += run->ckpt_chain_chunks;
	run->ckpt_chain_chunks = w->chain_chunks;
	if (w->full)
	{
		/* a rescale's retired parts may be unneeded now (ckptcommit.c) */
		run->retired_gc = run->def->is_part;
		run->ckpt_have_full = true;
		run->ckpt_obsolete_below = w->checkpoint_id;
		run->ckpt_full_bytes = w->bytes + (int64) w->chunk * KS_CHUNK_ROW_BYTES;
		run->ckpt_delta_bytes = 0;
	}
	else
		run->ckpt_delta_bytes += w->bytes + (int64) w->chunk * KS_CHUNK_ROW_BYTES;
	KsNotePause(w, paused_from, run->last_checkpoint);
	/* (a step that wrote it all: the microseconds before the capture are not its) */
	w->pause_ms = Min(w->pause_ms, (run->last_checkpoint - w->started) / 1000.0);
	KsSlotCheckpointed(run->slot, run->checkpointed, run->last_checkpoint,
					   (run->last_checkpoint - w->started) / 1000.0, w->pause_ms,
					   w->keys, w->bytes, w->request);
	MemoryContextDelete(w->tmp);
	list_free(w->sealed);
	pfree(w);
	run->ckpt = NULL;
}
