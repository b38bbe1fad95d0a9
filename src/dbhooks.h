/*-------------------------------------------------------------------------
 *
 * dbhooks.h
 *	  Database commands and keyedstate's workers: DROP DATABASE, ALTER
 *	  DATABASE ... RENAME and SET TABLESPACE, CREATE DATABASE ... TEMPLATE.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_DBHOOKS_H
#define KS_DBHOOKS_H

#include "nodes/parsenodes.h"

/*
 * Before a utility command: when it needs a database to itself, make that
 * database's workers leave until the command's transaction ends.
 */
extern void KsBeforeDatabaseCommand(Node *parsetree);

/*
 * After a utility command: a database copied from one with aggregations is
 * remembered, and gets its workers when the command commits.
 */
extern void KsAfterDatabaseCommand(Node *parsetree);

#endif							/* KS_DBHOOKS_H */
