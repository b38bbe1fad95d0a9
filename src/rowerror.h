/*-------------------------------------------------------------------------
 *
 * rowerror.h
 *	  Error rows: the view row of a key that could not be computed.
 *
 * A key's transition state can be valid while its view row is not: the
 * final functions, HAVING or the projection fail on the state as it is at
 * some offset (`100 / (count(*) - 1)` while the key has one row,
 * `sum(v)::int2` while the sum passes 32767), and succeed again once more
 * rows arrive.  The plain GROUP BY fails the same way at that moment, and
 * only then: a query reading that group raises the error, a query reading
 * other groups does not.  keyedstate does the same.
 *
 * The worker.  It builds the changed rows in subtransactions
 * (KsRowErrorGuard, rowbuild.h); when a key's row fails with an error
 * that belongs to the key's data (KsRowErrorOfKey: data exceptions,
 * integrity violations such as a domain's check, routine exceptions,
 * PL/pgSQL's RAISE, program limits), it builds that row again piece by piece
 * (KsRowErrorBuild): each aggregate's final value, then HAVING, then each
 * view column, each failing alone.  A piece reading a failed one fails
 * with that one's error.  HAVING computed and false hides the key as usual;
 * otherwise the key's row is an error row: the columns that computed, NULL
 * in those that failed, and the error of each failed piece.  The worker
 * goes on with the other keys; the key's row is built again at its next
 * change.  Any other error (a cancel, a timeout, out of memory, a missing
 * privilege or object) still fails the aggregation, and so does a key's
 * error that user code turned a cancel into (KsRunCancelled).
 *
 * The readers.  The plain GROUP BY (a view's query is a subquery) applies
 * a scan's quals reading only grouping keys below its grouping; the other
 * quals it may push down (no subquery; the view's own, or leakproof ones of
 * a query over a security barrier) go into its HAVING, evaluated for each
 * group before the group's output columns; the rest (subqueries, leaky
 * quals of a query over a barrier) run above it, after the columns the
 * query reads were computed, and only those.  So a scan meeting an error
 * row (KsRowErrorMet) does the same.  When nothing the query reads above
 * the scan failed, HAVING did not, and no qual names a failed column, it
 * returns the row at once.  Otherwise it takes the quals in runs of one
 * security level, in plan order (a barrier's before those of the query
 * over it; leakproof quals count as the most trusted level, where
 * order_qual_clauses puts them), the row's columns given to them as
 * parameters (KsRowErrorParamFetch):
 *	- in a run, every qual is evaluated (key quals first, volatile ones
 *	  last); one false, without reaching a failed column, skips the row;
 *	- then a qual whose evaluation reached a failed column (OR and CASE may
 *	  not reach one they name), or that reads the whole row, raises that
 *	  column's error, as the plain HAVING would;
 *	- a qual holding a subquery or reading a system column is left to the
 *	  scan, and later runs are not looked at (their quals may be leaky);
 *	  the columns it reads count as read by the query.
 * Past the quals, a failed HAVING raises its error, else the first failed
 * column the query reads raises its own; else the scan returns the row,
 * whose failed columns (NULL) nobody reads, and evaluates its quals on it
 * as on any row (a volatile qual naming a failed column it did not reach
 * is called twice for such a row).  Thus `WHERE n > 1` of a
 * security_barrier view reads no error of a key it hides, nor does a
 * reader's leaky function see that key, and `SELECT k, n` reads no error
 * of a column it leaves out, as with the plain GROUP BY.  Where they
 * differ: PostgreSQL finalizes every aggregate a group's HAVING or output
 * reads before HAVING, and computes a volatile output column the query
 * does not read; keyedstate skips a group whose HAVING is false whatever
 * its failed aggregates, and returns a row whose unread columns failed.
 *
 * An error row travels wherever a view row does (the shared store, the
 * checkpoint's chunks, keyedstate_internal.cold), so it is a row of the view's type,
 * marked as no view row can be:
 *	a MinimalTuple of the view's row type, NULL in the columns that failed,
 *	with HEAP_ONLY_TUPLE in t_infomask2 (the flag marks heap tuples only);
 *	its t_len counts the trailer, after the tuple's data:
 *	  for each failed piece, HAVING first, then the columns in order:
 *	    4 bytes		its SQLSTATE, as elog.h packs it
 *	    n bytes		its message and a terminating NUL (n at most KS_ERROR_LEN,
 *					or KS_ROWERROR_SHORT_LEN + 1 when more than KS_ROWERROR_LONG
 *					pieces failed)
 *	  m bytes		what failed: bit 0 HAVING, bit a column a (1 .. natts),
 *					m = natts / 8 + 1, higher bits zero, some bit set
 *	  4 bytes		the trailer's length
 * Read back from a relation it is untrusted: KsCheckStoredRow checks the
 * trailer (its length, no bit past the columns, for each bit a key's
 * SQLSTATE and a message ending with a NUL, nothing more), then the tuple
 * before it as any view row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ROWERROR_H
#define KS_ROWERROR_H

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/tupdesc.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "utils/elog.h"


/* Whether a view row is an error row. */
static inline bool
KsRowIsError(MinimalTuple row)
{
	return (row->t_infomask2 & HEAP_ONLY_TUPLE) != 0;
}

/* Whether an error belongs to a key's data (the classes above). */
extern bool KsRowErrorOfKey(int sqlerrcode);

/*
 * Call fn(arg) in a subtransaction: NULL when it returned, else its error,
 * rolled back and copied into the caller's memory context (whose resource
 * owner is restored).  With keep false the subtransaction is rolled back
 * when fn returns too, which gives back the locks it took (what fn
 * allocated stays: it runs in the caller's memory context).  The worker
 * builds rows so (rowbuild.h); restore.c binds and deparses definitions so.
 */
extern ErrorData *KsCallInSubtransaction(void (*fn) (void *arg), void *arg, bool keep);

/*
 * The same, with cancels let in while fn runs: a lock_timeout fn sets is a
 * cancel, which the worker holds off between steps (run.h), so that
 * without this a lock wait there would never end.
 */
extern ErrorData *KsCallCancellable(void (*fn) (void *arg), void *arg, bool keep);

/* The trailer's fixed part: its length. */
#define KS_ROWERROR_FIXED		sizeof(uint32)

/* More failed pieces than this get messages of at most KS_ROWERROR_SHORT_LEN bytes. */
#define KS_ROWERROR_LONG		16
#define KS_ROWERROR_SHORT_LEN	63

/* The bytes of an error row's bitmap of what failed, for natts columns. */
#define KS_ROWERROR_BITMAP(natts)	((natts) / 8 + 1)

/* The pull_varattnos member of column attno, and of the whole row. */
#define KS_ATTBIT(attno)	((attno) - FirstLowInvalidHeapAttributeNumber)
#define KS_WHOLEROW			KS_ATTBIT(InvalidAttrNumber)

/* ----------------------------------------------------------------
 * The readers
 * ----------------------------------------------------------------
 */

/*
 * At planning, what a scan needs to meet error rows (for the plan's
 * fdw_private): the security level of each clause of scan_clauses that
 * becomes a qual, and the columns the query reads.
 */
extern List *KsRowErrorPlan(RelOptInfo *baserel, List *scan_clauses);

/*
 * At execution, prepare the scan of ps (relation scanrelid, whose key
 * columns are keyattnums[0 .. nkeys)) to meet error rows; planned is
 * KsRowErrorPlan's list.
 */
extern struct KsRowErrorScan *KsRowErrorBegin(PlanState *ps, Index scanrelid, List *planned,
											  int nkeys, const AttrNumber *keyattnums);

/*
 * A scan met an error row: false when a qual rejects it (skip it), true
 * when the scan returns it (stored in slot, failed columns NULL); raises
 * its error otherwise.  Uses econtext.
 */
extern bool KsRowErrorMet(struct KsRowErrorScan *es, ExprContext *econtext, TupleTableSlot *slot,
						  MinimalTuple row, Oid view_oid);

#endif							/* KS_ROWERROR_H */
