#!/bin/bash
# The main job: the sensor example on a private throw-away cluster.
# A readings table, a per-sensor count/avg/min/max aggregation, a generator
# inserting rows, the live view printed as it changes, a kill -9 of the
# server mid-stream, a restart, and a proof that the recovered state equals
# a plain GROUP BY.

source "$(dirname "$0")/lib.sh"

ks_install_deps
ks_build_install
KS_PORT=${KS_PORT:-5487}
ks_cluster_start
trap 'kill $gen 2>/dev/null || true; ks_cluster_destroy' EXIT

echo "== cluster: $KS_PGDATA (socket $KS_SOCK, port $KS_PORT)"
ks_psql <<'SQL'
CREATE EXTENSION keyedstate;
CREATE TABLE readings (
	id bigserial PRIMARY KEY,
	sensor_id int NOT NULL,
	value double precision NOT NULL,
	ts timestamptz NOT NULL DEFAULT now()
);
SELECT keyedstate.create_aggregation('sensor_stats',
	'SELECT sensor_id, count(*) AS n, avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value
	   FROM readings GROUP BY sensor_id');
SQL

# the generator: 4 clients inserting small batches of readings
cat > "$KS_CLUSTER/gen.sql" <<'SQL'
INSERT INTO readings (sensor_id, value)
SELECT (random() * 99)::int, round((random() * 100)::numeric, 3)::float8 FROM generate_series(1, 10);
SQL
chown postgres: "$KS_CLUSTER/gen.sql" 2>/dev/null || true
start_generator() {
	ks_as_pg pgbench -n -c 4 -T "$1" -f "$KS_CLUSTER/gen.sql" -h "$KS_SOCK" -p "$KS_PORT" postgres >/dev/null 2>&1 &
	gen=$!
}

start_generator 8
for i in 1 2 3; do
	sleep 2
	echo "== live view after ${i}x2 s (top 5 sensors by readings)"
	ks_psql -c "SELECT * FROM sensor_stats ORDER BY n DESC, sensor_id LIMIT 5"
	ks_psql -c "SELECT name, state, consumed_offset, checkpointed_offset, lag_rows, keys, rows_per_second::int FROM keyedstate.status"
done

echo "== kill -9 of the postmaster mid-stream"
kill -9 "$(head -1 "$KS_PGDATA/postmaster.pid")"
wait $gen 2>/dev/null || true
for i in $(seq 1 50); do
	ks_cluster_restart 2>/dev/null && break
	sleep 0.2
done
echo "== restarted; the worker reloads its checkpoint and replays from its offset"
for i in $(seq 1 100); do
	[ "$(ks_psql -At -c "SELECT state FROM keyedstate.status")" = running ] && break
	sleep 0.1
done
start_generator 3
wait $gen 2>/dev/null || true
ks_psql -c "SELECT keyedstate.sync('sensor_stats') AS consumed_offset"
ks_psql -c "SELECT name, state, consumed_offset, checkpointed_offset, keys, rows_replayed FROM keyedstate.status"

echo "== proof: the recovered view against a plain GROUP BY over the same rows"
result=$(ks_psql -At <<'SQL'
WITH oracle AS (
	SELECT sensor_id, count(*) AS n, avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value
	  FROM readings GROUP BY sensor_id
), cmp AS (
	SELECT o.sensor_id AS o_id, v.sensor_id AS v_id,
		   o.n = v.n AND o.min_value = v.min_value AND o.max_value = v.max_value
		   AND abs(o.avg_value - v.avg_value) <= 1e-12 * greatest(abs(o.avg_value), 1) AS same
	  FROM oracle o FULL JOIN sensor_stats v USING (sensor_id)
)
SELECT (SELECT count(*) FROM readings) || ' rows, ' ||
	   (SELECT count(*) FROM cmp) || ' sensors, ' ||
	   (SELECT count(*) FROM cmp WHERE o_id IS NULL OR v_id IS NULL OR NOT same) || ' mismatches'
SQL
)
echo "$result"
case "$result" in
	*" 0 mismatches") echo "OK: the recovered live state equals the plain GROUP BY exactly" ;;
	*) echo "FAILED: the live state differs from the plain GROUP BY"; exit 1 ;;
esac
