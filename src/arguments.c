/*-------------------------------------------------------------------------
 *
 * arguments.c
 *	  The checks of the SQL functions' arguments: the aggregation a name
 *	  names (rights, lock, second look), and what create_aggregation() and
 *	  alter_aggregation() both take: intervals, the TTL, the memory budget,
 *	  the parallelism; and where a control function may run at all
 *	  (KsRequireControl, shmem.h).  See arguments.h.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/xlog.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "arguments.h"
#include "catalog.h"
#include "settings.h"
#include "shmem.h"

/*
 * Microseconds of an interval as EXTRACT(EPOCH FROM it) counts them, which
 * is how the worker reads its intervals from the catalog (years of 365.25
 * days, the other months of 30): a check by any other count would let
 * through a value with mixed signs ('-12 months 361 days') that the worker
 * reads as negative.
 */
double
KsIntervalEpochUs(const Interval *iv)
{
	return (double) iv->time +
		((double) iv->day + (double) (iv->month / MONTHS_PER_YEAR) * DAYS_PER_YEAR +
		 (double) (iv->month % MONTHS_PER_YEAR) * DAYS_PER_MONTH) * USECS_PER_DAY;
}

/* Milliseconds of an interval (as the worker counts them), clamped to a thousand years. */
int64
KsIntervalMs(const Interval *iv)
{
	double		ms = KsIntervalEpochUs(iv) / 1000.0;

	if (ms > 1000.0 * 365 * SECS_PER_DAY * 1000.0)
		return (int64) 1000 * 365 * SECS_PER_DAY * 1000;
	if (ms < -1000.0 * 365 * SECS_PER_DAY * 1000.0)
		return -(int64) 1000 * 365 * SECS_PER_DAY * 1000;
	return (int64) ms;
}

/* Refuse a call that gives no argument from `first` on (see arguments.h). */
void
KsRequireSetting(FunctionCallInfo fcinfo, int first, const char *fname)
{
	for (int i = first; i < PG_NARGS(); i++)
		if (!PG_ARGISNULL(i))
			return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s needs a setting to change", fname),
			 errhint("Give at least one setting, such as ttl => '1 hour' or parallelism => 2.")));
}

/* A timeout argument in milliseconds: refused when negative (see arguments.h). */
int64
KsTimeoutArgument(const Interval *iv)
{
	int64		ms = KsIntervalMs(iv);

	if (ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	return ms;
}

/* A NULL name or timeout is an error (see arguments.h). */
void
KsRequireNameAndTimeout(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || (PG_NARGS() > 1 && PG_ARGISNULL(1)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "name" : "timeout")));
}

/*
 * A checkpoint_interval argument: refused below a millisecond, and above a
 * day, as PostgreSQL's checkpoint_timeout (a longer one turned checkpoints
 * off unnoticed, so that a crash read the source again from its start:
 * DBA review 38, F6) (see arguments.h).
 */
void
KsCheckpointIntervalArgument(const Interval *iv)
{
	int64		ms = KsIntervalMs(iv);

	if (ms <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("checkpoint_interval must be at least 1 millisecond")));
	if (ms > (int64) SECS_PER_DAY * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("checkpoint_interval must be at most 1 day"),
				 errdetail("A crash replays every row consumed since the last checkpoint."),
				 errhint("keyedstate.checkpoint(name) takes one at any time.")));
}

/*
 * A ttl argument as the catalog keeps it: 0 (no TTL) for NULL or a zero
 * interval, the interval itself when positive; a negative one is an error,
 * and so is one above a thousand years (the worker counts a TTL in
 * microseconds of a bigint, which 292,000 years overflow).
 */
Datum
KsTtlArgument(Interval *iv)
{
	double		us;

	if (iv == NULL)
		return (Datum) 0;
	/* as the worker counts it: mixed signs add up */
	us = KsIntervalEpochUs(iv);
	if (us < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must not be negative"),
				 errhint("Give a positive interval, or '0' for no TTL.")));
	if (us == 0)
		return (Datum) 0;
	if (us > 1000.0 * DAYS_PER_YEAR * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be at most 1000 years"),
				 errhint("Give '0' for no TTL.")));
	return PointerGetDatum(iv);
}

/*
 * A memory_limit argument in bytes: a size with a unit as memory settings
 * take it ('128MB'; kB without one), 0 for NULL or '0' (no limit).
 */
int64
KsMemoryLimitArgument(text *arg)
{
	char	   *value;
	int			kb;
	const char *hint = NULL;

	if (arg == NULL)
		return 0;
	value = text_to_cstring(arg);
	if (!parse_int(value, &kb, GUC_UNIT_KB, &hint) || kb < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid memory_limit \"%s\"", value),
				 errhint("%s", hint ? hint :
						 "Give a size such as '128MB' or '2GB', or '0' for no limit.")));
	if (kb > 0 && kb < KS_MIN_MEMORY_LIMIT_KB)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memory_limit must be at least %d kB", KS_MIN_MEMORY_LIMIT_KB),
				 errhint("Give '0' for no limit.")));
	return (int64) kb * 1024;
}

/*
 * The memory budget evicts keys, and a tumbling window's panes as keys;
 * sliding windows merge their panes in memory: refuse the combination.
 */
void
KsCheckMemoryLimitAllowed(int64 memory_limit, bool sliding)
{
	if (memory_limit > 0 && sliding)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("memory_limit cannot be combined with sliding windows yet"),
				 errdetail("A sliding window merges panes that all have to be in memory."),
				 errhint("Leave out memory_limit, or use a tumbling window (window_slide equal to window_size).")));
}

/* Refuse a parallelism out of range, or too many parts for the budget (see arguments.h). */
void
KsCheckParallelismAllowed(int parallelism, int max_parallelism, int64 memory_limit)
{
	int64		least;

	if (max_parallelism < 1 || max_parallelism > KS_MAX_KEY_GROUPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_parallelism must be between 1 and %d", KS_MAX_KEY_GROUPS)));
	if (parallelism < 1 || parallelism > max_parallelism)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parallelism must be between 1 and max_parallelism (%d)", max_parallelism),
				 errdetail("Each worker of an aggregation consumes a range of its key groups, of which there are max_parallelism.")));
	/* a part's budget is the share of its key groups (evict.h); the smallest has max / n */
	least = memory_limit * (max_parallelism / parallelism) / max_parallelism;
	if (memory_limit > 0 && least < (int64) KS_MIN_MEMORY_LIMIT_KB * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("memory_limit must give each of %d parts at least %d kB", parallelism,
						KS_MIN_MEMORY_LIMIT_KB),
				 errdetail("Each part has the share of memory_limit of its key groups: %lld kB for the smallest.",
						   (long long) (least / 1024)),
				 errhint("Give a larger memory_limit, or a smaller parallelism.")));
}

/* Error unless the current user has `right` on the view. */
static void
KsCheckAggRight(Oid view_oid, KsAggRight right)
{
	if (right == KS_RIGHT_OWNER && !pg_class_ownercheck(view_oid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(view_oid));
	if (right == KS_RIGHT_SELECT &&
		pg_class_aclcheck(view_oid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(view_oid));
}

/*
 * Resolve an aggregation by the name of its view; errors if it is none, or
 * if the current user lacks `right` on it.  Then the view is locked in
 * `lockmode` and looked up again, as PostgreSQL's commands take their
 * objects: rights first (so nobody queues a lock on another's view), then
 * the lock, then a second look, so that a concurrent drop_aggregation() or
 * DROP VIEW that committed meanwhile says "does not exist" here.  It checks
 * the right again: lost while waiting (a REVOKE of the owner's role), it
 * would let a role queue a command behind its own lock and run it later.
 */
KsNamedAgg
KsLookupAggregation(text *nametext, LOCKMODE lockmode, KsAggRight right)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(text_to_cstring(nametext)));
	Oid			view_oid = RangeVarGetRelid(rv, NoLock, true);
	/* the name as PostgreSQL shows a relation's, unquoted */
	char	   *name = rv->schemaname ? psprintf("%s.%s", rv->schemaname, rv->relname) : rv->relname;
	KsNamedAgg	agg;
	KsCatalogAccess acc;
	bool		found = false;
	int			look;

	memset(&agg, 0, sizeof(agg));
	for (look = 0; look < 2; look++)
	{
		/* renamed or replaced while we waited: follow the name, as PostgreSQL's commands do */
		Oid			named = look == 1 ? RangeVarGetRelid(rv, NoLock, true) : view_oid;

		if (named != view_oid)
		{
			UnlockRelationOid(view_oid, lockmode);
			view_oid = named;
			look = -1;
			continue;
		}
		if (!OidIsValid(view_oid) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(view_oid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("aggregation \"%s\" does not exist", name)));
		KsCatalogOpen(&acc);
		found = KsCatalogLookup(view_oid, &agg.def);
		KsCatalogClose(&acc);
		/* (a view or table of that name that is not one: as PostgreSQL's "is not a view") */
		if (!found)
			ereport(ERROR,
					(errcode(look == 0 ? ERRCODE_WRONG_OBJECT_TYPE : ERRCODE_UNDEFINED_OBJECT),
					 errmsg(look == 0 ? "\"%s\" is not a keyedstate aggregation" :
							"aggregation \"%s\" does not exist", name)));
		KsCheckAggRight(view_oid, right);
		/* also takes in the invalidations of what committed while it waited */
		if (look == 0)
			LockRelationOid(view_oid, lockmode);
	}
	agg.name = KsAggName(view_oid);
	return agg;
}

/* Error out where a control function must not run (see shmem.h). */
void
KsRequireControl(const char *what, bool writes)
{
	KsRequirePreload();
	KsRequirePrimary(what);
	KsRequireInstalled();
	/* in a read-only transaction, as PostgreSQL's own commands say it */
	if (writes)
		PreventCommandIfReadOnly(what);
	if (KsInDatabaseWorker())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot execute %s within a keyedstate aggregation", what),
				 errdetail("The functions of an aggregation's query run in its worker, which cannot create, change or drop aggregations."),
				 errhint("Call %s from a session.", what)));
}

/* Error out during recovery (see shmem.h), as PostgreSQL's own commands do. */
void
KsRequirePrimary(const char *what)
{
	if (!RecoveryInProgress())
		return;
	if (what == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("keyedstate aggregations cannot be read during recovery"),
				 errdetail("Aggregations run only on a primary server: a standby has their checkpoints, not their live state."),
				 errhint("Read them on the primary server.")));
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot execute %s during recovery", what),
			 errdetail("Aggregations run only on a primary server."),
			 errhint("Call it on the primary server.")));
}
