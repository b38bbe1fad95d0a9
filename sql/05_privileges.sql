-- Privileges: aggregations run as their owner, never as superuser.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE ROLE regress_ks_alice;
CREATE ROLE regress_ks_bob;
CREATE SCHEMA ks_alice AUTHORIZATION regress_ks_alice;
CREATE TABLE secret (id bigserial PRIMARY KEY, k int, v int);
INSERT INTO secret (k, v) SELECT g % 3, g FROM generate_series(1, 30) g;

-- a transition function that records who runs it
CREATE FUNCTION who_acc(state text, v int) RETURNS text LANGUAGE sql IMMUTABLE
	AS 'SELECT current_user::text';
CREATE AGGREGATE whoami(int) (sfunc = who_acc, stype = text);

-- without SELECT on the table, a role cannot aggregate it
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.stats', 'SELECT k, count(*) AS n, whoami(v) AS who FROM secret GROUP BY k');
RESET ROLE;
-- nor with SELECT on the query's columns but not on the offset column,
-- which the worker reads (and sync and status tell) for her
GRANT SELECT (k, v), TRIGGER ON secret TO regress_ks_alice;
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.stats', 'SELECT k, count(*) AS n, whoami(v) AS who FROM secret GROUP BY k');
RESET ROLE;
REVOKE ALL ON secret FROM regress_ks_alice;
GRANT SELECT ON secret TO regress_ks_alice;
-- nor with SELECT alone: the aggregation puts triggers on the table
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.stats', 'SELECT k, count(*) AS n, whoami(v) AS who FROM secret GROUP BY k');
RESET ROLE;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'secret'::regclass;
GRANT TRIGGER ON secret TO regress_ks_alice;
SET ROLE regress_ks_alice;
-- nor create the view where it may not create objects
SELECT keyedstate.create_aggregation('public.stats', 'SELECT k, count(*) AS n, whoami(v) AS who FROM secret GROUP BY k');
SELECT keyedstate.create_aggregation('ks_alice.stats', 'SELECT k, count(*) AS n, whoami(v) AS who FROM secret GROUP BY k');
SELECT keyedstate.sync('ks_alice.stats');
-- the worker ran the aggregate as its owner
SELECT * FROM ks_alice.stats ORDER BY k;
RESET ROLE;
SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ks_alice.stats'::regclass;

-- others need GRANT to read the view (and to sync it)
SET ROLE regress_ks_bob;
SELECT * FROM ks_alice.stats;
SELECT keyedstate.sync('ks_alice.stats');
-- and another owner's query text is hidden
SELECT name, query IS NULL AS query_hidden, owner FROM keyedstate.aggregations;
RESET ROLE;
GRANT USAGE ON SCHEMA ks_alice TO regress_ks_bob;
SET ROLE regress_ks_alice;
GRANT SELECT ON ks_alice.stats TO regress_ks_bob;
SELECT name, query FROM keyedstate.aggregations;
SET ROLE regress_ks_bob;
SELECT keyedstate.sync('ks_alice.stats');
SELECT k, n FROM ks_alice.stats ORDER BY k;
-- reading is not owning: only the owner may change its settings
SELECT keyedstate.alter_aggregation('ks_alice.stats', ttl => '1 second');
-- only the owner controls it
SELECT keyedstate.pause('ks_alice.stats');
SELECT keyedstate.checkpoint('ks_alice.stats');
SELECT keyedstate.drop_aggregation('ks_alice.stats');
-- the internal tables are not readable, nor the live table without a GRANT on the view
SELECT count(*) FROM keyedstate_internal.state;
SELECT count(*) FROM keyedstate_internal.aggregation;
RESET ROLE;
SET ROLE regress_ks_alice;
REVOKE SELECT ON ks_alice.stats FROM regress_ks_bob;
SET ROLE regress_ks_bob;
SELECT 'keyedstate_internal.live_' || id AS live FROM keyedstate.aggregations WHERE name = 'ks_alice.stats' \gset
\set VERBOSITY terse
SELECT * FROM :live;
\set VERBOSITY default
-- and the live table cannot be re-pointed by its user
SET ROLE regress_ks_alice;
\set VERBOSITY sqlstate
ALTER FOREIGN TABLE :live OPTIONS (SET aggregation_id '1');
\set VERBOSITY default
RESET ROLE;

-- losing SELECT on the source stops the aggregation with a clear error
REVOKE SELECT ON secret FROM regress_ks_alice;
INSERT INTO secret (k, v) VALUES (1, 100);
SELECT keyedstate.sync('ks_alice.stats');
GRANT SELECT ON secret TO regress_ks_alice;
SET ROLE regress_ks_alice;
SELECT keyedstate.resume('ks_alice.stats');
SELECT keyedstate.sync('ks_alice.stats');
SELECT k, n, who FROM ks_alice.stats ORDER BY k;
SELECT keyedstate.drop_aggregation('ks_alice.stats');
RESET ROLE;

-- another role's aggregation over her table does not keep its owner from
-- dropping the offset column's index (a view would not either): that
-- aggregation fails at its next step, naming the missing index
CREATE SCHEMA ks_bob AUTHORIZATION regress_ks_bob;
GRANT USAGE ON SCHEMA ks_bob TO regress_ks_alice;
SET ROLE regress_ks_bob;
CREATE TABLE ks_bob.own (id bigserial PRIMARY KEY, k int);
GRANT SELECT, TRIGGER ON ks_bob.own TO regress_ks_alice;
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.theirs', 'SELECT k, count(*) AS n FROM ks_bob.own GROUP BY k');
ALTER TABLE ks_bob.own DROP CONSTRAINT own_pkey;
-- writing through her view: permission denied for one without the right
SET ROLE regress_ks_bob;
INSERT INTO ks_alice.theirs VALUES (1, 1);
ALTER TABLE ks_bob.own DROP CONSTRAINT own_pkey;
INSERT INTO ks_bob.own (k) VALUES (1);
SET ROLE regress_ks_alice;
SELECT keyedstate.sync('ks_alice.theirs');
SELECT keyedstate.drop_aggregation('ks_alice.theirs');

-- types another role owns, which her aggregation groups by: their owner
-- cannot change their attributes while she does (the stored keys' hashes
-- cover every attribute), directly, through a typed table, or by adding
-- columns to a view; replacing the view with the same columns is allowed
SET ROLE regress_ks_bob;
CREATE TYPE ks_bob.pair AS (a int, b text);
CREATE TYPE ks_bob.base AS (a int);
CREATE TABLE ks_bob.typed OF ks_bob.base;
CREATE VIEW ks_bob.vrow AS SELECT 1 AS a;
CREATE FUNCTION ks_bob.pair_of(int) RETURNS ks_bob.pair LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1, $1::text)::ks_bob.pair';
CREATE FUNCTION ks_bob.typed_of(int) RETURNS ks_bob.typed LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1)::ks_bob.typed';
CREATE FUNCTION ks_bob.vrow_of(int) RETURNS ks_bob.vrow LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1)::ks_bob.vrow';
CREATE TABLE ks_bob.ev (id bigserial PRIMARY KEY, k int);
GRANT SELECT, TRIGGER ON ks_bob.ev TO regress_ks_alice;
INSERT INTO ks_bob.ev (k) SELECT g % 4 FROM generate_series(1, 20) g;
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.by_bob',
	'SELECT ks_bob.pair_of(k) AS p, ks_bob.typed_of(k) AS t, ks_bob.vrow_of(k) AS w, count(*) AS n FROM ks_bob.ev GROUP BY 1, 2, 3');
SELECT keyedstate.sync('ks_alice.by_bob');
SET ROLE regress_ks_bob;
ALTER TYPE ks_bob.pair ADD ATTRIBUTE z int;
ALTER TYPE ks_bob.pair ALTER ATTRIBUTE a TYPE bigint;
ALTER TYPE ks_bob.pair DROP ATTRIBUTE b;
ALTER TYPE ks_bob.base ADD ATTRIBUTE z int CASCADE;
CREATE OR REPLACE VIEW ks_bob.vrow AS SELECT 1 AS a, 2 AS z;
CREATE OR REPLACE VIEW ks_bob.vrow AS SELECT 2 AS a;
INSERT INTO ks_bob.ev (k) VALUES (1), (5);
SET ROLE regress_ks_alice;
SELECT keyedstate.sync('ks_alice.by_bob');
SELECT count(*) AS keys, sum(n) AS rows FROM ks_alice.by_bob;
SELECT keyedstate.drop_aggregation('ks_alice.by_bob');
SET ROLE regress_ks_bob;
ALTER TYPE ks_bob.pair ADD ATTRIBUTE z int;
RESET ROLE;
DROP SCHEMA ks_bob CASCADE;

-- "$user" in the captured search_path is the creating role's schema: it
-- once followed the view's owner, so after ALTER VIEW ... OWNER TO a
-- function's unqualified name found the new owner's function and new rows
-- went to other keys (exactness review 15, finding 2)
CREATE SCHEMA regress_ks_alice AUTHORIZATION regress_ks_alice;
CREATE SCHEMA regress_ks_bob AUTHORIZATION regress_ks_bob;
CREATE FUNCTION regress_ks_alice.helper(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 10';
CREATE FUNCTION regress_ks_bob.helper(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 100';
CREATE FUNCTION via_helper(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN helper(x); END';
GRANT USAGE ON SCHEMA regress_ks_alice TO regress_ks_bob;
GRANT USAGE ON SCHEMA regress_ks_bob TO regress_ks_alice;
CREATE TABLE sp_src (id bigserial PRIMARY KEY, g int);
GRANT SELECT, TRIGGER ON sp_src TO regress_ks_alice, regress_ks_bob;
INSERT INTO sp_src (g) VALUES (1), (2);
SET ROLE regress_ks_alice;
SET search_path = "$user", public;
SELECT keyedstate.create_aggregation('ks_alice.sp', 'SELECT via_helper(g) AS k, count(*) AS n FROM sp_src GROUP BY 1');
RESET search_path;
SELECT keyedstate.sync('ks_alice.sp');
RESET ROLE;
SELECT settings[1] FROM keyedstate_internal.aggregation WHERE view = 'ks_alice.sp'::regclass;
ALTER VIEW ks_alice.sp OWNER TO regress_ks_bob;
INSERT INTO sp_src (g) VALUES (1), (2), (2);
SELECT keyedstate.sync('ks_alice.sp');
SELECT * FROM ks_alice.sp ORDER BY k;
SELECT keyedstate.drop_aggregation('ks_alice.sp');
DROP TABLE sp_src;
DROP FUNCTION via_helper(int);
DROP SCHEMA regress_ks_alice, regress_ks_bob CASCADE;

-- another role's aggregation calling one's aggregate does not stop its
-- owner changing it: a warning says that aggregation needs a rebuild
-- (re-review today 25, F1: any role could freeze another's aggregate);
-- one's own aggregation does, also for a SECURITY DEFINER support
-- function given to another owner (F5)
CREATE TABLE ks_agg_src (id bigserial PRIMARY KEY, k int, v int);
GRANT SELECT, TRIGGER ON ks_agg_src TO regress_ks_alice;
CREATE SCHEMA ks_bobs AUTHORIZATION regress_ks_bob;
GRANT USAGE ON SCHEMA ks_bobs TO regress_ks_alice;
SET ROLE regress_ks_bob;
CREATE FUNCTION ks_bobs.bsum(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT coalesce($1, 0) + $2';
CREATE AGGREGATE ks_bobs.bagg(int) (sfunc = ks_bobs.bsum, stype = int);
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.uses_bob', 'SELECT k, ks_bobs.bagg(v) AS s FROM ks_agg_src GROUP BY k');
SET ROLE regress_ks_bob;
CREATE OR REPLACE AGGREGATE ks_bobs.bagg(int) (sfunc = ks_bobs.bsum, stype = int, initcond = '0');
ALTER FUNCTION ks_bobs.bsum(int, int) STRICT;
RESET ROLE;
SELECT keyedstate.drop_aggregation('ks_alice.uses_bob');
DROP SCHEMA ks_bobs CASCADE;
CREATE FUNCTION ks_own_fin(int) RETURNS int LANGUAGE sql IMMUTABLE SECURITY DEFINER AS 'SELECT $1';
CREATE AGGREGATE ks_own_agg(int) (sfunc = int4pl, stype = int, finalfunc = ks_own_fin, initcond = '0');
SELECT keyedstate.create_aggregation('uses_own', 'SELECT k, ks_own_agg(v) AS s FROM ks_agg_src GROUP BY k');
ALTER FUNCTION ks_own_fin(int) OWNER TO regress_ks_bob;
SELECT keyedstate.drop_aggregation('uses_own');
DROP AGGREGATE ks_own_agg(int);
DROP FUNCTION ks_own_fin(int);
DROP TABLE ks_agg_src;

-- another role's aggregation over one's table refuses its TRUNCATE, also
-- once her privileges are revoked, and the hint says who can lift it
-- (security review 21, F3: it told the table's owner to drop it)
CREATE TABLE ks_bob_t (id bigserial PRIMARY KEY, k int);
ALTER TABLE ks_bob_t OWNER TO regress_ks_bob;
SET ROLE regress_ks_bob;
GRANT SELECT, TRIGGER ON ks_bob_t TO regress_ks_alice;
SET ROLE regress_ks_alice;
SELECT keyedstate.create_aggregation('ks_alice.on_bob', 'SELECT k, count(*) AS n FROM ks_bob_t GROUP BY k');
SET ROLE regress_ks_bob;
REVOKE ALL ON ks_bob_t FROM regress_ks_alice;
TRUNCATE ks_bob_t;
SET ROLE regress_ks_alice;
SELECT keyedstate.drop_aggregation('ks_alice.on_bob');
SET ROLE regress_ks_bob;
TRUNCATE ks_bob_t;
DROP TABLE ks_bob_t;
RESET ROLE;

DROP TABLE secret;
DROP AGGREGATE whoami(int);
DROP FUNCTION who_acc;
DROP SCHEMA ks_alice;
DROP ROLE regress_ks_alice, regress_ks_bob;
