/*-------------------------------------------------------------------------
 *
 * ckptcommit.c
 *	  Committing a checkpoint's offset with its chunks, and deleting the
 *	  checkpoints nobody needs: an interrupted one's, those a full one
 *	  replaces, those of a dropped or rebuilt aggregation, and those of
 *	  parts a rescale retired once every new part has its own.  With
 *	  checkpoint.c, the only writer of keyedstate_internal.state (checkpoint.h).
 *
 * The offset goes to the run's row: the aggregation's, or its part's
 * (keyedstate_internal.part) when it runs in parts.  A part's first checkpoint
 * after a rescale is full (seed.c) and clears the part's seed_from, so
 * from then on the part recovers from its own checkpoints; a retired part
 * (or the aggregation's own checkpoints, when the aggregation ran whole
 * before) goes once no part seeds from it any more.  Two parts clearing
 * their seeds at once each see the other's still set, so the deletion is
 * tried again in a transaction after the clearing one committed (step.c),
 * which sees every part that cleared before: the last one deletes.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/relation.h"
#include "access/subtrans.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "checkpoint.h"
#include "cold.h"
#include "evict.h"

/* Lock a table and its indexes for writing, without waiting; false if one is held. */
static bool
KsLockForWriteNow(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid(KS_DATA_SCHEMA, false));
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	bool		ok = true;

	if (!OidIsValid(relid) || !ConditionalLockRelationOid(relid, RowExclusiveLock))
		return false;
	rel = relation_open(relid, NoLock);
	indexes = RelationGetIndexList(rel);
	relation_close(rel, NoLock);
	foreach(lc, indexes)
		if (!ConditionalLockRelationOid(lfirst_oid(lc), RowExclusiveLock))
		{
			ok = false;
			break;
		}
	list_free(indexes);
	return ok;
}

/*
 * Lock the run's row for the checkpoint, without waiting: a backend
 * pausing or dropping the aggregation in a transaction left open would
 * otherwise stall the worker, and every other aggregation with it.  Then a
 * concurrent drop_aggregation() either waits for this step, and deletes
 * its chunks too, or has deleted the row already, and nothing of this
 * checkpoint may be written.  A part locks its own row, and its
 * aggregation's only against a drop, so that parts checkpoint at once; a
 * rescale that retired the run (its part, or the aggregation run whole
 * before it had parts) makes the run write nothing more: the rescale
 * updates the very row locked (retired, layout), so even a lock taken
 * after it committed rechecks the row as it is now.  False if the row is
 * locked, gone or retired.
 */
bool
KsLockDefinitionRow(KsAggRun *run)
{
	Datum		args[2] = {Int32GetDatum(run->def->id),
	Int32GetDatum(run->def->is_part ? run->def->agg_id : run->def->layout)};
	Oid			argtypes[2] = {INT4OID, INT4OID};
	int			ret;

	/* the catalog tables too, without waiting: a VACUUM FULL of them (re-review today 26, F6) */
	if (!KsLockCatalogNow())
		return false;
	if (run->def->is_part)
		ret = SPI_execute_with_args("SELECT 1 FROM keyedstate_internal.part p "
									"JOIN keyedstate_internal.aggregation a ON a.id = p.aggregation_id "
									"WHERE p.id = $1 AND a.id = $2 AND NOT p.retired "
									"FOR NO KEY UPDATE OF p SKIP LOCKED FOR KEY SHARE OF a SKIP LOCKED",
									2, argtypes, args, NULL, false, 0);
	else
		ret = SPI_execute_with_args("SELECT 1 FROM keyedstate_internal.aggregation a WHERE a.id = $1 "
									"AND a.layout = $2 AND NOT EXISTS (SELECT FROM keyedstate_internal.part p "
									"                WHERE p.aggregation_id = a.id) "
									"FOR NO KEY UPDATE SKIP LOCKED",
									2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	return SPI_processed == 1;
}

/*
 * The pid of the session whose transaction holds the run's catalog row
 * that KsLockDefinitionRow skipped (an uncommitted alter_aggregation(),
 * pause() or resume() of its owner's), by the row's xmax; 0 when none is
 * found (a prepared transaction, several lockers, or it ended meanwhile).
 */
int
KsDefinitionRowHolder(KsAggRun *run)
{
	Datum		args[2] = {Int32GetDatum(run->def->id),
	Int32GetDatum(run->def->is_part ? run->def->agg_id : run->def->id)};
	Oid			argtypes[2] = {INT4OID, INT4OID};
	TransactionId xmax = InvalidTransactionId;
	bool		isnull;

	/* the tables themselves held (KsLockDefinitionRow): never wait to read the row */
	if (!KsLockCatalogNow())
		return KsStateTablesHolder();
	/* a part's row first, then its aggregation's */
	if (SPI_execute_with_args("SELECT x FROM (SELECT 1 AS o, p.xmax AS x FROM keyedstate_internal.part p "
							  "WHERE p.id OPERATOR(pg_catalog.=) $1 UNION ALL "
							  "SELECT 2, a.xmax FROM keyedstate_internal.aggregation a "
							  "WHERE a.id OPERATOR(pg_catalog.=) $2) s "
							  "WHERE s.x OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid ORDER BY s.o LIMIT 1",
							  2, argtypes, args, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			xmax = DatumGetTransactionId(d);
	}
	/* a subtransaction's lock is its top transaction's (re-review today 23, F3) */
	if (TransactionIdIsNormal(xmax) && TransactionIdFollowsOrEquals(xmax, TransactionXmin) &&
		TransactionIdIsInProgress(xmax))
		xmax = SubTransGetTopmostTransaction(xmax);
	/* (a multixact's number is no transaction's: BackendXidGetPid finds none) */
	return TransactionIdIsNormal(xmax) ? BackendXidGetPid(xmax) : 0;
}

/*
 * Lock keyedstate_internal.state and keyedstate_internal.cold, and their indexes, for the
 * checkpoint's writes, without waiting (see checkpoint.h).  A DBA's
 * VACUUM FULL, CLUSTER, REINDEX or ALTER TABLE ... SET TABLESPACE of them
 * holds an exclusive lock for as long as it runs: the checkpoint waits for
 * it by skipping its slices (tried again 0.1 s later) while the steps
 * consume and publish on, instead of waiting inside a step.  What a
 * skipped slice holds is released with the step's transaction.
 */
bool
KsLockStateTables(void)
{
	return KsLockForWriteNow("state") && KsLockForWriteNow("cold");
}

/* The same for keyedstate_internal.aggregation and .part (see checkpoint.h). */
bool
KsLockCatalogNow(void)
{
	return KsLockForWriteNow("aggregation") && KsLockForWriteNow("part");
}

/* Who holds keyedstate's tables against those locks (see checkpoint.h). */
int
KsStateTablesHolder(void)
{
	static const char *const tables[] = {"state", "cold", "aggregation", "part"};
	Oid			ns = get_namespace_oid(KS_DATA_SCHEMA, false);
	int			pid = 0;

	for (int i = 0; i < (int) lengthof(tables) && pid <= 0; i++)
		pid = KsLockHolderPid(get_relname_relid(tables[i], ns), RowExclusiveLock);
	return pid;
}

/*
 * Delete the retired parts nobody seeds from any more, with their
 * checkpoints (see checkpoint.h).  Rows another transaction holds are
 * left for a later try rather than waited for.
 */
void
KsCheckpointForgetRetired(KsAggRun *run)
{
	Datum		arg = Int32GetDatum(run->def->agg_id);
	Oid			argtype = INT4OID;
	int32	   *ids;
	int			n = 0;

	/* a VACUUM FULL of keyedstate_internal.state: at a later step */
	if (!KsLockStateTables())
	{
		run->retired_gc = true;
		return;
	}

	/*
	 * The ids whose rows go: the retired parts deleted here, then the
	 * aggregation's own (from when it ran whole) once parts run and none
	 * seeds from it, as seen after those deletions.  Their rows are deleted
	 * by id, each through its table's primary key.
	 */
	if (SPI_execute_with_args("WITH gone AS ("
							  " DELETE FROM keyedstate_internal.part r WHERE r.id IN "
							  "  (SELECT x.id FROM keyedstate_internal.part x "
							  "    WHERE x.aggregation_id = $1 AND x.retired AND NOT EXISTS "
							  "     (SELECT FROM keyedstate_internal.part q WHERE q.aggregation_id = $1 "
							  "         AND q.seed_from @> ARRAY[x.id]) "
							  "   FOR UPDATE SKIP LOCKED) "
							  " RETURNING r.id) "
							  "SELECT id FROM gone",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "keyedstate checkpoint failed");
	ids = palloc(sizeof(int32) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		ids[n++] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (SPI_execute_with_args("SELECT WHERE EXISTS (SELECT FROM keyedstate_internal.part q WHERE q.aggregation_id = $1) "
							  "  AND NOT EXISTS (SELECT FROM keyedstate_internal.part q "
							  "                  WHERE q.aggregation_id = $1 AND q.seed_from @> ARRAY[$1])",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "keyedstate checkpoint failed");
	if (SPI_processed > 0)
		ids[n++] = run->def->agg_id;
	for (int i = 0; i < n; i++)
	{
		arg = Int32GetDatum(ids[i]);
		KsColdDeleteOf(ids[i], 0);
		if (KsStateExecute(NULL, "DELETE FROM keyedstate_internal.state WHERE aggregation_id = $1",
						   1, &argtype, &arg) != SPI_OK_DELETE)
			elog(ERROR, "keyedstate checkpoint failed");
	}
	pfree(ids);
}

/*
 * The checkpoint's row was not updated: the aggregation is gone, or a
 * rebuild() (or a resume()) committed after this run last read its
 * definition.  Committing would overwrite the rebuild's fresh start with
 * this run's old state, whose older chunks the rebuild deleted.  So the
 * checkpoint is abandoned, and the run waits for the reload that brings
 * the new definition (as a run whose step a backend interrupted does).
 */
static void
KsCheckpointOutdated(KsAggRun *run)
{
	Datum		arg = Int32GetDatum(run->def->agg_id);
	Oid			argtype = INT4OID;

	if (SPI_execute_with_args("SELECT FROM keyedstate_internal.aggregation WHERE id = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("aggregation %s no longer exists", run->name)));
	run->definition_outdated = true;
	ereport(LOG,
			(errmsg("keyedstate abandoned a checkpoint of aggregation %s: it was rebuilt or resumed meanwhile",
					run->name)));
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("the definition of aggregation %s changed during its checkpoint", run->name)));
}

/* Whether a clean stop has nothing to checkpoint (see checkpoint.h). */
bool
KsCheckpointUnchanged(KsAggRun *run)
{
	return run->ckpt == NULL && run->ckpt_have_full && run->ckpt_last_id > 0 &&
		run->kt->nckpt == 0 && run->consumed == run->checkpointed &&
		run->ncold_expired == 0 && !run->seed_ckpt_due && !KsEvictDue(run);
}

/*
 * Update the run's own catalog row (its part's, or its aggregation's) as
 * `set` says where `cond` holds, never waiting for the row: a backend
 * holding it leaves it as it is.  $1 is the row's id, $2 `value`.  True if
 * the row was updated.
 */
static bool
KsUpdateRunRowNow(KsAggRun *run, const char *set, const char *cond, int64 value)
{
	const char *table = run->def->is_part ? "part" : "aggregation";
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};

	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum(value);
	if (SPI_execute_with_args(psprintf("UPDATE keyedstate_internal.%s SET %s "
									   "WHERE id = (SELECT id FROM keyedstate_internal.%s "
									   "            WHERE id = $1 AND %s "
									   "            FOR NO KEY UPDATE SKIP LOCKED)",
									   table, set, table, cond),
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "keyedstate could not update the catalog row of aggregation %s", run->name);
	return SPI_processed == 1;
}

/*
 * Set (at the checkpoint it committed last) or clear the clean-stop mark of
 * the run's row, as the worker, never waiting for the row.  True if the
 * mark changed.
 */
bool
KsCheckpointSetCleanStop(KsAggRun *run, bool clean)
{
	return KsUpdateRunRowNow(run, clean ? "clean_stop = true" : "clean_stop = false",
							 clean ? "checkpoint_id = $2" : "clean_stop", run->ckpt_last_id);
}

/*
 * Keep on the run's row the highest offset its worker saw the sequence
 * hand out (see checkpoint.h), in a transaction of its own, never waiting
 * for the row; an error is logged and forgotten.
 */
void
KsCheckpointKeepSequenceSeen(KsAggRun *run, int64 seen)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (KsLockCatalogNow())
			(void) KsUpdateRunRowNow(run, "sequence_seen = $2",
									 "(sequence_seen IS NULL OR sequence_seen OPERATOR(pg_catalog.<) $2)", seen);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
}

/*
 * Mark a clean stop on the run's row (see checkpoint.h); a row or a table
 * a backend holds is left as it is, never waited for: the stop then counts
 * as after a crash, replaying nothing (its offset is the consumed one).
 */
void
KsCheckpointMarkCleanStop(KsAggRun *run)
{
	if (!KsLockCatalogNow())
		return;
	/* keyedstate's own row: as the worker, then back to the owner the step runs as */
	KsBecomeWorker();
	(void) KsCheckpointSetCleanStop(run, true);
	KsBecomeOwner(run);
}

/* Commit a checkpoint's offset with its chunks (see checkpoint.h). */
void
KsCheckpointCommit(KsAggRun *run, int64 offset, TimestampTz watermark, int64 checkpoint_id,
				   bool full, bool final, bool rebuilding, int64 cold_rows, int32 chain_chunks)
{
	Datum		args[12];
	Oid			argtypes[12] = {INT4OID, INT8OID, BOOLOID, BOOLOID, INT8OID, INT8OID, TIMESTAMPTZOID,
	INT8OID, INT4OID, INT4OID, INT8OID, INT8OID};
	char		nulls[12] = "           ";
	int			ret;

	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum(offset);
	args[2] = BoolGetDatum(rebuilding);
	args[3] = BoolGetDatum(final);
	args[4] = Int64GetDatum(checkpoint_id);
	args[5] = Int64GetDatum(cold_rows);
	args[6] = TimestampTzGetDatum(watermark);
	nulls[6] = watermark == DT_NOBEGIN ? 'n' : ' ';
	/* the definition the run has: a rebuild or resume committed since writes anew */
	args[7] = Int64GetDatum(run->def->resume_count);
	args[8] = Int32GetDatum(run->def->agg_id);
	args[9] = Int32GetDatum(chain_chunks);
	/* what the sequence was seen to hand out: evidence a later load checks it against (offsets.c) */
	args[10] = Int64GetDatum(run->source.seq_seen);
	/* what its cold rows' places were computed with (cold.h) */
	args[11] = Int64GetDatum((int64) KsKeyPlaceScheme(run->kt));
	if (run->def->is_part)
		ret = SPI_execute_with_args("UPDATE keyedstate_internal.part "
									"SET checkpointed_offset = $2, checkpoint_id = $5, cold_keys = $6, "
									"checkpoint_chunks = $10, last_checkpoint = pg_catalog.now(), clean_stop = $4, "
									"watermark = $7, seed_from = NULL, sequence_seen = GREATEST(sequence_seen, $11), "
									"place_scheme = $12 WHERE id = $1 "
									"AND (SELECT a.resume_count FROM keyedstate_internal.aggregation a WHERE a.id = $9) = $8",
									12, argtypes, args, nulls, false, 0);
	else
		ret = SPI_execute_with_args("UPDATE keyedstate_internal.aggregation "
									"SET checkpointed_offset = $2, checkpoint_id = $5, cold_keys = $6, "
									"checkpoint_chunks = $10, last_checkpoint = pg_catalog.now(), rebuilding = $3, clean_stop = $4, "
									"watermark = $7, sequence_seen = GREATEST(sequence_seen, $11), place_scheme = $12 "
									"WHERE id = $1 AND resume_count = $8",
									12, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "keyedstate checkpoint failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		KsCheckpointOutdated(run);
	/* a part that caught up ends its aggregation's rebuild, never waiting */
	if (run->def->is_part && run->def->rebuilding && !rebuilding)
	{
		args[0] = Int32GetDatum(run->def->agg_id);
		if (SPI_execute_with_args("UPDATE keyedstate_internal.aggregation SET rebuilding = false "
								  "WHERE id = (SELECT id FROM keyedstate_internal.aggregation "
								  "            WHERE id = $1 AND rebuilding "
								  "            FOR NO KEY UPDATE SKIP LOCKED)",
								  1, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "keyedstate checkpoint failed");
		args[0] = Int32GetDatum(run->def->id);
	}
	/*
	 * A full checkpoint makes every older row obsolete: readers skip them
	 * (recovery.c), later steps delete them (KsCheckpointDeleteObsolete).
	 * And this part may have been the last that needed a retired one.
	 */
	if (full && run->def->is_part)
		KsCheckpointForgetRetired(run);
}

/*
 * Delete some rows of checkpoints older than the latest full one (see
 * checkpoint.h), in the step's transaction, as the worker.  Rows a session
 * locks (SELECT ... FOR SHARE of keyedstate_internal.state) are left to
 * the deletion after the next full checkpoint: the worker waited for that
 * session, and under a lock_timeout failed its step (review dba 65, F1).
 */
void
KsCheckpointDeleteObsolete(KsAggRun *run, long *timeout)
{
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, INT8OID, INT4OID};
	bool		paused = KsRunTimeoutsPaused();

	args[0] = Int32GetDatum(run->def->id);
	args[1] = Int64GetDatum(run->ckpt_obsolete_below);
	/* (more once they outnumber two chains: checkpoints follow each other, checkpoint.h) */
	args[2] = Int32GetDatum(run->ckpt_obsolete_rows > 2 * (int64) run->ckpt_chain_chunks ?
							Max(KS_OBSOLETE_PER_STEP, run->ckpt_obsolete_rows - run->ckpt_chain_chunks) :
							KS_OBSOLETE_PER_STEP);
	/* a VACUUM FULL of keyedstate_internal.state: later, as for the checkpoint's slices */
	if (!KsLockStateTables())
	{
		*timeout = Min(*timeout, 100);
		return;
	}
	/* (in a step that checkpointed the timeout is paused until its commit already) */
	if (!paused)
		KsRunTimeoutPause(false);
	KsBecomeWorker();
	if (KsStateExecute(NULL, "DELETE FROM keyedstate_internal.state WHERE (aggregation_id, checkpoint_id, chunk) IN "
							  "(SELECT aggregation_id, checkpoint_id, chunk FROM keyedstate_internal.state "
							  " WHERE aggregation_id = $1 AND checkpoint_id < $2 LIMIT $3 FOR UPDATE SKIP LOCKED)",
							  3, argtypes, args) != SPI_OK_DELETE)
		elog(ERROR, "could not delete obsolete checkpoint rows of aggregation %d", run->def->id);
	run->ckpt_obsolete_rows = Max(run->ckpt_obsolete_rows - (int64) SPI_processed, 0);
	if (SPI_processed < (uint64) DatumGetInt32(args[2]))
		run->ckpt_obsolete_below = 0, run->ckpt_obsolete_rows = 0;
	else
		*timeout = Min(*timeout, 10);	/* the next step soon, even without rows */
	KsBecomeOwner(run);
	if (!paused)
		KsRunTimeoutResume(run);
}

/* Set while KsStateExecute runs its statement (hookpartitions.c reads it). */
static bool ks_own_state_write = false;

/* Run one of the checkpoint's own statements on keyedstate_internal.state (checkpoint.h). */
int
KsStateExecute(SPIPlanPtr plan, const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	int			ret;

	ks_own_state_write = true;
	PG_TRY();
	{
		ret = plan != NULL ? SPI_execute_plan(plan, args, NULL, false, 0) :
			SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0);
	}
	PG_FINALLY();
	{
		ks_own_state_write = false;
	}
	PG_END_TRY();
	return ret;
}

/* Whether the statement running is one KsStateExecute runs (checkpoint.h). */
bool
KsStateOwnWrite(void)
{
	return ks_own_state_write;
}

/*
 * Delete the chunks of checkpoints after the committed one: an interrupted
 * checkpoint's, written by steps before the crash (recovery, as the worker).
 */
void
KsCheckpointDiscardUncommitted(int32 aggid, int64 committed)
{
	Datum		args[2] = {Int32GetDatum(aggid), Int64GetDatum(committed)};
	Oid			argtypes[2] = {INT4OID, INT8OID};

	if (KsStateExecute(NULL, "DELETE FROM keyedstate_internal.state WHERE aggregation_id = $1 AND checkpoint_id > $2",
							  2, argtypes, args) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the uncommitted checkpoint of aggregation %d", aggid);
	/* its cold rows were inserted with its chunks (cold.h) */
	if (SPI_processed > 0)
		KsColdDiscardAfter(aggid, committed);
}

/*
 * Delete every checkpoint of an aggregation that is dropped or rebuilt,
 * its parts' too (inside the catalog bracket: SPI connected, as the
 * superuser).
 */
void
KsCheckpointForget(int32 aggid)
{
	Datum		arg = Int32GetDatum(aggid);
	Oid			argtype = INT4OID;

	/*
	 * A new part copying its seeds' cold rows holds its row until the copy
	 * commits (coldseed.c): wait for it, so that the deletes below, with a
	 * snapshot taken after, see the copies.
	 */
	if (SPI_execute_with_args("SELECT FROM keyedstate_internal.part WHERE aggregation_id = $1 FOR UPDATE",
							  1, &argtype, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the parts of aggregation %d", aggid);
	if (KsStateExecute(NULL, "DELETE FROM keyedstate_internal.state WHERE aggregation_id = $1 "
							  "OR aggregation_id IN (SELECT id FROM keyedstate_internal.part "
							  "                      WHERE aggregation_id = $1)",
							  1, &argtype, &arg) < 0)
		elog(ERROR, "could not delete the checkpoints of aggregation %d", aggid);
	KsColdForget(aggid);
}
