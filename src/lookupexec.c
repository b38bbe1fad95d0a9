/*-------------------------------------------------------------------------
 *
 * lookupexec.c
 *	  Executing the point lookups planned by lookup.c: at each fetch the
 *	  values are evaluated, every combination of them is hashed as the
 *	  worker hashes keys (KsHashKeyValues), and the distinct hashes go to
 *	  the scan, which reads their hash chains.  See lookup.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "keytable.h"
#include "lookup.h"

/*
 * Executor state of a key lookup.  Everything is allocated when the scan
 * begins, or grown once, so rescans (the inner side of a nested loop, a
 * correlated subquery) leave memory flat.
 */
struct KsLookupState
{
	int			nkeys;
	ExprState **values;			/* per key: its value or array of values */
	bool	   *isarray;
	FmgrInfo   *hashfns;		/* per key: hash function of its values' type */
	Oid		   *colls;			/* per key: its collation */
	Oid		   *elemtypes;		/* per array key: element type last seen */
	int16	   *elemlens;
	bool	   *elembyvals;
	char	   *elemaligns;
	Datum	  **keyvalues;		/* per key: its non-null values */
	int		   *nkeyvalues;
	Datum	   *scalars;		/* storage of the single value of scalar keys */
	Datum	   *combo;			/* one combination of values, being hashed */
	bool	   *combonulls;		/* all false */
	int		   *pos;			/* position of combo in each key's values */
	uint32	   *hashes;			/* distinct key hashes to look up */
	int			nhashes;
	int			maxhashes;
	MemoryContext valuecxt;		/* values of one fetch; reset after hashing */
	uint64		nlooked;		/* keys looked up, over every fetch */
	uint64		nfullscans;		/* fetches that read every key instead */
};

/* ----------------------------------------------------------------
 * Executing a key lookup
 * ----------------------------------------------------------------
 */

/* Prepare the lookup of a scan, in the query's memory. */
KsLookupState *
KsLookupBegin(PlanState *parent, const KsLookupPlan *lp, int nkeys, Oid *colls)
{
	KsLookupState *ls = palloc0(sizeof(KsLookupState));
	List	   *isarray = lp->isarray;
	List	   *hashprocs = lp->hashprocs;
	int			n = nkeys;
	ListCell   *lc;
	int			i;

	if (list_length(lp->values) != n || list_length(hashprocs) != n)
		elog(ERROR, "key lookup of %d values for %d keys", list_length(lp->values), n);
	ls->nkeys = n;
	ls->values = palloc(sizeof(ExprState *) * n);
	ls->isarray = palloc(sizeof(bool) * n);
	ls->hashfns = palloc0(sizeof(FmgrInfo) * n);
	ls->colls = colls;
	ls->elemtypes = palloc0(sizeof(Oid) * n);
	ls->elemlens = palloc0(sizeof(int16) * n);
	ls->elembyvals = palloc0(sizeof(bool) * n);
	ls->elemaligns = palloc0(sizeof(char) * n);
	ls->keyvalues = palloc0(sizeof(Datum *) * n);
	ls->nkeyvalues = palloc0(sizeof(int) * n);
	ls->scalars = palloc0(sizeof(Datum) * n);
	ls->combo = palloc0(sizeof(Datum) * n);
	ls->combonulls = palloc0(sizeof(bool) * n);
	ls->pos = palloc0(sizeof(int) * n);
	ls->maxhashes = 16;
	ls->hashes = palloc(sizeof(uint32) * ls->maxhashes);
	ls->valuecxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate lookup values",
										 ALLOCSET_SMALL_SIZES);
	i = 0;
	foreach(lc, lp->values)
	{
		ls->values[i] = ExecInitExpr(lfirst(lc), parent);
		ls->isarray[i] = list_nth_int(isarray, i) != 0;
		fmgr_info(list_nth_oid(hashprocs, i), &ls->hashfns[i]);
		i++;
	}
	return ls;
}

/*
 * Evaluate the values of one key into ls->keyvalues[i] (in ls->valuecxt,
 * current), leaving out NULLs, which match nothing.
 */
static void
KsLookupEvalValues(KsLookupState *ls, int i, ExprContext *econtext)
{
	bool		isnull;
	Datum		value = ExecEvalExpr(ls->values[i], econtext, &isnull);
	ArrayType  *array;
	Datum	   *elems;
	bool	   *elemnulls;
	int			nelems;
	int			j;

	if (!ls->isarray[i])
	{
		ls->scalars[i] = value;
		ls->keyvalues[i] = &ls->scalars[i];
		ls->nkeyvalues[i] = isnull ? 0 : 1;
		return;
	}
	ls->nkeyvalues[i] = 0;
	if (isnull)
		return;
	array = DatumGetArrayTypeP(value);
	if (ARR_ELEMTYPE(array) != ls->elemtypes[i])
	{
		ls->elemtypes[i] = ARR_ELEMTYPE(array);
		get_typlenbyvalalign(ls->elemtypes[i], &ls->elemlens[i],
							 &ls->elembyvals[i], &ls->elemaligns[i]);
	}
	deconstruct_array(array, ls->elemtypes[i], ls->elemlens[i], ls->elembyvals[i],
					  ls->elemaligns[i], &elems, &elemnulls, &nelems);
	for (j = 0; j < nelems; j++)
		if (!elemnulls[j])
			elems[ls->nkeyvalues[i]++] = elems[j];
	ls->keyvalues[i] = elems;
}

/* qsort comparator of key hashes. */
static int
KsCompareHashes(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return (x > y) - (x < y);
}

/*
 * Compute the distinct hashes of the keys to look up into ls->hashes (and
 * *hashes): every combination of the grouping keys' values, hashed as the
 * worker hashes keys.  Returns their number (0: no key can match), or -1 if
 * they are more than KS_LOOKUP_MAX_KEYS, for the caller to read every key
 * instead.
 */
int
KsLookupHashes(KsLookupState *ls, ExprContext *econtext, const uint32 **hashes)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(ls->valuecxt);
	uint64		ncombos = 1;
	int			i;
	int			n;

	ls->nhashes = 0;
	for (i = 0; i < ls->nkeys; i++)
	{
		KsLookupEvalValues(ls, i, econtext);
		if (ls->nkeyvalues[i] == 0)
			ncombos = 0;
	}
	for (i = 0; i < ls->nkeys && ncombos > 0 && ncombos <= KS_LOOKUP_MAX_KEYS; i++)
		ncombos *= ls->nkeyvalues[i];
	if (ncombos > KS_LOOKUP_MAX_KEYS)
	{
		ls->nfullscans++;
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(ls->valuecxt);
		return -1;
	}

	if (ncombos > (uint64) ls->maxhashes)
	{
		ls->maxhashes = (int) ncombos;
		ls->hashes = repalloc(ls->hashes, sizeof(uint32) * ls->maxhashes);
	}
	memset(ls->pos, 0, sizeof(int) * ls->nkeys);
	while (ls->nhashes < (int) ncombos)
	{
		for (i = 0; i < ls->nkeys; i++)
			ls->combo[i] = ls->keyvalues[i][ls->pos[i]];
		ls->hashes[ls->nhashes++] = KsHashKeyValues(ls->nkeys, ls->hashfns, ls->colls,
													ls->combo, ls->combonulls);
		/* the next combination: the last key's values vary fastest */
		for (i = ls->nkeys - 1; i >= 0; i--)
		{
			if (++ls->pos[i] < ls->nkeyvalues[i])
				break;
			ls->pos[i] = 0;
		}
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(ls->valuecxt);

	/* each hash chain once, so that no row is returned twice */
	if (ls->nhashes > 1)
	{
		qsort(ls->hashes, ls->nhashes, sizeof(uint32), KsCompareHashes);
		n = 1;
		for (i = 1; i < ls->nhashes; i++)
			if (ls->hashes[i] != ls->hashes[n - 1])
				ls->hashes[n++] = ls->hashes[i];
		ls->nhashes = n;
	}
	ls->nlooked += ls->nhashes;
	*hashes = ls->hashes;
	return ls->nhashes;
}

/* ExplainForeignScan's part of a lookup, under ANALYZE: its counters. */
void
KsLookupExplain(const KsLookupState *ls, ExplainState *es)
{
	ExplainPropertyUInteger("Keys Looked Up", NULL, ls->nlooked, es);
	ExplainPropertyUInteger("Full Scans", NULL, ls->nfullscans, es);
}
