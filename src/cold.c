/*-------------------------------------------------------------------------
 *
 * cold.c
 *	  The worker's side of the cold tier: writing evicted keys to
 *	  keyedstate_internal.cold and loading them back.  See cold.h for the protocol
 *	  and the format of a cold row.
 *
 * With colddelete.c (deletions) and coldseed.c (a rescale's copies) the
 * only writer of keyedstate_internal.cold, called for it only by the
 * checkpoint (rows of victims).  Loading back reads the relation's primary
 * key directly, one index scan for a whole chunk of input rows' missing
 * keys: no SQL per key.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/stratnum.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"
#include "serialize.h"

/* The CRC-32C of a cold row (see cold.h). */
pg_crc32c
KsColdCrc(int32 aggid, uint32 hash, uint32 place, uint64 id, const char *data, Size len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &aggid, sizeof(aggid));
	COMP_CRC32C(crc, &hash, sizeof(hash));
	COMP_CRC32C(crc, &place, sizeof(place));
	COMP_CRC32C(crc, &id, sizeof(id));
	COMP_CRC32C(crc, data + KS_COLD_FORMAT_AT, len - KS_COLD_FORMAT_AT);
	FIN_CRC32C(crc);
	return crc;
}

/* Append a key's cold row to a batch (see cold.h). */
void
KsColdAdd(KsAggRun *run, KsColdBatch *batch, KsKeyEntry *e, uint64 id,
		  const ItemPointerData *rewrite, MemoryContext parent, MemoryContext tmp)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	StringInfoData buf;
	static const char header[VARHDRSZ + KS_COLD_HEADER] = {0};
	char	   *data;
	pg_crc32c	crc;
	uint32		place;
	int			at;

	if (batch->cxt == NULL)
		batch->cxt = AllocSetContextCreate(parent, "keyedstate cold rows", ALLOCSET_DEFAULT_SIZES);
	cxt = batch->cxt;
	oldcxt = MemoryContextSwitchTo(cxt);
	if (batch->n >= batch->max)
	{
		batch->max = Max(batch->max * 2, 256);
		if (batch->hashes == NULL)
		{
			batch->hashes = palloc(sizeof(uint32) * batch->max);
			batch->places = palloc(sizeof(uint32) * batch->max);
			batch->ids = palloc(sizeof(uint64) * batch->max);
			batch->data = palloc(sizeof(bytea *) * batch->max);
			batch->entries = palloc(sizeof(dsa_pointer) * batch->max);
			batch->rewrite = palloc(sizeof(ItemPointerData) * batch->max);
			batch->rewrites = palloc(sizeof(bool) * batch->max);
		}
		else
		{
			batch->hashes = repalloc(batch->hashes, sizeof(uint32) * batch->max);
			batch->places = repalloc(batch->places, sizeof(uint32) * batch->max);
			batch->ids = repalloc(batch->ids, sizeof(uint64) * batch->max);
			batch->data = repalloc(batch->data, sizeof(bytea *) * batch->max);
			batch->entries = repalloc(batch->entries, sizeof(dsa_pointer) * batch->max);
			batch->rewrite = repalloc(batch->rewrite, sizeof(ItemPointerData) * batch->max);
			batch->rewrites = repalloc(batch->rewrites, sizeof(bool) * batch->max);
		}
	}

	/* built as the bytea itself: a header, the key, its states, its row */
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, header, sizeof(header));
	buf.data[VARHDRSZ + KS_COLD_FORMAT_AT] = (char) KS_STATE_FORMAT;
	memcpy(buf.data + VARHDRSZ + KS_COLD_FORMAT_AT + 1, &e->touched, sizeof(TimestampTz));
	at = KsBeginBytes(&buf);
	KsKeySerialize(run->kt, e, &buf);
	KsEndBytes(&buf, at);
	at = KsBeginBytes(&buf);
	/* serial functions allocate their results: keep them out of the row */
	MemoryContextSwitchTo(tmp);
	KsAggSerializeStates(run->rt, e->states, e->replay, &buf);
	MemoryContextSwitchTo(cxt);
	KsEndBytes(&buf, at);
	if (DsaPointerIsValid(e->shared_tuple))
	{
		MinimalTuple mt = KsStoreTupleAddress(KsGetDsa(), e->shared_tuple);

		KsWriteBytes(&buf, mt, mt->t_len);
	}
	else
		KsWriteUint32(&buf, 0);

	SET_VARSIZE(buf.data, buf.len);
	data = VARDATA(buf.data);
	place = KsColdPlaceOf(run, e);
	crc = KsColdCrc(run->def->id, e->hash, place, id, data, buf.len - VARHDRSZ);
	memcpy(data + KS_COLD_CRC_AT, &crc, sizeof(crc));

	batch->hashes[batch->n] = e->hash;
	batch->places[batch->n] = place;
	batch->ids[batch->n] = id;
	batch->data[batch->n] = (bytea *) buf.data;
	/* (a row rewritten keeps its id, which the key is published with already) */
	batch->entries[batch->n] = rewrite != NULL ? InvalidDsaPointer : e->shared;
	batch->rewrites[batch->n] = rewrite != NULL;
	if (rewrite != NULL)
		batch->rewrite[batch->n] = *rewrite;
	else
		ItemPointerSetInvalid(&batch->rewrite[batch->n]);
	batch->n++;
	MemoryContextSwitchTo(oldcxt);
}

/* Rows of a batch inserted at once (and slots kept for them). */
#define KS_COLD_INSERT_AT_ONCE	1000

/* Order of a batch's rows by hash, place, then id: the primary key's order. */
static int
KsColdBatchCompare(const void *a, const void *b, void *arg)
{
	KsColdBatch *batch = (KsColdBatch *) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int32		hx = (int32) batch->hashes[x];
	int32		hy = (int32) batch->hashes[y];
	int32		px = (int32) batch->places[x];
	int32		py = (int32) batch->places[y];

	if (hx != hy)
		return hx < hy ? -1 : 1;
	if (px != py)
		return px < py ? -1 : 1;
	return batch->ids[x] < batch->ids[y] ? -1 : batch->ids[x] > batch->ids[y] ? 1 : 0;
}

/*
 * Open keyedstate_internal.cold to write rows straight into the heap and
 * every index ready for inserts, as the executor does (see
 * KsColdInsertRows); KsColdCloseForWrite ends it.
 */
Relation
KsColdOpenForWrite(EState **estate, ResultRelInfo **rri)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Relation	index;
	IndexInfo  *info;

	KsColdRelids(&heapoid, &indexoid);
	heap = table_open(heapoid, RowExclusiveLock);
	index = index_open(indexoid, RowExclusiveLock);
	info = BuildIndexInfo(index);
	/* rows are found by its first four columns */
	if (info->ii_NumIndexAttrs != 4 || info->ii_IndexAttrNumbers[0] != 1 ||
		info->ii_IndexAttrNumbers[1] != 2 || info->ii_IndexAttrNumbers[2] != 3 ||
		info->ii_IndexAttrNumbers[3] != 4)
		elog(ERROR, "the primary key of keyedstate_internal.cold is not (aggregation_id, hash, place, id)");
	index_close(index, NoLock);
	*estate = CreateExecutorState();
	*rri = makeNode(ResultRelInfo);
	InitResultRelInfo(*rri, heap, 1, NULL, 0);
	ExecOpenIndices(*rri, false);
	return heap;
}

/* Close what KsColdOpenForWrite opened; later reads see the rows (command counter). */
void
KsColdCloseForWrite(Relation heap, EState *estate, ResultRelInfo *rri)
{
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(heap, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * Insert cold rows (see cold.h): straight into the heap, many rows per
 * call, and into every index ready for inserts, as the executor does: one
 * a REINDEX CONCURRENTLY is building became the primary key without the
 * rows inserted meanwhile, and later lookups missed them (review
 * robustness4, F2: keys failed, then started afresh after a restart).
 * keyedstate_internal.cold has no trigger, rule or policy; later reads see
 * the rows (command counter).
 */
void
KsColdInsertRows(int32 id, int n, const uint32 *hashes, const uint32 *places, const uint64 *ids,
				 bytea *const *data, const int *order)
{
	Relation	heap;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	CommandId	cid;
	int			nslots;
	int			done;
	int			i;

	if (n == 0)
		return;
	heap = KsColdOpenForWrite(&estate, &rri);
	cid = GetCurrentCommandId(true);
	nslots = Min(n, KS_COLD_INSERT_AT_ONCE);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (i = 0; i < nslots; i++)
		slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(heap), &TTSOpsVirtual);
	for (done = 0; done < n; done += nslots)
	{
		int			m = Min(nslots, n - done);

		KsCheckInterrupts();
		for (i = 0; i < m; i++)
		{
			TupleTableSlot *slot = slots[i];
			int			r = order != NULL ? order[done + i] : done + i;

			ExecClearTuple(slot);
			slot->tts_values[0] = Int32GetDatum(id);
			slot->tts_values[1] = Int32GetDatum((int32) hashes[r]);
			slot->tts_values[2] = Int32GetDatum((int32) places[r]);
			slot->tts_values[3] = Int64GetDatum((int64) ids[r]);
			slot->tts_values[4] = PointerGetDatum(data[r]);
			memset(slot->tts_isnull, 0, sizeof(bool) * 5);
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(heap, slots, m, cid, 0, NULL);
		for (i = 0; i < m; i++)
		{
			ResetPerTupleExprContext(estate);
			(void) ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
		}
	}
	for (i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	pfree(slots);
	KsColdCloseForWrite(heap, estate, rri);
}

/*
 * Update a cold row in place, in its newest version: one a superuser's
 * UPDATE of its data changed meanwhile (waited for) is the same row (see
 * KsColdDeleteRow).  False if it is gone.
 */
bool
KsColdUpdateRow(Relation heap, ItemPointer tid, HeapTuple tuple)
{
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TM_Result	result;

	while ((result = heap_update(heap, tid, tuple, GetCurrentCommandId(true), InvalidSnapshot, true,
								 &tmfd, &lockmode)) == TM_Updated &&
		   !ItemPointerEquals(&tmfd.ctid, tid))
		*tid = tmfd.ctid;
	if (result == TM_Deleted)
		return false;
	if (result != TM_Ok)
		elog(ERROR, "keyedstate cold row (%u,%u) changed while rewritten: %d",
			 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid), (int) result);
	return true;
}

/* Rewrite cold rows in place (see cold.h). */
void
KsColdRewriteRows(int32 aggid, int n, const uint32 *hashes, const uint32 *places,
				  const uint64 *ids, bytea *const *data, const ItemPointerData *tids)
{
	EState	   *estate;
	ResultRelInfo *rri;
	Relation	heap;
	Oid			heapoid;
	Oid			indexoid;
	Snapshot	snapshot;
	BlockNumber nblocks;
	TupleTableSlot *slot;
	int			nlost = 0;
	int		   *lost;

	if (n == 0)
		return;
	lost = palloc(sizeof(int) * n);
	KsColdRelids(&heapoid, &indexoid);
	heap = KsColdOpenForWrite(&estate, &rri);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(heap), &TTSOpsHeapTuple);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	nblocks = RelationGetNumberOfBlocks(heap);
	for (int i = 0; i < n; i++)
	{
		ItemPointerData tid = tids[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		HeapTuple	tuple;

		KsCheckInterrupts();
		if (!KsColdLocate(heap, nblocks, indexoid, snapshot, aggid, hashes[i], places[i], ids[i], &tid))
		{
			lost[nlost++] = i;
			continue;
		}
		values[0] = Int32GetDatum(aggid);
		values[1] = Int32GetDatum((int32) hashes[i]);
		values[2] = Int32GetDatum((int32) places[i]);
		values[3] = Int64GetDatum((int64) ids[i]);
		values[4] = PointerGetDatum(data[i]);
		tuple = heap_form_tuple(RelationGetDescr(heap), values, nulls);
		if (!KsColdUpdateRow(heap, &tid, tuple))
		{
			lost[nlost++] = i;
			heap_freetuple(tuple);
			continue;
		}
		/* a HOT update leaves the indexes as they are */
		if (!HeapTupleIsHeapOnly(tuple))
		{
			ExecStoreHeapTuple(tuple, slot, false);
			ResetPerTupleExprContext(estate);
			(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
			ExecClearTuple(slot);
		}
		heap_freetuple(tuple);
	}
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	KsColdCloseForWrite(heap, estate, rri);
	/* gone (damage the checksums cannot see): the key's state is a new row */
	if (nlost > 0)
	{
		uint32	   *lh = palloc(sizeof(uint32) * nlost);
		uint32	   *lp = palloc(sizeof(uint32) * nlost);
		uint64	   *li = palloc(sizeof(uint64) * nlost);
		bytea	  **ld = palloc(sizeof(bytea *) * nlost);

		for (int i = 0; i < nlost; i++)
		{
			lh[i] = hashes[lost[i]];
			lp[i] = places[lost[i]];
			li[i] = ids[lost[i]];
			ld[i] = data[lost[i]];
		}
		KsColdInsertRows(aggid, nlost, lh, lp, li, ld, NULL);
	}
	pfree(lost);
}

/* Rewrite the rows of a batch to rewrite, in `order`; returns how many. */
static int
KsColdRewriteBatch(int32 aggid, KsColdBatch *batch, const int *order)
{
	uint32	   *hashes = palloc(sizeof(uint32) * batch->n);
	uint32	   *places = palloc(sizeof(uint32) * batch->n);
	uint64	   *ids = palloc(sizeof(uint64) * batch->n);
	bytea	  **data = palloc(sizeof(bytea *) * batch->n);
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * batch->n);
	int			m = 0;

	for (int i = 0; i < batch->n; i++)
	{
		int			r = order[i];

		if (!batch->rewrites[r])
			continue;
		hashes[m] = batch->hashes[r];
		places[m] = batch->places[r];
		ids[m] = batch->ids[r];
		data[m] = batch->data[r];
		tids[m++] = batch->rewrite[r];
	}
	KsColdRewriteRows(aggid, m, hashes, places, ids, data, tids);
	return m;
}

/*
 * Insert a batch's rows (see cold.h), in the primary key's order, so that
 * consecutive entries go to the same leaf page.
 */
void
KsColdInsert(KsAggRun *run, KsColdBatch *batch)
{
	MemoryContext oldcxt;
	int		   *order;
	int			kept;

	if (batch->n == 0)
		return;
	/* readers skip these rows while the keys are still published */
	KsStoreSetColdIds(run->slot, batch->entries, batch->hashes, batch->ids, batch->n);

	oldcxt = MemoryContextSwitchTo(batch->cxt);
	order = palloc(sizeof(int) * batch->n);
	for (int i = 0; i < batch->n; i++)
	{
		order[i] = i;
		/* (the size a key coming back brings: apply.c sizes chunks by it) */
		run->cold_row_bytes += VARSIZE_ANY_EXHDR(batch->data[i]);
		run->cold_row_max = Max(run->cold_row_max, (int64) VARSIZE_ANY_EXHDR(batch->data[i]));
	}
	run->cold_row_count += batch->n;
	qsort_arg(order, batch->n, sizeof(int), KsColdBatchCompare, batch);
	/* the rows rewritten in place, then the new ones */
	kept = batch->n - KsColdRewriteBatch(run->def->id, batch, order);
	for (int i = 0, k = 0; i < batch->n; i++)
		if (!batch->rewrites[order[i]])
			order[k++] = order[i];
	KsColdInsertRows(run->def->id, kept, batch->hashes, batch->places, batch->ids, batch->data, order);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(batch->cxt);
	memset(batch, 0, sizeof(KsColdBatch));
}

/* The OIDs of keyedstate_internal.cold and of its primary key (see cold.h). */
void
KsColdRelids(Oid *heap, Oid *index)
{
	Oid			nsp = get_namespace_oid(KS_DATA_SCHEMA, false);

	*heap = get_relname_relid("cold", nsp);
	*index = get_relname_relid("cold_pkey", nsp);
	if (!OidIsValid(*heap) || !OidIsValid(*index))
		elog(ERROR, "keyedstate_internal.cold or its primary key is missing");
}

/* Lock them for reading without waiting; false if another session holds one (see cold.h). */
bool
KsColdLockNow(Oid *heap, Oid *index)
{
	KsColdRelids(heap, index);
	return ConditionalLockRelationOid(*heap, AccessShareLock) &&
		ConditionalLockRelationOid(*index, AccessShareLock);
}

/* The hash, place, id and data of a row of keyedstate_internal.cold (see cold.h). */
bytea *
KsColdRowColumns(KsAggRun *run, TupleTableSlot *slot, uint32 *hash, uint32 *place, uint64 *id)
{
	slot_getallattrs(slot);
	if (slot->tts_isnull[1] || slot->tts_isnull[2] || slot->tts_isnull[3] || slot->tts_isnull[4])
		KsCheckpointCorrupted(run->name, "A row of keyedstate_internal.cold has a NULL column.");
	*hash = (uint32) DatumGetInt32(slot->tts_values[1]);
	*place = (uint32) DatumGetInt32(slot->tts_values[2]);
	*id = (uint64) DatumGetInt64(slot->tts_values[3]);
	return DatumGetByteaPP(slot->tts_values[4]);
}

/*
 * Bring one cold row's key back into memory, unless it is there already
 * (then its state in memory is the newer).  Every byte is checked first.
 */
static bool
KsColdRestore(KsAggRun *run, uint32 hash, uint32 place, uint64 id, ItemPointer tid,
			  const char *data, uint32 len, Datum *keys, bool *nulls)
{
	KsKeyTable *kt = run->kt;
	KsColdParts parts;
	KsKeyEntry *e;
	bool		found;

	KsColdParse(run->name, run->def->id, hash, place, id, data, len, &parts);
	KsKeyDeserialize(kt, parts.key, parts.keylen, run->name, keys, nulls);
	if (KsKeyHash(kt, keys, nulls) != hash)
		KsCheckpointCorrupted(run->name, "A cold key stored under hash %u hashes to %u.",
							  hash, KsKeyHash(kt, keys, nulls));
	if (KsKeyPlace(kt, keys, nulls, hash) != place)
		KsCheckpointCorrupted(run->name, "A cold key stored under place %u has place %u.",
							  place, KsKeyPlace(kt, keys, nulls, hash));

	/* (a key not asked for, of the same hash and place, is found in memory or comes back too) */
	e = KsKeyTableLookupPlaced(kt, keys, nulls, hash, place, &found);
	if (found && !(e->flags & KS_KEY_EVICTED))
		return false;
	KsKeyClearEvicted(kt, e);
	if (KsExpiredAt(run, parts.touched, GetCurrentTimestamp()))
	{
		/*
		 * Outlived the TTL while cold: it comes back expired, so that a row
		 * starts it afresh (apply.h) and the next checkpoint writes it whole
		 * or as a tombstone, deleting this row.  Published with this row's
		 * id meanwhile, readers skip the row.
		 */
		KsKeySetFlags(kt, e, (e->flags & ~(KS_KEY_EVICTED | KS_KEY_RECOLDED)) | KS_KEY_EXPIRED);
		e->touched = parts.touched;
		e->cold_id = id;
		e->cold_tid = *tid;
		KsKeyMarkDirty(kt, e);
		run->cold_keys--;
		return true;
	}
	KsKeySetFlags(kt, e, e->flags & ~(KS_KEY_EXPIRED | KS_KEY_EVICTED | KS_KEY_RECOLDED));
	KsAggDeserializeStates(run->rt, e->states, &e->replay, parts.states, parts.statelen, run->name);
	e->touched = parts.touched;
	e->cold_id = id;
	e->cold_tid = *tid;
	e->flags |= KS_KEY_COLD_CURRENT;
	/* its view row is built again by the step's publish, with its cold row's id */
	KsKeyMarkPublish(kt, e);
	run->cold_keys--;
	run->reloads++;
	return true;
}

/* A key to load back: its hash and place. */
typedef struct KsColdWanted
{
	uint32		hash;
	uint32		place;
} KsColdWanted;

/* Order of wanted keys as the primary key orders them (signed columns). */
static int
KsColdWantedCompare(const void *a, const void *b)
{
	const KsColdWanted *x = a;
	const KsColdWanted *y = b;

	if (x->hash != y->hash)
		return (int32) x->hash < (int32) y->hash ? -1 : 1;
	if (x->place != y->place)
		return (int32) x->place < (int32) y->place ? -1 : 1;
	return 0;
}

/* Load back the cold keys with these hashes and places (see cold.h). */
int64
KsColdReload(KsAggRun *run, const uint32 *hashes, const uint32 *places, int n)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Relation	index;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData skeys[3];
	TupleTableSlot *slot;
	MemoryContext tmp;
	MemoryContext oldcxt;
	Datum	   *keys;
	bool	   *nulls;
	KsColdWanted *wanted;
	int64		loaded = 0;
	int			nwanted = 0;
	int			i;

	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold reload",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(tmp);
	wanted = palloc(sizeof(KsColdWanted) * n);
	for (i = 0; i < n; i++)
	{
		wanted[i].hash = hashes[i];
		wanted[i].place = places[i];
	}
	qsort(wanted, n, sizeof(KsColdWanted), KsColdWantedCompare);
	for (i = 0; i < n; i++)
		if (nwanted == 0 || KsColdWantedCompare(&wanted[i], &wanted[nwanted - 1]) != 0)
			wanted[nwanted++] = wanted[i];
	keys = palloc(sizeof(Datum) * Max(run->kt->nkeys, 1));
	nulls = palloc(sizeof(bool) * Max(run->kt->nkeys, 1));
	MemoryContextSwitchTo(oldcxt);

	KsColdRelids(&heapoid, &indexoid);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	heap = table_open(heapoid, AccessShareLock);
	index = index_open(indexoid, AccessShareLock);
	slot = table_slot_create(heap, NULL);
	scan = index_beginscan(heap, index, snapshot, 3, 0);
	/* one descent per key's (hash, place), in the index's order */
	for (int w = 0; w < nwanted; w++)
	{
		ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(run->def->id));
		ScanKeyInit(&skeys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum((int32) wanted[w].hash));
		ScanKeyInit(&skeys[2], 3, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum((int32) wanted[w].place));
		index_rescan(scan, skeys, 3, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			uint32		hash;
			uint32		place;
			uint64		id;
			bytea	   *data;

			KsCheckInterrupts();
			oldcxt = MemoryContextSwitchTo(tmp);
			data = KsColdRowColumns(run, slot, &hash, &place, &id);
			/* its deserialize functions are user code: timed (run.h) */
			KsRunOwnerCodeBegin(run);
			if (KsColdRestore(run, hash, place, id, &slot->tts_tid, VARDATA_ANY(data),
							  VARSIZE_ANY_EXHDR(data), keys, nulls))
				loaded++;
			run->reload_bytes += VARSIZE_ANY_EXHDR(data);
			KsRunOwnerCodeEnd();
			MemoryContextSwitchTo(oldcxt);
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	UnregisterSnapshot(snapshot);
	MemoryContextDelete(tmp);
	return loaded;
}
