/*-------------------------------------------------------------------------
 *
 * absent.c
 *	  Aggregations a read or a wait finds not running.  See absent.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "absent.h"
#include "catalog.h"
#include "hooks.h"
#include "settings.h"

/* Why keyedstate runs no worker in this database, or NULL (see absent.h). */
char *
KsNoWorkerHere(void)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	char	   *why = NULL;

	if (!HeapTupleIsValid(tup))
		return NULL;
	/* (the launcher connects to neither: launcher.c) */
	if (((Form_pg_database) GETSTRUCT(tup))->datistemplate)
		why = psprintf("database \"%s\" is a template, where keyedstate runs no worker",
					   NameStr(((Form_pg_database) GETSTRUCT(tup))->datname));
	else if (!((Form_pg_database) GETSTRUCT(tup))->datallowconn)
		why = psprintf("database \"%s\" allows no connections, so keyedstate runs no worker in it",
					   NameStr(((Form_pg_database) GETSTRUCT(tup))->datname));
	ReleaseSysCache(tup);
	return why;
}

/* Warn, at an aggregation's creation, that it will not run here (see absent.h). */
void
KsWarnNoWorkerHere(const char *aggname)
{
	char	   *why = KsNoWorkerHere();

	if (why != NULL)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s will not run: %s", aggname, why),
				 errdetail("Its copies run in the databases created from this one, from the rows copied with them."),
				 errhint("Create aggregations in a database that is not a template and allows connections.")));
}

/* Say that an aggregation's parts will share workers (see absent.h). */
void
KsNoticeSharedParts(const char *aggname, int parallelism)
{
	/* a database's workers: its share of max_workers, each beside the launcher */
	int			most = Min(Min(ks_max_workers, KS_MAX_DB_WORKERS), max_worker_processes - 1);

	if (parallelism <= most)
		return;
	ereport(NOTICE,
			(errmsg("the %d parts of aggregation %s will share workers", parallelism, aggname),
			 errdetail("A database runs at most %d keyedstate workers here (keyedstate.max_workers is %d, max_worker_processes %d, and a database has %d at most); parts that share a worker run one after the other, no faster than one part.",
					   most, ks_max_workers, max_worker_processes, KS_MAX_DB_WORKERS),
			 errhint("Raise keyedstate.max_workers (and max_worker_processes) to at least %d, or give a smaller parallelism.",
					 parallelism)));
}

/* Why a worker that should run does not, for keyedstate.status (see absent.h). */
char *
KsNoWorkerMessage(int why)
{
	if (why == KS_DISABLED)
		return pstrdup("keyedstate.enabled is off: no worker runs");
	return why > 0 ?
		psprintf("its database has aggregations of %d owners, and a worker runs one owner's only: keyedstate.max_workers (%d in the server, %d at most in a database) leaves the database fewer workers",
				 why, ks_max_workers, KS_MAX_DB_WORKERS) :
		why == KS_NO_LAUNCHER ?
		psprintf("no keyedstate launcher runs to start its worker: it could not be registered at server start, where max_worker_processes (%d) left no background worker slot for it",
				 max_worker_processes) :
		psprintf("no background worker slot is free to run it (max_worker_processes is %d)", max_worker_processes);
}

/* Whether a worker runs a part of aggregation aggid now. */
static bool
KsAnyPartRuns(int32 aggid)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	KsAggSlot	copy;
	int			nparts;
	int			n = KsFindAggParts(MyDatabaseId, aggid, refs, KsSharedState->max_aggs, &nparts);
	bool		runs = false;

	for (int i = 0; i < n && !runs; i++)
		runs = KsSlotSnapshot(&refs[i], &copy) && copy.runner_pid != 0;
	pfree(refs);
	return runs;
}

/* Refuse to wait where no worker runs (see absent.h). */
void
KsRefuseWaitHere(int32 aggid, const char *aggname)
{
	char	   *why = KsNoWorkerHere();

	/* (one made a template while its workers ran goes on: re-review today 20, F3) */
	if (why != NULL && !KsAnyPartRuns(aggid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s does not run: %s", aggname, why),
				 errhint("Create aggregations in a database that is not a template and allows connections.")));
}

/* The view reading live table live_oid (whose rule depends on it), or InvalidOid. */
static Oid
KsViewOfLiveTable(Oid live_oid)
{
	Relation	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			view = InvalidOid;

	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(live_oid));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	while (!OidIsValid(view) && HeapTupleIsValid(tup = systable_getnext(scan)))
		if (((Form_pg_depend) GETSTRUCT(tup))->classid == RewriteRelationId)
			view = KsViewOfRule(((Form_pg_depend) GETSTRUCT(tup))->objid);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return view;
}

/*
 * Refuse what waits in vain in the transaction that rebuilt or rescaled
 * aggregation aggid (named aggname, or looked up if NULL): a rebuilt one's
 * worker starts over once it commits (rebuilt_detail), a rescaled one's
 * new parts start then.
 */
static void
KsRefuseChangedHere(int32 aggid, const char *aggname, const char *rebuilt_detail, const char *hint)
{
	bool		rebuilt = KsRebuiltHere(aggid, false);

	if (!rebuilt && !KsRebuiltHere(aggid, true))
		return;
	if (aggname == NULL)
		aggname = KsAggregationName(aggid, InvalidOid);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 rebuilt ? errmsg("aggregation %s was rebuilt by this transaction", aggname) :
			 errmsg("aggregation %s was rescaled by this transaction", aggname),
			 errdetail("%s", rebuilt ? rebuilt_detail : "Its new parts start once the transaction has committed."),
			 errhint("%s", hint)));
}

/* Refuse a read of an aggregation this transaction rebuilt or rescaled (see absent.h). */
void
KsRefuseReadRebuiltHere(int32 aggid)
{
	/* its cold rows are gone in this snapshot, its old rows still published; new parts wait in vain */
	KsRefuseChangedHere(aggid, NULL,
						"Its worker rebuilds its state once the transaction has committed; until then there is no state of one offset to read.",
						"Read it after the commit.");
}

/* Error out if this transaction created a slot's aggregation (see absent.h). */
void
KsRefuseReadCreatedHere(const KsAggSlot *copy)
{
	if (TransactionIdIsValid(copy->reserved_xid) &&
		TransactionIdIsCurrentTransactionId(copy->reserved_xid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s was created by this transaction",
						KsAggregationName(copy->aggid, copy->view_oid)),
				 errdetail("Its worker starts when the transaction commits."),
				 errhint("Read it after the commit.")));
}

/* Refuse a sync that could only time out (see absent.h). */
void
KsRefuseHopelessSync(const KsAggDef *def, const char *aggname)
{
	List	   *tables = list_make1_oid(def->source_oid);
	ListCell   *lc;

	/* rebuilt or rescaled here: it starts over, or its new parts start, at the commit
	 * (newuser review 2, F10; exactness review 20: it waited its whole timeout) */
	KsRefuseChangedHere(def->id, aggname,
						"Its worker consumes its source again from the start once the transaction has committed.",
						"Call keyedstate.sync() after the commit.");

	/*
	 * Under a memory budget it reads on only as far as it can checkpoint
	 * (evict.h), which it cannot while this transaction holds its row
	 * (re-review today 23, F4: it waited its whole timeout)
	 */
	if ((def->memory_limit > 0 || ks_max_state_memory > 0) && KsCatalogChangedHere(def->id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s was changed by this transaction", aggname),
				 errdetail("Under a memory budget its worker reads on only as far as it can checkpoint, which it can once the transaction that paused, resumed or altered it has ended."),
				 errhint("Call keyedstate.sync() after the commit.")));
	/* its partitions too, written into or locked straight (re-review today 20, F6) */
	if (has_subclass(def->source_oid))
		tables = find_all_inheritors(def->source_oid, NoLock, NULL);
	foreach(lc, tables)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		if (LockHeldByMe(&tag, RowExclusiveLock))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this transaction has written into the source of aggregation %s", aggname),
					 errdetail("sync() waits for the rows committed before it; this transaction's own rows commit after it."),
					 errhint("Call keyedstate.sync() after the commit.")));
		/* (newuser review 1, F8: it waited its whole timeout, naming the caller as the writer) */
		if (LockHeldByMe(&tag, AccessExclusiveLock))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this transaction holds the source of aggregation %s locked against reads", aggname),
					 errdetail("Its worker cannot read the source before this transaction ends (ALTER TABLE and LOCK TABLE take that lock)."),
					 errhint("Call keyedstate.sync() after the commit.")));
	}
}

/* What an earlier build's installation needs (see catalog.h). */
#define KS_EARLIER_INSTALL_DETAIL \
	"This build keeps them in schema keyedstate_internal, and runs no aggregation of an earlier installation."
#define KS_EARLIER_INSTALL_HINT \
	"Note the definitions (SELECT view, query_text FROM keyedstate.aggregation, as a superuser), run DROP EXTENSION keyedstate CASCADE and CREATE EXTENSION keyedstate, then create the aggregations again."

/*
 * Whether keyedstate is installed here with its tables where this build
 * keeps them (see catalog.h): the extension, and its own catalog table.
 * Never a relation of that name alone: where keyedstate is not installed,
 * any role allowed to create a schema may make keyedstate_internal and a
 * view named aggregation in it, whose functions the hooks' reads as the
 * bootstrap superuser would run (re-review today 23, F1: a TRUNCATE made
 * her superuser).
 */
bool
KsInstalled(void)
{
	Oid			ext = get_extension_oid("keyedstate", true);
	Oid			relid;

	if (!OidIsValid(ext))
		return false;
	relid = KsCatalogRelid();
	return OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_RELATION &&
		getExtensionOfObject(RelationRelationId, relid) == ext;
}

/* Whether there is work here for a worker (see catalog.h). */
bool
KsDatabaseHasWork(void)
{
	Datum		args[2] = {ObjectIdGetDatum(KsTriggerFunctionOid("wake")),
	ObjectIdGetDatum(KsTriggerFunctionOid("refuse_truncate"))};
	Oid			types[2] = {OIDOID, OIDOID};
	bool		isnull;
	bool		found;

	/* a lock_timeout of the database's settings would fail the probe, never tried again */
	(void) set_config_option("lock_timeout", "0", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM keyedstate_internal.aggregation) "
							  "OR EXISTS (SELECT FROM pg_catalog.pg_trigger "
							  "           WHERE tgfoid OPERATOR(pg_catalog.=) $1 OR tgfoid OPERATOR(pg_catalog.=) $2)",
							  2, types, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "keyedstate could not read its catalog");
	found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ||
		KsPreparedHere();
	PopActiveSnapshot();
	SPI_finish();
	return found;
}

/* Whether a prepared transaction of this database waits (see catalog.h). */
bool
KsPreparedHere(void)
{
	bool		isnull;

	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_prepared_xacts "
					"WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database())",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "keyedstate could not read the prepared transactions");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Trigger functions found to be keyedstate's own, until pg_proc changes. */
static Oid	ks_own_functions[2] = {InvalidOid, InvalidOid};
static bool ks_own_callback = false;

/* syscache callback: pg_proc changed, check the functions again. */
static void
KsForgetOwnFunctions(Datum arg, int cacheid, uint32 hashvalue)
{
	ks_own_functions[0] = ks_own_functions[1] = InvalidOid;
}

/* keyedstate's own trigger function called name, or InvalidOid (see catalog.h). */
Oid
KsTriggerFunctionOid(const char *name)
{
	Oid			nsp = get_namespace_oid(KS_SCHEMA, true);
	Oid			fn;
	Oid			ext;

	/* by the catalog's own cache: no privilege check, no search path */
	if (!OidIsValid(nsp))
		return InvalidOid;
	fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum(name),
						 PointerGetDatum(buildoidvector(NULL, 0)), ObjectIdGetDatum(nsp));
	if (!OidIsValid(fn) || fn == ks_own_functions[0] || fn == ks_own_functions[1])
		return fn;
	/*
	 * A member of the extension only: where keyedstate is not installed, a
	 * role's own schema keyedstate with a function wake() made the hooks
	 * treat her trigger as a wake-up trigger (review today 24, F2).
	 */
	ext = get_extension_oid("keyedstate", true);
	if (!OidIsValid(ext) || getExtensionOfObject(ProcedureRelationId, fn) != ext)
		return InvalidOid;
	if (!ks_own_callback)
	{
		CacheRegisterSyscacheCallback(PROCOID, KsForgetOwnFunctions, (Datum) 0);
		ks_own_callback = true;
	}
	ks_own_functions[strcmp(name, "wake") == 0 ? 0 : 1] = fn;
	return fn;
}

/* Refuse a call where an earlier build installed keyedstate (see catalog.h). */
void
KsRequireInstalled(void)
{
	if (!KsInstalled())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("keyedstate in this database was installed by an earlier build, which kept its tables in schema keyedstate"),
				 errdetail(KS_EARLIER_INSTALL_DETAIL),
				 errhint(KS_EARLIER_INSTALL_HINT)));
}

/* Log that an earlier build installed keyedstate here, once per process (see catalog.h). */
void
KsWarnEarlierInstall(void)
{
	static bool warned = false;

	if (warned || KsInstalled() || !OidIsValid(get_extension_oid("keyedstate", true)))
		return;
	warned = true;
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("keyedstate in database \"%s\" was installed by an earlier build, which kept its tables in schema keyedstate",
					get_database_name(MyDatabaseId)),
			 errdetail(KS_EARLIER_INSTALL_DETAIL),
			 errhint(KS_EARLIER_INSTALL_HINT)));
}

/* Refuse a read of an aggregation not loaded, if it never will be (see absent.h). */
void
KsRefuseHopelessRead(int32 aggid, Oid live_oid, Oid view_oid)
{
	KsCatalogAccess acc;
	Oid			view = InvalidOid;
	char	   *tree;

	KsRequireInstalled();

	if (OidIsValid(view_oid))
	{
		KsRefuseWaitHere(aggid, KsAggName(view_oid));
		return;
	}
	KsCatalogOpen(&acc);
	tree = KsCatalogQueryTree(aggid, &view, NULL);
	KsCatalogClose(&acc);
	if (tree == NULL)
	{
		view = KsViewOfLiveTable(live_oid);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("view %s has no keyedstate aggregation behind it",
						KsAggName(OidIsValid(view) ? view : live_oid)),
				 errdetail("Its definition is not in keyedstate_internal.aggregation: a schema-only dump, or a restore into a server without keyedstate preloaded, restores the view without it."),
				 errhint("Drop the view, then create the aggregation again.")));
	}
	KsRefuseWaitHere(aggid, KsAggName(view));
}

/* Raise why a read's aggregation is not loaded (see absent.h). */
void
KsRaiseNotLoaded(int32 aggid, KsSlotRef *refs, int n, int nparts, Oid view_oid)
{
	int			why = KsPartsLackWorker(refs, n);
	int			held = 0;
	int			holder = why == 0 ? KsPartsStartBlocker(refs, n, &held) : -1;
	/* no slot for a part: not running either (user review 50, F6: "still loading") */
	bool		noslot = why == 0 && holder < 0 && (n == 0 || n < nparts) && KsAggSlotsFull();

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg(why != 0 || noslot ? "aggregation %s is not running" : "aggregation %s is still loading",
					KsAggregationName(aggid, view_oid)),
			 why != 0 ? KsErrdetailNoWorker(why) :
			 holder >= 0 ? KsErrdetailStartWait(holder, held) :
			 noslot ? KsErrdetailNoAggSlot() :
			 errdetail("Its state was not loaded within keyedstate.load_wait (%d ms).", ks_load_wait),
			 errhint("See keyedstate.status for its state.")));
	pg_unreachable();
}
