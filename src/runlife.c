/*-------------------------------------------------------------------------
 *
 * runlife.c
 *	  An aggregation's run in its worker: created for a definition, given a
 *	  new one, unloaded, handed over or released.  Part of the run; see
 *	  run.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/partition.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "aggcall.h"
#include "catalog.h"
#include "checkpoint.h"
#include "run.h"
#include "settings.h"
#include "store.h"


/* A new run for a definition; NULL if no slot is free (logged). */
KsAggRun *
KsRunCreate(KsAggDef *def, MemoryContext parent)
{
	KsSlotRef	ref;
	KsAggRun   *run;

	if (!KsClaimAggSlot(MyDatabaseId, def->id, &ref))
		return NULL;
	run = MemoryContextAllocZero(parent, sizeof(KsAggRun));
	run->cxt = AllocSetContextCreate(parent, "keyedstate aggregation", ALLOCSET_SMALL_SIZES);
	run->slot = ref.slot;
	run->slotref = ref;
	run->building = InvalidDsaPointer;
	run->seed_until = PG_INT64_MIN;
	run->pause_until = PG_INT64_MIN;
	/* handed over: the counters go on from the previous worker's */
	run->keys_expired = ref.slot->keys_expired;
	run->rows_late = ref.slot->rows_late;
	run->row_errors = run->row_errors_logged = ref.slot->row_errors;
	run->evictions = ref.slot->evictions;
	run->reloads = ref.slot->reloads;
	/* handed over (or parked) failed: it stays failed until keyedstate.resume() */
	if (ref.slot->state == KS_FAILED && ref.slot->resume_count == def->resume_count)
	{
		run->failed = true;
		run->failed_resume_count = def->resume_count;
	}
	else if (ref.slot->state == KS_FAILED)	/* resumed since: loading */
		KsSlotSetState(ref.slot, KS_STARTING, NULL, 0);
	KsRunSetDefinition(run, def);
	return run;
}

/* The partitioned tables above a definition's source, for its slot (see shmem.h). */
static Oid *
KsRunAbove(const KsAggDef *def, Oid *above)
{
	List	   *ancestors = get_rel_relispartition(def->source_oid) ?
		get_partition_ancestors(def->source_oid) : NIL;
	int			n = 0;
	ListCell   *lc;

	memset(above, 0, sizeof(Oid) * KS_SLOT_ABOVE);
	foreach(lc, ancestors)
		if (n < KS_SLOT_ABOVE)
			above[n++] = lfirst_oid(lc);
	list_free(ancestors);
	return above;
}

/* Give a run a new copy of its definition; the old copy is freed. */
void
KsRunSetDefinition(KsAggRun *run, KsAggDef *def)
{
	KsPartInfo	part;
	Oid			above[KS_SLOT_ABOVE];
	bool		starts_over = run->def == NULL;
	MemoryContext newcxt = AllocSetContextCreate(run->cxt, "keyedstate definition",
												 ALLOCSET_SMALL_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(newcxt);
	char	   *name = KsAggName(def->view_oid);	/* (in the definition's memory, freed with it) */

	MemoryContextSwitchTo(oldcxt);

	/*
	 * Its name for messages, again after ALTER VIEW ... RENAME (newuser
	 * review 1, F3); the old one is kept, pointers to it may live on.
	 */
	if (run->name == NULL || strcmp(run->name, name) != 0)
		run->name = MemoryContextStrdup(run->cxt, name);

	/* rebuild(): start over from the (now empty) checkpoint; loading before the new count shows (shmem.h) */
	if (run->def != NULL && def->rebuilding && def->resume_count != run->def->resume_count)
	{
		KsRunUnload(run);
		KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
		starts_over = true;
	}
	/* resume() cuts a passing error's wait short too (fault review 42, O1: a minute after a full disk) */
	if (run->def != NULL && def->resume_count != run->def->resume_count)
		run->retry_at = 0;
	run->def = KsCopyDefinition(def, newcxt);
	if (run->defcxt != NULL)
		MemoryContextDelete(run->defcxt);
	run->defcxt = newcxt;
	/* resume() after a failure: start over from the checkpoint */
	if (run->failed && def->resume_count != run->failed_resume_count)
	{
		run->failed = false;
		/* with a streak of passing errors of its own (review security 26, F5) */
		run->retry_at = 0;
		KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
	}
	/* the reload's snapshot may predate what the interrupting backend did */
	if (!run->interrupt_unseen)
		run->interrupted = false;
	KsRunPartInfo(def, &part);
	KsSlotSetDefinition(run->slot, KsRelationOwner(def->view_oid), def->view_oid, def->live_oid,
						def->sequence_oid, 0, def->resume_count, &part, KsRunAbove(def, above),
						starts_over && def->rebuilding && !def->has_checkpoint);
}

/* Which part of its aggregation a definition runs, for its slot. */
void
KsRunPartInfo(const KsAggDef *def, KsPartInfo *part)
{
	part->parent = def->agg_id;
	part->layout = def->layout;
	part->nparts = def->is_part ? def->parallelism : 1;
	part->part = def->part;
	part->first_group = def->first_group;
	part->last_group = def->last_group;
}

/* Whether a warning was logged in the last minute (*last_warned); else it is now. */
static bool
KsWarnedThisMinute(TimestampTz *last_warned)
{
	TimestampTz now = GetCurrentTimestamp();

	if (*last_warned != 0 && !TimestampDifferenceExceeds(*last_warned, now, 60 * 1000))
		return true;
	*last_warned = now;
	return false;
}

/*
 * Log that no aggregation slot is free for a definition (names in cxt), at
 * most once a minute per worker: every worker of the database, for every
 * waiting part, every 30 s, logged 298 lines a minute (re-review today 14,
 * F7); keyedstate.status says it for each.
 */
void
KsRunWarnNoSlot(const KsAggDef *def, MemoryContext cxt)
{
	static TimestampTz last_warned = 0;
	MemoryContext oldcxt;

	if (KsWarnedThisMinute(&last_warned))
		return;
	oldcxt = MemoryContextSwitchTo(cxt);

	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no keyedstate aggregation slot is free for aggregation %s", KsAggName(def->view_oid)),
			 def->is_part ? errdetail("Its part %d of %d waits for one; keyedstate.status shows why it does not start.",
									  def->part + 1, def->parallelism) :
			 errdetail("It waits for one; keyedstate.status shows why it does not start."),
			 errhint("Increase keyedstate.max_aggregations (currently %d) and restart the server, or drop aggregations.",
					 KsSharedState->max_aggs)));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Log that an aggregation of an owner beyond the workers its database may
 * run (KsWorkerMissing) waits for one, at most once a minute per worker;
 * keyedstate.status says it for each.
 */
void
KsRunWarnNoWorker(const KsAggDef *def, MemoryContext cxt)
{
	static TimestampTz last_warned = 0;
	MemoryContext oldcxt;
	int			owners = KsWorkerMissing(-1);

	if (owners <= 0 || KsWarnedThisMinute(&last_warned))
		return;
	oldcxt = MemoryContextSwitchTo(cxt);

	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no keyedstate worker is left for the owner of aggregation %s", KsAggName(def->view_oid)),
			 KsErrdetailNoWorker(owners),
			 errhint("Raise keyedstate.max_workers (and max_worker_processes with it), or give the database's aggregations to fewer owners with ALTER VIEW ... OWNER TO.")));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Drop everything a loaded run holds: its memory, and the rows its writer
 * still holds back.  Its published store stays (see KsRunRecordFailure).
 */
void
KsRunUnload(KsAggRun *run)
{
	if (run->loadcxt != NULL)
		KsStoreWriterRelease(&run->writer, run->slot);
	if (run->ckpt_plan != NULL)
		SPI_freeplan(run->ckpt_plan);
	run->ckpt_plan = NULL;
	/* a recovery that failed leaves its unpublished store behind */
	if (DsaPointerIsValid(run->building))
	{
		KsStoreDiscard(KsGetDsa(), run->building);
		run->building = InvalidDsaPointer;
	}
	if (run->loadcxt != NULL)
		MemoryContextDelete(run->loadcxt);
	run->loadcxt = NULL;
	run->rt = NULL;
	run->kt = NULL;
	run->windows = NULL;
	run->combinefns = NULL;
	run->callscxt = NULL;
	run->exprcxt = NULL;
	run->exprfuncs = NIL;
	run->econtext = NULL;
	run->applybuf = NULL;
	run->group_starts = NULL;
	run->seed_until = PG_INT64_MIN;
	run->seed_ckpt_due = false;
	run->ckpt_buf = NULL;
	run->ckpt = NULL;
	run->ckpt_skipped = false;
	run->ckpt_blocked = false;
	run->expire_cursor = 0;
	run->expire_wcursor = 0;
	run->expire_running = false;
	run->floor_swept = DT_NOBEGIN;
	run->recovered_expired = 0;
	run->garbage_states = 0;
	/* the memory budget's state (evict.h, cold.h); the filters were in loadcxt */
	run->cold_filter = NULL;
	run->cold_filter_bits = 0;
	run->cold_building = NULL;
	run->cold_sweeping = false;
	run->cold_sweep_again = false;
	run->cold_expired = NULL;
	run->ncold_expired = run->maxcold_expired = 0;
	run->memory_budget = 0;
	run->evict_target = 0;
	run->evict_hand = 0;
	run->evict_stalled = false;
	run->stall_writing = false;
	/* (a rebuild starts them afresh: review today 34's note) */
	run->cold_row_bytes = run->cold_row_count = run->cold_row_max = 0;
	run->reload_bytes = run->reload_measured = 0;
	run->window_share = 0;
	run->window_share_of = 0;
	run->budget_checked = 0;
	run->used_checked = 0;
	run->used_over = false;
	run->loaded = false;
}

/* Forget a run whose aggregation is gone (or the worker is leaving); run is freed. */
void
KsRunRelease(KsAggRun *run)
{
	KsRunUnload(run);
	KsStoreReleaseSlot(run->slot);
	MemoryContextDelete(run->cxt);
	pfree(run);
}

/*
 * Hand a run over to another worker of the pool (after its final
 * checkpoint): forget it here and let go of its slot, whose published rows
 * stay until the new worker replaces them.  run is freed.
 */
void
KsRunHandOver(KsAggRun *run)
{
	KsRunUnload(run);
	/* (none of its memory is the worker's any more: parked, it counts none, re-review today 30, F4) */
	KsSlotNoteMemory(run->slot, 0);
	KsUnclaimAggSlot(run->slot);
	MemoryContextDelete(run->cxt);
	pfree(run);
}

/* Park a paused run with nothing left to do (see run.h). */
void
KsRunParkIfIdle(KsAggRun *run)
{
	TimestampTz now = GetCurrentTimestamp();
	/* failed (given a worker again to refresh its text: KsUnparkAggSlots), or paused ... */
	bool		idle = (run->failed && run->failed_resume_count == run->def->resume_count) ||
	/* ... up to where it paused (step.c), all checkpointed, nothing being written or cleaned up */
		(run->loaded && run->def->paused && !run->failed && !run->interrupted &&
		 run->consumed >= Max(run->pause_until, run->seed_until) &&
		 run->checkpointed >= run->consumed && run->ckpt == NULL && !run->seed_ckpt_due &&
		 run->kt->nckpt == 0 && run->kt->npublish == 0 && run->ncold_expired == 0 &&
		 !run->retired_gc && run->ckpt_obsolete_below == 0 &&
		 run->cold_building == NULL && !run->cold_sweeping);

	if (!idle)
		run->idle_paused_since = 0;
	else if (run->idle_paused_since == 0)
		run->idle_paused_since = now;
	else if (TimestampDifferenceExceeds(run->idle_paused_since, now, KS_PARK_AFTER_MS))
		KsParkAggSlot(run->slot, run->def->resume_count);
}

/* A table changed (relcache invalidation): the source may need its index again. */
void
KsRunRelationChanged(KsAggRun *run, Oid relid)
{
	if (run->loaded)
		KsSourceRelationChanged(&run->source, relid);
}

/* Some function, or role, changed: compiled again, calls looked up again (see run.h). */
void
KsRunFunctionsChanged(KsAggRun *run, bool roles)
{
	if (run->loaded && (!roles || run->inlines))
		run->exprs_stale = true;
	if (!roles)
		run->calls_stale = true;
}

/* A run just loaded has its calls as looked up (see run.h). */
void
KsRunNoteCalls(KsAggRun *run)
{
	run->calls_stale = false;
	run->callscxt = NULL;
}

/*
 * Check what the calls of a loaded run keep (see run.h); false if the run
 * must load again.  Every call the run keeps is looked up again at once,
 * in a new context: the previous one goes with what they kept.
 */
bool
KsRunCheckCalls(KsAggRun *run)
{
	MemoryContext old = run->callscxt;

	if (!run->loaded || !run->calls_stale)
		return true;
	if (KsCallsReplaced(run->rt))
		return false;
	run->callscxt = AllocSetContextCreate(run->loadcxt, "keyedstate function calls",
										  ALLOCSET_SMALL_SIZES);
	KsCallsRefresh(run->rt, run->callscxt);
	KsFmgrRefresh(run->kt->hashfns, run->kt->nkeys, run->callscxt);
	KsFmgrRefresh(run->kt->eqfns, run->kt->nkeys, run->callscxt);
	if (run->windows != NULL)
	{
		KsFmgrRefresh(run->windows->hashfns, run->windows->nkeys, run->callscxt);
		KsFmgrRefresh(run->windows->eqfns, run->windows->nkeys, run->callscxt);
	}
	if (run->combinefns != NULL)
		KsFmgrRefresh(run->combinefns, run->rt->ncalls, run->callscxt);
	if (old != NULL)
		MemoryContextDelete(old);
	run->calls_stale = false;
	return true;
}

/* Whether keyedstate's tables are held against a load (see run.h). */
bool
KsRunLoadBlocked(KsAggRun *run)
{
	if (KsLockCatalogNow() && KsLockStateTables())
		return false;
	KsSlotSetStartWait(run->slot, KsStateTablesHolder(), KS_WAIT_LOAD_TABLES);
	return true;
}
