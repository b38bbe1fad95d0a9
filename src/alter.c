/*-------------------------------------------------------------------------
 *
 * alter.c
 *	  keyedstate.alter_aggregation(): changing what can change while an
 *	  aggregation runs.  A TTL, the checkpoint interval and the memory
 *	  budget apply at the worker's next step; parallelism rescales it
 *	  (seed.c); a window is changed in the analysed query and the state
 *	  rebuilt from the table.
 *
 * Who may call it: the view's owner (a member of the owning role), as for
 * the other control functions (control.c).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "rewrite/rewriteSupport.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "absent.h"
#include "arguments.h"
#include "catalog.h"
#include "checkpoint.h"
#include "hooks.h"
#include "settings.h"
#include "shmem.h"
#include "source.h"
#include "window.h"

PG_FUNCTION_INFO_V1(keyedstate_alter_aggregation);

/*
 * Before a rescale of an aggregation with a processing-time TTL: a
 * checkpoint of its parts, waited for (a minute at most, as checkpoint()).
 * The new parts seed from the retired parts' last checkpoints and judge
 * each key's TTL on its time there; a row consumed after that checkpoint
 * had renewed it, but processing time is not replayed, so a live key
 * whose time there had run out started afresh (exactness review 17, F1).
 * Now only rows consumed between this checkpoint and the retirement (the
 * moment the rescale's interrupt stops the parts) are replayed.  Only for
 * a call that is its own transaction at read committed: in a transaction
 * block, a lock it took before (a TRUNCATE of a table the worker reads)
 * would stop the worker that the wait waits for, and a transaction
 * snapshot would fail the rescale on the catalog rows the checkpoint
 * updated (re-review today 17, F2, F3).  Not when paused (KsRescale wants
 * all checkpointed already), failed or starting either.
 */
static void
KsCheckpointBeforeRescale(KsNamedAgg *agg)
{
	if (agg->def.ttl_us == 0 || agg->def.window_size_us != 0 || agg->def.paused ||
		IsTransactionBlock() || IsolationUsesXactSnapshot())
		return;
	(void) KsCheckpointAggregation(MyDatabaseId, agg->def.id, agg->name, agg->def.resume_count,
								   TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000),
								   true, "a checkpoint before the rescale");
}

/*
 * Rescale an aggregation (inside the catalog bracket): retire the parts
 * running it and add those of the next layout, seeded from them (seed.c).
 * The workers stop the retired parts' steps until this transaction ends,
 * and let go of them at the reload its commit brings.
 */
static void
KsRescale(KsNamedAgg *agg, int parallelism)
{
	const char *blocked = KsCatalogRescaleBlocked(agg->def.id);
	Datum		seeds;
	int32		layout;
	int64		start;

	/*
	 * Paused, the new parts consume nothing past their seeds' checkpoints:
	 * a part whose view shows more than it checkpointed (a pause right
	 * after rows came) must checkpoint first, as a paused run soon does.
	 */
	if (blocked == NULL && agg->def.paused)
	{
		KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
		int			nparts;
		int			n = KsFindAggParts(MyDatabaseId, agg->def.id, refs, KsSharedState->max_aggs, &nparts);
		int			i;

		for (i = 0; i < n && blocked == NULL; i++)
		{
			KsAggSlot	copy;

			if (KsSlotSnapshot(&refs[i], &copy) && copy.consumed_offset > copy.checkpointed_offset)
				blocked = "It is paused, and a part has not checkpointed all that its view shows yet.";
		}
	}
	if (blocked != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s cannot be rescaled now", agg->name),
				 errdetail("%s", blocked),
				 errhint("Try again later; keyedstate.workers shows its parts.")));
	KsInterruptAtOnce(agg->def.id);
	seeds = KsCatalogRescale(agg->def.id, parallelism, &layout, &start);
	/* from here an abort gives the new parts' reservations back (hooks.c) */
	KsRebuildAtCommit(agg->def.id, 0);
	KsCreateParts(agg->def.id, layout, parallelism, agg->def.max_parallelism, start, seeds,
				  KsRelationOwner(agg->def.view_oid), true, agg->def.view_oid, agg->def.live_oid,
				  agg->def.sequence_oid);
}

/*
 * The watermark of a windowed aggregation whose TTL the call lengthens or
 * removes, for KsCatalogAlter to record how far the old one reached
 * (DT_NOBEGIN otherwise).  Only a watermark that has seen every row a run
 * before it may have consumed will do: after a restart, until its worker
 * has read them again, the one published is lower than the one the
 * expired windows left at, and those windows came back (re-review today
 * 14, F1); nor one of the run a rebuild() replaces (KsAggregationWatermark).
 * Waits for it up to keyedstate.load_wait, then refuses.
 */
static TimestampTz
KsTtlReach(KsNamedAgg *agg, bool set_ttl, Datum ttl)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ks_load_wait);
	TimestampTz watermark;
	bool		known;

	/* (rebuilt by this transaction: nothing is expired yet; exactness review 45, F1) */
	if (agg->def.window_size_us == 0 || !set_ttl || agg->def.ttl_us == 0 ||
		(ttl != (Datum) 0 && KsIntervalEpochUs(DatumGetIntervalP(ttl)) <= agg->def.ttl_us) ||
		KsRebuiltHere(agg->def.id, false))
		return DT_NOBEGIN;
	while (!(watermark = KsAggregationWatermark(MyDatabaseId, agg->def.id, agg->def.resume_count, &known), known))
	{
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot lengthen or remove the TTL of aggregation %s now", agg->name),
					 errdetail("Its worker has not read again the rows it had consumed before its last restart or failure, so how far its TTL reached is not known yet."),
					 errhint("Call keyedstate.sync() (after keyedstate.resume() if it failed), then try again.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return watermark;
}

/* An interval of `us` microseconds (a window's, as the catalog keeps it). */
static Interval *
KsIntervalOfUs(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = us;
	return iv;
}

/*
 * Change an aggregation's window (inside the catalog bracket): its analysed
 * query rewritten for the new one (KsWindowChange: not analysed again, so
 * it runs what was analysed at creation), its definition for a restore
 * deparsed again, its state dropped and its table consumed again from the
 * beginning, as rebuild() does: panes of another slide, or of another time
 * column, cannot be made from the old ones.  The view keeps its columns.
 */
static void
KsAlterWindow(KsNamedAgg *agg, Interval *size, Interval *slide, const char *time_column,
			  int64 memory_limit)
{
	Oid			view_oid;
	Query	   *query = (Query *) stringToNode(KsCatalogQueryTree(agg->def.id, &view_oid, NULL));
	Oid			source = rt_fetch(1, query->rtable)->relid;
	KsWindowSpec *spec;
	AttrNumber	attnum;
	Oid			owner;

	if (agg->def.window_size_us == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregation %s has no window", agg->name),
				 errdetail("A window adds the columns window_start and window_end to an aggregation's view."),
				 errhint("Drop the aggregation and create it again with window_size and time_column.")));
	if (time_column == NULL)
		time_column = get_attname(source, KsWindowTimeColumn(query), false);
	spec = KsWindowArguments(size ? size : KsIntervalOfUs(agg->def.window_size_us),
							 slide ? slide : KsIntervalOfUs(agg->def.window_slide_us), time_column);
	KsWindowChange(query, spec);
	KsCheckMemoryLimitAllowed(memory_limit >= 0 ? memory_limit : agg->def.memory_limit,
							  spec->size_us > spec->slide_us);
	/* the worker reads the column as the owner, who must be allowed to */
	attnum = get_attnum(source, spec->time_column);
	owner = KsRelationOwner(view_oid);
	if (!KsMayReadColumn(source, attnum, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for column %s of table %s", spec->time_column, get_rel_name(source)),
				 errdetail("The owner of aggregation %s may not read it.", agg->name)));
	KsCatalogSetWindow(agg->def.id, KsCheckedQueryTree(query, agg->name), KsDeparseForRestore(query),
					   IntervalPGetDatum(KsIntervalOfUs(spec->size_us)),
					   IntervalPGetDatum(KsIntervalOfUs(spec->slide_us)), spec->time_column);
	/* the view depends on the columns the query reads now, as after CREATE OR REPLACE VIEW */
	deleteDependencyRecordsForSpecific(RewriteRelationId,
									   get_rewrite_oid(view_oid, ViewSelectRuleName, false),
									   DEPENDENCY_NORMAL, RelationRelationId, source);
	KsRecordQueryDependencies(view_oid, query, agg->def.sequence_oid);
	KsRebuild(&agg->def);
}

/*
 * keyedstate.alter_aggregation(name, ttl, checkpoint_interval, memory_limit,
 * parallelism, window_size, window_slide, time_column): change what can
 * change while it runs (a NULL argument leaves it; '0' removes a TTL or a
 * budget), at the worker's next step; a window change rebuilds the state.
 */
Datum
keyedstate_alter_aggregation(PG_FUNCTION_ARGS)
{
	KsNamedAgg	agg;
	KsCatalogAccess acc;
	Datum		ttl = (Datum) 0;
	Datum		interval = (Datum) 0;
	int64		memory_limit = -1;
	int			parallelism;
	bool		window;

	KsRequireControl("keyedstate.alter_aggregation()", true);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name must not be null")));
	KsRequireSetting(fcinfo, 1, "keyedstate.alter_aggregation()");
	agg = KsLookupAggregation(PG_GETARG_TEXT_PP(0), ShareUpdateExclusiveLock, KS_RIGHT_OWNER);
	if (!PG_ARGISNULL(1))
		ttl = KsTtlArgument(PG_GETARG_INTERVAL_P(1));
	if (!PG_ARGISNULL(2))
	{
		KsCheckpointIntervalArgument(PG_GETARG_INTERVAL_P(2));
		interval = PG_GETARG_DATUM(2);
	}
	if (!PG_ARGISNULL(3))
		memory_limit = KsMemoryLimitArgument(PG_GETARG_TEXT_PP(3));
	/* (a new window's is checked with it) */
	window = !PG_ARGISNULL(5) || !PG_ARGISNULL(6) || !PG_ARGISNULL(7);
	if (!window)
		KsCheckMemoryLimitAllowed(memory_limit >= 0 ? memory_limit : agg.def.memory_limit,
								  agg.def.window_size_us > agg.def.window_slide_us);
	parallelism = PG_ARGISNULL(4) ? agg.def.parallelism : PG_GETARG_INT32(4);
	KsCheckParallelismAllowed(parallelism, agg.def.max_parallelism,
							  memory_limit >= 0 ? memory_limit : agg.def.memory_limit);
	if (window && parallelism != agg.def.parallelism)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the window and the parallelism of aggregation %s at once", agg.name),
				 errhint("Change one, then the other, in two calls.")));
	if (parallelism != agg.def.parallelism)
		KsCheckpointBeforeRescale(&agg);
	if (window)
		KsInterruptAtOnce(agg.def.id);
	KsCatalogOpen(&acc);
	KsCatalogAlter(agg.def.id, !PG_ARGISNULL(1), ttl, interval, memory_limit,
				   window ? DT_NOBEGIN : KsTtlReach(&agg, !PG_ARGISNULL(1), ttl));
	if (parallelism != agg.def.parallelism)
	{
		KsRescale(&agg, parallelism);
		KsNoticeSharedParts(agg.name, parallelism);
	}
	if (window)
		KsAlterWindow(&agg, PG_ARGISNULL(5) ? NULL : PG_GETARG_INTERVAL_P(5),
					  PG_ARGISNULL(6) ? NULL : PG_GETARG_INTERVAL_P(6),
					  PG_ARGISNULL(7) ? NULL : NameStr(*PG_GETARG_NAME(7)), memory_limit);
	KsCatalogClose(&acc);
	KsRequestAtCommit();
	PG_RETURN_VOID();
}

