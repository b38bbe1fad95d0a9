/*-------------------------------------------------------------------------
 *
 * coldfilter.c
 *	  The cold filter (see cold.h): a bit per hash slot, set for every cold
 *	  key's hash, so that a row of a key never evicted costs no lookup of
 *	  keyedstate_internal.cold.  Built a slice per step from the primary
 *	  key's entries, kept up to date as keys are evicted, and rebuilt
 *	  smaller or larger as the cold keys change in number.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "cold.h"

/* Cold hashes a step reads to build the filter. */
#define KS_COLD_FILTER_SLICE	100000

/* The filter's fewest bits; bits per cold key when built, and at most when full (cold.h). */
#define KS_COLD_FILTER_MIN_BITS	((uint64) 1 << 16)
#define KS_COLD_FILTER_BITS_BUILT	15
#define KS_COLD_FILTER_BITS_FULL	10

/* Set a hash's bit in a filter. */
static inline void
KsColdFilterSet(uint64 *filter, uint64 bits, uint32 hash)
{
	uint64		bit = KsColdFilterBit(bits, hash);

	filter[bit >> 6] |= (uint64) 1 << (bit & 63);
}

/* Start building a filter (see cold.h). */
void
KsColdFilterStart(KsAggRun *run, int64 keys)
{
	uint64		bits = (uint64) Max(keys, 0) * KS_COLD_FILTER_BITS_BUILT;

	bits = Min(Max(TYPEALIGN(64, bits), KS_COLD_FILTER_MIN_BITS), (uint64) 1 << 32);
	if (run->cold_building != NULL)
		pfree(run->cold_building);
	run->cold_building = MemoryContextAllocHuge(run->loadcxt, bits / 8);
	memset(run->cold_building, 0, bits / 8);
	run->cold_building_bits = bits;
	run->cold_build_after = (int64) PG_INT32_MIN - 1;
}

/*
 * Build a slice of the filter (see cold.h): the next hashes of the primary
 * key, read from its entries alone.  No snapshot is needed: an entry of a
 * row deleted or never committed only sets a bit more, and a filter may
 * say "maybe" of any hash (rows inserted later set their bits through
 * KsColdFilterAdd).
 */
void
KsColdFilterStep(KsAggRun *run)
{
	Oid			heapoid;
	Oid			indexoid;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skeys[2];
	int			nkeys = 1;
	uint64		n = 0;
	bool		whole = true;

	if (run->cold_building == NULL)
		return;
	/* without waiting (review robustness3, F3): the slice is tried again at the next step */
	if (!KsColdLockNow(&heapoid, &indexoid))
		return;
	heap = table_open(heapoid, NoLock);
	index = index_open(indexoid, NoLock);
	ScanKeyInit(&skeys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(run->def->id));
	/* in the primary key's order: where the last slice ended, the next begins */
	if (run->cold_build_after >= PG_INT32_MIN)
		ScanKeyInit(&skeys[nkeys++], 2, BTGreaterStrategyNumber, F_INT4GT,
					Int32GetDatum((int32) run->cold_build_after));
	scan = index_beginscan(heap, index, SnapshotAny, nkeys, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, skeys, nkeys, NULL, 0);
	while (index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		bool		isnull;
		int32		h = DatumGetInt32(index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull));

		/* stop between two hashes: the next slice starts after this one */
		if (n >= KS_COLD_FILTER_SLICE && h != run->cold_build_after)
		{
			whole = false;
			break;
		}
		if ((++n & 1023) == 0)
			KsCheckInterrupts();
		KsColdFilterSet(run->cold_building, run->cold_building_bits, (uint32) h);
		run->cold_build_after = h;
	}
	index_endscan(scan);
	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	if (whole)
	{
		/* whole: every cold key's hash is in it, and every key evicted since */
		if (run->cold_filter != NULL)
			pfree(run->cold_filter);
		run->cold_filter = run->cold_building;
		run->cold_filter_bits = run->cold_building_bits;
		run->cold_building = NULL;
	}
}

/* Fit the filter to the cold keys left (see cold.h). */
void
KsColdFilterFit(KsAggRun *run)
{
	if (run->cold_keys == 0 && run->cold_rows == 0)
	{
		/* none: no filter (a NULL one says no key is cold) */
		if (run->cold_filter != NULL)
			pfree(run->cold_filter);
		if (run->cold_building != NULL)
			pfree(run->cold_building);
		run->cold_filter = run->cold_building = NULL;
		run->cold_filter_bits = run->cold_building_bits = 0;
	}
	else if (run->cold_building == NULL && run->cold_filter_bits > KS_COLD_FILTER_MIN_BITS &&
			 (uint64) run->cold_keys * KS_COLD_FILTER_BITS_BUILT * 8 < run->cold_filter_bits)
		KsColdFilterStart(run, run->cold_keys);
}

/* Note an evicted key's hash (see cold.h). */
void
KsColdFilterAdd(KsAggRun *run, uint32 hash)
{
	if (run->cold_filter == NULL && run->cold_building == NULL)
	{
		/* the first cold key: an empty filter is whole */
		KsColdFilterStart(run, 0);
		run->cold_filter = run->cold_building;
		run->cold_filter_bits = run->cold_building_bits;
		run->cold_building = NULL;
	}
	if (run->cold_filter != NULL)
		KsColdFilterSet(run->cold_filter, run->cold_filter_bits, hash);
	if (run->cold_building != NULL)
		KsColdFilterSet(run->cold_building, run->cold_building_bits, hash);
	/* too full to filter well: build a larger one */
	else if ((uint64) run->cold_keys * KS_COLD_FILTER_BITS_FULL > run->cold_filter_bits)
		KsColdFilterStart(run, run->cold_keys);
}
