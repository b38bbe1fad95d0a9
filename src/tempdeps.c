/*-------------------------------------------------------------------------
 *
 * tempdeps.c
 *	  Temporary objects that aggregations must not depend on.  See hooks.h.
 *
 * The end of a session drops its temporary objects and everything that
 * depends on them, and no command can refuse that drop: no event trigger
 * fires, and a check raising an error there cannot stop it.  An
 * aggregation whose query depends on a temporary object, however
 * indirectly, is refused at creation (KsRefuseTemporaryObjects).  After
 * that, a permanent object can still come to depend on a temporary one (a
 * domain's new default, a function, aggregate or view replaced, an
 * operator's functions, a text search configuration's mapping, a table
 * made typed by a temporary type); where its loss would take a type an
 * aggregation groups by, or an attribute of one, with it, the composite
 * keys already aggregated would hash differently.  So the object access
 * hook (orphans.c) notes every such object created or altered, and once
 * the utility command is done, when all its dependencies are recorded,
 * each is checked (KsCheckChangedObjects): cheapest first, an object
 * nothing depends on is skipped, then one that depends on no temporary
 * object; for the rest, what DROP ... CASCADE of the object would take is
 * walked, and a type an aggregation groups by among it is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodes.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "hooks.h"
#include "keytypes.h"

/*
 * Objects created or altered by the utility commands running in the local
 * transaction ks_changed_lxid, checked once each command is done
 * (KsCheckChangedObjects): only then are all their dependencies recorded
 * (an aggregate's on its support functions come after its function's).
 */
static List *ks_changed = NIL;
static LocalTransactionId ks_changed_lxid = InvalidLocalTransactionId;

/* Note an object created or altered, for KsCheckChangedObjects (see hooks.h). */
void
KsNoteChangedObject(Oid classId, Oid objectId)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	ObjectAddress *addr = palloc(sizeof(ObjectAddress));

	if (ks_changed_lxid != MyProc->lxid)
		ks_changed = NIL;
	ks_changed_lxid = MyProc->lxid;
	ObjectAddressSet(*addr, classId, objectId);
	ks_changed = lappend(ks_changed, addr);
	MemoryContextSwitchTo(oldcxt);
}

/* After a utility command: check the objects it created or altered (see hooks.h). */
void
KsCheckChangedObjects(void)
{
	List	   *changed = ks_changed_lxid == MyProc->lxid ? ks_changed : NIL;
	ListCell   *lc;

	ks_changed = NIL;
	foreach(lc, changed)
	{
		ObjectAddress *addr = lfirst(lc);

		KsCheckTemporaryDependents(addr->classId, addr->objectId);
	}
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

/* The view whose _RETURN rule is `ruleid`; InvalidOid for another rule (see hooks.h). */
Oid
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
		if (o->classId == RewriteRelationId)
		{
			Oid			view = KsViewOfRule(o->objectId);

			if (OidIsValid(view))
				ObjectAddressSet(*o, RelationRelationId, view);
		}
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

	if (classId == RewriteRelationId)
	{
		Oid			view = KsViewOfRule(objectId);

		if (OidIsValid(view))
		{
			objectId = view;
			classId = RelationRelationId;
		}
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
