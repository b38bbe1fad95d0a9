/*-------------------------------------------------------------------------
 *
 * input.h
 *	  Reading an aggregation's input safely: the offset frontier and batches.
 *
 * Offsets come from a CACHE 1 sequence evaluated inside the INSERT, after
 * the writer has taken RowExclusiveLock on the table.  So when the
 * sequence's last value is v, every transaction that got an offset <= v
 * already holds that lock.  The frontier reads v, lists the transactions
 * whose locks conflict with ShareLock on the table (GetLockConflicts, the
 * non-blocking half of WaitForLockers), and declares offsets <= v safe once
 * all of them have ended.  Rows above the frontier are never read, so a
 * row that commits late, out of offset order, is never skipped.  Waiting
 * never blocks the worker: an open writer just holds the frontier back,
 * and the aggregation shows as 'waiting' with the writer's pid.
 *
 * Rows are read in offset order through a prepared statement over the
 * offset index, one statement per batch (never per row), and streamed to a
 * callback through a DestReceiver.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_INPUT_H
#define KS_INPUT_H

#include "definition.h"

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "storage/lock.h"

typedef struct KsFrontier
{
	int64		safe;			/* rows with offsets <= safe may be read */
	int64		target;			/* becomes safe once `waits` have ended */
	VirtualTransactionId *waits;	/* writers that may hold offsets <= target */
	int			nwaits;
	int			maxwaits;
	TimestampTz blocked_since;	/* when the current wait began */
	int			blocking_pid;	/* one writer we wait for */
} KsFrontier;

/* Start a frontier at an already consumed offset; arrays live in cxt. */
extern void KsFrontierInit(KsFrontier *f, int64 consumed, MemoryContext cxt);

/* Move the frontier as far as it safely goes; returns the safe offset. */
extern int64 KsFrontierAdvance(KsFrontier *f, Oid relid, Oid seqoid);

/* The last value handed out by a sequence (no privilege check); false if none yet. */
extern bool KsSequenceLastValue(Oid seqoid, int64 *value);

/*
 * SQL text reading the input of an aggregation in offset order between two
 * int8 parameters ($1, $2]: column 0 is the offset, then the keys, then
 * each aggregate's arguments (inputcols[i] is the first of aggregate i) and
 * its FILTER (filtercols[i], or -1); *ncols is the number of columns.  Deparsed from the stored tree under
 * search_path = pg_catalog, so every name is schema-qualified and names of
 * renamed columns are current.
 */
extern char *KsBuildInputQuery(KsQueryInfo *info, AttrNumber offset_attnum,
							   int *inputcols, int *filtercols, int *ncols);

/* Called for each input row; the slot's values are only valid inside. */
typedef void (*KsRowCallback) (TupleTableSlot *slot, void *arg);

/* Run the prepared input query for (lo, hi]; returns the number of rows. */
extern uint64 KsRunInputBatch(SPIPlanPtr plan, int64 lo, int64 hi,
							  KsRowCallback cb, void *arg);

#endif							/* KS_INPUT_H */
