/*-------------------------------------------------------------------------
 *
 * inputorder.c
 *	  ORDER BY inside an aggregate: accepted by the offset column only.
 *	  Part of the query's analysis; see definition.h.
 *
 * The worker applies every key's rows in offset order (partitions merged
 * by offset, a key's rows in one part, a rescale's states moved whole), so
 * an aggregate whose inputs are ordered by the offset column, ascending,
 * gets them in that order without sorting: users write
 * string_agg(v, ',' ORDER BY id) and the view equals the plain query.  Any
 * other order (another column, an expression, DESC, several sort keys)
 * would need every input of a key sorted again at each change, and is
 * refused.  A sliding window merges its panes in time order, not offset
 * order, so it refuses ordered aggregates (windowquery.c).
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "definition.h"

/* The refusal of an order keyedstate does not keep. */
static void
KsRefuseOrder(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("keyedstate aggregations cannot order an aggregate's inputs except by the offset column"),
			 errdetail("Inputs are aggregated in offset order, so ORDER BY inside an aggregate may name the offset column, ascending, and nothing else."),
			 errhint("Write ORDER BY and the offset column alone, or leave the ORDER BY out.")));
}

/*
 * The column an aggregate call orders its inputs by, or 0 for none; the
 * same for every ordered call of a query (the previous one's is `known`).
 */
AttrNumber
KsAggrefOrderColumn(Aggref *aggref, AttrNumber known)
{
	SortGroupClause *sgc;
	TargetEntry *tle;
	Var		   *var;
	TypeCacheEntry *typentry;

	if (aggref->aggorder == NIL)
		return known;
	if (list_length(aggref->aggorder) != 1)
		KsRefuseOrder();
	sgc = linitial_node(SortGroupClause, aggref->aggorder);
	tle = get_sortgroupclause_tle(sgc, aggref->args);
	if (!IsA(tle->expr, Var))
		KsRefuseOrder();
	var = (Var *) tle->expr;
	if (var->varlevelsup != 0 || var->varattno <= 0)
		KsRefuseOrder();
	/* ascending by the type's own order, as the offset index keeps it */
	typentry = lookup_type_cache(var->vartype, TYPECACHE_LT_OPR);
	if (sgc->sortop != typentry->lt_opr)
		KsRefuseOrder();
	if (known != 0 && known != var->varattno)
		KsRefuseOrder();
	return var->varattno;
}

/* Refuse ORDER BY inside an aggregate by a column other than the offset column. */
void
KsCheckInputOrder(const KsQueryInfo *info, AttrNumber offset_attnum)
{
	if (info->order_attnum != 0 && info->order_attnum != offset_attnum)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("keyedstate aggregations cannot order an aggregate's inputs by column \"%s\"",
						get_attname(info->source_relid, info->order_attnum, false)),
				 errdetail("Inputs are aggregated in the order of the offset column \"%s\", which ORDER BY inside an aggregate may name, and no other.",
						   get_attname(info->source_relid, offset_attnum, false)),
				 errhint("Order by the offset column, or leave the ORDER BY out.")));
}
