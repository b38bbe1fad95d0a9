/*-------------------------------------------------------------------------
 *
 * writers.c
 *	  The writer marks: which transactions the frontier waits for.  See
 *	  source.h.
 *
 * The frontier (source.h) waits for every transaction that may hold an
 * offset of a row not yet committed.  A RowExclusiveLock on the table
 * says so only loosely: PostgreSQL grants it while it parses a statement,
 * before it checks any privilege, so any role that can name the table
 * could hold it in an open transaction (BEGIN; PREPARE p AS INSERT ...)
 * and hold back every aggregation over the table for as long as she
 * liked (security review 14).  So the wake-up trigger of every table of a
 * source (waketrig.c), a BEFORE INSERT statement trigger enabled ALWAYS,
 * first takes a writer mark: a lock, in RowExclusiveLock until the end of
 * the transaction, on a tag of the table that only keyedstate takes (a
 * LOCKTAG_USERLOCK: no SQL function takes one).  The executor fires it
 * once it has checked the INSERT privilege, before it evaluates any row,
 * so before the offset column's default takes an offset; COPY FROM and
 * MERGE fire it the same way.  For each table the frontier then waits for
 * the holders of its mark, and for the holders of its lock that may have
 * no mark:
 *	- every one, where the table has no such trigger enabled (ALTER TABLE
 *	  ... DISABLE TRIGGER, pg_restore --disable-triggers, an ancestor of a
 *	  source that is a partition): read after the high-water mark, with
 *	  the invalidations sent before it accepted, so a trigger disabled
 *	  before a writer took its offset is seen disabled;
 *	- background workers (a logical replication apply worker fires no
 *	  statement trigger) and prepared transactions (an apply worker's, in
 *	  a two-phase subscription), everywhere.
 * A client backend holding only the table's lock is not waited for.  What
 * the frontier reads of the triggers and the tree is what is committed, so
 * a transaction that changes them before inserting (ALTER TABLE ... DISABLE
 * TRIGGER, CREATE TABLE ... PARTITION OF, ATTACH PARTITION, then INSERT)
 * takes the mark of the table it changes first (KsMarkWritersOfCommand).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "source.h"

/* The fourth field of a writer mark's tag: tells keyedstate's user locks apart. */
#define KS_WRITER_MARK	0x4B53

/* Whether a table's writers take the mark (one entry of KsSource.marks). */
typedef struct KsMarkEntry
{
	Oid			relid;
	bool		marks;
} KsMarkEntry;

/* The tag of table relid's writer mark. */
static void
KsWriterTag(LOCKTAG *tag, Oid relid)
{
	tag->locktag_field1 = MyDatabaseId;
	tag->locktag_field2 = relid;
	tag->locktag_field3 = 0;
	tag->locktag_field4 = KS_WRITER_MARK;
	tag->locktag_type = LOCKTAG_USERLOCK;
	tag->locktag_lockmethodid = DEFAULT_LOCKMETHOD;
}

/*
 * Before a utility command that may change what the frontier reads of a
 * table's triggers or tree (see the banner): take the mark of the table it
 * names, and of the parents a new partition joins.  A role not allowed to
 * run it fails, and the mark goes with her (sub)transaction.
 */
void
KsMarkWritersOfCommand(Node *parsetree)
{
	List	   *rvs = NIL;
	ListCell   *lc;

	if (IsA(parsetree, AlterTableStmt))
		rvs = list_make1(((AlterTableStmt *) parsetree)->relation);
	else if (IsA(parsetree, CreateStmt))
		rvs = ((CreateStmt *) parsetree)->inhRelations;
	else if (IsA(parsetree, CreateTrigStmt))
		rvs = list_make1(((CreateTrigStmt *) parsetree)->relation);
	else if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TRIGGER)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			List	   *names = lfirst(lc);

			/* (the trigger's name, after its table's) */
			if (list_length(names) > 1)
				rvs = lappend(rvs, makeRangeVarFromNameList(list_truncate(list_copy(names),
																		  list_length(names) - 1)));
		}
	}
	foreach(lc, rvs)
	{
		Oid			relid = RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true);

		if (OidIsValid(relid))
			KsMarkWriter(relid);
	}
}

/* Take the writer mark of table relid (see source.h). */
void
KsMarkWriter(Oid relid)
{
	LOCKTAG		tag;

	KsWriterTag(&tag, relid);
	(void) LockAcquire(&tag, RowExclusiveLock, false, false);
}

/*
 * Whether writers into table relid take the mark: it carries a wake-up
 * trigger that fires BEFORE INSERT, for each statement, ALWAYS (any
 * aggregation's: each takes the same mark).
 */
static bool
KsTableMarksWriters(Oid relid)
{
	Oid			nsp = get_namespace_oid(KS_SCHEMA, true);
	Relation	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		marks = false;

	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!marks && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
		char	   *fname;

		if (!TRIGGER_FOR_BEFORE(trig->tgtype) || !TRIGGER_FOR_INSERT(trig->tgtype) ||
			TRIGGER_FOR_ROW(trig->tgtype) || trig->tgenabled != TRIGGER_FIRES_ALWAYS ||
			get_func_namespace(trig->tgfoid) != nsp)
			continue;
		fname = get_func_name(trig->tgfoid);
		marks = fname != NULL && strcmp(fname, "wake") == 0;
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	return marks;
}

/* Whether writers into table relid of the source take the mark, as cached. */
static bool
KsSourceMarksWriters(KsSource *src, Oid relid)
{
	ListCell   *lc;
	uint64		gen = src->marks_gen;
	bool		marks;

	foreach(lc, src->marks)
	{
		KsMarkEntry *e = lfirst(lc);

		if (e->relid == relid)
			return e->marks;
	}
	marks = KsTableMarksWriters(relid);
	/* (not kept if an invalidation came while the catalog was read) */
	if (gen == src->marks_gen)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(src->markcxt);
		KsMarkEntry *e = palloc(sizeof(KsMarkEntry));

		e->relid = relid;
		e->marks = marks;
		src->marks = lappend(src->marks, e);
		MemoryContextSwitchTo(oldcxt);
	}
	return marks;
}

/* Forget what was read of a table's triggers when it changes (see source.h). */
void
KsWritersRelationChanged(KsSource *src, Oid relid)
{
	ListCell   *lc;
	bool		known = !OidIsValid(relid);

	foreach(lc, src->marks)
		known |= ((KsMarkEntry *) lfirst(lc))->relid == relid;
	if (!known)
		return;
	src->marks_gen++;
	src->marks = NIL;
	MemoryContextReset(src->markcxt);
}

/*
 * Whether a locker of a table's lock is a client backend's transaction:
 * one that fires the wake-up triggers of what it inserts into.
 */
static bool
KsLockerIsClient(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	/* (a prepared transaction's locks are held under its preparer's vxid) */
	return proc != NULL && proc->lxid == vxid.localTransactionId && !proc->isBackgroundWorker;
}

/*
 * The transactions that may be writing into table relid of the source,
 * ended by an invalid one (see the banner); `lockers` are those whose
 * lock on the table conflicts with ShareLock.  Frees lockers or returns it.
 */
VirtualTransactionId *
KsSourceWriters(KsSource *src, Oid relid, VirtualTransactionId *lockers)
{
	LOCKTAG		tag;
	VirtualTransactionId *marked;
	int			n;
	int			nmarked;
	int			i;
	bool		marks = KsSourceMarksWriters(src, relid);

	/* (the mark's holders also where not every writer takes it: DDL's, see KsMarkWritersOfCommand) */
	KsWriterTag(&tag, relid);
	marked = GetLockConflicts(&tag, ShareLock, &nmarked);
	/* (GetLockConflicts' arrays hold every backend and prepared transaction) */
	n = nmarked;
	for (i = 0; VirtualTransactionIdIsValid(lockers[i]); i++)
	{
		int			j;

		if (marks && KsLockerIsClient(lockers[i]))
			continue;
		for (j = 0; j < n && !VirtualTransactionIdEquals(marked[j], lockers[i]); j++)
			;
		if (j == n)
			marked[n++] = lockers[i];
	}
	marked[n].backendId = InvalidBackendId;
	marked[n].localTransactionId = InvalidLocalTransactionId;
	pfree(lockers);
	return marked;
}

/*
 * The pid of a session holding a lock on table relid that a worker's read
 * (AccessShareLock) would wait for, or 0: none, or a prepared transaction
 * (whose locks its dummy process holds, see KsLockerPid in source.c).
 */
int
KsSourceBlockerPid(Oid relid)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	int			n;
	int			pid = 0;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	holders = GetLockConflicts(&tag, AccessShareLock, &n);
	for (int i = 0; pid == 0 && VirtualTransactionIdIsValid(holders[i]); i++)
	{
		PGPROC	   *proc = BackendIdGetProc(holders[i].backendId);

		if (proc != NULL && proc->lxid == holders[i].localTransactionId)
			pid = proc->pid;
	}
	pfree(holders);
	return pid;
}
