/*-------------------------------------------------------------------------
 *
 * aggcall.h
 *	  Calling aggregate support functions from the worker, as nodeAgg does.
 *
 * For each aggregate call (Aggref) of an aggregation the worker looks up
 * pg_aggregate once and then, per input row, calls the transition function
 * with a reused FunctionCallInfo, re-implementing nodeAgg's semantics:
 * strict transition functions skip rows with a NULL input, a NULL initial
 * value takes the first non-NULL input, by-reference results are copied
 * into the state context and the old value freed.  Transition functions
 * get a private AggState as their call context, so AggCheckCallContext()
 * reports an aggregate context (the state context) and functions with an
 * `internal` state work; AggStateIsShared() then says true, which keeps
 * final functions from scribbling on the state.  Polymorphic support
 * functions get an fn_expr built with build_aggregate_*_expr().
 *
 * How a state is made durable (KsPersistKind):
 *	VALUE	the transition value itself (any non-internal transtype)
 *	SERIAL	internal transtype with serialfn/deserialfn: their bytea
 *	REPLAY	internal transtype without them (array_agg, string_agg,
 *			json(b)_agg... in 15): the key's inputs are logged and replayed
 *			through the transition function on recovery
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_AGGCALL_H
#define KS_AGGCALL_H

#include "keytable.h"

#include "nodes/execnodes.h"
#include "nodes/primnodes.h"

typedef enum KsPersistKind
{
	KS_PERSIST_VALUE,
	KS_PERSIST_SERIAL,
	KS_PERSIST_REPLAY
} KsPersistKind;

/*
 * What an aggregate's call is prepared from in pg_aggregate: its support
 * functions and how they are called, compared whole (never a hash: its
 * owner chooses them).
 */
typedef struct KsAggDefinition
{
	Oid			transfn;
	Oid			finalfn;
	Oid			combinefn;
	Oid			serialfn;
	Oid			deserialfn;
	Oid			transtype;
	char		finalmodify;
	bool		finalextra;
} KsAggDefinition;

typedef struct KsAggCall
{
	Aggref	   *aggref;
	Oid			aggfnoid;
	int			numInputs;		/* aggregated arguments */
	Oid			inputTypes[FUNC_MAX_ARGS];
	int16		inputLens[FUNC_MAX_ARGS];
	bool		inputByVals[FUNC_MAX_ARGS];
	int			inputcol;		/* first input column in the input row */
	int			filtercol;		/* bool FILTER column, or -1 */

	Oid			transtype;
	int16		transtypeLen;
	bool		transtypeByVal;
	Oid			transfn_oid;
	Oid			finalfn_oid;	/* InvalidOid if none */
	Oid			serialfn_oid;
	Oid			deserialfn_oid;
	Oid			combinefn_oid;	/* InvalidOid if none; called by window.c */
	KsAggDefinition definition; /* its functions, as prepared (KsAggDefinitionOf) */
	Expr	   *combinefn_expr; /* its call expression, as nodeAgg gives it (polymorphic ones read it) */
	bool		rebase;			/* its deserialized states are rebased (aggserial.c) */
	FmgrInfo	transfn;
	FmgrInfo	finalfn;
	FmgrInfo	serialfn;
	FmgrInfo	deserialfn;
	bool		transfnStrict;
	int			numFinalArgs;	/* 1, or 1 + numInputs with FINALFUNC_EXTRA */
	char		finalModify;	/* aggfinalmodify */
	Datum		initValue;		/* in the runtime's context */
	bool		initValueIsNull;

	Oid			resulttype;
	int16		resultLen;
	bool		resultByVal;

	KsPersistKind persist;

	FunctionCallInfo transfcinfo;	/* reused for every row */
	FunctionCallInfo finalfcinfo;
} KsAggCall;

typedef struct KsAggRuntime
{
	int			ncalls;
	KsAggCall  *calls;
	bool		hasReplay;		/* some call is KS_PERSIST_REPLAY */
	MemoryContext cxt;			/* this struct, FmgrInfos, init values */
	MemoryContext statecxt;		/* every key's transition states */
	AggState   *aggstate;		/* the private call context */
	ExprContext *econtext;		/* its per-tuple memory is statecxt */
} KsAggRuntime;

/*
 * Prepare the calls of a list of Aggrefs.  inputcols[i] is the input-row
 * column (0-based) of the first argument of aggref i, filtercols[i] that of
 * its FILTER, or -1.  Refuses (ERRCODE_FEATURE_NOT_SUPPORTED) aggregates it
 * cannot run: non-normal aggregates, DISTINCT or ORDER BY inside, and a
 * read-write final function over an internal state.
 */
extern KsAggRuntime *KsAggRuntimeCreate(List *aggrefs, const int *inputcols,
										const int *filtercols,
										MemoryContext parent);

/* Check that `roleid` may execute each aggregate and its support functions. */
extern void KsAggCheckPrivileges(List *aggrefs, Oid roleid);

/*
 * The functions a query, or a list of expressions, calls (operators'
 * included), and the check, at every step, that its owner may still
 * execute each of `funcids` and `more`: the executor checks them when it
 * compiles the expressions, which a loaded run does again only when a
 * function changes, not when a privilege or a membership is revoked.  The
 * query's functions are `funcids`; those of its compiled expressions,
 * `more`, add the functions inlined SQL bodies call (re-review today 27,
 * F3: they went on being called after the owner lost EXECUTE on them).
 */
extern List *KsNodeFunctions(Node *node);
extern bool KsCallsSqlFunction(List *funcids);
extern void KsCheckFunctionPrivileges(List *aggrefs, List *funcids, List *more, Oid roleid);

/*
 * Forget what the calls of the support functions the runtime's calls were
 * prepared with (not those the aggregates name now: security review 23,
 * F1), or of the functions `fns`, kept from their first call
 * (fmgr_security_definer caches the owner of a SECURITY DEFINER function
 * and its SET settings): looked up again, their memory in `cxt`, so that
 * they run as the function's owner now (security review 22, F1: a function
 * handed to a group ran the group's new body as its former owner, a
 * superuser), without loading again (security review 23, F2: any such
 * change of a function reloaded every aggregation calling it).  A loaded
 * run does so after any change of a function (KsRunCheckCalls); the
 * functions the query's expressions call are compiled again then.
 */
extern void KsCallsRefresh(KsAggRuntime *rt, MemoryContext cxt);
extern void KsFmgrRefresh(FmgrInfo *fns, int n, MemoryContext cxt);

/*
 * Whether an aggregate's support functions, or how they are called
 * (KsAggDefinitionOf), changed (CREATE OR REPLACE AGGREGATE by its owner,
 * for another role's aggregation: aggguard.c refuses it for one's own)
 * since its call was prepared: the run then loads
 * again, calling what the aggregate names now (security review 23, F1: it
 * went on calling the former transition function, whose owner's later
 * changes nothing saw).
 */
extern bool KsCallsReplaced(KsAggRuntime *rt);
extern void KsAggDefinitionOf(HeapTuple tup, KsAggDefinition *def);

/* Give a new key its initial states. */
extern void KsAggInitStates(KsAggRuntime *rt, KsTransState *states);

/*
 * Apply one input row (values/isnull indexed by input-row column) to a key's
 * states.  When rt->hasReplay, the inputs of replay-persisted calls that
 * pass their FILTER are appended to *replay (created in statecxt if NULL).
 */
extern void KsAggAdvance(KsAggRuntime *rt, KsTransState *states,
						 StringInfo *replay, const Datum *values,
						 const bool *isnull);

/* Prefetch the by-reference transition states of a key (see apply.h). */
extern void KsAggPrefetchStates(KsAggRuntime *rt, KsTransState *states);

/*
 * Free a key's transition states and its log of replayed inputs (it
 * expired, or was evicted); false when some state is internal and could not
 * be freed one by one (expire.h compacts those).
 */
extern bool KsAggReleaseStates(KsAggRuntime *rt, KsKeyEntry *e);

/* Final values of a key, allocated in CurrentMemoryContext. */
extern void KsAggFinalize(KsAggRuntime *rt, KsTransState *states,
						  Datum *results, bool *resultnulls);

/* The final value of a key's aggregate call i alone (KsAggFinalize's part). */
extern void KsAggFinalizeOne(KsAggRuntime *rt, KsTransState *states, int i,
							 Datum *result, bool *resultnull);

/* Append the durable form of a key's states (and replay log) to buf. */
extern void KsAggSerializeStates(KsAggRuntime *rt, KsTransState *states,
								 StringInfo replay, StringInfo buf);

/*
 * Restore a key's states from KsAggSerializeStates output (exactly `len`
 * bytes): values are copied into statecxt, SERIAL states deserialized,
 * REPLAY logs replayed (and kept in *replay).  Malformed bytes raise
 * KsCheckpointCorrupted for aggregation `aggname`.
 */
extern void KsAggDeserializeStates(KsAggRuntime *rt, KsTransState *states,
								   StringInfo *replay, const char *data,
								   uint32 len, const char *aggname);

/* Shared by aggcall.c and aggserial.c: one call's initial state, one input. */
extern void KsInitState(KsAggRuntime *rt, KsAggCall *c, KsTransState *st);
extern void KsAdvanceOne(KsAggRuntime *rt, KsAggCall *c, KsTransState *st,
						 const Datum *args, const bool *argnulls);

/* Whether states of a deserialize function must be rebased (aggserial.c). */
extern bool KsDeserializeNeedsRebase(Oid deserialfn);

/* Bytes of memory held by all transition states. */
extern Size KsAggStateMemory(KsAggRuntime *rt);

#endif							/* KS_AGGCALL_H */
