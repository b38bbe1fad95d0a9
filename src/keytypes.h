/*-------------------------------------------------------------------------
 *
 * keytypes.h
 *	  Types and aggregates an aggregation stores values of, which a command
 *	  would change.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_KEYTYPES_H
#define KS_KEYTYPES_H

#include "catalog/pg_aggregate.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"

/*
 * Before ALTER TYPE (or ALTER TABLE): refuse adding, dropping or changing
 * attributes of a composite type that an aggregation of the database has
 * in a key, as the keys' hashes would change (see keytypes.c); or in what
 * it stores or reads otherwise (a column of its view, an aggregate's
 * argument or transition state, any expression), whose checkpointed and
 * published bytes are values of the type as it is laid out now, and whose
 * consumed rows were computed with its attributes.  Only for the type's owner: others meet
 * PostgreSQL's own error and learn nothing of other roles' aggregations.
 */
extern void KsBeforeAlterType(AlterTableStmt *stmt);

/*
 * Whether the type checks apply: keyedstate installed, not inserting its
 * own catalog row.  The aggregation storing one of the types `targets` at
 * any depth (in a key if `keys`), by name; NULL if none.
 */
extern bool KsTypesGuarded(void);
extern char *KsAggregationStoring(List *targets, bool keys);

/*
 * The types an aggregation's query stores, as regtype[] Datums for its
 * catalog row, read by the checks instead of its tree: *keys its GROUP BY
 * expressions' types, *stored its view's columns', its aggregates'
 * arguments' and transition states' (their state types cannot change
 * while it uses them: KsAfterReplaceAggregate) and the types holding a
 * composite of any expression it reads (see keytypes.c), and *aggregates the
 * aggregates it calls (an oid[]).  Recorded at creation and
 * again wherever the tree is bound again (restore.c).
 */
extern void KsStoredTypeArrays(Query *query, Datum *keys, Datum *stored, Datum *aggregates);

/* Collect the Aggrefs of an expression into a list (a walker). */
extern bool KsCollectAggrefs(Node *node, List **aggrefs);

/*
 * The relation an ALTER command names, locked with the lock the command
 * will take, so that a rename committed between a check and the command
 * cannot make the command act on another relation than the one checked.
 * InvalidOid if there is none, or if the user does not own it (checked
 * before locking, as PostgreSQL does).
 */
extern Oid	KsLockNamedRelation(RangeVar *rv, LOCKMODE lockmode);

/*
 * Attributes dropped by a dependency (DROP TYPE ... CASCADE of an
 * attribute's type): the object access hook notes each relation whose
 * attribute goes; once the utility command is done (Begin before it, End
 * after it, Abort if it fails: nested commands keep the outer's notes),
 * the same refusal for a row type an aggregation still groups by; outside
 * any utility command, or while the transaction commits (ON COMMIT DROP,
 * also at a COMMIT inside a procedure), at once.  End must run before
 * anything after the command can fail.
 */
typedef struct KsDroppedNotes
{
	List	   *relids;
	LocalTransactionId lxid;	/* the transaction they belong to */
} KsDroppedNotes;
extern void KsNoteDroppedAttribute(Oid relid);

/*
 * A column added to view relid (CREATE OR REPLACE VIEW may add some to its
 * row type), from the object access hook: refused where an aggregation
 * groups by that row type.
 */
extern void KsNoteAddedColumn(Oid relid);

extern KsDroppedNotes KsDroppedAttributesBegin(void);
extern void KsDroppedAttributesEnd(KsDroppedNotes outer);
extern void KsDroppedAttributesAbort(KsDroppedNotes outer);

#endif							/* KS_KEYTYPES_H */
