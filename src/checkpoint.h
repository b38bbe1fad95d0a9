/*-------------------------------------------------------------------------
 *
 * checkpoint.h
 *	  Checkpoints of an aggregation's keyed state, and their byte format.
 *
 * A checkpoint writes every key changed since the last checkpoint
 * (serialized keys and states, in chunks appended to keyedstate_internal.state, in
 * the format below) and the consumed offset (keyedstate_internal.aggregation).  It
 * is captured at a step boundary and written in slices by the steps that
 * follow, so consumption never waits for the writing, its WAL or its
 * commit: a captured key is written before anything changes it
 * (copy-on-write), so the chunks hold every key as of the captured offset.
 * The chunks of checkpoint N count only once the step that writes its last
 * slice commits keyedstate_internal.aggregation.checkpoint_id = N with the offset:
 * the state and the offset therefore only ever change together, and
 * recovery deletes the chunks of a checkpoint that was not committed.  Recovery (recovery.h) loads every key of the
 * aggregation and sets the consumed offset to the checkpointed one; the
 * worker then re-reads the rows after it, so a crash never loses or
 * double-counts a row.  The same commit records checkpoint_chunks, the
 * chunk rows of checkpoint N and of the deltas before it back to the
 * latest full checkpoint: recovery must find exactly those, so chunks (or
 * whole checkpoints) deleted by hand fail the aggregation as damaged
 * instead of recovering fewer keys.  Since format 5 every checkpoint ends
 * with a last chunk (without keys when none changed) that carries the
 * offset and that number of chunks under its CRC: the newest one met must
 * be the committed checkpoint's and agree with the catalog, so the offset
 * or the number edited by hand, or the newest checkpoint deleted with the
 * number lowered to match, fail as damaged too (review bytes 62, F4:
 * rows were counted twice or skipped).  Each chunk row counts
 * KS_CHUNK_ROW_BYTES towards the deltas that make the next checkpoint
 * full, so checkpoints without keys do not grow the chain for good.
 *
 * checkpoint.c writes the chunks, recovery.c reads and checks them; this
 * header is where their format is defined.
 *
 * Layout of a chunk's data (format KS_CHUNK_FORMAT):
 *	1 byte			KS_CHUNK_FORMAT
 *	4 bytes			CRC-32C of the chunk's row (KsChunkCrc) and of every byte
 *					after this field
 *	1 byte			flags: KS_CHUNK_LAST on the last chunk of its checkpoint (which
 *					holds no key when every key went out in earlier chunks, or
 *					when the checkpoint has none)
 *	8 bytes			on the last chunk, the checkpoint's consumed offset; else 0
 *	4 bytes			on the last chunk, the chunk rows of the checkpoint and of
 *					the deltas before it back to the latest full one; else 0
 *	then per key, in any order (the chunk's row gives the range of groups):
 *	  2 bytes		key group (KsKeyGroup of the key's hash)
 *	  1 byte		flags: KS_STORED_EXPIRED for a key its TTL removed,
 *					KS_STORED_EVICTED for one the memory budget evicted
 *	  8 bytes		when a row last changed the key (TimestampTz), for TTL
 *	  4 + n bytes	length and serialized key values (KsKeySerialize)
 *	  4 + n bytes	length and serialized states (KsAggSerializeStates);
 *					0 for an expired or evicted key
 *	  4 + n bytes	length and the key's published view row (a MinimalTuple),
 *					or 0 when HAVING hides the key (and for an expired or
 *					evicted key)
 *
 * An expired key is a tombstone: recovery meets it before any older
 * version of the key (newest first) and forgets the key.  An evicted key
 * is forgotten the same way: its state is its row in keyedstate_internal.cold.  A full
 * checkpoint writes no tombstones; it deletes every older row instead.
 * Format 3, before TTL, had neither the flags nor the time: recovery still
 * reads it, taking the time of the recovery as every key's last change.
 *
 * Storing the published row costs a few dozen bytes per key (before
 * compression) and saves recovery from finalizing and projecting every
 * key again: the rows go straight into a new shared store.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_CHECKPOINT_H
#define KS_CHECKPOINT_H

#include "run.h"

#include "port/pg_crc32c.h"

/* Where the parts of a chunk's header are, and its flags. */
#define KS_CHUNK_CRC_AT			1
#define KS_CHUNK_FLAGS_AT		5
#define KS_CHUNK_HEADER			KS_CHUNK_HEADER_V5
#define KS_CHUNK_LAST			0x01

/* The fewest bytes a key takes: its group, flags, time and three lengths. */
#define KS_MIN_KEY_BYTES		(sizeof(uint16) + 1 + sizeof(int64) + 3 * sizeof(uint32))

/* Flags of a stored key. */
#define KS_STORED_EXPIRED		0x01
#define KS_STORED_EVICTED		0x02	/* in keyedstate_internal.cold (cold.h): no states, no row */

/* The format before TTL (no flags, no time per key), still read. */
#define KS_STATE_FORMAT_V3		3

/*
 * Chunks since format 5: KS_STATE_FORMAT's keys after a longer header,
 * whose last chunk binds the offset and the chain (above).  Formats 3 and
 * 4 are still read, with the 6-byte header of KS_CHUNK_HEADER_V4.
 */
#define KS_CHUNK_FORMAT			5
#define KS_CHUNK_HEADER_V4		6
#define KS_CHUNK_OFFSET_AT		6
#define KS_CHUNK_CHAIN_AT		14
#define KS_CHUNK_HEADER_V5		18

/* What a chunk row counts for beside its bytes, when deltas outgrow a full checkpoint. */
#define KS_CHUNK_ROW_BYTES		1024

/* The columns of a chunk's keyedstate_internal.state row. */
typedef struct KsChunkRow
{
	int32		aggregation_id;
	int64		checkpoint_id;
	int32		chunk;
	bool		full;
	int16		first_group;
	int16		last_group;
	int32		nkeys;
} KsChunkRow;

/*
 * The CRC-32C of a chunk: of its row's columns (in this order, native byte
 * order, no padding: aggregation_id int4, checkpoint_id int8, chunk int4,
 * is_full one byte 0/1, first_key_group int2, last_key_group int2, nkeys
 * int4), then of the chunk's data from its flags on.
 */
extern pg_crc32c KsChunkCrc(const KsChunkRow *row, const char *data, Size len);

/*
 * Capture a checkpoint at the end of a step (`final` at a clean stop): the
 * consumed offset, and the keys changed since the last capture (every key
 * for a full one).  This is all the consumption waits for: the keys are
 * written by slices in later steps (KsCheckpointContinue), and a captured
 * key that is about to change is written first (KsCheckpointSaveKey), so
 * every key is written as it was at the capture.
 */
extern void KsCheckpointStart(KsAggRun *run, bool final);

typedef enum KsCkptProgress
{
	KS_CKPT_BLOCKED,			/* keyedstate_internal.state or .cold is locked (a VACUUM FULL): later */
	KS_CKPT_SKIPPED,			/* a backend holds the definition locked: later */
	KS_CKPT_MORE,				/* a slice was written, more is to come */
	KS_CKPT_WRITTEN				/* everything, and the offset: commit, then Done */
} KsCkptProgress;

/*
 * Write a slice of the captured checkpoint inside the step's transaction
 * (about KS_CKPT_SLICE_MS of serializing and at most one chunk), or all of
 * it; the last slice also updates the offset and the committed checkpoint
 * id, so the capture becomes the checkpoint when that step commits.
 */
extern KsCkptProgress KsCheckpointContinue(KsAggRun *run, bool all);

/* Write a captured key before it changes (copy-on-write; arg is the run). */
extern void KsCheckpointSaveKey(void *arg, KsKeyEntry *entry);

/*
 * A step stopped consuming rows for the checkpoint being written from
 * `from` until now (its capture, its slice, its commit): the longest such
 * pause of a checkpoint is reported with it (keyedstate.status).
 */
extern void KsCheckpointPaused(KsAggRun *run, TimestampTz from);

/*
 * After the last slice's transaction committed: the keys are clean.
 * paused_from is when that step stopped consuming for it (0: not timed).
 */
extern void KsCheckpointDone(KsAggRun *run, TimestampTz paused_from);

/* --- ckptcommit.c, for checkpoint.c --- */

/* Lock the run's catalog row for a checkpoint without waiting; false: not now. */
extern bool KsLockDefinitionRow(KsAggRun *run);

/* The pid of the session holding the row KsLockDefinitionRow skipped, or 0. */
extern int	KsDefinitionRowHolder(KsAggRun *run);

/*
 * Lock keyedstate_internal.state and keyedstate_internal.cold with their indexes for writing,
 * without waiting: false if another transaction holds one (a VACUUM FULL),
 * and the checkpoint skips its slice instead of stalling the step.
 */
extern bool KsLockStateTables(void);

/* The same for keyedstate_internal.aggregation and .part, the catalog. */
extern bool KsLockCatalogNow(void);

/*
 * The pid of a session holding one of those four tables against those
 * locks, or 0 (also a prepared transaction).
 */
extern int	KsStateTablesHolder(void);

/*
 * Commit a checkpoint's offset and id to the run's row (the aggregation's
 * or its part's), with the rows of keyedstate_internal.cold it leaves and a windowed
 * aggregation's watermark at that offset (DT_NOBEGIN: none).
 */
extern void KsCheckpointCommit(KsAggRun *run, int64 offset, TimestampTz watermark,
							   int64 checkpoint_id, bool full, bool final, bool rebuilding,
							   int64 cold_rows, int32 chain_chunks);

/*
 * At a clean stop, whether nothing changed since the committed checkpoint
 * (no key to write, no row consumed since, nothing cold to delete or
 * evict), and then marking the stop clean without a checkpoint: one would
 * only add a chunk without keys to the chain (every checkpoint has a last
 * chunk, above), a row at every stop for good.
 */
extern bool KsCheckpointUnchanged(KsAggRun *run);
extern void KsCheckpointMarkCleanStop(KsAggRun *run);
extern bool KsCheckpointSetCleanStop(KsAggRun *run, bool clean);

/*
 * A step that failed keeps on the aggregation's catalog row the highest
 * offset its worker saw the sequence hand out (sequence_seen, as a
 * checkpoint does), so that a resume, a rebuild or a restart finds a
 * sequence set back again, also before its first checkpoint (review
 * newuser 69, F1: they loaded it with nothing seen, consumed nothing, and
 * sync returned without the table's rows).
 */
extern void KsCheckpointKeepSequenceSeen(KsAggRun *run, int64 seen);

/*
 * Rows of checkpoints older than the latest full one are obsolete once it
 * has committed: readers skip them (recovery.c), and the steps after it
 * delete them, KS_OBSOLETE_PER_STEP rows a step, so that a full
 * checkpoint's commit never stops consumption to delete all it replaced;
 * in every step, checkpointing or not, and all but a chain's worth at once
 * when they outnumber two chains: while checkpoints followed each other (a
 * backlog, a rebuild) the rows they replaced went only once the steps
 * stopped checkpointing, and the table grew until the disk was full (fault
 * review 42, F2).
 */
#define KS_OBSOLETE_PER_STEP	4
extern void KsCheckpointDeleteObsolete(KsAggRun *run, long *timeout);

/*
 * Delete a rescale's retired parts (and checkpoints) no part seeds from
 * any more; run by a part in a step after its full checkpoint committed.
 */
extern void KsCheckpointForgetRetired(KsAggRun *run);

/*
 * Run one of the checkpoint's own statements on keyedstate_internal.state
 * (a kept plan with its arguments, or sql with nargs arguments): the
 * executor's guard (hookpartitions.c) refuses any other INSERT, UPDATE or
 * DELETE of its rows.  Returns SPI's result.
 */
extern int	KsStateExecute(SPIPlanPtr plan, const char *sql, int nargs, Oid *argtypes, Datum *args);

/* Whether the statement running is one KsStateExecute runs. */
extern bool KsStateOwnWrite(void);

/* Recovery: delete the chunks of checkpoints after the committed one. */
extern void KsCheckpointDiscardUncommitted(int32 aggid, int64 committed);

/* Delete every checkpoint of an aggregation and its parts (it is dropped or rebuilt). */
extern void KsCheckpointForget(int32 aggid);

#endif							/* KS_CHECKPOINT_H */
