/*-------------------------------------------------------------------------
 *
 * liveview.c
 *	  The foreign data wrapper behind every live view.
 *
 * Each aggregation's view is `SELECT ... FROM keyedstate.live_<id>`, a
 * foreign table of this wrapper whose columns are the view's.  A scan
 * copies the published rows of the aggregation out of the shared store
 * (store.h) under one shared acquisition of the slot lock, so a query sees
 * the state of exactly one consumed offset, never half a batch.
 *
 * Why a foreign table and not a set-returning function: the planner hands
 * a foreign scan its restriction clauses.  When every grouping key is
 * compared for equality with values known before the scan starts
 * (WHERE sensor_id = 42, = $1, IN (1, 2, 3), or = outer.column on the
 * inner side of a nested loop), the scan hashes those values as the worker
 * hashes keys and visits one hash chain per value instead of every key: a
 * key lookup.  All clauses stay as local quals, so hash collisions (and
 * anything else the lookup does not decide) are filtered out by the
 * executor's recheck.
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
 * Options of the foreign table (written by create_aggregation):
 *	aggregation_id	the aggregation's id
 *	key_attnums		per grouping key, the column holding it, or 0
 *	key_eqops		per grouping key, its equality operator
 *	key_collations	per grouping key, its collation
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/hash.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "catalog/pg_am.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "keytable.h"
#include "settings.h"
#include "shmem.h"
#include "store.h"

PG_FUNCTION_INFO_V1(keyedstate_fdw_handler);
PG_FUNCTION_INFO_V1(keyedstate_fdw_validator);

/*
 * Most keys one scan looks up (the product of the numbers of values of the
 * grouping keys): past it, the scan reads every key instead, which is
 * correct as well since every clause is rechecked.
 */
#define KS_LOOKUP_MAX_KEYS		100000

/* The options of a live foreign table. */
typedef struct KsLiveOptions
{
	int32		aggid;
	int			nkeys;
	AttrNumber *attnums;
	Oid		   *eqops;
	Oid		   *colls;
} KsLiveOptions;

/* What the planner needs to know of one grouping key to look it up. */
typedef struct KsLookupKey
{
	AttrNumber	attnum;			/* the view column holding it, or 0 */
	Oid			family;			/* hash opfamily of its equality operator */
	Oid			type;			/* the key's type as that family knows it */
	Oid			coll;			/* its collation */
	bool		deterministic;	/* coll is deterministic (or none) */
} KsLookupKey;

/* One clause a grouping key can be looked up with. */
typedef struct KsKeyMatch
{
	Expr	   *values;			/* the value, or an array of values */
	bool		isarray;		/* IN (...) or = ANY (array) */
	Oid			hashproc;		/* hash function of the values' type */
	double		nvalues;		/* estimated number of values */
	Relids		outer;			/* other relations the values refer to */
} KsKeyMatch;

/* A lookup of every grouping key, as planned. */
typedef struct KsLookupPlan
{
	List	   *values;			/* per key: KsKeyMatch.values */
	List	   *isarray;		/* per key: KsKeyMatch.isarray (IntList) */
	List	   *hashprocs;		/* per key: KsKeyMatch.hashproc (OidList) */
	double		nlookups;		/* estimated number of keys looked up */
	Relids		outer;			/* union of KsKeyMatch.outer */
} KsLookupPlan;

/* Planner state of one live table. */
typedef struct KsLivePlanState
{
	KsLiveOptions opts;
	KsLookupKey *keys;			/* nkeys */
	double		nkeys;			/* keys in the store, or a guess */
	bool		lookup;			/* the restriction clauses allow a lookup */
	KsLookupPlan plan;			/* and that lookup */
} KsLivePlanState;

/*
 * Executor state of a key lookup.  Everything is allocated when the scan
 * begins, or grown once, so rescans (the inner side of a nested loop, a
 * correlated subquery) leave memory flat.
 */
typedef struct KsLookupState
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
} KsLookupState;

/* Executor state of one scan. */
typedef struct KsLiveScanState
{
	KsLiveOptions opts;
	bool		lookup;
	KsLookupState *ls;			/* for a lookup, when executing */
	MemoryContext rowcxt;		/* copied rows */
	MinimalTuple *rows;
	int64		nrows;
	int64		next;
	bool		fetched;
	Oid			relid;			/* the live table scanned */
	Oid			userid;			/* whose privileges the scan checks */
	uint32		rowtype;		/* hash of its row type (KsRowTypeHash) */
} KsLiveScanState;

/* Parse a comma-separated list of integers. */
static int
KsParseInts(const char *s, int64 **out)
{
	int			n = 0;
	int			max = 8;
	char	   *copy = pstrdup(s);
	char	   *tok;
	char	   *save;

	*out = palloc(sizeof(int64) * max);
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
	{
		if (n >= max)
		{
			max *= 2;
			*out = repalloc(*out, sizeof(int64) * max);
		}
		(*out)[n++] = strtoll(tok, NULL, 10);
	}
	return n;
}

/* Read the options of a live foreign table. */
static void
KsGetLiveOptions(Oid relid, KsLiveOptions *opts)
{
	ForeignTable *ft = GetForeignTable(relid);
	ListCell   *lc;
	int64	   *attnums = NULL;
	int64	   *eqops = NULL;
	int64	   *colls = NULL;
	int			n1 = 0;
	int			n2 = 0;
	int			n3 = 0;
	int			i;

	memset(opts, 0, sizeof(KsLiveOptions));
	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "aggregation_id") == 0)
			opts->aggid = pg_strtoint32(defGetString(def));
		else if (strcmp(def->defname, "key_attnums") == 0)
			n1 = KsParseInts(defGetString(def), &attnums);
		else if (strcmp(def->defname, "key_eqops") == 0)
			n2 = KsParseInts(defGetString(def), &eqops);
		else if (strcmp(def->defname, "key_collations") == 0)
			n3 = KsParseInts(defGetString(def), &colls);
	}
	if (opts->aggid == 0 || n1 != n2 || n2 != n3)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("foreign table \"%s\" is not a keyedstate live table", get_rel_name(relid))));
	opts->nkeys = n1;
	opts->attnums = palloc(sizeof(AttrNumber) * Max(n1, 1));
	opts->eqops = palloc(sizeof(Oid) * Max(n1, 1));
	opts->colls = palloc(sizeof(Oid) * Max(n1, 1));
	for (i = 0; i < n1; i++)
	{
		opts->attnums[i] = (AttrNumber) attnums[i];
		opts->eqops[i] = (Oid) eqops[i];
		opts->colls[i] = (Oid) colls[i];
	}
}

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
static KsLookupKey *
KsLookupKeys(const KsLiveOptions *opts)
{
	KsLookupKey *keys = palloc0(sizeof(KsLookupKey) * Max(opts->nkeys, 1));
	int			i;

	for (i = 0; i < opts->nkeys; i++)
	{
		KsLookupKey *key = &keys[i];

		key->attnum = opts->attnums[i];
		key->coll = opts->colls[i];
		key->deterministic = !OidIsValid(key->coll) ||
			get_collation_isdeterministic(key->coll);
		key->family = KsKeyHashFamily(opts->eqops[i], &key->type);
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
static bool
KsFindLookup(PlannerInfo *root, RelOptInfo *baserel, KsLivePlanState *ps,
			 List *clauses, Relids outer, KsLookupPlan *lp)
{
	int			i;

	memset(lp, 0, sizeof(KsLookupPlan));
	if (ps->opts.nkeys == 0)
		return false;
	lp->nlookups = 1;
	for (i = 0; i < ps->opts.nkeys; i++)
	{
		KsLookupKey *key = &ps->keys[i];
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

/* The number of rows the aggregation's view shows now, or a guess (1000). */
static double
KsEstimateKeys(const KsLiveOptions *opts)
{
	KsSlotRef	ref;
	KsAggSlot	copy;

	if (ks_preloaded && KsSharedState != NULL &&
		KsFindAggSlot(MyDatabaseId, opts->aggid, &ref) && KsSlotSnapshot(&ref, &copy) &&
		copy.visible_keys > 0)
		return copy.visible_keys;
	return 1000;
}

/* Rows a lookup returns: at most one per key looked up. */
static double
KsLookupRows(KsLivePlanState *ps, const KsLookupPlan *lp)
{
	return clamp_row_est(Min(lp->nlookups, ps->nkeys));
}

/* Total cost of a lookup: hashing the values, visiting one chain each. */
static Cost
KsLookupCost(KsLivePlanState *ps, const KsLookupPlan *lp)
{
	return 1.0 + lp->nlookups * (cpu_tuple_cost * 2 + cpu_operator_cost * ps->opts.nkeys);
}

/* GetForeignRelSize: decide between a point lookup and a full scan. */
static void
KsGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KsLivePlanState *ps = palloc0(sizeof(KsLivePlanState));

	KsGetLiveOptions(foreigntableid, &ps->opts);
	ps->keys = KsLookupKeys(&ps->opts);
	ps->nkeys = KsEstimateKeys(&ps->opts);
	ps->lookup = KsFindLookup(root, baserel, ps, baserel->baserestrictinfo, NULL, &ps->plan);
	if (ps->lookup)
		baserel->rows = KsLookupRows(ps, &ps->plan);
	else
		baserel->rows = clamp_row_est(ps->nkeys *
									  clauselist_selectivity(root, baserel->baserestrictinfo,
															 0, JOIN_INNER, NULL));
	baserel->fdw_private = ps;
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
static void
KsAddParameterizedPaths(PlannerInfo *root, RelOptInfo *baserel, KsLivePlanState *ps)
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
	for (i = 0; i < ps->opts.nkeys; i++)
	{
		AttrNumber	attnum = ps->keys[i].attnum;

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

		if (!KsFindLookup(root, baserel, ps, clauses, outer, &lp) || bms_is_empty(lp.outer))
			continue;
		add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL,
														   KsLookupRows(ps, &lp),
														   1.0, KsLookupCost(ps, &lp),
														   NIL, lp.outer, NULL, NIL));
	}
}

/* GetForeignPaths: a lookup or a full scan, and parameterized lookups. */
static void
KsGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KsLivePlanState *ps = baserel->fdw_private;
	Cost		total;

	if (ps->lookup)
		total = KsLookupCost(ps, &ps->plan);
	else
		total = 10.0 + ps->nkeys * cpu_tuple_cost * 2;
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   1.0, total, NIL, NULL, NULL, NIL));
	if (!ps->lookup)
		KsAddParameterizedPaths(root, baserel, ps);
}

/*
 * GetForeignPlan: the values to look up (found again among the clauses the
 * path enforces), every clause kept as a qual.
 */
static ForeignScan *
KsGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				 ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	KsLivePlanState *ps = baserel->fdw_private;
	KsLookupPlan lp;
	bool		lookup;

	lookup = KsFindLookup(root, baserel, ps, scan_clauses, PATH_REQ_OUTER(&best_path->path), &lp);
	if (!lookup)
		memset(&lp, 0, sizeof(lp));
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid,
							lp.values,
							list_make3(makeInteger(lookup ? 1 : 0), lp.isarray, lp.hashprocs),
							NIL, NIL, outer_plan);
}

/* ----------------------------------------------------------------
 * Executing a key lookup
 * ----------------------------------------------------------------
 */

/* Prepare the lookup of a scan, in the query's memory. */
static KsLookupState *
KsLookupBegin(ForeignScanState *node, const KsLiveOptions *opts)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	KsLookupState *ls = palloc0(sizeof(KsLookupState));
	List	   *isarray = lsecond(plan->fdw_private);
	List	   *hashprocs = lthird(plan->fdw_private);
	int			n = opts->nkeys;
	ListCell   *lc;
	int			i;

	if (list_length(plan->fdw_exprs) != n || list_length(hashprocs) != n)
		elog(ERROR, "key lookup of %d values for %d keys", list_length(plan->fdw_exprs), n);
	ls->nkeys = n;
	ls->values = palloc(sizeof(ExprState *) * n);
	ls->isarray = palloc(sizeof(bool) * n);
	ls->hashfns = palloc0(sizeof(FmgrInfo) * n);
	ls->colls = opts->colls;
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
	foreach(lc, plan->fdw_exprs)
	{
		ls->values[i] = ExecInitExpr(lfirst(lc), (PlanState *) node);
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
 * Compute the distinct hashes of the keys to look up into ls->hashes: every
 * combination of the grouping keys' values, hashed as the worker hashes
 * keys.  Returns their number (0: no key can match), or -1 if they are more
 * than KS_LOOKUP_MAX_KEYS, for the caller to read every key instead.
 */
static int
KsLookupHashes(KsLookupState *ls, ExprContext *econtext)
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
	return ls->nhashes;
}

/* ----------------------------------------------------------------
 * Executing a scan
 * ----------------------------------------------------------------
 */

/* BeginForeignScan: find the aggregation and prepare the key lookup. */
static void
KsBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	KsLiveScanState *ss = palloc0(sizeof(KsLiveScanState));

	node->fdw_state = ss;
	KsGetLiveOptions(RelationGetRelid(node->ss.ss_currentRelation), &ss->opts);
	ss->lookup = intVal(linitial(plan->fdw_private)) != 0;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	KsRequirePreload();
	if (ss->lookup)
		ss->ls = KsLookupBegin(node, &ss->opts);
	ss->rowcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt,
									   "keyedstate live rows", ALLOCSET_DEFAULT_SIZES);
	/* through the view, the view's owner; read directly, the current user */
	ss->relid = RelationGetRelid(node->ss.ss_currentRelation);
	{
		RangeTblEntry *rte = exec_rt_fetch(plan->scan.scanrelid, node->ss.ps.state);

		ss->userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	}
	ss->rowtype = KsRowTypeHash(RelationGetDescr(node->ss.ss_currentRelation));
}

/*
 * Under the slot lock, before anything is copied: the slot must be the one
 * this live table reads, with this row type.  (The live table's options
 * cannot be changed but by a superuser; this is what makes a wrong one
 * harmless.)
 */
static bool
KsScanCheck(const KsReadResult *res, void *arg)
{
	KsLiveScanState *ss = arg;

	return res->live_oid == ss->relid && res->rowtype == ss->rowtype;
}

/* The view of an aggregation that has no slot yet, for messages. */
static char *
KsAggregationName(int32 aggid, Oid view_oid)
{
	KsCatalogAccess acc;
	Oid			found = view_oid;
	char	   *tree;

	if (!OidIsValid(found))
	{
		KsCatalogOpen(&acc);
		tree = KsCatalogQueryTree(aggid, &found);
		KsCatalogClose(&acc);
		if (tree == NULL)
			return psprintf("%d", aggid);
	}
	return KsAggName(found);
}

/*
 * Find the aggregation's slot and check the scan may read it: the reader
 * needs SELECT on the aggregation's view, and the slot must belong to this
 * live table.  Waits up to keyedstate.load_wait for an aggregation that is
 * still loading (just created, or recovering after a restart).
 */
static void
KsFindReadableSlot(KsLiveScanState *ss, KsSlotRef *ref, KsAggSlot *copy, const char *relname)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ks_load_wait);

	for (;;)
	{
		bool		have = KsFindAggSlot(MyDatabaseId, ss->opts.aggid, ref) &&
			KsSlotSnapshot(ref, copy);

		if (have)
		{
			if (copy->live_oid != ss->relid ||
				(copy->state != KS_STARTING && copy->rowtype != ss->rowtype))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("foreign table \"%s\" does not belong to aggregation %s",
								relname, KsAggName(copy->view_oid)),
						 errdetail("Its options name another aggregation, or its columns differ from the aggregation's view.")));
			if (pg_class_aclcheck(copy->view_oid, ss->userid, ACL_SELECT) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(copy->view_oid));
			if (copy->state != KS_STARTING)
				return;
		}
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("aggregation %s is still loading",
							KsAggregationName(ss->opts.aggid, have ? copy->view_oid : InvalidOid)),
					 errdetail("Its state was not loaded within keyedstate.load_wait (%d ms).", ks_load_wait),
					 errhint("See keyedstate.status for its state.")));
		if (have)
		{
			(void) ConditionVariableTimedSleep(&ref->slot->cv, 10, PG_WAIT_EXTENSION);
			ConditionVariableCancelSleep();
		}
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 10, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* Raise the error of a failed aggregation: why, only to its owners. */
static void
KsReportFailedView(const KsAggSlot *copy)
{
	bool		inspect = has_privs_of_role(GetUserId(), copy->owner);

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("aggregation %s has failed", KsAggName(copy->view_oid)),
			 inspect ? errdetail("%s", copy->error) :
			 errdetail("Its owner can see why in keyedstate.status."),
			 errhint("Its owner can fix the cause and call keyedstate.resume().")));
}

/* Copy the rows of this scan out of the shared store. */
static void
KsFetchRows(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;
	KsSlotRef	ref;
	KsAggSlot	copy;
	KsReadResult res;
	bool		lookup = ss->lookup;

	ss->fetched = true;
	ss->next = 0;
	ss->nrows = 0;

	if (lookup)
	{
		int			nhashes = KsLookupHashes(ss->ls, node->ss.ps.ps_ExprContext);

		/* no key can match (`key = NULL`); still only for those who may read */
		if (nhashes == 0)
		{
			KsFindReadableSlot(ss, &ref, &copy, RelationGetRelationName(node->ss.ss_currentRelation));
			return;
		}
		/* too many keys to look up: read them all */
		if (nhashes < 0)
			lookup = false;
	}

	for (;;)
	{
		KsFindReadableSlot(ss, &ref, &copy, RelationGetRelationName(node->ss.ss_currentRelation));
		if (copy.state == KS_FAILED)
			KsReportFailedView(&copy);
		KsStoreReadRows(&ref, lookup ? ss->ls->hashes : NULL, lookup ? ss->ls->nhashes : -1,
						KsScanCheck, ss, ss->rowcxt, &ss->rows, &ss->nrows, &res);
		if (res.found && res.state == KS_FAILED)
		{
			memcpy(copy.error, res.error, KS_ERROR_LEN);
			KsReportFailedView(&copy);
		}
		/* the slot was freed, or went back to loading: look again */
		if (res.found && res.state != KS_STARTING)
			break;
	}
}

/* IterateForeignScan: the next copied row. */
static TupleTableSlot *
KsIterateForeignScan(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!ss->fetched)
		KsFetchRows(node);
	if (ss->next >= ss->nrows)
		return ExecClearTuple(slot);
	ExecForceStoreMinimalTuple(ss->rows[ss->next++], slot, false);
	return slot;
}

/* ReScanForeignScan: fetch again (parameters may have changed). */
static void
KsReScanForeignScan(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;

	MemoryContextReset(ss->rowcxt);
	ss->rows = NULL;
	ss->nrows = 0;
	ss->fetched = false;
}

/* EndForeignScan: nothing beyond the query's memory. */
static void
KsEndForeignScan(ForeignScanState *node)
{
}

/*
 * ExplainForeignScan: say which aggregation and whether it is a lookup;
 * with ANALYZE, how many keys were looked up and how many fetches read
 * every key instead (too many keys to look up).
 */
static void
KsExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	KsLiveScanState *ss = node->fdw_state;

	ExplainPropertyInteger("Aggregation", NULL, ss->opts.aggid, es);
	ExplainPropertyBool("Key Lookup", ss->lookup, es);
	if (es->analyze && ss->ls != NULL)
	{
		ExplainPropertyUInteger("Keys Looked Up", NULL, ss->ls->nlooked, es);
		ExplainPropertyUInteger("Full Scans", NULL, ss->ls->nfullscans, es);
	}
}

/* The FDW handler. */
Datum
keyedstate_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = KsGetForeignRelSize;
	routine->GetForeignPaths = KsGetForeignPaths;
	routine->GetForeignPlan = KsGetForeignPlan;
	routine->BeginForeignScan = KsBeginForeignScan;
	routine->IterateForeignScan = KsIterateForeignScan;
	routine->ReScanForeignScan = KsReScanForeignScan;
	routine->EndForeignScan = KsEndForeignScan;
	routine->ExplainForeignScan = KsExplainForeignScan;
	PG_RETURN_POINTER(routine);
}

/* The FDW validator: only our own options, only on foreign tables. */
Datum
keyedstate_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (catalog != ForeignTableRelationId ||
			(strcmp(def->defname, "aggregation_id") != 0 &&
			 strcmp(def->defname, "key_attnums") != 0 &&
			 strcmp(def->defname, "key_eqops") != 0 &&
			 strcmp(def->defname, "key_collations") != 0))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for keyedstate_fdw", def->defname)));
	}
	PG_RETURN_VOID();
}
