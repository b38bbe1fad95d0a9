/*-------------------------------------------------------------------------
 *
 * sourcedefaults.c
 *	  The offset column defaults of a source and of the tables of its
 *	  partition tree: each must fill offsets from the sequence the
 *	  aggregation follows.  Part of the source reader; see source.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "nodes/nodeFuncs.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "source.h"


/*
 * Check a partition's offset column: it must be filled from the source's
 * sequence, or not at all (rows then come through a parent, or with
 * explicit offsets, as in any source).  A partition filled from another
 * sequence would hand out offsets the frontier never sees.
 */
void
KsSourceCheckLeafDefault(Relation leaf, AttrNumber attnum, Oid seqoid, const char *aggname)
{
	Node	   *def = build_column_default(leaf, attnum);
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(leaf), attnum - 1);

	if (att->attidentity != '\0' || (def != NULL && KsPlainNextvalSequence(def) != seqoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition \"%s\" fills offset column \"%s\" from another source than sequence \"%s\"",
						RelationGetRelationName(leaf), NameStr(att->attname), get_rel_name(seqoid)),
				 aggname ?
				 errdetail("Aggregation %s follows the offsets of sequence \"%s\"; rows inserted straight into this partition would get offsets it does not follow.",
						   aggname, get_rel_name(seqoid)) : 0,
				 errhint("Give the column the default of the partitioned table: ALTER TABLE %s ALTER COLUMN %s SET DEFAULT nextval('%s').",
						 quote_identifier(RelationGetRelationName(leaf)),
						 quote_identifier(NameStr(att->attname)),
						 get_rel_name(seqoid))));
}

/*
 * Check the source's own offset column: filled by its sequence, as identity
 * or through a default calling nextval() of it and of no other.  A default
 * changed to another sequence, or dropped, would give rows offsets the
 * aggregation never follows.
 */
void
KsSourceCheckOwnDefault(Relation rel, AttrNumber attnum, Oid seqoid, const char *aggname)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);

	if (att->attidentity != '\0')
	{
		if (getIdentitySequence(RelationGetRelid(rel), attnum, true) == seqoid)
			return;
	}
	else
	{
		Node	   *def = build_column_default(rel, attnum);

		if (def != NULL && KsPlainNextvalSequence(def) == seqoid)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("offset column \"%s\" of table \"%s\" is not filled from sequence \"%s\"",
					NameStr(att->attname), RelationGetRelationName(rel), get_rel_name(seqoid)),
			 aggname ?
			 errdetail("Aggregation %s follows the offsets of sequence \"%s\"; rows would get offsets it does not follow.",
					   aggname, get_rel_name(seqoid)) :
			 errdetail("Rows would get offsets the aggregation could not follow."),
			 errhint("Give the column the default nextval('%s')%s.", get_rel_name(seqoid),
					 aggname ? ", then call keyedstate.resume()" : "")));
}

/*
 * Check the offset column default of every table of `rels` but the source
 * (partitioned ones too: rows inserted through a table get its default);
 * see KsSourceCheckLeafDefault.
 */
static bool
KsCheckTreeDefaults(List *rels, Oid sourceid, const char *attname, Oid seqoid,
					const char *aggname, bool wait)
{
	ListCell   *lc;
	bool		all = true;

	foreach(lc, rels)
	{
		Relation	rel = NULL;
		AttrNumber	attnum;

		if (lfirst_oid(lc) == sourceid)
			continue;
		if (wait)
			rel = try_table_open(lfirst_oid(lc), AccessShareLock);
		else if (ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
		{
			rel = try_table_open(lfirst_oid(lc), NoLock);
			if (rel == NULL)
				UnlockRelationOid(lfirst_oid(lc), AccessShareLock);
		}
		else
			all = false;
		if (rel == NULL)
			continue;
		attnum = get_attnum(lfirst_oid(lc), attname);
		if (attnum != InvalidAttrNumber)
			KsSourceCheckLeafDefault(rel, attnum, seqoid, aggname);
		table_close(rel, AccessShareLock);
	}
	return all;
}

/*
 * The offset defaults of the tables of a source's tree (see source.h): its
 * partitioned partitions and, for a source that is a partition, its
 * ancestors (rows inserted through them get their defaults).
 */
bool
KsSourceCheckDefaults(Oid relid, Oid sourceid, AttrNumber src_attnum, Oid seqoid,
					  const char *aggname, bool wait)
{
	char	   *attname = get_attname(sourceid, src_attnum, false);
	bool		all;

	all = KsCheckTreeDefaults(find_all_inheritors(relid, NoLock, NULL), sourceid, attname,
							  seqoid, aggname, wait);
	if (relid == sourceid && get_rel_relispartition(sourceid))
		all &= KsCheckTreeDefaults(get_partition_ancestors(sourceid), sourceid, attname,
								   seqoid, aggname, wait);
	return all;
}
