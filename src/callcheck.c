/*-------------------------------------------------------------------------
 *
 * callcheck.c
 *	  What an aggregation's calls depend on, checked at every step of a
 *	  loaded run: the privileges the executor checks when it compiles
 *	  (EXECUTE on the aggregates, their support functions and the query's
 *	  functions), whether an aggregate was replaced, and what fmgr keeps
 *	  from a function's first call (a SECURITY DEFINER function's owner and
 *	  SET), forgotten when it changed.  See aggcall.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "aggcall.h"

/*
 * A hash of the functions an aggregate's calls are prepared with, and of
 * how they are called (see aggcall.h).  Not of the initial value: a
 * spelling of the same one made a change, so the aggregate's owner could
 * reload another role's aggregation at will (re-review today 27, F2); a
 * new one, like the rest of a changed definition, needs that
 * aggregation's rebuild() (aggguard.c warns so), not a reload.
 */
uint64
KsAggDefinitionHash(HeapTuple tup)
{
	Form_pg_aggregate agg = (Form_pg_aggregate) GETSTRUCT(tup);
	uint64		h = 0;

	h = hash_combine64(h, agg->aggtransfn);
	h = hash_combine64(h, agg->aggfinalfn);
	h = hash_combine64(h, agg->aggcombinefn);
	h = hash_combine64(h, agg->aggserialfn);
	h = hash_combine64(h, agg->aggdeserialfn);
	h = hash_combine64(h, agg->aggtranstype);
	return hash_combine64(h, ((uint64) agg->aggfinalmodify << 1) | (agg->aggfinalextra ? 1 : 0));
}

/* Check one function's EXECUTE privilege. */
static void
KsCheckExecute(Oid fn, Oid roleid, ObjectType objtype)
{
	if (OidIsValid(fn) && pg_proc_aclcheck(fn, roleid, ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, objtype, get_func_name(fn));
}

/* Add a function to the list being collected (check_functions_in_node). */
static bool
KsCollectFunction(Oid funcid, void *context)
{
	List	  **funcids = (List **) context;

	*funcids = list_append_unique_oid(*funcids, funcid);
	return false;
}

/* Walk a query's expressions and subqueries, collecting the functions they call. */
static bool
KsCollectFunctionsWalker(Node *node, List **funcids)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, KsCollectFunctionsWalker, funcids, 0);
	(void) check_functions_in_node(node, KsCollectFunction, funcids);
	return expression_tree_walker(node, KsCollectFunctionsWalker, funcids);
}

/* The functions (and operators' functions) a query, or expressions, call (see aggcall.h). */
List *
KsNodeFunctions(Node *node)
{
	List	   *funcids = NIL;

	(void) KsCollectFunctionsWalker(node, &funcids);
	return funcids;
}

/* Whether one of the functions is in SQL: inlinable (see aggcall.h). */
bool
KsCallsSqlFunction(List *funcids)
{
	ListCell   *lc;

	foreach(lc, funcids)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(lfirst_oid(lc)));
		bool		sql;

		if (!HeapTupleIsValid(tup))
			continue;
		sql = ((Form_pg_proc) GETSTRUCT(tup))->prolang == SQLlanguageId;
		ReleaseSysCache(tup);
		if (sql)
			return true;
	}
	return false;
}

/* Fold into h what a call of function fnoid keeps from its first call. */
static uint64
KsFoldCallIdentity(uint64 h, Oid fnoid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	Datum		config;
	bool		isnull;

	if (!OidIsValid(fnoid))
		return h;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));
	if (!HeapTupleIsValid(tup))
		return hash_combine64(h, fnoid);	/* gone: the next step fails anyway */
	proc = (Form_pg_proc) GETSTRUCT(tup);
	h = hash_combine64(h, ((uint64) proc->proowner << 1) | (proc->prosecdef ? 1 : 0));
	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(config));

		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) VARDATA_ANY(v),
												  VARSIZE_ANY_EXHDR(v), fnoid));
	}
	ReleaseSysCache(tup);
	return h;
}

/* What the calls of the functions a runtime loaded keep (see aggcall.h). */
uint64
KsCallsIdentity(KsAggRuntime *rt, const Oid *more, int nmore)
{
	uint64		h = 0;

	for (int i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];

		h = KsFoldCallIdentity(h, c->transfn_oid);
		h = KsFoldCallIdentity(h, c->finalfn_oid);
		h = KsFoldCallIdentity(h, c->combinefn_oid);
		h = KsFoldCallIdentity(h, c->serialfn_oid);
		h = KsFoldCallIdentity(h, c->deserialfn_oid);
	}
	for (int i = 0; i < nmore; i++)
		h = KsFoldCallIdentity(h, more[i]);
	return h;
}

/* Whether an aggregate was replaced since its calls were prepared (see aggcall.h). */
bool
KsCallsReplaced(KsAggRuntime *rt)
{
	for (int i = 0; i < rt->ncalls; i++)
	{
		HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(rt->calls[i].aggfnoid));
		bool		replaced;

		if (!HeapTupleIsValid(tup))
			continue;			/* gone: the privilege check fails the step */
		replaced = KsAggDefinitionHash(tup) != rt->calls[i].definition;
		ReleaseSysCache(tup);
		if (replaced)
			return true;
	}
	return false;
}

/* Look a function up again in place, keeping its call expression. */
static void
KsRefreshFmgr(FmgrInfo *f, MemoryContext cxt)
{
	fmNodePtr	expr = f->fn_expr;

	if (!OidIsValid(f->fn_oid))
		return;
	fmgr_info_cxt(f->fn_oid, f, cxt);
	fmgr_info_set_expr(expr, f);
}

/* Forget what the support functions' calls kept (see aggcall.h). */
void
KsCallsRefresh(KsAggRuntime *rt, MemoryContext cxt)
{
	for (int i = 0; i < rt->ncalls; i++)
	{
		KsAggCall  *c = &rt->calls[i];

		KsRefreshFmgr(&c->transfn, cxt);
		if (OidIsValid(c->finalfn_oid))
			KsRefreshFmgr(&c->finalfn, cxt);
		if (c->persist == KS_PERSIST_SERIAL)
		{
			KsRefreshFmgr(&c->serialfn, cxt);
			KsRefreshFmgr(&c->deserialfn, cxt);
		}
	}
}

/* The same for an array of n FmgrInfos (see aggcall.h). */
void
KsFmgrRefresh(FmgrInfo *fns, int n, MemoryContext cxt)
{
	for (int i = 0; i < n; i++)
		KsRefreshFmgr(&fns[i], cxt);
}

/* Check that a role may still execute the aggregates and functions (see aggcall.h). */
void
KsCheckFunctionPrivileges(List *aggrefs, List *funcids, List *more, Oid roleid)
{
	ListCell   *lc;

	KsAggCheckPrivileges(aggrefs, roleid);
	foreach(lc, funcids)
		KsCheckExecute(lfirst_oid(lc), roleid, OBJECT_FUNCTION);
	foreach(lc, more)
		if (!list_member_oid(funcids, lfirst_oid(lc)))
			KsCheckExecute(lfirst_oid(lc), roleid, OBJECT_FUNCTION);
}

/*
 * Check privileges as the executor does: the caller must be able to execute
 * the aggregate, and the aggregate's owner its support functions.
 */
void
KsAggCheckPrivileges(List *aggrefs, Oid roleid)
{
	ListCell   *lc;

	foreach(lc, aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);
		HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
		HeapTuple	proctup;
		Form_pg_aggregate agg;
		Oid			aggowner;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
		agg = (Form_pg_aggregate) GETSTRUCT(tup);
		proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(aggref->aggfnoid));
		if (!HeapTupleIsValid(proctup))
			elog(ERROR, "cache lookup failed for function %u", aggref->aggfnoid);
		aggowner = ((Form_pg_proc) GETSTRUCT(proctup))->proowner;
		ReleaseSysCache(proctup);

		KsCheckExecute(aggref->aggfnoid, roleid, OBJECT_AGGREGATE);
		KsCheckExecute(agg->aggtransfn, aggowner, OBJECT_FUNCTION);
		KsCheckExecute(agg->aggfinalfn, aggowner, OBJECT_FUNCTION);
		KsCheckExecute(agg->aggcombinefn, aggowner, OBJECT_FUNCTION);
		KsCheckExecute(agg->aggserialfn, aggowner, OBJECT_FUNCTION);
		KsCheckExecute(agg->aggdeserialfn, aggowner, OBJECT_FUNCTION);
		ReleaseSysCache(tup);
	}
}

