/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  keyedstate.aggregation: the one home of the definitions' catalog.
 *
 * Every read and write of keyedstate.aggregation goes through this file,
 * inside the bracket KsCatalogOpen/KsCatalogClose: SPI connected and the
 * bootstrap superuser's identity, since ordinary roles have no privileges
 * on the table.  The worker, which connects as the bootstrap superuser and
 * switches to the worker's identity for its own tables (run.h), reads the
 * definitions with KsLoadDefinitions inside its own transaction.
 * (keyedstate.state is written by checkpoint.c only.)
 *
 * A definition names its objects by regclass (view, live table, source,
 * sequence), so that pg_dump writes them by name and a restore binds them
 * to the restored objects; the offset column is kept by name and number,
 * and the query both as its analysed tree (what runs) and as a fully
 * qualified text (what a restore analyses again, see restore.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_CATALOG_H
#define KS_CATALOG_H

#include "keyedstate.h"

#include "nodes/pg_list.h"

/* One row of keyedstate.aggregation. */
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
	int64		ttl_us;			/* state TTL in microseconds, 0: none (expire.h) */
	int64		window_size_us; /* time windows (window.h), 0: none */
	int64		window_slide_us;
	int64		memory_limit;	/* bytes of state in memory (evict.h), 0: none */
} KsAggDef;

/* The access bracket: SPI connected, as the bootstrap superuser. */
typedef struct KsCatalogAccess
{
	Oid			save_userid;
	int			save_sec;
	MemoryContext save_cxt;		/* the bracket's results outlive SPI in it */
} KsCatalogAccess;

extern void KsCatalogOpen(KsCatalogAccess *acc);
extern void KsCatalogClose(KsCatalogAccess *acc);

/* The OID of keyedstate.aggregation (for invalidations), or InvalidOid. */
extern Oid	KsCatalogRelid(void);

/*
 * Read every aggregation of this database (inside a transaction, SPI
 * connected, as the worker); the list lives in cxt.
 */
extern List *KsLoadDefinitions(MemoryContext cxt);

/* A deep copy of a definition in cxt. */
extern KsAggDef *KsCopyDefinition(const KsAggDef *def, MemoryContext cxt);

/* The owner of a relation (an aggregation's owner is its view's); InvalidOid if gone. */
extern Oid	KsRelationOwner(Oid relid);

/* The strings of a text[] as a list of C strings in CurrentMemoryContext. */
extern List *KsTextArrayToList(Datum array);

/* Name of an aggregation for messages: its view's qualified name. */
extern char *KsAggName(Oid view_oid);

/*
 * --- inside the bracket (backends) ---
 * Results are allocated in the memory context that was current when the
 * bracket was opened, so they outlive it.
 */

/* The definition of the aggregation behind a view; false if it is none. */
extern bool KsCatalogLookup(Oid view_oid, KsAggDef *def);

/* The next aggregation id. */
extern int32 KsCatalogNextId(void);

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
} KsNewAggregation;
extern void KsCatalogInsert(const KsNewAggregation *agg);

/* Whether KsCatalogInsert is inserting (so the restore trigger stands aside). */
extern bool KsCatalogInserting(void);

/*
 * What alter_aggregation() changes: the TTL if set_ttl (0: none), the
 * checkpoint interval unless 0, the memory limit unless negative (0: none).
 */
extern void KsCatalogAlter(int32 id, bool set_ttl, Datum ttl, Datum checkpoint_interval,
						   int64 memory_limit);

/* Delete a definition; false if it was gone.  Returns its live table and source. */
extern bool KsCatalogDelete(int32 id, Oid *live_oid, Oid *source_oid);

/* Pause, resume (also after a failure), or rebuild from `start_offset`. */
extern void KsCatalogSetPaused(int32 id, bool paused);
extern void KsCatalogRebuild(int32 id, int64 start_offset);

/* The analysed query of an aggregation and its view; NULL if none. */
extern char *KsCatalogQueryTree(int32 id, Oid *view_oid);

/* Every aggregation of the database, as (view, id) pairs. */
extern void KsCatalogAll(List **views, List **ids);

/* Tell the worker, also at COMMIT PREPARED, that the definitions changed. */
extern void KsCatalogChanged(void);

#endif							/* KS_CATALOG_H */
