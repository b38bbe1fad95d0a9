/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The database worker: one process per database runs its aggregations.
 *
 * Each aggregation is a KsAggRun: its definition, the worker-local keyed
 * state (keytable.h) with the aggregate calls (aggcall.h), the input
 * frontier (input.h), the prepared input statement and the projection
 * that turns a key's final values into its view row.  Every step of an
 * aggregation is one transaction; an error fails that aggregation only
 * (state 'failed', error text and offset in keyedstate.status), its
 * published rows and checkpoint stay as of the last good batch, and the
 * other aggregations go on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_WORKER_H
#define KS_WORKER_H

#include "aggcall.h"
#include "definition.h"
#include "input.h"
#include "keytable.h"
#include "shmem.h"

#include "executor/spi.h"
#include "nodes/execnodes.h"

typedef struct KsAggRun
{
	KsAggDef   *def;			/* catalog row, refreshed on reload */
	char	   *name;
	MemoryContext cxt;			/* the run itself */
	KsAggSlot  *slot;

	bool		loaded;			/* state recovered and published */
	bool		failed;
	int64		failed_resume_count;	/* resume() bumps the catalog's */

	/* valid while loaded; all in loadcxt */
	MemoryContext loadcxt;
	KsQueryInfo info;
	KsAggRuntime *rt;
	KsKeyTable *kt;
	struct KsApplyBuffer *applybuf;	/* input rows waiting to be applied */
	KsFrontier	frontier;
	int		   *inputcols;
	int		   *filtercols;
	SPIPlanPtr	plan;			/* input statement, kept across transactions */
	bool		plan_stale;		/* source changed: deparse and prepare again */
	SPIPlanPtr	ckpt_plan;		/* insert of a checkpoint chunk */
	ExprContext *econtext;		/* projection of the view rows */
	TupleTableSlot *resultslot;
	TupleTableSlot *viewslot;
	ProjectionInfo *proj;
	ExprState  *having;
	MemoryContext batchcxt;

	int64		consumed;		/* rows with offsets <= consumed are published */
	int64		applied;		/* rows with offsets <= applied are in the states */
	int64		checkpointed;
	int64		ckpt_offset;	/* offset written by the running checkpoint */
	uint64		ckpt_request;	/* request number it satisfies */
	int64		ckpt_new_id;	/* its checkpoint id, */
	bool		ckpt_new_full;	/* whether it is full, */
	int64		ckpt_new_bytes; /* the bytes it wrote, */
	int64		ckpt_new_keys;	/* the keys it wrote, */
	TimestampTz ckpt_started;	/* and when it started */
	int64		ckpt_last_id;	/* last committed checkpoint (0: none) */
	bool		ckpt_have_full; /* a full checkpoint is in keyedstate.state */
	int64		ckpt_full_bytes;	/* bytes of the latest full checkpoint */
	int64		ckpt_delta_bytes;	/* bytes of the deltas written since */
	StringInfo	ckpt_buf;		/* chunk buffer, kept across checkpoints */
	dsa_pointer building;		/* store that recovery fills, not yet published */
	int64		building_bytes; /* its DSA bytes */
	int64		building_visible;	/* its visible rows */
	struct KsKeyEntry **ckpt_sorted;	/* scratch for the key-group sort */
	int64		ckpt_maxsorted;
	TimestampTz last_checkpoint;
	int64		cur_offset;		/* row being applied, for error reports */
	int64		replay_until;	/* high water at recovery, for rows_replayed */

	int64		rate_rows;
	TimestampTz rate_since;
} KsAggRun;

/* Run user code of an aggregation (its owner, restricted, fixed settings). */
extern void KsBecomeOwner(KsAggRun *run);

/* Back to the worker's own identity for keyedstate's catalog tables. */
extern void KsBecomeWorker(void);

PGDLLEXPORT void KsDatabaseWorkerMain(Datum main_arg);

#endif							/* KS_WORKER_H */
