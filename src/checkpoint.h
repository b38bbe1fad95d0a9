/*-------------------------------------------------------------------------
 *
 * checkpoint.h
 *	  Checkpoints of an aggregation's keyed state, and their byte format.
 *
 * A checkpoint writes, in one transaction, every key changed since the
 * last checkpoint (serialized keys and states, in chunks appended to
 * keyedstate.state, in the format below) and the consumed offset
 * (keyedstate.aggregation).  The state and the offset therefore only
 * ever change together.  Recovery (recovery.h) loads every key of the
 * aggregation and sets the consumed offset to the checkpointed one; the
 * worker then re-reads the rows after it, so a crash never loses or
 * double-counts a row.
 *
 * checkpoint.c writes the chunks, recovery.c reads and checks them; this
 * header is where their format is defined.
 *
 * Layout of a chunk's data (format KS_STATE_FORMAT):
 *	1 byte			KS_STATE_FORMAT
 *	4 bytes			CRC-32C of the chunk's row (KsChunkCrc) and of every byte
 *					after this field
 *	1 byte			flags: KS_CHUNK_LAST on the last chunk of its checkpoint
 *	then per key, in key-group order:
 *	  2 bytes		key group (KsKeyGroup of the key's hash)
 *	  1 byte		flags: KS_STORED_EXPIRED for a key its TTL removed
 *	  8 bytes		when a row last changed the key (TimestampTz), for TTL
 *	  4 + n bytes	length and serialized key values (KsKeySerialize)
 *	  4 + n bytes	length and serialized states (KsAggSerializeStates);
 *					0 for an expired key
 *	  4 + n bytes	length and the key's published view row (a MinimalTuple),
 *					or 0 when HAVING hides the key (and for an expired key)
 *
 * An expired key is a tombstone: recovery meets it before any older
 * version of the key (newest first) and forgets the key.  A full
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
#define KS_CHUNK_HEADER			6
#define KS_CHUNK_LAST			0x01

/* The fewest bytes a key takes: its group, flags, time and three lengths. */
#define KS_MIN_KEY_BYTES		(sizeof(uint16) + 1 + sizeof(int64) + 3 * sizeof(uint32))

/* Flags of a stored key. */
#define KS_STORED_EXPIRED		0x01

/* The format before TTL (no flags, no time per key), still read. */
#define KS_STATE_FORMAT_V3		3

/* The columns of a chunk's keyedstate.state row. */
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
 * Write the changed keys and the consumed offset (inside a transaction),
 * `final` at a clean stop; false if it was skipped because a backend
 * holds the definition locked.
 */
extern bool KsCheckpoint(KsAggRun *run, bool final);

/* After the checkpoint's transaction committed: forget the dirty keys. */
extern void KsCheckpointDone(KsAggRun *run);

/* Delete every checkpoint of an aggregation (it is dropped or rebuilt). */
extern void KsCheckpointForget(int32 aggid);

#endif							/* KS_CHECKPOINT_H */
