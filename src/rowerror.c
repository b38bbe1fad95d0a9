/*-------------------------------------------------------------------------
 *
 * rowerror.c
 *	  Error rows: making and raising them.  See rowerror.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/sysattr.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "optimizer/optimizer.h"

#include "catalog.h"
#include "rowerror.h"

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

/* An error row for an error and a key (see rowerror.h). */
MinimalTuple
KsRowErrorMake(const ErrorData *edata, TupleDesc viewdesc, const AttrNumber *keyattnums,
			   int nkeys, const Datum *keys, const bool *keynulls)
{
	const char *message = edata->message ? edata->message : "unknown error";
	int			msglen = strnlen(message, KS_ERROR_LEN - 1);
	int32		code = edata->sqlerrcode;
	Datum	   *values = palloc0(sizeof(Datum) * Max(viewdesc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(viewdesc->natts, 1));
	MinimalTuple tuple;
	MinimalTuple row;
	uint32		trailer;
	char	   *p;
	int			i;

	/* the key's columns, for the scans' quals on keys; NULL elsewhere */
	memset(nulls, true, sizeof(bool) * Max(viewdesc->natts, 1));
	for (i = 0; i < nkeys; i++)
		if (keyattnums[i] > 0 && keyattnums[i] <= viewdesc->natts)
		{
			values[keyattnums[i] - 1] = keys[i];
			nulls[keyattnums[i] - 1] = keynulls[i];
		}
	tuple = heap_form_minimal_tuple(viewdesc, values, nulls);

	/* then the error: a long message is cut on a character boundary */
	msglen = pg_mbcliplen(message, msglen, msglen);
	trailer = msglen + 1 + KS_ROWERROR_FIXED;
	row = palloc(tuple->t_len + trailer);
	memcpy(row, tuple, tuple->t_len);
	p = (char *) row + tuple->t_len;
	memcpy(p, message, msglen);
	p[msglen] = '\0';
	memcpy(p + msglen + 1, &code, sizeof(int32));
	memcpy(p + msglen + 1 + sizeof(int32), &trailer, sizeof(uint32));
	row->t_len = tuple->t_len + trailer;
	row->t_infomask2 |= HEAP_ONLY_TUPLE;
	pfree(tuple);
	pfree(values);
	pfree(nulls);
	return row;
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

/* The quals a GROUP BY applies before grouping (see rowerror.h). */
ExprState *
KsRowErrorQual(PlanState *ps, Index scanrelid, int nkeys, const AttrNumber *keyattnums)
{
	List	   *quals = NIL;
	ListCell   *lc;

	foreach(lc, ps->plan->qual)
	{
		Node	   *clause = lfirst(lc);
		Bitmapset  *attnos = NULL;
		bool		ok = !contain_volatile_functions(clause);
		int			x = -1;

		pull_varattnos(clause, scanrelid, &attnos);
		while (ok && (x = bms_next_member(attnos, x)) >= 0)
		{
			AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;
			int			k;

			ok = false;
			for (k = 0; k < nkeys && !ok; k++)
				ok = attno > 0 && keyattnums[k] == attno;
		}
		if (ok)
			quals = lappend(quals, clause);
	}
	return quals == NIL ? NULL : ExecInitQual(quals, ps);
}

/* A scan met an error row: skip it, or raise its error (see rowerror.h). */
void
KsRowErrorMet(ExprState *keyqual, ExprContext *econtext, TupleTableSlot *slot,
			  MinimalTuple row, Oid view_oid)
{
	bool		pass;

	ExecForceStoreMinimalTuple(row, slot, false);
	econtext->ecxt_scantuple = slot;
	pass = ExecQual(keyqual, econtext);
	ResetExprContext(econtext);
	ExecClearTuple(slot);
	if (pass)
		KsRowErrorRaise(view_oid, row);
}
