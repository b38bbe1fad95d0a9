-- Key lookups: a live view reads only the hash chains of the keys a query
-- asks for when every grouping key is compared for equality with values
-- known before the scan.  For every key type, kind of value and collation,
-- the rows must be those of a full scan of the same view; which cases use a
-- lookup is asserted from EXPLAIN.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE COLLATION ks_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE src (
	id bigserial PRIMARY KEY,
	i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8,
	t text, tc text COLLATE "C", tci text COLLATE ks_ci, vc varchar(20), ch char(6), nm name,
	u uuid, d date, ts timestamp, tstz timestamptz, b bool, o oid
);
-- every key column is NULL in rows whose g is a multiple of 37
INSERT INTO src (i2, i4, i8, num, f4, f8, t, tc, tci, vc, ch, nm, u, d, ts, tstz, b, o)
SELECT CASE WHEN g % 37 = 0 THEN NULL ELSE v.i2 END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.i4 END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.i8 END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.num END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.f4 END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.f8 END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.w END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.u END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.d END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.ts END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.ts END,
	   CASE WHEN g % 37 = 0 THEN NULL ELSE v.b END, CASE WHEN g % 37 = 0 THEN NULL ELSE v.o END
  FROM generate_series(1, 300) g,
	   LATERAL (SELECT (g % 50)::int2 AS i2, g % 50 AS i4, (g % 50) * 100 + 42 AS i8,
					   (g % 40) / 4.0 AS num, ((g % 30) / 4.0)::float4 AS f4,
					   CASE WHEN g % 97 = 0 THEN 'NaN' ELSE (g % 30) / 4.0 END::float8 AS f8,
					   (ARRAY['apple', 'Apple', 'APPLE', 'pear', 'Pear', 'fig'])[g % 6 + 1] AS w,
					   md5((g % 20)::text)::uuid AS u, date '2026-01-01' + g % 30 AS d,
					   timestamp '2026-01-01' + (g % 30) * interval '1 hour' AS ts,
					   g % 3 = 0 AS b, (g % 20)::oid AS o) v;

SELECT keyedstate.create_aggregation('agg_i2', 'SELECT i2 AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY i2');
SELECT keyedstate.create_aggregation('agg_i4', 'SELECT i4 AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY i4');
SELECT keyedstate.create_aggregation('agg_i8', 'SELECT i8 AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY i8');
SELECT keyedstate.create_aggregation('agg_num', 'SELECT num AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY num');
SELECT keyedstate.create_aggregation('agg_f4', 'SELECT f4 AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY f4');
SELECT keyedstate.create_aggregation('agg_f8', 'SELECT f8 AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY f8');
SELECT keyedstate.create_aggregation('agg_t', 'SELECT t AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY t');
SELECT keyedstate.create_aggregation('agg_tc', 'SELECT tc AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY tc');
SELECT keyedstate.create_aggregation('agg_tci', 'SELECT tci AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY tci');
SELECT keyedstate.create_aggregation('agg_vc', 'SELECT vc AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY vc');
SELECT keyedstate.create_aggregation('agg_ch', 'SELECT ch AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY ch');
SELECT keyedstate.create_aggregation('agg_nm', 'SELECT nm AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY nm');
SELECT keyedstate.create_aggregation('agg_u', 'SELECT u AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY u');
SELECT keyedstate.create_aggregation('agg_d', 'SELECT d AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY d');
SELECT keyedstate.create_aggregation('agg_ts', 'SELECT ts AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY ts');
SELECT keyedstate.create_aggregation('agg_tstz', 'SELECT tstz AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY tstz');
SELECT keyedstate.create_aggregation('agg_b', 'SELECT b AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY b');
SELECT keyedstate.create_aggregation('agg_o', 'SELECT o AS k, count(*) AS n, sum(id) AS s FROM src GROUP BY o');
SELECT keyedstate.create_aggregation('agg_2',
	'SELECT i4 AS a, t AS b, count(*) AS n, sum(id) AS s FROM src GROUP BY i4, t');
SELECT count(*) FILTER (WHERE keyedstate.sync(name) = (SELECT max(id) FROM src)) AS synced
  FROM keyedstate.aggregations;
SELECT name, keys FROM keyedstate.status ORDER BY name;

-- One case: whether the scan is a key lookup (from EXPLAIN), the rows it
-- returns, the rows a full scan of the same view returns with the clause
-- filtered above it, and whether both are the same rows.
CREATE FUNCTION lookup_check(view regclass, clause text,
							 OUT lookup bool, OUT pushed bigint, OUT scanned bigint, OUT same bool)
LANGUAGE plpgsql AS $$
DECLARE
	line text;
	rows_pushed text;
	rows_scanned text;
BEGIN
	lookup := false;
	FOR line IN EXECUTE format('EXPLAIN (COSTS OFF) SELECT * FROM %s WHERE %s', view, clause) LOOP
		IF line LIKE '%Key Lookup: true%' THEN
			lookup := true;
		END IF;
	END LOOP;
	EXECUTE format('SELECT count(*), string_agg(x::text, ''|'' ORDER BY x::text COLLATE "C")
					  FROM (SELECT * FROM %s WHERE %s) x', view, clause)
		INTO pushed, rows_pushed;
	EXECUTE format('SELECT count(*), string_agg(x::text, ''|'' ORDER BY x::text COLLATE "C")
					  FROM (SELECT * FROM (SELECT * FROM %s OFFSET 0) s WHERE %s) x', view, clause)
		INTO scanned, rows_scanned;
	same := rows_pushed IS NOT DISTINCT FROM rows_scanned;
END $$;

-- EXPLAIN of a query, without the aggregation ids (they depend on the
-- aggregations earlier tests created)
CREATE FUNCTION explain_ids(query text, options text DEFAULT 'COSTS OFF') RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE format('EXPLAIN (%s) %s', options, query) LOOP
		RETURN NEXT regexp_replace(regexp_replace(line, 'live_\d+', 'live_N', 'g'),
								   'Aggregation: \d+', 'Aggregation: N');
	END LOOP;
END $$;

-- the matrix: key types x kinds of values
SELECT c.view, c.clause, r.*
  FROM (VALUES
	-- int2
	('agg_i2', 'k = 7'), ('agg_i2', '7 = k'), ('agg_i2', 'k = 7::int2'), ('agg_i2', 'k = 7::int8'),
	('agg_i2', 'k = ''7'''), ('agg_i2', 'k = 70000'), ('agg_i2', 'k IN (1, 2, 70000)'),
	('agg_i2', 'k = ANY (''{1,2}''::int8[])'), ('agg_i2', 'k = NULL'), ('agg_i2', 'k IN (3, NULL)'),
	('agg_i2', 'k = 7.0'), ('agg_i2', 'k IS NULL'),
	-- int4; 4294967302 = 2^32 + 6 hashes like 7 as an int8, a collision rechecked away
	('agg_i4', 'k = 7'), ('agg_i4', 'k = 7::int2'), ('agg_i4', 'k = 7::int8'), ('agg_i4', 'k = ''7'''),
	('agg_i4', 'k = 4294967302'), ('agg_i4', 'k IN (7::int8, 4294967302)'),
	('agg_i4', 'k IN (1, 2, 3)'), ('agg_i4', 'k = ANY (ARRAY[1, 2]::int2[])'), ('agg_i4', 'k = 7 AND k = 8'),
	('agg_i4', 'k = 7 AND k IN (7, 8)'), ('agg_i4', 'k = 7 OR k = 8'), ('agg_i4', 'k = 7::numeric'),
	('agg_i4', 'k + 0 = 7'), ('agg_i4', 'k = 3 + 4'), ('agg_i4', 'k = abs(-7)'),
	('agg_i4', 'k = length(to_char(now(), ''HH24MI''))'), ('agg_i4', 'k = (random() * 0)::int + 7'),
	-- int8
	('agg_i8', 'k = 4242'), ('agg_i8', 'k = 4242::int2'), ('agg_i8', 'k = 4242::bigint'),
	('agg_i8', 'k = ''4242'''), ('agg_i8', '4242 = k'), ('agg_i8', 'k IN (42, 4242, 142)'),
	('agg_i8', 'k = ANY (ARRAY[4242, 142])'), ('agg_i8', 'k IN (4242::int2, 142::int8)'),
	('agg_i8', 'k = 4242.0'), ('agg_i8', 'k = 4242::float8'), ('agg_i8', 'k = NULL::int4'),
	-- numeric: equal values of different scales hash alike
	('agg_num', 'k = 2.5'), ('agg_num', 'k = 2.50'), ('agg_num', 'k = 2.500::numeric(10,3)'),
	('agg_num', 'k = 5'), ('agg_num', 'k = 5::int8'), ('agg_num', 'k = ''2.5'''),
	('agg_num', 'k IN (2.5, 3, 7.25)'), ('agg_num', 'k = 2.5::float8'),
	-- float4 and float8, cross-type, -0 and NaN
	('agg_f4', 'k = 1.25'), ('agg_f4', 'k = 1.25::float4'), ('agg_f4', 'k = 1.25::float8'),
	('agg_f4', 'k = 1.1'), ('agg_f4', 'k = 1.1::float4'), ('agg_f4', 'k = 2'), ('agg_f4', 'k = ''-0'''),
	('agg_f4', 'k = ''-0''::float8'), ('agg_f4', 'k IN (0.5, 1.5, 1.1)'),
	('agg_f8', 'k = 1.25'), ('agg_f8', 'k = 1.25::float4'), ('agg_f8', 'k = 1.1::float4'),
	('agg_f8', 'k = 1.1'), ('agg_f8', 'k = ''-0''::float4'), ('agg_f8', 'k = ''NaN'''),
	('agg_f8', 'k = ''NaN''::float4'), ('agg_f8', 'k IN (0.25::float4, 2.5::float8, ''NaN'')'),
	-- text of the default collation
	('agg_t', 'k = ''apple'''), ('agg_t', 'k = ''apple''::varchar'), ('agg_t', 'k = ''apple''::name'),
	('agg_t', 'k = ''apple''::char(5)'), ('agg_t', 'k IN (''apple'', ''pear'', ''none'')'),
	('agg_t', 'k = ''apple'' COLLATE "C"'), ('agg_t', 'k = ''apple'' COLLATE "default"'),
	('agg_t', 'k = ''apple'' COLLATE ks_ci'), ('agg_t', 'k COLLATE ks_ci IN (''apple'', ''pear'')'),
	('agg_t', 'k = ''apple'' COLLATE "und-x-icu"'),
	-- text of collation "C"
	('agg_tc', 'k = ''Apple'''), ('agg_tc', 'k = ''Apple'' COLLATE "default"'),
	('agg_tc', 'k = ''Apple'' COLLATE ks_ci'), ('agg_tc', 'k IN (''Apple'', ''fig'')'),
	('agg_tc', 'k = ''Apple''::name'),
	-- text of the nondeterministic collation
	('agg_tci', 'k = ''apple'''), ('agg_tci', 'k = ''PEAR'''), ('agg_tci', 'k IN (''APPLE'', ''Fig'', ''kiwi'')'),
	('agg_tci', 'k = ''APPLE'' COLLATE ks_ci'), ('agg_tci', 'k = ''APPLE'' COLLATE "C"'),
	('agg_tci', 'k = ''apple'' COLLATE "C"'), ('agg_tci', 'k = ''Apple'' COLLATE "C"'), ('agg_tci', 'k = ''APPLE''::varchar'),
	('agg_tci', 'k = ''APPLE''::name COLLATE ks_ci'),
	-- varchar, char(n), name
	('agg_vc', 'k = ''pear'''), ('agg_vc', 'k = ''pear''::text'), ('agg_vc', 'k = ''pear''::name'),
	('agg_vc', 'k IN (''pear'', ''Pear'')'), ('agg_vc', 'k = ''PEAR'' COLLATE ks_ci'),
	('agg_ch', 'k = ''fig'''), ('agg_ch', 'k = ''fig   '''), ('agg_ch', 'k = ''fig''::text'),
	('agg_ch', 'k IN (''fig'', ''pear'')'), ('agg_ch', 'k = ''FIG'' COLLATE ks_ci'),
	('agg_nm', 'k = ''fig'''), ('agg_nm', 'k = ''fig''::text'), ('agg_nm', 'k = ''fig''::varchar'),
	('agg_nm', 'k IN (''fig'', ''APPLE'')'), ('agg_nm', 'k = ''FIG'' COLLATE ks_ci'),
	-- uuid, bool, oid
	('agg_u', 'k = md5(''3'')::uuid'), ('agg_u', 'k = ''eccbc87e-4b5c-e2fe-2830-8fd9f2a7baf3'''),
	('agg_u', 'k IN (md5(''1'')::uuid, md5(''2'')::uuid)'),
	('agg_b', 'k = true'), ('agg_b', 'k = ''f'''), ('agg_b', 'k'), ('agg_b', 'NOT k'), ('agg_b', 'k <> true'),
	('agg_b', 'k IS TRUE'), ('agg_b', 'k IS FALSE'), ('agg_b', 'k IS NOT FALSE'), ('agg_b', 'k IN (true)'),
	('agg_b', 'k IN (true, false)'), ('agg_b', 'k = NULL::bool'),
	('agg_o', 'k = 5'), ('agg_o', 'k = 5::oid'), ('agg_o', 'k = ''5'''), ('agg_o', 'k IN (1, 2)'),
	-- date, timestamp, timestamptz: the cross-type operators are in no hash family
	('agg_d', 'k = ''2026-01-05'''), ('agg_d', 'k = date ''2026-01-05'''),
	('agg_d', 'k = timestamp ''2026-01-05'''), ('agg_d', 'k = timestamptz ''2026-01-05 00:00+00'''),
	('agg_d', 'k IN (''2026-01-05'', ''2026-01-06'')'),
	('agg_ts', 'k = ''2026-01-01 05:00'''), ('agg_ts', 'k = date ''2026-01-02'''),
	('agg_ts', 'k = timestamptz ''2026-01-01 05:00+00'''),
	('agg_tstz', 'k = ''2026-01-01 05:00+00'''), ('agg_tstz', 'k = timestamp ''2026-01-01 05:00'''),
	('agg_tstz', 'k = date ''2026-01-02'''), ('agg_tstz', 'k IN (''2026-01-01 05:00+00'', ''2026-01-01 06:00+00'')'),
	-- a two-column key: every column needed
	('agg_2', 'a = 7 AND b = ''Apple'''), ('agg_2', 'a = 7::int8 AND b = ''Apple''::name'),
	('agg_2', 'a IN (1, 2, 3, 4) AND b IN (''apple'', ''pear'', ''Pear'')'), ('agg_2', 'a = 7'),
	('agg_2', 'b = ''Apple'''), ('agg_2', 'a = 7 AND b = ''APPLE'' COLLATE ks_ci'),
	('agg_2', 'a = 7 AND b = NULL'), ('agg_2', 'a IN (7, 13, NULL) AND b IN (''Apple'', NULL, ''pear'')'),
	('agg_2', 'a = 7 AND b IS NULL')
  ) c(view, clause),
	LATERAL lookup_check(c.view::regclass, c.clause) r;

-- what EXPLAIN shows
SELECT explain_ids($$SELECT * FROM agg_i8 WHERE k = 4242$$);
SELECT explain_ids($$SELECT * FROM agg_t WHERE k = 'apple' COLLATE ks_ci$$);
SELECT explain_ids($$SELECT * FROM agg_tci WHERE k = 'APPLE'$$);
SELECT explain_ids($$SELECT * FROM agg_2 WHERE a IN (1, 2) AND b = 'fig'$$);
-- duplicates and NULLs in the values: each key once
SELECT explain_ids($$SELECT * FROM agg_i8 WHERE k IN (4242, 4242::int2, 142, NULL, 99999)$$,
	'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF');
SELECT k, n FROM agg_i8 WHERE k IN (4242, 4242::int2, 142, NULL, 99999) ORDER BY k;
-- more combinations than a scan looks up: it reads every key instead, same rows
SELECT explain_ids($$SELECT * FROM agg_2 WHERE a = ANY (ARRAY(SELECT generate_series(1, 400)))
										AND b = ANY (ARRAY(SELECT 'x' || generate_series(1, 300) UNION ALL SELECT 'fig'))$$,
	'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF');
SELECT count(*) FROM agg_2 WHERE a = ANY (ARRAY(SELECT generate_series(1, 400)))
							 AND b = ANY (ARRAY(SELECT 'x' || generate_series(1, 300) UNION ALL SELECT 'fig'));
SELECT count(*) FROM agg_2 WHERE a BETWEEN 1 AND 400 AND b = 'fig';

-- parameters of a prepared statement, of other types than the key's, in a
-- generic plan: the first count is a lookup, the second a full scan
SET plan_cache_mode = force_generic_plan;
PREPARE p_i8_int4(int4) AS
	SELECT (SELECT count(*) FROM agg_i8 WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_i8 OFFSET 0) s WHERE k = $1) AS scanned;
SELECT explain_ids($$EXECUTE p_i8_int4(4242)$$);
EXECUTE p_i8_int4(4242);
EXECUTE p_i8_int4(4243);
EXECUTE p_i8_int4(NULL);
PREPARE p_i8_int2(int2) AS
	SELECT (SELECT count(*) FROM agg_i8 WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_i8 OFFSET 0) s WHERE k = $1) AS scanned;
EXECUTE p_i8_int2(4242);
PREPARE p_i2_int8(int8) AS
	SELECT (SELECT count(*) FROM agg_i2 WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_i2 OFFSET 0) s WHERE k = $1) AS scanned;
EXECUTE p_i2_int8(7);
EXECUTE p_i2_int8(4294967303);
PREPARE p_i8_numeric(numeric) AS SELECT count(*) FROM agg_i8 WHERE k = $1;
SELECT explain_ids($$EXECUTE p_i8_numeric(4242)$$);
EXECUTE p_i8_numeric(4242);
PREPARE p_i8_array(int4[]) AS
	SELECT (SELECT count(*) FROM agg_i8 WHERE k = ANY ($1)) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_i8 OFFSET 0) s WHERE k = ANY ($1)) AS scanned;
SELECT explain_ids($$EXECUTE p_i8_array('{4242,142}')$$);
EXECUTE p_i8_array('{4242,142,NULL,7}');
EXECUTE p_i8_array(NULL);
PREPARE p_f4_float8(float8) AS
	SELECT (SELECT count(*) FROM agg_f4 WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_f4 OFFSET 0) s WHERE k = $1) AS scanned;
EXECUTE p_f4_float8(1.25);
EXECUTE p_f4_float8(1.1);
PREPARE p_t_name(name) AS
	SELECT (SELECT count(*) FROM agg_t WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_t OFFSET 0) s WHERE k = $1) AS scanned;
EXECUTE p_t_name('apple');
PREPARE p_tci_text(text) AS
	SELECT (SELECT count(*) FROM agg_tci WHERE k = $1) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_tci OFFSET 0) s WHERE k = $1) AS scanned;
EXECUTE p_tci_text('APPLE');
PREPARE p_tc_ci(text) AS
	SELECT (SELECT count(*) FROM agg_tc WHERE k = $1 COLLATE ks_ci) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_tc OFFSET 0) s WHERE k = $1 COLLATE ks_ci) AS scanned;
SELECT explain_ids($$EXECUTE p_tc_ci('apple')$$);
EXECUTE p_tc_ci('apple');
PREPARE p_2(int8, varchar) AS
	SELECT (SELECT count(*) FROM agg_2 WHERE a = $1 AND b = $2) AS pushed,
		   (SELECT count(*) FROM (SELECT * FROM agg_2 OFFSET 0) s WHERE a = $1 AND b = $2) AS scanned;
SELECT explain_ids($$EXECUTE p_2(7, 'Apple')$$);
EXECUTE p_2(7, 'Apple');
RESET plan_cache_mode;

-- parameters of the executor: an initplan, a correlated subquery, and the
-- inner side of a nested loop
SELECT explain_ids($$SELECT * FROM agg_i8 WHERE k = (SELECT max(i4) * 100 + 42 FROM src)$$);
SELECT k, n FROM agg_i8 WHERE k = (SELECT max(i4) * 100 + 42 FROM src);
SELECT explain_ids($$SELECT g, (SELECT n FROM agg_i8 WHERE k = g * 100 + 42) FROM generate_series(0, 60) g$$);
SELECT count(*), sum(n) FROM (SELECT g, (SELECT n FROM agg_i8 WHERE k = g * 100 + 42) AS n
								FROM generate_series(0, 60) g) x;
SELECT count(*), sum(n) FROM (SELECT g, (SELECT n FROM (SELECT * FROM agg_i8 OFFSET 0) s WHERE k = g * 100 + 42) AS n
								FROM generate_series(0, 60) g) x;
CREATE TABLE probes (x int4, w text);
INSERT INTO probes SELECT g, (ARRAY['apple', 'Apple', 'pear', 'kiwi'])[g % 4 + 1] FROM generate_series(0, 60) g;
ANALYZE probes;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
SELECT explain_ids($$SELECT p.x, v.n FROM probes p JOIN agg_i8 v ON v.k = p.x * 100 + 42$$);
SELECT explain_ids($$SELECT p.x, v.n FROM probes p JOIN agg_i2 v ON v.k = p.x$$);
SELECT explain_ids($$SELECT p.x, v.n FROM probes p JOIN agg_2 v ON v.a = p.x AND v.b = p.w$$);
SELECT explain_ids($$SELECT p.x, v.n FROM probes p JOIN agg_tci v ON v.k = p.w$$);
SELECT explain_ids($$SELECT p.x, v.n FROM probes p JOIN agg_i8 v ON v.k = p.x * 100 + 42$$,
	'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF');
-- the outer side of an outer join cannot take values from the inner side
SELECT explain_ids($$SELECT v.k, p.x FROM agg_i2 v LEFT JOIN probes p ON v.k = p.x$$);
SELECT count(*), sum(v.n) FROM probes p JOIN agg_i8 v ON v.k = p.x * 100 + 42;
SELECT count(*), sum(v.n) FROM probes p JOIN agg_i2 v ON v.k = p.x;
SELECT count(*), sum(p.x) FROM agg_i2 v LEFT JOIN probes p ON v.k = p.x;
SELECT count(*), sum(v.n) FROM probes p JOIN agg_2 v ON v.a = p.x AND v.b = p.w;
SELECT count(*), sum(v.n) FROM probes p JOIN agg_tci v ON v.k = p.w;
SELECT count(*), sum(v.n) FROM probes p LEFT JOIN agg_2 v ON v.a = p.x AND v.b = p.w;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;
SELECT count(*), sum(v.n) FROM probes p JOIN (SELECT * FROM agg_i8 OFFSET 0) v ON v.k = p.x * 100 + 42;
SELECT count(*), sum(v.n) FROM probes p JOIN (SELECT * FROM agg_i2 OFFSET 0) v ON v.k = p.x;
SELECT count(*), sum(p.x) FROM (SELECT * FROM agg_i2 OFFSET 0) v LEFT JOIN probes p ON v.k = p.x;
SELECT count(*), sum(v.n) FROM probes p JOIN (SELECT * FROM agg_2 OFFSET 0) v ON v.a = p.x AND v.b = p.w;
SELECT count(*), sum(v.n) FROM probes p JOIN (SELECT * FROM agg_tci OFFSET 0) v ON v.k = p.w;
SELECT count(*), sum(v.n) FROM probes p LEFT JOIN (SELECT * FROM agg_2 OFFSET 0) v ON v.a = p.x AND v.b = p.w;

SELECT count(*) FILTER (WHERE keyedstate.drop_aggregation(name) IS NOT NULL) FROM keyedstate.aggregations;
DROP FUNCTION lookup_check, explain_ids;
DROP TABLE src, probes;
DROP COLLATION ks_ci;
