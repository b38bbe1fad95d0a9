/*-------------------------------------------------------------------------
 *
 * orphans.c
 *	  Aggregations whose view went away behind keyedstate's back.
 *	  See hooks.h.
 *
 * An aggregation is forgotten in the transaction that drops its view: the
 * sql_drop event trigger calls forget_aggregation() (control.c).  Some
 * drops fire no event trigger: the end of a session drops its temporary
 * objects and everything depending on them, and so does DISCARD TEMP.  A
 * query naming a temporary object, or one that depends on one however
 * indirectly (a function whose argument's default has a temporary type),
 * is refused at creation; but a permanent object can come to depend on a
 * temporary one later (CREATE OR REPLACE FUNCTION with such a body), and
 * other such paths may exist.  So whatever the path, an aggregation whose
 * view is gone is an orphan: nobody can name it, and it would keep its
 * slot, its triggers and its checkpoints for good.
 *
 * Orphans are forgotten by the database's workers: every reload (one is
 * asked for at the commit of any transaction that dropped the view of an
 * aggregation with a slot, through the object access hook, and one comes
 * every 30 seconds anyway) forgets the aggregations whose view no longer
 * exists, as the event trigger would have, each in a subtransaction that
 * waits a moment at most for its source (whose owner may hold it for as
 * long as she likes: KsLockTableNow) and for any other lock, and tries
 * again a second later if it could not.
 *
 * A role that drops her aggregation over another owner's table leaves its
 * triggers there (dropping them would lock the table against its owner's
 * reads until she commits: control.c), and so does a drop that cannot lock
 * its own table within half a deadlock_timeout (KsLockTreeForDrop); the
 * workers' reloads drop them, likewise waiting a moment at most
 * (KsLockTableNow), once the table is not held for longer.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_ts_config.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "checkpoint.h"
#include "hooks.h"
#include "source.h"
#include "keytypes.h"
#include "rowerror.h"
#include "settings.h"
#include "shmem.h"

static object_access_hook_type prev_object_access_hook = NULL;

/*
 * Object access hook: the view of a running aggregation dropped (by
 * anyone, any way) asks the database's workers to reload if the
 * transaction commits, so that they forget the aggregation if the drop did
 * not.  Other views are not their business: a role dropping views in a
 * loop would keep every worker reloading.  A dropped column or attribute
 * of a row type an aggregation groups by is refused.
 */
static void
KsObjectAccess(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		KsSharedState != NULL && get_rel_relkind(objectId) == RELKIND_VIEW &&
		KsViewHasSlot(MyDatabaseId, objectId))
		KsReloadAtCommit();
	/*
	 * a wake-up trigger disabled, enabled or dropped: its table's writer
	 * mark; replaced (a trigger created over an existing one): refused
	 * (source.h)
	 */
	if ((access == OAT_POST_ALTER || access == OAT_DROP || access == OAT_POST_CREATE) &&
		classId == TriggerRelationId && KsSharedState != NULL)
		KsMarkTriggerChanged(objectId, access == OAT_POST_CREATE);
	/* a column or attribute: DROP TYPE ... CASCADE reaches them (keytypes.h) */
	if (access == OAT_DROP && classId == RelationRelationId && subId > 0 &&
		KsSharedState != NULL)
		KsNoteDroppedAttribute(objectId);
	/* a column added to a view (CREATE OR REPLACE VIEW: keytypes.h) */
	if (access == OAT_POST_CREATE && classId == RelationRelationId && subId > 0 &&
		KsSharedState != NULL)
		KsNoteAddedColumn(objectId);
	/*
	 * an object created or altered that may gain a dependency on a
	 * temporary object: a domain's default, a function, aggregate or view
	 * replaced, an operator's functions, a text search configuration's
	 * mapping, a table made typed (hooks.h); checked after the command
	 */
	if ((access == OAT_POST_ALTER || access == OAT_POST_CREATE) && subId == 0 &&
		(classId == TypeRelationId || classId == ProcedureRelationId ||
		 classId == RewriteRelationId || classId == OperatorRelationId ||
		 classId == TSConfigRelationId ||
		 (classId == RelationRelationId && access == OAT_POST_ALTER)) &&
		KsSharedState != NULL)
		KsNoteChangedObject(classId, objectId);
}

/*
 * Lock a table against everyone to drop triggers on it (and, with
 * partitions, the tables below it), queuing for each ms at most, or less if
 * the session's lock_timeout says so.  In a subtransaction, which the lock
 * timeout's error aborts.
 */
static void
KsLockWithin(Oid relid, int ms, bool partitions)
{
	int			nestlevel = NewGUCNestLevel();

	if (LockTimeout == 0 || LockTimeout > ms)
		KsSetOption("lock_timeout", psprintf("%d", ms), GUC_ACTION_SAVE);
	LockRelationOid(relid, AccessExclusiveLock);
	if (partitions)
		(void) find_all_inheritors(relid, AccessExclusiveLock, NULL);
	AtEOXact_GUC(true, nestlevel);
}

/* Lock a table and its partitions (KsLockTreeForDrop), in a subtransaction. */
static void
KsLockTreeNow(void *arg)
{
	/* less than a deadlock_timeout: we never run the deadlock check */
	KsLockWithin(*(Oid *) arg, Max(DeadlockTimeout / 2, 1), true);
}

/*
 * Lock the source of an aggregation being dropped, and its partitions, to
 * drop their triggers: waiting a moment at most, and never into a
 * deadlock.  Autovacuum of the source waits for a transaction that
 * changed the table's pg_class row (DROP OWNED revokes its privileges
 * first) while it holds its lock there, and the drop waited for that lock:
 * "deadlock detected" (fault review 57, F1).  A table not free so soon
 * keeps the triggers, which do nothing now, until a worker drops them
 * (KsDropLeftoverTriggers).  Returns whether it is locked.
 */
static bool
KsLockTreeForDrop(Oid relid)
{
	ErrorData  *edata = KsCallInSubtransaction(KsLockTreeNow, &relid, true);

	if (edata == NULL)
		return true;
	if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		ReThrowError(edata);
	FreeErrorData(edata);
	return false;
}

/*
 * Forget an aggregation whose view is gone (or is being dropped): its
 * catalog row, checkpointed state, live foreign table and triggers.  Safe to
 * call twice.
 */
void
KsForgetAggregation(int32 id, bool orphan)
{
	KsCatalogAccess acc;
	Oid			live_oid;
	Oid			source_oid;

	/*
	 * Dropping its triggers locks the source: stop a step that reads it
	 * (which also refuses a drop from an aggregation's own code).  An
	 * orphan is forgotten by a worker, which runs no step of it meanwhile.
	 */
	if (!orphan)
		KsInterruptAtOnce(id);
	KsCatalogOpen(&acc);
	/* first: deleting the row cascades to its parts, whose checkpoints go too */
	KsCheckpointForget(id);
	if (KsCatalogDelete(id, &live_oid, &source_oid))
	{
		/*
		 * Dropping a trigger locks its table against readers too, for the
		 * rest of this transaction: on a table of another owner (a role
		 * with SELECT and TRIGGER on it) that is left to a worker, which
		 * drops them when the table is not in use (KsDropLeftoverTriggers).
		 * Meanwhile they do nothing: their aggregation is gone.  The role
		 * is the outer one: the bracket and the event trigger run as the
		 * superuser.  So is a table that is not free soon enough.
		 */
		if (get_rel_name(source_oid) != NULL &&
			(orphan || pg_class_ownercheck(source_oid, GetOuterUserId())) &&
			(orphan || KsLockTreeForDrop(source_oid)))
		{
			Oid			trig;

			/* from the source and each of its partitions */
			KsWakeTriggersDrop(id, source_oid);
			trig = get_trigger_oid(source_oid, psprintf(KS_TRUNCATE_TRIGGER_FMT, id), true);
			if (OidIsValid(trig))
				KsDropObject(TriggerRelationId, trig, DROP_RESTRICT);
		}
		/*
		 * keyedstate's own table: what others built on it (a view any role
		 * may create over it) goes with it, and cannot keep the owner from
		 * dropping her aggregation
		 */
		if (get_rel_name(live_oid) != NULL)
			KsDropObject(RelationRelationId, live_oid, DROP_CASCADE);
		KsRequestAtCommit();
	}
	KsCatalogClose(&acc);
}

/* Install the object access hook (see hooks.h). */
void
KsOrphansInit(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = KsObjectAccess;
}

/*
 * Lock a table to drop triggers on it, waiting a moment at most: its owner
 * may hold it for as long as she likes; a table in use is tried again a
 * second later.  A table that writers use one after the other is never
 * free at once, so the lock is queued for, KS_LEFTOVER_WAIT_MS at most
 * (re-review today 59, F1: never dropped under 4 pgbench writers, and
 * DROP EXTENSION refused for them); writers queued behind wait no longer.
 * In a subtransaction that lets cancels in (KsCallCancellable): the lock
 * timeout is a cancel, which the worker holds off between steps.
 */
#define KS_LEFTOVER_WAIT_MS		20

/*
 * The transaction that locked such a table: holding one, the worker never
 * waits for another (a session holding that one and waiting for the first
 * would deadlock: re-review today 61, F2); the next reload tries it.
 */
static LocalTransactionId ks_table_locked_lxid = InvalidLocalTransactionId;

static void
KsLockTableNow(Oid relid)
{
	if (!ConditionalLockRelationOid(relid, AccessExclusiveLock))
	{
		if (ks_table_locked_lxid == MyProc->lxid)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("table \"%s\" is in use", get_rel_name(relid))));
		KsLockWithin(relid, KS_LEFTOVER_WAIT_MS, false);
	}
	ks_table_locked_lxid = MyProc->lxid;
}

/*
 * Forget one orphan (in a subtransaction: see KsForgetOrphans).  Its
 * source's owner may hold her table for as long as she likes: its triggers
 * are dropped only if it is free within a moment (KsLockTableNow), and any
 * other lock is waited for a moment at most, so that no reload of any
 * worker waits for a role.
 */
static void
KsForgetOrphan(void *arg)
{
	KsAggDef   *def = (KsAggDef *) arg;
	int			nestlevel = NewGUCNestLevel();

	if (get_rel_name(def->source_oid) != NULL)
		KsLockTableNow(def->source_oid);
	KsSetOption("lock_timeout", "100", GUC_ACTION_SAVE);
	KsForgetAggregation(def->agg_id, true);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * Forget the aggregations among defs (KsAggDef, as KsLoadDefinitions
 * returns them) whose view is gone, and return defs without them.  In the
 * worker's reload transaction.  *retry is set when one could not be
 * forgotten now.
 */
List *
KsForgetOrphans(List *defs, bool *retry)
{
	List	   *orphans = NIL;
	ListCell   *lc;
	ListCell   *oc;

	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		bool		seen = false;

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(def->view_oid)))
			continue;
		/* once per aggregation, not per part */
		foreach(oc, orphans)
			seen |= ((KsAggDef *) lfirst(oc))->agg_id == def->agg_id;
		if (!seen)
			orphans = lappend(orphans, def);
		defs = foreach_delete_current(defs, lc);
	}
	foreach(lc, orphans)
	{
		KsAggDef   *def = lfirst(lc);
		ErrorData  *edata = KsCallCancellable(KsForgetOrphan, def, true);

		if (edata == NULL)
			ereport(LOG,
					(errmsg("keyedstate forgot aggregation %d, whose view was dropped without it", def->agg_id)));
		else
		{
			/* a table in use is the common case, tried again every second: not logged each time */
			ereport(edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ? DEBUG1 : LOG,
					(errmsg("keyedstate could not forget aggregation %d, whose view was dropped: %s",
							def->agg_id, edata->message)));
			*retry = true;
		}
	}
	list_free(orphans);
	return defs;
}

/* A trigger of an aggregation that is gone, left on its table. */
typedef struct KsLeftover
{
	Oid			relid;
	int32		aggid;
	bool		wake;			/* a wake-up trigger, else a truncate one */
	Oid			tgoid;
	TimestampTz first_seen;		/* when a reload first found it left over */
} KsLeftover;

/*
 * How long a trigger stays left over before it is dropped.  A restore
 * creates the triggers of an aggregation it could not restore (a function
 * of its query is gone), then enables its wake-up trigger ALWAYS in the
 * next statement: dropped in between, that ALTER failed and a restore run
 * with ON_ERROR_STOP stopped there, leaving the other aggregations without
 * their triggers (a CI run of 009).
 */
#define KS_LEFTOVER_GRACE_US	((int64) 10 * USECS_PER_SEC)

/* The leftover triggers the last reload found, in TopMemoryContext. */
static List *ks_leftovers_seen = NIL;

/* Drop one leftover trigger (in a subtransaction: see KsDropLeftoverTriggers). */
static void
KsDropLeftover(void *arg)
{
	KsLeftover *l = (KsLeftover *) arg;
	Datum		id = Int32GetDatum(l->aggid);
	Oid			argtype = INT4OID;
	Oid			trig;
	ObjectAddress addr;

	KsLockTableNow(l->relid);
	/* with the table locked nobody is making one over it: is it really gone (a new snapshot)? */
	if (SPI_execute_with_args("SELECT FROM keyedstate_internal.aggregation WHERE id = $1",
							  1, &argtype, &id, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate_internal.aggregation");
	if (SPI_processed > 0)
		return;
	trig = l->wake ? KsWakeTriggerOid(l->relid, l->aggid) :
		get_trigger_oid(l->relid, psprintf(KS_TRUNCATE_TRIGGER_FMT, l->aggid), true);
	if (!OidIsValid(trig))
		return;
	ObjectAddressSet(addr, TriggerRelationId, trig);
	performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
}

/* Drop the triggers of aggregations gone (see hooks.h). */
void
KsDropLeftoverTriggers(List *defs, bool *retry)
{
	Oid			wake = KsTriggerFunctionOid("wake");
	Oid			refuse = KsTriggerFunctionOid("refuse_truncate");
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *found = NIL;
	List	   *seen = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	/* pg_trigger has no index on the function: one pass, a catalog of few rows */
	rel = table_open(TriggerRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger t = (Form_pg_trigger) GETSTRUCT(tup);
		KsLeftover *l;
		int32		aggid;
		int			len = 0;
		bool		known = false;

		if (t->tgfoid == wake && OidIsValid(wake))
		{
			aggid = KsWakeTriggerAggregation(tup, RelationGetDescr(rel));
			if (aggid < 0)
				continue;
		}
		else if (t->tgfoid == refuse && OidIsValid(refuse))
		{
			if (sscanf(NameStr(t->tgname), KS_TRUNCATE_TRIGGER_FMT "%n", &aggid, &len) != 1 ||
				NameStr(t->tgname)[len] != '\0')
				continue;
		}
		else
			continue;
		foreach(lc, defs)
			known |= ((KsAggDef *) lfirst(lc))->agg_id == aggid;
		if (known)
			continue;
		l = MemoryContextAlloc(TopMemoryContext, sizeof(KsLeftover));
		l->relid = t->tgrelid;
		l->aggid = aggid;
		l->wake = (t->tgfoid == wake);
		l->tgoid = t->oid;
		l->first_seen = now;
		foreach(lc, ks_leftovers_seen)
		{
			KsLeftover *before = lfirst(lc);

			if (before->tgoid == l->tgoid && before->relid == l->relid && before->aggid == l->aggid)
				l->first_seen = before->first_seen;
		}
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

			seen = lappend(seen, l);
			MemoryContextSwitchTo(oldcxt);
		}
		if (now - l->first_seen >= KS_LEFTOVER_GRACE_US)
			found = lappend(found, l);
		else
			*retry = true;		/* look again in a second */
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	list_free_deep(ks_leftovers_seen);
	ks_leftovers_seen = seen;

	foreach(lc, found)
	{
		KsLeftover *l = lfirst(lc);
		/* cancels let in: the lock timeout is one (re-review today 61, F1: it never fired) */
		ErrorData  *edata = KsCallCancellable(KsDropLeftover, l, true);

		if (edata != NULL)
		{
			/* its owner's transaction holds the table: quietly later */
			ereport(DEBUG1,
					(errmsg("keyedstate could not yet drop a trigger of dropped aggregation %d: %s",
							l->aggid, edata->message)));
			*retry = true;
		}
	}
}
