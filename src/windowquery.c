/*-------------------------------------------------------------------------
 *
 * windowquery.c
 *	  Tumbling and sliding time windows: the query's rewrite, at creation
 *	  and when alter_aggregation() changes the window.  See window.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_oper.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "keytypes.h"
#include "window.h"

/* The longest window: a century (so that window arithmetic cannot overflow). */
#define KS_WINDOW_MAX_US		((int64) 100 * 366 * USECS_PER_DAY)

/*
 * The most panes a sliding window may have (a day of one-minute slides): a
 * changed pane changes as many windows, each merged from its panes.
 */
#define KS_WINDOW_MAX_PANES		1440

/* Microseconds of a window interval argument; errors unless fixed and positive. */
static int64
KsWindowMicroseconds(Interval *iv, const char *what)
{
	int64		us;
	double		dus;

	if (iv->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not contain months or years", what),
				 errdetail("Windows have a fixed length in time, counted as date_bin() counts it.")));
	/* in a double first: 200,000,000 days overflow int64 microseconds */
	dus = (double) iv->day * USECS_PER_DAY + (double) iv->time;
	if (dus <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what)));
	if (dus > (double) KS_WINDOW_MAX_US)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most 100 years", what)));
	us = (int64) iv->day * USECS_PER_DAY + iv->time;
	return us;
}

/* The window of create_aggregation's arguments (see window.h). */
KsWindowSpec *
KsWindowArguments(Interval *size, Interval *slide, const char *time_column)
{
	KsWindowSpec *spec;

	if (size == NULL)
	{
		if (slide != NULL || time_column != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("window_slide and time_column need a window_size")));
		return NULL;
	}
	if (time_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a window needs a time_column"),
				 errhint("Name the column of the source table that holds each row's time.")));
	spec = palloc0(sizeof(KsWindowSpec));
	spec->size_us = KsWindowMicroseconds(size, "window_size");
	spec->slide_us = slide ? KsWindowMicroseconds(slide, "window_slide") : spec->size_us;
	if (spec->slide_us > spec->size_us)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window_slide must not be longer than window_size"),
				 errdetail("A slide longer than the window would leave rows in no window.")));
	if (spec->size_us % spec->slide_us != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window_size must be a multiple of window_slide"),
				 errdetail("Sliding windows are made of panes as long as the slide.")));
	if (spec->size_us / spec->slide_us > KS_WINDOW_MAX_PANES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("window_size must be at most %d times window_slide", KS_WINDOW_MAX_PANES),
				 errdetail("A row changes window_size / window_slide windows, each merged from as many panes.")));
	spec->time_column = pstrdup(time_column);
	return spec;
}

/* A constant interval of `us` microseconds. */
static Const *
KsIntervalConst(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = us;
	return makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval), PointerGetDatum(iv),
					 false, false);
}

/* The microseconds of a constant interval of KsIntervalConst's. */
static int64
KsIntervalUs(Const *c)
{
	Interval   *iv = DatumGetIntervalP(c->constvalue);

	return (int64) iv->day * USECS_PER_DAY + iv->time;
}

/* `t op c`, c a time of t's type (op one of its btree operators). */
static Expr *
KsTimeCompare(Oid opno, Var *timevar, TimestampTz c)
{
	OpExpr	   *op;

	op = (OpExpr *) make_opclause(opno, BOOLOID, false, (Expr *) copyObject(timevar),
								  (Expr *) makeConst(timevar->vartype, -1, InvalidOid, sizeof(Timestamp),
													 TimestampGetDatum(c), false, FLOAT8PASSBYVAL),
								  InvalidOid, InvalidOid);
	op->opfuncid = get_opcode(opno);
	return (Expr *) op;
}

/* How far past a pane start (a multiple of slide from the epoch) t is, without overflow. */
static int64
KsPaneOffset(TimestampTz t, int64 slide)
{
	int64		r = (t % slide - SetEpochTimestamp() % slide) % slide;

	return r < 0 ? r + slide : r;
}

/*
 * Whether a row's time has windows (see window.h): finite, every window
 * holding it a valid time (starting at MIN_TIMESTAMP or later, ending
 * before END_TIMESTAMP), and not after 294247-01-10 04:00:54.775807, from
 * where date_bin() cannot count its microseconds from the epoch; or
 * infinite in a tumbling window (date_bin() keeps it).
 */
static Expr *
KsWindowTimeQual(Var *timevar, const KsWindowSpec *spec)
{
	int64		size = spec->size_us;
	int64		slide = spec->slide_us;
	/* the first pane in range, and the last whose windows all end in range */
	TimestampTz first = MIN_TIMESTAMP + (slide - KsPaneOffset(MIN_TIMESTAMP, slide)) % slide;
	TimestampTz last = (END_TIMESTAMP - size - 1) - KsPaneOffset(END_TIMESTAMP - size - 1, slide);
	Oid			ltop;
	Oid			eqop;
	Expr	   *inrange;

	get_sort_group_operators(timevar->vartype, true, true, false, &ltop, &eqop, NULL, NULL);
	/* first + size - slide <= t < last + slide, and t - epoch fits (each a valid time) */
	inrange = make_andclause(list_make2(KsTimeCompare(get_negator(ltop), timevar, first + size - slide),
										KsTimeCompare(ltop, timevar,
													  Min(last + slide, PG_INT64_MAX + SetEpochTimestamp() + 1))));
	if (size > slide)
		return inrange;
	return make_orclause(list_make3(inrange, KsTimeCompare(eqop, timevar, DT_NOBEGIN),
									KsTimeCompare(eqop, timevar, DT_NOEND)));
}

/*
 * What the rewrite adds for a window of the time column timevar: the
 * expressions of window_start (date_bin(slide, t, epoch)) and window_end
 * (that plus the size), and the qual of the rows that have windows.  Rows
 * without a time belong to no window, nor do those whose windows are not
 * all valid times, or none (security review 26, F4: an INSERT of
 * 'infinity', or of a time near an end of the range, whose window's end
 * overflowed, failed another owner's aggregation for good).
 */
static void
KsWindowPieces(Var *timevar, const KsWindowSpec *spec, Expr **start, Expr **end, Expr **windowed)
{
	Oid			timetype = timevar->vartype;
	NullTest   *nt = makeNode(NullTest);

	*start = (Expr *) makeFuncExpr(timetype == TIMESTAMPTZOID ? F_DATE_BIN_INTERVAL_TIMESTAMPTZ_TIMESTAMPTZ
								   : F_DATE_BIN_INTERVAL_TIMESTAMP_TIMESTAMP,
								   timetype,
								   list_make3(KsIntervalConst(spec->slide_us), copyObject(timevar),
											  makeConst(timetype, -1, InvalidOid, sizeof(Timestamp),
														TimestampGetDatum(SetEpochTimestamp()), false, FLOAT8PASSBYVAL)),
								   InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	*end = (Expr *) makeFuncExpr(timetype == TIMESTAMPTZOID ? F_TIMESTAMPTZ_PL_INTERVAL : F_TIMESTAMP_PL_INTERVAL,
								 timetype, list_make2(copyObject(*start), KsIntervalConst(spec->size_us)),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	nt->arg = (Expr *) copyObject(timevar);
	nt->nulltesttype = IS_NOT_NULL;
	nt->argisrow = false;
	nt->location = -1;
	*windowed = make_andclause(list_make2(nt, KsWindowTimeQual(timevar, spec)));
}

/*
 * Whether an expression reads the pane's start (date_bin(slide, t,
 * epoch), `pane`) outside an aggregate's arguments.  In a sliding window
 * the analysis (definition.c) takes it for window_start, the equal
 * grouping expression the rewrite adds before the query's own, and such a
 * key showed each window's start instead of its pane (re-review today 46,
 * F2: 1,432 of 2,148 rows differed).
 */
static bool
KsReadsPane(Node *node, Expr *pane)
{
	if (node == NULL || IsA(node, Aggref))
		return false;
	if (equal(node, pane))
		return true;
	return expression_tree_walker(node, KsReadsPane, (void *) pane);
}

/* Rewrite a parsed aggregation query for its window (see window.h). */
void
KsWindowRewrite(Query *query, const KsWindowSpec *spec)
{
	RangeTblEntry *rte;
	AttrNumber	attnum;
	Oid			timetype;
	int32		typmod;
	Oid			collid;
	Var		   *timevar;
	Expr	   *start;
	Expr	   *end;
	Expr	   *windowed;
	SortGroupClause *sgc;
	TargetEntry *tle;
	Index		ref = 0;
	ListCell   *lc;
	bool		hashable;
	int			resno;

	/* anything but one plain table is refused by the analysis after this */
	if (list_length(query->rtable) != 1 ||
		(rte = rt_fetch(1, query->rtable))->rtekind != RTE_RELATION ||
		query->groupClause == NIL)
		return;
	attnum = get_attnum(rte->relid, spec->time_column);
	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						spec->time_column, get_rel_name(rte->relid))));
	get_atttypetypmodcoll(rte->relid, attnum, &timetype, &typmod, &collid);
	if (timetype != TIMESTAMPTZOID && timetype != TIMESTAMPOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("time_column \"%s\" is of type %s", spec->time_column, format_type_be(timetype)),
				 errhint("A window's time column must be of type timestamp with time zone or timestamp.")));
	foreach(lc, query->targetList)
	{
		tle = lfirst(lc);
		if (!tle->resjunk && tle->resname != NULL &&
			(strcmp(tle->resname, "window_start") == 0 || strcmp(tle->resname, "window_end") == 0))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("the query of a windowed aggregation already has a column named \"%s\"",
							tle->resname),
					 errhint("Rename it: window_start and window_end are the view's first columns.")));
		ref = Max(ref, tle->ressortgroupref);
	}

	timevar = makeVar(1, attnum, timetype, typmod, collid, 0);
	KsWindowPieces(timevar, spec, &start, &end, &windowed);

	/* a sliding window's pane is not a key of the query's own (see KsReadsPane) */
	if (spec->size_us > spec->slide_us &&
		(KsReadsPane((Node *) query->targetList, start) || KsReadsPane(query->havingQual, start)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the query of a sliding window cannot read date_bin() of its time column by window_slide outside an aggregate"),
				 errdetail("The view's rows are windows, each merged from several such panes; that expression would read the window's start."),
				 errhint("Use window_start, or group by date_bin() with another origin or another stride.")));
	/* the two leading columns; window_start is the first grouping key */
	tle = makeTargetEntry(end, 2, pstrdup("window_end"), false);
	query->targetList = lcons(tle, query->targetList);
	tle = makeTargetEntry(start, 1, pstrdup("window_start"), false);
	tle->ressortgroupref = ref + 1;
	query->targetList = lcons(tle, query->targetList);
	resno = 0;
	foreach(lc, query->targetList)
		((TargetEntry *) lfirst(lc))->resno = ++resno;
	sgc = makeNode(SortGroupClause);
	sgc->tleSortGroupRef = ref + 1;
	get_sort_group_operators(timetype, true, true, false, &sgc->sortop, &sgc->eqop, NULL, &hashable);
	sgc->hashable = hashable;
	sgc->nulls_first = false;
	query->groupClause = lcons(sgc, query->groupClause);

	query->jointree->quals = query->jointree->quals == NULL ? (Node *) windowed :
		(Node *) make_andclause(list_make2(query->jointree->quals, windowed));
	rte->selectedCols = bms_add_member(rte->selectedCols,
									   attnum - FirstLowInvalidHeapAttributeNumber);
}

/* The combine function of an aggregate, or InvalidOid. */
static Oid
KsCombineFunction(Oid aggfnoid)
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Oid			combinefn;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggfnoid);
	combinefn = ((Form_pg_aggregate) GETSTRUCT(tup))->aggcombinefn;
	ReleaseSysCache(tup);
	return combinefn;
}

/* Refuse aggregates a sliding window cannot merge (see window.h). */
void
KsWindowCheckAggregates(List *aggrefs, const KsWindowSpec *spec)
{
	ListCell   *lc;

	if (spec == NULL || spec->size_us == spec->slide_us)
		return;
	foreach(lc, aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);

		if (aggref->aggorder != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s of a sliding window cannot order its inputs", format_procedure(aggref->aggfnoid)),
					 errdetail("A sliding window merges the states of its panes in time order, not in offset order."),
					 errhint("Use a tumbling window (window_slide equal to window_size), or leave the ORDER BY out.")));
		if (!OidIsValid(KsCombineFunction(aggref->aggfnoid)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s has no combine function", format_procedure(aggref->aggfnoid)),
					 errdetail("A sliding window merges the partial states of its panes with the aggregate's combine function."),
					 errhint("Use a tumbling window (window_slide equal to window_size), or an aggregate with a COMBINEFUNC.")));
	}
}

/* The error of a stored query whose window is not the rewrite's (see window.h). */
static void
KsWindowNotOurs(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot change the window of this aggregation"),
			 errdetail("Its stored query does not hold the window in the form keyedstate gives it."),
			 errhint("Drop the aggregation and create it again with the new window.")));
}

/*
 * The rewrite's window_start and window_end (see window.h), or an error;
 * of the rewrite's shape: date_bin(<slide>, <time column>, <origin>) and
 * that plus <size>.
 */
static void
KsWindowColumns(Query *query, TargetEntry **start, TargetEntry **end)
{
	FuncExpr   *sf;
	FuncExpr   *ef;

	if (list_length(query->targetList) < 2 ||
		(*start = linitial(query->targetList))->resname == NULL ||
		strcmp((*start)->resname, "window_start") != 0 || !IsA((*start)->expr, FuncExpr) ||
		(*end = lsecond(query->targetList))->resname == NULL ||
		strcmp((*end)->resname, "window_end") != 0)
		elog(ERROR, "keyedstate found no window in a windowed aggregation's query");
	sf = (FuncExpr *) (*start)->expr;
	ef = (FuncExpr *) (*end)->expr;
	if (list_length(sf->args) != 3 || !IsA(linitial(sf->args), Const) || !IsA(lsecond(sf->args), Var) ||
		!IsA(ef, FuncExpr) || list_length(ef->args) != 2 || !IsA(lsecond(ef->args), Const))
		KsWindowNotOurs();
}

/* The number of the time column a stored query's windows read (see window.h). */
AttrNumber
KsWindowTimeColumn(Query *query)
{
	TargetEntry *start;
	TargetEntry *end;

	KsWindowColumns(query, &start, &end);
	return lsecond_node(Var, ((FuncExpr *) start->expr)->args)->varattno;
}

/*
 * Rewrite a stored windowed query for another window (see window.h): take
 * out what KsWindowRewrite put in, each piece checked to be what it puts
 * in for the old window (a restored query was parsed again from its text:
 * its window_start is first in the GROUP BY and its WHERE's ANDs are one,
 * exactness review 45, F2), then rewrite it for spec.
 */
void
KsWindowChange(Query *query, const KsWindowSpec *spec)
{
	TargetEntry *start;
	TargetEntry *end;
	KsWindowSpec old;
	Var		   *timevar;
	Expr	   *ostart;
	Expr	   *oend;
	Expr	   *owindowed;
	Oid			timetype;
	int			resno = 0;
	ListCell   *lc;
	List	   *rest = NIL;
	bool		found = false;
	AttrNumber	attnum;
	Bitmapset  *read = NULL;
	FuncExpr   *sf;

	KsWindowColumns(query, &start, &end);
	sf = (FuncExpr *) start->expr;
	timevar = lsecond_node(Var, sf->args);
	attnum = timevar->varattno;
	timetype = timevar->vartype;
	old.slide_us = KsIntervalUs(linitial_node(Const, sf->args));
	old.size_us = KsIntervalUs(lsecond_node(Const, ((FuncExpr *) end->expr)->args));
	if (old.slide_us <= 0 || old.size_us < old.slide_us)
		KsWindowNotOurs();
	KsWindowPieces(timevar, &old, &ostart, &oend, &owindowed);
	if (!equal(start->expr, ostart) || !equal(end->expr, oend))
		KsWindowNotOurs();
	/* its WHERE conjunct: the whole WHERE, or one of the top AND's */
	if (equal(query->jointree->quals, owindowed))
		found = true;
	else if (is_andclause(query->jointree->quals))
	{
		foreach(lc, ((BoolExpr *) query->jointree->quals)->args)
		{
			if (!found && equal(lfirst(lc), owindowed))
				found = true;
			else
				rest = lappend(rest, lfirst(lc));
		}
	}
	if (!found)
		KsWindowNotOurs();
	query->jointree->quals = rest == NIL ? NULL : list_length(rest) == 1 ? linitial(rest) :
		(Node *) make_andclause(rest);
	/* its GROUP BY entry and its columns */
	foreach(lc, query->groupClause)
		if (((SortGroupClause *) lfirst(lc))->tleSortGroupRef == start->ressortgroupref)
		{
			query->groupClause = foreach_delete_current(query->groupClause, lc);
			break;
		}
	query->targetList = list_delete_ptr(list_delete_ptr(query->targetList, start), end);
	foreach(lc, query->targetList)
		((TargetEntry *) lfirst(lc))->resno = ++resno;
	/* the old time column stays selected only if the query reads it */
	pull_varattnos((Node *) query->targetList, 1, &read);
	pull_varattnos(query->jointree->quals, 1, &read);
	pull_varattnos(query->havingQual, 1, &read);
	if (!bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, read))
		rt_fetch(1, query->rtable)->selectedCols =
			bms_del_member(rt_fetch(1, query->rtable)->selectedCols, attnum - FirstLowInvalidHeapAttributeNumber);
	KsWindowRewrite(query, spec);
	KsWindowColumns(query, &start, &end);
	if (exprType((Node *) start->expr) != timetype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("time_column \"%s\" is of type %s, not %s", spec->time_column,
						format_type_be(exprType((Node *) start->expr)), format_type_be(timetype)),
				 errdetail("The view's columns window_start and window_end have the type of the time column."),
				 errhint("Drop the aggregation and create it again to window it by a column of another type.")));
	/* a sliding window merges panes */
	if (spec->size_us != spec->slide_us)
	{
		List	   *aggrefs = NIL;

		(void) KsCollectAggrefs((Node *) query->targetList, &aggrefs);
		(void) KsCollectAggrefs(query->havingQual, &aggrefs);
		KsWindowCheckAggregates(aggrefs, spec);
	}
}
