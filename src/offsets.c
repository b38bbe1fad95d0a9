/*-------------------------------------------------------------------------
 *
 * offsets.c
 *	  The source reader's offsets: choosing a table's offset column, and
 *	  reading and checking the sequence that fills it (where consumption
 *	  starts, and a sequence that would hand out offsets behind what was
 *	  consumed).  Part of the source reader; see source.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/dependency.h"
#include "catalog/partition.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "executor/spi.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "shmem.h"
#include "source.h"

/*
 * Read a sequence's definition and current value, without a privilege
 * check (the reader may read the aggregation but not the sequence).  The
 * caller holds a lock on it.  Reads the one tuple of the sequence's page,
 * as nextval() writes it.
 */
static void
KsReadSequence(Oid seqoid, KsSequenceState *st)
{
	HeapTuple	tup;
	Form_pg_sequence seq;
	Relation	rel;
	Buffer		buf;
	Page		page;
	ItemId		lp;
	HeapTupleData data;
	Form_pg_sequence_data sd;

	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for sequence %u", seqoid);
	seq = (Form_pg_sequence) GETSTRUCT(tup);
	st->increment = seq->seqincrement;
	st->minvalue = seq->seqmin;
	st->maxvalue = seq->seqmax;
	st->cache = seq->seqcache;
	st->cycle = seq->seqcycle;
	ReleaseSysCache(tup);

	rel = relation_open(seqoid, NoLock);
	buf = ReadBuffer(rel, 0);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	lp = PageGetItemId(page, FirstOffsetNumber);
	if (!ItemIdIsNormal(lp))
		elog(ERROR, "sequence \"%s\" has no value tuple", RelationGetRelationName(rel));
	data.t_data = (HeapTupleHeader) PageGetItem(page, lp);
	data.t_len = ItemIdGetLength(lp);
	sd = (Form_pg_sequence_data) GETSTRUCT(&data);
	st->last_value = sd->last_value;
	st->is_called = sd->is_called;
	UnlockReleaseBuffer(buf);
	relation_close(rel, NoLock);
}

/* The last value handed out by a sequence, read without a privilege check. */
bool
KsSequenceLastValue(Oid seqoid, int64 *value, bool nowait)
{
	KsSequenceState st;

	if (nowait)
	{
		if (!ConditionalLockRelationOid(seqoid, AccessShareLock))
			return false;
	}
	else
		LockRelationOid(seqoid, AccessShareLock);
	/* it may have gone before we locked it */
	if (!SearchSysCacheExists1(SEQRELID, ObjectIdGetDatum(seqoid)))
	{
		UnlockRelationOid(seqoid, AccessShareLock);
		return false;
	}
	KsReadSequence(seqoid, &st);
	UnlockRelationOid(seqoid, AccessShareLock);
	if (!st.is_called)
		return false;
	*value = st.last_value;
	return true;
}

/*
 * The highest value a sequence may have handed out: its last value, called
 * or not (no privilege check).
 */
int64
KsSequenceHighest(Oid seqoid)
{
	KsSequenceState st;

	LockRelationOid(seqoid, AccessShareLock);
	KsReadSequence(seqoid, &st);
	UnlockRelationOid(seqoid, AccessShareLock);
	return st.last_value;
}

/* Refuse a sequence whose settings let offsets commit out of order behind us. */
static void
KsCheckSequenceSettings(Oid seqoid, KsSequenceState *st, const char *aggname)
{
	const char *seqname = get_rel_name(seqoid);

	if (st->cache > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" has CACHE " INT64_FORMAT, seqname, st->cache),
				 errdetail("Cached sequence values let rows with lower offsets commit after higher ones have been consumed%s%s.",
						   aggname ? " by aggregation " : "", aggname ? aggname : ""),
				 errhint("Use ALTER SEQUENCE %s CACHE 1%s.", seqname,
						 aggname ? ", then call keyedstate.resume()" : "")));
	if (st->increment < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" descends", seqname),
				 errdetail("Offsets must grow.")));
	if (st->cycle)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" cycles", seqname),
				 errdetail("A cycling sequence hands out offsets that were consumed already."),
				 errhint("Use ALTER SEQUENCE %s NO CYCLE%s.", seqname,
						 aggname ? ", then call keyedstate.resume()" : "")));
}

/* The offset before the first one a sequence can hand out (see source.h). */
int64
KsSourceStartOffset(Oid seqoid)
{
	KsSequenceState st;

	LockRelationOid(seqoid, AccessShareLock);
	KsReadSequence(seqoid, &st);
	KsCheckSequenceSettings(seqoid, &st, NULL);
	if (st.minvalue == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" starts at the smallest bigint", get_rel_name(seqoid)),
				 errdetail("keyedstate records the offset consumed so far, which must be able to lie below the first one."),
				 errhint("Use ALTER SEQUENCE %s MINVALUE -9223372036854775807.", get_rel_name(seqoid))));
	/* offsets below the sequence's minimum may have been inserted explicitly */
	return Min(st.minvalue - 1, 0);
}

/* The sequence a column owns (identity or serial), or InvalidOid. */
static Oid
KsOwnedSequence(Oid relid, AttrNumber attnum)
{
	Oid			seqoid = getIdentitySequence(relid, attnum, true);
	ListCell   *lc;

	if (OidIsValid(seqoid))
		return seqoid;
	foreach(lc, getOwnedSequences(relid))
	{
		Oid			tab;
		int32		col;

		if (sequenceIsOwned(lfirst_oid(lc), DEPENDENCY_AUTO, &tab, &col) && col == attnum)
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

/*
 * The sequence filling an int column, or InvalidOid: the one it owns, or
 * for a partition the one its column owns in an ancestor (a bigserial of
 * the partitioned table: its partitions inherit the default, not the
 * ownership), the nearest first.
 */
static Oid
KsColumnSequence(Oid relid, AttrNumber attnum)
{
	Oid			seqoid = KsOwnedSequence(relid, attnum);
	char	   *attname;
	ListCell   *lc;

	if (OidIsValid(seqoid) || !get_rel_relispartition(relid))
		return seqoid;
	attname = get_attname(relid, attnum, false);
	foreach(lc, get_partition_ancestors(relid))
	{
		AttrNumber	ancattnum = get_attnum(lfirst_oid(lc), attname);

		if (ancattnum != InvalidAttrNumber &&
			OidIsValid(seqoid = KsOwnedSequence(lfirst_oid(lc), ancattnum)))
			return seqoid;
	}
	return InvalidOid;
}

/* The sequence a default is nextval() of, at most cast; else InvalidOid (see source.h). */
Oid
KsPlainNextvalSequence(Node *expr)
{
	for (;;)
	{
		if (expr != NULL && IsA(expr, RelabelType))
			expr = (Node *) ((RelabelType *) expr)->arg;
		else if (expr != NULL && IsA(expr, FuncExpr) && list_length(((FuncExpr *) expr)->args) == 1 &&
				 (((FuncExpr *) expr)->funcformat == COERCE_IMPLICIT_CAST ||
				  ((FuncExpr *) expr)->funcformat == COERCE_EXPLICIT_CAST))
			expr = linitial(((FuncExpr *) expr)->args);
		else
			break;
	}
	if (expr != NULL && IsA(expr, FuncExpr) && ((FuncExpr *) expr)->funcid == F_NEXTVAL &&
		list_length(((FuncExpr *) expr)->args) == 1 &&
		IsA(linitial(((FuncExpr *) expr)->args), Const) &&
		!((Const *) linitial(((FuncExpr *) expr)->args))->constisnull)
		return DatumGetObjectId(((Const *) linitial(((FuncExpr *) expr)->args))->constvalue);
	return InvalidOid;
}

/* Refuse an offset column filled from a sequence it does not own, saying so. */
static void
KsRefuseUnownedSequence(Relation rel, AttrNumber attnum)
{
	/* to say why a column whose sequence it does not own is no offset column */
	Oid			seqoid = KsPlainNextvalSequence(build_column_default(rel, attnum));
	const char *attname = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);

	if (!OidIsValid(seqoid))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("offset column \"%s\" takes its values from sequence \"%s\", which it does not own",
					attname, get_rel_name(seqoid)),
			 errdetail("keyedstate consumes a table in the order of an identity column, or of a column that owns its sequence (serial, bigserial, or OWNED BY)."),
			 errhint("Make the column own it: ALTER SEQUENCE %s OWNED BY %s.%s.",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(seqoid)),
												get_rel_name(seqoid)),
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)),
					 quote_identifier(attname))));
}

/* Whether a column can carry offsets (see source.h). */
bool
KsIsOffsetType(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID;
}

/*
 * Choose the offset column: the named one, or else the primary key if it is
 * a sequence-filled integer, or else the only sequence-filled integer.
 */
AttrNumber
KsSourceOffsetColumn(Relation rel, const char *colname, Oid *seqoid)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	found = InvalidAttrNumber;
	int			ncandidates = 0;
	Oid			pkoid;
	int			i;

	if (colname != NULL)
	{
		AttrNumber	attnum = get_attnum(relid, colname);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							colname, RelationGetRelationName(rel))));
		if (attnum < 0 || !KsIsOffsetType(TupleDescAttr(desc, attnum - 1)->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("offset column \"%s\" must be of type smallint, integer or bigint", colname)));
		*seqoid = KsColumnSequence(relid, attnum);
		if (!OidIsValid(*seqoid))
			KsRefuseUnownedSequence(rel, attnum);
		if (!OidIsValid(*seqoid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("offset column \"%s\" is not filled from a sequence", colname),
					 errhint("Use a serial, bigserial or identity column.")));
		return attnum;
	}

	pkoid = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(pkoid))
	{
		Relation	idx = index_open(pkoid, AccessShareLock);

		if (idx->rd_index->indnatts == 1 && idx->rd_index->indkey.values[0] > 0)
		{
			AttrNumber	attnum = idx->rd_index->indkey.values[0];

			if (KsIsOffsetType(TupleDescAttr(desc, attnum - 1)->atttypid) &&
				OidIsValid(*seqoid = KsColumnSequence(relid, attnum)))
				found = attnum;
		}
		index_close(idx, AccessShareLock);
		if (found != InvalidAttrNumber)
			return found;
	}

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			s;

		if (att->attisdropped || !KsIsOffsetType(att->atttypid))
			continue;
		s = KsColumnSequence(relid, att->attnum);
		if (OidIsValid(s))
		{
			ncandidates++;
			found = att->attnum;
			*seqoid = s;
		}
	}
	/* a sequence-filled integer primary key whose sequence it does not own */
	if (ncandidates == 0 && OidIsValid(pkoid))
	{
		Relation	idx = index_open(pkoid, AccessShareLock);
		AttrNumber	attnum = idx->rd_index->indnatts == 1 ? idx->rd_index->indkey.values[0] : 0;

		index_close(idx, AccessShareLock);
		if (attnum > 0 && KsIsOffsetType(TupleDescAttr(desc, attnum - 1)->atttypid))
			KsRefuseUnownedSequence(rel, attnum);
	}
	if (ncandidates == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no offset column", RelationGetRelationName(rel)),
				 errdetail("keyedstate consumes a table in the order of an integer column filled from a sequence."),
				 errhint("Add a bigserial or identity column, or name one with offset_column.")));
	if (ncandidates > 1)
		ereport(ERROR,
				(errcode(ERRCODE_AMBIGUOUS_COLUMN),
				 errmsg("table \"%s\" has several candidate offset columns", RelationGetRelationName(rel)),
				 errhint("Name one with offset_column.")));
	return found;
}

/* The smallest offset a sequence may still hand out (PG_INT64_MAX past its end). */
static int64
KsNextOffset(const KsSequenceState *st)
{
	int64		next;

	if (!st->is_called)
		return st->last_value;
	if (pg_add_s64_overflow(st->last_value, st->increment, &next))
		return PG_INT64_MAX;
	return next;
}

/*
 * Read the sequence at a step, and check it: its settings, and that it
 * never hands out an offset at or below one it handed out before (or one
 * consumed).
 */
void
KsSourceReadSequence(KsSource *src, KsSequenceState *st)
{
	int64		next;

	KsReadSequence(src->seqoid, st);
	KsCheckSequenceSettings(src->seqoid, st, src->aggname);
	next = KsNextOffset(st);
	/*
	 * A restore sets the sequences after the rows: a restored run (or one
	 * that has consumed nothing: a data-only restore bound it while its
	 * source was empty) that found rows while its sequence was never called
	 * waits for the setval, ten minutes at most, consuming nothing above the
	 * sequence meanwhile (009's flake, twice).
	 */
	if (next <= src->seq_seen && !st->is_called && src->restoring)
	{
		if (src->restore_wait_since == 0)
			src->restore_wait_since = GetCurrentTimestamp();
		if (!TimestampDifferenceExceeds(src->restore_wait_since, GetCurrentTimestamp(), 10 * 60 * 1000))
			return;
	}
	if (next <= src->seq_seen && !(st->is_called && st->last_value == src->seq_seen))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s\" went backwards", get_rel_name(src->seqoid)),
				 errdetail("Its next value " INT64_FORMAT " is not above offset " INT64_FORMAT ", which aggregation %s has already seen handed out or in its table; rows given those offsets, or the table's rows above the sequence, would be skipped.",
						   next, src->seq_seen, src->aggname),
				 errhint("Move the sequence past " INT64_FORMAT " with setval(), then call keyedstate.rebuild() to consume the table again from the beginning; keyedstate.resume() only if no row was inserted while the sequence was behind: such rows are never consumed.",
						 src->seq_seen)));
	if (st->is_called && st->last_value > src->seq_seen)
		src->seq_seen = st->last_value;
	/* rows above the sequence, found by the load (source.c): said once, in the log */
	if (src->table_seen && src->table_max >= next && st->is_called)
	{
		ereport(WARNING,
				(errmsg("table \"%s\" holds rows above its sequence \"%s\"",
						get_rel_name(src->relid), get_rel_name(src->seqoid)),
				 errdetail("Its highest offset " INT64_FORMAT " is not below the sequence's next value " INT64_FORMAT ": aggregation %s consumes such rows once the sequence has handed out their offsets, and keyedstate.sync() does not wait for them.",
						   src->table_max, next, src->aggname),
				 errhint("Move the sequence past " INT64_FORMAT " with setval() to have them consumed now.", src->table_max)));
		src->table_max = PG_INT64_MIN;
	}
	/* called once (the setval came, or a writer's nextval): a restart later is no restore's
	 * (security review 22, F3: it was waited on for ten minutes, status saying running) */
	if (st->is_called)
		src->restoring = false;
}

/*
 * The sequence and the offset up to which aggregation aggid has consumed
 * (the most of its parts'): from their slots, or, while none has loaded
 * (after a restart, or keyedstate.enabled off), from their last checkpoints
 * (a loaded one's slot is trusted even at 0: a catalog query for every
 * statement while nothing was consumed made single-row inserts 1.8 times
 * slower, re-review today 39, F5).
 */
static void
KsConsumedOffset(int32 aggid, Oid *seqoid, int64 *consumed)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	int			nparts;
	int			n = KsFindAggParts(MyDatabaseId, aggid, refs, KsSharedState->max_aggs, &nparts);
	KsAggSlot  *copy = palloc(sizeof(KsAggSlot));
	KsCatalogAccess acc;
	Datum		arg = Int32GetDatum(aggid);
	Oid			argtype = INT4OID;
	bool		isnull;
	bool		loaded = false;

	*seqoid = InvalidOid;
	*consumed = 0;
	for (int i = 0; i < n; i++)
		if (KsSlotSnapshot(&refs[i], copy))
		{
			*consumed = Max(*consumed, Max(copy->consumed_offset, copy->checkpointed_offset));
			*seqoid = copy->sequence_oid;
			loaded |= copy->state == KS_RUNNING || copy->state == KS_WAITING;
		}
	pfree(refs);
	pfree(copy);
	if ((*consumed != 0 || loaded) && OidIsValid(*seqoid))
		return;
	KsCatalogOpen(&acc);
	if (SPI_execute_with_args("SELECT a.sequence::pg_catalog.oid, pg_catalog.max(GREATEST(a.checkpointed_offset, p.checkpointed_offset)) "
							  "FROM keyedstate_internal.aggregation a LEFT JOIN keyedstate_internal.part p "
							  "ON p.aggregation_id = a.id AND NOT p.retired WHERE a.id = $1 GROUP BY a.sequence",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "keyedstate could not read the offsets of aggregation %d", aggid);
	if (SPI_processed == 1)
	{
		*seqoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*consumed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			*consumed = 0;
	}
	KsCatalogClose(&acc);
}

/* Refuse an INSERT while the sequence would hand out consumed offsets (see source.h). */
void
KsRefuseConsumedOffsets(int32 aggid, Oid relid)
{
	Oid			seqoid;
	int64		consumed;
	int64		next;
	KsSequenceState st;
	Relation	seq;

	KsConsumedOffset(aggid, &seqoid, &consumed);
	if (consumed <= 0 || !OidIsValid(seqoid) ||
		(seq = try_relation_open(seqoid, AccessShareLock)) == NULL)
		return;
	KsReadSequence(seqoid, &st);
	relation_close(seq, NoLock);
	if ((next = KsNextOffset(&st)) > consumed)
		return;
	/*
	 * The figures only to a writer who may set the sequence (and so read
	 * it): a writer of explicit offsets, without a right on the sequence or
	 * the view, was told both (security review 49, F2).
	 */
	if (pg_class_aclcheck(seqoid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot insert into table \"%s\" while its sequence \"%s\" is set back",
						get_rel_name(relid), get_rel_name(seqoid)),
				 errdetail("A keyedstate aggregation has consumed the table past the sequence's next value: rows given such offsets would never be aggregated."),
				 errhint("The sequence's owner can move it past the offset consumed with setval().")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot insert into table \"%s\" while its sequence \"%s\" is set back",
					get_rel_name(relid), get_rel_name(seqoid)),
			 errdetail("Its next value " INT64_FORMAT " is not above offset " INT64_FORMAT ", up to which a keyedstate aggregation has consumed the table: rows given such offsets would never be aggregated.",
					   next, consumed),
			 errhint("Move the sequence past " INT64_FORMAT " with setval().", consumed)));
}

/* The same for the aggregations whose sources lie below partitioned table relid (see source.h). */
void
KsRefuseConsumedOffsetsBelow(Oid relid)
{
	int32	   *aggids;
	int			n;

	if (KsSharedState == NULL)
		return;
	aggids = palloc(sizeof(int32) * KsSharedState->max_aggs);
	n = KsAggregationsBelow(MyDatabaseId, relid, aggids, KsSharedState->max_aggs);
	for (int i = 0; i < n; i++)
		KsRefuseConsumedOffsets(aggids[i], relid);
	pfree(aggids);
}

/* Whether a role may read a column: SELECT on the table or on it (see source.h). */
bool
KsMayReadColumn(Oid relid, AttrNumber attnum, Oid userid)
{
	return pg_class_aclcheck(relid, userid, ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck(relid, attnum, userid, ACL_SELECT) == ACLCHECK_OK;
}

/* Refuse an owner who may not read the offset column (see source.h). */
void
KsCheckOffsetPrivilege(Oid relid, AttrNumber attnum, Oid userid)
{
	if (KsMayReadColumn(relid, attnum, userid))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for column %s of table %s",
					get_attname(relid, attnum, false), get_rel_name(relid)),
			 errdetail("An aggregation reads its table's offset column, and keyedstate.sync() and keyedstate.status show its values."),
			 errhint("The table's owner can GRANT SELECT (%s) ON it to you.", get_attname(relid, attnum, false))));
}
