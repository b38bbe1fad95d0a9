/*-------------------------------------------------------------------------
 *
 * keyshape.c
 *	  The attributes of the composite types in a key table's keys, checked
 *	  while it runs.  See keytable.h.
 *
 * A composite value's hash covers every attribute of its type's current
 * row type (hash_record), so a key table's entries are only found again
 * while those row types keep the attributes they had when it was made.
 * The commands that would change them are refused (keytypes.c), and a type
 * in a key cannot come to depend on a temporary object (tempdeps.c), whose
 * loss at the end of a session would drop an attribute without any
 * command.  This is the net under those guards: a table records the row
 * types nested in its key types when it is made, and the worker checks
 * them before it publishes what a step consumed, so that a change no guard
 * saw stops the aggregation loudly instead of counting its keys twice.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "keytable.h"

/* A row type nested in a key: its attributes' types, InvalidOid if dropped. */
typedef struct KsKeyShape
{
	Oid			typid;
	int			natts;
	Oid		   *atttypids;
} KsKeyShape;

/* The attribute types of a row type's descriptor (InvalidOid: dropped), in cxt. */
static Oid *
KsShapeOf(TupleDesc desc, MemoryContext cxt)
{
	Oid		   *atttypids = MemoryContextAlloc(cxt, sizeof(Oid) * Max(desc->natts, 1));

	for (int i = 0; i < desc->natts; i++)
		atttypids[i] = TupleDescAttr(desc, i)->attisdropped ? InvalidOid :
			TupleDescAttr(desc, i)->atttypid;
	return atttypids;
}

/* Record the row types nested in type t, to any depth, each once. */
static void
KsCollectShapes(Oid t, List **shapes, List **walked, MemoryContext cxt)
{
	Oid			elem;

	if (!OidIsValid(t) || list_member_oid(*walked, t))
		return;
	*walked = lappend_oid(*walked, t);
	check_stack_depth();
	if (getBaseType(t) != t)
		KsCollectShapes(getBaseType(t), shapes, walked, cxt);
	else if (OidIsValid(elem = get_element_type(t)))
		KsCollectShapes(elem, shapes, walked, cxt);
	else if (type_is_range(t))
		KsCollectShapes(get_range_subtype(t), shapes, walked, cxt);
	else if (type_is_multirange(t))
		KsCollectShapes(get_multirange_range(t), shapes, walked, cxt);
	else if (OidIsValid(typeidTypeRelid(t)))
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(t, -1);
		KsKeyShape *shape = MemoryContextAlloc(cxt, sizeof(KsKeyShape));
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		shape->typid = t;
		shape->natts = desc->natts;
		shape->atttypids = KsShapeOf(desc, cxt);
		*shapes = lappend(*shapes, shape);
		MemoryContextSwitchTo(oldcxt);
		for (int i = 0; i < shape->natts; i++)
			KsCollectShapes(shape->atttypids[i], shapes, walked, cxt);
		ReleaseTupleDesc(desc);
	}
}

/* The row types nested in a key table's key types, as they are now (see keytable.h). */
List *
KsKeyShapesCapture(int nkeys, const Oid *keytypes, MemoryContext cxt)
{
	List	   *shapes = NIL;
	List	   *walked = NIL;

	for (int i = 0; i < nkeys; i++)
		KsCollectShapes(keytypes[i], &shapes, &walked, cxt);
	list_free(walked);
	return shapes;
}

/* Fail if a row type in the table's keys has other attributes now (see keytable.h). */
void
KsKeyTableCheckShapes(KsKeyTable *kt, const char *aggname)
{
	ListCell   *lc;

	foreach(lc, kt->shapes)
	{
		KsKeyShape *shape = lfirst(lc);
		TupleDesc	desc = lookup_rowtype_tupdesc_noerror(shape->typid, -1, true);
		bool		same = desc != NULL && desc->natts == shape->natts;

		for (int i = 0; same && i < shape->natts; i++)
			same = shape->atttypids[i] == (TupleDescAttr(desc, i)->attisdropped ? InvalidOid :
										   TupleDescAttr(desc, i)->atttypid);
		if (desc != NULL)
			ReleaseTupleDesc(desc);
		if (!same)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the attributes of type %s in the keys of aggregation %s have changed",
							desc != NULL ? format_type_be(shape->typid) : psprintf("%u", shape->typid),
							aggname),
					 errdetail("A composite value's hash covers every attribute, so the keys already aggregated would no longer be found; the aggregation stops rather than count a key twice."),
					 errhint("Call keyedstate.rebuild() to consume the source again with the type as it is now.")));
	}
}
