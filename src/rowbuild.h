/*-------------------------------------------------------------------------
 *
 * rowbuild.h
 *	  Building the rows of keys whose row fails, in the worker: a guarded
 *	  loop of subtransactions, and rows built piece by piece.  The design
 *	  and the error row's format are rowerror.h's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ROWBUILD_H
#define KS_ROWBUILD_H

#include "run.h"

/* One step of a guarded loop, and what to do when step i failed. */
typedef void (*KsGuardStep) (KsAggRun *run, int64 i, void *arg);
typedef void (*KsGuardFail) (KsAggRun *run, int64 i, ErrorData *edata, void *arg);

/*
 * Run step(0) .. step(n - 1) in subtransactions, as few as no error needs:
 * a key's error (KsRowErrorOfKey) in step i rolls back, calls fail(i) (out
 * of the subtransaction, in the caller's memory context and resource owner)
 * and goes on at step i + 1.  Any other error, or one while the run is
 * cancelled, is raised.
 */
extern void KsRowErrorGuard(KsAggRun *run, int64 n, KsGuardStep step,
							KsGuardFail fail, void *arg);

/*
 * Prepare building rows piece by piece: tlist and having (or NULL) are the
 * planned view columns and HAVING over the result tuple.  In the current
 * memory context; constant folding ran already.
 */
extern struct KsRowPieces *KsRowErrorCompile(List *tlist, Expr *having, TupleDesc resultdesc);

/*
 * Build a key's row piece by piece, after run->row_error failed building
 * it whole: the error row, or the whole row if nothing failed this time, or
 * NULL when HAVING hides the key.  With allfailed, there are no states:
 * every aggregate failed with that error (merging a window's panes did),
 * and only the pieces reading keys alone compute.  Palloc'd in the current
 * memory context.
 */
extern MinimalTuple KsRowErrorBuild(KsAggRun *run, const Datum *keys, const bool *keynulls,
									KsTransState *states, const ErrorData *allfailed);

#endif							/* KS_ROWBUILD_H */
