/*-------------------------------------------------------------------------
 *
 * liveview.c
 *	  The foreign data wrapper behind every live view.
 *
 * Each aggregation's view is `SELECT ... FROM keyedstate_internal.live_<id>`, a
 * foreign table of this wrapper whose columns are the view's.  A scan
 * copies the published rows of the aggregation out of the shared store
 * (store.h) under one shared acquisition of the slot lock, so a query sees
 * the state of exactly one consumed offset, never half a batch.
 *
 * Why a foreign table and not a set-returning function: the planner hands
 * a foreign scan its restriction clauses.  When they compare every
 * grouping key for equality with values known before the scan starts, the
 * scan looks those keys up instead of reading every key (lookup.h).
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

#include "access/reloptions.h"
#include "catalog/pg_foreign_table.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "absent.h"
#include "catalog.h"
#include "cold.h"
#include "lookup.h"
#include "rowerror.h"
#include "settings.h"
#include "shmem.h"
#include "store.h"

PG_FUNCTION_INFO_V1(keyedstate_fdw_handler);
PG_FUNCTION_INFO_V1(keyedstate_fdw_validator);

/* The options of a live foreign table. */
typedef struct KsLiveOptions
{
	int32		aggid;
	int			nkeys;
	AttrNumber *attnums;
	Oid		   *eqops;
	Oid		   *colls;
} KsLiveOptions;

/* Planner state of one live table. */
typedef struct KsLivePlanState
{
	KsLiveOptions opts;
	KsLookupKey *keys;			/* nkeys */
	double		nkeys;			/* keys in the store, or a guess */
	bool		lookup;			/* the restriction clauses allow a lookup */
	KsLookupPlan plan;			/* and that lookup */
} KsLivePlanState;

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
	KsColdScan *cold;			/* evicted keys, read after the published ones */
	char	   *aggname;		/* for the cold rows' messages, once known */
	struct KsRowErrorScan *errscan; /* how it meets error rows (rowerror.h) */
	KsSlotRef  *refs;			/* the aggregation's parts' slots, found per fetch */
	KsAggSlot  *copies;			/* ... and copies of them (max_aggregations each) */
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
 * Planning a scan
 * ----------------------------------------------------------------
 */

/* The number of rows the aggregation's view shows now (cold keys too), or a guess (1000). */
static double
KsEstimateKeys(const KsLiveOptions *opts)
{
	KsSlotRef  *refs;
	KsAggSlot	copy;
	double		keys = 0;
	int			nparts;
	int			n;
	int			i;

	if (!ks_preloaded || KsSharedState == NULL)
		return 1000;
	refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	n = KsFindAggParts(MyDatabaseId, opts->aggid, refs, KsSharedState->max_aggs, &nparts);
	for (i = 0; i < n; i++)
		if (KsSlotSnapshot(&refs[i], &copy))
		{
			/* the key count is the view readers' to know (EXPLAIN shows it); none while loading */
			if (!OidIsValid(copy.view_oid) || pg_class_aclcheck(copy.view_oid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
				break;
			keys += copy.visible_keys + copy.cold_keys;
		}
	pfree(refs);
	return keys > 0 && i == n ? keys : 1000;
}

/* GetForeignRelSize: decide between a point lookup and a full scan. */
static void
KsGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KsLivePlanState *ps = palloc0(sizeof(KsLivePlanState));

	KsGetLiveOptions(foreigntableid, &ps->opts);
	ps->keys = KsLookupKeys(ps->opts.nkeys, ps->opts.attnums, ps->opts.eqops, ps->opts.colls);
	ps->nkeys = KsEstimateKeys(&ps->opts);
	ps->lookup = KsFindLookup(root, baserel, ps->keys, ps->opts.nkeys, baserel->baserestrictinfo,
							   NULL, &ps->plan);
	if (ps->lookup)
		baserel->rows = KsLookupRows(&ps->plan, ps->nkeys);
	else
		baserel->rows = clamp_row_est(ps->nkeys *
									  clauselist_selectivity(root, baserel->baserestrictinfo,
															 0, JOIN_INNER, NULL));
	baserel->fdw_private = ps;
}

/* GetForeignPaths: a lookup or a full scan, and parameterized lookups. */
static void
KsGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	KsLivePlanState *ps = baserel->fdw_private;
	Cost		total;

	if (ps->lookup)
		total = KsLookupCost(&ps->plan, ps->opts.nkeys);
	else
		total = 10.0 + ps->nkeys * cpu_tuple_cost * 2;
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   1.0, total, NIL, NULL, NULL, NIL));
	if (!ps->lookup)
		KsAddParameterizedPaths(root, baserel, ps->keys, ps->opts.nkeys, ps->nkeys);
}

/*
 * GetForeignPlan: the values to look up (found again among the clauses the
 * path enforces), every clause kept as a qual.  The lookup's values go to
 * fdw_exprs, and (lookup or not, isarray, hashprocs, what meeting error rows
 * needs) to fdw_private, for KsBeginForeignScan.
 */
static ForeignScan *
KsGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				 ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	KsLivePlanState *ps = baserel->fdw_private;
	KsLookupPlan lp;
	bool		lookup;

	lookup = KsFindLookup(root, baserel, ps->keys, ps->opts.nkeys, scan_clauses,
						  PATH_REQ_OUTER(&best_path->path), &lp);
	if (!lookup)
		memset(&lp, 0, sizeof(lp));
	return make_foreignscan(tlist, extract_actual_clauses(scan_clauses, false), baserel->relid,
							lp.values,
							list_make4(makeInteger(lookup ? 1 : 0), lp.isarray, lp.hashprocs,
									   KsRowErrorPlan(baserel, scan_clauses)),
							NIL, NIL, outer_plan);
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
	KsRequirePrimary(NULL);
	KsRefuseReadRebuiltHere(ss->opts.aggid);
	if (ss->lookup)
	{
		KsLookupPlan lp = {0};

		lp.values = plan->fdw_exprs;
		lp.isarray = lsecond(plan->fdw_private);
		lp.hashprocs = lthird(plan->fdw_private);
		ss->ls = KsLookupBegin(&node->ss.ps, &lp, ss->opts.nkeys, ss->opts.colls);
	}
	ss->rowcxt = AllocSetContextCreate(node->ss.ps.state->es_query_cxt,
									   "keyedstate live rows", ALLOCSET_DEFAULT_SIZES);
	/* through the view, the view's owner; read directly, the current user */
	ss->relid = RelationGetRelid(node->ss.ss_currentRelation);
	{
		RangeTblEntry *rte = exec_rt_fetch(plan->scan.scanrelid, node->ss.ps.state);

		ss->userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	}
	ss->rowtype = KsRowTypeHash(RelationGetDescr(node->ss.ss_currentRelation));
	ss->errscan = KsRowErrorBegin(&node->ss.ps, plan->scan.scanrelid, lfourth(plan->fdw_private),
								  ss->opts.nkeys, ss->opts.attnums);
	/* once per scan, not per rescan: a nested loop's lookups come here often */
	ss->refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	ss->copies = palloc(sizeof(KsAggSlot) * KsSharedState->max_aggs);
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

/*
 * Find the slots of the aggregation's parts (one, unless it runs in parallel)
 * and check the scan may read them: SELECT on the view, slots of this live
 * table.  Waits up to keyedstate.load_wait for parts still loading (new,
 * recovering, a rescale's).  Returns how many; slots in refs, copies in copies.
 */
static int
KsFindReadableParts(KsLiveScanState *ss, KsSlotRef *refs, KsAggSlot *copies, const char *relname)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ks_load_wait);
	int			max = KsSharedState->max_aggs;
	bool		checked = false;

	for (;;)
	{
		int			nparts;
		int			n = KsFindAggParts(MyDatabaseId, ss->opts.aggid, refs, max, &nparts);
		bool		ready = n == nparts;
		int			i;

		for (i = 0; i < n; i++)
		{
			KsAggSlot  *copy = &copies[i];

			if (!KsSlotSnapshot(&refs[i], copy))
			{
				ready = false;
				continue;
			}
			/* a slot not loaded yet (row type 0) may not name its tables yet */
			if (copy->rowtype != 0 &&
				(copy->live_oid != ss->relid ||
				 (copy->state != KS_STARTING && copy->rowtype != ss->rowtype)))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("foreign table \"%s\" does not belong to aggregation %s",
								relname, KsAggName(copy->view_oid)),
						 errdetail("Its options name another aggregation, or its columns differ from the aggregation's view.")));
			if (OidIsValid(copy->view_oid) &&
				pg_class_aclcheck(copy->view_oid, ss->userid, ACL_SELECT) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(copy->view_oid));
			if (copy->state == KS_FAILED)	/* a failed part fails the view at once */
				return n;
			if (copy->state == KS_STARTING || copy->rowtype == 0 || KsSlotRebuildPending(copy))
				ready = false;
			KsRefuseReadCreatedHere(copy);
		}
		if (ready)
			return n;
		/* is there anything to wait for? (once: it may read the catalog) */
		if (!checked)
			KsRefuseHopelessRead(ss->opts.aggid, ss->relid, n > 0 ? copies[0].view_oid : InvalidOid);
		checked = true;
		if (GetCurrentTimestamp() >= deadline)
			KsRaiseNotLoaded(ss->opts.aggid, refs, n, nparts, n > 0 ? copies[0].view_oid : InvalidOid);
		if (n > 0)
			KsSlotSleep(&refs[0], 10);
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
	KsReportFailed(KsAggName(copy->view_oid), copy->error, copy->failed_offset, copy->owner);
}

/* Raise the error of the first failed part, if any. */
static void
KsReportFailedParts(const KsAggSlot *copies, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (copies[i].state == KS_FAILED)
			KsReportFailedView(&copies[i]);
}

/*
 * Copy the rows of this scan out of the shared store: of every part of
 * the aggregation, each part's as of its own consumed offset.
 */
static void
KsFetchRows(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;
	const char *relname = RelationGetRelationName(node->ss.ss_currentRelation);
	KsSlotRef  *refs = ss->refs;
	KsAggSlot  *copies = ss->copies;
	KsReadResult *results;
	const uint32 *hashes = NULL;	/* NULL and -1: read every key */
	int			nhashes = -1;
	int			n;
	int			i;

	ss->fetched = true;
	ss->next = 0;
	ss->nrows = 0;

	if (ss->lookup)
	{
		nhashes = KsLookupHashes(ss->ls, node->ss.ps.ps_ExprContext, &hashes);

		/* no key can match (`key = NULL`); still only for those who may read */
		if (nhashes == 0)
		{
			n = KsFindReadableParts(ss, refs, copies, relname);
			KsReportFailedParts(copies, n);
			return;
		}
		/* too many keys to look up: read them all */
		if (nhashes < 0)
			hashes = NULL;
	}

	for (;;)
	{
		MinimalTuple *rows = NULL;
		int64		nrows = 0;
		bool		again = false;

		n = KsFindReadableParts(ss, refs, copies, relname);
		KsReportFailedParts(copies, n);
		MemoryContextReset(ss->rowcxt);
		results = MemoryContextAllocZero(ss->rowcxt, sizeof(KsReadResult) * Max(n, 1));
		for (i = 0; i < n && !again; i++)
		{
			KsReadResult *res = &results[i];
			MinimalTuple *part;
			int64		npart;

			KsStoreReadRows(&refs[i], hashes, nhashes,
							KsScanCheck, ss, ss->rowcxt, &part, &npart, res);
			if (res->found && res->state == KS_FAILED)
			{
				memcpy(copies[i].error, res->error, KS_ERROR_LEN);
				KsReadResultsRelease(results, i + 1);
				KsReportFailedView(&copies[i]);
			}
			/* the slot was freed, or went back to loading: look again */
			again = !res->found || res->state == KS_STARTING;
			if (again)
			{
				KsReadResultsRelease(results, i + 1);
				continue;
			}
			if (npart == 0)
				continue;
			if (nrows == 0)
				rows = part;
			else
			{
				rows = repalloc_huge(rows, sizeof(MinimalTuple) * (nrows + npart));
				memcpy(rows + nrows, part, sizeof(MinimalTuple) * npart);
			}
			nrows += npart;
		}
		if (!again)
		{
			ss->rows = rows;
			ss->nrows = nrows;
			break;
		}
	}

	/*
	 * Then the keys evicted to keyedstate_internal.cold, if any (cold.h): each
	 * part's, read with the snapshot taken with its published rows.
	 */
	for (i = 0; i < n; i++)
	{
		MemoryContext oldcxt;

		if (results[i].cold_snapshot == NULL)
			continue;
		if (ss->aggname == NULL)
			ss->aggname = MemoryContextStrdup(node->ss.ps.state->es_query_cxt,
											  KsAggName(copies[0].view_oid));
		oldcxt = MemoryContextSwitchTo(node->ss.ps.state->es_query_cxt);
		ss->cold = KsColdScanChain(ss->cold,
								   KsColdScanBegin(&results[i], hashes, nhashes,
												   RelationGetDescr(node->ss.ss_currentRelation),
												   ss->aggname));
		MemoryContextSwitchTo(oldcxt);
	}
}

/* IterateForeignScan: the next copied row. */
static TupleTableSlot *
KsIterateForeignScan(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	MinimalTuple row;

	if (!ss->fetched)
		KsFetchRows(node);
	for (;;)
	{
		if (ss->next < ss->nrows)
			row = ss->rows[ss->next++];
		else if ((row = KsColdScanNext(ss->cold)) == NULL)
		{
			KsColdScanEnd(ss->cold);
			ss->cold = NULL;
			return ExecClearTuple(slot);
		}
		/* a key whose row could not be computed: raised, or skipped (rowerror.h) */
		if (!KsRowIsError(row))
			break;
		if (KsRowErrorMet(ss->errscan, node->ss.ps.ps_ExprContext, slot, row, ss->copies[0].view_oid))
			return slot;
	}
	ExecForceStoreMinimalTuple(row, slot, false);
	return slot;
}

/* ReScanForeignScan: fetch again (parameters may have changed). */
static void
KsReScanForeignScan(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;

	KsColdScanEnd(ss->cold);
	ss->cold = NULL;
	MemoryContextReset(ss->rowcxt);
	ss->rows = NULL;
	ss->nrows = 0;
	ss->fetched = false;
}

/* EndForeignScan: a cold scan still open; the rest is the query's memory. */
static void
KsEndForeignScan(ForeignScanState *node)
{
	KsLiveScanState *ss = node->fdw_state;

	if (ss != NULL)
	{
		KsColdScanEnd(ss->cold);
		ss->cold = NULL;
	}
}

/*
 * ExplainForeignScan: which aggregation, whether a lookup; with ANALYZE, how
 * many keys were looked up and how many fetches read every key instead.
 */
static void
KsExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	KsLiveScanState *ss = node->fdw_state;

	ExplainPropertyInteger("Aggregation", NULL, ss->opts.aggid, es);
	ExplainPropertyBool("Key Lookup", ss->lookup, es);
	if (es->analyze && ss->ls != NULL)
		KsLookupExplain(ss->ls, es);
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
	routine->PlanForeignModify = KsPlanForeignModify;	/* livewrite.c */
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
