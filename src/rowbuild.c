/*-------------------------------------------------------------------------
 *
 * rowbuild.c
 *	  Building the rows of keys whose row fails: error rows.  See rowbuild.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/resowner.h"

#include "rowbuild.h"
#include "rowerror.h"

/* A view built piece by piece (KsRowErrorCompile). */
typedef struct KsRowPieces
{
	int			ncols;
	ExprState **cols;			/* each view column alone */
	Bitmapset **coldeps;		/* ... and the result columns it reads */
	ExprState  *having;			/* HAVING, or NULL */
	Bitmapset  *havingdeps;
} KsRowPieces;

/* One key's row being built piece by piece (KsRowErrorBuild). */
typedef struct KsRowBuild
{
	KsTransState *states;
	Bitmapset  *failedres;		/* the result columns that failed */
	Datum	   *values;			/* the view columns */
	bool	   *nulls;
	bool	   *failed;			/* [0] HAVING, [a] view column a */
	bool		hidden;			/* HAVING computed, and false */
} KsRowBuild;

/* Run steps in subtransactions, going on past keys' errors (see rowbuild.h). */
void
KsRowErrorGuard(KsAggRun *run, int64 n, KsGuardStep step, KsGuardFail fail, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile int64 i = 0;

	while (i < n)
	{
		ErrorData  *volatile edata = NULL;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			for (; i < n; i++)
				step(run, i, arg);
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata == NULL)
			break;
		/*
		 * A cancel stays one even when user code raised another error
		 * instead; and an error committing the subtransaction is no step's.
		 */
		if (KsRunCancelled(run))
			edata->sqlerrcode = ERRCODE_QUERY_CANCELED;
		if (!KsRowErrorOfKey(edata->sqlerrcode) || i >= n)
			ReThrowError(edata);
		fail(run, i, edata, arg);
		FreeErrorData(edata);
		i++;
	}
}

/* The result columns an expression reads: all of them for a whole-row Var. */
static Bitmapset *
KsRowErrorDeps(Node *expr, TupleDesc resultdesc)
{
	Bitmapset  *deps = NULL;
	int			a;

	pull_varattnos(expr, 1, &deps);
	if (bms_is_member(KS_WHOLEROW, deps))
		for (a = 1; a <= resultdesc->natts; a++)
			deps = bms_add_member(deps, KS_ATTBIT(a));
	return deps;
}

/* Prepare building rows piece by piece (see rowbuild.h). */
KsRowPieces *
KsRowErrorCompile(List *tlist, Expr *having, TupleDesc resultdesc)
{
	KsRowPieces *pc = palloc0(sizeof(KsRowPieces));
	ListCell   *lc;
	int			j = 0;

	pc->ncols = list_length(tlist);
	pc->cols = palloc(sizeof(ExprState *) * Max(pc->ncols, 1));
	pc->coldeps = palloc(sizeof(Bitmapset *) * Max(pc->ncols, 1));
	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst(lc);

		pc->cols[j] = ExecInitExpr(tle->expr, NULL);
		pc->coldeps[j++] = KsRowErrorDeps((Node *) tle->expr, resultdesc);
	}
	if (having != NULL)
	{
		pc->having = ExecInitQual(make_ands_implicit(having), NULL);
		pc->havingdeps = KsRowErrorDeps((Node *) having, resultdesc);
	}
	return pc;
}

/* Step i of finalizing: aggregate call i's final value. */
static void
KsRowFinalizeStep(KsAggRun *run, int64 i, void *arg)
{
	KsRowBuild *b = arg;
	TupleTableSlot *rs = run->resultslot;
	int			nkeys = run->kt->nkeys;

	KsAggFinalizeOne(run->rt, b->states, i, &rs->tts_values[nkeys + i], &rs->tts_isnull[nkeys + i]);
}

/* Aggregate call i's final function failed. */
static void
KsRowFinalizeFail(KsAggRun *run, int64 i, ErrorData *edata, void *arg)
{
	KsRowBuild *b = arg;
	int			nkeys = run->kt->nkeys;

	run->resultslot->tts_isnull[nkeys + i] = true;
	b->failedres = bms_add_member(b->failedres, KS_ATTBIT(nkeys + i + 1));
}

/* Step 0 of projecting: HAVING; step j: view column j. */
static void
KsRowProjectStep(KsAggRun *run, int64 j, void *arg)
{
	KsRowBuild *b = arg;
	KsRowPieces *pc = run->pieces;

	if (j == 0)
	{
		if (pc->having == NULL)
			return;
		if (bms_overlap(pc->havingdeps, b->failedres))
			b->failed[0] = true;
		else
			b->hidden = !ExecQual(pc->having, run->econtext);
	}
	else if (b->hidden)
		return;
	else if (bms_overlap(pc->coldeps[j - 1], b->failedres))
		b->failed[j] = true;
	else
		b->values[j - 1] = ExecEvalExpr(pc->cols[j - 1], run->econtext, &b->nulls[j - 1]);
}

/* HAVING or a view column failed. */
static void
KsRowProjectFail(KsAggRun *run, int64 j, ErrorData *edata, void *arg)
{
	KsRowBuild *b = arg;

	b->failed[j] = true;
}

/* An error row of edata: values and nulls of the view's columns, failed[] as in KsRowBuild. */
static MinimalTuple
KsRowErrorForm(const ErrorData *edata, TupleDesc viewdesc, Datum *values, bool *nulls,
			   const bool *failed)
{
	const char *message = edata->message ? edata->message : "unknown error";
	int			msglen = strnlen(message, KS_ERROR_LEN - 1);
	int			nbytes = KS_ROWERROR_BITMAP(viewdesc->natts);
	int32		code = edata->sqlerrcode;
	MinimalTuple tuple;
	MinimalTuple row;
	uint32		trailer;
	char	   *p;
	int			a;

	for (a = 1; a <= viewdesc->natts; a++)
		if (failed[a])
			nulls[a - 1] = true;
	tuple = heap_form_minimal_tuple(viewdesc, values, nulls);

	/* then the error: a long message is cut on a character boundary */
	msglen = pg_mbcliplen(message, msglen, msglen);
	trailer = msglen + 1 + nbytes + KS_ROWERROR_FIXED;
	row = palloc(tuple->t_len + trailer);
	memcpy(row, tuple, tuple->t_len);
	p = (char *) row + tuple->t_len;
	memcpy(p, message, msglen);
	p[msglen] = '\0';
	p += msglen + 1;
	memset(p, 0, nbytes);
	for (a = 0; a <= viewdesc->natts; a++)
		if (failed[a])
			p[a / 8] |= 1 << (a % 8);
	p += nbytes;
	memcpy(p, &code, sizeof(int32));
	memcpy(p + sizeof(int32), &trailer, sizeof(uint32));
	row->t_len = tuple->t_len + trailer;
	row->t_infomask2 |= HEAP_ONLY_TUPLE;
	pfree(tuple);
	return row;
}

/* Build a key's row piece by piece (see rowbuild.h). */
MinimalTuple
KsRowErrorBuild(KsAggRun *run, const Datum *keys, const bool *keynulls, KsTransState *states)
{
	TupleTableSlot *rs = run->resultslot;
	TupleDesc	viewdesc = run->info.viewdesc;
	int			nkeys = run->kt->nkeys;
	int			natts = viewdesc->natts;
	KsRowBuild	b;
	MinimalTuple row = NULL;
	int			a;
	bool		any = false;

	memset(&b, 0, sizeof(b));
	b.states = states;
	b.values = palloc0(sizeof(Datum) * Max(natts, 1));
	b.nulls = palloc0(sizeof(bool) * Max(natts, 1));
	b.failed = palloc0(sizeof(bool) * (natts + 1));

	ExecClearTuple(rs);
	memcpy(rs->tts_values, keys, sizeof(Datum) * nkeys);
	memcpy(rs->tts_isnull, keynulls, sizeof(bool) * nkeys);
	KsRowErrorGuard(run, run->rt->ncalls, KsRowFinalizeStep, KsRowFinalizeFail, &b);
	ExecStoreVirtualTuple(rs);
	run->econtext->ecxt_scantuple = rs;
	KsRowErrorGuard(run, natts + 1, KsRowProjectStep, KsRowProjectFail, &b);

	for (a = 0; a <= natts; a++)
		any |= b.failed[a];
	if (!b.hidden)
		row = any ? KsRowErrorForm(run->row_error, viewdesc, b.values, b.nulls, b.failed)
			: heap_form_minimal_tuple(viewdesc, b.values, b.nulls);
	ResetExprContext(run->econtext);
	pfree(b.values);
	pfree(b.nulls);
	pfree(b.failed);
	return row;
}

/* The error row of a key alone (see rowbuild.h). */
MinimalTuple
KsRowErrorOfKeyOnly(const ErrorData *edata, TupleDesc viewdesc, const AttrNumber *keyattnums,
					int nkeys, const Datum *keys, const bool *keynulls)
{
	int			natts = viewdesc->natts;
	Datum	   *values = palloc0(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(natts, 1));
	bool	   *failed = palloc(sizeof(bool) * (natts + 1));
	MinimalTuple row;
	int			i;

	memset(failed, true, sizeof(bool) * (natts + 1));
	for (i = 0; i < nkeys; i++)
		if (keyattnums[i] > 0 && keyattnums[i] <= natts)
		{
			values[keyattnums[i] - 1] = keys[i];
			nulls[keyattnums[i] - 1] = keynulls[i];
			failed[keyattnums[i]] = false;
		}
	row = KsRowErrorForm(edata, viewdesc, values, nulls, failed);
	pfree(values);
	pfree(nulls);
	pfree(failed);
	return row;
}
