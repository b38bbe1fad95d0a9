-- sync, pause, resume, checkpoint, status, and an aggregation that fails.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE TABLE pay (id bigserial PRIMARY KEY, acct int, amount int);
INSERT INTO pay (acct, amount) SELECT g % 4, g FROM generate_series(1, 40) g;

SELECT keyedstate.create_aggregation('pay_totals', 'SELECT acct, sum(amount) AS total, count(*) AS n FROM pay GROUP BY acct',
	checkpoint_interval => '1 hour');
SELECT keyedstate.sync('pay_totals');
SELECT * FROM pay_totals ORDER BY acct;

-- checkpoint now: the offset and every key are written in one transaction
SELECT keyedstate.checkpoint('pay_totals');
SELECT checkpointed_offset FROM keyedstate.status WHERE name = 'pay_totals';
SELECT sum(nkeys) FROM keyedstate_internal.state s JOIN keyedstate_internal.aggregation a ON a.id = s.aggregation_id
 WHERE a.view = 'pay_totals'::regclass;

-- names that are none: shown as PostgreSQL shows a relation's; in a
-- read-only transaction, the calls that change an aggregation say so as
-- PostgreSQL's own commands do, and sync and checkpoint work
SELECT keyedstate.sync('"No Such"');
-- a NULL timeout (or name) is an error, not a return without waiting
SELECT keyedstate.sync('pay_totals', NULL);
SELECT keyedstate.checkpoint(NULL);
SELECT keyedstate.pause('public."No Such"');
BEGIN READ ONLY;
SELECT keyedstate.pause('pay_totals');
ROLLBACK;
BEGIN READ ONLY;
SELECT keyedstate.create_aggregation('ro', 'SELECT acct, count(*) FROM pay GROUP BY acct');
ROLLBACK;
BEGIN READ ONLY;
SELECT keyedstate.sync('pay_totals') > 0;
SELECT keyedstate.checkpoint('pay_totals');
ROLLBACK;
-- a checkpoint after an alter (pause, resume) in the same transaction: refused at once,
-- its worker cannot lock the aggregation's row before the commit
BEGIN;
SELECT keyedstate.alter_aggregation('pay_totals', checkpoint_interval => '1s');
SELECT keyedstate.checkpoint('pay_totals');
ROLLBACK;
-- pause: sync refuses at once, the view keeps its last state, resume catches up
SELECT keyedstate.pause('pay_totals');
INSERT INTO pay (acct, amount) VALUES (1, 1000), (2, 2000);
SELECT keyedstate.sync('pay_totals');
SELECT state FROM keyedstate.aggregations a JOIN keyedstate.status s USING (name) WHERE name = 'pay_totals';
SELECT paused FROM keyedstate.aggregations WHERE name = 'pay_totals';
SELECT keyedstate.resume('pay_totals');
SELECT keyedstate.sync('pay_totals');
SELECT * FROM pay_totals ORDER BY acct;
SELECT name, state, consumed_offset, lag_rows, keys, visible_keys, error FROM keyedstate.status;

-- a row that makes an aggregate fail: the aggregation stops with the error
-- and the row's offset, others keep running
CREATE FUNCTION picky_acc(state bigint, v int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF v = 13 THEN
		RAISE EXCEPTION 'unlucky value %', v;
	END IF;
	RETURN state + v;
END $$;
CREATE AGGREGATE picky_sum(int) (sfunc = picky_acc, stype = bigint, initcond = '0');
CREATE TABLE bad (id bigserial PRIMARY KEY, g int, v int);
SELECT keyedstate.create_aggregation('picky', 'SELECT g, picky_sum(v) AS s FROM bad GROUP BY g');
INSERT INTO bad (g, v) SELECT g % 2, g FROM generate_series(1, 12) g;
SELECT keyedstate.sync('picky');
SELECT * FROM picky ORDER BY g;
INSERT INTO bad (g, v) SELECT g % 2, g FROM generate_series(13, 20) g;
SELECT keyedstate.sync('picky');
SELECT state, error, failed_offset, consumed_offset FROM keyedstate.status WHERE name = 'picky';
-- its view says so (and its shared memory is given back)
SELECT * FROM picky ORDER BY g;
SELECT shared_bytes, visible_keys FROM keyedstate.status WHERE name = 'picky';
-- the other aggregation is not affected
INSERT INTO pay (acct, amount) VALUES (3, 5);
SELECT keyedstate.sync('pay_totals');
-- fix the input, resume: the result is exact
DELETE FROM bad WHERE v = 13;
SELECT keyedstate.resume('picky');
SELECT keyedstate.sync('picky');
SELECT state, error FROM keyedstate.status WHERE name = 'picky';
SELECT * FROM picky ORDER BY g;
SELECT g, sum(v) FROM bad GROUP BY g ORDER BY g;

-- an aggregation created by this transaction has no worker before the
-- commit: sync and reads of its view say so at once
BEGIN;
SELECT keyedstate.create_aggregation('tx_new', 'SELECT g, count(*) AS n FROM bad GROUP BY g');
SAVEPOINT s;
SELECT keyedstate.sync('tx_new');
ROLLBACK TO s;
SELECT * FROM tx_new;
ROLLBACK;
-- nor can it wait for the rows this transaction inserted into the source:
-- they commit after it (it would time out)
BEGIN;
INSERT INTO bad (g, v) VALUES (1, 1);
SELECT keyedstate.sync('picky');
ROLLBACK;
-- nor while it holds the source against the worker's reads
BEGIN;
LOCK TABLE bad IN ACCESS EXCLUSIVE MODE;
SELECT keyedstate.sync('picky');
ROLLBACK;

-- a function of the query that controls aggregations (its own or another's)
-- fails its row once: it would otherwise stop its own step, be replayed with
-- it and do it again, for ever
CREATE TABLE ctl (id bigserial PRIMARY KEY, g int, v int);
CREATE FUNCTION ctl_dropper() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	DROP VIEW ctl_victim;
END $$;
CREATE FUNCTION ctl_fn(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF v = 2 THEN
		PERFORM keyedstate.pause('ctl_pause');
	ELSIF v = 3 THEN
		PERFORM ctl_dropper();
	ELSIF v = 4 THEN
		PERFORM keyedstate.create_aggregation('ctl_new', 'SELECT g, count(*) FROM ctl GROUP BY g');
	END IF;
	RETURN v;
END $$;
SELECT keyedstate.create_aggregation('ctl_victim', 'SELECT g, count(*) AS n FROM ctl GROUP BY g');
SELECT keyedstate.create_aggregation('ctl_pause', 'SELECT g, sum(ctl_fn(v)) AS s FROM ctl WHERE v IN (1, 2) GROUP BY g');
SELECT keyedstate.create_aggregation('ctl_drop', 'SELECT g, sum(ctl_fn(v)) AS s FROM ctl WHERE v IN (1, 3) GROUP BY g');
SELECT keyedstate.create_aggregation('ctl_create', 'SELECT g, sum(ctl_fn(v)) AS s FROM ctl WHERE v IN (1, 4) GROUP BY g');
INSERT INTO ctl (g, v) VALUES (1, 1), (1, 2), (1, 3), (1, 4);
SELECT keyedstate.sync('ctl_pause');
SELECT keyedstate.sync('ctl_drop');
SELECT keyedstate.sync('ctl_create');
SELECT keyedstate.sync('ctl_victim');
SELECT name, state, error, failed_offset FROM keyedstate.status WHERE name LIKE 'ctl%' ORDER BY name;
SELECT * FROM ctl_victim;
SELECT keyedstate.drop_aggregation('ctl_pause');
SELECT keyedstate.drop_aggregation('ctl_drop');
SELECT keyedstate.drop_aggregation('ctl_create');
SELECT keyedstate.drop_aggregation('ctl_victim');
DROP TABLE ctl;
DROP FUNCTION ctl_fn, ctl_dropper;

-- alter_aggregation: TTL and checkpoint interval change while it runs;
-- a NULL argument leaves a setting alone, ttl => '0' removes the TTL
SELECT keyedstate.alter_aggregation('pay_totals', ttl => '1 day', checkpoint_interval => '5 s');
SELECT name, ttl, checkpoint_interval FROM keyedstate.aggregations WHERE name = 'pay_totals';
SELECT keyedstate.alter_aggregation('pay_totals', checkpoint_interval => '1 hour');
SELECT name, ttl, checkpoint_interval FROM keyedstate.aggregations WHERE name = 'pay_totals';
SELECT keyedstate.alter_aggregation('pay_totals', ttl => '0');
SELECT name, ttl, checkpoint_interval FROM keyedstate.aggregations WHERE name = 'pay_totals';
INSERT INTO pay (acct, amount) VALUES (4, 6);
SELECT keyedstate.sync('pay_totals');
SELECT state, keys, keys_expired FROM keyedstate.status WHERE name = 'pay_totals';

-- rebuild(): in its own transaction, a read and a sync are refused (the
-- worker rebuilds once it commits; the transaction sees the cold rows
-- deleted and the old rows published: newuser review 2, F10); rolled back
-- to a savepoint, it never happened; after the commit, sync waits for the
-- rebuilt state to reach what was committed before it
BEGIN;
SELECT keyedstate.rebuild('pay_totals');
SAVEPOINT a;
SELECT count(*) FROM pay_totals;
ROLLBACK TO a;
SELECT keyedstate.sync('pay_totals');
ROLLBACK;
-- a transaction that rebuilt one cannot be prepared: its COMMIT PREPARED
-- could not keep reads from the old rows without the cold ones (re-review
-- today 25, F2)
BEGIN;
SELECT keyedstate.rebuild('pay_totals');
PREPARE TRANSACTION 'ks_rebuild';
BEGIN;
SAVEPOINT a;
SELECT keyedstate.rebuild('pay_totals');
ROLLBACK TO a;
SELECT keyedstate.sync('pay_totals') > 0;
SELECT count(*) > 0 FROM pay_totals;
COMMIT;
SELECT keyedstate.rebuild('pay_totals');
SELECT keyedstate.sync('pay_totals') > 0;
(SELECT acct, n, total FROM pay_totals EXCEPT ALL SELECT acct, count(*), sum(amount) FROM pay GROUP BY acct)
UNION ALL
(SELECT acct, count(*), sum(amount) FROM pay GROUP BY acct EXCEPT ALL SELECT acct, n, total FROM pay_totals);

SELECT keyedstate.drop_aggregation('picky');
SELECT keyedstate.drop_aggregation('pay_totals');
DROP TABLE pay, bad;
DROP AGGREGATE picky_sum(int);
DROP FUNCTION picky_acc;

-- a sequence set back below the offsets an aggregation has consumed: an
-- INSERT or COPY that would take such offsets is refused (fault review 37,
-- F1: with no unique index on the offset alone, rows given them were never
-- read, and writers took the sequence up again before the worker looked);
-- paused here so that the worker does not look meanwhile
CREATE TABLE sb (id bigserial NOT NULL, k int NOT NULL);
CREATE INDEX ON sb (id);
INSERT INTO sb (k) SELECT g % 3 FROM generate_series(1, 10) g;
CREATE TABLE sbp (id bigserial NOT NULL, k int NOT NULL) PARTITION BY LIST (k);
CREATE INDEX ON sbp (id);
CREATE TABLE sbp0 PARTITION OF sbp FOR VALUES IN (0, 1, 2);
INSERT INTO sbp (k) SELECT g % 3 FROM generate_series(1, 10) g;
-- (and a partition source, whose rows come through its parent)
CREATE TABLE sbq (id bigserial NOT NULL, k int NOT NULL) PARTITION BY LIST (k);
CREATE INDEX ON sbq (id);
CREATE TABLE sbq0 PARTITION OF sbq FOR VALUES IN (0, 1, 2);
INSERT INTO sbq (k) SELECT g % 3 FROM generate_series(1, 10) g;
SELECT keyedstate.create_aggregation('sb_n', 'SELECT k, count(*) AS n FROM sb GROUP BY k');
SELECT keyedstate.create_aggregation('sbp_n', 'SELECT k, count(*) AS n FROM sbp GROUP BY k', parallelism => 2);
SELECT keyedstate.create_aggregation('sbq_n', 'SELECT k, count(*) AS n FROM sbq0 GROUP BY k');
SELECT keyedstate.sync('sb_n'), keyedstate.sync('sbp_n'), keyedstate.sync('sbq_n');
SELECT keyedstate.pause('sb_n'), keyedstate.pause('sbp_n'), keyedstate.pause('sbq_n');
SELECT setval('sb_id_seq', 5, false);
INSERT INTO sb (k) VALUES (1);
COPY sb (k) FROM stdin;
1
\.
-- (a writer of explicit offsets who may not set the sequence is told no figures)
CREATE ROLE regress_sb_writer;
GRANT INSERT ON sb TO regress_sb_writer;
SET ROLE regress_sb_writer;
INSERT INTO sb (id, k) VALUES (100, 1);
RESET ROLE;
REVOKE ALL ON sb FROM regress_sb_writer;
DROP ROLE regress_sb_writer;
ALTER SEQUENCE sb_id_seq RESTART WITH 10;
INSERT INTO sb (k) VALUES (1);
-- (taken past the offset by nextval() alone, it hands out fresh offsets)
SELECT nextval('sb_id_seq');
INSERT INTO sb (k) VALUES (1), (2);
SELECT setval('sbp_id_seq', 3);
INSERT INTO sbp (k) VALUES (1);
INSERT INTO sbp0 (k) VALUES (1);
SELECT setval('sbp_id_seq', 10);
INSERT INTO sbp0 (k) VALUES (1);
-- (rows routed into the partition source through its parent: re-review today 39, F2)
SELECT setval('sbq_id_seq', 3);
INSERT INTO sbq (k) VALUES (1);
COPY sbq (k) FROM stdin;
2
\.
INSERT INTO sbq0 (k) VALUES (1);
SELECT setval('sbq_id_seq', 10);
INSERT INTO sbq (k) VALUES (1), (0);
SELECT keyedstate.resume('sb_n'), keyedstate.resume('sbp_n'), keyedstate.resume('sbq_n');
SELECT keyedstate.sync('sb_n'), keyedstate.sync('sbp_n'), keyedstate.sync('sbq_n');
SELECT name, state FROM keyedstate.status WHERE name IN ('sb_n', 'sbp_n', 'sbq_n') ORDER BY name;
(SELECT k, n FROM sb_n EXCEPT ALL SELECT k, count(*) FROM sb GROUP BY k)
UNION ALL (SELECT k, count(*) FROM sb GROUP BY k EXCEPT ALL SELECT k, n FROM sb_n);
(SELECT k, n FROM sbp_n EXCEPT ALL SELECT k, count(*) FROM sbp GROUP BY k)
UNION ALL (SELECT k, count(*) FROM sbp GROUP BY k EXCEPT ALL SELECT k, n FROM sbp_n);
(SELECT k, n FROM sbq_n EXCEPT ALL SELECT k, count(*) FROM sbq0 GROUP BY k)
UNION ALL (SELECT k, count(*) FROM sbq0 GROUP BY k EXCEPT ALL SELECT k, n FROM sbq_n);
SELECT keyedstate.drop_aggregation('sb_n'), keyedstate.drop_aggregation('sbp_n'), keyedstate.drop_aggregation('sbq_n');
DROP TABLE sb, sbp, sbq;
