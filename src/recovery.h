/*-------------------------------------------------------------------------
 *
 * recovery.h
 *	  Loading an aggregation's checkpointed keys and offset.
 *
 * Recovery reads back what checkpoints wrote (checkpoint.h, which also
 * holds the guarantees and the format of a chunk) into a freshly loaded
 * run: the checkpointed offset becomes the consumed one, the keys and
 * their transition states go into the run's key table, and their
 * published rows into the store being built (run->building), which no
 * reader sees until the load installs it.  Damaged checkpoint data fails
 * the aggregation with KsCheckpointCorrupted (serialize.h); it is never a
 * crash or a wrong answer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_RECOVERY_H
#define KS_RECOVERY_H

#include "checkpoint.h"
#include "run.h"

#include "utils/array.h"

/* Load the checkpointed keys and offset into a freshly loaded run. */
extern void KsRecover(KsAggRun *run);

/* --- recovery.c and seed.c --- */

/* After recovery: tombstones go, keys expired while no worker ran wait for a checkpoint (seed.c). */
extern void KsRecoverSettleExpired(KsAggRun *run);

/* Which chunks of a checkpoint recovery has met, newest first (chunkcheck.c). */
typedef struct KsChunkSequence
{
	int64		checkpoint_id;	/* whose chunks are being read, -1 before any */
	bool		full;			/* whether that checkpoint is full */
	int32		next_chunk;		/* the chunk expected next, -1 when complete */
	/* the newest chunk met, with what its header binds (format 5, checkpoint.h) */
	int64		newest_id;
	bool		newest_binds;
	int64		newest_offset;
	int32		newest_chain;
} KsChunkSequence;

/*
 * Check a chunk against its row before anything of it is parsed; returns
 * its flags, the length of its header, and what a last chunk binds (*chain
 * -1: nothing).  Then check it follows the chunks met before it.
 */
extern uint8 KsCheckChunkHeader(KsAggRun *run, const KsChunkRow *row, const char *data, uint32 len,
								uint32 *header, int64 *offset, int32 *chain);
extern void KsCheckChunkSequence(KsAggRun *run, KsChunkSequence *seq, const KsChunkRow *row,
								 uint8 flags, int64 offset, int32 chain);

/*
 * Load the keys of one chain of checkpoints: the run's own (`own`), or one
 * it is seeded from (its keys of the run's key groups only), up to the
 * committed checkpoint, which with the deltas before it back to the latest
 * full one was written in `chunks` rows (-1: not known) and taken at
 * `offset`: a chain that has more or fewer, or whose newest chunk binds
 * another checkpoint, offset or number of chunks (checkpoint.h), is damaged.
 */
extern void KsRecoverChain(KsAggRun *run, int32 chain_id, int64 committed, int64 offset,
						   int32 chunks, bool own);

/*
 * The progress of a run's row, the aggregation's or (is_part) a part's:
 * its checkpointed offset, committed checkpoint id and rows in
 * keyedstate_internal.cold, its key groups and the ids it is seeded from (NULL:
 * none), the watermark committed with it (window.h; DT_NOBEGIN: none)
 * and the chunk rows of its chain (recovery.c; -1: not known) as of now
 * (NULL pointers: not wanted).
 */
extern void KsReadProgress(KsAggRun *run, int32 id, bool is_part, int64 *offset,
						   int64 *committed, int64 *cold_rows, int *first_group, int *last_group,
						   ArrayType **seeds, TimestampTz *watermark, int32 *chain_chunks);

/*
 * Recover a part that a rescale added from the checkpoints it is seeded
 * from, and where each of its key groups' rows start (seed.c); `copied` is
 * its committed checkpoint id, set only by the copy of the seeds' cold
 * rows (coldseed.c), 0 when there was none.
 */
extern void KsRecoverSeeds(KsAggRun *run, ArrayType *seeds, int64 copied);

#endif							/* KS_RECOVERY_H */
