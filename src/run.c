/*-------------------------------------------------------------------------
 *
 * run.c
 *	  One aggregation's run in the database worker: its life cycle (created,
 *	  given definitions, unloaded, failed, released) and what its user code
 *	  runs under (identity, settings); its time bound and cancels are
 *	  runbound.c.  What one step does is step.c.  See run.h.
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
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "owner.h"
#include "run.h"
#include "settings.h"

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
 * Start a transaction for a step, with a GUC nest level holding the
 * aggregation's captured settings and whatever its user code sets, the
 * time bound, and the owner's identity.  Returns the nest level for
 * KsRunEnd.
 */
int
KsRunBegin(KsAggRun *run)
{
	int			nestlevel;

	KsRunAcceptCancels(true);
	/* pg_stat_activity's xact_start and query_start: this step's, not the worker's start */
	SetCurrentStatementStartTimestamp();
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
		/* (in normal operation: the first worker of a start runs every owner's for a moment; newuser review 2, F9) */
		ereport(LOG,
				(errmsg("keyedstate worker hands aggregation %s over to a fresh worker process", run->name),
				 errdetail("A worker process runs the aggregations of one owner only, and this one has run another owner's.")));
		KsRunLeaveSoon();
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
	KsRunBoundBegin(run);
	KsBecomeOwner(run);
	return nestlevel;
}

/*
 * The worker's database, named in the context of its messages: a
 * background worker's log lines have no %d (KsRunSetDatabase).
 */
static char ks_run_dbname[NAMEDATALEN] = "";

/* Remember the worker's database's name (see run.h). */
void
KsRunSetDatabase(const char *dbname)
{
	strlcpy(ks_run_dbname, dbname, NAMEDATALEN);
}

/* Error context of a step: which aggregation, and which input row (see run.h). */
void
KsRowErrorContext(void *arg)
{
	KsAggRun   *run = (KsAggRun *) arg;

	if (run->cur_offset != 0)
		errcontext("keyedstate aggregation %s of database %s, input row with offset " INT64_FORMAT,
				   run->name, ks_run_dbname, run->cur_offset);
	else
		errcontext("keyedstate aggregation %s of database %s", run->name, ks_run_dbname);
}

/* Commit a step's transaction, rolling back settings its user code changed. */
void
KsRunEnd(int nestlevel)
{
	(void) KsRunBoundEnd();
	KsBecomeWorker();
	KsSetSessionUser(ks_worker_userid, true);
	AtEOXact_GUC(false, nestlevel);
	/* session advisory locks its user code took do not outlive the step */
	LockReleaseSession(USER_LOCKMETHOD);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	KsRunAcceptCancels(false);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Before the worker sleeps: the statistics its steps counted and
 * pgstat_report_stat left pending (it flushes at most once a second) go
 * out once they waited a second, as a backend's idle timeout sends them;
 * returns the sleep, cut to that second.  Without it the counts of the
 * last second of work waited for the next step, however late: autovacuum
 * reads them (keyedstate_internal.cold's dead rows), and so do DBAs.
 */
long
KsRunFlushStats(long timeout)
{
	static TimestampTz pending_since = 0;
	long		waited;

	if (pgstat_report_stat(false) == 0)
	{
		pending_since = 0;
		return timeout;
	}
	if (pending_since == 0)
		pending_since = GetCurrentTimestamp();
	waited = TimestampDifferenceMilliseconds(pending_since, GetCurrentTimestamp());
	if (waited < 1000)
		return Min(timeout, 1000 - waited);
	pgstat_report_stat(true);
	pending_since = 0;
	return timeout;
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
	char	   *hint = edata->hint ? pstrdup(edata->hint) : NULL;
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
	KsSlotSetFailed(run->slot, message, hint, offset);
	/* failed, it needs its worker no more (pool.c) */
	KsParkAggSlot(run->slot, run->def->resume_count);
}

/* How long a run retries after running out of memory before it fails (ten minutes). */
#define KS_OOM_RETRY_US		((int64) ks_oom_retry * 1000)

/* How long after its last retry a streak of errors ends without a checkpoint. */
#define KS_RETRY_STREAK_US	((int64) 10 * 60 * USECS_PER_SEC)

/*
 * Whether the errors go on (KsRunRetryAfter): no checkpoint has committed
 * since the last retry (KsCheckpointDone ends the streak), however long
 * the replay after it took, for ten minutes at most.
 */
static bool
KsRetryStreak(KsAggRun *run, TimestampTz now)
{
	return run->retry_at != 0 && now - run->retry_at < KS_RETRY_STREAK_US;
}

/*
 * How many times in a row (no checkpoint committing between: the same
 * row, or rows a function picks at random, re-review today 14, F5) the
 * aggregation's own code may raise a passing error before it fails: a function that raises one
 * itself (RAISE ... USING ERRCODE = 'serialization_failure') would
 * otherwise keep its aggregation loading again once a minute for ever,
 * "running" and never consuming (security review 17, F4).  Four retries
 * (1 + 2 + 4 + 8 s) let a real conflict it met pass.
 */
#define KS_CODE_ERRORS_MAX	5

/*
 * Whether the aggregation's own code raised the error: a procedural
 * language's RAISE (or elog) reported it, or, while its code ran
 * (expressions compiled: constant folding; rows read and applied; rows
 * built), a lock it waited for: it can set its own
 * lock_timeout, lock with NOWAIT or make a deadlock with a session of its
 * owner's, and the server raises those itself (security review 18, F1:
 * counted only when a PL raised them, such a function kept its
 * aggregation retrying for ever).  The worker's own reads take no lock
 * there that anyone but a superuser can hold for long.
 */
static bool
KsRaisedByUserCode(ErrorData *edata, bool in_code)
{
	const char *file = edata->filename ? edata->filename : "";

	if (in_code &&
		(edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		 edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		 edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE))
		return true;
	return strcmp(file, "pl_exec.c") == 0 || strcmp(file, "plperl.c") == 0 ||
		strcmp(file, "pltcl.c") == 0 || strncmp(file, "plpy_", 5) == 0 ||
		strncmp(file, "plv8", 4) == 0;
}

/*
 * Errors of the disk or of concurrency, not of the aggregation: a full
 * disk (keyedstate_internal.state's tablespace), an I/O error, a deadlock, a
 * serialization failure, a lock timeout.  They pass, and PostgreSQL's own
 * processes retry after them; so does a run.  Out of memory passes for ten
 * minutes of retries (the lock table full, for ever: below), but memory
 * that stays short (the worker's, of /dev/shm), which a run loaded again
 * takes again, fails it then.  Not
 * keyedstate's own limits (53400).  A file's other errors (class 58: no
 * such file; and, raised where relations' files are opened, a permission
 * denied or a file system remounted read-only, too many open files, a
 * file over the size limit or a disk quota full) pass too: a privilege
 * check of the owner's has the same SQLSTATE, but is never raised there.
 */
static bool
KsIsPassingErrorCode(KsAggRun *run, ErrorData *edata, TimestampTz now)
{
	const char *file = edata->filename ? edata->filename : "";

	if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_SYSTEM_ERROR)
		return true;
	/* (a file over the size limit, or a quota, is an internal error to PostgreSQL: fault review 42, F1) */
	if ((edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ||
		 edata->sqlerrcode == ERRCODE_INSUFFICIENT_RESOURCES ||
		 (edata->sqlerrcode == ERRCODE_INTERNAL_ERROR &&
		  (edata->saved_errno == EFBIG || edata->saved_errno == EDQUOT))) &&
		(strcmp(file, "md.c") == 0 || strcmp(file, "fd.c") == 0))
		return true;
	switch (edata->sqlerrcode)
	{
		case ERRCODE_DISK_FULL:
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
		case ERRCODE_T_R_DEADLOCK_DETECTED:
		case ERRCODE_LOCK_NOT_AVAILABLE:
			return true;
		case ERRCODE_OUT_OF_MEMORY:
			/*
			 * The lock table full ("out of shared memory", lock.c and
			 * predicate.c): any role that can log in fills it with advisory
			 * locks, for as long as she likes, and PostgreSQL recovers once
			 * she lets go; so do we (review security 26, F5: every
			 * aggregation of the server failed after ten minutes of it).
			 */
			if (strcmp(file, "lock.c") == 0 || strcmp(file, "predicate.c") == 0)
				return true;
			return !KsRetryStreak(run, now) || now - run->retry_since < KS_OOM_RETRY_US;
		default:
			return false;
	}
}

/*
 * Whether an error passes (KsIsPassingErrorCode); one that the
 * aggregation's functions raise themselves at most KS_CODE_ERRORS_MAX - 1
 * times in a row.
 */
static bool
KsIsPassingError(KsAggRun *run, ErrorData *edata, bool in_code)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!KsIsPassingErrorCode(run, edata, now))
		return false;
	if (!KsRaisedByUserCode(edata, in_code))
		return true;
	/* in a row: with no checkpoint between (at one row, or at rows chosen at random) */
	if (!KsRetryStreak(run, now))
		run->code_errors = 0;
	if (++run->code_errors < KS_CODE_ERRORS_MAX)
		return true;
	edata->detail = psprintf("The aggregation's own code raised it %d times in a row, with no checkpoint between, so it is not taken for an error that passes.",
							 run->code_errors);
	/* a resume() starts counting again */
	run->code_errors = 0;
	return false;
}

/*
 * After a passing error: log it as a warning, unload the run and load it
 * again (from its last checkpoint, replaying the rows after it) once a
 * wait has passed, 1 s doubled up to a minute while the errors go on.
 * The published rows stay, so the view goes on showing the state as of
 * the last step, and status shows the error until the run is loaded again.
 */
static void
KsRunRetryAfter(KsAggRun *run, ErrorData *edata, int64 offset)
{
	TimestampTz now = GetCurrentTimestamp();

	if (KsRetryStreak(run, now))
		run->retry_delay_ms = Min(run->retry_delay_ms * 2, 60 * ks_retry_delay);
	else
	{
		run->retry_delay_ms = ks_retry_delay;	/* (a second, but in tests) */
		run->retry_since = now;
	}
	run->retry_at = TimestampTzPlusMilliseconds(now, run->retry_delay_ms);
	edata->elevel = WARNING;
	edata->detail = psprintf("keyedstate loads aggregation %s again in %d s, from its last checkpoint.",
							 run->name, (run->retry_delay_ms + 999) / 1000);
	/* a warning is logged and returns */
	ThrowErrorData(edata);
	KsRunUnload(run);
	KsSlotSetState(run->slot, KS_RUNNING, edata->message, offset);
}

/* Whether a run unloaded by a passing error must wait (see run.h). */
bool
KsRunRetryLater(KsAggRun *run, long *timeout)
{
	long		wait;

	if (run->loaded || run->retry_at == 0)
		return false;
	wait = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), run->retry_at);
	if (wait <= 0)
		return false;
	*timeout = Min(*timeout, wait);
	return true;
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
	bool		in_code = run->in_code;
	bool		timed_out = KsRunBoundEnd();
	int64		seen = run->loaded ? run->source.seq_seen : 0;

	/* out of the step: further cancels wait for the next one */
	KsRunAcceptCancels(false);
	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	KsSetSessionUser(ks_worker_userid, true);
	LockReleaseSession(USER_LOCKMETHOD);
	/* no step runs any more: not an active query (DBA review 10, D10-3) */
	pgstat_report_activity(STATE_IDLE, NULL);
	run->cur_offset = 0;
	run->in_code = false;

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
		if (KsRunTerminating())
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
		/*
		 * A cancel keyedstate sent for another aggregation's step, late:
		 * just go on.  One it did not send (pg_cancel_backend) fails the
		 * step, as it would a query.
		 */
		if (KsRunCancelSignals() != mark->signals && KsRunCancelSignals() <= KsWorkerInterruptsSent())
		{
			KsRunUnload(run);
			FreeErrorData(edata);
			return;
		}
	}
	/* its view dropped: the drop's commit asks for the reload that lets it go (user review 50, F2: an ERROR per part) */
	if (!OidIsValid(run->owner) && edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
	{
		run->interrupted = true;
		KsRunUnload(run);
		FreeErrorData(edata);
		return;
	}
	if (!timed_out && KsIsPassingError(run, edata, in_code))
	{
		KsRunRetryAfter(run, edata, offset);
		KsRunAcceptCancels(false);
		return;
	}
	if (timed_out)
	{
		edata->message = psprintf("aggregation %s took more than %d ms in one step (step timeout)",
								  run->name, run->timeout_ms);
		edata->detail = pstrdup("A function it runs may be slow or loop.  keyedstate.step_timeout and the owner's statement_timeout bound each step.");
		edata->hint = pstrdup("Fix the cause, then call keyedstate.resume().");
		edata->sqlerrcode = ERRCODE_QUERY_CANCELED;
	}
	run->seq_seen_lost = seen;	/* (kept by step.c: checkpoint.h) */
	KsRunRecordFailure(run, edata, offset);
	/* reporting it raised and caught the error again, which let cancels in */
	KsRunAcceptCancels(false);
}

/* The worker memory of a loaded run's keys and states (see run.h). */
int64
KsRunMemoryBytes(KsAggRun *run)
{
	return MemoryContextMemAllocated(run->loadcxt, true) + KsKeyTableMappedTouched(run->kt);
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
	/*
	 * Within the second: the rows consumed so far in it, if more (a drain
	 * that just began).  Not extrapolated: 3 rows are not 30 a second.
	 */
	return Max(run->last_rate, (double) run->rate_rows);
}

/* How long an open writer holds the frontier before we say 'waiting'. */
#define KS_WAITING_AFTER_MS		1000

/* Report a step's progress and the run's state to keyedstate.status (see run.h). */
void
KsRunReport(KsAggRun *run, KsSlotProgress *progress, bool source_busy, int source_holder)
{
	TimestampTz now = GetCurrentTimestamp();
	KsRunState	state;

	if (!run->loaded)
	{
		if (run->def->paused)
		{
			/* (paused it says so, whatever it waits for: re-review today 23, F2) */
			if (run->slot->state != KS_PAUSED)
				KsSlotSetState(run->slot, KS_PAUSED, NULL, 0);
		}
		else if (source_busy)	/* say whom the load waits for (review robustness2, F1) */
			KsSlotSetStartWait(run->slot, source_holder, KS_WAIT_SOURCE);
		else if (run->slot->start_wait == KS_WAIT_SOURCE)	/* (ours to write) */
			KsSlotSetState(run->slot, KS_STARTING, NULL, 0);
		return;
	}
	if (run->def->paused)
		state = KS_PAUSED;
	else if (run->evict_holding && (run->ckpt_skipped || run->ckpt_blocked))
		state = KS_WAITING;		/* for its catalog row (evict.h), or keyedstate's tables */
	else if (source_busy ||
			 (run->source.frontier.nwaits > 0 && run->consumed >= run->source.frontier.safe &&
			  TimestampDifferenceExceeds(run->source.frontier.blocked_since, now, KS_WAITING_AFTER_MS)))
		state = KS_WAITING;
	else if (run->consumed < run->rebuild_until)
		state = KS_REBUILDING;
	else
		state = KS_RUNNING;
	progress->high_water = Max(run->source.frontier.target, run->consumed);
	progress->waiting_pid = (state != KS_WAITING) ? 0 :
		(run->evict_holding && (run->ckpt_skipped || run->ckpt_blocked)) ? run->ckpt_holder :
		source_busy ? source_holder : run->source.frontier.blocking_pid;
	progress->rows_per_second = KsRunRate(run, now);
	progress->keys = KsKeyTableInMemory(run->kt);
	progress->cold_keys = run->cold_keys;
	progress->keys_expired = run->keys_expired;
	progress->rows_late = run->rows_late;
	progress->row_errors = run->row_errors;
	progress->evictions = run->evictions;
	progress->reloads = run->reloads;
	progress->memory_limit = run->memory_budget;
	/* paused, it consumes up to where it paused (step.c), whose watermark was checkpointed */
	progress->ckpt_blocker = run->ckpt_skipped ? run->ckpt_holder : -1;
	progress->watermark_known = run->consumed >= run->seen_until ||
		(run->def->paused && run->consumed >= Max(run->pause_until, run->seed_until));
	progress->memory_bytes = KsRunMemoryBytes(run);
	KsSlotReportProgress(run->slot, progress);
	/* (the slot is ours to read: only this worker writes its state) */
	if (state == KS_WAITING && run->evict_holding && (run->ckpt_skipped || run->ckpt_blocked))
	{
		int			what = run->ckpt_skipped ? KS_WAIT_CATALOG : KS_WAIT_TABLES;

		if (run->slot->state != state || run->slot->start_wait != what ||
			run->slot->waiting_pid != run->ckpt_holder)
			KsSlotSetStartWait(run->slot, run->ckpt_holder, what);
	}
	else if (run->slot->state != state || run->slot->start_wait != 0)
		KsSlotSetState(run->slot, state, NULL, 0);
}
