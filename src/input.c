/*-------------------------------------------------------------------------
 *
 * input.c
 *	  The safe offset frontier and batch reading of an aggregation's input.
 *	  See input.h for why this never reads past a row still in flight.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/params.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"

#include "input.h"

/* Start a frontier at an already consumed offset. */
void
KsFrontierInit(KsFrontier *f, int64 consumed, MemoryContext cxt)
{
	memset(f, 0, sizeof(KsFrontier));
	f->safe = consumed;
	f->target = consumed;
	f->maxwaits = MaxBackends + max_prepared_xacts + 1;
	f->waits = MemoryContextAlloc(cxt, sizeof(VirtualTransactionId) * f->maxwaits);
}

/* The last value handed out by a sequence, read without a privilege check. */
bool
KsSequenceLastValue(Oid seqoid, int64 *value)
{
	Oid			save_userid;
	int			save_sec_context;
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	/* the caller may read the aggregation but not the sequence itself */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seqoid);
	fcinfo->args[0].isnull = false;
	result = pg_sequence_last_value(fcinfo);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (fcinfo->isnull)
		return false;
	*value = DatumGetInt64(result);
	return true;
}

/*
 * Whether a locker can be ignored: VACUUM and autovacuum take locks that
 * conflict with ShareLock but never insert rows, and waiting for them would
 * stall the aggregation for the length of a vacuum.
 */
static bool
KsLockerIsVacuum(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	if (proc == NULL || proc->lxid != vxid.localTransactionId)
		return false;
	return (proc->statusFlags & (PROC_IN_VACUUM | PROC_IS_AUTOVACUUM)) != 0;
}

/* The pid of the process running a virtual transaction, or 0. */
static int
KsLockerPid(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);

	return proc ? proc->pid : 0;
}

/*
 * Move the frontier: forget writers that have ended; when none is left the
 * target becomes safe, and a new target is taken from the sequence along
 * with the writers that may still hold offsets up to it.
 */
int64
KsFrontierAdvance(KsFrontier *f, Oid relid, Oid seqoid)
{
	int64		hw;
	LOCKTAG		tag;
	VirtualTransactionId *lockers;
	int			nlockers;
	int			i;

	if (f->nwaits > 0)
	{
		int			j = 0;

		for (i = 0; i < f->nwaits; i++)
		{
			/* with wait = false, false means still running */
			if (!VirtualXactLock(f->waits[i], false))
				f->waits[j++] = f->waits[i];
		}
		f->nwaits = j;
		if (j > 0)
		{
			f->blocking_pid = KsLockerPid(f->waits[0]);
			return f->safe;
		}
		f->safe = f->target;
		f->blocking_pid = 0;
	}

	if (!KsSequenceLastValue(seqoid, &hw) || hw <= f->target)
		return f->safe;

	/* read the high-water mark first, then who may still be writing below it */
	f->target = hw;
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	lockers = GetLockConflicts(&tag, ShareLock, &nlockers);
	f->nwaits = 0;
	for (i = 0; VirtualTransactionIdIsValid(lockers[i]); i++)
	{
		if (KsLockerIsVacuum(lockers[i]))
			continue;
		Assert(f->nwaits < f->maxwaits);
		f->waits[f->nwaits++] = lockers[i];
	}
	pfree(lockers);

	if (f->nwaits == 0)
		f->safe = hw;
	else
	{
		f->blocked_since = GetCurrentTimestamp();
		f->blocking_pid = KsLockerPid(f->waits[0]);
	}
	return f->safe;
}

/*
 * Deparse an expression of the source table under the current search_path,
 * cast to its analysed type: the deparser leaves implicit casts out, and
 * the input row must carry exactly the types the aggregate calls expect.
 */
static char *
KsDeparse(Node *expr, List *dpcontext)
{
	return psprintf("(%s)::%s", deparse_expression(expr, dpcontext, false, false),
					format_type_with_typemod(exprType(expr), exprTypmod(expr)));
}

/* Build the SQL that reads an aggregation's input for one batch. */
char *
KsBuildInputQuery(KsQueryInfo *info, AttrNumber offset_attnum,
				  int *inputcols, int *filtercols, int *ncols)
{
	StringInfoData sql;
	Oid			relid = info->source_relid;
	char	   *relname = get_rel_name(relid);
	char	   *qualrel;
	const char *offcol;
	List	   *dpcontext;
	ListCell   *lc;
	int			col;
	int			i;

	qualrel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
	offcol = quote_identifier(get_attname(relid, offset_attnum, false));
	dpcontext = deparse_context_for(relname, relid);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s::pg_catalog.int8", offcol);
	col = 1;
	foreach(lc, info->keyexprs)
	{
		appendStringInfo(&sql, ", %s", KsDeparse(lfirst(lc), dpcontext));
		col++;
	}
	i = 0;
	foreach(lc, info->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);
		ListCell   *alc;

		inputcols[i] = col;
		foreach(alc, aggref->args)
		{
			TargetEntry *tle = lfirst(alc);

			appendStringInfo(&sql, ", %s", KsDeparse((Node *) tle->expr, dpcontext));
			col++;
		}
		if (aggref->aggfilter != NULL)
		{
			filtercols[i] = col;
			appendStringInfo(&sql, ", %s",
							 KsDeparse((Node *) aggref->aggfilter, dpcontext));
			col++;
		}
		else
			filtercols[i] = -1;
		i++;
	}
	*ncols = col;
	appendStringInfo(&sql, " FROM ONLY %s WHERE %s > $1 AND %s <= $2",
					 qualrel, offcol, offcol);
	if (info->query->jointree->quals != NULL)
		appendStringInfo(&sql, " AND (%s)",
						 KsDeparse(info->query->jointree->quals, dpcontext));
	appendStringInfo(&sql, " ORDER BY %s", offcol);
	return sql.data;
}

/* DestReceiver that hands each input row to a callback, without copying. */
typedef struct KsInputReceiver
{
	DestReceiver pub;
	KsRowCallback cb;
	void	   *arg;
	uint64		count;
} KsInputReceiver;

/* receiveSlot: one input row. */
static bool
KsInputReceive(TupleTableSlot *slot, DestReceiver *self)
{
	KsInputReceiver *r = (KsInputReceiver *) self;

	r->cb(slot, r->arg);
	r->count++;
	return true;
}

/* rStartup / rShutdown / rDestroy: nothing to do. */
static void
KsInputStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
KsInputShutdown(DestReceiver *self)
{
}

static void
KsInputDestroy(DestReceiver *self)
{
}

/* Run the prepared input statement over (lo, hi]. */
uint64
KsRunInputBatch(SPIPlanPtr plan, int64 lo, int64 hi, KsRowCallback cb, void *arg)
{
	KsInputReceiver r;
	SPIExecuteOptions options;
	ParamListInfo params;
	int			ret;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = KsInputReceive;
	r.pub.rStartup = KsInputStartup;
	r.pub.rShutdown = KsInputShutdown;
	r.pub.rDestroy = KsInputDestroy;
	r.pub.mydest = DestNone;
	r.cb = cb;
	r.arg = arg;

	params = makeParamList(2);
	params->numParams = 2;
	params->params[0].value = Int64GetDatum(lo);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = INT8OID;
	params->params[1].value = Int64GetDatum(hi);
	params->params[1].isnull = false;
	params->params[1].pflags = PARAM_FLAG_CONST;
	params->params[1].ptype = INT8OID;

	memset(&options, 0, sizeof(options));
	options.params = params;
	/* not read-only: each batch gets a snapshot taken now, after the frontier moved */
	options.read_only = false;
	options.dest = (DestReceiver *) &r;

	ret = SPI_execute_plan_extended(plan, &options);
	/* SPI says SPI_OK_UTILITY for a SELECT whose rows go to a DestNone receiver */
	if (ret != SPI_OK_SELECT && ret != SPI_OK_UTILITY)
		elog(ERROR, "keyedstate input query failed: %s", SPI_result_code_string(ret));
	return r.count;
}
