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
#   ONLY=budget BUDGET_KEYS=10000000 test/bench.sh   only the memory budget
#   ONLY=bigstates test/bench.sh                    only keys of large states under 1MB
#   ONLY=partitioned test/bench.sh                  only partitioned sources
#   ONLY=parallel test/bench.sh                     only 1 against 2 workers
#   ONLY=pauses test/bench.sh                       only the checkpoint pauses
#   ONLY=wakes test/bench.sh                        only the worker's CPU per commit
#
# Throughputs are medians of REPEAT runs.  Machines here are shared and
# noisy: compare ratios measured in the same run, not absolute numbers.
# Results go to stdout; progress (each timed step and its seconds, lines
# starting with "  ..") goes to stderr as the run goes.
#
# Layout: the timing helpers, then one function per measurement (bench_*),
# then the run itself at the end, which calls them in order.

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
BUDGET_KEYS=${BUDGET_KEYS:-10000000}	# keys of the memory-budget comparison
BUDGET=${BUDGET:-128MB}				# its memory_limit
BIGSTATE_KEYS=${BIGSTATE_KEYS:-400}		# keys of large states under 1MB
STEADY_ROWS=${STEADY_ROWS:-1000000}	# rows of each steady-state measurement
PAR_KEYS=${PAR_KEYS:-1000000}		# keys of the parallelism comparison
PAR_ROWS=${PAR_ROWS:-4000000}		# its rows
PAR_BUDGET=${PAR_BUDGET:-32MB}		# its memory_limit in the budgeted pair
PAUSE_KEYS=${PAUSE_KEYS:-1000000}	# keys of the checkpoint-pause measurement
PAUSE_BATCH=${PAUSE_BATCH:-40000}	# rows inserted every 0.2 s meanwhile
PAUSE_SECONDS=${PAUSE_SECONDS:-40}	# its length
ONLY=${ONLY:-}						# "budget", "bigstates", "partitioned", "parallel", "pauses" or "wakes": only that one

# --- timing and arithmetic ---------------------------------------------

# Print a progress line on stderr.
progress() { echo "  .. $*" >&2; }

# The one timing helper: ks_time <label> <command...> runs the command
# (its stdout discarded), prints its wall-clock seconds on stdout and the
# label with them as progress.
ks_time() {
	local label=$1 t0 t1 secs
	shift
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
	progress "$label: $(awk -v s="$secs" 'BEGIN { printf "%.3f", s }') s"
	echo "$secs"
}

# The median of the numbers on stdin, one a line (the lower one of an even count).
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ks_median_of <command...>: run the command REPEAT times; it prints one
# line of numbers per run, and this prints the median of each column.
ks_median_of() {
	local runs cols c i medians=()
	runs=$(for i in $(seq 1 "$REPEAT"); do echo "$("$@")"; done)
	cols=$(head -1 <<<"$runs" | awk '{ print NF }')
	for c in $(seq 1 "$cols"); do
		medians+=("$(awk -v c="$c" '{ print $c }' <<<"$runs" | median)")
	done
	echo "${medians[*]}"
}

# rows/s of $1 rows in $2 seconds.
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
# $1 seconds in milliseconds.
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
# The sum of two numbers of seconds.
plus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a + b }'; }
# $1 / $2 with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# The result table, in the order rows are recorded.
declare -A RATE
ORDER=()
# Record a row of the result table: row <approach> <rows/s>.
row() { RATE["$1"]=$2; ORDER+=("$1"); progress "$1: $2 rows/s"; }

# --- data ----------------------------------------------------------------

# The benchmark's query over table $1.
agg_query() { echo "SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS mn, max(v) AS mx FROM $1 GROUP BY k"; }

# Generate N rows over K keys into a server-side CSV file: the first K rows
# name every key once, so that all K exist, then keys are uniformly random.
gen_data() {
	local file=$1 n=$2 k=$3
	ks_query "COPY (SELECT CASE WHEN g <= $k THEN g - 1 ELSE (random() * ($k - 1))::int END, (random() * 1000)::int
			   FROM generate_series(1, $n) g) TO '$file'" >/dev/null
}

# A fresh source table $1 (id, k, v), empty.
new_table() {
	ks_psql -c "DROP TABLE IF EXISTS $1 CASCADE" -c "CREATE TABLE $1 (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL)" >/dev/null 2>&1
}

# A fresh source table, loaded from a CSV file and vacuumed.
load_table() {
	local table=$1 file=$2
	new_table "$table"
	ks_query "COPY $table (k, v) FROM '$file'" >/dev/null
	ks_query "VACUUM ANALYZE $table" >/dev/null
}

# Insert one row for every $2-th key of $1 keys into table $3, then sync aggregation $4.
touch_keys() {
	local k=$1 step=$2 table=$3 name=$4
	ks_query "INSERT INTO $table (k, v) SELECT g, 1 FROM generate_series(0, $k - 1, $step) g" >/dev/null
	ks_sync "$name" '1 hour' >/dev/null
}

# --- one run of each throughput measurement: prints rows/s ---------------

# COPY of the main data set into a table with no aggregation.
copy_ceiling_once() {
	ks_query "TRUNCATE ev_copy" >/dev/null
	rate "$ROWS" "$(ks_time "COPY of $ROWS rows, no aggregation" ks_query "COPY ev_copy (k, v) FROM '$DATA'")"
}

# Create aggregation $1 over table $2 from the beginning and wait until it has consumed every row.
create_and_sync() {
	ks_query "SELECT keyedstate.create_aggregation('$1', '$(agg_query "$2")', checkpoint_interval => '1 hour')" >/dev/null
	ks_sync "$1" '1 hour'
}

# keyedstate draining a backlog of $2 rows of table $1: create until sync returns.
drain_once() {
	local table=$1 n=$2 name="${1}_stats"
	ks_query "SELECT keyedstate.drop_aggregation('$name') FROM keyedstate.aggregations WHERE name = '$name'" >/dev/null
	rate "$n" "$(ks_time "keyedstate drain of $n rows ($table)" create_and_sync "$name" "$table")"
}

# A plain GROUP BY over the $2 rows of table $1.
groupby_once() {
	rate "$2" "$(ks_time "GROUP BY over $2 rows ($1)" ks_query "SELECT count(*) FROM ($(agg_query "$1")) s")"
}

# The cron recipe over the $2 rows of table $1: INSERT ... SELECT ... GROUP BY
# ... ON CONFLICT per id range of $3 rows, one transaction each.
rollup_once() {
	local table=$1 n=$2 batch=$3
	ks_psql -c "DROP TABLE IF EXISTS rollup_$table" -c "CREATE TABLE rollup_$table (k int PRIMARY KEY, n bigint, s bigint, mn int, mx int)" >/dev/null 2>&1
	rate "$n" "$(ks_time "rollup of $n rows in $batch-row batches ($table)" ks_psql -c "DO \$\$
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
END \$\$")"
}

# COPY of the main data set into table $1 (w_stats consumes w_agg; its
# catch-up afterwards is not timed).
copy_into() {
	local r
	r=$(rate "$ROWS" "$(ks_time "COPY of $ROWS rows into $1" ks_query "COPY $1 (k, v) FROM '$DATA'")")
	ks_sync w_stats '1 hour' >/dev/null
	echo "$r"
}

# COPY without and with an aggregation consuming, interleaved so that both
# see the same state of the machine: prints "plain agg".
copy_pair_once() {
	echo "$(copy_into w_plain) $(copy_into w_agg)"
}

# 8 clients inserting 1,000-row batches into table $1 for CLIENT_SECONDS;
# pgbench's report goes to $KS_CLUSTER/$1.out.
run_clients() {
	ks_pgbench -c 8 -j 2 -T "$CLIENT_SECONDS" -f "$KS_CLUSTER/$1.sql" > "$KS_CLUSTER/$1.out" 2>/dev/null
}

# rows/s of the last run_clients into table $1 (transactions/s x 1,000 rows).
clients_rate() {
	awk '/^tps/ { printf "%.0f", $3 * 1000 }' "$KS_CLUSTER/$1.out"
}

# 8 clients without, then with an aggregation consuming, and keyedstate's
# steady rate (the rows they inserted, until sync returns): prints
# "plain agg steady".
clients_once() {
	local before after clients catchup
	ks_time "8 clients for $CLIENT_SECONDS s, no aggregation" run_clients w_plain >/dev/null
	before=$(ks_query "SELECT count(*) FROM w_agg")
	clients=$(ks_time "8 clients for $CLIENT_SECONDS s, keyedstate consuming" run_clients w_agg)
	catchup=$(ks_time "keyedstate catching up with them" ks_sync w_stats '1 hour')
	after=$(ks_query "SELECT count(*) FROM w_agg")
	echo "$(clients_rate w_plain) $(clients_rate w_agg) $(rate $((after - before)) "$(plus "$clients" "$catchup")")"
}

# --- the measurements ----------------------------------------------------

# 1. The ingest ceiling: COPY with no aggregation.
bench_copy_ceiling() {
	ks_psql -c "CREATE TABLE ev_copy (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL)" >/dev/null
	row "COPY into the table, no aggregation (ingest ceiling)" "$(ks_median_of copy_ceiling_once)"
}

# 2. keyedstate draining the backlog of table ev with one worker; sets KS_DRAIN.
bench_drain() {
	load_table ev "$DATA"
	KS_DRAIN=$(ks_median_of drain_once ev "$ROWS")
	row "keyedstate backlog drain (start_from beginning until sync returns)" "$KS_DRAIN"
}

# 3. A plain GROUP BY over all rows.
bench_groupby() {
	row "plain SELECT ... GROUP BY over all rows (parallel, not incremental)" "$(ks_median_of groupby_once ev "$ROWS")"
}

# 4. Rollups in 100,000- and 1,000,000-row batches and in one transaction; sets R100K and RONE.
bench_rollups() {
	R100K=$(ks_median_of rollup_once ev "$ROWS" 100000)
	row "INSERT ... ON CONFLICT rollup, 100,000-row batches" "$R100K"
	row "INSERT ... ON CONFLICT rollup, 1,000,000-row batches" "$(ks_median_of rollup_once ev "$ROWS" 1000000)"
	RONE=$(ks_median_of rollup_once ev "$ROWS" "$ROWS")
	row "one rollup over the whole backlog in one transaction" "$RONE"
}

# 5. Triggers: COPY of TRIGGER_ROWS rows with a per-row and with a statement trigger upsert.
bench_triggers() {
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
	row "COPY with a per-row trigger upsert" \
		"$(rate "$TRIGGER_ROWS" "$(ks_time "COPY of $TRIGGER_ROWS rows, per-row trigger" ks_query "COPY ev_rowtrig (k, v) FROM '$TDATA'")")"
	row "COPY with a statement trigger (transition table)" \
		"$(rate "$TRIGGER_ROWS" "$(ks_time "COPY of $TRIGGER_ROWS rows, statement trigger" ks_query "COPY ev_stmttrig (k, v) FROM '$TDATA'")")"
}

# 6. Writers slowed: COPY into a table with and without aggregation w_stats
# consuming it; sets COPY_PLAIN and COPY_AGG.
bench_copy_slowed() {
	new_table w_plain
	new_table w_agg
	ks_query "SELECT keyedstate.create_aggregation('w_stats', '$(agg_query w_agg)')" >/dev/null
	ks_sync w_stats >/dev/null
	read -r COPY_PLAIN COPY_AGG <<<"$(ks_median_of copy_pair_once)"
	row "COPY, no aggregation on the table" "$COPY_PLAIN"
	row "COPY while keyedstate consumes the table" "$COPY_AGG"
}

# COPY the chunk files one transaction each, back to back, sampling
# w_stats's lag every 0.2 s into $KS_CLUSTER/lags while they run.
copy_chunks_sampling_lag() {
	local copier
	: > "$KS_CLUSTER/lags"
	ks_psql -f "$KS_CLUSTER/chunks.sql" >/dev/null &
	copier=$!
	while kill -0 $copier 2>/dev/null; do
		ks_query "SELECT coalesce(lag_rows, 0) FROM keyedstate.status WHERE name = 'w_stats'" >> "$KS_CLUSTER/lags"
		sleep 0.2			# the sampling interval
	done
	wait $copier
}

# 7. Keeping up with COPY at full speed: COPY_CHUNK-row COPYs, each its own
# transaction, back to back; the lag is sampled while they run.  Sets KEEPUP.
bench_copy_keepup() {
	local copying catchup maxlag medlag
	split -l "$COPY_CHUNK" -d -a 4 "$DATA" "$KS_CLUSTER/chunk."
	chmod a+r "$KS_CLUSTER"/chunk.*
	for f in "$KS_CLUSTER"/chunk.*; do echo "COPY w_agg (k, v) FROM '$f';"; done | ks_script chunks.sql >/dev/null
	ks_sync w_stats '1 hour' >/dev/null
	copying=$(ks_time "COPY of $ROWS rows in $COPY_CHUNK-row transactions" copy_chunks_sampling_lag)
	catchup=$(ks_time "keyedstate catching up with them" ks_sync w_stats '1 hour')
	row "COPY in $COPY_CHUNK-row transactions while keyedstate consumes (writer speed)" "$(rate "$ROWS" "$copying")"
	row "keyedstate keeping up with those COPYs (rows until sync returns)" "$(rate "$ROWS" "$(plus "$copying" "$catchup")")"
	maxlag=$(sort -n "$KS_CLUSTER/lags" | tail -1)
	medlag=$(median < "$KS_CLUSTER/lags")
	KEEPUP="lag while COPYing $ROWS rows in $COPY_CHUNK-row transactions: max ${maxlag:-0} rows, median ${medlag:-0} rows; caught up $(ms "$catchup") ms after the last commit"
}

# 8. Writers slowed: 8 clients inserting 1,000-row batches, with and without
# an aggregation consuming; sets CL_PLAIN and CL_AGG.
bench_clients() {
	local t steady
	for t in w_plain w_agg; do
		echo "INSERT INTO $t (k, v) SELECT (random() * ($KEYS - 1))::int, (random() * 1000)::int FROM generate_series(1, 1000);" |
			ks_script "$t.sql" >/dev/null
	done
	read -r CL_PLAIN CL_AGG steady <<<"$(ks_median_of clients_once)"
	row "8 clients inserting 1000-row batches, no aggregation" "$CL_PLAIN"
	row "8 clients inserting 1000-row batches, keyedstate consuming" "$CL_AGG"
	row "keyedstate steady state under those clients (rows until sync returns)" "$steady"
}

# The result table and the ratios against the targets of the performance issue.
print_results() {
	local k
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
}

# Freshness probes: freshness_probes <table> <view> <results> <count> <seconds>
# <pace> [sql]: up to <count> times, for at most <seconds>, insert a row of
# key -1 into <table> (columns k, v), commit, poll (every 0.2 ms) until
# <view>'s count n for key -1 shows it, and record the milliseconds in
# <results> (ms); then run [sql] and wait <pace> seconds.
freshness_probes() {
	local table=$1 view=$2 results=$3 count=$4 seconds=$5 pace=$6 extra=${7:-}
	ks_psql -c "DO \$\$
DECLARE
	t0 timestamptz;
	i int := 0;
	stop timestamptz := clock_timestamp() + interval '$seconds s';
BEGIN
	WHILE i < $count AND clock_timestamp() < stop LOOP
		i := i + 1;
		INSERT INTO $table (k, v) VALUES (-1, i);
		COMMIT;
		t0 := clock_timestamp();
		LOOP
			EXIT WHEN (SELECT n FROM $view WHERE k = -1) >= i;
			PERFORM pg_sleep(0.0002);
		END LOOP;
		INSERT INTO $results VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
		$extra
		COMMIT;
		PERFORM pg_sleep($pace);
	END LOOP;
END \$\$" >/dev/null
}

# 9. Freshness: commit to visible in w_stats, FRESHNESS_SAMPLES times, under
# a steady stream of single-row inserts at 2,000 rows/s.
bench_freshness() {
	local single stream
	single=$(echo "INSERT INTO w_agg (k, v) VALUES ((random() * ($KEYS - 1))::int, 1);" | ks_script single.sql)
	progress "freshness: $FRESHNESS_SAMPLES samples under 2,000 single-row inserts/s"
	ks_pgbench -c 4 -j 2 -R 2000 -T 600 -f "$single" >/dev/null 2>&1 &
	stream=$!
	ks_wait_for 30 "SELECT count(*) >= 4 FROM pg_stat_activity WHERE application_name = 'pgbench'" ||
		{ echo "the insert stream did not start" >&2; return 1; }
	ks_psql -c "CREATE TABLE fresh (ms float8)" >/dev/null
	freshness_probes w_agg w_stats fresh "$FRESHNESS_SAMPLES" 86400 0.02
	ks_pgbench_stop $stream
	echo
	echo "== freshness: commit to visible in the view, under 2,000 single-row inserts/s"
	ks_query "SELECT format('p50 %s ms, p99 %s ms, max %s ms (target: p99 at most 50 ms)',
		round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(max(ms)::numeric, 2)) FROM fresh"
}

# A checkpoint of aggregation $1 now; prints "ms keys bytes WAL" of it.
ckpt() {
	local lsn0 lsn1
	lsn0=$(ks_query "SELECT pg_current_wal_lsn()")
	ks_query "SELECT keyedstate.checkpoint('$1')" >/dev/null
	lsn1=$(ks_query "SELECT pg_current_wal_lsn()")
	ks_query "SELECT round(last_checkpoint_ms::numeric, 1) || ' ' || last_checkpoint_keys || ' ' ||
			  last_checkpoint_bytes || ' ' || pg_wal_lsn_diff('$lsn1', '$lsn0')
		 FROM keyedstate.status WHERE name = '$1'"
}

# A checkpoint of aggregation $1 that may outlast keyedstate.checkpoint()'s
# wait (a full one of 10M keys): waits for the status to show a new one.
# Prints "ms keys bytes WAL" like ckpt.
ckpt_long() {
	local before lsn0 lsn1
	before=$(ks_query "SELECT COALESCE(last_checkpoint::text, '') FROM keyedstate.status WHERE name = '$1'")
	lsn0=$(ks_query "SELECT pg_current_wal_lsn()")
	ks_query "SELECT keyedstate.checkpoint('$1')" >/dev/null 2>&1 ||
		ks_wait_for 3600 "SELECT COALESCE(last_checkpoint::text, '') <> '$before' FROM keyedstate.status WHERE name = '$1'"
	lsn1=$(ks_query "SELECT pg_current_wal_lsn()")
	ks_query "SELECT round(last_checkpoint_ms::numeric, 1) || ' ' || last_checkpoint_keys || ' ' ||
			  last_checkpoint_bytes || ' ' || pg_wal_lsn_diff('$lsn1', '$lsn0')
		 FROM keyedstate.status WHERE name = '$1'"
}

# 10. Checkpoints of the aggregation over table $1 with $2 keys: 1% and 100% dirty.
bench_checkpoints() {
	local table=$1 k=$2 name="${1}_stats" one=() full i
	progress "checkpoints of $name: 1% and 100% of $k keys dirty"
	# settle: after enough deltas a checkpoint is a full one (compaction);
	# measure a 1% checkpoint that follows it, so that it is a delta
	for i in 1 2 3; do
		touch_keys "$k" 1 "$table" "$name"
		ks_query "SELECT keyedstate.checkpoint('$name')" >/dev/null
	done
	for i in 1 2 3; do
		touch_keys "$k" 100 "$table" "$name"
		one+=("$(ckpt "$name")")
	done
	touch_keys "$k" 1 "$table" "$name"
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

# 11. Point lookups against full scans of the view of aggregation $1 with $2 keys.
bench_lookups() {
	local name=$1 k=$2
	progress "lookups in $name"
	ks_psql -At <<SQL 2>&1 | sed 's/^NOTICE:  //'
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

# 12. Memory of aggregation $1 per key.
bench_memory() {
	ks_query "SELECT format('memory per key: %s bytes shared, %s bytes in the worker (%s keys)',
		shared_bytes / keys, (memory_bytes - shared_bytes) / keys, keys) FROM keyedstate.status WHERE name = '$1'"
}

# Wait until every aggregation runs again, then sync them all.
serving() {
	ks_wait_running 3600 || { echo "the aggregations did not resume" >&2; return 1; }
	ks_sync_all
}

# 13. Restart (clean stop, start) until every aggregation serves exact
# state again; then the mismatches of aggregation $1's view against the
# plain GROUP BY of table $2.
bench_restart() {
	local start recovery
	ks_cluster_stop fast
	start=$(ks_time "pg_ctl start" ks_cluster_restart)
	recovery=$(ks_time "recovery until every aggregation serves" serving)
	grep "recovered" "$KS_CLUSTER/log" | tail -n "$(ks_query "SELECT count(*) FROM keyedstate.status")" | sed 's/^.*LOG:  /  worker: /'
	echo "restart to serving state with $(ks_query "SELECT string_agg(name || ' ' || keys || ' keys', ', ') FROM keyedstate.status"): $(ms "$(plus "$start" "$recovery")") ms, of which $(ms "$start") ms until pg_ctl start returned (target: at most 2000 ms with 1M keys)"
	echo "mismatches against GROUP BY after the restart: $(ks_mismatches "SELECT k, n, s, mn, mx FROM $1" \
		"SELECT k, count(*), sum(v), min(v), max(v) FROM $2 GROUP BY k")"
}

# 14. The drain and the rollups again, over VARIANT_ROWS rows with $1 keys
# (table ev_$1, aggregation ev_$1_stats).
bench_variant() {
	local k=$1 table="ev_$1" file="$KS_CLUSTER/data_$1.csv" d r100 rone
	echo
	echo "== $VARIANT_ROWS rows over $k keys"
	gen_data "$file" "$VARIANT_ROWS" "$k"
	load_table "$table" "$file"
	d=$(ks_median_of drain_once "$table" "$VARIANT_ROWS")
	r100=$(ks_median_of rollup_once "$table" "$VARIANT_ROWS" 100000)
	rone=$(ks_median_of rollup_once "$table" "$VARIANT_ROWS" "$VARIANT_ROWS")
	printf "%-60s %12s\n" "keyedstate backlog drain" "$d"
	printf "%-60s %12s  (drain / it: %s, target >= 5)\n" "INSERT ... ON CONFLICT rollup, 100,000-row batches" "$r100" "$(ratio "$d" "$r100")"
	printf "%-60s %12s  (drain / it: %s, target >= 1)\n" "one rollup over the whole backlog in one transaction" "$rone" "$(ratio "$d" "$rone")"
}

# Create aggregation $1 over table evb with memory_limit $2 (none if empty)
# and wait until it has consumed every row.
budget_create() {
	local limit=""
	[ -n "$2" ] && limit=", memory_limit => '$2'"
	ks_query "SELECT keyedstate.create_aggregation('$1', '$(agg_query evb)', checkpoint_interval => '1 s'$limit)" >/dev/null
	ks_sync "$1" '2 hours'
}

# Seconds from now until aggregation $1 has consumed the first $2 rows of
# table evb (offsets 1 to $2, each a key seen for the first time), written
# to file $3: run in the background beside its drain.
first_pass_secs() {
	local name=$1 k=$2 file=$3 t0 off
	t0=$(date +%s.%N)
	while true; do
		off=$(ks_query "SELECT consumed_offset FROM keyedstate.status WHERE name = '$name'" 2>/dev/null)
		[ -n "$off" ] && [ "$off" -ge "$k" ] && break
		sleep 0.1
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.6f", b - a }' >"$file"
}

# rows/s of aggregation $1 consuming STEADY_ROWS new rows over keys `$2` (an
# SQL expression of g).  The rows are inserted in one transaction, which the
# frontier waits for, so the aggregation, loaded and running, consumes them
# all after the commit; the other aggregation (in the same worker) is paused
# meanwhile, and catches up unmeasured.  (Pausing the measured one too, as
# earlier builds did, reloads it at the resume: the figure then included its
# recovery and the cold filter's rebuild.)
steady_once() {
	local name=$1 keys=$2 other=evb_stats
	[ "$name" = evb_stats ] && other=evb_cold
	ks_query "SELECT keyedstate.pause('$other')" >/dev/null
	ks_sync "$name" '1 hour' >/dev/null
	ks_query "INSERT INTO evb (k, v) SELECT $keys, 1 FROM generate_series(1, $STEADY_ROWS) g" >/dev/null
	rate "$STEADY_ROWS" "$(ks_time "$name consumes $STEADY_ROWS rows over $keys" ks_sync "$name" '1 hour')"
	ks_query "SELECT keyedstate.resume('$other')" >/dev/null
	ks_sync_all '1 hour'
}

# Mean milliseconds of a point lookup of 2000 random keys of aggregation $1 ($2 keys).
lookup_ms() {
	ks_psql -At <<SQL 2>&1 | sed 's/^NOTICE:  //'
DO \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
	x bigint;
	key int;
BEGIN
	FOR i IN 1 .. 2000 LOOP
		key := (random() * ($2 - 1))::int;
		SELECT n INTO x FROM $1 WHERE k = key;
	END LOOP;
	RAISE NOTICE '%', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / 2000)::numeric, 3);
END \$\$;
SQL
}

# Mismatches of aggregation $1 against the GROUP BY of evb: on the totals,
# and on 1000 random keys (looked up, as a user would).
budget_exact() {
	local sample
	sample=$(ks_query "SELECT array_agg(DISTINCT (random() * ($BUDGET_KEYS - 1))::int) FROM generate_series(1, 1000)")
	echo "$1 after $2: totals $(ks_mismatches "SELECT sum(n), sum(s) FROM $1" "SELECT count(*), sum(v) FROM evb") rows differ, 1000 random keys $(ks_mismatches \
		"SELECT k, n, s, mn, mx FROM $1 WHERE k = ANY ('$sample')" \
		"SELECT k, count(*), sum(v), min(v), max(v) FROM evb WHERE k = ANY ('$sample') GROUP BY k") rows differ"
}

# 15. The memory budget: BUDGET_KEYS distinct keys, all in memory
# (evb_stats) against a memory_limit of BUDGET (evb_cold), side by side.
bench_budget() {
	local k=$BUDGET_KEYS n=$((BUDGET_KEYS * 2)) file="$KS_CLUSTER/data_budget.csv" dm dc dsm dsc fm fc hm hc um uc start recovery pid
	echo
	echo "== memory budget: $n rows over $k keys, all in memory (evb_stats) against memory_limit $BUDGET (evb_cold)"
	progress "generating $n rows over $k keys"
	gen_data "$file" "$n" "$k"
	load_table evb "$file"
	# each drain timed whole and up to the last key seen for the first time
	# (offset k: the first k rows are keys 0 to k - 1, the rest revisit them)
	first_pass_secs evb_stats "$k" "$KS_CLUSTER/first_pass" &
	dsm=$(ks_time "drain of $n rows, all in memory" budget_create evb_stats "")
	wait
	fm=$(cat "$KS_CLUSTER/first_pass")
	first_pass_secs evb_cold "$k" "$KS_CLUSTER/first_pass" &
	dsc=$(ks_time "drain of $n rows under $BUDGET" budget_create evb_cold "$BUDGET")
	wait
	fc=$(cat "$KS_CLUSTER/first_pass")
	dm=$(rate "$n" "$dsm")
	dc=$(rate "$n" "$dsc")
	# a full checkpoint of 10M keys outlasts keyedstate.checkpoint()'s wait: go on without it
	ks_query "SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations WHERE name IN ('evb_stats', 'evb_cold')" >/dev/null ||
		progress "a checkpoint did not end within keyedstate.checkpoint()'s wait; going on"
	ks_query "SELECT format('%-10s %10s keys, %10s in memory, memory %6s MB (budget %s), shared %6s MB, %s evictions, %s reloads',
		name, keys, keys_in_memory, memory_bytes / 1048576, COALESCE(pg_size_pretty(memory_limit), 'none'),
		shared_bytes / 1048576, evictions, reloads) FROM keyedstate.status WHERE name IN ('evb_stats', 'evb_cold') ORDER BY name DESC"
	printf "%-60s %12s\n" "drain, all in memory (rows/s)" "$dm"
	printf "%-60s %12s  (/ in memory: %s)\n" "drain under $BUDGET" "$dc" "$(ratio "$dc" "$dm")"
	printf "%-60s %12s\n" "first $k rows (every key new), all in memory" "$(rate "$k" "$fm")"
	printf "%-60s %12s  (/ in memory: %s, aim >= 0.3 M rows/s)\n" "first $k rows (every key new), under $BUDGET" "$(rate "$k" "$fc")" \
		"$(ratio "$(rate "$k" "$fc")" "$(rate "$k" "$fm")")"
	printf "%-60s %12s\n" "next $((n - k)) rows (keys seen before), all in memory" "$(rate "$((n - k))" "$(awk -v a="$dsm" -v b="$fm" 'BEGIN { print a - b }')")"
	printf "%-60s %12s\n" "next $((n - k)) rows (keys seen before), under $BUDGET" "$(rate "$((n - k))" "$(awk -v a="$dsc" -v b="$fc" 'BEGIN { print a - b }')")"
	# a hot set (1% of the keys: fits the budget), warmed up once, then uniform
	steady_once evb_cold "(random() * ($k / 100 - 1))::int" >/dev/null
	hm=$(steady_once evb_stats "(random() * ($k / 100 - 1))::int")
	hc=$(steady_once evb_cold "(random() * ($k / 100 - 1))::int")
	um=$(steady_once evb_stats "(random() * ($k - 1))::int")
	uc=$(steady_once evb_cold "(random() * ($k - 1))::int")
	printf "%-60s %12s\n" "steady state, hot set of 1% of keys, all in memory" "$hm"
	printf "%-60s %12s  (/ in memory: %s, aim >= 0.8)\n" "steady state, hot set of 1% of keys, under $BUDGET" "$hc" "$(ratio "$hc" "$hm")"
	printf "%-60s %12s\n" "steady state, uniform over all keys, all in memory" "$um"
	printf "%-60s %12s  (/ in memory: %s)\n" "steady state, uniform over all keys, under $BUDGET" "$uc" "$(ratio "$uc" "$um")"
	echo "point lookup of a random key: $(lookup_ms evb_stats "$k") ms all in memory, $(lookup_ms evb_cold "$k") ms under $BUDGET (mostly cold keys; aim <= 1 ms)"
	ks_query "SELECT format('on disk: keyedstate_internal.cold %s for %s cold keys, %s bytes per key; keyedstate_internal.state %s',
		pg_size_pretty(pg_total_relation_size('keyedstate_internal.cold')), (SELECT count(*) FROM keyedstate_internal.cold),
		pg_total_relation_size('keyedstate_internal.cold') / GREATEST((SELECT count(*) FROM keyedstate_internal.cold), 1),
		pg_size_pretty(pg_total_relation_size('keyedstate_internal.state')))"
	budget_exact evb_cold "the drain and the steady states"
	# checkpoints: 1% of the keys changed, then all of them (each aggregation alone)
	for name in evb_stats evb_cold; do
		local other=evb_cold one full
		[ "$name" = evb_cold ] && other=evb_stats
		ks_query "SELECT keyedstate.pause('$other')" >/dev/null
		# no periodic checkpoint may write the changed keys before the measured one
		ks_query "SELECT keyedstate.alter_aggregation('$name', checkpoint_interval => '1 hour')" >/dev/null
		ckpt_long "$name" >/dev/null
		progress "$name: 1% of the keys changed, then a checkpoint"
		touch_keys "$k" 100 evb "$name"
		one=$(ckpt_long "$name")
		awk -v n="$name" -v o="$one" 'BEGIN { split(o, a, " ");
			printf "%s next checkpoint, 1%% of keys changed: %9.1f ms, %9d keys, %11d bytes of state, %11d bytes of WAL\n", n, a[1], a[2], a[3], a[4]; }'
		# every key changed: only in memory (under the budget that is a
		# drain of reloads, measured above as the uniform steady state)
		if [ "$name" = evb_stats ]; then
			progress "$name: every key changed, then a checkpoint"
			touch_keys "$k" 1 evb "$name"
			full=$(ckpt_long "$name")
			awk -v n="$name" -v o="$one" -v f="$full" 'BEGIN {
				split(o, a, " "); split(f, b, " ");
				printf "%s next checkpoint, all keys changed:  %9.1f ms, %9d keys, %11d bytes of state, %11d bytes of WAL\n", n, b[1], b[2], b[3], b[4];
				printf "%s 1%% checkpoint / full: time 1/%.0f, WAL 1/%.0f\n", n, b[1] / a[1], b[4] / a[4];
			}'
		fi
		ks_query "SELECT keyedstate.alter_aggregation('$name', checkpoint_interval => '1 s')" >/dev/null
		ks_query "SELECT keyedstate.resume('$other')" >/dev/null
		ks_sync_all '2 hours'
	done
	budget_exact evb_cold "the checkpoints"
	# a crash in the middle of uniform writes
	ks_query "INSERT INTO evb (k, v) SELECT (random() * ($k - 1))::int, 1 FROM generate_series(1, $STEADY_ROWS)" >/dev/null &
	sleep 2
	progress "kill -9 of the worker"
	pid=$(ks_query "SELECT pid FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' LIMIT 1")
	kill -9 "$pid"
	wait
	# the killed worker's entry stays until the crash restart is through
	ks_wait_for 600 "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"
	ks_wait_running 3600
	ks_sync_all '1 hour'
	budget_exact evb_cold "a kill -9 of the worker during writes"
	# restart to a serving view
	ks_cluster_stop fast
	start=$(ks_time "pg_ctl start" ks_cluster_restart)
	recovery=$(ks_time "recovery until both aggregations serve" serving)
	grep "recovered" "$KS_CLUSTER/log" | tail -n 2 | sed 's/^.*LOG:  /  worker: /'
	echo "restart to serving state: $(ms "$(plus "$start" "$recovery")") ms for both (aim: at most 2000 ms at 10M keys under the budget)"
	budget_exact evb_cold "a restart"
}

# rows/s of aggregation $1 consuming the rows the other one (paused) also
# has to, with its peak memory_bytes and keys in memory sampled every 20 ms
# meanwhile: prints "rows/s peak-bytes peak-keys".
bigstates_round() {
	local name=$1 other=$2 rows=$3 samples="$KS_CLUSTER/bigstates.samples" secs
	: >"$samples"
	ks_query "SELECT keyedstate.resume('$name')" >/dev/null
	(while true; do ks_query "SELECT memory_bytes, keys_in_memory FROM keyedstate.status WHERE name = '$name'" >>"$samples"; sleep 0.02; done) &
	local sampler=$!
	secs=$(ks_time "$name consumes $rows rows" ks_sync "$name" '1 hour')
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
	ks_query "SELECT keyedstate.pause('$name')" >/dev/null
	echo "$(rate "$rows" "$secs") $(sort -t'|' -k1 -n "$samples" | tail -n 1 | cut -d'|' -f1) $(sort -t'|' -k2 -n "$samples" | tail -n 1 | cut -d'|' -f2)"
}

# 16. Keys of large states under a small budget (review exactness 24, F1):
# BIGSTATE_KEYS keys of string_agg over 200-byte rows, all in memory
# (evl_mem) against a memory_limit of 1MB (evl_cold), on the same rows,
# each consuming rounds of new rows alone: rows/s, and the peak memory and
# keys in memory while it does (each row's key is cold under the budget).
bench_bigstates() {
	local k=$BIGSTATE_KEYS init=$((BIGSTATE_KEYS * 150)) round=$((BIGSTATE_KEYS * 30)) r m c
	echo
	echo "== keys of large states: $k keys of string_agg over 200-byte rows ($init rows first, then 3 rounds of $round), all in memory (evl_mem) against memory_limit 1MB (evl_cold)"
	ks_query "CREATE TABLE evl (id bigserial PRIMARY KEY, k int NOT NULL, pad text NOT NULL)" >/dev/null
	for r in mem cold; do
		ks_query "SELECT keyedstate.create_aggregation('evl_$r', 'SELECT k, count(*) AS n, string_agg(pad, ''|'') AS sp FROM evl GROUP BY k',
			checkpoint_interval => '200 ms')" >/dev/null
	done
	progress "loading $init rows"
	ks_query "INSERT INTO evl (k, pad) SELECT g % $k, repeat(md5(g::text), 6) FROM generate_series(1, $init) g" >/dev/null
	ks_sync_all '1 hour'
	ks_query "SELECT keyedstate.alter_aggregation('evl_cold', memory_limit => '1MB')" >/dev/null
	progress "evl_cold: evicting down to its budget"
	ks_wait_for 600 "SELECT keys_in_memory <= 20 FROM keyedstate.status WHERE name = 'evl_cold'"
	ks_query "SELECT keyedstate.pause(name) FROM keyedstate.aggregations WHERE name IN ('evl_mem', 'evl_cold')" >/dev/null
	for r in 1 2 3; do
		ks_query "INSERT INTO evl (k, pad) SELECT (random() * ($k - 1))::int, repeat(md5(g::text), 6) FROM generate_series(1, $round) g" >/dev/null
		m=$(bigstates_round evl_mem evl_cold "$round")
		c=$(bigstates_round evl_cold evl_mem "$round")
		awk -v r="$r" -v m="$m" -v c="$c" 'BEGIN { split(m, a, " "); split(c, b, " ");
			printf "round %d: in memory %7d rows/s, peak %6.1f MB, %4d keys; under 1MB %7d rows/s (%.2f of it), peak %6.1f MB, %4d keys\n",
				r, a[1], a[2] / 1048576, a[3], b[1], b[1] / a[1], b[2] / 1048576, b[3]; }'
	done
	ks_query "SELECT keyedstate.resume(name) FROM keyedstate.aggregations WHERE name IN ('evl_mem', 'evl_cold')" >/dev/null
	ks_sync_all '1 hour'
	echo "evl_cold after the rounds: $(ks_query "SELECT format('%s keys in memory, memory %s', keys_in_memory, pg_size_pretty(memory_bytes)) FROM keyedstate.status WHERE name = 'evl_cold'"); $(ks_mismatches \
		"SELECT k, n, sp FROM evl_cold" "SELECT k, count(*), string_agg(pad, '|' ORDER BY id) FROM evl GROUP BY k") rows differ from the GROUP BY"
	drop_aggregation evl_mem
	drop_aggregation evl_cold
}

# A fresh partitioned source $1 (id, k, v) with 12 partitions: by HASH (k),
# so consecutive offsets land in different partitions (the reader merges 12
# index scans all the time), or by RANGE (id) over $3 rows (one at a time).
new_partitioned() {
	local table=$1 how=$2 n=$3 i
	ks_psql -c "DROP TABLE IF EXISTS $table CASCADE" >/dev/null 2>&1
	if [ "$how" = hash ]; then
		ks_query "CREATE TABLE $table (id bigserial, k int NOT NULL, v int NOT NULL) PARTITION BY HASH (k)" >/dev/null
		for i in $(seq 0 11); do
			ks_query "CREATE TABLE ${table}_$i PARTITION OF $table FOR VALUES WITH (MODULUS 12, REMAINDER $i)" >/dev/null
		done
	else
		ks_query "CREATE TABLE $table (id bigserial, k int NOT NULL, v int NOT NULL) PARTITION BY RANGE (id)" >/dev/null
		for i in $(seq 0 11); do
			ks_query "CREATE TABLE ${table}_$i PARTITION OF $table FOR VALUES FROM ($((i * n / 12 + 1))) TO ($(((i + 1) * n / 12 + 1)))" >/dev/null
		done
		ks_query "CREATE TABLE ${table}_rest PARTITION OF $table DEFAULT" >/dev/null
	fi
	ks_query "CREATE INDEX ON $table (id)" >/dev/null
}

# COPY of $2 rows of file $3 into table $1 (appended: a source cannot be truncated): prints rows/s.
copy_rate() {
	rate "$2" "$(ks_time "COPY of $2 rows into $1" ks_query "COPY $1 (k, v) FROM '$3'")"
}

# Partitioned sources: the drain of a plain table against 12 partitions
# (rows spread over all of them, or filling one after the other), and
# what the wake-up triggers on every partition cost a COPY.
bench_partitioned() {
	local data="$KS_CLUSTER/part.csv" plain hash range cp_none cp_agg
	echo
	echo "== partitioned sources: $ROWS rows, $KEYS keys, medians of $REPEAT"
	progress "generating $ROWS rows over $KEYS keys"
	gen_data "$data" "$ROWS" "$KEYS"
	load_table ev "$data"
	plain=$(ks_median_of drain_once ev "$ROWS")
	new_partitioned ev_hash hash "$ROWS"
	ks_query "COPY ev_hash (k, v) FROM '$data'" >/dev/null
	ks_query "VACUUM ANALYZE ev_hash" >/dev/null
	hash=$(ks_median_of drain_once ev_hash "$ROWS")
	new_partitioned ev_range range "$ROWS"
	ks_query "COPY ev_range (k, v) FROM '$data'" >/dev/null
	ks_query "VACUUM ANALYZE ev_range" >/dev/null
	range=$(ks_median_of drain_once ev_range "$ROWS")
	drop_aggregation ev_hash_stats
	cp_none=$(ks_median_of copy_rate ev_hash "$ROWS" "$data")
	ks_query "SELECT keyedstate.create_aggregation('ev_hash_stats', '$(agg_query ev_hash)', start_from => 'now')" >/dev/null
	ks_query "SELECT keyedstate.pause('ev_hash_stats')" >/dev/null
	cp_agg=$(ks_median_of copy_rate ev_hash "$ROWS" "$data")
	printf '%-64s %12s %7s\n' "measure" "rows/s" "ratio"
	printf '%-64s %12s %7s\n' "drain, plain table" "$plain" "1.00"
	printf '%-64s %12s %7s\n' "drain, 12 hash partitions (every batch merges 12 scans)" "$hash" "$(ratio "$hash" "$plain")"
	printf '%-64s %12s %7s\n' "drain, 12 range partitions on the offset (one after the other)" "$range" "$(ratio "$range" "$plain")"
	printf '%-64s %12s %7s\n' "COPY into 12 hash partitions, no aggregation" "$cp_none" "1.00"
	printf '%-64s %12s %7s\n' "COPY into 12 hash partitions, with its wake-up triggers" "$cp_agg" "$(ratio "$cp_agg" "$cp_none")"
	drop_aggregation ev_hash_stats
}

# Drain of table $1 ($2 rows) by aggregation $3 with query $4 in $5 parts: rows/s.
par_drain_once() {
	local table=$1 n=$2 name=$3 query=$4 parts=$5
	ks_query "SELECT keyedstate.drop_aggregation('$name') FROM keyedstate.aggregations WHERE name = '$name'" >/dev/null
	rate "$n" "$(ks_time "drain of $n rows by $parts worker(s) ($name)" par_create_and_sync "$name" "$query" "$parts")"
}

# Create aggregation $1 of query $2 in $3 parts (with memory_limit
# PAR_LIMIT when set) and wait until it consumed every row.
par_create_and_sync() {
	ks_query "SELECT keyedstate.create_aggregation('$1', '$2', checkpoint_interval => '1 hour', parallelism => $3${PAR_LIMIT:+, memory_limit => '$PAR_LIMIT'})" >/dev/null
	ks_sync "$1" '1 hour'
}

# A drain in one worker, then in two (parallelism => 2), back to back so
# that both see the same state of a noisy machine: prints "one two".
par_pair_once() {
	echo "$(par_drain_once "$@" 1) $(par_drain_once "$@" 2)"
}

# One aggregation in one worker and in two (parallelism => 2), on a
# CPU-bound query (five aggregates, PAR_KEYS keys), the runs interleaved;
# and what each worker pays to read every row whatever it keeps: a drain
# whose WHERE keeps none; then the pair again under a memory budget
# (PAR_BUDGET, shared by the parts: each evicts its own keys).
bench_parallel() {
	local data="$KS_CLUSTER/par.csv" pair one two read q bone btwo
	echo
	echo "== parallelism: $PAR_ROWS rows, $PAR_KEYS keys, medians of $REPEAT; $(nproc) cores"
	progress "generating $PAR_ROWS rows over $PAR_KEYS keys"
	gen_data "$data" "$PAR_ROWS" "$PAR_KEYS"
	load_table evp "$data"
	q=$(agg_query evp)
	pair=$(ks_median_of par_pair_once evp "$PAR_ROWS" evp_stats "$q")
	one=${pair% *}
	two=${pair#* }
	drop_aggregation evp_stats
	read=$(ks_median_of par_drain_once evp "$PAR_ROWS" evp_none \
		"SELECT k, count(*) AS n FROM evp WHERE v < 0 GROUP BY k" 1)
	drop_aggregation evp_none
	pair=$(PAR_LIMIT=$PAR_BUDGET ks_median_of par_pair_once evp "$PAR_ROWS" evp_cold "$q")
	bone=${pair% *}
	btwo=${pair#* }
	drop_aggregation evp_cold
	printf '%-64s %12s %7s\n' "measure" "rows/s" "ratio"
	printf '%-64s %12s %7s\n' "drain, 1 worker (parallelism 1)" "$one" "1.00"
	printf '%-64s %12s %7s\n' "drain, 2 workers (parallelism 2)" "$two" "$(ratio "$two" "$one")"
	printf '%-64s %12s %7s\n' "reading alone: a drain that keeps no row (per worker)" "$read" "$(ratio "$read" "$one")"
	echo "each worker reads every row: reading is $(ratio "$one" "$read") of one worker's time per row"
	printf '%-64s %12s %7s\n' "drain under $PAR_BUDGET, 1 worker" "$bone" "1.00"
	printf '%-64s %12s %7s\n' "drain under $PAR_BUDGET, 2 workers (each part half the budget)" "$btwo" "$(ratio "$btwo" "$bone")"
}

# The worker's CPU per single-row commit into one source: one aggregation on
# the worker, then six (five over other tables), one pgbench client
# committing single-row inserts for CLIENT_SECONDS each time.  A commit
# steps the woken aggregation only; the others are stepped when due.  The
# cluster runs one worker (ONLY=wakes sets keyedstate.max_workers = 1).
bench_wakes() {
	local i pid c0 c1 n script tck
	tck=$(getconf CLK_TCK)
	echo
	echo "== worker CPU per single-row commit, with 1 and with 6 aggregations on one worker"
	for i in 1 2 3 4 5 6; do
		ks_query "CREATE TABLE wk$i (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL)" >/dev/null
	done
	script=$(echo 'INSERT INTO wk1 (k, v) VALUES ((random() * 1000)::int, 1);' | ks_script wakes.sql)
	for i in 1 2 3 4 5 6; do
		ks_query "SELECT keyedstate.create_aggregation('wk${i}_stats', '$(agg_query wk$i)')" >/dev/null
		[ "$i" -eq 1 ] || [ "$i" -eq 6 ] || continue
		ks_sync_all
		pid=$(ks_query "SELECT pid FROM keyedstate.workers WHERE aggregation = 'wk1_stats'")
		c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
		progress "$i aggregation(s): single-row commits for $CLIENT_SECONDS s"
		n=$(ks_pgbench -c 1 -T "$CLIENT_SECONDS" -f "$script" 2>/dev/null |
			awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }')
		c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
		printf "%-60s %8s commits, worker %6s ms CPU, %s ms per commit (workers: %s)\n" \
			"$i aggregation(s) on the worker" "$n" "$(((c1 - c0) * 1000 / tck))" \
			"$(echo "scale=3; ($c1 - $c0) * 1000 / $tck / $n" | bc)" \
			"$(ks_query "SELECT count(DISTINCT pid) FROM keyedstate.workers")"
	done
	ks_sync_all
	echo "wk1_stats against its GROUP BY: $(ks_mismatches "SELECT k, n, s FROM wk1_stats" "SELECT k, count(*), sum(v) FROM wk1 GROUP BY k") rows differ"
}

# 14. Checkpoints off the critical path: PAUSE_KEYS keys all changing about
# every 2 s (PAUSE_BATCH-row inserts every 0.2 s, pgbench) with
# checkpoint_interval 3 s, for PAUSE_SECONDS.  The status shows each
# committed checkpoint's longest pause of consumption (the step that
# captured or wrote a slice of it, to its commit) next to its whole
# duration, the pause one written at once would have taken; sampled every
# 0.2 s.  Freshness of a probe row is measured meanwhile.
bench_pauses() {
	local data="$KS_CLUSTER/pause.csv" batch stream
	echo
	echo "== checkpoint pauses: $PAUSE_KEYS keys, $PAUSE_BATCH-row inserts every 0.2 s, checkpoint_interval 3 s, ${PAUSE_SECONDS} s"
	progress "generating $PAUSE_KEYS rows, one per key"
	gen_data "$data" "$PAUSE_KEYS" "$PAUSE_KEYS"
	load_table evc "$data"
	ks_query "SELECT keyedstate.create_aggregation('evc_stats', '$(agg_query evc)', checkpoint_interval => '3 s')" >/dev/null
	ks_sync evc_stats '1 hour' >/dev/null
	ks_psql -c "CREATE TABLE ckpt_seen (at timestamptz PRIMARY KEY, ms float8, pause_ms float8, keys bigint)" \
		-c "CREATE TABLE fresh_ckpt (ms float8)" >/dev/null
	batch=$(echo "INSERT INTO evc (k, v) SELECT (random() * ($PAUSE_KEYS - 1))::int, 1 FROM generate_series(1, $PAUSE_BATCH);" | ks_script pause_batch.sql)
	progress "inserting for $PAUSE_SECONDS s, sampling the checkpoints and the freshness"
	ks_pgbench -c 1 -R 5 -T "$PAUSE_SECONDS" -f "$batch" >/dev/null 2>&1 &
	stream=$!
	freshness_probes evc evc_stats fresh_ckpt 1000000 "$PAUSE_SECONDS" 0.2 \
		"INSERT INTO ckpt_seen SELECT last_checkpoint, last_checkpoint_ms, last_checkpoint_pause_ms, last_checkpoint_keys
		   FROM keyedstate.status WHERE name = 'evc_stats' AND last_checkpoint IS NOT NULL ON CONFLICT DO NOTHING;"
	wait $stream 2>/dev/null || true
	ks_query "SELECT format('%s checkpoints of %s to %s keys: whole duration median %s ms, max %s ms; longest pause of consumption median %s ms, max %s ms (aim: at most 90 ms, 1/10 of 0.1''s 0.9 s pause)',
		count(*), min(keys), max(keys), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric),
		round(max(ms)::numeric), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY pause_ms)::numeric, 1),
		round(max(pause_ms)::numeric, 1)) FROM ckpt_seen"
	ks_query "SELECT format('freshness meanwhile (%s probes): p50 %s ms, p99 %s ms, max %s ms', count(*),
		round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1)) FROM fresh_ckpt"
	drop_aggregation evc_stats
}

# Drop aggregation $1.
drop_aggregation() {
	ks_query "SELECT keyedstate.drop_aggregation('$1')" >/dev/null
}

# --- the run -------------------------------------------------------------

ks_install_deps
ks_build_install
KS_PORT=${KS_PORT:-5486}
KS_EXTRA_CONF="shared_buffers = '2GB'
max_wal_size = '16GB'
checkpoint_timeout = '30min'
keyedstate.max_shared_memory = '4GB'
synchronous_commit = on"
# the wake-up cost is measured with every aggregation on one worker
[ "$ONLY" = wakes ] && KS_EXTRA_CONF="$KS_EXTRA_CONF
keyedstate.max_workers = 1"
ks_cluster_start
# on a failure, say what the aggregations and the server were doing before the cluster goes
trap 'rc=$?; if [ $rc -ne 0 ]; then
	ks_psql -c "SELECT name, state, consumed_offset, checkpointed_offset, keys, keys_in_memory, error FROM keyedstate.status" >&2 || true
	tail -n 60 "$KS_CLUSTER/log" >&2 || true
fi; ks_cluster_destroy' EXIT

if [ "$ONLY" = budget ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_budget
	exit 0
fi
if [ "$ONLY" = bigstates ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_bigstates
	exit 0
fi
if [ "$ONLY" = partitioned ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_partitioned
	exit 0
fi
if [ "$ONLY" = parallel ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_parallel
	exit 0
fi
if [ "$ONLY" = wakes ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_wakes
	exit 0
fi
if [ "$ONLY" = pauses ]; then
	ks_query "CREATE EXTENSION keyedstate" >/dev/null
	bench_pauses
	exit 0
fi

DATA="$KS_CLUSTER/data.csv"
TDATA="$KS_CLUSTER/trigger.csv"
echo "== $ROWS rows, $KEYS keys, medians of $REPEAT; $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB; cluster $KS_PGDATA"
ks_query "CREATE EXTENSION keyedstate" >/dev/null
progress "generating $ROWS + $TRIGGER_ROWS rows over $KEYS keys"
gen_data "$DATA" "$ROWS" "$KEYS"
gen_data "$TDATA" "$TRIGGER_ROWS" "$KEYS"

# the alternatives at KEYS keys, and writers with and without keyedstate
bench_copy_ceiling
bench_drain
bench_groupby
bench_rollups
bench_triggers
bench_copy_slowed
bench_copy_keepup
bench_clients
print_results
bench_freshness

# lookups, checkpoints, memory and restart at KEYS keys
echo
echo "== $KEYS keys: lookups, checkpoints, memory, restart"
bench_lookups ev_stats "$KEYS"
bench_checkpoints ev "$KEYS"
bench_memory ev_stats
drop_aggregation w_stats
bench_restart ev_stats ev

# the same comparisons with few and with many keys
drop_aggregation ev_stats
bench_variant "$SMALL_KEYS"
drop_aggregation "ev_${SMALL_KEYS}_stats"
bench_variant "$BIG_KEYS"
bench_lookups "ev_${BIG_KEYS}_stats" "$BIG_KEYS"
bench_checkpoints "ev_$BIG_KEYS" "$BIG_KEYS"
bench_memory "ev_${BIG_KEYS}_stats"
bench_restart "ev_${BIG_KEYS}_stats" "ev_$BIG_KEYS"
drop_aggregation "ev_${BIG_KEYS}_stats"

# the memory budget at BUDGET_KEYS keys
bench_budget

# keys of large states under a small budget
bench_bigstates

# partitioned sources
bench_partitioned

# one aggregation in one and in two workers
bench_parallel

# checkpoints while every key changes
bench_pauses
