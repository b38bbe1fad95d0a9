/*-------------------------------------------------------------------------
 *
 * keytypes.c
 *	  Types used in aggregations' keys that a command would change.  See
 *	  keytypes.h.
 *
 * A composite value's hash covers every attribute of its type's current
 * row type (hash_record), so ALTER TYPE ... ADD or DROP ATTRIBUTE changes
 * the hash of every value already aggregated: new rows of a key would miss
 * its entry and start a second one, and checkpointed keys (stored with
 * their key group and hash) would no longer be found or would look
 * corrupted.  So a command that changes the attributes of a composite type
 * (or of a table's row type) is refused while an aggregation of the
 * database has that type in a key, directly or inside an array, a range, a
 * domain or another composite.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "miscadmin.h"
#include "parser/parse_agg.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "catalog.h"
#include "keytypes.h"

/* Whether type t is `target` or holds it (nested at most `depth` deep). */
static bool
KsTypeHolds(Oid t, Oid target, int depth)
{
	Oid			elem;
	Oid			relid;

	if (t == target)
		return true;
	if (depth <= 0 || !OidIsValid(t))
		return false;
	t = getBaseType(t);
	if (t == target)
		return true;
	if (OidIsValid(elem = get_element_type(t)))
		return KsTypeHolds(elem, target, depth - 1);
	if (type_is_range(t))
		return KsTypeHolds(get_range_subtype(t), target, depth - 1);
	if (type_is_multirange(t))
		return KsTypeHolds(get_multirange_range(t), target, depth - 1);
	if (OidIsValid(relid = typeidTypeRelid(t)))
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(t, -1);
		bool		holds = false;
		int			i;

		for (i = 0; i < desc->natts && !holds; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				holds = KsTypeHolds(TupleDescAttr(desc, i)->atttypid, target, depth - 1);
		ReleaseTupleDesc(desc);
		return holds;
	}
	return false;
}

/* The transition type an aggregate call has now (resolved if polymorphic), or InvalidOid. */
static Oid
KsAggrefTransType(Aggref *aggref)
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	Oid			transtype;
	Oid			inputs[FUNC_MAX_ARGS];
	int			n = 0;
	ListCell   *lc;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	transtype = ((Form_pg_aggregate) GETSTRUCT(tup))->aggtranstype;
	ReleaseSysCache(tup);
	foreach(lc, aggref->aggargtypes)
		if (n < FUNC_MAX_ARGS)
			inputs[n++] = lfirst_oid(lc);
	return resolve_aggregate_transtype(aggref->aggfnoid, transtype, inputs, n);
}

/* Collect the Aggrefs of an expression (none nest: GROUP BY forbids it). */
static bool
KsCollectAggrefs(Node *node, List **aggrefs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		*aggrefs = lappend(*aggrefs, node);
		return false;
	}
	return expression_tree_walker(node, KsCollectAggrefs, aggrefs);
}

/*
 * Whether an aggregation's query stores values of type `target` (see
 * keytypes.h): in a key (`keys`), or else in a column of its view, an
 * argument of an aggregate (replayed inputs) or a transition state.
 */
static bool
KsQueryStoresType(Query *query, Oid target, bool keys)
{
	List	   *aggrefs = NIL;
	ListCell   *lc;

	/* the GROUP BY expressions' types: no analysis, no user code */
	if (keys)
	{
		foreach(lc, query->groupClause)
		{
			TargetEntry *tle = get_sortgroupclause_tle(lfirst(lc), query->targetList);

			if (KsTypeHolds(exprType((Node *) tle->expr), target, 8))
				return true;
		}
		return false;
	}
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (!tle->resjunk && KsTypeHolds(exprType((Node *) tle->expr), target, 8))
			return true;
	}
	(void) KsCollectAggrefs((Node *) query->targetList, &aggrefs);
	(void) KsCollectAggrefs(query->havingQual, &aggrefs);
	foreach(lc, aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);
		ListCell   *ac;

		if (KsTypeHolds(KsAggrefTransType(aggref), target, 8))
			return true;
		foreach(ac, aggref->args)
			if (KsTypeHolds(exprType((Node *) ((TargetEntry *) lfirst(ac))->expr), target, 8))
				return true;
	}
	return false;
}

/* The aggregation storing type `target` (in a key: `keys`), by name; NULL if none. */
static char *
KsAggregationStoring(Oid target, bool keys)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate key types",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	KsCatalogAccess acc;
	List	   *defs;
	ListCell   *lc;
	char	   *found = NULL;

	KsCatalogOpen(&acc);
	defs = KsLoadDefinitions(cxt, false);
	KsCatalogClose(&acc);
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);

		if (KsQueryStoresType((Query *) stringToNode(def->query_tree), target, keys))
		{
			found = KsAggName(def->view_oid);
			break;
		}
	}
	MemoryContextSwitchTo(oldcxt);
	if (found != NULL)
		found = pstrdup(found);
	MemoryContextDelete(cxt);
	return found;
}

/* Refuse changing the attributes of a type an aggregation's key holds (see keytypes.h). */
void
KsBeforeAlterType(AlterTableStmt *stmt)
{
	ListCell   *lc;
	Oid			relid;
	Oid			typid;
	char	   *aggname;
	bool		layout = false; /* an attribute's type changes */
	bool		attributes = false; /* ... or attributes come or go */

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		layout |= cmd->subtype == AT_AlterColumnType;
		attributes |= cmd->subtype == AT_AddColumn || cmd->subtype == AT_DropColumn;
	}
	if ((!layout && !attributes) || !OidIsValid(get_extension_oid("keyedstate", true)) ||
		KsCatalogInserting())
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	/* one who may not change it meets PostgreSQL's own error, and learns nothing */
	if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
		return;
	typid = get_rel_type_id(relid);
	if (!OidIsValid(typid))
		return;
	if ((aggname = KsAggregationStoring(typid, true)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot change the attributes of type %s because aggregation %s groups by it",
						format_type_be(typid), aggname),
				 errdetail("A composite value's hash covers every attribute, so the keys already aggregated would no longer be found."),
				 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
	/* stored values read with attributes added or dropped are still whole */
	if (!layout || (aggname = KsAggregationStoring(typid, false)) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot change the type of an attribute of type %s because aggregation %s stores values of it",
					format_type_be(typid), aggname),
			 errdetail("Its checkpoints and published rows hold values of the type as it is laid out now, which a change would make unreadable."),
			 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
}

/*
 * The aggregates the aggregations of the database call, with their
 * transition type and serialization functions now (see keytypes.h).
 */
List *
KsBeforeReplaceAggregate(DefineStmt *stmt)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate aggregates",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt;
	KsCatalogAccess acc;
	List	   *defs;
	List	   *used = NIL;
	ListCell   *lc;

	if (stmt->kind != OBJECT_AGGREGATE || !stmt->replace ||
		!OidIsValid(get_extension_oid("keyedstate", true)))
		return NIL;
	oldcxt = MemoryContextSwitchTo(cxt);
	KsCatalogOpen(&acc);
	defs = KsLoadDefinitions(cxt, false);
	KsCatalogClose(&acc);
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		Query	   *query = (Query *) stringToNode(def->query_tree);
		List	   *aggrefs = NIL;
		ListCell   *ac;

		(void) KsCollectAggrefs((Node *) query->targetList, &aggrefs);
		(void) KsCollectAggrefs(query->havingQual, &aggrefs);
		foreach(ac, aggrefs)
		{
			KsUsedAggregate *u = palloc0(sizeof(KsUsedAggregate));
			HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(((Aggref *) lfirst(ac))->aggfnoid));

			if (!HeapTupleIsValid(tup))
				continue;
			u->aggfnoid = ((Aggref *) lfirst(ac))->aggfnoid;
			u->form = *(Form_pg_aggregate) GETSTRUCT(tup);
			u->aggname = KsAggName(def->view_oid);
			ReleaseSysCache(tup);
			used = lappend(used, u);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return used;
}

/* After CREATE OR REPLACE AGGREGATE: refuse a changed state type (see keytypes.h). */
void
KsAfterReplaceAggregate(List *used)
{
	ListCell   *lc;

	foreach(lc, used)
	{
		KsUsedAggregate *u = lfirst(lc);
		HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(u->aggfnoid));
		Form_pg_aggregate now;
		bool		same;

		if (!HeapTupleIsValid(tup))
			continue;
		now = (Form_pg_aggregate) GETSTRUCT(tup);
		same = now->aggtranstype == u->form.aggtranstype &&
			now->aggserialfn == u->form.aggserialfn &&
			now->aggdeserialfn == u->form.aggdeserialfn;
		ReleaseSysCache(tup);
		if (!same)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the state type of aggregate %s because aggregation %s uses it",
							format_procedure(u->aggfnoid), u->aggname),
					 errdetail("The aggregation's checkpoints hold the aggregate's transition states as they are now, which another state type or serialization would misread."),
					 errhint("Drop the aggregation, replace the aggregate, then create the aggregation again; or create the new aggregate under another name.")));
	}
}
