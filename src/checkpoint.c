/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  Writing changed keys with the consumed offset.
 *	  See checkpoint.h for the guarantees and the format of a chunk.
 *
 * Checkpoints are incremental.  A checkpoint serializes the keys changed
 * since the previous one, in key-group order, into chunks of about
 * KS_CHUNK_BYTES, and inserts one keyedstate.state row per chunk: a few
 * large out-of-line values instead of one upserted row per key, so its
 * cost is that of serializing the keys and writing their bytes once.
 * When the deltas written since the last full checkpoint outgrow it, the
 * next checkpoint is full: it writes every key and deletes the older rows
 * in the same transaction.  Recovery (recovery.c) reads the rows newest
 * first and keeps the first version of each key it meets, so it reads at
 * most about twice the live state.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "checkpoint.h"
#include "serialize.h"
#include "store.h"

/* How far ahead of the serialization entries are prefetched. */
#define KS_CKPT_PREFETCH		16

/*
 * Serialized bytes after which a chunk is written out: a little under a
 * power of two, so that the key that crosses it rarely doubles the buffer.
 */
#define KS_CHUNK_BYTES			(4 * 1024 * 1024 - 64 * 1024)

/* Keys serialized between checks for interrupts. */
#define KS_CKPT_INTERRUPT_EVERY	256

/* Building the chunks of one checkpoint. */
typedef struct KsChunkWriter
{
	KsAggRun   *run;
	int64		checkpoint_id;
	bool		full;
	int32		chunk;			/* number of the chunk being built */
	StringInfo	buf;			/* the run's chunk buffer: a bytea being built */
	int32		nkeys;
	int			first_group;
	int			last_group;
	int64		bytes;			/* bytes written so far */
	MemoryContext tmp;			/* serialization garbage, reset per chunk */
	dsa_area   *dsa;			/* where the published rows are */
} KsChunkWriter;

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
	run->ckpt_plan = SPI_prepare("INSERT INTO keyedstate.state (aggregation_id, checkpoint_id, chunk, "
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
 * (format, CRC and flags, the last two filled in by KsChunkFlush).  The
 * buffer is built as the bytea itself, so writing it copies nothing.
 */
static void
KsChunkReset(KsChunkWriter *w)
{
	static const char header[VARHDRSZ + KS_CHUNK_HEADER] = {0};

	resetStringInfo(w->buf);
	appendBinaryStringInfo(w->buf, header, VARHDRSZ + KS_CHUNK_HEADER);
	w->buf->data[VARHDRSZ] = (char) KS_STATE_FORMAT;
	w->nkeys = 0;
}

/*
 * Insert the chunk built so far, if it holds any key; `last` when no key
 * of this checkpoint follows.
 */
static void
KsChunkFlush(KsChunkWriter *w, bool last)
{
	Datum		args[8];
	bytea	   *data;
	char	   *chunk;
	KsChunkRow	row;
	pg_crc32c	crc;
	int			ret;

	if (w->nkeys == 0)
		return;
	data = (bytea *) w->buf->data;
	SET_VARSIZE(data, w->buf->len);
	chunk = VARDATA(data);
	chunk[KS_CHUNK_FLAGS_AT] = last ? KS_CHUNK_LAST : 0;
	row.aggregation_id = w->run->def->id;
	row.checkpoint_id = w->checkpoint_id;
	row.chunk = w->chunk;
	row.full = w->full;
	row.first_group = (int16) w->first_group;
	row.last_group = (int16) w->last_group;
	row.nkeys = w->nkeys;
	crc = KsChunkCrc(&row, chunk, w->buf->len - VARHDRSZ);
	memcpy(chunk + KS_CHUNK_CRC_AT, &crc, sizeof(crc));

	args[0] = Int32GetDatum(w->run->def->id);
	args[1] = Int64GetDatum(w->checkpoint_id);
	args[2] = Int32GetDatum(w->chunk);
	args[3] = BoolGetDatum(w->full);
	args[4] = Int16GetDatum((int16) w->first_group);
	args[5] = Int16GetDatum((int16) w->last_group);
	args[6] = Int32GetDatum(w->nkeys);
	args[7] = PointerGetDatum(data);
	KsBecomeWorker();
	ret = SPI_execute_plan(w->run->ckpt_plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	KsBecomeOwner(w->run);

	w->bytes += w->buf->len - VARHDRSZ;
	w->chunk++;
	MemoryContextReset(w->tmp);
	KsChunkReset(w);
}

/* Append one key, its states and its published row to the chunk, writing the chunk out when full. */
static void
KsChunkAddKey(KsChunkWriter *w, KsKeyEntry *e)
{
	KsAggRun   *run = w->run;
	int			group = KsKeyGroup(e->hash);
	uint16		g = (uint16) group;
	MemoryContext oldcxt;
	int			at;

	if (w->buf->len >= KS_CHUNK_BYTES)
		KsChunkFlush(w, false);
	if (w->nkeys == 0)
		w->first_group = group;
	w->last_group = group;

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
		w->nkeys++;
		return;
	}
	at = KsBeginBytes(w->buf);
	/* serial functions allocate their results: keep them out of the buffer's context */
	oldcxt = MemoryContextSwitchTo(w->tmp);
	KsAggSerializeStates(run->rt, e->states, e->replay, w->buf);
	MemoryContextSwitchTo(oldcxt);
	KsEndBytes(w->buf, at);
	/* the published row is that of the checkpointed states: publish precedes checkpoints */
	if (DsaPointerIsValid(e->shared_tuple))
	{
		MinimalTuple mt = KsStoreTupleAddress(w->dsa, e->shared_tuple);

		KsWriteBytes(w->buf, mt, mt->t_len);
	}
	else
		KsWriteUint32(w->buf, 0);
	w->nkeys++;
}

/*
 * The entries to write, in key-group order (a counting sort: groups are
 * few), so that each chunk covers a narrow range of key groups.  The
 * array is the run's, kept from one checkpoint to the next.
 */
static KsKeyEntry **
KsSortByKeyGroup(KsAggRun *run, bool full, int64 *n)
{
	KsKeyTable *kt = run->kt;
	int64		count = full ? (int64) kt->nentries : kt->nckpt;
	int64		scan = full ? (int64) kt->nallocated : kt->nckpt;
	int64		starts[KS_MAX_PARALLELISM + 1];
	KsKeyEntry **sorted;
	int64		i;
	int			g;

	if (count > run->ckpt_maxsorted)
	{
		int64		newmax = Max(count, run->ckpt_maxsorted * 2);

		if (run->ckpt_sorted != NULL)
			pfree(run->ckpt_sorted);
		run->ckpt_sorted = MemoryContextAllocHuge(run->loadcxt,
												  sizeof(KsKeyEntry *) * Max(newmax, 1));
		run->ckpt_maxsorted = newmax;
	}
	sorted = run->ckpt_sorted;

	/*
	 * A full checkpoint writes every key in use; an expired one is simply
	 * left out, as every older row goes.  A delta writes every changed key,
	 * an expired one as a tombstone.
	 */
	memset(starts, 0, sizeof(starts));
	count = 0;
	for (i = 0; i < scan; i++)
	{
		KsKeyEntry *e = full ? KsKeyTableEntry(kt, i) : kt->ckpt[i];

		if (full && (e->flags & (KS_KEY_FREE | KS_KEY_EXPIRED)))
			continue;
		starts[KsKeyGroup(e->hash) + 1]++;
		count++;
	}
	for (g = 0; g < KS_MAX_PARALLELISM; g++)
		starts[g + 1] += starts[g];
	for (i = 0; i < scan; i++)
	{
		KsKeyEntry *e = full ? KsKeyTableEntry(kt, i) : kt->ckpt[i];

		if (full && (e->flags & (KS_KEY_FREE | KS_KEY_EXPIRED)))
			continue;
		sorted[starts[KsKeyGroup(e->hash)]++] = e;
	}
	*n = count;
	return sorted;
}

/*
 * Write the changed keys (or all of them) and the consumed offset, and
 * whether it is the final checkpoint of a clean stop.  Runs inside the
 * caller's transaction, so everything commits together or not at all.
 */
bool
KsCheckpoint(KsAggRun *run, bool final)
{
	KsChunkWriter w;
	KsKeyEntry **sorted;
	MemoryContext cxt;
	MemoryContext oldcxt;
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, INT8OID, INT8OID};
	int64		n;
	int64		i;
	int			ret;

	{
		bool		pending;

		run->ckpt_request = KsSlotCheckpointRequested(run->slot, &pending);
	}
	run->ckpt_started = GetCurrentTimestamp();
	KsBecomeWorker();
	KsPrepareCheckpointPlan(run);

	/*
	 * The offset first: updating the definition's row locks it, so a
	 * concurrent drop_aggregation() either waits for this checkpoint and
	 * then deletes its rows too, or has deleted the row already, and then
	 * nothing of this checkpoint may stay behind.
	 */
	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum(run->consumed);
	args[2] = BoolGetDatum(run->consumed < run->rebuild_until);
	/*
	 * Never wait for the row: a backend pausing or dropping the aggregation
	 * in a transaction left open would otherwise stall the worker, and
	 * every other aggregation with it.  Skip this checkpoint instead.
	 */
	ret = SPI_execute_with_args("SELECT 1 FROM keyedstate.aggregation WHERE id = $1 "
								"FOR NO KEY UPDATE SKIP LOCKED",
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
	{
		KsBecomeOwner(run);
		return false;
	}
	{
		Datum		uargs[4] = {args[0], args[1], args[2], BoolGetDatum(final)};
		Oid			utypes[4] = {INT4OID, INT8OID, BOOLOID, BOOLOID};

		ret = SPI_execute_with_args("UPDATE keyedstate.aggregation "
									"SET checkpointed_offset = $2, last_checkpoint = pg_catalog.now(), "
									"rebuilding = $3, clean_stop = $4 "
									"WHERE id = $1",
									4, utypes, uargs, NULL, false, 0);
	}
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregation %s no longer exists", run->name)));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate checkpoint",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	memset(&w, 0, sizeof(w));
	w.run = run;
	w.dsa = KsGetDsa();
	w.checkpoint_id = run->ckpt_last_id + 1;
	/* full when there is none yet, or when the deltas since it outgrew it */
	w.full = !run->ckpt_have_full || run->ckpt_delta_bytes >= run->ckpt_full_bytes;
	w.tmp = AllocSetContextCreate(cxt, "keyedstate checkpoint chunk",
								  ALLOCSET_DEFAULT_SIZES);
	if (run->ckpt_buf == NULL)
		run->ckpt_buf = KsMakeStringInfoIn(run->loadcxt);
	w.buf = run->ckpt_buf;
	KsChunkReset(&w);

	sorted = KsSortByKeyGroup(run, w.full, &n);
	/* serial functions are user code: run them as the owner */
	KsBecomeOwner(run);
	for (i = 0; i < n; i++)
	{
		if (i % KS_CKPT_INTERRUPT_EVERY == 0)
			CHECK_FOR_INTERRUPTS();
		/* in key-group order the entries are met at random: fetch ahead */
		if (i + KS_CKPT_PREFETCH < n)
			KsKeyTablePrefetchLines(run->kt, sorted[i + KS_CKPT_PREFETCH]);
		if (i + KS_CKPT_PREFETCH / 2 < n)
		{
			KsKeyEntry *ahead = sorted[i + KS_CKPT_PREFETCH / 2];

			KsAggPrefetchStates(run->rt, ahead->states);
			if (DsaPointerIsValid(ahead->shared_tuple))
				KS_PREFETCH(KsStoreTupleAddress(w.dsa, ahead->shared_tuple));
		}
		KsChunkAddKey(&w, sorted[i]);
	}
	KsChunkFlush(&w, true);
	KsBecomeWorker();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);

	args[2] = Int64GetDatum(w.checkpoint_id);
	if (w.full)
	{
		/* the full checkpoint makes every older row obsolete */
		ret = SPI_execute_with_args("DELETE FROM keyedstate.state "
									"WHERE aggregation_id = $1 AND checkpoint_id < $3",
									3, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	}
	run->ckpt_offset = run->consumed;
	run->ckpt_new_id = w.checkpoint_id;
	run->ckpt_new_full = w.full;
	run->ckpt_new_bytes = w.bytes;
	run->ckpt_new_keys = n;
	KsBecomeOwner(run);
	return true;
}

/* After commit: the written keys are clean and the offset is durable. */
void
KsCheckpointDone(KsAggRun *run)
{
	KsKeyClearCheckpoint(run->kt);
	run->checkpointed = run->ckpt_offset;
	run->last_checkpoint = GetCurrentTimestamp();
	run->ckpt_last_id = run->ckpt_new_id;
	if (run->ckpt_new_full)
	{
		run->ckpt_have_full = true;
		run->ckpt_full_bytes = run->ckpt_new_bytes;
		run->ckpt_delta_bytes = 0;
	}
	else
		run->ckpt_delta_bytes += run->ckpt_new_bytes;
	KsSlotCheckpointed(run->slot, run->checkpointed, run->last_checkpoint,
					   (run->last_checkpoint - run->ckpt_started) / 1000.0,
					   run->ckpt_new_keys, run->ckpt_new_bytes, run->ckpt_request);
}

/*
 * Delete every checkpoint of an aggregation that is dropped or rebuilt
 * (inside the catalog bracket: SPI connected, as the superuser).  This file
 * is the only writer of keyedstate.state.
 */
void
KsCheckpointForget(int32 aggid)
{
	Datum		arg = Int32GetDatum(aggid);
	Oid			argtype = INT4OID;

	if (SPI_execute_with_args("DELETE FROM keyedstate.state WHERE aggregation_id = $1",
							  1, &argtype, &arg, NULL, false, 0) < 0)
		elog(ERROR, "could not delete the checkpoints of aggregation %d", aggid);
}
