/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The database worker: runs every aggregation of one database.
 *
 * The loop follows worker_spi: signal handlers before unblocking signals,
 * one transaction per unit of work, a latch wait that exits on postmaster
 * death.  Each pass over the aggregations:
 *	1. reloads the list of aggregations when a backend asked for it
 *	   (create, drop, pause, resume bump the database slot's counter);
 *	2. for each running aggregation, in its own transaction: moves the
 *	   input frontier, reads the rows up to it in batches, applies them to
 *	   the worker-local keyed state, publishes the changed keys' view rows
 *	   with the new offset, and checkpoints when due;
 *	3. sleeps until woken by a commit into a source table (the AFTER INSERT
 *	   statement trigger sets our latch), a request, or a timeout.
 *
 * User code (expressions, aggregate support functions) runs as the
 * aggregation's owner with SECURITY_RESTRICTED_OPERATION, search_path set
 * to pg_catalog and the settings captured at creation; the worker itself
 * connects as the bootstrap superuser only to read and write keyedstate's
 * own tables.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "checkpoint.h"
#include "settings.h"
#include "store.h"
#include "worker.h"

/* How far ahead of the publishing loops keys and rows are prefetched. */
#define KS_PUBLISH_PREFETCH		16

/* Rows applied per aggregation before the loop looks at the others. */
#define KS_BATCHES_PER_STEP		8

/* How long an open writer holds the frontier before we say 'waiting'. */
#define KS_WAITING_AFTER_MS		1000

static volatile sig_atomic_t got_sigterm = false;

static MemoryContext ks_worker_cxt = NULL;
static List *ks_runs = NIL;
static KsDbSlot *ks_mydb = NULL;

/* The aggregation whose settings the session has, or -1 (KsBeginStep). */
static int32 ks_settings_for = -1;

/* The worker's own identity, saved at the start of each transaction. */
static Oid	ks_worker_userid = InvalidOid;
static int	ks_worker_sec_context = 0;

/* SIGTERM: finish the current step, checkpoint, and leave. */
static void
KsWorkerSigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Run the owner's code: its identity, restricted. */
void
KsBecomeOwner(KsAggRun *run)
{
	SetUserIdAndSecContext(run->def->owner,
						   ks_worker_sec_context | SECURITY_RESTRICTED_OPERATION);
}

/* Back to the worker's identity. */
void
KsBecomeWorker(void)
{
	SetUserIdAndSecContext(ks_worker_userid, ks_worker_sec_context);
}

/*
 * Relcache invalidation callback: the source table of some aggregation may
 * have been altered (columns renamed...), so its input statement must be
 * deparsed again from the stored tree before the next batch.
 */
static void
KsRelcacheCallback(Datum arg, Oid relid)
{
	ListCell   *lc;

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (run->loaded && (relid == InvalidOid || relid == run->def->source_oid))
			run->plan_stale = true;
	}
}

/* before_shmem_exit: let the launcher know this database has no worker. */
static void
KsWorkerDetach(int code, Datum arg)
{
	if (ks_mydb == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (ks_mydb->worker_pid == MyProcPid)
	{
		ks_mydb->worker_pid = 0;
		ks_mydb->worker_procno = -1;
	}
	LWLockRelease(KsSharedState->lock);
}

/* Update the shared progress of a run under its slot lock. */
static void
KsSetRunState(KsAggRun *run, KsRunState state, const char *error)
{
	KsAggSlot  *slot = run->slot;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->state = state;
	if (error != NULL)
		strlcpy(slot->error, error, KS_ERROR_LEN);
	else if (state != KS_FAILED)
	{
		slot->error[0] = '\0';
		slot->failed_offset = 0;
	}
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* Drop everything a loaded run holds in memory (not its published rows). */
static void
KsUnloadRun(KsAggRun *run)
{
	if (run->plan != NULL)
		SPI_freeplan(run->plan);
	if (run->ckpt_plan != NULL)
		SPI_freeplan(run->ckpt_plan);
	run->plan = NULL;
	run->ckpt_plan = NULL;
	/* a recovery that failed leaves its unpublished store behind */
	if (DsaPointerIsValid(run->building))
	{
		KsStoreDestroy(KsGetDsa(), run->building);
		run->building = InvalidDsaPointer;
	}
	if (run->loadcxt != NULL)
		MemoryContextDelete(run->loadcxt);
	run->loadcxt = NULL;
	run->rt = NULL;
	run->kt = NULL;
	run->applybuf = NULL;
	run->ckpt_buf = NULL;
	run->ckpt_sorted = NULL;
	run->ckpt_maxsorted = 0;
	run->loaded = false;
}

/* Forget a run whose aggregation is gone (or the worker is leaving). */
static void
KsReleaseRun(KsAggRun *run)
{
	KsUnloadRun(run);
	if (run->slot != NULL)
		KsReleaseAggSlot(run->slot);
	MemoryContextDelete(run->cxt);
}

/* Deparse and prepare the input statement of a run. */
static void
KsPrepareInput(KsAggRun *run)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(run->loadcxt);
	char	   *sql;
	Oid			argtypes[2] = {INT8OID, INT8OID};
	SPIPlanPtr	plan;
	int			ncols;

	if (run->plan != NULL)
	{
		SPI_freeplan(run->plan);
		run->plan = NULL;
	}
	sql = KsBuildInputQuery(&run->info, run->def->offset_attnum,
							run->inputcols, run->filtercols, &ncols);
	MemoryContextSwitchTo(oldcxt);

	/* a generic plan: the batch bounds do not change its shape, so plan once */
	plan = SPI_prepare_cursor(sql, 2, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "could not prepare input of aggregation %s: %s",
			 run->name, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	run->plan = plan;
	run->plan_stale = false;
}

/*
 * Build the view-row projection: the view's target list and HAVING, already
 * rewritten over the result tuple [keys, aggregate results].
 */
static void
KsPrepareProjection(KsAggRun *run)
{
	List	   *tlist = NIL;
	ListCell   *lc;

	foreach(lc, run->info.resulttlist)
	{
		TargetEntry *tle = flatCopyTargetEntry(lfirst(lc));

		tle->expr = expression_planner(tle->expr);
		tlist = lappend(tlist, tle);
	}
	run->econtext = CreateStandaloneExprContext();
	run->resultslot = MakeSingleTupleTableSlot(run->info.resultdesc, &TTSOpsVirtual);
	run->viewslot = MakeSingleTupleTableSlot(run->info.viewdesc, &TTSOpsVirtual);
	run->proj = ExecBuildProjectionInfo(tlist, run->econtext, run->viewslot,
										NULL, run->info.resultdesc);
	run->having = NULL;
	if (run->info.having != NULL)
		run->having = ExecInitQual(make_ands_implicit(expression_planner(run->info.having)),
								   NULL);
}

/*
 * Publish the keys changed since the last publish together with a new
 * consumed offset (the three steps of store.h).
 */
static void
KsPublish(KsAggRun *run, int64 offset)
{
	KsKeyTable *kt = run->kt;
	KsAggSlot  *slot = run->slot;
	dsa_area   *dsa = KsGetDsa();
	KsStoreHeader *hdr;
	int			n = kt->npublish;
	int			nkeys = kt->nkeys;
	int			naggs = run->rt->ncalls;
	dsa_pointer *newtuples;
	dsa_pointer *newentries;
	dsa_pointer *oldtuples;
	MinimalTuple *inplace;
	dsa_pointer *inplace_at;
	uint32	   *newbytes;
	int64		nnew = 0;
	int64		visible_delta = 0;
	int64		bytes_delta = 0;
	bool		oom = false;
	MemoryContext oldcxt;
	int			i;

	oldcxt = MemoryContextSwitchTo(run->batchcxt);
	newtuples = palloc0(sizeof(dsa_pointer) * Max(n, 1));
	newentries = palloc0(sizeof(dsa_pointer) * Max(n, 1));
	oldtuples = palloc0(sizeof(dsa_pointer) * Max(n, 1));
	newbytes = palloc0(sizeof(uint32) * Max(n, 1));
	inplace = palloc0(sizeof(MinimalTuple) * Max(n, 1));
	inplace_at = palloc0(sizeof(dsa_pointer) * Max(n, 1));

	/*
	 * step 1: build the new rows without the lock, and allocate DSA for
	 * those that cannot overwrite the key's current row (new keys, and rows
	 * whose size changed)
	 */
	KsBecomeOwner(run);
	for (i = 0; i < n && !oom; i++)
	{
		KsKeyEntry *e = kt->publish[i];
		TupleTableSlot *rs = run->resultslot;
		bool		visible = true;

		/* the keys to publish lie anywhere in memory: fetch ahead */
		if (i + KS_PUBLISH_PREFETCH < n)
			KsKeyTablePrefetchLines(kt, kt->publish[i + KS_PUBLISH_PREFETCH]);
		if (i + KS_PUBLISH_PREFETCH / 2 < n)
			KsAggPrefetchStates(run->rt, kt->publish[i + KS_PUBLISH_PREFETCH / 2]->states);

		ExecClearTuple(rs);
		memcpy(rs->tts_values, e->keys, sizeof(Datum) * nkeys);
		memcpy(rs->tts_isnull, e->keynulls, sizeof(bool) * nkeys);
		KsAggFinalize(run->rt, e->states, rs->tts_values + nkeys, rs->tts_isnull + nkeys);
		ExecStoreVirtualTuple(rs);
		run->econtext->ecxt_scantuple = rs;
		if (run->having != NULL)
			visible = ExecQual(run->having, run->econtext);
		newtuples[i] = InvalidDsaPointer;
		if (visible)
		{
			TupleTableSlot *vs = ExecProject(run->proj);
			MinimalTuple mt = ExecCopySlotMinimalTuple(vs);

			if (DsaPointerIsValid(e->shared_tuple) &&
				e->shared_bytes == KsStoreTupleBytes(mt))
			{
				inplace[i] = mt;
				inplace_at[i] = e->shared_tuple;
			}
			else
			{
				newtuples[i] = KsStoreAllocTuple(dsa, mt);
				if (!DsaPointerIsValid(newtuples[i]))
					oom = true;
				else
				{
					newbytes[i] = KsStoreTupleBytes(mt);
					bytes_delta += newbytes[i];
				}
			}
		}
		if (!oom && !DsaPointerIsValid(e->shared))
		{
			newentries[i] = KsStoreAllocEntry(dsa, e->hash);
			if (!DsaPointerIsValid(newentries[i]))
				oom = true;
			else
			{
				nnew++;
				bytes_delta += sizeof(KsStoreEntry);
			}
		}
		ResetExprContext(run->econtext);
		(void) naggs;
	}
	KsBecomeWorker();

	hdr = dsa_get_address(dsa, slot->store);
	if (!oom && !KsStoreReserve(dsa, slot, hdr->nentries + nnew))
		oom = true;
	if (oom)
	{
		for (i = 0; i < n; i++)
		{
			if (DsaPointerIsValid(newtuples[i]))
				dsa_free(dsa, newtuples[i]);
			if (DsaPointerIsValid(newentries[i]))
				dsa_free(dsa, newentries[i]);
		}
		KsStoreExhausted(run->name);
	}

	/* step 2: swap or copy them in with the offset, atomically for readers */
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e;
		uint32		oldbytes;

		/* overwrites touch only the published row, known from step 1 */
		if (i + KS_PUBLISH_PREFETCH < n)
		{
			int			j = i + KS_PUBLISH_PREFETCH;

			if (inplace[j] != NULL)
				KS_PREFETCH(dsa_get_address(dsa, inplace_at[j]));
			else if (DsaPointerIsValid(newentries[j]))
				KsStorePrefetchBucket(dsa, slot->store, kt->publish[j]->hash);
		}
		if (inplace[i] != NULL)
		{
			KsStoreOverwriteTuple(dsa, inplace_at[i], inplace[i]);
			oldtuples[i] = InvalidDsaPointer;
			continue;
		}
		e = kt->publish[i];

		if (DsaPointerIsValid(newentries[i]))
		{
			KsStoreLinkEntry(dsa, slot->store, newentries[i]);
			e->shared = newentries[i];
		}
		oldtuples[i] = KsStoreSwapTuple(dsa, e->shared, newtuples[i], newbytes[i], &oldbytes);
		e->shared_tuple = newtuples[i];
		e->shared_bytes = DsaPointerIsValid(newtuples[i]) ? newbytes[i] : 0;
		bytes_delta -= oldbytes;
		if (DsaPointerIsValid(newtuples[i]) && !DsaPointerIsValid(oldtuples[i]))
			visible_delta++;
		else if (!DsaPointerIsValid(newtuples[i]) && DsaPointerIsValid(oldtuples[i]))
			visible_delta--;
	}
	slot->consumed_offset = offset;
	slot->keys = kt->nentries;
	slot->visible_keys += visible_delta;
	slot->memory_bytes = MemoryContextMemAllocated(run->loadcxt, true) + kt->mapped_bytes;
	LWLockRelease(&slot->lock);

	/* step 3: free what was replaced */
	for (i = 0; i < n; i++)
	{
		if (DsaPointerIsValid(oldtuples[i]))
			dsa_free(dsa, oldtuples[i]);
	}
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->shared_bytes += bytes_delta;
	LWLockRelease(&slot->lock);

	KsKeyClearPublish(kt);
	run->consumed = offset;
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(run->batchcxt);
	ConditionVariableBroadcast(&slot->cv);
}

/* DestReceiver callback: buffer one input row (the per-row hot path). */
static void
KsApplyRow(TupleTableSlot *slot, void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	KsApplyBufferAdd(run->applybuf, slot);
}

/* Error context: which aggregation and which input row. */
static void
KsRowErrorContext(void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	if (run->cur_offset != 0)
		errcontext("keyedstate aggregation %s, input row with offset " INT64_FORMAT,
				   run->name, run->cur_offset);
	else
		errcontext("keyedstate aggregation %s", run->name);
}

/*
 * Read and apply the rows with offsets in (lo, hi].  They become visible
 * with the next KsPublish, which the step calls once after its batches, so
 * a backlog is published once per step and not once per batch.
 */
static void
KsRunBatch(KsAggRun *run, int64 lo, int64 hi)
{
	uint64		nrows;

	if (run->plan == NULL || run->plan_stale)
		KsPrepareInput(run);

	KsBecomeOwner(run);
	nrows = KsRunInputBatch(run->plan, lo, hi, KsApplyRow, run);
	KsApplyBufferFlush(run->applybuf);
	KsBecomeWorker();
	run->cur_offset = 0;
	run->applied = hi;

	run->rate_rows += nrows;
	LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
	run->slot->rows_consumed += nrows;
	if (lo < run->replay_until)
		run->slot->rows_replayed += nrows;
	LWLockRelease(&run->slot->lock);
}

/*
 * Load a run: analyse its stored query, prepare the aggregate calls and the
 * projection, recover the checkpoint and publish every recovered key.
 */
static void
KsLoadRun(KsAggRun *run)
{
	MemoryContext oldcxt;
	Query	   *query;
	dsa_area   *dsa = KsGetDsa();
	int64		hw;
	int			ncols;
	TimestampTz started = GetCurrentTimestamp();

	KsUnloadRun(run);
	run->loadcxt = AllocSetContextCreate(run->cxt, "keyedstate aggregation state",
										 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(run->loadcxt);

	query = (Query *) stringToNode(run->def->query_tree);
	KsAnalyzeQuery(query, &run->info);
	KsAggCheckPrivileges(run->info.aggrefs, run->def->owner);
	run->inputcols = palloc0(sizeof(int) * Max(run->info.naggs, 1));
	run->filtercols = palloc0(sizeof(int) * Max(run->info.naggs, 1));
	/* fills inputcols and filtercols, which the aggregate calls need */
	pfree(KsBuildInputQuery(&run->info, run->def->offset_attnum,
							run->inputcols, run->filtercols, &ncols));
	run->rt = KsAggRuntimeCreate(run->info.aggrefs, run->inputcols, run->filtercols,
								 run->loadcxt);
	run->kt = KsKeyTableCreate(run->info.nkeys, run->info.keytypes, run->info.keycolls,
							   run->info.keyeqops, run->info.naggs, run->loadcxt);
	run->applybuf = KsApplyBufferCreate(run->kt, run->rt, ncols, &run->cur_offset,
										run->loadcxt);
	KsPrepareProjection(run);
	run->batchcxt = AllocSetContextCreate(run->loadcxt, "keyedstate batch",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(oldcxt);

	/*
	 * Recover into a new store that readers do not see; until it replaces
	 * the published one, the view keeps showing the last good state (after
	 * a failure) or nothing (after a crash).
	 */
	run->building = KsStoreCreate(dsa);
	run->building_bytes = 0;
	run->building_visible = 0;
	KsRecover(run);
	{
		dsa_pointer old;

		LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
		old = run->slot->store;
		run->slot->store = run->building;
		run->slot->consumed_offset = run->consumed;
		run->slot->keys = run->kt->nentries;
		run->slot->visible_keys = run->building_visible;
		run->slot->shared_bytes = run->building_bytes;
		run->slot->rows_replayed = 0;
		LWLockRelease(&run->slot->lock);
		run->building = InvalidDsaPointer;
		if (DsaPointerIsValid(old))
			KsStoreDestroy(dsa, old);
	}
	KsFrontierInit(&run->frontier, run->consumed, run->loadcxt);
	run->replay_until = KsSequenceLastValue(run->def->sequence_oid, &hw) ? hw : 0;
	run->last_checkpoint = GetCurrentTimestamp();
	run->rate_since = run->last_checkpoint;
	run->rate_rows = 0;

	LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
	run->slot->checkpointed_offset = run->checkpointed;
	LWLockRelease(&run->slot->lock);

	KsPublish(run, run->consumed);
	run->loaded = true;
	ereport(LOG,
			(errmsg("keyedstate aggregation %s recovered " UINT64_FORMAT " keys at offset " INT64_FORMAT " in %ld ms",
					run->name, run->kt->nentries, run->consumed,
					TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()))));
}

/*
 * A step of an aggregation failed: report the error once, abort, and keep
 * the aggregation failed (published rows and checkpoint stay as of the last
 * good batch) until keyedstate.resume().
 */
static void
KsFailRun(KsAggRun *run)
{
	ErrorData  *edata;
	int64		offset = run->cur_offset;

	MemoryContextSwitchTo(ks_worker_cxt);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	/* the abort undid the settings the transaction applied */
	ks_settings_for = -1;

	run->failed = true;
	run->failed_resume_count = run->def->resume_count;
	run->cur_offset = 0;
	KsUnloadRun(run);

	LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
	run->slot->failed_offset = offset;
	LWLockRelease(&run->slot->lock);
	KsSetRunState(run, KS_FAILED, edata->message ? edata->message : "unknown error");
	FreeErrorData(edata);
}

/*
 * Start a transaction for a step, with the aggregation's fixed settings.
 * Settings are applied for the session and only when the worker moves to
 * another aggregation (or after an abort undid them): a step of a few rows
 * should not pay for a dozen set_config_option calls.
 *
 * The planner settings make the input statement read the offset index in
 * order, whatever the statistics say: a fresh, unanalysed source would
 * otherwise get a sort of each batch, spilled to disk.
 */
static void
KsBeginStep(KsAggRun *run)
{
	StartTransactionCommand();
	GetUserIdAndSecContext(&ks_worker_userid, &ks_worker_sec_context);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (ks_settings_for != run->def->id)
	{
		KsSetSessionOption("search_path", "pg_catalog");
		KsSetSessionOption("enable_seqscan", "off");
		KsSetSessionOption("enable_bitmapscan", "off");
		KsSetSessionOption("enable_sort", "off");
		KsApplySettings(run->def->settings);
		ks_settings_for = run->def->id;
	}
	pgstat_report_activity(STATE_RUNNING, run->name);
}

/* Commit a step's transaction. */
static void
KsEndStep(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Whether a loaded run should checkpoint now. */
static bool
KsCheckpointDue(KsAggRun *run, TimestampTz now, long *timeout)
{
	long		due_in;

	if (run->slot->checkpoint_requests != run->slot->checkpoints_done)
		return true;
	if (run->kt->nckpt == 0 && run->consumed == run->checkpointed)
		return false;
	due_in = run->def->checkpoint_interval_ms -
		TimestampDifferenceMilliseconds(run->last_checkpoint, now);
	if (due_in <= 0)
		return true;
	*timeout = Min(*timeout, due_in);
	return false;
}

/*
 * One step of one aggregation: load it if needed, move the frontier, apply
 * batches up to it, checkpoint when due.  Lowers *timeout when more work is
 * already waiting.
 */
static void
KsStepRun(KsAggRun *run, long *timeout)
{
	ErrorContextCallback errcb;
	volatile bool did_checkpoint = false;

	if (run->failed || run->slot == NULL)
		return;

	PG_TRY();
	{
		TimestampTz now;
		int64		safe;
		int			batches = 0;
		KsRunState	state;

		KsBeginStep(run);
		errcb.callback = KsRowErrorContext;
		errcb.arg = run;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;

		if (!run->loaded)
		{
			KsSetRunState(run, KS_STARTING, NULL);
			KsLoadRun(run);
		}

		if (!run->def->paused)
		{
			safe = KsFrontierAdvance(&run->frontier, run->def->source_oid,
									 run->def->sequence_oid);
			run->applied = run->consumed;
			while (run->applied < safe && batches < KS_BATCHES_PER_STEP && !got_sigterm)
			{
				int64		hi = safe;

				if (safe - run->applied > ks_batch_size)
					hi = run->applied + ks_batch_size;
				KsRunBatch(run, run->applied, hi);
				batches++;
			}
			if (batches > 0)
				KsPublish(run, run->applied);
			if (run->consumed < safe)
				*timeout = 0;
			else if (run->frontier.nwaits > 0)
				*timeout = Min(*timeout, 10);
		}

		now = GetCurrentTimestamp();
		if (KsCheckpointDue(run, now, timeout))
		{
			KsCheckpoint(run);
			did_checkpoint = true;
		}

		error_context_stack = errcb.previous;
		KsEndStep();

		if (did_checkpoint)
			KsCheckpointDone(run);

		/* progress and state for keyedstate.status */
		if (run->def->paused)
			state = KS_PAUSED;
		else if (run->frontier.nwaits > 0 && run->consumed >= run->frontier.safe &&
				 TimestampDifferenceExceeds(run->frontier.blocked_since, now, KS_WAITING_AFTER_MS))
			state = KS_WAITING;
		else
			state = KS_RUNNING;
		LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
		run->slot->high_water = Max(run->frontier.target, run->consumed);
		run->slot->waiting_pid = (state == KS_WAITING) ? run->frontier.blocking_pid : 0;
		if (TimestampDifferenceExceeds(run->rate_since, now, 1000))
		{
			double		secs = TimestampDifferenceMilliseconds(run->rate_since, now) / 1000.0;

			run->slot->rows_per_second = run->rate_rows / secs;
			run->rate_rows = 0;
			run->rate_since = now;
		}
		LWLockRelease(&run->slot->lock);
		if (run->slot->state != state)
			KsSetRunState(run, state, NULL);
	}
	PG_CATCH();
	{
		KsFailRun(run);
	}
	PG_END_TRY();
}

/* Find the run of an aggregation id. */
static KsAggRun *
KsFindRun(int32 id)
{
	ListCell   *lc;

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (run->def->id == id)
			return run;
	}
	return NULL;
}

/*
 * Claim a slot for an aggregation; on failure log why and return NULL.  Not
 * inlined, so that its setjmp stays out of KsReloadRuns' frame.
 */
static pg_noinline KsAggSlot *
KsTryAcquireSlot(int32 id)
{
	KsAggSlot  *volatile slot = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		slot = KsAcquireAggSlot(MyDatabaseId, id);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
	return slot;
}

/*
 * Re-read the aggregations of this database: start runs for new ones,
 * release the runs of dropped ones, and pick up pause/resume.
 */
static void
KsReloadRuns(void)
{
	MemoryContext tmp;
	List	   *defs = NIL;
	List	   *keep = NIL;
	ListCell   *lc;

	/* definitions may have changed under the same ids: apply settings anew */
	ks_settings_for = -1;
	tmp = AllocSetContextCreate(ks_worker_cxt, "keyedstate reload", ALLOCSET_DEFAULT_SIZES);
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(get_extension_oid("keyedstate", true)))
		defs = KsLoadDefinitions(tmp);
	/* SPI calls leave SPI's own context current; our lists outlive it */
	MemoryContextSwitchTo(ks_worker_cxt);
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		KsAggRun   *run = KsFindRun(def->id);
		MemoryContext oldcxt;

		if (run == NULL)
		{
			KsAggSlot  *slot = KsTryAcquireSlot(def->id);

			if (slot == NULL)
				continue;
			run = MemoryContextAllocZero(ks_worker_cxt, sizeof(KsAggRun));
			run->cxt = AllocSetContextCreate(ks_worker_cxt, "keyedstate aggregation",
											 ALLOCSET_DEFAULT_SIZES);
			run->slot = slot;
			oldcxt = MemoryContextSwitchTo(run->cxt);
			run->name = KsAggName(def->view_oid);
			MemoryContextSwitchTo(oldcxt);
			ks_runs = lappend(ks_runs, run);
		}
		else if (run->failed && def->resume_count != run->failed_resume_count)
		{
			/* resume() after a failure: start over from the checkpoint */
			run->failed = false;
			KsSetRunState(run, KS_STARTING, NULL);
		}

		/* keep a copy of the definition in the run's own context */
		oldcxt = MemoryContextSwitchTo(run->cxt);
		run->def = palloc(sizeof(KsAggDef));
		memcpy(run->def, def, sizeof(KsAggDef));
		run->def->query_tree = pstrdup(def->query_tree);
		run->def->settings = NIL;
		{
			ListCell   *slc;

			foreach(slc, def->settings)
				run->def->settings = lappend(run->def->settings, pstrdup(lfirst(slc)));
		}
		MemoryContextSwitchTo(oldcxt);
		LWLockAcquire(&run->slot->lock, LW_EXCLUSIVE);
		run->slot->resume_count = def->resume_count;
		LWLockRelease(&run->slot->lock);
		keep = lappend(keep, run);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (!list_member_ptr(keep, run))
			KsReleaseRun(run);
	}
	list_free(ks_runs);
	ks_runs = NIL;
	foreach(lc, keep)
		ks_runs = lappend(ks_runs, lfirst(lc));
	MemoryContextSwitchTo(ks_worker_cxt);
	MemoryContextDelete(tmp);
}

/* Claim this database's slot; false if another worker already runs here. */
static bool
KsClaimDatabase(Oid dboid)
{
	int			i;
	bool		ok = false;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *s = &KsSharedState->dbs[i];

		if (s->dboid != dboid)
			continue;
		if (s->worker_pid != 0 && s->worker_pid != MyProcPid && kill(s->worker_pid, 0) == 0)
			break;
		s->worker_pid = MyProcPid;
		s->worker_procno = MyProc->pgprocno;
		s->idle_exit = false;
		ks_mydb = s;
		ok = true;
		break;
	}
	LWLockRelease(KsSharedState->lock);
	return ok;
}

/* Take a final checkpoint of every healthy aggregation (clean shutdown). */
static void
KsShutdownCheckpoints(void)
{
	ListCell   *lc;

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (!run->loaded || run->failed)
			continue;
		PG_TRY();
		{
			KsBeginStep(run);
			KsCheckpoint(run);
			KsEndStep();
			KsCheckpointDone(run);
		}
		PG_CATCH();
		{
			KsFailRun(run);
		}
		PG_END_TRY();
	}
}

/* Entry point of a database worker; main_arg is the database OID. */
void
KsDatabaseWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	uint32		seen = 0;
	bool		first = true;

	pqsignal(SIGTERM, KsWorkerSigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("keyedstate worker");

	if (!KsClaimDatabase(dboid))
		proc_exit(0);
	before_shmem_exit(KsWorkerDetach, (Datum) 0);

	ks_worker_cxt = AllocSetContextCreate(TopMemoryContext, "keyedstate worker",
										  ALLOCSET_DEFAULT_SIZES);
	CacheRegisterRelcacheCallback(KsRelcacheCallback, (Datum) 0);

	while (!got_sigterm)
	{
		uint32		requested = ks_mydb->requested;
		long		timeout = ks_naptime;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (first || requested != seen)
		{
			first = false;
			seen = requested;
			ks_mydb->seen = seen;
			KsReloadRuns();
			if (ks_runs == NIL)
			{
				/* nothing to do: leave, unless a request arrived meanwhile */
				bool		leave;

				LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
				leave = (ks_mydb->requested == seen);
				if (leave)
					ks_mydb->idle_exit = true;
				LWLockRelease(KsSharedState->lock);
				if (leave)
					proc_exit(0);
				continue;
			}
		}

		foreach(lc, ks_runs)
			KsStepRun((KsAggRun *) lfirst(lc), &timeout);

		if (timeout > 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	KsShutdownCheckpoints();
	proc_exit(1);
}
