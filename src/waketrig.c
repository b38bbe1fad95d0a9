/*-------------------------------------------------------------------------
 *
 * waketrig.c
 *	  The wake-up triggers of sources and their partitions.  See hooks.h.
 *
 * Every table an aggregation reads rows from carries its statement
 * trigger keyedstate.wake() (hooks.c), which flags the inserting
 * transaction so that the worker is woken at its commit.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "hooks.h"

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
	char	   *trigname = psprintf(KS_WAKE_TRIGGER_FMT, aggid);
	KsCatalogAccess acc;
	ListCell   *lc;

	KsCatalogOpen(&acc);
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);
		char		relkind = get_rel_relkind(rel);
		char	   *sql;

		if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
			OidIsValid(get_trigger_oid(rel, trigname, true)))
			continue;
		sql = psprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH STATEMENT "
					   "EXECUTE FUNCTION keyedstate.wake()",
					   quote_identifier(trigname),
					   quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
												  get_rel_name(rel)));
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
	char	   *trigname = psprintf(KS_WAKE_TRIGGER_FMT, aggid);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Oid			trig = get_trigger_oid(lfirst_oid(lc), trigname, true);
		ObjectAddress addr;

		if (!OidIsValid(trig))
			continue;
		ObjectAddressSet(addr, TriggerRelationId, trig);
		performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	}
}
