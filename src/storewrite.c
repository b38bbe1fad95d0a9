/*-------------------------------------------------------------------------
 *
 * storewrite.c
 *	  The publish protocol of the store (see store.h), and the rows a
 *	  writer holds back while readers may still copy them.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "store.h"

/* How far ahead of the swap loop rows and buckets are prefetched. */
#define KS_STORE_PREFETCH			16

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
		if (it->remove)
			continue;
		if (it->row != NULL && !DsaPointerIsValid(it->new_tuple))
		{
			if (no_inplace || !DsaPointerIsValid(*it->tuple) ||
				!KsStoreTupleFits(*it->tuple_bytes, it->row))
			{
				it->new_tuple = KsStoreAllocTuple(dsa, it->row);
				if (!DsaPointerIsValid(it->new_tuple))
					return false;
				it->new_bytes = KsStoreTupleBytes(it->row);
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
	freed = palloc_extended(sizeof(dsa_pointer) * 2 * Max(n, 1), MCXT_ALLOC_HUGE);
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
		if (it->remove)
		{
			/* an expired key: its row goes like a replaced one, its entry at once */
			if (!DsaPointerIsValid(*it->entry))
				continue;
			old = KsStoreSwapTuple(dsa, *it->entry, InvalidDsaPointer, 0, &oldbytes);
			KsStoreUnlinkEntry(dsa, slot->store, *it->entry);
			freed[nfreed++] = *it->entry;
			*it->entry = InvalidDsaPointer;
			*it->tuple = InvalidDsaPointer;
			*it->tuple_bytes = 0;
			bytes_delta -= (int64) oldbytes + (int64) sizeof(KsStoreEntry);
			if (DsaPointerIsValid(old))
			{
				visible_delta--;
				if (readers)
					KsStoreAddGarbage(w, old, epoch);
				else
					freed[nfreed++] = old;
			}
			continue;
		}
		if (DsaPointerIsValid(*it->entry))
			((KsStoreEntry *) dsa_get_address(dsa, *it->entry))->cold_id = it->cold_id;
		if (it->row != NULL && !DsaPointerIsValid(it->new_tuple))
		{
			/* it fits its allocation, no reader: copy over the current row */
			memcpy(dsa_get_address(dsa, *it->tuple), it->row, it->row->t_len);
			continue;
		}
		if (DsaPointerIsValid(it->new_entry))
		{
			((KsStoreEntry *) dsa_get_address(dsa, it->new_entry))->cold_id = it->cold_id;
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
	slot->cold_keys = progress->cold_keys;
	/* (never back: a run replaying after a restart of its worker starts lower) */
	if (progress->watermark > slot->watermark)
		slot->watermark = progress->watermark;
	slot->window_size_us = progress->window_size_us;
	slot->expired_upto = progress->expired_upto;
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


/* Set the cold rows of published entries (see store.h). */
void
KsStoreSetColdIds(KsAggSlot *slot, const dsa_pointer *entries, const uint32 *hashes,
				  const uint64 *ids, int n)
{
	dsa_area   *dsa = KsGetDsa();
	int			i;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		KsStoreEntry *entry;

		if (!DsaPointerIsValid(entries[i]))
			continue;
		entry = dsa_get_address(dsa, entries[i]);
		if (entry->hash != hashes[i])
		{
			uint32		found = entry->hash;

			LWLockRelease(&slot->lock);
			elog(ERROR, "keyedstate published entry of a key with hash %u holds hash %u",
				 hashes[i], found);
		}
		entry->cold_id = ids[i];
	}
	LWLockRelease(&slot->lock);
}
