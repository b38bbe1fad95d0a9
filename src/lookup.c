/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  Point lookups of grouping keys in a live view scan.
 *	  See lookup.h for which clauses a lookup may use.
 *
 * Planning.  Each grouping key is matched against the restriction clauses
 * (for a parameterized path, the join clauses too); of the clauses that
 * qualify, the one with the fewest values is taken.  A lookup is planned
 * only if every key has one and the keys to look up (the product of their
 * numbers of values) stay within KS_LOOKUP_MAX_KEYS.
 *
 * Execution (lookupexec.c).  At each fetch the values are evaluated, every
 * combination of them is hashed as the worker hashes keys
 * (KsHashKeyValues), and the distinct hashes go to the scan, which reads
 * their hash chains.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/hash.h"
#include "access/htup_details.h"
#include "catalog/pg_am.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "utils/catcache.h"
#include "utils/lsyscache.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"

#include "lookup.h"

/* What the planner needs to know of one grouping key to look it up. */
struct KsLookupKey
{
	AttrNumber	attnum;			/* the view column holding it, or 0 */
	Oid			family;			/* hash opfamily of its equality operator */
	Oid			type;			/* the key's type as that family knows it */
	Oid			coll;			/* its collation */
	bool		deterministic;	/* coll is deterministic (or none) */
};

/* One clause a grouping key can be looked up with. */
typedef struct KsKeyMatch
{
	Expr	   *values;			/* the value, or an array of values */
	bool		isarray;		/* IN (...) or = ANY (array) */
	Oid			hashproc;		/* hash function of the values' type */
	double		nvalues;		/* estimated number of values */
	Relids		outer;			/* other relations the values refer to */
} KsKeyMatch;

/* ----------------------------------------------------------------
 * Planning a key lookup
 * ----------------------------------------------------------------
 */

/*
 * The hash opfamily of a key's equality operator, chosen as
 * get_op_hash_functions chooses it for the worker (keytable.c), so that the
 * family's hash function for the key's type is the one the worker used;
 * its type for the key goes to *keytype.  InvalidOid if there is none.
 */
static Oid
KsKeyHashFamily(Oid eqop, Oid *keytype)
{
	CatCList   *catlist = SearchSysCacheList1(AMOPOPID, ObjectIdGetDatum(eqop));
	Oid			family = InvalidOid;
	int			i;

	for (i = 0; i < catlist->n_members; i++)
	{
		Form_pg_amop aform = (Form_pg_amop) GETSTRUCT(&catlist->members[i]->tuple);

		if (aform->amopmethod == HASH_AM_OID &&
			aform->amopstrategy == HTEqualStrategyNumber &&
			OidIsValid(get_opfamily_proc(aform->amopfamily, aform->amoplefttype,
										 aform->amoplefttype, HASHSTANDARD_PROC)))
		{
			family = aform->amopfamily;
			*keytype = aform->amoplefttype;
			break;
		}
	}
	ReleaseSysCacheList(catlist);
	return family;
}

/* Describe the grouping keys of a live table for the lookup planning. */
KsLookupKey *
KsLookupKeys(int nkeys, const AttrNumber *attnums, const Oid *eqops, const Oid *colls)
{
	KsLookupKey *keys = palloc0(sizeof(KsLookupKey) * Max(nkeys, 1));
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		KsLookupKey *key = &keys[i];

		key->attnum = attnums[i];
		key->coll = colls[i];
		key->deterministic = !OidIsValid(key->coll) ||
			get_collation_isdeterministic(key->coll);
		key->family = KsKeyHashFamily(eqops[i], &key->type);
	}
	return keys;
}

/*
 * Whether an expression is the key column, possibly under binary-compatible
 * relabelings (varchar seen as text), never under a real conversion.
 */
static bool
KsIsKeyVar(Node *node, Index relid, AttrNumber attnum)
{
	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node != NULL && IsA(node, Var) &&
		(Index) ((Var *) node)->varno == relid &&
		((Var *) node)->varattno == attnum &&
		((Var *) node)->varlevelsup == 0;
}

/*
 * Whether equality under the clause's collation implies equality under the
 * key's, so that equal values have equal hashes: the same collation, or two
 * deterministic ones (both then mean bytewise equality).
 */
static bool
KsCollationsAgree(Oid inputcoll, const KsLookupKey *key)
{
	if (inputcoll == key->coll)
		return true;
	if (!OidIsValid(inputcoll) || !OidIsValid(key->coll))
		return false;
	return key->deterministic && get_collation_isdeterministic(inputcoll);
}

/*
 * The planner folds `key = true` into `key` and `key = false` into `NOT
 * key`: if a clause on a boolean key is one of these (or `key IS TRUE`,
 * `key IS FALSE`, which also reject NULL), describe it in *m as the
 * equality it means.
 */
static bool
KsMatchBooleanKeyClause(Expr *clause, Index relid, const KsLookupKey *key, KsKeyMatch *m)
{
	bool		value;

	if (key->type != BOOLOID)
		return false;
	if (KsIsKeyVar((Node *) clause, relid, key->attnum))
		value = true;
	else if (is_notclause(clause) &&
			 KsIsKeyVar((Node *) get_notclausearg(clause), relid, key->attnum))
		value = false;
	else if (IsA(clause, BooleanTest) &&
			 (((BooleanTest *) clause)->booltesttype == IS_TRUE ||
			  ((BooleanTest *) clause)->booltesttype == IS_FALSE) &&
			 KsIsKeyVar((Node *) ((BooleanTest *) clause)->arg, relid, key->attnum))
		value = ((BooleanTest *) clause)->booltesttype == IS_TRUE;
	else
		return false;

	m->hashproc = get_opfamily_proc(key->family, BOOLOID, BOOLOID, HASHSTANDARD_PROC);
	if (!OidIsValid(m->hashproc))
		return false;
	m->values = (Expr *) makeBoolConst(value, false);
	m->isarray = false;
	m->nvalues = 1;
	m->outer = NULL;
	return true;
}

/*
 * If a clause compares a grouping key for equality with values that can be
 * computed before this relation is scanned, describe it in *m: `key op
 * value`, `value op key` or `key op ANY (array)`, op an equality operator
 * of the key's hash family, under an agreeing collation.  The values must
 * not refer to this relation nor be volatile; they may refer to other
 * relations (m->outer), which a parameterized path provides.
 */
static bool
KsMatchKeyClause(PlannerInfo *root, RestrictInfo *ri, Index relid,
				 const KsLookupKey *key, KsKeyMatch *m)
{
	Expr	   *clause = ri->clause;
	Node	   *values;
	Oid			opno;
	Oid			inputcoll;
	bool		isarray;
	bool		valueleft;
	int			strategy;
	Oid			lefttype;
	Oid			righttype;
	Oid			valtype;
	Oid			hashproc;
	Relids		varnos;

	if (IsA(clause, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) clause;

		if (list_length(op->args) != 2)
			return false;
		if (KsIsKeyVar(linitial(op->args), relid, key->attnum))
		{
			values = lsecond(op->args);
			valueleft = false;
		}
		else if (KsIsKeyVar(lsecond(op->args), relid, key->attnum))
		{
			values = linitial(op->args);
			valueleft = true;
		}
		else
			return false;
		opno = op->opno;
		inputcoll = op->inputcollid;
		isarray = false;
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;

		if (!saop->useOr || list_length(saop->args) != 2 ||
			!KsIsKeyVar(linitial(saop->args), relid, key->attnum))
			return false;
		values = lsecond(saop->args);
		valueleft = false;
		opno = saop->opno;
		inputcoll = saop->inputcollid;
		isarray = true;
	}
	else
		return KsMatchBooleanKeyClause(clause, relid, key, m);

	/* an equality of the key's hash family, and strict: NULL matches nothing */
	if (!op_in_opfamily(opno, key->family))
		return false;
	get_op_opfamily_properties(opno, key->family, false, &strategy, &lefttype, &righttype);
	if (strategy != HTEqualStrategyNumber || !op_strict(opno))
		return false;
	valtype = valueleft ? lefttype : righttype;

	/*
	 * Equal values hash alike only under agreeing collations.  Under a
	 * nondeterministic one, only hash the values with the key's own hash
	 * function: hash functions of other types of the family need not honour
	 * the collation (hashname ignores it).
	 */
	if (!KsCollationsAgree(inputcoll, key))
		return false;
	if (!key->deterministic && valtype != key->type)
		return false;
	hashproc = get_opfamily_proc(key->family, valtype, valtype, HASHSTANDARD_PROC);
	if (!OidIsValid(hashproc))
		return false;

	/* values computable before the scan */
	varnos = pull_varnos(root, values);
	if (bms_is_member(relid, varnos) || contain_volatile_functions(values))
		return false;

	m->values = (Expr *) values;
	m->isarray = isarray;
	m->hashproc = hashproc;
	m->nvalues = isarray ? estimate_array_length(values) : 1;
	m->outer = varnos;
	return true;
}

/*
 * Find a lookup of every grouping key among the clauses, with values that
 * refer to no relation outside `outer`; for each key, the clause with the
 * fewest values.  False if some key has no such clause, or if the keys
 * would be too many to look up.
 */
bool
KsFindLookup(PlannerInfo *root, RelOptInfo *baserel, const KsLookupKey *keys,
			 int nkeys, List *clauses, Relids outer, KsLookupPlan *lp)
{
	int			i;

	memset(lp, 0, sizeof(KsLookupPlan));
	if (nkeys == 0)
		return false;
	lp->nlookups = 1;
	for (i = 0; i < nkeys; i++)
	{
		const KsLookupKey *key = &keys[i];
		KsKeyMatch	best = {0};
		bool		found = false;
		ListCell   *lc;

		if (key->attnum <= 0 || !OidIsValid(key->family))
			return false;
		foreach(lc, clauses)
		{
			KsKeyMatch	m;

			if (KsMatchKeyClause(root, lfirst_node(RestrictInfo, lc), baserel->relid, key, &m) &&
				bms_is_subset(m.outer, outer) &&
				(!found || m.nvalues < best.nvalues))
			{
				best = m;
				found = true;
			}
		}
		if (!found)
			return false;
		lp->values = lappend(lp->values, best.values);
		lp->isarray = lappend_int(lp->isarray, best.isarray ? 1 : 0);
		lp->hashprocs = lappend_oid(lp->hashprocs, best.hashproc);
		lp->nlookups *= Max(best.nvalues, 1);
		lp->outer = bms_union(lp->outer, best.outer);
	}
	return lp->nlookups <= KS_LOOKUP_MAX_KEYS;
}

/* Rows a lookup returns: at most one per key looked up. */
double
KsLookupRows(const KsLookupPlan *lp, double nstored)
{
	return clamp_row_est(Min(lp->nlookups, nstored));
}

/* Total cost of a lookup: hashing the values, visiting one chain each. */
Cost
KsLookupCost(const KsLookupPlan *lp, int nkeys)
{
	return 1.0 + lp->nlookups * (cpu_tuple_cost * 2 + cpu_operator_cost * nkeys);
}

/*
 * generate_implied_equalities_for_column callback: whether an equivalence
 * class member is the grouping key's column.
 */
static bool
KsEcMemberIsKey(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				EquivalenceMember *em, void *arg)
{
	return KsIsKeyVar((Node *) em->em_expr, rel->relid, *(AttrNumber *) arg);
}

/* Append a set of relations to a list of them, unless it is there already. */
static List *
KsAppendRelids(List *list, Relids relids)
{
	ListCell   *lc;

	foreach(lc, list)
		if (bms_equal(lfirst(lc), relids))
			return list;
	return lappend(list, relids);
}

/*
 * Add the parameterized lookup paths: a lookup with values taken from other
 * relations (WHERE key = other.column), for the inner side of a nested loop
 * whose outer side provides them, as an index scan would be.
 */
void
KsAddParameterizedPaths(PlannerInfo *root, RelOptInfo *baserel,
						const KsLookupKey *keys, int nkeys, double nstored)
{
	List	   *candidates = NIL;
	List	   *outers = NIL;
	Relids		all = NULL;
	ListCell   *lc;
	int			i;

	/* join clauses, and equalities implied by equivalence classes */
	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (join_clause_is_movable_to(ri, baserel))
			candidates = lappend(candidates, ri);
	}
	for (i = 0; i < nkeys; i++)
	{
		AttrNumber	attnum = keys[i].attnum;

		if (attnum > 0 && baserel->has_eclass_joins)
			candidates = list_concat(candidates,
									 generate_implied_equalities_for_column(root, baserel,
																			KsEcMemberIsKey,
																			&attnum,
																			baserel->lateral_referencers));
	}

	/* each set of outer relations a clause needs, and all of them */
	foreach(lc, candidates)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		Relids		outer = bms_difference(ri->clause_relids, baserel->relids);

		if (bms_is_empty(outer) || bms_overlap(outer, baserel->lateral_referencers))
			continue;
		outers = KsAppendRelids(outers, outer);
		all = bms_union(all, outer);
	}
	if (all != NULL)
		outers = KsAppendRelids(outers, all);

	foreach(lc, outers)
	{
		Relids		outer = lfirst(lc);
		List	   *clauses = list_concat_copy(baserel->baserestrictinfo, candidates);
		KsLookupPlan lp;

		if (!KsFindLookup(root, baserel, keys, nkeys, clauses, outer, &lp) || bms_is_empty(lp.outer))
			continue;
		add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL,
														   KsLookupRows(&lp, nstored),
														   1.0, KsLookupCost(&lp, nkeys),
														   NIL, lp.outer, NULL, NIL));
	}
}
