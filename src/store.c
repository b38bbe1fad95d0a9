/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Published per-key rows in the shared DSA: a chained hash table keyed
 *	  by key hash, the publish protocol, readers and the retiring of rows
 *	  readers may still copy.  See store.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

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

/* How far ahead of the swap loop rows and buckets are prefetched. */
#define KS_STORE_PREFETCH			16

/* The bucket array of a store. */
static inline dsa_pointer *
KsStoreBuckets(dsa_area *dsa, KsStoreHeader *hdr)
{
	return (dsa_pointer *) dsa_get_address(dsa, hdr->buckets);
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
			 errhint("Increase keyedstate.max_shared_memory and restart the server, or drop other aggregations, then call keyedstate.resume().")));
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
static dsa_pointer
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
 * no reader sees yet (lock NULL) needs none.  Readers look at buckets only
 * under the lock, so the old array can be freed at once.
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

	while ((uint64) newsize < nentries && newsize < (UINT32_MAX / 2 + 1))
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

/* Link a new entry into its bucket. */
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

/* Bytes a tuple occupies in the DSA (for the memory figures of status). */
Size
KsStoreTupleBytes(MinimalTuple tuple)
{
	return MAXALIGN(tuple->t_len);
}

/* ---------------------------------------------------------------------
 * Read epochs (see store.h)
 * ---------------------------------------------------------------------
 */

/* Readers registered in either epoch. */
static inline uint32
KsReadersActive(KsAggSlot *slot)
{
	return pg_atomic_read_u32(&slot->readers[0]) + pg_atomic_read_u32(&slot->readers[1]);
}

/* Move new readers to the next epoch once its counter has drained (lock exclusive). */
static void
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
static bool
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
static void
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

/* A writer's garbage list (see store.h). */
void
KsStoreWriterInit(KsStoreWriter *w, MemoryContext cxt)
{
	memset(w, 0, sizeof(KsStoreWriter));
	w->cxt = cxt;
}

/* Hold a replaced row back until its readers are gone. */
static void
KsStoreAddGarbage(KsStoreWriter *w, dsa_pointer dp, uint32 epoch)
{
	if (w->ngarbage >= w->maxgarbage)
	{
		int64		newmax = Max(w->maxgarbage * 2, 256);

		if (w->garbage == NULL)
		{
			w->garbage = MemoryContextAllocHuge(w->cxt, sizeof(dsa_pointer) * newmax);
			w->garbage_epoch = MemoryContextAllocHuge(w->cxt, sizeof(uint32) * newmax);
		}
		else
		{
			w->garbage = repalloc_huge(w->garbage, sizeof(dsa_pointer) * newmax);
			w->garbage_epoch = repalloc_huge(w->garbage_epoch, sizeof(uint32) * newmax);
		}
		w->maxgarbage = newmax;
	}
	w->garbage[w->ngarbage] = dp;
	w->garbage_epoch[w->ngarbage] = epoch;
	w->ngarbage++;
}

/*
 * Free the garbage whose readers are gone, as judged under the lock with
 * epoch e and the counters then (a judgement that stays true: counters of
 * old epochs only go down).
 */
static void
KsStoreCollectGarbage(KsStoreWriter *w, dsa_area *dsa, bool all_done, uint32 e,
					  bool prev_drained)
{
	int64		i;
	int64		j = 0;

	for (i = 0; i < w->ngarbage; i++)
	{
		uint32		g = w->garbage_epoch[i];

		if (all_done || e - g >= 2 || (e - g == 1 && prev_drained))
			dsa_free(dsa, w->garbage[i]);
		else
		{
			w->garbage[j] = w->garbage[i];
			w->garbage_epoch[j] = g;
			j++;
		}
	}
	w->ngarbage = j;
}

/* Free everything a writer holds back, waiting for its readers. */
void
KsStoreWriterRelease(KsStoreWriter *w, KsAggSlot *slot)
{
	dsa_area   *dsa;

	if (w->ngarbage == 0)
		return;
	dsa = KsGetDsa();
	while (w->ngarbage > 0)
	{
		uint32		newest = w->garbage_epoch[w->ngarbage - 1];

		KsWaitEpoch(slot, newest);
		KsStoreCollectGarbage(w, dsa, true, 0, true);
	}
}

/* ---------------------------------------------------------------------
 * Publishing (the worker)
 * ---------------------------------------------------------------------
 */

/* Free what step 1 of a publish allocated. */
static void
KsPublishUndo(dsa_area *dsa, KsPublishItem *items, int64 n)
{
	int64		i;

	for (i = 0; i < n; i++)
	{
		if (DsaPointerIsValid(items[i].new_tuple))
			dsa_free(dsa, items[i].new_tuple);
		if (DsaPointerIsValid(items[i].new_entry))
			dsa_free(dsa, items[i].new_entry);
		items[i].new_tuple = InvalidDsaPointer;
		items[i].new_entry = InvalidDsaPointer;
	}
}

/*
 * Step 1 of a publish: allocate the new entries, and new tuples for rows
 * that cannot overwrite the key's current one (new keys, changed sizes,
 * or every row when `no_inplace`).  False when the DSA is full.
 */
static bool
KsPublishAllocate(dsa_area *dsa, KsPublishItem *items, int64 n, bool no_inplace,
				  int64 *nnew)
{
	int64		i;

	for (i = 0; i < n; i++)
	{
		KsPublishItem *it = &items[i];

		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (it->row != NULL && !DsaPointerIsValid(it->new_tuple))
		{
			uint32		bytes = KsStoreTupleBytes(it->row);

			if (no_inplace || !DsaPointerIsValid(*it->tuple) || *it->tuple_bytes != bytes)
			{
				it->new_tuple = KsStoreAllocTuple(dsa, it->row);
				if (!DsaPointerIsValid(it->new_tuple))
					return false;
				it->new_bytes = bytes;
			}
		}
		if (!DsaPointerIsValid(*it->entry) && !DsaPointerIsValid(it->new_entry))
		{
			it->new_entry = KsStoreAllocEntry(dsa, it->hash);
			if (!DsaPointerIsValid(it->new_entry))
				return false;
			(*nnew)++;
		}
	}
	return true;
}

/* Publish a step's rows with the new offset (see store.h). */
bool
KsStorePublish(KsStoreWriter *w, KsAggSlot *slot, KsPublishItem *items, int64 n,
			   const KsPublishProgress *progress)
{
	dsa_area   *dsa = KsGetDsa();
	KsStoreHeader *hdr = dsa_get_address(dsa, slot->store);
	bool		no_inplace = false;
	int64		nnew = 0;
	int64		visible_delta = 0;
	int64		bytes_delta = 0;
	bool		readers;
	uint32		epoch;
	bool		all_done;
	bool		prev_drained;
	dsa_pointer *freed;
	int64		nfreed = 0;
	int64		i;

	for (i = 0; i < n; i++)
	{
		items[i].new_tuple = InvalidDsaPointer;
		items[i].new_entry = InvalidDsaPointer;
	}

	/* step 1, without the lock; readers copying now rule out overwrites */
	for (;;)
	{
		if (!KsPublishAllocate(dsa, items, n, no_inplace || KsReadersActive(slot) > 0, &nnew) ||
			!KsStoreGrow(dsa, slot->store, &slot->lock, hdr->nentries + nnew))
		{
			KsPublishUndo(dsa, items, n);
			return false;
		}
		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		readers = KsReadersActive(slot) > 0;
		if (!readers || no_inplace)
			break;
		/* a reader came between: every row needs a new tuple after all */
		LWLockRelease(&slot->lock);
		no_inplace = true;
	}

	/* step 2: swap or copy the rows in with the offset */
	freed = palloc(sizeof(dsa_pointer) * Max(n, 1));
	epoch = slot->read_epoch;
	for (i = 0; i < n; i++)
	{
		KsPublishItem *it = &items[i];
		dsa_pointer old;
		uint32		oldbytes;

		if (i + KS_STORE_PREFETCH < n)
		{
			KsPublishItem *ahead = &items[i + KS_STORE_PREFETCH];

			if (DsaPointerIsValid(*ahead->tuple))
				KS_PREFETCH(dsa_get_address(dsa, *ahead->tuple));
			else if (DsaPointerIsValid(ahead->new_entry))
				KsStorePrefetchBucket(dsa, slot->store, ahead->hash);
		}
		if (it->row != NULL && !DsaPointerIsValid(it->new_tuple))
		{
			/* same size, no reader: copy over the current row */
			memcpy(dsa_get_address(dsa, *it->tuple), it->row, it->row->t_len);
			continue;
		}
		if (DsaPointerIsValid(it->new_entry))
		{
			KsStoreLinkEntry(dsa, slot->store, it->new_entry);
			*it->entry = it->new_entry;
			bytes_delta += sizeof(KsStoreEntry);
		}
		old = KsStoreSwapTuple(dsa, *it->entry, it->new_tuple, it->new_bytes, &oldbytes);
		*it->tuple = it->new_tuple;
		*it->tuple_bytes = DsaPointerIsValid(it->new_tuple) ? it->new_bytes : 0;
		bytes_delta += (int64) *it->tuple_bytes - (int64) oldbytes;
		if (DsaPointerIsValid(it->new_tuple) && !DsaPointerIsValid(old))
			visible_delta++;
		else if (!DsaPointerIsValid(it->new_tuple) && DsaPointerIsValid(old))
			visible_delta--;
		if (DsaPointerIsValid(old))
		{
			if (readers)
				KsStoreAddGarbage(w, old, epoch);
			else
				freed[nfreed++] = old;
		}
	}
	slot->consumed_offset = progress->offset;
	slot->keys = progress->keys;
	slot->memory_bytes = progress->memory_bytes;
	slot->visible_keys += visible_delta;
	slot->shared_bytes += bytes_delta;
	KsAdvanceEpoch(slot);
	all_done = KsReadersActive(slot) == 0;
	epoch = slot->read_epoch;
	prev_drained = pg_atomic_read_u32(&slot->readers[(epoch - 1) & 1]) == 0;
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);

	/* step 3: free what no reader can see any more */
	for (i = 0; i < nfreed; i++)
		dsa_free(dsa, freed[i]);
	pfree(freed);
	if (w->ngarbage > 0)
		KsStoreCollectGarbage(w, dsa, all_done, epoch, prev_drained);
	return true;
}

/* Swap a slot's store for another (or none), retiring the old one. */
static void
KsStoreReplace(KsAggSlot *slot, dsa_pointer store, int64 consumed, int64 keys,
			   int64 visible, int64 bytes, bool set_progress)
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
		slot->rows_replayed = 0;
	}
	epoch = slot->read_epoch;
	KsAdvanceEpoch(slot);
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);

	if (DsaPointerIsValid(old))
	{
		KsWaitEpoch(slot, epoch);
		KsStoreDestroy(KsGetDsa(), old);
	}
}

/* Install a privately built store (see store.h). */
void
KsStoreInstall(KsAggSlot *slot, dsa_pointer store, int64 consumed, int64 keys,
			   int64 visible, int64 bytes)
{
	KsStoreReplace(slot, store, consumed, keys, visible, bytes, true);
}

/* Retire a slot's published store (see store.h). */
void
KsStoreRetire(KsAggSlot *slot)
{
	KsStoreReplace(slot, InvalidDsaPointer, 0, 0, 0, 0, false);
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
		/* still the same slot? (a backend may have given it back meanwhile) */
		LWLockAcquire(&slot->lock, LW_SHARED);
		orphan = KsSlotRefValid(&ref);
		LWLockRelease(&slot->lock);
		if (orphan)
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

/* ---------------------------------------------------------------------
 * Readers
 * ---------------------------------------------------------------------
 */

/* Room for one more collected pointer. */
static inline void
KsCollect(dsa_pointer **ptrs, int64 *n, int64 *max, dsa_pointer tp)
{
	if (*n >= *max)
	{
		*max = Max(*max * 2, 64);
		*ptrs = *ptrs == NULL ? palloc(sizeof(dsa_pointer) * *max) :
			repalloc_huge(*ptrs, sizeof(dsa_pointer) * *max);
	}
	(*ptrs)[(*n)++] = tp;
}

/* Copy published rows out of a slot (see store.h). */
void
KsStoreReadRows(const KsSlotRef *ref, const uint32 *hashes, int nhashes,
				KsReadCheck check, void *checkarg, MemoryContext cxt,
				MinimalTuple **rows, int64 *nrows, KsReadResult *res)
{
	KsAggSlot  *slot = ref->slot;
	dsa_area   *dsa = KsGetDsa();
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	dsa_pointer *ptrs = NULL;
	int64		nptrs = 0;
	int64		maxptrs = 0;
	volatile int registered = -1;

	memset(res, 0, sizeof(KsReadResult));
	*rows = NULL;
	*nrows = 0;

	PG_TRY();
	{
		LWLockAcquire(&slot->lock, LW_SHARED);
		if (KsSlotRefValid(ref))
		{
			res->found = true;
			res->state = slot->state;
			res->live_oid = slot->live_oid;
			res->view_oid = slot->view_oid;
			res->rowtype = slot->rowtype;
			res->failed_offset = slot->failed_offset;
			strlcpy(res->error, slot->error, KS_ERROR_LEN);
		}
		if (res->found && res->state != KS_STARTING && res->state != KS_FAILED &&
			DsaPointerIsValid(slot->store) &&
			(check == NULL || check(res, checkarg)))
		{
			KsStoreHeader *hdr = dsa_get_address(dsa, slot->store);
			dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
			uint32		e = slot->read_epoch;

			pg_atomic_fetch_add_u32(&slot->readers[e & 1], 1);
			registered = (int) (e & 1);
			if (nhashes < 0)
			{
				uint32		b;

				for (b = 0; b < hdr->nbuckets; b++)
				{
					dsa_pointer ep = buckets[b];

					while (DsaPointerIsValid(ep))
					{
						KsStoreEntry *entry = dsa_get_address(dsa, ep);

						if (DsaPointerIsValid(entry->tuple))
							KsCollect(&ptrs, &nptrs, &maxptrs, entry->tuple);
						ep = entry->next;
					}
				}
			}
			else
			{
				int			h;

				for (h = 0; h < nhashes; h++)
				{
					dsa_pointer ep = buckets[hashes[h] & (hdr->nbuckets - 1)];

					while (DsaPointerIsValid(ep))
					{
						KsStoreEntry *entry = dsa_get_address(dsa, ep);

						if (entry->hash == hashes[h] && DsaPointerIsValid(entry->tuple))
							KsCollect(&ptrs, &nptrs, &maxptrs, entry->tuple);
						ep = entry->next;
					}
				}
			}
		}
		LWLockRelease(&slot->lock);

		/* copy without the lock: the writer keeps these rows until we are done */
		if (nptrs > 0)
		{
			int64		i;

			*rows = palloc(sizeof(MinimalTuple) * nptrs);
			for (i = 0; i < nptrs; i++)
				(*rows)[i] = heap_copy_minimal_tuple((MinimalTuple) dsa_get_address(dsa, ptrs[i]));
			*nrows = nptrs;
			pfree(ptrs);
		}
		if (registered >= 0)
			pg_atomic_fetch_sub_u32(&slot->readers[registered], 1);
	}
	PG_CATCH();
	{
		if (LWLockHeldByMe(&slot->lock))
			LWLockRelease(&slot->lock);
		if (registered >= 0)
			pg_atomic_fetch_sub_u32(&slot->readers[registered], 1);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
}
