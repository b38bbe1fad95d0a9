/*-------------------------------------------------------------------------
 *
 * coldread.c
 *	  Readers of the cold tier (see cold.h): the view rows of an
 *	  aggregation's evicted keys, for the live view's scans and lookups.
 *
 * A reader copies the published rows (storeread.c) and, holding the slot
 * lock with them, takes the snapshot it then reads keyedstate_internal.cold with.
 * The worker sets a published key's cold row id under that lock before
 * the row commits, and removes an evicted key from the store under it
 * after the row committed; so a cold row the snapshot sees either belongs
 * to a key the reader found published with that row's id (skipped here)
 * or to a key that had left the store, and a row it does not see belongs
 * to a key still published.  Every cold row is
 * checked (CRC, lengths, the view row against the view's row type) before
 * its row is returned.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cold.h"
#include "serialize.h"

struct KsColdScan
{
	int32		aggid;
	MemoryContext cxt;			/* the scan's: the index scan allocates here as it goes */
	TupleDesc	viewdesc;
	const char *aggname;
	uint64	   *skip;			/* cold ids of published keys, sorted */
	int64		nskip;
	Snapshot	snapshot;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext rowcxt;		/* the row returned last */
	int64		window_size_us; /* windows past the TTL are skipped (KsReadRowExpired) */
	TimestampTz expired_upto;
	bool		done;			/* the index scan returned its last row */
	KsColdScan *next;			/* another part's scan, read after this one */
};

/* Order of uint64s, for sorting and searching the ids to skip. */
static int
KsCompareIds(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* Start reading cold view rows (see cold.h); NULL when there are none to read. */
KsColdScan *
KsColdScanBegin(const KsReadResult *res, const uint32 *hashes, int nhashes,
				TupleDesc viewdesc, const char *aggname)
{
	KsColdScan *cs;
	MemoryContext cxt;
	MemoryContext oldcxt;
	Oid			nsp;
	ScanKeyData skeys[2];
	int			nkeys = 1;

	if (res->cold_snapshot == NULL)
		return NULL;
	if (res->cold_keys <= 0 || nhashes == 0)
	{
		UnregisterSnapshot(res->cold_snapshot);
		return NULL;
	}
	/* everything of the scan, gone with it (a lookup's rescans begin many) */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold scan", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	cs = palloc0(sizeof(KsColdScan));
	cs->cxt = cxt;
	cs->aggid = res->aggid;
	cs->window_size_us = res->window_size_us;
	cs->expired_upto = res->expired_upto;
	cs->viewdesc = viewdesc;
	cs->aggname = aggname;
	if (res->ncold > 0)
	{
		cs->skip = palloc(sizeof(uint64) * res->ncold);
		memcpy(cs->skip, res->cold_ids, sizeof(uint64) * res->ncold);
		qsort(cs->skip, res->ncold, sizeof(uint64), KsCompareIds);
		cs->nskip = res->ncold;
	}
	cs->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold row",
									   ALLOCSET_SMALL_SIZES);

	nsp = get_namespace_oid(KS_DATA_SCHEMA, false);
	/* taken with the published rows (storeread.c): the scan owns it now */
	cs->snapshot = res->cold_snapshot;
	cs->heap = table_open(get_relname_relid("cold", nsp), AccessShareLock);
	cs->index = index_open(get_relname_relid("cold_pkey", nsp), AccessShareLock);
	cs->slot = table_slot_create(cs->heap, NULL);
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(cs->aggid));
	if (nhashes > 0)
	{
		Datum	   *elems = palloc(sizeof(Datum) * nhashes);
		int			i;

		for (i = 0; i < nhashes; i++)
			elems[i] = Int32GetDatum((int32) hashes[i]);
		ScanKeyEntryInitialize(&skeys[1], SK_SEARCHARRAY, 2, BTEqualStrategyNumber, INT4OID,
							   InvalidOid, F_INT4EQ,
							   PointerGetDatum(construct_array(elems, nhashes, INT4OID, 4, true,
															   TYPALIGN_INT)));
		nkeys = 2;
	}
	cs->scan = index_beginscan(cs->heap, cs->index, cs->snapshot, nkeys, 0);
	index_rescan(cs->scan, skeys, nkeys, NULL, 0);
	MemoryContextSwitchTo(oldcxt);
	return cs;
}

/* Check a cold row and split it into its parts (see cold.h). */
void
KsColdParse(const char *aggname, int32 aggid, uint32 hash, uint32 place, uint64 id,
			const char *data, uint32 len, KsColdParts *parts)
{
	KsReader	r;
	pg_crc32c	stored;
	pg_crc32c	computed;

	if (len < KS_COLD_HEADER)
		KsCheckpointCorrupted(aggname, "A cold key has %u bytes, fewer than its header.", len);
	memcpy(&stored, data + KS_COLD_CRC_AT, sizeof(stored));
	computed = KsColdCrc(aggid, hash, place, id, data, len);
	if (!EQ_CRC32C(stored, computed))
		KsCheckpointCorrupted(aggname,
							  "The CRC-32C of cold key " UINT64_FORMAT " is %08X, but its row gives %08X.",
							  id, stored, computed);
	if ((uint8) data[KS_COLD_FORMAT_AT] != KS_STATE_FORMAT)
		KsCheckpointCorrupted(aggname, "A cold key has format %d, but this version of keyedstate reads %d.",
							  (uint8) data[KS_COLD_FORMAT_AT], KS_STATE_FORMAT);
	memcpy(&parts->touched, data + KS_COLD_FORMAT_AT + 1, sizeof(TimestampTz));
	KsReaderInit(&r, data + KS_COLD_HEADER, len - KS_COLD_HEADER, aggname);
	parts->key = KsReadBytes(&r, &parts->keylen, "a key");
	parts->states = KsReadBytes(&r, &parts->statelen, "the transition states of a key");
	parts->row = KsReadBytes(&r, &parts->rowlen, "a published row");
	if (KsReaderLeft(&r) != 0)
		KsCheckpointCorrupted(aggname, "A cold key has %zu bytes after its row.", KsReaderLeft(&r));
	if (parts->rowlen == 0)
		parts->row = NULL;
}

/*
 * The view row of one cold row, copied into the scan's row memory, or NULL
 * when HAVING hides the key, or it is a window past the TTL.  Every byte is checked first.
 */
static MinimalTuple
KsColdRow(KsColdScan *cs, uint32 hash, uint32 place, uint64 id, const char *data, uint32 len)
{
	KsColdParts parts;
	MinimalTuple copy;

	KsColdParse(cs->aggname, cs->aggid, hash, place, id, data, len, &parts);
	if (parts.row == NULL)
		return NULL;
	KsCheckStoredRow(cs->aggname, cs->viewdesc, parts.row, parts.rowlen);
	copy = palloc(parts.rowlen);
	memcpy(copy, parts.row, parts.rowlen);
	/* (checked above: its first column is there) */
	if (KsReadRowExpired(cs->window_size_us, cs->expired_upto, copy))
	{
		pfree(copy);
		return NULL;
	}
	return copy;
}

/* Read a scan after another (see cold.h). */
KsColdScan *
KsColdScanChain(KsColdScan *first, KsColdScan *then)
{
	KsColdScan *last = first;

	if (first == NULL)
		return then;
	while (last->next != NULL)
		last = last->next;
	last->next = then;
	return first;
}

/* The next cold view row of one scan, or NULL at its end. */
static MinimalTuple
KsColdScanNextOne(KsColdScan *cs)
{
	MemoryContext oldcxt;
	MinimalTuple row = NULL;

	/* (a btree scan called again after its end would start over) */
	if (cs->done)
		return NULL;
	MemoryContextReset(cs->rowcxt);
	/* not in the row memory: the index scan keeps what it allocates */
	oldcxt = MemoryContextSwitchTo(cs->cxt);
	while (row == NULL && index_getnext_slot(cs->scan, ForwardScanDirection, cs->slot))
	{
		uint32		hash;
		uint32		place;
		uint64		id;
		bytea	   *data;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(cs->slot);
		if (cs->slot->tts_isnull[1] || cs->slot->tts_isnull[2] || cs->slot->tts_isnull[3] ||
			cs->slot->tts_isnull[4])
			KsCheckpointCorrupted(cs->aggname, "A row of keyedstate_internal.cold has a NULL column.");
		hash = (uint32) DatumGetInt32(cs->slot->tts_values[1]);
		place = (uint32) DatumGetInt32(cs->slot->tts_values[2]);
		id = (uint64) DatumGetInt64(cs->slot->tts_values[3]);
		/* the key is published: its row there is the one to read */
		if (cs->nskip > 0 && bsearch(&id, cs->skip, cs->nskip, sizeof(uint64), KsCompareIds) != NULL)
			continue;
		MemoryContextSwitchTo(cs->rowcxt);
		data = DatumGetByteaPP(cs->slot->tts_values[4]);
		row = KsColdRow(cs, hash, place, id, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
		MemoryContextSwitchTo(cs->cxt);
	}
	cs->done = (row == NULL);
	MemoryContextSwitchTo(oldcxt);
	return row;
}

/* The next cold view row of a chain of scans (see cold.h). */
MinimalTuple
KsColdScanNext(KsColdScan *cs)
{
	for (; cs != NULL; cs = cs->next)
	{
		MinimalTuple row = KsColdScanNextOne(cs);

		if (row != NULL)
			return row;
	}
	return NULL;
}

/* End a chain of scans (see cold.h). */
void
KsColdScanEnd(KsColdScan *cs)
{
	if (cs == NULL)
		return;
	KsColdScanEnd(cs->next);
	index_endscan(cs->scan);
	ExecDropSingleTupleTableSlot(cs->slot);
	index_close(cs->index, AccessShareLock);
	table_close(cs->heap, AccessShareLock);
	UnregisterSnapshot(cs->snapshot);
	MemoryContextDelete(cs->cxt);
}
