/*-------------------------------------------------------------------------
 *
 * arguments.h
 *	  Checks of the arguments create_aggregation() and alter_aggregation()
 *	  share (arguments.c).  Intervals are counted as the worker reads them
 *	  from the catalog, by EXTRACT(EPOCH FROM ...): years of 365.25 days,
 *	  other months of 30.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ARGUMENTS_H
#define KS_ARGUMENTS_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "storage/lockdefs.h"

#include "catalog.h"

/* Milliseconds of an interval, clamped to a thousand years either way. */
extern int64 KsIntervalMs(const Interval *iv);

/*
 * Refuse a call of fname that gives none of its arguments from `first` on
 * (alter_aggregation with no setting did nothing, silently: DBA review 38, F7).
 */
extern void KsRequireSetting(FunctionCallInfo fcinfo, int first, const char *fname);

/* The milliseconds of a timeout argument (sync, checkpoint): a negative one is an error. */
extern int64 KsTimeoutArgument(const Interval *iv);

/*
 * Refuse a NULL name or timeout (sync, checkpoint): as STRICT functions they
 * returned at once without waiting or checkpointing (review newuser 69, F6).
 */
extern void KsRequireNameAndTimeout(FunctionCallInfo fcinfo);

/* Refuse a checkpoint_interval below a millisecond or above a day. */
extern void KsCheckpointIntervalArgument(const Interval *iv);

/*
 * A ttl argument as the catalog keeps it: 0 (none) for NULL or a zero
 * interval, else the interval; negative or above 1000 years is an error.
 */
extern Datum KsTtlArgument(Interval *iv);

/* An interval in microseconds, as the worker counts it (EXTRACT(EPOCH)). */
extern double KsIntervalEpochUs(const Interval *iv);

/* A memory_limit argument in bytes (0: none), and where it is not allowed. */
extern int64 KsMemoryLimitArgument(text *arg);
extern void KsCheckMemoryLimitAllowed(int64 memory_limit, bool sliding);

/*
 * Refuse a parallelism out of range (1 to max_parallelism), or one whose
 * smallest part would get less than KS_MIN_MEMORY_LIMIT_KB of a
 * memory_limit (0: none).
 */
extern void KsCheckParallelismAllowed(int parallelism, int max_parallelism, int64 memory_limit);

/* An aggregation named by its view, and that name for messages. */
typedef struct KsNamedAgg
{
	KsAggDef	def;
	char	   *name;
} KsNamedAgg;

/* The right on an aggregation's view a control function needs: own it, or read it (sync). */
typedef enum KsAggRight
{
	KS_RIGHT_OWNER,
	KS_RIGHT_SELECT
} KsAggRight;

/*
 * Resolve an aggregation by the name of its view and lock the view in
 * `lockmode`, the caller's right checked before the lock and again after
 * it, the name looked up again after it (see arguments.c).
 */
extern KsNamedAgg KsLookupAggregation(text *nametext, LOCKMODE lockmode, KsAggRight right);

#endif							/* KS_ARGUMENTS_H */
