/*-------------------------------------------------------------------------
 *
 * keytable.h
 *	  The worker's own hash table of keys and their transition states.
 *
 * This is the authoritative keyed state (Flink's heap state backend): each
 * entry holds the key's values, one transition state per aggregate call,
 * and flags saying whether the key changed since the last publish and
 * since the last checkpoint.  It lives in the worker's memory only, so
 * transition functions can modify their states in place as they do inside
 * nodeAgg; the shared store receives finalized rows (store.h) and the
 * checkpoint relation receives serialized states (checkpoint.h).
 *
 * Keys are compared with each grouping column's equality operator and
 * hashed with the hash function of that operator's hash opfamily, which is
 * what GROUP BY itself does; NULL is a key of its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_KEYTABLE_H
#define KS_KEYTABLE_H

#include "keyedstate.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "lib/stringinfo.h"
#include "storage/itemptr.h"
#include "utils/dsa.h"
#include "utils/timestamp.h"

/* One aggregate call's transition state for one key (as nodeAgg keeps it) */
typedef struct KsTransState
{
	Datum		value;
	bool		isnull;
	bool		noTransValue;	/* strict transfn and no input seen yet */
} KsTransState;

#define KS_KEY_DIRTY_PUBLISH		0x01
#define KS_KEY_EXPIRED				0x04	/* TTL: gone, until published and checkpointed */
#define KS_KEY_FREE					0x08	/* on the free list, in no slot */
#define KS_KEY_TOMBSTONE			0x10	/* recovery: a stored tombstone or eviction */
#define KS_KEY_COLD_CURRENT			0x20	/* its cold row (cold_id) holds its current state */
#define KS_KEY_EVICT				0x40	/* a victim of the checkpoint being written (evict.h) */
#define KS_KEY_REFERENCED			0x80	/* changed since the eviction clock passed it */
#define KS_KEY_EVICTED				0x100	/* evicted: with KS_KEY_EXPIRED, leaves the store */
#define KS_KEY_MOVED				0x200	/* KsKeyTableCompact: free, keys points to the new place */
#define KS_KEY_RECOLDED				0x400	/* its cold row was rewritten in place since it came back (cold.h) */

typedef struct KsKeyEntry
{
	uint32		hash;			/* KsHashKeyValues of the key */
	uint32		shared_bytes;	/* its published tuple's size (KsStoreTupleBytes) */
	dsa_pointer shared;			/* published KsStoreEntry, or Invalid */
	dsa_pointer shared_tuple;	/* its tuple, as the worker last set it */
	uint32		ckpt_epoch;		/* the checkpoint list it is on, 0: none */
	uint32		saved_epoch;	/* the capture it was last written for */
	TimestampTz touched;		/* when a row last changed it (state TTL) */
	uint64		cold_id;		/* its row in keyedstate_internal.cold (cold.h), 0: none */
	Datum	   *keys;			/* nkeys values, in the table's context */
	bool	   *keynulls;
	StringInfo	replay;			/* inputs of replay-persisted aggregates */
	uint16		flags;			/* KS_KEY_*, all in 16 bits */
	ItemPointerData cold_tid;	/* where cold_id's row was read, if it came back from it */
	KsTransState states[FLEXIBLE_ARRAY_MEMBER];	/* nstates */
} KsKeyEntry;

/*
 * A slot of the open-addressing index: the key's place (KsKeyPlace) and the
 * number of its entry plus one (0 = empty).  Keeping the hash in the slot lets a lookup
 * skip entries of other keys without touching them, and lets the apply
 * loop prefetch exactly the entry a row will need (apply.h).
 */
typedef struct KsKeySlot
{
	uint32		hash;
	uint32		entry;
} KsKeySlot;

/*
 * Entries are all of one size and carved from blocks of a power-of-two
 * number of entries, so entry i is found by shifting and masking; they are
 * not rounded up to a power of two by a memory allocator and lie densely in
 * memory, in the order the keys first appeared.
 */
#define KS_KEY_BLOCK_SHIFT		14
#define KS_KEY_BLOCK_ENTRIES	(1 << KS_KEY_BLOCK_SHIFT)

typedef struct KsKeyTable
{
	int			nkeys;
	int			nstates;
	Oid		   *keytypes;
	Oid		   *keycolls;
	int16	   *keylens;
	bool	   *keybyvals;
	FmgrInfo   *hashfns;		/* one per key column */
	FmgrInfo   *eqfns;			/* one per key column */
	bool	   *binaryeq;		/* column compared as a canonical Datum */
	FmgrInfo   *xhashfns;		/* the others' seeded (extended) hash functions (KsKeyPlace) */
	bool		placed;			/* every column has a seeded hash: slots by KsKeyPlace */
	List	   *shapes;			/* the row types in the keys, as made (keyshape.c) */
	MemoryContext cxt;			/* entries and key values */

	Size		entrysize;
	char	  **blocks;			/* blocks of KS_KEY_BLOCK_ENTRIES entries */
	int			nblocks;
	int			maxblocks;
	Size		blocksize;		/* bytes mapped per block, when mapped */
	Size		mapped_bytes;	/* memory of blocks mapped outside cxt */

	uint32		nslots;			/* a power of two */
	uint32		seed;			/* secret: scrambles where a key probes (KsKeyHome) */
	uint64		seed64;			/* secret too: seeds KsKeyPlace */
	uint64		nentries;		/* keys in the table (expired ones included) */
	uint64		nevicted;		/* of them, evicted ones waiting to leave */
	uint64		nexpired;		/* and expired ones (not evicted) waiting to leave (KsKeySetFlags) */
	uint64		nallocated;		/* entries carved from blocks, free ones included */
	KsKeySlot  *slots;

	/* entry numbers of removed keys, reused before new ones are carved */
	uint32	   *freelist;
	uint64		nfree;
	uint64		maxfree;

	/* keys changed since the last publish / checkpoint capture */
	KsKeyEntry **publish;
	int64		npublish;
	int64		maxpublish;
	KsKeyEntry **ckpt;
	int64		nckpt;
	int64		maxckpt;

	/*
	 * Checkpoint captures (checkpoint.h).  ckpt_epoch numbers the list
	 * being collected; saving_epoch is that of the capture being written
	 * (0: none), saving_full whether it writes every key.
	 */
	uint32		ckpt_epoch;
	uint32		saving_epoch;
	bool		saving_full;
} KsKeyTable;

typedef struct KsKeyIter
{
	KsKeyTable *kt;
	uint64		next;
} KsKeyIter;

/* Entry number i (0-based) of a table. */
static inline KsKeyEntry *
KsKeyTableEntry(KsKeyTable *kt, uint64 i)
{
	return (KsKeyEntry *) (kt->blocks[i >> KS_KEY_BLOCK_SHIFT] +
						   (i & (KS_KEY_BLOCK_ENTRIES - 1)) * kt->entrysize);
}

/*
 * Create an empty table for keys of the given types, collations and
 * equality operators (hash functions come from the operators' hash
 * opfamilies; an operator without one is an error).  The table and its
 * entries live in a new context under `parent`.
 */
extern KsKeyTable *KsKeyTableCreate(int nkeys, const Oid *keytypes,
									const Oid *keycolls, const Oid *eqops,
									int nstates, MemoryContext parent);

/*
 * keyshape.c: the row types nested (to any depth) in key types, with their
 * attributes as they are now, recorded by KsKeyTableCreate; and the check,
 * before what a step consumed is published, that they still have those
 * attributes (an ERROR naming the aggregation otherwise), the net under
 * the guards that refuse changing them (keytypes.h).
 */
extern List *KsKeyShapesCapture(int nkeys, const Oid *keytypes, MemoryContext cxt);
extern void KsKeyTableCheckShapes(KsKeyTable *kt, const char *aggname);

/* The hash of a key, as KsHashKeyValues computes it. */
extern uint32 KsKeyHash(KsKeyTable *kt, const Datum *keys, const bool *nulls);

/*
 * Where a key goes in the index: a hash of its values seeded with the
 * table's secret (for a column compared as a canonical Datum, of that
 * Datum's bytes; for the others, their type's extended hash function).
 * A run's table is seeded with its aggregation's key_seed, a secret kept
 * in the catalog, since places last in cold rows (cold.h): found by hash
 * alone, keys of one hash were read back all together, quadratic (security
 * review 26, F6).
 * The key's hash (`hash`, KsHashKeyValues) is public and durable (key
 * groups, cold rows), and a writer can choose many keys with one whole
 * hash: for bigint, (i << 32) | (i # c) all hash alike, and hashint8's
 * extended form folds them alike whatever its seed.  Placed by it, they
 * shared one run of slots that every insert walked, quadratic (security
 * review 24, F4: 60,000 such keys took 15 s to consume, 200,000 outlasted
 * the step timeout and failed the aggregation for good).  A column with
 * no seeded hash function (a type without an extended one) leaves the
 * table placing keys by `hash`, as before.
 */
extern uint32 KsKeyPlace(KsKeyTable *kt, const Datum *keys, const bool *nulls, uint32 hash);

/* Seed KsKeyPlace with `seed`, before the table holds any key. */
extern void KsKeyTableSetPlaceSeed(KsKeyTable *kt, uint64 seed);

/*
 * What KsKeyPlace computes besides its seed: the key types and
 * collations, which columns hash their Datum's bytes (binary equality,
 * KsIsBinaryEq), and the hash functions of the others, as the catalogs
 * and this version have them now.  An extension's update can give a type
 * an extended hash function (citext 1.6, hstore 1.6): places computed
 * before are other places then (cold.h).
 */
#define KS_PLACE_SCHEME_VERSION	1
extern uint64 KsKeyPlaceScheme(KsKeyTable *kt);

/*
 * The most slots the index can have (its size is a uint32 power of two),
 * and so the most keys a table holds: three quarters of that.
 */
#define KS_KEYTABLE_INITIAL_SLOTS	1024
#define KS_KEYTABLE_MAX_SLOTS	((uint32) 1 << 31)
#define KS_KEYTABLE_MAX_KEYS	((uint64) KS_KEYTABLE_MAX_SLOTS / 4 * 3)

/*
 * Find the entry of a key, inserting it if absent (*found = false): the
 * key values are copied into the table's context (pass-by-value ones in
 * their canonical form, see KsCanonicalByVal) and the states are zeroed
 * for the caller to initialise.  The table grows as needed, up to
 * KS_KEYTABLE_MAX_KEYS keys (ERRCODE_PROGRAM_LIMIT_EXCEEDED beyond).
 */
extern KsKeyEntry *KsKeyTableLookup(KsKeyTable *kt, const Datum *keys,
									const bool *nulls, uint32 hash,
									bool *found);
/* The same with the key's place already computed (KsKeyPlace). */
extern KsKeyEntry *KsKeyTableLookupPlaced(KsKeyTable *kt, const Datum *keys,
										  const bool *nulls, uint32 hash, uint32 place,
										  bool *found);

/* Prefetch every cache line an entry touches. */
static inline void
KsKeyTablePrefetchLines(KsKeyTable *kt, KsKeyEntry *entry)
{
	uintptr_t	line = TYPEALIGN_DOWN(KS_CACHE_LINE, (uintptr_t) entry);
	uintptr_t	end = (uintptr_t) entry + kt->entrysize;

	for (; line < end; line += KS_CACHE_LINE)
		KS_PREFETCH((const void *) line);
}

/*
 * The index slot a key hash starts probing at: the hash scrambled with
 * the table's secret random seed.  Key hashes are public (anyone can
 * compute hashint4 or hashtext), so keys chosen for hashes equal in their
 * low bits would otherwise pile up into one run of slots that every
 * insert walks (a hash flood: quadratic, past the step timeout).
 */
static inline uint32
KsKeyHome(const KsKeyTable *kt, uint32 hash, uint32 mask)
{
	return murmurhash32(hash ^ kt->seed) & mask;
}

/* Prefetch the index slot a key's place starts probing at (see apply.h). */
static inline void
KsKeyTablePrefetchSlot(KsKeyTable *kt, uint32 place)
{
	KS_PREFETCH(&kt->slots[KsKeyHome(kt, place, kt->nslots - 1)]);
}

/*
 * Prefetch every line of the entry a key's place probably finds: the first
 * one along its probe sequence with the same place.
 */
static inline void
KsKeyTablePrefetchEntry(KsKeyTable *kt, uint32 place)
{
	uint32		mask = kt->nslots - 1;
	uint32		pos = KsKeyHome(kt, place, mask);

	while (kt->slots[pos].entry != 0 && kt->slots[pos].hash != place)
		pos = (pos + 1) & mask;
	if (kt->slots[pos].entry != 0)
		KsKeyTablePrefetchLines(kt, KsKeyTableEntry(kt, kt->slots[pos].entry - 1));
}

/*
 * Give an entry the spelling of equal key values (an expired key back with
 * a row spelling it differently: numeric scales, -0, collations).
 */
extern void KsKeyTableRespell(KsKeyTable *kt, KsKeyEntry *e, const Datum *keys, const bool *nulls);

/* Whether an index of `nslots` slots is too full for `nentries` keys (3/4). */
static inline bool
KsKeyTableTooFull(uint64 nentries, uint64 nslots)
{
	return nentries * 4 > nslots * 3;
}

/* Resize the index to `newsize` slots (keytable.c, for keycompact.c). */
extern void KsKeyTableResize(KsKeyTable *kt, uint32 newsize);

/* Grow the index, if needed, so that `nentries` keys fit without growing. */
extern void KsKeyTableReserve(KsKeyTable *kt, uint64 nentries);

/*
 * Whether a key must be written for the capture being written before it
 * changes (checkpoint.h): it is part of the capture (every key of a full
 * one, or those on its list) and not written yet.
 */
static inline bool
KsKeyPendingSave(KsKeyTable *kt, KsKeyEntry *e)
{
	return kt->saving_epoch != 0 && e->saved_epoch != kt->saving_epoch &&
		(kt->saving_full || e->ckpt_epoch == kt->saving_epoch);
}

/*
 * Take the checkpoint list collected so far (*list, *n; the caller frees
 * it with KsKeyCaptureDone) and start a new one; returns its epoch.
 */
extern uint32 KsKeyCapture(KsKeyTable *kt, KsKeyEntry ***list, int64 *n);

/*
 * A capture is written: its keys not changed since are clean, expired
 * ones that are clean now are removed, the list is freed.
 */
extern void KsKeyCaptureDone(KsKeyTable *kt, KsKeyEntry **list, int64 n, uint32 epoch);

/*
 * Whether an expired key's entry leaves the shared store at its publish,
 * and the key the table after that: not while it has a cold row that is
 * not its state (an expired key's, committed or still to be inserted by
 * the checkpoint being written), whose readers the entry makes skip it.
 */
static inline bool
KsKeyLeavesStore(KsKeyEntry *e)
{
	return (e->flags & KS_KEY_EXPIRED) != 0 &&
		((e->flags & KS_KEY_EVICTED) != 0 || e->cold_id == 0);
}

/* Flag a key as changed for both the next publish and the next checkpoint. */
extern void KsKeyMarkDirty(KsKeyTable *kt, KsKeyEntry *entry);

/* The entry of a key, or NULL if it has none (nothing is inserted). */
extern KsKeyEntry *KsKeyTableFind(KsKeyTable *kt, const Datum *keys, const bool *nulls,
								  uint32 hash);
extern KsKeyEntry *KsKeyTableFindPlaced(KsKeyTable *kt, const Datum *keys, const bool *nulls,
										uint32 place);

/* Flag a key as changed for the next publish only. */
extern void KsKeyMarkPublish(KsKeyTable *kt, KsKeyEntry *entry);

/* Flag a key as changed for the next checkpoint only. */
extern void KsKeyMarkCheckpoint(KsKeyTable *kt, KsKeyEntry *entry);

/*
 * Forget the publish (or checkpoint) dirty list, clearing the flags.  An
 * expired key that is clean then (published and checkpointed as gone) is
 * removed from the table.
 */
extern void KsKeyClearPublish(KsKeyTable *kt);
extern void KsKeyClearCheckpoint(KsKeyTable *kt);

/*
 * Remove a key: its slot is emptied (the probe sequences of the keys after
 * it closed up), its by-reference key values freed and its entry put on
 * the free list.  The caller has released its states and made sure it is
 * on no dirty list.
 */
extern void KsKeyTableRemove(KsKeyTable *kt, KsKeyEntry *entry);

/* Whether flags make an entry an expired key waiting to leave (kt->nexpired). */
#define KsKeyFlagsExpiredWaiting(flags) \
	(((flags) & (KS_KEY_EXPIRED | KS_KEY_EVICTED)) == KS_KEY_EXPIRED)

/*
 * Set an entry's flags, counting the expired keys waiting to leave.  Every
 * change of KS_KEY_EXPIRED or KS_KEY_EVICTED goes through here (and the
 * evicted ones' count through KsKeyClearEvicted and the eviction).
 */
static inline void
KsKeySetFlags(KsKeyTable *kt, KsKeyEntry *e, uint32 flags)
{
	if (KsKeyFlagsExpiredWaiting(e->flags))
		kt->nexpired--;
	if (KsKeyFlagsExpiredWaiting(flags))
		kt->nexpired++;
	e->flags = flags;
}

/*
 * The keys in memory as status reports them: an evicted key waiting for
 * its publish to leave the table is counted among the cold ones already,
 * and an expired one waiting for its tombstone's checkpoint is gone
 * (exactness review 14: status showed 20,000 keys over an empty view).
 */
static inline uint64
KsKeyTableInMemory(KsKeyTable *kt)
{
	return kt->nentries - kt->nevicted - kt->nexpired;
}

/* A key evicted and waiting to leave is back: counted in memory again. */
static inline void
KsKeyClearEvicted(KsKeyTable *kt, KsKeyEntry *e)
{
	if (e->flags & KS_KEY_EVICTED)
	{
		KsKeySetFlags(kt, e, e->flags & ~KS_KEY_EVICTED);
		kt->nevicted--;
	}
}

/*
 * Bytes of the entry blocks mapped outside the table's context that keys
 * use: their entries (free ones are reused by new keys, as freed chunks
 * are).
 */
static inline int64
KsKeyTableMappedInUse(KsKeyTable *kt)
{
	return kt->mapped_bytes == 0 ? 0 : (int64) (kt->nentries * kt->entrysize);
}

/*
 * Bytes of those blocks that entries were ever carved from, free ones
 * included: what the worker has touched.  The rest of a block, mapped but
 * never touched, takes no memory.
 */
static inline int64
KsKeyTableMappedTouched(KsKeyTable *kt)
{
	return kt->mapped_bytes == 0 ? 0 : (int64) (kt->nallocated * kt->entrysize);
}

/*
 * Whether the table has enough free entries for KsKeyTableCompact to give
 * memory back: at least a block of them, and as many as there are keys.
 */
static inline bool
KsKeyTableSparse(KsKeyTable *kt)
{
	return kt->nfree >= KS_KEY_BLOCK_ENTRIES && kt->nfree >= kt->nentries;
}

/*
 * Compact the table: move the keys of the highest entry numbers into the
 * free entries below, so that the keys fill the first entries; give the
 * blocks left empty back to the system, and shrink the index to the keys.
 * Evicted and expired keys otherwise leave their entries and index slots
 * behind for good.  The caller makes sure that no pointer to an entry is
 * held anywhere but in the checkpoint dirty list, which is remapped: no
 * capture being written, nothing waiting to be published.  Entry numbers
 * held elsewhere (cursors) start again from 0.
 */
extern void KsKeyTableCompact(KsKeyTable *kt);

/* Iterate over every entry (in use: free ones are skipped). */
extern void KsKeyIterInit(KsKeyIter *iter, KsKeyTable *kt);
extern KsKeyEntry *KsKeyIterNext(KsKeyIter *iter);

/* Append the key's values to buf (serialize.h form); the same key always
 * gives the same bytes. */
extern void KsKeySerialize(KsKeyTable *kt, KsKeyEntry *entry, StringInfo buf);

/*
 * Read key values written by KsKeySerialize into keys/nulls (palloc'd in
 * CurrentMemoryContext); the `len` bytes at `data` must hold exactly them.
 * Corruption raises KsCheckpointCorrupted for aggregation `aggname`.
 */
extern void KsKeyDeserialize(KsKeyTable *kt, const char *data, uint32 len,
							 const char *aggname, Datum *keys, bool *nulls);

/*
 * The hash of a key: starting from 0, for each column
 *	h = hash_combine(h, isnull ? 0 : DatumGetUInt32(FunctionCall1Coll(hashfn, coll, value)))
 * Shared with the live view, which hashes the constants of a point query
 * the same way to find the key without a scan.
 */
extern uint32 KsHashKeyValues(int nkeys, FmgrInfo *hashfns, const Oid *colls,
							  const Datum *keys, const bool *nulls);

/* The key group of a hash, of ngroups (an aggregation's max_parallelism). */
#define KsKeyGroup(hash, ngroups)	((int) ((hash) % (uint32) (ngroups)))

/*
 * The key group of a key of hash `hash`: KsKeyGroup of it, or, with `skip`
 * leading key columns left out (the pane of a windowed aggregation, so
 * that all the panes of a key are in one part: window.h), of the hash of
 * the other columns.
 */
static inline int
KsKeyGroupOf(KsKeyTable *kt, int ngroups, int skip, uint32 hash,
			 const Datum *keys, const bool *nulls)
{
	if (skip > 0)
		hash = KsHashKeyValues(kt->nkeys - skip, kt->hashfns + skip, kt->keycolls + skip,
							   keys + skip, nulls + skip);
	return KsKeyGroup(hash, ngroups);
}

#endif							/* KS_KEYTABLE_H */
