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
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "aggcall.h"

/*
 * The functions an aggregate's calls are prepared with, and how they are
 * called (see aggcall.h).  Not the initial value: a spelling of the same
 * one made a change, so the aggregate's owner could reload another role's
 * aggregation at will (re-review today 27, F2); a new one, like the rest
 * of a changed definition, needs that aggregation's rebuild() (aggguard.c
 * warns so), not a reload.
 */
void
KsAggDefinitionOf(HeapTuple tup, KsAggDefinition *def)
{
	Form_pg_aggregate agg = (Form_pg_aggregate) GETSTRUCT(tup);

	memset(def, 0, sizeof(KsAggDefinition));	/* compared whole, padding too */
	def->transfn = agg->aggtransfn;
	def->finalfn = agg->aggfinalfn;
	def->combinefn = agg->aggcombinefn;
	def->serialfn = agg->aggserialfn;
	def->deserialfn = agg->aggdeserialfn;
	def->transtype = agg->aggtranstype;
	def->finalmodify = agg->aggfinalmodify;
	def->finalextra = agg->aggfinalextra;
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

/*
 * Walk a query's expressions and subqueries, collecting the functions they
 * call; a cast to a domain calls those of the domain's CHECK constraints
 * (its base domains' too), which check_functions_in_node does not see
 * (security review 24, F3: one went on being called after the owner lost
 * EXECUTE on it, where her own query was refused).
 */
static bool
KsCollectFunctionsWalker(Node *node, List **funcids)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, KsCollectFunctionsWalker, funcids, 0);
	if (IsA(node, CoerceToDomain))
	{
		DomainConstraintRef *ref = palloc(sizeof(DomainConstraintRef));
		ListCell   *lc;

		InitDomainConstraintRef(((CoerceToDomain *) node)->resulttype, ref, CurrentMemoryContext, false);
		foreach(lc, ref->constraints)
		{
			DomainConstraintState *con = (DomainConstraintState *) lfirst(lc);

			if (con->constrainttype == DOM_CONSTRAINT_CHECK &&
				KsCollectFunctionsWalker((Node *) con->check_expr, funcids))
				return true;
		}
	}
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

/* Whether an aggregate was replaced since its calls were prepared (see aggcall.h). */
bool
KsCallsReplaced(KsAggRuntime *rt)
{
	for (int i = 0; i < rt->ncalls; i++)
	{
		HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(rt->calls[i].aggfnoid));
		KsAggDefinition now;
		bool		replaced;

		if (!HeapTupleIsValid(tup))
			continue;			/* gone: the privilege check fails the step */
		KsAggDefinitionOf(tup, &now);
		replaced = memcmp(&now, &rt->calls[i].definition, sizeof(KsAggDefinition)) != 0;
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

