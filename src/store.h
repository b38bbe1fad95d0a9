/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Published per-key rows of an aggregation, in the shared DSA.
 *
 * The worker owns the authoritative transition states in its own memory
 * (keytable.h).  After each step it finalizes the keys the step changed
 * and publishes their view rows here, so any backend can read the live
 * state without running aggregate code.  The store is a chained hash table
 * in DSA keyed by the key hash:
 *
 *	KsStoreHeader -> bucket array of dsa_pointer -> KsStoreEntry chains
 *	KsStoreEntry.tuple -> a MinimalTuple with the view's row
 *
 * An entry whose tuple is InvalidDsaPointer is a key that HAVING hides.
 *
 * The bucket array grows by rehashing incrementally: a larger array is
 * installed (the old one kept), and each publish moves old buckets into it,
 * a slice at a time with the slot lock held exclusive, at least eight per new
 * entry, so a rehash ends before the entries grow by an eighth.  A hash whose old
 * bucket is not moved yet is still in the old array (KsStoreBucket).  A
 * rehash of millions of entries held the lock, and the step, for seconds.
 * An entry is removed (unlinked with the lock held exclusive, then freed)
 * only when its key expires (expire.h).  Chains are linked both ways, so
 * that unlinking never walks one: keys whose hashes were chosen equal (key
 * hashes are public, and the seed spreads only distinct hashes) share one
 * chain, and their expiry walked it once per key, the slot lock held, a
 * quadratic time no reader or pause() could wait out (review security 25,
 * F1: 100,000 such keys held it for 17 s).
 *
 * The publish protocol (KsStorePublish, the only writer of a published
 * store).  The caller first builds every new row in its own memory (user
 * code: final functions, HAVING, the projection).  Then, with no user
 * code left to fail:
 *	1. without the slot lock, the new tuples and entries are allocated in
 *	   the DSA; if it is full, everything allocated is freed again and the
 *	   call returns false, so a failed publish leaks nothing;
 *	2. holding the slot lock exclusive, the new entries are linked, the
 *	   tuples swapped in (or copied over the key's current row when its
 *	   allocation fits the new one, KsStoreTupleFits, and no reader can be
 *	   copying it), and the consumed
 *	   offset advanced: readers see the whole step or none of it;
 *	3. the replaced tuples are freed once no reader can still copy them.
 *
 * Readers (KsStoreReadRows) hold the slot lock shared only while they
 * collect pointers to the rows they want, after registering in the slot's
 * current read epoch; they copy the rows after releasing the lock, so a
 * full scan of millions of keys does not block publishing.  The writer
 * never overwrites or frees a row a registered reader may still copy: a
 * replaced row waits in the writer's garbage list, tagged with the epoch
 * it was replaced in, until the readers of that epoch and the one before
 * are gone (epochs advance whenever the older counter has drained).  A
 * whole store (after recovery, or of a failed or dropped aggregation) is
 * retired the same way.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_STORE_H
#define KS_STORE_H

#include "shmem.h"

#include "access/htup.h"
#include "common/hashfn.h"
#include "utils/snapshot.h"

typedef struct KsStoreHeader
{
	uint32		nbuckets;		/* a power of two */
	uint32		nold;			/* buckets of the array being rehashed, 0: none */
	uint64		nentries;		/* entries linked, visible or not */
	dsa_pointer buckets;		/* array of nbuckets dsa_pointers */
	dsa_pointer old_buckets;	/* the smaller array rehashed into it, or invalid */
	uint32		moved;			/* old buckets below this one are rehashed */
	uint32		seed;			/* secret: scrambles bucket numbers (KsStoreSpread) */
} KsStoreHeader;

typedef struct KsStoreEntry
{
	dsa_pointer next;			/* next entry in the bucket chain */
	dsa_pointer prev;			/* the entry before it, Invalid: the chain's first */
	dsa_pointer tuple;			/* MinimalTuple, or InvalidDsaPointer */
	uint32		hash;			/* key hash, as KsHashKeyValues computes it */
	uint32		tuple_bytes;	/* DSA bytes of tuple, so freeing needs no read */
	uint64		cold_id;		/* a row of keyedstate_internal.cold readers skip (cold.h), 0: none */
} KsStoreEntry;

/* Rows replaced while readers were copying, freed once they are gone. */
typedef struct KsStoreWriter
{
	dsa_pointer *garbage;
	uint32	   *garbage_epoch;
	int64		ngarbage;
	int64		maxgarbage;
	MemoryContext cxt;
} KsStoreWriter;

/*
 * One key to publish.  entry/tuple/tuple_bytes point at the worker's
 * record of the key's published entry and row, and are updated.
 */
typedef struct KsPublishItem
{
	dsa_pointer *entry;			/* in/out: its store entry (Invalid: new key) */
	dsa_pointer *tuple;			/* in/out: its published row */
	uint32	   *tuple_bytes;	/* in/out: that row's DSA bytes */
	uint32		hash;
	MinimalTuple row;			/* the new row, or NULL when HAVING hides it */
	bool		remove;			/* the key is gone: remove its entry (row NULL) */
	uint64		cold_id;		/* the key's row in keyedstate_internal.cold, if any (cold.h) */

	/* private to KsStorePublish */
	dsa_pointer new_entry;
	dsa_pointer new_tuple;
	uint32		new_bytes;
} KsPublishItem;

/* The slot's progress figures a publish sets along with the offset. */
typedef struct KsPublishProgress
{
	int64		offset;			/* the new consumed offset */
	int64		keys;
	int64		memory_bytes;
	int64		cold_keys;		/* keys only in keyedstate_internal.cold (cold.h) */
	TimestampTz watermark;		/* windows: the run's (window.h), or DT_NOBEGIN */
	int64		window_size_us; /* windows: their size, else 0 */
	TimestampTz expired_upto;	/* windows: KsWindowExpiredUpTo, or DT_NOBEGIN */
} KsPublishProgress;

/* --- writer side (the worker) --- */

/* Create an empty store; returns its header, or fails with an error. */
extern dsa_pointer KsStoreCreate(dsa_area *dsa, const char *aggname);

/* A writer's garbage list, in cxt. */
extern void KsStoreWriterInit(KsStoreWriter *w, MemoryContext cxt);

/*
 * Publish a step's rows with the new offset (the protocol above); returns
 * false, having published and leaked nothing, when the DSA is full.
 */
extern bool KsStorePublish(KsStoreWriter *w, KsAggSlot *slot, KsPublishItem *items,
						   int64 n, const KsPublishProgress *progress);

/*
 * Free what the writer still holds back, waiting for readers to finish;
 * before its memory goes away (the run is unloaded).
 */
extern void KsStoreWriterRelease(KsStoreWriter *w, KsAggSlot *slot);

/*
 * Make a store built privately (recovery) the slot's published one, with
 * its offset and figures, and retire the store it replaces.
 */
extern void KsStoreInstall(KsAggSlot *slot, dsa_pointer store, int64 consumed,
						   int64 keys, int64 cold_keys, int64 visible, int64 bytes);

/*
 * Give up a store no reader sees any more: freed now, or, in a database
 * worker (KsStoreDeferFrees), a slice at a time by KsStoreFreeRetired.
 */
extern void KsStoreDiscard(dsa_area *dsa, dsa_pointer header);

/* This process frees the stores it discards between its steps, and at exit. */
extern void KsStoreDeferFrees(void);

/* Free discarded stores for up to `ms` milliseconds (-1: all); true if some are left. */
extern bool KsStoreFreeRetired(long ms);

/* A worker keeps the memory its steps free (glibc's settings, at its start). */
extern void KsKeepFreedMemory(void);

/* ... and gives it back to the kernel when about to wait, at most every 10 s. */
extern void KsTrimFreedMemory(void);

/*
 * The DSA is full: if stores given up are still being freed (by this
 * process, which frees its own now, or by other workers), wait a little for
 * them and return true, to try again; false if none are, or none were freed
 * for a long while (the area is full for good).
 */
extern bool KsStoreAwaitRetired(void);

/* Retire a slot's published store: detach it, free it once no reader is left. */
extern void KsStoreRetire(KsAggSlot *slot);

/*
 * The offset of a slot's published rows, PG_INT64_MIN if it has none: a
 * run unloaded while they stay (a pause stopped its step) is still shown
 * by them.
 */
extern int64 KsStorePublishedOffset(KsAggSlot *slot);

/* Free a slot, retiring its published rows once no reader needs them. */
extern void KsStoreReleaseSlot(KsAggSlot *slot);

/*
 * Free this database's slots that no aggregation needs any more: those of
 * aggregations not in `keep` (ids of existing aggregations) whose creating
 * transaction ended.
 */
extern void KsReleaseOrphanSlots(Oid dboid, int nkeep, const int32 *keep);

/* Free every aggregation slot of a database that no worker serves. */
extern void KsReleaseDatabaseSlots(Oid dboid);

/* Free a store no reader can see (a private one, or one retired). */
extern void KsStoreDestroy(dsa_area *dsa, dsa_pointer header);

/* Raise the error for an aggregation that needs more shared memory than allowed. */
extern void KsStoreExhausted(const char *aggname) pg_attribute_noreturn();

/* Bytes of DSA a tuple occupies. */
/*
 * Published tuples are allocated in classes of KS_STORE_TUPLE_QUANTUM bytes
 * (the DSA's own classes for rows of 64 to 128 bytes), so a row whose
 * length changes by a few bytes (a numeric average gaining a digit) is
 * copied over its current allocation instead of needing a new one: the
 * allocations were a tenth of a drain over 10M keys.
 */
#define KS_STORE_TUPLE_QUANTUM 16

/* Bytes a tuple's allocation takes in the DSA (for status's memory figures too). */
extern Size KsStoreTupleBytes(MinimalTuple tuple);

/*
 * Whether a new row of a key may be copied over its current allocation of
 * `capacity` bytes: it fits, and needs the same size class or the one
 * below (so an allocation never stays much larger than its row).
 */
extern bool KsStoreTupleFits(uint32 capacity, MinimalTuple row);

/* The address of a published tuple, for the writer (which needs no lock). */
extern MinimalTuple KsStoreTupleAddress(dsa_area *dsa, dsa_pointer tuple);

/* --- building a private store (recovery: no reader sees it yet) --- */

/* A new, unlinked entry for a key hash; InvalidDsaPointer if full. */
extern dsa_pointer KsStoreAllocEntry(dsa_area *dsa, uint32 hash);

/* Grow the bucket array for `nentries`; false if the DSA is full. */
extern bool KsStoreReservePrivate(dsa_area *dsa, dsa_pointer header, uint64 nentries);

/* Copy a tuple given as bytes (a checkpointed row) into the DSA; Invalid if full. */
extern dsa_pointer KsStoreAllocTupleBytes(dsa_area *dsa, const char *data, uint32 len);

/* Prefetch the bucket a key hash links into. */
extern void KsStorePrefetchBucket(dsa_area *dsa, dsa_pointer header, uint32 hash);

/* Link a new entry. */
extern void KsStoreLinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry);

/* Unlink an entry from its bucket chain (the slot lock held exclusive). */
extern void KsStoreUnlinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry);

/* Set an entry's tuple; returns the old one and its size in *oldbytes. */
extern dsa_pointer KsStoreSwapTuple(dsa_area *dsa, dsa_pointer entry, dsa_pointer tuple,
									uint32 bytes, uint32 *oldbytes);

/*
 * Set the cold rows of published entries (cold.h), holding the slot lock
 * exclusive: before the rows commit, so that readers skip them while the
 * keys are still published.  Each entry must still be its key's (of that
 * hash): an entry freed meanwhile would be another key's memory.
 */
extern void KsStoreSetColdIds(KsAggSlot *slot, const dsa_pointer *entries,
							  const uint32 *hashes, const uint64 *ids, int n);

/* --- reader side (any backend) --- */

/* What a reader found besides the rows. */
typedef struct KsReadResult
{
	bool		found;			/* the slot is (still) this aggregation's */
	KsRunState	state;
	Oid			live_oid;
	Oid			view_oid;
	uint32		rowtype;
	char		error[KS_ERROR_LEN];
	int64		failed_offset;
	int64		cold_keys;		/* keys only in keyedstate_internal.cold: read them there too */
	Snapshot	cold_snapshot;	/* registered, to read them with (the caller's to unregister) */
	int32		aggid;			/* the aggregation's id */
	/* windows: their size and how far the TTL reached, as of the rows (KsReadRowExpired) */
	int64		window_size_us;
	TimestampTz expired_upto;
	/* published entries with a cold row (hash, cold_id): rows of cold to skip */
	uint32	   *cold_hashes;
	uint64	   *cold_ids;
	int64		ncold;
} KsReadResult;

/*
 * Copy the published rows of a slot into cxt: every visible row, or (with
 * nhashes >= 0) those whose key hash is one of hashes[].  Only when the
 * slot is still the one found and its state allows reading (not starting,
 * not failed); *res says what was found either way.  The caller checks
 * the slot's live table and row type from *res before using the rows;
 * `check` is called with the slot lock held before anything is copied and
 * may veto the read by returning false.  When the aggregation has cold
 * keys, *res also lists the published entries' cold rows (in cxt), which a
 * read of keyedstate_internal.cold must skip, and gives the snapshot to read it
 * with, taken under the slot lock together with the rows (cold.h).
 */
typedef bool (*KsReadCheck) (const KsReadResult *res, void *arg);
extern void KsStoreReadRows(const KsSlotRef *ref, const uint32 *hashes, int nhashes,
							KsReadCheck check, void *checkarg, MemoryContext cxt,
							MinimalTuple **rows, int64 *nrows, KsReadResult *res);

/*
 * Whether a view row a read found (published, or cold) is a window past the
 * TTL as of the publish the read saw: its first column, window_start, ends
 * by expired_upto (res->expired_upto of its read).  The worker removes such a window at its next
 * sweep, bounded per step; until then readers skip it, so that a read
 * right after sync() shows what the event-time TTL keeps (exactness review
 * 16, finding 4: cold windows were visible for 0.3 s).
 */
extern bool KsReadRowExpired(int64 window_size_us, TimestampTz expired_upto, MinimalTuple row);

/* Unregister the cold snapshots of n results not handed to a cold scan. */
extern void KsReadResultsRelease(KsReadResult *results, int n);

/*
 * --- inside the store's own files (store.c, storewrite.c, storeread.c) ---
 */

/* The bucket array of a store. */
static inline dsa_pointer *
KsStoreBuckets(dsa_area *dsa, KsStoreHeader *hdr)
{
	return (dsa_pointer *) dsa_get_address(dsa, hdr->buckets);
}

/* The old bucket array of a rehash in progress (valid only while nold > 0). */
static inline dsa_pointer *
KsStoreOldBuckets(dsa_area *dsa, KsStoreHeader *hdr)
{
	return (dsa_pointer *) dsa_get_address(dsa, hdr->old_buckets);
}

/*
 * A key hash scrambled with the store's secret random seed, whose low bits
 * number its bucket: key hashes are public, and keys chosen for hashes
 * equal in their low bits would otherwise make one long chain (see
 * keytable.h: KsKeyHome).
 */
static inline uint32
KsStoreSpread(const KsStoreHeader *hdr, uint32 hash)
{
	return murmurhash32(hash ^ hdr->seed);
}

/* The head of the chain a key hash is in: the old array until its bucket moved. */
static inline dsa_pointer *
KsStoreBucket(dsa_area *dsa, KsStoreHeader *hdr, uint32 hash)
{
	uint32		spread = KsStoreSpread(hdr, hash);

	if (hdr->nold > 0 && (spread & (hdr->nold - 1)) >= hdr->moved)
		return &KsStoreOldBuckets(dsa, hdr)[spread & (hdr->nold - 1)];
	return &KsStoreBuckets(dsa, hdr)[spread & (hdr->nbuckets - 1)];
}

/*
 * Grow a store's buckets for `nentries` entries and move a rehash in
 * progress along (the slot lock taken for each slice, if given; without
 * one, for a store no reader sees, the rehash is done at once).
 */
extern bool KsStoreGrow(dsa_area *dsa, dsa_pointer header, LWLock *lock, uint64 nentries);

/* Copy a tuple into the DSA; InvalidDsaPointer when it is full. */
extern dsa_pointer KsStoreAllocTuple(dsa_area *dsa, MinimalTuple tuple);

/* Read epochs: readers registered, moving to the next epoch, waiting. */
extern uint32 KsReadersActive(KsAggSlot *slot);
extern void KsAdvanceEpoch(KsAggSlot *slot);
extern bool KsEpochDone(KsAggSlot *slot, uint32 g);
extern void KsWaitEpoch(KsAggSlot *slot, uint32 g);

#endif							/* KS_STORE_H */
