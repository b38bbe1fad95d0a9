-- Basic behaviour: define, consume, query, compare with a plain GROUP BY.
CREATE EXTENSION keyedstate;
SET TimeZone = 'UTC';

CREATE TABLE readings (
	id bigserial PRIMARY KEY,
	sensor_id int,
	value double precision NOT NULL,
	reading numeric NOT NULL,
	ts timestamptz NOT NULL
);
INSERT INTO readings (sensor_id, value, reading, ts)
SELECT i % 7, i * 1.5, i % 100 + 0.25, timestamptz '2026-01-01 00:00:00+00' + i * interval '17 seconds'
  FROM generate_series(1, 2000) i;

-- backlog is consumed from the beginning
SELECT keyedstate.create_aggregation('sensor_stats',
	'SELECT sensor_id, count(*) AS n, sum(reading) AS total, avg(reading) AS mean,
	        min(value) AS lo, max(value) AS hi
	   FROM readings GROUP BY sensor_id');
SELECT keyedstate.sync('sensor_stats');
SELECT * FROM sensor_stats ORDER BY sensor_id;

-- the view has exactly the query's columns and types
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'sensor_stats'::regclass AND attnum > 0 ORDER BY attnum;

-- new rows, including a NULL key, are reflected after sync
INSERT INTO readings (sensor_id, value, reading, ts)
SELECT CASE WHEN i % 10 = 0 THEN NULL ELSE i % 9 END, i, i % 13, timestamptz '2026-01-02 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 1000) i;
SELECT keyedstate.sync('sensor_stats');
-- oracle: no row differs from the plain GROUP BY
(SELECT * FROM sensor_stats
 EXCEPT SELECT sensor_id, count(*), sum(reading), avg(reading), min(value), max(value) FROM readings GROUP BY sensor_id)
UNION ALL
(SELECT sensor_id, count(*), sum(reading), avg(reading), min(value), max(value) FROM readings GROUP BY sensor_id
 EXCEPT SELECT * FROM sensor_stats);
SELECT * FROM sensor_stats WHERE sensor_id IS NULL;

-- a point query finds the key without scanning every key
EXPLAIN (COSTS OFF) SELECT * FROM sensor_stats WHERE sensor_id = 3;
SELECT * FROM sensor_stats WHERE sensor_id = 3;
SELECT * FROM sensor_stats WHERE 3 = sensor_id;
SELECT count(*) FROM sensor_stats WHERE sensor_id = 12345;
PREPARE lookup(int) AS SELECT n FROM sensor_stats WHERE sensor_id = $1;
EXECUTE lookup(5);

-- several keys, an expression key evaluated with the creation-time TimeZone,
-- FILTER, WHERE, HAVING and expressions over aggregates
SELECT keyedstate.create_aggregation('per_day',
	'SELECT sensor_id, date_trunc(''day'', ts) AS day, count(*) AS n,
	        count(*) FILTER (WHERE value > 1000) AS big,
	        sum(reading) / count(*) AS mean, max(value) - min(value) AS spread
	   FROM readings WHERE sensor_id IS NOT NULL
	  GROUP BY sensor_id, date_trunc(''day'', ts) HAVING count(*) > 100');
SET TimeZone = 'America/New_York';
SELECT keyedstate.sync('per_day');
SET TimeZone = 'UTC';
(SELECT * FROM per_day
 EXCEPT SELECT sensor_id, date_trunc('day', ts), count(*), count(*) FILTER (WHERE value > 1000),
               sum(reading) / count(*), max(value) - min(value)
          FROM readings WHERE sensor_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 100)
UNION ALL
(SELECT sensor_id, date_trunc('day', ts), count(*), count(*) FILTER (WHERE value > 1000),
        sum(reading) / count(*), max(value) - min(value)
   FROM readings WHERE sensor_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 100
 EXCEPT SELECT * FROM per_day);
SELECT count(*) FROM per_day;

-- start_from 'now' skips the rows already there
SELECT keyedstate.create_aggregation('from_now', 'SELECT sensor_id, count(*) AS n FROM readings GROUP BY sensor_id',
	start_from => 'now');
SELECT keyedstate.sync('from_now') = (SELECT max(id) FROM readings);
SELECT count(*) FROM from_now;
INSERT INTO readings (sensor_id, value, reading, ts) VALUES (1, 1, 1, now()), (1, 2, 2, now()), (2, 3, 3, now());
SELECT keyedstate.sync('from_now') > 0;
SELECT * FROM from_now ORDER BY sensor_id;

-- an explicit offset column, an identity column, and names that need quoting
CREATE TABLE "Clicks" (pos int GENERATED ALWAYS AS IDENTITY UNIQUE, "Page Name" text, n int);
INSERT INTO "Clicks" ("Page Name", n) SELECT 'page ' || (i % 3), i FROM generate_series(1, 30) i;
SELECT keyedstate.create_aggregation('"My Stats"',
	'SELECT "Page Name", sum(n) AS "Total ""n""" FROM "Clicks" GROUP BY "Page Name"',
	offset_column => 'pos');
SELECT keyedstate.sync('"My Stats"') > 0;
SELECT * FROM "My Stats" ORDER BY 1;
SELECT * FROM "My Stats" WHERE "Page Name" = 'page 1';

SELECT name, source_table, offset_column FROM keyedstate.aggregations ORDER BY id;
SELECT name, state, keys FROM keyedstate.status ORDER BY name;

SELECT keyedstate.drop_aggregation('"My Stats"');
SELECT keyedstate.drop_aggregation('from_now');
SELECT keyedstate.drop_aggregation('per_day');
SELECT keyedstate.drop_aggregation('sensor_stats');
SELECT count(*) FROM keyedstate_internal.aggregation;
SELECT count(*) FROM keyedstate_internal.state;
SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'keyedstate%';
DROP TABLE readings, "Clicks";
