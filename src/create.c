/*-------------------------------------------------------------------------
 *
 * create.c
 *	  keyedstate.create_aggregation(): defining an aggregation and its view.
 *
 * In stages:
 *	1. the arguments, and the view's name (the caller must be able to
 *	   create it);
 *	2. the query, parsed and analysed as the caller, so that privileges
 *	   and name resolution are the caller's; what an aggregation may
 *	   contain is decided by definition.c; the aggregate calls are prepared
 *	   once to refuse what the worker could not run;
 *	3. the source: SELECT on what the query reads (checked by analysis),
 *	   and ownership or the TRIGGER privilege, since the aggregation puts
 *	   triggers on it; its offset column, index and sequence (source.h);
 *	4. the objects, created by the bootstrap superuser since users may not
 *	   create them: the live foreign table in schema keyedstate (kept by
 *	   the superuser, readable by anyone, the wrapper checking each scan;
 *	   see liveview.c), the view (given to the caller), the wake-up and
 *	   TRUNCATE triggers on the source;
 *	5. the view's rewrite rule made to depend on everything the query
 *	   uses, exactly as if the view ran the query itself, so DROP TABLE,
 *	   DROP COLUMN and ALTER COLUMN TYPE of the source are refused naming
 *	   the view, and renames are harmless;
 *	6. the catalog row and a shared-memory slot, reserved now so that a
 *	   full server refuses the aggregation instead of leaving it
 *	   'starting'; the worker is asked for at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/ruleutils.h"

#include "absent.h"
#include "aggcall.h"
#include "arguments.h"
#include "catalog.h"
#include "definition.h"
#include "hooks.h"
#include "keytypes.h"
#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "source.h"
#include "window.h"

PG_FUNCTION_INFO_V1(keyedstate_create_aggregation);

/* What the stages find out. */
typedef struct KsCreateState
{
	char	   *name;			/* as given */
	char	   *querytext;
	char	   *start_from;
	char	   *offset_column;	/* NULL: choose one */
	Interval   *interval;
	RangeVar   *viewrv;
	Oid			nspid;
	Oid			userid;
	Query	   *query;
	KsQueryInfo info;
	AttrNumber	offset_attnum;
	Oid			seqoid;
	int64		start_offset;
	int32		id;
	Oid			view_oid;
	Oid			live_oid;
	Datum		ttl;			/* an Interval, or 0 for none */
	KsWindowSpec *window;		/* or NULL */
	int64		memory_limit;	/* bytes, or 0 for none */
	int			parallelism;
	int			max_parallelism;
} KsCreateState;

/* Stage 1: the arguments and the view's name. */
static void
KsCreateArguments(FunctionCallInfo fcinfo, KsCreateState *cs)
{
	List	   *names;
	Oid			existing;

	/* (parallelism and max_parallelism too, as their defaults would hide a NULL: newuser review 2, F1) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4) ||
		(PG_NARGS() > 11 && (PG_ARGISNULL(10) || PG_ARGISNULL(11))))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "name" : PG_ARGISNULL(1) ? "query" :
						PG_ARGISNULL(2) ? "start_from" : PG_ARGISNULL(4) ? "checkpoint_interval" :
						PG_ARGISNULL(10) ? "parallelism" : "max_parallelism")));
	cs->name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	cs->querytext = text_to_cstring(PG_GETARG_TEXT_PP(1));
	cs->start_from = text_to_cstring(PG_GETARG_TEXT_PP(2));
	cs->offset_column = PG_ARGISNULL(3) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(3)));
	cs->interval = PG_GETARG_INTERVAL_P(4);
	cs->ttl = KsTtlArgument(PG_ARGISNULL(5) ? NULL : PG_GETARG_INTERVAL_P(5));
	cs->window = KsWindowArguments(PG_ARGISNULL(6) ? NULL : PG_GETARG_INTERVAL_P(6),
								   PG_ARGISNULL(7) ? NULL : PG_GETARG_INTERVAL_P(7),
								   PG_ARGISNULL(8) ? NULL : NameStr(*PG_GETARG_NAME(8)));
	cs->memory_limit = KsMemoryLimitArgument(PG_ARGISNULL(9) ? NULL : PG_GETARG_TEXT_PP(9));
	KsCheckMemoryLimitAllowed(cs->memory_limit,
							  cs->window != NULL && cs->window->size_us > cs->window->slide_us);
	cs->parallelism = PG_NARGS() > 11 ? PG_GETARG_INT32(10) : 1;
	cs->max_parallelism = PG_NARGS() > 11 ? PG_GETARG_INT32(11) : KS_MAX_PARALLELISM;
	KsCheckParallelismAllowed(cs->parallelism, cs->max_parallelism, cs->memory_limit);
	cs->userid = GetUserId();

	if (strcmp(cs->start_from, "beginning") != 0 && strcmp(cs->start_from, "now") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid start_from \"%s\"", cs->start_from),
				 errhint("Use 'beginning' to consume the rows already in the table, or 'now' to start after them.")));
	KsCheckpointIntervalArgument(cs->interval);

	/* the view's name: the caller must be able to create it */
	names = stringToQualifiedNameList(cs->name);
	cs->viewrv = makeRangeVarFromNameList(names);
	cs->nspid = RangeVarGetAndCheckCreationNamespace(cs->viewrv, NoLock, &existing);
	if (OidIsValid(existing))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", cs->viewrv->relname)));
	if (isAnyTempNamespace(cs->nspid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("an aggregation's view cannot be temporary")));
}

/*
 * Error context while analysing an aggregation's query: report a syntax or
 * name error's position inside that query, not inside the calling statement
 * (as SQL functions do).
 */
static void
KsQueryErrorCallback(void *arg)
{
	const char *querytext = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(querytext);
	}
	else
		errcontext("keyedstate aggregation query");
}

/* Parse and analyse a text that must be one SELECT statement. */
Query *
KsParseSelect(const char *querytext)
{
	List	   *raw = pg_parse_query(querytext);

	if (list_length(raw) != 1 || !IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("keyedstate aggregation query must be a single SELECT statement")));
	return parse_analyze_fixedparams(linitial(raw), querytext, NULL, 0, NULL);
}

/*
 * Parse and analyse an aggregation's query text as the current user, and
 * check it can be an aggregation.
 */
Query *
KsParseAggregationQuery(const char *querytext, KsQueryInfo *info, const KsWindowSpec *window)
{
	ErrorContextCallback errcallback;
	Query	   *query;

	errcallback.callback = KsQueryErrorCallback;
	errcallback.arg = (void *) querytext;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	query = KsParseSelect(querytext);
	error_context_stack = errcallback.previous;

	if (window != NULL)
		KsWindowRewrite(query, window);
	KsAnalyzeQuery(query, info);
	KsWindowCheckAggregates(info->aggrefs, window);
	(void) ExecCheckRTPerms(query->rtable, true);
	if (check_enable_rls(info->source_relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("row-level security is enabled on table \"%s\"", get_rel_name(info->source_relid)),
				 errdetail("An aggregation reads every row of its table, and row-level security hides some of them from you."),
				 errhint("Only a role that bypasses row-level security can aggregate such a table.")));
	KsAggCheckPrivileges(info->aggrefs, GetUserId());
	{
		/* make sure every aggregate call can be run by the worker */
		MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate check",
												  ALLOCSET_DEFAULT_SIZES);

		(void) KsAggRuntimeCreate(info->aggrefs, info->inputcols, info->filtercols, tmp);
		MemoryContextDelete(tmp);
	}
	return query;
}

/* Stage 3: privileges on the source, its offset column, index and sequence. */
static void
KsCreateSource(KsCreateState *cs)
{
	Relation	rel;

	/* the aggregation puts triggers on the table, as CREATE TRIGGER would */
	if (pg_class_aclcheck(cs->info.source_relid, cs->userid, ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(cs->info.source_relid)),
				 errdetail("An aggregation puts an insert trigger and a TRUNCATE trigger on the table it reads, which needs the TRIGGER privilege on it or its ownership."),
				 errhint("The table's owner can GRANT TRIGGER ON it to you.")));

	rel = table_open(cs->info.source_relid, AccessShareLock);
	cs->offset_attnum = KsSourceOffsetColumn(rel, cs->offset_column, &cs->seqoid);
	KsCheckInputOrder(&cs->info, cs->offset_attnum);
	KsCheckOffsetPrivilege(cs->info.source_relid, cs->offset_attnum, cs->userid);
	KsSourceCheckIndex(rel, cs->offset_attnum, cs->seqoid);
	table_close(rel, AccessShareLock);
	cs->start_offset = KsSourceStartOffset(cs->seqoid);
	if (strcmp(cs->start_from, "now") == 0)
	{
		int64		lastval;

		if (KsSequenceLastValue(cs->seqoid, &lastval, false))
			cs->start_offset = lastval;
	}
}

/* Comma-separated text of integers. */
static char *
KsJoinInts(const int64 *values, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s" INT64_FORMAT, i ? "," : "", values[i]);
	return buf.data;
}

/* Column definitions of a tuple descriptor, for CREATE FOREIGN TABLE. */
static char *
KsColumnDefs(TupleDesc desc)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		appendStringInfo(&buf, "%s%s %s", i ? ", " : "", quote_identifier(NameStr(att->attname)),
						 format_type_with_typemod(att->atttypid, att->atttypmod));
		if (OidIsValid(att->attcollation) && att->attcollation != get_typcollation(att->atttypid))
			appendStringInfo(&buf, " COLLATE %s", generate_collation_name(att->attcollation));
	}
	return buf.data;
}

/* The column names of a tuple descriptor, quoted, for the view. */
static char *
KsColumnNames(TupleDesc desc)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < desc->natts; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "",
						 quote_identifier(NameStr(TupleDescAttr(desc, i)->attname)));
	return buf.data;
}

/* Run a utility statement through SPI, erroring out on failure. */
static void
KsExecute(const char *sql)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret < 0)
		elog(ERROR, "keyedstate could not run \"%s\": %s", sql, SPI_result_code_string(ret));
}

/*
 * The live table's options: the aggregation, and per key the view column
 * holding it, its equality operator and collation (for point lookups);
 * with `set`, as ALTER FOREIGN TABLE ... OPTIONS (SET ...) wants them.
 */
char *
KsLiveTableOptions(int32 id, const KsQueryInfo *info, bool set)
{
	const char *op = set ? "SET " : "";
	int64	   *attnums = palloc(sizeof(int64) * Max(info->nkeys, 1));
	int64	   *eqops = palloc(sizeof(int64) * Max(info->nkeys, 1));
	int64	   *colls = palloc(sizeof(int64) * Max(info->nkeys, 1));
	int			i;

	for (i = 0; i < info->nkeys; i++)
	{
		attnums[i] = info->keyattnums[i];
		eqops[i] = info->keyeqops[i];
		colls[i] = info->keycolls[i];
	}
	return psprintf("%saggregation_id '%d', %skey_attnums '%s', %skey_eqops '%s', %skey_collations '%s'",
					op, id, op, KsJoinInts(attnums, info->nkeys), op, KsJoinInts(eqops, info->nkeys),
					op, KsJoinInts(colls, info->nkeys));
}

/*
 * A new aggregation (or part) id.  DROP EXTENSION and CREATE EXTENSION start
 * the ids again, and a slot of the earlier installation's aggregation keeps
 * its id until its worker reloads: such an id is skipped, so that no new
 * aggregation is taken for the old one's run.
 */
static int32
KsNewAggregationId(bool part)
{
	int32		id;

	do
		id = KsCatalogNextId(part);
	while (KsAggIdHasSlot(MyDatabaseId, id));
	return id;
}

/* Stage 4 and 5: the objects, as the bootstrap superuser (catalog bracket held). */
static void
KsCreateObjects(KsCreateState *cs)
{
	char	   *livename;
	char	   *viewname;
	char	   *sourcename;

	cs->id = KsNewAggregationId(false);
	livename = psprintf("%s.%s", KS_DATA_SCHEMA, quote_identifier(psprintf(KS_LIVE_TABLE_FMT, cs->id)));
	viewname = quote_qualified_identifier(get_namespace_name(cs->nspid), cs->viewrv->relname);
	sourcename = quote_qualified_identifier(get_namespace_name(get_rel_namespace(cs->info.source_relid)),
											get_rel_name(cs->info.source_relid));

	KsExecute(psprintf("CREATE FOREIGN TABLE %s (%s) SERVER %s OPTIONS (%s)",
					   livename, KsColumnDefs(cs->info.viewdesc), KS_SERVER,
					   KsLiveTableOptions(cs->id, &cs->info, false)));
	/* anyone may scan it: the wrapper asks for SELECT on the view (liveview.c) */
	KsExecute(psprintf("GRANT SELECT ON %s TO PUBLIC", livename));
	KsExecute(psprintf("CREATE VIEW %s AS SELECT %s FROM %s",
					   viewname, KsColumnNames(cs->info.viewdesc), livename));
	KsExecute(psprintf("ALTER VIEW %s OWNER TO %s", viewname,
					   quote_identifier(GetUserNameFromId(cs->userid, false))));
	KsExecute(KsWakeTriggerSql(cs->id, cs->info.source_relid));
	KsExecute(psprintf("CREATE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT "
					   "EXECUTE FUNCTION keyedstate.refuse_truncate()",
					   quote_identifier(psprintf(KS_TRUNCATE_TRIGGER_FMT, cs->id)), sourcename));
	CommandCounterIncrement();
	/* and on every partition, for rows inserted straight into it */
	if (get_rel_relkind(cs->info.source_relid) == RELKIND_PARTITIONED_TABLE)
		KsWakeTriggersAdd(cs->id, cs->info.source_relid);

	cs->view_oid = get_relname_relid(cs->viewrv->relname, cs->nspid);
	cs->live_oid = get_relname_relid(psprintf(KS_LIVE_TABLE_FMT, cs->id), get_namespace_oid(KS_DATA_SCHEMA, false));

	KsRecordQueryDependencies(cs->view_oid, cs->query, cs->seqoid);
}

/*
 * The query deparsed for a restore: every name qualified, constants in
 * forms that read back exactly (pg_dump's settings for views: ISO dates,
 * postgres intervals, shortest-exact floats).  A restore analyses it
 * again under the same settings (restore.c).
 */
char *
KsDeparseForRestore(Query *query)
{
	int			nestlevel = NewGUCNestLevel();
	char	   *text;

	KsSetCanonicalSettings();
	text = pg_get_querydef(query, false);
	AtEOXact_GUC(false, nestlevel);
	return text;
}

/* Settings under which deparsed queries read back exactly, in one spelling (see above). */
void
KsSetCanonicalSettings(void)
{
	KsSetOption("search_path", "", GUC_ACTION_SAVE);
	KsSetOption("DateStyle", "ISO, MDY", GUC_ACTION_SAVE);
	KsSetOption("IntervalStyle", "postgres", GUC_ACTION_SAVE);
	KsSetOption("extra_float_digits", "3", GUC_ACTION_SAVE);
	/* string literals deparsed and read back as standard strings */
	KsSetOption("standard_conforming_strings", "on", GUC_ACTION_SAVE);
	/* money constants: written and read in one locale's format */
	KsSetOption("lc_monetary", "C", GUC_ACTION_SAVE);
	KsSetOption("quote_all_identifiers", "off", GUC_ACTION_SAVE);
	KsSetOption("bytea_output", "hex", GUC_ACTION_SAVE);
}

/* Add the parts of a new layout of an aggregation (see hooks.h). */
void
KsCreateParts(int32 aggid, int32 layout, int parallelism, int max_parallelism,
			  int64 start_offset, Datum seeds, Oid owner, bool limited, Oid view_oid, Oid live_oid,
			  Oid sequence_oid)
{
	int			p;

	for (p = 0; p < parallelism; p++)
	{
		KsPartInfo	part;
		int32		id = KsNewAggregationId(true);

		part.parent = aggid;
		part.layout = layout;
		part.nparts = parallelism;
		part.part = p;
		KsPartGroups(p, parallelism, max_parallelism, &part.first_group, &part.last_group);
		KsCatalogInsertPart(id, aggid, layout, p, part.first_group, part.last_group,
							start_offset, seeds);
		/* (a rescale's parts are not fresh: their seeds' runs consumed rows) */
		KsReserveAggSlot(MyDatabaseId, id, &part, owner, limited, view_oid, live_oid, sequence_oid, layout == 0);
	}
}

/*
 * keyedstate.create_aggregation(name, query, start_from, offset_column,
 * checkpoint_interval, ttl, window_size, window_slide, time_column,
 * memory_limit, parallelism, max_parallelism): define an aggregation and
 * its live view.
 */
Datum
keyedstate_create_aggregation(PG_FUNCTION_ARGS)
{
	KsCreateState cs;
	KsCatalogAccess acc;
	KsNewAggregation agg = {0};

	KsRequireControl("keyedstate.create_aggregation()", true);
	memset(&cs, 0, sizeof(cs));
	KsCreateArguments(fcinfo, &cs);
	cs.query = KsParseAggregationQuery(cs.querytext, &cs.info, cs.window);
	KsCreateSource(&cs);

	/* the caller's settings, before the catalog bracket pins search_path */
	agg.query_tree = KsCheckedQueryTree(cs.query, cs.name);
	KsStoredTypeArrays(cs.query, &agg.key_types, &agg.stored_types, &agg.aggregates);
	agg.settings = KsCaptureSettings();
	KsCatalogOpen(&acc);
	KsCreateObjects(&cs);
	agg.id = cs.id;
	agg.view_oid = cs.view_oid;
	agg.live_oid = cs.live_oid;
	agg.source_oid = cs.info.source_relid;
	agg.offset_attnum = cs.offset_attnum;
	agg.sequence_oid = cs.seqoid;
	agg.query_text = cs.querytext;
	agg.definition = KsDeparseForRestore(cs.query);
	agg.start_offset = cs.start_offset;
	agg.checkpoint_interval = PointerGetDatum(cs.interval);
	agg.ttl = cs.ttl;
	if (cs.window != NULL)
	{
		agg.window_size = PointerGetDatum(PG_GETARG_INTERVAL_P(6));
		agg.window_slide = PG_ARGISNULL(7) ? agg.window_size : PointerGetDatum(PG_GETARG_INTERVAL_P(7));
		agg.time_column = cs.window->time_column;
	}
	agg.memory_limit = cs.memory_limit;
	agg.parallelism = cs.parallelism;
	agg.max_parallelism = cs.max_parallelism;
	KsCatalogInsert(&agg);
	/* from here an abort gives the reservations back (hooks.c) */
	KsRequestAtCommit();
	if (cs.parallelism > 1)
		KsCreateParts(cs.id, 0, cs.parallelism, cs.max_parallelism, cs.start_offset, (Datum) 0,
					  cs.userid, true, cs.view_oid, cs.live_oid, cs.seqoid);
	else
	{
		KsPartInfo	whole = {cs.id, 0, 1, 0, 0, cs.max_parallelism - 1};

		KsReserveAggSlot(MyDatabaseId, cs.id, &whole, cs.userid, true, cs.view_oid, cs.live_oid,
						 cs.seqoid, true);
	}
	KsCatalogClose(&acc);

	KsRememberDatabase(MyDatabaseId);
	KsRequestAtCommit();
	KsWarnNoWorkerHere(KsAggName(cs.view_oid));
	KsNoticeSharedParts(KsAggName(cs.view_oid), cs.parallelism);
	PG_RETURN_VOID();
}
