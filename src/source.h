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
 * declares offsets <= v safe once all of them have ended.  Of a client
 * backend's, it waits only for those that took the table's writer mark
 * (writers.c): its wake-up trigger takes the mark after the privilege
 * check and before the first offset, where the lock may be held by
 * anyone who can name the table.  Rows above the
 * frontier are never read, so a row that commits late, out of offset
 * order, is never skipped.  Waiting never blocks the worker: an open
 * writer just holds the frontier back, and the aggregation shows as
 * 'waiting' with the writer's pid.  The sequence itself is checked at
 * every step: a sequence that went backwards, cycles or caches values
 * would hand out offsets at or below what was consumed, and fails the
 * aggregation instead of silently losing rows.
 *
 * Partitioned sources.  A partitioned table (or a partition, or any table
 * in a partition tree) is one source: its leaf partitions share the
 * offset column's sequence through the column default PARTITION OF
 * copies.  A writer inserting through a parent locks the parent before
 * the default runs, and one inserting straight into a partition locks the
 * partition; so the frontier lists the lockers of every table of the tree
 * that a row of the source can be inserted through: the source's
 * ancestors, itself and all its descendants, read from the catalog after
 * the high-water mark (a partition attached before that mark was read is
 * in the list, and an ATTACH still running locks the parent, so it is
 * waited for like a writer).  A batch reads every leaf's offset index
 * and merges them in offset order, converting each leaf's rows to the
 * source's columns.  What the tree may not change under the aggregation
 * (a table attached with rows the frontier may already have passed, a
 * partition dropped, detached or truncated with rows not yet
 * checkpointed) is refused by the utility hook (hooks.c, through
 * KsSourceCheckAttach and KsSourceCheckRemove below).
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

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"

#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
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

/*
 * A table whose rows are read: the source itself, or one of its leaf
 * partitions.
 */
typedef struct KsLeaf
{
	Oid			relid;
	AttrNumber	offset_attnum;	/* in the leaf */

	/* its offset index, and the comparison functions against int8 bounds */
	Oid			indexoid;
	RegProcedure gt_proc;
	RegProcedure le_proc;
	Oid			indexcoll;

	/* the leaf's columns as the source's, NULL when they are the same */
	struct AttrMap *map;
	TupleTableSlot *srcslot;	/* the converted row */
} KsLeaf;

typedef struct KsSource
{
	Oid			relid;
	AttrNumber	offset_attnum;
	Oid			offset_type;	/* int2, int4 or int8 */
	Oid			seqoid;
	const char *aggname;		/* for messages */
	bool		index_dropping; /* KsSourceCheckLeaves for a command dropping an index */
	bool		restoring;		/* restored, or nothing consumed nor seen: its sequence may come after its rows */
	TimestampTz restore_wait_since; /* ... waited for since (KsSourceReadSequence) */
	List	   *rtable;			/* the query's, for privilege checks */
	int			stop_rows;		/* end of the step checked every so many rows at most (0: 64) */

	/*
	 * The tables read: the source alone, or its leaf partitions (found
	 * again at each batch of a partitioned source, in leafcxt).
	 */
	bool		tree;			/* in a partition tree */
	KsLeaf	   *leaves;
	int			nleaves;
	Oid		   *parents;		/* the tree's partitioned tables and ancestors */
	int			nparents;
	MemoryContext leafcxt;
	bool		leaf_busy;		/* the last batch found a partition locked */

	/* compiled from the analysed query (KsSourceCompile) */
	ExprContext *econtext;
	ExprState  *where;
	List	   *planned;		/* its expressions as planned (KsRunCompile: the functions they call) */
	ProjectionInfo *proj;
	TupleTableSlot *inputslot;

	/*
	 * The table's columns the expressions read, as analysed: checked
	 * against the table whenever the leaves are set up again (after any
	 * change to it), so that a column whose type changed is never read as
	 * its former type.
	 */
	int			nvars;
	Var		  **vars;

	KsFrontier	frontier;
	int64		seq_seen;		/* highest offset the sequence has handed out, as seen */
	bool		table_seen;		/* the table's highest offset read, once per load: */
	int64		table_max;		/* ... it (PG_INT64_MIN: no row), warned of if above the sequence */
	bool		stale;			/* table altered: find the index again */

	/* which tables' writers take the writer mark, as read (writers.c) */
	List	   *marks;
	uint64		marks_gen;		/* bumped when they are forgotten */
	MemoryContext markcxt;
} KsSource;

/*
 * Set up a source for an aggregation whose rows up to `consumed` are
 * consumed; its arrays live in cxt.  KsSourceCompile then compiles its
 * expressions, before it is read.  `restoring`: a restored run not caught
 * up yet, or one that has consumed nothing (a restore may have bound it
 * before its rows came, 009's flake), whose sequence a restore may set after
 * its rows (KsSourceReadSequence waits for it).
 */
extern void KsSourceInit(KsSource *src, KsQueryInfo *info, AttrNumber offset_attnum,
						 Oid seqoid, const char *aggname, int64 consumed, bool restoring,
						 MemoryContext cxt);

/*
 * Compile (again) the WHERE and the input row's expressions into cxt.
 * Folding constants runs user code: call as the aggregation's owner.
 */
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

/* Whether a column of this type can carry offsets (smallint, integer, bigint). */
extern bool KsIsOffsetType(Oid typid);

/*
 * Refuse an offset column that no usable btree index leads with, in the
 * table or in any of its leaf partitions (whose column must also be filled
 * from seqoid, or not at all).
 */
extern void KsSourceCheckIndex(Relation rel, AttrNumber attnum, Oid seqoid);

/*
 * Refuse an owner who may not read the offset column: the worker reads it
 * for her, and sync() and status tell its values (checked at creation and
 * at every step, as the query's columns are).
 */
extern void KsCheckOffsetPrivilege(Oid relid, AttrNumber attnum, Oid userid);

/* offsets.c: whether a role may read a column (SELECT on the table, or on the column). */
extern bool KsMayReadColumn(Oid relid, AttrNumber attnum, Oid userid);

/*
 * The sequence a column default hands out the values of: nextval() of it,
 * cast to the column's type at most; InvalidOid for anything else.  One
 * that computes with them (nextval(s) * 10 + 3, a shard's or a time's bits
 * added) gives rows offsets the sequence never handed out, which the
 * frontier never reads.
 */
extern Oid	KsPlainNextvalSequence(Node *expr);

/*
 * The CREATE TABLE or CREATE FOREIGN TABLE ... PARTITION OF that a utility
 * command is, or NULL: the utility hook checks a partition made so like one
 * attached (a foreign table is no partition a source may have).
 */
extern CreateStmt *KsPartitionCreateStmt(Node *parsetree);

/* --- inside the source reader (source.c, sourcetree.c) --- */

/*
 * Find the leaves a batch reads: the source alone, or its leaf partitions
 * as the catalog lists them now, each and its offset index locked without
 * waiting.  False, with src->leaf_busy set, if one is locked by someone
 * else (a DROP, TRUNCATE or REINDEX of it): the batch then reads nothing.
 */
extern bool KsSourceFindLeaves(KsSource *src);

/*
 * The tables a writer of the source's rows may lock instead of the source
 * (its ancestors, itself and all its descendants), as the catalog lists
 * them now; NIL for a table in no partition tree.
 */
extern List *KsSourceTreeRelids(KsSource *src);

/* The offset of a row of a leaf, whatever the integer type of its column. */
static inline int64
KsLeafRowOffset(Oid offset_type, AttrNumber attnum, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	if (isnull)
		return PG_INT64_MIN;	/* never within (lo, hi] of an index scan */
	switch (offset_type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/*
 * Find the btree index the reader scans in a leaf: valid (and not being
 * replaced by REINDEX CONCURRENTLY), ascending, without predicate or
 * expressions, led by the offset column, whose (built-in) operator family
 * compares the column with int8 bounds.  False if there is none; with
 * `busy` (a worker, which never waits), indexes others lock are passed
 * over, and *busy is set if no other one is found.
 */
extern bool KsFindOffsetIndex(KsLeaf *leaf, Relation heap, Oid offset_type, bool *busy);

/*
 * ATTACH PARTITION of table `partrelid` to `parentrelid`, which is in the
 * tree of the source of an aggregation whose offsets come from `seqoid`:
 * refuse it if the table holds rows the frontier may already have passed
 * (offsets at or below what the sequence has handed out).  The caller
 * holds the locks the ATTACH takes.
 */
extern void KsSourceCheckAttach(Oid partrelid, Oid parentrelid, Oid sourceid,
								AttrNumber src_attnum, Oid seqoid, const char *aggname);

/*
 * DROP, DETACH or TRUNCATE of partition `partrelid` of the source: whether
 * the partition holds rows above `checkpointed` (not yet in a committed
 * checkpoint, so a crash would need them again).  Such a command is
 * refused, unless `cascade` (DROP TABLE ... CASCADE), which drops the
 * aggregation, as it drops a foreign key that references the table: true
 * says so.  The caller holds the partition's AccessExclusiveLock.
 */
extern bool KsSourceCheckRemove(Oid partrelid, Oid sourceid, AttrNumber src_attnum,
								int64 checkpointed, const char *what, const char *aggname,
								bool cascade);

/*
 * Refuse a table of a source's partition tree under relid (or, for relid
 * the source itself, the tables it is a partition of) whose offset column
 * is filled from anything but seqoid; aggname may be NULL (at creation).
 * Without `wait`, a table another session holds against reads is skipped
 * (sync(), whose timeout a DDL command must not outlast, and the worker,
 * which never waits for a lock), and false returned.
 */
extern bool KsSourceCheckDefaults(Oid relid, Oid sourceid, AttrNumber src_attnum,
								  Oid seqoid, const char *aggname, bool wait);

/*
 * Refuse a partition whose offset column is filled from anything but
 * seqoid (no default at all is fine: rows then come through a parent).
 */
extern void KsSourceCheckLeafDefault(Relation leaf, AttrNumber attnum, Oid seqoid,
									 const char *aggname);

/*
 * Refuse a source whose offset column is not filled by seqoid: as its
 * identity, or by a default calling nextval() of it and of no other.
 */
extern void KsSourceCheckOwnDefault(Relation rel, AttrNumber attnum, Oid seqoid,
									const char *aggname);

/*
 * Refuse leaves under relid (just added to a source's tree, or after a
 * command that may have dropped an index: `dropping`) that the reader could
 * not read: no usable offset index, a foreign table, another sequence.
 */
extern void KsSourceCheckLeaves(Oid relid, Oid sourceid, AttrNumber src_attnum, Oid seqoid,
								const char *aggname, bool dropping);

/* The highest value a sequence may have handed out, called or not. */
extern int64 KsSequenceHighest(Oid seqoid);

/* A relcache invalidation of relid: the tables read may need setting up again. */
extern void KsSourceRelationChanged(KsSource *src, Oid relid);

/*
 * Whether a range table entry is a partitioned table a statement inserts
 * into (INSERT, ON CONFLICT, MERGE with an INSERT action, a writable CTE's,
 * COPY FROM): what the executor's privilege check shows of rows routed to
 * partitions, whose statement triggers do not fire (writers.c takes its
 * mark, waketrig.c wakes the aggregations below it).
 */
static inline bool
KsInsertsIntoPartitioned(const RangeTblEntry *rte)
{
	return rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_PARTITIONED_TABLE &&
		(rte->requiredPerms & ACL_INSERT) != 0;
}

/*
 * writers.c: the writer marks (see its banner).  KsMarkWriter takes table
 * relid's; KsMarkWriterAndNewAncestors also those of the tables above a
 * link of its partition tree made in this transaction (from its wake-up
 * trigger); KsMarkAncestorsOf those above a table just made a partition; KsMarkWritersOfCommand those of the
 * tables a utility command changes the triggers or the tree of;
 * KsMarkTriggerChanged that of the table of a wake-up trigger altered or
 * dropped; KsSourceWriters turns the lockers of
 * a table of the source (those conflicting with ShareLock, an array ended
 * by an invalid one, freed or returned) into the transactions that may be
 * writing into it; KsWritersRelationChanged forgets what was read of a
 * table's triggers when it changes.
 */
extern void KsMarkWriter(Oid relid);
extern void KsMarkWriterAndNewAncestors(Oid relid);
extern void KsMarkAncestorsOf(Oid relid);
extern void KsMarkWritersOfCommand(Node *parsetree);
extern void KsMarkTriggerChanged(Oid trigoid, bool replaced);

/*
 * Install the permission-check hook by which writers into partitioned
 * tables take their mark, and the callback by which a background worker's transaction
 * takes the marks of what it wrote before it prepares.
 */
extern void KsWritersInit(void);
extern VirtualTransactionId *KsSourceWriters(KsSource *src, Oid relid,
											 VirtualTransactionId *lockers);
extern void KsWritersRelationChanged(KsSource *src, Oid relid);

/* The pid of a session holding table relid against a lock in mode, or 0 (also a prepared transaction). */
extern int	KsLockHolderPid(Oid relid, LOCKMODE mode);


/*
 * The aggregation id a wake-up trigger carries (its pg_trigger row and
 * that catalog's descriptor) as its one argument, or -1 if it carries
 * anything else.
 */
extern int32 KsWakeTriggerAggregation(HeapTuple tup, TupleDesc desc);

/*
 * Read the source's sequence at a step, and check that it can still be
 * followed (settings unchanged, never behind what was seen); errors name
 * the sequence and say how to recover.
 */
extern void KsSourceReadSequence(KsSource *src, KsSequenceState *st);

/*
 * Before an INSERT (or COPY) into table relid of aggregation aggid's
 * source (its wake-up trigger, hooks.c): refuse it while the source's
 * sequence would hand out an offset at or below the one the aggregation
 * has consumed.  A sequence set back (setval, ALTER SEQUENCE ... RESTART)
 * and taken up again by writers before the worker's next look gave rows
 * offsets it had passed: never read, and the worker never saw the
 * sequence behind (fault review 37, F1).  Checked once per statement,
 * before its rows take offsets, so a setval() that runs during the
 * statement (in another session, or in the statement itself) is not seen,
 * nor are explicit offsets (re-review today 39, F3, F6: documented).  The
 * worker still fails the aggregation if it sees the sequence behind.
 */
extern void KsRefuseConsumedOffsets(int32 aggid, Oid relid);

/*
 * The same before an INSERT (or COPY) into partitioned table relid, for
 * every aggregation whose source is a partition below it (rows routed
 * there fire no statement trigger of the source: re-review today 39, F2),
 * from the executor's privilege check (waketrig.c).  Those with a loaded
 * part only (KsAggregationsBelow): after a restart, until the worker loads
 * the aggregation, rows routed from above are not checked.
 */
extern void KsRefuseConsumedOffsetsBelow(Oid relid);

/*
 * The last value handed out by a sequence (no privilege check); false if
 * none yet, or (with nowait) if someone holds it locked exclusively.
 */
extern bool KsSequenceLastValue(Oid seqoid, int64 *value, bool nowait);

#endif							/* KS_SOURCE_H */
