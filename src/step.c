/*-------------------------------------------------------------------------
 *
 * step.c
 *	  One step of one aggregation: load it if needed, move the frontier,
 *	  read and apply batches, publish, checkpoint when due.  See step.h.
 *
 * A step is one transaction run as the aggregation's owner (run.h).  It
 * spends at most a short budget reading and publishing, so that the
 * other aggregations of the database get their turn often; a backlog is
 * consumed over as many steps as it takes.  It never waits for a lock on
 * the source: a step that cannot get one is skipped and tried again soon.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "checkpoint.h"
#include "cold.h"
#include "crashguard.h"
#include "evict.h"
#include "expire.h"
#include "hooks.h"
#include "recovery.h"
#include "publish.h"
#include "settings.h"
#include "serialize.h"
#include "step.h"
#include "window.h"

/* Batches a step reads at most. */
#define KS_BATCHES_PER_STEP		8

static void KsRunPublish(KsAggRun *run, int64 offset);

/* Callbacks of the apply buffer: whether a key may be cold, and loading some back. */
static bool
KsRunColdMaybe(void *arg, uint32 hash)
{
	return KsColdMaybe((KsAggRun *) arg, hash);
}

static int64
KsRunColdLoad(void *arg, const uint32 *hashes, const uint32 *places, int n)
{
	KsAggRun   *run = (KsAggRun *) arg;
	int64		before = run->reload_bytes;

	/* the worker's own reads: a cold cache is not user code to time out */
	KsRunTimeoutPause(true);
	run->cold_row_count += KsColdReload(run, hashes, places, n);
	KsRunTimeoutResume(run);
	run->cold_row_bytes += run->reload_bytes - before;
	return run->reload_bytes - before;
}

/*
 * Load a run: analyse its stored query, prepare the aggregate calls, the
 * source and the projection, recover the checkpoint and publish every
 * recovered key.  Runs as the owner inside a step.  False when a rescale's
 * new part copied its seeds' evicted keys instead: it loads at the next
 * step, once the copy is committed (cold.h).
 */
static bool
KsRunLoad(KsAggRun *run)
{
	MemoryContext oldcxt;
	Query	   *query;
	TimestampTz started = GetCurrentTimestamp();
	int64		hw;

	KsRunUnload(run);
	/*
	 * A paused run consumes again what its view showed when a pause stopped
	 * its step; loaded again before it got there, it still goes as far.
	 */
	run->pause_until = run->def->paused ?	/* (or, restored, what it showed when dumped) */
		Max(Max(run->pause_until, KsStorePublishedOffset(run->slot)), run->def->pause_at) : PG_INT64_MIN;
	/* rows of keyedstate_internal.part no rescale could have written (catalog.h) */
	if (run->def->damage != NULL)
		KsCheckpointCorrupted(run->name, "%s", run->def->damage);
	/* before any of its code runs: its analysis and initial values may be what crashed */
	KsCrashGuardCheck(run);
	run->loadcxt = AllocSetContextCreate(run->cxt, "keyedstate aggregation state",
										 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(run->loadcxt);

	if (run->def->other_cluster)	/* made in another cluster: pg_upgrade */
		KsRebindDefinition(run->def, run->owner);
	query = (Query *) stringToNode(run->def->query_tree);
	KsAnalyzeQuery(query, &run->info);
	if (run->def->window_size_us > 0)
		KsWindowLayOut(&run->info);
	run->funcids = KsNodeFunctions((Node *) query);
	KsCheckFunctionPrivileges(run->info.aggrefs, run->funcids, NIL, run->owner);
	run->rt = KsAggRuntimeCreate(run->info.aggrefs, run->info.inputcols, run->info.filtercols,
								 run->loadcxt);
	run->kt = KsKeyTableCreate(run->info.nkeys, run->info.keytypes, run->info.keycolls,
							   run->info.keyeqops, run->info.naggs, run->loadcxt);
	/* places last in cold rows (cold.h): the aggregation's own secret */
	KsKeyTableSetPlaceSeed(run->kt, run->def->key_seed);
	run->applybuf = KsApplyBufferCreate(run->kt, run->rt, run->info.ninputcols,
										&run->cur_offset, run->loadcxt);
	run->applybuf->save_key = KsCheckpointSaveKey;
	KsRunNoteCalls(run);
	run->applybuf->save_arg = run;
	run->applybuf->cold_maybe = KsRunColdMaybe;
	run->applybuf->cold_load = KsRunColdLoad;
	run->applybuf->cold_arg = run;
	/* a part keeps its key groups' keys only */
	if (run->def->is_part)
	{
		run->applybuf->ngroups = run->def->max_parallelism;
		run->applybuf->first_group = run->def->first_group;
		run->applybuf->last_group = run->def->last_group;
		run->applybuf->group_skip = KsRunGroupSkip(run);
	}
	run->batchcxt = AllocSetContextCreate(run->loadcxt, "keyedstate batch",
										  ALLOCSET_DEFAULT_SIZES);
	KsStoreWriterInit(&run->writer, run->loadcxt);
	MemoryContextSwitchTo(oldcxt);
	KsSlotSetDefinition(run->slot, run->owner, run->def->view_oid, run->def->live_oid,
						run->def->sequence_oid, KsRowTypeHash(run->info.viewdesc),
						run->def->resume_count, NULL, NULL, false);

	/* into a store readers do not see: the view shows the last good state (a resume) or waits */
	KsRunTimeoutPause(true);
	KsBecomeWorker();
	if (KsRunLoadBlocked(run) || KsColdSeedCopy(run))
	{
		KsBecomeOwner(run);
		KsRunTimeoutResume(run);
		KsRunUnload(run);
		return false;
	}
	run->building = KsStoreCreate(KsGetDsa(), run->name);
	run->building_bytes = 0;
	run->building_visible = 0;
	KsRecover(run);
	run->applybuf->group_starts = run->group_starts;
	KsRunTimeoutResume(run);
	if (run->def->window_size_us > 0)
		KsWindowLoad(run);
	KsBecomeOwner(run);
	KsStoreInstall(run->slot, run->building, run->consumed, KsKeyTableInMemory(run->kt), run->cold_keys,
				   run->building_visible, run->building_bytes);
	run->building = InvalidDsaPointer;

	KsSourceInit(&run->source, &run->info, run->def->offset_attnum, run->def->sequence_oid,
				 run->name, run->consumed, (run->consumed <= 0 && run->def->sequence_seen <= 0) ||
				 (run->def->resume_count == 0 && run->def->rebuilding), run->loadcxt);
	/* its sequence must stay past what checkpoints saw it hand out (a rebuild's too) */
	run->source.seq_seen = Max(run->source.seq_seen, run->def->sequence_seen);
	KsRunCompile(run);

	/*
	 * Rows a run before this one had consumed are re-read: "replayed".
	 * After a crash that may be any row up to the sequence's current value;
	 * after a clean stop, none; a fresh aggregation has none either.
	 */
	run->replay_until = run->consumed;
	if (run->def->has_checkpoint && !run->after_clean_stop &&
		KsSequenceLastValue(run->def->sequence_oid, &hw, false))
		run->replay_until = hw;
	/*
	 * (a run without a checkpoint, too: its watermark is known past them,
	 * shmem.h; unless its slot's is known already: a fresh aggregation's,
	 * or one a run before it in this server published, which never goes back)
	 */
	run->seen_until = run->consumed;
	if (!KsSlotWatermarkKnown(run->slot) && KsSequenceLastValue(run->def->sequence_oid, &hw, false))
		run->seen_until = Max(run->consumed, hw);
	run->rebuild_until = PG_INT64_MIN;
	if (run->def->rebuilding && KsSequenceLastValue(run->def->sequence_oid, &hw, false))
		run->rebuild_until = hw;
	run->expire_cursor = 0;
	run->expire_wcursor = 0;
	run->expire_running = false;
	run->expire_next = 0;
	run->last_checkpoint = GetCurrentTimestamp();
	run->rate_since = run->last_checkpoint;
	run->rate_rows = 0;
	run->last_rate = 0;
	KsSlotCheckpointed(run->slot, run->checkpointed, 0, 0, 0, 0, 0, 0);

	(void) KsEvictBudget(run);
	KsRunPublish(run, run->consumed);
	run->loaded = true;
	ereport(LOG,
			(errmsg("keyedstate aggregation %s%s recovered " UINT64_FORMAT " keys at offset " INT64_FORMAT " in %ld ms",
					run->name, run->def->is_part ? psprintf(" part %d", run->def->part) : "",
					run->kt->nentries, run->consumed,
					TimestampDifferenceMilliseconds(started, GetCurrentTimestamp())),
			 /* (user review 50, F8: "recovered 0 keys" of 200,000) */
			 run->cold_keys > 0 ? errdetail("Its other " INT64_FORMAT " keys stay evicted, and are read back when rows come for them.",
											 run->cold_keys) : 0));
	return true;
}

/* Publish what changed (the keys' row types unchanged): keys, or the windows of the panes that changed. */
static void
KsRunPublish(KsAggRun *run, int64 offset)
{
	KsKeyTableCheckShapes(run->kt, run->name);
	if (KsWindowSliding(run))
		KsWindowPublish(run, offset);
	else
		KsPublish(run, offset);
}

/* Callback of the source reader: one input row into the apply buffer. */
static void
KsApplyRow(TupleTableSlot *slot, void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	KsApplyBufferAdd(run->applybuf, slot);
}

/*
 * Whether the step should stop reading: it has read for its budget, or
 * publishing the keys it changed would already take long (slow final
 * functions) -- a step must end well within the step timeout -- or the
 * worker is leaving.
 */
static bool
KsRunBudgetSpent(void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	return KsRunTerminating() ||
		GetCurrentTimestamp() >= run->step_budget_end ||
		run->kt->npublish * run->publish_us_per_key >= KsRunBudgetMs(run, KS_PUBLISH_BUDGET_MS) * 1000.0 ||
		KsEvictHold(run);
}

/*
 * Read and apply rows after `lo`, up to `hi` or about a batch of them;
 * returns the offset up to which they are applied.  They become visible
 * with the next KsPublish, which the step calls once after its batches.
 */
static int64
KsRunBatch(KsAggRun *run, int64 lo, int64 hi, KsSlotProgress *progress)
{
	uint64		nrows;
	int64		upto;

	run->applybuf->now = GetCurrentTimestamp();
	/* alter_aggregation() may have changed the TTL of a windowed aggregation */
	run->applybuf->win_ttl = run->def->window_size_us > 0 ? run->def->ttl_us : 0;
	run->applybuf->win_floor = run->def->window_size_us > 0 ? run->def->ttl_floor : DT_NOBEGIN;
	/* ... or of keys (processing time), which a row may reach before the sweep */
	run->applybuf->expire_key = run->def->window_size_us == 0 &&
		(run->def->ttl_us > 0 || run->def->ttl_floor != DT_NOBEGIN) ? KsExpireIfOutlived : NULL;
	/* a budget's keys come back a quarter of it per chunk at most (apply.c), by their cold rows' mean size */
	run->applybuf->reload_cap = run->memory_budget / 4;
	run->applybuf->reload_rows = run->applybuf->reload_cap > 0 && run->cold_row_count > 0 ?
		(int) Min(Max(run->applybuf->reload_cap / Max(run->cold_row_bytes / run->cold_row_count, 1), 1), PG_INT32_MAX) : 0;
	run->source.stop_rows = run->applybuf->reload_rows;	/* (the hold between such chunks) */
	run->in_code = true;
	upto = KsSourceRead(&run->source, lo, hi, (uint64) ks_batch_size, KsRunBudgetSpent,
						KsApplyRow, run, &run->cur_offset, &nrows);
	KsApplyBufferFlush(run->applybuf);
	run->in_code = false;
	run->cur_offset = 0;
	run->watermark = run->applybuf->watermark;
	run->rows_late += run->applybuf->rows_late;
	run->applybuf->rows_late = 0;
	run->rate_rows += nrows;
	progress->rows_consumed += nrows;
	if (lo < run->replay_until)
		progress->rows_replayed += nrows;
	return upto;
}

/*
 * How far a paused run consumes: the rows its view showed when a pause
 * stopped its step, and for a part a rescale seeded while paused, the rows
 * its seeds had consumed (it has no checkpoint before, and a paused
 * aggregation that never checkpointed could not be rescaled again).
 */
static int64
KsPausedUntil(KsAggRun *run)
{
	return Max(run->pause_until, run->seed_until);
}

/* Whether a loaded run should checkpoint now; lowers *timeout to when it will. */
static bool
KsCheckpointDue(KsAggRun *run, TimestampTz now, long *timeout)
{
	long		due_in;
	bool		requested;

	/* a part a rescale seeded has a checkpoint only once past every seed (seed.c) */
	if (run->consumed < run->seed_until)
		return false;
	/* past them: the first one at once, so no rescale waits for rows to come */
	if (run->seed_ckpt_due)
		return true;
	(void) KsSlotCheckpointRequested(run->slot, &requested);
	if (requested)
		return true;
	/* over the memory budget: a capture evicts (evict.h) */
	if (KsEvictDue(run))
		return true;
	/* a paused one keeps what it consumed: checkpointed once it caught up */
	if (run->def->paused && run->consumed > run->checkpointed && run->consumed >= KsPausedUntil(run))
		return true;
	/* nothing changed, and no cold row the TTL's sweep found expired waits (cold.h) */
	if (run->kt->nckpt == 0 && run->consumed == run->checkpointed && run->ncold_expired == 0)
		return false;
	due_in = run->def->checkpoint_interval_ms -
		TimestampDifferenceMilliseconds(run->last_checkpoint, now);
	/* expired cold rows leave with a checkpoint: within a sweep interval (cold.h) */
	if (run->ncold_expired >= KS_COLD_EXPIRED_MAX)
		due_in = 0;
	else if (run->ncold_expired > 0)
		due_in = Min(due_in, KsExpireIntervalMs(run) -
					 TimestampDifferenceMilliseconds(run->last_checkpoint, now));
	if (due_in <= 0)
		return true;
	*timeout = Min(*timeout, due_in);
	return false;
}

/*
 * Load the run if needed; pick up changes of its owner and functions.
 * False when it is not loaded yet: a rescale's new part copied its seeds'
 * evicted keys in this step, and loads in the next (cold.h).
 */
static bool
KsRunPrepare(KsAggRun *run)
{
	/* ALTER VIEW ... OWNER TO, REASSIGN OWNED: run as the new owner; the same for a function */
	if (run->loaded && (run->owner != run->loaded_owner || !KsRunCheckCalls(run)))
		KsRunUnload(run);
	if (!run->loaded)
	{
		KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
		run->loaded_owner = run->owner;
		if (!KsRunLoad(run))
			return false;
	}
	else if (run->exprs_stale)
		KsRunCompile(run);
	/* privileges revoked since (also through a membership): as the owner, every step */
	KsCheckFunctionPrivileges(run->info.aggrefs, run->funcids, run->exprfuncs, run->owner);
	return true;
}

/*
 * Lock the source and its sequence for a step, without waiting: a long
 * ALTER TABLE or a TRUNCATE holding them would otherwise stall the worker.
 */
static bool
KsRunLockSource(KsAggRun *run)
{
	return KsSourceLock(run->def->source_oid, run->def->sequence_oid);
}

/* One step of one aggregation (see run.h). */
void
KsRunStep(KsAggRun *run, long *timeout)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback errcb;
	volatile bool did_checkpoint = false;
	volatile TimestampTz ckpt_from = 0;
	KsSlotProgress progress;
	KsStepMark	mark;

	if (run->failed)
		KsRunParkIfIdle(run);
	if (run->failed || run->interrupted || KsRunRetryLater(run, timeout))
		return;
	if (!KsRunEnterStep(run, &mark))
		return;
	run->step_mark = mark;
	memset(&progress, 0, sizeof(progress));
	progress.rows_per_second = -1;
	progress.ckpt_blocker = -1;
	errcb.previous = error_context_stack;

	PG_TRY();
	{
		TimestampTz now;
		int			batches = 0;
		int			nestlevel;
		bool		locked = false;
		bool		source_busy = false;	/* another session holds the source */
		int64		safe;

		nestlevel = KsRunBegin(run);
		errcb.callback = KsRowErrorContext;
		errcb.arg = run;
		error_context_stack = &errcb;

		/*
		 * A paused aggregation is loaded too (its view keeps its state, and
		 * it is checkpointed) but consumes nothing, except the rows its view
		 * showed when a pause stopped a step and unloaded it: those are
		 * consumed again (pause_until), so that they are checkpointed.
		 */
		if (KsRunSourceReady(run))
		{
			/* never wait for a lock on the source: skip the step instead */
			locked = KsRunLockSource(run);
			source_busy = !locked;
			if (!locked)
				*timeout = Min(*timeout, 100);
		}
		if (locked && !KsRunPrepare(run))
		{
			/* copied, or a backend holds the part's row: load soon, never spin */
			locked = false;
			*timeout = Min(*timeout, 100);
		}
		if (locked)
		{
			if (!run->def->paused || run->consumed < KsPausedUntil(run))
			{
				/* resumed: running before the rows it consumes show (a sync returns then) */
				if (!run->def->paused && run->slot->state == KS_PAUSED)
					KsSlotSetState(run->slot, KS_RUNNING, NULL, 0);
				KsSourceCheck(&run->source);
				safe = KsSourceAdvance(&run->source);
				if (run->def->paused)
					safe = Min(safe, KsPausedUntil(run));
				run->applied = run->consumed;
				/* waiting for memory: freed internal states may be most of it */
				if (run->evict_holding)
					KsExpireCompact(run);
				run->step_budget_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																   KsRunBudgetMs(run, KS_STEP_BUDGET_MS));
				while (run->applied < safe && batches < KS_BATCHES_PER_STEP &&
					   (batches == 0 ? !KsEvictHold(run) : !KsRunBudgetSpent(run)))
				{
					run->applied = KsRunBatch(run, run->applied, safe, &progress);
					batches++;
					/* for the crash guard too: a step's rows may grow it by gigabytes */
					KsSlotNoteMemory(run->slot, KsRunMemoryBytes(run));
					KsCheckInterrupts();
					/* a partition is locked by a DROP or TRUNCATE: later */
					if (run->source.leaf_busy)
						break;
				}
				KsExpireStep(run, GetCurrentTimestamp(), timeout);
				/* the TTL's sweep of the cold keys, a bounded part per step, not timed:
				 * after a restart its reads may wait for the disk (cold.h) */
				if (run->cold_sweeping || run->cold_building != NULL)
				{
					KsRunTimeoutPause(true);
					if (run->cold_sweeping && KsColdSweep(run, GetCurrentTimestamp()))
						*timeout = Min(*timeout, 10);
					/* a slice of the cold filter being built (cold.h) */
					if (run->cold_building != NULL)
					{
						KsBecomeWorker();
						KsColdFilterStep(run);
						KsBecomeOwner(run);
					}
					KsRunTimeoutResume(run);
				}
				if (batches > 0 || run->kt->npublish > 0)
				{
					TimestampTz started = GetCurrentTimestamp();
					int64		nkeys = run->kt->npublish;

					KsRunPublish(run, run->applied);
					if (nkeys > 0)
						run->publish_us_per_key = (run->publish_us_per_key +
												   (double) (GetCurrentTimestamp() - started) / nkeys) / 2;
				}
				/* memory evicted or expired keys left behind (expire.h) */
				KsExpireCompactKeys(run);
				if (run->source.leaf_busy)
					*timeout = Min(*timeout, 100);
				else if (run->consumed < safe)	/* (held for memory, no spin: review robustness3, F3) */
					*timeout = batches > 0 || !run->evict_holding ? 0 : Min(*timeout, 100);
				else if (run->source.frontier.nwaits > 0)
					*timeout = Min(*timeout, 10);
			}

			/* after a part's full checkpoint: the retired parts it no longer needs go */
			if (run->retired_gc)
			{
				run->retired_gc = false;
				KsBecomeWorker();
				KsCheckpointForgetRetired(run);
				KsBecomeOwner(run);
			}
		}

		/*
		 * A checkpoint being written goes on by a slice; a due one is
		 * captured, also while another session holds the source (a long
		 * VACUUM FULL): it reads only the state, as the final one does.
		 */
		if (locked || (source_busy && run->loaded))
		{
			now = GetCurrentTimestamp();
			if (run->ckpt != NULL || KsCheckpointDue(run, now, timeout))
			{
				KsCkptProgress progress;

				/* a pause timed to the commit (checkpoint.h), and not bounded */
				ckpt_from = now;
				KsRunTimeoutPause(false);
				if (run->ckpt == NULL)
					KsCheckpointStart(run, false);
				progress = KsCheckpointContinue(run, false);
				did_checkpoint = (progress == KS_CKPT_WRITTEN);
				/* reading does not wait for a checkpoint that cannot go on (evict.h) */
				run->ckpt_skipped = (progress == KS_CKPT_SKIPPED);
				if (progress <= KS_CKPT_SKIPPED)
					*timeout = Min(*timeout, 100);
				else if (progress == KS_CKPT_MORE)
					*timeout = 0;
			}
			/* (also while checkpoints follow each other: checkpoint.h) */
			if (run->ckpt_obsolete_below > 0)
				KsCheckpointDeleteObsolete(run, timeout);
		}

		error_context_stack = errcb.previous;
		KsRunEnd(nestlevel);
		KsSlotLeaveStep(run->slot);

		if (did_checkpoint)
		{
			KsCheckpointDone(run, ckpt_from);
			run->seed_ckpt_due = false;
			/* its victims leave the view and the key count at the next publish: now */
			if (run->kt->npublish > 0 || run->evict_holding)
				*timeout = 0;
		}
		else
			KsCheckpointPaused(run, ckpt_from);

		/* progress and state for keyedstate.status */
		KsRunReport(run, &progress, source_busy, source_busy ? KsLockHolderPid(run->def->source_oid, AccessShareLock) : 0);
		KsRunParkIfIdle(run);
	}
	PG_CATCH();
	{
		error_context_stack = errcb.previous;
		KsSlotLeaveStep(run->slot);
		KsRunStepError(run, cxt, &mark);
		/* what a failed run saw its sequence hand out outlives it (checkpoint.h) */
		if (run->failed && run->seq_seen_lost > run->def->sequence_seen)
			KsCheckpointKeepSequenceSeen(run, run->seq_seen_lost);
		run->seq_seen_lost = 0;
	}
	PG_END_TRY();
}

/* Final checkpoint of a healthy run (clean shutdown). */
void
KsRunShutdownCheckpoint(KsAggRun *run)
{
	MemoryContext cxt = CurrentMemoryContext;
	KsStepMark	mark;

	if (!run->loaded || run->failed || run->interrupted || run->consumed < run->seed_until)
		return;
	if (!KsRunEnterStep(run, &mark))
		return;
	PG_TRY();
	{
		int			nestlevel = KsRunBegin(run);
		KsCkptProgress progress = KS_CKPT_WRITTEN;

		KsRunTimeoutPause(false);
		/* finish the checkpoint being written, then write a last one whole */
		if (run->ckpt != NULL)
		{
			progress = KsCheckpointContinue(run, true);
			if (progress == KS_CKPT_WRITTEN)
				KsCheckpointDone(run, 0);
		}
		/* (one with nothing to write marks the stop clean: it started no checkpoint to finish) */
		if (progress == KS_CKPT_WRITTEN && KsCheckpointUnchanged(run))
		{
			KsCheckpointMarkCleanStop(run);
			progress = KS_CKPT_MORE;
		}
		else if (progress == KS_CKPT_WRITTEN)
		{
			KsCheckpointStart(run, true);
			progress = KsCheckpointContinue(run, true);
		}

		KsRunEnd(nestlevel);
		KsSlotLeaveStep(run->slot);
		if (progress == KS_CKPT_WRITTEN)
			KsCheckpointDone(run, 0);
	}
	PG_CATCH();
	{
		KsSlotLeaveStep(run->slot);
		KsRunStepError(run, cxt, &mark);
	}
	PG_END_TRY();
}
