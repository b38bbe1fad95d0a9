#!/bin/bash
# Side-by-side benchmark: keyedstate against the alternatives, on the same
# data, in the same run, on a private throw-away cluster.  Not part of the
# test suite.  Prints one table (approach, rows/s, ratio to keyedstate's
# backlog drain) and the other figures of the performance issue.
#
#   ROWS=5000000 KEYS=100000 TRIGGER_ROWS=200000 test/bench.sh
#
# Machines here are shared and noisy: compare ratios, not absolute numbers.

source "$(dirname "$0")/lib.sh"

ROWS=${ROWS:-5000000}
KEYS=${KEYS:-100000}
TRIGGER_ROWS=${TRIGGER_ROWS:-200000}
CLIENT_SECONDS=${CLIENT_SECONDS:-10}
FRESHNESS_SAMPLES=${FRESHNESS_SAMPLES:-200}

ks_install_deps
ks_build_install
KS_PORT=${KS_PORT:-5486}
KS_EXTRA_CONF="shared_buffers = '1GB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
keyedstate.max_shared_memory = '4GB'
synchronous_commit = on"
ks_cluster_start
trap 'ks_cluster_destroy' EXIT

q() { ks_psql -At -c "$1"; }
now() { date +%s.%N; }
# rows/s of N rows in the seconds between two timestamps
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
declare -A RATE
row() { RATE["$1"]=$2; }

DATA="$KS_CLUSTER/data.csv"
TDATA="$KS_CLUSTER/trigger.csv"
echo "== $ROWS rows, $KEYS keys, on $(nproc) cores; cluster $KS_PGDATA"
ks_psql <<SQL
CREATE EXTENSION keyedstate;
COPY (SELECT (random() * ($KEYS - 1))::int, (random() * 1000)::int FROM generate_series(1, $ROWS)) TO '$DATA';
COPY (SELECT (random() * ($KEYS - 1))::int, (random() * 1000)::int FROM generate_series(1, $TRIGGER_ROWS)) TO '$TDATA';
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE ev_copy (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE rollup (k int PRIMARY KEY, n bigint, s bigint, mn int, mx int);
SQL
AGG="SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS mn, max(v) AS mx FROM ev GROUP BY k"

# 1. the ingest ceiling: COPY with no aggregation
t0=$(now); q "COPY ev_copy (k, v) FROM '$DATA'" >/dev/null; t1=$(now)
row "COPY into the table, no aggregation (ingest ceiling)" "$(rate $ROWS $t0 $t1)"

# 2. keyedstate draining the backlog with one worker
q "COPY ev (k, v) FROM '$DATA'" >/dev/null
q "VACUUM ANALYZE ev" >/dev/null
t0=$(now)
q "SELECT keyedstate.create_aggregation('ev_stats', '$AGG', checkpoint_interval => '1 hour')" >/dev/null
q "SELECT keyedstate.sync('ev_stats', '1 hour')" >/dev/null
t1=$(now)
KS_DRAIN=$(rate $ROWS $t0 $t1)
row "keyedstate backlog drain (start_from beginning until sync returns)" "$KS_DRAIN"

# 3. plain GROUP BY over all rows (on demand, not incremental)
t0=$(now); q "SELECT count(*) FROM ($AGG) s" >/dev/null; t1=$(now)
row "plain SELECT ... GROUP BY over all rows" "$(rate $ROWS $t0 $t1)"

# 4. the cron rollup recipe: INSERT ... SELECT ... GROUP BY ... ON CONFLICT per id range
rollup() {
	local batch=$1
	q "TRUNCATE rollup" >/dev/null
	ks_psql -c "DO \$\$
DECLARE lo bigint := 0;
BEGIN
	WHILE lo < $ROWS LOOP
		INSERT INTO rollup SELECT k, count(*), sum(v), min(v), max(v) FROM ev
		 WHERE id > lo AND id <= lo + $batch GROUP BY k
		ON CONFLICT (k) DO UPDATE SET n = rollup.n + excluded.n, s = rollup.s + excluded.s,
			mn = least(rollup.mn, excluded.mn), mx = greatest(rollup.mx, excluded.mx);
		COMMIT;
		lo := lo + $batch;
	END LOOP;
END \$\$" >/dev/null
}
t0=$(now); rollup 100000; t1=$(now)
row "INSERT ... ON CONFLICT rollup, 100,000-row batches" "$(rate $ROWS $t0 $t1)"
t0=$(now); rollup 1000000; t1=$(now)
row "INSERT ... ON CONFLICT rollup, 1,000,000-row batches" "$(rate $ROWS $t0 $t1)"
t0=$(now); rollup $ROWS; t1=$(now)
row "one rollup over the whole backlog in one transaction" "$(rate $ROWS $t0 $t1)"

# 5. triggers, on COPY of TRIGGER_ROWS rows
ks_psql <<'SQL'
CREATE TABLE ev_rowtrig (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE ev_stmttrig (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE ev_plain (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE rollup_row (LIKE rollup INCLUDING ALL);
CREATE TABLE rollup_stmt (LIKE rollup INCLUDING ALL);
CREATE FUNCTION row_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO rollup_row VALUES (NEW.k, 1, NEW.v, NEW.v, NEW.v)
	ON CONFLICT (k) DO UPDATE SET n = rollup_row.n + 1, s = rollup_row.s + excluded.s,
		mn = least(rollup_row.mn, excluded.mn), mx = greatest(rollup_row.mx, excluded.mx);
	RETURN NULL;
END $$;
CREATE TRIGGER row_upsert AFTER INSERT ON ev_rowtrig FOR EACH ROW EXECUTE FUNCTION row_upsert();
CREATE FUNCTION stmt_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO rollup_stmt SELECT k, count(*), sum(v), min(v), max(v) FROM new_rows GROUP BY k
	ON CONFLICT (k) DO UPDATE SET n = rollup_stmt.n + excluded.n, s = rollup_stmt.s + excluded.s,
		mn = least(rollup_stmt.mn, excluded.mn), mx = greatest(rollup_stmt.mx, excluded.mx);
	RETURN NULL;
END $$;
CREATE TRIGGER stmt_upsert AFTER INSERT ON ev_stmttrig REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION stmt_upsert();
SQL
t0=$(now); q "COPY ev_plain (k, v) FROM '$TDATA'" >/dev/null; t1=$(now)
COPY_SMALL=$(rate $TRIGGER_ROWS $t0 $t1)
t0=$(now); q "COPY ev_rowtrig (k, v) FROM '$TDATA'" >/dev/null; t1=$(now)
row "COPY with a per-row trigger upsert" "$(rate $TRIGGER_ROWS $t0 $t1)"
t0=$(now); q "COPY ev_stmttrig (k, v) FROM '$TDATA'" >/dev/null; t1=$(now)
row "COPY with a statement trigger (transition table)" "$(rate $TRIGGER_ROWS $t0 $t1)"

# 6. writers with and without an aggregation consuming
ks_psql <<'SQL'
CREATE TABLE w_plain (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE w_agg (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
SELECT keyedstate.create_aggregation('w_stats', 'SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS mn, max(v) AS mx FROM w_agg GROUP BY k');
SQL
q "SELECT keyedstate.sync('w_stats')" >/dev/null
t0=$(now); q "COPY w_plain (k, v) FROM '$DATA'" >/dev/null; t1=$(now)
COPY_PLAIN=$(rate $ROWS $t0 $t1)
t0=$(now); q "COPY w_agg (k, v) FROM '$DATA'" >/dev/null; t1=$(now)
COPY_AGG=$(rate $ROWS $t0 $t1)
q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null; t2=$(now)
row "COPY while keyedstate consumes (writer speed)" "$COPY_AGG"
row "keyedstate keeping up with that COPY (rows until sync returns)" "$(rate $ROWS $t0 $t2)"

batch_script() {
	echo "INSERT INTO $1 (k, v) SELECT (random() * ($KEYS - 1))::int, (random() * 1000)::int FROM generate_series(1, 1000);" > "$KS_CLUSTER/$1.sql"
	chmod a+r "$KS_CLUSTER/$1.sql"
}
clients() {
	ks_as_pg pgbench -n -c 8 -j 2 -T "$CLIENT_SECONDS" -f "$KS_CLUSTER/$1.sql" -h "$KS_SOCK" -p "$KS_PORT" postgres 2>/dev/null |
		awk '/^tps/ { printf "%.0f", $3 * 1000 }'
}
batch_script w_plain; batch_script w_agg
CL_PLAIN=$(clients w_plain)
before=$(q "SELECT count(*) FROM w_agg")
t0=$(now); CL_AGG=$(clients w_agg); t1=$(now)
after=$(q "SELECT count(*) FROM w_agg")
q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null; t2=$(now)
row "8 clients inserting 1000-row batches, no aggregation" "$CL_PLAIN"
row "8 clients inserting 1000-row batches, keyedstate consuming" "$CL_AGG"
row "keyedstate steady state under those clients (rows until sync returns)" "$(rate $((after - before)) $t0 $t2)"

echo
printf "%-72s %12s %10s\n" "approach" "rows/s" "vs keyedstate drain"
for k in "${!RATE[@]}"; do
	printf "%-72s %12s %10s\n" "$k" "${RATE[$k]}" "$(awk -v a="${RATE[$k]}" -v b="$KS_DRAIN" 'BEGIN { printf "%.2fx", a / b }')"
done | sort -k1,1
echo
echo "== ratios against the targets of the performance issue"
awk -v ks="$KS_DRAIN" -v r100k="${RATE["INSERT ... ON CONFLICT rollup, 100,000-row batches"]}" \
	-v rone="${RATE["one rollup over the whole backlog in one transaction"]}" \
	-v cp="$COPY_PLAIN" -v ca="$COPY_AGG" -v clp="$CL_PLAIN" -v cla="$CL_AGG" 'BEGIN {
	printf "backlog drain / 100k-batch rollup      %.2f (target >= 5)\n", ks / r100k;
	printf "backlog drain / one-transaction rollup %.2f (target >= 1)\n", ks / rone;
	printf "COPY slowdown with an aggregation      %.1f%% (target <= 10%%)\n", (1 - ca / cp) * 100;
	printf "batched-insert slowdown                %.1f%% (target <= 10%%)\n", (1 - cla / clp) * 100;
}'

# 7. freshness: commit to visible, under a steady stream of single-row inserts at 2,000 rows/s
echo "INSERT INTO w_agg (k, v) VALUES ((random() * ($KEYS - 1))::int, 1);" > "$KS_CLUSTER/single.sql"; chmod a+r "$KS_CLUSTER/single.sql"
ks_as_pg pgbench -n -c 4 -j 2 -R 2000 -T 60 -f "$KS_CLUSTER/single.sql" -h "$KS_SOCK" -p "$KS_PORT" postgres >/dev/null 2>&1 &
stream=$!
sleep 1
ks_psql -c "CREATE TABLE fresh (ms float8)" -c "DO \$\$
DECLARE
	t0 timestamptz;
	target bigint;
BEGIN
	FOR i IN 1 .. $FRESHNESS_SAMPLES LOOP
		INSERT INTO w_agg (k, v) VALUES (-1, i);
		COMMIT;
		t0 := clock_timestamp();
		LOOP
			EXIT WHEN (SELECT n FROM w_stats WHERE k = -1) >= i;
			PERFORM pg_sleep(0.0002);
		END LOOP;
		INSERT INTO fresh VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END \$\$" >/dev/null
kill $stream 2>/dev/null; wait $stream 2>/dev/null || true
echo
echo "== freshness, commit to visible in the view, under 2,000 single-row inserts/s (ms)"
q "SELECT format('p50 %s  p99 %s  max %s', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2)) FROM fresh"

# 8. point lookup against a full scan of the view
echo
echo "== lookups on the view with $(q "SELECT keys FROM keyedstate.status WHERE name = 'ev_stats'") keys"
ks_psql -At <<'SQL'
DO $$
DECLARE
	t0 timestamptz;
	lookup float8;
	scan float8;
	x bigint;
BEGIN
	t0 := clock_timestamp();
	FOR i IN 1 .. 2000 LOOP
		SELECT n INTO x FROM ev_stats WHERE k = i;
	END LOOP;
	lookup := extract(epoch FROM clock_timestamp() - t0) * 1000 / 2000;
	t0 := clock_timestamp();
	FOR i IN 1 .. 5 LOOP
		SELECT count(*) INTO x FROM ev_stats;
	END LOOP;
	scan := extract(epoch FROM clock_timestamp() - t0) * 1000 / 5;
	RAISE NOTICE 'point lookup % ms, full scan % ms, ratio %x', round(lookup::numeric, 3), round(scan::numeric, 1), round((scan / lookup)::numeric);
END $$;
SQL

# 9. checkpoints with 1% and 100% of the keys dirty
ckpt() {
	local lsn0 t0 t1 lsn1
	lsn0=$(q "SELECT pg_current_wal_lsn()"); t0=$(now)
	q "SELECT keyedstate.checkpoint('ev_stats')" >/dev/null
	t1=$(now); lsn1=$(q "SELECT pg_current_wal_lsn()")
	echo "$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.0f ms", (b - a) * 1000 }'), $(q "SELECT pg_size_pretty(pg_wal_lsn_diff('$lsn1', '$lsn0'))") of WAL"
}
echo
echo "== checkpoint of ev_stats"
q "SELECT keyedstate.checkpoint('ev_stats')" >/dev/null
q "INSERT INTO ev (k, v) SELECT g, 1 FROM generate_series(0, $KEYS - 1, 100) g" >/dev/null
q "SELECT keyedstate.sync('ev_stats')" >/dev/null
echo "1% of keys dirty:   $(ckpt)"
q "INSERT INTO ev (k, v) SELECT g, 1 FROM generate_series(0, $KEYS - 1) g" >/dev/null
q "SELECT keyedstate.sync('ev_stats')" >/dev/null
echo "100% of keys dirty: $(ckpt)"

# 10. memory per key
echo
q "SELECT format('shared memory per key %s bytes, worker memory per key %s bytes (%s keys)',
	shared_bytes / keys, (memory_bytes - shared_bytes) / keys, keys) FROM keyedstate.status WHERE name = 'ev_stats'"

# 11. restart to a serving, exact state
echo
ks_as_pg pg_ctl -D "$KS_PGDATA" -m fast -w stop >/dev/null
t0=$(now)
ks_cluster_restart
until [ "$(q "SELECT count(*) FROM keyedstate.status WHERE state <> 'running'")" = 0 ]; do sleep 0.05; done
q "SELECT keyedstate.sync('ev_stats')" >/dev/null
t1=$(now)
echo "restart to serving state, $(q "SELECT keys FROM keyedstate.status WHERE name = 'ev_stats'") keys: $(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f s", b - a }')"
mism=$(q "SELECT count(*) FROM ((SELECT k, n, s, mn, mx FROM ev_stats EXCEPT SELECT k, count(*), sum(v), min(v), max(v) FROM ev GROUP BY k)
	UNION ALL (SELECT k, count(*), sum(v), min(v), max(v) FROM ev GROUP BY k EXCEPT SELECT k, n, s, mn, mx FROM ev_stats)) d")
echo "mismatches against GROUP BY after restart: $mism"
