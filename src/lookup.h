/*-------------------------------------------------------------------------
 *
 * lookup.h
 *	  Point lookups of grouping keys in a live view scan (liveview.c).
 *
 * When every grouping key is compared for equality with values known
 * before the scan starts (WHERE sensor_id = 42, = $1, IN (1, 2, 3), or =
 * outer.column on the inner side of a nested loop), the scan hashes those
 * values as the worker hashes keys and visits one hash chain per value
 * instead of every key: a key lookup.  All clauses stay as local quals, so
 * hash collisions (and anything else the lookup does not decide) are
 * filtered out by the executor's recheck.
 *
 * Which clauses a lookup may use is decided as for an index scan on a hash
 * index of the key: the operator must be an equality of the hash operator
 * family that holds the key's equality operator, possibly cross-type
 * (bigint = integer), because a hash family guarantees that equal values of
 * its types hash alike; each value is hashed with the family's hash
 * function for the value's own type.  The clause must compare under the
 * key's collation, or under another one when both are deterministic (then
 * equality is bytewise and the hash ignores the collation).
 *
 * The live table's planning asks for the lookup its clauses allow
 * (KsFindLookup) and adds the parameterized lookup paths
 * (KsAddParameterizedPaths); its scan turns the planned values into the
 * hashes to read (KsLookupBegin, KsLookupHashes).
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_LOOKUP_H
#define KS_LOOKUP_H

#include "keyedstate.h"

#include "commands/explain.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"

/*
 * Most keys one scan looks up (the product of the numbers of values of the
 * grouping keys): past it, the scan reads every key instead, which is
 * correct as well since every clause is rechecked.
 */
#define KS_LOOKUP_MAX_KEYS		100000

/* A grouping key as the lookup planning knows it (opaque). */
typedef struct KsLookupKey KsLookupKey;

/* A lookup of every grouping key, as planned. */
typedef struct KsLookupPlan
{
	List	   *values;			/* per key: the value, or an array of values */
	List	   *isarray;		/* per key: IN (...) or = ANY (array) (IntList) */
	List	   *hashprocs;		/* per key: its values' hash function (OidList) */
	double		nlookups;		/* estimated number of keys looked up */
	Relids		outer;			/* other relations the values refer to */
} KsLookupPlan;

/* Executor state of a key lookup (opaque). */
typedef struct KsLookupState KsLookupState;

/* Describe a live table's grouping keys (its options) for the planning. */
extern KsLookupKey *KsLookupKeys(int nkeys, const AttrNumber *attnums,
								 const Oid *eqops, const Oid *colls);

/*
 * Find a lookup of every grouping key among the clauses, with values that
 * refer to no relation outside `outer`; false if there is none.
 */
extern bool KsFindLookup(PlannerInfo *root, RelOptInfo *baserel,
						 const KsLookupKey *keys, int nkeys,
						 List *clauses, Relids outer, KsLookupPlan *lp);

/* Rows a lookup returns, of `nstored` keys in the store. */
extern double KsLookupRows(const KsLookupPlan *lp, double nstored);

/* Total cost of a lookup of `nkeys` grouping keys. */
extern Cost KsLookupCost(const KsLookupPlan *lp, int nkeys);

/* Add the lookup paths with values taken from other relations. */
extern void KsAddParameterizedPaths(PlannerInfo *root, RelOptInfo *baserel,
									const KsLookupKey *keys, int nkeys,
									double nstored);

/*
 * Prepare the lookup of a scan (lp's values, isarray and hashprocs, from
 * its plan), its value expressions initialized under `parent`.
 */
extern KsLookupState *KsLookupBegin(PlanState *parent, const KsLookupPlan *lp,
									int nkeys, Oid *colls);

/*
 * The distinct hashes of the keys to look up now, into *hashes: their
 * number (0: no key can match), or -1 if they are too many to look up, for
 * the caller to read every key instead (*hashes is then left unset).
 */
extern int	KsLookupHashes(KsLookupState *ls, ExprContext *econtext,
						   const uint32 **hashes);

/* EXPLAIN ANALYZE: keys looked up, and fetches that read every key. */
extern void KsLookupExplain(const KsLookupState *ls, ExplainState *es);

/*
 * livewrite.c: the live table's PlanForeignModify, which refuses an
 * INSERT, UPDATE or DELETE through the aggregation's view, naming it.
 */
struct ModifyTable;
extern List *KsPlanForeignModify(PlannerInfo *root, struct ModifyTable *plan, Index rti,
								 int subplan_index);

#endif							/* KS_LOOKUP_H */
