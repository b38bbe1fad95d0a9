/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  Writing changed keys with the consumed offset, and recovery.
 *	  See checkpoint.h for the guarantees.
 *
 * Checkpoints are incremental.  A checkpoint serializes the keys changed
 * since the previous one, in key-group order, into chunks of about
 * KS_CHUNK_BYTES, and inserts one keyedstate.state row per chunk: a few
 * large out-of-line values instead of one upserted row per key, so its
 * cost is that of serializing the keys and writing their bytes once.
 * When the deltas written since the last full checkpoint outgrow it, the
 * next checkpoint is full: it writes every key and deletes the older rows
 * in the same transaction.  Recovery reads the rows newest first and keeps
 * the first version of each key it meets, so it reads at most about twice
 * the live state.
 *
 * Layout of a chunk's data:
 *	1 byte			KS_STATE_FORMAT
 *	then per key:
 *	  2 bytes		key group (KsKeyGroup of the key's hash)
 *	  4 + n bytes	length and serialized key values (KsKeySerialize)
 *	  4 + n bytes	length and serialized states (KsAggSerializeStates)
 *	  4 + n bytes	length and the key's published view row (a MinimalTuple),
 *					or 0 when HAVING hides the key
 *
 * Storing the published row costs a few dozen bytes per key (before
 * compression) and saves recovery from finalizing and projecting every
 * key again: the rows go straight into a new shared store.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
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
 * Start the next chunk: room for the bytea header, then the format byte.
 * The buffer is built as the bytea itself, so writing it copies nothing.
 */
static void
KsChunkReset(KsChunkWriter *w)
{
	static const char header[VARHDRSZ] = {0};

	resetStringInfo(w->buf);
	appendBinaryStringInfo(w->buf, header, VARHDRSZ);
	appendStringInfoChar(w->buf, (char) KS_STATE_FORMAT);
	w->nkeys = 0;
}

/* Insert the chunk built so far, if it holds any key. */
static void
KsChunkFlush(KsChunkWriter *w)
{
	Datum		args[8];
	bytea	   *data;
	int			ret;

	if (w->nkeys == 0)
		return;
	data = (bytea *) w->buf->data;
	SET_VARSIZE(data, w->buf->len);

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
		KsChunkFlush(w);
	if (w->nkeys == 0)
		w->first_group = group;
	w->last_group = group;

	appendBinaryStringInfo(w->buf, (const char *) &g, sizeof(uint16));
	at = KsBeginBytes(w->buf);
	KsKeySerialize(run->kt, e, w->buf);
	KsEndBytes(w->buf, at);
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

	memset(starts, 0, sizeof(starts));
	for (i = 0; i < count; i++)
	{
		KsKeyEntry *e = full ? KsKeyTableEntry(kt, i) : kt->ckpt[i];

		starts[KsKeyGroup(e->hash) + 1]++;
	}
	for (g = 0; g < KS_MAX_PARALLELISM; g++)
		starts[g + 1] += starts[g];
	for (i = 0; i < count; i++)
	{
		KsKeyEntry *e = full ? KsKeyTableEntry(kt, i) : kt->ckpt[i];

		sorted[starts[KsKeyGroup(e->hash)]++] = e;
	}
	*n = count;
	return sorted;
}

/*
 * Write the changed keys (or all of them) and the consumed offset.  Runs
 * inside the caller's transaction, so everything commits together or not
 * at all.
 */
bool
KsCheckpoint(KsAggRun *run)
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
	argtypes[2] = BOOLOID;
	ret = SPI_execute_with_args("UPDATE keyedstate.aggregation "
								"SET checkpointed_offset = $2, last_checkpoint = pg_catalog.now(), "
								"rebuilding = $3 "
								"WHERE id = $1",
								3, argtypes, args, NULL, false, 0);
	argtypes[2] = INT8OID;
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
	KsChunkFlush(&w);
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

/* Error for checkpoint data that does not hold what it should. */
static void
KsCheckpointCorrupted(KsAggRun *run, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("checkpoint of aggregation %s is corrupted", run->name),
			 errdetail_internal("%s", detail)));
}

/* Keys recovered together, so that their index slots are prefetched. */
#define KS_RECOVER_BATCH		64

/*
 * Put a recovered key's checkpointed view row into the store being built
 * (run->building, which no reader sees yet).  The entry is linked before
 * the tuple is allocated, so that whatever was allocated is freed with the
 * store if this fails.
 */
static void
KsRecoverRow(KsAggRun *run, dsa_area *dsa, KsKeyEntry *e, const char *row, uint32 rowlen)
{
	dsa_pointer entry = KsStoreAllocEntry(dsa, e->hash);
	dsa_pointer tuple;
	uint32		oldbytes;
	uint32		t_len;
	uint32		bytes;

	if (!DsaPointerIsValid(entry))
		KsStoreExhausted(run->name);
	KsStoreLinkEntry(dsa, run->building, entry);
	e->shared = entry;
	run->building_bytes += sizeof(KsStoreEntry);
	if (rowlen == 0)
		return;					/* HAVING hides the key */

	if (rowlen < SizeofMinimalTupleHeader)
		KsCheckpointCorrupted(run, "A published row has a wrong length.");
	memcpy(&t_len, row, sizeof(uint32));
	if (t_len != rowlen)
		KsCheckpointCorrupted(run, "A published row has a wrong length.");
	tuple = KsStoreAllocTupleBytes(dsa, row, rowlen);
	if (!DsaPointerIsValid(tuple))
		KsStoreExhausted(run->name);
	bytes = KsStoreTupleBytes(KsStoreTupleAddress(dsa, tuple));
	(void) KsStoreSwapTuple(dsa, entry, tuple, bytes, &oldbytes);
	e->shared_tuple = tuple;
	e->shared_bytes = bytes;
	run->building_bytes += bytes;
	run->building_visible++;
}

/*
 * Load the keys of one chunk that no newer chunk already gave us, with
 * their published rows into the store being built.  Keys are taken a batch
 * at a time: hash them all and prefetch their index slots, then insert
 * them.  keys/nulls have room for KS_RECOVER_BATCH keys.
 */
static void
KsRecoverChunk(KsAggRun *run, const char *data, uint32 len, Datum *keys, bool *nulls,
			   MemoryContext tmp)
{
	KsKeyTable *kt = run->kt;
	dsa_area   *dsa = KsGetDsa();
	const char *pos = data;
	const char *end = data + len;
	int			nk = kt->nkeys;
	const char *states[KS_RECOVER_BATCH];
	uint32		statelens[KS_RECOVER_BATCH];
	const char *rows[KS_RECOVER_BATCH];
	uint32		rowlens[KS_RECOVER_BATCH];
	uint32		hashes[KS_RECOVER_BATCH];

	if (len < 1 || (unsigned char) *pos != KS_STATE_FORMAT)
		KsCheckpointCorrupted(run, "A chunk has an unknown format.");
	pos++;
	while (pos < end)
	{
		MemoryContext oldcxt;
		int			n = 0;
		int			i;

		oldcxt = MemoryContextSwitchTo(tmp);
		while (pos < end && n < KS_RECOVER_BATCH)
		{
			uint32		klen;
			const char *k;

			if (end - pos < (ptrdiff_t) sizeof(uint16))
				KsCheckpointCorrupted(run, "A chunk ends inside a key.");
			pos += sizeof(uint16);	/* the key group: for readers of part of the state */
			k = KsReadBytes(&pos, end, &klen);
			states[n] = KsReadBytes(&pos, end, &statelens[n]);
			rows[n] = KsReadBytes(&pos, end, &rowlens[n]);
			KsKeyDeserialize(kt, k, klen, keys + n * nk, nulls + n * nk);
			hashes[n] = KsKeyHash(kt, keys + n * nk, nulls + n * nk);
			n++;
		}
		MemoryContextSwitchTo(oldcxt);

		if (!KsStoreReservePrivate(dsa, run->building, kt->nentries + n))
			KsStoreExhausted(run->name);
		for (i = 0; i < n; i++)
		{
			KsKeyTablePrefetchSlot(kt, hashes[i]);
			KsStorePrefetchBucket(dsa, run->building, hashes[i]);
		}
		for (i = 0; i < n; i++)
		{
			KsKeyEntry *e;
			bool		found;

			e = KsKeyTableLookup(kt, keys + i * nk, nulls + i * nk, hashes[i], &found);
			if (!found)
			{
				/* newest first: the first version met is the checkpointed one */
				KsAggDeserializeStates(run->rt, e->states, &e->replay, states[i], statelens[i]);
				KsRecoverRow(run, dsa, e, rows[i], rowlens[i]);
			}
		}
		MemoryContextReset(tmp);
	}
}

/*
 * Load the checkpointed offset and every checkpointed key: the rows of
 * keyedstate.state newest first, back to the latest full checkpoint.
 */
void
KsRecover(KsAggRun *run)
{
	KsKeyTable *kt = run->kt;
	Portal		portal;
	Datum		arg;
	Oid			argtype = INT4OID;
	MemoryContext tmp;
	MemoryContext rowcxt;
	MemoryContext oldcxt;
	Datum	   *keys;
	bool	   *nulls;
	int			ret;
	bool		isnull;
	int64		full_id = -1;
	bool		done = false;

	KsBecomeWorker();
	arg = Int32GetDatum(run->def->id);
	ret = SPI_execute_with_args("SELECT checkpointed_offset FROM keyedstate.aggregation WHERE id = $1",
								1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregation %s no longer exists", run->name)));
	run->checkpointed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
	run->consumed = run->checkpointed;
	run->ckpt_last_id = 0;
	run->ckpt_have_full = false;
	run->ckpt_full_bytes = 0;
	run->ckpt_delta_bytes = 0;

	/*
	 * Size the key index and the new store once for the keys to come (an
	 * upper bound: deltas repeat keys), instead of growing them by
	 * doublings, each a rehash of everything loaded so far.
	 */
	ret = SPI_execute_with_args("SELECT pg_catalog.sum(nkeys) FROM keyedstate.state "
								"WHERE aggregation_id = $1 AND checkpoint_id >= "
								"(SELECT pg_catalog.max(checkpoint_id) FROM keyedstate.state "
								" WHERE aggregation_id = $1 AND is_full)",
								1, &argtype, &arg, NULL, true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			int64		expected = DatumGetInt64(d);

			KsKeyTableReserve(kt, expected);
			if (!KsStoreReservePrivate(KsGetDsa(), run->building, expected))
				KsStoreExhausted(run->name);
		}
	}

	keys = MemoryContextAlloc(run->loadcxt, sizeof(Datum) * Max(kt->nkeys, 1) * KS_RECOVER_BATCH);
	nulls = MemoryContextAlloc(run->loadcxt, sizeof(bool) * Max(kt->nkeys, 1) * KS_RECOVER_BATCH);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate recovery",
								ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate recovery chunk",
								   ALLOCSET_DEFAULT_SIZES);

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT checkpoint_id, is_full, nkeys, data FROM keyedstate.state "
									   "WHERE aggregation_id = $1 ORDER BY checkpoint_id DESC, chunk DESC",
									   1, &argtype, &arg, NULL, true, 0);
	while (!done)
	{
		uint64		i;

		/* chunks are megabytes each: fetch a few at a time */
		SPI_cursor_fetch(portal, true, 4);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			bool		full = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
			int32		nkeys = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
			bytea	   *data;

			/* rows older than the latest full checkpoint are obsolete */
			if (full_id >= 0 && id < full_id)
			{
				done = true;
				break;
			}
			if (full)
				full_id = id;
			run->ckpt_last_id = Max(run->ckpt_last_id, id);

			oldcxt = MemoryContextSwitchTo(rowcxt);
			data = DatumGetByteaPP(SPI_getbinval(tup, desc, 4, &isnull));
			MemoryContextSwitchTo(oldcxt);
			if (full)
				run->ckpt_full_bytes += VARSIZE_ANY_EXHDR(data);
			else
				run->ckpt_delta_bytes += VARSIZE_ANY_EXHDR(data);

			/* size the index once for the keys to come, not by doublings */
			KsKeyTableReserve(kt, kt->nentries + Max(nkeys, 0));
			/* deserialize functions are user code: run them as the owner */
			KsBecomeOwner(run);
			KsRecoverChunk(run, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), keys, nulls, tmp);
			KsBecomeWorker();
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
	MemoryContextDelete(tmp);

	if (run->ckpt_last_id > 0 && full_id < 0)
		KsCheckpointCorrupted(run, "No full checkpoint was found.");
	run->ckpt_have_full = (full_id >= 0);

	/* recovered keys are already in the checkpoint, and their rows in run->building */
	KsKeyClearCheckpoint(kt);
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
