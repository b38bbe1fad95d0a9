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
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/twophase.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/sinvaladt.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "source.h"

static void KsFindOffsetIndex(KsSource *src, Relation heap, bool running);

/* Rows read between two checks for interrupts, and for the end of the step. */
#define KS_READ_CHECK_EVERY		1024
#define KS_READ_STOP_EVERY		64

/* Refuse an offset column that no usable btree index leads with (see source.h). */
void
KsSourceCheckIndex(Relation rel, AttrNumber attnum)
{
	KsSource	src;

	memset(&src, 0, sizeof(src));
	src.relid = RelationGetRelid(rel);
	src.offset_attnum = attnum;
	src.offset_type = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
	KsFindOffsetIndex(&src, rel, false);
}

/* Set up a source (see source.h). */
void
KsSourceInit(KsSource *src, KsQueryInfo *info, AttrNumber offset_attnum,
			 Oid seqoid, const char *aggname, int64 consumed, MemoryContext cxt)
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

	f->safe = consumed;
	f->target = consumed;
	f->maxwaits = MaxBackends + max_prepared_xacts + 1;
	f->waits = MemoryContextAlloc(cxt, sizeof(VirtualTransactionId) * f->maxwaits);

	KsSourceCompile(src, info, cxt);
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

	if (src->econtext != NULL)
		FreeExprContext(src->econtext, false);
	src->econtext = CreateStandaloneExprContext();
	src->inputslot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	src->proj = ExecBuildProjectionInfo(tlist, src->econtext, src->inputslot, NULL, NULL);
	src->where = NULL;
	if (info->where != NULL)
		src->where = ExecInitQual(make_ands_implicit(expression_planner(copyObject(info->where))),
								  NULL);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Find the btree index the reader scans: valid, without predicate or
 * expressions, led by the offset column, whose operator family compares
 * the column with int8 bounds.
 */
static void
KsFindOffsetIndex(KsSource *src, Relation heap, bool running)
{
	ListCell   *lc;

	src->indexoid = InvalidOid;
	foreach(lc, RelationGetIndexList(heap))
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		bool		ok = idx->rd_rel->relam == BTREE_AM_OID &&
			idx->rd_index->indisvalid &&
			idx->rd_index->indkey.values[0] == src->offset_attnum &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL);

		if (ok)
		{
			Oid			family = idx->rd_opfamily[0];
			Oid			gt = get_opfamily_member(family, src->offset_type, INT8OID,
												 BTGreaterStrategyNumber);
			Oid			le = get_opfamily_member(family, src->offset_type, INT8OID,
												 BTLessEqualStrategyNumber);

			if (OidIsValid(gt) && OidIsValid(le))
			{
				src->indexoid = RelationGetRelid(idx);
				src->gt_proc = get_opcode(gt);
				src->le_proc = get_opcode(le);
				src->indexcoll = idx->rd_indcollation[0];
			}
		}
		index_close(idx, AccessShareLock);
		if (OidIsValid(src->indexoid))
			break;
	}
	if (!OidIsValid(src->indexoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("offset column \"%s\" of table \"%s\" has no index",
						get_attname(src->relid, src->offset_attnum, false),
						RelationGetRelationName(heap)),
				 running ?
				 errhint("Create a btree index on it, or make it the primary key, then call keyedstate.resume().") :
				 errhint("Create a btree index on it, or make it the primary key.")));
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
	Relation	heap;

	(void) ExecCheckRTPerms(src->rtable, true);
	if (check_enable_rls(src->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("row-level security is enabled on table \"%s\"", get_rel_name(src->relid)),
				 errdetail("Aggregation %s reads every row of its table, which its owner may not.", src->aggname),
				 errhint("Only an owner who bypasses row-level security can aggregate such a table.")));
	if (has_subclass(src->relid) && find_inheritance_children(src->relid, NoLock) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table \"%s\" has inheritance children", get_rel_name(src->relid)),
				 errdetail("Rows inserted into a child are not ordered with the parent's offsets, so aggregation %s could not consume them exactly.",
						   src->aggname)));
	if (src->stale)
	{
		heap = table_open(src->relid, NoLock);
		KsFindOffsetIndex(src, heap, true);
		table_close(heap, NoLock);
		src->stale = false;
	}
}

/*
 * Whether a locker can be ignored: VACUUM and autovacuum take locks that
 * conflict with ShareLock but never insert rows, and waiting for them would
 * stall the aggregation for the length of a vacuum.
 */
static bool
KsLockerIsVacuum(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	if (proc == NULL || proc->lxid != vxid.localTransactionId)
		return false;
	return (proc->statusFlags & (PROC_IN_VACUUM | PROC_IS_AUTOVACUUM)) != 0;
}

/* The pid of the process running a virtual transaction, or 0. */
static int
KsLockerPid(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	return proc ? proc->pid : 0;
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
	int			i;

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
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, src->relid);
	lockers = GetLockConflicts(&tag, ShareLock, &nlockers);
	f->nwaits = 0;
	for (i = 0; VirtualTransactionIdIsValid(lockers[i]); i++)
	{
		if (KsLockerIsVacuum(lockers[i]))
			continue;
		Assert(f->nwaits < f->maxwaits);
		f->waits[f->nwaits++] = lockers[i];
	}
	pfree(lockers);

	if (f->nwaits == 0)
		f->safe = hw;
	else
	{
		f->blocked_since = GetCurrentTimestamp();
		f->blocking_pid = KsLockerPid(f->waits[0]);
	}
	return f->safe;
}

/* The offset of a source row, whatever the integer type of its column. */
static inline int64
KsRowOffset(KsSource *src, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, src->offset_attnum, &isnull);

	if (isnull)
		return PG_INT64_MIN;	/* never within (lo, hi] of an index scan */
	switch (src->offset_type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/* Read a batch of rows (see source.h). */
int64
KsSourceRead(KsSource *src, int64 lo, int64 hi, uint64 limit,
			 KsReadStop stop, KsRowCallback cb, void *arg, int64 *cur_offset,
			 uint64 *nrows)
{
	Relation	heap;
	Relation	index;
	Snapshot	snapshot;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	ExprContext *econtext = src->econtext;
	uint64		nread = 0;
	int64		last = lo;
	bool		exhausted = true;

	*nrows = 0;
	if (hi <= lo)
		return lo;

	/* a snapshot taken now, after the frontier moved: every safe row is in it */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	PushActiveSnapshot(snapshot);
	heap = table_open(src->relid, NoLock);
	index = index_open(src->indexoid, AccessShareLock);
	slot = table_slot_create(heap, NULL);

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterStrategyNumber, INT8OID,
						   src->indexcoll, src->gt_proc, Int64GetDatum(lo));
	ScanKeyEntryInitialize(&keys[1], 0, 1, BTLessEqualStrategyNumber, INT8OID,
						   src->indexcoll, src->le_proc, Int64GetDatum(hi));
	scan = index_beginscan(heap, index, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);

	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		int64		offset = KsRowOffset(src, slot);

		if ((nread % KS_READ_CHECK_EVERY) == 0)
			KsCheckInterrupts();
		if ((nread % KS_READ_STOP_EVERY) == 0 && nread > 0 && stop(arg))
			limit = nread;
		/* stop only between two offsets, so equal offsets stay together */
		if (nread >= limit && offset != last)
		{
			exhausted = false;
			break;
		}
		nread++;
		last = offset;
		*cur_offset = offset;
		econtext->ecxt_scantuple = slot;
		if (src->where == NULL || ExecQual(src->where, econtext))
		{
			TupleTableSlot *input = ExecProject(src->proj);

			input->tts_values[0] = Int64GetDatum(offset);
			input->tts_isnull[0] = false;
			cb(input, arg);
			(*nrows)++;
		}
		ResetExprContext(econtext);
	}

	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(heap, NoLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	return exhausted ? hi : last;
}
