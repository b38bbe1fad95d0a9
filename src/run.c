/*-------------------------------------------------------------------------
 *
 * run.c
 *	  One aggregation's run in the database worker: loading it, its steps,
 *	  failing it, and the identity, settings and time bound its user code
 *	  runs under.  See run.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_db_role_setting.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "catalog.h"
#include "checkpoint.h"
#include "publish.h"
#include "recovery.h"
#include "run.h"
#include "settings.h"

/* Batches a step reads at most. */
#define KS_BATCHES_PER_STEP		8

/*
 * The time a step may spend reading and publishing, so that one
 * aggregation with slow functions gives the others their turn often; a
 * step that would need longer ends early and the next one goes on.  (The
 * step timeout is the hard bound on a step that cannot end: user code that
 * loops or waits.)
 */
#define KS_STEP_BUDGET_MS		500

/* How long an open writer holds the frontier before we say 'waiting'. */
#define KS_WAITING_AFTER_MS		1000

static Oid	KsViewOwner(Oid view_oid);
static void KsRunUnload(KsAggRun *run);
static void KsAcceptCancels(bool accept);

/* The aggregation whose settings the session has, or -1 (KsStepBegin). */
static int32 ks_settings_for = -1;

/* The worker's own identity, saved at the start of each transaction. */
static Oid	ks_worker_userid = InvalidOid;
static int	ks_worker_sec_context = 0;

/* The time bound of steps: our timeout, and whether it fired. */
static TimeoutId ks_step_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_step_timed_out = false;

/* Run the owner's code: its identity, restricted. */
void
KsBecomeOwner(KsAggRun *run)
{
	SetUserIdAndSecContext(run->owner,
						   ks_worker_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* Back to the worker's identity. */
void
KsBecomeWorker(void)
{
	SetUserIdAndSecContext(ks_worker_userid, ks_worker_sec_context);
}

/*
 * The step timeout fired: cancel the step the way statement_timeout
 * cancels a query (the next CHECK_FOR_INTERRUPTS raises), remembering that
 * it was the timeout.  Runs in the SIGALRM handler.
 */
static void
KsStepTimeoutHandler(void)
{
	ks_step_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/*
 * Whether cancels (SIGINT from a backend pausing or dropping an
 * aggregation, the step timeout) may end what the worker runs: only inside
 * steps.  One that arrives between steps was meant for a step that is
 * over, and is dropped.  The hold count is set, not counted: every error
 * report resets it to 0.
 */
static void
KsAcceptCancels(bool accept)
{
	QueryCancelPending = false;
	QueryCancelHoldoffCount = accept ? 0 : 1;
}

/* Set up the process-wide parts of running steps. */
void
KsRunInitProcess(void)
{
	ks_step_timeout_id = RegisterTimeout(USER_TIMEOUT, KsStepTimeoutHandler);
	KsAcceptCancels(false);
}

/*
 * The owner's statement_timeout, in ms, from ALTER ROLE ... [IN DATABASE]
 * SET or ALTER DATABASE ... SET, in the order a login of the owner would
 * apply them; 0 if none is set.
 */
static int
KsOwnerStatementTimeout(Oid owner)
{
	Oid			dbs[3] = {MyDatabaseId, InvalidOid, MyDatabaseId};
	Oid			roles[3] = {owner, owner, InvalidOid};
	Relation	rel;
	int			result = -1;
	int			i;

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	for (i = 0; i < 3 && result < 0; i++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(dbs[i]));
		ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(roles[i]));
		scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
										 RelationGetDescr(rel), &isnull);

			if (!isnull)
			{
				Datum	   *elems;
				int			nelems;
				int			j;

				deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
								  &elems, NULL, &nelems);
				for (j = 0; j < nelems; j++)
				{
					char	   *item = TextDatumGetCString(elems[j]);
					int			ms;

					if (pg_strncasecmp(item, "statement_timeout=", 18) == 0 &&
						parse_int(item + 18, &ms, GUC_UNIT_MS, NULL))
						result = ms;
				}
			}
		}
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return Max(result, 0);
}

/* The bound on one step: the setting, or the owner's statement_timeout if smaller. */
static int
KsStepTimeout(KsAggRun *run)
{
	int			owner_ms = KsOwnerStatementTimeout(run->owner);

	if (owner_ms > 0 && owner_ms < ks_step_timeout)
		return owner_ms;
	return ks_step_timeout;
}

/*
 * Start a transaction for a step, with the aggregation's fixed settings,
 * a GUC nest level for whatever user code sets, the time bound, and the
 * owner's identity.  Fixed settings are applied for the session and only
 * when the worker moves to another aggregation (or after an abort undid
 * them): a step of a few rows should not pay for a dozen set_config calls.
 * Returns the nest level for KsStepEnd.
 */
static int
KsStepBegin(KsAggRun *run)
{
	int			nestlevel;

	KsAcceptCancels(true);
	StartTransactionCommand();
	GetUserIdAndSecContext(&ks_worker_userid, &ks_worker_sec_context);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, run->name);

	run->owner = KsViewOwner(run->def->view_oid);
	if (!OidIsValid(run->owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the view of aggregation %s no longer exists", run->name)));
	if (ks_settings_for != run->def->id)
	{
		KsSetSessionOption("search_path", "pg_catalog");
		KsApplySettings(run->def->settings);
		ks_settings_for = run->def->id;
	}
	nestlevel = NewGUCNestLevel();
	ks_step_timed_out = false;
	run->timeout_ms = KsStepTimeout(run);
	enable_timeout_after(ks_step_timeout_id, run->timeout_ms);
	KsBecomeOwner(run);
	return nestlevel;
}

/*
 * Recovery and checkpoints run keyedstate's own code and C support
 * functions only, and may take long for a large state: they are not
 * bounded by the step timeout, which is armed again after them.
 */
static void
KsStepTimeoutPause(void)
{
	disable_timeout(ks_step_timeout_id, false);
}

/* Arm the step timeout again, for a whole bound. */
static void
KsStepTimeoutResume(KsAggRun *run)
{
	if (!ks_step_timed_out)
		enable_timeout_after(ks_step_timeout_id, run->timeout_ms);
}

/* Commit a step's transaction, rolling back settings its user code changed. */
static void
KsStepEnd(int nestlevel)
{
	disable_timeout(ks_step_timeout_id, false);
	KsBecomeWorker();
	AtEOXact_GUC(false, nestlevel);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	KsAcceptCancels(false);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Error context: which aggregation, and which input row. */
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

/* The owner of a view (the aggregation's owner); InvalidOid if it is gone. */
static Oid
KsViewOwner(Oid view_oid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(view_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* A new run for a definition; NULL if no slot is free (logged). */
KsAggRun *
KsRunCreate(KsAggDef *def, MemoryContext parent)
{
	KsSlotRef	ref;
	KsAggRun   *run;
	MemoryContext oldcxt;

	if (!KsClaimAggSlot(MyDatabaseId, def->id, &ref))
		return NULL;
	run = MemoryContextAllocZero(parent, sizeof(KsAggRun));
	run->cxt = AllocSetContextCreate(parent, "keyedstate aggregation", ALLOCSET_SMALL_SIZES);
	run->slot = ref.slot;
	run->slotref = ref;
	run->building = InvalidDsaPointer;
	oldcxt = MemoryContextSwitchTo(run->cxt);
	run->name = KsAggName(def->view_oid);
	MemoryContextSwitchTo(oldcxt);
	KsRunSetDefinition(run, def);
	return run;
}

/* Give a run a new copy of its definition; the old copy is freed. */
void
KsRunSetDefinition(KsAggRun *run, KsAggDef *def)
{
	MemoryContext newcxt = AllocSetContextCreate(run->cxt, "keyedstate definition",
												 ALLOCSET_SMALL_SIZES);

	/* rebuild(): start over from the (now empty) checkpoint */
	if (run->def != NULL && def->rebuilding && def->resume_count != run->def->resume_count)
		KsRunUnload(run);
	run->def = KsCopyDefinition(def, newcxt);
	if (run->defcxt != NULL)
		MemoryContextDelete(run->defcxt);
	run->defcxt = newcxt;
	/* resume() after a failure: start over from the checkpoint */
	if (run->failed && def->resume_count != run->failed_resume_count)
	{
		run->failed = false;
		KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
	}
	run->interrupted = false;
	KsSlotSetDefinition(run->slot, KsViewOwner(def->view_oid), def->view_oid, def->live_oid,
						def->sequence_oid, 0, def->resume_count);
}

/*
 * Drop everything a loaded run holds: its memory, and the rows its writer
 * still holds back.  Its published store stays (see KsRunFail).
 */
static void
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
void
KsRunRelease(KsAggRun *run)
{
	KsRunUnload(run);
	KsReleaseAggSlot(run->slot);
	MemoryContextDelete(run->cxt);
}

/* A table changed (relcache invalidation): the source may need its index again. */
void
KsRunRelationChanged(KsAggRun *run, Oid relid)
{
	if (run->loaded && (relid == InvalidOid || relid == run->source.relid))
		run->source.stale = true;
}

/* Some function changed: inlined SQL functions must be compiled again. */
void
KsRunFunctionsChanged(KsAggRun *run)
{
	if (run->loaded)
		run->exprs_stale = true;
}

/*
 * Compile the expressions of a loaded run, as its owner: the source's
 * WHERE and input row, the view's projection and HAVING.  Constant folding
 * and inlining run user code.
 */
static void
KsRunCompile(KsAggRun *run)
{
	MemoryContext cxt = AllocSetContextCreate(run->loadcxt, "keyedstate expressions",
											  ALLOCSET_SMALL_SIZES);

	KsSourceCompile(&run->source, &run->info, cxt);
	KsPublishCompile(run, cxt);
	run->exprs_stale = false;
}

/*
 * Load a run: analyse its stored query, prepare the aggregate calls, the
 * source and the projection, recover the checkpoint and publish every
 * recovered key.  Runs as the owner inside a step.
 */
static void
KsRunLoad(KsAggRun *run)
{
	MemoryContext oldcxt;
	Query	   *query;
	TimestampTz started = GetCurrentTimestamp();
	int64		hw;

	KsRunUnload(run);
	run->loadcxt = AllocSetContextCreate(run->cxt, "keyedstate aggregation state",
										 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(run->loadcxt);

	query = (Query *) stringToNode(run->def->query_tree);
	KsAnalyzeQuery(query, &run->info);
	KsAggCheckPrivileges(run->info.aggrefs, run->owner);
	run->rt = KsAggRuntimeCreate(run->info.aggrefs, run->info.inputcols, run->info.filtercols,
								 run->loadcxt);
	run->kt = KsKeyTableCreate(run->info.nkeys, run->info.keytypes, run->info.keycolls,
							   run->info.keyeqops, run->info.naggs, run->loadcxt);
	run->applybuf = KsApplyBufferCreate(run->kt, run->rt, run->info.ninputcols,
										&run->cur_offset, run->loadcxt);
	run->batchcxt = AllocSetContextCreate(run->loadcxt, "keyedstate batch",
										  ALLOCSET_DEFAULT_SIZES);
	KsStoreWriterInit(&run->writer, run->loadcxt);
	MemoryContextSwitchTo(oldcxt);
	KsSlotSetDefinition(run->slot, run->owner, run->def->view_oid, run->def->live_oid,
						run->def->sequence_oid, KsRowTypeHash(run->info.viewdesc),
						run->def->resume_count);

	/*
	 * Recover into a new store that readers do not see; until it replaces
	 * the published one, the view keeps showing the last good state (after
	 * a resume) or waits (after a crash).
	 */
	run->building = KsStoreCreate(KsGetDsa(), run->name);
	run->building_bytes = 0;
	run->building_visible = 0;
	KsStepTimeoutPause();
	KsRecover(run);
	KsStepTimeoutResume(run);
	KsBecomeOwner(run);
	KsStoreInstall(run->slot, run->building, run->consumed, run->kt->nentries,
				   run->building_visible, run->building_bytes);
	run->building = InvalidDsaPointer;

	KsSourceInit(&run->source, &run->info, run->def->offset_attnum, run->def->sequence_oid,
				 run->name, run->consumed, run->loadcxt);
	KsRunCompile(run);

	/*
	 * Rows up to the sequence's current value that a run before this one
	 * had consumed are re-read: "replayed".  A fresh aggregation has none.
	 */
	run->replay_until = run->consumed;
	if (run->def->has_checkpoint && KsSequenceLastValue(run->def->sequence_oid, &hw, false))
		run->replay_until = hw;
	run->rebuild_until = PG_INT64_MIN;
	if (run->def->rebuilding && KsSequenceLastValue(run->def->sequence_oid, &hw, false))
		run->rebuild_until = hw;
	run->last_checkpoint = GetCurrentTimestamp();
	run->rate_since = run->last_checkpoint;
	run->rate_rows = 0;
	run->last_rate = 0;
	KsSlotCheckpointed(run->slot, run->checkpointed, 0, 0, 0, 0, 0);

	KsPublish(run, run->consumed);
	run->loaded = true;
	ereport(LOG,
			(errmsg("keyedstate aggregation %s recovered " UINT64_FORMAT " keys at offset " INT64_FORMAT " in %ld ms",
					run->name, run->kt->nentries, run->consumed,
					TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()))));
}

/* Callback of the source reader: one input row into the apply buffer. */
static void
KsApplyRow(TupleTableSlot *slot, void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	KsApplyBufferAdd(run->applybuf, slot);
}

/*
 * Whether the step should stop reading: its budget is spent, counting
 * what publishing the keys it changed will cost.
 */
static bool
KsRunBudgetSpent(void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;
	TimestampTz done = GetCurrentTimestamp() +
		(TimestampTz) (run->kt->npublish * run->publish_us_per_key);

	return done >= run->step_budget_end;
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

	upto = KsSourceRead(&run->source, lo, hi, (uint64) ks_batch_size, KsRunBudgetSpent,
						KsApplyRow, run, &run->cur_offset, &nrows);
	KsApplyBufferFlush(run->applybuf);
	run->cur_offset = 0;
	run->rate_rows += nrows;
	progress->rows_consumed += nrows;
	if (lo < run->replay_until)
		progress->rows_replayed += nrows;
	return upto;
}

/* Whether a loaded run should checkpoint now; lowers *timeout to when it will. */
static bool
KsCheckpointDue(KsAggRun *run, TimestampTz now, long *timeout)
{
	long		due_in;
	bool		requested;

	(void) KsSlotCheckpointRequested(run->slot, &requested);
	if (requested)
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

/* The rows per second consumed lately: the last full second, or the current one. */
static double
KsRunRate(KsAggRun *run, TimestampTz now)
{
	long		ms = TimestampDifferenceMilliseconds(run->rate_since, now);

	if (ms >= 1000)
	{
		run->last_rate = run->rate_rows * 1000.0 / ms;
		run->rate_rows = 0;
		run->rate_since = now;
		return run->last_rate;
	}
	/* within the second: what was consumed so far in it, if more */
	if (run->rate_rows > 0 && ms > 0)
		return Max(run->last_rate, run->rate_rows * 1000.0 / Max(ms, 100));
	return run->last_rate;
}

/*
 * Record a failure: log the error once, give the published rows back (the
 * view then says the aggregation failed, and other aggregations get the
 * memory), and show the error in status until keyedstate.resume().
 */
static void
KsRunRecordFailure(KsAggRun *run, ErrorData *edata, int64 offset)
{
	char	   *message = pstrdup(edata->message ? edata->message : "unknown error");
	MemoryContext cxt = CurrentMemoryContext;

	/* log it as the error it is, with its context */
	PG_TRY();
	{
		ThrowErrorData(edata);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();

	run->failed = true;
	run->failed_resume_count = run->def->resume_count;
	KsRunUnload(run);
	KsStoreRetire(run->slot);
	KsSlotSetState(run->slot, KS_FAILED, message, offset);
}

/*
 * A step ended with an error: abort, and fail the aggregation.  A step
 * stopped on a backend's request (pause, drop, rebuild) is not a failure:
 * the run waits for the reload that request brings.  Nor is a cancel that
 * was meant for another aggregation's step.  A step that ran out of time
 * fails with a message saying so.
 */
static void
KsRunStepError(KsAggRun *run, MemoryContext cxt, const KsStepMark *mark)
{
	ErrorData  *edata;
	int64		offset = run->cur_offset;
	bool		timed_out = ks_step_timed_out;

	disable_timeout(ks_step_timeout_id, false);
	ks_step_timed_out = false;
	/* out of the step: further cancels wait for the next one */
	KsAcceptCancels(false);
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	/* the abort undid the settings the transaction applied */
	ks_settings_for = -1;
	run->cur_offset = 0;

	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && !timed_out)
	{
		if (KsSlotInterruptedSince(run->slot, mark))
		{
			/* paused, dropped or rebuilt meanwhile: the reload says which */
			run->interrupted = true;
			KsRunUnload(run);
			FreeErrorData(edata);
			return;
		}
		if (KsDatabaseInterruptedSince(MyDatabaseId, mark))
		{
			/* a cancel meant for another aggregation's step: just go on */
			KsRunUnload(run);
			FreeErrorData(edata);
			return;
		}
	}
	if (timed_out)
	{
		edata->message = psprintf("aggregation %s took more than %d ms in one step (step timeout)",
								  run->name, run->timeout_ms);
		edata->detail = pstrdup("A function it runs may be slow or loop.  keyedstate.step_timeout and the owner's statement_timeout bound each step.");
		edata->hint = pstrdup("Fix the cause, then call keyedstate.resume().");
		edata->sqlerrcode = ERRCODE_QUERY_CANCELED;
	}
	KsRunRecordFailure(run, edata, offset);
	/* reporting it raised and caught the error again, which let cancels in */
	KsAcceptCancels(false);
}

/* Load the run if needed; pick up changes of its owner and functions. */
static void
KsRunPrepare(KsAggRun *run)
{
	if (run->loaded && run->owner != run->loaded_owner)
	{
		/* ALTER VIEW ... OWNER TO, REASSIGN OWNED: run as the new owner */
		KsRunUnload(run);
	}
	if (!run->loaded)
	{
		KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
		run->loaded_owner = run->owner;
		KsRunLoad(run);
	}
	else if (run->exprs_stale)
		KsRunCompile(run);
}

/*
 * Whether a rebuilding aggregation may start: a restore creates the
 * source's triggers after its rows (see restore.c), so until the wake-up
 * trigger exists the source may still be loading.
 */
static bool
KsRunSourceReady(KsAggRun *run)
{
	if (run->loaded || !run->def->rebuilding)
		return true;
	return OidIsValid(get_trigger_oid(run->def->source_oid,
									  psprintf(KS_WAKE_TRIGGER_FMT, run->def->id), true));
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
	KsSlotProgress progress;
	KsStepMark	mark;

	if (run->failed || run->interrupted)
		return;
	if (!KsSlotEnterStep(run->slot, &mark))
		return;
	memset(&progress, 0, sizeof(progress));
	progress.rows_per_second = -1;
	errcb.previous = error_context_stack;

	PG_TRY();
	{
		TimestampTz now;
		int			batches = 0;
		int			nestlevel;
		KsRunState	state;
		bool		locked = false;
		int64		safe;

		nestlevel = KsStepBegin(run);
		errcb.callback = KsRowErrorContext;
		errcb.arg = run;
		error_context_stack = &errcb;

		/* a paused aggregation is loaded only to be checkpointed */
		if ((run->loaded || !run->def->paused) && KsRunSourceReady(run))
		{
			/* never wait for a lock on the source: skip the step instead */
			locked = KsRunLockSource(run);
			if (!locked)
				*timeout = Min(*timeout, 100);
		}
		if (locked)
		{
			KsRunPrepare(run);
			if (!run->def->paused)
			{
				KsSourceCheck(&run->source);
				safe = KsSourceAdvance(&run->source);
				run->applied = run->consumed;
				run->step_budget_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																   KS_STEP_BUDGET_MS);
				while (run->applied < safe && batches < KS_BATCHES_PER_STEP &&
					   (batches == 0 || !KsRunBudgetSpent(run)))
				{
					run->applied = KsRunBatch(run, run->applied, safe, &progress);
					batches++;
					KsCheckInterrupts();
				}
				if (batches > 0)
				{
					TimestampTz started = GetCurrentTimestamp();
					int64		nkeys = run->kt->npublish;

					KsPublish(run, run->applied);
					if (nkeys > 0)
						run->publish_us_per_key = (run->publish_us_per_key +
												   (double) (GetCurrentTimestamp() - started) / nkeys) / 2;
				}
				if (run->consumed < safe)
					*timeout = 0;
				else if (run->source.frontier.nwaits > 0)
					*timeout = Min(*timeout, 10);
			}

			now = GetCurrentTimestamp();
			if (KsCheckpointDue(run, now, timeout))
			{
				KsStepTimeoutPause();
				did_checkpoint = KsCheckpoint(run);
				if (!did_checkpoint)
					*timeout = Min(*timeout, 100);
			}
		}

		error_context_stack = errcb.previous;
		KsStepEnd(nestlevel);
		KsSlotLeaveStep(run->slot);

		if (did_checkpoint)
			KsCheckpointDone(run);

		/* progress and state for keyedstate.status */
		if (run->loaded)
		{
			now = GetCurrentTimestamp();
			if (run->def->paused)
				state = KS_PAUSED;
			else if (run->source.frontier.nwaits > 0 && run->consumed >= run->source.frontier.safe &&
					 TimestampDifferenceExceeds(run->source.frontier.blocked_since, now, KS_WAITING_AFTER_MS))
				state = KS_WAITING;
			else if (run->consumed < run->rebuild_until)
				state = KS_REBUILDING;
			else
				state = KS_RUNNING;
			progress.high_water = Max(run->source.frontier.target, run->consumed);
			progress.waiting_pid = (state == KS_WAITING) ? run->source.frontier.blocking_pid : 0;
			progress.rows_per_second = KsRunRate(run, now);
			progress.keys = run->kt->nentries;
			progress.memory_bytes = MemoryContextMemAllocated(run->loadcxt, true) + run->kt->mapped_bytes;
			KsSlotReportProgress(run->slot, &progress);
			if (run->slot->state != state)
				KsSlotSetState(run->slot, state, NULL, 0);
		}
		else if (run->def->paused && run->slot->state != KS_PAUSED)
			KsSlotSetState(run->slot, KS_PAUSED, NULL, 0);
	}
	PG_CATCH();
	{
		error_context_stack = errcb.previous;
		KsSlotLeaveStep(run->slot);
		KsRunStepError(run, cxt, &mark);
	}
	PG_END_TRY();
}

/* Final checkpoint of a healthy run (clean shutdown). */
void
KsRunShutdownCheckpoint(KsAggRun *run)
{
	MemoryContext cxt = CurrentMemoryContext;
	KsStepMark	mark;

	if (!run->loaded || run->failed || run->interrupted)
		return;
	if (!KsSlotEnterStep(run->slot, &mark))
		return;
	PG_TRY();
	{
		int			nestlevel = KsStepBegin(run);
		bool		done;

		KsStepTimeoutPause();
		done = KsCheckpoint(run);

		KsStepEnd(nestlevel);
		KsSlotLeaveStep(run->slot);
		if (done)
			KsCheckpointDone(run);
	}
	PG_CATCH();
	{
		KsSlotLeaveStep(run->slot);
		KsRunStepError(run, cxt, &mark);
	}
	PG_END_TRY();
}
