/* keyedstate--0.1.sql: install script */

\echo Use "CREATE EXTENSION keyedstate" to load this file. \quit

-- the schemas belong to the extension, so DROP EXTENSION removes them
CREATE SCHEMA keyedstate;
/*
 * keyedstate's own tables and sequences, and the live tables behind the
 * views, are in a schema of their own that no role but the superusers may
 * use (PUBLIC has no USAGE on it): no other role can name them, so none
 * can take or queue a lock on them.  PostgreSQL takes some locks before
 * it checks privileges (CREATE TRIGGER, CREATE RULE, a foreign key's
 * reference, ...): one such request queued behind a lock held in an idle
 * transaction stalled every aggregation's checkpoints (security review
 * 20, F2).  The views read the live tables by OID, which needs no USAGE.
 */
CREATE SCHEMA keyedstate_internal;
REVOKE ALL ON SCHEMA keyedstate_internal FROM PUBLIC;

/*
 * Definitions, one row per aggregation.  Objects are named by regclass,
 * so that pg_dump writes them by name and a restore binds them to the
 * restored objects.  The analysed query is kept as a node tree (like a
 * view's rule: renaming the source table or its columns does not break
 * the aggregation) and, for a restore, as fully qualified text kept
 * current by the event trigger below.  The aggregation's owner is its
 * view's owner.  checkpointed_offset changes only in the same transaction
 * as the last chunk of a checkpoint in keyedstate_internal.state, and checkpoint_id
 * with it: chunks of later checkpoints (written by steps before a crash)
 * do not count.  clean_stop says that the
 * last checkpoint was a worker's final one, at a clean stop: nothing after
 * checkpointed_offset was consumed (the next load clears it).  ttl is the
 * state TTL (NULL: none): a key no row changed for longer goes.
 * window_size, window_slide and time_column define time windows (NULL:
 * none); the stored query is already rewritten for them.  memory_limit is
 * the budget of the state in memory, in bytes (NULL: none but
 * keyedstate.max_state_memory): colder keys are evicted to keyedstate_internal.cold.
 * cold_keys counts the rows of keyedstate_internal.cold as of checkpoint_id.
 * watermark is a windowed aggregation's watermark as of
 * checkpointed_offset (the newest time consumed; a part, which keeps only
 * some keys, recovers it from there, and so do the parts a rescale seeds).
 * parallelism is the number of parts the key groups are split into (see
 * keyedstate_internal.part), max_parallelism the number of key groups (a key's
 * group is its hash modulo it), fixed at creation; layout counts the
 * rescales.  The progress columns above are those of the aggregation run
 * whole, which it is as long as it has no rows in keyedstate_internal.part.
 */
CREATE TABLE keyedstate_internal.aggregation (
	id					int PRIMARY KEY,
	view				pg_catalog.regclass NOT NULL UNIQUE,
	live				pg_catalog.regclass NOT NULL,
	source				pg_catalog.regclass NOT NULL,
	offset_column		name NOT NULL,
	offset_attnum		int2 NOT NULL,
	sequence			pg_catalog.regclass NOT NULL,
	query_text			text NOT NULL,
	definition			text NOT NULL,
	query_tree			text NOT NULL,
	-- the types the query stores: its keys', and its view columns', aggregate
	-- arguments' and states' (what DDL checks read instead of the trees)
	key_types			pg_catalog.regtype[] NOT NULL,
	stored_types		pg_catalog.regtype[] NOT NULL,
	-- the aggregate functions it calls (OIDs, bound again with the tree)
	aggregates			pg_catalog.oid[] NOT NULL,
	-- the cluster whose OIDs query_tree holds: another one's (pg_upgrade) is bound again
	system_id			bigint DEFAULT (pg_catalog.pg_control_system()).system_identifier,
	settings			text[] NOT NULL,
	checkpoint_interval	interval NOT NULL,
	paused				bool NOT NULL DEFAULT false,
	rebuilding			bool NOT NULL DEFAULT false,
	resume_count		bigint NOT NULL DEFAULT 0,
	checkpointed_offset	bigint NOT NULL,
	last_checkpoint		timestamptz,
	checkpoint_id		bigint,
	-- chunk rows of the committed checkpoint and the deltas since the latest
	-- full one (NULL: not known); recovery finds exactly these
	checkpoint_chunks	int,
	clean_stop			bool NOT NULL DEFAULT false,
	ttl					interval,
	window_size			interval,
	window_slide		interval,
	time_column			name,
	memory_limit		bigint,
	cold_keys			bigint NOT NULL DEFAULT 0,
	created				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	parallelism			int NOT NULL DEFAULT 1,
	max_parallelism		int NOT NULL DEFAULT 128,
	layout				int NOT NULL DEFAULT 0,
	watermark			timestamptz,
	-- restored paused: the offset its view showed when dumped, consumed up to again
	pause_at			bigint,
	-- keys last changed before this had outlived a TTL since lengthened or
	-- removed: they stay expired (processing time; for windows, event time:
	-- windows ending at or before it stay expired; NULL: none)
	ttl_floor			timestamptz,
	-- the highest value its checkpoints saw the sequence hand out (NULL: none):
	-- a sequence below it went backwards.  Rows of the table above the
	-- sequence are no such evidence: a writer may give any offset.
	sequence_seen		bigint,
	-- secret (only superusers read this table): seeds where a key goes in the
	-- worker's key table and its cold row's place (src/cold.h), so that no
	-- writer can choose many keys of one place; 64 random bits
	key_seed			bigint NOT NULL DEFAULT
		('x' || pg_catalog.left(pg_catalog.gen_random_uuid()::text, 8)
			|| pg_catalog.left(pg_catalog.gen_random_uuid()::text, 8))::bit(64)::bigint,
	-- what its cold rows' places were computed with besides the seed, as of
	-- its committed checkpoint (NULL: not known): a load under another one
	-- computes them again (src/cold.h)
	place_scheme		bigint
);
-- ids cycle (calls rolled back or failing take ids too): one in use is skipped
CREATE SEQUENCE keyedstate_internal.aggregation_id_seq AS int MAXVALUE 999999999 CYCLE
	OWNED BY keyedstate_internal.aggregation.id;

/*
 * The parts of an aggregation that runs in parallel (or was rescaled):
 * each consumes every row of the source but keeps only the keys of its
 * range of key groups, with its own consumed offset and checkpoints
 * (stored in keyedstate_internal.state under the part's id, drawn from the same
 * sequence as aggregations' ids), and runs in a worker of the pool.  The
 * progress columns mean what they mean in keyedstate_internal.aggregation.
 *
 * A rescale retires the running parts (or the aggregation run whole) and
 * adds parts of the next layout, each seeded from the retired ones
 * (seed_from): a new part loads the keys of its key groups from their
 * checkpoints, and consumes each group's rows after the offset of the
 * part it comes from; its first checkpoint is full and clears seed_from.
 * Retired parts nobody seeds from any more go, with their checkpoints.
 */
CREATE TABLE keyedstate_internal.part (
	id					int PRIMARY KEY CHECK (id >= 1000000000),
	-- deferred: a restore adds an aggregation's parts before its row (restore.c)
	aggregation_id		int NOT NULL REFERENCES keyedstate_internal.aggregation (id) ON DELETE CASCADE
						DEFERRABLE INITIALLY DEFERRED,
	layout				int NOT NULL,
	part				int NOT NULL,
	first_key_group		int NOT NULL,
	last_key_group		int NOT NULL,
	retired				bool NOT NULL DEFAULT false,
	seed_from			int[],
	checkpointed_offset	bigint NOT NULL,
	last_checkpoint		timestamptz,
	checkpoint_id		bigint,
	-- chunk rows of the committed checkpoint and the deltas since the latest
	-- full one (NULL: not known); recovery finds exactly these
	checkpoint_chunks	int,
	clean_stop			bool NOT NULL DEFAULT false,
	cold_keys			bigint NOT NULL DEFAULT 0,
	watermark			timestamptz,
	sequence_seen		bigint,
	place_scheme		bigint
);
CREATE INDEX ON keyedstate_internal.part (aggregation_id);

/*
 * Checkpointed keyed state, written incrementally.  Each checkpoint adds
 * rows holding the keys that changed since the previous one (or, for a
 * full checkpoint, every key); a row is a chunk of serialized keys and
 * their transition states, in key-group order, with the range of key
 * groups (hash of the key modulo the maximum parallelism) it covers, so
 * that state can later be split between parallel workers.  Recovery reads
 * the rows newest first and keeps the first version of each key it meets.
 * A full checkpoint deletes the rows before it in the same transaction,
 * which bounds what recovery reads to about twice the live state.
 */
CREATE TABLE keyedstate_internal.state (
	aggregation_id		int NOT NULL,
	checkpoint_id		bigint NOT NULL,
	chunk				int NOT NULL,
	is_full				bool NOT NULL,
	first_key_group		int2 NOT NULL,
	last_key_group		int2 NOT NULL,
	nkeys				int NOT NULL,
	data				bytea NOT NULL,
	PRIMARY KEY (aggregation_id, checkpoint_id, chunk)
);
/*
 * Chunks are megabytes of serialized keys and states, which compress about
 * four times with lz4, fast enough to cut a checkpoint's WAL and time.
 * Without lz4 in the server, store them out of line uncompressed: pglz
 * would cost more time than the bytes it saves.
 */
DO $$
BEGIN
	ALTER TABLE keyedstate_internal.state ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	ALTER TABLE keyedstate_internal.state ALTER COLUMN data SET STORAGE EXTERNAL;
END;
$$;

/*
 * Keys a memory budget evicted (src/cold.h): one row per key, found by its
 * hash through the primary key, so that a point query finds it without a
 * scan, and by its hash and place (a hash of the key seeded with the
 * aggregation's secret key_seed) when it comes back: keys a writer chose of
 * one hash have places apart.  id is the key's checkpoint id shifted left by
 * 24 bits plus a number within that checkpoint; rows of a checkpoint that
 * never committed are deleted by the recovery that follows.  A key that
 * came back and changed has its row rewritten in place: a fifth of each
 * page is left free for those updates to stay on the page (HOT).
 */
CREATE TABLE keyedstate_internal.cold (
	aggregation_id		int NOT NULL,
	hash				int NOT NULL,
	place				int NOT NULL,
	id					bigint NOT NULL,
	data				bytea NOT NULL,
	PRIMARY KEY (aggregation_id, hash, place, id)
) WITH (fillfactor = 80);

/*
 * pg_dump writes the definitions (and the id sequence) after CREATE
 * EXTENSION; the trigger below binds each restored row to the restored
 * objects, and the aggregation rebuilds its state from its restored source
 * (the checkpointed state is not dumped: it names types and objects by
 * OIDs of this database).
 */
SELECT pg_catalog.pg_extension_config_dump('keyedstate_internal.aggregation', '');
SELECT pg_catalog.pg_extension_config_dump('keyedstate_internal.aggregation_id_seq', '');

/*
 * Parts take ids of their own range, from a sequence that is not dumped:
 * a restore creates the parts of parallel aggregations while it copies
 * keyedstate_internal.aggregation, before the dump's setval of aggregation_id_seq,
 * so ids from that sequence collided with restored aggregations' ids (and
 * a part's checkpoints were deleted as its aggregation's own).
 */
CREATE SEQUENCE keyedstate_internal.part_id_seq AS int MINVALUE 1000000000 START 1000000000 CYCLE
	OWNED BY keyedstate_internal.part.id;
ALTER TABLE keyedstate_internal.aggregation ADD CHECK (id < 1000000000);

REVOKE ALL ON keyedstate_internal.aggregation, keyedstate_internal.part, keyedstate_internal.state, keyedstate_internal.cold,
	keyedstate_internal.aggregation_id_seq, keyedstate_internal.part_id_seq FROM PUBLIC;
GRANT USAGE ON SCHEMA keyedstate TO PUBLIC;

/* The foreign data wrapper behind every live view. */
CREATE FUNCTION keyedstate.fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'keyedstate_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION keyedstate.fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER keyedstate_fdw
	HANDLER keyedstate.fdw_handler
	VALIDATOR keyedstate.fdw_validator;
REVOKE ALL ON FUNCTION keyedstate.fdw_handler(), keyedstate.fdw_validator(text[], oid) FROM PUBLIC;

CREATE SERVER keyedstate_server FOREIGN DATA WRAPPER keyedstate_fdw;

/* Defining and controlling aggregations */
CREATE FUNCTION keyedstate.create_aggregation(
	name text,
	query text,
	start_from text DEFAULT 'beginning',
	offset_column name DEFAULT NULL,
	checkpoint_interval interval DEFAULT '1s',
	ttl interval DEFAULT NULL,
	window_size interval DEFAULT NULL,
	window_slide interval DEFAULT NULL,
	time_column name DEFAULT NULL,
	memory_limit text DEFAULT NULL,
	parallelism int DEFAULT 1,
	max_parallelism int DEFAULT 128)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_create_aggregation'
LANGUAGE C;

/*
 * Change what can change while an aggregation runs.  A NULL argument
 * leaves its setting as it is; ttl => '0' removes the TTL, memory_limit =>
 * '0' the budget; parallelism rescales it; window_size, window_slide and
 * time_column change a window (its state is rebuilt from the table).
 */
CREATE FUNCTION keyedstate.alter_aggregation(
	name text,
	ttl interval DEFAULT NULL,
	checkpoint_interval interval DEFAULT NULL,
	memory_limit text DEFAULT NULL,
	parallelism int DEFAULT NULL,
	window_size interval DEFAULT NULL,
	window_slide interval DEFAULT NULL,
	time_column name DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_alter_aggregation'
LANGUAGE C;

CREATE FUNCTION keyedstate.drop_aggregation(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_drop_aggregation'
LANGUAGE C STRICT;

CREATE FUNCTION keyedstate.sync(name text, timeout interval DEFAULT '1 min')
RETURNS bigint
AS 'MODULE_PATHNAME', 'keyedstate_sync'
LANGUAGE C;

CREATE FUNCTION keyedstate.pause(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_pause'
LANGUAGE C STRICT;

CREATE FUNCTION keyedstate.resume(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_resume'
LANGUAGE C STRICT;

CREATE FUNCTION keyedstate.rebuild(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_rebuild'
LANGUAGE C STRICT;

CREATE FUNCTION keyedstate.checkpoint(name text, timeout interval DEFAULT '1 min')
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_checkpoint'
LANGUAGE C;

/*
 * Why the aggregations of this database that no worker has taken up yet
 * wait: the launcher found no background worker slot for its first
 * worker (max_worker_processes); NULL otherwise.
 */
CREATE FUNCTION keyedstate.worker_missing()
RETURNS text
AS 'MODULE_PATHNAME', 'keyedstate_worker_missing'
LANGUAGE C STABLE;

/*
 * Why an aggregation, or a part of it, that has no slot in shared memory
 * waits for one: every slot is in use (keyedstate.max_aggregations lowered,
 * a database copied with CREATE DATABASE ... TEMPLATE); NULL otherwise.
 */
CREATE FUNCTION keyedstate.slot_missing()
RETURNS text
AS 'MODULE_PATHNAME', 'keyedstate_slot_missing'
LANGUAGE C STABLE;

/*
 * The query of an aggregation, deparsed from its stored tree; NULL unless
 * the caller is a member of the owning role.
 */
CREATE FUNCTION keyedstate.query_definition(aggregation_id int)
RETURNS text
AS 'MODULE_PATHNAME', 'keyedstate_query_definition'
LANGUAGE C STRICT STABLE;

/*
 * Progress of the aggregations of this database, from shared memory; the
 * error and failing offset only for members of the owning role.
 */
CREATE FUNCTION keyedstate.worker_status(
	OUT aggregation_id int,
	OUT state text,
	OUT consumed_offset bigint,
	OUT checkpointed_offset bigint,
	OUT high_water bigint,
	OUT failed_offset bigint,
	OUT waiting_pid int,
	OUT keys bigint,
	OUT visible_keys bigint,
	OUT memory_bytes bigint,
	OUT shared_bytes bigint,
	OUT rows_consumed bigint,
	OUT rows_replayed bigint,
	OUT rows_per_second float8,
	OUT last_checkpoint timestamptz,
	OUT error text,
	OUT checkpoint_ms float8,
	OUT checkpoint_keys bigint,
	OUT checkpoint_bytes bigint,
	OUT keys_expired bigint,
	OUT rows_late bigint,
	OUT keys_cold bigint,
	OUT evictions bigint,
	OUT reloads bigint,
	OUT memory_limit bigint,
	OUT worker int,
	OUT worker_pid int,
	OUT part_id int,
	OUT part int,
	OUT layout int,
	OUT first_key_group int,
	OUT last_key_group int,
	OUT row_errors bigint,
	OUT checkpoint_pause_ms float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'keyedstate_worker_status'
LANGUAGE C STRICT VOLATILE;

/* Wakes the database worker when rows commit into a source table. */
CREATE FUNCTION keyedstate.wake()
RETURNS trigger
AS 'MODULE_PATHNAME', 'keyedstate_wake'
LANGUAGE C;
REVOKE ALL ON FUNCTION keyedstate.wake() FROM PUBLIC;

/*
 * Source tables are append-only for their aggregations.  A trigger whose
 * aggregation is gone (dropped by another role than the table's owner: a
 * worker removes it later) refuses nothing.
 */
CREATE FUNCTION keyedstate.refuse_truncate()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM keyedstate_internal.aggregation a WHERE a.source OPERATOR(pg_catalog.=) TG_RELID) THEN
		RETURN NULL;
	END IF;
	RAISE EXCEPTION 'cannot truncate table "%" because keyedstate aggregations consume it',
		TG_TABLE_NAME
		USING ERRCODE = 'object_in_use',
			  DETAIL = 'Truncating would silently leave the aggregations'' state without its input rows.',
			  HINT = 'Drop the aggregations with keyedstate.drop_aggregation() first.';
END;
$$;
REVOKE ALL ON FUNCTION keyedstate.refuse_truncate() FROM PUBLIC;

/* Called by the sql_drop event trigger for a dropped live view. */
CREATE FUNCTION keyedstate.forget_aggregation(aggregation_id int)
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_forget_aggregation'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION keyedstate.forget_aggregation(int) FROM PUBLIC;

/*
 * When a live view goes away with DROP VIEW, or with DROP TABLE ... CASCADE
 * of its source, forget the aggregation too.
 */
CREATE FUNCTION keyedstate.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r pg_catalog.record;
BEGIN
	FOR r IN
		SELECT a.id
		  FROM pg_catalog.pg_event_trigger_dropped_objects() d
		  JOIN keyedstate_internal.aggregation a ON a.view::pg_catalog.oid = d.objid
		 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND d.objsubid = 0
	LOOP
		PERFORM keyedstate.forget_aggregation(r.id);
	END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION keyedstate.on_sql_drop() FROM PUBLIC;

CREATE EVENT TRIGGER keyedstate_sql_drop ON sql_drop
	EXECUTE FUNCTION keyedstate.on_sql_drop();

/* Binds a definition that a restore inserts (see restore.c). */
CREATE FUNCTION keyedstate.restore_definition()
RETURNS trigger
AS 'MODULE_PATHNAME', 'keyedstate_restore_definition'
LANGUAGE C;
REVOKE ALL ON FUNCTION keyedstate.restore_definition() FROM PUBLIC;

CREATE TRIGGER restore_definition BEFORE INSERT ON keyedstate_internal.aggregation
	FOR EACH ROW EXECUTE FUNCTION keyedstate.restore_definition();

/*
 * Keeps the definition text a dump writes current when something it names
 * is renamed or moved.
 */
CREATE FUNCTION keyedstate.refresh_definitions()
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_refresh_definitions'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION keyedstate.refresh_definitions() FROM PUBLIC;

/*
 * Binds the rows a data-only restore loaded with the triggers of
 * keyedstate_internal.aggregation disabled (pg_restore --disable-triggers), at the
 * end of the ALTER TABLE that enables them again (see restore.c).
 */
CREATE FUNCTION keyedstate.bind_restored()
RETURNS void
AS 'MODULE_PATHNAME', 'keyedstate_bind_restored'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION keyedstate.bind_restored() FROM PUBLIC;

CREATE FUNCTION keyedstate.on_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM keyedstate_internal.aggregation) THEN
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() c
				   WHERE c.objid OPERATOR(pg_catalog.=) 'keyedstate_internal.aggregation'::pg_catalog.regclass) THEN
			PERFORM keyedstate.bind_restored();
		END IF;
		PERFORM keyedstate.refresh_definitions();
	END IF;
END;
$$;
REVOKE ALL ON FUNCTION keyedstate.on_ddl_end() FROM PUBLIC;

CREATE EVENT TRIGGER keyedstate_ddl_end ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER AGGREGATE',
				 'ALTER SCHEMA', 'ALTER TYPE', 'ALTER DOMAIN', 'ALTER OPERATOR',
				 'ALTER COLLATION', 'ALTER SEQUENCE', 'ALTER VIEW', 'ALTER FOREIGN TABLE',
				 'ALTER TEXT SEARCH CONFIGURATION', 'ALTER TEXT SEARCH DICTIONARY',
				 'ALTER CONVERSION', 'ALTER EXTENSION')
	EXECUTE FUNCTION keyedstate.on_ddl_end();

CREATE VIEW keyedstate.aggregations AS
SELECT a.id,
	   a.view::text AS name,
	   a.source AS source_table,
	   keyedstate.query_definition(a.id) AS query,
	   att.attname AS offset_column,
	   c.relowner::pg_catalog.regrole AS owner,
	   a.checkpoint_interval,
	   a.ttl,
	   a.window_size,
	   a.window_slide,
	   a.time_column,
	   -- its budget, a share of the server's: to the view's readers only
	   CASE WHEN pg_catalog.has_table_privilege(a.view, 'SELECT') THEN a.memory_limit END AS memory_limit,
	   a.paused,
	   -- an offset gives the source sequence's value: to the view's readers only
	   CASE WHEN pg_catalog.has_table_privilege(a.view, 'SELECT')
			THEN COALESCE((SELECT pg_catalog.min(p.checkpointed_offset) FROM keyedstate_internal.part p
						   WHERE p.aggregation_id = a.id), a.checkpointed_offset) END AS checkpointed_offset,
	   -- and a checkpoint's time when the source got rows
	   CASE WHEN pg_catalog.has_table_privilege(a.view, 'SELECT')
			THEN COALESCE((SELECT pg_catalog.min(p.last_checkpoint) FROM keyedstate_internal.part p
						   WHERE p.aggregation_id = a.id), a.last_checkpoint) END AS last_checkpoint,
	   a.created,
	   a.parallelism,
	   a.max_parallelism
  FROM keyedstate_internal.aggregation a
  JOIN pg_catalog.pg_class c ON c.oid = a.view::pg_catalog.oid
  LEFT JOIN pg_catalog.pg_attribute att
	ON att.attrelid = a.source::pg_catalog.oid AND att.attnum = a.offset_attnum;

/*
 * One row per aggregation; an aggregation running in parallel sums (or
 * takes the least advanced of) its parts' figures, those of its current
 * layout.
 */
CREATE VIEW keyedstate.status AS
WITH w AS (
	SELECT s.aggregation_id,
		   CASE WHEN pg_catalog.bool_or(s.state = 'failed') THEN 'failed'
				WHEN pg_catalog.bool_or(s.state = 'starting') THEN 'starting'
				WHEN pg_catalog.bool_or(s.state = 'rebuilding') THEN 'rebuilding'
				WHEN pg_catalog.bool_or(s.state = 'waiting') THEN 'waiting'
				WHEN pg_catalog.bool_or(s.state = 'paused') THEN 'paused'
				ELSE pg_catalog.min(s.state) END AS state,
		   pg_catalog.count(*) AS nparts,
		   pg_catalog.min(s.consumed_offset) AS consumed_offset,
		   pg_catalog.min(s.checkpointed_offset) AS checkpointed_offset,
		   pg_catalog.max(s.high_water) AS high_water,
		   pg_catalog.min(s.failed_offset) AS failed_offset,
		   pg_catalog.max(s.waiting_pid) AS waiting_pid,
		   pg_catalog.sum(s.keys)::bigint AS keys,
		   pg_catalog.sum(s.visible_keys)::bigint AS visible_keys,
		   pg_catalog.sum(s.memory_bytes)::bigint AS memory_bytes,
		   pg_catalog.sum(s.shared_bytes)::bigint AS shared_bytes,
		   pg_catalog.sum(s.rows_consumed)::bigint AS rows_consumed,
		   pg_catalog.sum(s.rows_replayed)::bigint AS rows_replayed,
		   pg_catalog.sum(s.rows_per_second) AS rows_per_second,
		   pg_catalog.min(s.last_checkpoint) AS last_checkpoint,
		   pg_catalog.min(s.error) AS error,
		   pg_catalog.max(s.checkpoint_ms) AS checkpoint_ms,
		   pg_catalog.max(s.checkpoint_pause_ms) AS checkpoint_pause_ms,
		   pg_catalog.sum(s.checkpoint_keys)::bigint AS checkpoint_keys,
		   pg_catalog.sum(s.checkpoint_bytes)::bigint AS checkpoint_bytes,
		   pg_catalog.sum(s.keys_expired)::bigint AS keys_expired,
		   pg_catalog.sum(s.rows_late)::bigint AS rows_late,
		   pg_catalog.sum(s.row_errors)::bigint AS row_errors,
		   pg_catalog.sum(s.keys_cold)::bigint AS keys_cold,
		   pg_catalog.sum(s.evictions)::bigint AS evictions,
		   pg_catalog.sum(s.reloads)::bigint AS reloads,
		   pg_catalog.sum(s.memory_limit)::bigint AS memory_limit
	  FROM keyedstate.worker_status() s
	  JOIN keyedstate_internal.aggregation a ON a.id = s.aggregation_id AND a.layout = s.layout
	 GROUP BY s.aggregation_id)
SELECT a.view::text AS name,
	   CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'standby'
			-- a paused aggregation whose load failed: its view says so too
			WHEN w.state = 'failed' THEN 'failed'
			WHEN a.paused THEN 'paused'
			WHEN w.nparts < a.parallelism THEN 'starting'
			ELSE COALESCE(w.state, 'starting') END AS state,
	   w.consumed_offset,
	   -- figures of the data only to the view's readers (worker_status() nulls the rest)
	   -- (without a worker, a standby's say: those of the parts, as in aggregations)
	   CASE WHEN pg_catalog.has_table_privilege(a.view, 'SELECT')
			THEN COALESCE(w.checkpointed_offset,
						  (SELECT pg_catalog.min(p.checkpointed_offset) FROM keyedstate_internal.part p
						   WHERE p.aggregation_id = a.id), a.checkpointed_offset) END AS checkpointed_offset,
	   CASE WHEN w.high_water IS NOT NULL
			THEN GREATEST(w.high_water - COALESCE(w.consumed_offset, a.checkpointed_offset), 0) END AS lag_rows,
	   w.keys + w.keys_cold AS keys,
	   w.keys AS keys_in_memory,
	   w.visible_keys,
	   w.memory_bytes,
	   w.memory_limit,
	   w.shared_bytes,
	   w.evictions,
	   w.reloads,
	   pg_catalog.round(w.rows_per_second::numeric, 1) AS rows_per_second,
	   w.rows_consumed,
	   w.rows_replayed,
	   w.keys_expired,
	   w.rows_late,
	   w.row_errors,
	   CASE WHEN pg_catalog.has_table_privilege(a.view, 'SELECT')
			THEN COALESCE(w.last_checkpoint,
						  (SELECT pg_catalog.min(p.last_checkpoint) FROM keyedstate_internal.part p
						   WHERE p.aggregation_id = a.id), a.last_checkpoint) END AS last_checkpoint,
	   pg_catalog.round(w.checkpoint_ms::numeric, 3) AS last_checkpoint_ms,
	   pg_catalog.round(w.checkpoint_pause_ms::numeric, 3) AS last_checkpoint_pause_ms,
	   w.checkpoint_keys AS last_checkpoint_keys,
	   w.checkpoint_bytes AS last_checkpoint_bytes,
	   -- not taken up by any worker: the database may have none (max_worker_processes)
	   CASE WHEN (w.aggregation_id IS NULL OR w.state = 'starting' OR w.nparts < a.parallelism) AND NOT a.paused
				 AND NOT pg_catalog.pg_is_in_recovery()
			THEN COALESCE(keyedstate.worker_missing(),
						  CASE WHEN w.aggregation_id IS NULL OR w.nparts < a.parallelism
							   THEN keyedstate.slot_missing() END,
						  w.error)
			ELSE w.error END AS error,
	   w.failed_offset,
	   NULLIF(w.waiting_pid, 0) AS waiting_pid,
	   a.parallelism
  FROM keyedstate_internal.aggregation a
  LEFT JOIN w ON w.aggregation_id = a.id;

/*
 * The database's workers and what each runs: one row per part of an
 * aggregation (its range of key groups; an aggregation not running in
 * parallel is one part of every key group).  worker is the worker's
 * number in the database's pool; pid is null while the part waits for
 * its worker (starting, or being handed over).
 */
CREATE VIEW keyedstate.workers AS
SELECT w.worker,
	   w.worker_pid AS pid,
	   a.view::text AS aggregation,
	   w.part,
	   w.first_key_group,
	   w.last_key_group,
	   CASE WHEN a.paused THEN 'paused' ELSE w.state END AS state,
	   w.consumed_offset,
	   pg_catalog.round(w.rows_per_second::numeric, 1) AS rows_per_second,
	   w.keys,
	   w.keys_cold,
	   w.memory_bytes,
	   w.memory_limit
  FROM keyedstate_internal.aggregation a
  JOIN keyedstate.worker_status() w ON w.aggregation_id = a.id AND w.layout = a.layout;

GRANT SELECT ON keyedstate.aggregations, keyedstate.status, keyedstate.workers TO PUBLIC;

/*
 * Installed without the preload, nothing runs: said now, not first by a
 * create_aggregation() (user review 50, F7).
 */
DO LANGUAGE plpgsql $$
BEGIN
	PERFORM keyedstate.worker_status();
EXCEPTION WHEN object_not_in_prerequisite_state THEN
	RAISE WARNING 'keyedstate is not loaded'
		USING DETAIL = 'Its workers and shared memory exist only when the library is preloaded: until then aggregations cannot be created or read.',
			  HINT = 'Add keyedstate to shared_preload_libraries in postgresql.conf and restart the server.';
END
$$;
