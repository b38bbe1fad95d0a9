/*-------------------------------------------------------------------------
 *
 * keytypes.h
 *	  Types used in aggregations' keys that a command would change.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_KEYTYPES_H
#define KS_KEYTYPES_H

#include "nodes/parsenodes.h"

/*
 * Before ALTER TYPE (or ALTER TABLE): refuse adding, dropping or changing
 * attributes of a composite type that an aggregation of the database has
 * in a key, as the keys' hashes would change (see keytypes.c).
 */
extern void KsBeforeAlterType(AlterTableStmt *stmt);

#endif							/* KS_KEYTYPES_H */
