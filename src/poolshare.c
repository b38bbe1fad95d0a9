/*-------------------------------------------------------------------------
 *
 * poolshare.c
 *	  The pool of the server: keyedstate.max_workers shared among the
 *	  databases, which workers the launcher starts (or could not start),
 *	  and why an aggregation waits for one.  See shmem.h for the pool and
 *	  the locking protocol, which this file follows with shmem.c,
 *	  dbslots.c and pool.c.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "storage/procarray.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "shmem.h"

/*
 * How many workers a database asks for (KsShared->lock held): one per
 * aggregation not parked, and one when it has none yet (or only parked
 * ones) but a worker should start (a request, or a worker to restart);
 * none when it is idle.
 */
static int
KsDbDemandLocked(KsDbSlot *db)
{
	KsDbWorker *first = &db->workers[0];

	if (!OidIsValid(db->dboid) || db->dropping_pid != 0)
		return 0;
	if (db->naggs - db->nparked > 0)
		return Min(db->naggs - db->nparked, KS_MAX_DB_WORKERS);
	return (first->pid != 0 || db->requested != first->seen || !first->idle_exit) ? 1 : 0;
}

/* Share keyedstate.max_workers among the databases (KsShared->lock held). */
void
KsSharePoolLocked(int max_workers)
{
	int			demand[KS_MAX_DATABASES];
	int			share[KS_MAX_DATABASES];
	int			left;
	int			owners_left;
	bool		more = true;
	int			i;

	/* what max_worker_processes left us, when a start found that (KsLauncherCapPool) */
	if (KsSharedState->pool_cap > 0 &&
		TimestampDifferenceExceeds(KsSharedState->pool_cap_at, GetCurrentTimestamp(), KS_POOL_CAP_MS))
		KsSharedState->pool_cap = 0;
	if (KsSharedState->pool_cap > 0)
		max_workers = Min(max_workers, KsSharedState->pool_cap);
	left = max_workers;

	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		demand[i] = KsDbDemandLocked(&KsSharedState->dbs[i]);
		share[i] = 0;
	}
	/* every database that asks gets its first worker, even beyond max_workers */
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		if (demand[i] > 0)
		{
			share[i] = 1;
			left--;
		}
	}

	/*
	 * Then rounds give each database a worker for each other owner of its
	 * aggregations (a worker runs one owner's code only, owner.h), max_workers
	 * of them at most in the server beside the first ones; then what is left
	 * of max_workers, one per aggregation.  An owner left without one waits
	 * for one (KsWorkerMissing says why): giving every owner a worker even
	 * beyond max_workers let a role with CREATEROLE, owning aggregations
	 * through roles of her own, take every background worker slot of the
	 * server (review security 25, F2).  First a database keeps the owners'
	 * workers it had (up to its owners now): an owner appearing in another
	 * database waits, as she would in the same one, rather than take a
	 * running owner's worker away (review security 26, F2: one role's
	 * create_aggregation in her own database stopped another database's
	 * running aggregation).
	 */
	owners_left = max_workers;
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		int			keep = Min(Min(Max(KsSharedState->dbs[i].nowners, 1), demand[i]),
							   KsSharedState->dbs[i].nworkers) - share[i];

		keep = Min(Max(keep, 0), owners_left);
		share[i] += keep;
		left -= keep;
		owners_left -= keep;
	}
	for (int round = 0; round < 2; round++)
	{
		/*
		 * ... and, before more go round, the workers it had beyond its
		 * owners': one owner's pause and resume in one database moved
		 * another database's aggregations between workers, a reload of
		 * their state each time (re-review today 30, F6)
		 */
		for (i = 0; round == 1 && i < KS_MAX_DATABASES && left > 0; i++)
		{
			int			keep = Min(demand[i], KsSharedState->dbs[i].nworkers) - share[i];

			keep = Min(Max(keep, 0), left);
			share[i] += keep;
			left -= keep;
		}
		more = true;
		while ((round == 0 ? owners_left : left) > 0 && more)
		{
			more = false;
			for (i = 0; i < KS_MAX_DATABASES && (round == 0 ? owners_left : left) > 0; i++)
			{
				int			want = demand[i];

				if (round == 0)
					want = Min(Max(KsSharedState->dbs[i].nowners, 1), want);
				if (share[i] < want)
				{
					share[i]++;
					left--;
					owners_left -= (round == 0);
					more = true;
				}
			}
		}
	}
	for (i = 0; i < KS_MAX_DATABASES; i++)
	{
		KsDbSlot   *db = &KsSharedState->dbs[i];
		int			n = Max(share[i], 1);

		if (OidIsValid(db->dboid) && db->nworkers != n)
		{
			db->nworkers = n;
			/* its workers reload: those beyond n hand over and leave */
			KsDatabaseRequestLocked(db->dboid);
		}
	}
}

/* Share keyedstate.max_workers among the databases (see shmem.h). */
void
KsLauncherSharePool(int max_workers)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharePoolLocked(max_workers);
	LWLockRelease(KsSharedState->lock);
}

/* Cap the pool at the workers that run, or lift the cap (see shmem.h). */
void
KsLauncherCapPool(int max_workers, bool lift)
{
	int			running = 0;
	int			i;
	int			w;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	if (lift)
		KsSharedState->pool_cap = 0;
	else
	{
		for (i = 0; i < KS_MAX_DATABASES; i++)
			for (w = 0; w < KS_MAX_DB_WORKERS; w++)
				if (KsSharedState->dbs[i].workers[w].pid != 0)
					running++;
		KsSharedState->pool_cap = Max(running, 1);
		KsSharedState->pool_cap_at = GetCurrentTimestamp();
	}
	KsSharePoolLocked(max_workers);
	LWLockRelease(KsSharedState->lock);
}

/* Whether worker w of database slot i should be started now (see shmem.h). */
bool
KsLauncherWantsWorker(int i, int w, TimestampTz now, int min_gap_ms, int restart_ms,
					  Oid *dboid)
{
	KsDbSlot   *db = &KsSharedState->dbs[i];
	KsDbWorker *worker = &db->workers[w];
	bool		wanted;

	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	/* a backend that dropped the database and went away without telling */
	if (db->dropping_pid != 0 && BackendPidGetProc(db->dropping_pid) == NULL)
		db->dropping_pid = 0;
	*dboid = db->dboid;
	/* new requests start at once, restarts after a failure are spaced */
	wanted = OidIsValid(db->dboid) && w < db->nworkers && worker->pid == 0 &&
		db->dropping_pid == 0 &&
		((db->requested != worker->seen &&
		  TimestampDifferenceExceeds(worker->last_start, now, min_gap_ms)) ||
		 (!worker->idle_exit &&
		  TimestampDifferenceExceeds(worker->last_start, now, restart_ms)));
	LWLockRelease(KsSharedState->lock);
	return wanted;
}

/* Whether worker w of database slot i is one its owners' need (see shmem.h). */
bool
KsLauncherOwnersWorker(int i, int w)
{
	bool		needed;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	needed = w < KsSharedState->dbs[i].nowners;
	LWLockRelease(KsSharedState->lock);
	return needed;
}

/* The launcher started worker w for slot i, or found no process for it. */
void
KsLauncherStarted(int i, int w, TimestampTz now, bool started)
{
	LWLockAcquire(KsSharedState->lock, LW_EXCLUSIVE);
	KsSharedState->dbs[i].workers[w].last_start = now;
	KsSharedState->dbs[i].workers[w].no_process = !started;
	LWLockRelease(KsSharedState->lock);
}

/* Whether worker w (any if negative) of this database found no background worker slot (see shmem.h). */
bool
KsWorkerLacksProcess(int w)
{
	KsDbSlot   *db;
	bool		lacks;
	int			j;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	db = KsLookupDbLocked(MyDatabaseId);
	lacks = false;
	for (j = 0; db != NULL && j < KS_MAX_DB_WORKERS; j++)
		if ((w < 0 || j == w) && db->workers[j].pid == 0 && db->workers[j].no_process)
			lacks = true;
	LWLockRelease(KsSharedState->lock);
	return lacks;
}

/* Whether no launcher ran since the shared memory was made (see shmem.h). */
bool
KsLauncherMissing(void)
{
	bool		missing;

	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	missing = !KsSharedState->launcher_attached &&
		TimestampDifferenceExceeds(KsSharedState->created_at, GetCurrentTimestamp(), KS_LAUNCHER_GRACE_MS);
	LWLockRelease(KsSharedState->lock);
	return missing;
}

/* Why an aggregation assigned to worker w waits for one that does not come (see shmem.h). */
int
KsWorkerMissing(int w)
{
	KsDbSlot   *db;
	int			owners = 0;

	if (KsLauncherMissing())
		return KS_NO_LAUNCHER;
	if (!ks_enabled)
		return KS_DISABLED;
	if (KsWorkerLacksProcess(w))
		return -1;
	LWLockAcquire(KsSharedState->lock, LW_SHARED);
	db = KsLookupDbLocked(MyDatabaseId);
	if (w < 0 && db != NULL && db->nowners > Min(Max(db->nworkers, 1), KS_MAX_DB_WORKERS))
		owners = db->nowners;
	LWLockRelease(KsSharedState->lock);
	return owners;
}
