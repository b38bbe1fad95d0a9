/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The fixed shared-memory struct: the segment, the DSA that holds
 *	  published rows, and the aggregation slots.  See shmem.h for the
 *	  layout, the slot life cycle and the locking protocol; dbslots.c has
 *	  the database slots, store.c the locking of published rows.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <signal.h>

#include "access/transam.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "settings.h"
#include "shmem.h"

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
		KsSharedState->created_at = GetCurrentTimestamp();
		KsSharedState->max_aggs = ks_max_aggregations;
		KsSharedState->next_generation = 1;
		pg_atomic_init_u32(&KsSharedState->stores_retiring, 0);
		for (i = 0; i < KS_MAX_DATABASES; i++)
		{
			int			w;

			for (w = 0; w < KS_MAX_DB_WORKERS; w++)
			{
				KsSharedState->dbs[i].workers[w].procno = -1;
				pg_atomic_init_u32(&KsSharedState->dbs[i].workers[w].interrupts, 0);
			}
		}
		for (i = 0; i < ks_max_aggregations; i++)
		{
			KsAggSlot  *slot = &KsSharedState->aggs[i];

			LWLockInitialize(&slot->lock, KsSharedState->tranche_id);
			ConditionVariableInit(&slot->cv);
			slot->store = InvalidDsaPointer;
			pg_atomic_init_u32(&slot->readers[0], 0);
			pg_atomic_init_u32(&slot->readers[1], 0);
			pg_atomic_init_u32(&slot->wakes, 0);
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
	/* 0 is a slot's "not loaded yet" */
	return h != 0 ? h : 1;
}

/* ---------------------------------------------------------------------
 * Finding slots
 * ---------------------------------------------------------------------
 */

/* The slot of an aggregation, with KsShared->lock held. */
KsAggSlot *
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

/* The slots of an aggregation's parts, of its newest layout (see shmem.h). */
int
KsFindAggParts(Oid dboid, int32 aggid, KsSlotRef *refs, int max, int *nparts)
{
	int32		layout = -1;
	int			n = 0;
	int			i;

	KsRequirePreload();
	*nparts = 1;
	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];
		KsPartInfo	part;
		TransactionId xid;

		if (!slot->in_use || slot->dboid != dboid)
			continue;
		/* the part info is the slot lock's; taking it under ours is the order */
		LWLockAcquire(&slot->lock, LW_SHARED);
		part = slot->part;
		xid = slot->reserved_xid;
		LWLockRelease(&slot->lock);
		if (part.parent != aggid || part.layout < layout)
			continue;
		/* a layout another transaction is still creating, or gave up, does not count */
		if (TransactionIdIsValid(xid) && !TransactionIdIsCurrentTransactionId(xid) &&
			(TransactionIdIsInProgress(xid) || !TransactionIdDidCommit(xid)))
			continue;
		if (part.layout > layout)
		{
			/* a newer layout: forget the parts of older ones */
			layout = part.layout;
			*nparts = part.nparts;
			n = 0;
		}
		if (n < max)
		{
			refs[n].slot = slot;
			refs[n].generation = slot->generation;
			n++;
		}
	}
	LWLockRelease(KsSharedState->lock);
	return n;
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
void
KsInitSlotLocked(KsAggSlot *slot, Oid dboid, int32 aggid)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->in_use = true;
	slot->dboid = dboid;
	slot->aggid = aggid;
	slot->generation = KsSharedState->next_generation++;
	slot->worker = -1;
	slot->runner_pid = 0;
	slot->runner_procno = -1;
	slot->parked_resume = -1;
	/* until its worker says otherwise: an aggregation run whole */
	memset(&slot->part, 0, sizeof(KsPartInfo));
	slot->part.parent = aggid;
	slot->part.nparts = 1;
	slot->part.last_group = KS_MAX_PARALLELISM - 1;
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
	slot->start_wait = 0;
	slot->ckpt_blocker = -1;
	slot->keys = 0;
	slot->visible_keys = 0;
	slot->memory_bytes = 0;
	slot->shared_bytes = 0;
	slot->rows_consumed = 0;
	slot->rows_replayed = 0;
	slot->keys_expired = 0;
	slot->rows_late = 0;
	slot->row_errors = 0;
	slot->cold_keys = 0;
	slot->watermark = DT_NOBEGIN;
	slot->window_size_us = 0;
	slot->expired_upto = DT_NOBEGIN;
	slot->watermark_known = false;
	slot->evictions = 0;
	slot->reloads = 0;
	slot->memory_limit = 0;
	slot->rows_per_second = 0;
	slot->last_checkpoint = 0;
	slot->checkpoint_ms = 0;
	slot->checkpoint_pause_ms = 0;
	slot->checkpoint_keys = 0;
	slot->checkpoint_bytes = 0;
	slot->checkpoint_requests = 0;
	slot->checkpoints_done = 0;
	slot->resume_count = 0;
	slot->rebuild_pending = 0;	/* (a dropped aggregation's rebuild marks no other) */
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

/* Whether a slot of the database has the aggregation id (see shmem.h). */
bool
KsAggIdHasSlot(Oid dboid, int32 aggid)
{
	bool		found;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	found = KsLookupSlotLocked(dboid, aggid) != NULL;
	LWLockRelease(KsSharedState->lock);
	return found;
}

/* Whether a view is the view of an aggregation with a slot (see shmem.h). */
bool
KsViewHasSlot(Oid dboid, Oid view_oid)
{
	bool		found = false;
	int			i;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	for (i = 0; i < KsSharedState->max_aggs && !found; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		found = slot->in_use && slot->dboid == dboid && slot->view_oid == view_oid;
	}
	LWLockRelease(KsSharedState->lock);
	return found;
}

/* Slots of `owner` outside skip_dboid (KsShared->lock held; each part counts). */
static int
KsSlotsOwnedByLocked(Oid owner, Oid skip_dboid)
{
	int			owned = 0;
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *slot = &KsSharedState->aggs[i];

		if (slot->in_use && slot->owner == owner && slot->dboid != skip_dboid)
			owned++;
	}
	return owned;
}

/* How many aggregation slots belong to `owner` (see shmem.h). */
int
KsSlotsOwnedBy(Oid owner, Oid skip_dboid)
{
	int			owned;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	owned = KsSlotsOwnedByLocked(owner, skip_dboid);
	LWLockRelease(KsSharedState->lock);
	return owned;
}

/* Reserve a slot for an aggregation this transaction creates (see shmem.h). */
void
KsReserveAggSlot(Oid dboid, int32 aggid, const KsPartInfo *part, Oid owner, bool limited, Oid view_oid,
				 Oid live_oid, Oid sequence_oid, bool fresh)
{
	TransactionId xid = GetTopTransactionId();
	KsAggSlot  *free_slot = NULL;
	int			owned;
	int			mine = 0;		/* parts of this layout reserved before this one */
	int			i;

	KsRequirePreload();
	/* superusers are not limited, as by a role's CONNECTION LIMIT (read before the lock) */
	limited = limited && ks_max_aggregations_per_owner > 0 && !superuser_arg(owner);
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	owned = 0;
	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		KsAggSlot  *s = &KsSharedState->aggs[i];

		if (!s->in_use && free_slot == NULL)
			free_slot = s;
		/* (not the parts a rescale replaces: the new ones count instead) */
		else if (s->in_use && s->owner == owner &&
				 !(s->dboid == dboid && s->part.parent == part->parent && s->part.layout != part->layout))
		{
			owned++;
			mine += (s->dboid == dboid && s->part.parent == part->parent && s->reserved_xid == xid);
		}
	}
	/* (the counts as they were before this call's parts: user review 50, F3) */
	if (limited && owned >= ks_max_aggregations_per_owner)
	{
		LWLockRelease(KsSharedState->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 part->nparts > 1 ?
				 errmsg("%d parts would take role \"%s\" past keyedstate.max_aggregations_per_owner (%d)",
						part->nparts, GetUserNameFromId(owner, false), ks_max_aggregations_per_owner) :
				 errmsg_plural("role \"%s\" already owns %d keyedstate aggregation",
							   "role \"%s\" already owns %d keyedstate aggregations",
							   owned, GetUserNameFromId(owner, false), owned),
				 errdetail("Besides this aggregation, the role holds %d aggregation slots; each part of an aggregation running in parallel takes one.",
						   owned - mine),
				 errhint("keyedstate.max_aggregations_per_owner limits each role to %d; ask for fewer parts, drop some first, or ask an administrator to raise it.",
						 ks_max_aggregations_per_owner)));
	}
	if (free_slot == NULL)
	{
		LWLockRelease(KsSharedState->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many keyedstate aggregations"),
				 part->nparts > 1 ?
				 errdetail("%d parts need as many aggregation slots, and %d of the server's %d are free (each part of an aggregation running in parallel takes one).",
						   part->nparts, mine, KsSharedState->max_aggs) :
				 errdetail("All %d aggregation slots of the server are in use (each part of an aggregation running in parallel takes one).", KsSharedState->max_aggs),
				 errhint("Ask for fewer parts, drop an aggregation, or increase keyedstate.max_aggregations and restart the server.")));
	}
	KsInitSlotLocked(free_slot, dboid, aggid);
	LWLockAcquire(&free_slot->lock, LW_EXCLUSIVE);
	free_slot->reserved_xid = xid;
	free_slot->watermark_known = fresh;
	free_slot->part = *part;
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

/* ---------------------------------------------------------------------
 * The worker
 * ---------------------------------------------------------------------
 */

/* A free aggregation slot (KsShared->lock held), or NULL. */
KsAggSlot *
KsFreeSlotFindLocked(void)
{
	int			i;

	for (i = 0; i < KsSharedState->max_aggs; i++)
	{
		if (!KsSharedState->aggs[i].in_use)
			return &KsSharedState->aggs[i];
	}
	return NULL;
}

/* Whether every aggregation slot is in use (see shmem.h). */
bool
KsAggSlotsFull(void)
{
	bool		full;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	full = KsFreeSlotFindLocked() == NULL;
	LWLockRelease(KsSharedState->lock);
	return full;
}

/* Free a slot whose published rows are retired already (see shmem.h). */
void
KsFreeAggSlot(KsAggSlot *slot)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsFreeSlotLocked(slot);
	LWLockRelease(KsSharedState->lock);
	ConditionVariableBroadcast(&slot->cv);
}


