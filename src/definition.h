/*-------------------------------------------------------------------------
 *
 * definition.h
 *	  An aggregation's definition: analysing its query, and its catalog row.
 *
 * An aggregation is an ordinary `SELECT ... FROM one_table [WHERE]
 * GROUP BY ... [HAVING]`.  Its analysed Query is stored as a node tree in
 * keyedstate_internal.aggregation (like a view's rule) and taken apart here into
 * what the worker needs: the grouping key expressions with their equality
 * operators, the aggregate calls, and the view's target list and HAVING
 * rewritten to read from a "result tuple" laid out as
 *	[key 1 .. key n, aggregate result 1 .. aggregate result m]
 * so that each key's view row is computed by one projection.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_DEFINITION_H
#define KS_DEFINITION_H

#include "keyedstate.h"

#include "access/tupdesc.h"
#include "nodes/parsenodes.h"
#include "utils/guc.h"

typedef struct KsQueryInfo
{
	Query	   *query;
	Oid			source_relid;

	int			nkeys;
	List	   *keyexprs;		/* Expr, in GROUP BY order */
	Oid		   *keytypes;
	Oid		   *keycolls;
	Oid		   *keyeqops;
	AttrNumber *keyattnums;		/* view column holding each key, or 0 */

	int			naggs;
	List	   *aggrefs;		/* distinct Aggrefs */

	List	   *resulttlist;	/* view columns over the result tuple */
	Expr	   *having;			/* over the result tuple, or NULL: its conjuncts with aggregates */
	List	   *rowhaving;		/* its conjuncts without: rows' quals (KsAnalyzeQuery) */
	TupleDesc	resultdesc;		/* the result tuple: keys, then aggregates */
	TupleDesc	viewdesc;		/* the view's columns */

	/*
	 * The input row the source reader builds for each source row (see
	 * source.h): column 0 is the offset, then the keys, then each
	 * aggregate's arguments (the first at inputcols[i]) and its FILTER
	 * (at filtercols[i], or -1).  inputexprs are columns 1 .. ninputcols-1,
	 * over the source table (varno 1), as analysed.
	 */
	int			ninputcols;
	List	   *inputexprs;
	int		   *inputcols;
	int		   *filtercols;
	Expr	   *where;			/* the query's WHERE and rowhaving, or NULL */
	int			timecol;		/* windows: the row's time (window.h), or 0 */
	AttrNumber	order_attnum;	/* ORDER BY inside aggregates (the offset), or 0 */
} KsQueryInfo;

/*
 * Check that a query can be an aggregation and take it apart.  Raises an
 * error with a specific errcode for every construct keyedstate refuses.
 */
extern void KsAnalyzeQuery(Query *query, KsQueryInfo *info);

/* inputorder.c: ORDER BY inside an aggregate, by the offset column only */
extern AttrNumber KsAggrefOrderColumn(Aggref *aggref, AttrNumber known);
extern void KsCheckInputOrder(const KsQueryInfo *info, AttrNumber offset_attnum);

/*
 * Whether a logical replication subscription replicates into a table
 * (pg_subscription_rel lists it): its rows keep the publisher's offsets.
 */
extern bool KsTableIsSubscribed(Oid relid);

/* Whether values of a type may be anonymous records (not checkpointable). */
extern bool KsTypeIsAnonymousRecord(Oid typid);


/* Raise the error for a construct that an aggregation cannot contain. */
extern void KsRefuse(int errcode_value, const char *what, const char *hint);

/* pinned.c: refuse what a replay would compute differently (functions of the time, of the session, of tables) */
extern void KsCheckPinned(Query *query);

/* The first volatile function a query calls (operators' too), or InvalidOid. */
extern Oid	KsFirstVolatileFunction(Query *query);

/*
 * The most bytes an aggregation's analysed query may take in its stored
 * form (a plain query of a few aggregates takes about 5kB).
 */
#define KS_MAX_QUERY_TREE		(1024 * 1024)

/* The stored form of an aggregation's query; an error if above KS_MAX_QUERY_TREE. */
extern char *KsCheckedQueryTree(Query *query, const char *name);

#endif							/* KS_DEFINITION_H */
