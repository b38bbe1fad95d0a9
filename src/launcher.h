/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher: starts one database worker per database with
 *	  aggregations, and restarts it when it dies.
 *
 * Which databases have aggregations survives restarts in a small file in
 * the data directory (KS_DATABASES_FILE), written when an aggregation is
 * created.  The launcher only needs shared catalogs, so it connects to no
 * database and never blocks CREATE DATABASE or DROP DATABASE.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_LAUNCHER_H
#define KS_LAUNCHER_H

#include "keyedstate.h"

#define KS_DATABASES_FILE	"keyedstate.databases"

/* Register the launcher; called from _PG_init when preloaded. */
extern void KsLauncherInit(void);

/* Remember that a database has aggregations (idempotent). */
extern void KsRememberDatabase(Oid dboid);

PGDLLEXPORT void KsLauncherMain(Datum main_arg);

#endif							/* KS_LAUNCHER_H */
