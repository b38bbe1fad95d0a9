/*-------------------------------------------------------------------------
 *
 * owner.h
 *	  What a worker process keeps of the owners whose code it runs, and
 *	  each role's share of aggregations when views change owners.
 *
 * A worker runs one session for its aggregations, and some session state
 * outlives a step whatever keyedstate undoes at its end: PL/pgSQL compiles
 * a function once per session, resolving the types it declares (and
 * %TYPE, and its variable_conflict) with the search_path of the step that
 * called it first, and a compiled function is used by every later caller.
 * A step of one owner could so make another owner's (or a superuser's)
 * call run her domain checks with their rights.  So a worker process runs
 * the code of one owner only, ever: the pool never gives a worker several
 * owners' aggregations (pool.c), and a process asked to run a second
 * owner's code leaves instead (a final checkpoint, as on SIGTERM) and is
 * started afresh by the launcher.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_OWNER_H
#define KS_OWNER_H

#include "nodes/nodes.h"

/*
 * Whether this process may run code of `owner`: the first owner asked for
 * becomes the process's, and no other may follow.
 */
extern bool KsProcessMayRun(Oid owner);

/*
 * The owner's statement_timeout, in ms, from ALTER ROLE ... [IN DATABASE]
 * SET or ALTER DATABASE ... SET, as a login of the owner would apply them;
 * 0 if none is set.
 */
extern int	KsOwnerStatementTimeout(Oid owner);

/*
 * Before ALTER TABLE/VIEW ... OWNER TO and REASSIGN OWNED: the aggregations
 * such a command gives a role count against that role's
 * keyedstate.max_aggregations_per_owner, as those it creates do (each part
 * of one run in parallel counts).  Otherwise a member of several roles
 * could create aggregations and give them away, one role's share at a
 * time, until every slot of the cluster was taken.
 */
extern void KsCheckOwnerShare(Node *parsetree);

#endif							/* KS_OWNER_H */
