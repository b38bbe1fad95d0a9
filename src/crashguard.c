/*-------------------------------------------------------------------------
 *
 * crashguard.c
 *	  Stopping an aggregation that keeps crashing the server: the
 *	  postmaster's record of crashes, the worker's handlers of its death
 *	  and its check before a load.
 *	  See crashguard.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "crashguard.h"
#include "settings.h"
#include "shmem.h"

/* The record, in the postmaster's memory: it outlives every reinitialization. */
static KsCrashRecord ks_crashes[KS_CRASH_RECORDS];

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The memory the aggregation of slot i holds in the parts that worker pid
 * ran, or -1 if it is counted at another of its slots (a dying server's
 * values).
 */
static int64
KsCrashAggMemory(KsShared *shared, int i, int pid)
{
	KsAggSlot  *slot = &shared->aggs[i];
	int64		total = 0;
	int			j;

	if (!slot->in_use || slot->runner_pid != pid || !OidIsValid(slot->dboid) || slot->state == KS_FAILED)
		return -1;
	/* counted once, at its first slot there */
	for (j = 0; j < i; j++)
		if (shared->aggs[j].in_use && shared->aggs[j].runner_pid == pid &&
			shared->aggs[j].dboid == slot->dboid && shared->aggs[j].part.parent == slot->part.parent &&
			shared->aggs[j].state != KS_FAILED)
			return -1;
	for (j = i; j < shared->max_aggs; j++)
	{
		KsAggSlot  *s = &shared->aggs[j];

		if (!s->in_use || s->runner_pid != pid || s->dboid != slot->dboid ||
			s->part.parent != slot->part.parent || s->state == KS_FAILED)
			continue;
		/* no more than a petabyte each: anything else is not a measure */
		if (s->memory_bytes > 0 && s->memory_bytes < ((int64) 1 << 50))
			total += s->memory_bytes;
		if (s->shared_bytes > 0 && s->shared_bytes < ((int64) 1 << 50))
			total += s->shared_bytes;
	}
	return total;
}

/* Charge a crash to the aggregation of slot i, holding `bytes`, its worker dead of `fault` or 0. */
static void
KsCrashCharge(KsAggSlot *slot, int64 bytes, int fault, TimestampTz now)
{
	KsCrashRecord *r = NULL;
	int			i;

	for (i = 0; i < KS_CRASH_RECORDS && r == NULL; i++)
		if (ks_crashes[i].dboid == slot->dboid && ks_crashes[i].aggid == slot->part.parent)
			r = &ks_crashes[i];
	/* else a free entry, or the one charged longest ago */
	for (i = 0; i < KS_CRASH_RECORDS && r == NULL; i++)
		if (!OidIsValid(ks_crashes[i].dboid))
			r = &ks_crashes[i];
	if (r == NULL)
	{
		r = &ks_crashes[0];
		for (i = 1; i < KS_CRASH_RECORDS; i++)
			if (ks_crashes[i].last_at < r->last_at)
				r = &ks_crashes[i];
	}
	/* resumed since, or its last crash long ago (or another aggregation's entry): afresh */
	if (r->dboid != slot->dboid || r->aggid != slot->part.parent ||
		r->resume_count != slot->resume_count ||
		TimestampDifferenceExceeds(r->last_at, now, KS_CRASH_WINDOW_MS))
	{
		r->dboid = slot->dboid;
		r->aggid = slot->part.parent;
		r->resume_count = slot->resume_count;
		r->crashes = 0;
	}
	r->crashes++;
	r->memory_bytes = bytes;
	r->signal = fault;
	r->last_at = now;
	if (fault != 0)
		elog(LOG, "keyedstate: the crash is charged to aggregation %d of database %u, whose worker died of signal %d in a step of it (crash %d of %d that stop it)",
			 r->aggid, r->dboid, fault, r->crashes, KS_CRASH_LIMIT);
	else
		elog(LOG, "keyedstate: the crash is charged to aggregation %d of database %u, which held %lld MB of memory (crash %d of %d that stop it)",
			 r->aggid, r->dboid, (long long) (bytes / (1024 * 1024)), r->crashes, KS_CRASH_LIMIT);
}

/*
 * A worker that died of a fault (KsWorkerFaultHandler) in a step of an
 * aggregation: charge the crash to that one, whatever it holds (exactness
 * review 21, F1: a pane's state freed by a combine function crashed the
 * worker at every load, 205 server restarts in 40 s, and the aggregation
 * held little memory).  False if no such worker.
 */
static bool
KsCrashChargeFault(KsShared *shared, TimestampTz now)
{
	for (int d = 0; d < KS_MAX_DATABASES; d++)
		for (int w = 0; w < KS_MAX_DB_WORKERS; w++)
		{
			KsDbWorker *worker = &shared->dbs[d].workers[w];
			int			fault = worker->fault_signal;

			if (worker->pid <= 0 || worker->quit_signalled || fault <= 0 || fault >= 65)
				continue;
			for (int i = 0; i < shared->max_aggs; i++)
			{
				KsAggSlot  *slot = &shared->aggs[i];

				if (slot->in_use && slot->runner_pid == worker->pid && slot->in_step &&
					OidIsValid(slot->dboid) && slot->state != KS_FAILED)
				{
					KsCrashCharge(slot, 0, fault, now);
					return true;
				}
			}
		}
	return false;
}

/*
 * on_shmem_exit callback of the postmaster: at a reinitialization after a
 * crash (code 1; 0 is a shutdown), charge the crash (see crashguard.h).
 */
static void
KsCrashGuardAtReset(int code, Datum arg)
{
	KsShared   *shared = KsSharedState;
	int64		most = 0;
	int			top = -1;
	int			i;

	if (code == 0 || shared == NULL || shared->max_aggs != ks_max_aggregations)
		return;
	if (KsCrashChargeFault(shared, GetCurrentTimestamp()))
		return;
	/*
	 * The workers that died on their own: running at the crash, and not
	 * ended by the postmaster's SIGQUIT (KsWorkerQuitHandler).  A crash of
	 * any other process (a backend the kernel killed, a kill -9 of one) is
	 * charged to no aggregation (security review 21, F2: charged to the
	 * largest wherever it happened, a role's own session killed three
	 * times stopped another owner's aggregation).
	 */
	for (int d = 0; d < KS_MAX_DATABASES; d++)
		for (int w = 0; w < KS_MAX_DB_WORKERS; w++)
		{
			int			pid = shared->dbs[d].workers[w].pid;

			if (pid <= 0 || shared->dbs[d].workers[w].quit_signalled)
				continue;
			for (i = 0; i < shared->max_aggs; i++)
			{
				int64		bytes = KsCrashAggMemory(shared, i, pid);

				if (bytes > most)
				{
					most = bytes;
					top = i;
				}
			}
		}
	if (top >= 0 && most >= KS_CRASH_MIN_BYTES)
		KsCrashCharge(&shared->aggs[top], most, 0, GetCurrentTimestamp());
}

/*
 * shmem_startup_hook, after shmem.c's: in the postmaster (or a single-user
 * backend), whose shared memory is new, copy the record into it, and
 * charge the crash that will end it, if one does (see crashguard.h).
 */
static void
KsCrashGuardStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	if (IsUnderPostmaster || KsSharedState == NULL)
		return;
	memcpy(KsSharedState->crashes, ks_crashes, sizeof(ks_crashes));
	/* (shmem_exit empties the list of callbacks as it runs them: registered anew each time) */
	on_shmem_exit(KsCrashGuardAtReset, (Datum) 0);
}

/* SIGQUIT: note it, then exit at once (see crashguard.h). */
void
KsWorkerQuitHandler(SIGNAL_ARGS)
{
	KsDbWorker *me = KsMyDbWorker();

	if (me != NULL)
		me->quit_signalled = true;
	SignalHandlerForCrashExit(postgres_signal_arg);
}

/*
 * A PANIC (a WAL write failing on a full disk, say) ends in abort(): no
 * fault of what the step ran (re-review today 26, F4).  emit_log_hook sees
 * it before the abort.
 */
static emit_log_hook_type prev_emit_log_hook = NULL;
static volatile sig_atomic_t ks_panicking = false;

static void
KsWorkerEmitLog(ErrorData *edata)
{
	if (edata->elevel >= PANIC)
		ks_panicking = true;
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* A fault: note it, then die of it (see crashguard.h). */
static void
KsWorkerFaultHandler(int sig)
{
	KsDbWorker *me = KsMyDbWorker();

	if (me != NULL && !ks_panicking)
		me->fault_signal = sig;
	/* its default action again (SA_RESETHAND), not blocked here (SA_NODEFER) */
	raise(sig);
}

/* Catch the faults a worker can die of (see crashguard.h). */
void
KsWorkerCatchFaults(void)
{
	static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGABRT};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = KsWorkerFaultHandler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	for (int i = 0; i < (int) lengthof(faults); i++)
		(void) sigaction(faults[i], &sa, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = KsWorkerEmitLog;
}

/* Install the postmaster's side (see crashguard.h). */
void
KsCrashGuardInit(void)
{
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = KsCrashGuardStartup;
}

/* Before a run loads: stopped by crashes, or told of them (see crashguard.h). */
void
KsCrashGuardCheck(KsAggRun *run)
{
	const KsCrashRecord *r = NULL;
	int			i;

	for (i = 0; i < KS_CRASH_RECORDS && r == NULL; i++)
		if (KsSharedState->crashes[i].dboid == MyDatabaseId &&
			KsSharedState->crashes[i].aggid == run->def->agg_id &&
			KsSharedState->crashes[i].resume_count == run->def->resume_count)
			r = &KsSharedState->crashes[i];
	if (r == NULL || r->crashes <= 0)
		return;
	if (r->crashes >= KS_CRASH_LIMIT && r->signal != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("aggregation %s was stopped after its worker crashed %d times in a step of it",
						run->name, r->crashes),
				 errdetail("At the last crash, at %s, the worker died of signal %d (%s). A crash restarts the whole server, and loading the aggregation again would crash it again.",
						   timestamptz_to_str(r->last_at), r->signal, pg_strsignal(r->signal)),
				 errhint("The server log shows where it crashed: fix the function, aggregate or type at fault, then call keyedstate.resume().")));
	if (r->crashes >= KS_CRASH_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("aggregation %s was stopped after the server crashed %d times while it held the most memory",
						run->name, r->crashes),
				 errdetail("At the last crash, at %s, it held %lld MB. A process the kernel kills for lack of memory restarts the whole server, and loading the aggregation again would run out of memory again.",
						   timestamptz_to_str(r->last_at), (long long) (r->memory_bytes / (1024 * 1024))),
				 errhint("Bound its memory with memory_limit (keyedstate.alter_aggregation) or keyedstate.max_state_memory, then call keyedstate.resume().")));
	/* once per load of the worker's run */
	if (run->crashes_noted != r->crashes)
	{
		run->crashes_noted = r->crashes;
		ereport(LOG,
				(r->signal != 0 ?
				 errmsg("the server crashed while the worker of aggregation %s ran a step of it (signal %d)",
						run->name, r->signal) :
				 errmsg("the server crashed while aggregation %s held the most memory (%lld MB)",
						run->name, (long long) (r->memory_bytes / (1024 * 1024))),
				 errdetail("It is charged with %d crashes in a row; after %d it is stopped.",
						   r->crashes, KS_CRASH_LIMIT)));
	}
}
