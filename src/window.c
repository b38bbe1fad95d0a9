/*-------------------------------------------------------------------------
 *
 * window.c
 *	  Tumbling and sliding time windows: publishing sliding windows by
 *	  merging their panes, and their TTL.  See window.h (windowquery.c
 *	  rewrites the query).
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
	run->windows_reload = true;
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
	/* after a load, the owner's code bounded window by window (see run.h) */
	if (run->windows_reload)
		KsRunOwnerCodeEach(run);
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

	/*
	 * After a load every window is merged and built again: keyedstate's own
	 * work, as long as recovery's, not bounded by the step timeout (the
	 * owner's code in it is, per window); under load, 134,000
	 * panes' windows took a step past it (exactness review 48, O1).
	 */
	if (run->windows_reload)
		KsRunTimeoutPause(true);
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
	/* (the owner's code is done: handing the rows to the store is ours) */
	KsRunOwnerCodeEnd();
	MemoryContextReset(run->combinecxt);
	MemoryContextSwitchTo(oldcxt);

	/*
	 * every window's row after a load, still unbounded: 300,000 of them took
	 * a loaded machine past a 300 ms step timeout once the timeout was armed
	 * again before them (a CI failure of 011)
	 */
	KsPublishItems(run, items, wt->npublish, offset);
	KsKeyClearPublish(kt);
	KsKeyClearPublish(wt);
	MemoryContextReset(run->batchcxt);
	if (run->windows_reload)
	{
		run->windows_reload = false;
		KsRunTimeoutResume(run);
	}
}
