-- Isolation: a failing aggregation does not stop another one on the same
-- table, and a function planted later on the owner's search_path is never
-- called by the worker (names are bound when the aggregation is created).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS keyedstate;
RESET client_min_messages;
CREATE SCHEMA plant;
CREATE TABLE obs (id bigserial PRIMARY KEY, k int, v int);
CREATE FUNCTION fragile_acc(state bigint, v int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	IF v < 0 THEN
		RAISE EXCEPTION 'negative value %', v USING ERRCODE = 'data_exception';
	END IF;
	RETURN state + v;
END $$;
CREATE AGGREGATE fragile_sum(int) (sfunc = fragile_acc, stype = bigint, initcond = '0');
SELECT keyedstate.create_aggregation('obs_fragile', 'SELECT k, fragile_sum(v) AS s FROM obs GROUP BY k');
SELECT keyedstate.create_aggregation('obs_plain', 'SELECT k, sum(abs(v)) AS s, count(*) AS n FROM obs GROUP BY k');
INSERT INTO obs (k, v) VALUES (1, 10), (2, 20), (1, -5), (2, 7);
SELECT keyedstate.sync('obs_fragile');
SELECT keyedstate.sync('obs_plain');
SELECT * FROM obs_plain ORDER BY k;
SELECT name, state, error FROM keyedstate.status ORDER BY name;

-- plant a better-matching abs(int) earlier on the search path: the worker
-- keeps calling pg_catalog.abs
CREATE FUNCTION plant.abs(int) RETURNS int LANGUAGE sql AS 'SELECT 1000000';
SET search_path = plant, public, pg_catalog;
ALTER ROLE CURRENT_USER SET search_path = plant, public, pg_catalog;
-- altering the source makes the worker deparse and prepare its input again
ALTER TABLE obs ADD COLUMN note text;
INSERT INTO obs (k, v) VALUES (1, -3);
SELECT keyedstate.sync('obs_plain');
SELECT * FROM obs_plain ORDER BY k;
RESET search_path;
ALTER ROLE CURRENT_USER RESET search_path;

-- the creating session's search_path is what the functions it calls see
-- (an unqualified table inside a SQL function), not keyedstate's own
CREATE TABLE plant.rates (k int PRIMARY KEY, factor int);
INSERT INTO plant.rates VALUES (1, 10), (2, 100);
SET search_path = plant, public;
CREATE FUNCTION plant.scaled(k int, v int) RETURNS int LANGUAGE sql IMMUTABLE AS
	'SELECT v * factor FROM rates WHERE rates.k = scaled.k';
SELECT keyedstate.create_aggregation('public.obs_scaled', 'SELECT k, sum(scaled(k, v)) AS s FROM public.obs GROUP BY k');
RESET search_path;
SELECT keyedstate.sync('obs_scaled');
SELECT * FROM obs_scaled ORDER BY k;
SELECT keyedstate.drop_aggregation('obs_scaled');

SELECT keyedstate.drop_aggregation('obs_fragile');
SELECT keyedstate.drop_aggregation('obs_plain');
DROP TABLE obs;
DROP AGGREGATE fragile_sum(int);
DROP FUNCTION fragile_acc;
DROP SCHEMA plant CASCADE;
