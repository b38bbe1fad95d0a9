/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The fixed shared-memory struct of keyedstate, and every lock on it.
 *
 * PostgreSQL 15 has no named DSM registry, so everything shared hangs off
 * one struct allocated in the main shared memory segment at startup (hence
 * the need for shared_preload_libraries):
 *
 *	- one slot per aggregation (keyedstate.max_aggregations), with its
 *	  identity, progress counters, state, error text, a condition variable
 *	  that sync() sleeps on, and the root of its published rows in the DSA;
 *	- one slot per database that has (or may have) aggregations, used by
 *	  the launcher to start and restart the database's workers;
 *	- the handle of the one DSA area that holds published rows; it is
 *	  created lazily by the first process that needs it.
 *
 * Slot life cycle.  create_aggregation() reserves a slot in its own
 * transaction (so running out of slots is an error at creation, never an
 * aggregation left 'starting'); the reservation names the creating
 * transaction and is given back if it aborts.  The database worker the
 * slot is assigned to (below) claims it when it loads the aggregation and
 * is the only process that publishes into it or frees it: when the
 * aggregation is dropped, when its database is gone (the launcher, once no
 * worker is left), or when a reservation's transaction ended without
 * creating it.  A failed aggregation keeps its slot (status shows why) but
 * gives its published rows back at once.
 *
 * The pool of workers.  keyedstate.max_workers bounds the database workers
 * of the server.  The launcher shares them out: every database that wants
 * a worker gets one (even beyond max_workers: no database is left
 * without), then one for each other owner of its aggregations (`nowners`),
 * max_workers of those at most in the server, then what is left of
 * max_workers goes round the databases, up to one per aggregation or part
 * of one (`nworkers`, its pool; its workers report `naggs`).  An owner
 * beyond them waits for a worker: a worker never runs two owners'
 * aggregations (owner.h), and no more than max_workers start for them.  A database's workers are numbered 0, 1, ...; those whose
 * number leaves the pool hand their aggregations over and leave.  Each
 * aggregation slot is assigned to one of them (`worker`); the assignment
 * sticks, so an aggregation moves only when its worker's number leaves the
 * pool (fewer aggregations, a lower max_workers) or when the loads differ
 * by two or more.  Owners are kept apart (owner.h): an aggregation goes to
 * an empty worker, else to one running only its owner's, else it waits
 * until an owner with several workers has emptied one for it; that owner
 * is not spread out again for a minute (the worker's `emptied_owner`,
 * pool.c), so that
 * a role creating and dropping aggregations in a loop cannot keep another
 * owner's moving.  A worker runs the aggregations assigned to it and
 * claims each slot (`runner_pid`) only once the previous runner is gone:
 * an aggregation that moves is handed over by its old worker, which takes
 * a final checkpoint and then lets go of the slot, keeping its published
 * rows until the new worker has recovered and replaced them.  So at most
 * one process ever writes a slot, its state or its checkpoints.  A paused
 * aggregation that has checkpointed all it consumed, and a failed one,
 * need no worker: they are parked (`parked_resume`, or the slot's failed
 * state), assigned to none and counted in neither the pool's demand nor
 * its owners (`nparked`), their published rows staying readable; resume()
 * raises the catalog's resume_count, which unparks them (re-review today
 * 29, F2: paused aggregations kept their owners' workers from others).
 *
 * Locking protocol (shmem.c, dbslots.c, pool.c and poolshare.c, for the slots, and store.c, for
 * published rows, are the only files that take these locks; everything
 * else goes through the functions below):
 *	- KsShared->lock guards allocating and freeing aggregation slots, the
 *	  database slots and creating the DSA.  Shared mode is enough to look a
 *	  slot up.
 *	- Each aggregation slot's `lock` guards its progress fields and its
 *	  published rows.  The worker takes it exclusive to publish a step and
 *	  to update progress; readers take it shared.  So a reader sees the
 *	  rows of exactly one consumed offset, never half a step.
 *	- A slot's identity (in_use, dboid, aggid, generation) changes only
 *	  while both locks are held exclusive, so either lock makes it stable.
 *	  A KsSlotRef remembers the generation it found; every function taking
 *	  one rechecks it under the slot lock, so a slot that was freed and
 *	  reused for another aggregation is never mistaken for the old one.
 *	- Never take KsShared->lock while holding a slot lock.
 *	- KsShared->filelock serializes writing the file of databases, so that
 *	  file I/O never holds the lock that lookups (and view plans) take.
 *
 * A crash of any backend resets all of this; the worker rebuilds it from
 * the checkpoint relation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SHMEM_H
#define KS_SHMEM_H

#include "keyedstate.h"

#include <signal.h>

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/dsa.h"

/* What an aggregation is doing, as shown by keyedstate.status */
typedef enum KsRunState
{
	KS_STARTING = 0,			/* created, or the worker is loading it */
	KS_RUNNING,					/* consuming, or caught up */
	KS_WAITING,					/* held back by an open writer */
	KS_PAUSED,					/* paused by keyedstate.pause() */
	KS_FAILED,					/* stopped by an error; see error text */
	KS_REBUILDING				/* consuming its table again from the start */
} KsRunState;

/*
 * Which part of which aggregation a slot runs: an aggregation running in
 * parallel has one slot per part (keyedstate_internal.part), each holding the keys
 * of its range of key groups; one run whole has one slot, its only part.
 * Readers gather the slots of the newest layout (shmem.c: KsFindAggParts).
 */
typedef struct KsPartInfo
{
	int32		parent;			/* the aggregation's id */
	int32		layout;			/* the aggregation's layout it belongs to */
	int32		nparts;			/* the parts of that layout */
	int32		part;			/* its number among them */
	int32		first_group;	/* its key groups */
	int32		last_group;
} KsPartInfo;

/*
 * The partitioned tables above a source that is a partition a slot names,
 * nearest first: rows inserted through one of them wake the aggregation
 * (a statement trigger of the partition does not fire for them).  A source
 * deeper below the table inserted into is woken at the naptime.
 */
#define KS_SLOT_ABOVE		8

/* Per-aggregation (or per-part) shared slot */
typedef struct KsAggSlot
{
	/* identity: changed only under both KsShared->lock and `lock` */
	bool		in_use;
	Oid			dboid;
	int32		aggid;
	uint64		generation;		/* bumped at every claim of the slot */

	/*
	 * The pool: the database worker it is assigned to (-1: none yet), and
	 * the worker running it (0: none).  Changed under KsShared->lock only,
	 * so either lock makes them stable.
	 */
	int			worker;
	int			runner_pid;
	int			runner_procno;
	int64		parked_resume;	/* parked at this resume_count, or -1 (also under `lock`) */

	/* everything below is guarded by `lock` */
	LWLock		lock;
	KsPartInfo	part;			/* which part it is (its aggid: the part's id) */
	TransactionId reserved_xid; /* creating transaction, until committed */
	Oid			owner;			/* the view's owner, for status and limits */
	Oid			view_oid;		/* for messages and privilege checks */
	Oid			live_oid;		/* the live table that may read this slot */
	Oid			sequence_oid;	/* for the lag shown by status */
	Oid			above[KS_SLOT_ABOVE];	/* partitioned tables above a partition source (KsWakeAggregationsAtCommit) */
	uint32		rowtype;		/* hash of the view's row type (KsRowTypeHash) */
	KsRunState	state;
	int64		consumed_offset;	/* published == consumed */
	int64		checkpointed_offset;
	int64		high_water;		/* last offset handed out by the sequence */
	int64		failed_offset;	/* row that made the aggregation fail, or 0 */
	int			waiting_pid;	/* writer we wait for, when KS_WAITING */
	uint8		start_wait;		/* KS_STARTING: what waiting_pid holds (KsSlotSetStartWait), or 0 */
	int			ckpt_blocker;	/* whose transaction keeps its checkpoints from its catalog row, or -1 */
	int64		keys;			/* keys held by the worker */
	int64		visible_keys;	/* rows currently visible in the view */
	int64		memory_bytes;	/* worker memory for keys and states */
	int64		shared_bytes;	/* DSA bytes of published rows */
	int64		rows_consumed;	/* rows applied since the worker started */
	int64		rows_replayed;	/* rows re-read after the last recovery */
	int64		keys_expired;	/* keys the TTL removed since the worker started */
	int64		rows_late;		/* windows: late rows dropped since the worker started */
	int64		row_errors;		/* error rows published since then (rowerror.h) */
	int64		cold_keys;		/* keys only in keyedstate_internal.cold (publish, step end) */
	TimestampTz watermark;		/* windows: the watermark as of the published rows */
	int64		window_size_us; /* windows: their size, and how far the TTL */
	TimestampTz expired_upto;	/* ... reached as of those rows (KsReadRowExpired) */
	bool		watermark_known;	/* ... which has seen every row a run before saw
									 * (fresh at creation, then set by reports; the
									 * watermark never goes back) */
	int64		evictions;		/* keys evicted since the worker started */
	int64		reloads;		/* keys loaded back from keyedstate_internal.cold since then */
	int64		memory_limit;	/* the budget of its state in memory, 0: none */
	double		rows_per_second;
	TimestampTz last_checkpoint;
	double		checkpoint_ms;	/* duration of the last checkpoint, to its commit */
	double		checkpoint_pause_ms;	/* its longest step: no row consumed meanwhile */
	int64		checkpoint_keys;	/* keys it wrote */
	int64		checkpoint_bytes;	/* bytes of serialized state it wrote */
	uint64		checkpoint_requests;	/* bumped by keyedstate.checkpoint() */
	uint64		checkpoints_done;
	int64		resume_count;	/* catalog resume_count the worker applied */
	int64		rebuild_pending;	/* the resume_count a committing rebuild() gives it, or 0 */
	bool		in_step;		/* the worker is running a step of it */
	int			interrupt_pid;	/* a backend pausing or dropping it, or 0 */
	uint32		interrupt_lxid; /* ... in this local transaction */
	uint64		interrupt_requests; /* bumped by every such request */
	/* the error's message; after a failure, then its hint (KsSlotSetFailed) */
	char		error[KS_ERROR_LEN];

	/* root of the published rows (a KsStoreHeader), or InvalidDsaPointer */
	dsa_pointer store;

	/*
	 * Readers copying published rows without the lock (store.c): they
	 * register in one of two epochs, and replaced rows are freed only once
	 * no reader that could still see them is left.
	 */
	uint32		read_epoch;
	pg_atomic_uint32 readers[2];

	/*
	 * Bumped by every wake of its aggregation (rows committed, a sync, a
	 * checkpoint asked for), before the runner's latch is set: its worker
	 * steps the runs whose count moved, and the others only when they are
	 * due (newuser review 2, F3: each commit stepped every run).
	 */
	pg_atomic_uint32 wakes;

	/* broadcast after every publish, checkpoint and state change */
	ConditionVariable cv;
} KsAggSlot;

/* A slot as found at one moment: the generation tells if it is still the same. */
typedef struct KsSlotRef
{
	KsAggSlot  *slot;
	uint64		generation;
} KsSlotRef;

/* Most workers one database may run at once (keyedstate.max_workers). */
#define KS_MAX_DB_WORKERS		32

/* One worker of a database's pool, for the launcher */
typedef struct KsDbWorker
{
	int			pid;			/* running worker, or 0 */
	int			procno;			/* its pgprocno, for SetLatch, or -1 */
	uint32		seen;			/* value of requested it last applied */
	bool		idle_exit;		/* it left because it had nothing to do */
	TimestampTz last_start;		/* when the launcher last started it */
	bool		no_process;		/* ... and found no background worker slot free */
	pg_atomic_uint32 interrupts;	/* SIGINTs KsInterruptAggregation sent it */
	volatile sig_atomic_t quit_signalled;	/* it got the postmaster's SIGQUIT (crashguard.h) */
	volatile sig_atomic_t fault_signal;	/* the fault it died of, or 0 (crashguard.h) */
	Oid			emptied_owner;	/* whose aggregations the pool last moved off it */
	TimestampTz emptied_at;		/* ... for another owner, and when (pool.c) */
} KsDbWorker;

/* Per-database slot, for the launcher */
typedef struct KsDbSlot
{
	Oid			dboid;			/* InvalidOid if free */
	uint32		requested;		/* bumped when a backend wants a worker */
	int			naggs;			/* its aggregations, as its workers last saw */
	int			nowners;		/* ... and their owners: each gets a worker (owner.h) */
	int			nparked;		/* ... and how many of them need none (parked, pool.c) */
	int			nworkers;		/* its pool: its share of max_workers (launcher) */
	int			dropping_pid;	/* a backend keeping the workers away, or 0 */
	bool		empty;			/* its first worker found no aggregation and left */
	int			reservers;		/* transactions that took it to request at their commit */
	KsDbWorker	workers[KS_MAX_DB_WORKERS];
} KsDbSlot;

#define KS_MAX_DATABASES		64

/* Aggregations the record of crashes keeps (crashguard.h) */
#define KS_CRASH_RECORDS		16

/* One aggregation charged with crashes (crashguard.h) */
typedef struct KsCrashRecord
{
	Oid			dboid;			/* InvalidOid: free */
	int32		aggid;			/* the aggregation (all its parts) */
	int64		resume_count;	/* of its slots at the crashes */
	int			crashes;		/* charged, each within the window of the last */
	int64		memory_bytes;	/* it held at the last */
	int			signal;			/* ... or 0; else the fault its worker died of in its step */
	TimestampTz last_at;
} KsCrashRecord;

typedef struct KsShared
{
	LWLock	   *lock;			/* see the locking protocol above */
	LWLock	   *filelock;		/* writing the file of databases */
	int			tranche_id;		/* for the slot locks and the DSA */
	dsa_handle	dsa;			/* DSM_HANDLE_INVALID until created */
	int			launcher_procno;	/* -1 when no launcher runs */
	bool		launcher_attached;	/* a launcher ran since this memory was made */
	TimestampTz created_at;		/* ... when */
	int			pool_cap;		/* workers that could start, when fewer than planned (pool.c) */
	TimestampTz pool_cap_at;	/* ... since */
	uint64		next_generation;
	pg_atomic_uint32 stores_retiring;	/* given up, not yet freed (storefree.c) */
	KsDbSlot	dbs[KS_MAX_DATABASES];
	KsCrashRecord crashes[KS_CRASH_RECORDS];	/* the postmaster's, read-only (crashguard.h) */
	int			max_aggs;
	KsAggSlot	aggs[FLEXIBLE_ARRAY_MEMBER];
} KsShared;

extern KsShared *KsSharedState;

extern void KsShmemInit(void);

/* Error out unless keyedstate was preloaded (the hint names the setting). */
extern void KsRequirePreload(void);

/*
 * arguments.c: error out during recovery (on a standby), where no worker runs: reading
 * an aggregation (`what` NULL) or calling the control function `what`.
 */
extern void KsRequirePrimary(const char *what);

/*
 * arguments.c: where the control function `what` may run: preloaded, on a primary, and
 * not inside a keyedstate worker.  A function of an aggregation's query
 * that controls aggregations (drops, pauses, rescales one, even its own)
 * would interrupt the step it runs in: rolled back with that step, it would
 * run again at the replay, for ever.  So it is an error of that row.  One
 * that `writes` (the catalog) is refused in a read-only transaction.
 */
extern void KsRequireControl(const char *what, bool writes);

/*
 * How many aggregation slots of the cluster belong to `owner` (each part
 * counts), outside database skip_dboid (whose catalog knows better: a
 * slot's owner follows its view's only when a worker has reloaded).
 */
extern int	KsSlotsOwnedBy(Oid owner, Oid skip_dboid);

/* Whether a slot of database dboid has aggregation (or part) id aggid. */
extern bool KsAggIdHasSlot(Oid dboid, int32 aggid);

/* Whether a view is that of an aggregation of the database that has a slot. */
extern bool KsViewHasSlot(Oid dboid, Oid view_oid);

/* Whether this process is a keyedstate database worker. */
extern bool KsInDatabaseWorker(void);

/* This process's mapping of the shared DSA, creating the area if needed. */
extern dsa_area *KsGetDsa(void);

/* Name of a run state for keyedstate.status. */
extern const char *KsRunStateName(KsRunState state);

/* --- finding slots (any process) --- */

/*
 * The slots of an aggregation's parts, those of its newest layout (at most
 * max); *nparts is how many that layout has, so fewer found means some
 * are still to come (a rescale, or a worker not started yet).
 */
extern int	KsFindAggParts(Oid dboid, int32 aggid, KsSlotRef *refs, int max, int *nparts);

/* The i-th slot, if in use (for listing them all). */
extern bool KsSlotAt(int i, KsSlotRef *ref);

/*
 * Whether the i-th slot holds memory that keyedstate.max_state_memory
 * bounds (in use, not failed), with its owner, aggregation and the memory
 * it uses, worker and shared (evict.c).
 */
extern bool KsSlotSharer(int i, Oid *owner, Oid *dboid, int32 *aggid, int64 *used);

/* Whether a slot is still the one found (caller holds its lock). */
extern bool KsSlotRefValid(const KsSlotRef *ref);

/*
 * A consistent copy of a slot, if it is still the one found; false if it
 * was freed meanwhile.
 */
extern bool KsSlotSnapshot(const KsSlotRef *ref, KsAggSlot *copy);

/* --- creating, controlling and waiting (backends) --- */

/*
 * Reserve a slot for an aggregation being created by this transaction
 * (see the life cycle above); errors with ERRCODE_CONFIGURATION_LIMIT_EXCEEDED
 * when none is free or, if `limited`, the owner (not a superuser) has
 * keyedstate.max_aggregations_per_owner, not counting the parts of the
 * aggregation's other layouts (a rescale's old parts, which go once the
 * new ones load; counted, a rescale of 4 parts to 13 was refused at 16:
 * re-review today 39, F4).  A restore is not limited: refused, it failed
 * every owner's definitions of the database (re-review today 39, F1).
 * `fresh`: a new aggregation (or one restored), which no run consumed
 * before: its watermark is known from its first step (KsTtlReach).
 */
extern void KsReserveAggSlot(Oid dboid, int32 aggid, const KsPartInfo *part, Oid owner, bool limited,
							 Oid view_oid, Oid live_oid, Oid sequence_oid, bool fresh);

/* Give back the reservations of an aborted transaction of this backend. */
extern void KsReleaseReservations(TransactionId xid);

/*
 * Ask the worker to stop running an aggregation's current step now: this
 * backend is pausing, dropping or rebuilding it.  The worker leaves the
 * aggregation alone until this transaction ends (see KsSlotInterrupted).
 */
extern void KsInterruptAggregation(Oid dboid, int32 aggid);

/* Sleep until the slot changes (a publish, a state change) or ms pass. */
extern void KsSlotSleep(const KsSlotRef *ref, long ms);

/*
 * Whether one of n parts (their slots) waits, starting, for a worker that
 * does not come (with no part taken up yet, whether any worker of the
 * database lacks a process): KsWorkerMissing's answer for the first such
 * part, 0 if none.  A wait for it says why (KsErrdetailNoWorker).
 */
extern int	KsPartsLackWorker(KsSlotRef *refs, int n);
/*
 * Whether every aggregation slot is in use: an aggregation (or part) that
 * has none waits for one (keyedstate.max_aggregations lowered, a database
 * copied with CREATE DATABASE ... TEMPLATE); a wait for it says so.
 */
extern bool KsAggSlotsFull(void);
#define KsErrdetailNoAggSlot() \
	errdetail("No keyedstate aggregation slot is free for it (keyedstate.max_aggregations is %d).", \
			  KsSharedState->max_aggs)
#define KsErrdetailNoWorker(why) \
	((why) == KS_DISABLED ? \
	 errdetail("keyedstate.enabled is off: no keyedstate worker runs until it is on again.") : \
	 (why) > 0 ? \
	 errdetail("Its database has aggregations of %d owners, and a worker runs one owner's only: keyedstate.max_workers (%d in the server, %d at most in a database) leaves the database fewer workers.", \
			   (why), ks_max_workers, KS_MAX_DB_WORKERS) : \
	 (why) == KS_NO_LAUNCHER ? \
	 errdetail("No keyedstate launcher runs to start its worker: it could not be registered at server start, where max_worker_processes (%d) left no background worker slot for it (see the server log).", \
			   max_worker_processes) : \
	 errdetail("No background worker slot is free to run it (max_worker_processes is %d).", \
			   max_worker_processes))

/*
 * The newest watermark the parts of a windowed aggregation published with
 * their rows (window.h), or DT_NOBEGIN: alter_aggregation() records how
 * far a TTL it lengthens had reached.  *known: every part is loaded, with
 * the definition of resume_count or a later one (after a rebuild(), the
 * slots' watermarks were the thrown-away run's until the workers loaded
 * it: exactness review 45, F1), and has consumed every row a run before
 * it (before a crash, a restart or a failure) may have consumed, so that
 * its watermark is at least the one its windows were expired at.
 */
extern TimestampTz KsAggregationWatermark(Oid dboid, int32 aggid, int64 resume_count, bool *known);

/* Whether a slot's watermark has seen every row a run before may have consumed. */
extern bool KsSlotWatermarkKnown(KsAggSlot *slot);

/*
 * Wait on an aggregation's slot until `done` says so (called with the slot
 * lock held), the aggregation fails, or the deadline passes.  Returns the
 * consumed offset; raises the aggregation's error if it failed, and an
 * error on timeout.
 */
typedef bool (*KsWaitDone) (const KsAggSlot *slot, void *arg);
extern int64 KsWaitForAggregation(Oid dboid, int32 aggid, const char *aggname,
								  int64 resume_count, TimestampTz deadline,
								  KsWaitDone done, void *arg, const char *what);

/*
 * Ask every part of an aggregation for a checkpoint and wait until each
 * wrote one (KsWaitForAggregation's errors, `what` naming the wait).
 * False, without waiting, if a part has no slot, or (running_only) is
 * starting, paused or failed.
 */
extern bool KsCheckpointAggregation(Oid dboid, int32 aggid, const char *aggname,
									int64 resume_count, TimestampTz deadline,
									bool running_only, const char *what);

/*
 * Ask for a database worker: bump the database's request counter (the
 * launcher starts a worker when a request is newer than what the running
 * worker has seen) and wake both the launcher and every running worker of
 * the database, which then reload their lists of aggregations.  With bump
 * = false only make sure the database has a slot (so that a later request
 * cannot fail): a transaction's reservation, which KsEndDatabaseReservation
 * ends.
 */
extern void KsRequestDatabaseWorker(Oid dboid, bool bump);

/* The same, but false instead of an error when no database slot is free. */
extern bool KsTryRequestDatabaseWorker(Oid dboid, bool bump);

/*
 * A transaction that will ask for the database's worker at its commit
 * takes the database's slot now (KsRequestDatabaseWorker without bump: an
 * error if none is free, never at the commit), and ends that reservation
 * when it ends: committed, asking for the worker; aborted or prepared, not.  A slot that no commit ever asked
 * a worker for is free again once no transaction reserves it and no
 * aggregation holds a slot in it (KsLauncherForgetIfEmpty): a rolled-back
 * create_aggregation() kept its database's slot until the server stopped
 * (user review 50, F1).
 */
extern void KsEndDatabaseReservation(Oid dboid, bool committed);

/* wakeups.c: set the latch of a process by its pgprocno; -1 means none. */
extern void KsSetLatchOf(int procno);

/* Wake the workers of a database, if any run. */
extern void KsWakeDatabaseWorker(Oid dboid);

/*
 * Wake the workers running an aggregation's parts (sync, checkpoint), and
 * bump their slots' wakes; all the database's if a part has none yet.  Not every worker of the database:
 * any reader calling sync in a loop would keep every owner's workers busy.
 */
extern void KsWakeAggregation(Oid dboid, int32 aggid);

/*
 * At the commit of rows into sources: wake the workers running the n
 * aggregations reading them, and those whose source is a partition below
 * one of the nrelids partitioned tables inserted into (their slots' above:
 * re-review today 26, F3), bumping their slots' wakes, without a lock (a stale number only sets
 * some process's latch); every worker of the database when a part has no
 * worker now.  Not every worker of the database otherwise: one role's
 * inserts would keep every owner's workers busy.  An aggregation without a
 * slot wakes nobody: it is gone (its triggers left behind, orphans.c), or
 * new, and its worker reads what committed when it loads it.
 */
extern void KsWakeAggregationsAtCommit(Oid dboid, const int32 *aggids, int n,
									   const Oid *relids, int nrelids);

/*
 * The aggregations of database dboid with a loaded part whose source lies
 * below partitioned table relid (their slots' above), paused ones too, at
 * most max of them, into aggids; returns how many.  Read without a lock
 * (wakeups.c): a part being loaded or unloaded may be missed.
 */
extern int	KsAggregationsBelow(Oid dboid, Oid relid, int32 *aggids, int max);

/*
 * DROP DATABASE, and the commands that need a database to themselves
 * (ALTER DATABASE ... RENAME and SET TABLESPACE, CREATE DATABASE with it as
 * the template): make its workers leave, and keep the launcher from
 * starting others until this backend's transaction ends (see
 * KsDatabaseKeepAwayEnded).  Waits up to a few seconds for them to exit.
 */
extern void KsDatabaseKeepAway(Oid dboid);
extern void KsDatabaseKeepAwayEnded(void);

/* --- the worker --- */

/*
 * Claim worker number `index` of this database's pool; false if another
 * process already is that worker.
 */
extern bool KsClaimDatabase(Oid dboid, int index);

/* This worker's slot in its database's pool; NULL before it claimed it. */
extern KsDbWorker *KsMyDbWorker(void);

/* This worker's number in its database's pool. */
extern int	KsDatabaseWorkerIndex(void);

/* Whether a backend asked this database's workers to leave (DROP DATABASE). */
extern bool KsDatabaseLeaveRequested(void);

/* The database's request counter, and recording the one the worker applied. */
extern uint32 KsDatabaseRequests(void);
extern void KsDatabaseRequestsSeen(uint32 seen);

/*
 * Report the database's number of aggregations (waking the launcher when
 * it changed, to share the pool again); returns the database's pool size.
 */
extern int	KsDatabaseSetPool(int naggregations, int nparked, int nowners);

/*
 * Leave if nothing was requested since `seen` and no aggregation is
 * assigned to this worker; returns whether to leave.  When the database
 * has no aggregation at all, the launcher may then forget it
 * (KsLauncherForgetIfEmpty).
 */
extern bool KsDatabaseIdleExit(uint32 seen);

/*
 * Assign an aggregation (or a part of one) to a worker of the database's
 * pool of `nworkers` (see the pool above), giving it a slot first if it
 * has none (a restart); returns the worker's number, -1 if it waits for a
 * worker of its owner's (every one runs another owner's), or -2 if no
 * slot is free (the caller logs it, naming the aggregation).
 */
extern int	KsAssignAggSlot(Oid dboid, int32 aggid, const KsPartInfo *part, Oid owner,
							int nworkers);

/*
 * Whether an aggregation (or part) needs no worker: paused or failed at
 * `resume_count` with nothing left to consume or checkpoint, and parked
 * by its runner (KsParkAggSlot; see the pool above).
 */
extern bool KsAggSlotParked(Oid dboid, int32 aggid, int64 resume_count);

/* Assign a parked aggregation to no worker: its runner hands it over to none. */
extern void KsUnassignAggSlot(Oid dboid, int32 aggid);

/*
 * The runner of a slot paused or failed at `resume_count` has nothing
 * left to do: park it, and have the pool reload without it.
 */
extern void KsParkAggSlot(KsAggSlot *slot, int64 resume_count);

/*
 * Give every parked part of n aggregations (n < 0: of every aggregation of
 * the database) a worker again, which parks it again later: the
 * definition text a worker refreshes after another role's rename
 * (restore.c) is refreshed by the worker running it.
 */
extern void KsUnparkAggSlots(Oid dboid, const int32 *aggids, int n);

/*
 * Move one aggregation from the most loaded worker of the pool to the
 * least loaded one that runs no other owner's aggregation, if their loads
 * differ by two or more; or, if an aggregation waits for a worker
 * (`waiting`), empty one of an owner that has several.  Returns the
 * milliseconds after which a balance the pool put off must be tried again
 * (a reload), or 0.
 */
extern long KsBalanceAggSlots(Oid dboid, int nworkers, bool waiting);

/*
 * Claim the slot of an aggregation assigned to this worker: its
 * reservation, or the slot it had before in this server's life.  Returns
 * false if it has no slot, is not assigned to this worker, or another
 * worker still runs it (it hands it over at its next reload).
 */
extern bool KsClaimAggSlot(Oid dboid, int32 aggid, KsSlotRef *ref);

/* Whether a slot this worker runs is still assigned to it. */
extern bool KsAggSlotStillMine(const KsSlotRef *ref);

/* Whether no other worker runs any of the aggregations (or parts) ids[] (int4s). */
extern bool KsAggSlotsIdle(Oid dboid, const Datum *ids, int n);

/*
 * Let go of a slot this worker ran (after its final checkpoint): another
 * worker may claim it, and replaces its published rows once recovered.
 */
extern void KsUnclaimAggSlot(KsAggSlot *slot);

/* Free a slot whose published rows are retired (store.h: KsStoreReleaseSlot). */
extern void KsFreeAggSlot(KsAggSlot *slot);

/* The interrupt requests seen when a step began (KsSlotEnterStep). */
typedef struct KsStepMark
{
	uint64		slot_requests;
	uint32		signals;		/* SIGINTs the worker had received (run.h) */
} KsStepMark;

/*
 * Enter a step of an aggregation; false if a backend is interrupting it
 * (its transaction still runs).  *mark remembers the requests so far.
 */
extern bool KsSlotEnterStep(KsAggSlot *slot, KsStepMark *mark);

/*
 * Whether a backend interrupting the slot is still in the transaction that
 * asked: a reload whose snapshot is taken after this returned false sees
 * what that transaction did (pause, drop, rebuild, rescale).
 */
extern bool KsSlotInterruptPending(KsAggSlot *slot);
extern void KsSlotLeaveStep(KsAggSlot *slot);

/* Whether an interrupt was asked for this aggregation since the step began. */
extern bool KsSlotInterruptedSince(KsAggSlot *slot, const KsStepMark *mark);

/*
 * The SIGINTs KsInterruptAggregation has sent this worker since it started
 * (each counted before it is sent).  A worker that received no more SIGINTs
 * than that was cancelled by keyedstate, not by pg_cancel_backend().
 */
extern uint32 KsWorkerInterruptsSent(void);

/*
 * Raise the error of a failed aggregation: why (the error, the input row's
 * offset), only to members of its owning role; to others, that it failed.
 */
extern void KsReportFailed(const char *aggname, const char *error, int64 offset, Oid owner);

/*
 * A part not loaded yet waits for process pid (0: a prepared transaction),
 * whose lock on its source keeps it from loading (KS_WAIT_SOURCE, step.c:
 * after a restart, say), or on its live table from binding a restored
 * definition (KS_WAIT_VIEW, restoredata.c); or a loaded part holding its
 * memory budget waits for the holder of its catalog row (KS_WAIT_CATALOG,
 * then 'waiting'): the slot says 'starting' (or 'waiting'), with
 * pid as waiting_pid and why as its error text, until the next state is
 * set (review robustness2, F1; re-review today 20, F4).  KsPartsStartBlocker
 * finds the first such pid among n parts (-1: none) and what it holds, and
 * KsErrdetailStartWait says it in a wait's detail.
 */
#define KS_WAIT_SOURCE	1
#define KS_WAIT_VIEW	2
#define KS_WAIT_CATALOG	3		/* loaded, 'waiting': a budget's hold for its catalog row (evict.h) */
#define KS_WAIT_TABLES	4		/* ... for keyedstate_internal.state and .cold (a VACUUM FULL) */
#define KS_WAIT_LOAD_TABLES	5	/* not loaded, 'starting': the same, for a load (run.h) */
extern void KsSlotSetStartWait(KsAggSlot *slot, int pid, int what);
extern int	KsPartsStartBlocker(KsSlotRef *refs, int n, int *what);
extern int	KsErrdetailStartWait(int pid, int what);

/* waitwords.c: the words of waits (KsErrdetailStartWait above is there too) */
extern char *KsStartWaitText(int pid, int what);
extern int	KsErrdetailThrashing(int64 rows, int64 reloads, int64 limit);

/*
 * A rebuild() about to commit (XACT_EVENT_PRE_COMMIT, hooks.c) deletes the
 * aggregation's cold rows as it commits, while its worker goes on
 * publishing the old run's rows until it sees the new resume count: a
 * reader would take those with no cold rows, a state of no offset
 * (newuser review 2, F2).  So it marks the slots of every part with the
 * resume count it gives the aggregation, under their locks, before the
 * commit; a reader takes a slot so marked as loading (it waits, as for a
 * load, KsSlotRebuildPending), and the worker, seeing the new count, marks
 * its slot loading before it applies the count, and publishes the rebuilt
 * rows once the load committed.  With unmark_to negative it marks them
 * (never lowering a mark) and returns the highest mark they held; the
 * commit failing, unmark_to (that value) puts back, on each slot still
 * marked with `pending`, the mark of a rebuild committed before that the
 * worker has not applied yet (the first version took every mark off).
 */
extern int64 KsSetRebuildPending(Oid dboid, int32 aggid, int64 pending, int64 unmark_to);
#define KsSlotRebuildPending(slot) ((slot)->rebuild_pending > (slot)->resume_count)

/*
 * The worker memory of a run that is loading, as it grows, and of a run
 * after each batch of a step: status shows it, and a crash meanwhile is
 * charged by it (crashguard.h; security review 23: a step whose rows grew
 * the states by gigabytes was charged by the memory before it).
 */
extern void KsSlotNoteMemory(KsAggSlot *slot, int64 memory_bytes);

/* Set the state (and error text and failing offset, for KS_FAILED); a writer's pid stays only for KS_WAITING. */
extern void KsSlotSetState(KsAggSlot *slot, KsRunState state, const char *error,
						   int64 failed_offset);

/*
 * Fail a slot with its error's message and hint (or NULL): the hint goes
 * after the message's terminating NUL in the error buffer (truncated to
 * fit), where KsReportFailed finds it; status shows the message.
 */
extern void KsSlotSetFailed(KsAggSlot *slot, const char *error, const char *hint,
							int64 failed_offset);

/*
 * The definition's fields readers need: owner, view, live table, row type,
 * part; and the tables above its source (NULL: unchanged, else
 * KS_SLOT_ABOVE OIDs, InvalidOid after the last) that wake it.  A run
 * `rebuilt` from nothing (no checkpoint since its rebuild()), loading, has
 * no watermark yet: the one of the run it replaced goes (not at a reload
 * of a loaded run, whose watermark is its own: re-review today 46, F1).
 */
extern void KsSlotSetDefinition(KsAggSlot *slot, Oid owner, Oid view_oid, Oid live_oid,
								Oid sequence_oid, uint32 rowtype, int64 resume_count,
								const KsPartInfo *part, const Oid *above, bool rebuilt);

/* Progress the worker reports after a step. */
typedef struct KsSlotProgress
{
	int64		high_water;
	int			waiting_pid;
	int64		rows_consumed;	/* added */
	int64		rows_replayed;	/* added */
	double		rows_per_second;	/* < 0: unchanged */
	int64		memory_bytes;
	int64		keys;
	int64		cold_keys;		/* set: evictions since the publish */
	int64		keys_expired;	/* set */
	int64		rows_late;		/* set */
	int64		row_errors;		/* set */
	int64		evictions;		/* set */
	int64		reloads;		/* set */
	int64		memory_limit;	/* set */
	bool		watermark_known;	/* set: consumed what runs before consumed */
	int			ckpt_blocker;	/* set: whose transaction holds its catalog row from its checkpoints (0: a prepared one's), -1 none */
} KsSlotProgress;
extern void KsSlotReportProgress(KsAggSlot *slot, const KsSlotProgress *p);

/* A checkpoint committed. */
extern void KsSlotCheckpointed(KsAggSlot *slot, int64 offset, TimestampTz when,
							   double ms, double pause_ms, int64 keys, int64 bytes,
							   uint64 request);

/* The checkpoint request the worker has to satisfy, if any newer than done. */
extern uint64 KsSlotCheckpointRequested(KsAggSlot *slot, bool *pending);

/* --- the launcher --- */

/* The launcher is here; give the remembered databases their slots. */
extern void KsLauncherAttach(const Oid *oids, int n);

/*
 * Whether no launcher has run in the KS_LAUNCHER_GRACE_MS since the shared
 * memory was made (at a start or a crash's reinitialization): it could not
 * be registered (max_worker_processes left no slot at preload).  The
 * postmaster logs only "too many background workers"; status, sync and
 * reads say it (KsWorkerMissing's KS_NO_LAUNCHER; review robustness2, F3).
 */
extern bool KsLauncherMissing(void);
#define KS_LAUNCHER_GRACE_MS	10000
#define KS_NO_LAUNCHER			(-2)
#define KS_DISABLED				(-3)	/* keyedstate.enabled is off (settings.h) */

/*
 * Whether worker w of database slot i should be started now: it is in
 * the database's pool and does not run, and either a request is newer
 * than what it last saw (at most every min_gap_ms) or it died without
 * leaving on purpose (at most every restart_ms), and no DROP DATABASE of
 * it is under way.
 */
extern bool KsLauncherWantsWorker(int i, int w, TimestampTz now, int min_gap_ms,
								  int restart_ms, Oid *dboid);

/*
 * Share keyedstate.max_workers among the databases (see the pool above);
 * a database whose pool changed is asked to reload.
 */
extern void KsLauncherSharePool(int max_workers);

/*
 * A worker of the pool could not start (no background worker slot): the
 * pool is shared again among the workers that run now, so that no
 * aggregation stays assigned to a worker without a process; the cap goes
 * after KS_POOL_CAP_MS, or at a reload of the settings (`lift`).
 */
#define KS_POOL_CAP_MS			600000
extern void KsLauncherCapPool(int max_workers, bool lift);

/* Whether any worker of database slot i runs. */
extern bool KsLauncherDbRunning(int i);

/*
 * Whether worker w of database slot i is one of those its owners need,
 * one each (owner.h): started even beyond keyedstate.max_workers.
 */
extern bool KsLauncherOwnersWorker(int i, int w);

/*
 * The launcher started worker w for slot i, or tried to: `started` false
 * when no background worker slot was free (max_worker_processes).
 */
extern void KsLauncherStarted(int i, int w, TimestampTz now, bool started);

/*
 * Whether worker w of this database (any of them if w is negative: an
 * aggregation no worker has taken up yet waits for one) could not be
 * started for want of a background worker slot, the last time the
 * launcher tried.
 */
extern bool KsWorkerLacksProcess(int w);

/*
 * Why an aggregation (or part) assigned to worker w (-1: none) waits for a
 * worker that does not come: -1 when that worker could not be started for
 * want of a background worker slot (KsWorkerLacksProcess); the number of
 * owners of the database's aggregations when it has no worker and they
 * are more than KS_MAX_DB_WORKERS (a worker runs one owner's only, so an
 * owner beyond them waits for good); else 0.
 */
extern int	KsWorkerMissing(int w);

/*
 * A database is gone: free its slot, after KsReleaseDatabaseSlots (store.h)
 * freed its aggregations'.
 */
extern void KsLauncherForgetDatabase(int i, Oid dboid);

/*
 * Free database slot i if its workers left finding no aggregation, no
 * request came since, and none of its aggregation slots is in use (a
 * creating transaction reserves one); *dboid is the database forgotten.
 */
extern bool KsLauncherForgetIfEmpty(int i, Oid *dboid);


/* --- internal to shmem.c, dbslots.c, pool.c and poolshare.c (KsShared->lock held exclusive) --- */

/* The slot of an aggregation, or NULL (shared mode is enough). */
extern KsAggSlot *KsLookupSlotLocked(Oid dboid, int32 aggid);

/* The slot of a database, or NULL (shared mode is enough). */
extern KsDbSlot *KsLookupDbLocked(Oid dboid);

/* A free aggregation slot, or NULL. */
extern KsAggSlot *KsFreeSlotFindLocked(void);

/* Give a slot an identity and reset every field. */
extern void KsInitSlotLocked(KsAggSlot *slot, Oid dboid, int32 aggid);

/* Bump a database's request counter and wake its workers and the launcher. */
extern void KsDatabaseRequestLocked(Oid dboid);

/* Share keyedstate.max_workers among the databases (pool.c). */
extern void KsSharePoolLocked(int max_workers);

/*
 * Ask the workers of a database to reload, if it has a database slot;
 * never an error (for the end of a transaction that interrupted a step).
 */
extern void KsDatabaseAskReload(Oid dboid);

/*
 * Take an orphaned slot (no live runner) so that it can be freed without a
 * worker claiming it meanwhile; false if it is not one any more.
 */
extern bool KsClaimOrphanSlot(const KsSlotRef *ref);

/* Serialize writers of the file of databases (see the locking protocol). */
extern void KsLockDatabaseFile(void);
extern void KsUnlockDatabaseFile(void);

/* Hash of a row type, to check that a live table reads the slot it should. */
extern uint32 KsRowTypeHash(TupleDesc desc);

#endif							/* KS_SHMEM_H */
