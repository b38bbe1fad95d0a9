#!/bin/bash
# Every test of keyedstate: pg_regress (definitions, errors, behaviour) and
# the TAP tests (crashes, restarts, concurrency), each against private
# throw-away clusters with keyedstate preloaded.  Installs what it needs.
#
#   test/run-tests.sh                 all tests
#   REGRESS="01_basic" test/run-tests.sh         some regress tests only
#   PROVE_TESTS="test/t/001_crash_recovery.pl" test/run-tests.sh
#   REGRESS=" " / PROVE_TESTS=" "  skip the regress / the TAP tests
#   PROVE_FLAGS=-v ...               also print each TAP test's notes (figures)
#
# The TAP files run two at a time (PROVE_FLAGS defaults to "-j2 --timer":
# prove prints each file's duration), each on its own throw-away cluster,
# the longest first so that none is left running alone at the end;
# PROVE_FLAGS=--timer runs them one by one.

source "$(dirname "$0")/lib.sh"

ks_install_deps
ks_build_install

tree=$(ks_private_tree)
# KEEP_TREE=1 keeps the copy (logs in tmp_check/log) for a look afterwards
if [ -n "${KEEP_TREE:-}" ]; then
	echo "test tree: $tree"
else
	trap 'rm -rf "$tree"' EXIT
fi

status=0
house=0
# the house rules of src/ (lock owners, no include circles, file sizes)
echo "+++ house rules +++"
perl "$KS_ROOT/test/check-house.pl" || { status=1; house=1; }
args=()
[ -n "${REGRESS:-}" ] && args+=("REGRESS=$REGRESS")
if [ -n "${PROVE_TESTS+set}" ] && [ -z "${PROVE_TESTS// /}" ]; then
	args+=("TAP_TESTS=")			# PROVE_TESTS=" ": regress tests only (pgxs tests ifdef)
elif [ -n "${PROVE_TESTS:-}" ]; then
	args+=("PROVE_TESTS=$PROVE_TESTS")
else
	# the longest first (012 takes about 4 minutes of the 20 the files take one by one)
	first=(test/t/012_memory_budget.pl test/t/005_security.pl test/t/014_workers.pl test/t/008_robustness.pl)
	rest=()
	for f in $(cd "$KS_ROOT" && ls test/t/*.pl); do
		[[ " ${first[*]} " == *" $f "* ]] || rest+=("$f")
	done
	args+=("PROVE_TESTS=${first[*]} ${rest[*]}")
fi
args+=("PROVE_FLAGS=${PROVE_FLAGS:--j2 --timer}")
ks_as_pg make -C "$tree" -s PG_CONFIG="$PG_BIN/pg_config" installcheck "${args[@]}" 2>&1 | tee "$tree/installcheck.out" || status=1

# pg_regress prints "ok" / "FAILED" per test; prove prints "ok" or "Failed"
# per file (after the time of day, with --timer)
passed=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ +[-+] |^(\[[0-9:]+\] )?test/t/.*\.pl \.+ ok' "$tree/installcheck.out" || true)
failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ +[-+] |^(\[[0-9:]+\] )?test/t/.*\.pl \.+ (Failed|Dubious)' "$tree/installcheck.out" || true)
if grep -qE 'Result: FAIL|tests? failed' "$tree/installcheck.out"; then
	status=1
fi
failed=$((failed + house))
if [ $status -ne 0 ]; then
	[ -f "$tree/regression.diffs" ] && cat "$tree/regression.diffs"
	for f in "$tree"/log/postmaster.log "$tree"/tmp_check/log/*; do
		[ -f "$f" ] && { echo "=== $f"; tail -n 50 "$f"; }
	done
	[ "$failed" -eq 0 ] && failed=1
fi
echo "$passed passed, $failed failed"
exit $status
