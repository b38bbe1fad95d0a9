/*-------------------------------------------------------------------------
 *
 * hookoffsets.c
 *	  For the utility hook (hooks.c), after a command on a table or a
 *	  sequence: the refusal of one that would change where a source's rows
 *	  get their offsets, or which rows it holds.
 *
 * Every table of a source's tree (its partitions, and the ancestors of a
 * source that is a partition, since rows inserted through a table get its
 * default) fills the offset column from the sequence the aggregation
 * follows, or not at all (sourcedefaults.c).  These commands changed that
 * and ran: the worker's check failed the aggregation at its next step,
 * and the rows written meanwhile, with offsets below the consumed one,
 * were lost for good once the default was put back and the aggregation
 * resumed (review sources 67, F1, F2).  Each is now checked once it ran,
 * in its transaction, so that the error rolls it back:
 *
 *	- ATTACH PARTITION of a table holding a source (or the source itself)
 *	  under a parent: the source has new ancestors, whose defaults rows
 *	  inserted through them get;
 *	- ALTER COLUMN ... SET or DROP DEFAULT, and the identity subcommands,
 *	  of the offset column of any table of a source's tree;
 *	- SET UNLOGGED of the sequence an aggregation follows: a crash sets an
 *	  unlogged sequence back, and every writer of the source is refused
 *	  until it is set forward by hand (F3);
 *	- INHERIT of a source, and CREATE TABLE ... INHERITS (source): an
 *	  aggregation cannot read a source with inheritance children, and
 *	  failed at its next step (F4).
 *
 * The worker's checks stay as they were, for what no command changes
 * (a catalog edited by hand).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "nodes/parsenodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "catalog.h"
#include "hooks.h"
#include "source.h"

/* Error context of the checks below: the aggregation that refuses the command. */
static void
KsSourceTreeContext(void *arg)
{
	errcontext("keyedstate aggregation %s consumes this table's rows in the order of their offsets",
			   (const char *) arg);
}

/*
 * Check the offset defaults of every table of the trees of `aggs`' sources,
 * their own too; column: the offset column's name a command changed, or
 * NULL for any change.  (The checks' errors without the aggregation's
 * name: theirs would say to resume it, and this one never stops.)
 */
static void
KsCheckSourceTrees(List *aggs, const char *column)
{
	ListCell   *lc;

	foreach(lc, aggs)
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);
		char	   *attname = get_attname(def->source_oid, def->offset_attnum, true);
		ErrorContextCallback context;
		Relation	rel;

		if (attname == NULL || (column != NULL && strcmp(column, attname) != 0))
			continue;
		rel = try_table_open(def->source_oid, AccessShareLock);
		if (rel == NULL)
			continue;
		context.callback = KsSourceTreeContext;
		context.arg = KsAggName(def->view_oid);
		context.previous = error_context_stack;
		error_context_stack = &context;
		KsSourceCheckOwnDefault(rel, def->offset_attnum, def->sequence_oid, NULL);
		table_close(rel, AccessShareLock);
		(void) KsSourceCheckDefaults(def->source_oid, def->source_oid, def->offset_attnum,
									 def->sequence_oid, NULL, true);
		error_context_stack = context.previous;
	}
}

/* The aggregations whose source is relid, one of its ancestors or a table below it. */
static List *
KsAggregationsAround(Oid relid)
{
	return KsAggregationsOf(list_concat(KsSelfAndAncestors(relid),
										find_all_inheritors(relid, NoLock, NULL)));
}

/* Refuse SET UNLOGGED of a sequence an aggregation follows. */
static void
KsRefuseUnloggedSequence(Oid seqoid)
{
	List	   *aggs = KsAggregationsFollowing(seqoid);

	if (aggs != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot make sequence \"%s\" unlogged", get_rel_name(seqoid)),
				 errdetail("Aggregation %s follows the offsets it hands out, and a crash would set an unlogged sequence back.",
						   KsAggName(((KsAggDef *) linitial(aggs))->view_oid))));
}

/*
 * Refuse table child inheriting from a source (see the banner); not when it
 * does not (CREATE TABLE IF NOT EXISTS of a table that was there).
 */
static void
KsRefuseInheritFrom(RangeVar *child_rv, RangeVar *parent_rv)
{
	Oid			child = RangeVarGetRelid(child_rv, NoLock, true);
	Oid			parent = RangeVarGetRelid(parent_rv, NoLock, true);
	List	   *aggs;

	if (!OidIsValid(parent) || !OidIsValid(child) ||
		!list_member_oid(find_inheritance_children(parent, NoLock), child))
		return;
	aggs = KsAggregationsOf(list_make1_oid(parent));
	if (aggs != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot inherit from table \"%s\"", get_rel_name(parent)),
				 errdetail("Aggregation %s consumes it, and keyedstate does not read inheritance children.",
						   KsAggName(((KsAggDef *) linitial(aggs))->view_oid))));
}

/* After ALTER TABLE (or SEQUENCE) and CREATE TABLE: the checks of the banner, and the partition trees' triggers. */
void
KsAfterTableCommand(Node *parsetree)
{
	AlterTableStmt *stmt;
	Oid			relid;
	ListCell   *lc;

	if (IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt))
	{
		CreateStmt *create = IsA(parsetree, CreateStmt) ? (CreateStmt *) parsetree :
			&((CreateForeignTableStmt *) parsetree)->base;

		/* (a partition's parent is in inhRelations too: hookpartitions.c) */
		if (create->partbound == NULL)
			foreach(lc, create->inhRelations)
				KsRefuseInheritFrom(create->relation, (RangeVar *) lfirst(lc));
		return;
	}
	if (!IsA(parsetree, AlterTableStmt))
		return;
	stmt = (AlterTableStmt *) parsetree;
	if (stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_SEQUENCE)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	if (get_rel_relkind(relid) == RELKIND_SEQUENCE)
	{
		foreach(lc, stmt->cmds)
			if (((AlterTableCmd *) lfirst(lc))->subtype == AT_SetUnLogged)
				KsRefuseUnloggedSequence(relid);
		return;
	}
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_AttachPartition:
			case AT_DetachPartition:
				{
					Oid			part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);

					KsAfterPartitionChange(relid, part, cmd->subtype == AT_AttachPartition);
					/* sources in part's tree have new ancestors */
					if (cmd->subtype == AT_AttachPartition && OidIsValid(part))
						KsCheckSourceTrees(KsAggregationsOf(find_all_inheritors(part, NoLock, NULL)), NULL);
					break;
				}
			case AT_ColumnDefault:
			case AT_AddIdentity:
			case AT_SetIdentity:
			case AT_DropIdentity:
				KsCheckSourceTrees(KsAggregationsAround(relid), cmd->name);
				break;
			case AT_AddInherit:
				KsRefuseInheritFrom(stmt->relation, (RangeVar *) cmd->def);
				break;
			case AT_EnableTrig:
			case AT_EnableTrigAll:
			case AT_EnableTrigUser:
				KsWakeTriggersKeepAlways(relid);
				break;
			default:
				break;
		}
	}
}
