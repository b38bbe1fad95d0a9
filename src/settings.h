/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  keyedstate.* configuration parameters, and the settings an
 *	  aggregation captures; a worker undoes its database's settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SETTINGS_H
#define KS_SETTINGS_H

#include "nodes/pg_list.h"
#include "utils/guc.h"

/* PGC_POSTMASTER: number of aggregation slots in shared memory */
extern int	ks_max_aggregations;

/* PGC_POSTMASTER: cap on the DSA holding published state, in kB */
extern int	ks_max_shared_memory;

/* PGC_SIGHUP: database workers running at once in the server (the pool) */
extern int	ks_max_workers;

/* PGC_SIGHUP: whether workers run at all (off: they checkpoint and leave) */
extern bool ks_enabled;

/* PGC_SUSET: a superuser's DML of the state tables allowed (hookpartitions.c) */
extern bool ks_allow_state_writes;

/* PGC_SIGHUP: most rows read in one batch */
extern int	ks_batch_size;

/* PGC_SIGHUP, a developer option: the pool's settle time (pool.c), in ms */
extern int	ks_pool_settle;
extern int	ks_oom_retry;
extern int	ks_retry_delay;

/* PGC_SIGHUP: longest sleep of a worker between checks, in ms */
extern int	ks_naptime;

/* PGC_SIGHUP: aggregations one role may own in the cluster, 0 = no limit */
extern int	ks_max_aggregations_per_owner;
extern int	ks_max_state_memory;

/*
 * The smallest memory_limit: below it the keys' index alone would not fit.
 * A share of max_state_memory below it is allowed, but logged (evict.c).
 */
#define KS_MIN_MEMORY_LIMIT_KB	1024

/* PGC_SIGHUP: longest time one step of an aggregation may take, in ms */
extern int	ks_step_timeout;

/* PGC_SIGHUP: how long a read of a new aggregation waits for it to load, in ms */
extern int	ks_load_wait;

/* true when loaded through shared_preload_libraries */
extern bool ks_preloaded;

extern void KsSettingsInit(void);

/* The settings captured at creation, and applying them (for a step, with the owner's rights). */
extern bool KsIsCapturedSetting(const char *name);
/*
 * Whether KsCaptureSettings captures a custom setting now: set in this
 * session, not keyedstate's own.
 */
extern bool KsCustomSettingIsSet(const char *name);
extern List *KsCaptureSettings(void);
extern void KsApplySettings(List *settings, GucAction action, Oid owner);
extern void KsSetOption(const char *name, const char *value, GucAction action);

/*
 * Connect a background worker (a database worker, a probe) to a database
 * without the database's settings (ALTER DATABASE ... SET): each goes back
 * to the server's value.  Its owner, who may be an ordinary role, chooses
 * them for her sessions: a role set there made every probe fail, and her
 * database was never found after a start that did not list it (re-review
 * today 51, F1).
 */
extern void KsConnectWithoutDatabaseSettings(Oid dboid);

/*
 * Settings of the worker's session that the server's defaults must not
 * decide: read-write, read committed, no commit waiting for the disk, no
 * JIT, no lock_timeout, no query identifiers.
 */
extern void KsSetWorkerSettings(void);

#endif							/* KS_SETTINGS_H */
