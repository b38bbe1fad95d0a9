/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  What an aggregation's slot says while it runs: the worker's steps
 *	  and the interrupts that stop them, its state, progress and
 *	  checkpoints; backends asking for a checkpoint and waiting for a
 *	  condition on the slot.  See shmem.h for the locking protocol, which
 *	  this file follows with shmem.c and dbslots.c.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "settings.h"
#include "shmem.h"

/* Raise the error of a failed aggregation: why, only to its owners (see shmem.h). */
void
KsReportFailed(const char *aggname, const char *error, int64 offset, Oid owner)
{
	const char *hint;

	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("aggregation %s has failed", aggname),
				 errdetail("Its owner can see why in keyedstate.status."),
				 errhint("Its owner can fix the cause and call keyedstate.resume().")));
	/* the failure's own hint, if it had one (KsSlotSetFailed), ending with what to call */
	hint = error + strnlen(error, KS_ERROR_LEN - 1) + 1;
	if (hint < error + KS_ERROR_LEN && *hint != '\0' && strstr(hint, "keyedstate.re") == NULL)
		hint = psprintf("%s  Then call keyedstate.resume().", hint);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("aggregation %s has failed", aggname),
			 offset != 0 ?
			 errdetail("Its input row with offset " INT64_FORMAT " failed: %s.", offset, error) :
			 errdetail("It failed: %s.", error),
			 hint < error + KS_ERROR_LEN && *hint != '\0' ? errhint("%s", hint) :
			 /* (user review 60, F6: which row, and that it may still be fixed) */
			 offset != 0 ?
			 errhint("Fix the cause (a function, the query, or that row, which is not consumed yet and may be corrected or deleted), then call keyedstate.resume().") :
			 errhint("Fix the cause, then call keyedstate.resume().")));
}

/*
 * Check a condition on one part's slot; false if it is not met yet (or the
 * slot went).  Raises the aggregation's error if the part failed.
 * *offset gets the part's consumed offset.  A failure from before the
 * resume the caller saw (`resume_count`) is not raised, but the part is not
 * done either until its worker has taken the resume up (*resuming): its
 * state is what failed, whatever its offset says.
 */
static bool
KsPartDone(const KsSlotRef *ref, const char *aggname, int64 resume_count,
		   KsWaitDone done, void *arg, int64 *offset, bool *resuming)
{
	bool		finished = false;
	bool		failed = false;
	bool		stale = false;
	char		error[KS_ERROR_LEN];
	int64		failed_offset = 0;
	Oid			owner = InvalidOid;

	LWLockAcquire(&ref->slot->lock, LW_SHARED);
	if (KsSlotRefValid(ref))
	{
		failed = ref->slot->state == KS_FAILED &&
			ref->slot->resume_count >= resume_count;
		stale = ref->slot->state == KS_FAILED && !failed;
		/* (a rebuild committing: its offset is the old run's, KsSetRebuildPending) */
		finished = ref->slot->state != KS_STARTING && !stale && !KsSlotRebuildPending(ref->slot) &&
			done(ref->slot, arg);
		*offset = ref->slot->consumed_offset;
		memcpy(error, ref->slot->error, KS_ERROR_LEN);	/* (with the hint) */
		failed_offset = ref->slot->failed_offset;
		owner = ref->slot->owner;
	}
	LWLockRelease(&ref->slot->lock);
	if (failed)
	{
		ConditionVariableCancelSleep();
		KsReportFailed(aggname, error, failed_offset, owner);
	}
	*resuming = *resuming || stale;
	return finished;
}

/* Why a part waits for a worker that does not come (KsWorkerMissing), or 0. */
static int
KsPartLacksWorker(KsSlotRef *ref)
{
	bool		starting;
	int			worker;

	/* (not only starting: one whose owner changed keeps its state, re-review today 19, F4) */
	LWLockAcquire(&ref->slot->lock, LW_SHARED);
	starting = ref->slot->runner_pid == 0 && (ref->slot->parked_resume < 0 || (ref->slot->state != KS_FAILED && ref->slot->state != KS_PAUSED));
	worker = ref->slot->worker;
	LWLockRelease(&ref->slot->lock);
	return starting ? KsWorkerMissing(worker) : 0;
}

/* The writer a part waits for: its pid (0 for a prepared transaction), or -1 if none. */
static int
KsPartWaitsForWriter(KsSlotRef *ref)
{
	int			pid = -1;

	LWLockAcquire(&ref->slot->lock, LW_SHARED);
	if (ref->slot->state == KS_WAITING)
		pid = ref->slot->waiting_pid;
	LWLockRelease(&ref->slot->lock);
	return pid;
}

/* The rows n parts consumed and the keys they loaded back since their workers started; their budget. */
static void
KsPartsReloadFigures(KsSlotRef *refs, int n, int64 *rows, int64 *reloads, int64 *limit)
{
	*rows = *reloads = *limit = 0;
	for (int i = 0; i < n; i++)
	{
		LWLockAcquire(&refs[i].slot->lock, LW_SHARED);
		*rows += refs[i].slot->rows_consumed;
		*reloads += refs[i].slot->reloads;
		*limit += refs[i].slot->memory_limit;
		LWLockRelease(&refs[i].slot->lock);
	}
}

/* Why any of n parts waits so, or, with none taken up yet, whether any worker lacks a process. */
int
KsPartsLackWorker(KsSlotRef *refs, int n)
{
	int			i;
	int			why;

	if (n == 0)
		return KsLauncherMissing() ? KS_NO_LAUNCHER : !ks_enabled ? KS_DISABLED :
			KsWorkerLacksProcess(-1) ? -1 : 0;
	for (i = 0; i < n; i++)
		if ((why = KsPartLacksWorker(&refs[i])) != 0)
			return why;
	return 0;
}

/* Whether a slot's watermark has seen every row runs before consumed (see shmem.h). */
bool
KsSlotWatermarkKnown(KsAggSlot *slot)
{
	bool		known;

	LWLockAcquire(&slot->lock, LW_SHARED);
	known = slot->watermark_known;
	LWLockRelease(&slot->lock);
	return known;
}

/* The newest watermark an aggregation's parts published (see shmem.h). */
TimestampTz
KsAggregationWatermark(Oid dboid, int32 aggid, int64 resume_count, bool *known)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	int			nparts;
	int			n = KsFindAggParts(dboid, aggid, refs, KsSharedState->max_aggs, &nparts);
	TimestampTz watermark = DT_NOBEGIN;
	int			i;

	*known = n > 0 && n == nparts;
	for (i = 0; i < n; i++)
	{
		LWLockAcquire(&refs[i].slot->lock, LW_SHARED);
		if (!KsSlotRefValid(&refs[i]) || !refs[i].slot->watermark_known ||
			refs[i].slot->resume_count < resume_count)
			*known = false;
		else if (refs[i].slot->watermark > watermark)
			watermark = refs[i].slot->watermark;
		LWLockRelease(&refs[i].slot->lock);
	}
	pfree(refs);
	return watermark;
}

static bool KsCheckpointDoneCond(const KsAggSlot *slot, void *arg);

/* Wait for a condition on every part of an aggregation (see shmem.h). */
int64
KsWaitForAggregation(Oid dboid, int32 aggid, const char *aggname, int64 resume_count,
					 TimestampTz deadline, KsWaitDone done, void *arg, const char *what)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	int64		result = 0;
	int64		rows0 = -1;		/* the parts' figures when the wait began */
	int64		reloads0 = 0;
	int64		rows;
	int64		reloads;
	int64		limit;

	for (;;)
	{
		int			nparts;
		int			n = KsFindAggParts(dboid, aggid, refs, KsSharedState->max_aggs, &nparts);
		int			waiting = -1;
		bool		resuming = false;
		TimestampTz now = GetCurrentTimestamp();
		long		remaining;
		int			i;

		/* the least advanced part's offset: everything before it is in */
		result = PG_INT64_MAX;
		for (i = 0; i < n && waiting < 0; i++)
		{
			int64		offset = 0;

			if (!KsPartDone(&refs[i], aggname, resume_count, done, arg, &offset, &resuming))
				waiting = i;
			result = Min(result, offset);
		}
		if (n == nparts && waiting < 0)
			break;
		if (rows0 < 0 && n > 0)
			KsPartsReloadFigures(refs, n, &rows0, &reloads0, &limit);
		if (now >= deadline)
		{
			int			writer = waiting >= 0 ? KsPartWaitsForWriter(&refs[waiting]) : -1;
			int			holder;
			int			held = 0;

			ConditionVariableCancelSleep();
			/* what consuming cost while we waited: a key loaded back for most rows? */
			KsPartsReloadFigures(refs, n, &rows, &reloads, &limit);
			rows -= rows0 < 0 ? rows : rows0;
			reloads -= rows0 < 0 ? reloads : reloads0;
			/* (why it waits, where it knows: user review 8, U8-7) */
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for %s of aggregation %s", what, aggname),
					 resuming ? errdetail("It failed, and its worker has not taken up keyedstate.resume() yet: it does once the transaction that called it has committed.") :
					 waiting >= 0 && KsPartsLackWorker(&refs[waiting], 1) ? KsErrdetailNoWorker(KsPartsLackWorker(&refs[waiting], 1)) :
					 waiting >= 0 && (holder = KsPartsStartBlocker(&refs[waiting], 1, &held)) >= 0 ? KsErrdetailStartWait(holder, held) :
					 waiting >= 0 && done == KsCheckpointDoneCond && (holder = refs[waiting].slot->ckpt_blocker) >= 0 ?
					 (holder > 0 ?
					  errdetail("Its checkpoints wait for process %d, whose open transaction holds a lock on its definition (an uncommitted alter_aggregation(), pause() or resume(), say).", holder) :
					  errdetail("Its checkpoints wait for a prepared transaction holding a lock on its definition (see pg_prepared_xacts).")) :
					 n == 0 && KsPartsLackWorker(refs, 0) ? KsErrdetailNoWorker(KsPartsLackWorker(refs, 0)) :
					 n < nparts && KsAggSlotsFull() ? KsErrdetailNoAggSlot() :
					 writer > 0 ? errdetail("It waits for the open transaction of process %d, which may still write rows into its source.", writer) :
					 writer == 0 ? errdetail("It waits for a prepared transaction that may still write rows into its source (see pg_prepared_xacts).") :
					 /* (after the writers: one that holds the frontier is why, re-review today 58, F4) */
					 /* (each part reads every row: the rows one part read, re-review today 59, F2) */
					 limit > 0 && n > 0 && reloads >= 10 && reloads * 2 > rows / n ? KsErrdetailThrashing(rows / n, reloads, limit) : 0,
					 errhint("See keyedstate.status for its state and lag.")));
		}
		remaining = Min(TimestampDifferenceMilliseconds(now, deadline), 100);
		if (waiting >= 0)
			(void) ConditionVariableTimedSleep(&refs[waiting].slot->cv, Max(remaining, 1),
											   PG_WAIT_EXTENSION);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, 10), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	pfree(refs);
	return result;
}

/* A checkpoint's condition: the worker finished our request (by slot number). */
static bool
KsCheckpointDoneCond(const KsAggSlot *slot, void *arg)
{
	return slot->checkpoints_done >= ((uint64 *) arg)[slot - KsSharedState->aggs];
}

/* Ask every part of an aggregation for a checkpoint and wait for it (see shmem.h). */
bool
KsCheckpointAggregation(Oid dboid, int32 aggid, const char *aggname, int64 resume_count,
						TimestampTz deadline, bool running_only, const char *what)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	uint64	   *requests = palloc0(sizeof(uint64) * KsSharedState->max_aggs);
	int			nparts;
	int			n;
	int			i;

	/* not taken up by a worker yet (after a start): waited for, unless only a running one will do */
	while ((n = KsFindAggParts(dboid, aggid, refs, KsSharedState->max_aggs, &nparts)) < nparts || n == 0)
	{
		if (running_only || GetCurrentTimestamp() >= deadline)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	for (i = 0; i < n && running_only; i++)
	{
		KsAggSlot	copy;

		/* (waiting for a writer, or rebuilding, it checkpoints all the same) */
		if (!KsSlotSnapshot(&refs[i], &copy) || copy.state == KS_STARTING ||
			copy.state == KS_FAILED || copy.state == KS_PAUSED)
			return false;
	}
	/* a request to each part, kept by slot (parked paused, pool.c: its last checkpoint will do) */
	for (i = 0; i < n; i++)
	{
		uint64	   *request = &requests[refs[i].slot - KsSharedState->aggs];
		bool		valid;

		LWLockAcquire(&refs[i].slot->lock, LW_EXCLUSIVE);
		if ((valid = KsSlotRefValid(&refs[i])))
			*request = refs[i].slot->parked_resume == resume_count ? refs[i].slot->checkpoints_done :
				++refs[i].slot->checkpoint_requests;
		LWLockRelease(&refs[i].slot->lock);
		if (!valid)
			return false;
	}
	KsWakeAggregation(dboid, aggid);
	(void) KsWaitForAggregation(dboid, aggid, aggname, resume_count, deadline,
								KsCheckpointDoneCond, requests, what);
	pfree(refs);
	pfree(requests);
	return true;
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

/* Whether a backend interrupting the slot is still at it (see shmem.h). */
bool
KsSlotInterruptPending(KsAggSlot *slot)
{
	bool		pending;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	pending = KsInterruptStillWanted(slot);
	LWLockRelease(&slot->lock);
	return pending;
}

/* Enter a step of an aggregation (see shmem.h). */
bool
KsSlotEnterStep(KsAggSlot *slot, KsStepMark *mark)
{
	bool		ok;

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

/* Fail a slot with its error's message and hint (see shmem.h). */
void
KsSlotSetFailed(KsAggSlot *slot, const char *error, const char *hint, int64 failed_offset)
{
	size_t		len;

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->state = KS_FAILED;
	/* unloaded: no worker memory is its, nor a writer it waits for (robustness2 F4, security 36 I1) */
	slot->memory_bytes = slot->waiting_pid = slot->start_wait = 0;
	memset(slot->error, 0, KS_ERROR_LEN);
	strlcpy(slot->error, error ? error : "unknown error", KS_ERROR_LEN);
	len = strlen(slot->error);
	if (hint != NULL && len + 2 < KS_ERROR_LEN)
		strlcpy(slot->error + len + 1, hint, KS_ERROR_LEN - len - 1);
	slot->failed_offset = failed_offset;
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* Whether slot i shares max_state_memory, and whose it is (see shmem.h). */
bool
KsSlotSharer(int i, Oid *owner, Oid *dboid, int32 *aggid, int64 *used)
{
	KsAggSlot  *slot = &KsSharedState->aggs[i];
	bool		shares;

	LWLockAcquire(&slot->lock, LW_SHARED);
	shares = slot->in_use && slot->state != KS_FAILED;
	*owner = slot->owner;
	*dboid = slot->dboid;
	*aggid = slot->part.parent;
	*used = slot->memory_bytes + slot->shared_bytes;
	LWLockRelease(&slot->lock);
	return shares;
}

/* Mark, or unmark, the slots of a rebuilt aggregation's parts (see shmem.h). */
int64
KsSetRebuildPending(Oid dboid, int32 aggid, int64 pending, int64 unmark_to)
{
	KsSlotRef  *refs = palloc(sizeof(KsSlotRef) * KsSharedState->max_aggs);
	int			nparts;
	int			n = KsFindAggParts(dboid, aggid, refs, KsSharedState->max_aggs, &nparts);
	int64		before = 0;

	for (int i = 0; i < n; i++)
	{
		KsAggSlot  *slot = refs[i].slot;

		LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
		before = KsSlotRefValid(&refs[i]) ? Max(before, slot->rebuild_pending) : before;
		if (KsSlotRefValid(&refs[i]) && (unmark_to < 0 || slot->rebuild_pending == pending))
			slot->rebuild_pending = unmark_to < 0 ? Max(pending, slot->rebuild_pending) : unmark_to;
		LWLockRelease(&slot->lock);
	}
	pfree(refs);
	return before;
}

/* The memory a run loading or stepping takes so far (see shmem.h). */
void
KsSlotNoteMemory(KsAggSlot *slot, int64 memory_bytes)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->memory_bytes = memory_bytes;
	LWLockRelease(&slot->lock);
}

/* Set the state of a slot, with the error of a failure. */
void
KsSlotSetState(KsAggSlot *slot, KsRunState state, const char *error, int64 failed_offset)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->state = state;
	/* a writer is waited for only while waiting (KsRunReport), a lock's holder only so (below) */
	if (state != KS_WAITING)
		slot->waiting_pid = 0;
	slot->start_wait = 0;
	/* (no hint of an earlier failure is left behind the new text) */
	memset(slot->error, 0, KS_ERROR_LEN);
	if (state == KS_FAILED)
	{
		slot->memory_bytes = 0;	/* (unloaded, or its worker ended: KsSlotSetFailed) */
		strlcpy(slot->error, error ? error : "unknown error", KS_ERROR_LEN);
		slot->failed_offset = failed_offset;
	}
	else
	{
		/* a passing error a run waits out (run.c) is shown, not failed */
		strlcpy(slot->error, error ? error : "", KS_ERROR_LEN);
		slot->failed_offset = 0;
	}
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
}

/* A part not loaded waits for a lock's holder (see shmem.h). */
void
KsSlotSetStartWait(KsAggSlot *slot, int pid, int what)
{
	char	   *text = KsStartWaitText(pid, what);

	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->state = what == KS_WAIT_CATALOG || what == KS_WAIT_TABLES ? KS_WAITING : KS_STARTING;
	slot->waiting_pid = pid;
	slot->start_wait = what;
	memset(slot->error, 0, KS_ERROR_LEN);
	strlcpy(slot->error, text, KS_ERROR_LEN);
	slot->failed_offset = 0;
	LWLockRelease(&slot->lock);
	ConditionVariableBroadcast(&slot->cv);
	pfree(text);
}

/* The holder the first of n parts not loaded waits for (see shmem.h). */
int
KsPartsStartBlocker(KsSlotRef *refs, int n, int *what)
{
	int			pid = -1;

	for (int i = 0; i < n && pid < 0; i++)
	{
		LWLockAcquire(&refs[i].slot->lock, LW_SHARED);
		if ((refs[i].slot->state == KS_STARTING || refs[i].slot->state == KS_WAITING) &&
			refs[i].slot->start_wait != 0)
		{
			pid = refs[i].slot->waiting_pid;
			*what = refs[i].slot->start_wait;
		}
		LWLockRelease(&refs[i].slot->lock);
	}
	return pid;
}

/* Record the definition's fields that readers check. */
void
KsSlotSetDefinition(KsAggSlot *slot, Oid owner, Oid view_oid, Oid live_oid,
					Oid sequence_oid, uint32 rowtype, int64 resume_count,
					const KsPartInfo *part, const Oid *above, bool rebuilt)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	if (part != NULL)
		slot->part = *part;
	if (rebuilt)
		slot->watermark = DT_NOBEGIN;
	if (above != NULL)
		memcpy(slot->above, above, sizeof(slot->above));
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
	slot->cold_keys = p->cold_keys;
	slot->keys_expired = p->keys_expired;
	slot->rows_late = p->rows_late;
	slot->row_errors = p->row_errors;
	slot->evictions = p->evictions;
	slot->reloads = p->reloads;
	slot->memory_limit = p->memory_limit;
	slot->watermark_known = p->watermark_known;
	slot->ckpt_blocker = p->ckpt_blocker;
	LWLockRelease(&slot->lock);
}

/* A checkpoint committed: record it and wake those waiting for it. */
void
KsSlotCheckpointed(KsAggSlot *slot, int64 offset, TimestampTz when, double ms,
				   double pause_ms, int64 keys, int64 bytes, uint64 request)
{
	LWLockAcquire(&slot->lock, LW_EXCLUSIVE);
	slot->checkpointed_offset = offset;
	slot->last_checkpoint = when;
	slot->checkpoint_ms = ms;
	slot->checkpoint_pause_ms = pause_ms;
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

/*
 * Sleep until the slot changes (a publish, a state change) or ms pass.
 * Prepared first: unprepared, ConditionVariableTimedSleep only prepares and
 * returns, and a reader waiting for a load spun a core for all of
 * keyedstate.load_wait (review robustness2, F5).  A change between the
 * caller's test and the preparation costs at most ms.
 */
void
KsSlotSleep(const KsSlotRef *ref, long ms)
{
	ConditionVariablePrepareToSleep(&ref->slot->cv);
	(void) ConditionVariableTimedSleep(&ref->slot->cv, ms, PG_WAIT_EXTENSION);
	ConditionVariableCancelSleep();
}
