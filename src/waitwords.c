/*-------------------------------------------------------------------------
 *
 * waitwords.c
 *	  The words of a wait: what a part not loaded waits for, as status and a
 *	  timed-out wait say it, and why a part consumes slowly.  Part of the
 *	  shared state (its figures are read under the slots' locks in
 *	  progress.c); see shmem.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "miscadmin.h"

#include "shmem.h"

/* What a part not loaded waits for, as its status says it (see shmem.h). */
char *
KsStartWaitText(int pid, int what)
{
	const char *held = what == KS_WAIT_VIEW ? "its view" : what == KS_WAIT_CATALOG ? "its definition" :
		what == KS_WAIT_TABLES ? "keyedstate_internal.state or keyedstate_internal.cold" :
		what == KS_WAIT_LOAD_TABLES ? "a table of keyedstate_internal" : "its source";
	const char *to = what == KS_WAIT_VIEW ? "bind it to the objects of this database" :
		what == KS_WAIT_CATALOG || what == KS_WAIT_TABLES ? "checkpoint, and evict the keys over its memory budget" : "load it";

	/* (0: a prepared transaction's, or a request queued before ours, that no session holds) */
	return pid > 0 ?
		psprintf("waiting for process %d, whose open transaction holds a lock on %s, to %s", pid, held, to) :
		psprintf("waiting for a lock on %s, which a prepared transaction holds or another transaction waits for, to %s",
				 held, to);
}

/* A wait's detail for what a part not loaded waits for (see shmem.h). */
int
KsErrdetailStartWait(int pid, int what)
{
	char	   *text = KsStartWaitText(pid, what);

	/* this session's own lock, a read's of its view say (re-review today 22, F3: it blamed itself) */
	if (pid == MyProcPid)
		return errdetail("It is waiting for a lock that this session's transaction holds on %s%s: try again once this transaction has ended.",
						 what == KS_WAIT_VIEW ? "its view" : what == KS_WAIT_CATALOG ? "its definition" :
						 what == KS_WAIT_TABLES || what == KS_WAIT_LOAD_TABLES ? "keyedstate's tables" : "its source",
						 what == KS_WAIT_VIEW ? " (a read of its view takes one)" : "");
	/* (the status text, as a sentence) */
	return errdetail("It is %s%s.", text, pid > 0 ? "" : " (see pg_locks and pg_prepared_xacts)");
}

/*
 * A wait's detail for parts that loaded evicted keys back for most rows
 * they consumed while it waited: their budget holds too few of the keys
 * their rows touch, and they consume at the pace of those reads
 * (exactness review 56: a sync timed out with no word of the budget).
 */
int
KsErrdetailThrashing(int64 rows, int64 reloads, int64 limit)
{
	return errdetail("It is consuming, but its memory budget of %lld kB holds too few of the keys its rows touch: while this call waited, it loaded evicted keys back %lld times for %lld rows read. Raise its memory_limit (keyedstate.alter_aggregation()) or keyedstate.max_state_memory, of which it gets a share, whichever bounds it.",
					 (long long) (limit / 1024), (long long) reloads, (long long) rows);
}
