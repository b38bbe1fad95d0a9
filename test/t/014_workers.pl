# The pool of workers: a database runs one worker per aggregation up to
# keyedstate.max_workers, so a slow aggregation does not hold back the
# others; aggregations move between workers when the pool shrinks or grows
# (a final checkpoint, then the new worker recovers) and stay exact under
# concurrent writers, a kill -9 and a restart; a failed aggregation stays
# failed when it moves; the launcher shares max_workers among databases.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('workers', "keyedstate.max_workers = 3\nmax_connections = 40\n");
my $db = 'postgres';

$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO ev (k, v) SELECT g % 500, g FROM generate_series(1, 20000) g;
-- a slow filter: about a millisecond per row
CREATE FUNCTION slow(v int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS
	$$BEGIN PERFORM pg_sleep(0.001); RETURN true; END$$;
SELECT keyedstate.create_aggregation('fast_a', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k');
SELECT keyedstate.create_aggregation('fast_b', 'SELECT k % 7 AS g, max(v) AS m, string_agg(id::text, '','') AS ids FROM ev GROUP BY k % 7');
});
my %oracle = (
	fast_a => 'SELECT k, count(*), sum(v) FROM ev GROUP BY k',
	fast_b => "SELECT k % 7, max(v), string_agg(id::text, ',' ORDER BY id) FROM ev GROUP BY k % 7",
	slow_c => 'SELECT k % 3, count(*) FROM ev WHERE id > 20000 GROUP BY k % 3',
	late_d => 'SELECT v % 11, count(*) FROM ev GROUP BY v % 11',
);

# every view equals its oracle
sub exact
{
	my ($what) = @_;
	ks_sync_all($node, $db, '3 min');
	my @names = split(/\n/, $node->safe_psql($db, 'SELECT name FROM keyedstate.aggregations ORDER BY 1'));
	for my $name (@names)
	{
		is(ks_mismatches($node, $db, "SELECT * FROM $name", $oracle{$name}), '0', "$what: $name is exact");
	}
}

# the pool as keyedstate.workers shows it: aggregation => worker number
sub pool
{
	return map { split(/\|/) } split(/\n/, $node->safe_psql($db,
		'SELECT aggregation, worker FROM keyedstate.workers WHERE pid IS NOT NULL ORDER BY 1'));
}

# wait until every aggregation runs, on $n distinct worker processes
sub wait_pool
{
	my ($n) = @_;
	return ks_wait_for($node, $db, qq{
SELECT count(*) FILTER (WHERE pid IS NULL OR state <> 'running') = 0
   AND count(DISTINCT pid) = $n
   AND (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker') = $n
  FROM keyedstate.workers}, 60);
}

ks_sync_all($node, $db);
ok(wait_pool(2), 'two aggregations run in two workers');
exact('start');

# --- a slow aggregation does not delay the others ------------------------
$node->safe_psql($db, q{
SELECT keyedstate.create_aggregation('slow_c', 'SELECT k % 3 AS g, count(*) AS n FROM ev WHERE id > 20000 AND (id > 22000 OR slow(v)) GROUP BY k % 3');
SELECT keyedstate.sync('slow_c');});
ok(wait_pool(3), 'three aggregations run in three workers');
my %p = pool();
isnt($p{slow_c}, $p{fast_a}, 'the slow aggregation has a worker of its own');
$node->safe_psql($db, 'INSERT INTO ev (k, v) SELECT g % 500, g FROM generate_series(1, 2000) g');
# the slow one needs about 2 s for these rows; the fast ones catch up meanwhile
ks_sync($node, $db, 'fast_a');
ks_sync($node, $db, 'fast_b');
my $slow_lag = ks_status($node, $db, 'slow_c', 'lag_rows');
ok($slow_lag > 0, "the fast aggregations caught up while the slow one still lags ($slow_lag rows)");
exact('slow');

# --- the pool changes under concurrent writers ---------------------------
my $script = ks_script($node, 'ins.sql', q{
\set k random(0, 499)
INSERT INTO ev (k, v) SELECT :k, g FROM generate_series(1, 5) g;
});
my ($bench) = ks_pgbench($node, $db, '-c', '4', '-T', '20', '-f', $script);

# a fourth aggregation: three workers, one of them runs two
$node->safe_psql($db, q{SELECT keyedstate.create_aggregation('late_d', 'SELECT v % 11 AS g, count(*) AS n FROM ev GROUP BY v % 11')});
ok(wait_pool(3), 'four aggregations share three workers');

# the pool shrinks to one worker: the others hand over what they ran
$node->safe_psql($db, 'ALTER SYSTEM SET keyedstate.max_workers = 1');
$node->reload;
ok(wait_pool(1), 'max_workers lowered to 1: one worker runs every aggregation');

# and grows again: aggregations spread out
$node->safe_psql($db, 'ALTER SYSTEM SET keyedstate.max_workers = 3');
$node->reload;
ok(wait_pool(3), 'max_workers raised to 3: the aggregations spread over three workers');

$bench->finish;
exact('pool changes under writers');
is($node->safe_psql($db, q{SELECT sum(rows_replayed) FROM keyedstate.status}), '0',
	'every hand-over took a final checkpoint: nothing was replayed');

# --- a kill -9 while writers run ------------------------------------------
($bench) = ks_pgbench($node, $db, '-c', '4', '-T', '8', '-f', $script);
sleep(2);
ks_kill_worker($node, $db);
$bench->finish;
ok(wait_pool(3), 'after the crash restart every aggregation runs again in three workers');
exact('kill -9');

# --- dropping aggregations shrinks the pool -------------------------------
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('late_d'); SELECT keyedstate.drop_aggregation('slow_c');});
ok(wait_pool(2), 'after two drops two workers are left');
exact('drops');

# --- owners are kept apart: a worker's session outlives a step (PL/pgSQL
# compiles a function once per session), so another owner's aggregation
# goes to an empty worker or to one running only that owner's, and shares
# one only when there are more owners than workers
$node->safe_psql($db, q{
CREATE ROLE regress_owner2;
CREATE SCHEMA o2 AUTHORIZATION regress_owner2;
SET ROLE regress_owner2;
CREATE TABLE o2.ev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO o2.ev (k) SELECT g % 10 FROM generate_series(1, 100) g;
SELECT keyedstate.create_aggregation('o2.first', 'SELECT k, count(*) AS n FROM o2.ev GROUP BY k');
SELECT keyedstate.create_aggregation('o2.second', 'SELECT k % 2 AS g, count(*) AS n FROM o2.ev GROUP BY 1');
RESET ROLE;});
$oracle{'o2.first'} = 'SELECT k, count(*) FROM o2.ev GROUP BY k';
$oracle{'o2.second'} = 'SELECT k % 2, count(*) FROM o2.ev GROUP BY 1';
ok(wait_pool(3), 'four aggregations of two owners run in three workers');
is($node->safe_psql($db, q{
SELECT count(*) FROM (SELECT w.worker FROM keyedstate.workers w JOIN pg_class c ON c.oid = w.aggregation::regclass
	GROUP BY w.worker HAVING count(DISTINCT c.relowner) > 1) mixed}), '0',
	'no worker runs two owners\' aggregations');
exact('owners apart');
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('o2.first'); SELECT keyedstate.drop_aggregation('o2.second');
DROP SCHEMA o2 CASCADE; DROP ROLE regress_owner2;});
delete $oracle{'o2.first'};
delete $oracle{'o2.second'};
ok(wait_pool(2), 'after their drop two workers are left');

# --- a failed aggregation stays failed when it moves ----------------------
$node->safe_psql($db, q{
CREATE FUNCTION picky(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
	$$BEGIN IF v = 13 THEN RAISE EXCEPTION 'picky about %', v; END IF; RETURN v; END$$;
CREATE TABLE p (id bigserial PRIMARY KEY, v int);
SELECT keyedstate.create_aggregation('picky_e', 'SELECT v % 2 AS g, sum(picky(v)) AS s FROM p GROUP BY 1');
INSERT INTO p (v) SELECT generate_series(1, 20);});
ks_wait_state($node, $db, 'picky_e', 'failed') or die 'picky_e did not fail';
$node->safe_psql($db, 'ALTER SYSTEM SET keyedstate.max_workers = 1');
$node->reload;
ok(ks_wait_for($node, $db, q{SELECT count(DISTINCT worker) = 1 FROM keyedstate.workers}, 30),
	'the failed aggregation moved with the others');
ok(ks_holds(2, sub { ks_state($node, $db, 'picky_e') eq 'failed' }), 'it is still failed after the move');
my $n = () = slurp_file($node->logfile) =~ /ERROR:  picky about 13/g;
is($n, 1, 'its failure is logged once, not again by the worker it moved to');
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('picky_e')});
$node->safe_psql($db, 'ALTER SYSTEM RESET keyedstate.max_workers');
$node->reload;

# --- the launcher shares max_workers among databases ----------------------
$node->safe_psql($db, 'ALTER SYSTEM SET keyedstate.max_workers = 3');
$node->reload;
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
CREATE EXTENSION keyedstate;
CREATE TABLE t (id bigserial PRIMARY KEY, k int);
INSERT INTO t (k) SELECT g % 10 FROM generate_series(1, 1000) g;
SELECT keyedstate.create_aggregation('t1', 'SELECT k, count(*) AS n FROM t GROUP BY k');
SELECT keyedstate.create_aggregation('t2', 'SELECT k % 2 AS g, count(*) AS n FROM t GROUP BY 1');
SELECT keyedstate.sync('t1'); SELECT keyedstate.sync('t2');});
ok(ks_wait_for($node, 'postgres', q{
SELECT count(*) = 3 AND count(DISTINCT datname) = 2
  FROM pg_stat_activity WHERE backend_type = 'keyedstate worker'}, 60),
	'two databases with two aggregations each share three workers');
is(ks_mismatches($node, 'other', 'SELECT * FROM t1', 'SELECT k, count(*) FROM t GROUP BY k'), '0',
	'the other database is exact');
exact('two databases');

$node->stop;
done_testing();
