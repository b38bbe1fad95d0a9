/*-------------------------------------------------------------------------
 *
 * coldseed.c
 *	  A rescale's new part takes over the evicted keys of its key groups:
 *	  their cold rows are copied from the parts it is seeded from (seed.c)
 *	  under its own id, before it loads.  Part of the cold tier (cold.h).
 *
 * The parts a rescale retires write nothing more (ckptcommit.c), so their
 * cold rows in force are those of their last committed checkpoints (ids
 * below the next checkpoint's).  A new part copies those of its key groups
 * in one transaction of its own, before its first load, and renumbers
 * them: ids KsColdId(1, 0) on, so that they stay unique in the part and
 * below those of its own checkpoints.  The same transaction sets the part's
 * checkpoint_id to the last checkpoint number those ids use and cold_keys
 * to their number: the copy is then "committed" like a checkpoint's cold
 * rows (recovery keeps it, and discards only later ids), and a part whose
 * seed_from is set but whose checkpoint_id is not has not copied yet.  Each
 * row is checked (KsColdParse) before it is copied and gets the CRC of its
 * new id.  A key's group is its hash modulo max_parallelism, found in the
 * query, but a windowed aggregation's leaves the pane out (window.h): its
 * rows are all read and their keys hashed again (the types' hash functions,
 * as the owner).  The copy is made by the first load, once the query is
 * analysed and before recovery, which it then leaves to the next step; the
 * load that follows recovers the seeds' chunks (whose markers keep the
 * cold keys out of memory, cold.h) and counts the copies as the part's
 * cold keys; readers wait for the part until then (it is starting).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "cold.h"
#include "recovery.h"
#include "serialize.h"

/* Copies inserted per statement. */
#define KS_COLD_SEED_BATCH	1000

/* Rows being copied, and where the next one's id starts. */
typedef struct KsColdCopy
{
	int32		partid;
	int			n;
	uint32		hashes[KS_COLD_SEED_BATCH];
	uint32		places[KS_COLD_SEED_BATCH];	/* as they were: the aggregation's key_seed */
	uint64		ids[KS_COLD_SEED_BATCH];
	bytea	   *data[KS_COLD_SEED_BATCH];
	uint64		copied;
} KsColdCopy;

/* Insert the copies collected so far. */
static void
KsColdCopyFlush(KsColdCopy *copy)
{
	KsColdInsertRows(copy->partid, copy->n, copy->hashes, copy->places, copy->ids, copy->data, NULL);
	copy->n = 0;
}

/*
 * Copy the cold rows of one seed that belong to the part's key groups,
 * as of the seed's committed checkpoint `committed`.
 */
static void
KsColdCopySeed(KsAggRun *run, KsColdCopy *copy, int32 seed, int64 committed, MemoryContext batchcxt)
{
	KsAggDef   *def = run->def;
	int			skip = KsRunGroupSkip(run);
	Datum		args[6];
	Oid			argtypes[6] = {INT4OID, INT8OID, INT4OID, INT4OID, INT4OID, BOOLOID};
	SPIPlanPtr	plan;
	Portal		portal;
	Datum	   *keys = palloc(sizeof(Datum) * run->kt->nkeys);
	bool	   *nulls = palloc(sizeof(bool) * run->kt->nkeys);

	args[0] = Int32GetDatum(seed);
	args[1] = Int64GetDatum((int64) KsColdId(committed + 1, 0));
	args[2] = Int32GetDatum(def->max_parallelism);
	args[3] = Int32GetDatum(def->first_group);
	args[4] = Int32GetDatum(def->last_group);
	args[5] = BoolGetDatum(skip == 0);
	/*
	 * A key's group is its (unsigned) hash modulo max_parallelism, but a
	 * windowed aggregation's leaves the pane out of the hash: found below.
	 */
	plan = SPI_prepare("SELECT hash, place, id, data FROM keyedstate_internal.cold "
					   "WHERE aggregation_id = $1 AND id < $2 "
					   "  AND (NOT $6 OR (hash::pg_catalog.int8 & 4294967295) % $3 BETWEEN $4 AND $5)",
					   6, argtypes);
	if (plan == NULL)
		elog(ERROR, "keyedstate could not read the evicted keys of a rescale: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	for (;;)
	{
		SPITupleTable *fetched;
		uint64		nfetched;
		uint64		i;

		SPI_cursor_fetch(portal, true, KS_COLD_SEED_BATCH);
		/* (the inserts below replace SPI_tuptable) */
		fetched = SPI_tuptable;
		nfetched = SPI_processed;
		if (nfetched == 0)
			break;
		MemoryContextReset(batchcxt);
		for (i = 0; i < nfetched; i++)
		{
			HeapTuple	tup = fetched->vals[i];
			TupleDesc	desc = fetched->tupdesc;
			bool		isnull[4];
			uint32		hash = (uint32) DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull[0]));
			uint32		place = (uint32) DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull[3]));
			uint64		id = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull[1]));
			Datum		d = SPI_getbinval(tup, desc, 4, &isnull[2]);
			MemoryContext oldcxt;
			KsColdParts parts;
			bytea	   *data;
			bytea	   *row;
			uint64		newid;
			pg_crc32c	crc;

			if (isnull[0] || isnull[1] || isnull[2] || isnull[3])
				KsCheckpointCorrupted(run->name, "A row of keyedstate_internal.cold has a NULL column.");
			oldcxt = MemoryContextSwitchTo(batchcxt);
			data = DatumGetByteaPP(d);
			/* checked as the seed's row, then renumbered as the part's */
			KsColdParse(run->name, seed, hash, place, id, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), &parts);
			if (skip > 0)
			{
				int			group;

				KsKeyDeserialize(run->kt, parts.key, parts.keylen, run->name, keys, nulls);
				/* types' hash functions: user code */
				KsBecomeOwner(run);
				group = KsKeyGroupOf(run->kt, def->max_parallelism, skip, hash, keys, nulls);
				KsBecomeWorker();
				if (group < def->first_group || group > def->last_group)
				{
					MemoryContextSwitchTo(oldcxt);
					continue;
				}
			}
			if (copy->copied >= ((uint64) PG_INT64_MAX >> 1))
				elog(ERROR, "keyedstate cannot number so many evicted keys");
			newid = KsColdId(1, 0) + copy->copied;
			row = palloc(VARHDRSZ + VARSIZE_ANY_EXHDR(data));
			SET_VARSIZE(row, VARHDRSZ + VARSIZE_ANY_EXHDR(data));
			memcpy(VARDATA(row), VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
			crc = KsColdCrc(copy->partid, hash, place, newid, VARDATA(row), VARSIZE_ANY_EXHDR(row));
			memcpy(VARDATA(row) + KS_COLD_CRC_AT, &crc, sizeof(crc));
			MemoryContextSwitchTo(oldcxt);

			copy->hashes[copy->n] = hash;
			copy->places[copy->n] = place;
			copy->ids[copy->n] = newid;
			copy->data[copy->n] = row;
			copy->n++;
			copy->copied++;
			if (copy->n == KS_COLD_SEED_BATCH)
				KsColdCopyFlush(copy);
		}
		KsColdCopyFlush(copy);
		SPI_freetuptable(fetched);
		KsCheckInterrupts();
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

/* Copy a new part's evicted keys from its seeds, if it has to (see cold.h). */
bool
KsColdSeedCopy(KsAggRun *run)
{
	KsAggDef   *def = run->def;
	int64		offset;
	int64		committed;
	int64		cold_rows;
	ArrayType  *seeds;
	Datum	   *ids;
	int64	   *seed_committed;
	bool		any = false;
	KsColdCopy *copy;
	MemoryContext batchcxt;
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, INT8OID, INT8OID};
	int			nids;
	int			i;

	if (!def->is_part)
		return false;
	/* seeded or not as the catalog says now (a definition may be older) */
	KsReadProgress(run, def->id, true, &offset, &committed, &cold_rows, NULL, NULL, &seeds, NULL, NULL);
	if (seeds == NULL || committed != 0)
		return false;
	deconstruct_array(seeds, INT4OID, sizeof(int32), true, TYPALIGN_INT, &ids, NULL, &nids);
	seed_committed = palloc0(sizeof(int64) * Max(nids, 1));
	for (i = 0; i < nids; i++)
	{
		int32		seed = DatumGetInt32(ids[i]);
		int			first;
		int			last;

		KsReadProgress(run, seed, seed != def->agg_id, &offset, &seed_committed[i], &cold_rows,
					   &first, &last, NULL, NULL, NULL);
		if (cold_rows > 0 && first <= def->last_group && last >= def->first_group)
			any = true;
		else
			seed_committed[i] = -1;
	}
	if (!any)
		return false;

	/*
	 * Hold the part's row until the copy commits, never waiting (as a
	 * checkpoint does, ckptcommit.c): a rebuild or drop locks it before it
	 * deletes the cold rows (KsCheckpointForget), so it sees the copies or
	 * keeps the part from copying.  Not locked: try at a later step.
	 */
	args[0] = Int32GetDatum(def->id);
	if (SPI_execute_with_args("SELECT 1 FROM keyedstate_internal.part p "
							  "JOIN keyedstate_internal.aggregation a ON a.id = p.aggregation_id "
							  "WHERE p.id = $1 AND NOT p.retired AND p.checkpoint_id IS NULL "
							  "  AND p.seed_from IS NOT NULL "
							  "FOR NO KEY UPDATE OF p SKIP LOCKED FOR KEY SHARE OF a SKIP LOCKED",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "keyedstate could not lock a part of aggregation %s", run->name);
	if (SPI_processed != 1)
		return true;

	/* rows an interrupted checkpoint of this part left (it has none committed) */
	KsColdDiscardAfter(def->id, -1);
	copy = palloc0(sizeof(KsColdCopy));
	copy->partid = def->id;
	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate cold copy",
									 ALLOCSET_DEFAULT_SIZES);
	for (i = 0; i < nids; i++)
		if (seed_committed[i] >= 0)
			KsColdCopySeed(run, copy, DatumGetInt32(ids[i]), seed_committed[i], batchcxt);
	MemoryContextDelete(batchcxt);

	/* the copies count as committed by checkpoint K, the last number their ids use */
	args[0] = Int32GetDatum(def->id);
	args[1] = Int64GetDatum((int64) ((KsColdId(1, 0) + Max(copy->copied, 1) - 1) >> KS_COLD_ID_SHIFT));
	args[2] = Int64GetDatum((int64) copy->copied);
	if (SPI_execute_with_args("UPDATE keyedstate_internal.part SET checkpoint_id = $2, cold_keys = $3 WHERE id = $1",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_processed != 1)
		elog(ERROR, "keyedstate could not record the evicted keys of a rescale");
	ereport(LOG,
			(errmsg("keyedstate aggregation %s: part %d took over " UINT64_FORMAT " evicted keys of its key groups",
					run->name, def->part, copy->copied)));
	pfree(copy);
	return true;
}
