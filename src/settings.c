/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  keyedstate.* configuration parameters.
 *
 * Sizes of shared structures are fixed at server start (PGC_POSTMASTER);
 * the knobs of the worker loop can be changed with a reload (PGC_SIGHUP)
 * and are re-read by workers when they get SIGHUP.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "settings.h"

int			ks_max_aggregations = 64;
int			ks_max_shared_memory = 1024 * 1024;	/* kB: 1 GB */
int			ks_max_workers = 4;
int			ks_batch_size = 100000;
int			ks_naptime = 1000;
int			ks_max_aggregations_per_owner = 0;
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

	DefineCustomIntVariable("keyedstate.batch_size",
							"Largest range of offsets a worker reads in one batch.",
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
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.max_aggregations_per_owner",
							"Maximum number of aggregations one role may own in the cluster.",
							"0 means no limit other than keyedstate.max_aggregations.",
							&ks_max_aggregations_per_owner,
							0, 0, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("keyedstate.max_state_memory",
							"Bounds the memory that the state of all aggregations together keeps in memory.",
							"Each running aggregation gets an equal share as its budget (or its own "
							"memory_limit if smaller); colder keys are evicted to keyedstate.cold. 0 means no bound.",
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

	MarkGUCPrefixReserved("keyedstate");
}
