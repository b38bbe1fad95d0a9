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
 *	  ... DISABLE TRIGGER, pg_restore --disable-triggers) and is not
 *	  partitioned: read after the high-water mark, with the invalidations
 *	  sent before it accepted, so a trigger disabled before a writer took
 *	  its offset is seen disabled (a writer into a partitioned table, an
 *	  ancestor of a source that is a partition say, takes the table's mark
 *	  once its privileges are checked: KsWritersCheckPerms);
 *	- background workers but keyedstate's own (a logical replication
 *	  apply worker fires no statement trigger, nor does another
 *	  extension's writing tuples itself), everywhere.  A prepared
 *	  transaction is waited for like a client: a background worker's
 *	  takes the marks of what it wrote before it prepares
 *	  (KsLockerIsPrepared).
 * A client backend, or a keyedstate worker (KsIsKeyedstateWorker), holding
 * only the table's lock is not waited for.  What
 * the frontier reads of the triggers and the tree is what is committed, so
 * a transaction that changes them before inserting (ALTER TABLE ... DISABLE
 * TRIGGER, CREATE TABLE ... PARTITION OF, ATTACH PARTITION, then INSERT)
 * takes the mark of the table it changes first (KsMarkWritersOfCommand,
 * by the names the command gives, for a role allowed to change the table),
 * and a wake-up trigger's change takes it again by the trigger's OID
 * (KsMarkTriggerChanged, from the object access hook: the name may lead
 * elsewhere once the command holds its lock).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "postmaster/bgworker.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "catalog.h"
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
 * A partitioned table has no wake-up trigger where it is an ancestor of a
 * source, and a statement trigger of a partition does not fire for rows
 * routed into it: a writer into a partitioned table takes the table's mark
 * once its INSERT privilege was checked, in ExecutorCheckPerms_hook, which
 * the executor calls (InitPlan, for INSERT and MERGE) and COPY FROM too,
 * with the range table of the relations they opened and locked, after
 * PostgreSQL's own checks passed: before any row is evaluated, so before
 * the offset column's default takes an offset.  The relations are the
 * ones the command then writes into, by OID (security review 16: marks
 * taken by name before COPY ran went to a table another of the name hid).
 * The frontier then waits, on such a table too, for the mark's holders
 * only among client backends (security review 14, F6 of re-review 8: on
 * the parent of a source that is a partition, a role without any
 * privilege held the aggregations back with BEGIN; PREPARE p AS INSERT).
 */
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;

/* Whether the utility command running is a CREATE OR REPLACE TRIGGER. */
static bool ks_replacing_trigger = false;

static void KsMarkAtPrepare(XactEvent event, void *arg);

/* ExecutorCheckPerms_hook: the marks of the partitioned tables about to be inserted into. */
static bool
KsWritersCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	ListCell   *lc;

	if (prev_ExecutorCheckPerms &&
		!prev_ExecutorCheckPerms(rangeTable, ereport_on_violation))
		return false;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

		if (KsInsertsIntoPartitioned(rte))
			KsMarkWriterAndNewAncestors(rte->relid);
	}
	return true;
}

/*
 * A wake-up trigger was altered (ALTER TABLE ... DISABLE or ENABLE TRIGGER)
 * or is being dropped: the mark of its table, by the trigger's OID, from
 * the object access hook (orphans.c; see the banner).  One being replaced
 * (CREATE OR REPLACE TRIGGER, `replaced`) is refused.
 */
void
KsMarkTriggerChanged(Oid trigoid, bool replaced)
{
	Oid			wake = KsTriggerFunctionOid("wake");
	Relation	trigrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	/* (a trigger created, not replaced: a new one changes no wake-up trigger) */
	if (!OidIsValid(wake) || (replaced && !ks_replacing_trigger))
		return;
	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(trigrel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
		bool		is_wake = (trig->tgfoid == wake);

		/*
		 * CREATE OR REPLACE TRIGGER rewrites the row in place (this sees its
		 * version before): over the wake-up trigger, with another function
		 * the table would stop marking its writers (re-review 11); over the
		 * TRUNCATE guard, the source could be emptied (re-review 12)
		 */
		if (replaced && (is_wake || trig->tgfoid == KsTriggerFunctionOid("refuse_truncate")))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot replace trigger \"%s\" on table \"%s\"",
							NameStr(trig->tgname), get_rel_name(trig->tgrelid)),
					 is_wake ?
					 errdetail("It is the wake-up trigger of a keyedstate aggregation, which keeps its aggregation exact.") :
					 errdetail("It keeps TRUNCATE from emptying the source of a keyedstate aggregation.")));
		if (is_wake)
			KsMarkWriter(trig->tgrelid);
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
}

/* Install the permission-check hook and the callback at PREPARE (see source.h). */
void
KsWritersInit(void)
{
	prev_ExecutorCheckPerms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = KsWritersCheckPerms;
	RegisterXactCallback(KsMarkAtPrepare, NULL);
}

/*
 * Before a utility command that may change what the frontier reads of a
 * table's triggers or tree (see the banner): take the mark of the table it
 * names, and of the parents a new partition joins, where the role may
 * change that table.
 */
void
KsMarkWritersOfCommand(Node *parsetree)
{
	List	   *rvs = NIL;
	ListCell   *lc;

	ks_replacing_trigger = IsA(parsetree, CreateTrigStmt) && ((CreateTrigStmt *) parsetree)->replace;
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

		/*
		 * Only for a role that may change the table: DROP TRIGGER IF EXISTS
		 * and CREATE TABLE IF NOT EXISTS skip a missing object before they
		 * check anything, and the mark would stay with anybody's open
		 * transaction (security review 15).  Each command needs the
		 * table's ownership, CREATE TRIGGER its TRIGGER privilege.
		 */
		if (OidIsValid(relid) &&
			(pg_class_ownercheck(relid, GetUserId()) ||
			 (IsA(parsetree, CreateTrigStmt) &&
			  pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) == ACLCHECK_OK)))
			KsMarkWriter(relid);
	}
}

/* The aggregation a wake-up trigger's row names, or -1 (see source.h). */
int32
KsWakeTriggerAggregation(HeapTuple tup, TupleDesc desc)
{
	Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
	bool		isnull;
	Datum		args;
	const char *arg;
	int32		aggid;
	int			len = 0;

	if (trig->tgnargs != 1)
		return -1;
	args = heap_getattr(tup, Anum_pg_trigger_tgargs, desc, &isnull);
	if (isnull)
		return -1;
	/* one argument: its bytes and a terminating zero */
	arg = VARDATA_ANY(DatumGetByteaPP(args));
	if (sscanf(arg, "%d%n", &aggid, &len) != 1 || arg[len] != '\0' || aggid < 0)
		return -1;
	return aggid;
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
 * Take the mark of table relid and, where one link of the partition tree
 * above it was made in this transaction (CREATE TABLE ... PARTITION OF,
 * ATTACH PARTITION: a pg_inherits row of this transaction), of every table
 * above that link.  The frontier reads the committed tree: it does not
 * know the tables below that link yet, and looks at the ones above, which
 * this transaction holds (re-review 11: the parent's mark, taken by the DDL
 * command's name, could go to another table; re-review 12: a table with
 * partitions of its own attached, written into through its old leaves).
 * A tree committed all the way up needs nothing more: the frontier knows
 * the table, and its own mark.
 */
void
KsMarkWriterAndNewAncestors(Oid relid)
{
	bool		below_new = false;
	Relation	inhrel;

	KsMarkWriter(relid);
	if (!get_rel_relispartition(relid))
		return;
	inhrel = table_open(InheritsRelationId, AccessShareLock);
	while (get_rel_relispartition(relid))
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;
		Oid			parent = InvalidOid;

		ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(relid));
		scan = systable_beginscan(inhrel, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			parent = ((Form_pg_inherits) GETSTRUCT(tup))->inhparent;
			below_new |= TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data));
		}
		systable_endscan(scan);
		if (!OidIsValid(parent))
			break;
		if (below_new)
			KsMarkWriter(parent);
		relid = parent;
	}
	table_close(inhrel, AccessShareLock);
}

/*
 * After a command made table relid a partition (CREATE TABLE ... PARTITION
 * OF, ATTACH PARTITION): the marks of every table above it, by OID, in the
 * command's transaction, before it can insert into it.  (Its wake-up
 * trigger marks them too when it fires, but the same transaction may
 * disable it first: re-review 12.)
 */
void
KsMarkAncestorsOf(Oid relid)
{
	List	   *ancestors = get_partition_ancestors(relid);
	ListCell   *lc;

	foreach(lc, ancestors)
		KsMarkWriter(lfirst_oid(lc));
	list_free(ancestors);
}

/*
 * Whether writers into table relid take the mark: it is a partitioned
 * table, or carries a wake-up trigger that fires BEFORE INSERT, for each
 * statement, ALWAYS (any aggregation's: each takes the same mark).
 */
static bool
KsTableMarksWriters(Oid relid)
{
	Oid			wake = KsTriggerFunctionOid("wake");
	Relation	trigrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		marks = false;

	/* (every writer into a partitioned table takes its mark: KsWritersCheckPerms) */
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		return true;
	if (!OidIsValid(wake))
		return false;
	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!marks && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		marks = trig->tgfoid == wake && TRIGGER_FOR_BEFORE(trig->tgtype) &&
			TRIGGER_FOR_INSERT(trig->tgtype) && !TRIGGER_FOR_ROW(trig->tgtype) &&
			trig->tgenabled == TRIGGER_FIRES_ALWAYS;
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
 * Whether a background worker is one of keyedstate's own workers, which
 * run their owners' code through the executor: what they insert fires the
 * wake-up trigger, which takes the writer mark, so they are waited for
 * only with it, like a client.  Any role's aggregation can make its worker
 * hold another owner's source's lock from parsing an INSERT into it,
 * without any privilege on it (security review 20, F1: the frontier waited
 * for her worker's every step).  Every other background worker is waited
 * for on the lock alone, as before: a logical replication worker fires no
 * statement trigger, and another extension's may write tuples itself
 * (pglogical's apply does), firing none either (re-review today 22, F2:
 * rows of such a worker were lost when only PostgreSQL's replication
 * workers were waited for so).  A worker the postmaster started at
 * startup has no slot, so no type here: none of those is ours.
 */
static bool
KsIsKeyedstateWorker(int pid)
{
	const char *type = GetBackgroundWorkerTypeByPid(pid);

	return type != NULL && strcmp(type, "keyedstate worker") == 0;
}

/*
 * Whether a locker of a table's lock fires the wake-up triggers of what it
 * inserts into: a client backend's transaction, or a keyedstate worker's.
 */
static bool
KsLockerIsClient(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	/* (a prepared transaction's locks are held under its preparer's vxid) */
	return proc != NULL && proc->lxid == vxid.localTransactionId &&
		(!proc->isBackgroundWorker || KsIsKeyedstateWorker(proc->pid));
}

/*
 * Whether a locker is a parallel query's worker (a member of another
 * process's lock group), which inserts nothing (it cannot even take a
 * transaction id).  Never waited for: any role can start one running her
 * own function, which holds a table's lock from parsing an INSERT into it
 * (security review 19, F2: it held another owner's aggregation back for as
 * long as she liked).
 */
static bool
KsLockerIsParallelWorker(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	return proc != NULL && proc->lxid == vxid.localTransactionId && proc->isBackgroundWorker &&
		proc->lockGroupLeader != NULL && proc->lockGroupLeader != proc;
}

/*
 * Whether a locker is a prepared transaction.  Where the table marks
 * writers, one that inserted there holds the mark: a client's from the
 * wake-up trigger or the executor, which PREPARE hands over with its other
 * locks; a background worker's (an apply worker's, in a two-phase
 * subscription, fires no statement trigger) from KsMarkAtPrepare.  So one
 * without the mark is not waited for, like a client: a role with no
 * privilege on the table holds its lock from parsing an INSERT and can
 * prepare that transaction (re-review 8, F5: it held every aggregation
 * back for good, across restarts).  (Not its owner's privileges: they may
 * be revoked after the insert, re-review 10.)  A prepared transaction's
 * locks are held by a dummy PGPROC under the vxid of the backend that
 * prepared it, or under its xid once recovered at startup: either way,
 * its vxid.
 */
static bool
KsLockerIsPrepared(VirtualTransactionId vxid)
{
	int			i;

	for (i = 0; i < max_prepared_xacts; i++)
	{
		PGPROC	   *proc = &PreparedXactProcs[i];

		if (proc->backendId == vxid.backendId && proc->lxid == vxid.localTransactionId)
			return true;
	}
	return false;
}

/*
 * A background worker's transaction about to prepare: the marks of the
 * tables of this database it may have inserted into (it holds
 * RowExclusiveLock or stronger on them), taken before PREPARE hands its
 * locks over.  Nothing is read but the lock manager's status: a prepare
 * is rare.
 */
static void
KsMarkAtPrepare(XactEvent event, void *arg)
{
	LOCKMASK	insert = LOCKBIT_ON(RowExclusiveLock) | LOCKBIT_ON(ShareRowExclusiveLock) |
		LOCKBIT_ON(ExclusiveLock) | LOCKBIT_ON(AccessExclusiveLock);
	LockData   *status;
	int			i;

	if (event != XACT_EVENT_PRE_PREPARE || MyBackendType != B_BG_WORKER)
		return;
	status = GetLockStatusData();
	for (i = 0; i < status->nelements; i++)
	{
		LockInstanceData *l = &status->locks[i];

		if (l->pid == MyProcPid && l->locktag.locktag_type == LOCKTAG_RELATION &&
			l->locktag.locktag_field1 == MyDatabaseId && (l->holdMask & insert) != 0)
			KsMarkWriter(l->locktag.locktag_field2);
	}
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

		if ((marks && (KsLockerIsClient(lockers[i]) || KsLockerIsPrepared(lockers[i]))) ||
			KsLockerIsParallelWorker(lockers[i]))
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
 * The pid of a session holding a lock on table relid that a lock in mode
 * would wait for, or 0: none, or a prepared transaction (whose locks its
 * dummy process holds, see KsLockerPid in source.c).
 */
int
KsLockHolderPid(Oid relid, LOCKMODE mode)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	int			n;
	int			pid = 0;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	holders = GetLockConflicts(&tag, mode, &n);
	for (int i = 0; pid == 0 && VirtualTransactionIdIsValid(holders[i]); i++)
	{
		PGPROC	   *proc = BackendIdGetProc(holders[i].backendId);

		if (proc != NULL && proc->lxid == holders[i].localTransactionId)
			pid = proc->pid;
	}
	pfree(holders);
	return pid;
}
