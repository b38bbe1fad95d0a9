/*-------------------------------------------------------------------------
 *
 * hooks.h
 *	  How backends reach the worker, and the SQL API's shared pieces.
 *
 * Backends talk to the worker through shared memory only (shmem.h): a
 * bump of the database slot's request counter at commit (reload the
 * definitions), a latch (new rows), a checkpoint request counter, and the
 * slot's condition variable to wait for progress.  hooks.c holds the
 * commit callback, the wake-up trigger, and the utility hook (DROP
 * EXTENSION, DROP DATABASE); create.c creates aggregations, control.c
 * controls them and shows their status, restore.c binds restored ones.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_HOOKS_H
#define KS_HOOKS_H

#include "definition.h"

#include "catalog/objectaddress.h"
#include "datatype/timestamp.h"

/* Install the utility hook; called from _PG_init when preloaded. */
extern void KsHooksInit(void);

/* Ask the worker to reload at commit (and at abort, if it was interrupted). */
extern void KsRequestAtCommit(void);

/*
 * rebuild() of aggregation aggid, giving it resume count `resume_count`:
 * KsRequestAtCommit, and its slots marked loading just before the commit
 * (KsSetRebuildPending, shmem.h), given back their former marks if the
 * commit fails.
 */
extern void KsRebuildAtCommit(int32 aggid, int64 resume_count);

/*
 * rebuild() of an aggregation, inside the catalog bracket, its steps
 * stopped (KsInterruptAtOnce): its checkpoints forgotten, its table
 * consumed again from the beginning after this transaction commits
 * (control.c; alter.c for a new window).
 */
extern void KsRebuild(KsAggDef *def);

/*
 * Whether this transaction rebuilt aggregation aggid (any, if negative; not
 * rolled back), or, with `rescaled`, rescaled it (resume_count 0 to
 * KsRebuildAtCommit: no mark, only this).
 */
extern bool KsRebuiltHere(int32 aggid, bool rescaled);

/* Ask the database's workers to reload if this transaction commits, taking nothing now. */
extern void KsReloadAtCommit(void);

/*
 * Give the parked parts of these aggregations a worker again if this
 * transaction commits (not the subtransaction asking, if it rolls back),
 * and ask for a reload: a DDL that renamed what their queries name
 * (restore.c).  Unparked in the DDL's transaction, a rolled-back ALTER
 * loaded another owner's paused aggregation again, in a loop (re-review
 * today 30, F2).  A prepared transaction's COMMIT PREPARED unparks every
 * parked aggregation of the database (KsAfterCommitPrepared).
 */
extern void KsUnparkAtCommit(const int32 *aggids, int n);

/* Stop the worker's current step of an aggregation (pause, drop, rebuild). */
extern void KsInterruptAtOnce(int32 aggid);

/*
 * Put aggregation aggid's wake-up trigger on a table and all its
 * partitions (where missing), or take it off them.
 */
extern void KsWakeTriggersAdd(int32 aggid, Oid relid);
extern void KsWakeTriggersDrop(int32 aggid, Oid relid);

/*
 * The wake-up trigger of aggregation aggid on table relid, found by its
 * function and argument (the id), whatever its name now; or InvalidOid.
 */
extern Oid	KsWakeTriggerOid(Oid relid, int32 aggid);

/*
 * Rows inserted through a partitioned table fire no statement trigger of
 * the partitions they go to: the executor's check of the INSERT privilege
 * (KsWakeHooksInit, waketrig.c) notes the table, and the commit wakes the
 * aggregations whose source is a partition below it (their slots list the
 * tables above their source: shmem.h; re-review today 26, F3: they saw the
 * rows at the naptime only).
 */
extern void KsWakeHooksInit(void);
extern void KsWakeBelowAtCommit(Oid relid);

/* After ALTER TABLE ... ENABLE TRIGGER: the wake-up triggers fire ALWAYS again. */
extern void KsWakeTriggersKeepAlways(Oid relid);
extern char *KsWakeTriggerSql(int32 aggid, Oid relid);

/* --- hooksource.c: the tables a utility command changes --- */

/*
 * The aggregations whose source is one of relids (a table and its
 * ancestors); NIL where keyedstate is not installed.
 */
extern List *KsAggregationsOf(List *relids);

/* The aggregations following the offsets of sequence seqoid. */
extern List *KsAggregationsFollowing(Oid seqoid);

/* A table and the tables it is a partition of, nearest first. */
extern List *KsSelfAndAncestors(Oid relid);

/*
 * The tables whose indexes a utility command may drop, found before it
 * runs; and after it, the refusal of one that left an aggregation's
 * source without an index on its offset column.
 */
extern List *KsTablesLosingIndexes(Node *parsetree);

/*
 * Before ALTER TABLE ... SET UNLOGGED: refused for a table an aggregation
 * reads (a source or a partition of one), by its owner.
 */
extern void KsBeforeSetUnlogged(RangeVar *rv);
extern void KsCheckOffsetIndexesKept(List *tables);

/* --- hookoffsets.c: commands changing where a source's offsets come from --- */

/*
 * After ALTER TABLE, ALTER SEQUENCE and CREATE TABLE: refuse an ATTACH that
 * gives a source ancestors filling its offset column otherwise, a default
 * or identity change of that column in a source's tree, SET UNLOGGED of a
 * sequence an aggregation follows, and inheritance from a source; give an
 * attached partition (or take from a detached one) the wake-up triggers.
 */
extern void KsAfterTableCommand(Node *parsetree);

/* --- hookpartitions.c: the guards of sources' partition trees, and of keyedstate's own tables --- */

/*
 * Before DROP TABLE, TRUNCATE and ALTER TABLE (ATTACH and DETACH
 * PARTITION, SET UNLOGGED) of tables in sources' trees: the checks of
 * source.h, refusing what would lose or skip rows.
 */
extern void KsBeforeDropTables(DropStmt *stmt);
extern void KsBeforeTruncate(TruncateStmt *stmt);
extern void KsBeforeAlterTable(AlterTableStmt *stmt);

/*
 * After a partition was added to (added) or detached from parent, or after
 * an ALTER TABLE that did either: it gets or loses the wake-up triggers of
 * the aggregations over parent's tree.  After an ALTER TABLE ... ENABLE
 * TRIGGER, the table's wake-up triggers fire ALWAYS again.
 */
extern void KsAfterPartitionChange(Oid parent, Oid part, bool added);

/*
 * TRUNCATE of keyedstate_internal.state and .cold is refused while they
 * hold rows (KsBeforeTruncate), a DELETE of or INSERT into .cold always
 * (an executor hook installed by KsOwnTablesHooksInit): keys lost, or
 * counted twice, without a trace.
 */
extern void KsOwnTablesHooksInit(void);

/*
 * Before any utility command: ALTER TABLE, RENAME and SET SCHEMA of
 * keyedstate's own tables are refused, but for storage settings.
 */
extern void KsBeforeChangeOwnTables(Node *parsetree);

/* Forget an aggregation whose view is gone (see orphans.c). */
extern void KsForgetAggregation(int32 id, bool orphan);

/* Drop an object by address, as keyedstate does internally (control.c). */
extern void KsDropObject(Oid classid, Oid objid, DropBehavior behavior);

struct KsWindowSpec;


/*
 * Add the parts of a new layout of an aggregation (create_aggregation,
 * or a rescale), starting at an offset, or seeded from the ids in seeds
 * (an int4[], or 0 for none), and reserve their slots (within the owner's
 * share if `limited`: not for a restore, KsReserveAggSlot); inside the
 * catalog bracket.
 */
extern void KsCreateParts(int32 aggid, int32 layout, int parallelism, int max_parallelism,
						  int64 start_offset, Datum seeds, Oid owner, bool limited, Oid view_oid,
						  Oid live_oid, Oid sequence_oid);
extern Query *KsParseSelect(const char *querytext);
extern Query *KsParseAggregationQuery(const char *querytext, KsQueryInfo *info,
									  const struct KsWindowSpec *window);
extern char *KsDeparseForRestore(Query *query);
extern void KsSetCanonicalSettings(void);
extern char *KsLiveTableOptions(int32 id, const KsQueryInfo *info, bool set);

/*
 * Record what an aggregation's query uses, and the sequence its offsets
 * come from, as dependencies of its view's rule, as for a plain view
 * (errors name the view).  The utility hook keeps the view's owner from
 * replacing the rule, which would drop them.
 */
extern void KsRecordQueryDependencies(Oid view_oid, Query *query, Oid seqoid);

/* restore.c: write the definition text again where renames changed it */
extern bool KsRefreshDefinitionTexts(const int32 *ids, int nids, bool ddl);

/*
 * restore.c: bind a definition made in another cluster (pg_upgrade), or
 * restored before its owner's privileges (catalog.h, KS_BOUND_HERE), again
 */
struct KsAggDef;
extern void KsRebindDefinition(struct KsAggDef *def, Oid owner);

/*
 * restoredata.c: whether a run may load: a part a rescale added once no
 * worker runs the parts it is seeded from; a restored definition once bound
 * as its owner, its source's rows and sequence restored, and its owner's
 * privileges granted (or a while later).  Called by step.c before each
 * step's load.
 */
struct KsAggRun;
extern bool KsRunSourceReady(struct KsAggRun *run);

/* --- orphans.c: aggregations whose view went away behind our back --- */

/* Install the object access hook that notices dropped views; from _PG_init. */
extern void KsOrphansInit(void);

/*
 * The worker's reload: forget the aggregations of defs whose view is gone
 * and return defs without them; *retry when one must be tried again.
 */
extern List *KsForgetOrphans(List *defs, bool *retry);

/*
 * The worker's reload, too: drop the triggers of aggregations that are gone
 * but were left on their source (a role dropping her aggregation over
 * another owner's table leaves them: see KsForgetAggregation), when their
 * table is not in use; *retry is set when one could not be dropped now.
 */
extern void KsDropLeftoverTriggers(List *defs, bool *retry);

/* --- tempdeps.c: temporary objects aggregations must not depend on --- */

/*
 * Refuse the query of a new (or restored) aggregation whose view's rule,
 * just recorded, depends on a temporary object, directly or not.
 */
extern void KsRefuseTemporaryObjects(Oid view_oid, const ObjectAddress *ruleaddr);
extern bool KsTemporaryDependency(const ObjectAddress *start, ObjectAddress *found);

/* The view whose _RETURN rule is `ruleid`; InvalidOid for another rule. */
extern Oid	KsViewOfRule(Oid ruleid);

/*
 * The end of a session drops its temporary objects with what depends on
 * them, and no command can refuse that drop: a type an aggregation groups
 * by must not come to depend on a temporary object after the aggregation's
 * creation refused it.  For a type, a function, a rule (CREATE OR REPLACE
 * VIEW), an operator, a text search configuration or a table created or
 * altered: refused if it now depends on a temporary object and an
 * aggregation groups by a type that would go, or lose an attribute, with
 * it (as DROP ... CASCADE of the object finds them).
 */
extern void KsCheckTemporaryDependents(Oid classId, Oid objectId);

/*
 * The object access hook notes the objects created or altered; once a
 * utility command is done, when all their dependencies are recorded, they
 * are checked.
 */
extern void KsNoteChangedObject(Oid classId, Oid objectId);
extern void KsCheckChangedObjects(void);

#endif							/* KS_HOOKS_H */
