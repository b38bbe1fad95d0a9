/*-------------------------------------------------------------------------
 *
 * hooks.c
 *	  The commit callback, the wake-up trigger and the utility hook.
 *	  See hooks.h.
 *
 * What a transaction asked for is acted on when it ends: a reload of the
 * definitions at commit (and at abort, if it stopped a step of the worker
 * to pause or drop an aggregation), slots reserved by an aborted
 * create_aggregation() given back, the worker woken when rows were
 * inserted into a source.  A prepared transaction cannot call us at its
 * COMMIT PREPARED; the relcache invalidation every definition change sends
 * (catalog.c) makes the worker reload then.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "hooks.h"
#include "settings.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(keyedstate_wake);

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* What this transaction asked for; acted on at its end. */
static bool ks_xact_callback_registered = false;
static bool ks_wake_pending = false;
static bool ks_request_pending = false;
static bool ks_interrupt_pending = false;
static bool ks_drop_database_pending = false;
static TransactionId ks_reserving_xid = InvalidTransactionId;

/* End of a transaction: do what it asked for (see the banner). */
static void
KsXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (ks_request_pending && KsSharedState != NULL)
				KsRequestDatabaseWorker(MyDatabaseId, true);
			else if (ks_wake_pending)
				KsWakeDatabaseWorker(MyDatabaseId);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (TransactionIdIsValid(ks_reserving_xid))
				KsReleaseReservations(ks_reserving_xid);
			/* a step stopped for nothing: let the worker take it up again */
			if (ks_interrupt_pending && KsSharedState != NULL)
				KsRequestDatabaseWorker(MyDatabaseId, true);
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED reaches the worker through invalidations */
			break;
		default:
			return;
	}
	if (ks_drop_database_pending)
		KsDatabaseDropEnded();
	ks_wake_pending = false;
	ks_request_pending = false;
	ks_interrupt_pending = false;
	ks_drop_database_pending = false;
	ks_reserving_xid = InvalidTransactionId;
}

/* Register the commit callback once per backend. */
static void
KsEnsureXactCallback(void)
{
	if (!ks_xact_callback_registered)
	{
		RegisterXactCallback(KsXactCallback, NULL);
		ks_xact_callback_registered = true;
	}
}

/*
 * Ask for the worker to reload at commit.  The database slot is taken now,
 * so that running out of them is an error here and not at commit.  A slot
 * reserved by this transaction is given back if it aborts.
 */
void
KsRequestAtCommit(void)
{
	KsRequestDatabaseWorker(MyDatabaseId, false);
	KsEnsureXactCallback();
	ks_request_pending = true;
	ks_reserving_xid = GetTopTransactionIdIfAny();
}

/* Stop the worker's current step of an aggregation (see hooks.h). */
void
KsInterruptAtOnce(int32 aggid)
{
	KsEnsureXactCallback();
	ks_interrupt_pending = true;
	KsInterruptAggregation(MyDatabaseId, aggid);
}

/*
 * keyedstate.wake(): AFTER INSERT statement trigger on every source table.
 * It only flags the transaction; the worker's latch is set at commit, when
 * the rows are visible, so the cost for writers is one flag per statement.
 */
Datum
keyedstate_wake(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("keyedstate.wake() must be called as a trigger")));
	if (ks_preloaded && KsSharedState != NULL)
	{
		KsEnsureXactCallback();
		ks_wake_pending = true;
	}
	return PointerGetDatum(NULL);
}

/*
 * DROP EXTENSION keyedstate first drops every aggregation of the database
 * (views, live tables, triggers on sources), which do not belong to the
 * extension and would otherwise block it.
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
		if (!OidIsValid(extoid) || !pg_extension_ownercheck(extoid, GetUserId()))
			continue;
		KsCatalogOpen(&acc);
		KsCatalogAll(&views, &ids);
		KsCatalogClose(&acc);
		forboth(vlc, views, ilc, ids)
		{
			if (get_rel_name(lfirst_oid(vlc)) != NULL)
			{
				ObjectAddress addr;

				ObjectAddressSet(addr, RelationRelationId, lfirst_oid(vlc));
				performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
			}
			KsForgetAggregation(lfirst_int(ilc));
		}
	}
}

/*
 * DROP DATABASE by its owner: the worker, a superuser process the owner
 * could not terminate, leaves the database first (see shmem.h).
 */
static void
KsBeforeDropDatabase(DropdbStmt *stmt)
{
	Oid			dboid = get_database_oid(stmt->dbname, true);

	if (!OidIsValid(dboid) || KsSharedState == NULL ||
		!pg_database_ownercheck(dboid, GetUserId()))
		return;
	KsEnsureXactCallback();
	ks_drop_database_pending = true;
	KsDatabaseDropping(dboid);
}

/* ProcessUtility hook: DROP EXTENSION keyedstate, DROP DATABASE. */
static void
KsProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		KsBeforeDropExtension((DropStmt *) parsetree);
	else if (IsA(parsetree, DropdbStmt))
		KsBeforeDropDatabase((DropdbStmt *) parsetree);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Install the utility hook. */
void
KsHooksInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = KsProcessUtility;
}
