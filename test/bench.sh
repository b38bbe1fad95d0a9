#!/bin/bash
# Side-by-side benchmark: keyedstate against the alternatives, on the same
# data, in the same run, on a private throw-away cluster.  Not part of the
# test suite.  Prints one table (approach, rows/s, ratio to keyedstate's
# backlog drain), the ratios the performance issue sets targets for, and
# the other figures (freshness, lookups, checkpoints, memory, restart),
# at KEYS keys and again at 100 and 1,000,000 keys.
#
#   test/bench.sh                                  defaults below
#   ROWS=1000000 KEYS=100000 REPEAT=1 test/bench.sh   a quicker run
#
# Throughputs are medians of REPEAT runs.  Machines here are shared and
# noisy: compare ratios measured in the same run, not absolute numbers.

source "$(dirname "$0")/lib.sh"

ROWS=${ROWS:-5000000}				# rows of the main data set
KEYS=${KEYS:-100000}				# keys of the main data set
REPEAT=${REPEAT:-3}					# runs per throughput figure (median)
TRIGGER_ROWS=${TRIGGER_ROWS:-200000}	# rows COPYed through the triggers
CLIENT_SECONDS=${CLIENT_SECONDS:-10}	# seconds of the 8-client runs
FRESHNESS_SAMPLES=${FRESHNESS_SAMPLES:-200}
COPY_CHUNK=${COPY_CHUNK:-100000}	# rows per COPY in the keep-up test
SMALL_KEYS=${SMALL_KEYS:-100}		# the few-keys variant
BIG_KEYS=${BIG_KEYS:-1000000}		# the many-keys variant
VARIANT_ROWS=${VARIANT_ROWS:-3000000}	# rows of each variant

ks_install_deps
ks_build_install
KS_PORT=${KS_PORT:-5486}
KS_EXTRA_CONF="shared_buffers = '2GB'
max_wal_size = '16GB'
checkpoint_timeout = '30min'
keyedstate.max_shared_memory = '4GB'
synchronous_commit = on"
ks_cluster_start
trap 'ks_cluster_destroy' EXIT

q() { ks_psql -At -c "$1"; }
now() { date +%s.%N; }
# rows/s of N rows in the seconds between two timestamps
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
declare -A RATE
ORDER=()
row() { RATE["$1"]=$2; ORDER+=("$1"); }
AGG_OF() { echo "SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS mn, max(v) AS mx FROM $1 GROUP BY k"; }

# Generate N rows over K keys into a server-side CSV file: the first K rows
# name every key once, so that all K exist, then keys are uniformly random.
gen_data() {
	local file=$1 n=$2 k=$3
	q "COPY (SELECT CASE WHEN g <= $k THEN g - 1 ELSE (random() * ($k - 1))::int END, (random() * 1000)::int
			   FROM generate_series(1, $n) g) TO '$file'" >/dev/null
}

# A fresh source table, loaded from a CSV file and vacuumed.
load_table() {
	local table=$1 file=$2
	ks_psql -c "DROP TABLE IF EXISTS $table CASCADE" -c "CREATE TABLE $table (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL)" >/dev/null 2>&1
	q "COPY $table (k, v) FROM '$file'" >/dev/null
	q "VACUUM ANALYZE $table" >/dev/null
}

# keyedstate draining a backlog of N rows: create until sync returns; prints rows/s.
drain() {
	local table=$1 n=$2 name="${1}_stats" t0 t1
	q "SELECT keyedstate.drop_aggregation('$name') FROM keyedstate.aggregations WHERE name = '$name'" >/dev/null
	t0=$(now)
	q "SELECT keyedstate.create_aggregation('$name', '$(AGG_OF "$table")', checkpoint_interval => '1 hour')" >/dev/null
	q "SELECT keyedstate.sync('$name', '1 hour')" >/dev/null
	t1=$(now)
	rate "$n" "$t0" "$t1"
}

# The cron recipe: INSERT ... SELECT ... GROUP BY ... ON CONFLICT per id range; prints rows/s.
rollup() {
	local table=$1 n=$2 batch=$3 t0 t1
	ks_psql -c "DROP TABLE IF EXISTS rollup_$table" -c "CREATE TABLE rollup_$table (k int PRIMARY KEY, n bigint, s bigint, mn int, mx int)" >/dev/null 2>&1
	t0=$(now)
	ks_psql -c "DO \$\$
DECLARE lo bigint := 0;
BEGIN
	WHILE lo < $n LOOP
		INSERT INTO rollup_$table SELECT k, count(*), sum(v), min(v), max(v) FROM $table
		 WHERE id > lo AND id <= lo + $batch GROUP BY k
		ON CONFLICT (k) DO UPDATE SET n = rollup_$table.n + excluded.n, s = rollup_$table.s + excluded.s,
			mn = least(rollup_$table.mn, excluded.mn), mx = greatest(rollup_$table.mx, excluded.mx);
		COMMIT;
		lo := lo + $batch;
	END LOOP;
END \$\$" >/dev/null
	t1=$(now)
	rate "$n" "$t0" "$t1"
}

# Plain GROUP BY over the whole table; prints rows/s.
groupby() {
	local table=$1 n=$2 t0 t1
	t0=$(now); q "SELECT count(*) FROM ($(AGG_OF "$table")) s" >/dev/null; t1=$(now)
	rate "$n" "$t0" "$t1"
}

# Median of REPEAT runs of a command printing one number.
med() {
	local vals=() i
	for i in $(seq 1 "$REPEAT"); do vals+=("$("$@")"); done
	median "${vals[@]}"
}

# A checkpoint of aggregation $1 now; prints "ms keys bytes WAL" of it.
ckpt() {
	local lsn0 lsn1
	lsn0=$(q "SELECT pg_current_wal_lsn()")
	q "SELECT keyedstate.checkpoint('$1')" >/dev/null
	lsn1=$(q "SELECT pg_current_wal_lsn()")
	q "SELECT round(last_checkpoint_ms::numeric, 1) || ' ' || last_checkpoint_keys || ' ' ||
			  last_checkpoint_bytes || ' ' || pg_wal_lsn_diff('$lsn1', '$lsn0')
		 FROM keyedstate.status WHERE name = '$1'"
}

# Checkpoints of an aggregation over table $1 with K keys: 1% and 100% dirty.
checkpoints() {
	local table=$1 k=$2 name="${1}_stats" one full i
	# settle: after enough deltas a checkpoint is a full one (compaction);
	# measure a 1% checkpoint that follows it, so that it is a delta
	for i in 1 2 3; do
		q "INSERT INTO $table (k, v) SELECT g, 1 FROM generate_series(0, $k - 1) g" >/dev/null
		q "SELECT keyedstate.sync('$name', '1 hour')" >/dev/null
		q "SELECT keyedstate.checkpoint('$name')" >/dev/null
	done
	one=()
	for i in 1 2 3; do
		q "INSERT INTO $table (k, v) SELECT g, 1 FROM generate_series(0, $k - 1, 100) g" >/dev/null
		q "SELECT keyedstate.sync('$name', '1 hour')" >/dev/null
		one+=("$(ckpt "$name")")
	done
	q "INSERT INTO $table (k, v) SELECT g, 1 FROM generate_series(0, $k - 1) g" >/dev/null
	q "SELECT keyedstate.sync('$name', '1 hour')" >/dev/null
	full=$(ckpt "$name")
	# the fastest of the 1% checkpoints that wrote 1% of the keys
	one=$(printf '%s\n' "${one[@]}" | awk -v k="$k" '$2 <= k / 50' | sort -n | head -1)
	awk -v o="$one" -v f="$full" 'BEGIN {
		split(o, a, " "); split(f, b, " ");
		printf "checkpoint, 1%% of keys dirty:   %8.1f ms, %8d keys, %10d bytes of state, %10d bytes of WAL\n", a[1], a[2], a[3], a[4];
		printf "checkpoint, 100%% of keys dirty: %8.1f ms, %8d keys, %10d bytes of state, %10d bytes of WAL\n", b[1], b[2], b[3], b[4];
		printf "1%% checkpoint / full checkpoint: time 1/%.0f, WAL 1/%.0f (target: at most 1/20 of the time)\n",
			b[1] / a[1], b[4] / a[4];
	}'
}

# Point lookups against full scans of the view of aggregation $1.
lookups() {
	local name=$1 k=$2
	ks_psql -At <<SQL
DO \$\$
DECLARE
	t0 timestamptz;
	lookup float8;
	scan float8;
	x bigint;
BEGIN
	t0 := clock_timestamp();
	FOR i IN 1 .. 2000 LOOP
		SELECT n INTO x FROM $name WHERE k = (i * 7919) % $k;
	END LOOP;
	lookup := extract(epoch FROM clock_timestamp() - t0) * 1000 / 2000;
	t0 := clock_timestamp();
	FOR i IN 1 .. 3 LOOP
		SELECT count(*) INTO x FROM $name;
	END LOOP;
	scan := extract(epoch FROM clock_timestamp() - t0) * 1000 / 3;
	RAISE NOTICE 'point lookup % ms, full scan % ms: lookup % times faster (target: at least 100 at 1M keys)',
		round(lookup::numeric, 3), round(scan::numeric, 1), round((scan / lookup)::numeric);
END \$\$;
SQL
}

# Memory of aggregation $1 per key.
memory() {
	q "SELECT format('memory per key: %s bytes shared, %s bytes in the worker (%s keys)',
		shared_bytes / keys, (memory_bytes - shared_bytes) / keys, keys) FROM keyedstate.status WHERE name = '$1'"
}

# Restart (clean stop, start) until every aggregation serves exact state again.
restart() {
	local t0 t1 ts
	ks_as_pg pg_ctl -D "$KS_PGDATA" -m fast -w stop >/dev/null
	t0=$(now)
	ks_cluster_restart
	ts=$(now)
	until [ "$(q "SELECT count(*) FROM keyedstate.status WHERE state <> 'running'")" = 0 ]; do sleep 0.02; done
	q "SELECT keyedstate.sync(name) FROM keyedstate.aggregations" >/dev/null
	t1=$(now)
	grep "recovered" "$KS_CLUSTER/log" | tail -n "$(q "SELECT count(*) FROM keyedstate.status")" | sed 's/^.*LOG:  /  worker: /'
	echo "restart to serving state with $(q "SELECT string_agg(name || ' ' || keys || ' keys', ', ') FROM keyedstate.status"): $(ms "$t0" "$t1") ms, of which $(ms "$t0" "$ts") ms until pg_ctl start returned (target: at most 2000 ms with 1M keys)"
}

# Rows of aggregation $1's view that differ from the plain GROUP BY of table $2.
mismatches() {
	q "SELECT count(*) FROM ((SELECT k, n, s, mn, mx FROM $1 EXCEPT SELECT k, count(*), sum(v), min(v), max(v) FROM $2 GROUP BY k)
		UNION ALL (SELECT k, count(*), sum(v), min(v), max(v) FROM $2 GROUP BY k EXCEPT SELECT k, n, s, mn, mx FROM $1)) d"
}

DATA="$KS_CLUSTER/data.csv"
TDATA="$KS_CLUSTER/trigger.csv"
echo "== $ROWS rows, $KEYS keys, medians of $REPEAT; $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB; cluster $KS_PGDATA"
q "CREATE EXTENSION keyedstate" >/dev/null
gen_data "$DATA" "$ROWS" "$KEYS"
gen_data "$TDATA" "$TRIGGER_ROWS" "$KEYS"
ks_psql -c "CREATE TABLE ev_copy (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL)" >/dev/null

# 1. the ingest ceiling: COPY with no aggregation
copy_plain() {
	local t0 t1
	q "TRUNCATE ev_copy" >/dev/null
	t0=$(now); q "COPY ev_copy (k, v) FROM '$DATA'" >/dev/null; t1=$(now)
	rate "$ROWS" "$t0" "$t1"
}
row "COPY into the table, no aggregation (ingest ceiling)" "$(med copy_plain)"

# 2. keyedstate draining the backlog with one worker, 3. plain GROUP BY, 4. rollups
load_table ev "$DATA"
KS_DRAIN=$(med drain ev "$ROWS")
row "keyedstate backlog drain (start_from beginning until sync returns)" "$KS_DRAIN"
row "plain SELECT ... GROUP BY over all rows (parallel, not incremental)" "$(med groupby ev "$ROWS")"
R100K=$(med rollup ev "$ROWS" 100000)
row "INSERT ... ON CONFLICT rollup, 100,000-row batches" "$R100K"
row "INSERT ... ON CONFLICT rollup, 1,000,000-row batches" "$(med rollup ev "$ROWS" 1000000)"
RONE=$(med rollup ev "$ROWS" "$ROWS")
row "one rollup over the whole backlog in one transaction" "$RONE"

# 5. triggers, on COPY of TRIGGER_ROWS rows
ks_psql >/dev/null <<'SQL'
CREATE TABLE ev_rowtrig (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE ev_stmttrig (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE rollup_row (k int PRIMARY KEY, n bigint, s bigint, mn int, mx int);
CREATE TABLE rollup_stmt (LIKE rollup_row INCLUDING ALL);
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
t0=$(now); q "COPY ev_rowtrig (k, v) FROM '$TDATA'" >/dev/null; t1=$(now)
row "COPY with a per-row trigger upsert" "$(rate "$TRIGGER_ROWS" "$t0" "$t1")"
t0=$(now); q "COPY ev_stmttrig (k, v) FROM '$TDATA'" >/dev/null; t1=$(now)
row "COPY with a statement trigger (transition table)" "$(rate "$TRIGGER_ROWS" "$t0" "$t1")"

# 6. writers with and without an aggregation consuming
ks_psql >/dev/null <<SQL
CREATE TABLE w_plain (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
CREATE TABLE w_agg (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
SELECT keyedstate.create_aggregation('w_stats', '$(AGG_OF w_agg)');
SQL
q "SELECT keyedstate.sync('w_stats')" >/dev/null
copy_into() {
	local t0 t1
	t0=$(now); q "COPY $1 (k, v) FROM '$DATA'" >/dev/null; t1=$(now)
	q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null
	rate "$ROWS" "$t0" "$t1"
}
# interleaved, so that both see the same state of the machine
cp=(); ca=()
for i in $(seq 1 "$REPEAT"); do
	cp+=("$(copy_into w_plain)")
	ca+=("$(copy_into w_agg)")
done
COPY_PLAIN=$(median "${cp[@]}")
COPY_AGG=$(median "${ca[@]}")
row "COPY, no aggregation on the table" "$COPY_PLAIN"
row "COPY while keyedstate consumes the table" "$COPY_AGG"

# keeping up with COPY at full speed: COPY_CHUNK-row COPYs, each its own
# transaction, back to back; the lag is sampled while they run
split -l "$COPY_CHUNK" -d -a 4 "$DATA" "$KS_CLUSTER/chunk."
chmod a+r "$KS_CLUSTER"/chunk.*
for f in "$KS_CLUSTER"/chunk.*; do echo "COPY w_agg (k, v) FROM '$f';"; done > "$KS_CLUSTER/chunks.sql"
chmod a+r "$KS_CLUSTER/chunks.sql"
q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null
t0=$(now)
ks_psql -f "$KS_CLUSTER/chunks.sql" >/dev/null &
copier=$!
maxlag=0; lags=()
while kill -0 $copier 2>/dev/null; do
	lag=$(q "SELECT coalesce(lag_rows, 0) FROM keyedstate.status WHERE name = 'w_stats'")
	lags+=("$lag")
	[ "$lag" -gt "$maxlag" ] && maxlag=$lag
	sleep 0.2
done
wait $copier
t1=$(now)
q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null
t2=$(now)
row "COPY in $COPY_CHUNK-row transactions while keyedstate consumes (writer speed)" "$(rate "$ROWS" "$t0" "$t1")"
row "keyedstate keeping up with those COPYs (rows until sync returns)" "$(rate "$ROWS" "$t0" "$t2")"
KEEPUP="lag while COPYing $ROWS rows in $COPY_CHUNK-row transactions: max $maxlag rows, median $(median "${lags[@]:-0}") rows; caught up $(ms "$t1" "$t2") ms after the last commit"

# 8 clients inserting 1000-row batches, with and without an aggregation
batch_script() {
	echo "INSERT INTO $1 (k, v) SELECT (random() * ($KEYS - 1))::int, (random() * 1000)::int FROM generate_series(1, 1000);" > "$KS_CLUSTER/$1.sql"
	chmod a+r "$KS_CLUSTER/$1.sql"
}
clients() {
	ks_as_pg pgbench -n -c 8 -j 2 -T "$CLIENT_SECONDS" -f "$KS_CLUSTER/$1.sql" -h "$KS_SOCK" -p "$KS_PORT" postgres 2>/dev/null |
		awk '/^tps/ { printf "%.0f", $3 * 1000 }'
}
clients_agg() {
	local before after t0 t1 t2 r
	before=$(q "SELECT count(*) FROM w_agg")
	t0=$(now); r=$(clients w_agg); t1=$(now)
	after=$(q "SELECT count(*) FROM w_agg")
	q "SELECT keyedstate.sync('w_stats', '1 hour')" >/dev/null; t2=$(now)
	echo "$r $(rate $((after - before)) "$t0" "$t2")"
}
batch_script w_plain; batch_script w_agg
clp=(); cl=(); steady=()
for i in $(seq 1 "$REPEAT"); do
	clp+=("$(clients w_plain)")
	read -r a b <<<"$(clients_agg)"
	cl+=("$a"); steady+=("$b")
done
CL_PLAIN=$(median "${clp[@]}")
CL_AGG=$(median "${cl[@]}")
row "8 clients inserting 1000-row batches, no aggregation" "$CL_PLAIN"
row "8 clients inserting 1000-row batches, keyedstate consuming" "$CL_AGG"
row "keyedstate steady state under those clients (rows until sync returns)" "$(median "${steady[@]}")"

echo
printf "%-80s %12s %8s\n" "approach ($KEYS keys)" "rows/s" "vs drain"
for k in "${ORDER[@]}"; do
	printf "%-80s %12s %7sx\n" "$k" "${RATE[$k]}" "$(ratio "${RATE[$k]}" "$KS_DRAIN")"
done
echo
echo "== ratios against the targets of the performance issue ($KEYS keys)"
awk -v ks="$KS_DRAIN" -v r100k="$R100K" -v rone="$RONE" \
	-v cp="$COPY_PLAIN" -v ca="$COPY_AGG" -v clp="$CL_PLAIN" -v cla="$CL_AGG" 'BEGIN {
	printf "backlog drain / 100k-batch rollup       %5.2f (target >= 5)\n", ks / r100k;
	printf "backlog drain / one-transaction rollup  %5.2f (target >= 1)\n", ks / rone;
	printf "COPY slowed by an aggregation           %5.1f%% (target <= 10%%)\n", (1 - ca / cp) * 100;
	printf "batched inserts slowed by an aggregation %4.1f%% (target <= 10%%)\n", (1 - cla / clp) * 100;
}'
echo "$KEEPUP"

# 7. freshness: commit to visible, under a steady stream of single-row inserts at 2,000 rows/s
echo "INSERT INTO w_agg (k, v) VALUES ((random() * ($KEYS - 1))::int, 1);" > "$KS_CLUSTER/single.sql"; chmod a+r "$KS_CLUSTER/single.sql"
ks_as_pg pgbench -n -c 4 -j 2 -R 2000 -T 600 -f "$KS_CLUSTER/single.sql" -h "$KS_SOCK" -p "$KS_PORT" postgres >/dev/null 2>&1 &
stream=$!
sleep 1
ks_psql -c "CREATE TABLE fresh (ms float8)" -c "DO \$\$
DECLARE
	t0 timestamptz;
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
echo "== freshness: commit to visible in the view, under 2,000 single-row inserts/s"
q "SELECT format('p50 %s ms, p99 %s ms, max %s ms (target: p99 at most 50 ms)',
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2)) FROM fresh"

# 8. lookups, checkpoints, memory and restart at KEYS keys
echo
echo "== $KEYS keys: lookups, checkpoints, memory, restart"
lookups ev_stats "$KEYS" 2>&1 | sed 's/^NOTICE:  //'
checkpoints ev "$KEYS"
memory ev_stats
q "SELECT keyedstate.drop_aggregation('w_stats')" >/dev/null
restart
echo "mismatches against GROUP BY after the restart: $(mismatches ev_stats ev)"

# 9. the same comparisons with few and with many keys
variant() {
	local k=$1 table="ev_$1" file="$KS_CLUSTER/data_$1.csv" d r100 rone
	echo
	echo "== $VARIANT_ROWS rows over $k keys"
	gen_data "$file" "$VARIANT_ROWS" "$k"
	load_table "$table" "$file"
	d=$(med drain "$table" "$VARIANT_ROWS")
	r100=$(med rollup "$table" "$VARIANT_ROWS" 100000)
	rone=$(med rollup "$table" "$VARIANT_ROWS" "$VARIANT_ROWS")
	printf "%-60s %12s\n" "keyedstate backlog drain" "$d"
	printf "%-60s %12s  (drain / it: %s, target >= 5)\n" "INSERT ... ON CONFLICT rollup, 100,000-row batches" "$r100" "$(ratio "$d" "$r100")"
	printf "%-60s %12s  (drain / it: %s, target >= 1)\n" "one rollup over the whole backlog in one transaction" "$rone" "$(ratio "$d" "$rone")"
}
q "SELECT keyedstate.drop_aggregation('ev_stats')" >/dev/null
variant "$SMALL_KEYS"
q "SELECT keyedstate.drop_aggregation('ev_${SMALL_KEYS}_stats')" >/dev/null
variant "$BIG_KEYS"
lookups "ev_${BIG_KEYS}_stats" "$BIG_KEYS" 2>&1 | sed 's/^NOTICE:  //'
checkpoints "ev_$BIG_KEYS" "$BIG_KEYS"
memory "ev_${BIG_KEYS}_stats"
restart
echo "mismatches against GROUP BY after the restart: $(mismatches "ev_${BIG_KEYS}_stats" "ev_$BIG_KEYS")"
