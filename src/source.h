/*-------------------------------------------------------------------------
 *
 * source.h
 *	  The source reader: which rows of an aggregation's table are consumed.
 *
 * This is the one part that decides which rows are consumed: where
 * consumption starts, how far it may safely go (the frontier), how each
 * batch is bounded, and what a batch hands on.
 *
 * The frontier.  Offsets come from a CACHE 1 sequence evaluated inside the
 * INSERT, after the writer has taken RowExclusiveLock on the table.  So
 * when the sequence's last value is v, every transaction that got an
 * offset <= v already holds that lock.  The frontier reads v, lists the
 * transactions whose locks conflict with ShareLock on the table
 * (GetLockConflicts, the non-blocking half of WaitForLockers), and
 * declares offsets <= v safe once all of them have ended.  Rows above the
 * frontier are never read, so a row that commits late, out of offset
 * order, is never skipped.  Waiting never blocks the worker: an open
 * writer just holds the frontier back, and the aggregation shows as
 * 'waiting' with the writer's pid.  The sequence itself is checked at
 * every step: a sequence that went backwards, cycles or caches values
 * would hand out offsets at or below what was consumed, and fails the
 * aggregation instead of silently losing rows.
 *
 * Reading.  A batch reads the rows with offsets in (lo, hi] through the
 * offset column's btree index, in offset order, with a fresh snapshot
 * taken after the frontier moved.  It stops after about `limit` rows, but
 * only between two distinct offsets, so a batch always ends with every row
 * of its last offset and the next one starts right after it: gaps in the
 * offsets cost nothing, and equal offsets are never split.  For each row
 * the reader evaluates the query's WHERE and builds the input row from the
 * analysed expressions (definition.h's layout), compiled once per load
 * as the owner, and hands it to a callback.  No SQL text is involved:
 * what runs is what was analysed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SOURCE_H
#define KS_SOURCE_H

#include "definition.h"

#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "storage/lock.h"
#include "utils/relcache.h"

/* What a sequence says now. */
typedef struct KsSequenceState
{
	int64		last_value;
	bool		is_called;
	int64		increment;
	int64		minvalue;
	int64		maxvalue;
	int64		cache;
	bool		cycle;
} KsSequenceState;

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

/* Called for each input row; the slot's values are only valid inside. */
typedef void (*KsRowCallback) (TupleTableSlot *slot, void *arg);

/* Asked every few rows whether the batch should end early (time is up). */
typedef bool (*KsReadStop) (void *arg);

typedef struct KsSource
{
	Oid			relid;
	AttrNumber	offset_attnum;
	Oid			offset_type;	/* int2, int4 or int8 */
	Oid			seqoid;
	const char *aggname;		/* for messages */
	List	   *rtable;			/* the query's, for privilege checks */

	/* the index read, and its comparison functions against int8 bounds */
	Oid			indexoid;
	RegProcedure gt_proc;
	RegProcedure le_proc;
	Oid			indexcoll;

	/* compiled from the analysed query (KsSourceCompile) */
	ExprContext *econtext;
	ExprState  *where;
	ProjectionInfo *proj;
	TupleTableSlot *inputslot;

	KsFrontier	frontier;
	int64		seq_seen;		/* highest offset the sequence has handed out, as seen */
	bool		stale;			/* table altered: find the index again */
} KsSource;

/*
 * Set up a source for an aggregation whose rows up to `consumed` are
 * consumed; arrays and compiled expressions live in cxt.  Compiling folds
 * constants, which runs user code: call as the aggregation's owner.
 */
extern void KsSourceInit(KsSource *src, KsQueryInfo *info, AttrNumber offset_attnum,
						 Oid seqoid, const char *aggname, int64 consumed,
						 MemoryContext cxt);

/* Compile (again) the WHERE and the input row's expressions into cxt. */
extern void KsSourceCompile(KsSource *src, KsQueryInfo *info, MemoryContext cxt);

/*
 * Lock the table and its sequence for this step, without waiting; false if
 * someone holds a conflicting lock (a long ALTER TABLE, a TRUNCATE ...
 * RESTART IDENTITY), in which case the step is skipped for now.
 */
extern bool KsSourceLock(Oid relid, Oid seqoid);

/*
 * Checks of every step, as the owner: SELECT privileges on what the query
 * reads, no row-level security in force, no inheritance children, a sane
 * sequence.  Raises a clear error otherwise.
 */
extern void KsSourceCheck(KsSource *src);

/* Move the frontier as far as it safely goes; returns the safe offset. */
extern int64 KsSourceAdvance(KsSource *src);

/*
 * Read the rows with offsets in (lo, hi], stopping between two offsets
 * once about `limit` rows were read or `stop` says so; *cur_offset is set
 * to the offset of the row being evaluated (for error reports) and *nrows
 * to the number of rows handed to cb.  Returns the offset up to which
 * every row was read: hi when the range was exhausted.
 */
extern int64 KsSourceRead(KsSource *src, int64 lo, int64 hi, uint64 limit,
						  KsReadStop stop, KsRowCallback cb, void *arg,
						  int64 *cur_offset, uint64 *nrows);

/*
 * The offset before the first one a sequence can hand out: consumption
 * from the beginning starts after it.  Refuses sequences keyedstate cannot
 * follow (cached values, descending, cycling, starting at the minimum
 * bigint).
 */
extern int64 KsSourceStartOffset(Oid seqoid);

/*
 * Choose the offset column of a table: the named one, or else the primary
 * key if it is a sequence-filled integer, or else the only sequence-filled
 * integer column; *seqoid is its sequence.  Errors say what is missing.
 */
extern AttrNumber KsSourceOffsetColumn(Relation rel, const char *colname, Oid *seqoid);

/* Refuse an offset column that no usable btree index leads with. */
extern void KsSourceCheckIndex(Relation rel, AttrNumber attnum);

/*
 * Read the source's sequence at a step, and check that it can still be
 * followed (settings unchanged, never behind what was seen); errors name
 * the sequence and say how to recover.
 */
extern void KsSourceReadSequence(KsSource *src, KsSequenceState *st);

/*
 * The last value handed out by a sequence (no privilege check); false if
 * none yet, or (with nowait) if someone holds it locked exclusively.
 */
extern bool KsSequenceLastValue(Oid seqoid, int64 *value, bool nowait);

#endif							/* KS_SOURCE_H */
