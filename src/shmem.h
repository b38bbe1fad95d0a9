/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The fixed shared-memory struct of keyedstate.
 *
 * PostgreSQL 15 has no named DSM registry, so everything shared hangs off
 * one struct allocated in the main shared memory segment at startup (hence
 * the need for shared_preload_libraries):
 *
 *	- one slot per running aggregation (keyedstate.max_aggregations), with
 *	  its progress counters, state, error text, a condition variable that
 *	  sync() sleeps on, and the root of its published rows in the DSA;
 *	- one slot per database that has (or may have) aggregations, used by
 *	  the launcher to start and restart database workers;
 *	- the handle of the one DSA area that holds published rows; it is
 *	  created lazily by the first process that needs it.
 *
 * Locking protocol:
 *	- KsShared->lock (exclusive) guards allocating and freeing aggregation
 *	  slots, the database slots and creating the DSA.  Shared mode is
 *	  enough to look a slot up.
 *	- Each aggregation slot's `lock` guards its progress fields and its
 *	  published rows.  The worker takes it exclusive to publish a batch and
 *	  to update progress; readers take it shared.  So a reader sees the
 *	  rows of exactly one published offset, never half a batch.
 *	- Never take KsShared->lock while holding a slot lock.
 *
 * A crash of any backend resets all of this; the worker rebuilds it from
 * the checkpoint relation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SHMEM_H
#define KS_SHMEM_H

#include "keyedstate.h"

#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/dsa.h"

/* What an aggregation is doing, as shown by keyedstate.status */
typedef enum KsRunState
{
	KS_STARTING = 0,			/* worker is loading its checkpoint */
	KS_RUNNING,					/* consuming, or caught up */
	KS_WAITING,					/* held back by an open writer */
	KS_PAUSED,					/* paused by keyedstate.pause() */
	KS_FAILED					/* stopped by an error; see error text */
} KsRunState;

/* Per-aggregation shared slot */
typedef struct KsAggSlot
{
	/* identity; set under KsShared->lock */
	bool		in_use;
	Oid			dboid;
	int32		aggid;

	/* everything below is guarded by `lock` */
	LWLock		lock;
	KsRunState	state;
	int64		consumed_offset;	/* published == consumed */
	int64		checkpointed_offset;
	int64		high_water;		/* last offset handed out by the sequence */
	int64		failed_offset;	/* row that made the aggregation fail, or 0 */
	int			waiting_pid;	/* writer we wait for, when KS_WAITING */
	int64		keys;			/* keys held by the worker */
	int64		visible_keys;	/* rows currently visible in the view */
	int64		memory_bytes;	/* worker memory for keys and states */
	int64		shared_bytes;	/* DSA bytes of published rows */
	int64		rows_consumed;	/* rows applied since the worker started */
	int64		rows_replayed;	/* rows re-read after the last recovery */
	double		rows_per_second;
	TimestampTz last_checkpoint;
	double		checkpoint_ms;	/* duration of the last checkpoint, to its commit */
	int64		checkpoint_keys;	/* keys it wrote */
	int64		checkpoint_bytes;	/* bytes of serialized state it wrote */
	uint64		checkpoint_requests;	/* bumped by keyedstate.checkpoint() */
	uint64		checkpoints_done;
	int64		resume_count;	/* catalog resume_count the worker applied */
	char		error[KS_ERROR_LEN];

	/* root of the published rows (a KsStoreHeader), or InvalidDsaPointer */
	dsa_pointer store;

	/* broadcast after every publish, checkpoint and state change */
	ConditionVariable cv;
} KsAggSlot;

/* Per-database slot, for the launcher */
typedef struct KsDbSlot
{
	Oid			dboid;			/* InvalidOid if free */
	int			worker_pid;		/* running database worker, or 0 */
	int			worker_procno;	/* its pgprocno, for SetLatch */
	uint32		requested;		/* bumped when a backend wants a worker */
	uint32		seen;			/* value of requested the worker started with */
	bool		idle_exit;		/* worker left because it had nothing to do */
	TimestampTz last_start;		/* when the launcher last started one */
} KsDbSlot;

#define KS_MAX_DATABASES		64

typedef struct KsShared
{
	LWLock	   *lock;			/* see the locking protocol above */
	int			tranche_id;		/* for the slot locks and the DSA */
	dsa_handle	dsa;			/* DSM_HANDLE_INVALID until created */
	int			launcher_procno;	/* -1 when no launcher runs */
	KsDbSlot	dbs[KS_MAX_DATABASES];
	int			max_aggs;
	KsAggSlot	aggs[FLEXIBLE_ARRAY_MEMBER];
} KsShared;

extern KsShared *KsSharedState;

extern void KsShmemInit(void);

/* Error out unless keyedstate was preloaded (the hint names the setting). */
extern void KsRequirePreload(void);

/* This process's mapping of the shared DSA, creating the area if needed. */
extern dsa_area *KsGetDsa(void);

/* Find the slot of an aggregation of this database; NULL if none. */
extern KsAggSlot *KsFindAggSlot(Oid dboid, int32 aggid);

/* Find or allocate the slot of an aggregation; errors when all are used. */
extern KsAggSlot *KsAcquireAggSlot(Oid dboid, int32 aggid);

/* Free a slot, releasing its published rows. */
extern void KsReleaseAggSlot(KsAggSlot *slot);

/*
 * Ask the launcher for a worker in this database, or make the running one
 * reload its aggregations.  With bump = false only make sure the database
 * has a slot (so that a later request cannot fail).
 */
extern void KsRequestDatabaseWorker(Oid dboid, bool bump);

/* Wake the worker of a database, if one runs. */
extern void KsWakeDatabaseWorker(Oid dboid);

/* Name of a run state for keyedstate.status. */
extern const char *KsRunStateName(KsRunState state);

#endif							/* KS_SHMEM_H */
