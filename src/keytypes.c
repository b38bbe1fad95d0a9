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
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
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

/* The aggregation whose key holds type `target`, by name; NULL if none. */
static char *
KsAggregationKeyedBy(Oid target)
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
		Query	   *query = (Query *) stringToNode(def->query_tree);
		ListCell   *gc;

		/* the GROUP BY expressions' types: no analysis, no user code */
		foreach(gc, query->groupClause)
		{
			TargetEntry *tle = get_sortgroupclause_tle(lfirst(gc), query->targetList);

			if (KsTypeHolds(exprType((Node *) tle->expr), target, 8))
				found = KsAggName(def->view_oid);
		}
		if (found != NULL)
			break;
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

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (cmd->subtype == AT_AddColumn || cmd->subtype == AT_DropColumn ||
			cmd->subtype == AT_AlterColumnType)
			break;
	}
	if (lc == NULL || !OidIsValid(get_extension_oid("keyedstate", true)) || KsCatalogInserting())
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	/* one who may not change it meets PostgreSQL's own error, and learns nothing */
	if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
		return;
	typid = get_rel_type_id(relid);
	if (!OidIsValid(typid) || (aggname = KsAggregationKeyedBy(typid)) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot change the attributes of type %s because aggregation %s groups by it",
					format_type_be(typid), aggname),
			 errdetail("A composite value's hash covers every attribute, so the keys already aggregated would no longer be found."),
			 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
}
