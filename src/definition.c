/*-------------------------------------------------------------------------
 *
 * definition.c
 *	  Analysing an aggregation's query, and reading its catalog row.
 *
 * KsAnalyzeQuery is the single place that decides what an aggregation may
 * contain.  create_aggregation runs it to refuse bad definitions with a
 * clear error; the worker runs it again on the stored tree to get the keys,
 * the aggregate calls and the view's projection.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/partition.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_subscription_rel.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "optimizer/prep.h"
#include "parser/parse_clause.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "definition.h"
#include "settings.h"


/* Raise the error for a construct that an aggregation cannot contain. */
void
KsRefuse(int errcode_value, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(errcode_value),
			 errmsg("keyedstate aggregations cannot contain %s", what),
			 hint ? errhint("%s", hint) : 0));
}

/* check_functions_in_node: a volatile function, noted in *context. */
static bool
KsIsVolatileFunction(Oid funcid, void *context)
{
	*(Oid *) context = funcid;
	return func_volatile(funcid) == PROVOLATILE_VOLATILE;
}

/* The first volatile function of a tree, in *found. */
static bool
KsFindVolatileWalker(Node *node, void *found)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, KsIsVolatileFunction, found))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, KsFindVolatileWalker, found, 0);
	return expression_tree_walker(node, KsFindVolatileWalker, found);
}

/* The first volatile function a query calls, or InvalidOid (see definition.h). */
Oid
KsFirstVolatileFunction(Query *query)
{
	Oid			funcid = InvalidOid;

	return query_tree_walker(query, KsFindVolatileWalker, &funcid, 0) ? funcid : InvalidOid;
}

static void KsLayOutInput(KsQueryInfo *info);

/* Walker state for collecting aggregate calls and checking Vars. */
typedef struct KsCollectContext
{
	List	   *aggrefs;
	AttrNumber	order_attnum;	/* what ordered calls order by (inputorder.c) */
} KsCollectContext;

/*
 * Collect the distinct Aggrefs of an expression and refuse what the worker
 * cannot run: DISTINCT inside an aggregate, ORDER BY by other than a
 * column (the offset column, checked once it is known: inputorder.c), ordered-set
 * aggregates, GROUPING(), system columns.
 */
static bool
KsCollectWalker(Node *node, KsCollectContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		Aggref	   *aggref = (Aggref *) node;

		if (aggref->aggkind != AGGKIND_NORMAL)
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "ordered-set or hypothetical-set aggregates",
					 "Only normal aggregates, built-in or made with CREATE AGGREGATE, can be maintained incrementally.");
		if (aggref->aggdistinct != NIL)
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "DISTINCT inside an aggregate",
					 "Incremental aggregation cannot know which inputs it has already seen: group by the key and the value too, and count the view's rows per key.");
		ctx->order_attnum = KsAggrefOrderColumn(aggref, ctx->order_attnum);
		if (aggref->agglevelsup != 0)
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "outer-level aggregates", NULL);
		if (!list_member(ctx->aggrefs, aggref))
			ctx->aggrefs = lappend(ctx->aggrefs, aggref);
		/* arguments are checked by the Var walk over the whole query */
		return false;
	}
	if (IsA(node, GroupingFunc))
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "GROUPING()", NULL);
	return expression_tree_walker(node, KsCollectWalker, (void *) ctx);
}

/* Refuse system columns and whole-row references anywhere in the query. */
static bool
KsCheckVarsWalker(Node *node, void *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varattno <= 0)
			KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "system columns or whole-row references",
					 "Refer to the table's ordinary columns only.");
		return false;
	}
	return expression_tree_walker(node, KsCheckVarsWalker, ctx);
}

/*
 * Whether values of a type may be an anonymous record: such a value names
 * its row type by a number that only means something inside the process
 * that made it, so it cannot be checkpointed or replayed.
 */
bool
KsTypeIsAnonymousRecord(Oid typid)
{
	Oid			elem;

	typid = getBaseType(typid);
	if (typid == RECORDOID)
		return true;
	elem = get_element_type(typid);
	if (OidIsValid(elem))
		return KsTypeIsAnonymousRecord(elem);
	return false;
}

/* Mutator state for rewriting the view's columns over the result tuple. */
typedef struct KsRewriteContext
{
	KsQueryInfo *info;
} KsRewriteContext;

/*
 * Replace grouping expressions and aggregate calls by Vars of the result
 * tuple.  Whole grouping expressions are matched before descending, as the
 * planner's setrefs does, so `date_trunc('minute', ts)` is one key and not
 * an expression over the ungrouped column ts.
 */
static Node *
KsRewriteMutator(Node *node, KsRewriteContext *ctx)
{
	KsQueryInfo *info = ctx->info;
	ListCell   *lc;
	int			i;

	if (node == NULL)
		return NULL;

	i = 0;
	foreach(lc, info->keyexprs)
	{
		if (equal(node, lfirst(lc)))
			return (Node *) makeVar(1, i + 1, info->keytypes[i],
									exprTypmod(node), info->keycolls[i], 0);
		i++;
	}
	if (IsA(node, Aggref))
	{
		Aggref	   *aggref = (Aggref *) node;

		i = 0;
		foreach(lc, info->aggrefs)
		{
			if (equal(node, lfirst(lc)))
				return (Node *) makeVar(1, info->nkeys + i + 1, aggref->aggtype,
										-1, aggref->aggcollid, 0);
			i++;
		}
		elog(ERROR, "aggregate call not collected");
	}
	if (IsA(node, Var))
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("column \"%s\" must appear in the GROUP BY clause or be used in an aggregate function",
						get_attname(info->source_relid, ((Var *) node)->varattno, false)),
				 errdetail("keyedstate does not use functional dependencies on a primary key.")));
	return expression_tree_mutator(node, KsRewriteMutator, (void *) ctx);
}

/* Whether a subscription replicates into a table (see definition.h). */
bool
KsTableIsSubscribed(Oid relid)
{
	Relation	rel = table_open(SubscriptionRelRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, Anum_pg_subscription_rel_srrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, SubscriptionRelSrrelidSrsubidIndexId, true, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Refuse a source a subscription replicates into, or into a table of its
 * partition tree (a partition, an ancestor it routes rows through: review
 * 10 found a subscribed partition accepted).  At creation and at every load.
 */
static void
KsCheckNotSubscribed(Oid relid)
{
	List	   *tree = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	if (get_rel_relispartition(relid))
		tree = list_concat(tree, get_partition_ancestors(relid));
	foreach(lc, tree)
	{
		Oid			table = lfirst_oid(lc);

		if (!KsTableIsSubscribed(table))
			continue;
		if (table == relid)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot aggregate table \"%s\" because a subscription replicates into it",
							get_rel_name(relid)),
					 errdetail("Logical replication inserts rows with the publisher's offsets, which this database's sequence never hands out, so they would never be read."),
					 errhint("Aggregate the table on the publisher.")));
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot aggregate table \"%s\" because a subscription replicates into table \"%s\" of its partition tree",
						get_rel_name(relid), get_rel_name(table)),
				 errdetail("Logical replication inserts rows with the publisher's offsets, which this database's sequence never hands out, so they would never be read."),
				 errhint("Aggregate the table on the publisher.")));
	}
	list_free(tree);
}

/*
 * Check that a query can be an aggregation and take it apart into keys,
 * aggregate calls and the view's projection.
 */
void
KsAnalyzeQuery(Query *query, KsQueryInfo *info)
{
	RangeTblEntry *rte;
	KsCollectContext cctx;
	KsRewriteContext rctx;
	ListCell   *lc;
	int			i;
	int			nviewcols;
	char		relkind;
	char		persistence;

	memset(info, 0, sizeof(KsQueryInfo));
	info->query = query;

	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("keyedstate aggregation query must be a SELECT statement")));
	if (query->setOperations != NULL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "UNION, INTERSECT or EXCEPT", NULL);
	if (query->cteList != NIL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "WITH queries", "Write the query over the table itself.");
	if (query->hasSubLinks)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "subqueries", "Aggregate the table itself; join or filter in a query over the view.");
	if (query->hasWindowFuncs)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "window functions", "Apply window functions in a query over the view.");
	if (query->hasTargetSRFs)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "set-returning functions", NULL);
	/* (GROUP BY () groups by nothing: the missing GROUP BY below) */
	if (query->groupingSets != NIL && query->groupClause != NIL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "GROUPING SETS, ROLLUP or CUBE", NULL);
	if (query->distinctClause != NIL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "DISTINCT", "GROUP BY the selected columns instead.");
	if (query->sortClause != NIL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "ORDER BY",
				 "Order the rows when you query the view.");
	if (query->limitCount != NULL || query->limitOffset != NULL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "LIMIT or OFFSET", NULL);
	if (query->rowMarks != NIL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "FOR UPDATE or FOR SHARE", NULL);
	if (query->groupClause == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("keyedstate aggregation query must group by at least one key"),
				 errhint("Group by a key column or expression; for totals over the whole table, by a constant: SELECT true AS all_rows, count(*) ... GROUP BY 1.")));

	/* the view's columns: CREATE VIEW would say so, naming our internal tables */
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		ListCell   *lc2;

		for (lc2 = lnext(query->targetList, lc); lc2 != NULL && !tle->resjunk && tle->resname != NULL;
			 lc2 = lnext(query->targetList, lc2))
			if (!((TargetEntry *) lfirst(lc2))->resjunk &&
				strcmp(tle->resname, ((TargetEntry *) lfirst(lc2))->resname) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" specified more than once", tle->resname),
						 errhint("Name the columns with AS.")));
	}

	/* exactly one plain table */
	if (list_length(query->rtable) != 1 ||
		list_length(query->jointree->fromlist) != 1 ||
		!IsA(linitial(query->jointree->fromlist), RangeTblRef))
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "joins or more than one table",
				 "An aggregation reads exactly one table.");
	rte = rt_fetch(1, query->rtable);
	if (rte->rtekind == RTE_SUBQUERY)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "subqueries", "Aggregate the table itself; join or filter in a query over the view.");
	if (rte->rtekind == RTE_FUNCTION || rte->rtekind == RTE_TABLEFUNC)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "set-returning functions", NULL);
	if (rte->rtekind != RTE_RELATION)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "this kind of FROM item",
				 "An aggregation reads exactly one table.");
	if (rte->tablesample != NULL)
		KsRefuse(ERRCODE_FEATURE_NOT_SUPPORTED, "TABLESAMPLE", NULL);

	info->source_relid = rte->relid;
	relkind = get_rel_relkind(rte->relid);
	persistence = get_rel_persistence(rte->relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(rte->relid)),
				 errdetail("keyedstate aggregations consume ordinary and partitioned tables only, not views, materialized views or foreign tables.")));
	/* (its rows are not written by INSERT with offsets: DBA review 38, F8) */
	if (IsCatalogRelationOid(rte->relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot aggregate system catalog \"%s\"", get_rel_name(rte->relid)),
				 errdetail("keyedstate consumes tables whose rows are inserted in the order of a column filled from a sequence.")));
	/* a subscriber's table: its rows keep the publisher's offsets (see below) */
	KsCheckNotSubscribed(rte->relid);
	/* ONLY of a partitioned table reads nothing: the plain query has no row */
	if (relkind == RELKIND_PARTITIONED_TABLE && !rte->inh)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot aggregate ONLY partitioned table \"%s\"", get_rel_name(rte->relid)),
				 errdetail("A partitioned table holds no rows of its own: its rows are in its partitions."),
				 errhint("Leave out ONLY to aggregate every partition, or name one partition.")));
	if (persistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot aggregate temporary table \"%s\"", get_rel_name(rte->relid)),
				 errdetail("The background worker cannot see another session's temporary tables.")));
	if (persistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot aggregate unlogged table \"%s\"", get_rel_name(rte->relid)),
				 errdetail("An unlogged table is emptied by a crash, which would leave the checkpointed state without its input rows.")));

	if (relkind == RELKIND_RELATION && find_inheritance_children(rte->relid, NoLock) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot aggregate table \"%s\" because it has inheritance children",
						get_rel_name(rte->relid)),
				 errdetail("Rows inserted into a child are not ordered with the parent's offsets, so keyedstate could not consume them exactly."),
				 errhint("Aggregate each child table by itself.")));

	/* what a replay would compute differently (pinned.c) */
	KsCheckPinned(query);
	query_tree_walker(query, KsCheckVarsWalker, NULL, 0);

	/* the grouping keys */
	info->nkeys = list_length(query->groupClause);
	info->keytypes = palloc(sizeof(Oid) * info->nkeys);
	info->keycolls = palloc(sizeof(Oid) * info->nkeys);
	info->keyeqops = palloc(sizeof(Oid) * info->nkeys);
	info->keyattnums = palloc0(sizeof(AttrNumber) * info->nkeys);
	i = 0;
	foreach(lc, query->groupClause)
	{
		SortGroupClause *sgc = lfirst_node(SortGroupClause, lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);
		Node	   *expr = (Node *) tle->expr;

		/* (first: row(a, b) is not hashable either, and this says what to do: review exactness 53, L1) */
		if (KsTypeIsAnonymousRecord(exprType(expr)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("keyedstate keys cannot be anonymous records"),
					 errdetail("A key of type %s could not be checkpointed and read back.",
							   format_type_be(exprType(expr))),
					 errhint("Group by the columns themselves, or cast the row to a composite type.")));
		if (!sgc->hashable)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("could not identify a hash function for type %s",
							format_type_be(exprType(expr))),
					 errdetail("keyedstate keys must be of a hashable type.")));
		info->keyexprs = lappend(info->keyexprs, expr);
		info->keytypes[i] = exprType(expr);
		info->keycolls[i] = exprCollation(expr);
		info->keyeqops[i] = sgc->eqop;
		if (!tle->resjunk)
			info->keyattnums[i] = tle->resno;
		i++;
	}

	/* a view's column cannot be an anonymous record either (a key's parts may) */
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (!tle->resjunk && KsTypeIsAnonymousRecord(exprType((Node *) tle->expr)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("keyedstate aggregations cannot have column \"%s\" of type %s",
							tle->resname ? tle->resname : "?", format_type_be(exprType((Node *) tle->expr))),
					 errdetail("The rows of an aggregation's view are published and read back, which a value of an anonymous record type cannot be."),
					 errhint("Cast the row to a composite type, or list its columns.")));
	}

	/* the aggregate calls */
	memset(&cctx, 0, sizeof(cctx));
	foreach(lc, query->targetList)
		KsCollectWalker((Node *) ((TargetEntry *) lfirst(lc))->expr, &cctx);
	KsCollectWalker(query->havingQual, &cctx);
	info->aggrefs = cctx.aggrefs;
	info->order_attnum = cctx.order_attnum;
	info->naggs = list_length(cctx.aggrefs);

	/* the result tuple: keys, then aggregate results */
	info->resultdesc = CreateTemplateTupleDesc(info->nkeys + info->naggs);
	i = 0;
	foreach(lc, info->keyexprs)
	{
		Node	   *expr = lfirst(lc);

		TupleDescInitEntry(info->resultdesc, i + 1, NULL, exprType(expr), exprTypmod(expr), 0);
		TupleDescInitEntryCollation(info->resultdesc, i + 1, exprCollation(expr));
		i++;
	}
	foreach(lc, info->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);

		TupleDescInitEntry(info->resultdesc, i + 1, NULL, aggref->aggtype, -1, 0);
		TupleDescInitEntryCollation(info->resultdesc, i + 1, aggref->aggcollid);
		i++;
	}

	/* the view's columns over the result tuple */
	rctx.info = info;
	nviewcols = 0;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);
		TargetEntry *newtle;

		if (tle->resjunk)
			continue;
		newtle = flatCopyTargetEntry(tle);
		newtle->expr = (Expr *) KsRewriteMutator((Node *) tle->expr, &rctx);
		newtle->resno = ++nviewcols;
		newtle->ressortgroupref = 0;
		info->resulttlist = lappend(info->resulttlist, newtle);
	}
	if (query->havingQual != NULL)
	{
		List	   *conjuncts = NIL;

		/*
		 * HAVING conjuncts without aggregates filter rows, before grouping:
		 * PostgreSQL's planner moves them into WHERE (subquery_planner).  It
		 * matters for a key whose values are equal but not alike (1.0 and
		 * 1.00, 'a' and 'A' under a case-insensitive collation): the plain
		 * query counts only the rows whose value passes.
		 */
		foreach(lc, make_ands_implicit(canonicalize_qual((Expr *) copyObject(query->havingQual), false)))
		{
			Node	   *conjunct = lfirst(lc);

			if (contain_agg_clause(conjunct) || contain_volatile_functions(conjunct))
				conjuncts = lappend(conjuncts, conjunct);
			else
				info->rowhaving = lappend(info->rowhaving, conjunct);
		}
		if (conjuncts != NIL)
			info->having = (Expr *) KsRewriteMutator((Node *) make_ands_explicit(conjuncts), &rctx);
	}
	info->viewdesc = ExecTypeFromTL(info->resulttlist);

	KsLayOutInput(info);
}

/*
 * An argument of an aggregate with a FILTER, as the input row computes it:
 * CASE WHEN filter THEN arg END, so that it is evaluated only for rows the
 * filter keeps, as nodeAgg does (a guard such as sum(100 / v) FILTER
 * (WHERE v <> 0) must not fail on the rows it rejects).
 */
static Expr *
KsFilteredArgument(Expr *arg, Expr *filter)
{
	CaseExpr   *c = makeNode(CaseExpr);
	CaseWhen   *w = makeNode(CaseWhen);

	w->expr = (Expr *) copyObject(filter);
	w->result = arg;
	w->location = -1;
	c->casetype = exprType((Node *) arg);
	c->casecollid = exprCollation((Node *) arg);
	c->args = list_make1(w);
	c->defresult = (Expr *) makeNullConst(c->casetype, exprTypmod((Node *) arg), c->casecollid);
	c->location = -1;
	return (Expr *) c;
}

/*
 * The input row layout (see KsQueryInfo): the offset, the keys, then each
 * aggregate's arguments and FILTER.  Decided here, once, from the analysed
 * query; the source reader builds rows in this layout and the aggregate
 * calls read them by these column numbers.
 */
static void
KsLayOutInput(KsQueryInfo *info)
{
	ListCell   *lc;
	int			col;
	int			i;

	info->inputexprs = list_copy(info->keyexprs);
	info->inputcols = palloc0(sizeof(int) * Max(info->naggs, 1));
	info->filtercols = palloc0(sizeof(int) * Max(info->naggs, 1));
	col = 1 + info->nkeys;
	i = 0;
	foreach(lc, info->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);
		ListCell   *alc;

		info->inputcols[i] = col;
		foreach(alc, aggref->args)
		{
			Expr	   *arg = ((TargetEntry *) lfirst(alc))->expr;

			/* what the inputs are ordered by only (the offset: inputorder.c) */
			if (((TargetEntry *) lfirst(alc))->resjunk)
				continue;
			if (aggref->aggfilter != NULL)
				arg = KsFilteredArgument(arg, aggref->aggfilter);
			info->inputexprs = lappend(info->inputexprs, arg);
			col++;
		}
		info->filtercols[i] = -1;
		if (aggref->aggfilter != NULL)
		{
			info->filtercols[i] = col;
			info->inputexprs = lappend(info->inputexprs, aggref->aggfilter);
			col++;
		}
		i++;
	}
	info->ninputcols = col;
	info->where = (Expr *) info->query->jointree->quals;
	if (info->rowhaving != NIL)
		info->where = make_ands_explicit(info->where != NULL ?
										 lcons(info->where, list_copy(info->rowhaving)) : info->rowhaving);
}

/*
 * The stored form of an aggregation's analysed query (nodeToString), at
 * most KS_MAX_QUERY_TREE bytes: commands of every role (ALTER TABLE of a
 * table's columns, ALTER TYPE, DROP TYPE ... CASCADE) read every
 * aggregation's tree to check what it stores, so its size bounds what one
 * owner's query costs everyone else's commands.
 */
char *
KsCheckedQueryTree(Query *query, const char *name)
{
	char	   *tree = nodeToString(query);
	size_t		len = strlen(tree);

	if (len > KS_MAX_QUERY_TREE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("query of aggregation %s is too large", name),
				 errdetail("Its analysed form takes %zu bytes, more than the %d an aggregation's query may take.",
						   len, KS_MAX_QUERY_TREE),
				 errhint("Give a long list of values as one array constant (x = ANY ('{...}')), or split the query into several aggregations.")));
	return tree;
}
