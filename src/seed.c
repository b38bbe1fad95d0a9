/*-------------------------------------------------------------------------
 *
 * seed.c
 *	  Recovering a part that a rescale added: loading the keys of its key
 *	  groups from the checkpoints of the parts it replaces (or of the
 *	  aggregation, when it ran whole), and where each group's rows start;
 *	  also reading a run's progress row, and settling the keys recovery
 *	  found expired.  Part of recovery (recovery.h).
 *
 * A rescale (control.c) retires the running parts and adds those of the
 * next layout, each listing in seed_from the retired ones whose key
 * groups overlap its own.  The retired parts' checkpoints stay as they
 * were committed (a retired part writes nothing more, ckptcommit.c), and
 * the new part waits until no worker runs them (step.c), so each seed is
 * one consistent pair of committed chunks and offset.  The new part keeps
 * the keys of its groups from them, and consumes each group's rows after
 * the offset of the seed it comes from: a row of an older offset is in
 * that seed's state already, a row of a newer one is not.  So every row
 * counts once whatever the seeds' offsets, and a crash before the new
 * part's first checkpoint only repeats the seeding.  That first checkpoint
 * is full, so from then on the part recovers from its own.  Keys the
 * seeds had evicted are not loaded (their chunks hold markers): their
 * cold rows were copied under the part's id before (coldseed.c).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"

#include "checkpoint.h"
#include "recovery.h"
#include "serialize.h"

/* Read the progress of a run's row (see recovery.h). */
void
KsReadProgress(KsAggRun *run, int32 id, bool is_part, int64 *offset, int64 *committed,
			   int64 *cold_rows, int *first_group, int *last_group, ArrayType **seeds,
			   TimestampTz *watermark, int32 *chain_chunks)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args(is_part ?
								"SELECT checkpointed_offset, COALESCE(checkpoint_id, 0), cold_keys, "
								"first_key_group, last_key_group, seed_from, watermark, "
								"COALESCE(checkpoint_chunks, -1) FROM keyedstate_internal.part WHERE id = $1" :
								"SELECT checkpointed_offset, COALESCE(checkpoint_id, 0), cold_keys, "
								"0, max_parallelism - 1, NULL::int[], watermark, "
								"COALESCE(checkpoint_chunks, -1) FROM keyedstate_internal.aggregation WHERE id = $1",
								1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregation %s no longer exists", run->name)));
	*offset = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*committed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	/* the rows of keyedstate_internal.cold as of that checkpoint (cold.h) */
	*cold_rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (first_group != NULL)
		*first_group = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	if (last_group != NULL)
		*last_group = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	if (seeds != NULL)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);

		*seeds = isnull ? NULL : DatumGetArrayTypePCopy(d);
	}
	if (watermark != NULL)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull);

		*watermark = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	}
	if (chain_chunks != NULL)
		*chain_chunks = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 8, &isnull));
}

/* Recover a new part from the checkpoints it is seeded from (see recovery.h). */
void
KsRecoverSeeds(KsAggRun *run, ArrayType *seeds, int64 copied)
{
	KsAggDef   *def = run->def;
	int			ngroups = def->max_parallelism;
	int64	   *starts = MemoryContextAlloc(run->loadcxt, sizeof(int64) * ngroups);
	bool	   *covered = palloc0(sizeof(bool) * ngroups);
	int64		consumed = PG_INT64_MAX;
	int64		until = PG_INT64_MIN;
	Datum	   *ids;
	int			nids;
	int			g;
	int			i;

	run->recovered_wm = DT_NOBEGIN;
	deconstruct_array(seeds, INT4OID, sizeof(int32), true, TYPALIGN_INT, &ids, NULL, &nids);
	for (i = 0; i < nids; i++)
	{
		int32		seed = DatumGetInt32(ids[i]);
		int64		offset;
		int64		committed;
		int64		cold_rows;
		int			first;
		int			last;
		TimestampTz wm;
		int32		chunks;

		KsReadProgress(run, seed, seed != def->agg_id, &offset, &committed, &cold_rows,
					   &first, &last, NULL, &wm, &chunks);
		/* rows are read again from the oldest seed's offset: its watermark (window.h) */
		if (offset < consumed || (offset == consumed && wm > run->recovered_wm))
			run->recovered_wm = wm;
		/* its evicted keys of our groups were copied before this load (coldseed.c) */
		if (cold_rows != 0 && copied == 0 && first <= def->last_group && last >= def->first_group)
			KsCheckpointCorrupted(run->name,
								  "A part it is seeded from has evicted keys that were not copied.");
		KsRecoverChain(run, seed, committed, offset, chunks, false);
		for (g = Max(first, def->first_group); g <= Min(last, def->last_group); g++)
		{
			starts[g] = offset;
			covered[g] = true;
			consumed = Min(consumed, offset);
			until = Max(until, offset);
		}
	}
	for (g = def->first_group; g <= def->last_group; g++)
		if (!covered[g])
			KsCheckpointCorrupted(run->name, "No part it is seeded from holds key group %d.", g);
	/*
	 * The rows of the seeds' offsets on are consumed again, each group's
	 * from its own.  Until every group is past its start a checkpoint
	 * could not say where each group is, so none is taken (step.c): a
	 * restart seeds again.
	 */
	run->group_starts = starts;
	run->seed_until = until;
	run->seed_ckpt_due = true;
	run->checkpointed = consumed;
	run->consumed = consumed;
	/* its cold rows are the copies (KsRecover read their number); later ids are its own */
	run->ckpt_last_id = Max(run->ckpt_last_id, copied);
	/* (KsRecover left ckpt_have_full false: its first checkpoint is full) */
}

/*
 * After recovery: stored tombstones have hidden the older versions of their
 * keys and go; keys whose TTL ran out while no worker ran stay expired
 * until the next checkpoint has written them as tombstones.
 */
void
KsRecoverSettleExpired(KsAggRun *run)
{
	KsKeyIter	iter;
	KsKeyEntry *e;

	KsKeyIterInit(&iter, run->kt);
	while ((e = KsKeyIterNext(&iter)) != NULL)
	{
		if (e->flags & KS_KEY_TOMBSTONE)
		{
			KsKeySetFlags(run->kt, e, e->flags & ~(KS_KEY_TOMBSTONE | KS_KEY_EXPIRED));
			KsKeyTableRemove(run->kt, e);
		}
		else if (e->flags & KS_KEY_EXPIRED)
			KsKeyMarkCheckpoint(run->kt, e);
	}
	run->recovered_expired = 0;
}
