/*-------------------------------------------------------------------------
 *
 * keydirty.c
 *	  Which keys changed since the last publish and since the last
 *	  checkpoint capture: the dirty lists of a key table.  See keytable.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "utils/memutils.h"

#include "keytable.h"

/*
 * Append an entry to a dirty list, growing it as needed.  A key is on a
 * list at most once, so the list never needs more room than the table has
 * keys; counts are 64-bit so that doubling never overflows.
 */
static void
KsAppendDirty(KsKeyTable *kt, KsKeyEntry ***list, int64 *n, int64 *max, KsKeyEntry *e)
{
	if (*n >= *max)
	{
		int64		newmax = Min(Max(*max * 2, 1024), (int64) KS_KEYTABLE_MAX_KEYS);

		if (*n >= newmax)
			elog(ERROR, "keyedstate dirty list holds more entries than keys");

		if (*list == NULL)
			*list = MemoryContextAllocHuge(kt->cxt, sizeof(KsKeyEntry *) * (Size) newmax);
		else
			*list = repalloc_huge(*list, sizeof(KsKeyEntry *) * (Size) newmax);
		*max = newmax;
	}
	(*list)[(*n)++] = e;
}

/* Flag a key as changed for the next publish and the next checkpoint. */
void
KsKeyMarkDirty(KsKeyTable *kt, KsKeyEntry *e)
{
	/* its cold row is stale now, it is no victim, and it is hot (evict.h) */
	e->flags = (e->flags & ~(KS_KEY_COLD_CURRENT | KS_KEY_EVICT)) | KS_KEY_REFERENCED;
	if (!(e->flags & KS_KEY_DIRTY_PUBLISH))
	{
		e->flags |= KS_KEY_DIRTY_PUBLISH;
		KsAppendDirty(kt, &kt->publish, &kt->npublish, &kt->maxpublish, e);
	}
	if (e->ckpt_epoch != kt->ckpt_epoch)
	{
		e->ckpt_epoch = kt->ckpt_epoch;
		KsAppendDirty(kt, &kt->ckpt, &kt->nckpt, &kt->maxckpt, e);
	}
}

/* Flag a key as changed for the next publish only. */
void
KsKeyMarkPublish(KsKeyTable *kt, KsKeyEntry *e)
{
	if (!(e->flags & KS_KEY_DIRTY_PUBLISH))
	{
		e->flags |= KS_KEY_DIRTY_PUBLISH;
		KsAppendDirty(kt, &kt->publish, &kt->npublish, &kt->maxpublish, e);
	}
}

/* Flag a key as changed for the next checkpoint only. */
void
KsKeyMarkCheckpoint(KsKeyTable *kt, KsKeyEntry *e)
{
	if (e->ckpt_epoch != kt->ckpt_epoch)
	{
		e->ckpt_epoch = kt->ckpt_epoch;
		KsAppendDirty(kt, &kt->ckpt, &kt->nckpt, &kt->maxckpt, e);
	}
}

/* Take the checkpoint list and start a new one (see keytable.h). */
uint32
KsKeyCapture(KsKeyTable *kt, KsKeyEntry ***list, int64 *n)
{
	uint32		epoch = kt->ckpt_epoch;

	*list = kt->ckpt;
	*n = kt->nckpt;
	kt->ckpt = NULL;
	kt->nckpt = 0;
	kt->maxckpt = 0;
	/* 0 means "on no list": skip it when the counter wraps */
	if (++kt->ckpt_epoch == 0)
		kt->ckpt_epoch = 1;
	return epoch;
}

/* A capture is written (see keytable.h). */
void
KsKeyCaptureDone(KsKeyTable *kt, KsKeyEntry **list, int64 n, uint32 epoch)
{
	int64		i;

	for (i = 0; i < n; i++)
		if (list[i]->ckpt_epoch == epoch)
			list[i]->ckpt_epoch = 0;
	for (i = 0; i < n; i++)
	{
		KsKeyEntry *e = list[i];

		if ((e->flags & (KS_KEY_DIRTY_PUBLISH | KS_KEY_FREE)) == 0 && KsKeyLeavesStore(e) &&
			e->ckpt_epoch == 0)
			KsKeyTableRemove(kt, e);
	}
	if (list != NULL)
		pfree(list);
}

/* Forget the publish dirty list, removing the expired keys that are clean now. */
void
KsKeyClearPublish(KsKeyTable *kt)
{
	int64		i;

	for (i = 0; i < kt->npublish; i++)
		kt->publish[i]->flags &= ~KS_KEY_DIRTY_PUBLISH;
	for (i = 0; i < kt->npublish; i++)
	{
		KsKeyEntry *e = kt->publish[i];

		if (!(e->flags & KS_KEY_FREE) && KsKeyLeavesStore(e) && e->ckpt_epoch == 0)
			KsKeyTableRemove(kt, e);
	}
	kt->npublish = 0;
}

/* Forget the checkpoint dirty list, as if it had been written. */
void
KsKeyClearCheckpoint(KsKeyTable *kt)
{
	KsKeyEntry **list;
	int64		n;
	uint32		epoch = KsKeyCapture(kt, &list, &n);

	KsKeyCaptureDone(kt, list, n, epoch);
}

