/*-------------------------------------------------------------------------
 *
 * colddelete.c
 *	  Deleting rows of keyedstate_internal.cold: stale and expired ones (by
 *	  the checkpoint that commits their keys' new rows), those of a
 *	  checkpoint that never committed (recovery), and all of an
 *	  aggregation's or a part's (drop, rebuild, retired parts); and finding
 *	  a row to rewrite in place (KsColdLocate).  See cold.h.
 *
 * With cold.c (inserts) and coldseed.c (a rescale's copies), the only
 * writer of keyedstate_internal.cold.  Every deletion goes through the
 * primary key or to the place a row was read from, never a scan of the
 * table: it holds every aggregation's evicted keys.  A DELETE by hand is
 * refused (hookpartitions.c): nothing could tell the keys it removed.
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
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"

/*
 * Delete a cold row this snapshot saw.  One another transaction deleted
 * meanwhile (waited for if in progress) is gone already, as a DELETE
 * under read committed skips it: two parts forgetting the same retired
 * rows, or a drop beside a checkpoint's stale rows.
 */
static void
KsColdDeleteRow(Relation heap, ItemPointer tid)
{
	TM_FailureData tmfd;
	TM_Result	result;

	result = heap_delete(heap, tid, GetCurrentCommandId(true), InvalidSnapshot, true, &tmfd, false);
	if (result != TM_Ok && result != TM_Deleted)
		elog(ERROR, "keyedstate cold row (%u,%u) changed while deleted: %d",
			 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid), (int) result);
}

/*
 * Whether the row at *tid is, for this snapshot, the cold row (aggid, hash,
 * id): a VACUUM FULL or CLUSTER moves rows, and the place of a row deleted
 * by hand and vacuumed may hold another row since.
 */
static bool
KsColdRowAt(Relation heap, BlockNumber nblocks, Snapshot snapshot, int32 aggid, uint32 hash,
			uint64 id, ItemPointer tid)
{
	HeapTupleData tuple;
	Buffer		buffer;
	TupleDesc	desc = RelationGetDescr(heap);
	bool		isnull[3];
	bool		same;

	/* (a vacuum may have truncated the table after such a deletion) */
	if (!ItemPointerIsValid(tid) || ItemPointerGetBlockNumber(tid) >= nblocks)
		return false;
	tuple.t_self = *tid;
	if (!heap_fetch(heap, snapshot, &tuple, &buffer, false))
		return false;
	same = DatumGetInt32(heap_getattr(&tuple, 1, desc, &isnull[0])) == aggid &&
		(uint32) DatumGetInt32(heap_getattr(&tuple, 2, desc, &isnull[1])) == hash &&
		(uint64) DatumGetInt64(heap_getattr(&tuple, 3, desc, &isnull[2])) == id &&
		!isnull[0] && !isnull[1] && !isnull[2];
	ReleaseBuffer(buffer);
	return same;
}

/* Find a cold row this snapshot sees (see cold.h). */
bool
KsColdLocate(Relation heap, BlockNumber nblocks, Oid indexoid, Snapshot snapshot, int32 aggid,
			 uint32 hash, uint64 id, ItemPointer tid)
{
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skeys[3];
	bool		found = false;

	if (KsColdRowAt(heap, nblocks, snapshot, aggid, hash, id, tid))
		return true;
	index = index_open(indexoid, RowExclusiveLock);
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggid));
	ScanKeyInit(&skeys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum((int32) hash));
	ScanKeyInit(&skeys[2], 3, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum((int64) id));
	scan = index_beginscan(heap, index, snapshot, 3, 0);
	index_rescan(scan, skeys, 3, NULL, 0);
	if (index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		TupleTableSlot *slot = table_slot_create(heap, NULL);

		/* (a dead entry's row this snapshot does not see: the next entry) */
		do
		{
			if (index_fetch_heap(scan, slot))
			{
				*tid = slot->tts_tid;
				found = true;
				break;
			}
		} while (index_getnext_tid(scan, ForwardScanDirection) != NULL);
		ExecDropSingleTupleTableSlot(slot);
	}
	index_endscan(scan);
	index_close(index, RowExclusiveLock);
	return found;
}

/*
 * Delete a key's cold row at the place it was read from, if it is still
 * there, visible, and that key's (KsColdRowAt); false to look it up by the
 * primary key instead.
 */
static bool
KsColdDeleteAt(Relation heap, BlockNumber nblocks, Snapshot snapshot, int32 aggid, uint32 hash,
			   uint64 id, ItemPointer tid)
{
	if (!KsColdRowAt(heap, nblocks, snapshot, aggid, hash, id, tid))
		return false;
	KsColdDeleteRow(heap, tid);
	return true;
}

/* Which rows an index scan of KsColdDeleteScan deletes, by their id. */
typedef bool (*KsColdIdWanted) (uint64 id, const void *arg);

/*
 * Delete the rows an index scan of keyedstate_internal.cold's primary key
 * (keys on its columns) finds that `wanted` names by the id in the index
 * entry (no heap read for the others) and this snapshot sees; returns how
 * many.  The table is open and locked by the caller.
 */
static int64
KsColdDeleteScan(Relation heap, Oid indexoid, Snapshot snapshot, ScanKey keys, int nkeys,
				 KsColdIdWanted wanted, const void *arg)
{
	Relation	index = index_open(indexoid, RowExclusiveLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	int64		deleted = 0;
	uint64		seen = 0;

	scan->xs_want_itup = true;
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		bool		isnull;
		uint64		id = (uint64) DatumGetInt64(index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &isnull));

		if ((++seen & 1023) == 0)
			KsCheckInterrupts();
		if (isnull || !wanted(id, arg) || !index_fetch_heap(scan, slot))
			continue;
		KsColdDeleteRow(heap, &slot->tts_tid);
		deleted++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, RowExclusiveLock);
	return deleted;
}

/* The ids of KsColdDelete's lookups: a sorted array and its length. */
typedef struct KsColdIdSet
{
	const uint64 *ids;
	int			n;
} KsColdIdSet;

/*
 * Whether an id is among KsColdDelete's: another key of the same hash
 * keeps its row, and so does an older version of this key's (deleted
 * already).
 */
static bool
KsColdIdListed(uint64 id, const void *arg)
{
	const KsColdIdSet *set = arg;

	return bsearch(&id, set->ids, set->n, sizeof(uint64), KsCompareUint64) != NULL;
}

/* Whether an id is at least KsColdDeleteOf's `from`. */
static bool
KsColdIdFrom(uint64 id, const void *arg)
{
	return (int64) id >= *(const int64 *) arg;
}

/*
 * Delete cold rows by hash and id (see cold.h): at the place each was read
 * from when the caller knows it (a key that came back: no index lookup),
 * the others through the primary key (a DELETE ... = ANY planned with a
 * smaller table's statistics scanned every cold row).  Deleted as the
 * catalog's rows are (keyedstate_internal.cold has no trigger, rule or
 * reference); later reads see it (command counter).
 */
int64
KsColdDelete(int32 aggid, const uint32 *hashes, const uint64 *ids, const ItemPointerData *tids, int n)
{
	MemoryContext tmp;
	MemoryContext oldcxt;
	Datum	   *elems;
	uint64	   *sorted;
	ArrayType  *arr;
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Snapshot	snapshot;
	ScanKeyData skeys[2];
	KsColdIdSet set;
	BlockNumber nblocks;
	int64		deleted = 0;
	int			left = 0;
	int			i;

	if (n == 0)
		return 0;
	KsColdRelids(&heapoid, &indexoid);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	heap = table_open(heapoid, RowExclusiveLock);
	nblocks = tids != NULL ? RelationGetNumberOfBlocks(heap) : 0;
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold delete",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(tmp);
	elems = palloc(sizeof(Datum) * n);
	sorted = palloc(sizeof(uint64) * n);
	MemoryContextSwitchTo(oldcxt);
	for (i = 0; i < n; i++)
	{
		if ((i & 1023) == 0)
			KsCheckInterrupts();
		if (tids != NULL &&
			KsColdDeleteAt(heap, nblocks, snapshot, aggid, hashes[i], ids[i], (ItemPointer) &tids[i]))
		{
			deleted++;
			continue;
		}
		elems[left] = Int32GetDatum((int32) hashes[i]);
		sorted[left++] = ids[i];
	}
	if (left > 0)
	{
		oldcxt = MemoryContextSwitchTo(tmp);
		qsort(sorted, left, sizeof(uint64), KsCompareUint64);
		arr = construct_array(elems, left, INT4OID, 4, true, TYPALIGN_INT);
		MemoryContextSwitchTo(oldcxt);
		set.ids = sorted;
		set.n = left;
		ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggid));
		ScanKeyEntryInitialize(&skeys[1], SK_SEARCHARRAY, 2, BTEqualStrategyNumber, INT4OID,
							   InvalidOid, F_INT4EQ, PointerGetDatum(arr));
		deleted += KsColdDeleteScan(heap, indexoid, snapshot, skeys, 2, KsColdIdListed, &set);
	}
	table_close(heap, RowExclusiveLock);
	UnregisterSnapshot(snapshot);
	MemoryContextDelete(tmp);
	CommandCounterIncrement();
	return deleted;
}

/* Delete the cold rows of checkpoints after `committed` (see cold.h). */
void
KsColdDiscardAfter(int32 aggid, int64 committed)
{
	KsColdDeleteOf(aggid, KsColdId(committed + 1, 0));
}

/*
 * Delete the cold rows of one aggregation or part whose id is at least
 * `from` (see cold.h), through the primary key, told by the id in the
 * entry: one descent when it has none.  (A DELETE joined to the ids was
 * planned as a scan of every aggregation's cold rows: 40% of a budgeted
 * part's time, growing with the table.)
 */
int64
KsColdDeleteOf(int32 id, uint64 from)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Snapshot	snapshot;
	ScanKeyData skey;
	int64		start = (int64) from;
	int64		deleted;

	KsColdRelids(&heapoid, &indexoid);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	heap = table_open(heapoid, RowExclusiveLock);
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(id));
	deleted = KsColdDeleteScan(heap, indexoid, snapshot, &skey, 1, KsColdIdFrom, &start);
	table_close(heap, RowExclusiveLock);
	UnregisterSnapshot(snapshot);
	CommandCounterIncrement();
	return deleted;
}

/* Delete every cold row of an aggregation and its parts (see cold.h). */
void
KsColdForget(int32 aggid)
{
	Datum		arg = Int32GetDatum(aggid);
	Oid			argtype = INT4OID;
	int32	   *ids;
	int			n;

	if (SPI_execute_with_args("SELECT id FROM keyedstate_internal.part WHERE aggregation_id = $1",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the parts of aggregation %d", aggid);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int32) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	ids[n++] = aggid;
	for (int i = 0; i < n; i++)
		KsColdDeleteOf(ids[i], 0);
	pfree(ids);
}
