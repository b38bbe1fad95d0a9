/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Published per-key rows in the shared DSA: a chained hash table keyed
 *	  by key hash.  See store.h for the three-step publish protocol.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"

#include "settings.h"
#include "store.h"

#define KS_STORE_INITIAL_BUCKETS	1024

/* The bucket array of a store. */
static inline dsa_pointer *
KsStoreBuckets(dsa_area *dsa, KsStoreHeader *hdr)
{
	return (dsa_pointer *) dsa_get_address(dsa, hdr->buckets);
}

/* Create an empty store and return its header. */
dsa_pointer
KsStoreCreate(dsa_area *dsa)
{
	dsa_pointer hp;
	dsa_pointer bp;
	KsStoreHeader *hdr;

	hp = dsa_allocate_extended(dsa, sizeof(KsStoreHeader), DSA_ALLOC_NO_OOM | DSA_ALLOC_ZERO);
	bp = dsa_allocate_extended(dsa, sizeof(dsa_pointer) * KS_STORE_INITIAL_BUCKETS,
							   DSA_ALLOC_NO_OOM | DSA_ALLOC_ZERO);
	if (!DsaPointerIsValid(hp) || !DsaPointerIsValid(bp))
	{
		if (DsaPointerIsValid(hp))
			dsa_free(dsa, hp);
		if (DsaPointerIsValid(bp))
			dsa_free(dsa, bp);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("keyedstate shared memory is exhausted"),
				 errhint("Increase keyedstate.max_shared_memory and restart the server.")));
	}
	hdr = dsa_get_address(dsa, hp);
	hdr->nbuckets = KS_STORE_INITIAL_BUCKETS;
	hdr->nentries = 0;
	hdr->buckets = bp;
	return hp;
}

/* Free a store with all its entries and tuples. */
void
KsStoreDestroy(dsa_area *dsa, dsa_pointer header)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
	uint32		i;

	for (i = 0; i < hdr->nbuckets; i++)
	{
		dsa_pointer ep = buckets[i];

		while (DsaPointerIsValid(ep))
		{
			KsStoreEntry *e = dsa_get_address(dsa, ep);
			dsa_pointer next = e->next;

			if (DsaPointerIsValid(e->tuple))
				dsa_free(dsa, e->tuple);
			dsa_free(dsa, ep);
			ep = next;
		}
	}
	dsa_free(dsa, hdr->buckets);
	dsa_free(dsa, header);
}

/* Copy a tuple into the DSA; InvalidDsaPointer when the area is full. */
dsa_pointer
KsStoreAllocTuple(dsa_area *dsa, MinimalTuple tuple)
{
	dsa_pointer tp;

	tp = dsa_allocate_extended(dsa, tuple->t_len, DSA_ALLOC_NO_OOM);
	if (DsaPointerIsValid(tp))
		memcpy(dsa_get_address(dsa, tp), tuple, tuple->t_len);
	return tp;
}

/* A new, unlinked entry; InvalidDsaPointer when the area is full. */
dsa_pointer
KsStoreAllocEntry(dsa_area *dsa, uint32 hash)
{
	dsa_pointer ep;
	KsStoreEntry *e;

	ep = dsa_allocate_extended(dsa, sizeof(KsStoreEntry), DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(ep))
		return ep;
	e = dsa_get_address(dsa, ep);
	e->next = InvalidDsaPointer;
	e->tuple = InvalidDsaPointer;
	e->hash = hash;
	e->tuple_bytes = 0;
	return ep;
}

/*
 * Grow a store's bucket array so that `nentries` entries keep chains short.
 * The new array is allocated without the lock; only the rehash, which
 * readers must not see half done, holds the slot lock exclusive.  A store
 * no reader sees yet (lock NULL) needs none.
 */
static bool
KsStoreGrow(dsa_area *dsa, dsa_pointer header, LWLock *lock, uint64 nentries)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	uint32		newsize = hdr->nbuckets;
	dsa_pointer newbp;
	dsa_pointer *oldb;
	dsa_pointer *newb;
	dsa_pointer oldbp;
	uint32		i;

	while ((uint64) newsize < nentries && newsize < (UINT32_MAX / 2))
		newsize *= 2;
	if (newsize == hdr->nbuckets)
		return true;

	newbp = dsa_allocate_extended(dsa, sizeof(dsa_pointer) * (Size) newsize,
								  DSA_ALLOC_NO_OOM | DSA_ALLOC_ZERO | DSA_ALLOC_HUGE);
	if (!DsaPointerIsValid(newbp))
		return false;
	newb = dsa_get_address(dsa, newbp);

	if (lock != NULL)
		LWLockAcquire(lock, LW_EXCLUSIVE);
	oldbp = hdr->buckets;
	oldb = dsa_get_address(dsa, oldbp);
	for (i = 0; i < hdr->nbuckets; i++)
	{
		dsa_pointer ep = oldb[i];

		while (DsaPointerIsValid(ep))
		{
			KsStoreEntry *e = dsa_get_address(dsa, ep);
			dsa_pointer next = e->next;
			uint32		b = e->hash & (newsize - 1);

			e->next = newb[b];
			newb[b] = ep;
			ep = next;
		}
	}
	hdr->buckets = newbp;
	hdr->nbuckets = newsize;
	if (lock != NULL)
		LWLockRelease(lock);

	dsa_free(dsa, oldbp);
	return true;
}

/* Grow the slot's published store for `nentries` entries (see store.h). */
bool
KsStoreReserve(dsa_area *dsa, KsAggSlot *slot, uint64 nentries)
{
	return KsStoreGrow(dsa, slot->store, &slot->lock, nentries);
}

/* Grow a store that no reader sees yet (see store.h). */
bool
KsStoreReservePrivate(dsa_area *dsa, dsa_pointer header, uint64 nentries)
{
	return KsStoreGrow(dsa, header, NULL, nentries);
}

/* Copy a tuple given as bytes into the DSA; InvalidDsaPointer when full. */
dsa_pointer
KsStoreAllocTupleBytes(dsa_area *dsa, const char *data, uint32 len)
{
	dsa_pointer tp;

	tp = dsa_allocate_extended(dsa, len, DSA_ALLOC_NO_OOM);
	if (DsaPointerIsValid(tp))
		memcpy(dsa_get_address(dsa, tp), data, len);
	return tp;
}

/* The published tuple of an entry, for the writer only. */
MinimalTuple
KsStoreTupleAddress(dsa_area *dsa, dsa_pointer tuple)
{
	return (MinimalTuple) dsa_get_address(dsa, tuple);
}

/* Prefetch the bucket of a key hash (see store.h). */
void
KsStorePrefetchBucket(dsa_area *dsa, dsa_pointer header, uint32 hash)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);

	KS_PREFETCH(&KsStoreBuckets(dsa, hdr)[hash & (hdr->nbuckets - 1)]);
}

/* Link a new entry into its bucket (slot lock held exclusive). */
void
KsStoreLinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
	KsStoreEntry *e = dsa_get_address(dsa, entry);
	uint32		b = e->hash & (hdr->nbuckets - 1);

	e->next = buckets[b];
	buckets[b] = entry;
	hdr->nentries++;
}

/* Set an entry's tuple and return the one it replaces (slot lock exclusive). */
dsa_pointer
KsStoreSwapTuple(dsa_area *dsa, dsa_pointer entry, dsa_pointer tuple,
				 uint32 bytes, uint32 *oldbytes)
{
	KsStoreEntry *e = dsa_get_address(dsa, entry);
	dsa_pointer old = e->tuple;

	*oldbytes = e->tuple_bytes;
	e->tuple = tuple;
	e->tuple_bytes = DsaPointerIsValid(tuple) ? bytes : 0;
	return old;
}

/* Copy a tuple over a published one of the same size (slot lock exclusive). */
void
KsStoreOverwriteTuple(dsa_area *dsa, dsa_pointer old, MinimalTuple tuple)
{
	memcpy(dsa_get_address(dsa, old), tuple, tuple->t_len);
}

/* The error for a store that cannot grow (see store.h). */
void
KsStoreExhausted(const char *aggname)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("keyedstate shared memory is exhausted"),
			 errdetail("Aggregation %s needs more than keyedstate.max_shared_memory (%d kB) allows.",
					   aggname, ks_max_shared_memory),
			 errhint("Increase keyedstate.max_shared_memory and restart the server, then call keyedstate.resume().")));
}

/* Bytes a tuple occupies in the DSA (for the memory figures of status). */
Size
KsStoreTupleBytes(MinimalTuple tuple)
{
	return MAXALIGN(tuple->t_len);
}

/* Call cb for every visible row (slot lock held shared). */
void
KsStoreScan(dsa_area *dsa, dsa_pointer header, KsStoreRowCallback cb, void *arg)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
	uint32		i;

	for (i = 0; i < hdr->nbuckets; i++)
	{
		dsa_pointer ep = buckets[i];

		while (DsaPointerIsValid(ep))
		{
			KsStoreEntry *e = dsa_get_address(dsa, ep);

			if (DsaPointerIsValid(e->tuple))
				cb((MinimalTuple) dsa_get_address(dsa, e->tuple), arg);
			ep = e->next;
		}
	}
}

/* Call cb for every visible row with the given key hash (lock shared). */
void
KsStoreLookup(dsa_area *dsa, dsa_pointer header, uint32 hash,
			  KsStoreRowCallback cb, void *arg)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
	dsa_pointer ep = buckets[hash & (hdr->nbuckets - 1)];

	while (DsaPointerIsValid(ep))
	{
		KsStoreEntry *e = dsa_get_address(dsa, ep);

		if (e->hash == hash && DsaPointerIsValid(e->tuple))
			cb((MinimalTuple) dsa_get_address(dsa, e->tuple), arg);
		ep = e->next;
	}
}
