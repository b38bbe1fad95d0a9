/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Published per-key rows of an aggregation, in the shared DSA.
 *
 * The worker owns the authoritative transition states in its own memory
 * (keytable.h).  After each batch it finalizes the keys the batch changed
 * and publishes their view rows here, so any backend can read the live
 * state without running aggregate code.  The store is a chained hash table
 * in DSA keyed by the key hash:
 *
 *	KsStoreHeader -> bucket array of dsa_pointer -> KsStoreEntry chains
 *	KsStoreEntry.tuple -> a MinimalTuple with the view's row
 *
 * An entry whose tuple is InvalidDsaPointer is a key that HAVING hides.
 * Entries are never removed while the aggregation lives.
 *
 * Publishing a batch is done in three steps so that readers never see half
 * of it and running out of memory never leaves half of it applied:
 *	1. without the slot lock, allocate the new tuples and entries
 *	   (KsStoreAllocTuple / KsStoreAllocEntry; InvalidDsaPointer means the
 *	   DSA is full, and the caller frees what it allocated and fails);
 *	2. holding the slot lock exclusive, link the new entries, swap the
 *	   tuples (KsStoreLinkEntry / KsStoreSwapTuple), or copy a tuple over
 *	   the key's current one when it has the same size
 *	   (KsStoreOverwriteTuple), and advance the offset;
 *	3. after releasing the lock, free the replaced tuples.
 * Readers hold the slot lock shared while they copy rows out.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_STORE_H
#define KS_STORE_H

#include "shmem.h"

#include "access/htup.h"

typedef struct KsStoreHeader
{
	uint32		nbuckets;		/* a power of two */
	uint32		pad;
	uint64		nentries;		/* entries linked, visible or not */
	dsa_pointer buckets;		/* array of nbuckets dsa_pointers */
} KsStoreHeader;

typedef struct KsStoreEntry
{
	dsa_pointer next;			/* next entry in the bucket chain */
	dsa_pointer tuple;			/* MinimalTuple, or InvalidDsaPointer */
	uint32		hash;			/* key hash, as KsHashKeyValues computes it */
	uint32		tuple_bytes;	/* DSA bytes of tuple, so freeing needs no read */
} KsStoreEntry;

/* Called by a reader for each visible row; the tuple is only valid inside. */
typedef void (*KsStoreRowCallback) (MinimalTuple tuple, void *arg);

/* --- writer side (the worker) --- */

/* Create an empty store; returns its header, or fails with an error. */
extern dsa_pointer KsStoreCreate(dsa_area *dsa);

/* Free a store and everything in it (slot lock exclusive, or slot unused). */
extern void KsStoreDestroy(dsa_area *dsa, dsa_pointer header);

/* Step 1: copy a tuple into the DSA; InvalidDsaPointer if it is full. */
extern dsa_pointer KsStoreAllocTuple(dsa_area *dsa, MinimalTuple tuple);

/* Step 1: a new, unlinked entry for a key hash; InvalidDsaPointer if full. */
extern dsa_pointer KsStoreAllocEntry(dsa_area *dsa, uint32 hash);

/*
 * Step 1: make sure the bucket array suits `nentries` entries, growing it
 * if needed.  Takes the slot lock exclusive itself for the rehash.  Returns
 * false if the DSA is full.
 */
extern bool KsStoreReserve(dsa_area *dsa, KsAggSlot *slot, uint64 nentries);

/* Prefetch the bucket a key hash links into (the writer, before step 2). */
extern void KsStorePrefetchBucket(dsa_area *dsa, dsa_pointer header, uint32 hash);

/*
 * A store that no reader sees yet (recovery builds one, then publishes it
 * with KsStorePublish): grow it without a lock.
 */
extern bool KsStoreReservePrivate(dsa_area *dsa, dsa_pointer header, uint64 nentries);

/* Copy a tuple given as bytes (a checkpointed row) into the DSA; Invalid if full. */
extern dsa_pointer KsStoreAllocTupleBytes(dsa_area *dsa, const char *data, uint32 len);

/* The address of a published tuple, for the writer (which needs no lock). */
extern MinimalTuple KsStoreTupleAddress(dsa_area *dsa, dsa_pointer tuple);

/* Step 2 (slot lock exclusive): link a new entry. */
extern void KsStoreLinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry);

/*
 * Step 2 (slot lock exclusive): set an entry's tuple (of `bytes` bytes);
 * returns the old one and stores its size in *oldbytes.
 */
extern dsa_pointer KsStoreSwapTuple(dsa_area *dsa, dsa_pointer entry, dsa_pointer tuple,
									uint32 bytes, uint32 *oldbytes);

/*
 * Step 2 (slot lock exclusive): copy a tuple over a published one of the
 * same allocated size (KsStoreTupleBytes), which the writer remembers.
 * Saves allocating and freeing DSA for the common case of a key whose row
 * keeps its size.
 */
extern void KsStoreOverwriteTuple(dsa_area *dsa, dsa_pointer old, MinimalTuple tuple);

/* Raise the error for an aggregation that needs more shared memory than allowed. */
extern void KsStoreExhausted(const char *aggname) pg_attribute_noreturn();

/* Bytes of DSA a tuple or entry allocation of this size really uses. */
extern Size KsStoreTupleBytes(MinimalTuple tuple);

/* --- reader side (slot lock held shared by the caller) --- */

/* Call `cb` for every visible row. */
extern void KsStoreScan(dsa_area *dsa, dsa_pointer header, KsStoreRowCallback cb, void *arg);

/* Call `cb` for every visible row whose key hash is `hash`. */
extern void KsStoreLookup(dsa_area *dsa, dsa_pointer header, uint32 hash, KsStoreRowCallback cb, void *arg);

#endif							/* KS_STORE_H */
