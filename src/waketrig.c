/*-------------------------------------------------------------------------
 *
 * waketrig.c
 *	  The wake-up triggers of sources and their partitions.  See hooks.h.
 *
 * Every table an aggregation reads rows from carries its statement
 * trigger keyedstate.wake('<aggregation id>') (hooks.c), which takes the
 * table's writer mark (writers.c) and flags the inserting transaction so
 * that the aggregation's worker is woken at its commit.  The id is the trigger's argument, which ALTER TRIGGER cannot
 * change (its name can be), and only keyedstate may create a trigger on
 * keyedstate.wake(): PUBLIC cannot execute it.  So a trigger is found by
 * its function and argument, never by its name.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "catalog.h"
#include "hooks.h"
#include "source.h"

static ExecutorCheckPerms_hook_type prev_wake_check_perms = NULL;

/* ExecutorCheckPerms_hook: the partitioned tables inserted into (see hooks.h, source.h). */
static bool
KsWakeCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	ListCell   *lc;

	if (prev_wake_check_perms && !prev_wake_check_perms(rangeTable, ereport_on_violation))
		return false;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

		if (KsInsertsIntoPartitioned(rte))
		{
			KsRefuseConsumedOffsetsBelow(rte->relid);
			KsWakeBelowAtCommit(rte->relid);
		}
	}
	return true;
}

/* Install the hook (see hooks.h). */
void
KsWakeHooksInit(void)
{
	prev_wake_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = KsWakeCheckPerms;
}

/* The CREATE TRIGGER of aggregation aggid's wake-up trigger on table relid. */
char *
KsWakeTriggerSql(int32 aggid, Oid relid)
{
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											   get_rel_name(relid));
	const char *name = quote_identifier(psprintf(KS_WAKE_TRIGGER_FMT, aggid));

	/* ALWAYS: also under session_replication_role = replica (writers.c) */
	return psprintf("CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH STATEMENT "
					"EXECUTE FUNCTION keyedstate.wake('%d'); "
					"ALTER TABLE %s ENABLE ALWAYS TRIGGER %s",
					name, table, aggid, table, name);
}

/* Find a wake-up trigger by its function and argument (see hooks.h). */
Oid
KsWakeTriggerOid(Oid relid, int32 aggid)
{
	Oid			wake = KsTriggerFunctionOid("wake");
	Relation	trigrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			found = InvalidOid;

	if (!OidIsValid(wake))
		return InvalidOid;
	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!OidIsValid(found) && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		if (trig->tgfoid == wake &&
			KsWakeTriggerAggregation(tup, RelationGetDescr(trigrel)) == aggid)
			found = trig->oid;
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	return found;
}

/*
 * After ALTER TABLE ... ENABLE TRIGGER (a name, ALL or USER) of table
 * relid: its wake-up triggers it set to fire on ORIGIN fire ALWAYS again.
 * Only then does every writer take the mark, under session_replication_role
 * = replica too; otherwise the frontier waits for every holder of the
 * table's lock, which any role naming the table can take (writers.c).  The
 * owner's DISABLE and ENABLE REPLICA are kept: the frontier then waits for
 * every holder of the lock, exact as ever.
 */
void
KsWakeTriggersKeepAlways(Oid relid)
{
	Oid			wake = KsTriggerFunctionOid("wake");
	Relation	rel;
	Relation	trigrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *names = NIL;
	ListCell   *lc;

	if (!OidIsValid(wake))
		return;
	/* (what the command changed, seen) */
	CommandCounterIncrement();
	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		if (trig->tgfoid == wake && trig->tgenabled == TRIGGER_FIRES_ON_ORIGIN)
			names = lappend(names, pstrdup(NameStr(trig->tgname)));
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	if (names == NIL)
		return;
	/* (the command holds the table: ENABLE TRIGGER takes ShareRowExclusiveLock) */
	rel = table_open(relid, ShareRowExclusiveLock);
	foreach(lc, names)
		EnableDisableTrigger(rel, lfirst(lc), TRIGGER_FIRES_ALWAYS, false, ShareRowExclusiveLock);
	table_close(rel, NoLock);
	list_free_deep(names);
}

/*
 * Give every table of a partition tree (relid and all its descendants) the
 * wake-up trigger of aggregation aggid, where it has none: a statement
 * trigger of the partitioned table does not fire for rows inserted straight
 * into a partition, and a row trigger (which PostgreSQL would clone into
 * partitions) would cost every inserted row, and COPY its batching.  As the
 * bootstrap superuser, like the clones PostgreSQL makes of a parent's row
 * triggers without looking at the partitions' privileges.
 */
void
KsWakeTriggersAdd(int32 aggid, Oid relid)
{
	List	   *rels = find_all_inheritors(relid, ShareRowExclusiveLock, NULL);
	KsCatalogAccess acc;
	ListCell   *lc;

	KsCatalogOpen(&acc);
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		char		relkind = get_rel_relkind(rel);
		char	   *sql;

		if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
			OidIsValid(KsWakeTriggerOid(rel, aggid)))
			continue;
		sql = KsWakeTriggerSql(aggid, rel);
		if (SPI_execute(sql, false, 0) < 0)
			elog(ERROR, "keyedstate could not run \"%s\"", sql);
	}
	KsCatalogClose(&acc);
}

/* Remove aggregation aggid's wake-up trigger from every table of a tree. */
void
KsWakeTriggersDrop(int32 aggid, Oid relid)
{
	List	   *rels = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Oid			trig = KsWakeTriggerOid(lfirst_oid(lc), aggid);
		ObjectAddress addr;

		if (!OidIsValid(trig))
			continue;
		ObjectAddressSet(addr, TriggerRelationId, trig);
		performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	}
}
