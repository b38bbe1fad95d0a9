/*-------------------------------------------------------------------------
 *
 * sourceddl.c
 *	  The checks of commands that change a source's partitions: ATTACH of a
 *	  table holding rows, and DROP, DETACH or TRUNCATE of one holding rows
 *	  not yet checkpointed.  Part of the source reader; see source.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "source.h"

/*
 * Whether a table (or any leaf under it) holds a row whose offset column,
 * found by name, lies in [lo, hi].  Reads the offset index where there is
 * one, else the whole table.  The caller holds a lock on it that keeps
 * writers out.
 */
static bool
KsTableHasOffsetIn(Oid relid, const char *attname, Oid offset_type, int64 lo, int64 hi)
{
	List	   *oids = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;
	bool		found = false;
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());

	foreach(lc, oids)
	{
		Relation	heap;
		KsLeaf		leaf;
		TupleTableSlot *slot;
		if (found || get_rel_relkind(lfirst_oid(lc)) != RELKIND_RELATION)
			continue;
		heap = table_open(lfirst_oid(lc), NoLock);
		memset(&leaf, 0, sizeof(leaf));
		leaf.offset_attnum = get_attnum(lfirst_oid(lc), attname);
		if (leaf.offset_attnum == InvalidAttrNumber ||
			TupleDescAttr(RelationGetDescr(heap), leaf.offset_attnum - 1)->atttypid != offset_type)
		{
			table_close(heap, NoLock);
			continue;			/* the command itself will refuse it */
		}
		slot = table_slot_create(heap, NULL);
		if (KsFindOffsetIndex(&leaf, heap, offset_type, NULL))
		{
			Relation	index = index_open(leaf.indexoid, AccessShareLock);
			IndexScanDesc scan;
			ScanKeyData keys[2];

			/* (lo - 1, hi]: lo is never the smallest bigint here */
			ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterStrategyNumber, INT8OID,
								   leaf.indexcoll, leaf.gt_proc, Int64GetDatum(lo - 1));
			ScanKeyEntryInitialize(&keys[1], 0, 1, BTLessEqualStrategyNumber, INT8OID,
								   leaf.indexcoll, leaf.le_proc, Int64GetDatum(hi));
			scan = index_beginscan(heap, index, snapshot, 2, 0);
			index_rescan(scan, keys, 2, NULL, 0);
			found = index_getnext_slot(scan, ForwardScanDirection, slot);
			index_endscan(scan);
			index_close(index, AccessShareLock);
		}
		else
		{
			TableScanDesc scan = table_beginscan(heap, snapshot, 0, NULL);
			uint64		n = 0;

			while (!found && table_scan_getnextslot(scan, ForwardScanDirection, slot))
			{
				int64		offset = KsLeafRowOffset(offset_type, leaf.offset_attnum, slot);

				found = offset != PG_INT64_MIN && offset >= lo && offset <= hi;
				if ((++n % 1024) == 0)
					CHECK_FOR_INTERRUPTS();
			}
			table_endscan(scan);
		}
		ExecDropSingleTupleTableSlot(slot);
		table_close(heap, NoLock);
	}
	UnregisterSnapshot(snapshot);
	list_free(oids);
	return found;
}

/* Refuse to attach a table holding rows the frontier may have passed (see source.h). */
void
KsSourceCheckAttach(Oid partrelid, Oid parentrelid, Oid sourceid, AttrNumber src_attnum,
					Oid seqoid, const char *aggname)
{
	char	   *attname = get_attname(sourceid, src_attnum, false);
	Oid			offset_type = get_atttype(sourceid, src_attnum);
	int64		handed_out;

	/* no subscription may replicate into its tables (definition.h) */
	{
		List	   *tables = find_all_inheritors(partrelid, NoLock, NULL);
		ListCell   *lc;

		foreach(lc, tables)
			if (KsTableIsSubscribed(lfirst_oid(lc)))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot attach table \"%s\" as a partition of \"%s\"",
								get_rel_name(partrelid), get_rel_name(parentrelid)),
						 errdetail("A subscription replicates into table \"%s\": logical replication inserts rows with the publisher's offsets, which aggregation %s would never read.",
								   get_rel_name(lfirst_oid(lc)), aggname),
						 errhint("Aggregate the table on the publisher.")));
		list_free(tables);
	}
	/* its tables must follow the source's sequence, as any partition */
	KsSourceCheckDefaults(partrelid, sourceid, src_attnum, seqoid, aggname, true);

	/*
	 * The frontier of the aggregation never lies above what the sequence
	 * has handed out; rows at or below that may be behind it already.  The
	 * sequence's last value counts even when it is not called yet: setval()
	 * may have moved it past what was consumed.  Rows above it have offsets
	 * the sequence will hand out again (so two rows would share one), and
	 * that sync does not wait for: the table's rows must all come after.
	 */
	handed_out = KsSequenceHighest(seqoid);
	if (KsTableHasOffsetIn(partrelid, attname, offset_type, PG_INT64_MIN + 1, PG_INT64_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot attach table \"%s\" as a partition of \"%s\"",
						get_rel_name(partrelid), get_rel_name(parentrelid)),
				 KsTableHasOffsetIn(partrelid, attname, offset_type, PG_INT64_MIN + 1, handed_out) ?
				 errdetail("It holds rows with offsets that aggregation %s may already have consumed past, so they would never be aggregated.",
						   aggname) :
				 errdetail("It holds rows with offsets the sequence of aggregation %s has not handed out yet: it would hand them out again.",
						   aggname),
				 errhint("Attach the table empty and insert its rows afterwards: they get new offsets.")));
}

/* Refuse to remove a partition holding rows not checkpointed yet (see source.h). */
bool
KsSourceCheckRemove(Oid partrelid, Oid sourceid, AttrNumber src_attnum, int64 checkpointed,
					const char *what, const char *aggname, bool cascade)
{
	char	   *attname = get_attname(sourceid, src_attnum, false);
	Oid			offset_type = get_atttype(sourceid, src_attnum);

	if (!KsTableHasOffsetIn(partrelid, attname, offset_type, checkpointed + 1, PG_INT64_MAX))
		return false;
	if (cascade)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s partition \"%s\" of table \"%s\"", what,
					get_rel_name(partrelid), get_rel_name(sourceid)),
			 errdetail("It holds rows that aggregation %s has not yet consumed and checkpointed; they would be lost.",
					   aggname),
			 errhint("Call keyedstate.sync('%s') and then keyedstate.checkpoint('%s') first, or drop the partition with DROP TABLE ... CASCADE, which drops the aggregation too.",
					 aggname, aggname)));
	return false;				/* keep the compiler quiet */
}
