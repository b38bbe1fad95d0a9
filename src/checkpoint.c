/*-------------------------------------------------------------------------
 *
 * checkpoint.c
 *	  Writing changed keys with the consumed offset, and recovery.
 *	  See checkpoint.h for the guarantees.
 *
 * The checkpoint is not on the per-row path: it writes keys in chunks of
 * keyedstate.checkpoint_chunk through one prepared upsert over unnest()ed
 * arrays, so a checkpoint of N changed keys costs N / chunk statements.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "checkpoint.h"
#include "settings.h"
#include "store.h"

/* Turn a StringInfo's bytes into a bytea Datum. */
static Datum
KsBytea(StringInfo buf)
{
	bytea	   *b = palloc(VARHDRSZ + buf->len);

	SET_VARSIZE(b, VARHDRSZ + buf->len);
	memcpy(VARDATA(b), buf->data, buf->len);
	return PointerGetDatum(b);
}

/* Prepare the upsert of checkpointed keys once per load of a run. */
static void
KsPrepareCheckpointPlan(KsAggRun *run)
{
	Oid			argtypes[4] = {INT4OID, INT2ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID};

	if (run->ckpt_plan != NULL)
		return;
	run->ckpt_plan = SPI_prepare("INSERT INTO keyedstate.state AS s (aggregation_id, key_group, key, state) "
								 "SELECT $1, u.g, u.k, u.s FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), "
								 "pg_catalog.unnest($4)) AS u(g, k, s) "
								 "ON CONFLICT (aggregation_id, key) DO UPDATE "
								 "SET state = excluded.state, key_group = excluded.key_group",
								 4, argtypes);
	if (run->ckpt_plan == NULL)
		elog(ERROR, "could not prepare keyedstate checkpoint: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(run->ckpt_plan);
}

/* Write one chunk of changed keys. */
static void
KsWriteChunk(KsAggRun *run, int from, int to)
{
	KsKeyTable *kt = run->kt;
	int			n = to - from;
	Datum	   *groups = palloc(sizeof(Datum) * n);
	Datum	   *keys = palloc(sizeof(Datum) * n);
	Datum	   *states = palloc(sizeof(Datum) * n);
	Datum		args[4];
	StringInfoData buf;
	int			i;
	int			ret;

	initStringInfo(&buf);
	/* serial functions are user code: run them as the owner */
	KsBecomeOwner(run);
	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e = kt->ckpt[from + i];

		groups[i] = Int16GetDatum((int16) KsKeyGroup(e->hash));
		resetStringInfo(&buf);
		KsKeySerialize(kt, e, &buf);
		keys[i] = KsBytea(&buf);
		resetStringInfo(&buf);
		appendStringInfoChar(&buf, (char) KS_STATE_FORMAT);
		KsAggSerializeStates(run->rt, e->states, e->replay, &buf);
		states[i] = KsBytea(&buf);
	}
	KsBecomeWorker();

	args[0] = Int32GetDatum(run->def->id);
	args[1] = PointerGetDatum(construct_array(groups, n, INT2OID, 2, true, TYPALIGN_SHORT));
	args[2] = PointerGetDatum(construct_array(keys, n, BYTEAOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(states, n, BYTEAOID, -1, false, TYPALIGN_INT));
	ret = SPI_execute_plan(run->ckpt_plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
}

/*
 * Write every changed key and the consumed offset.  Runs inside the
 * caller's transaction, so both commit together or not at all.
 */
void
KsCheckpoint(KsAggRun *run)
{
	KsKeyTable *kt = run->kt;
	MemoryContext tmp;
	MemoryContext oldcxt;
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	int			from;
	int			ret;

	run->ckpt_request = run->slot->checkpoint_requests;
	KsBecomeWorker();
	KsPrepareCheckpointPlan(run);

	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate checkpoint",
								ALLOCSET_DEFAULT_SIZES);
	for (from = 0; from < kt->nckpt; from += ks_checkpoint_chunk)
	{
		int			to = Min(kt->nckpt, from + ks_checkpoint_chunk);

		oldcxt = MemoryContextSwitchTo(tmp);
		KsWriteChunk(run, from, to);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tmp);
	}
	MemoryContextDelete(tmp);

	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum(run->consumed);
	ret = SPI_execute_with_args("UPDATE keyedstate.aggregation "
								"SET checkpointed_offset = $2, last_checkpoint = pg_catalog.now() "
								"WHERE id = $1",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	run->ckpt_offset = run->consumed;
}

/* After commit: the written keys are clean and the offset is durable. */
void
KsCheckpointDone(KsAggRun *run)
{
	KsAggSlot  *slot = run->slot;

	KsKeyClearCheckpoint(run->kt);
	run->checkpointed = run->ckpt_offset;
	run->last_checkpoint = GetCurrentTimestamp();

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->checkpointed_offset = run->checkpointed;
	slot->last_checkpoint = run->last_checkpoint;
	if (slot->checkpoints_done < run->ckpt_request)
		slot->checkpoints_done = run->ckpt_request;
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/*
 * Load the checkpointed offset and every checkpointed key.  Recovered keys
 * are marked for publishing but not for the next checkpoint.
 */
void
KsRecover(KsAggRun *run)
{
	KsKeyTable *kt = run->kt;
	Portal		portal;
	Datum		arg;
	Oid			argtype = INT4OID;
	MemoryContext tmp;
	MemoryContext oldcxt;
	Datum	   *keys;
	bool	   *nulls;
	int			ret;
	bool		isnull;

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

	keys = MemoryContextAlloc(run->loadcxt, sizeof(Datum) * Max(kt->nkeys, 1));
	nulls = MemoryContextAlloc(run->loadcxt, sizeof(bool) * Max(kt->nkeys, 1));
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate recovery",
								ALLOCSET_DEFAULT_SIZES);

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT key, state FROM keyedstate.state WHERE aggregation_id = $1",
									   1, &argtype, &arg, NULL, true, 0);
	for (;;)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		KsBecomeOwner(run);
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			bytea	   *k;
			bytea	   *s;
			KsKeyEntry *e;
			uint32		hash;
			bool		found;

			oldcxt = MemoryContextSwitchTo(tmp);
			k = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
			s = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			KsKeyDeserialize(kt, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k), keys, nulls);
			hash = KsKeyHash(kt, keys, nulls);
			e = KsKeyTableLookup(kt, keys, nulls, hash, &found);
			if (found)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("checkpoint of aggregation %s holds a key twice", run->name)));
			if (VARSIZE_ANY_EXHDR(s) < 1 || VARDATA_ANY(s)[0] != KS_STATE_FORMAT)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("checkpoint of aggregation %s has an unknown state format", run->name)));
			MemoryContextSwitchTo(oldcxt);
			KsAggDeserializeStates(run->rt, e->states, &e->replay,
								   VARDATA_ANY(s) + 1, VARSIZE_ANY_EXHDR(s) - 1);
			KsKeyMarkDirty(kt, e);
			MemoryContextReset(tmp);
		}
		KsBecomeWorker();
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(tmp);

	/* recovered keys are already in the checkpoint */
	KsKeyClearCheckpoint(kt);
}
