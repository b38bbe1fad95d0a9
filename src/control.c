/*-------------------------------------------------------------------------
 *
 * control.c
 *	  Controlling aggregations and showing their status: drop, pause,
 *	  resume, rebuild, sync, checkpoint, status, query_definition.
 *
 * Who may call what.  PUBLIC may execute these functions; each checks
 * what PostgreSQL would ask for the same act on the view: drop, pause,
 * resume, rebuild and checkpoint need ownership of the view (membership
 * in its owning role), sync needs SELECT on it.  Status shows every
 * aggregation of the database, but the error text, the failing offset and
 * the query only to members of the owning role (and superusers).
 *
 * Pausing, dropping or rebuilding an aggregation whose step is running
 * (perhaps stuck in a slow function) first stops that step (shmem.h), so
 * these return promptly and never wait for the owner's own code.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "absent.h"
#include "arguments.h"
#include "catalog.h"
#include "checkpoint.h"
#include "hooks.h"
#include "settings.h"
#include "shmem.h"
#include "source.h"

PG_FUNCTION_INFO_V1(keyedstate_drop_aggregation);
PG_FUNCTION_INFO_V1(keyedstate_forget_aggregation);
PG_FUNCTION_INFO_V1(keyedstate_sync);
PG_FUNCTION_INFO_V1(keyedstate_pause);
PG_FUNCTION_INFO_V1(keyedstate_resume);
PG_FUNCTION_INFO_V1(keyedstate_rebuild);
PG_FUNCTION_INFO_V1(keyedstate_checkpoint);
PG_FUNCTION_INFO_V1(keyedstate_query_definition);
PG_FUNCTION_INFO_V1(keyedstate_worker_status);
PG_FUNCTION_INFO_V1(keyedstate_worker_missing);
PG_FUNCTION_INFO_V1(keyedstate_slot_missing);

/* Whether a view was created by the current transaction. */
static bool
KsCreatedHere(Oid view_oid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(view_oid));
	bool		here = false;

	if (HeapTupleIsValid(tup))
	{
		here = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data));
		ReleaseSysCache(tup);
	}
	return here;
}

/* Drop an object by address (see hooks.h). */
void
KsDropObject(Oid classid, Oid objid, DropBehavior behavior)
{
	ObjectAddress addr;

	ObjectAddressSet(addr, classid, objid);
	performDeletion(&addr, behavior, PERFORM_DELETION_INTERNAL);
}

/* keyedstate.drop_aggregation(name): stop it, remove the view and the state. */
Datum
keyedstate_drop_aggregation(PG_FUNCTION_ARGS)
{
	KsNamedAgg	agg;

	KsRequireControl("keyedstate.drop_aggregation()", true);
	agg = KsLookupAggregation(PG_GETARG_TEXT_PP(0), AccessExclusiveLock, KS_RIGHT_OWNER);
	KsInterruptAtOnce(agg.def.id);
	KsDropObject(RelationRelationId, agg.def.view_oid, DROP_RESTRICT);
	KsForgetAggregation(agg.def.id, false);
	PG_RETURN_VOID();
}

/* keyedstate.forget_aggregation(id): for the sql_drop event trigger. */
Datum
keyedstate_forget_aggregation(PG_FUNCTION_ARGS)
{
	if (KsInstalled())			/* (an earlier build's: nothing runs, catalog.h) */
		KsForgetAggregation(PG_GETARG_INT32(0), false);
	PG_RETURN_VOID();
}

/* Pause an aggregation, or resume it (which also retries a failure). */
static void
KsSetPaused(text *name, bool paused)
{
	KsNamedAgg	agg;
	KsCatalogAccess acc;

	KsRequireControl(paused ? "keyedstate.pause()" : "keyedstate.resume()", true);
	agg = KsLookupAggregation(name, ShareUpdateExclusiveLock, KS_RIGHT_OWNER);
	if (paused)
		KsInterruptAtOnce(agg.def.id);
	KsCatalogOpen(&acc);
	KsCatalogSetPaused(agg.def.id, paused);
	KsCatalogClose(&acc);
	KsRequestAtCommit();
}

/* keyedstate.pause(name) */
Datum
keyedstate_pause(PG_FUNCTION_ARGS)
{
	KsSetPaused(PG_GETARG_TEXT_PP(0), true);
	PG_RETURN_VOID();
}

/* keyedstate.resume(name) */
Datum
keyedstate_resume(PG_FUNCTION_ARGS)
{
	KsSetPaused(PG_GETARG_TEXT_PP(0), false);
	PG_RETURN_VOID();
}

/*
 * keyedstate.rebuild(name): drop the state and consume the table again from
 * the beginning, as a new aggregation would (after the sequence went
 * backwards, for instance).  Status says 'rebuilding' until it caught up.
 */
Datum
keyedstate_rebuild(PG_FUNCTION_ARGS)
{
	KsNamedAgg	agg;
	KsCatalogAccess acc;

	KsRequireControl("keyedstate.rebuild()", true);
	agg = KsLookupAggregation(PG_GETARG_TEXT_PP(0), ShareUpdateExclusiveLock, KS_RIGHT_OWNER);
	KsInterruptAtOnce(agg.def.id);
	KsCatalogOpen(&acc);
	KsRebuild(&agg.def);
	KsCatalogClose(&acc);
	PG_RETURN_VOID();
}

/* Drop an aggregation's state, to consume its table again (see hooks.h). */
void
KsRebuild(KsAggDef *def)
{
	int64		start = KsSourceStartOffset(def->sequence_oid);

	KsCheckpointForget(def->id);
	KsRebuildAtCommit(def->id, KsCatalogRebuild(def->id, start));
}

/* sync's condition: consumed up to the target offset. */
static bool
KsSyncDone(const KsAggSlot *slot, void *arg)
{
	return slot->consumed_offset >= *(int64 *) arg;
}

/* The offset defaults of the source and its tree's tables (see source.h). */
static void
KsSyncCheckDefaults(KsNamedAgg *agg)
{
	Relation	rel;

	/*
	 * A source another session holds in a DDL command is not waited for:
	 * that would outlast the sync's timeout, and the worker checks the
	 * defaults at its next step all the same.
	 */
	if (!ConditionalLockRelationOid(agg->def.source_oid, AccessShareLock))
		return;
	rel = try_table_open(agg->def.source_oid, NoLock);
	if (rel == NULL)
	{
		UnlockRelationOid(agg->def.source_oid, AccessShareLock);
		return;
	}
	KsSourceCheckOwnDefault(rel, agg->def.offset_attnum, agg->def.sequence_oid, agg->name);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE || rel->rd_rel->relispartition)
		KsSourceCheckDefaults(agg->def.source_oid, agg->def.source_oid, agg->def.offset_attnum,
							  agg->def.sequence_oid, agg->name, false);
	table_close(rel, AccessShareLock);
}

/*
 * keyedstate.sync(name, timeout): wait until every row committed before the
 * call is in the live state; returns the consumed offset.
 */
Datum
keyedstate_sync(PG_FUNCTION_ARGS)
{
	KsNamedAgg	agg;
	int64		target = PG_INT64_MIN;
	TimestampTz deadline;

	KsRequireNameAndTimeout(fcinfo);
	KsRequireControl("keyedstate.sync()", false);
	agg = KsLookupAggregation(PG_GETARG_TEXT_PP(0), AccessShareLock, KS_RIGHT_SELECT);
	if (agg.def.paused)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s is paused", agg.name),
				 errhint("Call keyedstate.resume() first.")));

	/* no worker runs it before we commit: say so instead of timing out */
	if (KsCreatedHere(agg.def.view_oid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s was created by this transaction", agg.name),
				 errdetail("Its worker starts when the transaction commits."),
				 errhint("Call keyedstate.sync() after the commit.")));

	/*
	 * Rows whose offsets come from anything but the sequence would never be
	 * waited for: an offset default changed since the worker last looked
	 * fails the sync now, as it fails the aggregation at its next step.
	 */
	KsSyncCheckDefaults(&agg);
	/* nor in other waits that could only time out (absent.h) */
	KsRefuseHopelessSync(&agg.def, agg.name);

	/* every row committed before now has an offset up to this */
	(void) KsSequenceLastValue(agg.def.sequence_oid, &target, false);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KsTimeoutArgument(PG_GETARG_INTERVAL_P(1)));
	KsWakeAggregation(MyDatabaseId, agg.def.id);
	KsRefuseWaitHere(agg.def.id, agg.name); /* nothing runs in a template (newuser review 1, F1) */
	PG_RETURN_INT64(KsWaitForAggregation(MyDatabaseId, agg.def.id, agg.name,
										 agg.def.resume_count, deadline,
										 KsSyncDone, &target, "sync"));
}

/* keyedstate.checkpoint(name, timeout): checkpoint now and wait for it, timeout at most. */
Datum
keyedstate_checkpoint(PG_FUNCTION_ARGS)
{
	KsNamedAgg	agg;

	KsRequireNameAndTimeout(fcinfo);
	KsRequireControl("keyedstate.checkpoint()", false);
	agg = KsLookupAggregation(PG_GETARG_TEXT_PP(0), AccessShareLock, KS_RIGHT_OWNER);
	if (KsCatalogChangedHere(agg.def.id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s was changed by this transaction", agg.name),
				 errdetail("Its worker checkpoints it once the transaction that paused, resumed or altered it has ended."),
				 errhint("Call keyedstate.checkpoint() after the commit.")));
	KsRefuseWaitHere(agg.def.id, agg.name);
	if (!KsCheckpointAggregation(MyDatabaseId, agg.def.id, agg.name, agg.def.resume_count,
								 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PG_NARGS() < 2 ? 60 * 1000 :
															 KsTimeoutArgument(PG_GETARG_INTERVAL_P(1))),
								 false, "a checkpoint"))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s is not running", agg.name)));
	PG_RETURN_VOID();
}

/* Whether the current user may see an owner's private details. */
static bool
KsMayInspect(Oid owner)
{
	return OidIsValid(owner) && has_privs_of_role(GetUserId(), owner);
}

/*
 * keyedstate.query_definition(id): the stored query, deparsed with current
 * names; NULL unless the caller is a member of the owning role.  Deparsing
 * locks the tables the query reads: one that another session holds is not
 * waited for (a listing of every aggregation would wait for any owner's
 * lock), the stored definition text is shown instead.
 */
Datum
keyedstate_query_definition(PG_FUNCTION_ARGS)
{
	KsCatalogAccess acc;
	Oid			view_oid = InvalidOid;
	char	   *tree;
	char	   *definition = NULL;
	Query	   *query;
	ListCell   *lc;

	if (!KsInstalled())			/* (an earlier build's: its tables are elsewhere, catalog.h) */
		PG_RETURN_NULL();
	KsCatalogOpen(&acc);
	tree = KsCatalogQueryTree(PG_GETARG_INT32(0), &view_oid, &definition);
	KsCatalogClose(&acc);
	if (tree == NULL || !KsMayInspect(KsRelationOwner(view_oid)))
		PG_RETURN_NULL();
	if (tree[0] == '\0')		/* not bound here yet: the text is all there is */
		PG_RETURN_TEXT_P(cstring_to_text(definition));
	query = (Query *) stringToNode(tree);
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && !ConditionalLockRelationOid(rte->relid, AccessShareLock))
			PG_RETURN_TEXT_P(cstring_to_text(definition));
	}
	PG_RETURN_TEXT_P(cstring_to_text(pg_get_querydef(query, false)));
}

/*
 * keyedstate.worker_missing(): the message above when the database's first
 * worker could not start, so that no worker has taken up its aggregations;
 * or why none ever runs in it (a template: dbhooks.h).
 */
Datum
keyedstate_worker_missing(PG_FUNCTION_ARGS)
{
	char	   *why;

	KsRequirePreload();
	if ((why = KsNoWorkerHere()) != NULL)
		PG_RETURN_TEXT_P(cstring_to_text(why));
	if (KsLauncherMissing() || !ks_enabled)
		PG_RETURN_TEXT_P(cstring_to_text(KsNoWorkerMessage(KsLauncherMissing() ? KS_NO_LAUNCHER : KS_DISABLED)));
	if (!KsWorkerLacksProcess(0))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(KsNoWorkerMessage(-1)));
}

/*
 * keyedstate.slot_missing(): why an aggregation (or a part of it) that has
 * no slot waits, when every slot is in use; NULL otherwise.
 */
Datum
keyedstate_slot_missing(PG_FUNCTION_ARGS)
{
	KsRequirePreload();
	if (!KsAggSlotsFull())
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("no keyedstate aggregation slot is free for it (keyedstate.max_aggregations is %d)",
											  KsSharedState->max_aggs)));
}

/*
 * keyedstate.worker_status(): progress of this database's aggregations.
 * The lag is measured against the sequence now, so it is true also while
 * an aggregation is paused, failed or loading.
 */
Datum
keyedstate_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	KsRequirePreload();
	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsSlotRef	ref;
		KsAggSlot	copy;
		Datum		values[34];
		bool		nulls[34];
		bool		inspect;
		bool		reader;
		bool		missing = false;
		int64		high_water;
		int			c;
		int			why;

		if (!KsSlotAt(i, &ref) || !KsSlotSnapshot(&ref, &copy) || copy.dboid != MyDatabaseId)
			continue;

		inspect = KsMayInspect(copy.owner);
		/* figures of the data (counts, offsets: the sequence's value) to its readers */
		reader = inspect || (OidIsValid(copy.view_oid) &&
							 pg_class_aclcheck_ext(copy.view_oid, GetUserId(), ACL_SELECT,
												   &missing) == ACLCHECK_OK);
		/* a view dropped behind our back: its slot goes at the next reload (orphans.c) */
		if (missing)
			continue;
		high_water = copy.high_water;
		if (reader && OidIsValid(copy.sequence_oid))
		{
			int64		lastval;

			if (KsSequenceLastValue(copy.sequence_oid, &lastval, true))
				high_water = Max(high_water, lastval);
		}

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(copy.part.parent);
		/* a rebuild() committed, not loaded yet: the figures are the old run's */
		values[1] = CStringGetTextDatum(KsRunStateName(KsSlotRebuildPending(&copy) ?
													   KS_REBUILDING : copy.state));
		values[2] = Int64GetDatum(copy.consumed_offset);
		values[3] = Int64GetDatum(copy.checkpointed_offset);
		/* not loaded (since a restart, or its load failed): no offset yet, the catalog's shows */
		nulls[2] = nulls[3] = ((copy.state == KS_STARTING || copy.state == KS_FAILED ||
								copy.error[0] != '\0') &&
							   copy.consumed_offset == 0 && copy.checkpointed_offset == 0) ||
			KsSlotRebuildPending(&copy);
		values[4] = Int64GetDatum(high_water);
		values[5] = Int64GetDatum(copy.failed_offset);
		nulls[5] = !inspect || copy.failed_offset == 0;
		/* whose open transaction it waits for: who writes its source, to its readers (review security 66, L2) */
		if (!reader && copy.state == KS_WAITING && !KsSlotRebuildPending(&copy))
			values[1] = CStringGetTextDatum(KsRunStateName(KS_RUNNING));
		values[6] = Int32GetDatum(copy.waiting_pid);
		values[7] = Int64GetDatum(copy.keys);
		values[8] = Int64GetDatum(copy.visible_keys);
		values[9] = Int64GetDatum(copy.memory_bytes + copy.shared_bytes);
		values[10] = Int64GetDatum(copy.shared_bytes);
		values[11] = Int64GetDatum(copy.rows_consumed);
		values[12] = Int64GetDatum(copy.rows_replayed);
		values[13] = Float8GetDatum(copy.rows_per_second);
		values[14] = TimestampTzGetDatum(copy.last_checkpoint);
		nulls[14] = copy.last_checkpoint == 0;
		values[15] = CStringGetTextDatum(copy.error);
		nulls[15] = !inspect || copy.error[0] == '\0';
		/*
		 * A worker the launcher could not start, or none for its owner: why
		 * it is starting, to all (also one whose owner changed, which kept
		 * its former state: re-review today 19, F4).
		 */
		if (copy.runner_pid == 0 && (copy.parked_resume < 0 || (copy.state != KS_FAILED && copy.state != KS_PAUSED)) &&
			(why = KsWorkerMissing(copy.worker)) != 0)
		{
			values[1] = CStringGetTextDatum(KsRunStateName(KS_STARTING));
			values[15] = CStringGetTextDatum(KsNoWorkerMessage(why));
			nulls[15] = false;
		}
		values[16] = Float8GetDatum(copy.checkpoint_ms);
		values[17] = Int64GetDatum(copy.checkpoint_keys);
		values[18] = Int64GetDatum(copy.checkpoint_bytes);
		nulls[16] = nulls[17] = nulls[18] = copy.last_checkpoint == 0;
		values[19] = Int64GetDatum(copy.keys_expired);
		values[20] = Int64GetDatum(copy.rows_late);
		values[21] = Int64GetDatum(copy.cold_keys);
		values[22] = Int64GetDatum(copy.evictions);
		values[23] = Int64GetDatum(copy.reloads);
		/* its budget, a share of the server's: another owner's only to its readers */
		values[24] = Int64GetDatum(copy.memory_limit);
		nulls[24] = copy.memory_limit == 0 || !reader;
		/* the pool: its worker's number, and the pid running it now */
		values[25] = Int32GetDatum(copy.worker);
		nulls[25] = copy.worker < 0;
		values[26] = Int32GetDatum(copy.runner_pid);
		nulls[26] = copy.runner_pid == 0;
		/* which part of the aggregation (its id is the slot's) */
		values[27] = Int32GetDatum(copy.aggid);
		values[28] = Int32GetDatum(copy.part.part);
		values[29] = Int32GetDatum(copy.part.layout);
		values[30] = Int32GetDatum(copy.part.first_group);
		values[31] = Int32GetDatum(copy.part.last_group);
		values[32] = Int64GetDatum(copy.row_errors);
		nulls[32] = !reader;
		values[33] = Float8GetDatum(copy.checkpoint_pause_ms);
		nulls[33] = copy.last_checkpoint == 0 || !reader;
		/* and when it checkpointed, or how long that took: when the source got rows */
		for (c = 2; c <= 23 && !reader; c++)
			if (c != 15)
				nulls[c] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
