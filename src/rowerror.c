/*-------------------------------------------------------------------------
 *
 * rowerror.c
 *	  Error rows: meeting them in scans.  See rowerror.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/nodeFuncs.h"
#include "nodes/params.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "catalog.h"
#include "rowerror.h"

/* One qual of a scan (KsRowErrorBegin). */
typedef struct KsRowErrorQual
{
	Expr	   *clause;
	ExprState  *state;			/* built when the scan meets its first error row */
	int		   *attnos;			/* the columns it reads, ascending (0: the whole row) */
	int			nattnos;
	int			level;			/* its security level, as order_qual_clauses sees it */
	bool		keyonly;		/* it reads key columns only */
	bool		volatil;		/* it calls a volatile function */
	bool		deferred;		/* a subquery or a system column: left to the scan */
} KsRowErrorQual;

/*
 * How a scan meets error rows.  The quals are evaluated over the row's
 * columns as parameters (KsRowErrorParamFetch), numbered after the query's
 * own: a failed column reached gives NULL and is remembered, as the plain
 * query's HAVING would raise its error at that point.
 */
typedef struct KsRowErrorScan
{
	PlanState  *ps;
	Index		scanrelid;
	int			natts;
	int			nquals;
	KsRowErrorQual *quals;
	bool		ready;			/* the quals' states are built */
	bool	   *needed;			/* [a]: the query reads column a above the scan */
	bool	   *failed;			/* the row met: [0] HAVING, [a] column a */
	Oid		   *types;			/* [a]: column a's type */
	int			parambase;		/* column a is parameter parambase + a */
	ParamListInfo params;		/* ... fetched by KsRowErrorParamFetch */
	ParamListInfo outer;		/* the query's own parameters, while evaluating */
	TupleTableSlot *slot;		/* the row met */
	int			reached;		/* the first failed column evaluation reached */
} KsRowErrorScan;

/* Whether an error belongs to a key's data (see rowerror.h). */
bool
KsRowErrorOfKey(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_SQL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_EXCEPTION:
		case ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION:
		case ERRCODE_PLPGSQL_ERROR:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return true;
		default:
			return false;
	}
}

/* Call a function in a subtransaction, catching its error (see rowerror.h). */
ErrorData *
KsCallInSubtransaction(void (*fn) (void *arg), void *arg, bool keep)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
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
	return edata;
}

/* As KsCallInSubtransaction, with cancels let in (see rowerror.h). */
ErrorData *
KsCallCancellable(void (*fn) (void *arg), void *arg, bool keep)
{
	int			holdoff = QueryCancelHoldoffCount;
	ErrorData  *edata;

	/* one held off meanwhile was meant for a step that is over (run.c) */
	if (holdoff > 0)
		QueryCancelPending = false;
	QueryCancelHoldoffCount = 0;
	edata = KsCallInSubtransaction(fn, arg, keep);
	QueryCancelHoldoffCount = holdoff;
	return edata;
}

/* ----------------------------------------------------------------
 * The readers
 * ----------------------------------------------------------------
 */

/* What a scan needs to meet error rows, at planning (see rowerror.h). */
List *
KsRowErrorPlan(RelOptInfo *baserel, List *scan_clauses)
{
	List	   *levels = NIL;
	List	   *needed = NIL;
	Bitmapset  *attnos = NULL;
	ListCell   *lc;
	int			x = -1;

	/* as extract_actual_clauses(scan_clauses, false) keeps them */
	foreach(lc, scan_clauses)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);

		if (!rinfo->pseudoconstant)
			levels = lappend_int(levels, rinfo->leakproof ? 0 : rinfo->security_level);
	}
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attnos);
	while ((x = bms_next_member(attnos, x)) >= 0)
		needed = lappend_int(needed, x + FirstLowInvalidHeapAttributeNumber);
	return list_make2(levels, needed);
}

/* Prepare a scan to meet error rows (see rowerror.h). */
KsRowErrorScan *
KsRowErrorBegin(PlanState *ps, Index scanrelid, List *planned, int nkeys,
				const AttrNumber *keyattnums)
{
	KsRowErrorScan *es = palloc0(sizeof(KsRowErrorScan));
	List	   *levels = linitial(planned);
	TupleDesc	desc;
	ListCell   *lc;
	int			q;

	if (list_length(levels) != list_length(ps->plan->qual))
		elog(ERROR, "keyedstate scan has %d quals but planned %d",
			 list_length(ps->plan->qual), list_length(levels));
	es->ps = ps;
	es->scanrelid = scanrelid;
	desc = RelationGetDescr(((ScanState *) ps)->ss_currentRelation);
	es->natts = desc->natts;
	es->needed = palloc0(sizeof(bool) * (es->natts + 1));
	es->failed = palloc0(sizeof(bool) * (es->natts + 1));
	es->types = palloc0(sizeof(Oid) * (es->natts + 1));
	for (q = 1; q <= es->natts; q++)
		es->types[q] = TupleDescAttr(desc, q - 1)->atttypid;
	q = 0;
	foreach(lc, (List *) lsecond(planned))
	{
		int			attno = lfirst_int(lc);

		if (attno == InvalidAttrNumber)
			memset(es->needed, true, sizeof(bool) * (es->natts + 1));
		else if (attno > 0 && attno <= es->natts)
			es->needed[attno] = true;
	}
	es->nquals = list_length(ps->plan->qual);
	es->quals = palloc0(sizeof(KsRowErrorQual) * Max(es->nquals, 1));
	foreach(lc, ps->plan->qual)
	{
		KsRowErrorQual *rq = &es->quals[q];
		Bitmapset  *attnos = NULL;
		int			x = -1;

		rq->clause = lfirst(lc);
		rq->level = list_nth_int(levels, q++);
		pull_varattnos((Node *) rq->clause, scanrelid, &attnos);
		rq->attnos = palloc(sizeof(int) * Max(bms_num_members(attnos), 1));
		rq->keyonly = true;
		while ((x = bms_next_member(attnos, x)) >= 0)
		{
			AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;
			bool		key = false;
			int			k;

			for (k = 0; k < nkeys && !key; k++)
				key = attno > 0 && keyattnums[k] == attno;
			rq->keyonly &= key;
			if (attno < InvalidAttrNumber)
				rq->deferred = true;	/* a system column: not on a built row */
			else
				rq->attnos[rq->nattnos++] = attno;
		}
		rq->volatil = contain_volatile_functions((Node *) rq->clause);
		rq->deferred |= contain_subplans((Node *) rq->clause);
		/* the plain query computes what a qual above its grouping reads */
		for (x = 0; rq->deferred && x < rq->nattnos; x++)
			if (rq->attnos[x] > 0)
				es->needed[rq->attnos[x]] = true;
	}
	return es;
}

/* A qual's Vars of the scanned relation as parameters (KsRowErrorReady). */
static Node *
KsRowErrorParamsOf(Node *node, KsRowErrorScan *es)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varno == (int) es->scanrelid &&
		((Var *) node)->varlevelsup == 0 && ((Var *) node)->varattno > 0)
	{
		Var		   *var = (Var *) node;
		Param	   *param = makeNode(Param);

		param->paramkind = PARAM_EXTERN;
		param->paramid = es->parambase + var->varattno;
		param->paramtype = var->vartype;
		param->paramtypmod = var->vartypmod;
		param->paramcollid = var->varcollid;
		param->location = -1;
		return (Node *) param;
	}
	return expression_tree_mutator(node, KsRowErrorParamsOf, (void *) es);
}

/*
 * A column of the row met, or a parameter of the query: a failed column
 * reads NULL, and the first one reached is remembered.
 */
static ParamExternData *
KsRowErrorParamFetch(ParamListInfo params, int paramid, bool speculative,
					 ParamExternData *workspace)
{
	KsRowErrorScan *es = params->paramFetchArg;
	int			a = paramid - es->parambase;

	if (a <= 0)
		return es->outer->paramFetch ?
			es->outer->paramFetch(es->outer, paramid, speculative, workspace) :
			&es->outer->params[paramid - 1];
	workspace->ptype = es->types[a];
	workspace->pflags = PARAM_FLAG_CONST;
	workspace->value = es->slot->tts_values[a - 1];
	workspace->isnull = es->slot->tts_isnull[a - 1];
	if (es->failed[a] && !speculative && es->reached == 0)
		es->reached = a;
	return workspace;
}

/* Compile the quals, at the first error row a scan meets. */
static void
KsRowErrorReady(KsRowErrorScan *es)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(es->ps->state->es_query_cxt);
	ParamListInfo outer = es->ps->state->es_param_list_info;
	int			q;

	es->parambase = outer ? outer->numParams : 0;
	es->params = makeParamList(es->parambase + es->natts);
	es->params->paramFetch = KsRowErrorParamFetch;
	es->params->paramFetchArg = es;
	for (q = 0; q < es->nquals; q++)
		if (!es->quals[q].deferred)
			es->quals[q].state =
				ExecInitExprWithParams((Expr *) KsRowErrorParamsOf((Node *) es->quals[q].clause, es),
									   es->params);
	es->ready = true;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Evaluate qual rq on the row met: true, false (or NULL), or -1 when it
 * reached failed column *reached.
 */
static int
KsRowErrorEval(KsRowErrorScan *es, KsRowErrorQual *rq, ExprContext *econtext, int *reached)
{
	ParamListInfo outer = econtext->ecxt_param_list_info;
	Datum		value;
	bool		isnull;

	es->outer = outer;
	es->reached = 0;
	econtext->ecxt_param_list_info = es->params;
	PG_TRY();
	{
		value = ExecEvalExprSwitchContext(rq->state, econtext, &isnull);
	}
	PG_FINALLY();
	{
		econtext->ecxt_param_list_info = outer;
	}
	PG_END_TRY();
	ResetExprContext(econtext);
	*reached = es->reached;
	if (es->reached != 0)
		return -1;
	return !isnull && DatumGetBool(value);
}

/* The first failed column qual rq reads, or 0. */
static int
KsQualFailedColumn(KsRowErrorScan *es, KsRowErrorQual *rq)
{
	int			i;
	int			a;

	for (i = 0; i < rq->nattnos; i++)
	{
		if (rq->attnos[i] > 0 && es->failed[rq->attnos[i]])
			return rq->attnos[i];
		if (rq->attnos[i] == 0)
			for (a = 1; a <= es->natts; a++)
				if (es->failed[a])
					return a;
	}
	return 0;
}

static void KsRowErrorRaise(Oid view_oid, MinimalTuple row, int b) pg_attribute_noreturn();

/* Raise the error of piece b of an error row (rowerror.h's format). */
static void
KsRowErrorRaise(Oid view_oid, MinimalTuple row, int b)
{
	const char *end = (const char *) row + row->t_len;
	uint32		trailer;
	const char *bits;
	const char *p;
	int32		code;
	int			i;

	memcpy(&trailer, end - KS_ROWERROR_FIXED, sizeof(uint32));
	bits = end - KS_ROWERROR_FIXED - KS_ROWERROR_BITMAP(HeapTupleHeaderGetNatts(row));
	p = end - trailer;
	for (i = 0; i < b; i++)
		if (bits[i / 8] & (1 << (i % 8)))
			p += sizeof(int32) + strlen(p + sizeof(int32)) + 1;
	memcpy(&code, p, sizeof(int32));
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", p + sizeof(int32)),
			 errdetail("Aggregation %s could not compute the row of a key from its state; "
					   "it computes the row again when the key changes.",
					   KsAggName(view_oid))));
}

/* A scan met an error row (see rowerror.h). */
bool
KsRowErrorMet(KsRowErrorScan *es, ExprContext *econtext, TupleTableSlot *slot,
			  MinimalTuple row, Oid view_oid)
{
	const char *end = (const char *) row + row->t_len;
	int			natts = es->natts;
	const char *bits = end - KS_ROWERROR_FIXED - KS_ROWERROR_BITMAP(natts);
	bool		mentioned = false;
	int			a;
	int			q;
	int			run;

	Assert(HeapTupleHeaderGetNatts(row) == natts);
	for (a = 0; a <= natts; a++)
		es->failed[a] = (bits[a / 8] & (1 << (a % 8))) != 0;
	ExecForceStoreMinimalTuple(row, slot, false);
	slot_getallattrs(slot);
	for (a = 1; a <= natts; a++)
		if (es->failed[a])
			slot->tts_isnull[a - 1] = true;

	/* nothing the query reads failed, no qual names a failed column: the row */
	for (q = 0; q < es->nquals && !mentioned; q++)
		mentioned = KsQualFailedColumn(es, &es->quals[q]) != 0;
	for (a = 1; a <= natts && !mentioned; a++)
		mentioned = es->failed[a] && es->needed[a];
	if (!mentioned && !es->failed[0])
		return true;

	if (!es->ready)
		KsRowErrorReady(es);
	es->slot = slot;
	econtext->ecxt_scantuple = slot;
	for (run = 0; run < es->nquals; run = q)
	{
		int			level = es->quals[run].level;
		bool		deferred = false;
		int			raise = 0;
		int			stop;
		int			pass;

		for (stop = run; stop < es->nquals && es->quals[stop].level == level; stop++)
			deferred |= es->quals[stop].deferred;
		/* key quals, other quals, volatile ones: one false skips the row */
		for (pass = 0; pass < 3; pass++)
			for (q = run; q < stop; q++)
			{
				KsRowErrorQual *rq = &es->quals[q];
				int			reached = 0;

				if (rq->deferred || pass != (rq->volatil ? 2 : rq->keyonly ? 0 : 1))
					continue;
				/* the whole row reads every column */
				for (a = 0; a < rq->nattnos && reached == 0; a++)
					if (rq->attnos[a] == 0)
						reached = KsQualFailedColumn(es, rq);
				if (reached == 0 && KsRowErrorEval(es, rq, econtext, &reached) == 0)
				{
					/* EXPLAIN ANALYZE counts it as the scan's qual removing a row */
					InstrCountFiltered1(es->ps, 1);
					return false;
				}
				if (raise == 0)
					raise = reached;
			}
		/* then one that reached a failed column fails, as in the plain HAVING */
		if (raise != 0)
			KsRowErrorRaise(view_oid, row, raise);
		/* a qual left to the scan: later ones may not see the row first */
		if (deferred)
			break;
	}
	/* a failed HAVING fails the row; a failed column, when the query reads it */
	if (es->failed[0])
		KsRowErrorRaise(view_oid, row, 0);
	for (a = 1; a <= natts; a++)
		if (es->failed[a] && es->needed[a])
			KsRowErrorRaise(view_oid, row, a);
	return true;
}
