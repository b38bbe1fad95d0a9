/*-------------------------------------------------------------------------
 *
 * publish.c
 *	  Publishing the view rows of changed keys.  See publish.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "aggcall.h"
#include "apply.h"
#include "publish.h"
#include "rowbuild.h"
#include "rowerror.h"

/* How often the worker logs the error rows it publishes. */
#define KS_ROW_ERROR_LOG_MS		60000

/* How far ahead of the publishing loop keys are prefetched. */
#define KS_PUBLISH_PREFETCH		16

/*
 * Build the view-row projection: the view's target list and HAVING, already
 * rewritten over the result tuple [keys, aggregate results].  Constant
 * folding runs user code: called as the owner.
 */
static List *
KsPublishCompile(KsAggRun *run, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	List	   *tlist = NIL;
	Expr	   *having;
	ListCell   *lc;

	foreach(lc, run->info.resulttlist)
	{
		TargetEntry *tle = flatCopyTargetEntry(lfirst(lc));

		tle->expr = expression_planner(copyObject(tle->expr));
		tlist = lappend(tlist, tle);
	}
	run->econtext = CreateStandaloneExprContext();
	run->resultslot = MakeSingleTupleTableSlot(run->info.resultdesc, &TTSOpsVirtual);
	run->viewslot = MakeSingleTupleTableSlot(run->info.viewdesc, &TTSOpsVirtual);
	run->proj = ExecBuildProjectionInfo(tlist, run->econtext, run->viewslot,
										NULL, run->info.resultdesc);
	having = run->info.having ? expression_planner(copyObject(run->info.having)) : NULL;
	run->having = having ? ExecInitQual(make_ands_implicit(having), NULL) : NULL;
	run->pieces = KsRowErrorCompile(tlist, having, run->info.resultdesc);
	MemoryContextSwitchTo(oldcxt);
	return lappend(tlist, having);
}

/* Compile the expressions of a loaded run (see publish.h). */
void
KsRunCompile(KsAggRun *run)
{
	MemoryContext old = run->exprcxt;
	ExprContext *oldecxt = run->econtext;
	MemoryContext cxt = AllocSetContextCreate(run->loadcxt, "keyedstate expressions",
											  ALLOCSET_SMALL_SIZES);

	/* before: a function changed while it compiles asks for another compile */
	run->exprs_stale = false;
	run->in_code = true;
	PG_TRY();
	{
		List	   *planned;
		MemoryContext oldcxt;

		KsSourceCompile(&run->source, &run->info, cxt);
		planned = KsPublishCompile(run, cxt);
		/* checked at every step: a function only an inlined body calls too (re-review today 27, F3) */
		oldcxt = MemoryContextSwitchTo(cxt);
		run->exprfuncs = KsNodeFunctions((Node *) list_concat(planned, run->source.planned));
		run->inlines = KsCallsSqlFunction(run->funcids);
		MemoryContextSwitchTo(oldcxt);
	}
	PG_CATCH();
	{
		run->exprs_stale = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	run->in_code = false;
	/* the previous compile's, with all they kept (re-review today 27, F1: each one stayed) */
	if (old != NULL)
	{
		if (oldecxt != NULL)
			FreeExprContext(oldecxt, false);
		MemoryContextDelete(old);
	}
	run->exprcxt = cxt;
}

/* The view row of a key's values and states (see publish.h). */
MinimalTuple
KsPublishBuildRow(KsAggRun *run, const Datum *keys, const bool *keynulls, KsTransState *states)
{
	TupleTableSlot *rs = run->resultslot;
	int			nkeys = run->kt->nkeys;
	MinimalTuple row = NULL;

	/* building it whole failed: build it again piece by piece */
	if (run->row_error != NULL)
		return KsRowErrorBuild(run, keys, keynulls, states, NULL);
	ExecClearTuple(rs);
	memcpy(rs->tts_values, keys, sizeof(Datum) * nkeys);
	memcpy(rs->tts_isnull, keynulls, sizeof(bool) * nkeys);
	KsAggFinalize(run->rt, states, rs->tts_values + nkeys, rs->tts_isnull + nkeys);
	ExecStoreVirtualTuple(rs);
	run->econtext->ecxt_scantuple = rs;
	if (run->having == NULL || ExecQual(run->having, run->econtext))
		row = ExecCopySlotMinimalTuple(ExecProject(run->proj));
	ResetExprContext(run->econtext);
	return row;
}

/*
 * Log an error row: the first one of a run, then at most one line a
 * minute, counting those not logged.
 */
static void
KsPublishLogRowError(KsAggRun *run, const ErrorData *edata)
{
	TimestampTz now = GetCurrentTimestamp();

	run->row_errors++;
	if (run->row_error_logged_at != 0 &&
		!TimestampDifferenceExceeds(run->row_error_logged_at, now, KS_ROW_ERROR_LOG_MS))
		return;
	ereport(LOG,
			(errmsg("keyedstate aggregation %s could not compute the row of a key: %s",
					run->name, edata->message ? edata->message : "unknown error"),
			 errdetail("Scans reading that key's row raise the error until the key changes. "
					   INT64_FORMAT " such rows were published since the last message.",
					   run->row_errors - run->row_errors_logged)));
	run->row_errors_logged = run->row_errors;
	run->row_error_logged_at = now;
}

/* What building a batch's rows needs (KsPublishBuildRows). */
typedef struct KsPublishBuild
{
	KsKeyTable *kt;
	KsPublishItem *items;
	KsBuildItem build;
	void	   *arg;
	int64		failed;			/* the item being built again */
} KsPublishBuild;

/* Build item i (a KsGuardStep). */
static void
KsPublishBuildStep(KsAggRun *run, int64 i, void *arg)
{
	KsPublishBuild *pb = arg;

	pb->build(run, &pb->items[i], i, pb->arg);
}

/* Build the failed item again, piece by piece (a KsGuardStep). */
static void
KsPublishRebuildStep(KsAggRun *run, int64 i, void *arg)
{
	KsPublishBuild *pb = arg;

	KsPublishBuildStep(run, pb->failed, arg);
}

/*
 * Building the failed item failed before its row's pieces (merging a
 * window's panes): the row of its key with every aggregate failed.
 */
static void
KsPublishRebuildFail(KsAggRun *run, int64 i, ErrorData *edata, void *arg)
{
	KsPublishBuild *pb = arg;
	KsKeyEntry *e = pb->kt->publish[pb->failed];

	ResetExprContext(run->econtext);
	pb->items[pb->failed].remove = false;
	pb->items[pb->failed].row = KsRowErrorBuild(run, e->keys, e->keynulls, NULL, edata);
}

/* Item i failed with a key's error: build it again, piece by piece. */
static void
KsPublishBuildFail(KsAggRun *run, int64 i, ErrorData *edata, void *arg)
{
	KsPublishBuild *pb = arg;
	MinimalTuple row;

	ResetExprContext(run->econtext);
	pb->failed = i;
	run->row_error = edata;
	KsRowErrorGuard(run, 1, KsPublishRebuildStep, KsPublishRebuildFail, pb);
	run->row_error = NULL;
	row = pb->items[i].row;
	if (row != NULL && KsRowIsError(row))
		KsPublishLogRowError(run, edata);
}

/* Build rows, a key's error as its row (see publish.h). */
void
KsPublishBuildRows(KsAggRun *run, KsKeyTable *kt, KsPublishItem *items,
				   KsBuildItem build, void *arg)
{
	KsPublishBuild pb;

	pb.kt = kt;
	pb.items = items;
	pb.build = build;
	pb.arg = arg;
	pb.failed = -1;
	run->row_error = NULL;
	run->in_code = true;
	KsRowErrorGuard(run, kt->npublish, KsPublishBuildStep, KsPublishBuildFail, &pb);
	run->in_code = false;
}

/* Build the row of a changed key (a KsBuildItem). */
static void
KsPublishBuildKey(KsAggRun *run, KsPublishItem *it, int64 i, void *arg)
{
	KsKeyTable *kt = run->kt;
	KsKeyEntry *e = kt->publish[i];
	int64		n = kt->npublish;

	/* the keys to publish lie anywhere in memory: fetch ahead */
	if (i + KS_PUBLISH_PREFETCH < n)
		KsKeyTablePrefetchLines(kt, kt->publish[i + KS_PUBLISH_PREFETCH]);
	if (i + KS_PUBLISH_PREFETCH / 2 < n)
		KsAggPrefetchStates(run->rt, kt->publish[i + KS_PUBLISH_PREFETCH / 2]->states);
	if ((i & 1023) == 0)
		KsCheckInterrupts();

	KsPublishItemOf(it, e);
	/*
	 * An expired key (expire.h) leaves the store; but while it still has a
	 * cold row (cold.h), committed or about to be, it stays as an entry
	 * without a row, which tells readers to skip that row, until the
	 * checkpoint deleting the row has committed.  An evicted key leaves:
	 * its cold row is its state now.
	 */
	it->remove = KsKeyLeavesStore(e);
	it->row = NULL;
	if (!(e->flags & KS_KEY_EXPIRED))
		it->row = KsPublishBuildRow(run, e->keys, e->keynulls, e->states);
}

/* Publish the changed keys with a new consumed offset (see publish.h). */
void
KsPublish(KsAggRun *run, int64 offset)
{
	KsKeyTable *kt = run->kt;
	int64		n = kt->npublish;
	KsPublishItem *items;
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(run->batchcxt);
	items = palloc_extended(sizeof(KsPublishItem) * Max(n, 1), MCXT_ALLOC_HUGE);
	KsPublishBuildRows(run, kt, items, KsPublishBuildKey, NULL);
	MemoryContextSwitchTo(oldcxt);

	KsPublishItems(run, items, n, offset);
	KsKeyClearPublish(kt);
	MemoryContextReset(run->batchcxt);
}

/* Hand built rows to the store's publish protocol with the new offset. */
void
KsPublishItems(KsAggRun *run, KsPublishItem *items, int64 n, int64 offset)
{
	KsPublishProgress progress;

	progress.offset = offset;
	progress.keys = KsKeyTableInMemory(run->kt);
	progress.cold_keys = run->cold_keys;
	progress.watermark = run->def->window_size_us > 0 ? run->watermark : DT_NOBEGIN;
	progress.window_size_us = run->def->window_size_us;
	/* KsWindowExpiredUpTo (window.h, which includes us) */
	progress.expired_upto = run->def->window_size_us == 0 ? DT_NOBEGIN :
		KsWindowReach(run->def->ttl_floor, run->def->ttl_us, run->watermark);
	progress.memory_bytes = KsRunMemoryBytes(run);
	while (!KsStorePublish(&run->writer, run->slot, items, n, &progress))
		KsPublishStoreFull(run);
	run->consumed = offset;
}

/* The shared memory is full (see publish.h). */
void
KsPublishStoreFull(KsAggRun *run)
{
	bool		timed = !KsRunTimeoutsPaused();
	bool		again;

	/* the wait is keyedstate's own, not the step's user code */
	if (timed)
		KsRunTimeoutPause(true);
	again = KsStoreAwaitRetired();
	if (timed)
		KsRunTimeoutResume(run);
	if (!again)
		KsStoreExhausted(run->name);
}
