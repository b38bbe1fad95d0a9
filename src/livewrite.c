/*-------------------------------------------------------------------------
 *
 * livewrite.c
 *	  Writes to an aggregation's view: refused while they are planned,
 *	  naming the view, not the live table behind it.
 *
 * An aggregation's view selects from one relation, its live foreign
 * table, so PostgreSQL finds it automatically updatable and rewrites an
 * INSERT, UPDATE or DELETE on the view into one on the live table; without
 * this the executor would refuse it naming keyedstate_internal.live_N, an object
 * the user never made.  The view's rows are computed from its source's
 * rows, never written.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "lookup.h"
#include "shmem.h"

/* The view of the aggregation a live table belongs to, or InvalidOid. */
static Oid
KsViewOfLiveTable(Oid relid)
{
	ListCell   *lc;
	int32		aggid = 0;
	KsSlotRef  *refs;
	KsAggSlot	copy;
	int			nparts;
	int			n;

	foreach(lc, GetForeignTable(relid)->options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "aggregation_id") == 0)
			aggid = pg_strtoint32(defGetString((DefElem *) lfirst(lc)));
	if (aggid == 0 || KsSharedState == NULL)
		return InvalidOid;
	refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	n = KsFindAggParts(MyDatabaseId, aggid, refs, KsSharedState->max_aggs, &nparts);
	return n > 0 && KsSlotSnapshot(&refs[0], &copy) ? copy.view_oid : InvalidOid;
}

/* PlanForeignModify of the live tables: refuse the write (see the banner). */
List *
KsPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index rti, int subplan_index)
{
	Oid			relid = planner_rt_fetch(rti, root)->relid;
	Oid			view = KsViewOfLiveTable(relid);
	const char *name = get_rel_name(OidIsValid(view) ? view : relid);
	AclMode		mode = plan->operation == CMD_INSERT ? ACL_INSERT :
		plan->operation == CMD_UPDATE ? ACL_UPDATE : ACL_DELETE;

	/* one who may not write the view is told so first, as PostgreSQL would */
	if (OidIsValid(view) && pg_class_aclcheck(view, GetUserId(), mode) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, name);

	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 plan->operation == CMD_INSERT ? errmsg("cannot insert into view \"%s\"", name) :
			 plan->operation == CMD_UPDATE ? errmsg("cannot update view \"%s\"", name) :
			 errmsg("cannot delete from view \"%s\"", name),
			 OidIsValid(view) ?
			 errdetail("View %s is the view of a keyedstate aggregation: its rows are computed from the rows of its source table, not written.",
					   KsAggName(view)) :
			 errdetail("Foreign table %s is the live table of a keyedstate aggregation, whose rows are computed, not written.",
					   name),
			 errhint("Write into the aggregation's source table instead.")));
	return NIL;
}
