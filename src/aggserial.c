/*-------------------------------------------------------------------------
 *
 * aggserial.c
 *	  The durable form of a key's transition states: values, serialized
 *	  internal states, or the logged inputs to replay.  See aggcall.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

#include "aggcall.h"
#include "serialize.h"

/*
 * Whether a deserialize function makes states that the transition function
 * must not continue: numeric_deserialize and numeric_poly_deserialize of
 * PostgreSQL before 15.20 (and the matching minors of other branches)
 * return states that do not accumulate the sum of squares any more, which
 * is harmless in a parallel aggregate (whose deserialized states are only
 * combined) but loses every later row's square for a keyed state that
 * goes on.  Such states are rebased: combined into a fresh state.
 */
bool
KsDeserializeNeedsRebase(Oid deserialfn)
{
	return deserialfn == F_NUMERIC_DESERIALIZE || deserialfn == F_NUMERIC_POLY_DESERIALIZE;
}

/*
 * Rebase a deserialized state (in scratch memory) into the state context:
 * the combine function merged into an empty state makes a state as the
 * transition function makes it (numeric_combine and numeric_poly_combine
 * build their first state that way).
 */
static void
KsRebaseState(KsAggRuntime *rt, KsAggCall *c, KsTransState *st)
{
	LOCAL_FCINFO(fcinfo, 2);
	FmgrInfo	combinefn;
	MemoryContext oldcxt;

	fmgr_info(c->combinefn_oid, &combinefn);
	fmgr_info_set_expr((Node *) c->combinefn_expr, &combinefn);
	InitFunctionCallInfoData(*fcinfo, &combinefn, 2, c->aggref->inputcollid, (Node *) rt->aggstate, NULL);
	fcinfo->args[0].value = (Datum) 0;
	fcinfo->args[0].isnull = true;
	fcinfo->args[1].value = st->value;
	fcinfo->args[1].isnull = false;
	oldcxt = MemoryContextSwitchTo(rt->statecxt);
	st->value = FunctionCallInvoke(fcinfo);
	MemoryContextSwitchTo(oldcxt);
	st->isnull = fcinfo->isnull;
}

/* Append the durable form of a key's states (see aggcall.h). */
void
KsAggSerializeStates(KsAggRuntime *rt, KsTransState *states, StringInfo replay, StringInfo buf)
{
	int			i;

	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];
		KsTransState *st = &states[i];

		if (c->persist == KS_PERSIST_VALUE)
		{
			appendStringInfoChar(buf, st->noTransValue ? 1 : 0);
			KsWriteDatum(buf, st->value, st->isnull, c->transtypeLen, c->transtypeByVal);
		}
		else if (c->persist == KS_PERSIST_SERIAL)
		{
			if (st->isnull && c->serialfn.fn_strict)
				appendStringInfoChar(buf, 0);
			else
			{
				LOCAL_FCINFO(fcinfo, 1);
				bytea	   *b;

				InitFunctionCallInfoData(*fcinfo, &c->serialfn, 1, InvalidOid,
										 (Node *) rt->aggstate, NULL);
				fcinfo->args[0].value = st->value;
				fcinfo->args[0].isnull = st->isnull;
				b = DatumGetByteaPP(FunctionCallInvoke(fcinfo));
				if (fcinfo->isnull)
					appendStringInfoChar(buf, 0);
				else
				{
					appendStringInfoChar(buf, 1);
					KsWriteBytes(buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
				}
			}
		}
	}
	if (rt->hasReplay)
	{
		if (replay != NULL)
			KsWriteBytes(buf, replay->data, replay->len);
		else
			KsWriteBytes(buf, "", 0);
	}
}

/*
 * Restore a key's states from KsAggSerializeStates output (see aggcall.h).
 * Every flag, length and index is checked before it is used; the logged
 * inputs of replayed aggregates go through their transition functions
 * again, which may take long for a hot key, so the loop can be cancelled.
 */
void
KsAggDeserializeStates(KsAggRuntime *rt, KsTransState *states, StringInfo *replay,
					   const char *data, uint32 len, const char *aggname)
{
	KsReader	r;
	MemoryContext oldcxt;
	int			i;

	*replay = NULL;
	KsReaderInit(&r, data, len, aggname);
	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];
		KsTransState *st = &states[i];

		if (c->persist == KS_PERSIST_VALUE)
		{
			uint8		notrans = KsReadUint8(&r, "a transition state");

			if (notrans > 1)
				KsCheckpointCorrupted(aggname,
									  "The first-input flag of a transition state of aggregate %s is %d, not 0 or 1.",
									  format_procedure(c->aggfnoid), notrans);
			oldcxt = MemoryContextSwitchTo(rt->statecxt);
			st->value = KsReadDatum(&r, &st->isnull, c->transtypeLen, c->transtypeByVal,
									"a transition state");
			MemoryContextSwitchTo(oldcxt);
			st->noTransValue = (notrans == 1);
			/* only a state without an initial value waits for its first input */
			if (st->noTransValue && (!st->isnull || !c->initValueIsNull))
				KsCheckpointCorrupted(aggname,
									  "A transition state of aggregate %s waits for its first input but cannot.",
									  format_procedure(c->aggfnoid));
		}
		else if (c->persist == KS_PERSIST_SERIAL)
		{
			uint8		flag = KsReadUint8(&r, "a serialized transition state");

			st->noTransValue = false;
			if (flag == 0)
			{
				st->value = (Datum) 0;
				st->isnull = true;
			}
			else if (flag == 1)
			{
				LOCAL_FCINFO(fcinfo, 2);
				uint32		blen;
				const char *bytes = KsReadBytes(&r, &blen, "a serialized transition state");
				bytea	   *b = palloc(VARHDRSZ + (Size) blen);

				SET_VARSIZE(b, VARHDRSZ + blen);
				memcpy(VARDATA(b), bytes, blen);
				InitFunctionCallInfoData(*fcinfo, &c->deserialfn, 2, InvalidOid,
										 (Node *) rt->aggstate, NULL);
				fcinfo->args[0].value = PointerGetDatum(b);
				fcinfo->args[0].isnull = false;
				fcinfo->args[1].value = (Datum) 0;
				fcinfo->args[1].isnull = false;
				if (c->rebase)
				{
					/* read into scratch memory, then rebase into the state context */
					oldcxt = MemoryContextSwitchTo(rt->aggstate->tmpcontext->ecxt_per_tuple_memory);
					st->value = FunctionCallInvoke(fcinfo);
					MemoryContextSwitchTo(oldcxt);
					st->isnull = fcinfo->isnull;
					if (!st->isnull)
						KsRebaseState(rt, c, st);
					ResetExprContext(rt->aggstate->tmpcontext);
					pfree(b);
				}
				else
				{
					oldcxt = MemoryContextSwitchTo(rt->statecxt);
					st->value = FunctionCallInvoke(fcinfo);
					MemoryContextSwitchTo(oldcxt);
					st->isnull = fcinfo->isnull;
					pfree(b);
				}
			}
			else
				KsCheckpointCorrupted(aggname,
									  "The null flag of a serialized transition state of aggregate %s is %d, not 0 or 1.",
									  format_procedure(c->aggfnoid), flag);
		}
		else
			KsInitState(rt, c, st);
	}

	if (rt->hasReplay)
	{
		uint32		rlen;
		const char *rdata = KsReadBytes(&r, &rlen, "the logged inputs");
		KsReader	rr;
		Datum		args[FUNC_MAX_ARGS];
		bool		argnulls[FUNC_MAX_ARGS];

		KsReaderInit(&rr, rdata, rlen, aggname);
		while (KsReaderLeft(&rr) > 0)
		{
			uint32		idx = KsReadUint32(&rr, "a logged input");
			KsAggCall  *c;
			int			j;

			CHECK_FOR_INTERRUPTS();
			if (idx >= (uint32) rt->ncalls || rt->calls[idx].persist != KS_PERSIST_REPLAY)
				KsCheckpointCorrupted(aggname,
									  "A logged input is for aggregate call %u, which does not log its inputs.",
									  idx);
			c = &rt->calls[idx];
			ResetExprContext(rt->aggstate->tmpcontext);
			oldcxt = MemoryContextSwitchTo(rt->aggstate->tmpcontext->ecxt_per_tuple_memory);
			for (j = 0; j < c->numInputs; j++)
				args[j] = KsReadDatum(&rr, &argnulls[j], c->inputLens[j], c->inputByVals[j],
									  "a logged input");
			MemoryContextSwitchTo(oldcxt);
			KsAdvanceOne(rt, c, &states[idx], args, argnulls);
		}
		/* keep the log only once it replayed whole */
		if (rlen > 0)
		{
			oldcxt = MemoryContextSwitchTo(rt->statecxt);
			*replay = makeStringInfo();
			appendBinaryStringInfo(*replay, rdata, rlen);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	if (KsReaderLeft(&r) != 0)
		KsCheckpointCorrupted(aggname,
							  "The transition states of a key are followed by %zu bytes more.",
							  KsReaderLeft(&r));
}

