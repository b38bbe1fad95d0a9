/*-------------------------------------------------------------------------
 *
 * coldplace.c
 *	  Cold rows whose places were computed under another place scheme
 *	  (an extension's update gave a key type a seeded hash function) are
 *	  moved to their places under this one, at a load, before any row is
 *	  read.  Part of the cold tier; see cold.h.
 *
 * A row's place is part of its primary key and of its CRC: a row whose
 * place changes is updated in the heap (never HOT: an indexed column
 * changes) with a new CRC, and its new index entry inserted, in the
 * load's transaction, which records the new scheme in the catalog's row
 * of the aggregation (or part): the rows and the record go together.
 * (Recorded by the next checkpoint only, a crash before it left the rows
 * at new places under the old record, and a load under the old scheme
 * then read none of them: re-review today 32, F1.)  The record is the
 * catalog's now, locked, not the one the run's definition was read with.
 * The scan's snapshot, taken before the first update, sees every row once
 * (the versions this command writes are not visible to it).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"
#include "serialize.h"

/* Move cold rows to their places under this scheme (see cold.h); as the worker. */
void
KsColdPlaceCheck(KsAggRun *run)
{
	KsKeyTable *kt = run->kt;
	uint64		scheme = KsKeyPlaceScheme(kt);
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Relation	index;
	EState	   *estate;
	ResultRelInfo *rri;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	TupleTableSlot *newslot;
	MemoryContext tmp;
	Datum	   *keys;
	bool	   *nulls;
	int64		moved = 0;
	int64		read = 0;
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	bool		isnull;

	/*
	 * The record as it is now; when it differs, locked to this transaction's
	 * end and read again (never waited for: a session holding the row makes
	 * the load fail and be tried again, as a passing error).
	 */
	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum((int64) scheme);
	for (int locked = 0; locked < 2; locked++)
	{
		if (SPI_execute_with_args(psprintf("SELECT place_scheme FROM keyedstate_internal.%s WHERE id = $1%s",
										   run->def->is_part ? "part" : "aggregation",
										   locked ? " FOR NO KEY UPDATE NOWAIT" : ""),
								  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("aggregation %s no longer exists", run->name)));
		if ((uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												 &isnull)) == scheme && !isnull)
			return;
	}
	KsColdRelids(&heapoid, &indexoid);
	heap = KsColdOpenForWrite(&estate, &rri);
	index = index_open(indexoid, AccessShareLock);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold places",
								ALLOCSET_DEFAULT_SIZES);
	keys = palloc(sizeof(Datum) * Max(kt->nkeys, 1));
	nulls = palloc(sizeof(bool) * Max(kt->nkeys, 1));
	slot = table_slot_create(heap, NULL);
	newslot = MakeSingleTupleTableSlot(RelationGetDescr(heap), &TTSOpsHeapTuple);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(run->def->id));
	scan = index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(tmp);
		uint32		hash;
		uint32		place;
		uint32		now;
		uint64		id;
		bytea	   *data;
		KsColdParts parts;

		KsCheckInterrupts();
		read++;
		data = KsColdRowColumns(run, slot, &hash, &place, &id);
		KsColdParse(run->name, run->def->id, hash, place, id, VARDATA_ANY(data),
					VARSIZE_ANY_EXHDR(data), &parts);
		/* its key's functions are user code: as the owner, timed (run.h) */
		KsBecomeOwnerAs(run, false);
		KsRunOwnerCodeBegin(run);
		KsKeyDeserialize(kt, parts.key, parts.keylen, run->name, keys, nulls);
		now = KsKeyPlace(kt, keys, nulls, hash);
		KsRunOwnerCodeEnd();
		KsBecomeWorker();
		if (now != place)
		{
			bytea	   *row = palloc(VARHDRSZ + VARSIZE_ANY_EXHDR(data));
			pg_crc32c	crc;
			Datum		values[5];
			bool		isnull[5] = {false, false, false, false, false};
			HeapTuple	tuple;
			ItemPointerData tid = slot->tts_tid;

			/* (behind a 4-byte header, whatever header it was read with) */
			SET_VARSIZE(row, VARHDRSZ + VARSIZE_ANY_EXHDR(data));
			memcpy(VARDATA(row), VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
			crc = KsColdCrc(run->def->id, hash, now, id, VARDATA(row), VARSIZE(row) - VARHDRSZ);
			memcpy(VARDATA(row) + KS_COLD_CRC_AT, &crc, sizeof(crc));
			values[0] = Int32GetDatum(run->def->id);
			values[1] = Int32GetDatum((int32) hash);
			values[2] = Int32GetDatum((int32) now);
			values[3] = Int64GetDatum((int64) id);
			values[4] = PointerGetDatum(row);
			tuple = heap_form_tuple(RelationGetDescr(heap), values, isnull);
			if (KsColdUpdateRow(heap, &tid, tuple))
			{
				ExecStoreHeapTuple(tuple, newslot, false);
				ResetPerTupleExprContext(estate);
				(void) ExecInsertIndexTuples(rri, newslot, estate, false, false, NULL, NIL);
				ExecClearTuple(newslot);
				moved++;
			}
		}
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tmp);
	}
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	ExecDropSingleTupleTableSlot(newslot);
	index_close(index, AccessShareLock);
	KsColdCloseForWrite(heap, estate, rri);
	MemoryContextDelete(tmp);
	/* with the rows it moved */
	if (SPI_execute_with_args(run->def->is_part ?
							  "UPDATE keyedstate_internal.part SET place_scheme = $2 WHERE id = $1" :
							  "UPDATE keyedstate_internal.aggregation SET place_scheme = $2 WHERE id = $1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the place scheme of aggregation %s", run->name);
	if (moved > 0)
		ereport(LOG,
				(errmsg("keyedstate moved %lld of the %lld evicted keys of aggregation %s to their places under a new place scheme",
						(long long) moved, (long long) read, run->name)));
}
