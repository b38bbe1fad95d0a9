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
gen_script=$(ks_script gen.sql <<'SQL'
INSERT INTO readings (sensor_id, value)
SELECT (random() * 99)::int, round((random() * 100)::numeric, 3)::float8 FROM generate_series(1, 10);
SQL
)
# Start the generator in the background for $1 seconds; its job pid is $gen.
start_generator() {
	ks_pgbench -c 4 -T "$1" -f "$gen_script" >/dev/null 2>&1 &
	gen=$!
}

start_generator 8
for i in 1 2 3; do
	sleep 2			# the pace of the demo: the view is shown every 2 s while rows arrive
	echo "== live view after ${i}x2 s (top 5 sensors by readings)"
	ks_psql -c "SELECT * FROM sensor_stats ORDER BY n DESC, sensor_id LIMIT 5"
	ks_psql -c "SELECT name, state, consumed_offset, checkpointed_offset, lag_rows, keys, rows_per_second::int FROM keyedstate.status"
done

echo "== kill -9 of the postmaster mid-stream"
ks_cluster_kill9
wait $gen 2>/dev/null || true
ks_cluster_restart_after_crash
echo "== restarted; the worker reloads its checkpoint and replays from its offset"
ks_wait_running 60 || { echo "FAILED: the aggregation did not resume"; exit 1; }
start_generator 3
wait $gen 2>/dev/null || true
ks_psql -c "SELECT keyedstate.sync('sensor_stats') AS consumed_offset"
ks_psql -c "SELECT name, state, consumed_offset, checkpointed_offset, keys, rows_replayed FROM keyedstate.status"

echo "== proof: the recovered view against a plain GROUP BY over the same rows"
# avg is taken in offset order (ORDER BY id), as the worker consumes the
# rows, so that its float sum is the same to the last bit and the
# comparison can be exact
oracle='SELECT sensor_id, count(*), avg(value ORDER BY id), min(value), max(value) FROM readings GROUP BY sensor_id'
result="$(ks_query "SELECT count(*) FROM readings") rows, $(ks_query "SELECT count(*) FROM ($oracle) o") sensors, $(ks_mismatches "SELECT * FROM sensor_stats" "$oracle") mismatches"
echo "$result"
case "$result" in
	*" 0 mismatches") echo "OK: the recovered live state equals the plain GROUP BY exactly" ;;
	*) echo "FAILED: the live state differs from the plain GROUP BY"; exit 1 ;;
esac
