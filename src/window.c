/*-------------------------------------------------------------------------
 *
 * window.c
 *	  Tumbling and sliding time windows: the query rewrite at creation, and
 *	  publishing sliding windows by merging their panes.  See window.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_oper.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/expandeddatum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "publish.h"
#include "window.h"

/* The longest window: a century (so that window arithmetic cannot overflow). */
#define KS_WINDOW_MAX_US		((int64) 100 * 366 * USECS_PER_DAY)

/*
 * The most panes a sliding window may have (a day of one-minute slides): a
 * changed pane changes as many windows, each merged from its panes.
 */
#define KS_WINDOW_MAX_PANES		1440

/*
 * The panes of one user key that the windows being merged have looked up,
 * by pane start (base + i * slide), so that the consecutive windows of a
 * changed pane, which share all but one pane each, look each pane up once:
 * about 2 * npanes lookups per changed pane instead of npanes squared.
 */
typedef struct KsPaneCache
{
	bool		valid;
	Datum	   *keys;			/* the user key (columns 1 ..), as first met */
	bool	   *nulls;
	TimestampTz base;
	int64		n;
	bool	   *probed;
	KsKeyEntry **panes;			/* NULL: no such pane */
} KsPaneCache;

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
	if (spec->slide_us > spec->size_us || spec->size_us % spec->slide_us != 0)
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
	FuncExpr   *start;
	FuncExpr   *end;
	NullTest   *nt;
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

	/* date_bin(slide, t, epoch) and that plus the size */
	timevar = makeVar(1, attnum, timetype, typmod, collid, 0);
	start = makeFuncExpr(timetype == TIMESTAMPTZOID ? F_DATE_BIN_INTERVAL_TIMESTAMPTZ_TIMESTAMPTZ
						 : F_DATE_BIN_INTERVAL_TIMESTAMP_TIMESTAMP,
						 timetype,
						 list_make3(KsIntervalConst(spec->slide_us), timevar,
									makeConst(timetype, -1, InvalidOid, sizeof(Timestamp),
											  TimestampGetDatum(SetEpochTimestamp()), false, FLOAT8PASSBYVAL)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	end = makeFuncExpr(timetype == TIMESTAMPTZOID ? F_TIMESTAMPTZ_PL_INTERVAL : F_TIMESTAMP_PL_INTERVAL,
					   timetype, list_make2(copyObject(start), KsIntervalConst(spec->size_us)),
					   InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);

	/* the two leading columns; window_start is the first grouping key */
	tle = makeTargetEntry((Expr *) end, 2, pstrdup("window_end"), false);
	query->targetList = lcons(tle, query->targetList);
	tle = makeTargetEntry((Expr *) start, 1, pstrdup("window_start"), false);
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

	/*
	 * rows without a time belong to no window, nor do those whose windows
	 * are not all valid times, or none (security review 26, F4: an INSERT
	 * of 'infinity', or of a time near an end of the range, whose window's
	 * end overflowed, failed another owner's aggregation for good)
	 */
	nt = makeNode(NullTest);
	nt->arg = (Expr *) copyObject(timevar);
	nt->nulltesttype = IS_NOT_NULL;
	nt->argisrow = false;
	nt->location = -1;
	windowed = make_andclause(list_make2(nt, KsWindowTimeQual(timevar, spec)));
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

		if (!OidIsValid(KsCombineFunction(aggref->aggfnoid)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s has no combine function", format_procedure(aggref->aggfnoid)),
					 errdetail("A sliding window merges the partial states of its panes with the aggregate's combine function."),
					 errhint("Use a tumbling window (window_slide equal to window_size), or an aggregate with a COMBINEFUNC.")));
	}
}

/* Add the row's time to a windowed aggregation's input row (see window.h). */
void
KsWindowLayOut(KsQueryInfo *info)
{
	FuncExpr   *bin = linitial_node(FuncExpr, info->keyexprs);

	info->inputexprs = lappend(info->inputexprs, copyObject(lsecond(bin->args)));
	info->timecol = info->ninputcols++;
}

/* After recovery of a windowed aggregation (see window.h). */
void
KsWindowLoad(KsAggRun *run)
{
	KsAggRuntime *rt = run->rt;
	KsKeyIter	iter;
	KsKeyEntry *e;
	int			i;

	/*
	 * A part's own keys may be older than what the aggregation has read.
	 * An infinite time never counts (exactness review 16, finding 1: one
	 * that a tumbling window without a TTL kept expired every window once
	 * a TTL came, and an earlier build may have checkpointed it).
	 */
	run->watermark = TIMESTAMP_NOT_FINITE(run->recovered_wm) ? DT_NOBEGIN : run->recovered_wm;
	KsKeyIterInit(&iter, run->kt);
	while ((e = KsKeyIterNext(&iter)) != NULL)
		if (!(e->flags & KS_KEY_EXPIRED) && !TIMESTAMP_NOT_FINITE(e->touched) &&
			(run->watermark == DT_NOBEGIN || e->touched > run->watermark))
			run->watermark = e->touched;
	run->applybuf->timecol = run->info.timecol;
	run->applybuf->win_size = run->def->window_size_us;
	run->applybuf->win_slide = run->def->window_slide_us;
	run->applybuf->watermark = run->watermark;
	if (!KsWindowSliding(run))
		return;

	run->windows = KsKeyTableCreate(run->info.nkeys, run->info.keytypes, run->info.keycolls,
									run->info.keyeqops, 0, run->loadcxt);
	run->combinefns = MemoryContextAllocZero(run->loadcxt, sizeof(FmgrInfo) * Max(rt->ncalls, 1));
	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];

		if (!OidIsValid(c->combinefn_oid))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aggregate %s has no combine function", format_procedure(c->aggfnoid))));
		fmgr_info_cxt(c->combinefn_oid, &run->combinefns[i], run->loadcxt);
		fmgr_info_set_expr((Node *) c->combinefn_expr, &run->combinefns[i]);
	}
	run->combinecxt = AllocSetContextCreate(run->loadcxt, "keyedstate window merge",
											ALLOCSET_DEFAULT_SIZES);
	/*
	 * A changed pane publishes window_size / window_slide windows: before
	 * the first publish has measured it, the step's reading stops as if
	 * each took a few microseconds (KsRunBudgetSpent), not at a full batch.
	 */
	run->publish_us_per_key = Max(run->publish_us_per_key,
								  4.0 * (run->def->window_size_us / run->def->window_slide_us));

	/* checkpoints hold the panes: every window is published again from them */
	KsKeyIterInit(&iter, run->kt);
	while ((e = KsKeyIterNext(&iter)) != NULL)
		KsKeyMarkPublish(run->kt, e);
}

/*
 * Merge one pane's state into a window's, as nodeAgg's combine step does:
 * a strict combine function skips NULL states and takes a copy of the
 * first one; by-reference results are copied so that a window's state
 * never points into a pane's.
 */
static void
KsCombineOne(KsAggRuntime *rt, KsAggCall *c, FmgrInfo *fn, KsTransState *st,
			 const KsTransState *pane)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		newVal;

	if (fn->fn_strict)
	{
		if (pane->isnull)
			return;
		if (st->noTransValue)
		{
			st->value = datumCopy(pane->value, c->transtypeByVal, c->transtypeLen);
			st->isnull = false;
			st->noTransValue = false;
			return;
		}
		if (st->isnull)
			return;
	}
	InitFunctionCallInfoData(*fcinfo, fn, 2, c->aggref->inputcollid, (Node *) rt->aggstate, NULL);
	fcinfo->args[0].value = st->value;
	fcinfo->args[0].isnull = st->isnull;
	/* the pane's own state, read-only: a PL/pgSQL combine frees a read-write
	 * expanded argument (array_append's) when it returns (exactness review 21, F1) */
	fcinfo->args[1].value = MakeExpandedObjectReadOnly(pane->value, pane->isnull, c->transtypeLen);
	fcinfo->args[1].isnull = pane->isnull;
	newVal = FunctionCallInvoke(fcinfo);
	if (!c->transtypeByVal && !fcinfo->isnull && DatumGetPointer(newVal) != DatumGetPointer(st->value))
		newVal = datumCopy(newVal, c->transtypeByVal, c->transtypeLen);
	st->value = newVal;
	st->isnull = fcinfo->isnull;
	st->noTransValue = false;
}

/* Whether window w is of the pane cache's user key (binary equal: never a false yes). */
static bool
KsPaneCacheHolds(KsPaneCache *pc, KsKeyTable *wt, KsKeyEntry *w)
{
	int			k;

	if (!pc->valid)
		return false;
	for (k = 1; k < wt->nkeys; k++)
		if (w->keynulls[k] != pc->nulls[k] ||
			(!w->keynulls[k] && !datumIsEqual(w->keys[k], pc->keys[k], wt->keybyvals[k], wt->keylens[k])))
			return false;
	return true;
}

/* The pane of the window's key starting at pstart, through the pane cache. */
static KsKeyEntry *
KsPaneAt(KsAggRun *run, KsPaneCache *pc, TimestampTz pstart, Datum *keys, bool *nulls)
{
	int64		i = (pstart - pc->base) / run->def->window_slide_us;

	keys[0] = TimestampTzGetDatum(pstart);
	if (pstart < pc->base || i >= pc->n)
		return KsKeyTableFind(run->kt, keys, nulls, KsKeyHash(run->kt, keys, nulls));
	if (!pc->probed[i])
	{
		pc->panes[i] = KsKeyTableFind(run->kt, keys, nulls, KsKeyHash(run->kt, keys, nulls));
		pc->probed[i] = true;
	}
	return pc->panes[i];
}

/*
 * Merge the panes of window w into states (in the merge context, which is
 * also the aggregates' context meanwhile); false if it has no pane left.
 */
static bool
KsMergeWindow(KsAggRun *run, KsKeyEntry *w, KsTransState *states, Datum *keys, bool *nulls,
			  KsPaneCache *pc)
{
	KsAggRuntime *rt = run->rt;
	int64		slide = run->def->window_slide_us;
	int64		npanes = run->def->window_size_us / slide;
	TimestampTz wstart = DatumGetTimestampTz(w->keys[0]);
	MemoryContext aggcxt = rt->econtext->ecxt_per_tuple_memory;
	MemoryContext oldcxt = MemoryContextSwitchTo(run->combinecxt);
	volatile bool any = false;
	int64		j;
	int			i;

	memcpy(keys, w->keys, sizeof(Datum) * run->kt->nkeys);
	memcpy(nulls, w->keynulls, sizeof(bool) * run->kt->nkeys);
	/* another key, or a window too far from the cached ones: start again */
	if (!KsPaneCacheHolds(pc, run->windows, w) || wstart < pc->base ||
		wstart + npanes * slide > pc->base + pc->n * slide)
	{
		pc->valid = true;
		pc->keys = w->keys;
		pc->nulls = w->keynulls;
		pc->base = wstart - npanes * slide;
		memset(pc->probed, 0, sizeof(bool) * pc->n);
	}
	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];

		states[i].isnull = states[i].noTransValue = c->initValueIsNull;
		states[i].value = c->initValueIsNull ? (Datum) 0 :
			datumCopy(c->initValue, c->transtypeByVal, c->transtypeLen);
	}
	rt->econtext->ecxt_per_tuple_memory = run->combinecxt;
	PG_TRY();
	{
		for (j = 0; j < npanes; j++)
		{
			KsKeyEntry *p = KsPaneAt(run, pc, wstart + j * slide, keys, nulls);

			if ((j & 1023) == 1023)
				KsCheckInterrupts();
			if (p == NULL || (p->flags & KS_KEY_EXPIRED))
				continue;
			any = true;
			for (i = 0; i < rt->ncalls; i++)
				KsCombineOne(rt, &rt->calls[i], &run->combinefns[i], &states[i], &p->states[i]);
		}
	}
	PG_FINALLY();
	{
		rt->econtext->ecxt_per_tuple_memory = aggcxt;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	keys[0] = TimestampTzGetDatum(wstart);
	return any;
}

/* What building a window's row needs (KsWindowBuildItem). */
typedef struct KsWindowBuild
{
	Datum	   *keys;
	bool	   *nulls;
	KsTransState *states;
	KsPaneCache *pc;
} KsWindowBuild;

/* Merge a changed window's panes and build its row (a KsBuildItem). */
static void
KsWindowBuildItem(KsAggRun *run, KsPublishItem *it, int64 i, void *arg)
{
	KsWindowBuild *wb = (KsWindowBuild *) arg;
	KsKeyEntry *w = run->windows->publish[i];

	if ((i & 255) == 0)
		KsCheckInterrupts();
	KsPublishItemOf(it, w);
	MemoryContextReset(run->combinecxt);
	it->remove = KsWindowExpired(run, DatumGetTimestampTz(w->keys[0])) ||
		!KsMergeWindow(run, w, wb->states, wb->keys, wb->nulls, wb->pc);
	it->row = it->remove ? NULL : KsPublishBuildRow(run, wb->keys, wb->nulls, wb->states);
	if (it->remove)
		KsKeySetFlags(run->windows, w, w->flags | KS_KEY_EXPIRED);
}

/* Publish the windows of the panes changed since the last publish (see window.h). */
void
KsWindowPublish(KsAggRun *run, int64 offset)
{
	KsKeyTable *kt = run->kt;
	KsKeyTable *wt = run->windows;
	int			nk = kt->nkeys;
	int64		slide = run->def->window_slide_us;
	int64		npanes = run->def->window_size_us / slide;
	MemoryContext oldcxt = MemoryContextSwitchTo(run->batchcxt);
	Datum	   *keys = palloc(sizeof(Datum) * nk);
	bool	   *nulls = palloc(sizeof(bool) * nk);
	KsTransState *states = palloc0(sizeof(KsTransState) * Max(run->rt->ncalls, 1));
	KsPaneCache pc;
	KsWindowBuild wb;
	KsPublishItem *items;
	int64		i;
	int64		j;

	pc.valid = false;
	pc.n = 2 * npanes + 1;
	pc.probed = palloc(sizeof(bool) * pc.n);
	pc.panes = palloc(sizeof(KsKeyEntry *) * pc.n);

	/* the windows of each changed pane: the one it starts and those before */
	for (i = 0; i < kt->npublish; i++)
	{
		KsKeyEntry *p = kt->publish[i];
		TimestampTz pstart = DatumGetTimestampTz(p->keys[0]);

		if ((i & 1023) == 0)
			KsCheckInterrupts();
		memcpy(keys, p->keys, sizeof(Datum) * nk);
		memcpy(nulls, p->keynulls, sizeof(bool) * nk);
		for (j = 0; j < npanes; j++)
		{
			KsKeyEntry *w;
			bool		found;

			if ((j & 1023) == 1023)
				KsCheckInterrupts();
			if (KsWindowExpired(run, pstart - j * slide))
				break;			/* and so are the windows before it */
			keys[0] = TimestampTzGetDatum(pstart - j * slide);
			w = KsKeyTableLookup(wt, keys, nulls, KsKeyHash(wt, keys, nulls), &found);
			KsKeySetFlags(wt, w, w->flags & ~KS_KEY_EXPIRED);
			KsKeyMarkPublish(wt, w);
		}
	}

	/* each changed window: merge its panes, build its row */
	items = palloc_extended(sizeof(KsPublishItem) * Max(wt->npublish, 1), MCXT_ALLOC_HUGE);
	wb.keys = keys;
	wb.nulls = nulls;
	wb.states = states;
	wb.pc = &pc;
	KsPublishBuildRows(run, wt, items, KsWindowBuildItem, &wb);
	MemoryContextReset(run->combinecxt);
	MemoryContextSwitchTo(oldcxt);

	KsPublishItems(run, items, wt->npublish, offset);
	KsKeyClearPublish(kt);
	KsKeyClearPublish(wt);
	MemoryContextReset(run->batchcxt);
}
