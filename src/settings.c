/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  keyedstate.* configuration parameters, and the settings an
 *	  aggregation captures at creation and applies for each of its steps.
 *
 * Sizes of shared structures are fixed at server start (PGC_POSTMASTER);
 * the knobs of the worker loop can be changed with a reload (PGC_SIGHUP)
 * and are re-read by workers when they get SIGHUP.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <limits.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
#include "utils/guc_tables.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "settings.h"

int			ks_max_aggregations = 64;
int			ks_max_shared_memory = 1024 * 1024;	/* kB: 1 GB */
int			ks_max_workers = 4;
bool		ks_enabled = true;
bool		ks_allow_state_writes = false;
int			ks_batch_size = 100000;
int			ks_pool_settle = 60 * 1000;
int			ks_oom_retry = 10 * 60 * 1000;
int			ks_retry_delay = 1000;
int			ks_naptime = 1000;
int			ks_max_aggregations_per_owner = 16;
int			ks_max_state_memory = 0;	/* kB, 0: no bound */
int			ks_step_timeout = 5 * 1000;
int			ks_load_wait = 10 * 1000;
bool		ks_preloaded = false;

/* Define every keyedstate.* setting and reserve the prefix. */
void
KsSettingsInit(void)
{
	ks_preloaded = process_shared_preload_libraries_in_progress;

	/* sizes of shared memory can only be defined while preloading */
	if (ks_preloaded)
	{
		DefineCustomIntVariable("keyedstate.max_aggregations",
								"Maximum number of aggregations running at once in the cluster.",
								NULL,
								&ks_max_aggregations,
								64, 1, 10000,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("keyedstate.max_shared_memory",
								"Maximum shared memory for the published state of all aggregations.",
								"When it is exhausted, the aggregation that needs more waits for the memory of "
								"dropped aggregations still being freed, then fails with an error; "
								"nothing consumed is lost.",
								&ks_max_shared_memory,
								1024 * 1024, 1024, INT_MAX,
								PGC_POSTMASTER, GUC_UNIT_KB,
								NULL, NULL, NULL);
	}

	DefineCustomIntVariable("keyedstate.max_workers",
							"Maximum number of keyedstate database workers running at once in the server.",
							"A database runs one worker per aggregation up to this many; more aggregations "
							"share them.  Each worker is a background worker: keep max_worker_processes above it.",
							&ks_max_workers,
							4, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("keyedstate.enabled",
							 "Whether keyedstate's workers run.",
							 "Off, the running workers write a final checkpoint and leave, and none starts: "
							 "reads of the aggregations' views and keyedstate.sync() say so until it is on again, "
							 "and the rows written meanwhile are consumed then.",
							 &ks_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("keyedstate.allow_state_writes",
							 "Lets a superuser insert, update and delete rows of keyedstate's state tables by hand.",
							 "keyedstate_internal.state and keyedstate_internal.cold hold the checkpoints and evicted keys "
							 "aggregations recover from, and only keyedstate writes them: off, other INSERTs, DELETEs and "
							 "UPDATEs of the columns naming their rows are refused. On, for a repair or a test of damage, "
							 "as allow_system_table_mods is for system catalogs.",
							 &ks_allow_state_writes,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.batch_size",
							"Most rows a worker reads in one batch.",
							NULL,
							&ks_batch_size,
							100000, 1, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.naptime",
							"Longest time a worker sleeps before looking for new rows.",
							"Workers are woken when rows commit; this only bounds the sleep "
							"when no wake-up arrives.",
							&ks_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.max_aggregations_per_owner",
							"Maximum number of aggregations one role other than a superuser may own in the cluster (each part of a parallel aggregation counts as one).",
							"0 means no limit other than keyedstate.max_aggregations.",
							&ks_max_aggregations_per_owner,
							16, 0, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.max_state_memory",
							"Bounds the memory that the state of all aggregations together keeps in memory.",
							"Each running aggregation gets an equal share as its budget (or its own "
							"memory_limit if smaller); colder keys are evicted to keyedstate_internal.cold. 0 means no bound.",
							&ks_max_state_memory,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("keyedstate.step_timeout",
							"Longest time one step of an aggregation may take.",
							"A step normally ends within a second or two; one that cannot, because "
							"a function it calls loops or waits, fails its aggregation after this "
							"long, and the other aggregations of the database go on.  The owner's "
							"statement_timeout bounds a step too, when it is smaller.  Recovery, "
							"checkpoints and the worker's reads of evicted keys are not counted.",
							&ks_step_timeout,
							5 * 1000, 100, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.load_wait",
							"How long a read of an aggregation that is still loading waits.",
							"Right after create_aggregation() commits, or while the worker recovers "
							"after a restart, a query of the view waits this long for the state "
							"before it fails.",
							&ks_load_wait,
							10 * 1000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* a developer option, as PostgreSQL has: tests shorten the pool's minute */
	DefineCustomIntVariable("keyedstate.pool_settle_time",
							"How long the pool keeps an owner's aggregations on fewer workers after it moved them for another owner (and, half of it, how often it balances its workers again).",
							"A developer option: changing it is only useful to test the pool.",
							&ks_pool_settle,
							60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	/* ... and the ten minutes a run retries after running out of memory (run.c) */
	DefineCustomIntVariable("keyedstate.oom_retry_time",
							"How long an aggregation retries after running out of memory before it fails.",
							"A developer option: changing it is only useful to test those retries.",
							&ks_oom_retry,
							10 * 60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	/* ... and the second after a passing error, doubled while they go on (run.c) */
	DefineCustomIntVariable("keyedstate.retry_delay",
							"How long an aggregation waits after an error that passes before it loads again (and, 30 times it, for its owner's privileges after a restore).",
							"A developer option: changing it is only useful to test those retries.",
							&ks_retry_delay,
							1000, 10, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("keyedstate");
}

/*
 * Settings that change what functions compute, captured at creation and
 * applied whenever the worker runs the aggregation, so that a replay after
 * a crash computes what the first run computed and the view equals the
 * query run in the creating session.  Besides these, every custom setting
 * (a name with a dot, such as myapp.tenant) set in the creating session is
 * captured, since a stable function may read it with current_setting().
 * Settings that only steer planning, logging or resources are not: they
 * change how, not what, a query computes.  The query's own names are bound
 * by OID at creation; search_path is captured for the names inside the
 * functions it calls, which run as the owner (without one, pg_catalog).
 */
static const char *const ks_captured_settings[] = {
	"search_path",
	"TimeZone",
	"timezone_abbreviations",
	"DateStyle",
	"IntervalStyle",
	"extra_float_digits",
	"bytea_output",
	"xmlbinary",
	"xmloption",
	"lc_monetary",
	"lc_numeric",
	"lc_time",
	"default_text_search_config",
	"array_nulls",
	"standard_conforming_strings",
	"quote_all_identifiers",
	"backslash_quote",
	"transform_null_equals",
	"gin_fuzzy_search_limit",
	NULL
};

/* Whether an aggregation captures a setting (ks_captured_settings, or a custom one). */
bool
KsIsCapturedSetting(const char *name)
{
	int			i;

	if (strchr(name, '.') != NULL)
		return true;
	for (i = 0; ks_captured_settings[i] != NULL; i++)
		if (pg_strcasecmp(name, ks_captured_settings[i]) == 0)
			return true;
	return false;
}

/*
 * Whether KsCaptureSettings captures a custom setting: one not of
 * keyedstate's own, set in this session (with a value from somewhere other
 * than its default), that a session may change.
 */
static bool
KsCapturesCustom(struct config_generic *conf)
{
	return strchr(conf->name, '.') != NULL &&
		pg_strncasecmp(conf->name, "keyedstate.", 11) != 0 &&
		conf->source > PGC_S_DEFAULT &&
		(conf->context == PGC_USERSET || conf->context == PGC_SUSET);
}

/* Whether a custom setting is captured now (see settings.h). */
bool
KsCustomSettingIsSet(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();
	int			i;

	for (i = 0; i < nvars; i++)
		if (pg_strcasecmp(vars[i]->name, name) == 0)
			return KsCapturesCustom(vars[i]);
	return false;
}

/*
 * A search_path with "$user" spelled out as the name of the current user:
 * the worker resolves "$user" as the view's owner of the moment, and
 * after ALTER VIEW ... OWNER TO a function's unqualified names would find
 * the new owner's schema (exactness review 15, finding 2).  NULL: the
 * path does not parse; it is captured as it is then (the worker's
 * setting of it fails as the creating session's would).
 */
static char *
KsSearchPathResolved(const char *path)
{
	char	   *raw = pstrdup(path);
	List	   *names;
	ListCell   *lc;
	StringInfoData buf;

	if (!SplitIdentifierString(raw, ',', &names))
		return NULL;
	initStringInfo(&buf);
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);

		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		if (strcmp(name, "$user") == 0)
			name = GetUserNameFromId(GetUserId(), false);
		appendStringInfoString(&buf, quote_identifier(name));
	}
	return buf.data;
}

/*
 * Capture the settings that functions' results depend on, as name=value:
 * the list above, and every custom setting with a value other than its
 * default (see ks_captured_settings).
 */
List *
KsCaptureSettings(void)
{
	List	   *result = NIL;
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();
	int			i;

	for (i = 0; ks_captured_settings[i] != NULL; i++)
	{
		const char *value = GetConfigOption(ks_captured_settings[i], true, false);

		if (value != NULL && strcmp(ks_captured_settings[i], "search_path") == 0)
		{
			/* search_path, with "$user" resolved now */
			char	   *resolved = KsSearchPathResolved(value);

			if (resolved != NULL)
				value = resolved;
		}
		if (value != NULL)
			result = lappend(result, psprintf("%s=%s", ks_captured_settings[i], value));
	}
	for (i = 0; i < nvars; i++)
	{
		struct config_generic *conf = vars[i];
		const char *value;

		if (!KsCapturesCustom(conf))
			continue;
		value = GetConfigOption(conf->name, true, false);
		if (value != NULL)
			result = lappend(result, psprintf("%s=%s", conf->name, value));
	}
	return result;
}

/*
 * Set one setting: for the rest of the worker's session (GUC_ACTION_SET),
 * or until the current GUC nest level ends (GUC_ACTION_SAVE, as a
 * function's SET clause does).
 */
void
KsSetOption(const char *name, const char *value, GucAction action)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
							 action, true, 0, false);
}

/*
 * Apply captured settings until the current GUC nest level ends
 * (GUC_ACTION_SAVE), with the rights of `owner`: a placeholder for a
 * setting only a superuser may change (of a library loaded later) is then
 * refused when the library defines it, as it would be in her session.
 */
void
KsApplySettings(List *settings, GucAction action, Oid owner)
{
	GucContext	context = superuser_arg(owner) ? PGC_SUSET : PGC_USERSET;
	ListCell   *lc;

	foreach(lc, settings)
	{
		char	   *item = pstrdup(lfirst(lc));
		char	   *eq = strchr(item, '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		(void) set_config_option(item, eq + 1, context, PGC_S_SESSION, action, true, 0, false);
	}
}

/*
 * The server's settings as the postmaster gave them to us, before the
 * database's are applied: a list of two-element lists (name, value).
 */
static List *
KsServerSettings(void)
{
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();
	List	   *result = NIL;
	int			i;

	for (i = 0; i < nvars; i++)
	{
		const char *value = GetConfigOption(vars[i]->name, true, false);

		if (value != NULL)
			result = lappend(result, list_make2(pstrdup(vars[i]->name), pstrdup(value)));
	}
	return result;
}

/*
 * Undo the settings of the database (ALTER DATABASE ... SET), which
 * connecting applied: its owner, who may be an ordinary role, chooses them
 * for her sessions, not for the worker that runs other owners'
 * aggregations and writes their checkpoints (a read-only or serializable
 * default would stop or fail them).  Each goes back to the server's value
 * in `server` (KsServerSettings), at the same priority, so a reload leaves
 * it there as it leaves a database's setting in a backend.  What the
 * aggregations' code sees is their captured settings (definition.h); the
 * owner's statement_timeout is honoured per step (run.c).
 */
static void
KsUndoDatabaseSettings(List *server)
{
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();
	int			i;

	for (i = 0; i < nvars; i++)
	{
		ListCell   *lc;

		if (vars[i]->source != PGC_S_DATABASE)
			continue;
		foreach(lc, server)
		{
			List	   *pair = lfirst(lc);

			if (strcmp(linitial(pair), vars[i]->name) != 0)
				continue;
			(void) set_config_option(vars[i]->name, lsecond(pair), PGC_SU_BACKEND,
									 PGC_S_DATABASE, GUC_ACTION_SET, true, 0, false);
			break;
		}
	}
}

/* Connect without the database's settings (see settings.h). */
void
KsConnectWithoutDatabaseSettings(Oid dboid)
{
	MemoryContext setcxt = AllocSetContextCreate(TopMemoryContext, "keyedstate server settings",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(setcxt);
	List	   *server = KsServerSettings();

	MemoryContextSwitchTo(oldcxt);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	KsUndoDatabaseSettings(server);
	MemoryContextDelete(setcxt);
}

/* The worker's own settings, over the server's and the bootstrap role's (see settings.h). */
void
KsSetWorkerSettings(void)
{
	/*
	 * A server-wide (or the bootstrap role's) read-only or serializable
	 * default is the sessions' (as for autovacuum): we write checkpoints,
	 * and read the catalog and sources at read committed (a serializable
	 * worker would fail checkpoints and others' transactions).
	 */
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_SESSION);
	/*
	 * Nothing waits for our commits to reach the disk: a checkpoint lost in
	 * a crash is replaced, exactly, by the one before and the rows after it
	 * (flushed when a backend waits: KsCheckpointDone), so no WAL flush stops
	 * consumption.  JIT would cost our short statements more than they run.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_SESSION);
	/*
	 * No server-wide lock_timeout, as for autovacuum: our statements take
	 * their tables' locks without waiting, and wait only for locks held a
	 * moment (a relation's extension lock, when workers checkpoint at
	 * once), which a small timeout turned into a failed checkpoint and a
	 * load again (review dba 65, F1).  User code's waits end at the step
	 * timeout, or at a lock_timeout it sets itself.
	 */
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_SESSION);
	/*
	 * No query identifiers: pg_stat_statements (or another module reading
	 * them) would count our bookkeeping statements as the sessions'
	 * queries, most of its calls and entries (review dba 65, F2).
	 */
	SetConfigOption("compute_query_id", "off", PGC_SUSET, PGC_S_SESSION);
}
