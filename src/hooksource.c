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
#include "catalog/pg_inherits.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "hooks.h"
#include "keytypes.h"
#include "rowerror.h"
#include "source.h"

/*
 * The aggregations whose source (or, with `sequence`, whose sequence) is
 * one of relids, in the statement's memory; NIL where keyedstate is
 * not installed.  Their sources are looked for first, by OID: a command
 * on a table no aggregation reads loads no definition (every owner's
 * query tree was read for any role's TRUNCATE: security review 20, F3).
 */
static List *
KsAggregationsBy(List *relids, bool sequence)
{
	MemoryContext cxt = CurrentMemoryContext;
	KsCatalogAccess acc;
	List	   *defs = NIL;
	List	   *result = NIL;
	ListCell   *lc;
	Datum	   *oids;
	Datum		arg;
	Oid			argtype = OIDARRAYOID;
	int			n = 0;

	if (relids == NIL || !KsInstalled() || KsCatalogInserting())
		return NIL;
	oids = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	arg = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	KsCatalogOpen(&acc);
	if (SPI_execute_with_args(sequence ?
							  "SELECT FROM keyedstate_internal.aggregation a "
							  "WHERE a.sequence::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1" :
							  "SELECT FROM keyedstate_internal.aggregation a "
							  "WHERE a.source::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate_internal.aggregation");
	if (SPI_processed > 0)
		defs = KsLoadDefinitions(cxt, false);
	KsCatalogClose(&acc);
	foreach(lc, defs)
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);

		if (list_member_oid(relids, sequence ? def->sequence_oid : def->source_oid))
			result = lappend(result, def);
	}
	return result;
}

/* The aggregations whose source is one of relids (see hooks.h). */
List *
KsAggregationsOf(List *relids)
{
	return KsAggregationsBy(relids, false);
}

/* The aggregations following a sequence's offsets (see hooks.h). */
List *
KsAggregationsFollowing(Oid seqoid)
{
	return KsAggregationsBy(list_make1_oid(seqoid), true);
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


/* Context of the check below: which aggregation needed the index. */
static void
KsIndexKeptContext(void *arg)
{
	errcontext("keyedstate aggregation %s reads this table in the order of its offset column, by an index",
			   (const char *) arg);
}

/*
 * Check that every aggregation of the current user's (one she has the
 * privileges of) reading a table, a partitioned table above it or a
 * partition below it has an index on its offset column in each of the
 * leaves that table holds; raise the leaf check's error if not.
 */
static void
KsCheckIndexesOf(void *arg)
{
	Oid			table = *(Oid *) arg;
	List	   *below = find_all_inheritors(table, NoLock, NULL);
	ListCell   *lc;

	foreach(lc, KsAggregationsOf(list_concat(KsSelfAndAncestors(table), below)))
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);
		ErrorContextCallback errcb;

		if (!has_privs_of_role(GetUserId(), KsRelationOwner(def->view_oid)))
			continue;
		errcb.callback = KsIndexKeptContext;
		errcb.arg = KsAggName(def->view_oid);
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		/* the leaves of the table, or of the source if it lies below */
		KsSourceCheckLeaves(list_member_oid(below, def->source_oid) && def->source_oid != table ?
							def->source_oid : table,
							def->source_oid, def->offset_attnum, def->sequence_oid,
							(const char *) errcb.arg, true);
		error_context_stack = errcb.previous;
	}
}

/*
 * The tables whose indexes a command may drop, and whose aggregations'
 * offset columns have an index now: the tables of the indexes a DROP
 * INDEX names (as found now; missing ones are the command's to report),
 * or the table of an ALTER TABLE dropping a constraint (a primary key or
 * unique constraint takes its index along).  NIL for other commands.  A
 * table already without one (after a DROP INDEX CONCURRENTLY) is left
 * out: the command is not what took it.
 */
List *
KsTablesLosingIndexes(Node *parsetree)
{
	List	   *tables = NIL;
	List	   *kept = NIL;
	ListCell   *lc;

	/*
	 * DROP INDEX CONCURRENTLY has committed the drop before the check could
	 * refuse it: not checked (the aggregation fails at its next step)
	 */
	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_INDEX &&
		!((DropStmt *) parsetree)->concurrent)
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
	foreach(lc, tables)
	{
		Oid			table = lfirst_oid(lc);
		ErrorData  *edata = KsCallInSubtransaction(KsCheckIndexesOf, &table, false);

		if (edata == NULL)
			kept = lappend_oid(kept, table);
		else
			FreeErrorData(edata);
	}
	return kept;
}

/*
 * After a command that dropped indexes of tables: refuse it (the error
 * rolls it back) if an aggregation of the current user's reading one of
 * them (see KsCheckIndexesOf) is left without an index on its offset
 * column; the aggregation would otherwise fail at its next step (user
 * review U26).  Another role's aggregation over her table does not stop
 * her: as a view over it would not, in PostgreSQL; that aggregation fails,
 * naming the missing index.
 */
void
KsCheckOffsetIndexesKept(List *tables)
{
	ListCell   *lc;

	foreach(lc, tables)
	{
		Oid			table = lfirst_oid(lc);

		if (get_rel_relkind(table) != '\0')	/* not dropped along */
			KsCheckIndexesOf(&table);
	}
}

/*
 * SET UNLOGGED of a table an aggregation reads (a source or a partition of
 * one): a crash would empty it, and the state would keep its rows.
 */
void
KsBeforeSetUnlogged(RangeVar *rv)
{
	Oid			relid = KsLockNamedRelation(rv, AccessExclusiveLock);
	List	   *aggs;

	if (!OidIsValid(relid))
		return;
	aggs = KsAggregationsOf(KsSelfAndAncestors(relid));
	if (aggs != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot make table \"%s\" unlogged", get_rel_name(relid)),
				 errdetail("Aggregation %s consumes it, and a crash would empty an unlogged table but not the state of its rows.",
						   KsAggName(((KsAggDef *) linitial(aggs))->view_oid))));
}
