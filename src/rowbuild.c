/*-------------------------------------------------------------------------
 *
 * rowbuild.c
 *	  Building the rows of keys whose row fails: error rows.  See rowbuild.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"

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
	MemoryContext cxt;			/* what building one key's row allocates */
} KsRowPieces;

/* The error of a piece that failed; code 0: it did not. */
typedef struct KsPieceError
{
	int			code;
	char	   *message;
} KsPieceError;

/* One key's row being built piece by piece (KsRowErrorBuild). */
typedef struct KsRowBuild
{
	KsTransState *states;
	KsPieceError *reserr;		/* [a - 1]: result column a */
	Datum	   *values;			/* the view columns */
	bool	   *nulls;
	KsPieceError *err;			/* [0] HAVING, [a] view column a */
	bool		hidden;			/* HAVING computed, and false */
} KsRowBuild;

/* The steps a guarded loop runs in one subtransaction (KsRowErrorGuard). */
typedef struct KsGuardRun
{
	KsAggRun   *run;
	int64		i;				/* the next step; in memory, so it survives an error */
	int64		n;
	KsGuardStep step;
	void	   *arg;
} KsGuardRun;

/* Run steps from g->i on, until one raises (a KsCallInSubtransaction function). */
static void
KsGuardSteps(void *arg)
{
	KsGuardRun *g = arg;

	for (; g->i < g->n; g->i++)
		g->step(g->run, g->i, g->arg);
}

/* Run steps in subtransactions, going on past keys' errors (see rowbuild.h). */
void
KsRowErrorGuard(KsAggRun *run, int64 n, KsGuardStep step, KsGuardFail fail, void *arg)
{
	KsGuardRun	g = {run, 0, n, step, arg};

	while (g.i < n)
	{
		ErrorData  *edata = KsCallInSubtransaction(KsGuardSteps, &g, true);

		if (edata == NULL)
			break;
		/*
		 * A cancel stays one even when user code raised another error
		 * instead; and an error committing the subtransaction is no step's.
		 */
		if (KsRunCancelled(run))
			edata->sqlerrcode = ERRCODE_QUERY_CANCELED;
		if (!KsRowErrorOfKey(edata->sqlerrcode) || g.i >= n)
			ReThrowError(edata);
		fail(run, g.i, edata, arg);
		FreeErrorData(edata);
		g.i++;
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
	pc->cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate error rows",
									ALLOCSET_DEFAULT_SIZES);
	return pc;
}

/* Keep a piece's error (in the current memory context). */
static void
KsPieceFailed(KsPieceError *pe, const ErrorData *edata)
{
	pe->code = edata->sqlerrcode;
	pe->message = pstrdup(edata->message ? edata->message : "unknown error");
}

/* The error of the first failed result column deps reads; NULL if none failed. */
static KsPieceError *
KsFailedDep(KsRowBuild *b, const Bitmapset *deps)
{
	int			x = -1;

	while ((x = bms_next_member(deps, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0 && b->reserr[attno - 1].code != 0)
			return &b->reserr[attno - 1];
	}
	return NULL;
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
	KsPieceFailed(&b->reserr[nkeys + i], edata);
}

/* Step 0 of projecting: HAVING; step j: view column j. */
static void
KsRowProjectStep(KsAggRun *run, int64 j, void *arg)
{
	KsRowBuild *b = arg;
	KsRowPieces *pc = run->pieces;
	KsPieceError *dep;

	if (j == 0)
	{
		if (pc->having == NULL)
			return;
		if ((dep = KsFailedDep(b, pc->havingdeps)) != NULL)
			b->err[0] = *dep;
		else
			b->hidden = !ExecQual(pc->having, run->econtext);
	}
	else if (b->hidden)
		return;
	else if ((dep = KsFailedDep(b, pc->coldeps[j - 1])) != NULL)
		b->err[j] = *dep;
	else
		b->values[j - 1] = ExecEvalExprSwitchContext(pc->cols[j - 1], run->econtext,
													 &b->nulls[j - 1]);
}

/* HAVING or a view column failed. */
static void
KsRowProjectFail(KsAggRun *run, int64 j, ErrorData *edata, void *arg)
{
	KsRowBuild *b = arg;

	KsPieceFailed(&b->err[j], edata);
}

/*
 * An error row: values and nulls of the view's columns, err[] as in
 * KsRowBuild, in the format rowerror.h gives.  Many failed pieces get
 * shorter messages, so that the row stays small.
 */
static MinimalTuple
KsRowErrorForm(TupleDesc viewdesc, Datum *values, bool *nulls, const KsPieceError *err)
{
	int			natts = viewdesc->natts;
	int			nbytes = KS_ROWERROR_BITMAP(natts);
	int			nfailed = 0;
	int		   *lens = palloc(sizeof(int) * (natts + 1));
	int			cap;
	MinimalTuple tuple;
	MinimalTuple row;
	uint32		trailer = nbytes + sizeof(uint32);
	char	   *p;
	int			a;

	for (a = 0; a <= natts; a++)
		nfailed += err[a].code != 0;
	cap = nfailed > KS_ROWERROR_LONG ? KS_ROWERROR_SHORT_LEN : KS_ERROR_LEN - 1;
	for (a = 0; a <= natts; a++)
	{
		if (err[a].code == 0)
			continue;
		if (a > 0)
			nulls[a - 1] = true;
		/* a long message is cut on a character boundary */
		lens[a] = strnlen(err[a].message, cap);
		lens[a] = pg_mbcliplen(err[a].message, lens[a], lens[a]);
		trailer += sizeof(int32) + lens[a] + 1;
	}
	tuple = heap_form_minimal_tuple(viewdesc, values, nulls);

	row = palloc(tuple->t_len + trailer);
	memcpy(row, tuple, tuple->t_len);
	p = (char *) row + tuple->t_len;
	for (a = 0; a <= natts; a++)
	{
		if (err[a].code == 0)
			continue;
		memcpy(p, &err[a].code, sizeof(int32));
		memcpy(p + sizeof(int32), err[a].message, lens[a]);
		p[sizeof(int32) + lens[a]] = '\0';
		p += sizeof(int32) + lens[a] + 1;
	}
	memset(p, 0, nbytes);
	for (a = 0; a <= natts; a++)
		if (err[a].code != 0)
			p[a / 8] |= 1 << (a % 8);
	memcpy(p + nbytes, &trailer, sizeof(uint32));
	row->t_len = tuple->t_len + trailer;
	row->t_infomask2 |= HEAP_ONLY_TUPLE;
	pfree(tuple);
	pfree(lens);
	return row;
}

/* Build a key's row piece by piece (see rowbuild.h). */
MinimalTuple
KsRowErrorBuild(KsAggRun *run, const Datum *keys, const bool *keynulls, KsTransState *states,
				const ErrorData *allfailed)
{
	KsRowPieces *pc = run->pieces;
	TupleTableSlot *rs = run->resultslot;
	TupleDesc	viewdesc = run->info.viewdesc;
	int			nkeys = run->kt->nkeys;
	int			ncalls = run->rt->ncalls;
	int			natts = viewdesc->natts;
	MemoryContext oldcxt;
	KsRowBuild	b;
	MinimalTuple row;
	int			a;
	bool		any = false;

	MemoryContextReset(pc->cxt);
	oldcxt = MemoryContextSwitchTo(pc->cxt);
	memset(&b, 0, sizeof(b));
	b.states = states;
	b.reserr = palloc0(sizeof(KsPieceError) * (nkeys + ncalls));
	b.values = palloc0(sizeof(Datum) * Max(natts, 1));
	b.nulls = palloc0(sizeof(bool) * Max(natts, 1));
	b.err = palloc0(sizeof(KsPieceError) * (natts + 1));

	ExecClearTuple(rs);
	memcpy(rs->tts_values, keys, sizeof(Datum) * nkeys);
	memcpy(rs->tts_isnull, keynulls, sizeof(bool) * nkeys);
	if (allfailed != NULL)
	{
		/* no state to finalize: only the pieces of keys alone compute */
		for (a = nkeys; a < nkeys + ncalls; a++)
		{
			rs->tts_isnull[a] = true;
			KsPieceFailed(&b.reserr[a], allfailed);
		}
	}
	else
		KsRowErrorGuard(run, ncalls, KsRowFinalizeStep, KsRowFinalizeFail, &b);
	ExecStoreVirtualTuple(rs);
	run->econtext->ecxt_scantuple = rs;
	KsRowErrorGuard(run, natts + 1, KsRowProjectStep, KsRowProjectFail, &b);

	MemoryContextSwitchTo(oldcxt);
	for (a = 0; a <= natts; a++)
		any |= b.err[a].code != 0;
	row = b.hidden ? NULL : any ? KsRowErrorForm(viewdesc, b.values, b.nulls, b.err)
		: heap_form_minimal_tuple(viewdesc, b.values, b.nulls);
	ResetExprContext(run->econtext);
	MemoryContextReset(pc->cxt);
	return row;
}
