/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The fixed shared-memory struct: aggregation slots, database slots and
 *	  the DSA that holds published rows.  See shmem.h for the layout and the
 *	  locking protocol.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "settings.h"
#include "shmem.h"
#include "store.h"

KsShared   *KsSharedState = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This process's mapping of the DSA, attached on first use. */
static dsa_area *ks_dsa = NULL;

/* Bytes of the fixed struct for the configured number of slots. */
static Size
KsShmemSize(void)
{
	return add_size(offsetof(KsShared, aggs),
					mul_size(ks_max_aggregations, sizeof(KsAggSlot)));
}

/* shmem_request_hook: reserve the fixed struct and our named LWLock. */
static void
KsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(KsShmemSize());
	RequestNamedLWLockTranche("keyedstate", 1);
}

/*
 * shmem_startup_hook: create or attach to the fixed struct.  After a crash
 * restart this runs again on fresh memory, so every slot starts empty.
 */
static void
KsShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	KsSharedState = NULL;
	ks_dsa = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	KsSharedState = ShmemInitStruct("keyedstate", KsShmemSize(), &found);
	if (!found)
	{
		int			i;

		memset(KsSharedState, 0, KsShmemSize());
		KsSharedState->lock = &(GetNamedLWLockTranche("keyedstate"))->lock;
		KsSharedState->tranche_id = LWLockNewTrancheId();
		KsSharedState->dsa = DSM_HANDLE_INVALID;
		KsSharedState->launcher_procno = -1;
		KsSharedState->max_aggs = ks_max_aggregations;
		for (i = 0; i < KS_MAX_DATABASES; i++)
			KsSharedState->dbs[i].worker_procno = -1;
		for (i = 0; i < ks_max_aggregations; i++)
		{
			KsAggSlot  *slot = &KsSharedState->aggs[i];

			LWLockInitialize(&slot->lock, KsSharedState->tranche_id);
			ConditionVariableInit(&slot->cv);
			slot->store = InvalidDsaPointer;
		}
	}
	LWLockRelease(AddinShmemInitLock);

	LWLockRegisterTranche(KsSharedState->tranche_id, "keyedstate");
}

/* Install the shared-memory hooks; called from _PG_init when preloaded. */
void
KsShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = KsShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = KsShmemStartup;
}

/* Error out unless keyedstate was loaded through shared_preload_libraries. */
void
KsRequirePreload(void)
{
	if (!ks_preloaded || KsSharedState == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("keyedstate is not loaded"),
				 errdetail("The keyedstate worker and its shared memory exist only when the library is preloaded."),
				 errhint("Add keyedstate to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Return this process's mapping of the shared DSA, creating the area if no
 * process has yet.  The area is pinned so that it lives until the server
 * stops or crash-restarts, and the mapping is pinned so that it outlives
 * the current resource owner.
 */
dsa_area *
KsGetDsa(void)
{
	MemoryContext oldcxt;

	if (ks_dsa != NULL)
		return ks_dsa;

	KsRequirePreload();
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (KsSharedState->dsa == DSM_HANDLE_INVALID)
	{
		ks_dsa = dsa_create(KsSharedState->tranche_id);
		dsa_pin(ks_dsa);
		dsa_set_size_limit(ks_dsa, (size_t) ks_max_shared_memory * 1024);
		KsSharedState->dsa = dsa_get_handle(ks_dsa);
	}
	else
		ks_dsa = dsa_attach(KsSharedState->dsa);
	LWLockRelease(KsSharedState->lock);
	dsa_pin_mapping(ks_dsa);
	MemoryContextSwitchTo(oldcxt);

	return ks_dsa;
}

/* Find the slot of an aggregation; NULL if no worker has claimed one. */
KsAggSlot *
KsFindAggSlot(Oid dboid, int32 aggid)
{
	KsAggSlot  *result = NULL;
	int			i;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == dboid && slot->aggid == aggid)
		{
			result = slot;
			break;
		}
	}
	LWLockRelease(KsSharedState->lock);
	return result;
}

/* Find or claim the slot of an aggregation, resetting a claimed one. */
KsAggSlot *
KsAcquireAggSlot(Oid dboid, int32 aggid)
{
	KsAggSlot  *free_slot = NULL;
	int			i;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == dboid && slot->aggid == aggid)
		{
			LWLockRelease(KsSharedState->lock);
			return slot;
		}
		if (!slot->in_use && free_slot == NULL)
			free_slot = slot;
	}
	if (free_slot == NULL)
	{
		LWLockRelease(KsSharedState->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many keyedstate aggregations are running"),
				 errhint("Increase keyedstate.max_aggregations (currently %d) and restart the server.",
						 KsSharedState->max_aggs)));
	}

	free_slot->in_use = true;
	free_slot->dboid = dboid;
	free_slot->aggid = aggid;
	free_slot->state = KS_STARTING;
	free_slot->consumed_offset = 0;
	free_slot->checkpointed_offset = 0;
	free_slot->high_water = 0;
	free_slot->failed_offset = 0;
	free_slot->waiting_pid = 0;
	free_slot->keys = 0;
	free_slot->visible_keys = 0;
	free_slot->memory_bytes = 0;
	free_slot->shared_bytes = 0;
	free_slot->rows_consumed = 0;
	free_slot->rows_replayed = 0;
	free_slot->rows_per_second = 0;
	free_slot->last_checkpoint = 0;
	free_slot->checkpoint_requests = 0;
	free_slot->checkpoints_done = 0;
	free_slot->resume_count = 0;
	free_slot->error[0] = '\0';
	free_slot->store = InvalidDsaPointer;
	LWLockRelease(KsSharedState->lock);

	return free_slot;
}

/*
 * Give a slot back: free its published rows (readers holding the slot lock
 * shared finish first) and wake anyone sleeping in sync().
 */
void
KsReleaseAggSlot(KsAggSlot *slot)
{
	dsa_pointer store;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	store = slot->store;
	slot->store = InvalidDsaPointer;
	slot->visible_keys = 0;
	slot->shared_bytes = 0;
	LWLockRelease(&slot->lock);

	if (DsaPointerIsValid(store))
		KsStoreDestroy(KsGetDsa(), store);

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	slot->in_use = false;
	slot->dboid = InvalidOid;
	slot->aggid = 0;
	LWLockRelease(KsSharedState->lock);

	ConditionVariableBroadcast(&slot->cv);
}

/* Set the latch of a process by pgprocno; -1 means none. */
static void
KsSetLatchOf(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/*
 * Ask for a database worker: bump the database's request counter (the
 * launcher starts a worker when a request is newer than what the running
 * worker has seen) and wake both the launcher and any running worker, which
 * then reloads its list of aggregations.
 */
void
KsRequestDatabaseWorker(Oid dboid, bool bump)
{
	KsDbSlot   *db = NULL;
	KsDbSlot   *free_db = NULL;
	int			i;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *s = &KsSharedState->dbs[i];

		if (s->dboid == dboid)
		{
			db = s;
			break;
		}
		if (s->dboid == InvalidOid && free_db == NULL)
			free_db = s;
	}
	if (db == NULL)
	{
		if (free_db == NULL)
		{
			LWLockRelease(KsSharedState->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("keyedstate supports aggregations in at most %d databases",
							KS_MAX_DATABASES)));
		}
		db = free_db;
		memset(db, 0, sizeof(KsDbSlot));
		db->dboid = dboid;
		db->worker_procno = -1;
	}
	if (bump)
	{
		db->requested++;
		KsSetLatchOf(db->worker_procno);
		KsSetLatchOf(KsSharedState->launcher_procno);
	}
	LWLockRelease(KsSharedState->lock);
}

/*
 * Wake the worker of a database.  Called at commit of transactions that
 * inserted into a source table, so it takes no lock: a stale procno only
 * sets some other process's latch, which every latch user tolerates.
 */
void
KsWakeDatabaseWorker(Oid dboid)
{
	int			i;

	if (KsSharedState == NULL)
		return;
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *s = &KsSharedState->dbs[i];

		if (s->dboid == dboid)
		{
			KsSetLatchOf(s->worker_procno);
			return;
		}
	}
}

/* Name of a run state, as keyedstate.status shows it. */
const char *
KsRunStateName(KsRunState state)
{
	switch (state)
	{
		case KS_STARTING:
			return "starting";
		case KS_RUNNING:
			return "running";
		case KS_WAITING:
			return "waiting";
		case KS_PAUSED:
			return "paused";
		case KS_FAILED:
			return "failed";
	}
	return "unknown";
}
