/*-------------------------------------------------------------------------
 *
 * pinned.c
 *	  What a replay must compute again exactly: the functions an
 *	  aggregation's query may call.  See definition.h.
 *
 * keyedstate computes each row's keys, arguments and filters once, when it
 * consumes the row, and keeps the result in its state; after a crash it
 * computes the rows after the last checkpoint again.  So, like an index
 * expression or a generated column in PostgreSQL, everything the query
 * calls must give the same value for the same row whenever it runs:
 *	- not the current time or anything of the session (the worker's is
 *	  not the creating session's), nor a setting it does not capture;
 *	- no volatile function;
 *	- no function of the user's that is not IMMUTABLE: a STABLE one may
 *	  read a table (a dimension looked up by key), whose later changes the
 *	  consumed rows never see, and which a replay would see, splitting a
 *	  key between its value before and after.  (An aggregate's support
 *	  functions are the aggregate's business, as in PostgreSQL: user
 *	  aggregates rarely mark them, and they must be pure anyway, since a
 *	  state is rebuilt from them on a replay; the README says so.)
 *	- no built-in function that reads the catalogs (to_regclass(),
 *	  has_table_privilege(), pg_get_userbyid(), the reg* types' input and
 *	  output, text search's to_tsvector()): their value changes with the
 *	  objects they name or use; nor one that reports how a value is stored
 *	  (pg_column_size()): keyedstate's copies are stored otherwise.
 * Built-in STABLE functions that depend only on their arguments and the
 * captured settings (date_trunc() of a timestamptz, to_char(), casts
 * under the captured TimeZone and DateStyle) are allowed: the settings
 * are applied for every step, as they were at creation.  But not one that
 * takes or gives a value holding an enum, a named composite type, a reg*
 * type or an aclitem: its input and output read the enum's labels
 * (enum_out is STABLE for that), the names of the objects and roles an OID
 * stands for, and the JSON functions the composite's attribute names,
 * which ALTER ... RENAME (RENAME VALUE, RENAME ATTRIBUTE, a column's, a
 * table's, a role's) change, and which the functions cache
 * (jsonb_populate_record keeps the row type it first met): concat(),
 * format(), to_jsonb() or ARRAY[...]::text of a regclass print its name
 * as the row is consumed (exactness review 15, finding 1).  Comparisons and immutable functions of such values (=, <,
 * min(), a field's selection) use neither and stay allowed.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "parser/parse_coerce.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "definition.h"
#include "settings.h"

/* The support functions of an aggregate that pg_aggregate names. */
#define KS_AGG_SUPPORT_FNS	8

/* Whether an argument of current_setting() is a constant naming a captured setting (a custom one too). */
static bool
KsIsCapturedSettingName(Node *arg)
{
	char	   *name;

	if (arg == NULL || !IsA(arg, Const) || ((Const *) arg)->constisnull ||
		((Const *) arg)->consttype != TEXTOID)
		return false;
	name = TextDatumGetCString(((Const *) arg)->constvalue);
	/*
	 * A custom setting is captured only if set in this session (not at its
	 * default, not absent), and keyedstate's own never: otherwise the worker
	 * would read its own value, from the server's files or its role's and
	 * database's settings.
	 */
	if (strchr(name, '.') != NULL)
		return KsCustomSettingIsSet(name);
	return KsIsCapturedSetting(name);
}

static bool KsIsUnpinnedFunction(Oid funcid, void *context);

/* Whether a function is current_setting(). */
static bool
KsIsSettingReader(Oid funcid)
{
	return funcid == F_CURRENT_SETTING_TEXT || funcid == F_CURRENT_SETTING_TEXT_BOOL;
}

/* An aggregate's support functions (InvalidOid where it has none): false if it is none. */
static bool
KsAggregateSupport(Oid aggfnoid, Oid fns[KS_AGG_SUPPORT_FNS])
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Form_pg_aggregate agg;

	if (!HeapTupleIsValid(tup))
		return false;
	agg = (Form_pg_aggregate) GETSTRUCT(tup);
	fns[0] = agg->aggtransfn;
	fns[1] = agg->aggfinalfn;
	fns[2] = agg->aggcombinefn;
	fns[3] = agg->aggserialfn;
	fns[4] = agg->aggdeserialfn;
	fns[5] = agg->aggmtransfn;
	fns[6] = agg->aggminvtransfn;
	fns[7] = agg->aggmfinalfn;
	ReleaseSysCache(tup);
	return true;
}

/*
 * Whether an aggregate's support functions include current_setting(), a
 * function of the time or session (KsIsUnpinnedFunction) or a volatile
 * built-in one: a user's aggregate may name one (nextval) as its final
 * function.  Its own support functions are the owner's to keep pure, as
 * PostgreSQL leaves them (PL/pgSQL's are VOLATILE unless said otherwise).
 */
static bool
KsAggregateReadsSession(Oid aggfnoid)
{
	Oid			fns[KS_AGG_SUPPORT_FNS];
	bool		found = false;
	int			i;

	if (!KsAggregateSupport(aggfnoid, fns))
		return false;
	for (i = 0; i < KS_AGG_SUPPORT_FNS; i++)
		if (OidIsValid(fns[i]) && (KsIsSettingReader(fns[i]) || KsIsUnpinnedFunction(fns[i], NULL) ||
								   (fns[i] < FirstNormalObjectId &&
									func_volatile(fns[i]) == PROVOLATILE_VOLATILE)))
			found = true;
	return found;
}

/* Functions whose value depends on when or where the worker runs them. */
static bool
KsIsUnpinnedFunction(Oid funcid, void *context)
{
	switch (funcid)
	{
		case F_NOW:
		case F_STATEMENT_TIMESTAMP:
		case F_TRANSACTION_TIMESTAMP:
		case F_CLOCK_TIMESTAMP:
		case F_TIMEOFDAY:
		case F_AGE_TIMESTAMP:
		case F_AGE_TIMESTAMPTZ:
		case F_PG_BACKEND_PID:
		case F_PG_POSTMASTER_START_TIME:
		case F_PG_CONF_LOAD_TIME:
		case F_PG_MY_TEMP_SCHEMA:
		case F_INET_CLIENT_ADDR:
		case F_INET_CLIENT_PORT:
		case F_INET_SERVER_ADDR:
		case F_INET_SERVER_PORT:
		case F_TXID_CURRENT:
		case F_TXID_CURRENT_IF_ASSIGNED:
		case F_PG_CURRENT_XACT_ID:
		case F_PG_CURRENT_XACT_ID_IF_ASSIGNED:
		case F_PG_CURRENT_SNAPSHOT:
		case F_TXID_CURRENT_SNAPSHOT:
		case F_PG_TRIGGER_DEPTH:
		case F_PG_CLIENT_ENCODING:
		case F_CURRENT_SCHEMAS:
		case F_PG_IS_OTHER_TEMP_SCHEMA:
		case F_AGE_XID:
		case F_MXID_AGE:
			/* who, where and what runs it: the owner, database or build of the moment */
		case F_CURRENT_USER:
		case F_SESSION_USER:
		case F_GETPGUSERNAME:
		case F_CURRENT_SCHEMA:
		case F_CURRENT_DATABASE:
		case F_VERSION:
		case F_PG_CONFIG:
		case F_PG_JIT_AVAILABLE:
		case F_PG_CURRENT_LOGFILE_:
		case F_PG_CURRENT_LOGFILE_TEXT:
			/* the session's own objects */
		case F_PG_CURSOR:
		case F_PG_PREPARED_STATEMENT:
		case F_PG_LISTENING_CHANNELS:
		case F_PG_SHOW_ALL_SETTINGS:
		case F_PG_EVENT_TRIGGER_DDL_COMMANDS:
		case F_PG_EVENT_TRIGGER_DROPPED_OBJECTS:
		case F_PG_EVENT_TRIGGER_TABLE_REWRITE_OID:
		case F_PG_EVENT_TRIGGER_TABLE_REWRITE_REASON:
			break;
		default:
			/* the statistics collector's counters change as the server runs */
			if (get_func_namespace(funcid) != PG_CATALOG_NAMESPACE ||
				strncmp(get_func_name(funcid), "pg_stat_get_", 12) != 0)
				return false;
	}
	if (context != NULL)		/* (the one found, to be named) */
		*(Oid *) context = funcid;
	return true;
}

/* Name prefixes of the built-in functions that read the catalogs. */
static const char *const ks_catalog_readers[] = {
	"to_reg", "has_", "pg_has_role", "pg_get_", "obj_description", "col_description",
	"shobj_description", "pg_describe_object", "pg_identify_object", "format_type",
	"pg_relation_", "pg_table_size", "pg_total_relation_size", "pg_indexes_size",
	"pg_database_size", "pg_tablespace_size", "regclass", "enum_range", "enum_first",
	"pg_collation_for", "oidvectortypes",
	"enum_last", "pg_indexam_has_property", "pg_index_column_has_property", "pg_index_has_property",
	"pg_column_is_updatable", "pg_tablespace_location", "pg_filenode_relation",
	"row_security_active", "pg_replication_origin_", "pg_partition_", "pg_sequence_",
	/* these read tables' rows too, and the installed extensions' files */
	"table_to_xml", "schema_to_xml", "database_to_xml", "pg_available_extension",
	"pg_extension_update_paths",
	/*
	 * text search reads its configurations, dictionaries and parsers, which
	 * ALTER TEXT SEARCH ... changes (exactness review 19, F2); text @@ text
	 * and text @@ tsquery too (ts_match_tt, ts_match_tq)
	 */
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
	"json_to_tsvector", "jsonb_to_tsvector", "ts_headline", "ts_lexize", "ts_debug", "ts_parse",
	"ts_token_type", "ts_stat", "ts_rewrite", "ts_match_tt", "ts_match_tq", "get_current_ts_config",
	NULL
};

/*
 * Whether a built-in function reports how a value is stored: keyedstate
 * keeps keys and states in forms of its own (copied out of the rows,
 * detoasted, read back from its checkpoints), so their sizes and
 * compression are not the table's (exactness review 19, F1).
 */
static bool
KsReportsStorage(Oid funcid)
{
	return funcid == F_PG_COLUMN_SIZE || funcid == F_PG_COLUMN_COMPRESSION;
}

/* Whether a built-in, non-immutable function reads the catalogs (see above). */
static bool
KsReadsCatalogs(Oid funcid)
{
	char	   *name = get_func_name(funcid);
	size_t		len = strlen(name);
	int			i;

	for (i = 0; ks_catalog_readers[i] != NULL; i++)
		if (strncmp(name, ks_catalog_readers[i], strlen(ks_catalog_readers[i])) == 0)
			return true;
	/* regclassin, regtypeout, ... and pg_table_is_visible, ... */
	if (strncmp(name, "reg", 3) == 0 &&
		((len > 2 && strcmp(name + len - 2, "in") == 0) || (len > 3 && strcmp(name + len - 3, "out") == 0)))
		return true;
	return len > 11 && strcmp(name + len - 11, "_is_visible") == 0;
}

/*
 * Whether a function called may give another value for the same row
 * later: a user's that is not IMMUTABLE, or a built-in catalog reader
 * (see the banner).  The first one met is left in *context.
 */
static bool
KsIsMutableFunction(Oid funcid, void *context)
{
	/* a built-in reader even if labelled IMMUTABLE (pg_partition_root) */
	if (funcid < FirstNormalObjectId ? !KsReadsCatalogs(funcid) && !KsReportsStorage(funcid) :
		func_volatile(funcid) == PROVOLATILE_IMMUTABLE)
		return false;
	*(Oid *) context = funcid;
	return true;
}

/* Refuse a function that KsIsMutableFunction found. */
static void
KsRefuseMutable(Oid funcid)
{
	bool		user = funcid >= FirstNormalObjectId;

	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg(user ? "keyedstate aggregations cannot call function %s, which is not immutable" :
					KsReportsStorage(funcid) ? "keyedstate aggregations cannot call function %s, which reports how a value is stored" :
					"keyedstate aggregations cannot call function %s, which reads the catalogs",
					format_procedure(funcid)),
			 errdetail("keyedstate computes what a row gives once, when it consumes the row, and again only for the rows a crash makes it replay, so the function must give the same value for the same arguments whenever it runs, as in an index expression."),
			 user ? errhint("Declare it IMMUTABLE if its value depends only on its arguments.") : 0));
}

/*
 * Types whose input and output read the catalogs: the OID of an object
 * read and written by name, a privilege naming roles.
 */
static bool
KsTypeNamesObjects(Oid t)
{
	switch (t)
	{
		case REGCLASSOID:
		case REGCOLLATIONOID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGOPERATOROID:
		case REGOPEROID:
		case REGPROCEDUREOID:
		case REGPROCOID:
		case REGROLEOID:
		case REGTYPEOID:
		case ACLITEMOID:
			return true;
		default:
			return false;
	}
}

/*
 * Whether a type holds an enum, a named composite type (a table's row
 * type too) or a type naming objects, nested in arrays, ranges or
 * domains; *walked are those that hold none.
 */
static bool
KsTypeHoldsNamed(Oid t, List **walked)
{
	Oid			elem;
	bool		holds = false;

	if (!OidIsValid(t) || list_member_oid(*walked, t))
		return false;
	check_stack_depth();
	if (type_is_enum(t) || OidIsValid(get_typ_typrelid(t)) || KsTypeNamesObjects(t))
		return true;
	if (getBaseType(t) != t)
		holds = KsTypeHoldsNamed(getBaseType(t), walked);
	else if (OidIsValid(elem = get_element_type(t)))
		holds = KsTypeHoldsNamed(elem, walked);
	else if (type_is_range(t))
		holds = KsTypeHoldsNamed(get_range_subtype(t), walked);
	else if (type_is_multirange(t))
		holds = KsTypeHoldsNamed(get_multirange_range(t), walked);
	if (!holds)
		*walked = lappend_oid(*walked, t);
	return holds;
}

/*
 * Whether an argument of a call holds such a type (also inside an
 * anonymous ROW() or ARRAY[] built of them); *found is set to its type.
 */
static bool
KsArgumentHoldsNamed(Node *arg, Oid *found)
{
	List	   *walked = NIL;

	/* (an aggregate's ORDER BY and DISTINCT clauses are no values) */
	if (arg == NULL || IsA(arg, SortGroupClause))
		return false;
	if (IsA(arg, TargetEntry))
		arg = (Node *) ((TargetEntry *) arg)->expr;
	if (IsA(arg, List))
		return expression_tree_walker(arg, KsArgumentHoldsNamed, found);
	if (KsTypeHoldsNamed(exprType(arg), &walked))
	{
		*found = exprType(arg);
		return true;
	}
	/* (their walk hands on the list of their elements) */
	if (IsA(arg, RowExpr) || IsA(arg, ArrayExpr))
		return expression_tree_walker(arg, KsArgumentHoldsNamed, found);
	/*
	 * Any other anonymous record (CASE, COALESCE, NULLIF, GREATEST or a
	 * subscript of ROW()s) hides its fields' types too: look inside it
	 * (re-review today 14, F2)
	 */
	if (exprType(arg) == RECORDOID || exprType(arg) == RECORDARRAYOID)
		return expression_tree_walker(arg, KsArgumentHoldsNamed, found);
	return false;
}

/* Whether a function is a built-in one that is not immutable. */
static bool
KsIsMutableBuiltin(Oid funcid, void *context)
{
	return funcid < FirstNormalObjectId && func_volatile(funcid) != PROVOLATILE_IMMUTABLE;
}

/*
 * Whether an aggregate runs a built-in support function that is not
 * immutable: jsonb_object_agg is marked immutable, but its transition
 * function (stable) prints its arguments (security review 18, F2).
 */
static bool
KsAggregateRunsMutableBuiltin(Oid aggfnoid)
{
	Oid			fns[KS_AGG_SUPPORT_FNS];
	int			i;

	if (!KsAggregateSupport(aggfnoid, fns))
		return false;
	for (i = 0; i < KS_AGG_SUPPORT_FNS; i++)
		if (OidIsValid(fns[i]) && KsIsMutableBuiltin(fns[i], NULL))
			return true;
	return false;
}

/*
 * Refuse a call of a built-in function that is not immutable taking or
 * giving a value holding an enum, a named composite type or a type naming
 * objects (see the banner): its value may follow the labels, attribute
 * names or object names as they are when the worker consumes the row.
 */
static void
KsCheckNamedConversion(Node *node)
{
	Oid			found = InvalidOid;
	List	   *walked = NIL;

	/* pg_typeof() gives its argument's type's OID, read by name only when the view is read */
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == F_PG_TYPEOF)
		return;
	/* (an XML expression converts its arguments with their output functions too) */
	if (IsA(node, TargetEntry) || IsA(node, List) ||
		(!IsA(node, XmlExpr) && !check_functions_in_node(node, KsIsMutableBuiltin, NULL) &&
		 !(IsA(node, Aggref) && KsAggregateRunsMutableBuiltin(((Aggref *) node)->aggfnoid))))
		return;
	if (KsTypeHoldsNamed(exprType(node), &walked))
		found = exprType(node);
	else
		(void) expression_tree_walker(node, KsArgumentHoldsNamed, &found);
	if (OidIsValid(found))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("keyedstate aggregations cannot convert values of type %s with a function that is not immutable",
						format_type_be(found)),
				 errdetail("Converting an enum to or from text reads its labels, a regclass, another reg* type or an aclitem the names of the objects and roles it stands for, and converting a composite value to or from JSON its attribute names, which ALTER ... RENAME changes; keyedstate computes what a row gives once, when it consumes it, so rows consumed before and after a rename would disagree."),
				 KsTypeNamesObjects(getBaseType(found)) ||
				 KsTypeNamesObjects(get_element_type(getBaseType(found))) ?
				 errhint("Keep the OID (o::oid) in the aggregation and turn it into a name when reading the view.") :
				 errhint("Compare an enum with constants (m = 'sad') or map it with CASE; build JSON from named fields, for example jsonb_build_object('a', (r).a).")));
}

/*
 * The default arguments of a function the query calls with fewer arguments
 * than it has: the planner adds them (expand_function_arguments), after
 * the checks below would have looked; NIL if it has none.
 */
static List *
KsDefaultArguments(Oid funcid, int nargs)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	List	   *defaults = NIL;
	Datum		datum;
	bool		isnull;

	if (!HeapTupleIsValid(tup))
		return NIL;
	if (((Form_pg_proc) GETSTRUCT(tup))->pronargdefaults > 0 &&
		nargs < ((Form_pg_proc) GETSTRUCT(tup))->pronargs)
	{
		datum = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargdefaults, &isnull);
		if (!isnull)
			defaults = castNode(List, stringToNode(TextDatumGetCString(datum)));
	}
	ReleaseSysCache(tup);
	return defaults;
}

/* The function a call or an operator node runs, with its arguments; InvalidOid for others. */
static Oid
KsCalledFunction(Node *node, List **args)
{
	*args = NIL;
	if (IsA(node, FuncExpr))
	{
		*args = ((FuncExpr *) node)->args;
		return ((FuncExpr *) node)->funcid;
	}
	if (IsA(node, OpExpr))
	{
		set_opfuncid((OpExpr *) node);
		*args = ((OpExpr *) node)->args;
		return ((OpExpr *) node)->opfuncid;
	}
	return InvalidOid;
}

static bool KsCheckPinnedWalker(Node *node, void *ctx);

/*
 * A domain's CHECK constraints (its base domains' too) run for each row a
 * cast to it meets, so they must be as pinned as the query: a check
 * calling random() or now(), or printing a regclass, passes a row on one
 * replay and fails it on another (security review 18, F3).
 */
static void
KsCheckDomainChecks(Oid domain, void *ctx)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate domain checks",
											  ALLOCSET_SMALL_SIZES);
	/* (in cxt: its deletion, also by an error below, reads it) */
	DomainConstraintRef *ref = MemoryContextAlloc(cxt, sizeof(DomainConstraintRef));
	ListCell   *lc;

	InitDomainConstraintRef(domain, ref, cxt, false);
	foreach(lc, ref->constraints)
	{
		DomainConstraintState *con = lfirst(lc);

		if (con->constrainttype != DOM_CONSTRAINT_CHECK)
			continue;
		if (contain_volatile_functions((Node *) con->check_expr))
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "volatile functions",
					 "A domain's CHECK constraint runs for each row cast to it, and a replay after a crash must compute the same; use immutable expressions.");
		(void) KsCheckPinnedWalker((Node *) con->check_expr, ctx);
	}
	/* (its reset releases the reference to the domain's constraints) */
	MemoryContextDelete(cxt);
}

/*
 * Refuse what a replay would compute differently: the current time in any
 * spelling (now(), current_timestamp, current_date, localtime, age() of
 * one argument...), and values of the session (session_user, the backend's
 * pid), which in the worker are not those of the creating session.
 */
static bool
KsCheckPinnedWalker(Node *node, void *ctx)
{
	Oid			funcid = InvalidOid;
	List	   *args;

	if (node == NULL)
		return false;
	if (IsA(node, SQLValueFunction))
	{
		SQLValueFunction *svf = (SQLValueFunction *) node;

		switch (svf->op)
		{
			case SVFOP_CURRENT_DATE:
			case SVFOP_CURRENT_TIME:
			case SVFOP_CURRENT_TIME_N:
			case SVFOP_CURRENT_TIMESTAMP:
			case SVFOP_CURRENT_TIMESTAMP_N:
			case SVFOP_LOCALTIME:
			case SVFOP_LOCALTIME_N:
			case SVFOP_LOCALTIMESTAMP:
			case SVFOP_LOCALTIMESTAMP_N:
				KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "the current date or time",
						 "A replay after a crash would see another time.  Group by a time bucket of a timestamp column instead, for example date_trunc('minute', ts).");
				break;
			case SVFOP_SESSION_USER:
			case SVFOP_CURRENT_USER:
			case SVFOP_CURRENT_ROLE:
			case SVFOP_USER:
			case SVFOP_CURRENT_CATALOG:
			case SVFOP_CURRENT_SCHEMA:
				KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "the current user, database or schema",
						 "The aggregation runs in a background worker, as its owner of the moment, in the database as it is named then; rows consumed before an ALTER ... OWNER or RENAME would keep the old name and later ones take the new.  Use a constant instead.");
				break;
			default:
				break;
		}
		return false;
	}
	/*
	 * A setting's value is the creating session's only if it is captured,
	 * whether current_setting() is called as a function or an operator
	 */
	if (KsIsSettingReader(KsCalledFunction(node, &args)) && !KsIsCapturedSettingName(linitial(args)))
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "current_setting() of a setting it does not capture",
				 "Only the settings keyedstate captures at creation (see the README) and custom settings (a name with a dot) set in your session, named by a constant, keep the creating session's value.");
	if (check_functions_in_node(node, KsIsMutableFunction, &funcid))
		KsRefuseMutable(funcid);
	KsCheckNamedConversion(node);
	/* the defaults the planner will add are computed for each row too */
	if (IsA(node, FuncExpr))
	{
		List	   *defaults = KsDefaultArguments(((FuncExpr *) node)->funcid, list_length(args));

		if (defaults != NIL && contain_volatile_functions((Node *) defaults))
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "volatile functions",
					 "A replay after a crash must compute the same values; use immutable expressions.");
		(void) KsCheckPinnedWalker((Node *) defaults, ctx);
	}
	if (IsA(node, CoerceToDomain))
		KsCheckDomainChecks(((CoerceToDomain *) node)->resulttype, ctx);
	if (IsA(node, Aggref) && KsAggregateReadsSession(((Aggref *) node)->aggfnoid))
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED,
				 "aggregates whose support functions are volatile, read settings or depend on the current time or session",
				 "A replay after a crash would compute another value.");
	if (check_functions_in_node(node, KsIsUnpinnedFunction, &funcid))	/* (a time bucket for a time: newuser 69, F4) */
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED,
				 psprintf("function %s, which depends on the current time or session", format_procedure(funcid)),
				 strchr((char[]) {TYPCATEGORY_DATETIME, TYPCATEGORY_TIMESPAN, '\0'}, TypeCategory(get_func_rettype(funcid))) == NULL ? "A replay after a crash would compute another value.  Use a constant instead." :
				 "A replay after a crash would compute another value.  Group by a time bucket of a timestamp column instead, for example date_trunc('minute', ts), and let ttl or a window (window_size) drop old ones.");
	return expression_tree_walker(node, KsCheckPinnedWalker, ctx);
}

/* Refuse what a replay would compute differently (see definition.h). */
void
KsCheckPinned(Query *query)
{
	Oid			funcid;

	if (contain_volatile_functions((Node *) query))
	{
		/* named, one of the user's as not immutable (newuser review 2, F11: it hinted "stable") */
		if ((funcid = KsFirstVolatileFunction(query)) >= FirstNormalObjectId)
			KsRefuseMutable(funcid);
		if (OidIsValid(funcid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("keyedstate aggregations cannot call volatile function %s", format_procedure(funcid)),
					 errhint("A replay after a crash must compute the same values; use immutable expressions.")));
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "volatile functions",
				 "A replay after a crash must compute the same values; use immutable expressions.");
	}
	query_tree_walker(query, KsCheckPinnedWalker, NULL, 0);
}
