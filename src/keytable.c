/*-------------------------------------------------------------------------
 *
 * keytable.c
 *	  The worker's own hash table of keys and transition states.
 *	  See keytable.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "keytable.h"
#include "serialize.h"

#define KS_KEYTABLE_INITIAL_BUCKETS		1024

/* Whether an equality function compares pass-by-value Datums bitwise. */
static bool
KsIsBinaryEq(Oid fnoid)
{
	switch (fnoid)
	{
		case F_INT2EQ:
		case F_INT4EQ:
		case F_INT8EQ:
		case F_OIDEQ:
		case F_BOOLEQ:
		case F_CHAREQ:
		case F_DATE_EQ:
			return true;
		default:
			return false;
	}
}

/* Create an empty key table (see keytable.h). */
KsKeyTable *
KsKeyTableCreate(int nkeys, const Oid *keytypes, const Oid *keycolls,
				 const Oid *eqops, int nstates, MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "keyedstate keys",
											  ALLOCSET_DEFAULT_SIZES);
	KsKeyTable *kt = MemoryContextAllocZero(cxt, sizeof(KsKeyTable));
	int			n = Max(nkeys, 1);
	int			i;

	kt->cxt = cxt;
	kt->nkeys = nkeys;
	kt->nstates = nstates;
	kt->keytypes = MemoryContextAlloc(cxt, sizeof(Oid) * n);
	kt->keycolls = MemoryContextAlloc(cxt, sizeof(Oid) * n);
	kt->keylens = MemoryContextAlloc(cxt, sizeof(int16) * n);
	kt->keybyvals = MemoryContextAlloc(cxt, sizeof(bool) * n);
	kt->hashfns = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * n);
	kt->eqfns = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * n);
	for (i = 0; i < nkeys; i++)
	{
		Oid			lhs;
		Oid			rhs;

		kt->keytypes[i] = keytypes[i];
		kt->keycolls[i] = keycolls[i];
		get_typlenbyval(keytypes[i], &kt->keylens[i], &kt->keybyvals[i]);
		if (!get_op_hash_functions(eqops[i], &lhs, &rhs))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("could not identify a hash function for type %s",
							format_type_be(keytypes[i]))));
		fmgr_info_cxt(lhs, &kt->hashfns[i], cxt);
		fmgr_info_cxt(get_opcode(eqops[i]), &kt->eqfns[i], cxt);
	}
	kt->nbuckets = KS_KEYTABLE_INITIAL_BUCKETS;
	kt->buckets = MemoryContextAllocZero(cxt, sizeof(KsKeyEntry *) * kt->nbuckets);
	return kt;
}

/* The hash of a key (formula in keytable.h). */
uint32
KsHashKeyValues(int nkeys, FmgrInfo *hashfns, const Oid *colls,
				const Datum *keys, const bool *nulls)
{
	uint32		h = 0;
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		uint32		hi = 0;

		if (!nulls[i])
			hi = DatumGetUInt32(FunctionCall1Coll(&hashfns[i], colls[i], keys[i]));
		h = hash_combine(h, hi);
	}
	return h;
}

/* The hash of a key of this table. */
uint32
KsKeyHash(KsKeyTable *kt, const Datum *keys, const bool *nulls)
{
	return KsHashKeyValues(kt->nkeys, kt->hashfns, kt->keycolls, keys, nulls);
}

/* Whether an entry holds the given key. */
static inline bool
KsKeyEquals(KsKeyTable *kt, KsKeyEntry *e, const Datum *keys, const bool *nulls)
{
	int			i;

	for (i = 0; i < kt->nkeys; i++)
	{
		if (e->keynulls[i] != nulls[i])
			return false;
		if (nulls[i])
			continue;
		if (kt->keybyvals[i] && KsIsBinaryEq(kt->eqfns[i].fn_oid))
		{
			if (e->keys[i] != keys[i])
				return false;
		}
		else if (!DatumGetBool(FunctionCall2Coll(&kt->eqfns[i], kt->keycolls[i],
												 e->keys[i], keys[i])))
			return false;
	}
	return true;
}

/* Double the bucket array. */
static void
KsKeyTableGrow(KsKeyTable *kt)
{
	uint32		newsize = kt->nbuckets * 2;
	KsKeyEntry **newb = MemoryContextAllocExtended(kt->cxt, sizeof(KsKeyEntry *) * (Size) newsize, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	uint32		i;

	for (i = 0; i < kt->nbuckets; i++)
	{
		KsKeyEntry *e = kt->buckets[i];

		while (e != NULL)
		{
			KsKeyEntry *next = e->next;
			uint32		b = e->hash & (newsize - 1);

			e->next = newb[b];
			newb[b] = e;
			e = next;
		}
	}
	pfree(kt->buckets);
	kt->buckets = newb;
	kt->nbuckets = newsize;
}

/* Find a key's entry, inserting it if absent (see keytable.h). */
KsKeyEntry *
KsKeyTableLookup(KsKeyTable *kt, const Datum *keys, const bool *nulls,
				 uint32 hash, bool *found)
{
	KsKeyEntry *e;
	Size		size;
	int			i;

	for (e = kt->buckets[hash & (kt->nbuckets - 1)]; e != NULL; e = e->next)
	{
		if (e->hash == hash && KsKeyEquals(kt, e, keys, nulls))
		{
			*found = true;
			return e;
		}
	}

	*found = false;
	if (kt->nentries >= kt->nbuckets)
		KsKeyTableGrow(kt);

	size = MAXALIGN(offsetof(KsKeyEntry, states) + sizeof(KsTransState) * kt->nstates);
	e = MemoryContextAllocZero(kt->cxt, size + MAXALIGN(sizeof(Datum) * kt->nkeys) +
							   sizeof(bool) * Max(kt->nkeys, 1));
	e->hash = hash;
	e->shared = InvalidDsaPointer;
	e->keys = (Datum *) ((char *) e + size);
	e->keynulls = (bool *) ((char *) e->keys + MAXALIGN(sizeof(Datum) * kt->nkeys));
	for (i = 0; i < kt->nkeys; i++)
	{
		e->keynulls[i] = nulls[i];
		if (!nulls[i])
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(kt->cxt);

			e->keys[i] = datumCopy(keys[i], kt->keybyvals[i], kt->keylens[i]);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	e->next = kt->buckets[hash & (kt->nbuckets - 1)];
	kt->buckets[hash & (kt->nbuckets - 1)] = e;
	kt->nentries++;
	return e;
}

/* Append an entry to a dirty list, growing it as needed. */
static void
KsAppendDirty(KsKeyTable *kt, KsKeyEntry ***list, int *n, int *max, KsKeyEntry *e)
{
	if (*n >= *max)
	{
		int			newmax = Max(*max * 2, 1024);

		if (*list == NULL)
			*list = MemoryContextAllocHuge(kt->cxt, sizeof(KsKeyEntry *) * newmax);
		else
			*list = repalloc_huge(*list, sizeof(KsKeyEntry *) * newmax);
		*max = newmax;
	}
	(*list)[(*n)++] = e;
}

/* Flag a key as changed for the next publish and the next checkpoint. */
void
KsKeyMarkDirty(KsKeyTable *kt, KsKeyEntry *e)
{
	if (!(e->flags & KS_KEY_DIRTY_PUBLISH))
	{
		e->flags |= KS_KEY_DIRTY_PUBLISH;
		KsAppendDirty(kt, &kt->publish, &kt->npublish, &kt->maxpublish, e);
	}
	if (!(e->flags & KS_KEY_DIRTY_CHECKPOINT))
	{
		e->flags |= KS_KEY_DIRTY_CHECKPOINT;
		KsAppendDirty(kt, &kt->ckpt, &kt->nckpt, &kt->maxckpt, e);
	}
}

/* Forget the publish dirty list. */
void
KsKeyClearPublish(KsKeyTable *kt)
{
	int			i;

	for (i = 0; i < kt->npublish; i++)
		kt->publish[i]->flags &= ~KS_KEY_DIRTY_PUBLISH;
	kt->npublish = 0;
}

/* Forget the checkpoint dirty list. */
void
KsKeyClearCheckpoint(KsKeyTable *kt)
{
	int			i;

	for (i = 0; i < kt->nckpt; i++)
		kt->ckpt[i]->flags &= ~KS_KEY_DIRTY_CHECKPOINT;
	kt->nckpt = 0;
}

/* Start iterating over every entry. */
void
KsKeyIterInit(KsKeyIter *iter, KsKeyTable *kt)
{
	iter->kt = kt;
	iter->bucket = 0;
	iter->next = NULL;
}

/* The next entry, or NULL at the end. */
KsKeyEntry *
KsKeyIterNext(KsKeyIter *iter)
{
	KsKeyEntry *e = iter->next;

	while (e == NULL)
	{
		if (iter->bucket >= iter->kt->nbuckets)
			return NULL;
		e = iter->kt->buckets[iter->bucket++];
	}
	iter->next = e->next;
	return e;
}

/* Append a key's values (canonical for a stored key). */
void
KsKeySerialize(KsKeyTable *kt, KsKeyEntry *e, StringInfo buf)
{
	int			i;

	for (i = 0; i < kt->nkeys; i++)
		KsWriteDatum(buf, e->keys[i], e->keynulls[i], kt->keylens[i], kt->keybyvals[i]);
}

/* Read key values written by KsKeySerialize. */
void
KsKeyDeserialize(KsKeyTable *kt, const char *data, int len, Datum *keys, bool *nulls)
{
	const char *pos = data;
	const char *end = data + len;
	int			i;

	for (i = 0; i < kt->nkeys; i++)
		keys[i] = KsReadDatum(&pos, end, &nulls[i], kt->keylens[i], kt->keybyvals[i]);
	if (pos != end)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("corrupted keyedstate checkpoint data")));
}
