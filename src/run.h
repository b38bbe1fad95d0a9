/*-------------------------------------------------------------------------
 *
 * run.h
 *	  One aggregation's run in the database worker: load, step, fail.
 *
 * Each aggregation is a KsAggRun: its definition, the worker-local keyed
 * state (keytable.h) with the aggregate calls (aggcall.h), the source
 * reader (source.h) and the projection that turns a key's final values
 * into its view row (publish.h).  Every step of an aggregation is one
 * transaction; an error fails that aggregation only (state 'failed', error
 * text and offset in keyedstate.status, its published rows given back),
 * its checkpoint stays as of the last good checkpoint, and the other
 * aggregations go on.
 *
 * Who runs what.  A step runs as the aggregation's owner (the owner of its
 * view) with SECURITY_RESTRICTED_OPERATION, from the moment its
 * transaction starts until it ends: analysis, constant folding, the
 * initial values of transition states (type input functions, domain
 * checks), recovery, the input expressions, transition and final
 * functions, HAVING, the projection, serialization.  Only reading and
 * writing keyedstate's own tables switches to the worker's identity, with
 * KsBecomeWorker() and back with KsBecomeOwner().  Settings a function
 * changes are rolled back at the end of its step (a GUC nest level, as for
 * a function's SET clause), and the step is bounded in time by
 * keyedstate.step_timeout and the owner's statement_timeout.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_RUN_H
#define KS_RUN_H

#include "aggcall.h"
#include "catalog.h"
#include "definition.h"
#include "keytable.h"
#include "shmem.h"
#include "source.h"
#include "store.h"

#include "executor/spi.h"
#include "nodes/execnodes.h"

/*
 * The time a step may spend reading, so that one aggregation with slow
 * functions gives the others their turn often; a step that would need
 * longer ends early and the next one goes on.  (The step timeout is the
 * hard bound on a step that cannot end: user code that loops or waits.)
 */
#define KS_STEP_BUDGET_MS		1000

/*
 * The longest publishing the keys a step changed may be expected to take
 * (their final functions, HAVING and projection); a step that has changed
 * that many keys stops reading.
 */
#define KS_PUBLISH_BUDGET_MS	1000

/*
 * A step's budget for reading, or for publishing: `ms`, or a quarter of
 * its step timeout if that is less (a role's statement_timeout of 200 ms
 * bounds its steps: a second of reading failed every step with a backlog).
 */
#define KsRunBudgetMs(run, ms) \
	((run)->timeout_ms > 0 ? Min((ms), Max((run)->timeout_ms / 4, 1)) : (ms))

/*
 * How long a rebuilding aggregation waits for its owner's SELECT on the
 * source before it loads (and fails without it): a restore grants it last.
 * Thirty retry delays (keyedstate.retry_delay: 30 s, but in tests).
 */
#define KS_SOURCE_ACL_WAIT_MS	((int64) 30 * ks_retry_delay)

typedef struct KsAggRun
{
	KsAggDef   *def;			/* catalog row, in defcxt */
	MemoryContext defcxt;		/* replaced at every reload */
	char	   *name;			/* the view's name, for messages */
	MemoryContext cxt;			/* the run itself */
	KsAggSlot  *slot;
	KsSlotRef	slotref;
	Oid			owner;			/* the view's owner, as of this step */
	Oid			loaded_owner;	/* the owner the run was loaded as */

	bool		loaded;			/* state recovered and published */
	bool		failed;
	int			crashes_noted;	/* crashes charged to it it logged (crashguard.h) */
	bool		interrupted;	/* stopped by a backend: wait for a reload */
	bool		interrupt_unseen;	/* ... that sees what the backend did */
	int64		failed_resume_count;	/* resume() bumps the catalog's */
	TimestampTz retry_at;		/* unloaded by a passing error: load again then */
	int			retry_delay_ms; /* ... and the wait before, doubled while they go on */
	TimestampTz retry_since;	/* ... since when they go on */
	TimestampTz idle_paused_since;	/* paused with nothing left to do since (KsRunParkIfIdle), or 0 */
	int			code_errors;	/* passing errors user code raised in a row (run.c) */
	uint32		wakes_seen;		/* its slot's wakes when its last step began (worker.c) */
	TimestampTz step_due;		/* ... and when that step asked for the next one */

	/* valid while loaded; all in loadcxt */
	MemoryContext loadcxt;
	KsQueryInfo info;
	KsAggRuntime *rt;
	KsKeyTable *kt;
	struct KsApplyBuffer *applybuf;	/* input rows waiting to be applied */
	KsSource	source;
	bool		exprs_stale;	/* a function changed: compile again */
	SPIPlanPtr	ckpt_plan;		/* insert of a checkpoint chunk */
	ExprContext *econtext;		/* projection of the view rows */
	TupleTableSlot *resultslot;
	TupleTableSlot *viewslot;
	ProjectionInfo *proj;
	ExprState  *having;
	struct KsRowPieces *pieces;	/* the same, piece by piece (rowerror.h) */
	ErrorData  *row_error;		/* building a key's row whole failed so (rowerror.h) */
	MemoryContext batchcxt;
	KsStoreWriter writer;		/* rows replaced while readers copy */
	int			timeout_ms;		/* bound on one step */
	List	   *funcids;		/* the functions the query calls (aggcall.h) */
	bool		calls_stale;	/* a function changed since they were looked up (KsRunCheckCalls) */
	MemoryContext callscxt;		/* what they keep since the last refresh (KsRunCheckCalls) */
	MemoryContext exprcxt;		/* the compiled expressions (KsRunCompile) */
	List	   *exprfuncs;		/* the functions they call, inlined bodies' included */
	bool		inlines;		/* the query calls an SQL function (KsRunFunctionsChanged) */
	bool		definition_outdated;	/* a checkpoint found it changed (ckptcommit.c) */
	TimestampTz step_budget_end;	/* when the step stops reading more rows */
	double		publish_us_per_key; /* what publishing a key cost lately */
	KsStepMark	step_mark;		/* the interrupt requests when the current step began */
	int64		row_errors;		/* error rows published since the run was created (rowerror.h) */
	int64		row_errors_logged;	/* ... of them, counted in the last log line */
	TimestampTz row_error_logged_at;	/* when that line was written */

	int64		consumed;		/* rows with offsets <= consumed are published */
	int64		applied;		/* rows with offsets <= applied are in the states */
	int64		checkpointed;
	struct KsChunkWriter *ckpt; /* the checkpoint being written, or NULL */
	int64		ckpt_last_id;	/* last committed checkpoint (0: none) */
	int64	   *group_starts;	/* seeded part: each key group's rows after this (seed.c) */
	int64		seed_until;		/* ... and no checkpoint until consumed past this */
	int64		pause_until;	/* paused: the offset its view showed, consumed again */
	bool		seed_ckpt_due;	/* seeded by a rescale, its first checkpoint not written */
	bool		retired_gc;		/* a part: try deleting retired parts in the next step */
	bool		ckpt_have_full; /* a full checkpoint is in keyedstate_internal.state */
	int32		ckpt_chain_chunks;	/* its chunk rows and its deltas' (recovery.c) */
	int64		ckpt_full_bytes;	/* bytes of the latest full checkpoint */
	int64		ckpt_delta_bytes;	/* bytes of the deltas written since */
	int64		ckpt_obsolete_below;	/* older rows are left to delete (0: none) */
	int64		ckpt_obsolete_rows; /* ... about so many (the chains full checkpoints replaced) */
	StringInfo	ckpt_buf;		/* chunk buffer, kept across checkpoints */
	dsa_pointer building;		/* store that recovery fills, not yet published */
	int64		building_bytes; /* its DSA bytes */
	int64		building_visible;	/* its visible rows */
	TimestampTz last_checkpoint;
	int64		cur_offset;		/* row being applied, for error reports */
	bool		in_code;		/* its code runs: compiled, rows applied or built (run.c) */
	int64		replay_until;	/* offsets re-read after a recovery end here */
	int64		seen_until;		/* ... and offsets any run before may have consumed */
	bool		after_clean_stop;	/* recovered what a clean stop left */
	int64		rebuild_until;	/* a rebuild is over once consumed reaches it */

	/* sliding windows (window.h), while loaded */
	KsKeyTable *windows;		/* (window start, key): published rows, no states */
	FmgrInfo   *combinefns;		/* per aggregate call */
	MemoryContext combinecxt;	/* merged states of one window */
	bool		windows_reload; /* every window to publish again after a load (window.c) */
	TimestampTz watermark;		/* windows: the newest time applied (DT_NOBEGIN: none) */
	TimestampTz recovered_wm;	/* ... as committed with the checkpoint recovered */
	int64		rows_late;		/* windows: rows dropped as late since the run was created */

	/* state TTL (expire.h) */
	bool		expire_running; /* a sweep is under way */
	uint64		expire_cursor;	/* next entry the sweep looks at */
	uint64		expire_wcursor; /* and next window (sliding windows) */
	TimestampTz expire_next;	/* when the next sweep starts */
	int64		expire_ttl_us;	/* the TTL that schedule is for */
	TimestampTz expire_floor;	/* the def's ttl_floor the running sweep started with */
	TimestampTz floor_swept;	/* the last ttl_floor a whole sweep applied, DT_NOBEGIN: none */
	TimestampTz expire_wm;		/* windows: the watermark the last sweep started at */
	int64		keys_expired;	/* keys the TTL removed since the run was created */
	int64		recovered_expired;	/* expired keys and stored tombstones recovery met */
	int64		garbage_states; /* expired keys whose internal states wait for compaction */

	/* the memory budget (evict.h) and the keys evicted to keyedstate_internal.cold (cold.h) */
	int64		memory_budget;	/* bytes, as of the last capture, 0: none */
	int64		window_share;	/* a sliding window's share of max_state_memory (no budget): */
	int			window_share_of;	/* the most given it under this max_state_memory */
	int64		evict_target;	/* keys to keep in memory, 0: not over the budget yet */
	int64		seq_seen_lost;	/* what a failed run saw its sequence hand out (step.c keeps it) */
	int64		share_warned;	/* the share below 1MB last logged (kept across loads), */
	int			share_warned_of;	/* ... under this max_state_memory */
	TimestampTz used_checked;	/* when memory in use was last measured, */
	bool		used_over;		/* and whether it exceeded the budget */
	TimestampTz budget_checked; /* when the budget was last computed */
	TimestampTz source_acl_since;	/* a rebuild found its owner without SELECT on the source */
	TimestampTz sequence_since;	/* ... or, restored, its source's rows before its sequence */
	int64		cold_row_bytes; /* bytes of the cold rows written and read back, */
	int64		cold_row_count; /* ... and how many, */
	int64		cold_row_max;	/* ... the largest written (KsEvictRefuseGrowth) */
	int64		reload_bytes;	/* bytes of cold rows loaded back since the run started, */
	int64		reload_measured;	/* ... as of the hold's last measure (evict.c) */
	bool		evict_stalled;	/* the last capture found no victim: wait for the next one */
	bool		stall_writing;	/* ... but writes keys that can go once it commits (evict.c) */
	uint64		stalled_keys;	/* ... with this many keys in memory (KsEvictStalled) */
	int64		stalled_used;	/* ... and this much memory in use */
	bool		evict_holding;	/* reading stopped for an evicting checkpoint (evict.h) */
	TimestampTz hold_checked;	/* when memory in use was last measured for it, */
	int64		used_last;		/* the memory in use it measured, */
	TimestampTz used_last_at;	/* ... when (0: none since the last eviction) */
	bool		ckpt_skipped;	/* the last checkpoint slice could not lock its row */
	bool		ckpt_blocked;	/* ... or keyedstate's state tables */
	int			ckpt_holder;	/* then, under a hold, the pid holding it (0: unknown) */
	uint64		evict_hand;		/* the eviction clock's next entry */
	int64		cold_keys;		/* keys only in keyedstate_internal.cold */
	int64		evictions;		/* since the run was created */
	int64		reloads;
	int64		cold_rows;		/* rows in keyedstate_internal.cold as of the last checkpoint */
	uint64	   *cold_filter;	/* a bit per hash range: some cold key may have it */
	uint64		cold_filter_bits;	/* its bits, a multiple of 64 */
	uint64	   *cold_building;	/* the filter being built from keyedstate_internal.cold, or NULL */
	uint64		cold_building_bits;
	int64		cold_build_after;	/* the hashes read so far are <= this */

	/* the TTL over cold keys (cold.h): the sweep's place, and what it found */
	bool		cold_sweeping;
	bool		cold_sweep_again;	/* a sweep of the keys in memory started since */
	int64		cold_sweep_hash;	/* rows after (hash, place, id) are still to be read */
	uint32		cold_sweep_place;
	uint64		cold_sweep_id;
	struct KsColdRowId *cold_expired;	/* deleted with the next checkpoint */
	int			ncold_expired;
	int			maxcold_expired;

	int64		rate_rows;
	TimestampTz rate_since;
	double		last_rate;
} KsAggRun;

/*
 * Key columns a key's group leaves out (keytable.h: KsKeyGroupOf): a
 * windowed aggregation's pane, so that every pane of a key is in one part.
 */
static inline int
KsRunGroupSkip(const KsAggRun *run)
{
	return run->def->window_size_us > 0 ? 1 : 0;
}

/*
 * Whether a key last changed at `touched` has outlived the run's TTL at
 * `now` (expire.h; the cold tier asks too, cold.h).
 */
static inline bool
KsExpiredAt(KsAggRun *run, TimestampTz touched, TimestampTz now)
{
	/* windowed aggregations count event time instead (window.h) */
	if (run->def->window_size_us != 0)
		return false;
	/* older than a TTL since lengthened or removed was when it changed: still expired */
	return touched < run->def->ttl_floor ||
		(run->def->ttl_us > 0 && touched < now - run->def->ttl_us);
}

/*
 * Run user code of an aggregation (its owner, restricted), bounded by the
 * step timeout; KsBecomeOwnerAs(run, false) leaves the timeout to the caller
 * (KsRunOwnerCodeBegin around the calls of user code), for keyedstate's own
 * long work that calls it only here and there (recovery).
 */
extern void KsBecomeOwnerAs(KsAggRun *run, bool timed);
#define KsBecomeOwner(run)	KsBecomeOwnerAs((run), true)

/* Back to the worker's own identity for keyedstate's catalog tables. */
extern void KsBecomeWorker(void);

/* A new run for a definition; NULL (logged) if no slot is free. */
extern KsAggRun *KsRunCreate(KsAggDef *def, MemoryContext parent);

/* Give a run a new copy of its definition (a reload). */
extern void KsRunSetDefinition(KsAggRun *run, KsAggDef *def);

/* Drop what a loaded run holds in memory (not its published rows). */
extern void KsRunUnload(KsAggRun *run);

/*
 * A run just loaded has its calls as looked up.  After any change of a
 * function (KsRunFunctionsChanged), a loaded run checks them at its next
 * step: whether an aggregate was replaced (KsCallsReplaced: false then, and
 * the run loads again); if not, every call is looked up again, forgetting
 * what it kept (a SECURITY DEFINER function's owner and SET), the states
 * staying.  Whatever changed: a hash of what calls keep could be made to
 * collide by the function's new owner, who chooses its SET text (security
 * review 24, F1: a body a group member wrote ran as the former owner).
 */
extern void KsRunNoteCalls(KsAggRun *run);
extern bool KsRunCheckCalls(KsAggRun *run);

/*
 * Whether one of keyedstate's tables (state, cold, the catalog) is held
 * against the writes of a load (a VACUUM FULL): the run loads at a later
 * step, its status naming the holder, instead of the whole worker waiting
 * (re-review today 26, F2).
 */
extern bool KsRunLoadBlocked(KsAggRun *run);
extern bool KsRunCallsChanged(KsAggRun *run);

/* Forget a run whose aggregation is gone (or the worker is leaving). */
extern void KsRunRelease(KsAggRun *run);

/* Log that no aggregation slot is free for a definition, once a minute (names in cxt). */
extern void KsRunWarnNoSlot(const KsAggDef *def, MemoryContext cxt);

/*
 * Log that an aggregation waits for a worker because its database has more
 * owners than workers (KsWorkerMissing), at most once a minute per worker.
 */
extern void KsRunWarnNoWorker(const KsAggDef *def, MemoryContext cxt);

/* Which part of its aggregation a definition runs, for its slot. */
extern void KsRunPartInfo(const KsAggDef *def, KsPartInfo *part);

/* Hand a run over to another worker of the pool (after its final checkpoint). */
extern void KsRunHandOver(KsAggRun *run);

/*
 * After a step: a paused run with nothing left to consume, checkpoint or
 * clean up for KS_PARK_AFTER_MS parks its slot, so that its worker may
 * run others' (pool.c); not at once, so that pausing and resuming in a
 * loop does not hand the aggregation over each time.
 */
#define KS_PARK_AFTER_MS	10000

extern void KsRunParkIfIdle(KsAggRun *run);

/* Set up the worker's process-wide parts of running steps (once). */
extern void KsRunInitProcess(void);

/*
 * The worker's SIGTERM handler: the first asks it to leave at a step
 * boundary (cancelling a step past its grace); another, a second or more
 * later, is die().
 */
extern void KsRunTermHandler(SIGNAL_ARGS);

/*
 * SIGINT handler of the worker: PostgreSQL's StatementCancelHandler, and a
 * count of the SIGINTs received, which a step's mark (shmem.h) records.
 */
extern void KsRunCancelHandler(SIGNAL_ARGS);

/* Name the worker's database in the context of its messages (KsRowErrorContext). */
extern void KsRunSetDatabase(const char *dbname);
extern uint32 KsRunCancelSignals(void);

/*
 * Enter a step of a run (KsSlotEnterStep), its mark counting the SIGINTs
 * received so far; false if a backend is interrupting it.
 */
extern bool KsRunEnterStep(KsAggRun *run, KsStepMark *mark);
extern bool KsRunTerminating(void);

/*
 * A step's transaction: started with the aggregation's settings, a GUC nest
 * level, the time bound armed and the owner's identity (returns the nest
 * level); ended rolling back what user code set.
 */
extern int	KsRunBegin(KsAggRun *run);
extern void KsRunEnd(int nestlevel);

/* Flush the statistics steps left pending once they waited a second; returns the sleep. */
extern long KsRunFlushStats(long timeout);

/*
 * Recovery and checkpoints are not bounded by the step timeout; a
 * termination cancels the first at once, the second only after a grace.
 */
extern void KsRunTimeoutPause(bool cancel_on_term);

/*
 * runbound.c's side of KsRunBegin and KsRunEnd (and of a step's error):
 * whether cancels may end what runs (only inside steps), the step's time
 * bound armed for a run, and disarmed (returns whether the step timed
 * out); and a worker that leaves at the next step boundary of its own
 * accord (as after a termination).
 */
extern void KsRunAcceptCancels(bool accept);
extern void KsRunBoundBegin(KsAggRun *run);
extern bool KsRunBoundEnd(void);
extern void KsRunLeaveSoon(void);

/* Error context callback of a step (arg: the run): the aggregation, the input row. */
extern void KsRowErrorContext(void *arg);

/* Whether the step timeout is paused now. */
extern bool KsRunTimeoutsPaused(void);

/*
 * User code called inside keyedstate's own work while the step timeout is
 * paused (deserializing states, which replays a replayed aggregate's inputs
 * through its transition function): bounded by the step timeout and the
 * kill timer from Begin to End.  KsBecomeOwner and KsBecomeWorker do it.
 */
extern void KsRunOwnerCodeBegin(KsAggRun *run);
extern void KsRunOwnerCodeEnd(void);

/*
 * User code called item after item inside keyedstate's own work (a sliding
 * window's republish after a load, window.c): bounded from its first item,
 * with a fresh bound once a quarter of one has passed, so that each item
 * gets three quarters of the step timeout at least (a bound per 1024
 * windows failed a slow combine function's: re-review today 58, F1).
 */
extern void KsRunOwnerCodeEach(KsAggRun *run);

/* Arm the step timeout again after a pause, for a whole bound. */
extern void KsRunTimeoutResume(KsAggRun *run);

/* The rows per second consumed lately: the last full second, or the current one. */
extern double KsRunRate(KsAggRun *run, TimestampTz now);

/* The worker memory a loaded run's keys and states take, as status reports it (allocated). */
extern int64 KsRunMemoryBytes(KsAggRun *run);

/*
 * After a step: its progress and the run's state for keyedstate.status;
 * `waiting` if another session holds the source (source_busy), with its
 * pid (0: a prepared transaction, or not found), or with the writer the
 * frontier waits for, after a second.
 */
extern void KsRunReport(KsAggRun *run, KsSlotProgress *progress, bool source_busy,
						int source_holder);

/*
 * A step ended with an error (caught in cxt): abort, and fail the
 * aggregation, unless a backend interrupted it since `mark`, or the error
 * is one of the server's resources (a full disk), which unloads the run to
 * load it again later (KsRunRetryLater).
 */
extern void KsRunStepError(KsAggRun *run, MemoryContext cxt, const KsStepMark *mark);

/* Whether a run unloaded by a passing error must wait before it loads again. */
extern bool KsRunRetryLater(KsAggRun *run, long *timeout);

/*
 * Whether the current step was told to stop: it timed out, the worker is
 * leaving, or a backend interrupted it or another step of the database
 * (a pause, drop, rebuild).  User code may turn the cancel into another
 * error; this still knows.
 */
extern bool KsRunCancelled(KsAggRun *run);

/*
 * Invalidation callbacks: a table, or some function, changed; or a role
 * or a membership (`roles`): that matters only to a run whose query calls
 * an SQL function, which PostgreSQL inlines only for a role that may
 * execute it and what its body calls (re-review today 28, F3 and F5:
 * ALTER ROLE ... NOINHERIT brought no recompile; any membership change in
 * the cluster recompiled every run).
 */
extern void KsRunRelationChanged(KsAggRun *run, Oid relid);
extern void KsRunFunctionsChanged(KsAggRun *run, bool roles);

#endif							/* KS_RUN_H */
