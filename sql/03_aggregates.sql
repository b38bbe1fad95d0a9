-- Aggregate coverage: by-value, by-reference and internal transition states,
-- states without serialize functions (replayed), user-defined aggregates.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE TABLE ev (id bigserial PRIMARY KEY, k text, i int, b bigint, n numeric, f float8,
				 flag bool, t text, d date);
INSERT INTO ev (k, i, b, n, f, flag, t, d)
SELECT 'key' || (g % 5), g, g * 1000000000::bigint, g / 7.0, g / 3.0, g % 3 = 0,
	   CASE WHEN g % 11 = 0 THEN NULL ELSE 't' || g END, date '2026-01-01' + g
  FROM generate_series(1, 500) g;

SELECT keyedstate.create_aggregation('ev_stats',
	'SELECT k, count(*) AS n_rows, count(t) AS n_t, sum(i) AS sum_i, sum(b) AS sum_b,
	        sum(n) AS sum_n, avg(i) AS avg_i, avg(b) AS avg_b, avg(n) AS avg_n,
	        min(t) AS min_t, max(d) AS max_d, bool_and(flag) AS all_flag, bool_or(flag) AS any_flag,
	        bit_or(i) AS bits, stddev_samp(n) AS sd_n, variance(i) AS var_i,
	        string_agg(t, '','') AS ts, array_agg(i) AS is, jsonb_object_agg(coalesce(t, ''-''), i) AS j,
	        json_agg(i) AS ja
	   FROM ev GROUP BY k');
SELECT keyedstate.sync('ev_stats') > 0;
-- the same query as a plain GROUP BY (ordered inputs: keyedstate feeds rows in offset order)
CREATE VIEW ev_oracle AS
SELECT k, count(*) AS n_rows, count(t) AS n_t, sum(i) AS sum_i, sum(b) AS sum_b,
	   sum(n) AS sum_n, avg(i) AS avg_i, avg(b) AS avg_b, avg(n) AS avg_n,
	   min(t) AS min_t, max(d) AS max_d, bool_and(flag) AS all_flag, bool_or(flag) AS any_flag,
	   bit_or(i) AS bits, stddev_samp(n) AS sd_n, variance(i) AS var_i,
	   string_agg(t, ',' ORDER BY id) AS ts, array_agg(i ORDER BY id) AS is,
	   jsonb_object_agg(coalesce(t, '-'), i ORDER BY id) AS j, json_agg(i ORDER BY id)::text AS ja
  FROM ev GROUP BY k;
(SELECT k, n_rows, n_t, sum_i, sum_b, sum_n, avg_i, avg_b, avg_n, min_t, max_d, all_flag, any_flag,
		bits, sd_n, var_i, ts, "is", j, ja::text FROM ev_stats
 EXCEPT SELECT * FROM ev_oracle)
UNION ALL
(SELECT * FROM ev_oracle
 EXCEPT SELECT k, n_rows, n_t, sum_i, sum_b, sum_n, avg_i, avg_b, avg_n, min_t, max_d, all_flag, any_flag,
		bits, sd_n, var_i, ts, "is", j, ja::text FROM ev_stats);
SELECT k, n_rows, sum_b, avg_n, left(ts, 20) AS ts, "is"[1:3] AS first_is FROM ev_stats ORDER BY k;

-- user-defined aggregates: a SQL transition function with a final function,
-- and a polymorphic one
CREATE FUNCTION weighted_acc(state numeric[], v numeric, w numeric) RETURNS numeric[]
	LANGUAGE sql IMMUTABLE AS 'SELECT ARRAY[state[1] + v * w, state[2] + w]';
CREATE FUNCTION weighted_final(state numeric[]) RETURNS numeric
	LANGUAGE sql IMMUTABLE AS 'SELECT CASE WHEN state[2] = 0 THEN NULL ELSE round(state[1] / state[2], 6) END';
CREATE AGGREGATE weighted_avg(numeric, numeric) (
	sfunc = weighted_acc, stype = numeric[], finalfunc = weighted_final, initcond = '{0,0}');
CREATE FUNCTION last_acc(anyelement, anyelement) RETURNS anyelement
	LANGUAGE sql IMMUTABLE AS 'SELECT $2';
CREATE AGGREGATE last_value_of(anyelement) (sfunc = last_acc, stype = anyelement);

SELECT keyedstate.create_aggregation('ev_custom',
	'SELECT k, weighted_avg(n, i) AS wavg, last_value_of(t) AS last_t, last_value_of(d) AS last_d
	   FROM ev WHERE i > 10 GROUP BY k');
SELECT keyedstate.sync('ev_custom') > 0;
SELECT * FROM ev_custom ORDER BY k;
-- more rows after the first batch
INSERT INTO ev (k, i, b, n, f, flag, t, d)
SELECT 'key' || (g % 6), g, g, g, g, true, 'u' || g, date '2026-06-01' + g FROM generate_series(501, 700) g;
SELECT keyedstate.sync('ev_custom') > 0, keyedstate.sync('ev_stats') > 0;
SELECT * FROM ev_custom ORDER BY k;
(SELECT * FROM ev_custom
 EXCEPT SELECT k, weighted_avg(n, i), last_value_of(t ORDER BY id), last_value_of(d ORDER BY id)
          FROM ev WHERE i > 10 GROUP BY k)
UNION ALL
(SELECT k, weighted_avg(n, i), last_value_of(t ORDER BY id), last_value_of(d ORDER BY id)
   FROM ev WHERE i > 10 GROUP BY k
 EXCEPT SELECT * FROM ev_custom);
(SELECT k, n_rows, n_t, sum_i, sum_b, sum_n, avg_i, avg_b, avg_n, min_t, max_d, all_flag, any_flag,
		bits, sd_n, var_i, ts, "is", j, ja::text FROM ev_stats
 EXCEPT SELECT * FROM ev_oracle)
UNION ALL
(SELECT * FROM ev_oracle
 EXCEPT SELECT k, n_rows, n_t, sum_i, sum_b, sum_n, avg_i, avg_b, avg_n, min_t, max_d, all_flag, any_flag,
		bits, sd_n, var_i, ts, "is", j, ja::text FROM ev_stats);

-- keys and states stored out of line (TOAST) stay readable after their
-- source rows are deleted and vacuumed away
CREATE TABLE docs (id bigserial PRIMARY KEY, k text, body text);
ALTER TABLE docs ALTER COLUMN k SET STORAGE EXTERNAL, ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO docs (k, body) SELECT repeat('k' || (g % 2), 1500), repeat(md5(g::text), 100) FROM generate_series(1, 4) g;
SELECT keyedstate.create_aggregation('doc_stats', 'SELECT k, count(*) AS n, max(body) AS longest FROM docs GROUP BY k');
SELECT keyedstate.sync('doc_stats') > 0;
CREATE TABLE docs_expected AS SELECT k, count(*) AS n, max(body) AS longest FROM docs GROUP BY k;
DELETE FROM docs;
VACUUM docs;
SELECT count(*) AS keys, sum(n) AS rows FROM doc_stats;
SELECT count(*) AS mismatches FROM (SELECT * FROM doc_stats EXCEPT SELECT * FROM docs_expected) d;
SELECT keyedstate.drop_aggregation('doc_stats');
DROP TABLE docs, docs_expected;

-- a FILTER guards its aggregate's arguments, as in nodeAgg: they are not
-- evaluated for the rows it rejects
CREATE TABLE guarded (id bigserial PRIMARY KEY, k int, v int, t text, x float8);
SELECT keyedstate.create_aggregation('guarded_stats', $q$
SELECT k, sum(100 / v) FILTER (WHERE v <> 0) AS q,
       avg(t::int) FILTER (WHERE t ~ '^[0-9]+$') AS a,
       max(sqrt(x)) FILTER (WHERE x >= 0) AS r,
       count(*) AS n
  FROM guarded GROUP BY k$q$);
INSERT INTO guarded (k, v, t, x) VALUES (1, 0, 'abc', -1), (1, 5, '12', 4), (2, 4, 'x', -9), (2, 0, '7', 16);
SELECT keyedstate.sync('guarded_stats') > 0;
SELECT name, state, error FROM keyedstate.status WHERE name = 'guarded_stats';
SELECT * FROM guarded_stats ORDER BY k;
SELECT count(*) AS mismatches FROM (
  (SELECT * FROM guarded_stats
   EXCEPT SELECT k, sum(100 / v) FILTER (WHERE v <> 0), avg(t::int) FILTER (WHERE t ~ '^[0-9]+$'),
                 max(sqrt(x)) FILTER (WHERE x >= 0), count(*) FROM guarded GROUP BY k)
  UNION ALL
  (SELECT k, sum(100 / v) FILTER (WHERE v <> 0), avg(t::int) FILTER (WHERE t ~ '^[0-9]+$'),
          max(sqrt(x)) FILTER (WHERE x >= 0), count(*) FROM guarded GROUP BY k
   EXCEPT SELECT * FROM guarded_stats)) d;
SELECT keyedstate.drop_aggregation('guarded_stats');
DROP TABLE guarded;

SELECT keyedstate.drop_aggregation('ev_stats');
SELECT keyedstate.drop_aggregation('ev_custom');
DROP VIEW ev_oracle;
DROP TABLE ev;
DROP AGGREGATE weighted_avg(numeric, numeric);
DROP AGGREGATE last_value_of(anyelement);
DROP FUNCTION weighted_acc, weighted_final, last_acc;
