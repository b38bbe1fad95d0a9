/*-------------------------------------------------------------------------
 *
 * dbhooks.c
 *	  Database commands and keyedstate's workers.  See dbhooks.h.
 *
 * A database's workers are superuser processes connected to it for as long
 * as it has aggregations, which its owner cannot terminate.  The commands
 * that need the database to themselves would wait for them and fail:
 * DROP DATABASE, ALTER DATABASE ... RENAME and SET TABLESPACE, and
 * CREATE DATABASE with it as the template.  Before such a command, run by
 * someone allowed to run it, the workers are asked to leave (without a
 * final checkpoint: recovery replays what they had not written) and the
 * launcher starts none until the command's transaction ends; then it
 * starts them again, unless the database is gone.  A database made from a
 * template with aggregations gets workers too, at commit: its copies of the
 * aggregations run from the copied checkpoints.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/syscache.h"

#include "dbhooks.h"
#include "launcher.h"
#include "shmem.h"

static bool ks_dbhooks_callback = false;
static bool ks_keep_away_pending = false;
static Oid	ks_copied_database = InvalidOid;

/* End of the command's transaction: let the launcher act again. */
static void
KsDbXactCallback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (ks_keep_away_pending)
		KsDatabaseKeepAwayEnded();
	/* never an error after the commit: without a slot, the next start finds it */
	if (OidIsValid(ks_copied_database) && event == XACT_EVENT_COMMIT && KsSharedState != NULL &&
		!KsTryRequestDatabaseWorker(ks_copied_database, true))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the aggregations of the new database do not run: keyedstate supports aggregations in at most %d databases",
						KS_MAX_DATABASES),
				 errdetail("The database was copied with its aggregations, but no database slot is free for it."),
				 errhint("Drop the aggregations of a database that no longer needs them, then call keyedstate.resume() on the new database's aggregations, or restart the server.")));
	ks_keep_away_pending = false;
	ks_copied_database = InvalidOid;
}

/* Make the workers of a database leave until this transaction ends. */
static void
KsKeepWorkersAway(Oid dboid)
{
	if (!OidIsValid(dboid) || KsSharedState == NULL)
		return;
	if (!ks_dbhooks_callback)
	{
		RegisterXactCallback(KsDbXactCallback, NULL);
		ks_dbhooks_callback = true;
	}
	ks_keep_away_pending = true;
	KsDatabaseKeepAway(dboid);
}

/* Whether the current user may copy a database (CREATE DATABASE's rule). */
static bool
KsMayCopyDatabase(Oid dboid)
{
	HeapTuple	tup;
	bool		istemplate = false;

	if (pg_database_ownercheck(dboid, GetUserId()))
		return true;
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		istemplate = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		ReleaseSysCache(tup);
	}
	return istemplate && have_createdb_privilege();
}

/* The template a CREATE DATABASE copies (template1 unless it names one). */
static Oid
KsCreatedbTemplate(CreatedbStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
			return get_database_oid(defGetString(opt), true);
	}
	return get_database_oid("template1", true);
}

/* Whether an ALTER DATABASE moves the database to another tablespace. */
static bool
KsAltersTablespace(AlterDatabaseStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
			return true;
	return false;
}

/* Before a database command (see the banner). */
void
KsBeforeDatabaseCommand(Node *parsetree)
{
	Oid			dboid = InvalidOid;

	if (IsA(parsetree, DropdbStmt))
		dboid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		dboid = get_database_oid(((RenameStmt *) parsetree)->subname, true);
	else if (IsA(parsetree, AlterDatabaseStmt) &&
			 KsAltersTablespace((AlterDatabaseStmt *) parsetree))
		dboid = get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true);
	else if (IsA(parsetree, CreatedbStmt))
	{
		dboid = KsCreatedbTemplate((CreatedbStmt *) parsetree);
		/* only who may copy it (CREATEDB, and the template's rule) makes its workers leave */
		if (OidIsValid(dboid) && have_createdb_privilege() && KsMayCopyDatabase(dboid))
			KsKeepWorkersAway(dboid);
		return;
	}
	else
		return;
	/* the owner's commands (a superuser owns every database); a rename needs CREATEDB too */
	if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()) &&
		(!IsA(parsetree, RenameStmt) || have_createdb_privilege()))
		KsKeepWorkersAway(dboid);
}

/* After a database command: a copy of a database with aggregations gets workers. */
void
KsAfterDatabaseCommand(Node *parsetree)
{
	CreatedbStmt *stmt;
	Oid			template;

	if (!IsA(parsetree, CreatedbStmt) || KsSharedState == NULL)
		return;
	stmt = (CreatedbStmt *) parsetree;
	template = KsCreatedbTemplate(stmt);
	if (!OidIsValid(template) || !KsDatabaseRemembered(template))
		return;
	ks_copied_database = get_database_oid(stmt->dbname, true);
	if (OidIsValid(ks_copied_database))
		KsRememberDatabase(ks_copied_database);
}
