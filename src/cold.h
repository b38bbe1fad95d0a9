/*-------------------------------------------------------------------------
 *
 * cold.h
 *	  The cold tier: keys evicted from memory, one row per key in
 *	  keyedstate_internal.cold, found by their hash.
 *
 * Under a memory budget (evict.h) the keys a checkpoint chooses as victims
 * leave the worker's memory and the shared store; their state stays in
 * keyedstate_internal.cold, primary key (aggregation_id, hash, place, id), so
 * that one key is found by an index lookup on its hash, and many in one
 * index scan.  A reader looks keys up by hash, the type's public hash of
 * the key (the one the store and key groups use); the worker, bringing a
 * key back, by hash and place, its key's KsKeyPlace: a hash of the key
 * seeded with the aggregation's secret key_seed (keyedstate_internal.
 * aggregation, which only superusers read).  Keys a writer chooses to share
 * one public hash, bigints (i << 32) | (i # c) for hashint8, have places
 * apart: found by hash alone, every pass of rows over N such cold keys read
 * N rows per chunk, N squared in all, 45 s for 150,000 keys where other keys
 * took 3.6 s (security review 26, F6).  A type without a seeded hash
 * function (keytable.h) has its public hash for a place, as before.  What
 * a place is computed with besides the seed can change under a stored row:
 * an extension's update gives its type a seeded hash function (citext
 * 1.6), a new version of keyedstate hashes a type's bytes (timestamps);
 * then a reload looked for the key at its new place, missed its row, and
 * the key started afresh beside it, counted twice (re-review today 31,
 * F1).  So each checkpoint records the scheme of its run's places
 * (KsKeyPlaceScheme) in the catalog's place_scheme, and a load under
 * another one, or none, computes every cold row's place again before
 * reading any row, and records its scheme with the rows it moved, in one
 * transaction (KsColdPlaceCheck): once, a read of the run's cold rows.
 *
 * How a key goes cold, and comes back, exactly:
 *	1. A checkpoint capture (checkpoint.h) marks victims.  The checkpoint
 *	   writes each victim's captured state as a cold row (copy-on-write,
 *	   like every key it writes) and, in its chunk, an "evicted" marker
 *	   instead of the key's state.  The cold rows are inserted in the same
 *	   transaction as the chunk holding their markers, after the published
 *	   entries learn their cold row's id (KsStoreSetColdIds): readers skip a
 *	   cold row whose key is still published with that id.
 *	2. Once the checkpoint commits, the victims that did not change since
 *	   the capture are evicted: states freed, and the next publish removes
 *	   their entries from the store.  A victim that changed stays in memory;
 *	   its cold row is stale and goes with the next checkpoint that writes
 *	   the key (below).
 *	3. Recovery meets the marker before any older version of the key
 *	   (newest first) and does not load it: the cold row is its state.
 *	   Rows of a checkpoint that never committed are deleted with its chunks.
 *	4. A row for a key not in memory whose hash the cold filter knows is
 *	   looked up before it is applied: every such key of a chunk of input
 *	   rows in one index scan (KsColdReload).  The key comes back with its
 *	   cold row's id, flagged KS_KEY_COLD_CURRENT while unchanged; a full
 *	   checkpoint writes such a key as a marker again.  Once it changes, the
 *	   next checkpoint writes it whole and deletes its cold row, in the
 *	   transaction that commits that checkpoint; or, while the budget evicts
 *	   keys (a target is set, evict.h), the first time it changes after it
 *	   came back, that checkpoint rewrites its cold row in place with its
 *	   state (same id, KS_KEY_RECOLDED) and writes a marker: the key stays
 *	   in memory, current in its cold row, and leaves with no write when
 *	   the clock picks it.  The rewrites are made in the transaction that
 *	   commits the checkpoint, not with a chunk: an older checkpoint's row
 *	   rewritten with an earlier chunk outlived a crash before that commit,
 *	   and recovery replayed the rows since onto it (re-review today 29,
 *	   F1: 16,660 keys counted twice).  Keys that come back under a budget mostly go
 *	   out again (a uniform spread of keys over a small budget): this is
 *	   one heap update, a HOT one where the page has room (the table's
 *	   fillfactor leaves some), instead of a deletion, then an insertion
 *	   into the heap and the primary key at the eviction (and the dead
 *	   rows and index entries that bloated the table under churn).  A key
 *	   that changes again is written whole, its row deleted, as before.
 * So every key has, as of each committed checkpoint, either its newest
 * chunk version or its one cold row, never both in force; and readers see
 * each key once: published, or (not published with that cold row's id)
 * from keyedstate_internal.cold.
 *
 * A cold row's id is (checkpoint id << KS_COLD_ID_SHIFT) + a number within
 * the checkpoint, unique within the aggregation.
 *
 * Layout of a cold row's data (untrusted on reading, like a chunk):
 *	4 bytes			CRC-32C of the row's aggregation_id (int4), hash (int4),
 *					place (int4) and id (int8), in native byte order, then
 *					of every byte after this field
 *	1 byte			KS_STATE_FORMAT
 *	8 bytes			when a row last changed the key (TimestampTz)
 *	4 + n bytes		length and serialized key values (KsKeySerialize)
 *	4 + n bytes		length and serialized states (KsAggSerializeStates)
 *	4 + n bytes		length and the key's view row (a MinimalTuple), or 0
 *					when HAVING hides the key
 *
 * cold.c is the worker's side (the only writer of keyedstate_internal.cold, called
 * by the checkpoint and recovery, with coldseed.c for a rescale's copy and
 * coldsweep.c for the TTL's sweep);
 * coldread.c reads cold rows for the live view's scans and lookups.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_COLD_H
#define KS_COLD_H

#include "run.h"
#include "store.h"

#include "port/pg_crc32c.h"
#include "utils/relcache.h"

/* A cold row's id: its checkpoint's id, then a number within it. */
#define KS_COLD_ID_SHIFT		24
#define KS_COLD_MAX_PER_CHECKPOINT	(((uint64) 1 << KS_COLD_ID_SHIFT) - 1)
#define KsColdId(checkpoint_id, n)	(((uint64) (checkpoint_id) << KS_COLD_ID_SHIFT) | (uint64) (n))

/* Where the parts of a cold row's data are. */
#define KS_COLD_CRC_AT			0
#define KS_COLD_FORMAT_AT		4
#define KS_COLD_HEADER			(4 + 1 + 8)

/* Cold rows waiting to be inserted with a chunk. */
typedef struct KsColdBatch
{
	MemoryContext cxt;			/* everything of the batch, gone once inserted */
	int			n;
	int			max;
	uint32	   *hashes;
	uint32	   *places;
	uint64	   *ids;
	bytea	  **data;
	dsa_pointer *entries;		/* the keys' published entries */
	ItemPointerData *rewrite;	/* a row to rewrite where it was read from (see
								 * above), or NULL: one to insert; an invalid
								 * place is looked up */
	bool	   *rewrites;		/* which rows are rewritten */
} KsColdBatch;

/* The CRC-32C of a cold row (see the layout above). */
extern pg_crc32c KsColdCrc(int32 aggid, uint32 hash, uint32 place, uint64 id,
						   const char *data, Size len);

/*
 * Append a key's cold row, as its state is now, to a batch (zeroed to
 * start; its memory is a context under `parent`, serialization garbage
 * goes to `tmp`): a new row `id`, or, with `rewrite`, its row cold_id
 * rewritten at that place (see above).  Serialize functions are user code:
 * as the owner.
 */
extern void KsColdAdd(KsAggRun *run, KsColdBatch *batch, KsKeyEntry *e, uint64 id,
					  const ItemPointerData *rewrite, MemoryContext parent, MemoryContext tmp);

/*
 * Insert (or rewrite) a batch's rows (as the worker, inside the step's
 * transaction), after telling the store their ids; the batch is freed and
 * zeroed.
 */
extern void KsColdInsert(KsAggRun *run, KsColdBatch *batch);

/*
 * Rewrite n rows of aggregation (or part) aggid in place, each found at
 * tids[i] (checked: a VACUUM FULL moves rows) or else through the primary
 * key; a row found nowhere (deleted by damage) is inserted.  In the heap
 * and, for an update that is not HOT, in every ready index.
 */
extern void KsColdRewriteRows(int32 aggid, int n, const uint32 *hashes, const uint32 *places,
							  const uint64 *ids, bytea *const *data, const ItemPointerData *tids);

/*
 * The place of the row (aggid, hash, place, id) this snapshot sees: at *tid if it
 * is there (below nblocks, the heap's length), else through the primary
 * key (*tid set); false if none.
 */
extern bool KsColdLocate(Relation heap, BlockNumber nblocks, Oid indexoid, Snapshot snapshot,
						 int32 aggid, uint32 hash, uint32 place, uint64 id, ItemPointer tid);

/*
 * Insert n rows of aggregation (or part) `id` as they are (a rescale's
 * copies too), in the order `order` gives (NULL: as they come): straight
 * into the heap and every ready index, never through the executor, which
 * refuses to write keyedstate_internal.cold (hookpartitions.c).
 */
extern void KsColdInsertRows(int32 id, int n, const uint32 *hashes, const uint32 *places,
							 const uint64 *ids, bytea *const *data, const int *order);

/* A cold row to delete: its primary key, and where it was read from. */
typedef struct KsColdRowId
{
	uint32		hash;
	uint32		place;
	uint64		id;
	ItemPointerData tid;		/* (KsKeyEntry.cold_tid) checked; invalid: looked up */
} KsColdRowId;

/*
 * Delete cold rows (stale ones: the keys are written again; expired ones),
 * each once however often listed; returns how many went.
 */
extern int64 KsColdDelete(int32 aggid, const KsColdRowId *rows, int n);

/*
 * The TTL over cold keys.  A key that outlived the TTL while cold is
 * removed by the sweep, or comes back expired when a row arrives for it
 * first (KsColdReload: the row starts it afresh, and the checkpoint that
 * writes it deletes its cold row).  The sweep reads the aggregation's cold
 * rows in index order, KS_COLD_SWEEP_ROWS per step, from each start of
 * the TTL's sweep of the keys in memory (expire.h); the rows it finds
 * expired, whose key is not in memory, are deleted by the next checkpoint
 * in the transaction that commits it, so the cold row count committed with
 * it stays exact.  Until then a reader still sees them, as it sees a key
 * in memory the sweep has not reached yet.  A tumbling window's cold pane
 * expires in event time, with its window (window.h; a row for an expired
 * window is late and never loads a pane back).  The sweep is coldsweep.c.
 */
#define KS_COLD_SWEEP_ROWS		10000

/* Expired cold rows listed at most: the sweep waits for a checkpoint past that. */
#define KS_COLD_EXPIRED_MAX		65536

/*
 * Read the next rows of the sweep of cold rows, as the owner of a step;
 * false when it has nothing to read now.  A pass does not start while the
 * rows the last one listed wait for their checkpoint (it would list them
 * twice), nor goes on while KS_COLD_EXPIRED_MAX rows wait; that checkpoint
 * is due within a sweep interval of the TTL, whatever the
 * checkpoint_interval (KsExpireIntervalMs), and at once past the most.
 */
extern bool KsColdSweep(KsAggRun *run, TimestampTz now);

/*
 * Delete, in the transaction committing a checkpoint, the cold rows the
 * sweep found expired (not those loaded back since); returns how many went.
 */
extern int64 KsColdDeleteExpired(KsAggRun *run);

/* Delete the cold rows of checkpoints after `committed` (recovery). */
extern void KsColdDiscardAfter(int32 aggid, int64 committed);

/*
 * Delete the cold rows of one aggregation or part id whose row id is at
 * least `from` (0: all); returns how many went.
 */
extern int64 KsColdDeleteOf(int32 id, uint64 from);

/* Delete every cold row of an aggregation and of its parts (dropped or rebuilt). */
extern void KsColdForget(int32 aggid);

/*
 * The cold filter: a bit per range of hash values (the hash scaled to the
 * filter's size, KsColdFilterBit), set for every cold key's hash, so that a
 * key never seen before costs no lookup unless its bit collides.  It is
 * built with 15 bits per cold key and grows once evictions bring it down to
 * 10 (false positives from 6.5% to 9.5%): 1.2 to 1.9 bytes of the memory
 * budget per cold key, two filters while a larger one is built.  It is
 * not stored: after a load, and when it grows too full, a new one is built
 * from the hashes of keyedstate_internal.cold a slice per step (KsColdFilterStep),
 * so that neither waits for a read of every cold row; until the first is
 * built, every key not in memory is looked up.
 */

/* Start building a filter for `keys` cold keys (after a load, or to grow it). */
extern void KsColdFilterStart(KsAggRun *run, int64 keys);

/* Build a slice of it (inside a step, as the worker); swapped in when whole. */
extern void KsColdFilterStep(KsAggRun *run);

/* Note an evicted key's hash in the filter (and in the one being built). */
extern void KsColdFilterAdd(KsAggRun *run, uint32 hash);

/* The bit of a hash in a filter of `bits` bits (its range, in proportion). */
static inline uint64
KsColdFilterBit(uint64 bits, uint32 hash)
{
	return ((uint64) hash * bits) >> 32;
}

/*
 * After a checkpoint: drop the filter when no cold key is left, and build a
 * smaller one when the keys left need an eighth of it (expired or loaded
 * back: a 1MB budget's aggregation kept the filter of its 300,000 former
 * cold keys, re-review today 13, F5).
 */
extern void KsColdFilterFit(KsAggRun *run);

/* Whether some cold key may have this hash. */
static inline bool
KsColdMaybe(KsAggRun *run, uint32 hash)
{
	uint64		bit;

	if (run->cold_filter == NULL)
		return run->cold_building != NULL;
	bit = KsColdFilterBit(run->cold_filter_bits, hash);
	return (run->cold_filter[bit >> 6] & ((uint64) 1 << (bit & 63))) != 0;
}

/*
 * Load back every cold key with one of these hashes and places (its key's
 * KsKeyPlace, so the keys asked for) that is not in memory (or is evicted
 * but still in the table), a descent of the primary key for each pair;
 * returns how many came back.
 * Their states and view rows are checked as recovery checks a chunk's.
 * Other keys of the same hashes stay cold: keys chosen to share one hash
 * came back all at once for each, over the budget, evicted again at once
 * (security review 24, F4: 360,000 evictions for 20,000 keys).
 */
extern int64 KsColdReload(KsAggRun *run, const uint32 *hashes, const uint32 *places, int n);

/* The parts of a cold row's data (pointers into it). */
typedef struct KsColdParts
{
	TimestampTz touched;
	const char *key;
	uint32		keylen;
	const char *states;
	uint32		statelen;
	const char *row;			/* NULL when HAVING hides the key */
	uint32		rowlen;
} KsColdParts;

/*
 * Check a cold row's data (length, CRC over the row, format, every length)
 * and split it into its parts; damage raises KsCheckpointCorrupted for
 * aggregation `aggname`.  The view row itself is not checked here.
 */
extern void KsColdParse(const char *aggname, int32 aggid, uint32 hash, uint32 place, uint64 id,
						const char *data, uint32 len, KsColdParts *parts);

/* --- inside the cold tier's own files (cold.c, coldsweep.c, coldseed.c) --- */

/* The OIDs of keyedstate_internal.cold and of its primary key. */
extern void KsColdRelids(Oid *heap, Oid *index);

/*
 * Open keyedstate_internal.cold to write rows straight into the heap and
 * every index ready for inserts (as the executor does, which refuses to
 * write it: hookpartitions.c); KsColdCloseForWrite ends it.
 */
extern Relation KsColdOpenForWrite(struct EState **estate, struct ResultRelInfo **rri);
extern void KsColdCloseForWrite(Relation heap, struct EState *estate, struct ResultRelInfo *rri);

/*
 * Update a cold row at *tid in place, in its newest version (one a
 * superuser's UPDATE of its data changed meanwhile: review exactness 24,
 * F2); false if it is gone.  The caller inserts the index entries of an
 * update that is not HOT.
 */
extern bool KsColdUpdateRow(Relation heap, ItemPointer tid, HeapTuple tuple);

/*
 * At a load with cold rows: when the catalog's place_scheme of the run is
 * not KsKeyPlaceScheme of its key table (or not known), compute the place
 * of every cold row again and move the rows whose place changed (see
 * above); the checkpoints that follow record the scheme (coldplace.c).
 */
extern void KsColdPlaceCheck(KsAggRun *run);

/*
 * Lock them for reading without waiting: false if another session holds
 * one (a VACUUM FULL, a CLUSTER); what was taken is kept to the end of the
 * transaction.  The worker never waits for them (review robustness3, F3).
 */
extern bool KsColdLockNow(Oid *heap, Oid *index);

/*
 * The hash, place, id and data of a row of keyedstate_internal.cold read by
 * the worker (the data detoasted in the current context); a NULL column is
 * damage.
 */
extern bytea *KsColdRowColumns(KsAggRun *run, TupleTableSlot *slot, uint32 *hash, uint32 *place,
							   uint64 *id);

/* The place of a cold row for a key in memory (KsKeyPlace of its values). */
#define KsColdPlaceOf(run, e) \
	KsKeyPlace((run)->kt, (e)->keys, (e)->keynulls, (e)->hash)

/*
 * A rescale's new part that has not yet copied the cold rows of its key
 * groups from the parts it is seeded from copies them now, in the step's
 * transaction (its load, as the worker, the key table made), and returns
 * true: it loads at a later step (coldseed.c); true too when a backend
 * holds its row (a rebuild or drop).  False when there is nothing to copy,
 * or it was copied before.
 */
extern bool KsColdSeedCopy(KsAggRun *run);

/* --- readers (coldread.c) --- */

/* A scan of an aggregation's cold rows (opaque). */
typedef struct KsColdScan KsColdScan;

/*
 * Start reading the view rows of an aggregation's cold keys: every one, or
 * (nhashes >= 0) those with one of hashes[], skipping the rows of keys the
 * store read in *res still publishes.  Read with a snapshot taken now,
 * after that read of the store (see the protocol above).
 */
extern KsColdScan *KsColdScanBegin(const KsReadResult *res, const uint32 *hashes, int nhashes,
								   TupleDesc viewdesc, const char *aggname);

/*
 * Read `then` after `first` (either may be NULL): an aggregation running
 * in parallel has cold rows per part, each read with its part's snapshot.
 */
extern KsColdScan *KsColdScanChain(KsColdScan *first, KsColdScan *then);

/* The next cold view row of a chain (in its scan's memory), or NULL at the end. */
extern MinimalTuple KsColdScanNext(KsColdScan *scan);

/* End a chain of scans, releasing their relations and snapshots. */
extern void KsColdScanEnd(KsColdScan *scan);

#endif							/* KS_COLD_H */
