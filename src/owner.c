/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  What a worker process keeps of the owners whose code it runs.  See
 *	  owner.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_db_role_setting.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "catalog.h"
#include "owner.h"

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

