/*-------------------------------------------------------------------------
 *
 * keytable.c
 *	  The worker's own hash table of keys and transition states.
 *	  See keytable.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <sys/mman.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "keytable.h"
#include "serialize.h"

/* Transparent huge page size, for the entry blocks. */
#define KS_HUGE_PAGE					(2 * 1024 * 1024)

/*
 * Whether an equality function compares pass-by-value Datums by their bits
 * (timestamps too: their extended hash folds the two halves, as hashint8's
 * does, so that keys of one public hash had one place whatever the seed,
 * re-review today 31, F2):
 * then two values are equal exactly when their canonical Datums
 * (KsCanonicalByVal) are, as int4eq compares DatumGetInt32 of both, and a
 * key is compared without a function call.
 */
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
		case F_TIME_EQ:
		case F_TIMESTAMP_EQ:
		case F_TIMESTAMPTZ_EQ:
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

	kt->seed = pg_prng_uint32(&pg_global_prng_state);
	kt->seed64 = pg_prng_uint64(&pg_global_prng_state);
	kt->placed = true;
	kt->cxt = cxt;
	kt->nkeys = nkeys;
	kt->nstates = nstates;
	kt->keytypes = MemoryContextAlloc(cxt, sizeof(Oid) * n);
	kt->keycolls = MemoryContextAlloc(cxt, sizeof(Oid) * n);
	kt->keylens = MemoryContextAlloc(cxt, sizeof(int16) * n);
	kt->keybyvals = MemoryContextAlloc(cxt, sizeof(bool) * n);
	kt->hashfns = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * n);
	kt->eqfns = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * n);
	kt->binaryeq = MemoryContextAllocZero(cxt, sizeof(bool) * n);
	kt->xhashfns = MemoryContextAllocZero(cxt, sizeof(FmgrInfo) * n);
	for (i = 0; i < nkeys; i++)
	{
		TypeCacheEntry *tce;
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
		kt->binaryeq[i] = kt->keybyvals[i] && KsIsBinaryEq(kt->eqfns[i].fn_oid);
		if (kt->binaryeq[i])
			continue;
		/* the extended form of the same hash function (its opfamily's), or none */
		tce = lookup_type_cache(keytypes[i], TYPECACHE_HASH_PROC | TYPECACHE_HASH_EXTENDED_PROC);
		if (tce->hash_proc == lhs && OidIsValid(tce->hash_extended_proc))
			fmgr_info_cxt(tce->hash_extended_proc, &kt->xhashfns[i], cxt);
		else
			kt->placed = false;
	}
	kt->shapes = KsKeyShapesCapture(nkeys, keytypes, cxt);
	kt->entrysize = MAXALIGN(offsetof(KsKeyEntry, states) + sizeof(KsTransState) * nstates) +
		MAXALIGN(sizeof(Datum) * nkeys) + MAXALIGN(sizeof(bool) * n);
	kt->maxblocks = 16;
	kt->blocks = MemoryContextAllocZero(cxt, sizeof(char *) * kt->maxblocks);
	kt->nslots = KS_KEYTABLE_INITIAL_SLOTS;
	kt->ckpt_epoch = 1;
	kt->slots = MemoryContextAllocZero(cxt, sizeof(KsKeySlot) * kt->nslots);
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

/* Where a key goes in the index (see keytable.h). */
uint32
KsKeyPlace(KsKeyTable *kt, const Datum *keys, const bool *nulls, uint32 hash)
{
	uint64		h = kt->seed64;

	if (!kt->placed)
		return hash;
	for (int i = 0; i < kt->nkeys; i++)
	{
		uint64		hi = 0;

		if (nulls[i])
			hi = 0;
		else if (kt->binaryeq[i])
		{
			Datum		d = KsCanonicalByVal(keys[i], kt->keylens[i]);

			hi = hash_bytes_extended((const unsigned char *) &d, sizeof(Datum), kt->seed64);
		}
		else
			hi = DatumGetUInt64(FunctionCall2Coll(&kt->xhashfns[i], kt->keycolls[i], keys[i],
												  UInt64GetDatum(kt->seed64)));
		h = hash_combine64(h, hi);
	}
	return (uint32) (h ^ (h >> 32));
}

/* What a key's place depends on besides the seed (see keytable.h). */
uint64
KsKeyPlaceScheme(KsKeyTable *kt)
{
	uint64		h = hash_bytes_uint32_extended(kt->placed ? 1 : 0, KS_PLACE_SCHEME_VERSION);

	for (int i = 0; i < kt->nkeys; i++)
	{
		h = hash_combine64(h, hash_bytes_uint32_extended(kt->keytypes[i], 0));
		h = hash_combine64(h, hash_bytes_uint32_extended(kt->keycolls[i], 1));
		h = hash_combine64(h, hash_bytes_uint32_extended(kt->binaryeq[i] ? 1 : 0, 2));
		h = hash_combine64(h, hash_bytes_uint32_extended(kt->hashfns[i].fn_oid, 3));
		h = hash_combine64(h, hash_bytes_uint32_extended(kt->xhashfns[i].fn_oid, 4));
	}
	return h;
}

/* Seed KsKeyPlace (see keytable.h). */
void
KsKeyTableSetPlaceSeed(KsKeyTable *kt, uint64 seed)
{
	if (kt->nentries > 0)
		elog(ERROR, "keyedstate key table reseeded with keys in it");
	kt->seed64 = seed;
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
		if (kt->binaryeq[i])
		{
			/* stored keys are canonical; the other may come from any C function */
			if (e->keys[i] != KsCanonicalByVal(keys[i], kt->keylens[i]))
				return false;
		}
		else if (!DatumGetBool(FunctionCall2Coll(&kt->eqfns[i], kt->keycolls[i],
												 e->keys[i], keys[i])))
			return false;
	}
	return true;
}

/* Resize the index to `newsize` slots, re-placing every entry by its stored hash. */
void
KsKeyTableResize(KsKeyTable *kt, uint32 newsize)
{
	uint32		mask = newsize - 1;
	KsKeySlot  *newslots = MemoryContextAllocExtended(kt->cxt, sizeof(KsKeySlot) * (Size) newsize,
													  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	uint32		i;

	for (i = 0; i < kt->nslots; i++)
	{
		uint32		pos;

		/* (an error leaves the old index whole) */
		if ((i & 65535) == 0)
			CHECK_FOR_INTERRUPTS();
		if (kt->slots[i].entry == 0)
			continue;
		pos = KsKeyHome(kt, kt->slots[i].hash, mask);
		while (newslots[pos].entry != 0)
			pos = (pos + 1) & mask;
		newslots[pos] = kt->slots[i];
	}
	pfree(kt->slots);
	kt->slots = newslots;
	kt->nslots = newsize;
}

/* Grow the index for `nentries` keys (see keytable.h). */
void
KsKeyTableReserve(KsKeyTable *kt, uint64 nentries)
{
	uint64		size = kt->nslots;

	while (KsKeyTableTooFull(nentries, size) && size < KS_KEYTABLE_MAX_SLOTS)
		size *= 2;
	if (size != kt->nslots)
		KsKeyTableResize(kt, (uint32) size);
}

#ifdef MADV_HUGEPAGE
/* Reset callback of the table's context: unmap the entry blocks. */
static void
KsKeyTableUnmap(void *arg)
{
	KsKeyTable *kt = (KsKeyTable *) arg;
	int			b;

	for (b = 0; b < kt->nblocks; b++)
		(void) munmap(kt->blocks[b], kt->blocksize);
	kt->nblocks = 0;
	kt->mapped_bytes = 0;
}
#endif

/*
 * A new block of entries.  Where the kernel has transparent huge pages, the
 * block is mapped by itself, aligned to and sized in huge pages, and
 * advised to use them before it is touched: with many keys, lookups touch
 * entries at random, and one TLB entry then covers thousands of them; a
 * new block also faults in 2 MB at a time.  The blocks are unmapped when
 * the table's context goes away.
 */
static char *
KsKeyTableNewBlock(KsKeyTable *kt)
{
#ifdef MADV_HUGEPAGE
	Size		mapsize;
	char	   *map;
	char	   *block;

	if (kt->blocksize == 0)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(kt->cxt, sizeof(MemoryContextCallback));

		kt->blocksize = TYPEALIGN(KS_HUGE_PAGE, kt->entrysize * KS_KEY_BLOCK_ENTRIES);
		cb->func = KsKeyTableUnmap;
		cb->arg = kt;
		MemoryContextRegisterResetCallback(kt->cxt, cb);
	}
	/* map one huge page more, then trim to an aligned block */
	mapsize = kt->blocksize + KS_HUGE_PAGE;
	map = mmap(NULL, mapsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on a request of size %zu for the keys of a keyedstate aggregation.",
						   kt->blocksize)));
	block = (char *) TYPEALIGN(KS_HUGE_PAGE, (uintptr_t) map);
	if (block > map)
		(void) munmap(map, block - map);
	if (map + mapsize > block + kt->blocksize)
		(void) munmap(block + kt->blocksize, (map + mapsize) - (block + kt->blocksize));
	(void) madvise(block, kt->blocksize, MADV_HUGEPAGE);
	kt->mapped_bytes += kt->blocksize;
	return block;
#else
	return MemoryContextAllocHuge(kt->cxt, kt->entrysize * KS_KEY_BLOCK_ENTRIES);
#endif
}

/* A zeroed new entry: a removed key's, or the next one of the current block. */
static KsKeyEntry *
KsKeyTableNewEntry(KsKeyTable *kt, uint64 *number)
{
	uint64		i = kt->nallocated;
	KsKeyEntry *e;

	if (kt->nfree > 0)
	{
		i = kt->freelist[--kt->nfree];
		e = KsKeyTableEntry(kt, i);
		memset(e, 0, kt->entrysize);
		*number = i;
		return e;
	}

	/* the index refuses keys first; entry numbers plus one must fit a slot */
	if (i >= KS_KEYTABLE_MAX_KEYS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("keyedstate aggregation has too many keys"),
				 errdetail("An aggregation holds at most " UINT64_FORMAT " keys.",
						   KS_KEYTABLE_MAX_KEYS)));
	if ((i & (KS_KEY_BLOCK_ENTRIES - 1)) == 0)
	{
		int			b = (int) (i >> KS_KEY_BLOCK_SHIFT);

		if (b >= kt->maxblocks)
		{
			kt->maxblocks *= 2;
			kt->blocks = repalloc(kt->blocks, sizeof(char *) * kt->maxblocks);
		}
		kt->blocks[b] = KsKeyTableNewBlock(kt);
		kt->nblocks = b + 1;
	}
	e = KsKeyTableEntry(kt, i);
	memset(e, 0, kt->entrysize);
	kt->nallocated++;
	*number = i;
	return e;
}

/* The entry of a key, or NULL (see keytable.h). */
KsKeyEntry *
KsKeyTableFind(KsKeyTable *kt, const Datum *keys, const bool *nulls, uint32 hash)
{
	return KsKeyTableFindPlaced(kt, keys, nulls, KsKeyPlace(kt, keys, nulls, hash));
}

/* The same, the key's place known (see keytable.h). */
KsKeyEntry *
KsKeyTableFindPlaced(KsKeyTable *kt, const Datum *keys, const bool *nulls, uint32 place)
{
	uint32		mask = kt->nslots - 1;
	uint32		pos = KsKeyHome(kt, place, mask);
	uint32		probes = 0;

	while (kt->slots[pos].entry != 0)
	{
		if (kt->slots[pos].hash == place)
		{
			KsKeyEntry *e = KsKeyTableEntry(kt, kt->slots[pos].entry - 1);

			if (KsKeyEquals(kt, e, keys, nulls))
				return e;
		}
		pos = (pos + 1) & mask;
		/* a run this long is a flood (see KsKeyHome): never without a way out */
		if ((++probes & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	return NULL;
}

/* Find a key's entry, inserting it if absent (see keytable.h). */
KsKeyEntry *
KsKeyTableLookup(KsKeyTable *kt, const Datum *keys, const bool *nulls,
				 uint32 hash, bool *found)
{
	return KsKeyTableLookupPlaced(kt, keys, nulls, hash, KsKeyPlace(kt, keys, nulls, hash), found);
}

/* The same, the key's place known (see keytable.h). */
KsKeyEntry *
KsKeyTableLookupPlaced(KsKeyTable *kt, const Datum *keys, const bool *nulls,
					   uint32 hash, uint32 place, bool *found)
{
	uint32		mask = kt->nslots - 1;
	uint32		pos = KsKeyHome(kt, place, mask);
	uint32		probes = 0;
	KsKeyEntry *e;
	Size		size;
	uint64		number;
	int			i;

	for (;;)
	{
		KsKeySlot  *s = &kt->slots[pos];

		if (s->entry == 0)
			break;
		if (s->hash == place)
		{
			e = KsKeyTableEntry(kt, s->entry - 1);
			if (KsKeyEquals(kt, e, keys, nulls))
			{
				*found = true;
				return e;
			}
		}
		pos = (pos + 1) & mask;
		/* a run this long is a flood (see KsKeyHome): never without a way out */
		if ((++probes & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}

	/* not found: keep the index at most three quarters full */
	*found = false;
	if (KsKeyTableTooFull(kt->nentries + 1, kt->nslots))
	{
		if (kt->nslots >= KS_KEYTABLE_MAX_SLOTS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("keyedstate aggregation has too many keys"),
					 errdetail("An aggregation holds at most " UINT64_FORMAT " keys.",
							   KS_KEYTABLE_MAX_KEYS)));
		KsKeyTableResize(kt, kt->nslots * 2);
		mask = kt->nslots - 1;
		pos = KsKeyHome(kt, place, mask);
		while (kt->slots[pos].entry != 0)
			pos = (pos + 1) & mask;
	}

	size = MAXALIGN(offsetof(KsKeyEntry, states) + sizeof(KsTransState) * kt->nstates);
	e = KsKeyTableNewEntry(kt, &number);
	e->hash = hash;
	/* a key new since the capture being written is not part of it */
	e->saved_epoch = kt->saving_epoch;
	e->shared = InvalidDsaPointer;
	e->shared_tuple = InvalidDsaPointer;
	e->keys = (Datum *) ((char *) e + size);
	e->keynulls = (bool *) ((char *) e->keys + MAXALIGN(sizeof(Datum) * kt->nkeys));
	for (i = 0; i < kt->nkeys; i++)
	{
		e->keynulls[i] = nulls[i];
		if (!nulls[i])
		{
			/* a key must not depend on a source row that may be vacuumed away */
			MemoryContext oldcxt = MemoryContextSwitchTo(kt->cxt);

			if (kt->keybyvals[i])
				e->keys[i] = KsCanonicalByVal(keys[i], kt->keylens[i]);
			else
				e->keys[i] = KsDatumCopyOwned(keys[i], false, kt->keylens[i]);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	kt->nentries++;
	kt->slots[pos].hash = place;
	kt->slots[pos].entry = (uint32) (number + 1);
	return e;
}

/* Start iterating over every entry, in the order keys first appeared. */
void
KsKeyIterInit(KsKeyIter *iter, KsKeyTable *kt)
{
	iter->kt = kt;
	iter->next = 0;
}

/* The next entry, or NULL at the end. */
KsKeyEntry *
KsKeyIterNext(KsKeyIter *iter)
{
	while (iter->next < iter->kt->nallocated)
	{
		KsKeyEntry *e = KsKeyTableEntry(iter->kt, iter->next++);

		if (!(e->flags & KS_KEY_FREE))
			return e;
	}
	return NULL;
}

/* Append a key's values (canonical for a stored key). */
void
KsKeySerialize(KsKeyTable *kt, KsKeyEntry *e, StringInfo buf)
{
	int			i;

	for (i = 0; i < kt->nkeys; i++)
		KsWriteDatum(buf, e->keys[i], e->keynulls[i], kt->keylens[i], kt->keybyvals[i]);
}

/* Read key values written by KsKeySerialize (see keytable.h). */
void
KsKeyDeserialize(KsKeyTable *kt, const char *data, uint32 len, const char *aggname,
				 Datum *keys, bool *nulls)
{
	KsReader	r;
	int			i;

	KsReaderInit(&r, data, len, aggname);
	for (i = 0; i < kt->nkeys; i++)
	{
		keys[i] = KsReadDatum(&r, &nulls[i], kt->keylens[i], kt->keybyvals[i], "a key");
		/* name functions run strlen over the value */
		if (!nulls[i] && kt->keytypes[i] == NAMEOID &&
			memchr(DatumGetPointer(keys[i]), '\0', NAMEDATALEN) == NULL)
			KsCheckpointCorrupted(aggname, "A key of type name is not NUL-terminated.");
	}
	if (KsReaderLeft(&r) != 0)
		KsCheckpointCorrupted(aggname, "A key has %zu bytes more than its %d values.",
							  KsReaderLeft(&r), kt->nkeys);
}

/* Give an entry the spelling of equal key values (see keytable.h). */
void
KsKeyTableRespell(KsKeyTable *kt, KsKeyEntry *e, const Datum *keys, const bool *nulls)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(kt->cxt);
	int			i;

	for (i = 0; i < kt->nkeys; i++)
	{
		/* equal keys are both NULL or neither (KsKeyTableLookup) */
		if (nulls[i] || e->keynulls[i])
			continue;
		if (kt->keybyvals[i])
			e->keys[i] = KsCanonicalByVal(keys[i], kt->keylens[i]);
		else
		{
			Datum		old = e->keys[i];

			e->keys[i] = KsDatumCopyOwned(keys[i], false, kt->keylens[i]);
			pfree(DatumGetPointer(old));
		}
	}
	MemoryContextSwitchTo(oldcxt);
}
