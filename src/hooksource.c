/*-------------------------------------------------------------------------
 *
 * hooksource.c
 *	  For the utility hook (hooks.c): which aggregations read a table a
 *	  command changes, and the check that a command dropping indexes (DROP
 *	  INDEX, ALTER TABLE ... DROP CONSTRAINT) leaves every source's offset
 *	  column an index to be read by.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "commands/extension.h"
#include "nodes/parsenodes.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "hooks.h"
#include "source.h"

/*
 * The aggregations whose source is one of relids (a partition's parent
 * and its ancestors), or all of them if `all`, in the statement's memory;
 * NIL where keyedstate is not installed.
 */
List *
KsAggregationsOf(List *relids, bool all)
{
	MemoryContext cxt = CurrentMemoryContext;
	KsCatalogAccess acc;
	List	   *defs;
	List	   *result = NIL;
	ListCell   *lc;

	if (!OidIsValid(get_extension_oid("keyedstate", true)) || KsCatalogInserting())
		return NIL;
	KsCatalogOpen(&acc);
	defs = KsLoadDefinitions(cxt, false);
	KsCatalogClose(&acc);
	foreach(lc, defs)
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);

		if (all || list_member_oid(relids, def->source_oid))
			result = lappend(result, def);
	}
	return result;
}

/* A table and the tables it is a partition of, nearest first. */
List *
KsSelfAndAncestors(Oid relid)
{
	List	   *rels = list_make1_oid(relid);

	if (get_rel_relispartition(relid))
		rels = list_concat(rels, get_partition_ancestors(relid));
	return rels;
}


/*
 * The tables whose indexes a command may drop: the tables of the indexes a
 * DROP INDEX names (as found now; missing ones are the command's to
 * report), or the table of an ALTER TABLE dropping a constraint (a
 * primary key or unique constraint takes its index along).  NIL for other
 * commands.
 */
List *
KsTablesLosingIndexes(Node *parsetree)
{
	List	   *tables = NIL;
	ListCell   *lc;

	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_INDEX)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			Oid			indexoid = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)), NoLock, true);
			Oid			table = OidIsValid(indexoid) ? IndexGetRelation(indexoid, true) : InvalidOid;

			if (OidIsValid(table))
				tables = lappend_oid(tables, table);
		}
	}
	else if (IsA(parsetree, AlterTableStmt) && ((AlterTableStmt *) parsetree)->objtype == OBJECT_TABLE)
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		foreach(lc, stmt->cmds)
			if (((AlterTableCmd *) lfirst(lc))->subtype == AT_DropConstraint)
			{
				Oid			table = RangeVarGetRelid(stmt->relation, NoLock, true);

				if (OidIsValid(table))
					tables = lappend_oid(tables, table);
				break;
			}
	}
	return tables;
}

/* Context of the check below: which aggregation needed the index. */
static void
KsIndexKeptContext(void *arg)
{
	errcontext("keyedstate aggregation %s reads this table in the order of its offset column, by an index",
			   (const char *) arg);
}

/*
 * After a command that dropped indexes of tables: refuse it (the error
 * rolls it back) if an aggregation reading one of them, or a partitioned
 * table above it, is left without an index on its offset column; the
 * aggregation would otherwise fail at its next step (user review U26).
 */
void
KsCheckOffsetIndexesKept(List *tables)
{
	ListCell   *lc;

	foreach(lc, tables)
	{
		Oid			table = lfirst_oid(lc);
		ListCell   *alc;

		if (get_rel_relkind(table) == '\0')
			continue;			/* dropped along (DROP ... CASCADE) */
		foreach(alc, KsAggregationsOf(KsSelfAndAncestors(table), false))
		{
			KsAggDef   *def = (KsAggDef *) lfirst(alc);
			ErrorContextCallback errcb;

			errcb.callback = KsIndexKeptContext;
			errcb.arg = KsAggName(def->view_oid);
			errcb.previous = error_context_stack;
			error_context_stack = &errcb;
			KsSourceCheckLeaves(table, def->source_oid, def->offset_attnum, def->sequence_oid,
								(const char *) errcb.arg);
			error_context_stack = errcb.previous;
		}
	}
}
