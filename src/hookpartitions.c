/*-------------------------------------------------------------------------
 *
 * hookpartitions.c
 *	  For the utility hook (hooks.c): the guards of sources' partition
 *	  trees.  DROP TABLE, TRUNCATE, ATTACH and DETACH PARTITION of tables in
 *	  a source's tree are checked before they run (what would lose or skip
 *	  rows is refused: source.h says what and why), and a partition added
 *	  to or detached from a tree gets or loses its wake-up triggers after.
 *	  keyedstate's own tables refuse a TRUNCATE, and .cold a DELETE or an
 *	  INSERT, that would lose keys or count them twice.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "executor/tuptable.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "checkpoint.h"
#include "hooks.h"
#include "settings.h"
#include "source.h"

/*
 * Whether the current user may run the command on a table at all.  Checked
 * before anything is locked or read, as PostgreSQL does: a user who may
 * not would otherwise queue an exclusive lock on someone else's table, or
 * learn about its aggregations.  Without the right, the command itself
 * fails with PostgreSQL's own error.
 */
static bool
KsMayChange(Oid relid, const char *what)
{
	if (strcmp(what, "truncate") == 0)
		return pg_class_aclcheck(relid, GetUserId(), ACL_TRUNCATE) == ACLCHECK_OK;
	if (strcmp(what, "drop") == 0 &&
		pg_namespace_ownercheck(get_rel_namespace(relid), GetUserId()))
		return true;
	return pg_class_ownercheck(relid, GetUserId());
}

/*
 * Lock the partitions below a partitioned table (locked already), as
 * DROP, TRUNCATE and ATTACH PARTITION do, before a check reads their rows:
 * a writer into a leaf locks the leaf alone, and its row, not yet
 * committed, would be missed by the check and then committed before the
 * command took the leaf's lock (security review 15).
 */
static void
KsLockPartitionsBelow(Oid relid, LOCKMODE mode)
{
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		list_free(find_all_inheritors(relid, mode, NULL));
}

/*
 * Lock the default partition of parent (if it has one, other than part),
 * as ATTACH and DETACH PARTITION do before they lock the partition: taken
 * after it, a writer holding the default partition and then inserting into
 * the partition deadlocked (re-review 10).
 */
static void
KsLockDefaultPartition(Oid parent, Oid part)
{
	Oid			defpart = get_default_partition_oid(parent);

	if (OidIsValid(defpart) && defpart != part)
		LockRelationOid(defpart, AccessExclusiveLock);
}

/*
 * DROP TABLE, TRUNCATE or DETACH PARTITION of a partition of a source:
 * lock it as the command will, then refuse if it holds rows not yet
 * checkpointed (source.h).  parent is locked first, as the command does.
 */
static void
KsBeforeRemovePartition(Oid relid, LOCKMODE parentlock, const char *what, DropBehavior behavior)
{
	List	   *aggs;
	ListCell   *lc;

	if (!OidIsValid(relid) || !get_rel_relispartition(relid) || !KsMayChange(relid, what))
		return;
	aggs = KsAggregationsOf(get_partition_ancestors(relid));
	if (aggs != NIL)
	{
		bool		detach = strcmp(what, "detach") == 0;

		if (parentlock != NoLock)
			LockRelationOid(get_partition_parent(relid, true), parentlock);
		/* DETACH locks the parent's default partition before the partition */
		if (detach)
			KsLockDefaultPartition(get_partition_parent(relid, true), relid);
		LockRelationOid(relid, AccessExclusiveLock);
		/* (DETACH locks no partition below: its writers' rows leave with it) */
		if (!detach)
			KsLockPartitionsBelow(relid, AccessExclusiveLock);
	}
	foreach(lc, aggs)
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);

		/*
		 * CASCADE drops an aggregation that has not checkpointed the rows
		 * (paused, failed, lagging, another role's), as it drops a foreign key
		 * referencing the table: nobody else's aggregation keeps the owner of
		 * a partition from dropping it (TRUNCATE ... CASCADE cascades to
		 * tables that reference it, and is refused)
		 */
		if (KsSourceCheckRemove(relid, def->source_oid, def->offset_attnum, def->checkpointed_offset,
								what, KsAggName(def->view_oid),
								behavior == DROP_CASCADE && strcmp(what, "drop") == 0))
		{
			ObjectAddress addr;

			ereport(NOTICE,
					(errmsg("drop cascades to aggregation %s", KsAggName(def->view_oid))));
			ObjectAddressSet(addr, RelationRelationId, def->view_oid);
			performDeletion(&addr, DROP_CASCADE, PERFORM_DELETION_INTERNAL);
			KsForgetAggregation(def->id, false);
		}
	}
}

/*
 * Before a table is attached to parent: a source in its tree would route
 * rows inserted through parent or its ancestors, so none of them may be a
 * table a subscription replicates into (review 16: the aggregation failed
 * at its next load instead).
 */
static void
KsCheckNewAncestors(Oid part, Oid parent)
{
	List	   *aggs = KsAggregationsOf(find_all_inheritors(part, NoLock, NULL));
	ListCell   *lc;

	if (aggs == NIL)
		return;
	foreach(lc, KsSelfAndAncestors(parent))
		if (KsTableIsSubscribed(lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot attach table \"%s\" as a partition of \"%s\"",
							get_rel_name(part), get_rel_name(parent)),
					 errdetail("A subscription replicates into table \"%s\": logical replication would route rows with the publisher's offsets into the source of aggregation %s, which would never read them.",
							   get_rel_name(lfirst_oid(lc)),
							   KsAggName(((KsAggDef *) linitial(aggs))->view_oid)),
					 errhint("Aggregate the table on the publisher.")));
}

/*
 * keyedstate's own table a command names (keyedstate_internal.state,
 * .cold, .aggregation, .part), or InvalidOid; never one while the
 * extension's own scripts run, or a binary upgrade.
 */
static Oid
KsOwnTableNamed(RangeVar *rv)
{
	Oid			relid;
	Oid			ns;

	if (rv == NULL || creating_extension || IsBinaryUpgrade ||
		!OidIsValid(ns = get_namespace_oid(KS_DATA_SCHEMA, true)) ||
		!OidIsValid(relid = RangeVarGetRelid(rv, NoLock, true)) ||
		get_rel_namespace(relid) != ns || get_rel_relkind(relid) != RELKIND_RELATION)
		return InvalidOid;
	return relid;
}

/* Refuse a command on keyedstate's own table relid (see hooks.h). */
static void
KsRefuseOwnTable(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot alter %s.%s this way", KS_DATA_SCHEMA, get_rel_name(relid)),
			 errdetail("keyedstate reads and writes its tables by their names and columns, and their rows must survive a crash: only their storage settings may change (SET (...), SET TABLESPACE, CLUSTER ON, SET STATISTICS, a column's storage and options, triggers enabled or disabled).")));
}

/*
 * keyedstate's own tables keep their names, columns and logging: the worker
 * reads and writes them by column number and type, and relies on their
 * rows surviving a crash.  A column added to keyedstate_internal.cold
 * crashed the worker at its first eviction, every time, restarting the
 * server; SET UNLOGGED emptied it at the next crash, losing every evicted
 * key; a copy renamed into its place restarted the keys it lacked (review
 * robustness4, F4, F5, F1).  Only what changes storage goes through
 * (reloptions, tablespace, clustering, statistics, column storage and
 * options), and enabling or disabling triggers (a data-only restore).
 */
void
KsBeforeChangeOwnTables(Node *parsetree)
{
	Oid			relid;
	ListCell   *lc;

	if (IsA(parsetree, RenameStmt) &&
		(((RenameStmt *) parsetree)->renameType == OBJECT_TABLE ||
		 ((RenameStmt *) parsetree)->renameType == OBJECT_COLUMN) &&
		OidIsValid(relid = KsOwnTableNamed(((RenameStmt *) parsetree)->relation)))
		KsRefuseOwnTable(relid);
	if (IsA(parsetree, AlterObjectSchemaStmt) &&
		((AlterObjectSchemaStmt *) parsetree)->objectType == OBJECT_TABLE &&
		OidIsValid(relid = KsOwnTableNamed(((AlterObjectSchemaStmt *) parsetree)->relation)))
		KsRefuseOwnTable(relid);
	if (!IsA(parsetree, AlterTableStmt) ||
		!OidIsValid(relid = KsOwnTableNamed(((AlterTableStmt *) parsetree)->relation)))
		return;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		switch (((AlterTableCmd *) lfirst(lc))->subtype)
		{
			case AT_SetRelOptions:
			case AT_ResetRelOptions:
			case AT_SetTableSpace:
			case AT_ClusterOn:
			case AT_DropCluster:
			case AT_SetStatistics:
			case AT_SetOptions:
			case AT_ResetOptions:
			case AT_SetStorage:
			case AT_SetCompression:
				/* pg_restore --disable-triggers of keyedstate_internal.aggregation's rows */
			case AT_EnableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				continue;
			default:
				KsRefuseOwnTable(relid);
		}
	}
}

/* ATTACH and DETACH PARTITION under a source (see source.h), SET UNLOGGED. */
void
KsBeforeAlterTable(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		PartitionCmd *pc;
		Oid			parent;
		Oid			part;

		if (cmd->subtype == AT_SetUnLogged)
			KsBeforeSetUnlogged(stmt->relation);
		if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition)
			continue;
		pc = (PartitionCmd *) cmd->def;
		parent = RangeVarGetRelid(stmt->relation, NoLock, true);
		part = RangeVarGetRelid(pc->name, NoLock, true);
		/* ATTACH and DETACH need both tables' ownership */
		if (!OidIsValid(parent) || !OidIsValid(part) ||
			!KsMayChange(parent, "alter") || !KsMayChange(part, "alter"))
			continue;
		if (cmd->subtype == AT_DetachPartition)
		{
			if (pc->concurrent && get_rel_relispartition(part))
			{
				if (KsAggregationsOf(get_partition_ancestors(part)) != NIL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot detach partition \"%s\" concurrently", get_rel_name(part)),
							 errdetail("keyedstate aggregations consume table \"%s\", and rows written into a partition during a concurrent detach could be lost.",
									   get_rel_name(parent)),
							 errhint("Use DETACH PARTITION without CONCURRENTLY.")));
			}
			else
				KsBeforeRemovePartition(part, AccessExclusiveLock, "detach", DROP_RESTRICT);
		}
		else
		{
			List	   *aggs = KsAggregationsOf(KsSelfAndAncestors(parent));
			ListCell   *alc;

			if (aggs != NIL)
			{
				/* the locks ATTACH PARTITION takes, in its order */
				LockRelationOid(parent, ShareUpdateExclusiveLock);
				KsLockDefaultPartition(parent, part);
				LockRelationOid(part, AccessExclusiveLock);
				KsLockPartitionsBelow(part, AccessExclusiveLock);
			}
			foreach(alc, aggs)
			{
				KsAggDef   *def = (KsAggDef *) lfirst(alc);

				KsSourceCheckAttach(part, parent, def->source_oid, def->offset_attnum,
									def->sequence_oid, KsAggName(def->view_oid));
			}
			/* sources in the attached tree gain ancestors, none subscribed (definition.h) */
			KsCheckNewAncestors(part, parent);
		}
	}
}

/* DROP TABLE of partitions of sources. */
void
KsBeforeDropTables(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));

		KsBeforeRemovePartition(RangeVarGetRelid(rv, NoLock, true), AccessExclusiveLock, "drop",
								stmt->behavior);
	}
}

/*
 * TRUNCATE of a source: refused naming the aggregations (the sources'
 * TRUNCATE triggers refuse it too, but their owner can disable or drop
 * those: newuser review 1, F4).  aggs: every aggregation of the database.
 */
static void
KsRefuseTruncateSource(Oid relid, List *aggs)
{
	StringInfoData names;
	ListCell   *lc;
	bool		others = false;

	initStringInfo(&names);
	foreach(lc, aggs)
	{
		KsAggDef   *def = lfirst(lc);

		if (def->source_oid == relid)
		{
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", KsAggName(def->view_oid));
			others = others || !pg_class_ownercheck(def->view_oid, GetUserId());
		}
	}
	/* another role's, which the caller cannot drop: say who can (security review 21, F3) */
	if (names.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot truncate table \"%s\" because keyedstate aggregations consume it",
						get_rel_name(relid)),
				 errdetail("Truncating would silently leave the state of %s without its input rows.", names.data),
				 others ?
				 errhint("Their owners can drop them with keyedstate.drop_aggregation(), as they would a foreign key referencing the table; DROP TABLE ... CASCADE drops them with the table.") :
				 errhint("Drop the aggregations with keyedstate.drop_aggregation() first.")));
}

/*
 * keyedstate_internal.state and .cold hold the only copy of checkpoints
 * and of evicted keys: a TRUNCATE of them while they have rows (a DBA
 * reclaiming space) would lose keys, silently for cold ones (review
 * robustness3, F1: the view lost every evicted key, still wrong after a
 * restart).  Refused; VACUUM FULL reclaims the space.  Named, as a role
 * may truncate it (else she fails on her own, learning nothing of its
 * rows), or below a named table, whatever her privileges there.
 */
static void
KsRefuseTruncateOwn(Oid relid, bool named)
{
	char	   *name = get_rel_name(relid);
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		rows;

	if (name == NULL || get_rel_namespace(relid) != get_namespace_oid(KS_DATA_SCHEMA, true) ||
		(strcmp(name, "state") != 0 && strcmp(name, "cold") != 0) ||
		(named && pg_class_aclcheck(relid, GetUserId(), ACL_TRUNCATE) != ACLCHECK_OK))
		return;
	/* the lock the TRUNCATE takes next: a checkpoint inserting its first rows commits first (re-review today 28, F2) */
	rel = table_open(relid, AccessExclusiveLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	rows = table_scan_getnextslot(scan, ForwardScanDirection, slot);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, NoLock);
	if (rows)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot truncate %s.%s while it holds keyedstate state", KS_DATA_SCHEMA, name),
				 errdetail(strcmp(name, "cold") == 0 ?
						   "Its rows are the only copy of the keys aggregations evicted from memory: they would be lost." :
						   "Its rows are the aggregations' checkpoints: they would have to consume their sources again."),
				 errhint("VACUUM FULL reclaims its space without losing them; keyedstate.drop_aggregation() removes an aggregation with its rows.")));
}

static ExecutorCheckPerms_hook_type prev_own_check_perms = NULL;

/*
 * ExecutorCheckPerms_hook: a DELETE (or a MERGE that may delete) of rows of
 * keyedstate_internal.cold is refused, as its TRUNCATE is: they are the
 * only copy of keys evicted from memory, and nothing could tell which went
 * (the view lost exactly the keys deleted, status still counted them:
 * review robustness3, F1).  So is an INSERT (or COPY FROM): rows keyedstate
 * once wrote and replaced since, put back from a copy, carry valid
 * checksums, and their keys came twice (review robustness4, F1); and so
 * is an UPDATE of the columns that name a row (aggregation_id, hash, place, id):
 * an earlier version's id and data put back (re-review in robustness4:
 * 47,534 keys counted on from their old state).  keyedstate writes the
 * table itself, never through the executor (cold.c, colddelete.c).
 * Reached once the user's privileges passed: a role without them gets
 * PostgreSQL's own error.  An UPDATE of data alone is damage the rows'
 * checksums find: they cover the naming columns.  Any INSERT, UPDATE or
 * DELETE of keyedstate_internal.state but the checkpoint's own statements
 * (KsStateExecute) is refused too: a superuser's clean-up DELETE of "old"
 * checkpoint rows failed aggregations at their next load (review
 * exactness23, F2).  keyedstate.allow_state_writes (superusers) lets them
 * through, for a repair or a test of damage.
 */
static bool
KsOwnTablesCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	Oid			ns = InvalidOid;
	ListCell   *lc;

	if (prev_own_check_perms && !prev_own_check_perms(rangeTable, ereport_on_violation))
		return false;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		const char *what;
		char	   *name;
		bool		state;
		bool		writes;

		if (rte->rtekind != RTE_RELATION || (rte->requiredPerms & (ACL_INSERT | ACL_DELETE | ACL_UPDATE)) == 0)
			continue;
		if (!OidIsValid(ns) && !OidIsValid(ns = get_namespace_oid(KS_DATA_SCHEMA, true)))
			return true;
		if (ks_allow_state_writes || get_rel_namespace(rte->relid) != ns ||
			(name = get_rel_name(rte->relid)) == NULL)
			continue;
		state = strcmp(name, "state") == 0;
		writes = (rte->requiredPerms & (ACL_INSERT | ACL_DELETE)) != 0;
		/*
		 * .state: anything but the checkpoint's own statements (a row-locking
		 * read asks for UPDATE too, and updates no column: review today 34,
		 * F4); .cold: the columns naming a row (aggregation_id, hash, place,
		 * id), an UPDATE of data alone being damage checksums find
		 */
		if (state ? KsStateOwnWrite() || (!writes && bms_is_empty(rte->updatedCols)) :
			strcmp(name, "cold") != 0 ||
			(!writes &&
			 !bms_is_member(1 - FirstLowInvalidHeapAttributeNumber, rte->updatedCols) &&
			 !bms_is_member(2 - FirstLowInvalidHeapAttributeNumber, rte->updatedCols) &&
			 !bms_is_member(3 - FirstLowInvalidHeapAttributeNumber, rte->updatedCols) &&
			 !bms_is_member(4 - FirstLowInvalidHeapAttributeNumber, rte->updatedCols)))
			continue;
		if (!ereport_on_violation)
			return false;
		what = (rte->requiredPerms & ACL_DELETE) ? "delete rows of" :
			(rte->requiredPerms & ACL_INSERT) ? "insert rows into" :
			state ? "update" : "update aggregation_id, hash, place or id of";
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot %s %s.%s", what, KS_DATA_SCHEMA, name),
				 state ?
				 errdetail("Its rows are the checkpoints aggregations recover from, which only keyedstate writes.") :
				 (rte->requiredPerms & ACL_DELETE) ?
				 errdetail("Its rows are the only copy of the keys aggregations evicted from memory: those deleted would be lost without an error.") :
				 errdetail("Only keyedstate writes its rows: one it replaced since, put back, would count its key twice or with an earlier state."),
				 state ?
				 errhint("keyedstate deletes the checkpoints no aggregation needs any more itself, keyedstate.drop_aggregation() removes an aggregation with its checkpoints, and keyedstate.rebuild() computes one again from its source.") :
				 errhint("keyedstate.drop_aggregation() removes an aggregation with its rows, keyedstate.rebuild() computes one again from its source, and VACUUM reclaims the space of the rows keyedstate deleted.")));
	}
	return true;
}

/* Install the executor's guard of keyedstate's own tables. */
void
KsOwnTablesHooksInit(void)
{
	prev_own_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = KsOwnTablesCheckPerms;
}

/*
 * TRUNCATE of sources, and of partitions of sources, named, below those
 * named, or reached by CASCADE through foreign keys (of those below too),
 * as ExecuteTruncate finds them (re-review today 20, F2; today 21, F2);
 * and of keyedstate's own state tables (KsRefuseTruncateOwn).
 */
void
KsBeforeTruncate(TruncateStmt *stmt)
{
	List	   *relids = NIL;
	List	   *below = NIL;
	List	   *aggs;
	List	   *added;
	ListCell   *lc;

	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = lfirst(lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (!OidIsValid(relid))
			continue;
		relids = list_append_unique_oid(relids, relid);
		if (rv->inh && has_subclass(relid))
			below = list_concat_unique_oid(below, list_delete_first(find_all_inheritors(relid, NoLock, NULL)));
	}
	below = list_difference_oid(below, relids);
	for (added = list_concat_copy(relids, below); stmt->behavior == DROP_CASCADE && added != NIL;)
	{
		List	   *more = NIL;

		foreach(lc, heap_truncate_find_FKs(list_concat_copy(relids, below)))
			if (!list_member_oid(relids, lfirst_oid(lc)) && !list_member_oid(below, lfirst_oid(lc)))
				more = lappend_oid(more, lfirst_oid(lc));
		relids = list_concat(relids, more);
		added = more;
	}
	/*
	 * the aggregations over any of them, read once (re-review today 21,
	 * F4: once per table; security review 20, F3: every one, for any table)
	 */
	aggs = KsAggregationsOf(list_concat_copy(relids, below));
	foreach(lc, relids)
	{
		/* one the user may not truncate fails on its own, saying so */
		if (pg_class_aclcheck(lfirst_oid(lc), GetUserId(), ACL_TRUNCATE) == ACLCHECK_OK)
			KsRefuseTruncateSource(lfirst_oid(lc), aggs);
		KsRefuseTruncateOwn(lfirst_oid(lc), true);
		KsBeforeRemovePartition(lfirst_oid(lc), NoLock, "truncate", stmt->behavior);
	}
	/*
	 * Those below are truncated on the strength of the named one's
	 * privilege: PostgreSQL checks none of theirs (re-review today 21, F1;
	 * keyedstate's own tables too, re-review today 28, m1).
	 */
	foreach(lc, below)
	{
		KsRefuseTruncateSource(lfirst_oid(lc), aggs);
		KsRefuseTruncateOwn(lfirst_oid(lc), false);
	}
}

/*
 * A partition was added to (or detached from) parent: it gets (or loses)
 * the wake-up triggers of the aggregations over parent's tree.
 */
void
KsAfterPartitionChange(Oid parent, Oid part, bool added)
{
	ListCell   *lc;

	if (!OidIsValid(parent) || !OidIsValid(part))
		return;
	/* (by the partition's OID: the names the command gave may lead elsewhere now) */
	if (added && get_rel_relispartition(part))
		KsMarkAncestorsOf(part);
	/*
	 * sources in part's tree gain or lose tables above them, which their
	 * slots list (shmem.h): the reload its commit brings lists them again
	 * (re-review today 43: inserts through a table attached above were not
	 * checked for a set-back sequence, F2, and refused after a DETACH, F3)
	 */
	if (KsAggregationsOf(find_all_inheritors(part, NoLock, NULL)) != NIL)
		KsRequestAtCommit();
	foreach(lc, KsAggregationsOf(KsSelfAndAncestors(parent)))
	{
		KsAggDef   *def = (KsAggDef *) lfirst(lc);

		if (added)
		{
			/* CREATE ... PARTITION OF (id DEFAULT ...) or a later SET DEFAULT */
			KsSourceCheckDefaults(part, def->source_oid, def->offset_attnum,
								  def->sequence_oid, KsAggName(def->view_oid), true);
			/* an index ATTACH adopted (it takes a DESC one), a foreign table */
			KsSourceCheckLeaves(part, def->source_oid, def->offset_attnum,
								def->sequence_oid, KsAggName(def->view_oid), false);
			KsWakeTriggersAdd(def->id, part);
		}
		else
			KsWakeTriggersDrop(def->id, part);
	}
}
