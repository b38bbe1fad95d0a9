/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reading and writing keyedstate.aggregation.  See catalog.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"

/* Columns the worker and the control functions read, in this order. */
#define KS_DEF_COLUMNS \
	"id, view, live, source, offset_attnum, sequence, query_tree, settings, " \
	"(EXTRACT(EPOCH FROM checkpoint_interval) * 1000)::pg_catalog.int8, " \
	"paused, rebuilding, last_checkpoint IS NOT NULL, resume_count, checkpointed_offset, " \
	"COALESCE((EXTRACT(EPOCH FROM ttl) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE((EXTRACT(EPOCH FROM window_size) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE((EXTRACT(EPOCH FROM window_slide) * 1000000)::pg_catalog.int8, 0), " \
	"COALESCE(memory_limit, 0)"

/* Where results of the open bracket go: the context current when it opened. */
static MemoryContext ks_catalog_cxt = NULL;

/* Run SPI as the bootstrap superuser for keyedstate's own tables. */
void
KsCatalogOpen(KsCatalogAccess *acc)
{
	acc->save_cxt = ks_catalog_cxt;
	ks_catalog_cxt = CurrentMemoryContext;
	SPI_connect();
	GetUserIdAndSecContext(&acc->save_userid, &acc->save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   acc->save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Back to the caller's identity; SPI disconnected. */
void
KsCatalogClose(KsCatalogAccess *acc)
{
	SetUserIdAndSecContext(acc->save_userid, acc->save_sec);
	SPI_finish();
	ks_catalog_cxt = acc->save_cxt;
}

/* The OID of keyedstate.aggregation, or InvalidOid without the extension. */
Oid
KsCatalogRelid(void)
{
	Oid			nsp = get_namespace_oid(KS_SCHEMA, true);

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
	return def;
}

/* Read every aggregation of this database; the list lives in cxt. */
List *
KsLoadDefinitions(MemoryContext cxt)
{
	List	   *result = NIL;
	uint64		i;
	int			ret;

	ret = SPI_execute("SELECT " KS_DEF_COLUMNS " FROM keyedstate.aggregation ORDER BY id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate.aggregation: %s", SPI_result_code_string(ret));
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
	copy->settings = NIL;
	foreach(lc, def->settings)
		copy->settings = lappend(copy->settings, pstrdup(lfirst(lc)));
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

	ret = SPI_execute_with_args("SELECT " KS_DEF_COLUMNS " FROM keyedstate.aggregation "
								"WHERE view = $1::pg_catalog.regclass",
								1, &argtype, &arg, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	oldcxt = MemoryContextSwitchTo(ks_catalog_cxt);
	memcpy(def, KsDefFromTuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc), sizeof(KsAggDef));
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/* The next aggregation id (inside the bracket). */
int32
KsCatalogNextId(void)
{
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.nextval('keyedstate.aggregation_id_seq')::int4", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not allocate an aggregation id");
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Set while KsCatalogInsert inserts a row (see KsCatalogInserting). */
static bool ks_inserting = false;

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
	Datum		args[18];
	Oid			argtypes[18] = {INT4OID, OIDOID, OIDOID, OIDOID, INT2OID, OIDOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT8OID, INTERVALOID, NAMEOID, INTERVALOID,
	INTERVALOID, INTERVALOID, NAMEOID, INT8OID};
	char		nulls[19] = "                  ";
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
	ks_inserting = true;
	PG_TRY();
	{
		ret = SPI_execute_with_args("INSERT INTO keyedstate.aggregation (id, view, live, source, "
									"offset_attnum, sequence, query_text, definition, query_tree, settings, "
									"checkpointed_offset, checkpoint_interval, offset_column, ttl, "
									"window_size, window_slide, time_column, memory_limit) "
									"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
									"$15, $16, $17, $18)",
									18, argtypes, args, nulls, false, 0);
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

	ret = SPI_execute_with_args("DELETE FROM keyedstate.aggregation WHERE id = $1 "
								"RETURNING live, source",
								1, &argtype, &arg, NULL, false, 0);
	if (ret != SPI_OK_DELETE_RETURNING || SPI_processed != 1)
		return false;
	*live_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*source_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	KsCatalogChanged();
	return true;
}

/* Pause, or resume (which also retries a failure), inside the bracket. */
void
KsCatalogSetPaused(int32 id, bool paused)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, BOOLOID};

	args[0] = Int32GetDatum(id);
	args[1] = BoolGetDatum(paused);
	if (SPI_execute_with_args(paused ?
							  "UPDATE keyedstate.aggregation SET paused = $2 WHERE id = $1" :
							  "UPDATE keyedstate.aggregation SET paused = $2, resume_count = resume_count + 1 WHERE id = $1",
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
			   int64 memory_limit)
{
	Datum		args[5];
	Oid			argtypes[5] = {INT4OID, BOOLOID, INTERVALOID, INTERVALOID, INT8OID};
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	args[0] = Int32GetDatum(id);
	args[1] = BoolGetDatum(set_ttl);
	args[2] = ttl;
	nulls[2] = (ttl == (Datum) 0) ? 'n' : ' ';
	args[3] = checkpoint_interval;
	nulls[3] = (checkpoint_interval == (Datum) 0) ? 'n' : ' ';
	args[4] = Int64GetDatum(memory_limit);
	if (SPI_execute_with_args("UPDATE keyedstate.aggregation SET "
							  "ttl = CASE WHEN $2 THEN $3 ELSE ttl END, "
							  "checkpoint_interval = COALESCE($4, checkpoint_interval), "
							  "memory_limit = CASE WHEN $5 < 0 THEN memory_limit "
							  "               ELSE NULLIF($5, 0) END "
							  "WHERE id = $1",
							  5, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update aggregation %d", id);
	KsCatalogChanged();
}

/* Consume again from `start_offset` with no state (inside the bracket). */
void
KsCatalogRebuild(int32 id, int64 start_offset)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};

	args[0] = Int32GetDatum(id);
	args[1] = Int64GetDatum(start_offset);
	if (SPI_execute_with_args("UPDATE keyedstate.aggregation SET checkpointed_offset = $2, "
							  "paused = false, rebuilding = true, last_checkpoint = NULL, checkpoint_id = NULL, cold_keys = 0, "
							  "clean_stop = false, resume_count = resume_count + 1 WHERE id = $1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update aggregation %d", id);
	KsCatalogChanged();
}

/* The analysed query and view of an aggregation (inside the bracket). */
char *
KsCatalogQueryTree(int32 id, Oid *view_oid)
{
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	bool		isnull;

	if (SPI_execute_with_args("SELECT query_tree, view FROM keyedstate.aggregation WHERE id = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return NULL;
	*view_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return MemoryContextStrdup(ks_catalog_cxt,
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/* Every aggregation, as (view, id) pairs in the caller's memory (inside the bracket). */
void
KsCatalogAll(List **views, List **ids)
{
	MemoryContext cxt = ks_catalog_cxt;
	uint64		i;

	*views = NIL;
	*ids = NIL;
	if (SPI_execute("SELECT view, id FROM keyedstate.aggregation", true, 0) != SPI_OK_SELECT)
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
