/*-------------------------------------------------------------------------
 *
 * step.h
 *	  One step of one aggregation in the database worker.
 *
 * The worker calls KsRunStep for each of its aggregations in turn; a step
 * is one transaction (run.h says what it runs under).  Errors fail the
 * aggregation, never the worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_STEP_H
#define KS_STEP_H

#include "run.h"

/*
 * One step of one aggregation: load it if needed, move the frontier, apply
 * batches up to it, publish, checkpoint when due.  Lowers *timeout when
 * more work is already waiting.  Errors fail the aggregation; never throws.
 */
extern void KsRunStep(KsAggRun *run, long *timeout);

/* Final checkpoint of a healthy run (clean shutdown). */
extern void KsRunShutdownCheckpoint(KsAggRun *run);

#endif							/* KS_STEP_H */
