/*-------------------------------------------------------------------------
 *
 * keytypes.c
 *	  Types used in aggregations' keys that a command would change.  See
 *	  keytypes.h.
 *
 * A composite value's hash covers every attribute of its type's current
 * row type (hash_record), so ALTER TYPE ... ADD or DROP ATTRIBUTE changes
 * the hash of every value already aggregated: new rows of a key would miss
 * its entry and start a second one, and checkpointed keys (stored with
 * their key group and hash) would no longer be found or would look
 * corrupted.  So a command that changes the attributes of a composite type
 * (or of a table's row type) is refused while an aggregation of the
 * database has that type in a key, directly or inside an array, a range, a
 * domain or another composite.  The same holds for a composite the query
 * only reads (a row compared, tested for NULL, hashed or passed whole to a
 * function, in a WHERE, a FILTER, a key's expression or an aggregate's
 * state): the rows consumed were computed with the attributes as they
 * were, the plain query computes them with the new ones (exactness review
 * 35, F1), so its attributes cannot change either while it is read.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_depend.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "parser/parse_agg.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "catalog.h"
#include "keytypes.h"

/*
 * Whether type t is one of `targets` or holds one, nested to any depth
 * (types already walked, which hold none, are in *walked: each is walked
 * once, however often it is nested).
 */
static bool
KsTypeHolds(Oid t, List *targets, List **walked)
{
	Oid			elem;
	Oid			relid;
	bool		holds = false;

	if (!OidIsValid(t))
		return false;
	if (list_member_oid(targets, t))
		return true;
	if (list_member_oid(*walked, t))
		return false;
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (getBaseType(t) != t)
		holds = KsTypeHolds(getBaseType(t), targets, walked);
	else if (OidIsValid(elem = get_element_type(t)))
		holds = KsTypeHolds(elem, targets, walked);
	else if (type_is_range(t))
		holds = KsTypeHolds(get_range_subtype(t), targets, walked);
	else if (type_is_multirange(t))
		holds = KsTypeHolds(get_multirange_range(t), targets, walked);
	else if (OidIsValid(relid = typeidTypeRelid(t)))
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(t, -1);
		int			i;

		for (i = 0; i < desc->natts && !holds; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				holds = KsTypeHolds(TupleDescAttr(desc, i)->atttypid, targets, walked);
		ReleaseTupleDesc(desc);
	}
	if (!holds)
		*walked = lappend_oid(*walked, t);
	return holds;
}

/* The transition type an aggregate call has now (resolved if polymorphic), or InvalidOid. */
static Oid
KsAggrefTransType(Aggref *aggref)
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	Oid			transtype;
	Oid			inputs[FUNC_MAX_ARGS];
	int			n = 0;
	ListCell   *lc;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	transtype = ((Form_pg_aggregate) GETSTRUCT(tup))->aggtranstype;
	ReleaseSysCache(tup);
	foreach(lc, aggref->aggargtypes)
		if (n < FUNC_MAX_ARGS)
			inputs[n++] = lfirst_oid(lc);
	return resolve_aggregate_transtype(aggref->aggfnoid, transtype, inputs, n);
}

/* Collect the Aggrefs of an expression (see keytypes.h; none nest: GROUP BY forbids it). */
bool
KsCollectAggrefs(Node *node, List **aggrefs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		*aggrefs = lappend(*aggrefs, node);
		return false;
	}
	return expression_tree_walker(node, KsCollectAggrefs, aggrefs);
}

/* Whether type t is a composite or holds one (in an array, a range or a domain). */
static bool
KsHoldsComposite(Oid t)
{
	Oid			elem;

	check_stack_depth();
	t = getBaseType(t);
	if (type_is_rowtype(t))
		return true;
	if (OidIsValid(elem = get_element_type(t)))
		return KsHoldsComposite(elem);
	if (type_is_range(t))
		return KsHoldsComposite(get_range_subtype(t));
	if (type_is_multirange(t))
		return KsHoldsComposite(get_multirange_range(t));
	return false;
}

/*
 * Collect the types holding a composite of every expression of a query
 * (the value of each node that yields one: a column, a constant, a
 * function's or an operator's result, a row built, a field selected ...).
 */
static bool
KsCollectReadTypes(Node *node, List **types)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, KsCollectReadTypes, types, 0);
	if (IsA(node, Var) || IsA(node, Const) || IsA(node, Param) || IsA(node, FuncExpr) ||
		IsA(node, OpExpr) || IsA(node, NullIfExpr) || IsA(node, Aggref) ||
		IsA(node, SubscriptingRef) || IsA(node, FieldSelect) || IsA(node, FieldStore) ||
		IsA(node, RelabelType) || IsA(node, CoerceViaIO) || IsA(node, ArrayCoerceExpr) ||
		IsA(node, ConvertRowtypeExpr) || IsA(node, CaseExpr) || IsA(node, ArrayExpr) ||
		IsA(node, RowExpr) || IsA(node, CoalesceExpr) || IsA(node, MinMaxExpr) ||
		IsA(node, CoerceToDomain))
	{
		Oid			t = exprType(node);

		if (!list_member_oid(*types, t) && KsHoldsComposite(t))
			*types = lappend_oid(*types, t);
	}
	return expression_tree_walker(node, KsCollectReadTypes, types);
}

/* Add t to the OID Datums *types (of *n) unless it is there. */
static void
KsAddStoredType(Datum *types, int *n, Oid t)
{
	for (int i = 0; i < *n; i++)
		if (DatumGetObjectId(types[i]) == t)
			return;
	types[(*n)++] = ObjectIdGetDatum(t);
}

/* The types the query stores and the aggregates it calls (see keytypes.h). */
void
KsStoredTypeArrays(Query *query, Datum *keys, Datum *stored, Datum *aggregates)
{
	List	   *aggrefs = NIL;
	List	   *read = NIL;
	Datum	   *types;
	int			n = 0;
	int			most;
	ListCell   *lc;

	(void) KsCollectAggrefs((Node *) query->targetList, &aggrefs);
	(void) KsCollectAggrefs(query->havingQual, &aggrefs);
	(void) KsCollectReadTypes((Node *) query, &read);
	most = list_length(query->targetList) + list_length(query->groupClause) + list_length(read) + 1;
	foreach(lc, aggrefs)
		most += 1 + list_length(((Aggref *) lfirst(lc))->args);
	types = palloc(sizeof(Datum) * most);

	/* the GROUP BY expressions' types */
	foreach(lc, query->groupClause)
		KsAddStoredType(types, &n, exprType((Node *) get_sortgroupclause_tle(lfirst(lc), query->targetList)->expr));
	*keys = PointerGetDatum(construct_array(types, n, REGTYPEOID, sizeof(Oid), true, TYPALIGN_INT));

	/* the view's columns, the aggregates' arguments (replayed inputs) and states */
	n = 0;
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (!tle->resjunk)
			KsAddStoredType(types, &n, exprType((Node *) tle->expr));
	}
	foreach(lc, aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);
		ListCell   *ac;
		Oid			transtype = KsAggrefTransType(aggref);

		if (OidIsValid(transtype))
			KsAddStoredType(types, &n, transtype);
		foreach(ac, aggref->args)
			KsAddStoredType(types, &n, exprType((Node *) ((TargetEntry *) lfirst(ac))->expr));
	}
	/* ... and the composites it reads anywhere (see the banner) */
	foreach(lc, read)
		KsAddStoredType(types, &n, lfirst_oid(lc));
	*stored = PointerGetDatum(construct_array(types, n, REGTYPEOID, sizeof(Oid), true, TYPALIGN_INT));
	n = 0;
	foreach(lc, aggrefs)
		KsAddStoredType(types, &n, ((Aggref *) lfirst(lc))->aggfnoid);
	*aggregates = PointerGetDatum(construct_array(types, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	pfree(types);
}

/* Why a key's row type cannot change: the errdetail of the refusals below. */
#define KS_KEY_HASH_DETAIL \
	"A composite value's hash covers every attribute, so the keys already aggregated would no longer be found."
/* ... and a row type it reads otherwise */
#define KS_READ_ROW_DETAIL \
	"The rows it has consumed were computed with the attributes as they are now; the same query would compute them otherwise with other attributes."

/* Whether the checks below apply (see keytypes.h). */
bool
KsTypesGuarded(void)
{
	return KsInstalled() && !KsCatalogInserting();
}

/*
 * The aggregation storing one of the types `targets` (see keytypes.h):
 * read from the types recorded with each definition, not from its tree,
 * so that a DDL command costs the same however large others' queries are.
 */
char *
KsAggregationStoring(List *targets, bool keys)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "keyedstate key types",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	KsCatalogAccess acc;
	List	   *all;
	List	   *walked = NIL;	/* types holding none of targets, shared by all */
	ListCell   *lc;
	char	   *found = NULL;

	KsCatalogOpen(&acc);
	all = KsCatalogStored(keys ? KS_KEY_TYPES : KS_STORED_TYPES);
	KsCatalogClose(&acc);
	foreach(lc, all)
	{
		KsStoredOids *st = lfirst(lc);

		/* one whose view the command dropped goes with it */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(st->view_oid)))
			continue;
		for (int i = 0; i < st->noids && found == NULL; i++)
			if (KsTypeHolds(st->oids[i], targets, &walked))
				found = KsAggName(st->view_oid);
		if (found != NULL)
			break;
	}
	MemoryContextSwitchTo(oldcxt);
	if (found != NULL)
		found = pstrdup(found);
	MemoryContextDelete(cxt);
	return found;
}

/*
 * A column added to a view (CREATE OR REPLACE VIEW adds the new query's
 * extra columns with ALTER TABLE): refused where an aggregation groups by
 * the view's row type (see keytypes.h).  Found by the object access hook,
 * so it is the view the command changes, whatever its name meant before.
 */
void
KsNoteAddedColumn(Oid relid)
{
	char	   *aggname;

	if (get_rel_relkind(relid) != RELKIND_VIEW || !KsTypesGuarded())
		return;
	if ((aggname = KsAggregationStoring(list_make1_oid(get_rel_type_id(relid)), true)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot add columns to view \"%s\" because aggregation %s groups by its row type",
						get_rel_name(relid), aggname),
				 errdetail(KS_KEY_HASH_DETAIL),
				 errhint("Drop the aggregation, replace the view, then create the aggregation again.")));
	if ((aggname = KsAggregationStoring(list_make1_oid(get_rel_type_id(relid)), false)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot add columns to view \"%s\" because aggregation %s reads values of its row type",
						get_rel_name(relid), aggname),
				 errdetail(KS_READ_ROW_DETAIL),
				 errhint("Drop the aggregation, replace the view, then create the aggregation again.")));
}

/*
 * The relations (tables, composite types) whose attributes the command
 * running dropped, collected by the object access hook (OAT_DROP of a
 * column) and checked once the command is done (KsDroppedAttributesEnd):
 * by then the aggregations it dropped too are forgotten, and the trees
 * are read once, not once per column or partition.  Valid in the local
 * transaction ks_dropped_lxid only.
 */
static List *ks_dropped = NIL;
static LocalTransactionId ks_dropped_lxid = InvalidLocalTransactionId;
static int	ks_utility_depth = 0;	/* utility commands running (nested) */
static bool ks_committing = false;	/* past XACT_EVENT_PRE_COMMIT */
static bool ks_commit_callback = false; /* KsDroppedCommitCallback registered */

/*
 * The transaction commits: drops from now on (ON COMMIT DROP) belong to no
 * command, though the commit may run inside one (COMMIT in a procedure).
 */
static void
KsDroppedCommitCallback(XactEvent event, void *arg)
{
	ks_committing = (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT);
}

/* Refuse the attributes dropped from the row types of `relids` (see keytypes.h). */
static void
KsCheckDroppedAttributes(List *relids)
{
	List	   *types = NIL;
	ListCell   *lc;
	char	   *aggname;

	foreach(lc, relids)
	{
		/* (a relation the command dropped whole is gone with its type) */
		Oid			typid = get_rel_type_id(lfirst_oid(lc));

		if (OidIsValid(typid))
			types = list_append_unique_oid(types, typid);
	}
	if (types == NIL || !KsTypesGuarded())
		return;
	/* in a key first (its hash), then anywhere else the query reads it */
	for (int keys = 1; keys >= 0; keys--)
		if ((aggname = KsAggregationStoring(types, keys)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 list_length(types) != 1 ?
					 errmsg(keys ? "cannot drop attributes of types aggregation %s groups by" :
							"cannot drop attributes of types aggregation %s reads values of", aggname) :
					 errmsg(keys ? "cannot drop an attribute of type %s because aggregation %s groups by it" :
							"cannot drop an attribute of type %s because aggregation %s reads values of it",
							format_type_be(linitial_oid(types)), aggname),
					 errdetail(keys ? KS_KEY_HASH_DETAIL : KS_READ_ROW_DETAIL),
					 errhint("Drop the aggregation first.")));
}

/*
 * Note a dropped attribute of relid's row type (see keytypes.h); outside
 * any utility command (ON COMMIT DROP), check it at once.  Not while the
 * backend exits (its temporary objects go): an error cannot stop that, and
 * a query depending on a temporary object is refused at creation.
 */
void
KsNoteDroppedAttribute(Oid relid)
{
	MemoryContext oldcxt;

	if (ks_utility_depth == 0 || ks_committing)
	{
		if (!proc_exit_inprogress)
			KsCheckDroppedAttributes(list_make1_oid(relid));
		return;
	}
	if (ks_dropped_lxid != MyProc->lxid)
		ks_dropped = NIL;
	ks_dropped_lxid = MyProc->lxid;
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	ks_dropped = list_append_unique_oid(ks_dropped, relid);
	MemoryContextSwitchTo(oldcxt);
}

/* A utility command starts: the notes so far are the outer command's (see keytypes.h). */
KsDroppedNotes
KsDroppedAttributesBegin(void)
{
	KsDroppedNotes outer;

	outer.lxid = MyProc->lxid;
	outer.relids = ks_dropped_lxid == MyProc->lxid ? ks_dropped : NIL;
	ks_dropped = NIL;
	ks_dropped_lxid = MyProc->lxid;
	ks_utility_depth++;
	if (!ks_commit_callback)
	{
		RegisterXactCallback(KsDroppedCommitCallback, NULL);
		ks_commit_callback = true;
	}
	return outer;
}

/*
 * The command failed: its notes go (a caught error rolled back what it
 * dropped), the outer command's come back, if still in its transaction.
 */
void
KsDroppedAttributesAbort(KsDroppedNotes outer)
{
	ks_utility_depth = Max(ks_utility_depth - 1, 0);
	ks_dropped = outer.lxid == MyProc->lxid ? outer.relids : NIL;
	ks_dropped_lxid = MyProc->lxid;
}

/*
 * The command is done: refuse the attributes it dropped (DROP TYPE ...
 * CASCADE of an attribute's type drops the attribute) from a row type an
 * aggregation still groups by; then the outer command's notes come back.
 */
void
KsDroppedAttributesEnd(KsDroppedNotes outer)
{
	List	   *mine = ks_dropped_lxid == MyProc->lxid ? ks_dropped : NIL;

	KsDroppedAttributesAbort(outer);
	KsCheckDroppedAttributes(mine);
}

/*
 * The row types a command changing the attributes of relid (a table or a
 * composite type) changes: its own, those of the tables under it when the
 * command recurses to them (partitions, inheritance children), and with
 * ALTER TYPE ... CASCADE those of the tables typed by it (and theirs).
 */
static List *
KsChangedRowTypes(Oid relid, bool recurse, bool cascade)
{
	List	   *relids = list_make1_oid(relid);
	List	   *types = NIL;
	ListCell   *lc;

	/* (without CASCADE, PostgreSQL refuses to change a type tables are typed by) */
	if (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE && cascade)
	{
		Relation	classrel = table_open(RelationRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		/* the typed tables, as PostgreSQL finds them (no index on reloftype) */
		ScanKeyInit(&key, Anum_pg_class_reloftype, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(get_rel_type_id(relid)));
		scan = systable_beginscan(classrel, InvalidOid, false, NULL, 1, &key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
			relids = lappend_oid(relids, ((Form_pg_class) GETSTRUCT(tup))->oid);
		systable_endscan(scan);
		table_close(classrel, AccessShareLock);
		recurse = true;
	}
	foreach(lc, relids)
	{
		List	   *tree = recurse ? find_all_inheritors(lfirst_oid(lc), NoLock, NULL) :
			list_make1_oid(lfirst_oid(lc));
		ListCell   *tc;

		foreach(tc, tree)
		{
			Oid			rowtype = get_rel_type_id(lfirst_oid(tc));

			if (OidIsValid(rowtype))
				types = list_append_unique_oid(types, rowtype);
		}
	}
	return types;
}

/*
 * The relation a command names, locked as the command will lock it (see
 * keytypes.h): looked up again once locked, until the name still gives it.
 */
Oid
KsLockNamedRelation(RangeVar *rv, LOCKMODE lockmode)
{
	Oid			relid = InvalidOid;

	for (;;)
	{
		Oid			found = RangeVarGetRelid(rv, NoLock, true);

		if (found == relid)
			return relid;
		if (OidIsValid(relid))
			UnlockRelationOid(relid, lockmode);
		relid = found;
		/* one who may not change it meets PostgreSQL's own error, and learns nothing */
		if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
			return InvalidOid;
		/* (taking the lock accepts the invalidations of a rename committed meanwhile) */
		LockRelationOid(relid, lockmode);
	}
}

/* Refuse changing the attributes of a type an aggregation's key holds (see keytypes.h). */
void
KsBeforeAlterType(AlterTableStmt *stmt)
{
	ListCell   *lc;
	Oid			relid;
	Oid			typid;
	List	   *types;
	char	   *aggname;
	bool		layout = false; /* an attribute's type changes */
	bool		attributes = false; /* ... or attributes come or go */
	bool		cascade = false;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		cascade |= cmd->behavior == DROP_CASCADE;
		layout |= cmd->subtype == AT_AlterColumnType;
		attributes |= cmd->subtype == AT_AddColumn || cmd->subtype == AT_DropColumn;
	}
	if ((!layout && !attributes) || !KsTypesGuarded())
		return;
	relid = KsLockNamedRelation(stmt->relation, AlterTableGetLockLevel(stmt->cmds));
	if (!OidIsValid(relid))
		return;
	typid = get_rel_type_id(relid);
	if (!OidIsValid(typid))
		return;
	types = KsChangedRowTypes(relid, stmt->relation->inh, cascade);
	if ((aggname = KsAggregationStoring(types, true)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot change the attributes of type %s because aggregation %s groups by it",
						format_type_be(typid), aggname),
				 list_length(types) > 1 ?
				 errdetail("The command changes the row types of the tables under it or typed by it too, and a composite value's hash covers every attribute, so the keys already aggregated would no longer be found.") :
				 errdetail(KS_KEY_HASH_DETAIL),
				 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
	if ((aggname = KsAggregationStoring(types, false)) == NULL)
		return;
	if (!layout)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot change the attributes of type %s because aggregation %s reads values of it",
						format_type_be(typid), aggname),
				 list_length(types) > 1 ?
				 errdetail("The command changes the row types of the tables under it or typed by it too. %s", KS_READ_ROW_DETAIL) :
				 errdetail(KS_READ_ROW_DETAIL),
				 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot change the type of an attribute of type %s because aggregation %s reads or stores values of it",
					format_type_be(typid), aggname),
			 list_length(types) > 1 ?
			 errdetail("The command changes the row types of the tables under it or typed by it too, whose values its checkpoints and published rows hold as they are laid out now: a change would make them unreadable.") :
			 errdetail("Its checkpoints and published rows hold values of the type as it is laid out now, which a change would make unreadable."),
			 errhint("Drop the aggregation, change the type, then create the aggregation again.")));
}
