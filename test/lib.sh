#!/bin/bash
# Shared by test/run-tests.sh, test/run-demo.sh and test/bench.sh: install
# what is missing, build and install keyedstate, and run things as the
# unprivileged postgres user (PostgreSQL refuses to run as root).

set -euo pipefail

KS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
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

# Stop and remove the throw-away cluster.
ks_cluster_destroy() {
	[ -n "${KS_PGDATA:-}" ] || return 0
	ks_as_pg pg_ctl -D "$KS_PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$KS_CLUSTER"
}

# psql against the throw-away cluster.
ks_psql() {
	ks_as_pg psql -h "$KS_SOCK" -p "$KS_PORT" -X -v ON_ERROR_STOP=1 -q "$@"
}
