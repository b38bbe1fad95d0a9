#!/bin/bash
# Shared by test/run-tests.sh, test/run-demo.sh and test/bench.sh: install
# what is missing, build and install keyedstate, and run things as the
# unprivileged postgres user (PostgreSQL refuses to run as root).

set -euo pipefail

KS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}	# another build: PG_BIN=/path/bin
export PATH="$PG_BIN:$PATH"

# Install the Debian packages the build and the tests need, if missing.
ks_install_deps() {
	local missing=()
	local pkg
	for pkg in build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib libipc-run-perl; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Build and install the extension into the system PostgreSQL 15.
ks_build_install() {
	make -C "$KS_ROOT" -s PG_CONFIG="$PG_BIN/pg_config" >/dev/null
	if [ "$(id -u)" -eq 0 ]; then
		make -C "$KS_ROOT" -s PG_CONFIG="$PG_BIN/pg_config" install >/dev/null
	else
		sudo make -C "$KS_ROOT" -s PG_CONFIG="$PG_BIN/pg_config" install >/dev/null
	fi
}

# Run a command as the postgres user (or as ourselves when not root).
ks_as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}

# A copy of the source tree that the postgres user owns, for the test run.
ks_private_tree() {
	local dir
	dir=$(mktemp -d /tmp/keyedstate-test.XXXXXX)
	cp -a "$KS_ROOT/." "$dir/"
	rm -rf "$dir/.git"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
	echo "$dir"
}

# Start a throw-away cluster with keyedstate preloaded; sets KS_PGDATA, KS_SOCK, KS_PORT.
ks_cluster_start() {
	KS_CLUSTER=$(mktemp -d /tmp/keyedstate-cluster.XXXXXX)
	[ "$(id -u)" -eq 0 ] && chown postgres: "$KS_CLUSTER"
	KS_PGDATA="$KS_CLUSTER/data"
	KS_SOCK="$KS_CLUSTER"
	KS_PORT=${KS_PORT:-5488}
	ks_as_pg initdb -D "$KS_PGDATA" -A trust >/dev/null
	cat >> "$KS_PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'keyedstate'
listen_addresses = ''
unix_socket_directories = '$KS_SOCK'
port = $KS_PORT
max_worker_processes = 16
restart_after_crash = on
${KS_EXTRA_CONF:-}
CONF
	ks_as_pg pg_ctl -D "$KS_PGDATA" -l "$KS_CLUSTER/log" -w start >/dev/null
}

# Start the cluster again after a crash or stop.
ks_cluster_restart() {
	ks_as_pg pg_ctl -D "$KS_PGDATA" -l "$KS_CLUSTER/log" -w start >/dev/null
}

# Start the cluster again after a kill -9 of the postmaster: retry for up to
# 10 s, until the killed server's orphaned processes have exited.
ks_cluster_restart_after_crash() {
	local i
	for i in $(seq 1 50); do
		ks_cluster_restart 2>/dev/null && return 0
		sleep 0.2
	done
	echo "the server did not restart" >&2
	return 1
}

# Stop the cluster: ks_cluster_stop [mode] (pg_ctl's -m, default fast).
ks_cluster_stop() {
	ks_as_pg pg_ctl -D "$KS_PGDATA" -m "${1:-fast}" -w stop >/dev/null
}

# SIGKILL the postmaster of the cluster.
ks_cluster_kill9() {
	kill -9 "$(head -1 "$KS_PGDATA/postmaster.pid")"
}

# Stop and remove the throw-away cluster.
ks_cluster_destroy() {
	[ -n "${KS_PGDATA:-}" ] || return 0
	ks_cluster_stop immediate >/dev/null 2>&1 || true
	rm -rf "$KS_CLUSTER"
}

# psql against the throw-away cluster.
ks_psql() {
	ks_as_pg psql -h "$KS_SOCK" -p "$KS_PORT" -X -v ON_ERROR_STOP=1 -q "$@"
}

# One SQL command against the cluster; prints its result unaligned, no header.
ks_query() {
	ks_psql -At -c "$1"
}

# pgbench against the cluster's postgres database: ks_pgbench <pgbench options...>.
ks_pgbench() {
	ks_as_pg pgbench -n "$@" -h "$KS_SOCK" -p "$KS_PORT" postgres
}

# Stop a pgbench started in the background (ks_pgbench ... &, job pid $1):
# end its connections, since killing the job would leave pgbench running
# under runuser, and wait for it.
ks_pgbench_stop() {
	ks_query "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgbench'" >/dev/null
	wait "$1" 2>/dev/null || true
}

# Write stdin to file $1 in the cluster's directory, readable by the server
# and pgbench; prints its path.
ks_script() {
	local path="$KS_CLUSTER/$1"
	cat > "$path"
	chmod a+r "$path"
	echo "$path"
}

# Poll until query $2 returns t; fails after $1 seconds.  Errors count as
# not yet (the server may be restarting).
ks_wait_for() {
	local deadline=$(($(date +%s) + $1))
	until [ "$(ks_query "$2" 2>/dev/null)" = t ]; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# Poll until there are aggregations and every one runs; fails after $1
# seconds (default 60).
ks_wait_running() {
	ks_wait_for "${1:-60}" "SELECT count(*) > 0 AND bool_and(state = 'running') FROM keyedstate.status"
}

# keyedstate.sync() of aggregation $1, waiting up to $2 (default 1 min);
# prints the consumed offset.
ks_sync() {
	ks_query "SELECT keyedstate.sync('$1', '${2:-1 min}')"
}

# keyedstate.sync() of every aggregation, waiting up to $1 (default 1 min) for each.
ks_sync_all() {
	ks_query "SELECT keyedstate.sync(name, '${1:-1 min}') FROM keyedstate.aggregations" >/dev/null
}

# Rows in which the results of queries $1 (the view) and $2 (the oracle, the
# same query as a plain GROUP BY) differ, counted both ways with EXCEPT ALL.
ks_mismatches() {
	ks_query "SELECT count(*) FROM (($1 EXCEPT ALL $2) UNION ALL ($2 EXCEPT ALL $1)) d"
}
