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
 * asked for at the commit of any transaction that dropped a view, through
 * the object access hook, and one comes every 30 seconds anyway) forgets
 * the aggregations whose view no longer exists, as the event trigger
 * would have, each in a subtransaction that waits at most a second for
 * the locks it needs (its source's, to drop its triggers), and tries again
 * at a later reload if it could not.
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
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "hooks.h"
#include "rowerror.h"
#include "settings.h"
#include "shmem.h"

static object_access_hook_type prev_object_access_hook = NULL;

/*
 * Object access hook: a view dropped (by anyone, any way) asks the
 * database's workers to reload if the transaction commits, so that they
 * forget an aggregation whose view it was, if the drop did not.
 */
static void
KsObjectAccess(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		KsSharedState != NULL && get_rel_relkind(objectId) == RELKIND_VIEW)
		KsReloadAtCommit();
}

/* Install the object access hook (see hooks.h). */
void
KsOrphansInit(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = KsObjectAccess;
}

/*
 * Refuse a query that depends on a temporary object, directly or through
 * other objects: it goes with its session, dropping the view with it.  A
 * walk of pg_depend from the view's rule over the objects it depends on,
 * and theirs in turn, each met once.
 */
void
KsRefuseTemporaryObjects(Oid view_oid, const ObjectAddress *ruleaddr)
{
	Relation	depRel = table_open(DependRelationId, AccessShareLock);
	HASHCTL		ctl;
	HTAB	   *seen;
	ObjectAddress *queue = palloc(sizeof(ObjectAddress) * 64);
	int			size = 64;
	int			n = 0;
	int			next = 0;

	CommandCounterIncrement();
	ctl.keysize = ctl.entrysize = sizeof(ObjectAddress);
	ctl.hcxt = CurrentMemoryContext;
	seen = hash_create("keyedstate temporary object check", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	queue[n++] = *ruleaddr;
	queue[0].objectSubId = 0;
	while (next < n)
	{
		/* what object `next` depends on (whole objects: columns by their table) */
		ObjectAddress obj = queue[next++];
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(obj.classId));
		ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(obj.objectId));
		scan = systable_beginscan(depRel, DependDependerIndexId, true, NULL, 2, key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
			ObjectAddress ref;
			Oid			nsp;
			bool		found;

			ObjectAddressSet(ref, dep->refclassid, dep->refobjid);
			(void) hash_search(seen, &ref, HASH_ENTER, &found);
			if (found)
				continue;
			nsp = get_object_namespace(&ref);
			if (OidIsValid(nsp) && isAnyTempNamespace(nsp))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("aggregation %s must not use temporary objects", KsAggName(view_oid)),
						 errdetail("It depends on %s, which goes away with its session.",
								   getObjectDescription(&ref, false))));
			if (n == size)
			{
				size *= 2;
				queue = repalloc(queue, sizeof(ObjectAddress) * size);
			}
			queue[n++] = ref;
		}
		systable_endscan(scan);
	}
	hash_destroy(seen);
	pfree(queue);
	table_close(depRel, AccessShareLock);
}

/* Forget one orphan (in a subtransaction: see KsForgetOrphans). */
static void
KsForgetOrphan(void *arg)
{
	int			nestlevel = NewGUCNestLevel();

	KsSetOption("lock_timeout", "1000", GUC_ACTION_SAVE);
	KsForgetAggregation(*(int32 *) arg, true);
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

	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(def->view_oid)))
			continue;
		orphans = list_append_unique_int(orphans, def->agg_id);
		defs = foreach_delete_current(defs, lc);
	}
	foreach(lc, orphans)
	{
		int32		id = lfirst_int(lc);
		ErrorData  *edata = KsCallInSubtransaction(KsForgetOrphan, &id, true);

		if (edata == NULL)
			ereport(LOG,
					(errmsg("keyedstate forgot aggregation %d, whose view was dropped without it", id)));
		else
		{
			ereport(LOG,
					(errmsg("keyedstate could not forget aggregation %d, whose view was dropped: %s",
							id, edata->message)));
			*retry = true;
		}
	}
	list_free(orphans);
	return defs;
}
