/*-------------------------------------------------------------------------
 *
 * keyedstate.h
 *	  Definitions shared by every part of keyedstate.
 *
 * keyedstate keeps Flink-style keyed state inside PostgreSQL: a background
 * worker consumes an append-only table in offset order, applies aggregate
 * transition functions per key in C, publishes the finalized per-key rows
 * to shared memory for any backend to read, and checkpoints the changed
 * keys together with the consumed offset in one transaction.
 *
 * The source is split by concern; each part has its own header (the SQL
 * API's parts, waketrig.c among them, share hooks.h; shmem.h covers dbslots.c, wakeups.c,
 * pool.c, poolshare.c, progress.c and waitwords.c, store.h storewrite.c, storeread.c and storefree.c, source.h offsets.c
 * sourcetree.c, sourceddl.c and sourcedefaults.c, lookup.h lookupexec.c, cold.h coldread.c,
 * colddelete.c and coldfilter.c, aggcall.h callcheck.c, window.h windowquery.c,
 * checkpoint.h ckptcommit.c, recovery.h seed.c and chunkcheck.c,
 * run.h runlife.c and runbound.c):
 *	settings	GUCs (keyedstate.*)
 *	shmem		fixed shared struct, DSA, aggregation slots; the locking protocol
 *	dbslots		database slots: requests, launcher, DROP DATABASE, interrupts
 *	wakeups		waking workers, and the aggregations below a table, without a lock
 *	pool		a database's workers: assigning aggregations, handing them over
 *	poolshare	the server's workers: max_workers shared among databases
 *	progress	a slot's state and progress, and waiting for them
 *	waitwords	the words of waits: what a part waits for, why it consumes slowly
 *	store		published per-key rows in DSA: structure, read epochs
 *	storewrite	the writer's side of the publish protocol, garbage by epoch
 *	storeread	the readers' side: copying rows out under the read protocol
 *	storefree	freeing stores, at once or a slice at a time between steps
 *	serialize	byte form of Datums and view rows in checkpoints, checked on reading
 *	keytable	worker-local hash table of keys and transition states
 *	keydirty	the keys changed since the last publish and checkpoint capture
 *	aggcall		calling aggregate transition/final/serial functions
 *	callcheck	what the calls depend on: privileges, replaced aggregates, SECURITY DEFINER
 *	aggguard	refusing changes to the aggregates an aggregation calls
 *	aggserial	the durable form of transition states, read back
 *	apply		applying input rows to the keyed state in chunks
 *	definition	analysing an aggregation's query: contents, layout, settings
 *	pinned		what a query may call: functions that give a row the same value on replay
 *	inputorder	ORDER BY inside an aggregate: by the offset column only
 *	catalog		keyedstate_internal.aggregation and its access bracket
 *	source		which rows are consumed: frontier, step checks, batches
 *	sourcetree	the tables read: a source or its partitions, their offset indexes
 *	sourceddl	commands changing a source's partitions: attach, drop, detach
 *	sourcedefaults	the offset defaults of a source and its tree's tables
 *	offsets		the offset column and its sequence, where consumption starts
 *	run			an aggregation's run: identity, settings, failures
 *	runbound	a step's bounds: step timeout, kill timer, cancels, termination
 *	runlife		an aggregation's run: created, redefined, unloaded, released
 *	step		one step of one aggregation
 *	publish		finalizing and publishing changed keys
 *	rowbuild	building error rows in the worker, piece by piece
 *	rowerror	error rows: the row of a key that could not be computed
 *	expire		state TTL: sweeping out keys not changed for longer than the TTL
 *	evict		the memory budget: choosing the keys to evict
 *	cold		evicted keys in keyedstate_internal.cold: writing them, loading them back
 *	colddelete	deleting cold rows: stale, expired, uncommitted, a whole aggregation's
 *	coldfilter	the cold filter: which hashes may have a cold row
 *	coldread	the readers' side: evicted keys' rows for the live view
 *	window		tumbling and sliding time windows: merging panes, their TTL
 *	windowquery	the windows' query rewrite, at creation and when altered
 *	checkpoint	writing changed keys with the offset; the chunk format
 *	ckptcommit	committing a checkpoint's offset; deleting checkpoints not needed
 *	recovery	loading the checkpointed keys and offset, checking every byte
 *	chunkcheck	a chunk's header, and the chunks of a checkpoint, checked before parsing
 *	seed		a rescale's new part: loading its key groups from the retired parts
 *	crashguard	stopping an aggregation that keeps crashing the server for lack of memory
 *	worker		a database worker process of the pool
 *	launcher	the launcher that starts database workers
 *	liveview	foreign data wrapper behind each live view
 *	lookup		planning point lookups of grouping keys in a live view scan
 *	lookupexec	executing them: evaluating and hashing the looked-up values
 *	livewrite	writes through a live view: refused, naming the view
 *	create		create_aggregation()
 *	arguments	the SQL API's arguments: the aggregation a name names, intervals, TTL, budget
 *	control		drop, pause, resume, rebuild, sync, checkpoint, status
 *	hooks		commit callback, wake-up trigger, utility hook
 *	hooksource	the aggregations a utility command on a table touches; offset indexes kept
 *	hookoffsets	commands changing where a source's offsets come from, refused after they ran
 *	hookpartitions	the guards of sources' partition trees (DROP, TRUNCATE, ATTACH, DETACH)
 *	waketrig	putting the wake-up trigger on sources and their partitions
 *	restore		binding definitions restored from a dump
 *	restoredata	binding those a data-only restore loaded with their triggers disabled, or
 *			that wait for their owner's privileges
 *	orphans		aggregations whose view went away without an event trigger
 *	absent		aggregations a read or a wait finds not running: why, at once if never
 *
 *-------------------------------------------------------------------------
 */
#ifndef KEYEDSTATE_H
#define KEYEDSTATE_H

#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"

#if PG_VERSION_NUM < 150000
#error "keyedstate requires PostgreSQL 15 or later"
#endif

/* PG15's fmgr.h does not declare it */
extern void _PG_init(void);

/*
 * Number of key groups by default (create_aggregation's max_parallelism):
 * a key's group is its hash modulo the aggregation's number, at most
 * KS_MAX_KEY_GROUPS (a group is stored in two bytes).
 */
#define KS_MAX_PARALLELISM		128
#define KS_MAX_KEY_GROUPS		32768

/* Length of the error text kept in shared memory per aggregation. */
#define KS_ERROR_LEN			512

/* Names used for the extension's own catalog objects. */
#define KS_SCHEMA				"keyedstate"
/*
 * keyedstate's tables, sequences and live tables: a schema no role but
 * the superusers may use, so no other role can name them and take or
 * queue a lock on them (security review 20, F2: a lock PostgreSQL takes
 * before it checks privileges, queued behind one held, stalled every
 * checkpoint).  KS_SCHEMA holds what roles call and read.
 */
#define KS_DATA_SCHEMA			"keyedstate_internal"
#define KS_SERVER				"keyedstate_server"
#define KS_LIVE_TABLE_FMT		"live_%d"
#define KS_WAKE_TRIGGER_FMT		"keyedstate_wake_%d"
#define KS_TRUNCATE_TRIGGER_FMT "keyedstate_truncate_%d"

/*
 * The search_path of keyedstate's own SQL: no schema a user can create
 * functions or operators in (pg_temp is never searched for those).
 */
#define KS_SAFE_SEARCH_PATH		"pg_catalog, pg_temp"

/*
 * The CPU's cache line, for prefetching (PG_CACHE_LINE_SIZE is 128, an
 * upper bound meant for padding, and would skip every other line).
 */
#define KS_CACHE_LINE			64

/*
 * Hint the CPU to fetch a cache line we will read soon.  Only a hint: it
 * never faults, whatever the address.
 */
#if defined(__GNUC__) || defined(__clang__)
#define KS_PREFETCH(addr)		__builtin_prefetch((addr), 0, 3)
#else
#define KS_PREFETCH(addr)		((void) (addr))
#endif

/* The order of uint32s, for qsort and bsearch. */
static inline int
KsCompareUint32(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The order of uint64s, for qsort and bsearch. */
static inline int
KsCompareUint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The worker's interrupt check for its long loops: CHECK_FOR_INTERRUPTS,
 * and leave at once if the postmaster died (a backlog must not keep a
 * dead server's worker running).
 */
#define KsCheckInterrupts() \
	do { \
		CHECK_FOR_INTERRUPTS(); \
		if (!PostmasterIsAlive()) \
			proc_exit(1); \
	} while (0)

/* Format version written at the start of every checkpoint chunk. */
#define KS_STATE_FORMAT			4

#endif							/* KEYEDSTATE_H */
