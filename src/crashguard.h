/*-------------------------------------------------------------------------
 *
 * crashguard.h
 *	  Stopping an aggregation that keeps crashing the server: for lack of
 *	  memory, or by a fault in its steps.
 *
 * A process the kernel kills for lack of memory (the OOM killer, a
 * container's or cgroup's limit) is a crash: the postmaster ends every
 * process and reinitializes shared memory.  keyedstate's workers then load
 * every aggregation again and replay the rows after its checkpoint, so an
 * aggregation whose state needs more memory than the server has would be
 * killed again at the same point, and the whole server would restart
 * every second for ever (review robustness2, F6: 112 restarts in 45 s).
 * PostgreSQL itself never runs again a query a crash took.
 *
 * Everything in shared memory is gone after such a crash, but the
 * postmaster's own memory is not: it outlives every reinitialization until
 * the server stops.  So the postmaster keeps the record (KsCrashRecord,
 * shmem.h).  When it
 * reinitializes after a crash (an on_shmem_exit callback with a non-zero
 * code, run while the old segment is still mapped), it reads the
 * aggregation slots, without a lock (no process but it is left), and
 * charges the crash to the aggregation holding the most memory, worker and
 * shared together over its parts, if that is at least KS_CRASH_MIN_BYTES:
 * the one the kernel's choice most likely fell on, and never a small one
 * that a kill -9 of its worker took down.  The new shared memory starts
 * with a copy of the record (its shmem_startup_hook, after shmem.c's),
 * read-only from then on.
 *
 * A worker that dies of a fault (SIGSEGV, SIGBUS, SIGILL, SIGABRT: a bug
 * in a C function, an aggregate or a type the aggregation calls, or in
 * keyedstate for it) notes the signal in its pool slot as it dies
 * (KsWorkerCatchFaults); the crash is then charged to the aggregation its
 * slot says it was running a step of (in_step), whatever memory that one
 * holds, before any charge by memory: a load that crashes crashes again at
 * every restart (exactness review 21, F1: 205 restarts in 40 s).  A SIGKILL
 * is no fault: a DBA's kill -9 of a worker is not charged to what it ran.
 *
 * A worker about to load an aggregation looks it up (KsCrashGuardCheck,
 * before the load runs any code of it: its query's analysis and its
 * aggregates' initial values may be what crashed, security review 23):
 * charged with KS_CRASH_LIMIT crashes, KS_CRASH_WINDOW_MS at most apart,
 * since its last resume(), it fails with an error saying so instead of
 * loading; charged with fewer, it logs it.  It stays failed across further
 * crashes until keyedstate.resume() (a new resume count: the record no
 * longer matches) or until the server stops (a clean start forgets).
 *
 * The slot values read after a crash are those a dying server left: every
 * one is checked against bounds before use, and nothing they point to is
 * followed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_CRASHGUARD_H
#define KS_CRASHGUARD_H

#include "run.h"

/* Crashes charged to one aggregation that stop it. */
#define KS_CRASH_LIMIT			3

/* Crashes further apart than this start counting again. */
#define KS_CRASH_WINDOW_MS		(10 * 60 * 1000)

/* The least memory an aggregation a crash is charged to holds. */
#define KS_CRASH_MIN_BYTES		((int64) 64 * 1024 * 1024)

/*
 * A worker's SIGQUIT handler: the postmaster ends every process so after a
 * crash; a worker that died without it died on its own, of the crash.
 * Notes it in the worker's slot (KsMyDbWorker), then exits as PostgreSQL's
 * handler does.
 */
extern void KsWorkerQuitHandler(SIGNAL_ARGS);

/*
 * A worker's handlers of the faults it can die of (SIGSEGV, SIGBUS,
 * SIGILL, SIGABRT: not SIGFPE, which PostgreSQL makes an error, nor the
 * abort() of a PANIC): each notes the signal in the worker's slot and dies
 * of it as it would have.
 * A crash of a worker that died of a fault in a step of an aggregation
 * (its own code's, or keyedstate's for it) is charged to that aggregation,
 * whatever memory it holds.
 */
extern void KsWorkerCatchFaults(void);

/* Install the postmaster's side: called from _PG_init, after KsShmemInit. */
extern void KsCrashGuardInit(void);

/*
 * Worker, before loading a run: error out if crashes stopped it (see
 * above), log the crashes charged to it otherwise.
 */
extern void KsCrashGuardCheck(KsAggRun *run);

#endif							/* KS_CRASHGUARD_H */
