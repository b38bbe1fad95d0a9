/*-------------------------------------------------------------------------
 *
 * sqlfuncs.c
 *	  SQL-callable functions of keyedstate.
 *
 * create_aggregation analyses the query as the calling user (so privileges
 * and name resolution are the caller's), then creates, as the bootstrap
 * superuser, the internal objects that users may not create themselves:
 * the live foreign table in schema keyedstate, the view, the catalog row
 * and the wake-up and TRUNCATE triggers on the source; the view and
 * foreign table are then given to the caller.  The view's rewrite rule is
 * made to depend on everything the query uses, exactly as if the view ran
 * the query itself, so DROP TABLE, DROP COLUMN and ALTER COLUMN TYPE of
 * the source are refused naming the view, and renames are harmless.
 *
 * Backends talk to the worker through shared memory only: a bump of the
 * database slot's request counter at commit (reload the definitions), a
 * latch (new rows), a checkpoint request counter, and the slot's
 * condition variable to wait for progress.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/analyze.h"
#include "rewrite/rewriteSupport.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/regproc.h"
#include "utils/wait_event.h"

#include "aggcall.h"
#include "definition.h"
#include "input.h"
#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "sqlfuncs.h"

PG_FUNCTION_INFO_V1(keyedstate_create_aggregation);
PG_FUNCTION_INFO_V1(keyedstate_drop_aggregation);
PG_FUNCTION_INFO_V1(keyedstate_forget_aggregation);
PG_FUNCTION_INFO_V1(keyedstate_sync);
PG_FUNCTION_INFO_V1(keyedstate_pause);
PG_FUNCTION_INFO_V1(keyedstate_resume);
PG_FUNCTION_INFO_V1(keyedstate_checkpoint);
PG_FUNCTION_INFO_V1(keyedstate_query_definition);
PG_FUNCTION_INFO_V1(keyedstate_worker_status);
PG_FUNCTION_INFO_V1(keyedstate_wake);

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Set by the wake trigger and by definition changes; acted on at commit. */
static bool ks_xact_callback_registered = false;
static bool ks_wake_pending = false;
static bool ks_request_pending = false;

/* A catalog row as the SQL functions need it. */
typedef struct KsAggRow
{
	int32		id;
	Oid			view_oid;
	Oid			sequence_oid;
	Oid			owner;
	bool		paused;
	int64		resume_count;
	char	   *name;
} KsAggRow;

/* Commit callback: wake or (re)start the worker of this database. */
static void
KsXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (ks_request_pending && KsSharedState != NULL)
			KsRequestDatabaseWorker(MyDatabaseId, true);
		else if (ks_wake_pending)
			KsWakeDatabaseWorker(MyDatabaseId);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		ks_wake_pending = false;
		ks_request_pending = false;
	}
}

/* Register the commit callback once per backend. */
static void
KsEnsureXactCallback(void)
{
	if (!ks_xact_callback_registered)
	{
		RegisterXactCallback(KsXactCallback, NULL);
		ks_xact_callback_registered = true;
	}
}

/*
 * Ask for the worker to reload at commit.  The slot is taken now, so that
 * running out of database slots is an error here and not at commit.
 */
static void
KsRequestAtCommit(void)
{
	KsRequestDatabaseWorker(MyDatabaseId, false);
	KsEnsureXactCallback();
	ks_request_pending = true;
}

/* Run SPI as the bootstrap superuser for keyedstate's own tables. */
static void
KsAsSuperuser(Oid *save_userid, int *save_sec)
{
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Run a utility statement through SPI, erroring out on failure. */
static void
KsExecute(const char *sql)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret < 0)
		elog(ERROR, "keyedstate could not run \"%s\": %s", sql, SPI_result_code_string(ret));
}

/* Resolve an aggregation by the name of its view; errors if it is none. */
static KsAggRow
KsLookupAggregation(text *nametext)
{
	char	   *name = text_to_cstring(nametext);
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	Oid			view_oid = RangeVarGetRelid(rv, NoLock, true);
	KsAggRow	row;
	Oid			save_userid;
	int			save_sec;
	Datum		arg;
	Oid			argtype = OIDOID;
	bool		isnull;
	int			ret;

	memset(&row, 0, sizeof(row));
	if (!OidIsValid(view_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregation \"%s\" does not exist", name)));

	SPI_connect();
	KsAsSuperuser(&save_userid, &save_sec);
	arg = ObjectIdGetDatum(view_oid);
	ret = SPI_execute_with_args("SELECT id, sequence_oid, owner, paused, resume_count "
								"FROM keyedstate.aggregation WHERE view_oid = $1",
								1, &argtype, &arg, NULL, true, 1);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("\"%s\" is not a keyedstate aggregation", name)));
	row.id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	row.sequence_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	row.owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	row.paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	row.resume_count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	SPI_finish();
	row.view_oid = view_oid;
	row.name = KsAggName(view_oid);
	return row;
}

/* Only the owner of an aggregation's view (or a superuser) may control it. */
static void
KsCheckOwner(KsAggRow *row)
{
	if (!pg_class_ownercheck(row->view_oid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(row->view_oid));
}

/* The sequence filling an int column (identity or serial), or InvalidOid. */
static Oid
KsColumnSequence(Oid relid, AttrNumber attnum)
{
	Oid			seqoid = getIdentitySequence(relid, attnum, true);
	ListCell   *lc;

	if (OidIsValid(seqoid))
		return seqoid;
	foreach(lc, getOwnedSequences(relid))
	{
		Oid			tab;
		int32		col;

		if (sequenceIsOwned(lfirst_oid(lc), DEPENDENCY_AUTO, &tab, &col) && col == attnum)
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

/* Whether a column can carry offsets. */
static bool
KsIsOffsetType(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID;
}

/*
 * Choose the offset column: the named one, or else the primary key if it is
 * a sequence-filled integer, or else the only sequence-filled integer.
 */
static AttrNumber
KsFindOffsetColumn(Relation rel, const char *colname, Oid *seqoid)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	found = InvalidAttrNumber;
	int			ncandidates = 0;
	Oid			pkoid;
	int			i;

	if (colname != NULL)
	{
		AttrNumber	attnum = get_attnum(relid, colname);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							colname, RelationGetRelationName(rel))));
		if (attnum < 0 || !KsIsOffsetType(TupleDescAttr(desc, attnum - 1)->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("offset column \"%s\" must be of type smallint, integer or bigint", colname)));
		*seqoid = KsColumnSequence(relid, attnum);
		if (!OidIsValid(*seqoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("offset column \"%s\" is not filled from a sequence", colname),
					 errhint("Use a serial, bigserial or identity column.")));
		return attnum;
	}

	pkoid = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(pkoid))
	{
		Relation	idx = index_open(pkoid, AccessShareLock);

		if (idx->rd_index->indnatts == 1 && idx->rd_index->indkey.values[0] > 0)
		{
			AttrNumber	attnum = idx->rd_index->indkey.values[0];

			if (KsIsOffsetType(TupleDescAttr(desc, attnum - 1)->atttypid) &&
				OidIsValid(*seqoid = KsColumnSequence(relid, attnum)))
				found = attnum;
		}
		index_close(idx, AccessShareLock);
		if (found != InvalidAttrNumber)
			return found;
	}

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			s;

		if (att->attisdropped || !KsIsOffsetType(att->atttypid))
			continue;
		s = KsColumnSequence(relid, att->attnum);
		if (OidIsValid(s))
		{
			ncandidates++;
			found = att->attnum;
			*seqoid = s;
		}
	}
	if (ncandidates == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no offset column", RelationGetRelationName(rel)),
				 errdetail("keyedstate consumes a table in the order of an integer column filled from a sequence."),
				 errhint("Add a bigserial or identity column, or name one with offset_column.")));
	if (ncandidates > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_COLUMN),
				 errmsg("table \"%s\" has several candidate offset columns", RelationGetRelationName(rel)),
				 errhint("Name one with offset_column.")));
	return found;
}

/* Refuse sequences that let offsets commit out of order behind us. */
static int64
KsCheckSequence(Oid seqoid)
{
	HeapTuple	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqoid));
	Form_pg_sequence seq;
	int64		seqmin;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for sequence %u", seqoid);
	seq = (Form_pg_sequence) GETSTRUCT(tup);
	if (seq->seqcache > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" has CACHE " INT64_FORMAT, get_rel_name(seqoid), seq->seqcache),
				 errdetail("Cached sequence values let rows with lower offsets commit after higher ones have been consumed."),
				 errhint("Use ALTER SEQUENCE %s CACHE 1.", get_rel_name(seqoid))));
	if (seq->seqincrement < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" descends", get_rel_name(seqoid)),
				 errdetail("Offsets must grow.")));
	seqmin = seq->seqmin;
	ReleaseSysCache(tup);
	return seqmin;
}

/* Refuse an offset column that no plain btree index leads with. */
static void
KsCheckOffsetIndex(Relation rel, AttrNumber attnum)
{
	ListCell   *lc;

	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		bool		ok = idx->rd_rel->relam == BTREE_AM_OID &&
			idx->rd_index->indisvalid &&
			idx->rd_index->indkey.values[0] == attnum &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);

		index_close(idx, AccessShareLock);
		if (ok)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("offset column \"%s\" of table \"%s\" has no index",
					get_attname(RelationGetRelid(rel), attnum, false), RelationGetRelationName(rel)),
			 errhint("Create a btree index on it, or make it the primary key.")));
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

/* Milliseconds of an interval (months as 30 days). */
static int64
KsIntervalMs(Interval *iv)
{
	return iv->time / 1000 +
		((int64) iv->day + (int64) iv->month * DAYS_PER_MONTH) * SECS_PER_DAY * 1000;
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

/*
 * keyedstate.create_aggregation(name, query, start_from, offset_column,
 * checkpoint_interval): define an aggregation and its live view.
 */
Datum
keyedstate_create_aggregation(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *querytext;
	char	   *start_from;
	char	   *offset_column = NULL;
	Interval   *interval;
	List	   *names;
	RangeVar   *viewrv;
	Oid			nspid;
	Oid			existing;
	List	   *raw;
	RawStmt    *rawstmt;
	Query	   *query;
	KsQueryInfo info;
	Relation	rel;
	AttrNumber	offset_attnum;
	Oid			seqoid = InvalidOid;
	int64		seqmin;
	int64		start_offset;
	int64		lastval;
	Oid			userid = GetUserId();
	Oid			save_userid;
	int			save_sec;
	int32		id;
	char	   *livename;
	char	   *viewname;
	char	   *sourcename;
	const char *rolename;
	int64	   *keyattnums;
	int64	   *keyeqops;
	int64	   *keycolls;
	Oid			view_oid;
	Oid			live_oid;
	ObjectAddress ruleaddr;
	ErrorContextCallback errcallback;
	List	   *settings;
	Datum	   *setdatums;
	ListCell   *lc;
	int			i;
	int			ret;
	Datum		args[12];
	Oid			argtypes[12] = {INT4OID, OIDOID, OIDOID, OIDOID, INT2OID, OIDOID, OIDOID,
	TEXTOID, TEXTOID, TEXTARRAYOID, INT8OID, INTERVALOID};

	KsRequirePreload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, query, start_from and checkpoint_interval must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	querytext = text_to_cstring(PG_GETARG_TEXT_PP(1));
	start_from = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		offset_column = NameStr(*PG_GETARG_NAME(3));
	interval = PG_GETARG_INTERVAL_P(4);

	if (strcmp(start_from, "beginning") != 0 && strcmp(start_from, "now") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid start_from \"%s\"", start_from),
				 errhint("Use 'beginning' to consume the rows already in the table, or 'now' to start after them.")));
	if (KsIntervalMs(interval) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("checkpoint_interval must be positive")));

	/* the view's name: the caller must be able to create it */
	names = stringToQualifiedNameList(name);
	viewrv = makeRangeVarFromNameList(names);
	nspid = RangeVarGetAndCheckCreationNamespace(viewrv, NoLock, &existing);
	if (OidIsValid(existing))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", viewrv->relname)));
	if (isAnyTempNamespace(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("an aggregation's view cannot be temporary")));

	/* analyse the query as the caller */
	errcallback.callback = KsQueryErrorCallback;
	errcallback.arg = querytext;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	raw = pg_parse_query(querytext);
	if (list_length(raw) != 1 || !IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("keyedstate aggregation query must be a single SELECT statement")));
	rawstmt = linitial(raw);
	query = parse_analyze_fixedparams(rawstmt, querytext, NULL, 0, NULL);
	error_context_stack = errcallback.previous;
	KsAnalyzeQuery(query, &info);
	(void) ExecCheckRTPerms(query->rtable, true);
	KsAggCheckPrivileges(info.aggrefs, userid);
	{
		/* make sure every aggregate call can be run by the worker */
		MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate check",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext oldcxt = MemoryContextSwitchTo(tmp);
		int		   *inputcols = palloc0(sizeof(int) * Max(info.naggs, 1));
		int		   *filtercols = palloc0(sizeof(int) * Max(info.naggs, 1));
		int			ncols;

		(void) KsBuildInputQuery(&info, 1, inputcols, filtercols, &ncols);
		(void) KsAggRuntimeCreate(info.aggrefs, inputcols, filtercols, tmp);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(tmp);
	}

	/* the offset column and its sequence */
	rel = table_open(info.source_relid, AccessShareLock);
	offset_attnum = KsFindOffsetColumn(rel, offset_column, &seqoid);
	KsCheckOffsetIndex(rel, offset_attnum);
	table_close(rel, AccessShareLock);
	seqmin = KsCheckSequence(seqoid);
	start_offset = Min(seqmin - 1, 0);
	if (strcmp(start_from, "now") == 0 && KsSequenceLastValue(seqoid, &lastval))
		start_offset = lastval;

	/* internal objects are created by the bootstrap superuser, then given away */
	SPI_connect();
	KsAsSuperuser(&save_userid, &save_sec);

	ret = SPI_execute("SELECT pg_catalog.nextval('keyedstate.aggregation_id_seq')::int4", false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not allocate an aggregation id");
	{
		bool		isnull;

		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	keyattnums = palloc(sizeof(int64) * info.nkeys);
	keyeqops = palloc(sizeof(int64) * info.nkeys);
	keycolls = palloc(sizeof(int64) * info.nkeys);
	for (i = 0; i < info.nkeys; i++)
	{
		keyattnums[i] = info.keyattnums[i];
		keyeqops[i] = info.keyeqops[i];
		keycolls[i] = info.keycolls[i];
	}
	livename = psprintf("%s.%s", KS_SCHEMA, quote_identifier(psprintf("live_%d", id)));
	viewname = quote_qualified_identifier(get_namespace_name(nspid), viewrv->relname);
	sourcename = quote_qualified_identifier(get_namespace_name(get_rel_namespace(info.source_relid)),
											get_rel_name(info.source_relid));
	rolename = quote_identifier(GetUserNameFromId(userid, false));

	KsExecute(psprintf("CREATE FOREIGN TABLE %s (%s) SERVER %s OPTIONS ("
					   "aggregation_id '%d', key_attnums '%s', key_eqops '%s', key_collations '%s')",
					   livename, KsColumnDefs(info.viewdesc), KS_SERVER, id,
					   KsJoinInts(keyattnums, info.nkeys), KsJoinInts(keyeqops, info.nkeys),
					   KsJoinInts(keycolls, info.nkeys)));
	KsExecute(psprintf("CREATE VIEW %s AS SELECT %s FROM %s",
					   viewname, KsColumnNames(info.viewdesc), livename));
	KsExecute(psprintf("ALTER FOREIGN TABLE %s OWNER TO %s", livename, rolename));
	KsExecute(psprintf("ALTER VIEW %s OWNER TO %s", viewname, rolename));
	KsExecute(psprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH STATEMENT "
					   "EXECUTE FUNCTION keyedstate.wake()",
					   quote_identifier(psprintf("keyedstate_wake_%d", id)), sourcename));
	KsExecute(psprintf("CREATE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT "
					   "EXECUTE FUNCTION keyedstate.refuse_truncate()",
					   quote_identifier(psprintf("keyedstate_truncate_%d", id)), sourcename));
	CommandCounterIncrement();

	view_oid = get_relname_relid(viewrv->relname, nspid);
	live_oid = get_relname_relid(psprintf("live_%d", id), get_namespace_oid(KS_SCHEMA, false));

	/* the view's rule depends on what the query uses, as a plain view's would */
	ObjectAddressSet(ruleaddr, RewriteRelationId, get_rewrite_oid(view_oid, ViewSelectRuleName, false));
	recordDependencyOnExpr(&ruleaddr, (Node *) query, NIL, DEPENDENCY_NORMAL);

	settings = KsCaptureSettings();
	setdatums = palloc(sizeof(Datum) * Max(list_length(settings), 1));
	i = 0;
	foreach(lc, settings)
		setdatums[i++] = CStringGetTextDatum(lfirst(lc));

	args[0] = Int32GetDatum(id);
	args[1] = ObjectIdGetDatum(view_oid);
	args[2] = ObjectIdGetDatum(live_oid);
	args[3] = ObjectIdGetDatum(info.source_relid);
	args[4] = Int16GetDatum(offset_attnum);
	args[5] = ObjectIdGetDatum(seqoid);
	args[6] = ObjectIdGetDatum(userid);
	args[7] = CStringGetTextDatum(querytext);
	args[8] = CStringGetTextDatum(nodeToString(query));
	args[9] = PointerGetDatum(construct_array(setdatums, list_length(settings), TEXTOID, -1, false, TYPALIGN_INT));
	args[10] = Int64GetDatum(start_offset);
	args[11] = PointerGetDatum(interval);
	ret = SPI_execute_with_args("INSERT INTO keyedstate.aggregation (id, view_oid, live_oid, source_oid, "
								"offset_attnum, sequence_oid, owner, query_text, query_tree, settings, "
								"checkpointed_offset, checkpoint_interval) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
								12, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not record aggregation: %s", SPI_result_code_string(ret));
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();

	KsRememberDatabase(MyDatabaseId);
	KsRequestAtCommit();
	PG_RETURN_VOID();
}

/* Drop an object by address if it still exists. */
static void
KsDropObject(Oid classid, Oid objid)
{
	ObjectAddress addr;

	ObjectAddressSet(addr, classid, objid);
	performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
}

/*
 * Forget an aggregation whose view is gone (or is being dropped): its
 * catalog row, checkpointed state, live foreign table and triggers.  Safe to
 * call twice.
 */
static void
KsForgetAggregation(int32 id)
{
	Oid			save_userid;
	int			save_sec;
	Datum		arg = Int32GetDatum(id);
	Oid			argtype = INT4OID;
	Oid			live_oid;
	Oid			source_oid;
	bool		isnull;
	int			ret;

	SPI_connect();
	KsAsSuperuser(&save_userid, &save_sec);
	ret = SPI_execute_with_args("DELETE FROM keyedstate.aggregation WHERE id = $1 "
								"RETURNING live_oid, source_oid",
								1, &argtype, &arg, NULL, false, 0);
	if (ret == SPI_OK_DELETE_RETURNING && SPI_processed == 1)
	{
		live_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		source_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		(void) SPI_execute_with_args("DELETE FROM keyedstate.state WHERE aggregation_id = $1",
									 1, &argtype, &arg, NULL, false, 0);
		if (get_rel_name(source_oid) != NULL)
		{
			Oid			trig;

			trig = get_trigger_oid(source_oid, psprintf("keyedstate_wake_%d", id), true);
			if (OidIsValid(trig))
				KsDropObject(TriggerRelationId, trig);
			trig = get_trigger_oid(source_oid, psprintf("keyedstate_truncate_%d", id), true);
			if (OidIsValid(trig))
				KsDropObject(TriggerRelationId, trig);
		}
		if (get_rel_name(live_oid) != NULL)
			KsDropObject(RelationRelationId, live_oid);
		KsRequestAtCommit();
	}
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
}

/* keyedstate.drop_aggregation(name): stop it, remove the view and the state. */
Datum
keyedstate_drop_aggregation(PG_FUNCTION_ARGS)
{
	KsAggRow	row;

	KsRequirePreload();
	row = KsLookupAggregation(PG_GETARG_TEXT_PP(0));
	KsCheckOwner(&row);
	KsDropObject(RelationRelationId, row.view_oid);
	KsForgetAggregation(row.id);
	PG_RETURN_VOID();
}

/* keyedstate.forget_aggregation(id): for the sql_drop event trigger. */
Datum
keyedstate_forget_aggregation(PG_FUNCTION_ARGS)
{
	KsForgetAggregation(PG_GETARG_INT32(0));
	PG_RETURN_VOID();
}

/* Set or clear the paused flag of an aggregation (resume also retries a failure). */
static void
KsSetPaused(text *name, bool paused)
{
	KsAggRow	row;
	Oid			save_userid;
	int			save_sec;
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, BOOLOID};

	KsRequirePreload();
	row = KsLookupAggregation(name);
	KsCheckOwner(&row);
	args[0] = Int32GetDatum(row.id);
	args[1] = BoolGetDatum(paused);
	SPI_connect();
	KsAsSuperuser(&save_userid, &save_sec);
	if (SPI_execute_with_args(paused ?
							  "UPDATE keyedstate.aggregation SET paused = $2 WHERE id = $1" :
							  "UPDATE keyedstate.aggregation SET paused = $2, resume_count = resume_count + 1 WHERE id = $1",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update aggregation %s", row.name);
	SetUserIdAndSecContext(save_userid, save_sec);
	SPI_finish();
	KsRequestAtCommit();
}

/* keyedstate.pause(name) */
Datum
keyedstate_pause(PG_FUNCTION_ARGS)
{
	KsSetPaused(PG_GETARG_TEXT_PP(0), true);
	PG_RETURN_VOID();
}

/* keyedstate.resume(name) */
Datum
keyedstate_resume(PG_FUNCTION_ARGS)
{
	KsSetPaused(PG_GETARG_TEXT_PP(0), false);
	PG_RETURN_VOID();
}

/* Raise the error of a failed aggregation (slot lock not held). */
static void
KsReportFailed(KsAggRow *row, const char *error, int64 offset)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("aggregation %s has failed", row->name),
			 offset != 0 ?
			 errdetail("%s (input row with offset " INT64_FORMAT ")", error, offset) :
			 errdetail("%s", error),
			 errhint("Fix the cause, then call keyedstate.resume().")));
}

/*
 * Wait on an aggregation's slot until `done` says so, the aggregation
 * fails, or the deadline passes.  Returns the consumed offset.
 */
typedef bool (*KsWaitDone) (KsAggSlot *slot, void *arg);

static int64
KsWaitForSlot(KsAggRow *row, TimestampTz deadline, KsWaitDone done, void *arg,
			  const char *what)
{
	int64		result = 0;

	for (;;)
	{
		KsAggSlot  *slot = KsFindAggSlot(MyDatabaseId, row->id);
		TimestampTz now = GetCurrentTimestamp();
		long		remaining;

		if (slot != NULL)
		{
			bool		finished;
			bool		failed;
			char		error[KS_ERROR_LEN];
			int64		offset;

			LWLockAcquire(&slot->lock, LW_SHARED);
			failed = slot->state == KS_FAILED && slot->resume_count == row->resume_count;
			finished = slot->state != KS_STARTING && done(slot, arg);
			result = slot->consumed_offset;
			strlcpy(error, slot->error, KS_ERROR_LEN);
			offset = slot->failed_offset;
			LWLockRelease(&slot->lock);
			if (failed)
			{
				ConditionVariableCancelSleep();
				KsReportFailed(row, error, offset);
			}
			if (finished)
				break;
		}
		if (now >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for %s of aggregation %s", what, row->name),
					 errhint("See keyedstate.status for its state and lag.")));
		}
		remaining = Min(TimestampDifferenceMilliseconds(now, deadline), 100);
		if (slot != NULL)
			(void) ConditionVariableTimedSleep(&slot->cv, Max(remaining, 1), PG_WAIT_EXTENSION);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, 10), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	return result;
}

/* sync's condition: consumed up to the target offset. */
static bool
KsSyncDone(KsAggSlot *slot, void *arg)
{
	return slot->consumed_offset >= *(int64 *) arg;
}

/*
 * keyedstate.sync(name, timeout): wait until every row committed before the
 * call is in the live state; returns the consumed offset.
 */
Datum
keyedstate_sync(PG_FUNCTION_ARGS)
{
	KsAggRow	row;
	int64		target = PG_INT64_MIN;
	TimestampTz deadline;

	KsRequirePreload();
	row = KsLookupAggregation(PG_GETARG_TEXT_PP(0));
	if (pg_class_aclcheck(row.view_oid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(row.view_oid));
	if (row.paused)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s is paused", row.name),
				 errhint("Call keyedstate.resume() first.")));

	/* every row committed before now has an offset up to this */
	(void) KsSequenceLastValue(row.sequence_oid, &target);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   KsIntervalMs(PG_GETARG_INTERVAL_P(1)));
	KsWakeDatabaseWorker(MyDatabaseId);
	PG_RETURN_INT64(KsWaitForSlot(&row, deadline, KsSyncDone, &target, "sync"));
}

/* checkpoint's condition: the worker finished our request. */
static bool
KsCheckpointDoneCond(KsAggSlot *slot, void *arg)
{
	return slot->checkpoints_done >= *(uint64 *) arg;
}

/* keyedstate.checkpoint(name): checkpoint now and wait for it. */
Datum
keyedstate_checkpoint(PG_FUNCTION_ARGS)
{
	KsAggRow	row;
	KsAggSlot  *slot;
	uint64		request;
	TimestampTz deadline;

	KsRequirePreload();
	row = KsLookupAggregation(PG_GETARG_TEXT_PP(0));
	KsCheckOwner(&row);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000);
	/* a new aggregation may not have a slot yet */
	for (;;)
	{
		slot = KsFindAggSlot(MyDatabaseId, row.id);
		if (slot != NULL || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s is not running", row.name)));
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	request = ++slot->checkpoint_requests;
	LWLockRelease(&slot->lock);
	KsWakeDatabaseWorker(MyDatabaseId);
	(void) KsWaitForSlot(&row, deadline, KsCheckpointDoneCond, &request, "a checkpoint");
	PG_RETURN_VOID();
}

/* keyedstate.query_definition(id): the stored query, deparsed with current names. */
Datum
keyedstate_query_definition(PG_FUNCTION_ARGS)
{
	Oid			save_userid;
	int			save_sec;
	Datum		arg = Int32GetDatum(PG_GETARG_INT32(0));
	Oid			argtype = INT4OID;
	char	   *tree = NULL;
	char	   *result;

	SPI_connect();
	KsAsSuperuser(&save_userid, &save_sec);
	if (SPI_execute_with_args("SELECT query_tree FROM keyedstate.aggregation WHERE id = $1",
							  1, &argtype, &arg, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		tree = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (tree == NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	result = pg_get_querydef((Query *) stringToNode(tree), false);
	result = strcpy(SPI_palloc(strlen(result) + 1), result);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/* keyedstate.worker_status(): progress of this database's aggregations. */
Datum
keyedstate_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	KsRequirePreload();
	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		Datum		values[19];
		bool		nulls[19];
		KsAggSlot	copy;

		LWLockAcquire(KsSharedState->lock, LW_SHARED);
		if (!slot->in_use || slot->dboid != MyDatabaseId)
		{
			LWLockRelease(KsSharedState->lock);
			continue;
		}
		LWLockAcquire(&slot->lock, LW_SHARED);
		memcpy(&copy, slot, sizeof(KsAggSlot));
		LWLockRelease(&slot->lock);
		LWLockRelease(KsSharedState->lock);

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy.aggid);
		values[1] = CStringGetTextDatum(KsRunStateName(copy.state));
		values[2] = Int64GetDatum(copy.consumed_offset);
		values[3] = Int64GetDatum(copy.checkpointed_offset);
		values[4] = Int64GetDatum(copy.high_water);
		values[5] = Int64GetDatum(copy.failed_offset);
		values[6] = Int32GetDatum(copy.waiting_pid);
		values[7] = Int64GetDatum(copy.keys);
		values[8] = Int64GetDatum(copy.visible_keys);
		values[9] = Int64GetDatum(copy.memory_bytes + copy.shared_bytes);
		values[10] = Int64GetDatum(copy.shared_bytes);
		values[11] = Int64GetDatum(copy.rows_consumed);
		values[12] = Int64GetDatum(copy.rows_replayed);
		values[13] = Float8GetDatum(copy.rows_per_second);
		values[14] = TimestampTzGetDatum(copy.last_checkpoint);
		nulls[14] = copy.last_checkpoint == 0;
		values[15] = CStringGetTextDatum(copy.error);
		nulls[15] = copy.error[0] == '\0';
		values[16] = Float8GetDatum(copy.checkpoint_ms);
		values[17] = Int64GetDatum(copy.checkpoint_keys);
		values[18] = Int64GetDatum(copy.checkpoint_bytes);
		nulls[16] = nulls[17] = nulls[18] = copy.last_checkpoint == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * keyedstate.wake(): AFTER INSERT statement trigger on every source table.
 * It only flags the transaction; the worker's latch is set at commit, when
 * the rows are visible, so the cost for writers is one flag per statement.
 */
Datum
keyedstate_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("keyedstate.wake() must be called as a trigger")));
	if (ks_preloaded && KsSharedState != NULL)
	{
		KsEnsureXactCallback();
		ks_wake_pending = true;
	}
	return PointerGetDatum(NULL);
}

/*
 * ProcessUtility hook: DROP EXTENSION keyedstate first drops every
 * aggregation of the database (views, live tables, triggers on sources),
 * which do not belong to the extension and would otherwise block it.
 */
static void
KsProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			if (strcmp(strVal(lfirst(lc)), "keyedstate") == 0 &&
				OidIsValid(get_extension_oid("keyedstate", true)) &&
				pg_extension_ownercheck(get_extension_oid("keyedstate", false), GetUserId()))
			{
				Oid			save_userid;
				int			save_sec;
				List	   *views = NIL;
				List	   *ids = NIL;
				ListCell   *vlc;
				ListCell   *ilc;
				uint64		i;

				MemoryContext cxt = CurrentMemoryContext;

				SPI_connect();
				KsAsSuperuser(&save_userid, &save_sec);
				if (SPI_execute("SELECT view_oid, id FROM keyedstate.aggregation", true, 0) == SPI_OK_SELECT)
				{
					/* the lists must outlive SPI's own context */
					MemoryContextSwitchTo(cxt);
					for (i = 0; i < SPI_processed; i++)
					{
						bool		isnull;

						views = lappend_oid(views, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
						ids = lappend_int(ids, DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)));
					}
				}
				SetUserIdAndSecContext(save_userid, save_sec);
				SPI_finish();
				forboth(vlc, views, ilc, ids)
				{
					if (get_rel_name(lfirst_oid(vlc)) != NULL)
						KsDropObject(RelationRelationId, lfirst_oid(vlc));
					KsForgetAggregation(lfirst_int(ilc));
				}
			}
		}
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Install the utility hook. */
void
KsSqlFuncsInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = KsProcessUtility;
}
