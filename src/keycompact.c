/*-------------------------------------------------------------------------
 *
 * keycompact.c
 *	  Removing keys from the key table, and compacting it to give memory
 *	  back.  See keytable.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <sys/mman.h>

#include "utils/memutils.h"

#include "keytable.h"

/*
 * Remove a key (see keytable.h).  Linear probing has no tombstones: the
 * keys after the emptied slot whose probe sequence passed through it move
 * back into it, one after the other, as in Knuth's algorithm R.
 */
void
KsKeyTableRemove(KsKeyTable *kt, KsKeyEntry *e)
{
	uint32		mask = kt->nslots - 1;
	uint32		place = KsKeyPlace(kt, e->keys, e->keynulls, e->hash);
	uint32		i = KsKeyHome(kt, place, mask);
	uint32		number;
	uint32		j;
	int			k;

	Assert(!(e->flags & (KS_KEY_DIRTY_PUBLISH | KS_KEY_FREE)) && e->ckpt_epoch == 0);
	/* the key's slot is on its probe sequence: the one naming this entry */
	for (;;)
	{
		if (kt->slots[i].entry == 0)
			elog(ERROR, "keyedstate key entry has no slot");
		if (kt->slots[i].hash == place &&
			KsKeyTableEntry(kt, kt->slots[i].entry - 1) == e)
			break;
		i = (i + 1) & mask;
	}
	number = kt->slots[i].entry - 1;
	j = i;
	for (;;)
	{
		uint32		home;

		j = (j + 1) & mask;
		if (kt->slots[j].entry == 0)
			break;
		home = KsKeyHome(kt, kt->slots[j].hash, mask);
		/* the key at j may fill the hole at i unless its home lies in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
		{
			kt->slots[i] = kt->slots[j];
			i = j;
		}
	}
	kt->slots[i].entry = 0;
	kt->slots[i].hash = 0;

	for (k = 0; k < kt->nkeys; k++)
		if (!e->keynulls[k] && !kt->keybyvals[k])
			pfree(DatumGetPointer(e->keys[k]));
	if (e->flags & KS_KEY_EVICTED)
		kt->nevicted--;
	KsKeySetFlags(kt, e, KS_KEY_FREE);
	e->shared = InvalidDsaPointer;
	e->shared_tuple = InvalidDsaPointer;
	e->replay = NULL;

	if (kt->nfree >= kt->maxfree)
	{
		kt->maxfree = Max(kt->maxfree * 2, 1024);
		if (kt->freelist == NULL)
			kt->freelist = MemoryContextAllocHuge(kt->cxt, sizeof(uint32) * kt->maxfree);
		else
			kt->freelist = repalloc_huge(kt->freelist, sizeof(uint32) * kt->maxfree);
	}
	kt->freelist[kt->nfree++] = number;
	kt->nentries--;
}

/* Move the key of entry `from` into free entry `to`, and its slot with it. */
static void
KsKeyTableMove(KsKeyTable *kt, uint64 from, uint64 to)
{
	KsKeyEntry *src = KsKeyTableEntry(kt, from);
	KsKeyEntry *dst = KsKeyTableEntry(kt, to);
	uint32		mask = kt->nslots - 1;
	uint32		pos = KsKeyHome(kt, KsKeyPlace(kt, src->keys, src->keynulls, src->hash), mask);

	memcpy(dst, src, kt->entrysize);
	/* the key's values and nulls lie in the entry itself */
	dst->keys = (Datum *) ((char *) dst + ((char *) src->keys - (char *) src));
	dst->keynulls = (bool *) ((char *) dst + ((char *) src->keynulls - (char *) src));
	while (kt->slots[pos].entry != (uint32) (from + 1))
	{
		if (kt->slots[pos].entry == 0)
			elog(ERROR, "keyedstate key entry has no slot");
		pos = (pos + 1) & mask;
	}
	kt->slots[pos].entry = (uint32) (to + 1);
	/* a forwarding address for the dirty list */
	src->flags = KS_KEY_FREE | KS_KEY_MOVED;
	src->keys = (Datum *) dst;
}

/* Compact the table (see keytable.h). */
void
KsKeyTableCompact(KsKeyTable *kt)
{
	uint64		hi = kt->nallocated;
	uint64		f;
	uint64		keep;
	uint64		size;
	int64		i;
	int			b;

	Assert(kt->npublish == 0 && kt->saving_epoch == 0);
	if (kt->nfree == 0)
		return;
	qsort(kt->freelist, kt->nfree, sizeof(uint32), KsCompareUint32);
	for (f = 0; f < kt->nfree; f++)
	{
		uint64		hole = kt->freelist[f];

		/* the highest key, above the hole */
		while (hi > 0 && (KsKeyTableEntry(kt, hi - 1)->flags & KS_KEY_FREE))
			hi--;
		if (hi == 0 || hole >= hi - 1)
			break;
		KsKeyTableMove(kt, hi - 1, hole);
		hi--;
		if ((f & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	for (i = 0; i < kt->nckpt; i++)
		if (kt->ckpt[i]->flags & KS_KEY_MOVED)
			kt->ckpt[i] = (KsKeyEntry *) kt->ckpt[i]->keys;
	Assert(hi == kt->nentries);
	kt->nallocated = kt->nentries;
	kt->nfree = 0;

	/* the blocks past the keys go back to the system */
	keep = (kt->nallocated + KS_KEY_BLOCK_ENTRIES - 1) >> KS_KEY_BLOCK_SHIFT;
	for (b = kt->nblocks - 1; b >= (int) keep; b--)
	{
#ifdef MADV_HUGEPAGE
		(void) munmap(kt->blocks[b], kt->blocksize);
		kt->mapped_bytes -= kt->blocksize;
#else
		pfree(kt->blocks[b]);
#endif
		kt->blocks[b] = NULL;
	}
	kt->nblocks = (int) keep;

	/* and the index shrinks to the keys, as it grew */
	size = KS_KEYTABLE_INITIAL_SLOTS;
	while (KsKeyTableTooFull(kt->nentries, size) && size < KS_KEYTABLE_MAX_SLOTS)
		size *= 2;
	if (size < kt->nslots)
		KsKeyTableResize(kt, (uint32) size);
	if (kt->freelist != NULL && kt->maxfree > 1024)
	{
		pfree(kt->freelist);
		kt->freelist = NULL;
		kt->maxfree = 0;
	}
	/* the dirty lists grew with the keys too */
	if (kt->publish != NULL && kt->maxpublish > 1024)
	{
		pfree(kt->publish);
		kt->publish = NULL;
		kt->maxpublish = 0;
	}
	if (kt->ckpt != NULL && kt->maxckpt > Max(4 * kt->nckpt, 1024))
	{
		kt->maxckpt = Max(2 * kt->nckpt, 1024);
		kt->ckpt = repalloc_huge(kt->ckpt, sizeof(KsKeyEntry *) * (Size) kt->maxckpt);
	}
}

