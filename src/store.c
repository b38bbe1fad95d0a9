/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Published per-key rows in the shared DSA: the chained hash table keyed
 *	  by key hash, read epochs, retiring whole stores and giving slots back.
 *	  The publish protocol is in storewrite.c, readers in storeread.c.  See
 *	  store.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "common/pg_prng.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/snapmgr.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "settings.h"
#include "store.h"

#define KS_STORE_INITIAL_BUCKETS	1024

/* Old buckets a rehash moves per hold of the slot lock. */
#define KS_STORE_MOVE_SLICE			8192



/* The error for a store that cannot grow (see store.h). */
void
KsStoreExhausted(const char *aggname)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("keyedstate shared memory is exhausted"),
			 errdetail("Aggregation %s needs more than keyedstate.max_shared_memory (%d kB) allows.",
					   aggname, ks_max_shared_memory),
			 errhint("Increase keyedstate.max_shared_memory and restart the server, give it a memory_limit (evicted keys leave shared memory), or drop other aggregations, then call keyedstate.resume().")));
}

/* Create an empty store and return its header. */
dsa_pointer
KsStoreCreate(dsa_area *dsa, const char *aggname)
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
		KsStoreExhausted(aggname);
	}
	hdr = dsa_get_address(dsa, hp);
	hdr->seed = pg_prng_uint32(&pg_global_prng_state);
	hdr->nbuckets = KS_STORE_INITIAL_BUCKETS;
	hdr->nentries = 0;
	hdr->buckets = bp;
	return hp;
}

/* Copy a tuple into the DSA; InvalidDsaPointer when the area is full. */
dsa_pointer
KsStoreAllocTuple(dsa_area *dsa, MinimalTuple tuple)
{
	dsa_pointer tp;

	tp = dsa_allocate_extended(dsa, KsStoreTupleBytes(tuple), DSA_ALLOC_NO_OOM);
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
	e->prev = InvalidDsaPointer;
	e->tuple = InvalidDsaPointer;
	e->hash = hash;
	e->tuple_bytes = 0;
	e->cold_id = 0;
	return ep;
}

/* Put entry ep (at e) first in the chain that *head starts. */
static inline void
KsStorePushEntry(dsa_area *dsa, dsa_pointer *head, dsa_pointer ep, KsStoreEntry *e)
{
	e->next = *head;
	e->prev = InvalidDsaPointer;
	if (DsaPointerIsValid(e->next))
		((KsStoreEntry *) dsa_get_address(dsa, e->next))->prev = ep;
	*head = ep;
}

/*
 * Move up to `count` old buckets of a rehash in progress into the new
 * array, a slice per hold of `lock` (none for a private store), and free
 * the old array once all are moved.  Readers look at buckets only under
 * the lock, so each slice is all or nothing to them.
 */
static void
KsStoreMove(dsa_area *dsa, KsStoreHeader *hdr, LWLock *lock, uint64 count)
{
	while (hdr->nold > 0 && count > 0)
	{
		dsa_pointer *oldb;
		dsa_pointer *newb;
		dsa_pointer done = InvalidDsaPointer;
		uint32		end;
		uint32		b;

		if (lock != NULL)
			LWLockAcquire(lock, LW_EXCLUSIVE);
		oldb = KsStoreOldBuckets(dsa, hdr);
		newb = KsStoreBuckets(dsa, hdr);
		end = (uint32) Min((uint64) hdr->nold,
						   (uint64) hdr->moved + Min(count, (uint64) KS_STORE_MOVE_SLICE));
		for (b = hdr->moved; b < end; b++)
		{
			dsa_pointer ep = oldb[b];

			while (DsaPointerIsValid(ep))
			{
				KsStoreEntry *e = dsa_get_address(dsa, ep);
				dsa_pointer next = e->next;
				uint32		nb = KsStoreSpread(hdr, e->hash) & (hdr->nbuckets - 1);

				KsStorePushEntry(dsa, &newb[nb], ep, e);
				ep = next;
			}
			oldb[b] = InvalidDsaPointer;
		}
		count -= end - hdr->moved;
		hdr->moved = end;
		if (hdr->moved == hdr->nold)
		{
			done = hdr->old_buckets;
			hdr->old_buckets = InvalidDsaPointer;
			hdr->nold = 0;
			hdr->moved = 0;
		}
		if (lock != NULL)
			LWLockRelease(lock);
		if (DsaPointerIsValid(done))
			dsa_free(dsa, done);
	}
}

/*
 * Grow a store's bucket array so that `nentries` entries keep chains short
 * (see store.h).  A rehash in progress moves eight old buckets per entry
 * added, a slice at least, and is finished before another starts.  The new
 * array is allocated without the lock; installing it takes the lock only
 * for a moment.
 */
bool
KsStoreGrow(dsa_area *dsa, dsa_pointer header, LWLock *lock, uint64 nentries)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	uint64		added = nentries > hdr->nentries ? nentries - hdr->nentries : 0;
	uint64		quota = (lock == NULL) ? PG_UINT64_MAX : Max(8 * added, KS_STORE_MOVE_SLICE);
	uint32		newsize = hdr->nbuckets;
	dsa_pointer newbp;

	while ((uint64) newsize < nentries && newsize < (UINT32_MAX / 2 + 1))
		newsize *= 2;
	/* another rehash is due: this one ends first */
	KsStoreMove(dsa, hdr, lock, newsize != hdr->nbuckets ? PG_UINT64_MAX : quota);
	if (newsize == hdr->nbuckets)
		return true;

	newbp = dsa_allocate_extended(dsa, sizeof(dsa_pointer) * (Size) newsize,
								  DSA_ALLOC_NO_OOM | DSA_ALLOC_ZERO | DSA_ALLOC_HUGE);
	if (!DsaPointerIsValid(newbp))
		return false;

	if (lock != NULL)
		LWLockAcquire(lock, LW_EXCLUSIVE);
	hdr->old_buckets = hdr->buckets;
	hdr->nold = hdr->nbuckets;
	hdr->moved = 0;
	hdr->buckets = newbp;
	hdr->nbuckets = newsize;
	if (lock != NULL)
		LWLockRelease(lock);

	KsStoreMove(dsa, hdr, lock, quota);
	return true;
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

	tp = dsa_allocate_extended(dsa, TYPEALIGN(KS_STORE_TUPLE_QUANTUM, len), DSA_ALLOC_NO_OOM);
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

	KS_PREFETCH(KsStoreBucket(dsa, hdr, hash));
}

/* Link a new entry into its bucket. */
void
KsStoreLinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	KsStoreEntry *e = dsa_get_address(dsa, entry);

	KsStorePushEntry(dsa, KsStoreBucket(dsa, hdr, e->hash), entry, e);
	hdr->nentries++;
}

/* Unlink an entry from its bucket chain, without walking it (see store.h). */
void
KsStoreUnlinkEntry(dsa_area *dsa, dsa_pointer header, dsa_pointer entry)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	KsStoreEntry *e = dsa_get_address(dsa, entry);
	dsa_pointer *link;

	if (DsaPointerIsValid(e->prev))
		link = &((KsStoreEntry *) dsa_get_address(dsa, e->prev))->next;
	else
		link = KsStoreBucket(dsa, hdr, e->hash);
	if (*link != entry)
		elog(ERROR, "keyedstate store entry is not in its bucket");
	*link = e->next;
	if (DsaPointerIsValid(e->next))
		((KsStoreEntry *) dsa_get_address(dsa, e->next))->prev = e->prev;
	e->next = e->prev = InvalidDsaPointer;
	hdr->nentries--;
}

/* Set an entry's tuple and return the one it replaces. */
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

/* Bytes a tuple's allocation takes in the DSA (see store.h). */
Size
KsStoreTupleBytes(MinimalTuple tuple)
{
	return TYPEALIGN(KS_STORE_TUPLE_QUANTUM, tuple->t_len);
}

/* Whether a row may be copied over an allocation of `capacity` bytes (see store.h). */
bool
KsStoreTupleFits(uint32 capacity, MinimalTuple row)
{
	return row->t_len <= capacity &&
		KsStoreTupleBytes(row) + KS_STORE_TUPLE_QUANTUM >= capacity;
}

/* ---------------------------------------------------------------------
 * Read epochs (see store.h)
 * ---------------------------------------------------------------------
 */

/* Readers registered in either epoch. */
uint32
KsReadersActive(KsAggSlot *slot)
{
	return pg_atomic_read_u32(&slot->readers[0]) + pg_atomic_read_u32(&slot->readers[1]);
}

/* Move new readers to the next epoch once its counter has drained (lock exclusive). */
void
KsAdvanceEpoch(KsAggSlot *slot)
{
	uint32		e = slot->read_epoch;

	if (pg_atomic_read_u32(&slot->readers[(e + 1) & 1]) == 0)
		slot->read_epoch = e + 1;
}

/*
 * Whether rows replaced in epoch g can be freed (lock exclusive): every
 * reader that may have collected them registered in g or g - 1, and the
 * move to g + 1 happened only once g - 1 had drained.
 */
bool
KsEpochDone(KsAggSlot *slot, uint32 g)
{
	uint32		e = slot->read_epoch;

	if (KsReadersActive(slot) == 0)
		return true;
	if (e - g >= 2)
		return true;
	return e - g == 1 && pg_atomic_read_u32(&slot->readers[g & 1]) == 0;
}

/* Wait until the readers of epoch g are gone (lock not held). */
void
KsWaitEpoch(KsAggSlot *slot, uint32 g)
{
	bool		reset = false;

	for (;;)
	{
		bool		done;

		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		KsAdvanceEpoch(slot);
		done = KsEpochDone(slot, g);
		LWLockRelease(&slot->lock);
		if (done)
			break;
		/* readers only copy rows: they are gone within milliseconds */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		reset = true;
		CHECK_FOR_INTERRUPTS();
	}
	/* a wake-up consumed while waiting is not lost */
	if (reset)
		SetLatch(MyLatch);
}

/* Swap a slot's store for another (or none), retiring the old one. */
static void
KsStoreReplace(KsAggSlot *slot, dsa_pointer store, int64 consumed, int64 keys,
			   int64 cold_keys, int64 visible, int64 bytes, bool set_progress)
{
	dsa_pointer old;
	uint32		epoch;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	old = slot->store;
	slot->store = store;
	slot->visible_keys = visible;
	slot->shared_bytes = bytes;
	if (set_progress)
	{
		slot->consumed_offset = consumed;
		slot->keys = keys;
		slot->cold_keys = cold_keys;
		slot->rows_replayed = 0;
	}
	epoch = slot->read_epoch;
	KsAdvanceEpoch(slot);
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);

	if (DsaPointerIsValid(old))
	{
		KsWaitEpoch(slot, epoch);
		KsStoreDiscard(KsGetDsa(), old);
	}
}

/* Install a privately built store (see store.h). */
void
KsStoreInstall(KsAggSlot *slot, dsa_pointer store, int64 consumed, int64 keys,
			   int64 cold_keys, int64 visible, int64 bytes)
{
	KsStoreReplace(slot, store, consumed, keys, cold_keys, visible, bytes, true);
}

/* Retire a slot's published store (see store.h). */
void
KsStoreRetire(KsAggSlot *slot)
{
	KsStoreReplace(slot, InvalidDsaPointer, 0, 0, 0, 0, 0, false);
}

/* The offset a slot's published rows are at, or PG_INT64_MIN (see store.h). */
int64
KsStorePublishedOffset(KsAggSlot *slot)
{
	int64		offset;

	LWLockAcquire(&slot->lock, LW_SHARED);
	offset = DsaPointerIsValid(slot->store) ? slot->consumed_offset : PG_INT64_MIN;
	LWLockRelease(&slot->lock);
	return offset;
}

/* ---------------------------------------------------------------------
 * Giving slots back
 * ---------------------------------------------------------------------
 */

/* Free a slot, retiring its published rows first (see store.h). */
void
KsStoreReleaseSlot(KsAggSlot *slot)
{
	KsStoreRetire(slot);
	KsFreeAggSlot(slot);
}

/* Whether an aggregation id is among those kept. */
static bool
KsIdKept(int32 aggid, int nkeep, const int32 *keep)
{
	int			i;

	for (i = 0; i < nkeep; i++)
		if (keep[i] == aggid)
			return true;
	return false;
}

/*
 * Free the slots of a database that no aggregation needs (see shmem.h).
 * A reservation whose transaction committed after our snapshot was taken
 * is kept: the aggregation exists, we just cannot see it yet.
 */
void
KsReleaseOrphanSlots(Oid dboid, int nkeep, const int32 *keep)
{
	Snapshot	snapshot = GetActiveSnapshot();
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		KsSlotRef	ref;
		TransactionId xid;
		bool		orphan;

		LWLockAcquire(&slot->lock, LW_SHARED);
		orphan = slot->in_use && slot->dboid == dboid && !KsIdKept(slot->aggid, nkeep, keep);
		xid = slot->reserved_xid;
		ref.slot = slot;
		ref.generation = slot->generation;
		LWLockRelease(&slot->lock);
		if (!orphan)
			continue;
		if (TransactionIdIsValid(xid))
		{
			if (TransactionIdIsInProgress(xid))
				continue;
			if (TransactionIdDidCommit(xid) &&
				(snapshot == NULL || XidInMVCCSnapshot(xid, snapshot)))
				continue;
		}
		/*
		 * Still the same slot, run by no other worker?  (A backend may have
		 * given it back meanwhile, or, our list being older, another worker
		 * may run it.)  Taking it keeps any worker from claiming it now.
		 */
		if (KsClaimOrphanSlot(&ref))
			KsStoreReleaseSlot(slot);
	}
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/* Free every aggregation slot of a database no worker serves (see shmem.h). */
void
KsReleaseDatabaseSlots(Oid dboid)
{
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		bool		mine;

		LWLockAcquire(&slot->lock, LW_SHARED);
		mine = slot->in_use && slot->dboid == dboid;
		LWLockRelease(&slot->lock);
		if (mine)
			KsStoreReleaseSlot(slot);
	}
}
