/*-------------------------------------------------------------------------
 *
 * run.c
 *	  One aggregation's run in the database worker: its life cycle (created,
 *	  given definitions, unloaded, failed, released) and what its user code
 *	  runs under (identity, settings, cancels, the time bound).  What one
 *	  step does is step.c.  See run.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
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

#include "catalog.h"
#include "owner.h"
#include "run.h"
#include "settings.h"

static void KsAcceptCancels(bool accept);

/* The worker's own identity, saved at the start of each transaction. */
static Oid	ks_worker_userid = InvalidOid;
static int	ks_worker_sec_context = 0;

/*
 * The session user of a step is the aggregation's owner, as in her login:
 * session_user, is_superuser and pg_has_role(session_user, ...) in her code
 * are hers, not the worker's.  Set at the step's start (outside any
 * security-restricted context), back to the worker's at its end or abort.
 */
static void
KsSetSessionUser(Oid userid, bool is_superuser)
{
	if (GetSessionUserId() != userid)
		SetSessionAuthorization(userid, is_superuser);
}

/* The time bound of steps: our timeout, and whether it fired. */
static TimeoutId ks_step_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_step_timed_out = false;

/*
 * A cancel is an error that user code can catch (a PL/pgSQL EXCEPTION WHEN
 * query_canceled in a loop): a step still running KS_KILL_GRACE_MS after
 * its step timeout fired ends the worker instead (die(), a FATAL error,
 * which nothing catches).  The aggregation is failed in shared memory on
 * the way out, so the worker started again does not run it.
 */
#define KS_KILL_GRACE_MS	5000
static TimeoutId ks_kill_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_step_killed = false;
static KsAggRun *ks_step_run = NULL;	/* the run whose step is running */

/*
 * While the step timeout is paused (recovery, checkpoints, reloads of cold
 * keys, compaction: keyedstate's own work, which may take long), user code
 * called in them (a replayed aggregate's transition function, a cast it
 * calls, a deserialize function) is bounded all the same: switching to the
 * owner arms the step timeout and the kill timer, switching back disarms
 * them.
 */
static bool ks_timeouts_paused = false;
static bool ks_owner_armed = false;


/*
 * Termination (SIGTERM: pg_terminate_backend(), a fast shutdown).  The
 * worker leaves at a step boundary, so that its final checkpoints leave
 * nothing to replay: between steps, and in a step's first
 * KS_TERM_GRACE_MS, a termination only asks the step to end early (its
 * read budget is spent) and the worker loop to shut down.  A step still
 * running after its grace (user code that is slow or loops), or one
 * recovering state (which a restart recovers again anyway), is cancelled
 * instead: its run is unloaded, not failed, and replays from its last
 * checkpoint.  A second termination (a second or more later) is die(): the
 * worker ends at its next interrupt check, whatever it is doing.
 */
#define KS_TERM_GRACE_MS	(KS_STEP_BUDGET_MS + KS_PUBLISH_BUDGET_MS)
static TimeoutId ks_grace_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_term_requested = false;
static volatile TimestampTz ks_term_requested_at = 0;
static volatile sig_atomic_t ks_term_cancels = false;

/* The search_path captured with an aggregation, or pg_catalog alone. */
static const char *
KsRunSearchPath(KsAggRun *run)
{
	ListCell   *lc;

	foreach(lc, run->def->settings)
	{
		const char *item = lfirst(lc);

		if (strncmp(item, "search_path=", 12) == 0)
			return item + 12;
	}
	return "pg_catalog";
}

/* Set search_path, unless it is set so already (a switch per key must be cheap). */
static void
KsSetSearchPath(const char *path)
{
	if (namespace_search_path == NULL || strcmp(namespace_search_path, path) != 0)
		KsSetOption("search_path", path, GUC_ACTION_SET);
}

/* Run the owner's code: its identity, restricted, its search_path (see run.h). */
void
KsBecomeOwnerAs(KsAggRun *run, bool timed)
{
	if (timed)
		KsRunOwnerCodeBegin(run);
	KsSetSearchPath(KsRunSearchPath(run));
	SetUserIdAndSecContext(run->owner,
						   ks_worker_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/*
 * Back to the worker's identity, to run keyedstate's own SQL: with a
 * search_path where no owner's function or operator can be found (the
 * step's settings, set at its nest level, are undone at its end).
 */
void
KsBecomeWorker(void)
{
	SetUserIdAndSecContext(ks_worker_userid, ks_worker_sec_context);
	KsSetSearchPath(KS_SAFE_SEARCH_PATH);
	KsRunOwnerCodeEnd();
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

/* The cancel of the step timeout was caught: end the worker (see above). */
static void
KsKillTimeoutHandler(void)
{
	ks_step_killed = true;
	InterruptPending = true;
	ProcDiePending = true;
	SetLatch(MyLatch);
}

/* before_shmem_exit: a worker ended for a step that ignored its cancel fails its aggregation. */
static void
KsRunKilledAtExit(int code, Datum arg)
{
	KsAggRun   *run = ks_step_run;
	char	   *message;

	if (!ks_step_killed || run == NULL)
		return;
	LWLockReleaseAll();
	message = psprintf("aggregation %s took more than %d ms in one step (step timeout) and did not stop when cancelled",
					   run->name, run->timeout_ms);
	ereport(LOG,
			(errmsg("%s", message),
			 errdetail("A function it runs catches the cancel; its worker was ended.")));
	KsSlotSetState(run->slot, KS_FAILED, message, run->cur_offset);
}

/* Cancel the current step, as a SIGINT would (signal-safe). */
static void
KsCancelStep(void)
{
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/* The step's grace for a termination is over: one cancels it from now on. */
static void
KsGraceTimeoutHandler(void)
{
	ks_term_cancels = true;
	if (ks_term_requested)
		KsCancelStep();
}

/*
 * SIGTERM handler of the worker (see ks_term_requested).  The postmaster
 * signals a child and its process group both, so one shutdown may deliver
 * SIGTERM twice within microseconds: only one that comes a second or more
 * after the first is a second termination.
 */
void
KsRunTermHandler(SIGNAL_ARGS)
{
	int			save_errno = errno;
	TimestampTz now = GetCurrentTimestamp();

	if (ks_term_requested)
	{
		if (now - ks_term_requested_at >= USECS_PER_SEC)
			die(postgres_signal_arg);
	}
	else
	{
		ks_term_requested_at = now;
		ks_term_requested = true;
		if (ks_term_cancels)
			KsCancelStep();
		SetLatch(MyLatch);
	}
	errno = save_errno;
}

/* Whether the worker was asked to terminate. */
bool
KsRunTerminating(void)
{
	return ks_term_requested;
}

/*
 * Arm the step timeout (unless it fired) and the kill timer after it, and,
 * for a whole step, the termination grace.
 */
static void
KsArmTimers(KsAggRun *run, bool with_grace)
{
	EnableTimeoutParams timeouts[3];
	int			n = 0;

	timeouts[n].id = ks_kill_timeout_id;
	timeouts[n].type = TMPARAM_AFTER;
	/* near INT_MAX (no timeout wanted), the grace must not wrap around */
	timeouts[n].delay_ms = (int) Min((int64) run->timeout_ms + KS_KILL_GRACE_MS, (int64) INT_MAX);
	n++;
	if (with_grace)
	{
		timeouts[n].id = ks_grace_timeout_id;
		timeouts[n].type = TMPARAM_AFTER;
		timeouts[n].delay_ms = KS_TERM_GRACE_MS;
		n++;
	}
	if (!ks_step_timed_out)
	{
		timeouts[n].id = ks_step_timeout_id;
		timeouts[n].type = TMPARAM_AFTER;
		timeouts[n].delay_ms = run->timeout_ms;
		n++;
	}
	enable_timeouts(timeouts, n);
}

/* Disarm what KsArmTimers armed (the step timeout's indicator is our own flag). */
static void
KsDisarmTimers(bool with_grace)
{
	DisableTimeoutParams timeouts[3];
	int			n = 0;

	timeouts[n].id = ks_step_timeout_id;
	timeouts[n++].keep_indicator = false;
	timeouts[n].id = ks_kill_timeout_id;
	timeouts[n++].keep_indicator = false;
	if (with_grace)
	{
		timeouts[n].id = ks_grace_timeout_id;
		timeouts[n++].keep_indicator = false;
	}
	disable_timeouts(timeouts, n);
}

/* Arm the timers of a step. */
static void
KsRunArmTimeouts(KsAggRun *run)
{
	ks_term_cancels = false;
	KsArmTimers(run, true);
}

/* Disarm them all. */
static void
KsRunDisarmTimeouts(void)
{
	KsDisarmTimers(true);
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
	ks_grace_timeout_id = RegisterTimeout(USER_TIMEOUT, KsGraceTimeoutHandler);
	ks_kill_timeout_id = RegisterTimeout(USER_TIMEOUT, KsKillTimeoutHandler);
	before_shmem_exit(KsRunKilledAtExit, (Datum) 0);
	KsAcceptCancels(false);
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
 * Start a transaction for a step, with a GUC nest level holding the
 * aggregation's captured settings and whatever its user code sets, the
 * time bound, and the owner's identity.  Returns the nest level for
 * KsRunEnd.
 */
int
KsRunBegin(KsAggRun *run)
{
	int			nestlevel;

	KsAcceptCancels(true);
	StartTransactionCommand();
	GetUserIdAndSecContext(&ks_worker_userid, &ks_worker_sec_context);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, run->name);

	run->owner = KsRelationOwner(run->def->view_oid);
	if (!OidIsValid(run->owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the view of aggregation %s no longer exists", run->name)));
	/* one owner's code per process (owner.h): leave, a fresh worker runs it */
	if (!KsProcessMayRun(run->owner))
	{
		ereport(LOG,
				(errmsg("keyedstate worker leaves before running aggregation %s: it ran another owner's code",
						run->name)));
		ks_term_requested_at = GetCurrentTimestamp();
		ks_term_requested = true;
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("keyedstate worker leaves for a fresh one")));
	}
	KsSetSessionUser(run->owner, superuser_arg(run->owner));
	/*
	 * The aggregation's settings, for this step only: undone at its end
	 * with whatever its user code set, so that no setting (a custom one
	 * especially) reaches the next aggregation the worker runs.
	 */
	nestlevel = NewGUCNestLevel();
	KsApplySettings(run->def->settings, GUC_ACTION_SAVE, run->owner);
	ks_step_timed_out = false;
	run->timeout_ms = KsStepTimeout(run);
	ks_step_run = run;
	KsRunArmTimeouts(run);
	KsBecomeOwner(run);
	return nestlevel;
}

/*
 * Recovery and checkpoints run keyedstate's own code and C support
 * functions only, and may take long for a large state: they are not
 * bounded by the step timeout, which is armed again after them.  A
 * termination cancels a recovery (`cancel_on_term`: a restart redoes it)
 * and lets a checkpoint finish (it is what the shutdown would do anyway).
 */
void
KsRunTimeoutPause(bool cancel_on_term)
{
	KsRunDisarmTimeouts();
	ks_timeouts_paused = true;
	ks_term_cancels = cancel_on_term;
	if (cancel_on_term && ks_term_requested)
		KsCancelStep();
}

/* Error context of a step: which aggregation, and which input row (see run.h). */
void
KsRowErrorContext(void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	if (run->cur_offset != 0)
		errcontext("keyedstate aggregation %s, input row with offset " INT64_FORMAT,
				   run->name, run->cur_offset);
	else
		errcontext("keyedstate aggregation %s", run->name);
}

/* Whether the step timeout is paused now. */
bool
KsRunTimeoutsPaused(void)
{
	return ks_timeouts_paused;
}

/* Arm the step timeout again, for a whole bound. */
void
KsRunTimeoutResume(KsAggRun *run)
{
	KsRunOwnerCodeEnd();
	ks_timeouts_paused = false;
	KsRunArmTimeouts(run);
}

/* User code inside keyedstate's own work begins: bounded (see run.h). */
void
KsRunOwnerCodeBegin(KsAggRun *run)
{
	if (ks_timeouts_paused && !ks_owner_armed)
	{
		KsArmTimers(run, false);
		ks_owner_armed = true;
	}
}

/* ... and ends: keyedstate's own work goes on, unbounded. */
void
KsRunOwnerCodeEnd(void)
{
	if (ks_owner_armed)
	{
		KsDisarmTimers(false);
		ks_owner_armed = false;
	}
}

/* Commit a step's transaction, rolling back settings its user code changed. */
void
KsRunEnd(int nestlevel)
{
	KsRunDisarmTimeouts();
	ks_step_run = NULL;
	ks_timeouts_paused = false;
	ks_owner_armed = false;
	ks_term_cancels = false;
	KsBecomeWorker();
	KsSetSessionUser(ks_worker_userid, true);
	AtEOXact_GUC(false, nestlevel);
	/* session advisory locks its user code took do not outlive the step */
	LockReleaseSession(USER_LOCKMETHOD);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	KsAcceptCancels(false);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
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
void
KsRunStepError(KsAggRun *run, MemoryContext cxt, const KsStepMark *mark)
{
	ErrorData  *edata;
	int64		offset = run->cur_offset;
	bool		timed_out = ks_step_timed_out;

	KsRunDisarmTimeouts();
	ks_step_run = NULL;
	ks_timeouts_paused = false;
	ks_owner_armed = false;
	ks_term_cancels = false;
	ks_step_timed_out = false;
	/* out of the step: further cancels wait for the next one */
	KsAcceptCancels(false);
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	KsSetSessionUser(ks_worker_userid, true);
	LockReleaseSession(USER_LOCKMETHOD);
	run->cur_offset = 0;

	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED && !timed_out)
	{
		if (run->definition_outdated)
		{
			/* rebuilt or resumed meanwhile: wait for the reload (ckptcommit.c) */
			run->definition_outdated = false;
			run->interrupted = true;
			KsRunUnload(run);
			FreeErrorData(edata);
			return;
		}
		if (ks_term_requested)
		{
			/* the worker is leaving: the restart replays from the checkpoint */
			KsRunUnload(run);
			FreeErrorData(edata);
			return;
		}
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

/* Whether the current step was told to stop (see run.h). */
bool
KsRunCancelled(KsAggRun *run)
{
	return ks_step_timed_out || ks_term_requested ||
		KsSlotInterruptedSince(run->slot, &run->step_mark) ||
		KsDatabaseInterruptedSince(MyDatabaseId, &run->step_mark);
}

/* The rows per second consumed lately: the last full second, or the current one. */
double
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
