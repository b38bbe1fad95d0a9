/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The fixed shared-memory struct: aggregation slots, database slots and
 *	  the DSA that holds published rows.  See shmem.h for the layout, the
 *	  slot life cycle and the locking protocol; store.c owns the locking of
 *	  published rows, this file every other lock.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "settings.h"
#include "shmem.h"
#include "store.h"

KsShared   *KsSharedState = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This process's mapping of the DSA, attached on first use. */
static dsa_area *ks_dsa = NULL;

/* The database slot of this worker process (KsClaimDatabase). */
static KsDbSlot *ks_mydb = NULL;

static KsDbSlot *KsLookupDbLocked(Oid dboid);

/* How long DROP DATABASE waits for the worker to leave. */
#define KS_DROP_WAIT_MS			5000

/* Bytes of the fixed struct for the configured number of slots. */
static Size
KsShmemSize(void)
{
	return add_size(offsetof(KsShared, aggs),
					mul_size(ks_max_aggregations, sizeof(KsAggSlot)));
}

/* shmem_request_hook: reserve the fixed struct and our named LWLocks. */
static void
KsShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(KsShmemSize());
	RequestNamedLWLockTranche("keyedstate", 2);
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
		LWLockPadded *locks = GetNamedLWLockTranche("keyedstate");
		int			i;

		memset(KsSharedState, 0, KsShmemSize());
		KsSharedState->lock = &locks[0].lock;
		KsSharedState->filelock = &locks[1].lock;
		KsSharedState->tranche_id = LWLockNewTrancheId();
		KsSharedState->dsa = DSM_HANDLE_INVALID;
		KsSharedState->launcher_procno = -1;
		KsSharedState->max_aggs = ks_max_aggregations;
		KsSharedState->next_generation = 1;
		for (i = 0; i < KS_MAX_DATABASES; i++)
			KsSharedState->dbs[i].worker_procno = -1;
		for (i = 0; i < ks_max_aggregations; i++)
		{
			KsAggSlot  *slot = &KsSharedState->aggs[i];

			LWLockInitialize(&slot->lock, KsSharedState->tranche_id);
			ConditionVariableInit(&slot->cv);
			slot->store = InvalidDsaPointer;
			pg_atomic_init_u32(&slot->readers[0], 0);
			pg_atomic_init_u32(&slot->readers[1], 0);
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
		case KS_REBUILDING:
			return "rebuilding";
	}
	return "unknown";
}

/* Hash of a row type (see shmem.h). */
uint32
KsRowTypeHash(TupleDesc desc)
{
	uint32		h = hash_bytes_uint32((uint32) desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		h = hash_combine(h, hash_bytes_uint32(att->attisdropped ? 0 : att->atttypid));
		h = hash_combine(h, hash_bytes_uint32((uint32) att->atttypmod));
		h = hash_combine(h, hash_bytes_uint32(att->attcollation));
	}
	return h;
}

/* ---------------------------------------------------------------------
 * Finding slots
 * ---------------------------------------------------------------------
 */

/* The slot of an aggregation, with KsShared->lock held. */
static KsAggSlot *
KsLookupSlotLocked(Oid dboid, int32 aggid)
{
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == dboid && slot->aggid == aggid)
			return slot;
	}
	return NULL;
}

/* Find the slot of an aggregation; false if it has none. */
bool
KsFindAggSlot(Oid dboid, int32 aggid, KsSlotRef *ref)
{
	KsAggSlot  *slot;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	slot = KsLookupSlotLocked(dboid, aggid);
	if (slot != NULL)
	{
		ref->slot = slot;
		ref->generation = slot->generation;
	}
	LWLockRelease(KsSharedState->lock);
	return slot != NULL;
}

/* The i-th slot, if in use. */
bool
KsSlotAt(int i, KsSlotRef *ref)
{
	KsAggSlot  *slot = &KsSharedState->aggs[i];
	bool		in_use;

	LWLockAcquire(&slot->lock, LW_SHARED);
	in_use = slot->in_use;
	ref->slot = slot;
	ref->generation = slot->generation;
	LWLockRelease(&slot->lock);
	return in_use;
}

/* Whether a slot is still the one found (its lock is held). */
bool
KsSlotRefValid(const KsSlotRef *ref)
{
	return ref->slot->in_use && ref->slot->generation == ref->generation;
}

/* A consistent copy of a slot, if it is still the one found. */
bool
KsSlotSnapshot(const KsSlotRef *ref, KsAggSlot *copy)
{
	bool		valid;

	LWLockAcquire(&ref->slot->lock, LW_SHARED);
	valid = KsSlotRefValid(ref);
	if (valid)
		memcpy(copy, ref->slot, sizeof(KsAggSlot));
	LWLockRelease(&ref->slot->lock);
	return valid;
}

/*
 * Give a slot an identity (KsShared->lock held exclusive) and reset every
 * field; the slot lock is taken too, as the protocol requires.
 */
static void
KsInitSlotLocked(KsAggSlot *slot, Oid dboid, int32 aggid)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->in_use = true;
	slot->dboid = dboid;
	slot->aggid = aggid;
	slot->generation = KsSharedState->next_generation++;
	slot->reserved_xid = InvalidTransactionId;
	slot->owner = InvalidOid;
	slot->view_oid = InvalidOid;
	slot->live_oid = InvalidOid;
	slot->sequence_oid = InvalidOid;
	slot->rowtype = 0;
	slot->state = KS_STARTING;
	slot->consumed_offset = 0;
	slot->checkpointed_offset = 0;
	slot->high_water = 0;
	slot->failed_offset = 0;
	slot->waiting_pid = 0;
	slot->keys = 0;
	slot->visible_keys = 0;
	slot->memory_bytes = 0;
	slot->shared_bytes = 0;
	slot->rows_consumed = 0;
	slot->rows_replayed = 0;
	slot->rows_per_second = 0;
	slot->last_checkpoint = 0;
	slot->checkpoint_ms = 0;
	slot->checkpoint_keys = 0;
	slot->checkpoint_bytes = 0;
	slot->checkpoint_requests = 0;
	slot->checkpoints_done = 0;
	slot->resume_count = 0;
	slot->in_step = false;
	slot->interrupt_pid = 0;
	slot->interrupt_lxid = 0;
	slot->error[0] = '\0';
	slot->store = InvalidDsaPointer;
	LWLockRelease(&slot->lock);
}

/* ---------------------------------------------------------------------
 * Creating, controlling and waiting (backends)
 * ---------------------------------------------------------------------
 */

/* Reserve a slot for an aggregation this transaction creates (see shmem.h). */
void
KsReserveAggSlot(Oid dboid, int32 aggid, Oid owner, Oid view_oid, Oid live_oid,
				 Oid sequence_oid)
{
	TransactionId xid = GetTopTransactionId();
	KsAggSlot  *free_slot = NULL;
	int			owned = 0;
	int			i;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->owner == owner)
			owned++;
		if (!slot->in_use && free_slot == NULL)
			free_slot = slot;
	}
	if (ks_max_aggregations_per_owner > 0 && owned >= ks_max_aggregations_per_owner)
	{
		LWLockRelease(KsSharedState->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" already owns %d keyedstate aggregations",
						GetUserNameFromId(owner, false), owned),
				 errhint("keyedstate.max_aggregations_per_owner limits each role to %d; drop one first or ask an administrator to raise it.",
						 ks_max_aggregations_per_owner)));
	}
	if (free_slot == NULL)
	{
		LWLockRelease(KsSharedState->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many keyedstate aggregations"),
				 errdetail("All %d aggregation slots of the server are in use.", KsSharedState->max_aggs),
				 errhint("Drop an aggregation, or increase keyedstate.max_aggregations and restart the server.")));
	}
	KsInitSlotLocked(free_slot, dboid, aggid);
	LWLockAcquire(&free_slot->lock, LW_EXCLUSIVE);
	free_slot->reserved_xid = xid;
	free_slot->owner = owner;
	free_slot->view_oid = view_oid;
	free_slot->live_oid = live_oid;
	free_slot->sequence_oid = sequence_oid;
	LWLockRelease(&free_slot->lock);
	LWLockRelease(KsSharedState->lock);
}

/* Free a slot that has no published rows (KsShared->lock held exclusive). */
static void
KsFreeSlotLocked(KsAggSlot *slot)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->in_use = false;
	slot->dboid = InvalidOid;
	slot->aggid = 0;
	slot->reserved_xid = InvalidTransactionId;
	slot->owner = InvalidOid;
	LWLockRelease(&slot->lock);
}

/* Give back the reservations of an aborted transaction (see shmem.h). */
void
KsReleaseReservations(TransactionId xid)
{
	int			i;

	if (KsSharedState == NULL || !TransactionIdIsValid(xid))
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->dboid == MyDatabaseId &&
			TransactionIdEquals(slot->reserved_xid, xid) &&
			!DsaPointerIsValid(slot->store))
		{
			KsFreeSlotLocked(slot);
			ConditionVariableBroadcast(&slot->cv);
		}
	}
	LWLockRelease(KsSharedState->lock);
}

/* Stop the worker's current step of an aggregation (see shmem.h). */
void
KsInterruptAggregation(Oid dboid, int32 aggid)
{
	KsSlotRef	ref;
	KsDbSlot   *db;
	bool		in_step = false;
	int			pid = 0;

	if (KsSharedState == NULL || !KsFindAggSlot(dboid, aggid, &ref))
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL)
	{
		db->interrupt_requests++;
		pid = db->worker_pid;
	}
	LWLockRelease(KsSharedState->lock);
	LWLockAcquire(&ref.slot->lock, LW_EXCLUSIVE);
	if (KsSlotRefValid(&ref))
	{
		ref.slot->interrupt_pid = MyProcPid;
		ref.slot->interrupt_lxid = MyProc->lxid;
		ref.slot->interrupt_requests++;
		in_step = ref.slot->in_step;
	}
	LWLockRelease(&ref.slot->lock);
	/* the worker is a process of ours: cancel its step as a backend's query */
	if (in_step && pid != 0)
		(void) kill(pid, SIGINT);
}

/* Ask for a checkpoint of a slot; returns the request number, 0 if gone. */
uint64
KsRequestCheckpoint(const KsSlotRef *ref)
{
	uint64		request = 0;

	LWLockAcquire(&ref->slot->lock, LW_EXCLUSIVE);
	if (KsSlotRefValid(ref))
		request = ++ref->slot->checkpoint_requests;
	LWLockRelease(&ref->slot->lock);
	return request;
}

/* Raise the error of a failed aggregation. */
static void
KsReportFailed(const char *aggname, const char *error, int64 offset)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("aggregation %s has failed", aggname),
			 offset != 0 ?
			 errdetail("%s (input row with offset " INT64_FORMAT ")", error, offset) :
			 errdetail("%s", error),
			 errhint("Fix the cause, then call keyedstate.resume().")));
}

/* Wait for a condition on an aggregation's slot (see shmem.h). */
int64
KsWaitForAggregation(Oid dboid, int32 aggid, const char *aggname, int64 resume_count,
					 TimestampTz deadline, KsWaitDone done, void *arg, const char *what)
{
	int64		result = 0;

	for (;;)
	{
		KsSlotRef	ref;
		bool		have = KsFindAggSlot(dboid, aggid, &ref);
		TimestampTz now = GetCurrentTimestamp();
		long		remaining;

		if (have)
		{
			bool		finished = false;
			bool		failed = false;
			char		error[KS_ERROR_LEN];
			int64		offset = 0;

			LWLockAcquire(&ref.slot->lock, LW_SHARED);
			if (KsSlotRefValid(&ref))
			{
				failed = ref.slot->state == KS_FAILED &&
					ref.slot->resume_count == resume_count;
				finished = ref.slot->state != KS_STARTING && done(ref.slot, arg);
				result = ref.slot->consumed_offset;
				strlcpy(error, ref.slot->error, KS_ERROR_LEN);
				offset = ref.slot->failed_offset;
			}
			else
				have = false;
			LWLockRelease(&ref.slot->lock);
			if (failed)
			{
				ConditionVariableCancelSleep();
				KsReportFailed(aggname, error, offset);
			}
			if (finished)
				break;
		}
		if (now >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for %s of aggregation %s", what, aggname),
					 errhint("See keyedstate.status for its state and lag.")));
		}
		remaining = Min(TimestampDifferenceMilliseconds(now, deadline), 100);
		if (have)
			(void) ConditionVariableTimedSleep(&ref.slot->cv, Max(remaining, 1), PG_WAIT_EXTENSION);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, 10), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	return result;
}

/* Set the latch of a process by pgprocno; -1 means none. */
static void
KsSetLatchOf(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/* The database slot of a database, with KsShared->lock held; NULL if none. */
static KsDbSlot *
KsLookupDbLocked(Oid dboid)
{
	int			i;

	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		if (KsSharedState->dbs[i].dboid == dboid)
			return &KsSharedState->dbs[i];
	}
	return NULL;
}

/* Ask for a database worker (see shmem.h). */
void
KsRequestDatabaseWorker(Oid dboid, bool bump)
{
	KsDbSlot   *db;
	int			i;

	KsRequirePreload();
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db == NULL)
	{
		for (i = 0; i < KS_MAX_DATABASES && db == NULL; i++)
		{
			if (KsSharedState->dbs[i].dboid == InvalidOid)
				db = &KsSharedState->dbs[i];
		}
		if (db == NULL)
		{
			LWLockRelease(KsSharedState->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("keyedstate supports aggregations in at most %d databases",
							KS_MAX_DATABASES)));
		}
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

/* The database this backend is dropping, for KsDatabaseDropEnded. */
static Oid	ks_dropping_db = InvalidOid;

/* DROP DATABASE: make the worker leave and keep it away (see shmem.h). */
void
KsDatabaseDropping(Oid dboid)
{
	KsDbSlot   *db;
	int			pid = 0;
	TimestampTz deadline;

	if (KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL)
	{
		db->dropping_pid = MyProcPid;
		pid = db->worker_pid;
	}
	LWLockRelease(KsSharedState->lock);
	if (db == NULL)
		return;
	ks_dropping_db = dboid;
	if (pid == 0)
		return;

	(void) kill(pid, SIGTERM);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KS_DROP_WAIT_MS);
	while (GetCurrentTimestamp() < deadline)
	{
		bool		gone;

		LWLockAcquire(KsSharedState->lock, LW_SHARED);
		gone = db->dboid != dboid || db->worker_pid == 0;
		LWLockRelease(KsSharedState->lock);
		if (gone)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The transaction of a DROP DATABASE ended: the launcher may act again. */
void
KsDatabaseDropEnded(void)
{
	KsDbSlot   *db;

	if (!OidIsValid(ks_dropping_db) || KsSharedState == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(ks_dropping_db);
	if (db != NULL && db->dropping_pid == MyProcPid)
		db->dropping_pid = 0;
	KsSetLatchOf(KsSharedState->launcher_procno);
	LWLockRelease(KsSharedState->lock);
	ks_dropping_db = InvalidOid;
}

/* ---------------------------------------------------------------------
 * The worker
 * ---------------------------------------------------------------------
 */

/* before_shmem_exit: let the launcher know this database has no worker. */
static void
KsWorkerDetach(int code, Datum arg)
{
	if (ks_mydb == NULL)
		return;
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (ks_mydb->worker_pid == MyProcPid)
	{
		ks_mydb->worker_pid = 0;
		ks_mydb->worker_procno = -1;
	}
	LWLockRelease(KsSharedState->lock);
}

/* Claim this database's slot; false if another worker already runs here. */
bool
KsClaimDatabase(Oid dboid)
{
	KsDbSlot   *db;
	bool		ok = false;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	db = KsLookupDbLocked(dboid);
	if (db != NULL && db->dropping_pid == 0 &&
		!(db->worker_pid != 0 && db->worker_pid != MyProcPid && kill(db->worker_pid, 0) == 0))
	{
		db->worker_pid = MyProcPid;
		db->worker_procno = MyProc->pgprocno;
		db->idle_exit = false;
		ks_mydb = db;
		ok = true;
	}
	LWLockRelease(KsSharedState->lock);
	if (ok)
		before_shmem_exit(KsWorkerDetach, (Datum) 0);
	return ok;
}

/* Whether a backend asked this worker to leave its database. */
bool
KsDatabaseLeaveRequested(void)
{
	return ks_mydb != NULL && ks_mydb->dropping_pid != 0;
}

/* The database's request counter. */
uint32
KsDatabaseRequests(void)
{
	return ks_mydb->requested;
}

/* Record the request counter the worker applied. */
void
KsDatabaseRequestsSeen(uint32 seen)
{
	ks_mydb->seen = seen;
}

/* Leave if nothing was requested since `seen` (see shmem.h). */
bool
KsDatabaseIdleExit(uint32 seen)
{
	bool		leave;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	leave = (ks_mydb->requested == seen);
	if (leave)
		ks_mydb->idle_exit = true;
	LWLockRelease(KsSharedState->lock);
	return leave;
}

/* Claim the slot of an aggregation (see shmem.h). */
bool
KsClaimAggSlot(Oid dboid, int32 aggid, KsSlotRef *ref)
{
	KsAggSlot  *slot;
	int			i;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	slot = KsLookupSlotLocked(dboid, aggid);
	if (slot == NULL)
	{
		for (i = 0; i < KsSharedState->max_aggs && slot == NULL; i++)
		{
			if (!KsSharedState->aggs[i].in_use)
				slot = &KsSharedState->aggs[i];
		}
		if (slot == NULL)
		{
			LWLockRelease(KsSharedState->lock);
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no keyedstate aggregation slot is free for aggregation %d of database %u",
							aggid, dboid),
					 errhint("Increase keyedstate.max_aggregations (currently %d) and restart the server.",
							 KsSharedState->max_aggs)));
			return false;
		}
		KsInitSlotLocked(slot, dboid, aggid);
	}
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->reserved_xid = InvalidTransactionId;
	LWLockRelease(&slot->lock);
	ref->slot = slot;
	ref->generation = slot->generation;
	LWLockRelease(KsSharedState->lock);
	return true;
}

/* Free a slot, retiring its published rows (see shmem.h). */
void
KsReleaseAggSlot(KsAggSlot *slot)
{
	KsStoreRetire(slot);
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsFreeSlotLocked(slot);
	LWLockRelease(KsSharedState->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* Whether an aggregation id is among those kept. */
static bool
KsIdKept(int32 aggid, int nkeep, const int32 *keep)
{
	int			i;

	for (i = 0; i < nkeep; i++)
		if (keep[i] == aggid)
			return true;
	return false;
}

/*
 * Free the slots of a database that no aggregation needs (see shmem.h).
 * A reservation whose transaction committed after our snapshot was taken
 * is kept: the aggregation exists, we just cannot see it yet.
 */
void
KsReleaseOrphanSlots(Oid dboid, int nkeep, const int32 *keep)
{
	Snapshot	snapshot = GetActiveSnapshot();
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		KsSlotRef	ref;
		TransactionId xid;
		bool		orphan;

		LWLockAcquire(&slot->lock, LW_SHARED);
		orphan = slot->in_use && slot->dboid == dboid && !KsIdKept(slot->aggid, nkeep, keep);
		xid = slot->reserved_xid;
		ref.slot = slot;
		ref.generation = slot->generation;
		LWLockRelease(&slot->lock);
		if (!orphan)
			continue;
		if (TransactionIdIsValid(xid))
		{
			if (TransactionIdIsInProgress(xid))
				continue;
			if (TransactionIdDidCommit(xid) &&
				(snapshot == NULL || XidInMVCCSnapshot(xid, snapshot)))
				continue;
		}
		/* still the same slot? (a backend may have given it back meanwhile) */
		LWLockAcquire(&slot->lock, LW_SHARED);
		orphan = KsSlotRefValid(&ref);
		LWLockRelease(&slot->lock);
		if (orphan)
			KsReleaseAggSlot(slot);
	}
}

/* The backend interrupting a slot is still in the transaction that asked. */
static bool
KsInterruptStillWanted(KsAggSlot *slot)
{
	PGPROC	   *proc;

	if (slot->interrupt_pid == 0)
		return false;
	proc = BackendPidGetProc(slot->interrupt_pid);
	if (proc != NULL && proc->lxid == slot->interrupt_lxid)
		return true;
	slot->interrupt_pid = 0;
	return false;
}

/* Enter a step of an aggregation (see shmem.h). */
bool
KsSlotEnterStep(KsAggSlot *slot, KsStepMark *mark)
{
	bool		ok;

	mark->db_requests = ks_mydb->interrupt_requests;
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	ok = !KsInterruptStillWanted(slot);
	slot->in_step = ok;
	mark->slot_requests = slot->interrupt_requests;
	LWLockRelease(&slot->lock);
	return ok;
}

/* Leave the step of an aggregation. */
void
KsSlotLeaveStep(KsAggSlot *slot)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->in_step = false;
	LWLockRelease(&slot->lock);
}

/* Whether an interrupt was asked for this aggregation since the step began. */
bool
KsSlotInterruptedSince(KsAggSlot *slot, const KsStepMark *mark)
{
	bool		asked;

	LWLockAcquire(&slot->lock, LW_SHARED);
	asked = slot->interrupt_requests != mark->slot_requests;
	LWLockRelease(&slot->lock);
	return asked;
}

/* Whether one was asked for any aggregation of the database since then. */
bool
KsDatabaseInterruptedSince(Oid dboid, const KsStepMark *mark)
{
	return ks_mydb != NULL && ks_mydb->dboid == dboid &&
		ks_mydb->interrupt_requests != mark->db_requests;
}

/* Set the state of a slot, with the error of a failure. */
void
KsSlotSetState(KsAggSlot *slot, KsRunState state, const char *error, int64 failed_offset)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->state = state;
	if (state == KS_FAILED)
	{
		strlcpy(slot->error, error ? error : "unknown error", KS_ERROR_LEN);
		slot->failed_offset = failed_offset;
	}
	else
	{
		slot->error[0] = '\0';
		slot->failed_offset = 0;
	}
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* Record the definition's fields that readers check. */
void
KsSlotSetDefinition(KsAggSlot *slot, Oid owner, Oid view_oid, Oid live_oid,
					Oid sequence_oid, uint32 rowtype, int64 resume_count)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->owner = owner;
	slot->view_oid = view_oid;
	slot->live_oid = live_oid;
	slot->sequence_oid = sequence_oid;
	if (rowtype != 0)
		slot->rowtype = rowtype;
	slot->resume_count = resume_count;
	LWLockRelease(&slot->lock);
}

/* Progress the worker reports after a step. */
void
KsSlotReportProgress(KsAggSlot *slot, const KsSlotProgress *p)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->high_water = p->high_water;
	slot->waiting_pid = p->waiting_pid;
	slot->rows_consumed += p->rows_consumed;
	slot->rows_replayed += p->rows_replayed;
	if (p->rows_per_second >= 0)
		slot->rows_per_second = p->rows_per_second;
	slot->memory_bytes = p->memory_bytes;
	slot->keys = p->keys;
	LWLockRelease(&slot->lock);
}

/* A checkpoint committed: record it and wake those waiting for it. */
void
KsSlotCheckpointed(KsAggSlot *slot, int64 offset, TimestampTz when, double ms,
				   int64 keys, int64 bytes, uint64 request)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->checkpointed_offset = offset;
	slot->last_checkpoint = when;
	slot->checkpoint_ms = ms;
	slot->checkpoint_keys = keys;
	slot->checkpoint_bytes = bytes;
	if (slot->checkpoints_done < request)
		slot->checkpoints_done = request;
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* The newest checkpoint request, and whether it is not yet satisfied. */
uint64
KsSlotCheckpointRequested(KsAggSlot *slot, bool *pending)
{
	uint64		request;

	LWLockAcquire(&slot->lock, LW_SHARED);
	request = slot->checkpoint_requests;
	*pending = slot->checkpoint_requests != slot->checkpoints_done;
	LWLockRelease(&slot->lock);
	return request;
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/* Free every aggregation slot of a database no worker serves. */
static void
KsReleaseDatabaseSlots(Oid dboid)
{
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		bool		mine;

		LWLockAcquire(&slot->lock, LW_SHARED);
		mine = slot->in_use && slot->dboid == dboid;
		LWLockRelease(&slot->lock);
		if (mine)
			KsReleaseAggSlot(slot);
	}
}

/* before_shmem_exit: no launcher to wake any more. */
static void
KsLauncherDetach(int code, Datum arg)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->launcher_procno = -1;
	LWLockRelease(KsSharedState->lock);
}

/* The launcher is here; give the remembered databases their slots. */
void
KsLauncherAttach(const Oid *oids, int n)
{
	int			i;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->launcher_procno = MyProc->pgprocno;
	for (i = 0; i < n; i++)
	{
		KsDbSlot   *db = KsLookupDbLocked(oids[i]);
		int			j;

		for (j = 0; j < KS_MAX_DATABASES && db == NULL; j++)
		{
			if (KsSharedState->dbs[j].dboid == InvalidOid)
			{
				db = &KsSharedState->dbs[j];
				memset(db, 0, sizeof(KsDbSlot));
				db->dboid = oids[i];
				db->worker_procno = -1;
				db->requested = 1;
			}
		}
	}
	LWLockRelease(KsSharedState->lock);
	before_shmem_exit(KsLauncherDetach, (Datum) 0);
}

/* Whether database slot i wants a worker started now (see shmem.h). */
bool
KsLauncherWantsWorker(int i, TimestampTz now, int min_gap_ms, int restart_ms, Oid *dboid)
{
	KsDbSlot   *db = &KsSharedState->dbs[i];
	bool		wanted;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	/* a backend that dropped the database and went away without telling */
	if (db->dropping_pid != 0 && BackendPidGetProc(db->dropping_pid) == NULL)
		db->dropping_pid = 0;
	*dboid = db->dboid;
	/* new requests start at once, restarts after a failure are spaced */
	wanted = OidIsValid(db->dboid) && db->worker_pid == 0 && db->dropping_pid == 0 &&
		((db->requested != db->seen &&
		  TimestampDifferenceExceeds(db->last_start, now, min_gap_ms)) ||
		 (!db->idle_exit &&
		  TimestampDifferenceExceeds(db->last_start, now, restart_ms)));
	LWLockRelease(KsSharedState->lock);
	return wanted;
}

/* The launcher started a worker for slot i. */
void
KsLauncherStarted(int i, TimestampTz now)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->dbs[i].last_start = now;
	LWLockRelease(KsSharedState->lock);
}

/* A database is gone: free its slot and its aggregations' slots. */
void
KsLauncherForgetDatabase(int i, Oid dboid)
{
	KsReleaseDatabaseSlots(dboid);
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (KsSharedState->dbs[i].dboid == dboid)
		KsSharedState->dbs[i].dboid = InvalidOid;
	LWLockRelease(KsSharedState->lock);
}

/* Serialize writers of the file of databases. */
void
KsLockDatabaseFile(void)
{
	LWLockAcquire(KsSharedState->filelock, LW_EXCLUSIVE);
}

/* Done writing the file of databases. */
void
KsUnlockDatabaseFile(void)
{
	LWLockRelease(KsSharedState->filelock);
}
