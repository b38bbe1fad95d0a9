/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A database worker process: runs the aggregations of one database
 *	  that the pool (shmem.h) assigns to it.
 *
 * The loop follows worker_spi: signal handlers before unblocking signals,
 * one transaction per unit of work, a memory context reset every
 * iteration, a latch wait that exits on postmaster death.  Each pass:
 *	1. reloads the list of aggregations when a backend or another worker
 *	   asked for it (create, drop, pause, resume, rebuild bump the
 *	   database slot's counter at commit, and so does a worker handing an
 *	   aggregation over; a relcache invalidation of keyedstate_internal.aggregation
 *	   does the same for a COMMIT PREPARED in another session), sizing the
 *	   pool, assigning aggregations to its workers, handing over those
 *	   assigned elsewhere now and claiming those assigned here;
 *	2. runs one step of each of its aggregations (run.h), each its own
 *	   transaction, as the aggregation's owner;
 *	3. sleeps until woken by a commit into a source table (the BEFORE INSERT
 *	   statement trigger sets our latch), a request, or a timeout.
 *
 * SIGTERM (pg_terminate_backend(), a fast shutdown) makes the worker leave
 * at the end of the current step, after a final checkpoint of every
 * aggregation, so that a clean restart replays nothing; a step that does
 * not end within its grace (user code that loops) is cancelled, and a
 * second SIGTERM a second later is die() (see run.c).  SIGINT cancels the
 * current step (backends pausing or dropping an aggregation send it, see
 * shmem.h).
 *
 * The worker keeps the memory it frees for its next steps and gives it
 * back to the kernel itself, when idle (KsKeepFreedMemory).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "checkpoint.h"
#include "crashguard.h"
#include "hooks.h"
#include "launcher.h"
#include "run.h"
#include "step.h"
#include "store.h"
#include "settings.h"
#include "worker.h"

/* Milliseconds a worker frees given-up stores for, then lets others at the DSA. */
#define KS_STORE_FREE_SLICE_MS	10

static MemoryContext ks_worker_cxt = NULL;
static bool ks_database_remembered = false;
static List *ks_runs = NIL;

/* The definitions changed (relcache invalidation of keyedstate_internal.aggregation). */
static bool ks_reload_pending = false;

/* A run to hand over could not take its final checkpoint yet: reload soon. */
static bool ks_handover_pending = false;

/* The last reload was put off (keyedstate's catalog held): no idle exit. */
static bool ks_reload_put_off = false;

/*
 * When to reload to balance the pool again (KsBalanceAggSlots): a balance
 * put off, or every KS_BALANCE_RECHECK_MS (what stopped it may end silently).
 */
static TimestampTz ks_balance_at = 0;
/* an aggregation of ours found no free slot at the last reload: try again each second */
static bool ks_slot_wanted = false;
/*
 * an aggregation waits for a worker of its owner's (pool.c): the first
 * worker tries again each second, and stays, since what it waits for (a
 * worker emptied, a dropped aggregation's slot let go by its worker) may
 * request nothing
 */
static bool ks_worker_wanted = false;
/* triggers of aggregations gone are left to drop: stay (re-review today 16, F1) */
static bool ks_leftovers_pending = false;
/* no aggregation, but a prepared transaction in the database: stay (KsReloadRuns) */
static bool ks_prepared_pending = false;
/* (half keyedstate.pool_settle_time: 30 s, but in tests) */
#define KS_BALANCE_RECHECK_MS	Max(ks_pool_settle / 2, 1000)
static Oid	ks_catalog_relid = InvalidOid;

/*
 * Relcache invalidation callback: the source table of some aggregation may
 * have been altered (an index dropped...), or the definitions changed.
 */
static void
KsRelcacheCallback(Datum arg, Oid relid)
{
	ListCell   *lc;

	if (relid == InvalidOid || (OidIsValid(ks_catalog_relid) && relid == ks_catalog_relid))
		ks_reload_pending = true;
	foreach(lc, ks_runs)
		KsRunRelationChanged(lfirst(lc), relid);
}

/* On pg_proc (an inlined function changed), pg_auth_members and pg_authid (run.h). */
static void
KsProcCallback(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	foreach(lc, ks_runs)
		KsRunFunctionsChanged(lfirst(lc), cacheid != PROCOID);
}

/* Find the run of an aggregation id. */
static KsAggRun *
KsFindRun(int32 id)
{
	ListCell   *lc;

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (run->def->id == id)
			return run;
	}
	return NULL;
}

/* How many owners the definitions' views have, of those not parked (pool.c). */
static int
KsCountOwners(List *defs, const bool *parked)
{
	List	   *owners = NIL;
	ListCell   *lc;
	int			n;

	foreach(lc, defs)
		if (!parked[foreach_current_index(lc)])
			owners = list_append_unique_oid(owners, KsRelationOwner(((KsAggDef *) lfirst(lc))->view_oid));
	/* (called in the worker's long-lived context) */
	n = list_length(owners);
	list_free(owners);
	return n;
}

/*
 * Re-read the aggregations of this database: size the pool and assign
 * them to its workers, start runs for those assigned to this worker,
 * release the runs of dropped ones, pick up pause, resume and rebuild, and
 * free slots nobody needs any more.  Returns the runs to hand over to
 * another worker (after this transaction: the final checkpoint is its own).
 */
static List *
KsReloadRuns(void)
{
	MemoryContext tmp;
	List	   *defs = NIL;
	List	   *keep = NIL;
	List	   *handover = NIL;
	ListCell   *lc;
	int32	   *ids;
	bool	   *parked;
	int			nids = 0;
	int			nparked = 0;
	int			nworkers;
	bool		waiting = false;
	bool		retry_soon = false;
	long		wait;

	tmp = AllocSetContextCreate(ks_worker_cxt, "keyedstate reload", ALLOCSET_DEFAULT_SIZES);
	/*
	 * A run stopped by a backend (pause, drop, rebuild, rescale) waits for
	 * a reload that sees what the backend did: one whose snapshot is taken
	 * after its transaction ended.  Asked before the snapshot; its end
	 * requests another reload (hooks.c).
	 */
	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		run->interrupt_unseen = run->interrupted && KsSlotInterruptPending(run->slot);
	}
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	ks_catalog_relid = KsCatalogRelid();
	/*
	 * keyedstate's catalog held (a VACUUM FULL, a LOCK TABLE left open): the
	 * runs go on as they are and the reload is tried again a second later,
	 * never waited for (a worker waiting here stalls every aggregation it runs)
	 */
	if (KsInstalled() && !KsLockCatalogNow())
	{
		SPI_finish();
		PopActiveSnapshot();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(ks_worker_cxt);
		MemoryContextDelete(tmp);
		ks_balance_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
		ks_reload_put_off = true;
		return NIL;
	}
	ks_reload_put_off = false;
	if (KsInstalled())
		defs = KsLoadDefinitions(tmp, true);
	else						/* (an earlier build's installation: catalog.h) */
		KsWarnEarlierInstall();
	/* those whose view went away without them, and their triggers (orphans.c) */
	defs = KsForgetOrphans(defs, &retry_soon);
	ks_leftovers_pending = false;
	if (KsInstalled())
		KsDropLeftoverTriggers(defs, &ks_leftovers_pending);
	/*
	 * none, but a prepared transaction may be creating one: the first worker
	 * stays for its COMMIT PREPARED, which only asks for a reload (hooks.c;
	 * after a restart its reservation was gone, and with the database
	 * forgotten the aggregation never started: re-review today 51, P1)
	 */
	ks_prepared_pending = defs == NIL && KsDatabaseWorkerIndex() == 0 && KsPreparedHere();
	retry_soon |= ks_leftovers_pending;
	/* SPI calls leave SPI's own context current; our lists outlive it */
	MemoryContextSwitchTo(ks_worker_cxt);
	ids = palloc(sizeof(int32) * Max(list_length(defs), 1));
	parked = palloc0(sizeof(bool) * Max(list_length(defs), 1));

	/*
	 * Runs of aggregations dropped since go first, then the slots of
	 * dropped aggregations no run holds (a worker that left before running
	 * one, for another owner's code): assigned to a worker number, they
	 * would count as its load below and keep a new aggregation of another
	 * owner (or of a view gone meanwhile, whose owner reads as none) from
	 * being given this worker, which would then leave with that
	 * aggregation waiting for good (the CI flake of regress 06_ddl).
	 */
	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);
		ListCell   *dc;
		bool		found = false;

		foreach(dc, defs)
			found |= ((KsAggDef *) lfirst(dc))->id == run->def->id;
		if (!found)
		{
			KsRunRelease(run);
			ks_runs = foreach_delete_current(ks_runs, lc);
		}
	}
	foreach(lc, defs)
		ids[nids++] = ((KsAggDef *) lfirst(lc))->id;
	KsReleaseOrphanSlots(MyDatabaseId, nids, ids);

	/*
	 * the pool: one worker per aggregation, up to keyedstate.max_workers,
	 * none for those paused with nothing left to do, or failed (pool.c)
	 */
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);

		parked[foreach_current_index(lc)] = KsAggSlotParked(MyDatabaseId, def->id, def->resume_count);
		nparked += parked[foreach_current_index(lc)];
	}
	nworkers = KsDatabaseSetPool(list_length(defs), nparked, KsCountOwners(defs, parked));
	/* the file may not list us (a promoted standby, a copy): it does now */
	if (defs != NIL && !ks_database_remembered)
	{
		KsRememberDatabase(MyDatabaseId);
		ks_database_remembered = true;
	}
	ks_slot_wanted = false;
	ks_worker_wanted = false;
	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		KsPartInfo	part;
		int			assigned;

		if (parked[foreach_current_index(lc)])
		{
			/* its runner hands it over to none, its rows stay readable */
			KsUnassignAggSlot(MyDatabaseId, def->id);
			continue;
		}
		KsRunPartInfo(def, &part);
		assigned = KsAssignAggSlot(MyDatabaseId, def->id, &part, KsRelationOwner(def->view_oid), nworkers);
		if (assigned == -1)
		{
			waiting = true;
			/* the first worker tries again (each second: re-review today 17, F5), and says why */
			ks_worker_wanted = KsDatabaseWorkerIndex() == 0;
			if (ks_worker_wanted)
				KsRunWarnNoWorker(def, tmp);
		}
		else if (assigned == -2)
		{
			KsRunWarnNoSlot(def, tmp);
			ks_slot_wanted = true;
		}
	}
	wait = KsBalanceAggSlots(MyDatabaseId, nworkers, waiting);
	ks_balance_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												ks_slot_wanted || ks_worker_wanted ? 1000 :
												wait > 0 ? wait : KS_BALANCE_RECHECK_MS);

	foreach(lc, defs)
	{
		KsAggDef   *def = lfirst(lc);
		KsAggRun   *run = KsFindRun(def->id);

		if (run != NULL && !KsAggSlotStillMine(&run->slotref))
		{
			handover = lappend(handover, run);
			continue;
		}
		if (run == NULL)
		{
			/* not ours, or its previous worker has not let go of it yet */
			run = KsRunCreate(def, ks_worker_cxt);
			if (run == NULL)
				continue;
			ks_runs = lappend(ks_runs, run);
		}
		else
			KsRunSetDefinition(run, def);
		keep = lappend(keep, run);
	}

	foreach(lc, ks_runs)
	{
		KsAggRun   *run = lfirst(lc);

		if (!list_member_ptr(keep, run) && !list_member_ptr(handover, run))
			KsRunRelease(run);
	}

	/*
	 * The definition text of the aggregations we run, after renames by
	 * other roles (restore.c); every reload, so a crash loses none.  A row
	 * its owner holds is tried again a second later.
	 */
	nids = 0;
	foreach(lc, keep)
	{
		KsPartInfo	part;

		KsRunPartInfo(((KsAggRun *) lfirst(lc))->def, &part);
		if (part.part == 0)
			ids[nids++] = part.parent;
	}
	MemoryContextSwitchTo(tmp);
	if ((nids > 0 && KsRefreshDefinitionTexts(ids, nids, false)) || retry_soon)
		ks_balance_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	MemoryContextSwitchTo(ks_worker_cxt);
	pfree(ids);
	pfree(parked);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	list_free(ks_runs);
	ks_runs = keep;
	MemoryContextSwitchTo(ks_worker_cxt);
	MemoryContextDelete(tmp);
	return handover;
}

/*
 * Hand over the runs now assigned to another worker: a final checkpoint,
 * so that the new worker replays nothing and its view never goes back to
 * an older offset, then let go of the slot.  A run whose final checkpoint
 * could not be written now (its row locked by a backend, a step being
 * interrupted) stays here a little longer: the next reload tries again.
 */
static void
KsHandOverRuns(List *handover)
{
	ListCell   *lc;

	foreach(lc, handover)
	{
		KsAggRun   *run = lfirst(lc);

		KsRunShutdownCheckpoint(run);
		if (run->loaded && !run->failed && run->checkpointed < run->consumed &&
			run->consumed >= run->seed_until)
		{
			ks_runs = lappend(ks_runs, run);
			ks_handover_pending = true;
			continue;
		}
		KsRunHandOver(run);
	}
	list_free(handover);
}

/* Take a final checkpoint of every healthy aggregation, then leave. */
static void
KsShutdown(void)
{
	ListCell   *lc;

	/* a database being dropped needs no checkpoint, only our absence */
	if (!KsDatabaseLeaveRequested())
	{
		foreach(lc, ks_runs)
			KsRunShutdownCheckpoint(lfirst(lc));
	}
	proc_exit(0);
}

/* Entry point of a database worker; main_arg is the database OID. */
void
KsDatabaseWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	int			index;
	uint32		seen = 0;
	bool		first = true;
	bool		step_all = true;	/* every run: after a reload */
	MemoryContext loopcxt;

	/*
	 * Until connected, SIGTERM ends us at once: connecting may wait for a
	 * lock on the database (a transaction renaming it, even a prepared
	 * one), and a shutdown must not wait for that.
	 */
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* a crash that ends us is not ours (crashguard.h) */
	pqsignal(SIGQUIT, KsWorkerQuitHandler);
	KsWorkerCatchFaults();
	BackgroundWorkerUnblockSignals();
	KsKeepFreedMemory();

	/*
	 * A reload signalled between our fork and our handler was discarded
	 * (bgworker.c ignores SIGHUP until then), and we were forked with the
	 * postmaster's settings of before it: read the files once now.
	 */
	ProcessConfigFile(PGC_SIGHUP);

	KsConnectWithoutDatabaseSettings(dboid);
	/* from now on SIGTERM ends us at a step boundary; SIGINT (PostgreSQL's) cancels a step */
	pqsignal(SIGTERM, KsRunTermHandler);
	pqsignal(SIGINT, KsRunCancelHandler);
	CHECK_FOR_INTERRUPTS();
	/*
	 * Shown by pg_stat_activity and the log (%a: a background worker has
	 * no %d), and to user code that asks; truncated as PostgreSQL does.
	 */
	StartTransactionCommand();
	KsRunSetDatabase(get_database_name(dboid));
	SetConfigOption("application_name", psprintf("keyedstate worker %s", get_database_name(dboid)),
					PGC_USERSET, PGC_S_SESSION);
	CommitTransactionCommand();
	/* the worker's own settings, whatever the server's say (settings.h) */
	KsSetWorkerSettings();

	/* our number in the database's pool */
	memcpy(&index, MyBgworkerEntry->bgw_extra, sizeof(int));
	if (!KsClaimDatabase(dboid, index))
		proc_exit(0);

	ks_worker_cxt = AllocSetContextCreate(TopMemoryContext, "keyedstate worker",
										  ALLOCSET_DEFAULT_SIZES);
	loopcxt = AllocSetContextCreate(ks_worker_cxt, "keyedstate worker loop",
									ALLOCSET_DEFAULT_SIZES);
	CacheRegisterRelcacheCallback(KsRelcacheCallback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, KsProcCallback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, KsProcCallback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, KsProcCallback, (Datum) 0);
	KsRunInitProcess();
	/* stores of released or reloaded runs are freed between steps */
	KsStoreDeferFrees();
	/* our own SQL outside steps (the definitions) resolves no user's names */
	SetConfigOption("search_path", KS_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);

	for (;;)
	{
		uint32		requested = KsDatabaseRequests();
		long		timeout = ks_naptime;
		ListCell   *lc;
		TimestampTz now;

		/* terminated: checkpoint, then leave */
		if (KsRunTerminating())
			KsShutdown();
		CHECK_FOR_INTERRUPTS();
		if (KsDatabaseLeaveRequested())
			KsShutdown();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* keyedstate.enabled turned off: checkpoint, then leave (the launcher starts none) */
		if (!ks_enabled)
			KsShutdown();

		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);
		if (first || requested != seen || ks_reload_pending || ks_handover_pending)
		{
			first = false;
			ks_reload_pending = false;
			ks_handover_pending = false;
			seen = requested;
			KsDatabaseRequestsSeen(seen);
			step_all = true;
			KsHandOverRuns(KsReloadRuns());
			MemoryContextSwitchTo(loopcxt);
			/*
			 * (one waiting for a slot stays, to take it once free: re-review
			 * today 14, F3; and the first worker stays while an aggregation
			 * waits for a worker, or leftover triggers wait: it alone, for
			 * the others would count against max_workers and keep the
			 * pool's workers from starting: review pool1, F1)
			 */
			if (ks_runs == NIL && !ks_slot_wanted && !ks_reload_put_off &&
				!(KsDatabaseWorkerIndex() == 0 && (ks_worker_wanted || ks_leftovers_pending || ks_prepared_pending)))
			{
				/* nothing to do: leave, unless a request arrived meanwhile */
				if (KsDatabaseIdleExit(seen))
					proc_exit(0);
				continue;
			}
		}

		/*
		 * Step the runs woken (their slot's wakes moved: rows committed, a
		 * sync, a checkpoint asked for) or due (what their last step asked
		 * for: more rows, a checkpoint, a TTL, a lock to try again); all
		 * after a reload.  The others are left alone: a commit into one
		 * source no longer steps every aggregation of its worker (newuser
		 * review 2, F3).
		 */
		now = GetCurrentTimestamp();
		foreach(lc, ks_runs)
		{
			KsAggRun   *run = (KsAggRun *) lfirst(lc);
			uint32		wakes = pg_atomic_read_u32(&run->slot->wakes);
			long		wanted = ks_naptime;

			if (!step_all && wakes == run->wakes_seen && now < run->step_due)
			{
				timeout = Min(timeout, TimestampDifferenceMilliseconds(now, run->step_due) + 1);
				continue;
			}
			run->wakes_seen = wakes;
			KsRunStep(run, &wanted);
			run->step_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wanted);
			timeout = Min(timeout, wanted);
			MemoryContextSwitchTo(loopcxt);
			KsCheckInterrupts();
			if (KsRunTerminating())
				KsShutdown();
		}
		step_all = false;

		/* a slice of the stores given up (store.h), then a pause for others */
		if (KsStoreFreeRetired(KS_STORE_FREE_SLICE_MS))
			timeout = Min(timeout, KS_STORE_FREE_SLICE_MS);

		/* invalidations sent while every aggregation was idle */
		if (!ks_reload_pending)
		{
			StartTransactionCommand();
			CommitTransactionCommand();
			MemoryContextSwitchTo(loopcxt);
		}
		if (ks_balance_at != 0)
		{
			/* a balance put off is due: the reload tries it again */
			long		wait = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), ks_balance_at);

			if (wait <= 0)
				ks_reload_pending = true;
			else
				timeout = Min(timeout, wait);
		}
		if (ks_reload_pending)
			timeout = 0;
		else if (ks_handover_pending)
			timeout = Min(timeout, 100);

		if (timeout > 0)
		{
			/* idle: what the steps freed goes back to the kernel, their statistics out */
			KsTrimFreedMemory();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 KsRunFlushStats(timeout), PG_WAIT_EXTENSION);
		}
		ResetLatch(MyLatch);
	}
}
