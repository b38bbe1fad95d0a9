/*-------------------------------------------------------------------------
 *
 * recovery.c
 *	  Loading an aggregation's checkpointed keys and offset: KsRecover.
 *	  See checkpoint.h for the guarantees and the format of a chunk.
 *
 * Recovery reads the chunks newest first, back to the latest full
 * checkpoint (checkpoint.c explains the incremental checkpoints it reads
 * back), and loads each chunk's keys a batch at a time: the first version
 * of a key met is the checkpointed one, and its published row goes
 * straight into the store being built.
 *
 * Recovery never trusts the bytes of a chunk.  The CRC is checked before
 * anything of a chunk is parsed, and it covers the columns of the chunk's
 * row too, so a chunk that lost bytes, gained some, or sits in another
 * row's place is refused.  Independently of it, every length, count, key
 * group, flag and offset is checked before it is used, each key's group
 * against its hash, the chunks of each checkpoint against each other, and
 * each published row is checked to be a MinimalTuple of the view's row
 * type that readers can deform without reading outside it
 * (KsCheckStoredRow, serialize.c).
 * Anything wrong fails the aggregation with KsCheckpointCorrupted, so
 * damage is never a crash or a wrong answer.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"

#include "checkpoint.h"
#include "cold.h"
#include "expire.h"
#include "publish.h"
#include "window.h"
#include "recovery.h"
#include "serialize.h"
#include "store.h"

/* Keys recovered together, so that their index slots are prefetched. */
#define KS_RECOVER_BATCH		64

/* Error context: the chunk being recovered. */
static void
KsRecoverErrorContext(void *arg)
{
	const KsChunkRow *row = (const KsChunkRow *) arg;

	errcontext("recovering chunk %d of checkpoint " INT64_FORMAT " from keyedstate_internal.state",
			   row->chunk, row->checkpoint_id);
}

/*
 * Put a recovered key's checkpointed view row (checked by KsCheckStoredRow) into
 * the store being built (run->building, which no reader sees yet).  The
 * entry is linked before the tuple is allocated, so that whatever was
 * allocated is freed with the store if this fails.
 */
static void
KsRecoverRow(KsAggRun *run, dsa_area *dsa, KsKeyEntry *e, const char *row, uint32 rowlen)
{
	dsa_pointer entry;
	dsa_pointer tuple;
	uint32		oldbytes;
	uint32		bytes;

	/* the panes of sliding windows have no rows: their windows do (window.h) */
	if (KsWindowSliding(run))
		return;
	while (!DsaPointerIsValid(entry = KsStoreAllocEntry(dsa, e->hash)))
		KsPublishStoreFull(run);
	KsStoreLinkEntry(dsa, run->building, entry);
	e->shared = entry;
	run->building_bytes += sizeof(KsStoreEntry);
	if (rowlen == 0)
		return;					/* HAVING hides the key */

	while (!DsaPointerIsValid(tuple = KsStoreAllocTupleBytes(dsa, row, rowlen)))
		KsPublishStoreFull(run);
	bytes = KsStoreTupleBytes(KsStoreTupleAddress(dsa, tuple));
	(void) KsStoreSwapTuple(dsa, entry, tuple, bytes, &oldbytes);
	e->shared_tuple = tuple;
	e->shared_bytes = bytes;
	run->building_bytes += bytes;
	run->building_visible++;
}

/*
 * Load the keys of one chunk that no newer chunk already gave us, with
 * their published rows into the store being built.  The chunk is checked
 * whole (KsCheckChunkHeader) and in sequence before its keys are parsed;
 * each key's bytes are checked as they are read.  Keys are taken a batch
 * at a time: hash them all and prefetch their index slots, then insert
 * them.  keys/nulls have room for KS_RECOVER_BATCH keys.
 */
static void
KsRecoverChunk(KsAggRun *run, const KsChunkRow *crow, KsChunkSequence *seq,
			   const char *data, uint32 len, Datum *keys, bool *nulls, MemoryContext tmp)
{
	KsKeyTable *kt = run->kt;
	dsa_area   *dsa = KsGetDsa();
	KsReader	r;
	int			nk = kt->nkeys;
	const char *states[KS_RECOVER_BATCH];
	uint32		statelens[KS_RECOVER_BATCH];
	const char *rows[KS_RECOVER_BATCH];
	uint32		rowlens[KS_RECOVER_BATCH];
	uint32		hashes[KS_RECOVER_BATCH];
	uint8		keyflags[KS_RECOVER_BATCH];
	TimestampTz touched[KS_RECOVER_BATCH];
	bool		v3 = ((uint8) data[0] == KS_STATE_FORMAT_V3);
	TimestampTz now = GetCurrentTimestamp();
	int32		count = 0;
	uint8		flags;
	uint32		header;
	int64		offset;
	int32		chain;

	flags = KsCheckChunkHeader(run, crow, data, len, &header, &offset, &chain);
	KsCheckChunkSequence(run, seq, crow, flags, offset, chain);
	/* size the index once for the keys to come, not by doublings */
	KsKeyTableReserve(kt, kt->nentries + crow->nkeys);

	KsReaderInit(&r, data + header, len - header, run->name);
	while (KsReaderLeft(&r) > 0)
	{
		MemoryContext oldcxt;
		int			n = 0;
		int			i;

		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(tmp);
		while (KsReaderLeft(&r) > 0 && n < KS_RECOVER_BATCH)
		{
			uint16		group;
			uint32		klen;
			const char *k;
			int			kg;

			if (KsReaderLeft(&r) < sizeof(uint16))
				KsCheckpointCorrupted(run->name, "The chunk ends inside a key group.");
			memcpy(&group, r.pos, sizeof(uint16));
			r.pos += sizeof(uint16);
			if (group < crow->first_group || group > crow->last_group)
				KsCheckpointCorrupted(run->name,
									  "A key has key group %d, outside the chunk's groups %d to %d.",
									  group, crow->first_group, crow->last_group);
			if (++count > crow->nkeys)
				KsCheckpointCorrupted(run->name, "The chunk holds more than the %d keys its row says.",
									  crow->nkeys);
			keyflags[n] = 0;
			touched[n] = now;
			if (!v3)
			{
				keyflags[n] = KsReadUint8(&r, "the flags of a key");
				if ((keyflags[n] & ~(KS_STORED_EXPIRED | KS_STORED_EVICTED)) != 0 ||
					keyflags[n] == (KS_STORED_EXPIRED | KS_STORED_EVICTED))
					KsCheckpointCorrupted(run->name, "A key has unknown flags %02X.", keyflags[n]);
				if (KsReaderLeft(&r) < sizeof(TimestampTz))
					KsCheckpointCorrupted(run->name, "The chunk ends inside the time of a key.");
				memcpy(&touched[n], r.pos, sizeof(TimestampTz));
				r.pos += sizeof(TimestampTz);
			}
			k = KsReadBytes(&r, &klen, "a key");
			states[n] = KsReadBytes(&r, &statelens[n], "the transition states of a key");
			rows[n] = KsReadBytes(&r, &rowlens[n], "a published row");
			if ((keyflags[n] & (KS_STORED_EXPIRED | KS_STORED_EVICTED)) &&
				(statelens[n] != 0 || rowlens[n] != 0))
				KsCheckpointCorrupted(run->name, "An %s key has %u bytes of states and %u of its row.",
									  (keyflags[n] & KS_STORED_EXPIRED) ? "expired" : "evicted",
									  statelens[n], rowlens[n]);
			KsKeyDeserialize(kt, k, klen, run->name, keys + n * nk, nulls + n * nk);
			hashes[n] = KsKeyHash(kt, keys + n * nk, nulls + n * nk);
			kg = KsKeyGroupOf(kt, run->def->max_parallelism, KsRunGroupSkip(run), hashes[n],
							  keys + n * nk, nulls + n * nk);
			if (kg != group)
				KsCheckpointCorrupted(run->name,
									  "A key stored in key group %d hashes to key group %d.",
									  group, kg);
			if (rowlens[n] > 0)
				KsCheckStoredRow(run->name, run->info.viewdesc, rows[n], rowlens[n]);
			/* a part seeded from another's checkpoints keeps its own groups */
			if (group < run->def->first_group || group > run->def->last_group)
				continue;
			n++;
		}
		MemoryContextSwitchTo(oldcxt);

		while (!KsStoreReservePrivate(dsa, run->building, kt->nentries + n))
			KsPublishStoreFull(run);
		for (i = 0; i < n; i++)
		{
			KsKeyTablePrefetchSlot(kt, KsKeyPlace(kt, keys + i * nk, nulls + i * nk, hashes[i]));
			KsStorePrefetchBucket(dsa, run->building, hashes[i]);
		}
		for (i = 0; i < n; i++)
		{
			KsKeyEntry *e;
			bool		found;

			e = KsKeyTableLookup(kt, keys + i * nk, nulls + i * nk, hashes[i], &found);
			if (found)
				continue;
			/* newest first: the first version met is the checkpointed one */
			e->touched = touched[i];
			if (keyflags[i] & KS_STORED_EVICTED)
			{
				/* in keyedstate_internal.cold (cold.h): hides older versions, then goes */
				KsKeySetFlags(kt, e, e->flags | KS_KEY_EXPIRED | KS_KEY_TOMBSTONE);
				run->recovered_expired++;
			}
			else if (keyflags[i] & KS_STORED_EXPIRED)
			{
				/* a tombstone: hides older versions, then goes (KsRecoverSettleExpired) */
				KsKeySetFlags(kt, e, e->flags | KS_KEY_EXPIRED | KS_KEY_TOMBSTONE);
				run->recovered_expired++;
			}
			else if (KsExpiredAt(run, e->touched, now) ||
					 (run->def->window_size_us > 0 && !nulls[i * nk] && run->def->ttl_floor != DT_NOBEGIN &&
					  KsWindowEndsBy(DatumGetTimestampTz(keys[i * nk]), run->def->window_size_us,
									 run->def->ttl_floor)))
			{
				/*
				 * its TTL ran out while no worker ran, or (a window) a TTL
				 * since lengthened had expired it: a tombstone to write
				 */
				KsKeySetFlags(kt, e, e->flags | KS_KEY_EXPIRED);
				run->recovered_expired++;
				run->keys_expired++;
			}
			else
			{
				if (run->rt->hasReplay)
					KsRunOwnerCodeBegin(run);
				KsAggDeserializeStates(run->rt, e->states, &e->replay, states[i], statelens[i],
									   run->name);
				KsRunOwnerCodeEnd();
				KsRecoverRow(run, dsa, e, rows[i], rowlens[i]);
			}
		}
		MemoryContextReset(tmp);
	}
	if (count != crow->nkeys)
		KsCheckpointCorrupted(run->name, "The chunk holds %d keys, but its row says %d.",
							  count, crow->nkeys);
}

/*
 * Whether an error raised by a function reading checkpointed values (a hash,
 * equality, deserialization or transition function) says the values are
 * malformed: a data exception, a malformed message or an internal error.
 */
static bool
KsIsDamageError(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		sqlerrcode == ERRCODE_PROTOCOL_VIOLATION ||
		sqlerrcode == ERRCODE_INTERNAL_ERROR;
}

/*
 * Recover one chunk (KsRecoverChunk) under an error context naming it.  An
 * error of a function that found a checkpointed value malformed
 * (KsIsDamageError) is the corruption it reveals, and is reported as such
 * with the function's message as the detail; other errors (out of memory,
 * a cancel, our own corruption errors) pass through unchanged.
 */
static void
KsRecoverChunkGuarded(KsAggRun *run, const KsChunkRow *crow, KsChunkSequence *seq,
					  const char *data, uint32 len, Datum *keys, bool *nulls,
					  MemoryContext tmp)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback errcb;

	errcb.callback = KsRecoverErrorContext;
	errcb.arg = (void *) crow;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	PG_TRY();
	{
		KsRecoverChunk(run, crow, seq, data, len, keys, nulls, tmp);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (!KsIsDamageError(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		KsCheckpointCorrupted(run->name, "Restoring a key failed: %s.", edata->message);
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
}


/*
 * Load the keys of one chain of checkpoints (the run's own, or with `own`
 * false one it is seeded from, of which it keeps the keys of its own key
 * groups): the rows of keyedstate_internal.state under chain_id newest first, up to
 * the committed checkpoint, back to the latest full one.
 */
void
KsRecoverChain(KsAggRun *run, int32 chain_id, int64 committed, int64 offset, int32 chunks,
			   bool own)
{
	KsKeyTable *kt = run->kt;
	Portal		portal;
	MemoryContext tmp;
	MemoryContext rowcxt;
	MemoryContext oldcxt;
	Datum	   *keys;
	bool	   *nulls;
	int			ret;
	bool		isnull;
	int64		full_id = -1;
	int64		last_id = 0;
	int64		full_bytes = 0;
	int64		delta_bytes = 0;
	int32		nread = 0;		/* chunk rows of the chain */
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	bool		done = false;
	KsChunkSequence seq;

	/*
	 * Size the key index and the new store once for the keys to come (an
	 * upper bound: deltas repeat keys), instead of growing them by
	 * doublings, each a rehash of everything loaded so far.  The key counts
	 * are not trusted yet: no chunk holds more keys than its bytes allow.
	 */
	/* (read-only queries run in the step's snapshot: the discarded chunks are filtered too) */
	args[0] = Int32GetDatum(chain_id);
	args[1] = Int64GetDatum(committed);
	ret = SPI_execute_with_args("SELECT pg_catalog.sum(nkeys), pg_catalog.sum(pg_catalog.octet_length(data)) "
								"FROM keyedstate_internal.state "
								"WHERE aggregation_id = $1 AND checkpoint_id <= $2 AND checkpoint_id >= "
								"(SELECT pg_catalog.max(checkpoint_id) FROM keyedstate_internal.state "
								" WHERE aggregation_id = $1 AND checkpoint_id <= $2 AND is_full)",
								2, argtypes, args, NULL, true, 1);
	if (own && ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		bytesnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		b = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &bytesnull);

		if (!isnull && !bytesnull)
		{
			int64		expected = DatumGetInt64(d);
			int64		fit = DatumGetInt64(b) / (int64) KS_MIN_KEY_BYTES;

			expected = Max(Min(expected, fit), 0);
			KsKeyTableReserve(kt, expected);
			while (!KsStoreReservePrivate(KsGetDsa(), run->building, expected))
				KsPublishStoreFull(run);
		}
	}

	keys = MemoryContextAlloc(run->loadcxt, sizeof(Datum) * Max(kt->nkeys, 1) * KS_RECOVER_BATCH);
	nulls = MemoryContextAlloc(run->loadcxt, sizeof(bool) * Max(kt->nkeys, 1) * KS_RECOVER_BATCH);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "keyedstate recovery",
								ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate recovery chunk",
								   ALLOCSET_DEFAULT_SIZES);
	seq.checkpoint_id = -1;
	seq.full = false;
	seq.next_chunk = -1;
	seq.newest_binds = false;

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT checkpoint_id, chunk, is_full, first_key_group, last_key_group, "
									   "nkeys, data FROM keyedstate_internal.state "
									   "WHERE aggregation_id = $1 AND checkpoint_id <= $2 "
									   "ORDER BY checkpoint_id DESC, chunk DESC",
									   2, argtypes, args, NULL, true, 0);
	while (!done)
	{
		uint64		i;

		/* chunks are megabytes each: fetch a few at a time */
		SPI_cursor_fetch(portal, true, 4);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			KsChunkRow	crow;
			bytea	   *data;

			CHECK_FOR_INTERRUPTS();
			crow.aggregation_id = chain_id;
			crow.checkpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			crow.chunk = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
			crow.full = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
			crow.first_group = DatumGetInt16(SPI_getbinval(tup, desc, 4, &isnull));
			crow.last_group = DatumGetInt16(SPI_getbinval(tup, desc, 5, &isnull));
			crow.nkeys = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));

			/* rows older than the latest full checkpoint are obsolete */
			if (full_id >= 0 && crow.checkpoint_id < full_id)
			{
				done = true;
				break;
			}
			if (crow.full)
				full_id = crow.checkpoint_id;
			last_id = Max(last_id, crow.checkpoint_id);
			nread++;

			oldcxt = MemoryContextSwitchTo(rowcxt);
			data = DatumGetByteaPP(SPI_getbinval(tup, desc, 7, &isnull));
			MemoryContextSwitchTo(oldcxt);
			/* (as the writer counts them, checkpoint.h) */
			if (crow.full)
				full_bytes += VARSIZE_ANY_EXHDR(data) + KS_CHUNK_ROW_BYTES;
			else
				delta_bytes += VARSIZE_ANY_EXHDR(data) + KS_CHUNK_ROW_BYTES;

			/*
			 * Deserialize and replayed functions (and casts they call) are
			 * user code: run as the owner, and only they are timed (below),
			 * not reading the chunk (the README says recovery is not).
			 */
			KsBecomeOwnerAs(run, false);
			KsRecoverChunkGuarded(run, &crow, &seq, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data),
								  keys, nulls, tmp);
			KsBecomeWorker();
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
		/* the memory it takes as it loads, for status and a crash (crashguard.h) */
		KsSlotNoteMemory(run->slot, KsRunMemoryBytes(run));
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
	MemoryContextDelete(tmp);

	if (seq.next_chunk >= 0)
		KsCheckpointCorrupted(run->name, "Checkpoint " INT64_FORMAT " lacks its chunk %d.",
							  seq.checkpoint_id, seq.next_chunk);
	if (last_id > 0 && full_id < 0)
		KsCheckpointCorrupted(run->name, "No full checkpoint was found.");
	/* whole checkpoints gone (deleted rows) would leave no gap in the chunks read */
	if (chunks >= 0 && nread != chunks)
		KsCheckpointCorrupted(run->name,
							  "Checkpoint " INT64_FORMAT " and the deltas before it back to the latest full one were written in %d chunks; %d are left.",
							  committed, chunks, nread);
	/* the newest chunk (format 5) binds the committed checkpoint's offset and chain */
	if (chunks >= 0 && seq.newest_binds)
	{
		if (seq.newest_id != committed)
			KsCheckpointCorrupted(run->name,
								  "The committed checkpoint is " INT64_FORMAT ", but the newest chunk is of checkpoint " INT64_FORMAT ".",
								  committed, seq.newest_id);
		if (seq.newest_offset != offset)
			KsCheckpointCorrupted(run->name,
								  "Checkpoint " INT64_FORMAT " was taken at offset " INT64_FORMAT ", but its catalog row says " INT64_FORMAT ".",
								  committed, seq.newest_offset, offset);
		if (seq.newest_chain != nread)
			KsCheckpointCorrupted(run->name,
								  "Checkpoint " INT64_FORMAT " ends a chain of %d chunks, but %d are left.",
								  committed, seq.newest_chain, nread);
	}
	if (!own)
		return;
	run->ckpt_chain_chunks = nread;
	/* the next checkpoint's id follows the committed one, even one without chunks */
	run->ckpt_last_id = Max(last_id, committed);
	run->ckpt_have_full = (full_id >= 0);
	/* rows a crash left behind its deletes (checkpoint.h) */
	run->ckpt_obsolete_below = Max(full_id, 0);
	run->ckpt_obsolete_rows = 0;	/* (how many is not known: 4 a step, checkpoint.h) */
	run->ckpt_full_bytes = full_bytes;
	run->ckpt_delta_bytes = delta_bytes;
}

/*
 * Load the checkpointed offset and every checkpointed key: the rows of
 * keyedstate_internal.state newest first, back to the latest full checkpoint; for
 * a part a rescale added, those of the parts (or the aggregation) it is
 * seeded from (seed.c).
 */
void
KsRecover(KsAggRun *run)
{
	KsKeyTable *kt = run->kt;
	int64		committed;
	int32		chunks;
	ArrayType  *seeds = NULL;

	KsBecomeWorker();
	/* seeded or not as the catalog says now: a definition may be older */
	KsReadProgress(run, run->def->id, run->def->is_part, &run->checkpointed, &committed,
				   &run->cold_rows, NULL, NULL, &seeds, &run->recovered_wm, &chunks);
	run->consumed = run->checkpointed;
	/* a checkpoint that was being written when the worker stopped never counted */
	KsCheckpointDiscardUncommitted(run->def->id, committed);

	/*
	 * After a clean stop nothing past the checkpoint was consumed; this run
	 * may consume more, so the mark goes (never waiting for the row: if a
	 * backend holds it, count as after a crash).
	 */
	run->after_clean_stop = KsCheckpointSetCleanStop(run, false);
	run->ckpt_last_id = 0;
	run->ckpt_chain_chunks = 0;
	run->ckpt_have_full = false;
	run->ckpt_full_bytes = 0;
	run->ckpt_delta_bytes = 0;

	if (seeds != NULL)
		KsRecoverSeeds(run, seeds, committed);
	else
		KsRecoverChain(run, run->def->id, committed, run->checkpointed, chunks, true);
	/* retired parts a crash kept from going go at the next step (ckptcommit.c) */
	run->retired_gc = run->def->is_part && seeds == NULL;

	/* recovered keys are already in the checkpoint, and their rows in run->building */
	KsKeyClearCheckpoint(kt);
	if (run->recovered_expired > 0)
		KsRecoverSettleExpired(run);
	/*
	 * Keys the memory budget evicted are in keyedstate_internal.cold: every one of
	 * its rows, as no key in memory has one after a recovery.  Their filter
	 * is built by the steps that follow.
	 */
	run->cold_keys = run->cold_rows;
	if (run->cold_keys > 0)
	{
		/* at their places under this run's scheme before any is looked for */
		KsColdPlaceCheck(run);
		KsColdFilterStart(run, run->cold_keys);
	}
}
