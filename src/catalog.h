/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  keyedstate_internal.aggregation: the one home of the definitions' catalog.
 *
 * Every read and write of keyedstate_internal.aggregation goes through this file
 * (and of keyedstate_internal.part, the parts of a layout, through catalogparts.c),
 * inside the bracket KsCatalogOpen/KsCatalogClose: SPI connected and the
 * bootstrap superuser's identity, since ordinary roles have no privileges
 * on the table.  The worker, which connects as the bootstrap superuser and
 * switches to the worker's identity for its own tables (run.h), reads the
 * definitions with KsLoadDefinitions inside its own transaction.
 * (keyedstate_internal.state is written by checkpoint.c only.)
 *
 * A definition names its objects by regclass (view, live table, source,
 * sequence), so that pg_dump writes them by name and a restore binds them
 * to the restored objects; the offset column is kept by name and number,
 * and the query both as its analysed tree (what runs) and as a fully
 * qualified text (what a restore analyses again, see restore.c).  The
 * types the query stores (regtype[], kept with the tree) let a DDL command
 * check what it changes against every aggregation without reading and
 * parsing every tree (keytypes.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_CATALOG_H
#define KS_CATALOG_H

#include "keyedstate.h"

#include "access/attnum.h"
#include "nodes/pg_list.h"

/* One row of keyedstate_internal.aggregation. */
typedef struct KsAggDef
{
	int32		id;
	Oid			view_oid;
	Oid			live_oid;
	Oid			source_oid;
	AttrNumber	offset_attnum;
	Oid			sequence_oid;
	char	   *query_tree;
	List	   *settings;		/* "name=value" strings */
	int64		checkpoint_interval_ms;
	bool		paused;
	bool		rebuilding;
	bool		has_checkpoint; /* some checkpoint was ever taken */
	int64		resume_count;
	int64		checkpointed_offset;
	int64		pause_at;		/* restored paused: consumed up to this, then paused */
	int64		sequence_seen;	/* the highest value checkpoints saw its sequence hand out, or PG_INT64_MIN */
	uint64		key_seed;		/* secret: seeds its keys' places (KsKeyPlace, cold.h) */
	int64		ttl_us;			/* state TTL in microseconds, 0: none (expire.h) */
	TimestampTz ttl_floor;		/* keys changed before it stay expired (run.h), or DT_NOBEGIN */
	int64		window_size_us; /* time windows (window.h), 0: none */
	int64		window_slide_us;
	int64		memory_limit;	/* bytes of state in memory (evict.h), 0: none */

	/*
	 * Parallelism (keyedstate_internal.part).  `id` above is what runs: the part's
	 * id for a part, else the aggregation's; agg_id is the aggregation's.
	 */
	int32		agg_id;
	bool		is_part;
	int32		parallelism;
	int32		max_parallelism;	/* key groups: hash modulo this */
	int32		layout;
	int32		part;			/* its number in the layout */
	int32		first_group;	/* its key groups */
	int32		last_group;
	Datum	   *seeds;			/* a new part: the ids it is seeded from */
	int			nseeds;

	/*
	 * Why its rows in keyedstate_internal.part cannot be what keyedstate
	 * wrote (parts that do not tile the key groups, seeds that are not
	 * its retired parts), or NULL: the load fails it as corrupted.
	 */
	char	   *damage;

	/* query_tree holds another cluster's OIDs (pg_upgrade): bind `definition` again */
	bool		other_cluster;
	char	   *definition;
} KsAggDef;

/* The access bracket: SPI connected, as the bootstrap superuser. */
typedef struct KsCatalogAccess
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;		/* of the search_path pinned inside */
	MemoryContext save_cxt;		/* the bracket's results outlive SPI in it */
} KsCatalogAccess;

extern void KsCatalogOpen(KsCatalogAccess *acc);
extern void KsCatalogClose(KsCatalogAccess *acc);

/* The OID of keyedstate_internal.aggregation (for invalidations), or InvalidOid. */
extern Oid	KsCatalogRelid(void);

/*
 * Whether keyedstate is installed in this database with its tables where
 * this build keeps them.  An installation made by a build before they
 * moved to schema keyedstate_internal (security review 20, F2) keeps them
 * in schema keyedstate: then nothing of keyedstate runs there, no DDL of
 * anyone's reads them, and its functions refuse with how to make it anew
 * (KsRequireInstalled; re-review today 22, F1: its worker failed every
 * second, and every role's ALTER TABLE and TRUNCATE failed).
 */
extern bool KsInstalled(void);

/*
 * absent.c: whether this database (where keyedstate is installed) has work
 * for a worker: an aggregation, a trigger of one gone for it to drop, or a
 * prepared transaction (which may create one: see worker.c, re-review today
 * 54, F1).
 * The launcher's probe takes a database slot only for those: a database
 * with keyedstate and nothing else (made from a template that has it, say)
 * took one of the 64 for good (user review 50, F1).
 */
extern bool KsDatabaseHasWork(void);

/* absent.c: whether a prepared transaction of this database waits (SPI connected). */
extern bool KsPreparedHere(void);

/*
 * keyedstate's own trigger function called name ("wake", "refuse_truncate":
 * they take no arguments), looked up in its schema without a privilege
 * check; InvalidOid where keyedstate is not installed, and for a
 * function of that name that is not the extension's (absent.c).  The one way its
 * triggers are recognised: by their function, never by their name.
 */
extern Oid	KsTriggerFunctionOid(const char *name);
extern void KsRequireInstalled(void);
/* Log, once per process, that an earlier build's installation is here (a worker's, a probe's). */
extern void KsWarnEarlierInstall(void);

/*
 * Read every aggregation of this database (inside a transaction, SPI
 * connected, as the worker), or with `runs` what the worker runs: each
 * part of an aggregation that has parts (keyedstate_internal.part), every other
 * aggregation whole; the list lives in cxt.
 */
extern List *KsLoadDefinitions(MemoryContext cxt, bool runs);

/* A deep copy of a definition in cxt. */
extern KsAggDef *KsCopyDefinition(const KsAggDef *def, MemoryContext cxt);

/* The owner of a relation (an aggregation's owner is its view's); InvalidOid if gone. */
extern Oid	KsRelationOwner(Oid relid);

/* The strings of a text[] as a list of C strings in CurrentMemoryContext. */
extern List *KsTextArrayToList(Datum array);

/* Name of an aggregation for messages: its view's qualified name. */
extern char *KsAggName(Oid view_oid);

/*
 * The name of aggregation `aggid` for messages: of its view when known
 * (view_oid), else read from the catalog, else its number.
 */
extern char *KsAggregationName(int32 aggid, Oid view_oid);

/*
 * --- inside the bracket (backends) ---
 * Results are allocated in the memory context that was current when the
 * bracket was opened, so they outlive it.
 */

/* The definition of the aggregation behind a view; false if it is none. */
extern bool KsCatalogLookup(Oid view_oid, KsAggDef *def);

/*
 * Whether the current transaction changed an aggregation's row (pause,
 * resume, alter): its worker cannot lock that row, so cannot checkpoint,
 * until the transaction ends, and a wait for a checkpoint would time out.
 */
extern bool KsCatalogChangedHere(int32 id);

/*
 * The next aggregation id, or part id (`part`): parts have a range of
 * their own, from 1,000,000,000 (see the install script).
 */
extern int32 KsCatalogNextId(bool part);

/* A new definition, as create_aggregation made it. */
typedef struct KsNewAggregation
{
	int32		id;
	Oid			view_oid;
	Oid			live_oid;
	Oid			source_oid;
	AttrNumber	offset_attnum;
	Oid			sequence_oid;
	const char *query_text;		/* as the user wrote it */
	const char *definition;		/* fully qualified, for a restore */
	const char *query_tree;
	List	   *settings;
	int64		start_offset;
	Datum		checkpoint_interval;	/* an Interval */
	Datum		ttl;			/* an Interval, or 0 for none */
	Datum		window_size;	/* Intervals, or 0 for none */
	Datum		window_slide;
	const char *time_column;	/* or NULL */
	int64		memory_limit;	/* bytes, or 0 for none */
	int			parallelism;
	int			max_parallelism;
	Datum		key_types;		/* regtype[]s: see KsStoredTypeArrays */
	Datum		stored_types;
	Datum		aggregates;		/* an oid[] */
} KsNewAggregation;
extern void KsCatalogInsert(const KsNewAggregation *agg);

/*
 * Record a part of an aggregation's layout: its key groups, and where it
 * starts (an offset, or seeded from the ids in seeds, an int4[], if not 0).
 */
extern void KsCatalogInsertPart(int32 id, int32 aggid, int32 layout, int part, int first_group,
								int last_group, int64 start_offset, Datum seeds);

/* Whether KsCatalogInsert is inserting (so the restore trigger stands aside). */
extern bool KsCatalogInserting(void);

/*
 * What alter_aggregation() changes: the TTL if set_ttl (0: none), the
 * checkpoint interval unless 0, the memory limit unless negative (0: none).
 * A TTL lengthened or removed records how far the old one reached
 * (ttl_floor): in processing time now, in event time (windows) at the
 * watermark its worker published, `watermark` (DT_NOBEGIN: none).
 */
extern void KsCatalogAlter(int32 id, bool set_ttl, Datum ttl, Datum checkpoint_interval,
						   int64 memory_limit, TimestampTz watermark);

/* Delete a definition; false if it was gone.  Returns its live table and source. */
extern bool KsCatalogDelete(int32 id, Oid *live_oid, Oid *source_oid);

/* Pause, resume (also after a failure), or rebuild from `start_offset`. */
extern void KsCatalogSetPaused(int32 id, bool paused);
extern int64 KsCatalogRebuild(int32 id, int64 start_offset);

/*
 * A window changed (alter_aggregation()): the analysed query's tree, its
 * definition for a restore, and the window's size, slide and time column.
 */
extern void KsCatalogSetWindow(int32 id, const char *query_tree, const char *definition,
							   Datum size, Datum slide, const char *time_column);

/*
 * Rescale an aggregation to `parallelism` parts: retire what runs it now
 * (its parts, or the aggregation itself) and bump its layout; returns the
 * ids the new parts are seeded from (an int4[]), with the new layout and
 * the least checkpointed offset among them.  The caller adds the parts.
 */
extern Datum KsCatalogRescale(int32 id, int parallelism, int32 *layout, int64 *start);

/* The key groups of part p of n parts over max groups: Flink's ranges, as even as they can be. */
extern void KsPartGroups(int p, int n, int max, int *first, int *last);

/*
 * Set def->damage if a part's rows are not what a rescale writes: given
 * the numbers of its aggregation's running parts, distinct and in all, and
 * whether its seeds are that aggregation's retired parts.
 */
extern void KsCheckPartRows(KsAggDef *def, int64 numbers, int64 parts, bool seeds_ok);

/* Why an aggregation cannot be rescaled now, or NULL (locks its row). */
extern const char *KsCatalogRescaleBlocked(int32 id);

/*
 * Whether the tree of aggregation `a` names this cluster's objects: its
 * system_id is this cluster's (pg_upgrade keeps another's; a restore
 * that could not analyse it as its owner yet leaves it null).  Else its
 * worker binds it again before loading it (KsRebindDefinition), and
 * nothing else reads the tree meanwhile.
 */
#define KS_BOUND_HERE \
	"a.system_id IS NOT DISTINCT FROM (SELECT c.system_identifier FROM pg_catalog.pg_control_system() c)"

/*
 * The analysed query of an aggregation and its view; NULL if none, "" if
 * its tree is not bound to this database's objects yet (KsRebindDefinition).
 */
extern char *KsCatalogQueryTree(int32 id, Oid *view_oid, char **definition);

/*
 * What every aggregation of the database stores, as KsStoredOids in the
 * caller's memory: the types of its keys, or those of its view's columns,
 * aggregate arguments and transition states, or the aggregates it calls;
 * oldest first, so that an error naming the first that blocks a change
 * names the same one every time (06_ddl named either of two at random).
 */
typedef enum KsStoredKind
{
	KS_KEY_TYPES,
	KS_STORED_TYPES,
	KS_AGGREGATES
} KsStoredKind;
typedef struct KsStoredOids
{
	Oid			view_oid;
	int			noids;
	Oid		   *oids;
} KsStoredOids;
extern List *KsCatalogStored(KsStoredKind kind);

/* Every aggregation of the database, as (view, id) pairs. */
extern void KsCatalogAll(List **views, List **ids);

/* Tell the worker, also at COMMIT PREPARED, that the definitions changed. */
extern void KsCatalogChanged(void);

#endif							/* KS_CATALOG_H */
