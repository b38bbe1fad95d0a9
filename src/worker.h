/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The database worker process: one per database runs its aggregations.
 *
 * The process (signals, main loop, database claim, reload) lives in
 * worker.c; one aggregation's run (load, step, fail, identity, settings)
 * in run.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_WORKER_H
#define KS_WORKER_H

#include "run.h"

PGDLLEXPORT void KsDatabaseWorkerMain(Datum main_arg);

#endif							/* KS_WORKER_H */
