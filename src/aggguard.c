/*-------------------------------------------------------------------------
 *
 * aggguard.c
 *	  Refusing changes to the aggregates an aggregation calls.  See
 *	  aggguard.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "aggguard.h"
#include "catalog.h"

/* The support functions of an aggregate, by their place in pg_aggregate. */
#define KS_AGG_SUPPORT	8

/* What a call of a support function keeps from pg_proc (see aggguard.h). */
typedef struct KsSupportFn
{
	Oid			oid;
	bool		strict;
	bool		secdef;
	Oid			proowner;		/* whom a SECURITY DEFINER one runs as */
	Datum		config;			/* proconfig, a copy; 0 if NULL */
} KsSupportFn;

/* An aggregate an aggregation calls, as the catalog had it before a command. */
typedef struct KsNotedAggregate
{
	Oid			aggfnoid;
	char	   *aggname;		/* the aggregation's */
	Oid			owner;			/* ... and its owner */
	FormData_pg_aggregate form;
	char	   *initval;		/* NULL if none */
	char	   *minitval;
	KsSupportFn fns[KS_AGG_SUPPORT];
} KsNotedAggregate;

/* Note one support function (InvalidOid: none). */
static void
KsNoteSupportFn(KsSupportFn *fn, Oid oid)
{
	HeapTuple	tup;
	bool		isnull;
	Datum		config;

	memset(fn, 0, sizeof(KsSupportFn));
	fn->oid = oid;
	if (!OidIsValid(oid) || !HeapTupleIsValid(tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(oid))))
		return;
	fn->strict = ((Form_pg_proc) GETSTRUCT(tup))->proisstrict;
	fn->secdef = ((Form_pg_proc) GETSTRUCT(tup))->prosecdef;
	fn->proowner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
		fn->config = datumCopy(config, false, -1);
	ReleaseSysCache(tup);
}

/* An initial value as text, or NULL. */
static char *
KsInitVal(HeapTuple tup, AttrNumber attno)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(AGGFNOID, tup, attno, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Note aggregate aggfnoid as it is now; false if it is gone. */
static bool
KsNoteAggregate(KsNotedAggregate *a, Oid aggfnoid)
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Form_pg_aggregate agg;

	if (!HeapTupleIsValid(tup))
		return false;
	agg = (Form_pg_aggregate) GETSTRUCT(tup);
	a->aggfnoid = aggfnoid;
	a->form = *agg;
	a->initval = KsInitVal(tup, Anum_pg_aggregate_agginitval);
	a->minitval = KsInitVal(tup, Anum_pg_aggregate_aggminitval);
	ReleaseSysCache(tup);
	KsNoteSupportFn(&a->fns[0], a->form.aggtransfn);
	KsNoteSupportFn(&a->fns[1], a->form.aggfinalfn);
	KsNoteSupportFn(&a->fns[2], a->form.aggcombinefn);
	KsNoteSupportFn(&a->fns[3], a->form.aggserialfn);
	KsNoteSupportFn(&a->fns[4], a->form.aggdeserialfn);
	KsNoteSupportFn(&a->fns[5], a->form.aggmtransfn);
	KsNoteSupportFn(&a->fns[6], a->form.aggminvtransfn);
	KsNoteSupportFn(&a->fns[7], a->form.aggmfinalfn);
	return true;
}

/* Whether two initial values are the same. */
static bool
KsSameText(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

/* Whether everything a call keeps of pg_aggregate is the same (not the support functions' pg_proc). */
static bool
KsSameAggregate(const KsNotedAggregate *a, const KsNotedAggregate *b)
{
	const FormData_pg_aggregate *x = &a->form;
	const FormData_pg_aggregate *y = &b->form;

	return x->aggkind == y->aggkind && x->aggnumdirectargs == y->aggnumdirectargs &&
		x->aggtransfn == y->aggtransfn && x->aggfinalfn == y->aggfinalfn &&
		x->aggcombinefn == y->aggcombinefn && x->aggserialfn == y->aggserialfn &&
		x->aggdeserialfn == y->aggdeserialfn && x->aggmtransfn == y->aggmtransfn &&
		x->aggminvtransfn == y->aggminvtransfn && x->aggmfinalfn == y->aggmfinalfn &&
		x->aggfinalextra == y->aggfinalextra && x->aggmfinalextra == y->aggmfinalextra &&
		x->aggfinalmodify == y->aggfinalmodify && x->aggmfinalmodify == y->aggmfinalmodify &&
		x->aggsortop == y->aggsortop && x->aggtranstype == y->aggtranstype &&
		x->aggtransspace == y->aggtransspace && x->aggmtranstype == y->aggmtranstype &&
		x->aggmtransspace == y->aggmtransspace &&
		KsSameText(a->initval, b->initval) && KsSameText(a->minitval, b->minitval);
}

/* The first support function whose strictness or settings differ, or -1. */
static int
KsChangedSupportFn(const KsNotedAggregate *a, const KsNotedAggregate *b)
{
	for (int i = 0; i < KS_AGG_SUPPORT; i++)
	{
		const KsSupportFn *x = &a->fns[i];
		const KsSupportFn *y = &b->fns[i];

		if (x->oid != y->oid)
			return i;
		if (x->strict != y->strict || x->secdef != y->secdef ||
			(x->secdef && x->proowner != y->proowner) ||
			(x->config == 0) != (y->config == 0) ||
			(x->config != 0 && !datumIsEqual(x->config, y->config, false, -1)))
			return i;
	}
	return -1;
}

/* Whether a command may change an aggregate or a function (see aggguard.h). */
static bool
KsMayChangeAggregate(Node *parsetree)
{
	if (IsA(parsetree, DefineStmt))
		return ((DefineStmt *) parsetree)->kind == OBJECT_AGGREGATE && ((DefineStmt *) parsetree)->replace;
	if (IsA(parsetree, CreateFunctionStmt))
		return ((CreateFunctionStmt *) parsetree)->replace;
	/* a SECURITY DEFINER one runs as its owner (re-review today 25, F5) */
	if (IsA(parsetree, AlterOwnerStmt))
		return ((AlterOwnerStmt *) parsetree)->objectType == OBJECT_FUNCTION ||
			((AlterOwnerStmt *) parsetree)->objectType == OBJECT_ROUTINE;
	return IsA(parsetree, AlterFunctionStmt);
}

/* The aggregates the database's aggregations call, as they are now (see aggguard.h). */
List *
KsBeforeAggregateChange(Node *parsetree)
{
	MemoryContext oldcxt;
	KsCatalogAccess acc;
	List	   *all;
	List	   *noted = NIL;
	ListCell   *lc;

	if (!KsMayChangeAggregate(parsetree) || !KsInstalled())
		return NIL;
	oldcxt = MemoryContextSwitchTo(AllocSetContextCreate(CurrentMemoryContext, "keyedstate aggregates",
														 ALLOCSET_DEFAULT_SIZES));
	KsCatalogOpen(&acc);
	all = KsCatalogStored(KS_AGGREGATES);
	KsCatalogClose(&acc);
	foreach(lc, all)
	{
		KsStoredOids *st = lfirst(lc);

		for (int i = 0; i < st->noids; i++)
		{
			KsNotedAggregate *a = palloc0(sizeof(KsNotedAggregate));

			if (!KsNoteAggregate(a, st->oids[i]))
				continue;
			a->aggname = KsAggName(st->view_oid);
			a->owner = KsRelationOwner(st->view_oid);
			noted = lappend(noted, a);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return noted;
}

/* After the command: refuse a change of a noted aggregate (see aggguard.h). */
void
KsAfterAggregateChange(List *noted)
{
	static const char *const roles[KS_AGG_SUPPORT] = {
		"transition", "final", "combine", "serialization", "deserialization",
		"moving-aggregate transition", "moving-aggregate inverse transition", "moving-aggregate final"
	};
	ListCell   *lc;

	foreach(lc, noted)
	{
		KsNotedAggregate *was = lfirst(lc);
		KsNotedAggregate now;
		int			fn = -1;

		if (!KsNoteAggregate(&now, was->aggfnoid))
			continue;
		if (now.form.aggtranstype != was->form.aggtranstype ||
			now.form.aggserialfn != was->form.aggserialfn ||
			now.form.aggdeserialfn != was->form.aggdeserialfn)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the state type of aggregate %s because aggregation %s uses it",
							format_procedure(was->aggfnoid), was->aggname),
					 errdetail("The aggregation's checkpoints hold the aggregate's transition states as they are now, which another state type or serialization would misread."),
					 errhint("Drop the aggregation, replace the aggregate, then create the aggregation again; or create the new aggregate under another name.")));
		if (KsSameAggregate(was, &now) && (fn = KsChangedSupportFn(was, &now)) < 0)
			continue;
		/*
		 * Another role's aggregation does not stop the change, as another
		 * role's view using a function does not in PostgreSQL (re-review
		 * today 25, F1: any role could freeze an owner's aggregate by
		 * aggregating with it, and the hint told the owner to drop what she
		 * may not); its owner is told to rebuild.
		 */
		if (!has_privs_of_role(GetUserId(), was->owner))
			ereport(WARNING,
					(errmsg("aggregation %s of another role uses aggregate %s, which this command changes",
							was->aggname, format_procedure(was->aggfnoid)),
					 errdetail("Rows it consumed before and after the change, and rows a crash makes it replay, may disagree until its owner calls keyedstate.rebuild().")));
		else if (!KsSameAggregate(was, &now))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change aggregate %s because aggregation %s uses it",
							format_procedure(was->aggfnoid), was->aggname),
					 errdetail("The aggregation's states were built by the aggregate as it is now, and its worker keeps calling it so until it loads the aggregation again: rows consumed before and after the change, and rows a crash replays, would disagree."),
					 errhint("Drop the aggregation, replace the aggregate, then create the aggregation again; or create the new aggregate under another name.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the strictness, SECURITY DEFINER, owner or settings of function %s because aggregation %s calls it as the %s function of aggregate %s",
							format_procedure(was->fns[fn].oid), was->aggname, roles[fn],
							format_procedure(was->aggfnoid)),
					 errdetail("The aggregation's states were built by the function as it is now, and its worker keeps calling it so until it loads the aggregation again: rows consumed before and after the change, and rows a crash replays, would disagree."),
					 errhint("Drop the aggregation, change the function, then create the aggregation again; or create the new function under another name.")));
	}
}
