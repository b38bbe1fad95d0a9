/*-------------------------------------------------------------------------
 *
 * rowerror.c
 *	  Error rows: meeting them in scans.  See rowerror.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "executor/executor.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/rel.h"

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

/* How a scan meets error rows. */
typedef struct KsRowErrorScan
{
	PlanState  *ps;
	int			natts;
	int			nquals;
	KsRowErrorQual *quals;
	bool		ready;			/* the quals' states are built */
	bool	   *needed;			/* [a]: the query reads column a */
	bool	   *failed;			/* the row met: [0] HAVING, [a] column a */
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
	foreach(lc, scan_clauses)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid, &attnos);
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
	ListCell   *lc;
	int			q = 0;

	if (list_length(levels) != list_length(ps->plan->qual))
		elog(ERROR, "keyedstate scan has %d quals but planned %d",
			 list_length(ps->plan->qual), list_length(levels));
	es->ps = ps;
	es->natts = RelationGetDescr(((ScanState *) ps)->ss_currentRelation)->natts;
	es->needed = palloc0(sizeof(bool) * (es->natts + 1));
	es->failed = palloc0(sizeof(bool) * (es->natts + 1));
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
	}
	return es;
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
	int			a;
	int			q;
	int			run;

	Assert(HeapTupleHeaderGetNatts(row) == natts);
	for (a = 0; a <= natts; a++)
		es->failed[a] = (bits[a / 8] & (1 << (a % 8))) != 0;
	if (!es->ready)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(es->ps->state->es_query_cxt);

		for (q = 0; q < es->nquals; q++)
			if (!es->quals[q].deferred)
				es->quals[q].state = ExecInitQual(list_make1(es->quals[q].clause), es->ps);
		es->ready = true;
		MemoryContextSwitchTo(oldcxt);
	}
	ExecForceStoreMinimalTuple(row, slot, false);
	slot_getallattrs(slot);
	for (a = 1; a <= natts; a++)
		if (es->failed[a])
			slot->tts_isnull[a - 1] = true;
	econtext->ecxt_scantuple = slot;

	for (run = 0; run < es->nquals; run = q)
	{
		int			level = es->quals[run].level;
		bool		deferred = false;
		int			stop;
		int			pass;

		for (stop = run; stop < es->nquals && es->quals[stop].level == level; stop++)
			deferred |= es->quals[stop].deferred;
		/* the quals on computed columns: key quals, others, volatile ones */
		for (pass = 0; pass < 3; pass++)
			for (q = run; q < stop; q++)
			{
				KsRowErrorQual *rq = &es->quals[q];
				bool		istrue;

				if (rq->deferred || KsQualFailedColumn(es, rq) != 0 ||
					pass != (rq->volatil ? 2 : rq->keyonly ? 0 : 1))
					continue;
				istrue = ExecQual(rq->state, econtext);
				ResetExprContext(econtext);
				if (!istrue)
					return false;
			}
		/* then a qual on a failed column fails as it would in HAVING */
		for (q = run; q < stop; q++)
			if (!es->quals[q].deferred && (a = KsQualFailedColumn(es, &es->quals[q])) != 0)
				KsRowErrorRaise(view_oid, row, a);
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
