/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  The commit callback, the wake-up trigger and the utility hook.
 *	  See hooks.h.
 *
 * What a transaction asked for is acted on when it ends: a reload of the
 * definitions at commit (and at abort, if it stopped a step of the worker
 * to pause or drop an aggregation), slots (the database's too) reserved by
 * an aborted create_aggregation() given back, the worker woken when rows were
 * inserted into a source.  A prepared transaction cannot call us at its
 * COMMIT PREPARED; the relcache invalidation every definition change sends
 * (catalog.c) makes the worker reload then.
 *
 * The utility hook also guards the partition trees of sources (what, and
 * why: source.h; hookpartitions.c): only commands naming a partition, or
 * attaching to a table, pay for a look at keyedstate_internal.aggregation.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "aggguard.h"
#include "catalog.h"
#include "dbhooks.h"
#include "hooks.h"
#include "keytypes.h"
#include "owner.h"
#include "settings.h"
#include "shmem.h"
#include "source.h"

PG_FUNCTION_INFO_V1(keyedstate_wake);

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* What this transaction asked for; acted on at its end. */
static bool ks_xact_callback_registered = false;
static bool ks_wake_pending = false;
static int32 *ks_wake_aggids = NULL;	/* ... of these aggregations' workers */
static int	ks_wake_naggs = 0;
static int	ks_wake_max = 0;
static Oid *ks_wake_relids = NULL;	/* ... and of those below these partitioned tables */
static int	ks_wake_nrelids = 0;
static int	ks_wake_maxrelids = 0;
static bool ks_request_pending = false;
static bool ks_interrupt_pending = false;
static bool ks_reload_pending = false;
static int32 *ks_unpark_ids = NULL;	/* KsUnparkAtCommit's, in TopTransactionContext */
static SubTransactionId *ks_unpark_subids = NULL;	/* ... and the subtransactions that asked */
static int	ks_unpark_n = 0;
static TransactionId ks_reserving_xid = InvalidTransactionId;
static List *ks_rebuilds = NIL;	/* (aggid, resume count, subtransaction, mark before) of rebuild()s (count 0: rescales), in TopMemoryContext */
static bool ks_rebuilds_marked = false;	/* ... whose slots PRE_COMMIT marked */

/*
 * Mark (or, with unmark, unmark) the slots of this transaction's rebuild()s
 * (see hooks.h); unmarked in the reverse order, so that an aggregation
 * rebuilt twice here gets back the mark it had before the first.
 */
static void
KsMarkRebuilds(bool unmark)
{
	int			n = list_length(ks_rebuilds);

	for (int i = 0; i < n; i++)
	{
		int64	   *r = list_nth(ks_rebuilds, unmark ? n - 1 - i : i);

		if (r[1] <= 0)
			continue;
		if (unmark)
			(void) KsSetRebuildPending(MyDatabaseId, (int32) r[0], r[1], r[3]);
		else
			r[3] = KsSetRebuildPending(MyDatabaseId, (int32) r[0], r[1], -1);
	}
	ks_rebuilds_marked = !unmark;
}

/* End of a transaction: do what it asked for (see the banner). */
static void
KsXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* (no error can come after: a failed commit is an abort, below) */
			if (ks_rebuilds != NIL && KsSharedState != NULL)
				KsMarkRebuilds(false);
			return;
		case XACT_EVENT_PRE_PREPARE:
			/*
			 * Its COMMIT PREPARED, in any session, could not mark the slots
			 * before the commit (re-review today 25, F2: reads right after it
			 * were torn again), as PostgreSQL refuses to prepare what it
			 * cannot finish at the commit.
			 */
			if (KsRebuiltHere(-1, false))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has rebuilt a keyedstate aggregation")));
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (ks_unpark_n > 0 && KsSharedState != NULL)
				KsUnparkAggSlots(MyDatabaseId, ks_unpark_ids, ks_unpark_n);
			if (ks_request_pending && KsSharedState != NULL)
				KsEndDatabaseReservation(MyDatabaseId, true);
			/* an interrupted run waits for a reload after this commit */
			else if (ks_interrupt_pending || ks_reload_pending)
				KsDatabaseAskReload(MyDatabaseId);
			else if (ks_wake_pending)
				KsWakeAggregationsAtCommit(MyDatabaseId, ks_wake_aggids, ks_wake_naggs,
										   ks_wake_relids, ks_wake_nrelids);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (TransactionIdIsValid(ks_reserving_xid))
				KsReleaseReservations(ks_reserving_xid);
			if (ks_request_pending && KsSharedState != NULL)
				KsEndDatabaseReservation(MyDatabaseId, false);
			if (ks_rebuilds_marked)
				KsMarkRebuilds(true);
			/* a step stopped for nothing: let the worker take it up again */
			if (ks_interrupt_pending)
				KsDatabaseAskReload(MyDatabaseId);
			break;
		case XACT_EVENT_PREPARE:	/* (its COMMIT PREPARED asks: KsAfterCommitPrepared) */
			if (ks_request_pending && KsSharedState != NULL)
				KsEndDatabaseReservation(MyDatabaseId, false);
			break;
		default:
			return;
	}
	ks_wake_pending = false;
	ks_wake_naggs = 0;
	ks_wake_nrelids = 0;
	ks_request_pending = false;
	ks_interrupt_pending = false;
	ks_reload_pending = false;
	ks_unpark_ids = NULL;
	ks_unpark_subids = NULL;
	ks_unpark_n = 0;
	ks_reserving_xid = InvalidTransactionId;
	list_free_deep(ks_rebuilds);
	ks_rebuilds = NIL;
	ks_rebuilds_marked = false;
}

/* Register the commit callback once per backend. */
static void
KsEnsureXactCallback(void)
{
	if (!ks_xact_callback_registered)
	{
		RegisterXactCallback(KsXactCallback, NULL);
		ks_xact_callback_registered = true;
		ks_wake_max = ks_wake_maxrelids = 8;
		ks_wake_aggids = MemoryContextAlloc(TopMemoryContext, sizeof(int32) * ks_wake_max);
		ks_wake_relids = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * ks_wake_maxrelids);
	}
}

/*
 * A subtransaction rolled back: its rebuild()s, and those of the
 * subtransactions it took in (their ids follow its own), never happened.
 */
static void
KsRebuildSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, ks_rebuilds)
	{
		int64	   *r = lfirst(lc);

		if ((SubTransactionId) r[2] >= mySubid)
		{
			ks_rebuilds = foreach_delete_current(ks_rebuilds, lc);
			pfree(r);
		}
	}
}

/* Whether this transaction rebuilt (or rescaled) an aggregation (see hooks.h). */
bool
KsRebuiltHere(int32 aggid, bool rescaled)
{
	ListCell   *lc;

	foreach(lc, ks_rebuilds)
		if ((aggid < 0 || ((int64 *) lfirst(lc))[0] == aggid) && (((int64 *) lfirst(lc))[1] == 0) == rescaled)
			return true;
	return false;
}

/* A rebuild() in this transaction (see hooks.h). */
void
KsRebuildAtCommit(int32 aggid, int64 resume_count)
{
	static bool registered = false;
	MemoryContext oldcxt;
	int64	   *r;

	KsRequestAtCommit();
	if (!registered)
	{
		RegisterSubXactCallback(KsRebuildSubXactCallback, NULL);
		registered = true;
	}
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	r = palloc(sizeof(int64) * 4);
	r[0] = aggid;
	r[1] = resume_count;
	r[2] = GetCurrentSubTransactionId();
	r[3] = 0;
	ks_rebuilds = lappend(ks_rebuilds, r);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Ask for the worker to reload at commit.  The database slot is taken now,
 * so that running out of them is an error here and not at commit.  A slot
 * reserved by this transaction is given back if it aborts.
 */
void
KsRequestAtCommit(void)
{
	if (!ks_request_pending)
		KsRequestDatabaseWorker(MyDatabaseId, false);
	KsEnsureXactCallback();
	ks_request_pending = true;
	ks_reserving_xid = GetTopTransactionIdIfAny();
}

/* A reload at commit only (see hooks.h). */
void
KsReloadAtCommit(void)
{
	KsEnsureXactCallback();
	ks_reload_pending = true;
}

/* A subtransaction rolled back: its unparks (and its children's) are not (re-review today 32, F2). */
static void
KsUnparkSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			n = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = 0; i < ks_unpark_n; i++)
		if (ks_unpark_subids[i] < mySubid)
		{
			ks_unpark_ids[n] = ks_unpark_ids[i];
			ks_unpark_subids[n++] = ks_unpark_subids[i];
		}
	ks_unpark_n = n;
}

/* Unpark aggregations at commit (see hooks.h). */
void
KsUnparkAtCommit(const int32 *aggids, int n)
{
	static bool registered = false;
	int32	   *ids;
	SubTransactionId *subids;

	KsReloadAtCommit();
	if (!registered)
	{
		RegisterSubXactCallback(KsUnparkSubXactCallback, NULL);
		registered = true;
	}
	ids = MemoryContextAlloc(TopTransactionContext, sizeof(int32) * (ks_unpark_n + n));
	subids = MemoryContextAlloc(TopTransactionContext, sizeof(SubTransactionId) * (ks_unpark_n + n));
	for (int i = 0; i < ks_unpark_n + n; i++)
	{
		ids[i] = i < ks_unpark_n ? ks_unpark_ids[i] : aggids[i - ks_unpark_n];
		subids[i] = i < ks_unpark_n ? ks_unpark_subids[i] : GetCurrentSubTransactionId();
	}
	ks_unpark_ids = ids;
	ks_unpark_subids = subids;
	ks_unpark_n += n;
}

/* Stop the worker's current step of an aggregation (see hooks.h). */
void
KsInterruptAtOnce(int32 aggid)
{
	/* from a function of a query, it would stop its own step for ever (shmem.h) */
	if (KsInDatabaseWorker())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot drop or change a keyedstate aggregation within a keyedstate aggregation"),
				 errdetail("The functions of an aggregation's query run in its worker, which cannot create, change or drop aggregations."),
				 errhint("Drop or change it from a session.")));
	KsEnsureXactCallback();
	ks_interrupt_pending = true;
	KsInterruptAggregation(MyDatabaseId, aggid);
}

/*
 * keyedstate.wake(): BEFORE INSERT statement trigger on every source table
 * (and every table of a partitioned source's tree: KsWakeTriggersAdd).
 * It takes the table's writer mark (writers.c: a lock the transaction
 * already holds after its first statement) and flags the transaction; the
 * worker's latch is set at commit, when the rows are visible.
 */
Datum
keyedstate_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("keyedstate.wake() must be called as a trigger")));
	KsMarkWriterAndNewAncestors(RelationGetRelid(((TriggerData *) fcinfo->context)->tg_relation));
	if (ks_preloaded && KsSharedState != NULL)
	{
		Trigger    *trig = ((TriggerData *) fcinfo->context)->tg_trigger;
		int32		aggid = 0;
		char		extra;
		int			i;

		/* its argument says whose (waketrig.c): wake only its runners at commit */
		if (trig->tgnargs != 1 || sscanf(trig->tgargs[0], "%d%c", &aggid, &extra) != 1)
			return PointerGetDatum(NULL);
		KsRefuseConsumedOffsets(aggid, RelationGetRelid(((TriggerData *) fcinfo->context)->tg_relation));
		KsEnsureXactCallback();
		ks_wake_pending = true;
		for (i = 0; i < ks_wake_naggs && ks_wake_aggids[i] != aggid; i++)
			;
		/* as many as the transaction inserts for (kept for the backend's life) */
		if (i == ks_wake_naggs)
		{
			if (ks_wake_naggs == ks_wake_max)
				ks_wake_aggids = repalloc(ks_wake_aggids, sizeof(int32) * (ks_wake_max *= 2));
			ks_wake_aggids[ks_wake_naggs++] = aggid;
		}
	}
	return PointerGetDatum(NULL);
}

/*
 * DROP EXTENSION keyedstate ... CASCADE first drops every aggregation of
 * the database (views, live tables, triggers on sources), which do not
 * belong to the extension and would otherwise block it.  Without CASCADE
 * it is refused while aggregations exist, as PostgreSQL refuses to drop an
 * extension that other objects depend on.
 */
static void
KsBeforeDropExtension(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Oid			extoid;
		KsCatalogAccess acc;
		List	   *views;
		List	   *ids;
		ListCell   *vlc;
		ListCell   *ilc;

		if (strcmp(strVal(lfirst(lc)), "keyedstate") != 0)
			continue;
		extoid = get_extension_oid("keyedstate", true);
		if (!OidIsValid(extoid) || !KsInstalled() || !pg_extension_ownercheck(extoid, GetUserId()))
			continue;
		KsCatalogOpen(&acc);
		KsCatalogAll(&views, &ids);
		KsCatalogClose(&acc);
		if (stmt->behavior == DROP_RESTRICT && views != NIL)
		{
			StringInfoData detail;

			initStringInfo(&detail);
			foreach(vlc, views)
				appendStringInfo(&detail, "%saggregation %s depends on extension keyedstate",
								 detail.len > 0 ? "\n" : "", KsAggName(lfirst_oid(vlc)));
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop extension keyedstate because other objects depend on it"),
					 errdetail("%s", detail.data),
					 errhint("Use DROP ... CASCADE to drop the dependent objects too.")));
		}
		forboth(vlc, views, ilc, ids)
		{
			if (get_rel_name(lfirst_oid(vlc)) != NULL)
			{
				ObjectAddress addr;

				ObjectAddressSet(addr, RelationRelationId, lfirst_oid(vlc));
				performDeletion(&addr, stmt->behavior, PERFORM_DELETION_INTERNAL);
			}
			KsForgetAggregation(lfirst_int(ilc), false);
		}
	}
}

/*
 * CREATE OR REPLACE VIEW, or CREATE RULE, on an aggregation's view: the
 * view's query is the aggregation's, and replacing its rule would also
 * drop the dependencies that keep the objects the query uses (and their
 * column types) as they were analysed.  (Columns a replaced view adds to
 * a row type an aggregation groups by are refused as they are added:
 * KsNoteAddedColumn, keytypes.h.)
 */
static void
KsBeforeViewChange(RangeVar *rv, bool rule)
{
	Oid			relid;
	KsCatalogAccess acc;
	KsAggDef	def;
	bool		found;

	/*
	 * The relation the command replaces: a rule's is found on the search
	 * path; a view's in the namespace it would be created in (a temporary
	 * view of the same name, or a catalog's, must not hide it)
	 */
	if (rule)
		relid = RangeVarGetRelid(rv, NoLock, true);
	else
		relid = get_relname_relid(rv->relname, RangeVarGetCreationNamespace(rv));

	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_VIEW ||
		!KsInstalled() || KsCatalogInserting())
		return;
	/* that view's definition only (security review 20, F3: every one was read) */
	KsCatalogOpen(&acc);
	found = KsCatalogLookup(relid, &def);
	KsCatalogClose(&acc);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg(rule ? "cannot create a rule on view \"%s\"" : "cannot replace view \"%s\"",
						get_rel_name(relid)),
				 errdetail("View %s is the view of a keyedstate aggregation, whose query it cannot change.",
						   KsAggName(relid)),
				 errhint("Drop the aggregation with keyedstate.drop_aggregation() and create it again.")));
}

/*
 * Run the command; the attributes it drops are noted meanwhile (keytypes.h),
 * the outer command's notes restored if it fails.  Returns those notes.
 */
static KsDroppedNotes
KsRunUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	KsDroppedNotes dropped = KsDroppedAttributesBegin();

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		KsDroppedAttributesAbort(dropped);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return dropped;
}

/*
 * After COMMIT PREPARED: a prepared transaction that created, paused,
 * resumed, altered or dropped an aggregation asked its workers nothing at
 * its PREPARE (it might never commit), and invalidations reach only a
 * worker that runs: with none left (the database's aggregations had all
 * gone), an aggregation created so never ran (review pool1, F2).  So a
 * COMMIT PREPARED in a database that has a slot asks for its workers (a
 * reload, or a start).  It has one: an aggregation created by the prepared
 * transaction holds a reserved aggregation slot, which keeps the launcher
 * from forgetting the database.  COMMIT PREPARED runs in the database of
 * the transaction it commits, and has committed now: nothing here reads a
 * catalog (a lock timeout raised an error after the commit: re-review
 * today 18, F3), and a database without aggregations gets no worker (F4).
 */
static void
KsAfterCommitPrepared(void)
{
	if (KsSharedState == NULL)
		return;
	/*
	 * Whose text a DDL it made may have renamed is not known here: every
	 * parked aggregation of the database runs again for a while (unparked
	 * at the PREPARE, their workers read the names before the commit, and
	 * the texts stayed old: re-review today 32, F3).
	 */
	KsUnparkAggSlots(MyDatabaseId, NULL, -1);
	KsDatabaseAskReload(MyDatabaseId);
}

/*
 * ProcessUtility hook: DROP EXTENSION keyedstate, the database commands
 * of dbhooks.h, the commands that change the partitions of a source, and
 * those changing types or aggregates an aggregation stores (keytypes.h).
 */
static void
KsProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		existed = false;
	List	   *aggregates = NIL;	/* CREATE OR REPLACE AGGREGATE (keytypes.h) */

	List	   *indexed = KsTablesLosingIndexes(parsetree);	/* (hooksource.c) */
	KsDroppedNotes dropped;		/* (keytypes.h) */

	KsMarkWritersOfCommand(parsetree);	/* (writers.c) */
	KsBeforeChangeOwnTables(parsetree);	/* (hookpartitions.c) */
	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		KsBeforeDropExtension((DropStmt *) parsetree);
	else if (IsA(parsetree, DropdbStmt) || IsA(parsetree, RenameStmt) ||
			 IsA(parsetree, AlterDatabaseStmt) || IsA(parsetree, CreatedbStmt))
		KsBeforeDatabaseCommand(parsetree);
	else if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
		KsBeforeDropTables((DropStmt *) parsetree);
	else if (IsA(parsetree, TruncateStmt))
		KsBeforeTruncate((TruncateStmt *) parsetree);
	else if (KsPartitionCreateStmt(parsetree) != NULL)
	{
		RangeVar   *rv = KsPartitionCreateStmt(parsetree)->relation;

		existed = OidIsValid(get_relname_relid(rv->relname, RangeVarGetCreationNamespace(rv)));
	}
	else if (IsA(parsetree, AlterTableStmt) &&
			 ((AlterTableStmt *) parsetree)->objtype == OBJECT_TABLE)
	{
		KsBeforeAlterType((AlterTableStmt *) parsetree);
		KsBeforeAlterTable((AlterTableStmt *) parsetree);
		KsCheckOwnerShare(parsetree);
	}
	else if ((IsA(parsetree, AlterTableStmt) &&
			  ((AlterTableStmt *) parsetree)->objtype == OBJECT_VIEW) ||
			 IsA(parsetree, ReassignOwnedStmt))
		KsCheckOwnerShare(parsetree);
	else if (IsA(parsetree, AlterTableStmt) &&
			 (((AlterTableStmt *) parsetree)->objtype == OBJECT_TYPE ||
			  ((AlterTableStmt *) parsetree)->objtype == OBJECT_FOREIGN_TABLE))
		KsBeforeAlterType((AlterTableStmt *) parsetree);
	else if (IsA(parsetree, ViewStmt) && ((ViewStmt *) parsetree)->replace)
		KsBeforeViewChange(((ViewStmt *) parsetree)->view, false);
	else if (IsA(parsetree, RuleStmt))
		KsBeforeViewChange(((RuleStmt *) parsetree)->relation, true);
	else if (IsA(parsetree, DefineStmt) || IsA(parsetree, CreateFunctionStmt) ||
			 IsA(parsetree, AlterFunctionStmt) || IsA(parsetree, AlterOwnerStmt))
		aggregates = KsBeforeAggregateChange(parsetree);

	dropped = KsRunUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);

	KsDroppedAttributesEnd(dropped);
	KsCheckChangedObjects();
	KsAfterAggregateChange(aggregates);
	KsCheckOffsetIndexesKept(indexed);
	/* a partition this command created (not one IF NOT EXISTS found) */
	if (KsPartitionCreateStmt(parsetree) != NULL && !existed)
	{
		Oid			relid = RangeVarGetRelid(KsPartitionCreateStmt(parsetree)->relation, NoLock, true);

		if (OidIsValid(relid) && get_rel_relispartition(relid))
			KsAfterPartitionChange(get_partition_parent(relid, true), relid, true);
	}
	else if (IsA(parsetree, AlterTableStmt) || IsA(parsetree, CreateStmt) ||
			 IsA(parsetree, CreateForeignTableStmt))
		KsAfterTableCommand(parsetree);
	else if (IsA(parsetree, CreatedbStmt))
		KsAfterDatabaseCommand(parsetree);
	else if (IsA(parsetree, TransactionStmt) &&
			 ((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		KsAfterCommitPrepared();
}

/* Install the utility hook. */
void
KsHooksInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = KsProcessUtility;
	KsWakeHooksInit();
	KsOwnTablesHooksInit();
}

/* Wake the aggregations of the partitions below a table this transaction inserts into (see hooks.h). */
void
KsWakeBelowAtCommit(Oid relid)
{
	int			i;

	if (!ks_preloaded || KsSharedState == NULL)
		return;
	KsEnsureXactCallback();
	ks_wake_pending = true;
	for (i = 0; i < ks_wake_nrelids && ks_wake_relids[i] != relid; i++)
		;
	if (i < ks_wake_nrelids)
		return;
	if (ks_wake_nrelids == ks_wake_maxrelids)
		ks_wake_relids = repalloc(ks_wake_relids, sizeof(Oid) * (ks_wake_maxrelids *= 2));
	ks_wake_relids[ks_wake_nrelids++] = relid;
}
