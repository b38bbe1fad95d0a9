/*-------------------------------------------------------------------------
 *
 * aggcall.c
 *	  Calling aggregate support functions from the worker, with nodeAgg's
 *	  semantics.  See aggcall.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_agg.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "aggcall.h"
#include "definition.h"
#include "serialize.h"

/* Refuse an aggregate the worker cannot run. */
static void
KsRefuseAggregate(Oid aggfnoid, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aggregate function %s is not supported by keyedstate",
					format_procedure(aggfnoid)),
			 errdetail("%s", detail)));
}

/*
 * The call expression of a combine function, as nodeAgg gives it: two
 * arguments of the transition type.  A polymorphic combine function reads
 * its argument types from it (range_intersect_agg's; exactness review 20,
 * F3: called without one, it failed every merge of a sliding window).
 */
static Expr *
KsCombineFnExpr(Oid combinefn_oid, Oid transtype, Oid inputcollid)
{
	Param	   *arg = makeNode(Param);

	arg->paramkind = PARAM_EXEC;
	arg->paramid = -1;
	arg->paramtype = transtype;
	arg->paramtypmod = -1;
	arg->paramcollid = inputcollid;
	arg->location = -1;
	return (Expr *) makeFuncExpr(combinefn_oid, transtype, list_make2(arg, arg), InvalidOid,
								 inputcollid, COERCE_EXPLICIT_CALL);
}

/* Look up one aggregate call and prepare its function calls. */
static void
KsPrepareCall(KsAggRuntime *rt, KsAggCall *c, Aggref *aggref)
{
	HeapTuple	tup;
	Form_pg_aggregate agg;
	Datum		initval;
	bool		isnull;
	Expr	   *transfnexpr;
	Expr	   *finalfnexpr;
	Expr	   *serialfnexpr;
	Expr	   *deserialfnexpr;
	int			i;

	c->aggref = aggref;
	c->aggfnoid = aggref->aggfnoid;
	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tup);
	KsAggDefinitionOf(tup, &c->definition);

	if (agg->aggkind != AGGKIND_NORMAL)
		KsRefuseAggregate(c->aggfnoid, "Ordered-set and hypothetical-set aggregates cannot be maintained incrementally.");
	/* ORDER BY inside it is by the offset column, the order inputs come in (inputorder.c) */
	if (aggref->aggdistinct != NIL)
		KsRefuseAggregate(c->aggfnoid, "DISTINCT inside an aggregate cannot be maintained incrementally.");

	c->numInputs = get_aggregate_argtypes(aggref, c->inputTypes);
	for (i = 0; i < c->numInputs; i++)
		get_typlenbyval(c->inputTypes[i], &c->inputLens[i], &c->inputByVals[i]);

	c->transfn_oid = agg->aggtransfn;
	c->finalfn_oid = agg->aggfinalfn;
	c->combinefn_oid = agg->aggcombinefn;
	if (OidIsValid(c->combinefn_oid))
		c->combinefn_expr = KsCombineFnExpr(c->combinefn_oid,
											resolve_aggregate_transtype(aggref->aggfnoid, agg->aggtranstype,
																		c->inputTypes, c->numInputs),
											aggref->inputcollid);
	c->serialfn_oid = agg->aggserialfn;
	c->deserialfn_oid = agg->aggdeserialfn;
	c->finalModify = agg->aggfinalmodify;
	c->transtype = resolve_aggregate_transtype(c->aggfnoid, agg->aggtranstype,
											   c->inputTypes, c->numInputs);
	get_typlenbyval(c->transtype, &c->transtypeLen, &c->transtypeByVal);

	if (c->finalModify == AGGMODIFY_READ_WRITE && c->transtype == INTERNALOID)
		KsRefuseAggregate(c->aggfnoid, "Its final function modifies an internal transition state, so the state could not be finalized more than once.");

	initval = SysCacheGetAttr(AGGFNOID, tup, Anum_pg_aggregate_agginitval, &isnull);
	c->initValueIsNull = isnull;
	if (!isnull)
	{
		Oid			typinput;
		Oid			typioparam;

		getTypeInputInfo(c->transtype, &typinput, &typioparam);
		c->initValue = OidInputFunctionCall(typinput, TextDatumGetCString(initval),
											typioparam, -1);
	}

	c->transfnStrict = func_strict(c->transfn_oid);
	if (c->transfnStrict && c->initValueIsNull &&
		(c->numInputs < 1 || !IsBinaryCoercible(c->inputTypes[0], c->transtype)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("aggregate %s needs to have compatible input type and transition type",
						format_procedure(c->aggfnoid))));

	/* fn_expr lets polymorphic support functions learn their argument types */
	build_aggregate_transfn_expr(c->inputTypes, c->numInputs, 0, aggref->aggvariadic,
								 c->transtype, aggref->inputcollid, c->transfn_oid,
								 InvalidOid, &transfnexpr, NULL);
	fmgr_info_cxt(c->transfn_oid, &c->transfn, rt->cxt);
	fmgr_info_set_expr((Node *) transfnexpr, &c->transfn);
	c->transfcinfo = palloc0(SizeForFunctionCallInfo(c->numInputs + 1));
	InitFunctionCallInfoData(*c->transfcinfo, &c->transfn, c->numInputs + 1,
							 aggref->inputcollid, (Node *) rt->aggstate, NULL);

	c->numFinalArgs = agg->aggfinalextra ? c->numInputs + 1 : 1;
	if (OidIsValid(c->finalfn_oid))
	{
		build_aggregate_finalfn_expr(c->inputTypes, c->numFinalArgs, c->transtype,
									 aggref->aggtype, aggref->inputcollid,
									 c->finalfn_oid, &finalfnexpr);
		fmgr_info_cxt(c->finalfn_oid, &c->finalfn, rt->cxt);
		fmgr_info_set_expr((Node *) finalfnexpr, &c->finalfn);
		c->finalfcinfo = palloc0(SizeForFunctionCallInfo(c->numFinalArgs));
		InitFunctionCallInfoData(*c->finalfcinfo, &c->finalfn, c->numFinalArgs,
								 aggref->inputcollid, (Node *) rt->aggstate, NULL);
	}

	if (c->transtype != INTERNALOID)
		c->persist = KS_PERSIST_VALUE;
	else if (OidIsValid(c->serialfn_oid) && OidIsValid(c->deserialfn_oid))
	{
		c->persist = KS_PERSIST_SERIAL;
		build_aggregate_serialfn_expr(c->serialfn_oid, &serialfnexpr);
		fmgr_info_cxt(c->serialfn_oid, &c->serialfn, rt->cxt);
		fmgr_info_set_expr((Node *) serialfnexpr, &c->serialfn);
		build_aggregate_deserialfn_expr(c->deserialfn_oid, &deserialfnexpr);
		fmgr_info_cxt(c->deserialfn_oid, &c->deserialfn, rt->cxt);
		fmgr_info_set_expr((Node *) deserialfnexpr, &c->deserialfn);
		c->rebase = KsDeserializeNeedsRebase(c->deserialfn_oid) && OidIsValid(c->combinefn_oid);
	}
	else
	{
		c->persist = KS_PERSIST_REPLAY;
		rt->hasReplay = true;
	}

	/* what a checkpoint holds must mean the same in another process */
	if (c->persist == KS_PERSIST_VALUE && KsTypeIsAnonymousRecord(c->transtype))
		KsRefuseAggregate(c->aggfnoid, "Its transition state is an anonymous record, which could not be checkpointed and read back.");
	if (c->persist == KS_PERSIST_REPLAY)
	{
		for (i = 0; i < c->numInputs; i++)
			if (KsTypeIsAnonymousRecord(c->inputTypes[i]))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("aggregate function %s cannot take an anonymous record argument in keyedstate",
								format_procedure(c->aggfnoid)),
						 errdetail("Its inputs are checkpointed and replayed, and an anonymous record could not be read back after a restart."),
						 errhint("Cast the row to a composite type, for example ROW(a, b)::my_type.")));
	}

	c->resulttype = aggref->aggtype;
	get_typlenbyval(c->resulttype, &c->resultLen, &c->resultByVal);
	ReleaseSysCache(tup);
}

/* Prepare the calls of a list of Aggrefs (see aggcall.h). */
KsAggRuntime *
KsAggRuntimeCreate(List *aggrefs, const int *inputcols, const int *filtercols,
				   MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "keyedstate aggregates",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	KsAggRuntime *rt = palloc0(sizeof(KsAggRuntime));
	ExprContext *tmpcontext;
	ListCell   *lc;
	int			i;

	rt->cxt = cxt;
	rt->statecxt = AllocSetContextCreate(cxt, "keyedstate transition states",
										 ALLOCSET_DEFAULT_SIZES);

	/*
	 * The private AggState: AggCheckCallContext hands transition functions
	 * curaggcontext's per-tuple memory as their aggregate context, so it
	 * must be the long-lived state context, never reset.
	 */
	rt->econtext = CreateStandaloneExprContext();
	MemoryContextDelete(rt->econtext->ecxt_per_tuple_memory);
	rt->econtext->ecxt_per_tuple_memory = rt->statecxt;
	tmpcontext = CreateStandaloneExprContext();
	rt->aggstate = makeNode(AggState);
	rt->aggstate->curaggcontext = rt->econtext;
	rt->aggstate->tmpcontext = tmpcontext;

	rt->ncalls = list_length(aggrefs);
	rt->calls = palloc0(sizeof(KsAggCall) * Max(rt->ncalls, 1));
	i = 0;
	foreach(lc, aggrefs)
	{
		KsAggCall  *c = &rt->calls[i];

		c->inputcol = inputcols[i];
		c->filtercol = filtercols[i];
		KsPrepareCall(rt, c, lfirst(lc));
		i++;
	}
	MemoryContextSwitchTo(oldcxt);
	return rt;
}

/* Give one call's state its initial value. */
void
KsInitState(KsAggRuntime *rt, KsAggCall *c, KsTransState *st)
{
	st->noTransValue = c->initValueIsNull;
	st->isnull = c->initValueIsNull;
	st->value = (Datum) 0;
	if (!c->initValueIsNull)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rt->statecxt);

		st->value = datumCopy(c->initValue, c->transtypeByVal, c->transtypeLen);
		MemoryContextSwitchTo(oldcxt);
	}
}

/* Give a new key its initial states. */
void
KsAggInitStates(KsAggRuntime *rt, KsTransState *states)
{
	int			i;

	for (i = 0; i < rt->ncalls; i++)
		KsInitState(rt, &rt->calls[i], &states[i]);
}

/*
 * Apply one row's inputs to one state, as nodeAgg's
 * advance_transition_function does.
 */
void
KsAdvanceOne(KsAggRuntime *rt, KsAggCall *c, KsTransState *st,
			 const Datum *args, const bool *argnulls)
{
	FunctionCallInfo fcinfo = c->transfcinfo;
	MemoryContext oldcxt;
	Datum		newVal;
	int			i;

	if (c->transfnStrict)
	{
		for (i = 0; i < c->numInputs; i++)
			if (argnulls[i])
				return;
		if (st->noTransValue)
		{
			/* the first non-NULL input becomes the state */
			oldcxt = MemoryContextSwitchTo(rt->statecxt);
			st->value = KsDatumCopyOwned(args[0], c->transtypeByVal, c->transtypeLen);
			MemoryContextSwitchTo(oldcxt);
			st->isnull = false;
			st->noTransValue = false;
			return;
		}
		if (st->isnull)
			return;				/* a strict state that went NULL stays NULL */
	}

	fcinfo->args[0].value = st->value;
	fcinfo->args[0].isnull = st->isnull;
	for (i = 0; i < c->numInputs; i++)
	{
		fcinfo->args[i + 1].value = args[i];
		fcinfo->args[i + 1].isnull = argnulls[i];
	}
	fcinfo->isnull = false;

	oldcxt = MemoryContextSwitchTo(rt->aggstate->tmpcontext->ecxt_per_tuple_memory);
	newVal = FunctionCallInvoke(fcinfo);
	MemoryContextSwitchTo(oldcxt);

	/* keep a by-reference result in the state context, free the old value */
	if (!c->transtypeByVal && DatumGetPointer(newVal) != DatumGetPointer(st->value))
	{
		if (!fcinfo->isnull)
		{
			oldcxt = MemoryContextSwitchTo(rt->statecxt);
			if (!(DatumIsReadWriteExpandedObject(newVal, false, c->transtypeLen) &&
				  MemoryContextGetParent(DatumGetEOHP(newVal)->eoh_context) == rt->statecxt))
				newVal = KsDatumCopyOwned(newVal, c->transtypeByVal, c->transtypeLen);
			MemoryContextSwitchTo(oldcxt);
		}
		if (!st->isnull)
		{
			if (DatumIsReadWriteExpandedObject(st->value, false, c->transtypeLen))
				DeleteExpandedObject(st->value);
			else
				pfree(DatumGetPointer(st->value));
		}
	}
	st->value = newVal;
	st->isnull = fcinfo->isnull;
	st->noTransValue = false;
}

/* Apply one input row to a key's states (see aggcall.h). */
void
KsAggAdvance(KsAggRuntime *rt, KsTransState *states, StringInfo *replay,
			 const Datum *values, const bool *isnull)
{
	int			i;

	ResetExprContext(rt->aggstate->tmpcontext);
	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];

		if (c->filtercol >= 0 &&
			(isnull[c->filtercol] || !DatumGetBool(values[c->filtercol])))
			continue;
		if (c->persist == KS_PERSIST_REPLAY)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(rt->statecxt);
			int			j;

			if (*replay == NULL)
				*replay = makeStringInfo();
			KsWriteUint32(*replay, (uint32) i);
			for (j = 0; j < c->numInputs; j++)
				KsWriteDatum(*replay, values[c->inputcol + j], isnull[c->inputcol + j],
							 c->inputLens[j], c->inputByVals[j]);
			MemoryContextSwitchTo(oldcxt);
		}
		KsAdvanceOne(rt, c, &states[i], values + c->inputcol, isnull + c->inputcol);
	}
}

/* Prefetch a key's by-reference transition states (see apply.h). */
void
KsAggPrefetchStates(KsAggRuntime *rt, KsTransState *states)
{
	int			i;

	for (i = 0; i < rt->ncalls; i++)
	{
		if (!rt->calls[i].transtypeByVal && !states[i].isnull)
			KS_PREFETCH(DatumGetPointer(states[i].value));
	}
}

/* The final value of a key's aggregate call i, as nodeAgg's finalize_aggregate computes it. */
void
KsAggFinalizeOne(KsAggRuntime *rt, KsTransState *states, int i, Datum *result, bool *resultnull)
{
	KsAggCall  *c = &rt->calls[i];
	KsTransState *st = &states[i];

	if (OidIsValid(c->finalfn_oid))
	{
		FunctionCallInfo fcinfo = c->finalfcinfo;
		bool		anynull = st->isnull;
		int			j;

		if (c->finalModify == AGGMODIFY_READ_WRITE && !st->isnull)
			fcinfo->args[0].value = datumCopy(st->value, c->transtypeByVal, c->transtypeLen);
		else
			fcinfo->args[0].value = MakeExpandedObjectReadOnly(st->value, st->isnull,
															   c->transtypeLen);
		fcinfo->args[0].isnull = st->isnull;
		for (j = 1; j < c->numFinalArgs; j++)
		{
			fcinfo->args[j].value = (Datum) 0;
			fcinfo->args[j].isnull = true;
			anynull = true;
		}
		if (c->finalfn.fn_strict && anynull)
		{
			*result = (Datum) 0;
			*resultnull = true;
		}
		else
		{
			fcinfo->isnull = false;
			*result = FunctionCallInvoke(fcinfo);
			*resultnull = fcinfo->isnull;
		}
	}
	else
	{
		*result = MakeExpandedObjectReadOnly(st->value, st->isnull, c->transtypeLen);
		*resultnull = st->isnull;
	}
}

/* Final values of a key (see aggcall.h). */
void
KsAggFinalize(KsAggRuntime *rt, KsTransState *states, Datum *results, bool *resultnulls)
{
	int			i;

	for (i = 0; i < rt->ncalls; i++)
		KsAggFinalizeOne(rt, states, i, &results[i], &resultnulls[i]);
}

/* Bytes of memory held by all transition states. */
Size
KsAggStateMemory(KsAggRuntime *rt)
{
	return MemoryContextMemAllocated(rt->statecxt, true);
}

/* Free a key's states and replay log (see aggcall.h). */
bool
KsAggReleaseStates(KsAggRuntime *rt, KsKeyEntry *e)
{
	bool		all = true;
	int			i;

	for (i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];
		KsTransState *st = &e->states[i];

		if (c->transtype == INTERNALOID)
			all = false;
		else if (!c->transtypeByVal && !st->isnull && DatumGetPointer(st->value) != NULL)
		{
			if (DatumIsReadWriteExpandedObject(st->value, false, c->transtypeLen))
				DeleteExpandedObject(st->value);
			else
				pfree(DatumGetPointer(st->value));
		}
		st->value = (Datum) 0;
		st->isnull = true;
		st->noTransValue = false;
	}
	if (e->replay != NULL)
	{
		pfree(e->replay->data);
		pfree(e->replay);
		e->replay = NULL;
	}
	return all;
}
