/*-------------------------------------------------------------------------
 *
 * restoredata.c
 *	  Aggregations a data-only restore loaded with their triggers disabled,
 *	  and restored definitions bound later.
 *
 * pg_restore -a --disable-triggers loads the rows of keyedstate_internal.aggregation
 * with its BEFORE INSERT trigger (restore.c) disabled; the end of the
 * ALTER TABLE ... ENABLE TRIGGER ALL after them binds them here.  And a
 * definition the trigger could not analyse as its owner yet (a privilege
 * restored after the data), or one pg_upgrade brought, is bound by its
 * worker before it loads (KsBindWhenAllowed), once its source is ready
 * (KsRunSourceReady).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "parser/parsetree.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "hooks.h"
#include "rowerror.h"
#include "run.h"
#include "settings.h"
#include "shmem.h"
#include "source.h"

/* How long a restored aggregation waits for its source's sequence, at most. */
#define KS_RESTORE_SEQUENCE_WAIT_MS	(10 * 60 * 1000)

PG_FUNCTION_INFO_V1(keyedstate_bind_restored);

/*
 * Bind the rows a data-only restore loaded with the table's triggers
 * disabled (pg_restore -a --disable-triggers wraps the rows of
 * keyedstate_internal.aggregation in ALTER TABLE ... DISABLE and ENABLE TRIGGER
 * ALL), so that its trigger never ran: their trees name the dumped
 * database's objects (DBA review 10, D10-2).  keyedstate.bind_restored(),
 * called at the end of an ALTER TABLE of keyedstate_internal.aggregation (that
 * ENABLE), with the trigger enabled: each such row is deleted and inserted
 * again, which binds it as a restore does (restore.c).  A row is such one
 * when its tree does not name its source's OID, or when it comes from
 * another cluster without the checkpoint chunks or the parts its row names
 * (pg_upgrade keeps them; a dump never has them); never one that runs.
 */
Datum
keyedstate_bind_restored(PG_FUNCTION_ARGS)
{
	KsCatalogAccess acc;
	Oid			argtypes[1] = {INT4ARRAYOID};
	Datum		args[1];
	Datum		rows;
	bool		isnull;
	int32	   *ids;
	Datum	   *elems;
	int			nids = 0;
	uint64		i;

	if (!KsInstalled())			/* (an earlier build's: nothing runs there, catalog.h) */
		PG_RETURN_VOID();
	KsCatalogOpen(&acc);
	if (SPI_execute("SELECT a.id FROM keyedstate_internal.aggregation a "
					"WHERE pg_catalog.strpos(a.query_tree, ' :relid ' OPERATOR(pg_catalog.||) a.source::pg_catalog.oid::pg_catalog.text "
					"                        OPERATOR(pg_catalog.||) ' ') OPERATOR(pg_catalog.=) 0 "
					"   OR (a.system_id IS DISTINCT FROM (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c) "
					"       AND ((a.checkpoint_chunks OPERATOR(pg_catalog.>) 0 AND NOT EXISTS "
					"              (SELECT FROM keyedstate_internal.state s WHERE s.aggregation_id OPERATOR(pg_catalog.=) a.id)) "
					"            OR (a.parallelism OPERATOR(pg_catalog.>) 1 AND NOT EXISTS "
					"              (SELECT FROM keyedstate_internal.part p WHERE p.aggregation_id OPERATOR(pg_catalog.=) a.id))))",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the restored rows of keyedstate_internal.aggregation");
	ids = palloc(sizeof(int32) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		KsSlotRef	ref;
		int			nparts;

		/* never one that runs (a slot of this database has it): a restore reserves none */
		if (KsFindAggParts(MyDatabaseId, id, &ref, 1, &nparts) == 0)
			ids[nids++] = id;
	}
	if (nids > 0)
	{
		/*
		 * Deleted in one statement and inserted in the next: the deletion's
		 * cascade to keyedstate_internal.part runs at the end of its statement, and
		 * would take the parts the insertion's binding makes.
		 */
		elems = palloc(sizeof(Datum) * nids);
		for (int j = 0; j < nids; j++)
			elems[j] = Int32GetDatum(ids[j]);
		args[0] = PointerGetDatum(construct_array(elems, nids, INT4OID, sizeof(int32), true, TYPALIGN_INT));
		if (SPI_execute_with_args("WITH unbound AS (DELETE FROM keyedstate_internal.aggregation a "
								  "WHERE a.id OPERATOR(pg_catalog.=) ANY ($1) RETURNING a) "
								  "SELECT pg_catalog.array_agg(u.a) FROM unbound u",
								  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read the restored rows of keyedstate_internal.aggregation");
		rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		rows = PointerGetDatum(PG_DETOAST_DATUM_COPY(rows));
		argtypes[0] = get_array_type(get_rel_type_id(KsCatalogRelid()));
		if (SPI_execute_with_args("INSERT INTO keyedstate_internal.aggregation SELECT (r).* FROM pg_catalog.unnest($1) r",
								  1, argtypes, &rows, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not bind the restored rows of keyedstate_internal.aggregation");
		ereport(LOG,
				(errmsg("keyedstate bound %llu aggregations that a restore loaded with the triggers of keyedstate_internal.aggregation disabled",
						(unsigned long long) SPI_processed)));
	}
	KsCatalogClose(&acc);
	PG_RETURN_VOID();
}

/* KsRebindDefinition as a KsCallInSubtransaction function. */
static void
KsRebindRun(void *arg)
{
	KsAggRun   *run = arg;

	KsRebindDefinition(run->def, run->owner);
}

/*
 * Whether another part of def's aggregation bound it since def was read:
 * then def takes the tree it wrote (not binding it again, twice recorded).
 */
static bool
KsBoundMeanwhile(KsAggDef *def)
{
	KsCatalogAccess acc;
	Datum		arg = Int32GetDatum(def->agg_id);
	Oid			argtype = INT4OID;
	bool		found;

	KsCatalogOpen(&acc);
	if (SPI_execute_with_args("SELECT a.query_tree FROM keyedstate_internal.aggregation a "
							  "WHERE a.id OPERATOR(pg_catalog.=) $1 AND " KS_BOUND_HERE,
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read keyedstate_internal.aggregation");
	found = SPI_processed == 1;
	if (found)
	{
		def->query_tree = MemoryContextStrdup(GetMemoryChunkContext(def),
											  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		def->other_cluster = false;
	}
	KsCatalogClose(&acc);
	return found;
}

/*
 * Bind a run's definition now if it needs it and its owner may.  1: bound,
 * or nothing to bind (or an error the load will raise again); 0: its owner
 * lacks a privilege the analysis needs (a restore grants schema USAGE after
 * the data, and after the triggers that let the run load): its load waits
 * for it a while; -1: its live table is in use, try again at the next step.
 */
static int
KsBindWhenAllowed(KsAggRun *run)
{
	ErrorData  *edata;

	if (!run->def->other_cluster || KsBoundMeanwhile(run->def))
		return 1;
	/*
	 * Its live table's options change under that table's lock: never wait
	 * for it, its view's readers hold it while they wait for this load
	 * (re-review today 19, F1).
	 */
	if (!ConditionalLockRelationOid(run->def->live_oid, AccessExclusiveLock))
	{
		/* say who keeps it back (re-review today 20, F4) */
		KsSlotSetStartWait(run->slot, KsLockHolderPid(run->def->live_oid, AccessExclusiveLock), KS_WAIT_VIEW);
		return -1;
	}
	edata = KsCallInSubtransaction(KsRebindRun, run, true);
	if (edata == NULL)
		return 1;
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)	/* the step's timeout: not ours to keep */
		ReThrowError(edata);
	return edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ? 0 : 1;
}

/*
 * Whether a restored run's source has its sequence set.  A data-only
 * restore (pg_restore -a) sets the sequences after every table's rows; one
 * loaded before found the table's rows above a sequence never called and
 * failed, "sequence went backwards" (a CI flake of 009): while its sequence
 * was never called and its source holds rows, it waits (ten minutes at
 * most; re-review today 21, F3: thirty seconds were too short for a long
 * restore).
 */
static bool
KsRestoreSettled(KsAggRun *run)
{
	int64		last;
	bool		rows;
	TimestampTz now;

	if (run->def->resume_count != 0 || run->def->has_checkpoint ||	/* not a restore */
		KsSequenceLastValue(run->def->sequence_oid, &last, true))
		return true;
	/* a sequence never called: rows already there wait for it (read as the owner, in her step) */
	if (!ConditionalLockRelationOid(run->def->source_oid, AccessShareLock))
		return false;			/* (a restore's DDL holds it: never wait) */
	SPI_connect();
	if (SPI_execute(psprintf("SELECT FROM %s LIMIT 1", KsAggName(run->def->source_oid)), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the source of aggregation %s", run->name);
	rows = SPI_processed > 0;
	SPI_finish();
	if (!rows)
		return true;
	now = GetCurrentTimestamp();
	if (run->sequence_since == 0)
		run->sequence_since = now;
	return TimestampDifferenceExceeds(run->sequence_since, now, KS_RESTORE_SEQUENCE_WAIT_MS);
}

/*
 * Whether the owner may read what the run reads of its source: the table,
 * or each column its query reads and the offset column (pg_dump grants a
 * role's columns one by one, each committed: re-review today 51, F2 saw a
 * load between two of them fail for good).
 */
static bool
KsOwnerMayReadSource(KsAggRun *run)
{
	Oid			source = run->def->source_oid;
	Query	   *query;
	RangeTblEntry *rte;
	int			col = -1;

	if (pg_class_aclcheck(source, run->owner, ACL_SELECT) == ACLCHECK_OK)
		return true;
	if (!KsMayReadColumn(source, run->def->offset_attnum, run->owner))
		return false;
	query = (Query *) stringToNode(run->def->query_tree);
	rte = rt_fetch(1, query->rtable);
	while ((col = bms_next_member(rte->selectedCols, col)) >= 0)
	{
		AttrNumber	attno = col + FirstLowInvalidHeapAttributeNumber;

		/* (a whole-row reference needs the table's) */
		if (attno == InvalidAttrNumber ||
			pg_attribute_aclcheck(source, attno, run->owner, ACL_SELECT) != ACLCHECK_OK)
			return false;
	}
	return true;
}

/*
 * Whether a run may load (see hooks.h): a part a rescale added waits until
 * no worker runs the parts it is seeded from any more (seed.c).  And a rebuilding
 * aggregation waits for its source: a restore creates the source's
 * triggers after its rows (see restore.c), so until the wake-up trigger
 * exists the source may still be loading; and pg_dump writes privileges
 * last, so the owner's SELECT on the source may come after the trigger,
 * and the schema USAGE a restored definition's analysis needs too
 * (KsBindWhenAllowed).  That is waited for KS_SOURCE_ACL_WAIT_MS at most:
 * then the load fails with the error, as for any owner without it.  SELECT
 * on the columns it reads is as good as on the table (KsOwnerMayReadSource):
 * a rebuild, or a window's change, of an owner allowed the columns and not
 * the table waited the whole time, 30 s, for a grant that would never come
 * (security review 49, F3).
 */
bool
KsRunSourceReady(KsAggRun *run)
{
	TimestampTz now;
	int			bound;

	if (run->loaded)
		return true;
	/* (damaged part rows fail at the load, without waiting for what they name) */
	if (run->def->damage != NULL)
		return true;
	if (run->def->nseeds > 0 && !KsAggSlotsIdle(MyDatabaseId, run->def->seeds, run->def->nseeds))
		return false;
	if ((bound = KsBindWhenAllowed(run)) < 0)
		return false;
	if (!run->def->rebuilding)
		return true;
	if (!OidIsValid(KsWakeTriggerOid(run->def->source_oid, run->def->agg_id)))
		return false;
	if (run->def->has_checkpoint || (bound > 0 && KsOwnerMayReadSource(run)))
		return KsRestoreSettled(run);
	now = GetCurrentTimestamp();
	if (run->source_acl_since == 0)
		run->source_acl_since = now;
	return TimestampDifferenceExceeds(run->source_acl_since, now, KS_SOURCE_ACL_WAIT_MS);
}
