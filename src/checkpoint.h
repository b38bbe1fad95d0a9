/*-------------------------------------------------------------------------
 *
 * checkpoint.h
 *	  Checkpoints and recovery of an aggregation's keyed state.
 *
 * A checkpoint writes, in one transaction, every key changed since the
 * last checkpoint (serialized keys and states, in chunks appended to
 * keyedstate.state; see checkpoint.c for the format) and the consumed
 * offset (keyedstate.aggregation).  The state and the offset therefore only
 * ever change together.  Recovery loads every key of the aggregation and
 * sets the consumed offset to the checkpointed one; the worker then
 * re-reads the rows after it, so a crash never loses or double-counts a
 * row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_CHECKPOINT_H
#define KS_CHECKPOINT_H

#include "worker.h"

/*
 * Write the changed keys and the consumed offset (inside a transaction);
 * false if it was skipped because a backend holds the definition locked.
 */
extern bool KsCheckpoint(KsAggRun *run);

/* After the checkpoint's transaction committed: forget the dirty keys. */
extern void KsCheckpointDone(KsAggRun *run);

/* Delete every checkpoint of an aggregation (it is dropped or rebuilt). */
extern void KsCheckpointForget(int32 aggid);

/* Load the checkpointed keys and offset into a freshly loaded run. */
extern void KsRecover(KsAggRun *run);

#endif							/* KS_CHECKPOINT_H */
