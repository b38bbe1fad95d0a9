/*-------------------------------------------------------------------------
 *
 * aggguard.h
 *	  The aggregates an aggregation calls: refusing changes to them.
 *
 * A worker builds an aggregation's calls of its aggregates once, when it
 * loads it (aggcall.c): the transition, final, combine and
 * (de)serialization functions the aggregate names, its initial value,
 * each function's strictness, and, for a function with SECURITY DEFINER
 * or SET, the settings it runs with (fmgr keeps them with the call).
 * And its checkpoints hold states those functions built.  A change of any
 * of them while the aggregation runs would be seen at the next load only
 * (a restart, a crash, a rescale): rows consumed before and after the
 * change, and the rows a crash replays, would then disagree, the view
 * mixing three answers (exactness review 20, F1: CREATE OR REPLACE
 * AGGREGATE with another transition function, initial value or final
 * function; ALTER FUNCTION ... STRICT or SET of a transition function).
 *
 * So a command that can change them is refused while an aggregation of
 * the database calls the aggregate: CREATE OR REPLACE AGGREGATE changing
 * anything of its pg_aggregate row (replacing it with the same definition
 * is allowed), and ALTER FUNCTION or CREATE OR REPLACE FUNCTION changing
 * the strictness, SECURITY DEFINER or SET of one of its support
 * functions.  A new body of a support function written in SQL or PL/pgSQL
 * is not refused: those are read again at their next call, as for the
 * functions of the query itself, whose owner promises they are immutable
 * (README, create_aggregation).  Before such a command, the aggregates the
 * database's aggregations call (the `aggregates` each definition records,
 * catalog.h) are noted with everything above; after it, one that differs
 * is an error, which rolls the command back.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_AGGGUARD_H
#define KS_AGGGUARD_H

#include "nodes/nodes.h"
#include "nodes/pg_list.h"

/* The aggregates noted before a command that could change them (NIL for any other). */
extern List *KsBeforeAggregateChange(Node *parsetree);

/* After it: an error if one of them changed (see above). */
extern void KsAfterAggregateChange(List *noted);

#endif							/* KS_AGGGUARD_H */
