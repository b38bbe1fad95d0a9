/*-------------------------------------------------------------------------
 *
 * publish.h
 *	  Publishing the view rows of the keys a step changed.
 *
 * After its batches, a step finalizes every key it changed (the
 * aggregates' final functions), evaluates HAVING and the view's target
 * list over the result tuple [keys, aggregate results] (definition.h), and
 * hands the rows to the store's publish protocol (store.h) together with
 * the new consumed offset.  All user code runs before anything is put in
 * shared memory, so an error on one key leaves nothing half published and
 * nothing allocated.  It runs in a subtransaction: a key whose row fails
 * with an error of its data gets an error row instead (rowerror.h), and
 * the step goes on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_PUBLISH_H
#define KS_PUBLISH_H

#include "run.h"

/*
 * Compile the expressions of a loaded run, as its owner: the source's WHERE
 * and input row, the view's projection and HAVING (constant folding and
 * inlining run user code), in a new context; the previous compile's goes
 * once the new one is built.  A loaded run compiles again at any change of
 * a function (KsRunFunctionsChanged: any role's, so each compile must free
 * the last, re-review today 27, F1: they piled up in the worker's memory,
 * until a memory_limit failed the aggregation), and of a role membership:
 * an SQL function is inlined only for a role that may execute it, and its
 * body's functions vanish into the expressions (F3: after the membership
 * that allowed it was revoked, the aggregation went on as inlined before;
 * compiled again, the call is refused as in the owner's own query).
 */
extern void KsRunCompile(KsAggRun *run);

/* Publish the keys changed since the last publish with a new consumed offset. */
extern void KsPublish(KsAggRun *run, int64 offset);

/*
 * The view row of key values and their states, in the current memory
 * context, or NULL when HAVING hides it.  User code: the final functions,
 * HAVING, the projection.
 */
extern MinimalTuple KsPublishBuildRow(KsAggRun *run, const Datum *keys, const bool *keynulls,
									  KsTransState *states);

/*
 * Build the row of item i, for the key kt->publish[i] (KsPublishBuildRows):
 * point the item at its key (KsPublishItemOf) before running user code.
 */
typedef void (*KsBuildItem) (KsAggRun *run, KsPublishItem *it, int64 i, void *arg);

/*
 * Build the rows of the keys kt->publish[] into items[] with build(), in a
 * subtransaction: a key whose row fails with one of a key's errors
 * (rowerror.h) gets an error row, and the keys after it are built in a new
 * subtransaction.  Any other error is raised again once the subtransaction
 * is rolled back.
 */
extern void KsPublishBuildRows(KsAggRun *run, KsKeyTable *kt, KsPublishItem *items,
							   KsBuildItem build, void *arg);

/* Point a publish item at a key entry's record of its published row. */
static inline void
KsPublishItemOf(KsPublishItem *it, KsKeyEntry *e)
{
	it->entry = &e->shared;
	it->tuple = &e->shared_tuple;
	it->tuple_bytes = &e->shared_bytes;
	it->hash = e->hash;
	it->cold_id = e->cold_id;
}

/* Publish built rows with the new consumed offset (the store's protocol). */
extern void KsPublishItems(KsAggRun *run, KsPublishItem *items, int64 n, int64 offset);

/*
 * The shared memory is full: while stores given up are still being freed
 * (a dropped aggregation's), wait for them and return, to try again;
 * otherwise raise the error.
 */
extern void KsPublishStoreFull(KsAggRun *run);

#endif							/* KS_PUBLISH_H */
