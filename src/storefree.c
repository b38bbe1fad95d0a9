/*-------------------------------------------------------------------------
 *
 * storefree.c
 *	  Freeing stores of published rows: at once, or, in a database worker,
 *	  a slice at a time between its steps; and the worker's freed memory
 *	  kept for its next steps, given back to the kernel when idle.  See
 *	  store.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <malloc.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "store.h"


/* Free the entries and tuples of the chains of buckets [from, to) of an array. */
static void
KsStoreFreeChains(dsa_area *dsa, dsa_pointer *buckets, uint32 from, uint32 to)
{
	uint32		i;

	for (i = from; i < to; i++)
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
}

/*
 * Free a store's chains from chain `*next` on (those of its bucket array,
 * then those of the old array of a rehash in progress), then its arrays and
 * header; stop at `deadline` (DT_NOEND: never).  True once it is all freed.
 */
static bool
KsStoreFreeSome(dsa_area *dsa, dsa_pointer header, uint64 *next, TimestampTz deadline)
{
	KsStoreHeader *hdr = dsa_get_address(dsa, header);
	uint64		total = (uint64) hdr->nbuckets + hdr->nold;

	while (*next < total)
	{
		uint64		end = Min(total, *next + 256);

		if (*next < hdr->nbuckets)
		{
			end = Min(end, (uint64) hdr->nbuckets);
			KsStoreFreeChains(dsa, KsStoreBuckets(dsa, hdr), (uint32) *next, (uint32) end);
		}
		else
			KsStoreFreeChains(dsa, KsStoreOldBuckets(dsa, hdr),
							  (uint32) (*next - hdr->nbuckets), (uint32) (end - hdr->nbuckets));
		*next = end;
		if (deadline != DT_NOEND && GetCurrentTimestamp() >= deadline)
			return false;
	}
	if (hdr->nold > 0)
		dsa_free(dsa, hdr->old_buckets);
	dsa_free(dsa, hdr->buckets);
	dsa_free(dsa, header);
	return true;
}

/* Free a store with all its entries and tuples. */
void
KsStoreDestroy(dsa_area *dsa, dsa_pointer header)
{
	uint64		next = 0;

	(void) KsStoreFreeSome(dsa, header, &next, DT_NOEND);
}

/*
 * Stores a database worker no longer uses, freed a slice at a time between
 * its steps (KsStoreFreeRetired).  Freeing millions of entries at once held
 * the worker for seconds, and the DSA's size-class locks it takes for each
 * entry slowed every other worker allocating rows meanwhile, past their
 * step timeout.
 */
typedef struct KsRetiredStore
{
	dsa_pointer header;
	uint64		next;			/* the next chain to free (KsStoreFreeSome) */
} KsRetiredStore;

/* How often a process waiting for them looks, and how long it waits at most. */
#define KS_RETIRED_POLL_MS		20
#define KS_RETIRED_WAIT_MS		30000

static bool ks_store_defer = false;
static KsRetiredStore *ks_retired = NULL;
static int	ks_nretired = 0;
static int	ks_maxretired = 0;

/* Give a store up: freed now, or later by a database worker (see above). */
void
KsStoreDiscard(dsa_area *dsa, dsa_pointer header)
{
	if (!ks_store_defer)
	{
		KsStoreDestroy(dsa, header);
		return;
	}
	if (ks_nretired >= ks_maxretired)
	{
		int			newmax = Max(ks_maxretired * 2, 8);

		ks_retired = ks_retired == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(KsRetiredStore) * newmax) :
			repalloc(ks_retired, sizeof(KsRetiredStore) * newmax);
		ks_maxretired = newmax;
	}
	ks_retired[ks_nretired].header = header;
	ks_retired[ks_nretired].next = 0;
	ks_nretired++;
	pg_atomic_fetch_add_u32(&KsSharedState->stores_retiring, 1);
}

/* Free the retired stores for up to `ms` (-1: all); true while some are left. */
bool
KsStoreFreeRetired(long ms)
{
	TimestampTz deadline = ms < 0 ? DT_NOEND :
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	while (ks_nretired > 0)
	{
		KsRetiredStore *rs = &ks_retired[0];

		if (!KsStoreFreeSome(KsGetDsa(), rs->header, &rs->next, deadline))
			return true;
		memmove(&ks_retired[0], &ks_retired[1], sizeof(KsRetiredStore) * (ks_nretired - 1));
		ks_nretired--;
		pg_atomic_fetch_sub_u32(&KsSharedState->stores_retiring, 1);
	}
	return false;
}

/* The DSA is full: wait for stores being freed (see store.h). */
bool
KsStoreAwaitRetired(void)
{
	uint32		retiring = pg_atomic_read_u32(&KsSharedState->stores_retiring);
	TimestampTz deadline;

	if (retiring == 0)
		return false;
	/* ours first: nobody else frees them */
	if (ks_nretired > 0)
	{
		(void) KsStoreFreeRetired(-1);
		return true;
	}
	/* others': their workers free a slice between steps; wait for one to be done */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KS_RETIRED_WAIT_MS);
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 KS_RETIRED_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u32(&KsSharedState->stores_retiring) != retiring)
			return true;
		if (GetCurrentTimestamp() >= deadline)
			return false;
	}
}

/* before_shmem_exit: a leaving worker frees what it retired, all of it. */
static void
KsStoreFreeAtExit(int code, Datum arg)
{
	if (ks_nretired == 0 || !PostmasterIsAlive())
		return;
	/* an error may have left a DSA lock held */
	LWLockReleaseAll();
	(void) KsStoreFreeRetired(-1);
}

/* This process (a database worker) frees the stores it retires later. */
void
KsStoreDeferFrees(void)
{
	ks_store_defer = true;
	before_shmem_exit(KsStoreFreeAtExit, (Datum) 0);
}

/* Seconds between two trims of the worker's free memory, at most. */
#define KS_TRIM_INTERVAL_MS		10000

/* When the worker last gave its free memory back. */
static TimestampTz ks_trimmed_at = 0;

/*
 * Keep freed memory for the next steps.  A step allocates and frees tens of
 * megabytes (rows read and published, checkpoint chunks, arrays of keys);
 * with glibc's defaults each block above its mmap threshold was mapped and
 * unmapped again, and the heap's top given back once a few megabytes were
 * free, so every step faulted on all of it, the kernel clearing the pages
 * again: 1.87M faults in a drain of 20M rows over 10M keys, against 0.75M
 * without, 62 s of the worker's CPU against 38 s (README, "Performance").
 * So nothing is mapped apart, the heap's top is given back only past 1GB,
 * and the worker gives free memory back itself once idle (KsTrimFreedMemory).
 */
void
KsKeepFreedMemory(void)
{
#ifdef M_MMAP_MAX
	(void) mallopt(M_MMAP_MAX, 0);
	(void) mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

/*
 * Give free memory back to the kernel, at most every 10 seconds, when the
 * worker is about to wait (what a drain or a dropped aggregation freed).
 */
void
KsTrimFreedMemory(void)
{
#ifdef M_MMAP_MAX
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(ks_trimmed_at, now, KS_TRIM_INTERVAL_MS))
		return;
	ks_trimmed_at = now;
	(void) malloc_trim(0);
#endif
}
