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
 * other groups does not.  keyedstate does the same.  The worker builds the
 * changed rows in a subtransaction (publish.h); when one fails with an
 * error that belongs to the key's data (KsRowErrorOfKey: data exceptions,
 * integrity violations such as a domain's check, routine exceptions,
 * PL/pgSQL's RAISE, program limits), it publishes an error row for that key
 * instead of failing the aggregation, and goes on with the other keys.  A
 * scan that reaches an error row raises the error, with the code and
 * message the worker caught (KsRowErrorRaise); the key's row is built again
 * at its next change.  Any other error (a cancel, a timeout, out of memory,
 * a missing privilege or object) still fails the aggregation.
 *
 * A scan applies the quals that read only key columns to an error row
 * before raising it (liveview.c), as the planner pushes such quals of a
 * grouped query below its grouping: `WHERE k <> 4` reads no error of key 4.
 *
 * An error row travels wherever a view row does (the shared store, the
 * checkpoint's chunks, keyedstate.cold), so it is a row of the view's type,
 * marked as no view row can be:
 *	a MinimalTuple of the view's row type whose key columns (the view
 *	columns that are plain keys, KsQueryInfo.keyattnums) hold the key and
 *	every other column is NULL, with HEAP_ONLY_TUPLE in t_infomask2 (the
 *	flag marks heap tuples only); its t_len counts the trailer, after the
 *	tuple's data:
 *	  n bytes		the message and its terminating NUL (at most KS_ERROR_LEN)
 *	  4 bytes		the SQLSTATE, as elog.h packs it
 *	  4 bytes		the trailer's length, n + 8
 * Read back from a relation it is untrusted: KsCheckStoredRow checks the
 * trailer (its length, a NUL ending the message, a key's SQLSTATE), then
 * the tuple before it as any view row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_ROWERROR_H
#define KS_ROWERROR_H

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "nodes/execnodes.h"
#include "utils/elog.h"

/* Whether a view row is an error row. */
static inline bool
KsRowIsError(MinimalTuple row)
{
	return (row->t_infomask2 & HEAP_ONLY_TUPLE) != 0;
}

/* Whether an error belongs to a key's data (the classes above). */
extern bool KsRowErrorOfKey(int sqlerrcode);

/* The trailer's fixed part: the SQLSTATE and the trailer's length. */
#define KS_ROWERROR_FIXED		(2 * sizeof(uint32))

/*
 * An error row for an error and a key, palloc'd in the current memory
 * context: keyattnums gives the view column of each of the nkeys keys, or 0.
 */
extern MinimalTuple KsRowErrorMake(const ErrorData *edata, TupleDesc viewdesc,
								   const AttrNumber *keyattnums, int nkeys,
								   const Datum *keys, const bool *keynulls);

/* Raise the error of an error row, read from the view of view_oid. */
extern void KsRowErrorRaise(Oid view_oid, MinimalTuple row) pg_attribute_noreturn();

/*
 * The quals of a live table's scan that a GROUP BY applies before grouping:
 * those reading only the key columns keyattnums[0 .. nkeys) of relation
 * scanrelid, and calling no volatile function.  NULL when there are none.
 */
extern ExprState *KsRowErrorQual(PlanState *ps, Index scanrelid, int nkeys,
								 const AttrNumber *keyattnums);

/*
 * A scan met an error row: return when its key quals (KsRowErrorQual)
 * reject it, for the scan to skip it; raise its error otherwise.  Uses
 * slot and econtext.
 */
extern void KsRowErrorMet(ExprState *keyqual, ExprContext *econtext, TupleTableSlot *slot,
						  MinimalTuple row, Oid view_oid);

#endif							/* KS_ROWERROR_H */
