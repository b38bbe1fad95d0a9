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
	        string_agg(t, '','' ORDER BY id) AS ts, array_agg(i) AS is, jsonb_object_agg(coalesce(t, ''-''), i) AS j,
	        json_agg(i ORDER BY id) AS ja
	   FROM ev GROUP BY k');
SELECT keyedstate.sync('ev_stats') > 0;
-- the same query as a plain GROUP BY (ordered inputs: keyedstate feeds rows in offset order,
-- which ORDER BY the offset column inside an aggregate may also say)
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
	'SELECT k, weighted_avg(n, i) AS wavg, last_value_of(t ORDER BY id) AS last_t, last_value_of(d) AS last_d
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

-- a key whose row cannot be computed from its state (a final function,
-- HAVING or the projection fails on it) raises its error where the plain
-- GROUP BY would: in a scan that reads that key, not in others; the
-- aggregation runs on, and the row is computed again when the key changes
CREATE TABLE f4 (id bigserial PRIMARY KEY, k int, v int);
CREATE DOMAIN f4_small AS bigint CHECK (VALUE < 1000);
CREATE FUNCTION f4_check(n bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF n = 1 THEN RAISE EXCEPTION 'key has a single row'; END IF;
	RETURN n;
END $$;
CREATE FUNCTION f4_priv(n bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF n = 1 THEN RAISE EXCEPTION 'not allowed' USING ERRCODE = 'insufficient_privilege'; END IF;
	RETURN n;
END $$;
SELECT keyedstate.create_aggregation('f4_final',
	'SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k');
SELECT keyedstate.create_aggregation('f4_having',
	'SELECT k, count(*) AS n FROM f4 GROUP BY k HAVING 100 / (count(*) - 1) > 0');
SELECT keyedstate.create_aggregation('f4_user',
	'SELECT k, f4_check(count(*)) AS c, sum(v)::f4_small AS d FROM f4 GROUP BY k');
-- an error that is not of the key's data (here a privilege) still fails the aggregation
SELECT keyedstate.create_aggregation('f4_other',
	'SELECT k, f4_priv(count(*)) AS p FROM f4 GROUP BY k');
-- key 1: one row; key 2: sum 1200; key 3: three small rows; key 4: sum 40000
INSERT INTO f4 (k, v) VALUES (1, 1), (2, 600), (2, 600), (3, 1), (3, 1), (3, 1), (4, 20000), (4, 20000);
SELECT keyedstate.sync('f4_final') > 0, keyedstate.sync('f4_having') > 0, keyedstate.sync('f4_user') > 0;
SELECT name, state, error, row_errors > 0 AS row_errors FROM keyedstate.status
 WHERE name LIKE 'f4\_%' AND name <> 'f4_other' ORDER BY name;
-- (waited for: it may not have consumed yet)
SELECT keyedstate.sync('f4_other');
SELECT name, state, error FROM keyedstate.status WHERE name = 'f4_other';
SELECT * FROM f4_final WHERE k IN (2, 3) ORDER BY k;
SELECT * FROM f4_final WHERE k = 1;
SELECT * FROM f4_final WHERE k = 4;
-- (keys 1 and 4 fail: which a full scan meets first depends on the
-- store's secret hash seed, so each scan below reaches only one of them)
SELECT * FROM f4_final WHERE k <> 4 ORDER BY k;
SELECT count(*), sum(s) FROM f4_final WHERE k <> 1;
SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k ORDER BY k;
-- a column the query does not read is not computed, here as there
SELECT count(*) FROM f4_final;
SELECT count(*) FROM (SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k) g;
SELECT k, n FROM f4_final ORDER BY k;
SELECT k, r FROM f4_final WHERE k <> 1 ORDER BY k;
SELECT k, n, r FROM f4_final WHERE k <> 4 ORDER BY k;
-- quals on keys apply first, as the planner pushes them below a GROUP BY;
-- quals on computed columns apply too, as it pushes them into HAVING
SELECT * FROM f4_final WHERE k <> 1 AND k <> 4 ORDER BY k;
SELECT * FROM (SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k) g
 WHERE k <> 1 AND k <> 4 ORDER BY k;
SELECT count(*) FROM f4_final WHERE k BETWEEN 2 AND 3;
SELECT * FROM f4_final WHERE n > 100 AND k <> 4;
SELECT * FROM (SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k) g
 WHERE n > 100;
SELECT k, n FROM f4_final WHERE n > 1 AND r > 0 ORDER BY k;
SELECT * FROM f4_having WHERE n > 1 ORDER BY k;
-- a security barrier's quals hide a key's error from the quals and
-- functions of the query over it, which never see the hidden key
CREATE VIEW f4_big WITH (security_barrier) AS SELECT * FROM f4_final WHERE n > 1 AND k <> 2 AND k <> 4;
CREATE FUNCTION f4_peek(int) RETURNS bool LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'saw key %', $1; RETURN true; END $$;
SELECT * FROM f4_big WHERE f4_peek(k) ORDER BY k;
SELECT * FROM f4_big WHERE k = 1;
-- every qual of the barrier's level reading computed columns applies
-- before one reading a failed column raises (r = 5 is leakproof, so it
-- joins the barrier's level)
SELECT * FROM f4_big WHERE r = 5;
CREATE VIEW f4_plain AS SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r, sum(v)::int2 AS s FROM f4 GROUP BY k;
CREATE VIEW f4_plain_big WITH (security_barrier) AS SELECT * FROM f4_plain WHERE n > 1 AND k <> 2 AND k <> 4;
SELECT * FROM f4_plain_big WHERE r = 5;
-- a volatile qual applies too (the plain query puts it in HAVING), and a
-- subquery's is left to the scan, which computes what the query reads
CREATE FUNCTION f4_allowed(int) RETURNS bool LANGUAGE plpgsql AS $$ BEGIN RETURN $1 <> 1; END $$;
SELECT k, n, r FROM f4_final WHERE f4_allowed(k) AND k <> 4 ORDER BY k;
SELECT k, n, r FROM f4_plain WHERE f4_allowed(k) AND k <> 4 ORDER BY k;
SELECT k, n FROM f4_final WHERE (SELECT count(*) FROM f4 WHERE f4.k = f4_final.k) > 1 ORDER BY k;
SELECT k, n FROM f4_plain WHERE (SELECT count(*) FROM f4 WHERE f4.k = f4_plain.k) > 1 ORDER BY k;
SELECT k, n, r FROM f4_final WHERE (SELECT count(*) FROM f4 WHERE f4.k = f4_final.k) > 0 AND k < 3;
SELECT k, n, r FROM f4_plain WHERE (SELECT count(*) FROM f4 WHERE f4.k = f4_plain.k) > 0 AND k < 3;
-- a qual naming a failed column raises only if its evaluation reaches it
-- (OR, CASE), as the plain HAVING does
SELECT k, n FROM f4_final WHERE k = 1 OR r > 0 ORDER BY k;
SELECT k, n FROM f4_plain WHERE k = 1 OR r > 0 ORDER BY k;
SELECT k, n FROM f4_final WHERE CASE WHEN n = 1 THEN true ELSE r > 60 END ORDER BY k;
SELECT k, n FROM f4_plain WHERE CASE WHEN n = 1 THEN true ELSE r > 60 END ORDER BY k;
SELECT k, n FROM f4_final WHERE k = 2 OR r > 0 ORDER BY k;
SELECT k, n FROM f4_plain WHERE k = 2 OR r > 0 ORDER BY k;
CREATE VIEW f4_or WITH (security_barrier) AS SELECT * FROM f4_final WHERE (k = 3 AND r > 0) OR k = 2;
CREATE VIEW f4_plain_or WITH (security_barrier) AS SELECT * FROM f4_plain WHERE (k = 3 AND r > 0) OR k = 2;
SELECT k, n, r FROM f4_or ORDER BY k;
SELECT k, n, r FROM f4_plain_or ORDER BY k;
-- a volatile qual is called once for each row, error rows included
CREATE SEQUENCE f4_calls;
SELECT count(*) FROM f4_final WHERE nextval('f4_calls') > 0;
SELECT currval('f4_calls');
DROP VIEW f4_big, f4_plain_big, f4_or, f4_plain_or, f4_plain;
DROP SEQUENCE f4_calls;
-- each failed column raises its own error
SELECT keyedstate.create_aggregation('f4_two',
	'SELECT k, 100 / (count(*) - 1) AS r, CASE WHEN count(*) = 1 THEN (k * 100000)::int2 END AS s FROM f4 GROUP BY k');
SELECT keyedstate.sync('f4_two') > 0;
SELECT k, s FROM f4_two WHERE k = 1;
SELECT k, r FROM f4_two WHERE k = 1;
SELECT k, s FROM f4_two WHERE k = 3;
SELECT keyedstate.drop_aggregation('f4_two');
-- a final function failing fails its aggregate's columns only
CREATE FUNCTION f4_fin(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF $1 > 1000 THEN RAISE EXCEPTION 'total % is too large', $1; END IF;
	RETURN $1;
END $$;
CREATE AGGREGATE f4_capped(int) (sfunc = int4pl, stype = int, initcond = '0', finalfunc = f4_fin);
SELECT keyedstate.create_aggregation('f4_cap',
	'SELECT k, count(*) AS n, f4_capped(v) AS c, f4_capped(v) + 1 AS c1, max(v) AS m FROM f4 GROUP BY k');
SELECT keyedstate.sync('f4_cap') > 0;
SELECT k, n, m FROM f4_cap ORDER BY k;
SELECT k, n, m FROM (SELECT k, count(*) AS n, f4_capped(v) AS c, f4_capped(v) + 1 AS c1, max(v) AS m
                       FROM f4 GROUP BY k) g ORDER BY k;
SELECT * FROM f4_cap WHERE k IN (1, 3) ORDER BY k;
SELECT * FROM f4_cap WHERE k = 2;
SELECT k, c1 FROM f4_cap WHERE m < 10000 AND k > 1;
SELECT k, m FROM f4_cap WHERE c > 0 AND k = 4;
SELECT k, c FROM f4_cap WHERE m > 100000;
SELECT keyedstate.drop_aggregation('f4_cap');
DROP AGGREGATE f4_capped(int);
SELECT * FROM f4_having WHERE k = 3;
SELECT * FROM f4_having WHERE k = 1;
SELECT * FROM f4_user WHERE k = 3;
SELECT * FROM f4_user WHERE k = 1;
SELECT * FROM f4_user WHERE k = 2;
-- the keys change: every row is computed again, and equals the GROUP BY
INSERT INTO f4 (k, v) VALUES (1, 5), (2, -500), (4, -30000);
SELECT keyedstate.sync('f4_final') > 0, keyedstate.sync('f4_having') > 0, keyedstate.sync('f4_user') > 0;
SELECT * FROM f4_final ORDER BY k;
SELECT count(*) AS mismatches FROM (
  (SELECT * FROM f4_final EXCEPT SELECT k, count(*), 100 / (count(*) - 1), sum(v)::int2 FROM f4 GROUP BY k)
  UNION ALL
  (SELECT k, count(*), 100 / (count(*) - 1), sum(v)::int2 FROM f4 GROUP BY k EXCEPT SELECT * FROM f4_final)) d;
SELECT count(*) AS mismatches FROM (
  (SELECT * FROM f4_having EXCEPT SELECT k, count(*) FROM f4 GROUP BY k HAVING 100 / (count(*) - 1) > 0)
  UNION ALL
  (SELECT k, count(*) FROM f4 GROUP BY k HAVING 100 / (count(*) - 1) > 0 EXCEPT SELECT * FROM f4_having)) d;
-- key 4's sum is too large for its domain now: the view, like the query, fails on it
SELECT * FROM f4_user ORDER BY k;
SELECT k, f4_check(count(*)), sum(v)::f4_small FROM f4 GROUP BY k ORDER BY k;
SELECT count(*) AS mismatches FROM (
  (SELECT * FROM f4_user WHERE k <> 4
   EXCEPT SELECT k, f4_check(count(*)), sum(v)::f4_small FROM f4 WHERE k <> 4 GROUP BY k)
  UNION ALL
  (SELECT k, f4_check(count(*)), sum(v)::f4_small FROM f4 WHERE k <> 4 GROUP BY k
   EXCEPT SELECT * FROM f4_user WHERE k <> 4)) d;
-- sliding windows: a window's row that cannot be computed raises too
CREATE TABLE f4w (id bigserial PRIMARY KEY, k int, ts timestamptz NOT NULL);
SELECT keyedstate.create_aggregation('f4_windows',
	'SELECT k, count(*) AS n, 100 / (count(*) - 1) AS r FROM f4w GROUP BY k',
	window_size => '2 hours', window_slide => '1 hour', time_column => 'ts');
INSERT INTO f4w (k, ts) VALUES (1, '2026-01-01 10:10+00'), (1, '2026-01-01 10:20+00'), (1, '2026-01-01 11:30+00');
SELECT keyedstate.sync('f4_windows') > 0;
SELECT window_start, n, r FROM f4_windows WHERE k = 1 AND window_start = '2026-01-01 09:00+00';
SELECT window_start, n, r FROM f4_windows WHERE window_start < '2026-01-01 11:00+00' ORDER BY 1;
SELECT * FROM f4_windows ORDER BY window_start;
INSERT INTO f4w (k, ts) VALUES (1, '2026-01-01 11:40+00');
SELECT keyedstate.sync('f4_windows') > 0;
SELECT * FROM f4_windows ORDER BY window_start;
SELECT count(*) AS mismatches FROM (
  (SELECT * FROM f4_windows
   EXCEPT SELECT s, s + interval '2 hours', k, count(*), 100 / (count(*) - 1)
            FROM f4w, LATERAL (VALUES (date_bin('1 hour', ts, 'epoch')),
                                      (date_bin('1 hour', ts, 'epoch') - interval '1 hour')) w(s)
           GROUP BY 1, 2, 3)
  UNION ALL
  (SELECT s, s + interval '2 hours', k, count(*), 100 / (count(*) - 1)
     FROM f4w, LATERAL (VALUES (date_bin('1 hour', ts, 'epoch')),
                               (date_bin('1 hour', ts, 'epoch') - interval '1 hour')) w(s)
    GROUP BY 1, 2, 3
   EXCEPT SELECT * FROM f4_windows)) d;
SELECT keyedstate.drop_aggregation('f4_final');
SELECT keyedstate.drop_aggregation('f4_having');
SELECT keyedstate.drop_aggregation('f4_user');
SELECT keyedstate.drop_aggregation('f4_other');
SELECT keyedstate.drop_aggregation('f4_windows');
DROP TABLE f4, f4w;
DROP DOMAIN f4_small;
DROP FUNCTION f4_check, f4_priv;

SELECT keyedstate.drop_aggregation('ev_stats');
SELECT keyedstate.drop_aggregation('ev_custom');
DROP VIEW ev_oracle;
DROP TABLE ev;
DROP AGGREGATE weighted_avg(numeric, numeric);
DROP AGGREGATE last_value_of(anyelement);
DROP FUNCTION weighted_acc, weighted_final, last_acc;

-- HAVING conjuncts without aggregates filter rows before grouping, as the
-- planner moves them into WHERE: keys whose values are equal but not alike
-- (1.0 and 1.00, -0 and 0, 'bob' and 'Bob' under a case-insensitive
-- collation) count only the rows that pass, shown with the first that does
CREATE COLLATION hv_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE hv (id bigserial PRIMARY KEY, n numeric, f float8, t text COLLATE hv_ci, v int);
INSERT INTO hv (n, f, t, v) VALUES ('1.0', 0, 'bob', 1), ('1.00', '-0', 'Bob', 2), ('1', 0, 'BOB', 3),
	('1.00', '-0', 'Bob', 4), ('2', 1, 'alice', 5);
SELECT keyedstate.create_aggregation('hv_n',
	$q$SELECT n, count(*) AS c, sum(v) AS s FROM hv GROUP BY n HAVING n::text = '1.00'$q$);
SELECT keyedstate.create_aggregation('hv_f',
	$q$SELECT f, count(*) AS c, sum(v) AS s FROM hv GROUP BY f HAVING f::text = '-0' AND count(*) > 0$q$);
SELECT keyedstate.create_aggregation('hv_scale',
	$q$SELECT n, count(*) AS c, sum(v) AS s FROM hv GROUP BY n HAVING scale(n) = 0$q$);
SELECT keyedstate.create_aggregation('hv_t',
	$q$SELECT t, count(*) AS c, sum(v) AS s FROM hv GROUP BY t HAVING (t::bytea <> 'bob'::bytea AND count(*) > 0) AND sum(v) < 100$q$);
SELECT keyedstate.sync('hv_n') > 0, keyedstate.sync('hv_f') > 0, keyedstate.sync('hv_scale') > 0, keyedstate.sync('hv_t') > 0;
SELECT * FROM hv_n;
SELECT * FROM hv_f;
SELECT * FROM hv_scale ORDER BY n;
SELECT * FROM hv_t ORDER BY s;
SELECT count(*) AS mismatches FROM (
  (SELECT 'n', n::text, c, s FROM hv_n UNION ALL SELECT 'f', f::text, c, s FROM hv_f
   UNION ALL SELECT 'scale', n::text, c, s FROM hv_scale UNION ALL SELECT 't', t, c, s FROM hv_t)
  EXCEPT ALL
  (SELECT 'n', n::text, count(*), sum(v) FROM hv GROUP BY n HAVING n::text = '1.00'
   UNION ALL SELECT 'f', f::text, count(*), sum(v) FROM hv GROUP BY f HAVING f::text = '-0' AND count(*) > 0
   UNION ALL SELECT 'scale', n::text, count(*), sum(v) FROM hv GROUP BY n HAVING scale(n) = 0
   UNION ALL SELECT 't', t, count(*), sum(v) FROM hv GROUP BY t
     HAVING (t::bytea <> 'bob'::bytea AND count(*) > 0) AND sum(v) < 100)) d;
SELECT keyedstate.drop_aggregation('hv_n');
SELECT keyedstate.drop_aggregation('hv_f');
SELECT keyedstate.drop_aggregation('hv_scale');
SELECT keyedstate.drop_aggregation('hv_t');
DROP TABLE hv;
DROP COLLATION hv_ci;

-- the WHERE's conditions run cheapest first, as the planner orders a
-- scan's: the guard written second protects the division
CREATE TABLE wo (id bigserial PRIMARY KEY, k int, v int);
INSERT INTO wo (k, v) VALUES (1, 0), (1, 5), (2, 2), (2, 0);
SELECT k, count(*) FROM wo WHERE 10 / v > 1 AND v <> 0 GROUP BY k ORDER BY k;
SELECT keyedstate.create_aggregation('wo_n', 'SELECT k, count(*) AS n FROM wo WHERE 10 / v > 1 AND v <> 0 GROUP BY k');
SELECT keyedstate.sync('wo_n') > 0;
SELECT * FROM wo_n ORDER BY k;
SELECT keyedstate.drop_aggregation('wo_n');
DROP TABLE wo;

-- an event-time TTL is a fixed duration, EXTRACT(EPOCH FROM ttl): a month
-- is 30 days, not a calendar month (exactness review 20, F2); a watermark
-- of 2026-03-31 12:00 reaches back to 2026-03-01 12:00, so the window of
-- February 28 is gone (a calendar month would keep it) and the row for it
-- that comes after is late
CREATE TABLE tm (id bigserial PRIMARY KEY, k int, ts timestamp);
SELECT keyedstate.create_aggregation('tm_days', 'SELECT k, count(*) AS n FROM tm GROUP BY k',
	window_size => '1 day', time_column => 'ts', ttl => '1 mon');
INSERT INTO tm (k, ts) VALUES (1, '2026-02-27 10:00'), (1, '2026-02-28 10:00'), (1, '2026-03-01 10:00'),
	(1, '2026-03-02 10:00'), (1, '2026-03-31 12:00'), (2, '2026-02-28 14:00'), (2, '2026-03-01 13:00');
SELECT keyedstate.sync('tm_days') > 0;
SELECT * FROM tm_days ORDER BY window_start, k;
SELECT rows_late FROM keyedstate.status WHERE name = 'tm_days';
-- the README's oracle, with ttl_fixed
WITH r AS (SELECT *, max(ts) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS wm FROM tm),
     kept AS (SELECT * FROM r WHERE wm IS NULL OR date_bin('1 day', ts, '1970-01-01') + interval '1 day'
                > wm - make_interval(secs => EXTRACT(EPOCH FROM interval '1 mon')))
(SELECT date_bin('1 day', ts, '1970-01-01') AS s, k, count(*) FROM kept
  WHERE date_bin('1 day', ts, '1970-01-01') + interval '1 day'
        > (SELECT max(ts) FROM kept) - make_interval(secs => EXTRACT(EPOCH FROM interval '1 mon'))
  GROUP BY 1, 2
 EXCEPT ALL SELECT window_start, k, n FROM tm_days)
UNION ALL
(SELECT window_start, k, n FROM tm_days
 EXCEPT ALL SELECT date_bin('1 day', ts, '1970-01-01'), k, count(*) FROM kept
  WHERE date_bin('1 day', ts, '1970-01-01') + interval '1 day'
        > (SELECT max(ts) FROM kept) - make_interval(secs => EXTRACT(EPOCH FROM interval '1 mon'))
  GROUP BY 1, 2);
SELECT keyedstate.drop_aggregation('tm_days');
DROP TABLE tm;

-- sliding windows merge panes with the combine function, called with its
-- expression as nodeAgg calls it: a polymorphic one (range_intersect_agg's,
-- a PL/pgSQL one) reads its argument type from it (exactness review 20,
-- F3: every merge failed)
CREATE FUNCTION pmax(anyelement, anyelement) RETURNS anyelement IMMUTABLE LANGUAGE plpgsql
	AS $$ BEGIN RETURN greatest($1, $2); END $$;
CREATE AGGREGATE pmaxagg(anyelement) (sfunc = pmax, stype = anyelement, combinefunc = pmax);
CREATE TABLE s40 (id bigserial PRIMARY KEY, k int, a int, ts timestamptz);
SELECT keyedstate.create_aggregation('ria',
	'SELECT k, count(*) AS n, range_intersect_agg(int4range(a, a + 10)) AS r, pmaxagg(a) AS m FROM s40 GROUP BY k',
	window_size => '20 minutes', window_slide => '10 minutes', time_column => 'ts');
INSERT INTO s40 (k, a, ts) VALUES (1, 1, '2026-01-01 00:05+00'), (1, 5, '2026-01-01 00:15+00'),
	(2, 3, '2026-01-01 00:12+00'), (2, 7, '2026-01-01 00:19+00'), (1, 9, '2026-01-01 00:29+00');
SELECT keyedstate.sync('ria') > 0;
SELECT window_start AT TIME ZONE 'UTC' AS start, k, n, r, m FROM ria ORDER BY 1, 2;
WITH o AS (SELECT w AS window_start, w + interval '20 minutes' AS window_end, k, count(*) AS n,
				  range_intersect_agg(int4range(a, a + 10)) AS r, pmaxagg(a) AS m
			 FROM s40, LATERAL generate_series(date_bin('10 minutes', ts, '1970-01-01 00:00+00') - interval '10 minutes',
											   date_bin('10 minutes', ts, '1970-01-01 00:00+00'), interval '10 minutes') w
			GROUP BY 1, 2, 3)
(SELECT * FROM o EXCEPT ALL SELECT * FROM ria) UNION ALL (SELECT * FROM ria EXCEPT ALL SELECT * FROM o);
SELECT keyedstate.drop_aggregation('ria');
DROP TABLE s40;
DROP AGGREGATE pmaxagg(anyelement);
DROP FUNCTION pmax(anyelement, anyelement);

-- a pane's state goes to the combine function read-only: a PL/pgSQL one
-- frees a read-write expanded argument (array_append's state) as it
-- returns (exactness review 21, F1: wrong windows, then crashes)
CREATE FUNCTION acomb(a int[], b int[]) RETURNS int[] IMMUTABLE LANGUAGE plpgsql
	AS $$ BEGIN RETURN coalesce(a, '{}') || b; END $$;
CREATE AGGREGATE aacc(int) (sfunc = array_append, stype = int[], combinefunc = acomb);
CREATE TABLE s44 (id bigserial PRIMARY KEY, k int, x int, ts timestamptz);
SELECT keyedstate.create_aggregation('aw', 'SELECT k, aacc(x) AS a FROM s44 GROUP BY k',
	window_size => '1 hour', window_slide => '20 minutes', time_column => 'ts');
INSERT INTO s44 (k, x, ts) SELECT g % 3, g, '2026-12-01 00:00+00'::timestamptz + (g * 7 % 120) * interval '1 minute'
  FROM generate_series(1, 12) g;
SELECT keyedstate.sync('aw') > 0;
INSERT INTO s44 (k, x, ts) SELECT g % 3, g, '2026-12-01 00:00+00'::timestamptz + (g * 7 % 120) * interval '1 minute'
  FROM generate_series(13, 400) g;
SELECT keyedstate.sync('aw') > 0;
WITH o AS (SELECT w AS window_start, k, aacc(x ORDER BY date_bin('20 minutes', ts, '1970-01-01 00:00+00'), id) AS a
			 FROM s44, LATERAL generate_series(date_bin('20 minutes', ts, '1970-01-01 00:00+00') - interval '40 minutes',
											   date_bin('20 minutes', ts, '1970-01-01 00:00+00'), interval '20 minutes') w
			GROUP BY 1, 2)
SELECT (SELECT count(*) FROM aw) AS windows,
	   (SELECT count(*) FROM ((SELECT * FROM o EXCEPT ALL SELECT window_start, k, a FROM aw)
							  UNION ALL (SELECT window_start, k, a FROM aw EXCEPT ALL SELECT * FROM o)) d) AS differ;
SELECT keyedstate.drop_aggregation('aw');
DROP TABLE s44;
DROP AGGREGATE aacc(int);
DROP FUNCTION acomb(int[], int[]);

-- rebuild() consumes the rows again and forgets how far a lengthened TTL
-- had reached: the rebuilt view equals a new aggregation's with the TTL as
-- it is now (exactness review 20, F4: the old TTL's windows stayed gone)
CREATE TABLE s43 (id bigserial PRIMARY KEY, k int, ts timestamp);
SELECT keyedstate.create_aggregation('fl', 'SELECT k, count(*) AS n FROM s43 GROUP BY k',
	window_size => '10 minutes', time_column => 'ts', ttl => '10 minutes');
INSERT INTO s43 (k, ts) VALUES (1, '2026-01-01 00:01'), (1, '2026-01-01 00:11'), (1, '2026-01-01 00:41');
SELECT keyedstate.sync('fl') > 0;
SELECT keyedstate.alter_aggregation('fl', ttl => '1 day');
INSERT INTO s43 (k, ts) VALUES (1, '2026-01-01 00:02'), (2, '2026-01-01 00:42');
SELECT keyedstate.sync('fl') > 0;
SELECT window_start, k, n FROM fl ORDER BY 1, 2;
SELECT keyedstate.rebuild('fl');
SELECT keyedstate.sync('fl') > 0;
SELECT window_start, k, n FROM fl ORDER BY 1, 2;
SELECT keyedstate.drop_aggregation('fl');
DROP TABLE s43;
