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
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"

/*
 * Delete a cold row this snapshot saw.  One another transaction deleted
 * meanwhile (waited for if in progress) is gone already, as a DELETE
 * under read committed skips it: two parts forgetting the same retired
 * rows, or a drop beside a checkpoint's stale rows.  One a superuser's
 * UPDATE of its data changed meanwhile is deleted in its newest version,
 * the same row (no UPDATE changes the columns naming a row,
 * hookpartitions.c): it failed the aggregation, "changed while deleted"
 * (review exactness 24, F2).
 */
static void
KsColdDeleteRow(Relation heap, ItemPointer tid)
{
	ItemPointerData at = *tid;
	TM_FailureData tmfd;
	TM_Result	result;

	while ((result = heap_delete(heap, &at, GetCurrentCommandId(true), InvalidSnapshot, true,
								 &tmfd, false)) == TM_Updated &&
		   !ItemPointerEquals(&tmfd.ctid, &at))
		at = tmfd.ctid;
	if (result != TM_Ok && result != TM_Deleted)
		elog(ERROR, "keyedstate cold row (%u,%u) changed while deleted: %d",
			 ItemPointerGetBlockNumber(&at), ItemPointerGetOffsetNumber(&at), (int) result);
}

/*
 * Whether the row at *tid is, for this snapshot, the cold row (aggid, hash,
 * place, id): a VACUUM FULL or CLUSTER moves rows, and the place of a row deleted
 * by hand and vacuumed may hold another row since.
 */
static bool
KsColdRowAt(Relation heap, BlockNumber nblocks, Snapshot snapshot, int32 aggid, uint32 hash,
			uint32 place, uint64 id, ItemPointer tid)
{
	HeapTupleData tuple;
	Buffer		buffer;
	TupleDesc	desc = RelationGetDescr(heap);
	bool		isnull[4];
	bool		same;

	/* (a vacuum may have truncated the table after such a deletion) */
	if (!ItemPointerIsValid(tid) || ItemPointerGetBlockNumber(tid) >= nblocks)
		return false;
	tuple.t_self = *tid;
	if (!heap_fetch(heap, snapshot, &tuple, &buffer, false))
		return false;
	same = DatumGetInt32(heap_getattr(&tuple, 1, desc, &isnull[0])) == aggid &&
		(uint32) DatumGetInt32(heap_getattr(&tuple, 2, desc, &isnull[1])) == hash &&
		(uint32) DatumGetInt32(heap_getattr(&tuple, 3, desc, &isnull[2])) == place &&
		(uint64) DatumGetInt64(heap_getattr(&tuple, 4, desc, &isnull[3])) == id &&
		!isnull[0] && !isnull[1] && !isnull[2] && !isnull[3];
	ReleaseBuffer(buffer);
	return same;
}

/* Find a cold row this snapshot sees (see cold.h). */
bool
KsColdLocate(Relation heap, BlockNumber nblocks, Oid indexoid, Snapshot snapshot, int32 aggid,
			 uint32 hash, uint32 place, uint64 id, ItemPointer tid)
{
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skeys[4];
	bool		found = false;

	if (KsColdRowAt(heap, nblocks, snapshot, aggid, hash, place, id, tid))
		return true;
	index = index_open(indexoid, RowExclusiveLock);
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(aggid));
	ScanKeyInit(&skeys[1], 2, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum((int32) hash));
	ScanKeyInit(&skeys[2], 3, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum((int32) place));
	ScanKeyInit(&skeys[3], 4, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum((int64) id));
	scan = index_beginscan(heap, index, snapshot, 4, 0);
	index_rescan(scan, skeys, 4, NULL, 0);
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
		uint64		id = (uint64) DatumGetInt64(index_getattr(scan->xs_itup, 4, scan->xs_itupdesc, &isnull));

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

/* Whether an id is at least KsColdDeleteOf's `from`. */
static bool
KsColdIdFrom(uint64 id, const void *arg)
{
	return (int64) id >= *(const int64 *) arg;
}

/* Order of rows to delete as the primary key orders them (signed columns). */
static int
KsColdRowIdCompare(const void *a, const void *b)
{
	const KsColdRowId *x = *(const KsColdRowId *const *) a;
	const KsColdRowId *y = *(const KsColdRowId *const *) b;

	if (x->hash != y->hash)
		return (int32) x->hash < (int32) y->hash ? -1 : 1;
	if (x->place != y->place)
		return (int32) x->place < (int32) y->place ? -1 : 1;
	return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/*
 * Delete cold rows (see cold.h): at the place each was read from when the
 * caller knows it (a key that came back: no index lookup), the others
 * through the primary key, one descent each, in its order (a DELETE ... =
 * ANY planned with a smaller table's statistics scanned every cold row; a
 * scan by hash alone read every cold key of a hash a writer chose).  A row
 * listed twice (two sweeps of the TTL) is deleted once.  Deleted as the
 * catalog's rows are (keyedstate_internal.cold has no trigger, rule or
 * reference); later reads see it (command counter).
 */
int64
KsColdDelete(int32 aggid, const KsColdRowId *rows, int n)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Snapshot	snapshot;
	BlockNumber nblocks;
	const KsColdRowId **order;
	int64		deleted = 0;

	if (n == 0)
		return 0;
	order = palloc(sizeof(KsColdRowId *) * n);
	for (int i = 0; i < n; i++)
		order[i] = &rows[i];
	qsort(order, n, sizeof(KsColdRowId *), KsColdRowIdCompare);
	KsColdRelids(&heapoid, &indexoid);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	heap = table_open(heapoid, RowExclusiveLock);
	nblocks = RelationGetNumberOfBlocks(heap);
	for (int i = 0; i < n; i++)
	{
		const KsColdRowId *r = order[i];
		ItemPointerData tid = r->tid;

		if ((i & 1023) == 0)
			KsCheckInterrupts();
		if (i > 0 && KsColdRowIdCompare(&order[i - 1], &order[i]) == 0)
			continue;
		/* (one gone already: deleted by hand, or an older version of this key's) */
		if (!KsColdLocate(heap, nblocks, indexoid, snapshot, aggid, r->hash, r->place, r->id, &tid))
			continue;
		KsColdDeleteRow(heap, &tid);
		deleted++;
	}
	table_close(heap, RowExclusiveLock);
	UnregisterSnapshot(snapshot);
	pfree(order);
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
