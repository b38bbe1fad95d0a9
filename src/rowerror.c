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

#include "catalog.h"
#include "rowerror.h"

/* One qual of a scan (KsRowErrorBegin). */
typedef struct KsRowErrorQual
{
	ExprState  *state;			/* NULL: cannot be evaluated on an error row */
	Bitmapset  *attnos;			/* the columns it reads, as pull_varattnos */
	int			level;			/* its security level */
	bool		keyonly;		/* it reads key columns only */
} KsRowErrorQual;

/* How a scan meets error rows. */
typedef struct KsRowErrorScan
{
	int			nquals;
	KsRowErrorQual *quals;
	Bitmapset  *needed;			/* the columns the query reads, as pull_varattnos */
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
			levels = lappend_int(levels, rinfo->security_level);
	}
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attnos);
	foreach(lc, scan_clauses)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid, &attnos);
	while ((x = bms_next_member(attnos, x)) >= 0)
		needed = lappend_int(needed, x);
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
	foreach(lc, (List *) lsecond(planned))
		es->needed = bms_add_member(es->needed, lfirst_int(lc));
	es->nquals = list_length(ps->plan->qual);
	es->quals = palloc0(sizeof(KsRowErrorQual) * Max(es->nquals, 1));
	foreach(lc, ps->plan->qual)
	{
		Expr	   *clause = lfirst(lc);
		KsRowErrorQual *rq = &es->quals[q];
		int			x = -1;

		rq->level = list_nth_int(levels, q++);
		pull_varattnos((Node *) clause, scanrelid, &rq->attnos);
		rq->keyonly = true;
		while ((x = bms_next_member(rq->attnos, x)) >= 0)
		{
			AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;
			bool		key = false;
			int			k;

			for (k = 0; k < nkeys && !key; k++)
				key = attno > 0 && keyattnums[k] == attno;
			rq->keyonly &= key;
			if (attno < InvalidAttrNumber)
				break;			/* a system column: not on a built row */
		}
		if (x < 0 && !contain_volatile_functions((Node *) clause) &&
			!contain_subplans((Node *) clause))
			rq->state = ExecInitQual(list_make1(clause), ps);
	}
	return es;
}

/* Whether qual rq is true for an error row in slot: raises when it cannot tell. */
static bool
KsRowErrorQualTrue(KsRowErrorQual *rq, const Bitmapset *failed, ExprContext *econtext,
				   Oid view_oid, MinimalTuple row)
{
	bool		pass;

	if (rq->state == NULL || bms_overlap(rq->attnos, failed))
		KsRowErrorRaise(view_oid, row);
	pass = ExecQual(rq->state, econtext);
	ResetExprContext(econtext);
	return pass;
}

/* A scan met an error row (see rowerror.h). */
bool
KsRowErrorMet(KsRowErrorScan *es, ExprContext *econtext, TupleTableSlot *slot,
			  MinimalTuple row, Oid view_oid)
{
	const char *end = (const char *) row + row->t_len;
	int			natts = HeapTupleHeaderGetNatts(row);
	const char *bits = end - KS_ROWERROR_FIXED - KS_ROWERROR_BITMAP(natts);
	Bitmapset  *failed = NULL;
	int			a;
	int			q;
	int			run;

	for (a = 1; a <= natts; a++)
		if (bits[a / 8] & (1 << (a % 8)))
			failed = bms_add_member(failed, KS_ATTBIT(a));
	if (failed != NULL)
		failed = bms_add_member(failed, KS_WHOLEROW);
	ExecForceStoreMinimalTuple(row, slot, false);
	slot_getallattrs(slot);
	for (a = 1; a <= natts; a++)
		if (bms_is_member(KS_ATTBIT(a), failed))
			slot->tts_isnull[a - 1] = true;
	econtext->ecxt_scantuple = slot;

	/* each run of quals of one security level: key quals first */
	for (run = 0; run < es->nquals; run = q)
	{
		int			level = es->quals[run].level;
		int			stop;

		for (stop = run; stop < es->nquals && es->quals[stop].level == level; stop++)
			;
		for (q = run; q < stop; q++)
			if (es->quals[q].keyonly && es->quals[q].state != NULL &&
				!KsRowErrorQualTrue(&es->quals[q], failed, econtext, view_oid, row))
				return false;
		for (q = run; q < stop; q++)
			if (!es->quals[q].keyonly || es->quals[q].state == NULL)
				if (!KsRowErrorQualTrue(&es->quals[q], failed, econtext, view_oid, row))
					return false;
	}
	/* a failed HAVING fails the row; a failed column, when the query reads it */
	if ((bits[0] & 1) || bms_overlap(es->needed, failed))
		KsRowErrorRaise(view_oid, row);
	return true;
}

/* Raise the error of an error row (see rowerror.h). */
void
KsRowErrorRaise(Oid view_oid, MinimalTuple row)
{
	const char *end = (const char *) row + row->t_len;
	uint32		trailer;
	int32		code;

	memcpy(&trailer, end - sizeof(uint32), sizeof(uint32));
	memcpy(&code, end - KS_ROWERROR_FIXED, sizeof(int32));
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", end - trailer),
			 errdetail("Aggregation %s could not compute the row of a key from its state; "
					   "it computes the row again when the key changes.",
					   KsAggName(view_oid))));
}
