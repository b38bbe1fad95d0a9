/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  What a worker process keeps of the owners whose code it runs, and
 *	  each role's share of aggregations.  See owner.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_db_role_setting.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "catalog.h"
#include "owner.h"
#include "settings.h"
#include "shmem.h"

/* The owner whose code this process runs, once it ran some (see owner.h). */
static Oid	ks_process_owner = InvalidOid;

/* Whether this process may run code of `owner` (see owner.h). */
bool
KsProcessMayRun(Oid owner)
{
	if (!OidIsValid(ks_process_owner))
		ks_process_owner = owner;
	return ks_process_owner == owner;
}

/*
 * The owner's statement_timeout, in ms, from ALTER ROLE ... IN DATABASE
 * SET or ALTER ROLE ... SET, in the order a login of the owner would apply
 * them; 0 if none is set.  Not ALTER DATABASE ... SET: the database's
 * owner, who may be an ordinary role, would bound (and so fail) every
 * other owner's aggregation.
 */
int
KsOwnerStatementTimeout(Oid owner)
{
	Oid			dbs[2] = {MyDatabaseId, InvalidOid};
	Oid			roles[2] = {owner, owner};
	Relation	rel;
	int			result = -1;
	int			i;

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	for (i = 0; i < 2 && result < 0; i++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(dbs[i]));
		ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(roles[i]));
		scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
										 RelationGetDescr(rel), &isnull);

			if (!isnull)
			{
				ListCell   *lc;

				foreach(lc, KsTextArrayToList(d))
				{
					char	   *item = lfirst(lc);
					int			ms;

					if (pg_strncasecmp(item, "statement_timeout=", 18) == 0 &&
						parse_int(item + 18, &ms, GUC_UNIT_MS, NULL))
						result = ms;
				}
			}
		}
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return Max(result, 0);
}

/* How many aggregation slots an aggregation takes: one per part. */
static int
KsSlotsOf(const KsAggDef *def)
{
	return Max(def->parallelism, 1);
}

/*
 * The slots of this database's aggregations owned by newowner (*owned) and
 * of those owned by one of `roles` (*moving; only view's if it is valid),
 * from the catalog.
 */
static void
KsSlotsOfOwners(List *roles, Oid view, Oid newowner, int *owned, int *moving)
{
	KsCatalogAccess acc;
	List	   *defs;
	ListCell   *lc;

	KsCatalogOpen(&acc);
	defs = KsLoadDefinitions(CurrentMemoryContext, false);
	KsCatalogClose(&acc);
	*owned = 0;
	*moving = 0;
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		Oid			owner = KsRelationOwner(def->view_oid);

		if (owner == newowner)
			*owned += KsSlotsOf(def);
		else if (list_member_oid(roles, owner) &&
				 (!OidIsValid(view) || def->view_oid == view))
			*moving += KsSlotsOf(def);
	}
}

/* Before a command that may give aggregations to a role (see owner.h). */
void
KsCheckOwnerShare(Node *parsetree)
{
	Oid			newowner = InvalidOid;
	Oid			view = InvalidOid;
	List	   *from = NIL;
	int			owned;
	int			moving;
	ListCell   *lc;

	if (ks_max_aggregations_per_owner <= 0 || KsSharedState == NULL ||
		!KsInstalled())
		return;
	if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

			/* (one who may not will meet PostgreSQL's own error) */
			if (cmd->subtype == AT_ChangeOwner && OidIsValid(relid) &&
				get_rel_relkind(relid) == RELKIND_VIEW && pg_class_ownercheck(relid, GetUserId()))
			{
				newowner = get_rolespec_oid(cmd->newowner, true);
				view = relid;
				from = list_make1_oid(KsRelationOwner(relid));
			}
		}
	}
	else if (IsA(parsetree, ReassignOwnedStmt))
	{
		ReassignOwnedStmt *stmt = (ReassignOwnedStmt *) parsetree;

		newowner = get_rolespec_oid(stmt->newrole, true);
		foreach(lc, stmt->roles)
			from = lappend_oid(from, get_rolespec_oid(lfirst(lc), true));
	}
	if (!OidIsValid(newowner) || from == NIL || !has_privs_of_role(GetUserId(), newowner) ||
		superuser_arg(newowner))
		return;
	KsSlotsOfOwners(from, view, newowner, &owned, &moving);
	if (moving == 0)
		return;
	owned += KsSlotsOwnedBy(newowner, MyDatabaseId);
	if (owned + moving > ks_max_aggregations_per_owner)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" cannot own %d more keyedstate aggregations",
						GetUserNameFromId(newowner, false), moving),
				 errdetail("It owns %d; keyedstate.max_aggregations_per_owner limits each role to %d, and each part of an aggregation running in parallel counts as one.",
						   owned, ks_max_aggregations_per_owner),
				 errhint("Drop some of its aggregations first, or ask an administrator to raise the limit.")));
}
