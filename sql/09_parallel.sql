-- Parallel aggregations: parts over key groups, the views that show them,
-- rescaling, and the parameters refused.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE TABLE clicks (id bigserial PRIMARY KEY, page int NOT NULL, ms int NOT NULL);
INSERT INTO clicks (page, ms) SELECT g % 50, g FROM generate_series(1, 1000) g;

SELECT keyedstate.create_aggregation('per_page',
	'SELECT page, count(*) AS n, sum(ms) AS total, string_agg(id::text, '','') AS ids FROM clicks GROUP BY page',
	parallelism => 3, max_parallelism => 10);
SELECT keyedstate.sync('per_page');

-- three parts of ten key groups, as even as they can be
SELECT part, first_key_group, last_key_group, state, consumed_offset
  FROM keyedstate.workers WHERE aggregation = 'per_page' ORDER BY part;
SELECT state, parallelism, keys, consumed_offset FROM keyedstate.status WHERE name = 'per_page';
SELECT parallelism, max_parallelism FROM keyedstate.aggregations WHERE name = 'per_page';

-- the view reads every part and equals the GROUP BY
CREATE VIEW per_page_oracle AS
	SELECT page, count(*) AS n, sum(ms) AS total, string_agg(id::text, ',' ORDER BY id) AS ids
	  FROM clicks GROUP BY page;
SELECT count(*) AS rows, (SELECT count(*) FROM (TABLE per_page EXCEPT TABLE per_page_oracle) d) AS wrong
  FROM per_page;
SELECT page, n, total FROM per_page WHERE page IN (7, 42) ORDER BY page;

-- rescale to two parts; the next rescale waits for their first checkpoint
-- (asked in the same transaction: after its commit, the new parts could
-- take it before the next statement, as a CI run saw)
INSERT INTO clicks (page, ms) SELECT g % 50, g FROM generate_series(1, 500) g;
BEGIN;
SELECT keyedstate.alter_aggregation('per_page', parallelism => 2);
SAVEPOINT again;
SELECT keyedstate.alter_aggregation('per_page', parallelism => 1);
ROLLBACK TO again;
COMMIT;
SELECT keyedstate.sync('per_page');
SELECT part, first_key_group, last_key_group FROM keyedstate.workers WHERE aggregation = 'per_page' ORDER BY part;
SELECT count(*) AS rows, (SELECT count(*) FROM (TABLE per_page EXCEPT TABLE per_page_oracle) d) AS wrong
  FROM per_page;
SELECT keyedstate.checkpoint('per_page');
SELECT layout, part, seed_from IS NULL AS seeded FROM keyedstate_internal.part p
  JOIN keyedstate.aggregations a ON a.id = p.aggregation_id
 WHERE a.name = 'per_page' AND NOT retired ORDER BY layout, part;

-- and back to one part
SELECT keyedstate.alter_aggregation('per_page', parallelism => 1);
INSERT INTO clicks (page, ms) VALUES (7, 1), (42, 2);
SELECT keyedstate.sync('per_page');
SELECT part, first_key_group, last_key_group FROM keyedstate.workers WHERE aggregation = 'per_page';
SELECT count(*) AS rows, (SELECT count(*) FROM (TABLE per_page EXCEPT TABLE per_page_oracle) d) AS wrong
  FROM per_page;

-- refused
SELECT keyedstate.create_aggregation('bad', 'SELECT page, count(*) FROM clicks GROUP BY page', parallelism => 0);
SELECT keyedstate.create_aggregation('bad', 'SELECT page, count(*) FROM clicks GROUP BY page', parallelism => 11, max_parallelism => 10);
SELECT keyedstate.create_aggregation('bad', 'SELECT page, count(*) FROM clicks GROUP BY page', max_parallelism => 0);
SELECT keyedstate.alter_aggregation('per_page', parallelism => 11);

-- more parts than a database can have workers (keyedstate.max_workers is 12
-- here): a notice says that they share workers, at a create and a rescale
BEGIN;
SELECT keyedstate.create_aggregation('many', 'SELECT page, count(*) FROM clicks GROUP BY page', parallelism => 13, max_parallelism => 20);
SELECT keyedstate.alter_aggregation('per_page', parallelism => 10);
ROLLBACK;

-- an aggregation run whole is one part of every key group
SELECT keyedstate.create_aggregation('whole', 'SELECT page % 2 AS odd, count(*) AS n FROM clicks GROUP BY 1');
SELECT keyedstate.sync('whole');
SELECT part, first_key_group, last_key_group, state FROM keyedstate.workers WHERE aggregation = 'whole';
SELECT parallelism FROM keyedstate.status WHERE name = 'whole';
BEGIN;
SELECT keyedstate.alter_aggregation('whole', parallelism => 13);
ROLLBACK;

-- in the transaction that rescaled it, a sync and a read are refused at
-- once: the new parts start at the commit (they waited their whole timeout)
BEGIN;
SELECT keyedstate.alter_aggregation('whole', parallelism => 2);
SAVEPOINT a;
SELECT keyedstate.sync('whole', '10 s');
ROLLBACK TO a;
SELECT count(*) FROM whole;
ROLLBACK;
SELECT keyedstate.sync('whole') > 0, count(*) FROM whole;

SELECT keyedstate.drop_aggregation('whole');

-- ids cycle, skipping those in use: calls that fail or roll back take ids
-- too, and must not use them up for every role
SELECT setval('keyedstate_internal.part_id_seq', 2147483646);
SELECT setval('keyedstate_internal.aggregation_id_seq', 999999999);
SELECT keyedstate.create_aggregation('cycled', 'SELECT page % 3 AS m, count(*) AS n FROM clicks GROUP BY 1', parallelism => 3);
SELECT keyedstate.sync('cycled') > 0;
SELECT count(*) = 0 AS exact FROM (SELECT * FROM cycled EXCEPT ALL SELECT page % 3, count(*) FROM clicks GROUP BY 1) d;
SELECT count(DISTINCT p.id) AS parts, bool_and(p.id >= 1000000000) AS part_ids, a.id < 1000000000 AS agg_id
  FROM keyedstate_internal.part p JOIN keyedstate_internal.aggregation a ON a.id = p.aggregation_id
 WHERE a.view = 'cycled'::regclass GROUP BY a.id;
SELECT keyedstate.drop_aggregation('cycled');
-- ... and those of a live table left without its aggregation (a schema-only
-- restore brings the views and live tables alone)
SELECT setval('keyedstate_internal.aggregation_id_seq', 500);
CREATE TABLE keyedstate_internal.live_501 (x int);
SELECT keyedstate.create_aggregation('after_orphan', 'SELECT page % 3 AS m, count(*) AS n FROM clicks GROUP BY 1');
SELECT id FROM keyedstate_internal.aggregation WHERE view = 'after_orphan'::regclass;
SELECT keyedstate.drop_aggregation('after_orphan');
DROP TABLE keyedstate_internal.live_501;
DROP VIEW per_page_oracle;
SELECT keyedstate.drop_aggregation('per_page');
SELECT count(*) FROM keyedstate_internal.part;
DROP TABLE clicks;
