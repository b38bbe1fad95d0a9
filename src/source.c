/*-------------------------------------------------------------------------
 *
 * source.c
 *	  The source reader: the safe offset frontier, the checks of every
 *	  step, the offset index, and reading batches of input rows (the offset
 *	  column and its sequence are offsets.c).  See source.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/twophase.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/prep.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/sinvaladt.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "source.h"

/*
 * Rows read between two checks for interrupts, and for the end of the step.
 * The end of the step is checked every KS_READ_STOP_EVERY rows while rows
 * take less than KS_READ_SLOW_US each; the time they take is looked at
 * after the first row, then after twice as many each time: rows slow to
 * read (slow functions in the WHERE, the keys or the arguments) are
 * checked one by one, so that a step ends after its budget, well within
 * the step timeout; and every src->stop_rows rows if fewer (rows whose
 * keys come back from the cold tier in large states: a budget's hold).
 */
#define KS_READ_CHECK_EVERY		1024
#define KS_READ_STOP_EVERY		64
#define KS_READ_SLOW_US			100

/*
 * The WHERE's conditions in the order PostgreSQL's planner evaluates a
 * scan's (order_qual_clauses): constants folded, ANDs flattened, then
 * cheapest first, the written order kept among equals.  So a guard
 * (v <> 0 AND 10 / v > 1, in either order) protects what the plain
 * query's protects, and a row without a window's time is dropped first.
 */
static List *
KsOrderedQuals(Expr *where)
{
	List	   *quals = make_ands_implicit(canonicalize_qual(expression_planner(copyObject(where)), false));
	int			n = list_length(quals);
	Node	  **nodes = palloc(sizeof(Node *) * Max(n, 1));
	Cost	   *costs = palloc(sizeof(Cost) * Max(n, 1));
	int			i;
	int			j;

	for (i = 0; i < n; i++)
	{
		QualCost	cost;
		Node	   *node = list_nth(quals, i);
		Cost		c;

		cost_qual_eval_node(&cost, node, NULL);
		c = cost.per_tuple;
		/* insertion sort, stable as the planner's */
		for (j = i; j > 0 && costs[j - 1] > c; j--)
		{
			nodes[j] = nodes[j - 1];
			costs[j] = costs[j - 1];
		}
		nodes[j] = node;
		costs[j] = c;
	}
	list_free(quals);
	quals = NIL;
	for (i = 0; i < n; i++)
		quals = lappend(quals, nodes[i]);
	return quals;
}

static int64 KsSourceMaxOffset(KsSource *src);

/* Set up a source (see source.h). */
void
KsSourceInit(KsSource *src, KsQueryInfo *info, AttrNumber offset_attnum,
			 Oid seqoid, const char *aggname, int64 consumed, bool restoring, MemoryContext cxt)
{
	KsFrontier *f = &src->frontier;

	memset(src, 0, sizeof(KsSource));
	src->relid = info->source_relid;
	src->offset_attnum = offset_attnum;
	src->offset_type = get_atttype(src->relid, offset_attnum);
	src->seqoid = seqoid;
	src->aggname = aggname;
	src->rtable = info->query->rtable;
	src->stale = true;
	src->seq_seen = consumed;
	src->restoring = restoring;

	f->safe = consumed;
	f->target = consumed;
	f->maxwaits = MaxBackends + max_prepared_xacts + 1;
	f->waits = MemoryContextAlloc(cxt, sizeof(VirtualTransactionId) * f->maxwaits);
	src->leafcxt = AllocSetContextCreate(cxt, "keyedstate source leaves", ALLOCSET_SMALL_SIZES);
	src->markcxt = AllocSetContextCreate(cxt, "keyedstate writer marks", ALLOCSET_SMALL_SIZES);
}

/*
 * Compile the WHERE and the input row: a projection whose first column is
 * a placeholder for the offset (set by the reader), then the input
 * expressions.  expression_planner folds constants and inlines SQL
 * functions, as the planner would for the query itself.
 */
void
KsSourceCompile(KsSource *src, KsQueryInfo *info, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	List	   *tlist = NIL;
	List	   *vars;
	ListCell   *lc;
	AttrNumber	resno = 1;
	TupleDesc	desc;

	tlist = lappend(tlist, makeTargetEntry((Expr *) makeConst(INT8OID, -1, InvalidOid, sizeof(int64),
															  Int64GetDatum(0), false, FLOAT8PASSBYVAL),
										   resno++, NULL, false));
	foreach(lc, info->inputexprs)
		tlist = lappend(tlist, makeTargetEntry(expression_planner(copyObject(lfirst(lc))),
											   resno++, NULL, false));
	desc = ExecTypeFromTL(tlist);
	src->planned = NIL;
	foreach(lc, tlist)
		src->planned = lappend(src->planned, ((TargetEntry *) lfirst(lc))->expr);

	if (src->econtext != NULL)
		FreeExprContext(src->econtext, false);
	src->econtext = CreateStandaloneExprContext();
	src->inputslot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	src->proj = ExecBuildProjectionInfo(tlist, src->econtext, src->inputslot, NULL, NULL);
	src->where = NULL;
	if (info->where != NULL)
	{
		List	   *quals = KsOrderedQuals(info->where);

		src->planned = list_concat(src->planned, quals);
		src->where = ExecInitQual(quals, NULL);
	}
	/* the columns read, each once, for KsSourceCheckColumns (sourcetree.c) */
	src->nvars = 0;
	vars = pull_var_clause((Node *) lappend(list_copy(info->inputexprs), info->where),
						   PVC_RECURSE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS | PVC_RECURSE_PLACEHOLDERS);
	src->vars = palloc(sizeof(Var *) * Max(list_length(vars), 1));
	foreach(lc, vars)
	{
		int			i;

		for (i = 0; i < src->nvars && !equal(src->vars[i], lfirst(lc)); i++)
			;
		if (i == src->nvars)
			src->vars[src->nvars++] = (Var *) lfirst(lc);
	}
	MemoryContextSwitchTo(oldcxt);
}

/* Lock the table and its sequence for this step, without waiting. */
bool
KsSourceLock(Oid relid, Oid seqoid)
{
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return false;
	if (!ConditionalLockRelationOid(seqoid, AccessShareLock))
		return false;
	return true;
}

/* The checks of every step (see source.h). */
void
KsSourceCheck(KsSource *src)
{
	char		relkind = get_rel_relkind(src->relid);

	(void) ExecCheckRTPerms(src->rtable, true);
	KsCheckOffsetPrivilege(src->relid, src->offset_attnum, GetUserId());
	if (check_enable_rls(src->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("row-level security is enabled on table \"%s\"", get_rel_name(src->relid)),
				 errdetail("Aggregation %s reads every row of its table, which its owner may not.", src->aggname),
				 errhint("Only an owner who bypasses row-level security can aggregate such a table.")));
	if (relkind != RELKIND_PARTITIONED_TABLE && has_subclass(src->relid) &&
		find_inheritance_children(src->relid, NoLock) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table \"%s\" has inheritance children", get_rel_name(src->relid)),
				 errdetail("Rows inserted into a child are not ordered with the parent's offsets, so aggregation %s could not consume them exactly.",
						   src->aggname)));
	/* a table attached to a partitioned table since the load is in a tree too */
	src->tree = relkind == RELKIND_PARTITIONED_TABLE || get_rel_relispartition(src->relid);
	/*
	 * A table that lost its offset index, or whose offset default changed
	 * (or a partition's, or a parent's), fails here, before anything is
	 * read and whether or not there is anything to read.
	 */
	if (src->stale)
		(void) KsSourceFindLeaves(src);
	/*
	 * Once per load: rows of the table above the sequence wait until it
	 * passes them, and a sync does not wait for them (KsSourceReadSequence
	 * warns).  They are no evidence that the sequence went backwards: a
	 * writer with INSERT alone may give a row any offset, and failing the
	 * aggregation at its next load for that let her fail another owner's
	 * (review security 26, F3).  That evidence is what the checkpoints saw
	 * the sequence hand out (sequence_seen), which a rebuild keeps.
	 */
	if (!src->table_seen && !src->stale && !src->leaf_busy)
	{
		src->table_max = KsSourceMaxOffset(src);
		src->table_seen = true;
	}
}

/* The highest offset of a row visible now in any leaf (PG_INT64_MIN: none). */
static int64
KsSourceMaxOffset(KsSource *src)
{
	int64		max = PG_INT64_MIN;
	int			i;

	for (i = 0; i < src->nleaves; i++)
	{
		KsLeaf	   *leaf = &src->leaves[i];
		Relation	heap = table_open(leaf->relid, NoLock);
		Relation	index = index_open(leaf->indexoid, NoLock);	/* locked by KsSourceFindLeaves */
		TupleTableSlot *slot = table_slot_create(heap, NULL);
		IndexScanDesc scan = index_beginscan(heap, index, GetActiveSnapshot(), 0, 0);

		/* backwards from the end: the first row with an offset is the highest */
		index_rescan(scan, NULL, 0, NULL, 0);
		while (index_getnext_slot(scan, BackwardScanDirection, slot))
		{
			int64		offset = KsLeafRowOffset(src->offset_type, leaf->offset_attnum, slot);

			CHECK_FOR_INTERRUPTS();
			if (offset == PG_INT64_MIN)
				continue;		/* a NULL, sorted last */
			max = Max(max, offset);
			break;
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		index_close(index, NoLock);
		table_close(heap, NoLock);
	}
	return max;
}

/*
 * Whether a locker can be ignored: VACUUM, autovacuum and CREATE INDEX (or
 * REINDEX) CONCURRENTLY take locks that conflict with ShareLock but never
 * insert rows in their transaction, and waiting for them would stall the
 * aggregation for the length of a vacuum or an index build.
 */
static bool
KsLockerCannotInsert(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	if (proc == NULL || proc->lxid != vxid.localTransactionId)
		return false;
	return (proc->statusFlags & (PROC_IN_VACUUM | PROC_IS_AUTOVACUUM | PROC_IN_SAFE_IC)) != 0;
}

/* Whether a virtual transaction is one of a list ended by an invalid one. */
static bool
KsVxidListed(VirtualTransactionId vxid, const VirtualTransactionId *list)
{
	for (; VirtualTransactionIdIsValid(*list); list++)
		if (VirtualTransactionIdEquals(*list, vxid))
			return true;
	return false;
}

/*
 * Whether a virtual transaction holds, on a relation, a lock that lets it
 * insert (RowExclusiveLock or stronger, but not ShareUpdateExclusiveLock
 * or ShareLock), by the lock manager's whole status (*status, read once).
 */
static bool
KsHoldsInsertLock(LockData **status, VirtualTransactionId vxid, Oid relid)
{
	LOCKMASK	insert = LOCKBIT_ON(RowExclusiveLock) | LOCKBIT_ON(ShareRowExclusiveLock) |
		LOCKBIT_ON(ExclusiveLock) | LOCKBIT_ON(AccessExclusiveLock);
	int			i;

	if (*status == NULL)
		*status = GetLockStatusData();
	for (i = 0; i < (*status)->nelements; i++)
	{
		LockInstanceData *l = &(*status)->locks[i];

		if (l->locktag.locktag_type == LOCKTAG_RELATION &&
			l->locktag.locktag_field1 == MyDatabaseId && l->locktag.locktag_field2 == relid &&
			l->backend == vxid.backendId && l->lxid == vxid.localTransactionId &&
			(l->holdMask & insert) != 0)
			return true;
	}
	return false;
}

/*
 * The pid of the process running a virtual transaction, or 0: also for a
 * prepared transaction, whose locks its dummy PGPROC holds under the
 * preparing backend's id, which a later session may have taken.
 */
static int
KsLockerPid(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	return proc != NULL && proc->lxid == vxid.localTransactionId ? proc->pid : 0;
}

/*
 * Move the frontier: forget writers that have ended; when none is left the
 * target becomes safe, and a new target is taken from the sequence along
 * with the writers that may still hold offsets up to it.  The sequence is
 * checked on the way.
 */
int64
KsSourceAdvance(KsSource *src)
{
	KsFrontier *f = &src->frontier;
	KsSequenceState st;
	int64		hw;
	LOCKTAG		tag;
	VirtualTransactionId *lockers;
	int			nlockers;
	int			nother;
	LockData   *status = NULL;	/* the lock manager's, if needed */
	int			i;
	List	   *tree;
	List	   *relids;
	ListCell   *lc;

	KsSourceReadSequence(src, &st);

	if (f->nwaits > 0)
	{
		int			j = 0;

		for (i = 0; i < f->nwaits; i++)
		{
			/* with wait = false, false means still running */
			if (!VirtualXactLock(f->waits[i], false))
				f->waits[j++] = f->waits[i];
		}
		f->nwaits = j;
		if (j > 0)
		{
			f->blocking_pid = KsLockerPid(f->waits[0]);
			return f->safe;
		}
		f->safe = f->target;
		f->blocking_pid = 0;
	}

	if (!st.is_called)
		return f->safe;
	hw = st.last_value;
	if (hw <= f->target)
		return f->safe;

	/* read the high-water mark first, then who may still be writing below it */
	f->target = hw;
	f->nwaits = 0;
	/* (the triggers as committed before: writers.c) */
	AcceptInvalidationMessages();
	tree = KsSourceTreeRelids(src);
	relids = tree != NIL ? tree : list_make1_oid(src->relid);
	foreach(lc, relids)
	{
		VirtualTransactionId *sue = NULL;
		VirtualTransactionId *strong = NULL;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		lockers = GetLockConflicts(&tag, ShareLock, &nlockers);
		/*
		 * Those holding ShareUpdateExclusiveLock (ANALYZE, CREATE INDEX
		 * CONCURRENTLY, VALIDATE CONSTRAINT) conflict too, but insert only
		 * if they also hold RowExclusiveLock; only they are looked up in
		 * the lock manager's whole status, when there are any.
		 */
		if (VirtualTransactionIdIsValid(lockers[0]))
			sue = GetLockConflicts(&tag, ShareUpdateExclusiveLock, &nother);
		if (sue != NULL && VirtualTransactionIdIsValid(sue[0]))
			strong = GetLockConflicts(&tag, RowExclusiveLock, &nother);
		nother = 0;
		for (i = 0; VirtualTransactionIdIsValid(lockers[i]); i++)
		{
			if (KsLockerCannotInsert(lockers[i]))
				continue;
			if (strong != NULL && KsVxidListed(lockers[i], sue) && !KsVxidListed(lockers[i], strong) &&
				!KsHoldsInsertLock(&status, lockers[i], lfirst_oid(lc)))
				continue;
			lockers[nother++] = lockers[i];
		}
		lockers[nother].backendId = InvalidBackendId;
		lockers[nother].localTransactionId = InvalidLocalTransactionId;
		/* of a client's, only those with the table's writer mark (writers.c) */
		lockers = KsSourceWriters(src, lfirst_oid(lc), lockers);
		for (i = 0; VirtualTransactionIdIsValid(lockers[i]); i++)
		{
			int			j;

			/* one transaction may lock several tables of the tree */
			for (j = 0; j < f->nwaits; j++)
				if (VirtualTransactionIdEquals(f->waits[j], lockers[i]))
					break;
			if (j < f->nwaits)
				continue;
			Assert(f->nwaits < f->maxwaits);
			f->waits[f->nwaits++] = lockers[i];
		}
		pfree(lockers);
		if (sue != NULL)
			pfree(sue);
		if (strong != NULL)
			pfree(strong);
	}
	list_free(relids);

	if (f->nwaits == 0)
		f->safe = hw;
	else
	{
		f->blocked_since = GetCurrentTimestamp();
		f->blocking_pid = KsLockerPid(f->waits[0]);
	}
	return f->safe;
}

/* One leaf's scan in a batch, at its next row. */
typedef struct KsLeafScan
{
	KsLeaf	   *leaf;
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		offset;			/* of the row in slot */
} KsLeafScan;

/* End a leaf's scan. */
static void
KsLeafScanEnd(KsLeafScan *ls)
{
	index_endscan(ls->scan);
	ExecDropSingleTupleTableSlot(ls->slot);
	index_close(ls->index, NoLock);
	table_close(ls->heap, NoLock);
}

/* Move a leaf's scan to its next row; false (and ended) when there is none. */
static bool
KsLeafScanNext(KsSource *src, KsLeafScan *ls)
{
	if (index_getnext_slot(ls->scan, ForwardScanDirection, ls->slot))
	{
		ls->offset = KsLeafRowOffset(src->offset_type, ls->leaf->offset_attnum, ls->slot);
		return true;
	}
	KsLeafScanEnd(ls);
	return false;
}

/*
 * Read a batch of rows (see source.h): every leaf's offset index from lo
 * to hi, merged in offset order (a plain table is its one leaf).
 */
int64
KsSourceRead(KsSource *src, int64 lo, int64 hi, uint64 limit,
			 KsReadStop stop, KsRowCallback cb, void *arg, int64 *cur_offset,
			 uint64 *nrows)
{
	Snapshot	snapshot;
	KsLeafScan *active;
	int			nactive = 0;
	ExprContext *econtext = src->econtext;
	uint64		nread = 0;
	int			stop_every = 1;
	int			stop_most = KS_READ_STOP_EVERY;
	TimestampTz checked = GetCurrentTimestamp();
	int64		last = lo;
	bool		exhausted = true;
	int			i;

	*nrows = 0;
	if (hi <= lo)
		return lo;
	if (!KsSourceFindLeaves(src))
		return lo;

	/* a snapshot taken now, after the frontier moved: every safe row is in it */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	PushActiveSnapshot(snapshot);

	active = palloc(sizeof(KsLeafScan) * Max(src->nleaves, 1));
	for (i = 0; i < src->nleaves; i++)
	{
		KsLeaf	   *leaf = &src->leaves[i];
		KsLeafScan *ls = &active[nactive];
		ScanKeyData keys[2];

		ls->leaf = leaf;
		ls->heap = table_open(leaf->relid, NoLock);
		ls->index = index_open(leaf->indexoid, NoLock);	/* locked by KsSourceFindLeaves */
		ls->slot = table_slot_create(ls->heap, NULL);
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterStrategyNumber, INT8OID,
							   leaf->indexcoll, leaf->gt_proc, Int64GetDatum(lo));
		ScanKeyEntryInitialize(&keys[1], 0, 1, BTLessEqualStrategyNumber, INT8OID,
							   leaf->indexcoll, leaf->le_proc, Int64GetDatum(hi));
		ls->scan = index_beginscan(ls->heap, ls->index, snapshot, 2, 0);
		index_rescan(ls->scan, keys, 2, NULL, 0);
		if (KsLeafScanNext(src, ls))
			nactive++;
	}

	while (src->stop_rows > 0 && stop_most > src->stop_rows)
		stop_most /= 2;
	while (nactive > 0)
	{
		KsLeafScan *ls = &active[0];
		int64		offset;
		TupleTableSlot *row;

		/* the leaf at the smallest offset (usually the only one with rows) */
		for (i = 1; i < nactive; i++)
			if (active[i].offset < ls->offset)
				ls = &active[i];
		offset = ls->offset;

		if ((nread % KS_READ_CHECK_EVERY) == 0)
			KsCheckInterrupts();
		/* stop_every is a power of two: a mask, not a division per row */
		if ((nread & (stop_every - 1)) == 0 && nread > 0)
		{
			TimestampTz now = GetCurrentTimestamp();
			bool		slow = now - checked > (int64) KS_READ_SLOW_US * stop_every;

			if (slow)
				stop_every = 1;
			else if (stop_every < stop_most)
				stop_every *= 2;
			checked = now;
			/* fast rows: every stop_most rows (a budget's hold is checked so) */
			if ((slow || nread % stop_most == 0) && stop(arg))
				limit = nread;
		}
		/* stop only between two offsets, so equal offsets stay together */
		if (nread >= limit && offset != last)
		{
			exhausted = false;
			break;
		}
		nread++;
		last = offset;
		*cur_offset = offset;
		row = ls->slot;
		if (ls->leaf->map != NULL)
			row = execute_attr_map_slot(ls->leaf->map, row, ls->leaf->srcslot);
		econtext->ecxt_scantuple = row;
		if (src->where == NULL || ExecQual(src->where, econtext))
		{
			TupleTableSlot *input = ExecProject(src->proj);

			input->tts_values[0] = Int64GetDatum(offset);
			input->tts_isnull[0] = false;
			cb(input, arg);
			(*nrows)++;
		}
		ResetExprContext(econtext);
		if (!KsLeafScanNext(src, ls))
			*ls = active[--nactive];
	}

	for (i = 0; i < nactive; i++)
		KsLeafScanEnd(&active[i]);
	pfree(active);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	return exhausted ? hi : last;
}

/* The CREATE [FOREIGN] TABLE ... PARTITION OF a command is, or NULL (see source.h). */
CreateStmt *
KsPartitionCreateStmt(Node *parsetree)
{
	CreateStmt *stmt = NULL;

	if (IsA(parsetree, CreateStmt))
		stmt = (CreateStmt *) parsetree;
	else if (IsA(parsetree, CreateForeignTableStmt))
		stmt = &((CreateForeignTableStmt *) parsetree)->base;
	return stmt != NULL && stmt->partbound != NULL ? stmt : NULL;
}
