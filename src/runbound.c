/*-------------------------------------------------------------------------
 *
 * runbound.c
 *	  The bounds of a step in the worker: the step timeout and the kill
 *	  timer behind it, cancels (accepted inside steps only), and the
 *	  worker's termination with its grace.  Part of the run; see run.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "owner.h"
#include "run.h"
#include "settings.h"

/*
 * The time bound of steps counts the time the worker runs, not the wall
 * clock: a worker stopped mid-step (SIGSTOP, a debugger, a paused VM, a
 * hung disk) was not running user code, and a step that resumes must not
 * fail its aggregation for it (fault review 52, F1).  One periodic timer,
 * the step clock, ticks every KS_TICK_MS (or the bound, if shorter) while
 * the bound is armed; each tick charges the time since the last one, but
 * at most the tick and KS_TICK_SLACK_MS more: a longer gap is time the
 * process did not run (a process waiting for a lock, a latch or pg_sleep
 * still takes its signals, and is charged).  When the bound is spent, the
 * step is cancelled the way statement_timeout cancels a query.
 */
#define KS_TICK_MS			100
#define KS_TICK_SLACK_MS	250
static TimeoutId ks_clock_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_step_timed_out = false;
static volatile int64 ks_bound_left_us = 0;	/* of the bound, in running time */
static volatile TimestampTz ks_clock_last = 0;	/* the last tick, or the arming */
static int	ks_tick_ms = KS_TICK_MS;

/*
 * A cancel is an error that user code can catch (a PL/pgSQL EXCEPTION WHEN
 * query_canceled in a loop): a step still running KS_KILL_GRACE_MS (of
 * running time, on the same clock) after its step timeout fired ends the
 * worker instead (die(), a FATAL error, which nothing catches).  The
 * aggregation is failed in shared memory on the way out, so the worker
 * started again does not run it.
 */
#define KS_KILL_GRACE_MS	5000
static volatile sig_atomic_t ks_step_killed = false;
static KsAggRun *ks_step_run = NULL;	/* the run whose step is running */

/*
 * While the step timeout is paused (recovery, checkpoints, reloads of cold
 * keys, compaction: keyedstate's own work, which may take long), user code
 * called in them (a replayed aggregate's transition function, a cast it
 * calls, a deserialize function) is bounded all the same: switching to the
 * owner arms the step clock, switching back disarms it.
 */
static bool ks_timeouts_paused = false;
static bool ks_owner_armed = false;
static TimestampTz ks_owner_armed_at = 0;	/* when it was armed */


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

/*
 * A checkpoint is let finish when a termination comes, but not forever: one
 * that waits for a lock (a prepared transaction's, say) would keep a fast
 * shutdown waiting for good.  A checkpoint that has run this long, or that
 * goes on this long after the termination, is cancelled like a step.
 */
#define KS_CKPT_TERM_GRACE_MS	20000
static TimeoutId ks_grace_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t ks_term_requested = false;
static volatile TimestampTz ks_term_requested_at = 0;
static volatile sig_atomic_t ks_term_cancels = false;

/*
 * SIGINTs received (KsRunCancelHandler).  A backend pausing or dropping an
 * aggregation signals the worker running its step; one delivered late,
 * once that step is over, lands in the next one.  A step whose count moved
 * was cancelled whether or not its own slot was asked (KsRunCancelled).
 */
static volatile uint32 ks_cancel_signals = 0;

/*
 * A tick of the step clock (see ks_bound_left_us): charge the running time
 * since the last tick; a spent bound cancels the step (the next
 * CHECK_FOR_INTERRUPTS raises, remembering it was the timeout) and starts
 * the kill grace, and a spent grace ends the worker.  Runs in the SIGALRM
 * handler.
 */
static void
KsStepClockHandler(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		ran = Min(now - ks_clock_last, (int64) (ks_tick_ms + KS_TICK_SLACK_MS) * 1000);

	ks_clock_last = now;
	ks_bound_left_us -= Max(ran, 0);
	if (ks_bound_left_us > 0)
		return;
	if (!ks_step_timed_out)
	{
		ks_step_timed_out = true;
		ks_bound_left_us = (int64) KS_KILL_GRACE_MS * 1000;
		QueryCancelPending = true;
	}
	else
	{
		ks_step_killed = true;
		ProcDiePending = true;
	}
	InterruptPending = true;
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

/* SIGINT handler of the worker: PostgreSQL's cancel, counted (see ks_cancel_signals). */
void
KsRunCancelHandler(SIGNAL_ARGS)
{
	ks_cancel_signals++;
	StatementCancelHandler(postgres_signal_arg);
}

/* The SIGINTs the worker has received so far (see ks_cancel_signals). */
uint32
KsRunCancelSignals(void)
{
	return ks_cancel_signals;
}

/* Enter a step of a run, marking the interrupts seen so far (see run.h). */
bool
KsRunEnterStep(KsAggRun *run, KsStepMark *mark)
{
	if (!KsSlotEnterStep(run->slot, mark))
		return false;
	mark->signals = ks_cancel_signals;
	return true;
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
 * Arm the step clock for a whole bound (the kill grace after it too, if the
 * step timeout fired already) and, for a whole step, the termination grace.
 */
static void
KsArmTimers(KsAggRun *run, bool with_grace)
{
	EnableTimeoutParams timeouts[2];
	int			n = 0;
	int64		bound_ms = run->timeout_ms;

	if (ks_step_timed_out)
		bound_ms += KS_KILL_GRACE_MS;
	ks_tick_ms = Max(Min(run->timeout_ms, KS_TICK_MS), 1);
	ks_bound_left_us = bound_ms * 1000;
	ks_clock_last = GetCurrentTimestamp();
	timeouts[n].id = ks_clock_timeout_id;
	timeouts[n].type = TMPARAM_EVERY;
	timeouts[n].delay_ms = ks_tick_ms;
	n++;
	if (with_grace)
	{
		timeouts[n].id = ks_grace_timeout_id;
		timeouts[n].type = TMPARAM_AFTER;
		timeouts[n].delay_ms = KS_TERM_GRACE_MS;
		n++;
	}
	enable_timeouts(timeouts, n);
}

/* Disarm what KsArmTimers armed (the step timeout's indicator is our own flag). */
static void
KsDisarmTimers(bool with_grace)
{
	DisableTimeoutParams timeouts[2];
	int			n = 0;

	timeouts[n].id = ks_clock_timeout_id;
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
void
KsRunAcceptCancels(bool accept)
{
	QueryCancelPending = false;
	QueryCancelHoldoffCount = accept ? 0 : 1;
}

/* Set up the process-wide parts of running steps. */
void
KsRunInitProcess(void)
{
	ks_clock_timeout_id = RegisterTimeout(USER_TIMEOUT, KsStepClockHandler);
	ks_grace_timeout_id = RegisterTimeout(USER_TIMEOUT, KsGraceTimeoutHandler);
	before_shmem_exit(KsRunKilledAtExit, (Datum) 0);
	KsRunAcceptCancels(false);
}

/*
 * The bound on one step: the setting, or the owner's statement_timeout if
 * smaller.  A step that loads the run has the setting's bound only: with
 * cold caches after a restart, reading the catalog to load it outlasted a
 * statement_timeout of a few milliseconds, which failed the aggregation
 * (review robustness 4, F3); the setting is the DBA's bound on user code.
 */
static int
KsStepTimeout(KsAggRun *run)
{
	int			owner_ms;

	if (!run->loaded)
		return ks_step_timeout;
	owner_ms = KsOwnerStatementTimeout(run->owner);

	if (owner_ms > 0 && owner_ms < ks_step_timeout)
		return owner_ms;
	return ks_step_timeout;
}

/*
 * Recovery and checkpoints run keyedstate's own code and C support
 * functions only, and may take long for a large state: they are not
 * bounded by the step timeout, which is armed again after them.  A
 * termination cancels a recovery (`cancel_on_term`: a restart redoes it)
 * and lets a checkpoint finish (it is what the shutdown would do anyway),
 * within KS_CKPT_TERM_GRACE_MS.
 */
void
KsRunTimeoutPause(bool cancel_on_term)
{
	KsRunDisarmTimeouts();
	ks_timeouts_paused = true;
	ks_term_cancels = cancel_on_term;
	if (cancel_on_term && ks_term_requested)
		KsCancelStep();
	else if (!cancel_on_term)
	{
		int			grace = KS_CKPT_TERM_GRACE_MS;

		/* counted from the termination if it came already (KS_CKPT_TERM_GRACE_MS) */
		if (ks_term_requested)
		{
			long		since = (GetCurrentTimestamp() - ks_term_requested_at) / 1000;

			grace = (int) Max(Min(KS_CKPT_TERM_GRACE_MS - since, KS_CKPT_TERM_GRACE_MS), 1);
		}
		enable_timeout_after(ks_grace_timeout_id, grace);
	}
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
		ks_owner_armed_at = ks_clock_last;
	}
}

/* User code called item after item inside keyedstate's own work (see run.h). */
void
KsRunOwnerCodeEach(KsAggRun *run)
{
	if (!ks_timeouts_paused ||
		(ks_owner_armed && GetCurrentTimestamp() - ks_owner_armed_at < (int64) run->timeout_ms * 250))
		return;
	KsRunOwnerCodeEnd();
	KsRunOwnerCodeBegin(run);
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

/* Whether the current step was told to stop (see run.h). */
bool
KsRunCancelled(KsAggRun *run)
{
	return ks_step_timed_out || ks_term_requested ||
		KsSlotInterruptedSince(run->slot, &run->step_mark) ||
		ks_cancel_signals != run->step_mark.signals;
}

/* Arm a step's time bound for a run (see run.h). */
void
KsRunBoundBegin(KsAggRun *run)
{
	ks_step_timed_out = false;
	run->timeout_ms = KsStepTimeout(run);
	ks_step_run = run;
	KsRunArmTimeouts(run);
}

/* Disarm it at the step's end or error; returns whether the step timed out. */
bool
KsRunBoundEnd(void)
{
	bool		timed_out = ks_step_timed_out;

	KsRunDisarmTimeouts();
	ks_step_run = NULL;
	ks_timeouts_paused = false;
	ks_owner_armed = false;
	ks_term_cancels = false;
	ks_step_timed_out = false;
	return timed_out;
}

/* Leave at the next step boundary, as after a termination (see run.h). */
void
KsRunLeaveSoon(void)
{
	ks_term_requested_at = GetCurrentTimestamp();
	ks_term_requested = true;
}
