/*-------------------------------------------------------------------------
 *
 * catalogparts.c
 *	  Reading and writing keyedstate_internal.part: the parts of an aggregation run
 *	  in parallel, each over a range of its key groups, and their layouts
 *	  as a rescale replaces them; and a rebuild, which starts every part
 *	  over.  See catalog.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "catalog.h"

/* Record a part of an aggregation's layout (see catalog.h). */
void
KsCatalogInsertPart(int32 id, int32 aggid, int32 layout, int part, int first_group,
					int last_group, int64 start_offset, Datum seeds)
{
	Oid			argtypes[8] = {INT4OID, INT4OID, INT4OID, INT4OID, INT4OID, INT4OID, INT8OID,
	INT4ARRAYOID};
	Datum		args[8];
	char		nulls[8] = "       ";

	args[0] = Int32GetDatum(id);
	args[1] = Int32GetDatum(aggid);
	args[2] = Int32GetDatum(layout);
	args[3] = Int32GetDatum(part);
	args[4] = Int32GetDatum(first_group);
	args[5] = Int32GetDatum(last_group);
	args[6] = Int64GetDatum(start_offset);
	args[7] = seeds;
	if (seeds == (Datum) 0)
		nulls[7] = 'n';
	if (SPI_execute_with_args("INSERT INTO keyedstate_internal.part (id, aggregation_id, layout, part, "
							  "first_key_group, last_key_group, checkpointed_offset, seed_from) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							  8, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a part of aggregation %d", aggid);
	KsCatalogChanged();
}

/* Retire what runs an aggregation now, for a rescale (see catalog.h). */
Datum
KsCatalogRescale(int32 id, int parallelism, int32 *layout, int64 *start)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT4OID};
	bool		isnull;
	Datum		seeds;

	args[0] = Int32GetDatum(id);
	args[1] = Int32GetDatum(parallelism);
	/* the seeds: the running parts, or the aggregation itself when it has none */
	if (SPI_execute_with_args("WITH old AS ("
							  " UPDATE keyedstate_internal.part SET retired = true "
							  "  WHERE aggregation_id = $1 AND NOT retired "
							  " RETURNING id, checkpointed_offset) "
							  "SELECT COALESCE((SELECT pg_catalog.array_agg(id ORDER BY id) FROM old), "
							  "                ARRAY[a.id]), "
							  "       COALESCE((SELECT pg_catalog.min(checkpointed_offset) FROM old), "
							  "                a.checkpointed_offset) "
							  "  FROM keyedstate_internal.aggregation a WHERE a.id = $1",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not rescale aggregation %d", id);
	seeds = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	seeds = PointerGetDatum(DatumGetArrayTypePCopy(seeds));
	*start = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (SPI_execute_with_args("UPDATE keyedstate_internal.aggregation SET parallelism = $2, layout = layout + 1 "
							  "WHERE id = $1 RETURNING layout",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not rescale aggregation %d", id);
	*layout = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	KsCatalogChanged();
	return seeds;
}

/* The key groups of part p of n (see catalog.h). */
void
KsPartGroups(int p, int n, int max, int *first, int *last)
{
	*first = (int) (((int64) p * max + n - 1) / n);
	*last = (int) (((int64) (p + 1) * max + n - 1) / n) - 1;
}

/*
 * Judge a part's rows as a rescale writes them (see catalog.h): the running
 * parts are numbered 0 to parallelism - 1 once each, each has its number's
 * key groups, so they tile the groups; a part's seeds are retired parts of
 * its aggregation, or the aggregation itself, once each.  Rows that are
 * not (edited by hand) would count a group's rows in two parts, or load
 * another aggregation's keys (review bytes 62, F3, F6).
 */
void
KsCheckPartRows(KsAggDef *def, int64 numbers, int64 parts, bool seeds_ok)
{
	int			first;
	int			last;

	if (def->part < 0 || def->part >= def->parallelism)
	{
		def->damage = psprintf("Its part %d is not one of its parts 0 to %d.", def->part, def->parallelism - 1);
		return;
	}
	KsPartGroups(def->part, def->parallelism, def->max_parallelism, &first, &last);
	if (first != def->first_group || last != def->last_group)
		def->damage = psprintf("Its part %d has key groups %d to %d, but part %d of %d has groups %d to %d.",
							   def->part, def->first_group, def->last_group, def->part, def->parallelism,
							   first, last);
	else if (numbers != def->parallelism || parts != def->parallelism)
		def->damage = psprintf("It has " INT64_FORMAT " running parts with " INT64_FORMAT " numbers, but its parallelism is %d.",
							   parts, numbers, def->parallelism);
	else if (!seeds_ok)
		def->damage = psprintf("Its part %d is seeded from parts that are not retired parts of it.", def->part);
}

/*
 * Why an aggregation cannot be rescaled now, or NULL: a rescale still
 * running (a part not yet checkpointed since it was seeded; inside the
 * bracket).  Locks its row against
 * other rescales.
 */
const char *
KsCatalogRescaleBlocked(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;

	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM keyedstate_internal.part p WHERE p.aggregation_id = a.id "
							  "               AND NOT p.retired AND p.seed_from IS NOT NULL) "
							  "  FROM keyedstate_internal.aggregation a WHERE a.id = $1 FOR UPDATE",
							  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read aggregation %d", id);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return "Its previous rescale is still running: a new part has not taken its first checkpoint yet.";
	return NULL;
}

/* Consume again from `start_offset` with no state (inside the bracket); the new resume count. */
int64
KsCatalogRebuild(int32 id, int64 start_offset)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	bool		isnull;
	int64		resume_count;

	args[0] = Int32GetDatum(id);
	args[1] = Int64GetDatum(start_offset);
	if (SPI_execute_with_args("UPDATE keyedstate_internal.aggregation SET checkpointed_offset = $2, "
							  "paused = false, pause_at = NULL, rebuilding = true, last_checkpoint = NULL, checkpoint_id = NULL, checkpoint_chunks = NULL, cold_keys = 0, ttl_floor = NULL, watermark = NULL, "
							  "clean_stop = false, resume_count = resume_count + 1, "
							  /* (retired parts go below: what their sequence was seen at stays) */
							  "sequence_seen = GREATEST(sequence_seen, (SELECT pg_catalog.max(q.sequence_seen) "
							  "  FROM keyedstate_internal.part q WHERE q.aggregation_id = $1)) "
							  "WHERE id = $1 RETURNING resume_count",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not update aggregation %d", id);
	resume_count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* its parts start again too; a rescale's retired ones are not needed any more */
	if (SPI_execute_with_args("DELETE FROM keyedstate_internal.part WHERE aggregation_id = $1 AND retired",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("UPDATE keyedstate_internal.part SET checkpointed_offset = $2, "
							  "last_checkpoint = NULL, checkpoint_id = NULL, checkpoint_chunks = NULL, cold_keys = 0, watermark = NULL, "
							  "clean_stop = false, seed_from = NULL WHERE aggregation_id = $1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update the parts of aggregation %d", id);
	KsCatalogChanged();
	return resume_count;
}

/* A window changed (see catalog.h). */
void
KsCatalogSetWindow(int32 id, const char *query_tree, const char *definition,
				   Datum size, Datum slide, const char *time_column)
{
	Datum		args[6];
	Oid			argtypes[6] = {INT4OID, TEXTOID, TEXTOID, INTERVALOID, INTERVALOID, NAMEOID};

	args[0] = Int32GetDatum(id);
	args[1] = CStringGetTextDatum(query_tree);
	args[2] = CStringGetTextDatum(definition);
	args[3] = size;
	args[4] = slide;
	args[5] = DirectFunctionCall1(namein, CStringGetDatum(time_column));
	if (SPI_execute_with_args("UPDATE keyedstate_internal.aggregation SET query_tree = $2, definition = $3, "
							  "window_size = $4, window_slide = $5, time_column = $6 WHERE id = $1",
							  6, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update aggregation %d", id);
	KsCatalogChanged();
}
