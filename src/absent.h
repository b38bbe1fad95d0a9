/*-------------------------------------------------------------------------
 *
 * absent.h
 *	  Aggregations a read or a wait finds not running: saying why, at once
 *	  when nothing will ever run them.
 *
 * A read of a view waits keyedstate.load_wait for its aggregation's parts
 * to be loaded, and sync() or checkpoint() their own timeout.  Some waits
 * can never end: the view has no aggregation behind it (a schema-only
 * dump, or a restore into a server without keyedstate preloaded, restores
 * the view alone), or the database is one where keyedstate runs no worker
 * (a template, or one that allows no connections).  Those are refused at
 * once; the others, when they time out, say what they waited for.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ABSENT_H
#define KS_ABSENT_H

#include "shmem.h"

/*
 * Why keyedstate runs no worker in the current database (a template, or
 * one that allows no connections), or NULL; and the warning at an
 * aggregation's creation there.
 */
extern char *KsNoWorkerHere(void);
extern void KsWarnNoWorkerHere(const char *aggname);

/*
 * A notice, at a create or a rescale, that an aggregation has more parts
 * than its database can ever have workers, so that some share one.
 */
extern void KsNoticeSharedParts(const char *aggname, int parallelism);

/*
 * Why a worker that should run an aggregation does not, as keyedstate.status
 * says it: `why` is KsWorkerMissing's answer (-1: no background worker slot;
 * KS_NO_LAUNCHER: no launcher; a number of owners: more than a database
 * runs workers for).
 */
extern char *KsNoWorkerMessage(int why);

/*
 * Refuse at once to wait for aggregation aggid (named aggname) in a
 * database where keyedstate runs no worker, unless one still runs it.
 */
extern void KsRefuseWaitHere(int32 aggid, const char *aggname);

/*
 * Refuse a sync of aggregation aggname (definition def) that could only
 * time out: the calling transaction wrote into its source (its rows commit
 * after the call), or holds the source against the worker's reads (ALTER
 * TABLE, LOCK TABLE).
 */
struct KsAggDef;
extern void KsRefuseHopelessSync(const struct KsAggDef *def, const char *aggname);

/*
 * A read of live table live_oid finds aggregation aggid not loaded: refuse
 * at once if it cannot run here, or, when it has no slot (view_oid
 * invalid), if it does not exist (naming the view).
 */
extern void KsRefuseHopelessRead(int32 aggid, Oid live_oid, Oid view_oid);

/*
 * Error out if this transaction created the aggregation of a slot (a copy):
 * no worker runs it before the commit, so a read cannot wait for it.
 */
extern void KsRefuseReadCreatedHere(const KsAggSlot *copy);

/* Refuse to read aggregation aggid in the transaction that rebuilt it. */
extern void KsRefuseReadRebuiltHere(int32 aggid);

/*
 * A read waited keyedstate.load_wait for the n of nparts parts found (refs)
 * to be loaded: raise why it is not running, or that it is still loading.
 */
extern void KsRaiseNotLoaded(int32 aggid, KsSlotRef *refs, int n, int nparts, Oid view_oid) pg_attribute_noreturn();

#endif							/* KS_ABSENT_H */
