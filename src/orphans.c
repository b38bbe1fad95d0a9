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
 * never waits for its source (whose owner may hold it for as long as she
 * likes) and waits a moment at most for any other lock, and tries again
 * a second later if it could not.
 *
 * A role that drops her aggregation over another owner's table leaves its
 * triggers there (dropping them would lock the table against its owner's
 * reads until she commits: control.c); the workers' reloads drop them,
 * likewise without waiting, once the table is not in use.
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
#include "catalog/pg_trigger.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_ts_config.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "checkpoint.h"
#include "hooks.h"
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
	 * temporary object: a domain's default, a function or a view replaced,
	 * an operator's functions, a text search configuration's mapping (hooks.h)
	 */
	if ((access == OAT_POST_ALTER || access == OAT_POST_CREATE) && subId == 0 &&
		(classId == TypeRelationId || classId == ProcedureRelationId ||
		 classId == RewriteRelationId || classId == OperatorRelationId ||
		 classId == TSConfigRelationId) && KsSharedState != NULL)
		KsCheckTemporaryDependents(classId, objectId);
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
		 * superuser.
		 */
		if (get_rel_name(source_oid) != NULL &&
			(orphan || pg_class_ownercheck(source_oid, GetOuterUserId())))
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
 * Whether `start` depends on a temporary object, directly or through other
 * objects (the first one met into *found): a walk of pg_depend over the
 * objects it depends on, and theirs in turn, each met once (whole objects:
 * columns by their table; a composite type's attributes by its relation).
 */
bool
KsTemporaryDependency(const ObjectAddress *start, ObjectAddress *found)
{
	Relation	depRel = table_open(DependRelationId, AccessShareLock);
	HASHCTL		ctl;
	HTAB	   *seen;
	ObjectAddress *queue = palloc(sizeof(ObjectAddress) * 64);
	int			size = 64;
	int			n = 0;
	int			next = 0;
	bool		temporary = false;

	CommandCounterIncrement();
	ctl.keysize = ctl.entrysize = sizeof(ObjectAddress);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("keyedstate temporary object check", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	queue[n++] = *start;
	queue[0].objectSubId = 0;
	while (next < n && !temporary)
	{
		/* what object `next` depends on */
		ObjectAddress obj = queue[next++];
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(obj.classId));
		ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(obj.objectId));
		scan = systable_beginscan(depRel, DependDependerIndexId, true, NULL, 2, key);
		while (!temporary && HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
			ObjectAddress ref;
			Oid			nsp;
			bool		met;

			ObjectAddressSet(ref, dep->refclassid, dep->refobjid);
			(void) hash_search(seen, &ref, HASH_ENTER, &met);
			if (met)
				continue;
			nsp = get_object_namespace(&ref);
			if (OidIsValid(nsp) && isAnyTempNamespace(nsp))
			{
				*found = ref;
				temporary = true;
				break;
			}
			if (n + 2 >= size)
			{
				size *= 2;
				queue = repalloc(queue, sizeof(ObjectAddress) * size);
			}
			queue[n++] = ref;
			/* a composite type's attributes are its relation's columns, which depend on it */
			if (ref.classId == TypeRelationId && OidIsValid(get_typ_typrelid(ref.objectId)))
			{
				ObjectAddressSet(ref, RelationRelationId, get_typ_typrelid(ref.objectId));
				(void) hash_search(seen, &ref, HASH_ENTER, &met);
				if (!met)
					queue[n++] = ref;
			}
		}
		systable_endscan(scan);
	}
	hash_destroy(seen);
	pfree(queue);
	table_close(depRel, AccessShareLock);
	return temporary;
}

/* The view whose _RETURN rule is `ruleid`; InvalidOid for another rule. */
static Oid
KsViewOfRule(Oid ruleid)
{
	Relation	rel = table_open(RewriteRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			view = InvalidOid;

	ScanKeyInit(&key, Anum_pg_rewrite_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ruleid));
	scan = systable_beginscan(rel, RewriteOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)) &&
		((Form_pg_rewrite) GETSTRUCT(tup))->ev_type == '0' + CMD_SELECT)
		view = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return view;
}

/* Whether object `obj` is in a temporary namespace (a type or a relation). */
static bool
KsIsTemporary(const ObjectAddress *obj)
{
	Oid			nsp = get_object_namespace(obj);

	return OidIsValid(nsp) && isAnyTempNamespace(nsp);
}

/*
 * The types that would go, or lose an attribute, if object `obj` went: a
 * walk over what goes with it, as a DROP ... CASCADE would find it (every
 * dependent of every kind, but what belongs to an extension; each met
 * once), noting the row type of each relation or column met and each type.
 * Two dependents take their owner with them: a view's _RETURN rule its
 * view, and a generated column's expression its column.  A column's own
 * dependents are those on it alone.  Temporary types are left out: no
 * aggregation groups by one.
 */
static List *
KsTypesDependingOn(const ObjectAddress *obj)
{
	Relation	depRel = table_open(DependRelationId, AccessShareLock);
	HASHCTL		ctl;
	HTAB	   *seen;
	List	   *queue = list_make1(palloc(sizeof(ObjectAddress)));
	List	   *types = NIL;
	ListCell   *lc;

	*(ObjectAddress *) linitial(queue) = *obj;
	ctl.keysize = ctl.entrysize = sizeof(ObjectAddress);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("keyedstate dependent types", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	foreach(lc, queue)
	{
		ObjectAddress *o = lfirst(lc);
		ScanKeyData key[3];
		SysScanDesc scan;
		HeapTuple	tup;

		CHECK_FOR_INTERRUPTS();
		if (o->classId == RewriteRelationId && OidIsValid(KsViewOfRule(o->objectId)))
			ObjectAddressSet(*o, RelationRelationId, KsViewOfRule(o->objectId));
		else if (o->classId == AttrDefaultRelationId)
		{
			ObjectAddress col = GetAttrDefaultColumnAddress(o->objectId);

			if (!OidIsValid(col.objectId) || get_attgenerated(col.objectId, col.objectSubId) == '\0')
				continue;
			*o = col;
		}
		if (o->classId == RelationRelationId && OidIsValid(get_rel_type_id(o->objectId)) &&
			!KsIsTemporary(o))
			types = list_append_unique_oid(types, get_rel_type_id(o->objectId));
		else if (o->classId == TypeRelationId && !KsIsTemporary(o))
			types = list_append_unique_oid(types, o->objectId);
		ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(o->classId));
		ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(o->objectId));
		ScanKeyInit(&key[2], Anum_pg_depend_refobjsubid, BTEqualStrategyNumber, F_INT4EQ,
					Int32GetDatum(o->objectSubId));
		scan = systable_beginscan(depRel, DependReferenceIndexId, true, NULL,
								  o->classId == RelationRelationId && o->objectSubId > 0 ? 3 : 2, key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
			ObjectAddress d;
			bool		met;

			if (dep->deptype == DEPENDENCY_EXTENSION)
				continue;
			ObjectAddressSubSet(d, dep->classid, dep->objid, dep->objsubid);
			(void) hash_search(seen, &d, HASH_ENTER, &met);
			if (!met)
			{
				ObjectAddress *copy = palloc(sizeof(ObjectAddress));

				*copy = d;
				queue = lappend(queue, copy);
			}
		}
		systable_endscan(scan);
	}
	hash_destroy(seen);
	table_close(depRel, AccessShareLock);
	return types;
}

/* Whether anything depends on object `obj` (for a view's rule: on its view). */
static bool
KsHasDependents(const ObjectAddress *obj)
{
	Relation	depRel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	bool		any;
	Oid			classId = obj->classId;
	Oid			objectId = obj->objectId;

	if (classId == RewriteRelationId && OidIsValid(KsViewOfRule(objectId)))
	{
		objectId = KsViewOfRule(objectId);
		classId = RelationRelationId;
	}
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(classId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(objectId));
	scan = systable_beginscan(depRel, DependReferenceIndexId, true, NULL, 2, key);
	any = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(depRel, AccessShareLock);
	return any;
}

/*
 * An object created or altered that now depends on a temporary object (see
 * hooks.h).  Cheapest first: a new object has no dependents yet (their
 * rows are not visible before the command ends), and the walk for a
 * temporary object finds none for almost every command.
 */
void
KsCheckTemporaryDependents(Oid classId, Oid objectId)
{
	ObjectAddress obj;
	ObjectAddress temp;
	List	   *types;
	char	   *aggname;

	if (!KsTypesGuarded())
		return;
	ObjectAddressSet(obj, classId, objectId);
	/* what nothing depends on (a new object) takes nothing with it */
	if (!KsHasDependents(&obj) || !KsTemporaryDependency(&obj, &temp))
		return;
	types = KsTypesDependingOn(&obj);
	if (types != NIL && (aggname = KsAggregationStoring(types, true)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot make %s depend on %s because aggregation %s groups by a type depending on it",
						getObjectDescription(&obj, false), getObjectDescription(&temp, false), aggname),
				 errdetail("The end of the session drops a temporary object and what depends on it, which would drop an attribute of that type; a composite value's hash covers every attribute, so the keys already aggregated would no longer be found."),
				 errhint("Use a permanent object instead.")));
}

/*
 * Refuse a query that depends on a temporary object, directly or through
 * other objects: it goes with its session, dropping the view with it.  The
 * walk starts from the view's rule.
 */
void
KsRefuseTemporaryObjects(Oid view_oid, const ObjectAddress *ruleaddr)
{
	ObjectAddress ref;

	if (KsTemporaryDependency(ruleaddr, &ref))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregation %s must not use temporary objects", KsAggName(view_oid)),
				 errdetail("It depends on %s, which goes away with its session.",
						   getObjectDescription(&ref, false))));
}

/*
 * Lock a table to drop triggers on it, never waiting: its owner may hold it
 * for as long as she likes; a table in use is tried again a second later.
 */
static void
KsLockTableNow(Oid relid)
{
	if (!ConditionalLockRelationOid(relid, AccessExclusiveLock))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("table \"%s\" is in use", get_rel_name(relid))));
}

/*
 * Forget one orphan (in a subtransaction: see KsForgetOrphans).  Its
 * source's owner may hold her table for as long as she likes: its triggers
 * are dropped only if it is free now, and any other lock is waited for a
 * moment at most, so that no reload of any worker waits for a role.
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
} KsLeftover;

/* keyedstate's own trigger function called name (no arguments). */
static Oid
KsOwnTriggerFunction(const char *name)
{
	return LookupFuncName(list_make2(makeString(KS_SCHEMA), makeString(pstrdup(name))), 0, NULL, true);
}

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
	if (SPI_execute_with_args("SELECT FROM keyedstate.aggregation WHERE id = $1",
							  1, &argtype, &id, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate.aggregation");
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
	Oid			wake = KsOwnTriggerFunction("wake");
	Oid			refuse = KsOwnTriggerFunction("refuse_truncate");
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *found = NIL;
	ListCell   *lc;

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

		if (t->tgfoid == wake && OidIsValid(wake) && t->tgnargs == 1)
		{
			bool		isnull;
			Datum		args = heap_getattr(tup, Anum_pg_trigger_tgargs, RelationGetDescr(rel), &isnull);

			/* one argument: its bytes and a terminating zero */
			if (isnull || sscanf(VARDATA_ANY(DatumGetByteaPP(args)), "%d%n", &aggid, &len) != 1 ||
				VARDATA_ANY(DatumGetByteaPP(args))[len] != '\0')
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
		l = palloc(sizeof(KsLeftover));
		l->relid = t->tgrelid;
		l->aggid = aggid;
		l->wake = (t->tgfoid == wake);
		found = lappend(found, l);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	foreach(lc, found)
	{
		KsLeftover *l = lfirst(lc);
		ErrorData  *edata = KsCallInSubtransaction(KsDropLeftover, l, true);

		if (edata != NULL)
		{
			/* its owner's transaction holds the table: quietly later */
			ereport(DEBUG1,
					(errmsg("keyedstate could not yet drop a trigger of dropped aggregation %d: %s",
							l->aggid, edata->message)));
			*retry = true;
		}
	}
	list_free_deep(found);
}
