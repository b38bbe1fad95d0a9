/*-------------------------------------------------------------------------
 *
 * sourcetree.c
 *	  The source reader's tables: the source or its leaf partitions, their
 *	  offset indexes, and the tree the frontier watches.  Part of the
 *	  source reader; see source.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/attmap.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/tupconvert.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "utils/syscache.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "source.h"


/* Find the btree index the reader scans in a leaf (see source.h). */
bool
KsFindOffsetIndex(KsLeaf *leaf, Relation heap, Oid offset_type, bool *busy)
{
	ListCell   *lc;
	bool		passed = false;

	leaf->indexoid = InvalidOid;
	foreach(lc, RelationGetIndexList(heap))
	{
		Relation	idx;
		bool		ok;

		/* a worker never waits: an index a REINDEX holds is passed over */
		if (busy != NULL && !ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
		{
			passed = true;
			continue;
		}
		idx = index_open(lfirst_oid(lc), busy != NULL ? NoLock : AccessShareLock);
		ok = idx->rd_rel->relam == BTREE_AM_OID &&
			idx->rd_index->indisvalid && idx->rd_index->indisready &&
			idx->rd_index->indislive &&
			/* read forward in offset order: a DESC index would read backwards */
			(idx->rd_indoption[0] & INDOPTION_DESC) == 0 &&
			idx->rd_index->indkey.values[0] == leaf->offset_attnum &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL);

		/* only a built-in operator family: its functions are not user code */
		if (ok && idx->rd_opfamily[0] >= FirstNormalObjectId)
			ok = false;
		if (ok)
		{
			Oid			family = idx->rd_opfamily[0];
			Oid			gt = get_opfamily_member(family, offset_type, INT8OID,
												 BTGreaterStrategyNumber);
			Oid			le = get_opfamily_member(family, offset_type, INT8OID,
												 BTLessEqualStrategyNumber);

			if (OidIsValid(gt) && OidIsValid(le))
			{
				leaf->indexoid = RelationGetRelid(idx);
				leaf->gt_proc = get_opcode(gt);
				leaf->le_proc = get_opcode(le);
				leaf->indexcoll = idx->rd_indcollation[0];
			}
		}
		index_close(idx, AccessShareLock);
		if (OidIsValid(leaf->indexoid))
			return true;
	}
	if (passed)
		*busy = true;
	return false;
}

/*
 * Set up one leaf of a source: its offset column (found by name in a
 * partition, whose columns may be numbered differently), its offset
 * index, and the map of its columns to the source's.  Allocates in the
 * current memory context.
 */
static void
KsLeafSetup(KsSource *src, KsLeaf *leaf, Relation heap, Relation source, bool running)
{
	memset(leaf, 0, sizeof(KsLeaf));
	leaf->relid = RelationGetRelid(heap);
	if (heap == source)
	{
		leaf->offset_attnum = src->offset_attnum;
		KsSourceCheckOwnDefault(heap, src->offset_attnum, src->seqoid, src->aggname);
	}
	else
	{
		char	   *attname = get_attname(src->relid, src->offset_attnum, false);

		if (heap->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("partition \"%s\" of table \"%s\" is a foreign table",
							RelationGetRelationName(heap), RelationGetRelationName(source)),
					 errdetail("keyedstate reads its partitions through their offset indexes, which a foreign table does not have.")));
		leaf->offset_attnum = get_attnum(leaf->relid, attname);
		if (leaf->offset_attnum == InvalidAttrNumber)
			elog(ERROR, "partition \"%s\" has no column \"%s\"",
				 RelationGetRelationName(heap), attname);
		KsSourceCheckLeafDefault(heap, leaf->offset_attnum, src->seqoid, src->aggname);
		/* from the partition's columns (the row read) to the source's */
		leaf->map = build_attrmap_by_name_if_req(RelationGetDescr(heap),
												 RelationGetDescr(source));
		if (leaf->map != NULL)
			/* a copy: a slot pins a relation's own descriptor to the transaction */
			leaf->srcslot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(source)),
													 &TTSOpsVirtual);
	}
	/* a crash empties an unlogged table, but not the state of its rows */
	if (heap->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 heap == source ?
				 errmsg("cannot aggregate unlogged table \"%s\"", RelationGetRelationName(heap)) :
				 errmsg("partition \"%s\" of table \"%s\" is unlogged",
						RelationGetRelationName(heap), RelationGetRelationName(source)),
				 errdetail("An unlogged table is emptied by a crash, which would leave the checkpointed state without its input rows."),
				 running ?
				 errhint("Make the table logged (ALTER TABLE ... SET LOGGED), then call keyedstate.rebuild(): a crash may have emptied it.") : 0));
	/* its type as loaded: an index of another type is none of ours */
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(heap), leaf->offset_attnum - 1);
		Oid			type = att->atttypid;

		/* a row with a null offset would never be read (sync would not wait for it) */
		if (!att->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("offset column \"%s\" of table \"%s\" allows nulls",
							NameStr(att->attname), RelationGetRelationName(heap)),
					 errdetail("A row inserted with a null offset would never be aggregated."),
					 errhint("Set the column NOT NULL.")));

		if (type != src->offset_type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("offset column \"%s\" of table \"%s\" is now of type %s",
							get_attname(leaf->relid, leaf->offset_attnum, false),
							RelationGetRelationName(heap), format_type_be(type)),
					 KsIsOffsetType(type) ?
					 errhint("Call keyedstate.resume() to read it as its new type.") :
					 errhint("An offset column must be of type smallint, integer or bigint.")));
		/* retyped while it was failed or paused, and resumed: not an index missing (newuser review 2, F5) */
		if (!KsIsOffsetType(type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("offset column \"%s\" of table \"%s\" is of type %s",
							NameStr(att->attname), RelationGetRelationName(heap), format_type_be(type)),
					 errhint("An offset column must be of type smallint, integer or bigint.")));
	}
	/* the command took the last index: refused as PostgreSQL refuses a drop (newuser review 2, F5) */
	if (src->index_dropping && !KsFindOffsetIndex(leaf, heap, src->offset_type, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 heap == source ?
				 errmsg("cannot drop the last index of offset column \"%s\" of table \"%s\"",
						get_attname(leaf->relid, leaf->offset_attnum, false), RelationGetRelationName(heap)) :
				 errmsg("cannot drop the last index of offset column \"%s\" of partition \"%s\"",
						get_attname(leaf->relid, leaf->offset_attnum, false), RelationGetRelationName(heap)),
				 errdetail("Aggregation %s reads the table in the order of that column, by the index.", src->aggname),
				 errhint("Create another btree index on the column first, or drop the aggregation.")));
	if (!KsFindOffsetIndex(leaf, heap, src->offset_type, running ? &src->leaf_busy : NULL) &&
		!src->leaf_busy)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 heap == source ?
				 errmsg("offset column \"%s\" of table \"%s\" has no index",
						get_attname(leaf->relid, leaf->offset_attnum, false),
						RelationGetRelationName(heap)) :
				 errmsg("offset column \"%s\" of partition \"%s\" has no index",
						get_attname(leaf->relid, leaf->offset_attnum, false),
						RelationGetRelationName(heap)),
				 running ?
				 errhint("Create a btree index on it, or make it the primary key, then call keyedstate.resume().") :
				 errhint("Create a btree index on it, or make it the primary key.")));
}

/*
 * Check the leaves under relid, added to the tree of a source: each must be
 * readable as a leaf of the source (see source.h).
 */
void
KsSourceCheckLeaves(Oid relid, Oid sourceid, AttrNumber src_attnum, Oid seqoid,
					const char *aggname, bool dropping)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	Relation	source = table_open(sourceid, AccessShareLock);
	KsSource	src;
	ListCell   *lc;

	memset(&src, 0, sizeof(src));
	src.relid = sourceid;
	src.offset_attnum = src_attnum;
	src.offset_type = TupleDescAttr(RelationGetDescr(source), src_attnum - 1)->atttypid;
	src.seqoid = seqoid;
	src.aggname = aggname;
	src.index_dropping = dropping;
	foreach(lc, rels)
	{
		Relation	heap;
		KsLeaf		leaf;

		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_PARTITIONED_TABLE)
			continue;
		heap = table_open(lfirst_oid(lc), NoLock);
		KsLeafSetup(&src, &leaf, heap, source, false);
		if (leaf.srcslot != NULL)
			ExecDropSingleTupleTableSlot(leaf.srcslot);
		table_close(heap, NoLock);
	}
	table_close(source, AccessShareLock);
	list_free(rels);
}

/* The leaf partitions of a partitioned source, in the catalog now. */
static List *
KsSourceLeafOids(Oid relid)
{
	List	   *all = find_all_inheritors(relid, NoLock, NULL);
	List	   *leaves = NIL;
	ListCell   *lc;

	foreach(lc, all)
	{
		char		relkind = get_rel_relkind(lfirst_oid(lc));

		if (relkind != RELKIND_PARTITIONED_TABLE && relkind != '\0')
			leaves = lappend_oid(leaves, lfirst_oid(lc));
	}
	list_free(all);
	return leaves;
}

/* Refuse an offset column that no usable btree index leads with (see source.h). */
void
KsSourceCheckIndex(Relation rel, AttrNumber attnum, Oid seqoid)
{
	KsSource	src;
	KsLeaf		leaf;
	List	   *oids;
	ListCell   *lc;

	memset(&src, 0, sizeof(src));
	src.relid = RelationGetRelid(rel);
	src.offset_attnum = attnum;
	src.offset_type = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
	src.seqoid = seqoid;
	/* a partitioned table's own index gives every new partition one */
	KsLeafSetup(&src, &leaf, rel, rel, false);
	/* the table's own default hands out the sequence's values (sourcedefaults.c) */
	KsSourceCheckOwnDefault(rel, attnum, seqoid, NULL);
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE && !rel->rd_rel->relispartition)
		return;
	KsSourceCheckDefaults(src.relid, src.relid, attnum, seqoid, NULL, true);
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return;
	oids = find_all_inheritors(src.relid, AccessShareLock, NULL);
	foreach(lc, oids)
	{
		Relation	heap;

		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_PARTITIONED_TABLE)
			continue;
		heap = table_open(lfirst_oid(lc), NoLock);
		KsLeafSetup(&src, &leaf, heap, rel, false);
		table_close(heap, NoLock);
	}
}

/*
 * Whether the leaves set up last can be read again as they are: the same
 * partitions, nothing about them invalidated since (src->stale), and each
 * offset index still usable, locked without waiting.
 */
static bool
KsLeavesStillUsable(KsSource *src, List *oids)
{
	ListCell   *lc;
	int			i = 0;

	if (src->stale || list_length(oids) != src->nleaves)
		return false;
	foreach(lc, oids)
	{
		KsLeaf	   *leaf = &src->leaves[i++];
		HeapTuple	tup;
		bool		usable;

		if (leaf->relid != lfirst_oid(lc))
			return false;
		/* a REINDEX holding it: the batch waits (the caller sees leaf_busy) */
		if (!ConditionalLockRelationOid(leaf->indexoid, AccessShareLock))
		{
			src->leaf_busy = true;
			return false;
		}
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(leaf->indexoid));
		if (!HeapTupleIsValid(tup))
			return false;
		usable = ((Form_pg_index) GETSTRUCT(tup))->indisvalid &&
			((Form_pg_index) GETSTRUCT(tup))->indisready &&
			((Form_pg_index) GETSTRUCT(tup))->indislive;
		ReleaseSysCache(tup);
		if (!usable)
			return false;
	}
	/* locking may have processed invalidations */
	return !src->stale;
}

/*
 * Remember the partitioned tables of a source's tree and, for a source that
 * is a partition, its ancestors: rows inserted through them get their
 * offset defaults, so a change of one (a relcache invalidation) sets the
 * leaves up again, which checks the defaults.
 */
static void
KsSourceRememberParents(KsSource *src)
{
	List	   *rels = find_all_inheritors(src->relid, NoLock, NULL);
	ListCell   *lc;

	if (get_rel_relispartition(src->relid))
		rels = list_concat(rels, get_partition_ancestors(src->relid));
	src->parents = MemoryContextAlloc(src->leafcxt, sizeof(Oid) * Max(list_length(rels), 1));
	src->nparents = 0;
	foreach(lc, rels)
	{
		Oid			oid = lfirst_oid(lc);

		if (oid != src->relid && get_rel_relkind(oid) == RELKIND_PARTITIONED_TABLE)
			src->parents[src->nparents++] = oid;
	}
	list_free(rels);
}

/*
 * Check that every column the expressions read still has the type, typmod
 * and collation it was analysed with, in the source's descriptor.  The
 * view's dependencies keep them so (create.c); this holds even if they
 * were lost, as a Datum read as another type would be read out of bounds.
 * Run whenever anything about the source changed (it is then set up again).
 */
static void
KsSourceCheckColumns(KsSource *src, Relation source)
{
	TupleDesc	desc = RelationGetDescr(source);
	int			i;

	for (i = 0; i < src->nvars; i++)
	{
		Var		   *var = src->vars[i];
		Form_pg_attribute att;

		if (var->varattno <= 0)
			continue;			/* system columns and whole rows are checked by the executor */
		if (var->varattno > desc->natts)
			elog(ERROR, "relation \"%s\" has no attribute %d", RelationGetRelationName(source), var->varattno);
		att = TupleDescAttr(desc, var->varattno - 1);
		if (att->attisdropped || att->atttypid != var->vartype ||
			att->atttypmod != var->vartypmod || att->attcollation != var->varcollid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" is no longer of type %s",
							NameStr(att->attname), RelationGetRelationName(source),
							format_type_with_typemod(var->vartype, var->vartypmod)),
					 errdetail("Aggregation %s was defined over the column as it was; it cannot read it since it changed.",
							   src->aggname),
					 errhint("Drop the aggregation and create it again.")));
	}
}

/*
 * Find the leaves a batch reads (see source.h).  Each is set up again when
 * anything about the leaves changed: a partition added or gone, a relcache
 * invalidation of a leaf or its index (a column default changed, an index
 * being replaced), an index no longer usable.
 */
bool
KsSourceFindLeaves(KsSource *src)
{
	List	   *oids;
	List	   *locked = NIL;
	ListCell   *lc;
	Relation	source;
	int			i;

	src->leaf_busy = false;
	if (!src->tree)
		oids = list_make1_oid(src->relid);
	else
	{
		/* lock every leaf without waiting, listing again until no new one appears */
		for (;;)
		{
			bool		added = false;

			InvalidateCatalogSnapshot();
			oids = KsSourceLeafOids(src->relid);
			foreach(lc, oids)
			{
				Oid			oid = lfirst_oid(lc);

				if (oid == src->relid || list_member_oid(locked, oid))
					continue;	/* the source is locked for the step */
				if (!ConditionalLockRelationOid(oid, AccessShareLock))
				{
					src->leaf_busy = true;
					return false;
				}
				locked = lappend_oid(locked, oid);
				added = true;
			}
			if (!added)
				break;
		}
	}

	if (KsLeavesStillUsable(src, oids))
		return true;
	if (src->leaf_busy)
		return false;

	/*
	 * Set them up again.  What the setup reads reflects every invalidation
	 * processed by then, including those its own locks bring in (an
	 * ANALYZE of the table sends one), so those do not count.
	 */
	MemoryContextReset(src->leafcxt);
	src->parents = NULL;
	src->nparents = 0;
	src->leaves = MemoryContextAllocZero(src->leafcxt, sizeof(KsLeaf) * Max(list_length(oids), 1));
	src->nleaves = 0;
	source = table_open(src->relid, NoLock);
	KsSourceCheckColumns(src, source);
	if (src->tree)
	{
		KsSourceCheckOwnDefault(source, src->offset_attnum, src->seqoid, src->aggname);
		/*
		 * The tables of the tree, ancestors too, without waiting: a DROP
		 * INDEX of a parent's index holds the parent, then waits for the
		 * leaf this step holds (a deadlock the regress tests met).
		 */
		if (!KsSourceCheckDefaults(src->relid, src->relid, src->offset_attnum, src->seqoid,
								   src->aggname, false))
		{
			table_close(source, NoLock);
			src->leaf_busy = true;
			return false;
		}
		KsSourceRememberParents(src);
	}
	foreach(lc, oids)
	{
		MemoryContext oldcxt;
		Relation	heap = source;

		if (lfirst_oid(lc) != src->relid)
		{
			heap = try_table_open(lfirst_oid(lc), NoLock);
			if (heap == NULL)
				continue;		/* dropped meanwhile */
		}
		oldcxt = MemoryContextSwitchTo(src->leafcxt);
		KsLeafSetup(src, &src->leaves[src->nleaves], heap, source, true);
		MemoryContextSwitchTo(oldcxt);
		src->nleaves++;
		if (heap != source)
			table_close(heap, NoLock);
		/* an index being rebuilt: the batch waits, and the leaves are set up again */
		if (src->leaf_busy)
		{
			table_close(source, NoLock);
			return false;
		}
	}
	table_close(source, NoLock);
	src->stale = false;
	/* the indexes chosen are read under a lock taken without waiting */
	for (i = 0; i < src->nleaves; i++)
	{
		if (!ConditionalLockRelationOid(src->leaves[i].indexoid, AccessShareLock))
		{
			src->leaf_busy = true;
			return false;
		}
	}
	return true;
}

/* A relation changed: the leaves need setting up again if it is one of theirs. */
void
KsSourceRelationChanged(KsSource *src, Oid relid)
{
	int			i;

	KsWritersRelationChanged(src, relid);
	if (relid == InvalidOid || relid == src->relid)
	{
		src->stale = true;
		return;
	}
	for (i = 0; i < src->nleaves; i++)
		if (src->leaves[i].relid == relid || src->leaves[i].indexoid == relid)
			src->stale = true;
	for (i = 0; i < src->nparents; i++)
		if (src->parents[i] == relid)
			src->stale = true;
}

/*
 * The tables writers of the source's rows may lock instead of the source:
 * its ancestors, and all its descendants (see the banner of source.h).
 * NIL for a table that is in no partition tree.
 */
List *
KsSourceTreeRelids(KsSource *src)
{
	List	   *rels;

	if (!src->tree)
		return NIL;
	/* what the catalog says now, after the high-water mark was read */
	AcceptInvalidationMessages();
	InvalidateCatalogSnapshot();
	rels = find_all_inheritors(src->relid, NoLock, NULL);
	if (get_rel_relispartition(src->relid))
		rels = list_concat(rels, get_partition_ancestors(src->relid));
	return rels;
}
