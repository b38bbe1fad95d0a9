/*-------------------------------------------------------------------------
 *
 * storeread.c
 *	  Readers of the store (see store.h): pointers collected under the
 *	  slot lock, rows copied after it, registered in a read epoch.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "apply.h"
#include "store.h"

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

/*
 * Where a reader's snapshot of keyedstate_internal.cold is taken (then copied by
 * RegisterSnapshot): not GetLatestSnapshot's, which a query in parallel
 * mode may not retake.  Only the leader reads keyedstate_internal.cold (the live
 * view's scans are not parallel-safe), so a snapshot of its own is
 * consistent for that read.
 */
static SnapshotData KsColdSnapshotData = {SNAPSHOT_MVCC};

/* Remember a published entry's cold row, which the reader must skip (cold.h). */
static void
KsCollectCold(KsReadResult *res, int64 *max, const KsStoreEntry *entry)
{
	if (res->ncold >= *max)
	{
		*max = Max(*max * 2, 64);
		res->cold_hashes = res->cold_hashes == NULL ? palloc(sizeof(uint32) * *max) :
			repalloc_huge(res->cold_hashes, sizeof(uint32) * *max);
		res->cold_ids = res->cold_ids == NULL ? palloc(sizeof(uint64) * *max) :
			repalloc_huge(res->cold_ids, sizeof(uint64) * *max);
	}
	res->cold_hashes[res->ncold] = entry->hash;
	res->cold_ids[res->ncold] = entry->cold_id;
	res->ncold++;
}

/* Whether a row read is a window past the TTL (see store.h). */
bool
KsReadRowExpired(int64 window_size_us, TimestampTz expired_upto, MinimalTuple row)
{
	int64		start;

	if (window_size_us == 0 || expired_upto == DT_NOBEGIN ||
		((row->t_infomask & HEAP_HASNULL) && att_isnull(0, row->t_bits)))
		return false;
	/*
	 * window_start: a timestamp or timestamptz, the row's first column (at
	 * its data's start); a key, so an error row has it too (re-review today
	 * 18, F2: an expired window whose row had failed was shown)
	 */
	memcpy(&start, (const char *) row + row->t_hoff - MINIMAL_TUPLE_OFFSET, sizeof(int64));
	return KsWindowEndsBy(start, window_size_us, expired_upto);
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
	int64		maxcold = 0;
	bool		cold;
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
			/* a rebuild committing: the rows are the old run's (KsSetRebuildPending) */
			res->state = KsSlotRebuildPending(slot) ? KS_STARTING : slot->state;
			res->live_oid = slot->live_oid;
			res->view_oid = slot->view_oid;
			res->rowtype = slot->rowtype;
			res->failed_offset = slot->failed_offset;
			res->aggid = slot->aggid;
			res->window_size_us = slot->window_size_us;
			res->expired_upto = slot->expired_upto;
			res->cold_keys = slot->cold_keys;
			memcpy(res->error, slot->error, KS_ERROR_LEN);	/* (with the hint) */
		}
		cold = res->cold_keys > 0;
		if (res->found && res->state != KS_STARTING && res->state != KS_FAILED &&
			DsaPointerIsValid(slot->store) &&
			(check == NULL || check(res, checkarg)))
		{
			KsStoreHeader *hdr = dsa_get_address(dsa, slot->store);
			dsa_pointer *buckets = KsStoreBuckets(dsa, hdr);
			uint32		e = slot->read_epoch;

			pg_atomic_fetch_add_u32(&slot->readers[e & 1], 1);
			registered = (int) (e & 1);

			/*
			 * The snapshot of keyedstate_internal.cold, under the lock with the rows:
			 * a cold row it sees was committed after its key's entry learned
			 * the row's id (collected below, to skip) or after the key left
			 * the store; one it does not see belongs to a key still here.
			 */
			if (cold)
				res->cold_snapshot = RegisterSnapshot(GetSnapshotData(&KsColdSnapshotData));
			if (nhashes < 0)
			{
				int			a;

				/* the chains of both arrays while a rehash is in progress */
				for (a = 0; a < 2; a++)
				{
					dsa_pointer *chains = (a == 0) ? buckets :
						(hdr->nold > 0 ? KsStoreOldBuckets(dsa, hdr) : NULL);
					uint32		b = (a == 0) ? 0 : hdr->moved;
					uint32		end = (a == 0) ? hdr->nbuckets : hdr->nold;

					for (; chains != NULL && b < end; b++)
					{
						dsa_pointer ep = chains[b];

						while (DsaPointerIsValid(ep))
						{
							KsStoreEntry *entry = dsa_get_address(dsa, ep);

							if (DsaPointerIsValid(entry->tuple))
								KsCollect(&ptrs, &nptrs, &maxptrs, entry->tuple);
							if (cold && entry->cold_id != 0)
								KsCollectCold(res, &maxcold, entry);
							ep = entry->next;
						}
					}
				}
			}
			else
			{
				int			h;

				for (h = 0; h < nhashes; h++)
				{
					dsa_pointer ep = *KsStoreBucket(dsa, hdr, hashes[h]);

					while (DsaPointerIsValid(ep))
					{
						KsStoreEntry *entry = dsa_get_address(dsa, ep);

						if (entry->hash == hashes[h] && DsaPointerIsValid(entry->tuple))
							KsCollect(&ptrs, &nptrs, &maxptrs, entry->tuple);
						if (cold && entry->hash == hashes[h] && entry->cold_id != 0)
							KsCollectCold(res, &maxcold, entry);
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
			{
				MinimalTuple row = (MinimalTuple) dsa_get_address(dsa, ptrs[i]);

				if (!KsReadRowExpired(res->window_size_us, res->expired_upto, row))
					(*rows)[(*nrows)++] = heap_copy_minimal_tuple(row);
			}
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

/* Unregister the cold snapshots of results (see store.h). */
void
KsReadResultsRelease(KsReadResult *results, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (results[i].cold_snapshot != NULL)
		{
			UnregisterSnapshot(results[i].cold_snapshot);
			results[i].cold_snapshot = NULL;
		}
}
