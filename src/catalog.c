/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reading and writing keyedstate_internal.aggregation.  See catalog.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

/*
 * Columns the worker and the control functions read, in this order, of an
 * aggregation `a` and, for one of its parts, the part `p` (else NULL).  An
 * aggregation's own checkpointed offset is its least advanced part's.
 */
#define KS_DEF_COLUMNS \
	"COALESCE(p.id, a.id), a.view, a.live, a.source, a.offset_attnum, a.sequence, " \
	"a.query_tree, a.settings, " \
	"(EXTRACT(EPOCH FROM a.checkpoint_interval) * 1000)::pg_catalog.int8, " \
	"a.paused, a.rebuilding, " \
	"CASE WHEN p.id IS NOT NULL THEN p.last_checkpoint IS NOT NULL " \
	"     ELSE a.last_checkpoint IS NOT NULL OR EXISTS (SELECT FROM keyedstate_internal.part q " \
	"          WHERE q.aggregation_id = a.id AND q.last_checkpoint IS NOT NULL) END, " \
	"a.resume_count, " \
	"COALESCE(p.checkpointed_offset, (SELECT pg_catalog.min(q.checkpointed_offset) " \
	"         FROM keyedstate_internal.part q WHERE q.aggregation_id = a.id), a.checkpointed_offset), " \
	"COALESCE((EXTRACT(EPOCH FROM a.ttl) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE((EXTRACT(EPOCH FROM a.window_size) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE((EXTRACT(EPOCH FROM a.window_slide) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE(a.memory_limit, 0), " \
	"a.id, p.id IS NOT NULL, a.parallelism, a.max_parallelism, a.layout, " \
	"COALESCE(p.part, 0), COALESCE(p.first_key_group, 0), " \
	"COALESCE(p.last_key_group, a.max_parallelism - 1), p.seed_from, " \
	"NOT " KS_BOUND_HERE ", " \
	"a.definition, COALESCE(a.pause_at, 0), " \
	"COALESCE(a.ttl_floor, '-infinity'::pg_catalog.timestamptz), " \
	"COALESCE(GREATEST(a.sequence_seen, (SELECT pg_catalog.max(q.sequence_seen) " \
	"         FROM keyedstate_internal.part q WHERE q.aggregation_id = a.id)), '-9223372036854775808'::pg_catalog.int8), " \
	"a.key_seed, " \
	"(SELECT pg_catalog.count(DISTINCT q.part) FROM keyedstate_internal.part q " \
	"  WHERE q.aggregation_id = a.id AND NOT q.retired), " \
	"(SELECT pg_catalog.count(*) FROM keyedstate_internal.part q " \
	"  WHERE q.aggregation_id = a.id AND NOT q.retired), " \
	"p.seed_from IS NULL OR pg_catalog.cardinality(p.seed_from) = " \
	"  (SELECT pg_catalog.count(*) FROM keyedstate_internal.part s WHERE s.id = ANY (p.seed_from) " \
	"    AND s.aggregation_id = a.id AND s.retired) + (a.id = ANY (p.seed_from))::pg_catalog.int4"

/* An aggregation alone: no part. */
#define KS_DEF_FROM_AGGREGATION \
	" FROM keyedstate_internal.aggregation a LEFT JOIN keyedstate_internal.part p ON false "

/*
 * What the worker runs: the parts of each aggregation that has some (but
 * retired ones), and every other aggregation whole.
 */
#define KS_DEF_FROM_RUNS \
	" FROM keyedstate_internal.aggregation a " \
	" LEFT JOIN keyedstate_internal.part p ON p.aggregation_id = a.id AND NOT p.retired " \
	"WHERE p.id IS NOT NULL OR NOT EXISTS (SELECT FROM keyedstate_internal.part q " \
	"                                      WHERE q.aggregation_id = a.id) "

/* Where results of the open bracket go: the context current when it opened. */
static MemoryContext ks_catalog_cxt = NULL;

/* Run SPI as the bootstrap superuser for keyedstate's own tables. */
void
KsCatalogOpen(KsCatalogAccess *acc)
{
	acc->save_cxt = ks_catalog_cxt;
	ks_catalog_cxt = CurrentMemoryContext;
	SPI_connect();
	/*
	 * Our SQL names no function or operator the caller's search_path could
	 * resolve to its own: run as superuser, one that matched better than
	 * pg_catalog's (regclass = regclass has no exact match there) would run
	 * the caller's code as superuser.
	 */
	acc->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", KS_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	GetUserIdAndSecContext(&acc->save_userid, &acc->save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   acc->save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Back to the caller's identity; SPI disconnected. */
void
KsCatalogClose(KsCatalogAccess *acc)
{
	SetUserIdAndSecContext(acc->save_userid, acc->save_sec);
	AtEOXact_GUC(true, acc->nestlevel);
	SPI_finish();
	ks_catalog_cxt = acc->save_cxt;
}

/* The OID of keyedstate_internal.aggregation, or InvalidOid without the extension. */
Oid
KsCatalogRelid(void)
{
	Oid			nsp = get_namespace_oid(KS_DATA_SCHEMA, true);

	return OidIsValid(nsp) ? get_relname_relid("aggregation", nsp) : InvalidOid;
}

/* The owner of a relation; InvalidOid if it is gone. */
Oid
KsRelationOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* The strings of a text[] as a list of C strings. */
List *
KsTextArrayToList(Datum array)
{
	List	   *result = NIL;
	Datum	   *elems;
	int			nelems;
	int			i;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, &nelems);
	for (i = 0; i < nelems; i++)
		result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/* A definition from a row of KS_DEF_COLUMNS, in CurrentMemoryContext. */
static KsAggDef *
KsDefFromTuple(HeapTuple tup, TupleDesc desc)
{
	KsAggDef   *def = palloc0(sizeof(KsAggDef));
	bool		isnull;
	Datum		settings;
	Datum		seeds;

	def->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	def->view_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	def->live_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	def->source_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	def->offset_attnum = DatumGetInt16(SPI_getbinval(tup, desc, 5, &isnull));
	def->sequence_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	def->query_tree = TextDatumGetCString(SPI_getbinval(tup, desc, 7, &isnull));
	settings = SPI_getbinval(tup, desc, 8, &isnull);
	if (!isnull)
		def->settings = KsTextArrayToList(settings);
	def->checkpoint_interval_ms = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
	def->paused = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
	def->rebuilding = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
	def->has_checkpoint = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
	def->resume_count = DatumGetInt64(SPI_getbinval(tup, desc, 13, &isnull));
	def->checkpointed_offset = DatumGetInt64(SPI_getbinval(tup, desc, 14, &isnull));
	def->ttl_us = DatumGetInt64(SPI_getbinval(tup, desc, 15, &isnull));
	def->window_size_us = DatumGetInt64(SPI_getbinval(tup, desc, 16, &isnull));
	def->window_slide_us = DatumGetInt64(SPI_getbinval(tup, desc, 17, &isnull));
	def->memory_limit = DatumGetInt64(SPI_getbinval(tup, desc, 18, &isnull));
	def->agg_id = DatumGetInt32(SPI_getbinval(tup, desc, 19, &isnull));
	def->is_part = DatumGetBool(SPI_getbinval(tup, desc, 20, &isnull));
	def->parallelism = DatumGetInt32(SPI_getbinval(tup, desc, 21, &isnull));
	def->max_parallelism = DatumGetInt32(SPI_getbinval(tup, desc, 22, &isnull));
	def->layout = DatumGetInt32(SPI_getbinval(tup, desc, 23, &isnull));
	def->part = DatumGetInt32(SPI_getbinval(tup, desc, 24, &isnull));
	def->first_group = DatumGetInt32(SPI_getbinval(tup, desc, 25, &isnull));
	def->last_group = DatumGetInt32(SPI_getbinval(tup, desc, 26, &isnull));
	seeds = SPI_getbinval(tup, desc, 27, &isnull);
	if (!isnull)
		deconstruct_array(DatumGetArrayTypeP(seeds), INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &def->seeds, NULL, &def->nseeds);
	def->other_cluster = DatumGetBool(SPI_getbinval(tup, desc, 28, &isnull));
	def->definition = TextDatumGetCString(SPI_getbinval(tup, desc, 29, &isnull));
	def->pause_at = DatumGetInt64(SPI_getbinval(tup, desc, 30, &isnull));
	def->ttl_floor = DatumGetTimestampTz(SPI_getbinval(tup, desc, 31, &isnull));
	if (TIMESTAMP_NOT_FINITE(def->ttl_floor))	/* (an earlier build's from an infinite time) */
		def->ttl_floor = DT_NOBEGIN;
	def->sequence_seen = DatumGetInt64(SPI_getbinval(tup, desc, 32, &isnull));
	def->key_seed = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 33, &isnull));
	if (def->is_part)
		KsCheckPartRows(def, DatumGetInt64(SPI_getbinval(tup, desc, 34, &isnull)),
						DatumGetInt64(SPI_getbinval(tup, desc, 35, &isnull)),
						DatumGetBool(SPI_getbinval(tup, desc, 36, &isnull)));
	return def;
}

/*
 * Read every aggregation of this database, or with `runs` what the worker
 * runs (the parts of those that have some); the list lives in cxt.
 */
List *
KsLoadDefinitions(MemoryContext cxt, bool runs)
{
	List	   *result = NIL;
	uint64		i;
	int			ret;

	ret = SPI_execute(runs ?
					  "SELECT " KS_DEF_COLUMNS KS_DEF_FROM_RUNS "ORDER BY a.id, p.part" :
					  "SELECT " KS_DEF_COLUMNS KS_DEF_FROM_AGGREGATION "ORDER BY a.id",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate_internal.aggregation: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		result = lappend(result, KsDefFromTuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc));
		MemoryContextSwitchTo(oldcxt);
	}
	return result;
}

/* A deep copy of a definition. */
KsAggDef *
KsCopyDefinition(const KsAggDef *def, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	KsAggDef   *copy = palloc(sizeof(KsAggDef));
	ListCell   *lc;

	memcpy(copy, def, sizeof(KsAggDef));
	copy->query_tree = pstrdup(def->query_tree);
	copy->definition = def->definition ? pstrdup(def->definition) : NULL;
	copy->damage = def->damage ? pstrdup(def->damage) : NULL;
	copy->settings = NIL;
	foreach(lc, def->settings)
		copy->settings = lappend(copy->settings, pstrdup(lfirst(lc)));
	if (def->nseeds > 0)
	{
		copy->seeds = palloc(sizeof(Datum) * def->nseeds);
		memcpy(copy->seeds, def->seeds, sizeof(Datum) * def->nseeds);
	}
	MemoryContextSwitchTo(oldcxt);
	return copy;
}

/* The qualified name of an aggregation's view, for messages. */
char *
KsAggName(Oid view_oid)
{
	char	   *relname = get_rel_name(view_oid);

	if (relname == NULL)
		return psprintf("aggregation with view %u", view_oid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(view_oid)), relname);
}

/* The definition behind a view (inside the bracket); false if none. */
bool
KsCatalogLookup(Oid view_oid, KsAggDef *def)
{
	Datum		arg = ObjectIdGetDatum(view_oid);
	Oid			argtype = OIDOID;
	int			ret;

	MemoryContext oldcxt;

	ret = SPI_execute_with_args("SELECT " KS_DEF_COLUMNS KS_DEF_FROM_AGGREGATION
								"WHERE a.view = $1::pg_catalog.regclass",
								1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	oldcxt = MemoryContextSwitchTo(ks_catalog_cxt);
	memcpy(def, KsDefFromTuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc), sizeof(KsAggDef));
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/* Whether the current transaction changed an aggregation's row (see catalog.h). */
bool
KsCatalogChangedHere(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;
	bool		changed = false;
	KsCatalogAccess acc;

	KsCatalogOpen(&acc);
	if (SPI_execute_with_args("SELECT a.xmin FROM keyedstate_internal.aggregation a WHERE a.id = $1",
							  1, &argtype, &arg, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		changed = TransactionIdIsCurrentTransactionId(
			DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
	KsCatalogClose(&acc);
	return changed;
}

/*
 * The next aggregation id (inside the bracket).  The sequences cycle (calls
 * failing or rolled back take ids too), so an id in use is skipped: its
 * aggregation, part, checkpoints, cold rows or live table (restored alone).
 */
int32
KsCatalogNextId(bool part)
{
	bool		isnull;

	for (int tries = 0; tries < 100000; tries++)
	{
		if (SPI_execute(psprintf("SELECT n FROM (SELECT pg_catalog.nextval('keyedstate_internal.%s')::int4 AS n) s "
								 "WHERE NOT EXISTS (SELECT FROM keyedstate_internal.aggregation a WHERE a.id = s.n) "
								 "AND NOT EXISTS (SELECT FROM keyedstate_internal.part p WHERE p.id = s.n) "
								 "AND NOT EXISTS (SELECT FROM keyedstate_internal.state t WHERE t.aggregation_id = s.n) "
								 "AND NOT EXISTS (SELECT FROM keyedstate_internal.cold c WHERE c.aggregation_id = s.n) "
								 "AND pg_catalog.to_regclass('keyedstate_internal.live_' || s.n) IS NULL",
								 part ? "part_id_seq" : "aggregation_id_seq"),
						false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not allocate an aggregation id");
		if (SPI_processed == 1)
			return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		CHECK_FOR_INTERRUPTS();
	}
	elog(ERROR, "could not allocate an aggregation id");
	pg_unreachable();
}

static bool ks_inserting = false;	/* KsCatalogInsert is inserting a row */

/* Whether KsCatalogInsert is inserting. */
bool
KsCatalogInserting(void)
{
	return ks_inserting;
}

/* Insert a new definition (inside the bracket). */
void
KsCatalogInsert(const KsNewAggregation *agg)
{
	Datum		args[23];
	Oid			argtypes[23] = {INT4OID, OIDOID, OIDOID, OIDOID, INT2OID, OIDOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT8OID, INTERVALOID, NAMEOID, INTERVALOID,
	INTERVALOID, INTERVALOID, NAMEOID, INT8OID, INT4OID, INT4OID, REGTYPEARRAYOID, REGTYPEARRAYOID,
	OIDARRAYOID};
	char		nulls[24] = "                       ";
	Datum	   *setdatums;
	ListCell   *lc;
	int			i = 0;
	int			ret;

	setdatums = palloc(sizeof(Datum) * Max(list_length(agg->settings), 1));
	foreach(lc, agg->settings)
		setdatums[i++] = CStringGetTextDatum(lfirst(lc));

	args[0] = Int32GetDatum(agg->id);
	args[1] = ObjectIdGetDatum(agg->view_oid);
	args[2] = ObjectIdGetDatum(agg->live_oid);
	args[3] = ObjectIdGetDatum(agg->source_oid);
	args[4] = Int16GetDatum(agg->offset_attnum);
	args[5] = ObjectIdGetDatum(agg->sequence_oid);
	args[6] = CStringGetTextDatum(agg->query_text);
	args[7] = CStringGetTextDatum(agg->definition);
	args[8] = CStringGetTextDatum(agg->query_tree);
	args[9] = PointerGetDatum(construct_array(setdatums, list_length(agg->settings), TEXTOID,
											  -1, false, TYPALIGN_INT));
	args[10] = Int64GetDatum(agg->start_offset);
	args[11] = agg->checkpoint_interval;
	args[12] = DirectFunctionCall1(namein,
								   CStringGetDatum(get_attname(agg->source_oid, agg->offset_attnum, false)));
	args[13] = agg->ttl;
	nulls[13] = (agg->ttl == (Datum) 0) ? 'n' : ' ';
	args[14] = agg->window_size;
	nulls[14] = (agg->window_size == (Datum) 0) ? 'n' : ' ';
	args[15] = agg->window_slide;
	nulls[15] = (agg->window_slide == (Datum) 0) ? 'n' : ' ';
	args[16] = agg->time_column == NULL ? (Datum) 0 :
		DirectFunctionCall1(namein, CStringGetDatum(agg->time_column));
	nulls[16] = (agg->time_column == NULL) ? 'n' : ' ';
	args[17] = Int64GetDatum(agg->memory_limit);
	nulls[17] = (agg->memory_limit == 0) ? 'n' : ' ';
	args[18] = Int32GetDatum(agg->parallelism);
	args[19] = Int32GetDatum(agg->max_parallelism);
	args[20] = agg->key_types;
	args[21] = agg->stored_types;
	args[22] = agg->aggregates;
	ks_inserting = true;
	PG_TRY();
	{
		ret = SPI_execute_with_args("INSERT INTO keyedstate_internal.aggregation (id, view, live, source, "
									"offset_attnum, sequence, query_text, definition, query_tree, settings, "
									"checkpointed_offset, checkpoint_interval, offset_column, ttl, "
									"window_size, window_slide, time_column, memory_limit, parallelism, "
									"max_parallelism, key_types, stored_types, aggregates) "
									"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
									"$15, $16, $17, $18, $19, $20, $21, $22, $23)",
									23, argtypes, args, nulls, false, 0);
	}
	PG_FINALLY();
	{
		ks_inserting = false;
	}
	PG_END_TRY();
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record aggregation: %s", SPI_result_code_string(ret));
	KsCatalogChanged();
}

/* Delete a definition (inside the bracket); false if it was gone. */
bool
KsCatalogDelete(int32 id, Oid *live_oid, Oid *source_oid)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("DELETE FROM keyedstate_internal.aggregation WHERE id = $1 "
								"RETURNING live, source",
								1, &argtype, &arg, NULL, false, 0);
	if (ret != SPI_OK_DELETE_RETURNING || SPI_processed != 1)
		return false;
	*live_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*source_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	KsCatalogChanged();
	return true;
}

/* KsCatalogAlter's "now" of the old TTL (NULL: none), and the old TTL as a fixed duration. */
#define KS_TTL_NOW \
	"(CASE WHEN window_size IS NULL THEN pg_catalog.clock_timestamp() ELSE GREATEST($6, " \
	"   CASE WHEN pg_catalog.isfinite(watermark) THEN watermark END, " \
	"   (SELECT pg_catalog.max(p.watermark) FROM keyedstate_internal.part p " \
	"     WHERE p.aggregation_id OPERATOR(pg_catalog.=) $1 AND pg_catalog.isfinite(p.watermark))) END)"
#define KS_TTL_FIXED \
	"pg_catalog.make_interval(secs => EXTRACT(EPOCH FROM ttl)::pg_catalog.float8)"

/* Pause, or resume (which also retries a failure), inside the bracket. */
void
KsCatalogSetPaused(int32 id, bool paused)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, BOOLOID};

	args[0] = Int32GetDatum(id);
	args[1] = BoolGetDatum(paused);
	if (SPI_execute_with_args(paused ?
							  "UPDATE keyedstate_internal.aggregation SET paused = $2 WHERE id = $1" :
							  "UPDATE keyedstate_internal.aggregation SET paused = $2, pause_at = NULL, resume_count = resume_count + 1 WHERE id = $1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update aggregation %d", id);
	KsCatalogChanged();
}

/*
 * Change what alter_aggregation() may change (inside the bracket): the TTL
 * (a NULL Datum: none) if set_ttl, the checkpoint interval if not NULL,
 * the memory limit (0: none) unless it is negative.
 */
void
KsCatalogAlter(int32 id, bool set_ttl, Datum ttl, Datum checkpoint_interval,
			   int64 memory_limit, TimestampTz watermark)
{
	Datum		args[6];
	Oid			argtypes[6] = {INT4OID, BOOLOID, INTERVALOID, INTERVALOID, INT8OID, TIMESTAMPTZOID};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int32GetDatum(id);
	args[1] = BoolGetDatum(set_ttl);
	args[2] = ttl;
	nulls[2] = (ttl == (Datum) 0) ? 'n' : ' ';
	args[3] = checkpoint_interval;
	nulls[3] = (checkpoint_interval == (Datum) 0) ? 'n' : ' ';
	args[4] = Int64GetDatum(memory_limit);
	args[5] = TimestampTzGetDatum(watermark);
	nulls[5] = TIMESTAMP_NOT_FINITE(watermark) ? 'n' : ' ';
	/*
	 * A longer TTL or none keeps expired what the old one had expired by
	 * now (ttl_floor: see KsExpiredAt), or a window's by the newest finite
	 * watermark published or checkpointed (KsWindowExpiredUpTo), none if
	 * there is none; never before the start of the range, where the
	 * subtraction would fail (re-review today 33, F1: a watermark within
	 * the TTL of 4714-11-24 BC made alter_aggregation() fail).  SET reads
	 * the old row.
	 */
	if (SPI_execute_with_args("UPDATE keyedstate_internal.aggregation SET "
							  "ttl_floor = CASE WHEN $2 AND ttl IS NOT NULL AND "
							  "  ($3 IS NULL OR EXTRACT(EPOCH FROM $3) OPERATOR(pg_catalog.>) EXTRACT(EPOCH FROM ttl)) "
							  "  THEN GREATEST(ttl_floor, "
							  "       (GREATEST(" KS_TTL_NOW ", pg_catalog.to_timestamp(-210866803200) OPERATOR(pg_catalog.+) " KS_TTL_FIXED ") "
							  "        OPERATOR(pg_catalog.-) " KS_TTL_FIXED ") "
							  "       OPERATOR(pg_catalog.+) (" KS_TTL_NOW " OPERATOR(pg_catalog.-) " KS_TTL_NOW ")) "
							  "  ELSE ttl_floor END, "
							  "ttl = CASE WHEN $2 THEN $3 ELSE ttl END, "
							  "checkpoint_interval = COALESCE($4, checkpoint_interval), "
							  "memory_limit = CASE WHEN $5 < 0 THEN memory_limit "
							  "               ELSE NULLIF($5, 0) END "
							  "WHERE id = $1",
							  6, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update aggregation %d", id);
	KsCatalogChanged();
}

/* The analysed query, view and (if wanted) definition text of an aggregation (inside the bracket). */
char *
KsCatalogQueryTree(int32 id, Oid *view_oid, char **definition)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;

	if (SPI_execute_with_args("SELECT CASE WHEN " KS_BOUND_HERE " THEN a.query_tree ELSE '' END, a.view, a.definition "
							  "FROM keyedstate_internal.aggregation a WHERE a.id = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return NULL;
	*view_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (definition != NULL)
		*definition = MemoryContextStrdup(ks_catalog_cxt,
										  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	return MemoryContextStrdup(ks_catalog_cxt,
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/* What every aggregation stores, oldest first (see catalog.h; inside the bracket). */
List *
KsCatalogStored(KsStoredKind kind)
{
	static const char *const columns[] = {"key_types", "stored_types", "aggregates"};
	List	   *result = NIL;
	uint64		i;

	if (SPI_execute(psprintf("SELECT view, %s FROM keyedstate_internal.aggregation ORDER BY id", columns[kind]),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate_internal.aggregation");
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext oldcxt;
		KsStoredOids *st;
		bool		isnull;
		Datum		oids = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		Datum	   *elems;
		int			n;

		if (isnull)
			elog(ERROR, "keyedstate_internal.aggregation has a NULL %s", columns[kind]);
		/* (regtype and oid: both an Oid by value) */
		deconstruct_array(DatumGetArrayTypeP(oids), ARR_ELEMTYPE(DatumGetArrayTypeP(oids)),
						  sizeof(Oid), true, TYPALIGN_INT, &elems, NULL, &n);
		oldcxt = MemoryContextSwitchTo(ks_catalog_cxt);
		st = palloc(sizeof(KsStoredOids));
		st->view_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		st->noids = n;
		st->oids = palloc(sizeof(Oid) * Max(n, 1));
		for (int j = 0; j < n; j++)
			st->oids[j] = DatumGetObjectId(elems[j]);
		result = lappend(result, st);
		MemoryContextSwitchTo(oldcxt);
	}
	return result;
}

/* Every aggregation, as (view, id) pairs in the caller's memory (inside the bracket). */
void
KsCatalogAll(List **views, List **ids)
{
	MemoryContext cxt = ks_catalog_cxt;
	uint64		i;

	*views = NIL;
	*ids = NIL;
	if (SPI_execute("SELECT view, id FROM keyedstate_internal.aggregation", true, 0) != SPI_OK_SELECT)
		return;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		*views = lappend_oid(*views, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
		*ids = lappend_int(*ids, DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)));
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * The definitions changed: a relcache invalidation of the catalog table,
 * sent at commit (also at COMMIT PREPARED, from another session), makes
 * the worker reload them even when no backend's commit callback could
 * tell it.
 */
void
KsCatalogChanged(void)
{
	Oid			relid = KsCatalogRelid();

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

/* The name of an aggregation, even one that has no slot yet (see catalog.h). */
char *
KsAggregationName(int32 aggid, Oid view_oid)
{
	KsCatalogAccess acc;
	Oid			found = view_oid;
	char	   *tree;

	if (!OidIsValid(found))
	{
		KsCatalogOpen(&acc);
		tree = KsCatalogQueryTree(aggid, &found, NULL);
		KsCatalogClose(&acc);
		if (tree == NULL)
			return psprintf("%d", aggid);
	}
	return KsAggName(found);
}
