-- Every definition keyedstate refuses gets a clear error, never a crash.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE TABLE src (id bigserial PRIMARY KEY, k int, v int, t text);
CREATE TABLE other (id bigserial PRIMARY KEY, k int);
INSERT INTO src (k, v, t) VALUES (1, 1, 'a'), (2, 2, 'b');

-- unknown table and column, ungrouped column
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM nosuch GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT nosuch, count(*) FROM src GROUP BY nosuch');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, v, count(*) FROM src GROUP BY k');
-- not one SELECT: injection attempts are refused, not run
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k; DROP TABLE other');
SELECT keyedstate.create_aggregation('e1', 'DELETE FROM src');
SELECT count(*) FROM other;
-- joins, subqueries, set operations, CTEs
SELECT keyedstate.create_aggregation('e1', 'SELECT src.k, count(*) FROM src JOIN other USING (id) GROUP BY src.k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE k IN (SELECT k FROM other) GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM (SELECT * FROM src) s GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k UNION SELECT 1, 1');
SELECT keyedstate.create_aggregation('e1', 'WITH s AS (SELECT * FROM src) SELECT k, count(*) FROM s GROUP BY k');
-- window functions, set-returning functions, volatile expressions
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*), rank() OVER () FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, generate_series(1, 2), count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM generate_series(1, 3) k GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k + random(), count(*) FROM src GROUP BY k + random()');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, sum(v) FROM src WHERE random() > 0.5 GROUP BY k');
-- a function of one's own left VOLATILE (the default) is named, as one
-- that is not immutable (newuser review 2, F11)
CREATE FUNCTION dbl_v(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2';
SELECT keyedstate.create_aggregation('e1', 'SELECT dbl_v(k) AS d, count(*) FROM src GROUP BY 1');
DROP FUNCTION dbl_v(int);
-- DISTINCT inside an aggregate, ORDER BY inside one by other than the offset
-- column ascending (another column, DESC, an expression, two sort keys, two
-- columns), ordered-set aggregates, grouping sets
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(DISTINCT v) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY v) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY id DESC) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY id + 0) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY id, v) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY id) AS a, array_agg(t ORDER BY v) AS b FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_agg(v ORDER BY k) FROM src GROUP BY k', offset_column => 'id');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY ROLLUP (k)');
-- no GROUP BY, DISTINCT, ORDER BY, LIMIT, system columns
SELECT keyedstate.create_aggregation('e1', 'SELECT count(*) FROM src');
SELECT keyedstate.create_aggregation('e1', 'SELECT count(*) FROM src GROUP BY ()');
SELECT keyedstate.create_aggregation('e1', 'SELECT DISTINCT k, count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k ORDER BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k LIMIT 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, max(xmin::text) FROM src GROUP BY k');
-- two columns of one name: said as CREATE VIEW would, without internal names
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*), count(*) FROM src GROUP BY k');
-- what a replay would compute differently: the time, the session
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE v < extract(epoch FROM now()) GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT date_trunc(''day'', current_timestamp) AS d, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FILTER (WHERE current_date > ''2000-01-01'') FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, max(age(timestamp ''2000-01-01'')) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k HAVING max(statement_timestamp()) IS NOT NULL');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, session_user AS who, count(*) FROM src GROUP BY k, session_user');
-- the owner, the database and the build of the moment: an ALTER ... OWNER
-- or RENAME would split a key between old rows and new
SELECT keyedstate.create_aggregation('e1', 'SELECT current_user AS who, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT current_role AS who, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT current_catalog AS db, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT current_schema AS s, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT pg_catalog.current_schema() AS s, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT current_database() AS db, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FILTER (WHERE v <> pg_backend_pid()) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT version() AS v, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE table_to_xml(''src'', true, false, '''') IS NOT NULL GROUP BY k');
-- values of the session: refused, unless a captured or custom setting
SELECT keyedstate.create_aggregation('e1', 'SELECT k, current_setting(''work_mem'') AS wm, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, current_setting(''application_name'', true) AS app, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, pg_my_temp_schema() AS tmp, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, inet_client_addr() AS addr, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, pg_current_xact_id()::text AS x, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, pg_current_snapshot()::text AS x, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, pg_client_encoding() AS enc, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, current_schemas(true)::text AS s, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, pg_stat_get_numscans(''src''::regclass) AS scans, count(*) FROM src GROUP BY 1, 2');
-- a temporary function (or type, or operator) would go with its session,
-- and the view with it: refused (the detail names the session's pg_temp_N)
CREATE FUNCTION pg_temp.tmp_double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
\set VERBOSITY terse
SELECT keyedstate.create_aggregation('e1', 'SELECT pg_temp.tmp_double(k) AS k2, count(*) FROM src GROUP BY 1');
\set VERBOSITY default
DROP FUNCTION pg_temp.tmp_double(int);
-- ... and so would a permanent function that depends on a temporary type
-- (through an argument's default, which the stored query never shows, or
-- an argument's type), however indirectly: refused too
CREATE TYPE pg_temp.tmp_pair AS (a int, b int);
CREATE FUNCTION perm_ident(v int, d pg_temp.tmp_pair DEFAULT NULL) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT v';
\set VERBOSITY terse
SELECT keyedstate.create_aggregation('e1', 'SELECT k, sum(perm_ident(v)) AS s FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, sum(perm_ident(v, NULL)) AS s FROM src GROUP BY k');
-- or a permanent composite type with an attribute of a temporary type
-- (the session's end would drop the attribute, and change the key's hash)
CREATE TYPE perm_holder AS (a int, t pg_temp.tmp_pair);
CREATE TABLE holders (id bigserial PRIMARY KEY, h perm_holder);
SELECT keyedstate.create_aggregation('e1', 'SELECT h, count(*) FROM holders GROUP BY h');
\set VERBOSITY default
DROP TABLE holders;
DROP TYPE pg_temp.tmp_pair CASCADE;
DROP TYPE perm_holder;
-- a function whose value may change for the same row (it reads a table,
-- or the catalogs) would be computed once when the row is consumed, and
-- again on a replay: refused unless IMMUTABLE, as in an index expression
CREATE TABLE dim (id int PRIMARY KEY, name text);
CREATE FUNCTION dim_name(int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM dim WHERE id = $1';
CREATE FUNCTION dim_known(int) RETURNS boolean LANGUAGE plpgsql STABLE AS 'BEGIN RETURN EXISTS (SELECT FROM dim WHERE id = $1); END';
CREATE FUNCTION dim_known_pair(int, int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT EXISTS (SELECT FROM dim WHERE id = $1 + $2)';
CREATE OPERATOR ==> (LEFTARG = int, RIGHTARG = int, FUNCTION = dim_known_pair);
SELECT keyedstate.create_aggregation('e1', 'SELECT dim_name(k) AS name, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE dim_known(k) GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE k ==> v GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT to_regclass(''t'' || k) AS r, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE has_table_privilege(''src'', ''SELECT'') GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT (k::oid)::regclass::text AS r, count(*) FROM src GROUP BY 1');
-- enum_range() reads pg_enum (ALTER TYPE ... ADD VALUE changes it), and
-- pg_partition_root() pg_inherits, though PostgreSQL labels it IMMUTABLE
CREATE TYPE pin_color AS ENUM ('red', 'green');
SELECT keyedstate.create_aggregation('e1', 'SELECT enum_range(NULL::pin_color) AS r, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE pg_partition_root(''src''::regclass) IS NOT NULL GROUP BY k');
-- text search reads its configurations and dictionaries (ALTER TEXT SEARCH
-- changes them), in the forms PostgreSQL labels IMMUTABLE too, and so does
-- text @@ text (exactness review 19, F2)
SELECT keyedstate.create_aggregation('e1', 'SELECT to_tsvector(''english'', k::text) AS r, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE k::text @@ ''1'' GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT ts_lexize(''english_stem'', k::text) AS r, count(*) FROM src GROUP BY 1');
-- pg_column_size() and pg_column_compression() would report how keyedstate
-- stores its copies of the values, not the table's (exactness review 19, F1)
SELECT keyedstate.create_aggregation('e1', 'SELECT pg_column_size(k) AS r, count(*) FROM src GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src WHERE pg_column_compression(k::text) IS NULL GROUP BY k');
-- an enum converted to or from text reads its labels, and a named
-- composite converted to or from JSON its attribute names, which a rename
-- changes: rows consumed before and after it would disagree
CREATE TABLE pins (id bigserial PRIMARY KEY, k int, c pin_color, t text, j jsonb);
CREATE TYPE pin_pair AS (a int, b text);
SELECT keyedstate.create_aggregation('e1', 'SELECT c::text AS ct, count(*) FROM pins GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT t::pin_color AS tc, count(*) FROM pins GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM pins WHERE format(''%s'', c) = ''red'' GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, string_agg(concat(c), '','') AS s FROM pins GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, jsonb_agg(c) AS s FROM pins GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, max(c)::text AS m FROM pins GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT to_jsonb(ROW(k, t)::pin_pair) AS r, count(*) FROM pins GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, sum((jsonb_populate_record(NULL::pin_pair, j)).a) AS s FROM pins GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, jsonb_agg(p) AS s FROM pins p GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM pins WHERE to_jsonb(ARRAY[ROW(c)]) IS NOT NULL GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT xmlelement(name e, c)::text AS x, count(*) FROM pins GROUP BY 1');
-- so does a regclass (another reg* type, an aclitem) printed or read by
-- name anywhere, not only by its own output function: the name is the one
-- of the moment the row is consumed (exactness review 15, finding 1)
CREATE TABLE regs (id bigserial PRIMARY KEY, o oid, t text, r oid);
SELECT keyedstate.create_aggregation('e1', 'SELECT t::regclass AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT concat(o::regclass) AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT ''t:'' || o::regclass AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT format(''%s'', o::regproc) AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT ARRAY[o::regtype]::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, jsonb_agg(o::regclass) AS j FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, string_agg(quote_literal(o::regnamespace), '','') AS s FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT row_to_json(ROW(o::regrole))::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT xmlelement(name a, o::regclass)::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT makeaclitem(r, r, ''SELECT'', false)::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT pg_collation_for(t) AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, format(''%s'', max(o)::regclass) AS m FROM regs GROUP BY 1');
-- an aggregate marked immutable whose transition function is not: it
-- prints its arguments (security review 18, F2)
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, jsonb_object_agg(o::regclass, id) AS j FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, jsonb_object_agg(id, ARRAY[o::regclass]) AS j FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, json_object_agg(id, c) AS j FROM pins GROUP BY k');
-- (its ORDER BY is no value: re-review today 15, F3)
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, jsonb_object_agg(o::regclass, id ORDER BY id) AS j FROM regs GROUP BY 1');
-- a domain's CHECK runs for each row cast to it: as pinned as the query,
-- also through a domain over it (security review 18, F3)
CREATE DOMAIN pin_rand AS int CHECK (VALUE >= (random() * 0)::int);
CREATE DOMAIN pin_now AS timestamptz CHECK (VALUE <= now());
CREATE DOMAIN pin_reg AS oid CHECK (VALUE::regclass::text <> 'x');
CREATE DOMAIN pin_reg2 AS pin_reg;
CREATE DOMAIN pin_pos AS int CHECK (VALUE > 0);
SELECT keyedstate.create_aggregation('e1', 'SELECT id::int::pin_rand AS d, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT 1 AS k, count(*) FILTER (WHERE ''2020-01-01''::timestamptz::pin_now IS NOT NULL) AS n FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT o::pin_reg2 AS d, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT id::int::pin_pos AS d, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.drop_aggregation('e1');
DROP DOMAIN pin_rand, pin_now, pin_reg2, pin_reg, pin_pos;
-- also inside an anonymous record that CASE, COALESCE or a subscript builds
-- (re-review today 14, F2)
SELECT keyedstate.create_aggregation('e1', 'SELECT (CASE WHEN id > 0 THEN ROW(o::regclass, id) END)::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT to_jsonb(COALESCE(ROW(o::regclass), NULL)) AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT (ARRAY[ROW(o::regrole)])[1]::text AS k, count(*) FROM regs GROUP BY 1');
SELECT keyedstate.create_aggregation('e1', 'SELECT (CASE WHEN k > 0 THEN ROW(c) END)::text AS k, count(*) FROM pins GROUP BY 1');
-- kept as an OID (printed when the view is read), or compared: allowed
SELECT keyedstate.create_aggregation('e1', $$SELECT o::regclass AS k, pg_typeof(t) AS ty, count(*) FILTER (WHERE o::regclass = 'regs'::regclass) AS n
	FROM regs GROUP BY 1, 2$$);
SELECT keyedstate.drop_aggregation('e1');
-- comparisons, min/max, a field and anonymous rows use neither: allowed
SELECT keyedstate.create_aggregation('e1', $$SELECT c, k % 2 AS g, min(c) AS m, count(*) FILTER (WHERE c = 'red') AS reds,
	sum((ROW(k, t)::pin_pair).a) AS s, count(*) FILTER (WHERE to_jsonb(ROW(k, t)) ? 'f1') AS anon
	FROM pins GROUP BY 1, 2$$);
SELECT keyedstate.drop_aggregation('e1');
DROP TABLE pins;
DROP TYPE pin_pair;
DROP TYPE pin_color;
DROP OPERATOR ==> (int, int);
DROP FUNCTION dim_known_pair(int, int), dim_known(int), dim_name(int);
DROP TABLE dim;
-- a custom setting not set in this session (absent, or at its default) is
-- not captured: the worker would read the server's value, or its role's
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, current_setting(''TimeZone'') AS tz, current_setting(''myapp.x'', true) AS x, count(*) FROM src GROUP BY 1, 2, 3');
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, current_setting(''plpgsql.variable_conflict'') AS vc, count(*) FROM src GROUP BY 1, 2');
-- keyedstate's own are not captured either; nor is a setting read through
-- an operator, or an aggregate's final function
SET keyedstate.load_wait = '3s';
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, current_setting(''keyedstate.load_wait'') AS lw, count(*) FROM src GROUP BY 1, 2');
RESET keyedstate.load_wait;
CREATE OPERATOR !! (RIGHTARG = text, FUNCTION = pg_catalog.current_setting);
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, !! ''application_name'' AS app, count(*) FROM src GROUP BY 1, 2');
CREATE AGGREGATE setting_of(text) (sfunc = pg_catalog.textcat, stype = text, initcond = '', finalfunc = pg_catalog.current_setting);
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, setting_of(''TimeZone'') AS tz FROM src GROUP BY k');
DROP AGGREGATE setting_of(text);
DROP OPERATOR !! (NONE, text);
-- a volatile support function; and defaults the planner adds to a call
CREATE SEQUENCE draws;
CREATE FUNCTION pick(s regclass, t text) RETURNS regclass IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE AGGREGATE draw(text) (sfunc = pick, stype = regclass, initcond = 'draws', finalfunc = pg_catalog.nextval);
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, draw(''x'') AS d FROM src GROUP BY k');
DROP AGGREGATE draw(text);
DROP FUNCTION pick(regclass, text);
DROP SEQUENCE draws;
CREATE FUNCTION app_or(t text DEFAULT current_setting('application_name')) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION coin(f float8 DEFAULT random()) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION stamp(t timestamptz DEFAULT clock_timestamp()) RETURNS timestamptz IMMUTABLE LANGUAGE sql AS 'SELECT $1';
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, app_or() AS app, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, coin() > 0.5 AS c, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, stamp() AS t, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, app_or(''given'') AS app, count(*) FROM src GROUP BY 1, 2');
SELECT keyedstate.drop_aggregation('e_tz');
DROP FUNCTION app_or(text), coin(float8), stamp(timestamptz);
SET myapp.x = '';
SELECT keyedstate.create_aggregation('e_tz', 'SELECT k, current_setting(''TimeZone'') AS tz, current_setting(''myapp.x'', true) AS x, count(*) FROM src GROUP BY 1, 2, 3');
RESET myapp.x;
SELECT keyedstate.drop_aggregation('e_tz');
-- anonymous records that could not be read back after a restart
SELECT keyedstate.create_aggregation('e1', 'SELECT ROW(k, v) AS r, count(*) FROM src GROUP BY ROW(k, v)');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, array_length(array_agg(ROW(v, t)), 1) FROM src GROUP BY k');
-- (GROUP BY (k, v) groups by k and v: the row built of them is a column)
SELECT keyedstate.create_aggregation('e1', 'SELECT (k, v) AS kr, count(*) FROM src GROUP BY (k, v)');
-- a key type without hashing
SELECT keyedstate.create_aggregation('e1', 'SELECT k::money AS m, count(*) FROM src GROUP BY k::money');
-- sources that are not ordinary, logged, permanent tables
CREATE VIEW src_view AS SELECT * FROM src;
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src_view GROUP BY k');
CREATE MATERIALIZED VIEW src_mv AS SELECT * FROM src;
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src_mv GROUP BY k');
CREATE TEMPORARY TABLE tmp_src (id bigserial PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM tmp_src GROUP BY k');
CREATE UNLOGGED TABLE unlogged_src (id bigserial PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM unlogged_src GROUP BY k');
CREATE EXTENSION file_fdw;
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE foreign_src (id bigint, k int) SERVER files OPTIONS (filename '/dev/null');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM foreign_src GROUP BY k');
DROP EXTENSION file_fdw CASCADE;
-- a partitioned table needs an offset index, and partitions that follow its sequence
CREATE TABLE part_src (id bigserial, k int) PARTITION BY RANGE (id);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM part_src GROUP BY k');
-- ONLY a partitioned table: the plain query reads no row
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM ONLY part_src GROUP BY k');
CREATE INDEX ON part_src (id);
CREATE TABLE part_own (id bigserial, k int);
ALTER TABLE part_src ATTACH PARTITION part_own FOR VALUES FROM (1) TO (1000);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM part_src GROUP BY k');
ALTER TABLE part_own ALTER COLUMN id SET DEFAULT nextval('part_src_id_seq');
CREATE TABLE part_noindex (id bigint NOT NULL DEFAULT nextval('part_src_id_seq'), k int);
DROP INDEX part_src_id_idx;
ALTER TABLE part_src ATTACH PARTITION part_noindex FOR VALUES FROM (1000) TO (2000);
CREATE INDEX ON ONLY part_src (id);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM part_src GROUP BY k');
CREATE TABLE parent_src (id bigserial PRIMARY KEY, k int);
CREATE TABLE child_src () INHERITS (parent_src);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM parent_src GROUP BY k');
-- no usable offset column
CREATE TABLE no_offset (k int, v int);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM no_offset GROUP BY k');
-- an offset column that allows nulls: a row with a null offset would never be read
CREATE TABLE nullable_src (id bigint UNIQUE, k int);
CREATE SEQUENCE nullable_src_id_seq OWNED BY nullable_src.id;
ALTER TABLE nullable_src ALTER COLUMN id SET DEFAULT nextval('nullable_src_id_seq');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM nullable_src GROUP BY k');
DROP TABLE nullable_src;
CREATE TABLE two_offsets (a bigserial, b bigserial, k int);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM two_offsets GROUP BY k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM two_offsets GROUP BY k', offset_column => 'k');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM two_offsets GROUP BY k', offset_column => 'nosuch');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM two_offsets GROUP BY k', offset_column => 'a');
CREATE TABLE cached (id bigserial PRIMARY KEY, k int);
ALTER SEQUENCE cached_id_seq CACHE 10;
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM cached GROUP BY k');
CREATE TABLE cycling (id bigserial PRIMARY KEY, k int);
ALTER SEQUENCE cycling_id_seq CYCLE;
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM cycling GROUP BY k');
CREATE TABLE lowest (id bigint GENERATED ALWAYS AS IDENTITY (MINVALUE -9223372036854775808 START WITH -9223372036854775808) PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM lowest GROUP BY k');
-- bad arguments
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', start_from => 'yesterday');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', checkpoint_interval => '0');
-- mixed signs: negative as the worker counts it (years of 365.25 days)
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', checkpoint_interval => '-12 months 361 days');
-- a system catalog (DBA review 38, F8: the hint said to add it a bigserial column)
SELECT keyedstate.create_aggregation('e1', 'SELECT relkind, count(*) FROM pg_class GROUP BY relkind');
-- at most a day, as checkpoint_timeout (DBA review 38, F6)
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', checkpoint_interval => '1 day 1 ms');
SELECT keyedstate.create_aggregation(NULL, 'SELECT k, count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('e1', NULL);
-- duplicate names and clashes with existing relations
SELECT keyedstate.create_aggregation('agg', 'SELECT k, count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('agg', 'SELECT k, count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('src', 'SELECT k, count(*) FROM src GROUP BY k');
SELECT keyedstate.create_aggregation('nosuchschema.agg', 'SELECT k, count(*) FROM src GROUP BY k');
-- NULL parallelism is refused as other NULL arguments are, a negative
-- timeout too (newuser review 2, F1: taken as the default, and as none)
SELECT keyedstate.create_aggregation('e0', 'SELECT k, count(*) FROM src GROUP BY k', parallelism => NULL);
SELECT keyedstate.create_aggregation('e0', 'SELECT k, count(*) FROM src GROUP BY k', max_parallelism => NULL);
SELECT keyedstate.sync('agg', '-1 s');
SELECT keyedstate.checkpoint('agg', '-1 s');
-- functions on names that are not aggregations
SELECT keyedstate.sync('nosuch');
SELECT keyedstate.sync('src');
-- (a wrong_object_type, as PostgreSQL's "is not a view")
DO $$BEGIN PERFORM keyedstate.pause('src'); EXCEPTION WHEN wrong_object_type THEN RAISE NOTICE 'wrong_object_type'; END$$;
SELECT keyedstate.drop_aggregation('src_view');
SELECT keyedstate.pause('nosuch');
SELECT name FROM keyedstate.aggregations;
-- ttl and alter_aggregation arguments
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', ttl => '-1 second');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', ttl => '1 day -25 hours');
SELECT keyedstate.alter_aggregation('nosuch', ttl => '1 hour');
SELECT keyedstate.alter_aggregation('src', ttl => '1 hour');
SELECT keyedstate.alter_aggregation(NULL, ttl => '1 hour');
SELECT keyedstate.alter_aggregation('agg', ttl => '-5 minutes');
-- a TTL whose microseconds would overflow a bigint: refused (it stopped the database's workers)
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM src GROUP BY k', ttl => '300000 years');
SELECT keyedstate.alter_aggregation('agg', ttl => '1001 years');
SELECT keyedstate.alter_aggregation('agg', ttl => '2147483647 days');
-- a TTL is the sum of its parts: positive with a negative part is fine, and 1000 years too
SELECT keyedstate.alter_aggregation('agg', ttl => '1 day -23 hours');
SELECT keyedstate.alter_aggregation('agg', ttl => '1000 years');
SELECT keyedstate.alter_aggregation('agg', ttl => '1 month -31 days');
SELECT keyedstate.alter_aggregation('agg', ttl => '0');
SELECT keyedstate.alter_aggregation('agg', checkpoint_interval => '0');
SELECT keyedstate.alter_aggregation('agg', checkpoint_interval => '-12 months 361 days');
SELECT keyedstate.alter_aggregation('agg', checkpoint_interval => '170000000 years');
-- nothing to change (DBA review 38, F7: it did nothing, silently)
SELECT keyedstate.alter_aggregation('agg');
SELECT keyedstate.alter_aggregation('agg', ttl => NULL, parallelism => NULL);
SELECT name, ttl, checkpoint_interval FROM keyedstate.aggregations WHERE name = 'agg';
-- windows: arguments, time column, names, aggregates a sliding window cannot merge
CREATE TABLE win (id bigserial PRIMARY KEY, k int, v int, t text, ts timestamptz, d date);
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 hour');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_slide => '1 hour');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 month', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '-1 hour', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '200000000 days', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 hour', window_slide => '7 minutes', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 hour', window_slide => '2 hours', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 hour', time_column => 'nosuch');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) FROM win GROUP BY k', window_size => '1 hour', time_column => 'd');
SELECT keyedstate.create_aggregation('e1', 'SELECT k AS window_end, count(*) FROM win GROUP BY k', window_size => '1 hour', time_column => 'ts');
SELECT keyedstate.create_aggregation('e1', 'SELECT k, string_agg(t, '','') FROM win GROUP BY k', window_size => '1 hour', window_slide => '10 minutes', time_column => 'ts');
-- a sliding window merges its panes in time order: no ORDER BY inside its aggregates
SELECT keyedstate.create_aggregation('e1', 'SELECT k, sum(v ORDER BY id) FROM win GROUP BY k', window_size => '1 hour', window_slide => '10 minutes', time_column => 'ts');
-- a tumbling window needs no combine function, keeps the offset order; a TTL (event time) can come later
SELECT keyedstate.create_aggregation('win_t', 'SELECT k, string_agg(t, '','' ORDER BY id) AS ts FROM win GROUP BY k', window_size => '1 hour', time_column => 'ts');
SELECT keyedstate.alter_aggregation('win_t', window_slide => '10 minutes');
SELECT keyedstate.alter_aggregation('win_t', ttl => '1 day');
SELECT name, window_size, window_slide, time_column, ttl FROM keyedstate.aggregations WHERE name = 'win_t';
SELECT keyedstate.drop_aggregation('win_t');
DROP TABLE win;
-- an offset column filled from a sequence it does not own: the error says so
CREATE SEQUENCE loose_seq;
CREATE TABLE loose (id bigint DEFAULT nextval('loose_seq') PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('loose_n', 'SELECT k, count(*) AS n FROM loose GROUP BY k');
SELECT keyedstate.create_aggregation('loose_n', 'SELECT k, count(*) AS n FROM loose GROUP BY k', offset_column => 'id');
ALTER SEQUENCE loose_seq OWNED BY loose.id;
SELECT keyedstate.create_aggregation('loose_n', 'SELECT k, count(*) AS n FROM loose GROUP BY k');
SELECT keyedstate.drop_aggregation('loose_n');
-- a default computing with the sequence's values hands out offsets it never did
ALTER TABLE loose ALTER COLUMN id SET DEFAULT nextval('loose_seq') * 10 + 3;
SELECT keyedstate.create_aggregation('loose_n', 'SELECT k, count(*) AS n FROM loose GROUP BY k');
DROP TABLE loose;
SELECT keyedstate.drop_aggregation('agg');
DROP VIEW src_view;
DROP MATERIALIZED VIEW src_mv;
DROP TABLE src, other, tmp_src, unlogged_src, part_src, no_offset, two_offsets, cached, cycling, lowest, parent_src CASCADE;
