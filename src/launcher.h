/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher: starts one database worker per database with
 *	  aggregations, and restarts it when it dies.
 *
 * Which databases have aggregations survives restarts in a small file in
 * the data directory (KS_DATABASES_FILE), written when an aggregation is
 * created (and by a worker that finds aggregations, and by a copy of a
 * database).  The file is not WAL-logged: a promoted standby, a restored
 * backup, an upgraded cluster may not list a database that has
 * aggregations.  So at start the launcher also looks into every other
 * database that accepts connections, one short-lived process at a time
 * (KsProbeMain), and remembers those where keyedstate is installed.  A
 * database is forgotten when it is gone, or when its workers found no
 * aggregation in it (DROP EXTENSION, the last one dropped).  The launcher
 * only needs shared catalogs, so it connects to no database and never
 * blocks CREATE DATABASE or DROP DATABASE.
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

/* Whether the file lists a database. */
extern bool KsDatabaseRemembered(Oid dboid);

PGDLLEXPORT void KsLauncherMain(Datum main_arg);
PGDLLEXPORT void KsProbeMain(Datum main_arg);

#endif							/* KS_LAUNCHER_H */
