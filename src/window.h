/*-------------------------------------------------------------------------
 *
 * window.h
 *	  Tumbling and sliding time windows (Flink's TUMBLE and HOP).
 *
 * An aggregation created with window_size, window_slide (default: the
 * size) and time_column groups each row into every window
 *	[window_start, window_start + window_size)
 * that contains its time, the starts being multiples of window_slide from
 * the Unix epoch (as date_bin(window_slide, time, '1970-01-01') counts).
 * The view gets two leading columns, window_start and window_end, and
 * holds one row per window and key.  Rows whose time is NULL belong to no
 * window, nor do those with a window that is not a valid time (starting
 * before 4714-11-24 BC, or ending at 294277-01-01 or later), or whose time
 * date_bin() cannot count in microseconds from the epoch (from
 * 294247-01-10 04:00:54.775808 on), nor, in a sliding window, those with an
 * infinite time (a tumbling one keeps them in an infinite window, as
 * date_bin() does): they would fail the aggregation on a writer's row.
 *
 * At creation the analysed query is rewritten (before it is stored, so the
 * worker and a restore run exactly what was analysed; windowquery.c):
 *	SELECT date_bin(slide, t, epoch) AS window_start,
 *	       date_bin(slide, t, epoch) + size AS window_end, <the columns>
 *	  FROM ... WHERE (<the WHERE>) AND t IS NOT NULL AND <t has windows>
 *	 GROUP BY date_bin(slide, t, epoch), <the keys>
 * So the worker's keys are panes: a key with the start of the slide-long
 * pane each row falls into, and every row is applied once, to its pane.
 * For a tumbling window (size = slide) a pane is a window and nothing more
 * is needed.  For a sliding window, publishing (window.c) finds the
 * windows of every changed pane (size / slide of them), merges the panes
 * of each such window with the aggregates' combine functions (as a
 * parallel aggregate's finalize phase does) and publishes its row; the
 * windows are kept in a second key table that holds no states, only
 * their published rows.  Aggregates without a combine function are
 * refused for sliding windows.  Checkpoints hold the panes only: recovery
 * publishes every window again from them.
 *
 * With a TTL, time is event time (Flink's event-time TTL for windows): the
 * watermark is the newest time of a row applied so far, in offset order.
 * A window whose end is at or before watermark - ttl is removed, a pane
 * once its last window is (pane start + size at or before it), and a row
 * all of whose windows are removed already is late: it is dropped and
 * counted (keyedstate.status.rows_late).  Offsets order the rows, so what
 * is dropped is the same on every replay; the watermark is recovered
 * exactly as the newest time kept by a pane (each key keeps the newest
 * time of its rows).
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_WINDOW_H
#define KS_WINDOW_H

#include "apply.h"
#include "run.h"

#include "datatype/timestamp.h"

/* The window arguments of create_aggregation, checked. */
typedef struct KsWindowSpec
{
	int64		size_us;
	int64		slide_us;
	char	   *time_column;
} KsWindowSpec;

/*
 * The window of create_aggregation(window_size, window_slide, time_column),
 * or NULL when window_size is NULL; errors for arguments that make none.
 */
extern KsWindowSpec *KsWindowArguments(Interval *size, Interval *slide, const char *time_column);

/* Rewrite a parsed aggregation query for its window (see above). */
extern void KsWindowRewrite(Query *query, const KsWindowSpec *spec);

/* Refuse aggregates a sliding window cannot merge (no combine function). */
extern void KsWindowCheckAggregates(List *aggrefs, const KsWindowSpec *spec);

/* The number of the source column whose time a stored windowed query reads. */
extern AttrNumber KsWindowTimeColumn(Query *query);

/*
 * Rewrite a stored windowed query (the form KsWindowRewrite gave it) for
 * the window spec instead: an error if the time column's type is not the
 * one of the old window's (the view's columns would change), or if a
 * sliding window's aggregates cannot merge.  (alter_aggregation(): the
 * query is the one analysed at creation, not analysed again.)
 */
extern void KsWindowChange(Query *query, const KsWindowSpec *spec);

/* Whether a run's aggregation has sliding windows (panes merged on publish). */
static inline bool
KsWindowSliding(KsAggRun *run)
{
	return run->def->window_slide_us > 0 && run->def->window_size_us > run->def->window_slide_us;
}

/*
 * Add the row's time to the input row of a windowed aggregation (after its
 * analysis, before the source reader and apply buffer are made): keys then
 * keep the newest time of their rows, and a TTL counts in that time.
 */
extern void KsWindowLayOut(KsQueryInfo *info);

/*
 * After recovery of a windowed aggregation: the watermark (the newest time
 * applied: that of the newest pane, which a TTL never removes), and for
 * sliding windows the window table and combine functions; every window is
 * published again.
 */
extern void KsWindowLoad(KsAggRun *run);

/*
 * The end at or before which a window is past the TTL (event time), or
 * DT_NOBEGIN: watermark - ttl, and the reach of a TTL since lengthened or
 * removed (ttl_floor, recorded by alter_aggregation: a window that had
 * expired stays expired, exactness review 14, finding 2).
 */
static inline TimestampTz
KsWindowExpiredUpTo(KsAggRun *run)
{
	return KsWindowReach(run->def->ttl_floor, run->def->ttl_us, run->watermark);
}

/* Whether a window starting at `start` is past the TTL (event time). */
static inline bool
KsWindowExpired(KsAggRun *run, TimestampTz start)
{
	TimestampTz upto = KsWindowExpiredUpTo(run);

	return upto != DT_NOBEGIN && KsWindowEndsBy(start, run->def->window_size_us, upto);
}

/* The expired panes and windows among entries [from, to) (event-time TTL, expire.c). */
extern void KsWindowExpireRange(KsAggRun *run, KsKeyTable *kt, uint64 from, uint64 to);

/* Publish the windows of the panes changed since the last publish (see publish.h). */
extern void KsWindowPublish(KsAggRun *run, int64 offset);

#endif							/* KS_WINDOW_H */
