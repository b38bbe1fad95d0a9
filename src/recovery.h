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

#include "run.h"

/* Load the checkpointed keys and offset into a freshly loaded run. */
extern void KsRecover(KsAggRun *run);

#endif							/* KS_RECOVERY_H */
