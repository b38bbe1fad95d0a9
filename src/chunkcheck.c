/*-------------------------------------------------------------------------
 *
 * chunkcheck.c
 *	  Checking a checkpoint chunk before recovery parses it: its header
 *	  against its row (format, CRC, flags, what a last chunk binds, key
 *	  count and groups), and the chunks of each checkpoint against each
 *	  other.  Part of recovery (recovery.h); the format is checkpoint.h's.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "port/pg_crc32c.h"

#include "checkpoint.h"
#include "recovery.h"
#include "serialize.h"

/*
 * Check a chunk against its row before anything of it is parsed: its
 * length, format and CRC first, then its flags, the offset and chain a
 * last chunk carries (format 5), and the row's chunk number, key count and
 * key groups.  Returns the flags, and sets *header to the header's length,
 * *offset and *chain to what a last chunk binds (*chain -1: nothing).
 */
uint8
KsCheckChunkHeader(KsAggRun *run, const KsChunkRow *row, const char *data, uint32 len,
				   uint32 *header, int64 *offset, int32 *chain)
{
	pg_crc32c	stored;
	pg_crc32c	computed;
	uint8		flags;
	uint8		format = len > 0 ? (uint8) data[0] : 0;

	if (format != KS_CHUNK_FORMAT && format != KS_STATE_FORMAT && format != KS_STATE_FORMAT_V3)
		KsCheckpointCorrupted(run->name,
							  "The chunk has format %d, but this version of keyedstate reads formats %d to %d.",
							  format, KS_STATE_FORMAT_V3, KS_CHUNK_FORMAT);
	*header = format == KS_CHUNK_FORMAT ? KS_CHUNK_HEADER_V5 : KS_CHUNK_HEADER_V4;
	if (len < *header)
		KsCheckpointCorrupted(run->name, "The chunk has %u bytes, fewer than its header.", len);
	memcpy(&stored, data + KS_CHUNK_CRC_AT, sizeof(stored));
	computed = KsChunkCrc(row, data, len);
	if (!EQ_CRC32C(stored, computed))
		KsCheckpointCorrupted(run->name,
							  "The chunk's CRC-32C is %08X, but its row and data give %08X.",
							  stored, computed);
	flags = (uint8) data[KS_CHUNK_FLAGS_AT];
	if ((flags & ~KS_CHUNK_LAST) != 0)
		KsCheckpointCorrupted(run->name, "The chunk has unknown flags %02X.", flags);
	if (row->chunk < 0)
		KsCheckpointCorrupted(run->name, "The chunk has the negative number %d.", row->chunk);
	*offset = 0;
	*chain = -1;
	if (format == KS_CHUNK_FORMAT)
	{
		memcpy(offset, data + KS_CHUNK_OFFSET_AT, sizeof(int64));
		memcpy(chain, data + KS_CHUNK_CHAIN_AT, sizeof(int32));
		if (!(flags & KS_CHUNK_LAST) && (*offset != 0 || *chain != 0))
			KsCheckpointCorrupted(run->name, "Chunk %d is not its checkpoint's last, but carries an offset or a chain.",
								  row->chunk);
		if ((flags & KS_CHUNK_LAST) && *chain <= row->chunk)
			KsCheckpointCorrupted(run->name, "Chunk %d, its checkpoint's last, says its chain has %d chunks.",
								  row->chunk, *chain);
		if (!(flags & KS_CHUNK_LAST))
			*chain = -1;
	}
	/* only a last chunk may hold no key: it marks the end of its checkpoint, or a full one's start */
	if (row->nkeys == 0 && (flags & KS_CHUNK_LAST) && len == *header &&
		(format == KS_CHUNK_FORMAT || row->chunk > 0 || row->full))
		return flags;
	if (row->nkeys < 1 ||
		(uint32) row->nkeys > (len - *header) /
		(KS_MIN_KEY_BYTES - ((uint8) data[0] == KS_STATE_FORMAT_V3 ? 1 + sizeof(int64) : 0)))
		KsCheckpointCorrupted(run->name, "The chunk's row says it holds %d keys, which its %u bytes cannot.",
							  row->nkeys, len);
	if (row->first_group < 0 || row->first_group > row->last_group ||
		row->last_group >= run->def->max_parallelism)
		KsCheckpointCorrupted(run->name,
							  "The chunk's row gives key groups %d to %d, not a range within 0 to %d.",
							  row->first_group, row->last_group, run->def->max_parallelism - 1);
	return flags;
}

/*
 * Check that the chunks of each checkpoint come whole, newest first: the
 * first one met of a checkpoint is marked as its last, the others follow
 * with numbers one lower down to 0, all equally full or not.
 */
void
KsCheckChunkSequence(KsAggRun *run, KsChunkSequence *seq, const KsChunkRow *row, uint8 flags,
					 int64 offset, int32 chain)
{
	if (seq->checkpoint_id == -1)
	{
		/* the newest chunk: what it binds is checked against the catalog (KsRecoverChain) */
		seq->newest_id = row->checkpoint_id;
		seq->newest_binds = (chain >= 0);
		seq->newest_offset = offset;
		seq->newest_chain = chain;
	}
	if (row->checkpoint_id != seq->checkpoint_id)
	{
		if (seq->next_chunk >= 0)
			KsCheckpointCorrupted(run->name, "Checkpoint " INT64_FORMAT " lacks its chunk %d.",
								  seq->checkpoint_id, seq->next_chunk);
		if (!(flags & KS_CHUNK_LAST))
			KsCheckpointCorrupted(run->name,
								  "Checkpoint " INT64_FORMAT " lacks its chunks after chunk %d.",
								  row->checkpoint_id, row->chunk);
		seq->checkpoint_id = row->checkpoint_id;
		seq->full = row->full;
	}
	else
	{
		if (row->chunk != seq->next_chunk)
			KsCheckpointCorrupted(run->name, "Checkpoint " INT64_FORMAT " lacks its chunk %d.",
								  seq->checkpoint_id, seq->next_chunk);
		if (flags & KS_CHUNK_LAST)
			KsCheckpointCorrupted(run->name,
								  "Chunk %d of checkpoint " INT64_FORMAT " is marked as its last, but chunk %d follows it.",
								  row->chunk, row->checkpoint_id, row->chunk + 1);
		if (row->full != seq->full)
			KsCheckpointCorrupted(run->name,
								  "The chunks of checkpoint " INT64_FORMAT " disagree on whether it is full.",
								  row->checkpoint_id);
	}
	seq->next_chunk = row->chunk - 1;
}
