/*-------------------------------------------------------------------------
 *
 * coldsweep.c
 *	  The TTL over cold keys: the sweep that reads an aggregation's cold
 *	  rows a slice per step and notes the expired ones, deleted by the next
 *	  checkpoint.  Part of the cold tier; see cold.h.
 *
 * A cold key expires as a key in memory does: in processing time, when
 * its row's `touched` is older than the TTL; a windowed aggregation's pane
 * in event time, when its window ended at or before the watermark less
 * the TTL (window.h), read from the pane's start, the first column of its
 * stored key.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"
#include "serialize.h"
#include "window.h"

/*
 * Whether a cold row's key outlived the TTL (see above); its key is read
 * in the current context.
 */
static bool
KsColdExpired(KsAggRun *run, const KsColdParts *parts, TimestampTz now)
{
	Datum	   *keys;
	bool	   *nulls;

	if (run->def->window_size_us == 0)
		return KsExpiredAt(run, parts->touched, now);
	if (KsWindowExpiredUpTo(run) == DT_NOBEGIN)
		return false;
	keys = palloc(sizeof(Datum) * run->kt->nkeys);
	nulls = palloc(sizeof(bool) * run->kt->nkeys);
	KsKeyDeserialize(run->kt, parts->key, parts->keylen, run->name, keys, nulls);
	if (nulls[0])
		KsCheckpointCorrupted(run->name, "A cold window has no start.");
	return KsWindowExpired(run, DatumGetTimestampTz(keys[0]));
}

/*
 * Whether the key of cold row `id`, whose place in the key table is
 * `place` (KsKeyPlace), is in memory, that row its cold row.  An evicted
 * entry the next publish removes is not: its cold row is its state
 * (nothing else would delete that row once the entry is gone).
 */
static bool
KsColdInMemory(KsKeyTable *kt, uint32 place, uint64 id)
{
	uint32		mask = kt->nslots - 1;
	uint32		pos = KsKeyHome(kt, place, mask);

	for (; kt->slots[pos].entry != 0; pos = (pos + 1) & mask)
	{
		KsKeyEntry *e;

		if (kt->slots[pos].hash != place)
			continue;
		e = KsKeyTableEntry(kt, kt->slots[pos].entry - 1);
		if (e->cold_id == id && !(e->flags & KS_KEY_EVICTED))
			return true;
	}
	return false;
}

/* Read the next cold rows for the TTL, and note the expired ones (see cold.h). */
bool
KsColdSweep(KsAggRun *run, TimestampTz now)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Relation	index;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData skeys[2];
	ScanKeyData after[3];
	int			nkeys = 1;
	TupleTableSlot *slot;
	MemoryContext tmp;
	int			n = 0;
	bool		more = false;

	if (!run->cold_sweeping)
		return false;
	/* a new pass waits for the checkpoint deleting what the last one listed */
	if (run->cold_sweep_hash == (int64) PG_INT32_MIN - 1 && run->ncold_expired > 0)
		return false;
	if (run->ncold_expired >= KS_COLD_EXPIRED_MAX)
		return false;
	/* without waiting: a VACUUM FULL of the table holds it (re-review today 26, F1); at a later step */
	if (!KsColdLockNow(&heapoid, &indexoid))
		return false;
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold sweep",
								ALLOCSET_DEFAULT_SIZES);
	KsBecomeWorker();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	heap = table_open(heapoid, NoLock);
	index = index_open(indexoid, NoLock);
	slot = table_slot_create(heap, NULL);
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(run->def->id));
	/* the rows after the last one read: (hash, place, id) > its, one descent */
	if (run->cold_sweep_hash >= PG_INT32_MIN)
	{
		ScanKeyEntryInitialize(&after[0], SK_ROW_MEMBER, 2, BTGreaterStrategyNumber, INT4OID,
							   InvalidOid, F_BTINT4CMP, Int32GetDatum((int32) run->cold_sweep_hash));
		ScanKeyEntryInitialize(&after[1], SK_ROW_MEMBER, 3, BTGreaterStrategyNumber, INT4OID,
							   InvalidOid, F_BTINT4CMP, Int32GetDatum((int32) run->cold_sweep_place));
		ScanKeyEntryInitialize(&after[2], SK_ROW_MEMBER | SK_ROW_END, 4, BTGreaterStrategyNumber,
							   INT8OID, InvalidOid, F_BTINT8CMP, Int64GetDatum((int64) run->cold_sweep_id));
		ScanKeyEntryInitialize(&skeys[1], SK_ROW_HEADER, 2, BTGreaterStrategyNumber, InvalidOid,
							   InvalidOid, InvalidOid, PointerGetDatum(after));
		nkeys = 2;
	}
	scan = index_beginscan(heap, index, snapshot, nkeys, 0);
	index_rescan(scan, skeys, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		uint32		hash;
		uint64		id;
		bytea	   *data;
		KsColdParts parts;
		MemoryContext oldcxt;
		bool		expired;
		uint32		place;

		if (n >= KS_COLD_SWEEP_ROWS)
		{
			more = true;
			break;
		}
		KsCheckInterrupts();
		oldcxt = MemoryContextSwitchTo(tmp);
		data = KsColdRowColumns(run, slot, &hash, &place, &id);
		MemoryContextSwitchTo(oldcxt);
		n++;
		run->cold_sweep_hash = (int32) hash;
		run->cold_sweep_place = place;
		run->cold_sweep_id = id;
		oldcxt = MemoryContextSwitchTo(tmp);
		KsColdParse(run->name, run->def->id, hash, place, id, VARDATA_ANY(data),
					VARSIZE_ANY_EXHDR(data), &parts);
		expired = KsColdExpired(run, &parts, now);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tmp);
		/* a key in memory with this row goes with the checkpoint writing it (the CRC covers its place) */
		if (!expired || KsColdInMemory(run->kt, place, id))
			continue;
		if (run->ncold_expired >= run->maxcold_expired)
		{
			run->maxcold_expired = Max(run->maxcold_expired * 2, 1024);
			run->cold_expired = run->cold_expired == NULL ?
				MemoryContextAlloc(run->loadcxt, sizeof(KsColdRowId) * run->maxcold_expired) :
				repalloc(run->cold_expired, sizeof(KsColdRowId) * run->maxcold_expired);
		}
		run->cold_expired[run->ncold_expired].hash = hash;
		run->cold_expired[run->ncold_expired].place = place;
		run->cold_expired[run->ncold_expired].id = id;
		run->cold_expired[run->ncold_expired++].tid = slot->tts_tid;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	UnregisterSnapshot(snapshot);
	MemoryContextDelete(tmp);
	KsBecomeOwner(run);
	/* through every cold row: the sweep is over until the next one starts, or again */
	if (!more && run->cold_sweep_again)
	{
		run->cold_sweep_again = false;
		run->cold_sweep_hash = (int64) PG_INT32_MIN - 1;
		run->cold_sweep_id = 0;
	}
	else if (!more)
		run->cold_sweeping = false;
	return run->cold_sweeping;
}

/* Delete the cold rows the sweep found expired (see cold.h). */
int64
KsColdDeleteExpired(KsAggRun *run)
{
	int			i;
	int			n = 0;
	int64		deleted;

	/* loaded back since the sweep read it: the checkpoint writing it deletes it */
	for (i = 0; i < run->ncold_expired; i++)
	{
		if (KsColdInMemory(run->kt, run->cold_expired[i].place, run->cold_expired[i].id))
			continue;
		run->cold_expired[n++] = run->cold_expired[i];
	}
	run->ncold_expired = 0;
	/* a row listed twice (two sweeps) is deleted once: count what went */
	deleted = KsColdDelete(run->def->id, run->cold_expired, n);
	/*
	 * The list goes with them (1.5 MB at KS_COLD_EXPIRED_MAX): kept, such
	 * lists held a 1MB budget's aggregation at 4 times its budget with no
	 * key left (re-review today 13, F5).
	 */
	if (run->cold_expired != NULL)
		pfree(run->cold_expired);
	run->cold_expired = NULL;
	run->maxcold_expired = 0;
	return deleted;
}
