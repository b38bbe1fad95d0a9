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
use Time::HiRes qw(time sleep);

my $node = ks_node('workers', "keyedstate.max_workers = 3\nmax_connections = 40\nmax_prepared_transactions = 5\n");
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
	my ($n, $seconds) = @_;
	return ks_wait_for($node, $db, qq{
SELECT count(*) FILTER (WHERE pid IS NULL OR state <> 'running') = 0
   AND count(DISTINCT pid) = $n
   AND (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker') = $n
  FROM keyedstate.workers}, $seconds // 60);
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
# (the pool's changes below take well under a second: writers run for all)
my ($bench) = ks_pgbench($node, $db, '-c', '4', '-T', '6', '-f', $script);

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
# (an owner made to give up a worker is spread out again only a minute
# later, pool.c's KS_POOL_SETTLE_MS, then handed over: up to 60 s and more)
ok(wait_pool(2, 120), 'after their drop two workers are left');

# --- one owner per worker process, ever (owner.h): a role cannot arrange
# that another owner's aggregation shares a worker with hers.  mallory
# fills every worker of a database's pool, then a superuser's aggregation
# comes, then one of a group role of hers, then an owner change: no worker
# process ever runs two owners' aggregations (sampled all along), one of
# mallory's workers is emptied for the superuser's and restarted fresh,
# and everything is exact.
{
	my %owner_of_pid;
	my $odb = 'owners';
	# Sample which owner each worker process runs; 't' while none ran two.
	my $sample = sub {
		for my $row (split /\n/, $node->safe_psql($odb, q{
SELECT w.pid, c.relowner FROM keyedstate.workers w JOIN pg_class c ON c.oid = w.aggregation::regclass
 WHERE w.pid IS NOT NULL}))
		{
			my ($pid, $owner) = split /\|/, $row;
			$owner_of_pid{$pid}{$owner} = 1;
		}
		return (grep { keys %{ $owner_of_pid{$_} } > 1 } keys %owner_of_pid) ? 0 : 1;
	};
	# Wait, sampling, until every aggregation of the database runs and syncs.
	my $settle = sub {
		my $deadline = time() + 60;
		while (time() < $deadline)
		{
			$sample->();
			last if $node->safe_psql($odb, q{SELECT (SELECT count(*) FROM keyedstate.workers
				WHERE pid IS NOT NULL AND state = 'running') = (SELECT count(*) FROM keyedstate.aggregations)}) eq 't';
			sleep(0.1);
		}
		ks_sync_all($node, $odb, '1 min');
		$sample->();
	};
	$node->safe_psql($db, 'ALTER SYSTEM SET keyedstate.max_workers = 5');
	$node->reload;
	$node->safe_psql('postgres', "CREATE DATABASE $odb");
	$node->safe_psql($odb, q{
CREATE EXTENSION keyedstate;
CREATE ROLE regress_mallory; CREATE ROLE regress_crew; GRANT regress_crew TO regress_mallory;
CREATE SCHEMA m AUTHORIZATION regress_mallory; GRANT CREATE, USAGE ON SCHEMA m TO regress_crew;
CREATE TABLE m.ev (id bigserial PRIMARY KEY, k int NOT NULL);
ALTER TABLE m.ev OWNER TO regress_mallory;
GRANT SELECT, TRIGGER ON m.ev TO regress_crew;
INSERT INTO m.ev (k) SELECT g % 10 FROM generate_series(1, 300) g;
SET ROLE regress_mallory;
SELECT keyedstate.create_aggregation('m.a1', 'SELECT k, count(*) AS n FROM m.ev GROUP BY k');
SELECT keyedstate.create_aggregation('m.a2', 'SELECT k % 2 AS g, count(*) AS n FROM m.ev GROUP BY 1');
SELECT keyedstate.create_aggregation('m.a3', 'SELECT k % 3 AS g, count(*) AS n FROM m.ev GROUP BY 1');
RESET ROLE;});
	my %moracle = (
		'm.a1' => 'SELECT k, count(*) FROM m.ev GROUP BY k',
		'm.a2' => 'SELECT k % 2, count(*) FROM m.ev GROUP BY 1',
		'm.a3' => 'SELECT k % 3, count(*) FROM m.ev GROUP BY 1',
		'adm' => 'SELECT k % 5, count(*) FROM m.ev GROUP BY 1',
		'm.c1' => 'SELECT k % 4, count(*) FROM m.ev GROUP BY 1');
	my $mexact = sub {
		my ($what) = @_;
		for my $name (split /\n/, $node->safe_psql($odb, 'SELECT name FROM keyedstate.aggregations ORDER BY 1'))
		{
			is(ks_mismatches($node, $odb, "SELECT * FROM $name", $moracle{$name}), '0', "$what: $name is exact");
		}
	};
	ok(ks_wait_for($node, $odb, q{SELECT count(DISTINCT pid) = 3 AND count(*) FILTER (WHERE pid IS NULL) = 0
		FROM keyedstate.workers}, 60), "(precondition) mallory's three aggregations run in three workers");
	$settle->();
	my %mallory_pids = map { $_ => 1 } split /\n/, $node->safe_psql($odb, 'SELECT DISTINCT pid FROM keyedstate.workers');
	# the superuser's aggregation: the pool is full (5 = 2 + 3)
	$node->safe_psql($odb, q{SELECT keyedstate.create_aggregation('public.adm', 'SELECT k % 5 AS g, count(*) AS n FROM m.ev GROUP BY 1')});
	$node->safe_psql($odb, 'INSERT INTO m.ev (k) SELECT g FROM generate_series(1, 50) g');
	$settle->();
	my $adm_pid = $node->safe_psql($odb, q{SELECT pid FROM keyedstate.workers WHERE aggregation = 'adm'});
	ok($adm_pid =~ /^\d+$/ && !$mallory_pids{$adm_pid},
		"the superuser's aggregation runs in a process that never ran mallory's ($adm_pid)");
	$mexact->('a full pool and a second owner');
	# a group role of mallory's is a third owner
	$node->safe_psql($odb, q{SET ROLE regress_crew;
SELECT keyedstate.create_aggregation('m.c1', 'SELECT k % 4 AS g, count(*) AS n FROM m.ev GROUP BY 1');
RESET ROLE;});
	$node->safe_psql($odb, 'INSERT INTO m.ev (k) SELECT g FROM generate_series(1, 50) g');
	$settle->();
	$mexact->('a third owner');
	# an owner change: the aggregation leaves mallory's worker
	$node->safe_psql($odb, 'ALTER VIEW m.a3 OWNER TO regress_crew');
	$node->safe_psql($odb, 'INSERT INTO m.ev (k) SELECT g FROM generate_series(1, 50) g');
	$settle->();
	$mexact->('an owner change');
	ok($sample->(), 'no worker process ran two owners\' aggregations')
	  or diag(explain(\%owner_of_pid));
	$node->safe_psql('postgres', "DROP DATABASE $odb WITH (FORCE)");
	$node->safe_psql('postgres', 'DROP ROLE regress_mallory; DROP ROLE regress_crew');
	$node->safe_psql($db, 'ALTER SYSTEM RESET keyedstate.max_workers');
	$node->reload;
}

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
ok(ks_wait_for($node, $db, q{SELECT worker IS NULL AND pid IS NULL FROM keyedstate.workers WHERE aggregation = 'picky_e'}, 30),
	'... parked: no worker is kept for it (re-review today 29, F2)');
my $n = () = slurp_file($node->logfile) =~ /ERROR:  picky about 13/g;
is($n, 1, 'its failure is logged once, not again by the worker it moved to');
$node->safe_psql($db, q{CREATE OR REPLACE FUNCTION picky(v int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT v';
SELECT keyedstate.resume('picky_e')});
ks_sync($node, $db, 'picky_e', '60s');
is(ks_mismatches($node, $db, 'SELECT g, s FROM picky_e', 'SELECT v % 2, sum(v) FROM p GROUP BY 1'), '0',
	'resumed, the parked failed aggregation gets a worker again, exact');
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('picky_e')});
$node->safe_psql($db, 'ALTER SYSTEM RESET keyedstate.max_workers');
$node->reload;

# --- a role cannot keep another owner's aggregations moving ----------------
# With a full pool (2 workers, the superuser's v1 and v2 on one each), an
# aggregation of another owner empties one of the superuser's workers (v2
# moves to v1's); its drop would spread them out again.  A role creating and
# dropping one in a loop moved them back and forth, a reload each time: the
# pool now waits a minute before it spreads an owner it just made give up a
# worker, then does.  (The minute is a developer option: 15 s here.)
{
	my $settle = 15;
	my $cnode = ks_node('churn', "keyedstate.max_workers = 2\nkeyedstate.pool_settle_time = '${settle}s'\n");
	$cnode->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO ev (k) SELECT g % 10 FROM generate_series(1, 100) g;
CREATE ROLE regress_churner;
GRANT SELECT, TRIGGER ON ev TO regress_churner;
GRANT CREATE ON SCHEMA public TO regress_churner;
SELECT keyedstate.create_aggregation('v1', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
SELECT keyedstate.create_aggregation('v2', 'SELECT k % 2 AS g, count(*) AS n FROM ev GROUP BY 1');
SELECT keyedstate.sync('v1'); SELECT keyedstate.sync('v2');});
	my $apart = q{SELECT count(DISTINCT pid) = 2 AND count(pid) = 2 FROM keyedstate.workers
		WHERE aggregation IN ('v1', 'v2') AND state = 'running'};
	ok(ks_wait_for($cnode, 'postgres', $apart, 60), '(precondition) v1 and v2 run in two workers');
	my $reloads = sub {
		return () = slurp_file($cnode->logfile) =~ /aggregation public\.v[12] recovered/g;
	};
	my $before = $reloads->();
	my $start = time();
	for my $i (1 .. 8)
	{
		$cnode->safe_psql('postgres', q{SET ROLE regress_churner;
SELECT keyedstate.create_aggregation('c1', 'SELECT k % 3 AS g, count(*) AS n FROM ev GROUP BY 1');});
		ks_wait_for($cnode, 'postgres', q{SELECT state = 'running' FROM keyedstate.workers WHERE aggregation = 'c1'}, 30)
		  or die "c1 did not run in cycle $i";
		$cnode->safe_psql('postgres', q{SET ROLE regress_churner; SELECT keyedstate.drop_aggregation('c1')});
		sleep(0.5);
	}
	my $moves = $reloads->() - $before;
	my $took = time() - $start;
	# one move when the first one came, and two more per settle time at most
	cmp_ok($moves, '<=', 1 + 2 * int($took / $settle),
		sprintf('8 creates and drops of another owner\'s aggregation in %.0f s reloaded v1 and v2 %d times', $took, $moves));
	ok(ks_wait_for($cnode, 'postgres', $apart, 120), 'once the settle time is past the pool spreads v1 and v2 out again');
	$cnode->safe_psql('postgres', 'INSERT INTO ev (k) SELECT g FROM generate_series(1, 50) g');
	ks_sync_all($cnode, 'postgres');
	is(ks_mismatches($cnode, 'postgres', 'SELECT * FROM v1', 'SELECT k, count(*) FROM ev GROUP BY k'), '0', 'v1 is exact');
	is(ks_mismatches($cnode, 'postgres', 'SELECT * FROM v2', 'SELECT k % 2, count(*) FROM ev GROUP BY 1'), '0', 'v2 is exact');
	$cnode->stop;
}

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

# --- the launcher terminated alone comes back, and so do the workers --------
my $launcher = ks_launcher_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok(ks_wait_for($node, 'postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'keyedstate launcher' AND pid <> $launcher}, 60),
	'a launcher terminated with pg_terminate_backend is started again');
my $worker = $node->safe_psql('other', q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'keyedstate worker' AND datname = 'other' LIMIT 1});
$node->safe_psql('other', "SELECT pg_terminate_backend($worker)");
$node->safe_psql('other', 'INSERT INTO t (k) SELECT g % 10 FROM generate_series(1, 100) g');
ks_sync_all($node, 'other');
is(ks_mismatches($node, 'other', 'SELECT * FROM t1', 'SELECT k, count(*) FROM t GROUP BY k'), '0',
	'... and starts a terminated worker again: its aggregations are exact');

# --- inserts wake only the workers of the aggregations reading the rows:
# one role inserting in a loop does not keep another owner's worker busy
# (a long naptime, so that a worker wakes only when asked to; three owners
# in 'other' and one in the first database: a worker for each)
$node->safe_psql('other', q{
ALTER SYSTEM SET keyedstate.naptime = '10min';
ALTER SYSTEM SET keyedstate.max_workers = 4;
SELECT pg_reload_conf();
CREATE ROLE regress_wa;
CREATE ROLE regress_wb;
CREATE SCHEMA wa AUTHORIZATION regress_wa;
CREATE SCHEMA wb AUTHORIZATION regress_wb;
SET ROLE regress_wa;
CREATE TABLE wa.ev (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('wa.n', 'SELECT k, count(*) AS n FROM wa.ev GROUP BY k');
SET ROLE regress_wb;
CREATE TABLE wb.ev (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('wb.n', 'SELECT k, count(*) AS n FROM wb.ev GROUP BY k');
RESET ROLE;
});
ks_sync($node, 'other', 'wa.n');
ks_sync($node, 'other', 'wb.n');
my ($pid_a, $pid_b) = map { ks_worker_pid($node, 'other', $_) } ('wa.n', 'wb.n');
my %ids = map { split /\|/ } split /\n/, $node->safe_psql('other', q{SELECT view::text, id FROM keyedstate_internal.aggregation});
isnt($pid_a, $pid_b, '(precondition) two owners, two workers');
sub wakeups
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return -1;
	my ($n) = map { /^voluntary_ctxt_switches:\s+(\d+)/ ? $1 : () } <$fh>;
	close($fh);
	return $n;
}
my ($before_a, $before_b) = (wakeups($pid_a), wakeups($pid_b));
$node->safe_psql('other', join('', map { "INSERT INTO wa.ev (k) VALUES ($_);\n" } 1 .. 300));
ok(ks_wait_for($node, 'other', 'SELECT count(*) = 300 FROM wa.n', 60),
	'300 inserts, each its own transaction: their worker is woken (the naptime is 10 minutes)');
my ($woken_a, $woken_b) = (wakeups($pid_a) - $before_a, wakeups($pid_b) - $before_b);
note("voluntary context switches during the inserts: worker of wa.n $woken_a, of wb.n $woken_b");
ok($woken_b < 30, "... and another owner's worker is not ($woken_b wake-ups)");

# the source's owner renames the wake-up trigger (to a name that parses as
# no aggregation's, then as the other owner's): the trigger still wakes its
# own aggregation's worker only, and a drop still removes it
$node->safe_psql('other', q{SET ROLE regress_wa;
ALTER TRIGGER } . "keyedstate_wake_$ids{'wa.n'}" . q{ ON wa.ev RENAME TO x});
($before_a, $before_b) = (wakeups($pid_a), wakeups($pid_b));
$node->safe_psql('other', join('', map { "INSERT INTO wa.ev (k) VALUES ($_);\n" } 1 .. 300));
ok(ks_wait_for($node, 'other', 'SELECT count(*) = 300 FROM wa.n', 60), 'a renamed wake-up trigger still wakes its worker');
$woken_b = wakeups($pid_b) - $before_b;
ok($woken_b < 30, "... and no other owner's ($woken_b wake-ups)");
$node->safe_psql('other', q{SET ROLE regress_wa; ALTER TRIGGER x ON wa.ev RENAME TO } . "keyedstate_wake_$ids{'wb.n'}");
($before_a, $before_b) = (wakeups($pid_a), wakeups($pid_b));
$node->safe_psql('other', join('', map { "INSERT INTO wa.ev (k) VALUES ($_);\n" } 301 .. 600));
ok(ks_wait_for($node, 'other', 'SELECT count(*) = 600 FROM wa.n', 60), 'named as another aggregation\'s, it wakes its own');
$woken_b = wakeups($pid_b) - $before_b;
ok($woken_b < 30, "... and not the one it is named after ($woken_b wake-ups)");

# nine aggregations over one table (any number): an insert wakes their
# workers, never every worker of the database
$node->safe_psql('other', q{SET ROLE regress_wa;
SELECT keyedstate.create_aggregation('wa.m' || i, 'SELECT k, count(*) AS n FROM wa.ev WHERE k > ' || i || ' GROUP BY k')
  FROM generate_series(1, 8) i;});
ks_sync_all($node, 'other');
($before_a, $before_b) = (wakeups($pid_a), wakeups($pid_b));
$node->safe_psql('other', join('', map { "INSERT INTO wa.ev (k) VALUES ($_);\n" } 601 .. 900));
ok(ks_wait_for($node, 'other', 'SELECT count(*) = 900 FROM wa.n', 60), 'with nine aggregations over the table, inserts wake their worker');
$woken_b = wakeups($pid_b) - $before_b;
ok($woken_b < 30, "... and no other owner's ($woken_b wake-ups)");

# a role dropping views in a loop (views of no aggregation) makes no worker reload
($before_a, $before_b) = (wakeups($pid_a), wakeups($pid_b));
$node->safe_psql('other', join('', map { "CREATE TEMP VIEW tv AS SELECT 1 AS x; DROP VIEW tv;\n" } 1 .. 300));
$woken_b = wakeups($pid_b) - $before_b;
ok($woken_b < 30, "300 views created and dropped: a worker is not woken for them ($woken_b wake-ups)");
is(ks_worker_pid($node, 'other', 'wb.n'), $pid_b, '(the other owner\'s worker is the one watched all along)');
$node->safe_psql('other', q{SELECT keyedstate.drop_aggregation('wa.m' || i) FROM generate_series(1, 8) i});

$node->safe_psql('other', q{SELECT keyedstate.drop_aggregation('wa.n')});
is($node->safe_psql('other', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'wa.ev'::regclass}), '0',
	'drop_aggregation removes the renamed wake-up trigger');
$node->safe_psql('other', q{SELECT keyedstate.drop_aggregation('wb.n');
ALTER SYSTEM RESET keyedstate.naptime; ALTER SYSTEM RESET keyedstate.max_workers; SELECT pg_reload_conf()});

# --- a worker that ran the superuser's aggregation leaves before running
# a role's (one owner per process); the role's is dropped and a superuser's
# created before the next worker comes: the slot of the dropped one, still
# assigned to that worker number, must not keep the new one waiting for
# good (the next worker found it "busy with another owner's", released it
# after, then left idle: the CI flake of regress 06_ddl, sync timed out)
$node->safe_psql('postgres', 'CREATE DATABASE handoff');
$node->safe_psql('handoff', q{
CREATE EXTENSION keyedstate;
CREATE ROLE regress_ho;
CREATE SCHEMA ho AUTHORIZATION regress_ho;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO ev (k) SELECT g % 5 FROM generate_series(1, 100) g;
SET ROLE regress_ho;
-- the role's over a table of hers: its drop leaves no trigger to wait for
CREATE TABLE ho.ev (id bigserial PRIMARY KEY, k int NOT NULL);
RESET ROLE;
SELECT keyedstate.create_aggregation('s0', 'SELECT k, count(*) AS n FROM ev GROUP BY k');});
ks_sync($node, 'handoff', 's0');
for my $round (1 .. 3)
{
	my $pid = ks_worker_pid($node, 'handoff');
	$node->safe_psql('handoff', q{BEGIN;
SELECT keyedstate.drop_aggregation('s0');
SET ROLE regress_ho;
SELECT keyedstate.create_aggregation('ho.x', 'SELECT k, count(*) AS n FROM ho.ev GROUP BY k');
COMMIT;});
	ok(ks_wait_for($node, 'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid", 30),
		"round $round: the worker that ran the superuser's aggregation leaves before running the role's");
	$node->safe_psql('handoff', q{BEGIN;
SET ROLE regress_ho;
SELECT keyedstate.drop_aggregation('ho.x');
RESET ROLE;
SELECT keyedstate.create_aggregation('s0', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
COMMIT;});
	my ($ret, $out, $err) = $node->psql('handoff', q{SELECT keyedstate.sync('s0', '20 s')});
	is($ret, 0, "round $round: the superuser's aggregation created before the next worker came runs")
	  or diag($err);
}
is(ks_mismatches($node, 'handoff', 'SELECT * FROM s0', 'SELECT k, count(*) FROM ev GROUP BY k'), '0',
	'... and is exact');
$node->safe_psql('handoff', q{SELECT keyedstate.drop_aggregation('s0')});

# --- review pool1, F1: a role drops her aggregation over another owner's
# table while a session holds a lock on it, so its triggers wait to be
# dropped; the worker that ran it stayed for them, counted against
# max_workers, and kept the pool's worker of the other aggregations from
# starting (for as long as the lock was held)
# (alone in the pool: the other databases' aggregations go)
for my $d ('postgres', 'other', 'handoff')
{
	$node->safe_psql($d, 'SELECT keyedstate.drop_aggregation(name) FROM keyedstate.aggregations');
}
ok(ks_wait_for($node, 'postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'keyedstate worker'}, 60),
	'(no worker runs before the next tests)');
$node->safe_psql('postgres', 'CREATE DATABASE lo');
$node->safe_psql('lo', q{
CREATE EXTENSION keyedstate;
CREATE ROLE regress_lo_a; CREATE ROLE regress_lo_c;
CREATE TABLE t (id bigserial PRIMARY KEY, k int NOT NULL);
GRANT SELECT, TRIGGER ON t TO regress_lo_a, regress_lo_c;
GRANT CREATE ON SCHEMA public TO regress_lo_a, regress_lo_c;
INSERT INTO t (k) SELECT g % 10 FROM generate_series(1, 100) g;
SET ROLE regress_lo_a;
SELECT keyedstate.create_aggregation('a1', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');
SELECT keyedstate.create_aggregation('a2', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');
SET ROLE regress_lo_c;
SELECT keyedstate.create_aggregation('c1', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');});
ok(ks_wait_for($node, 'lo', q{SELECT count(DISTINCT pid) = 3 AND count(*) FILTER (WHERE state <> 'running') = 0 FROM keyedstate.workers}, 60),
	'lo: three aggregations of two owners run in three workers');
my $triggers = $node->safe_psql('lo', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass});
my $locker = $node->background_psql('lo');
$locker->query_safe('BEGIN; LOCK t IN ACCESS SHARE MODE');
$node->safe_psql('lo', q{SET ROLE regress_lo_c; SELECT keyedstate.drop_aggregation('c1')});
$node->safe_psql('postgres', q{ALTER SYSTEM SET keyedstate.max_workers = 2; SELECT pg_reload_conf()});
ok(ks_wait_for($node, 'lo', q{SELECT count(DISTINCT pid) = 2 FROM keyedstate.workers WHERE pid IS NOT NULL}, 30),
	'lo: with max_workers 2 its two aggregations run in two workers');
$node->safe_psql('lo', q{SELECT pg_terminate_backend(pid) FROM keyedstate.workers WHERE aggregation = 'a2'});
$node->safe_psql('lo', q{INSERT INTO t (k) VALUES (1)});
my ($lo_ret, $lo_out, $lo_err) = $node->psql('lo', q{SELECT keyedstate.sync('a2', '20 s')});
is($lo_ret, 0, 'lo: a terminated worker comes back though leftover triggers wait for a lock')
  or diag($lo_err);
is($node->safe_psql('lo', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass}), $triggers,
	'lo: (the leftover triggers are still there meanwhile)');
$locker->query_safe('COMMIT');
$locker->quit;
ok(ks_wait_for($node, 'lo', "SELECT count(*) * 3 = $triggers * 2 FROM pg_trigger WHERE tgrelid = 't'::regclass", 30),
	'lo: and the leftover triggers go once the lock is released');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET keyedstate.max_workers; SELECT pg_reload_conf()});

# --- review pool1, F2: an aggregation created by a prepared transaction,
# committed with COMMIT PREPARED in a database whose workers had all left
# (its last aggregation dropped), runs
$node->safe_psql('lo', q{SELECT keyedstate.drop_aggregation(name) FROM keyedstate.aggregations});
ok(ks_wait_for($node, 'postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'lo'}, 60),
	'lo: its workers leave once its aggregations are gone');
$node->safe_psql('lo', q{BEGIN;
SELECT keyedstate.create_aggregation('p1', 'SELECT k, count(*) AS n FROM t GROUP BY k');
PREPARE TRANSACTION 'ks_p1';});
# (and across a restart, which loses the create's slot reservations: the
# first worker found no aggregation and left, the database was forgotten,
# and the COMMIT PREPARED started none; now the first worker stays while a
# transaction of its database is prepared: re-review today 51, P1)
$node->restart;
ok(ks_wait_for($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'lo'}, 30)
	&& ks_holds(2, sub { $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'lo'}) eq '1' }),
	'lo: after a restart, a worker waits while the create is prepared');
$node->safe_psql('lo', q{COMMIT PREPARED 'ks_p1'});
($lo_ret, $lo_out, $lo_err) = $node->psql('lo', q{SELECT keyedstate.sync('p1', '20 s')});
is($lo_ret, 0, 'lo: an aggregation created by a prepared transaction runs after COMMIT PREPARED')
  or diag($lo_err);
is(ks_mismatches($node, 'lo', 'SELECT * FROM p1', 'SELECT k, count(*) FROM t GROUP BY k'), '0', '... and is exact');

# --- review pool1, F3: a database closed to connections starts none of its
# workers (the second one of its pool was restarted every second, failing
# to connect), and they run again once it opens
$node->safe_psql('lo', q{SET ROLE regress_lo_a;
SELECT keyedstate.create_aggregation('a3', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');});
ok(ks_wait_for($node, 'lo', q{SELECT count(DISTINCT pid) = 2 FROM keyedstate.workers WHERE pid IS NOT NULL}, 30),
	'lo: two owners\' aggregations in two workers');
$node->safe_psql('postgres', q{ALTER DATABASE lo ALLOW_CONNECTIONS false});
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'lo'});
my $closed_at = -s $node->logfile;
sleep(4);
my $refused = () = substr(slurp_file($node->logfile), $closed_at) =~ /database "lo" is not currently accepting connections/g;
is($refused, 0, 'lo: closed, no worker of it is started (no connection refused)');
$node->safe_psql('postgres', q{ALTER DATABASE lo ALLOW_CONNECTIONS true});
$node->safe_psql('lo', q{INSERT INTO t (k) VALUES (2)});
ks_sync_all($node, 'lo', '30 s');
is(ks_mismatches($node, 'lo', 'SELECT * FROM a3', 'SELECT k, count(*) FROM t GROUP BY k')
	 + ks_mismatches($node, 'lo', 'SELECT * FROM p1', 'SELECT k, count(*) FROM t GROUP BY k'), '0',
	'lo: opened again, both run and are exact');
$node->safe_psql('lo', q{SELECT keyedstate.drop_aggregation(name) FROM keyedstate.aggregations});

# --- re-review today 18, F1: a role drops her two aggregations (on two
# workers) over another owner's table while it is locked; the second worker
# leaves, the first stays for the leftover triggers and is terminated: it
# comes back and drops them once the lock is gone (the database was
# forgotten, and the triggers stayed)
$node->safe_psql('lo', q{SET ROLE regress_lo_a;
SELECT keyedstate.create_aggregation('e1', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');
SELECT keyedstate.create_aggregation('e2', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');});
ok(ks_wait_for($node, 'lo', q{SELECT count(DISTINCT pid) = 2 FROM keyedstate.workers WHERE pid IS NOT NULL}, 30),
	'lo: a role\'s two aggregations run in two workers');
my $w0 = $node->safe_psql('lo', q{SELECT pid FROM keyedstate.workers WHERE worker = 0});
$locker = $node->background_psql('lo');
$locker->query_safe('BEGIN; LOCK t IN ACCESS SHARE MODE');
$node->safe_psql('lo', q{SET ROLE regress_lo_a; BEGIN;
SELECT keyedstate.drop_aggregation('e1'); SELECT keyedstate.drop_aggregation('e2'); COMMIT;});
ok(ks_wait_for($node, 'postgres', qq{SELECT count(*) = 1 AND bool_and(pid = $w0) FROM pg_stat_activity
	WHERE backend_type = 'keyedstate worker' AND datname = 'lo'}, 30),
	'lo: the first worker alone stays for the leftover triggers');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($w0)");
ok(ks_wait_for($node, 'postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'keyedstate worker' AND datname = 'lo' AND pid <> $w0}, 30),
	'lo: terminated, it comes back');
$locker->query_safe('COMMIT');
$locker->quit;
ok(ks_wait_for($node, 'lo', q{SELECT count(*) = 0 FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname LIKE 'keyedstate%'}, 30),
	'lo: and drops the leftover triggers once the lock is released');

# SQL making roles $prefix1 .. $prefix$n (members of $member, if given),
# each creating aggregation $name_prefix1 .. over public.t (to be run by
# a role that may grant all that).
sub owners_sql
{
	my ($prefix, $n, $name_prefix, $member) = @_;
	my $grant = defined $member ? "EXECUTE format('GRANT ${prefix}%s TO $member', i);" : '';
	return qq{
DO \$\$BEGIN FOR i IN 1..$n LOOP
  EXECUTE format('CREATE ROLE ${prefix}%s', i);
  $grant
  EXECUTE format('GRANT CREATE ON SCHEMA public TO ${prefix}%s', i);
  EXECUTE format('GRANT SELECT, TRIGGER ON public.t TO ${prefix}%s', i);
  EXECUTE format('SET LOCAL ROLE ${prefix}%s', i);
  PERFORM keyedstate.create_aggregation('$name_prefix' || i, 'SELECT k, count(*) AS n FROM public.t GROUP BY k');
  RESET ROLE;
END LOOP; END\$\$;};
}

# --- review security 25, F2: owners beyond keyedstate.max_workers wait for a
# worker rather than take background worker slots beyond it.  A role with
# only CREATEROLE, owning aggregations through roles of her own, took every
# slot of max_worker_processes (13 workers in her database: another
# database's new aggregation got none, a parallel query no worker)
{
	$node->safe_psql('postgres', q{ALTER SYSTEM SET keyedstate.max_workers = 3; SELECT pg_reload_conf()});
	$node->safe_psql('postgres', q{CREATE ROLE regress_cr LOGIN CREATEROLE; CREATE DATABASE crdb OWNER regress_cr});
	$node->safe_psql('crdb', q{CREATE EXTENSION keyedstate});
	$node->safe_psql('crdb', q{
CREATE TABLE public.t (id bigserial PRIMARY KEY, k int NOT NULL);
ALTER TABLE public.t OWNER TO regress_cr;
INSERT INTO public.t (k) SELECT g % 10 FROM generate_series(1, 1000) g;}, );
	$node->safe_psql('crdb', owners_sql('regress_cr', 8, 'public.c', 'regress_cr'), extra_params => [ '-U', 'regress_cr' ]);
	my $cr_workers = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'crdb'};
	ok(ks_wait_for($node, 'crdb', q{SELECT count(*) FILTER (WHERE state = 'running') > 0
		AND count(*) FILTER (WHERE state = 'starting' AND error LIKE 'its database has aggregations of 8 owners%') > 0
		FROM keyedstate.status}, 60),
		'cr: with 8 owners and keyedstate.max_workers = 3, some run and the others wait, saying why')
	  or diag($node->safe_psql('crdb', 'SELECT name, state, error FROM keyedstate.status'));
	ok(ks_holds(3, sub { $node->safe_psql('crdb', $cr_workers) <= 4 }),
		'cr: ... her database runs its first worker and keyedstate.max_workers more, no more')
	  or diag($node->safe_psql('crdb', $cr_workers));
	# another database still gets its first worker
	$node->safe_psql('postgres', 'CREATE DATABASE crvictim');
	$node->safe_psql('crvictim', q{CREATE EXTENSION keyedstate;
CREATE TABLE t (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('v', 'SELECT k, count(*) AS n FROM t GROUP BY k');
INSERT INTO t (k) SELECT g % 7 FROM generate_series(1, 100) g;});
	ks_sync($node, 'crvictim', 'v', '60s');
	is(ks_mismatches($node, 'crvictim', 'SELECT k, n FROM v', 'SELECT k, count(*) FROM t GROUP BY k'), '0',
		'cr: another database\'s new aggregation runs, exact');
	# review security 26, F2: an owner new in another database waits for a
	# worker, rather than take one from this database's running owners
	my $running_n = $node->safe_psql('crdb', q{SELECT count(*) FROM keyedstate.status WHERE state = 'running'});
	$node->safe_psql('crvictim', q{CREATE ROLE regress_crv LOGIN;
GRANT CREATE ON SCHEMA public TO regress_crv; GRANT SELECT, TRIGGER ON public.t TO regress_crv;
SET ROLE regress_crv; SELECT keyedstate.create_aggregation('public.v2', 'SELECT k, count(*) AS n FROM public.t GROUP BY k');});
	ok(ks_wait_for($node, 'crvictim', q{SELECT state = 'starting' AND error LIKE 'its database has aggregations of 2 owners%'
		FROM keyedstate.status WHERE name = 'v2'}, 30),
		'cr: an owner new in another database waits for a worker')
	  or diag($node->safe_psql('crvictim', 'SELECT name, state, error FROM keyedstate.status'));
	ok(ks_holds(3, sub { $node->safe_psql('crdb', q{SELECT count(*) FROM keyedstate.status WHERE state = 'running'}) eq $running_n }),
		'cr: ... and takes none from the running owners of this one');
	$node->safe_psql('crvictim', q{SELECT keyedstate.drop_aggregation('v2')});
	# re-review today 29, F2: the running owners pause theirs: parked, they
	# give their workers to the waiting owners, and stay readable; a
	# checkpoint() of one returns at once.  Resumed, they run again (below)
	my @running = split /\n/, $node->safe_psql('crdb', q{SELECT name FROM keyedstate.status WHERE state = 'running' ORDER BY 1});
	my $waiting = $node->safe_psql('crdb', q{SELECT count(*) FROM keyedstate.status WHERE state = 'starting'});
	$node->safe_psql('crdb', "SELECT keyedstate.pause('$_')") for @running;
	ok(ks_wait_for($node, 'crdb', qq{SELECT count(*) FILTER (WHERE state = 'running') = $waiting
		AND count(*) FILTER (WHERE state = 'paused' AND worker IS NULL AND pid IS NULL) = } . scalar(@running)
		. q{ FROM keyedstate.workers}, 60),
		'cr: paused, the running owners\' aggregations give their workers to the waiting owners\'')
	  or diag($node->safe_psql('crdb', 'SELECT aggregation, state, worker, pid FROM keyedstate.workers'));
	# (a CI run found the first one's checkpoint() waiting for a worker: a
	# worker's reload whose snapshot was taken before the pause committed
	# had given it one again, pool.c)
	is($node->safe_psql('crdb', "SELECT true FROM (SELECT keyedstate.checkpoint('$running[0]', '5 s')) c"), 't',
		'cr: ... checkpoint() of one returns');
	is($node->safe_psql('crdb', join(' UNION ALL ', map { "SELECT sum(n) FROM $_" } @running) . ' EXCEPT SELECT 1000'), '',
		'cr: ... their views stay readable, and checkpoint() of one returns');
	$node->safe_psql('crdb', q{INSERT INTO public.t (k) SELECT g % 10 FROM generate_series(1, 500) g});
	$node->safe_psql('crdb', "SELECT keyedstate.resume('$_')") for @running;
	# resumed while the others run, they wait for a worker, and say so (re-review today 30, F1:
	# status said 'paused' and a sync timed out without a reason)
	ok(ks_wait_for($node, 'crdb', q{SELECT (SELECT count(*) FROM keyedstate.status
		WHERE state = 'starting' AND error LIKE 'its database has aggregations of 8 owners%'} . " AND name IN ('"
		. join("', '", @running) . "')) = " . scalar(@running), 60),
		'cr: resumed while other owners run, they wait for a worker, saying why')
	  or diag($node->safe_psql('crdb', 'SELECT name, state, error FROM keyedstate.status'));
	# raised, every owner has a worker and every aggregation catches up
	$node->safe_psql('postgres', q{ALTER SYSTEM SET keyedstate.max_workers = 12; SELECT pg_reload_conf()});
	ks_sync($node, 'crdb', "public.c$_", '60s') for 1 .. 8;
	is($node->safe_psql('crdb', q{SELECT count(*) FROM keyedstate.status WHERE state <> 'running' OR error IS NOT NULL}), '0',
		'cr: keyedstate.max_workers raised, every owner\'s aggregation runs');
	$node->safe_psql('crdb', q{SELECT keyedstate.drop_aggregation(name) FROM keyedstate.aggregations});
	$node->safe_psql('crvictim', q{SELECT keyedstate.drop_aggregation('v')});
	$node->safe_psql('postgres', q{ALTER SYSTEM RESET keyedstate.max_workers; SELECT pg_reload_conf()});
}

# --- re-review today 17, F5: a database runs one worker per owner, 32 at
# most; an aggregation of a 33rd owner waits, and says why (it stayed
# 'starting' with no reason anywhere); given to an owner that has a
# worker, it runs
$node->append_conf('postgresql.conf', "max_worker_processes = 48\nkeyedstate.max_workers = 40\n");
$node->restart;
my $own_log_at = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE own');
$node->safe_psql('own', q{
CREATE EXTENSION keyedstate;
CREATE TABLE t (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO t (k) SELECT g % 10 FROM generate_series(1, 1000) g;} . owners_sql('regress_own', 33, 'o'));
my $owners_msg = "its database has aggregations of 33 owners, and a worker runs one owner's only: keyedstate.max_workers (40 in the server, 32 at most in a database) leaves the database fewer workers";
(my $owners_sql = $owners_msg) =~ s/'/''/g;
ok(ks_wait_for($node, 'own', qq{SELECT count(*) FILTER (WHERE state = 'running') = 32
	AND count(*) FILTER (WHERE state = 'starting' AND error = '$owners_sql') = 1 FROM keyedstate.status}, 90),
	'own: 32 owners\' aggregations run, the 33rd owner\'s waits and status says why')
	or diag($node->safe_psql('own', 'SELECT name, state, error FROM keyedstate.status WHERE state <> \'running\''));
my $left = $node->safe_psql('own', q{SELECT name FROM keyedstate.status WHERE state = 'starting'});
my ($ret, $out, $err) = $node->psql('own', qq{SELECT keyedstate.sync('$left', '1 s')});
like($err, qr/DETAIL:  Its database has aggregations of 33 owners, and a worker runs one owner's only: keyedstate\.max_workers \(40 in the server, 32 at most in a database\) leaves the database fewer workers\./,
	'own: so does sync() when it times out') or diag($err);
ok(ks_wait_for($node, 'postgres', "SELECT pg_read_file('" . $node->logfile . "', $own_log_at, 100000000)
	~ 'no keyedstate worker is left for the owner of aggregation $left'", 30),
	'own: and the log, naming it');
$node->safe_psql('own', qq{ALTER VIEW $left OWNER TO regress_own1});
ks_sync($node, 'own', $left, '60s');
is(ks_mismatches($node, 'own', "SELECT k, n FROM $left", 'SELECT k, count(*) FROM t GROUP BY k'), '0',
	'own: given to an owner with a worker, it runs, exact');
is($node->safe_psql('own', q{SELECT count(*) FROM keyedstate.status WHERE state <> 'running' OR error IS NOT NULL}), '0',
	'own: and every aggregation runs without an error');
# ... given back to its own owner (a 33rd again), it says why once more,
# though it ran before (it showed 'running', no error, and a sync timed
# out without a reason: re-review today 19, F4)
(my $left_owner = $left) =~ s/^(public\.)?o/regress_own/;
$node->safe_psql('own', qq{ALTER VIEW $left OWNER TO $left_owner});
ok(ks_wait_for($node, 'own', qq{SELECT state = 'starting' AND error = '$owners_sql' FROM keyedstate.status WHERE name = '$left'}, 60),
	'own: given back to a 33rd owner, status says why it does not run')
	or diag($node->safe_psql('own', qq{SELECT state, error FROM keyedstate.status WHERE name = '$left'}));
($ret, $out, $err) = $node->psql('own', qq{INSERT INTO t (k) VALUES (1); SELECT keyedstate.sync('$left', '1 s')});
like($err, qr/DETAIL:  Its database has aggregations of 33 owners/, 'own: ... and so does a sync') or diag($err);
$node->safe_psql('own', qq{ALTER VIEW $left OWNER TO regress_own1});
ks_sync($node, 'own', $left, '60s');

# a worker's messages name an aggregation as its view is named now (they
# kept the name it had when the worker took it up: newuser review 1, F3)
$node->safe_psql('own', q{ALTER VIEW o2 RENAME TO o2_renamed; SELECT keyedstate.rebuild('o2_renamed')});
ks_sync($node, 'own', 'o2_renamed', '60s');
ok(ks_wait_for($node, 'postgres', "SELECT pg_read_file('" . $node->logfile . "', $own_log_at, 100000000)
	~ 'keyedstate aggregation public.o2_renamed recovered'", 30),
	'own: after a rename the worker\'s messages use the new name');

# the launcher's list of databases cannot be written (a full or read-only
# disk): forgetting a dropped database warns once, and the launcher stays
# (it ended with an ERROR and came back every second: review robustness2, F2)
{
	$node->safe_psql('postgres', q{CREATE DATABASE unwritable});
	$node->safe_psql('unwritable', q{CREATE EXTENSION keyedstate; CREATE TABLE t (id bigserial PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('n', 'SELECT k, count(*) FROM t GROUP BY k');});
	ks_sync($node, 'unwritable', 'n', '60s');
	my $tmp = $node->data_dir . '/keyedstate.databases.tmp';
	mkdir $tmp or die "mkdir $tmp: $!";
	my $launcher = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'keyedstate launcher'};
	my $before = $node->safe_psql('postgres', $launcher);
	my $log_at = -s $node->logfile;
	$node->safe_psql('postgres', q{DROP DATABASE unwritable WITH (FORCE)});
	ok(ks_wait_for($node, 'postgres', "SELECT pg_read_file('" . $node->logfile . "', $log_at, 100000000)"
		. q{ ~ 'could not write file "keyedstate.databases.tmp"'}, 30), 'an unwritable list of databases is warned of');
	sleep 3;
	is($node->safe_psql('postgres', $launcher), $before, '... and the launcher stays');
	my @warnings = (slurp_file($node->logfile, $log_at) =~ /WARNING:  could not write file "keyedstate\.databases\.tmp"/g);
	is(scalar(@warnings), 1, '... warning once');
	rmdir $tmp;
}

# keyedstate.enabled = off (review robustness3, F6: nothing stopped every
# worker but removing the preload, which turns off keyedstate's DDL guards
# too): every worker writes its final checkpoint and leaves, none starts;
# the views keep their last state, status and sync say why; on again, the
# rows written meanwhile are consumed, none replayed
$node->safe_psql('postgres', q{CREATE TABLE en (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('en_n', 'SELECT k, count(*) AS n FROM en GROUP BY k');
INSERT INTO en (k) SELECT g % 50 FROM generate_series(1, 1000) g;});
ks_sync($node, 'postgres', 'en_n');
my $workers_running = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker'};
$node->safe_psql('postgres', q{ALTER SYSTEM SET keyedstate.enabled = off; SELECT pg_reload_conf()});
ok(ks_wait_for($node, 'postgres', "SELECT ($workers_running) = 0", 60), 'keyedstate.enabled = off: every worker leaves');
$node->safe_psql('postgres', q{INSERT INTO en (k) SELECT g % 50 FROM generate_series(1, 500) g});
ok(ks_holds(3, sub { $node->safe_psql('postgres', $workers_running) eq '0' }), '... and none starts, rows written meanwhile');
is($node->safe_psql('postgres', q{SELECT state || ': ' || error FROM keyedstate.status WHERE name = 'en_n'}),
	'starting: keyedstate.enabled is off: no worker runs', '... status says why');
is($node->safe_psql('postgres', q{SELECT sum(n) FROM en_n}), '1000', '... the view keeps its last state');
my ($en_ret, $en_out, $en_err) = $node->psql('postgres', q{SELECT keyedstate.sync('en_n', '1 s')});
like($en_err, qr/DETAIL:  keyedstate.enabled is off/, '... and a sync says why');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET keyedstate.enabled; SELECT pg_reload_conf()});
ks_sync($node, 'postgres', 'en_n');
is(ks_mismatches($node, 'postgres', 'SELECT k, n FROM en_n', 'SELECT k, count(*) FROM en GROUP BY k'), '0',
	'on again, it consumes the rows written meanwhile, exact');
is($node->safe_psql('postgres', q{SELECT rows_replayed FROM keyedstate.status WHERE name = 'en_n'}), '0',
	'... replaying none: the workers checkpointed as they left');

# dropping an aggregation (or its view) is no error of its worker's: a step
# that began after the drop committed found the view gone and logged
# "ERROR: the view of aggregation ... no longer exists", once per part
# (user review 50, F2: 12 lines for five drops of 4 parts)
{
	$node->safe_psql($db, q{CREATE TABLE dr (id bigserial PRIMARY KEY, k int NOT NULL)});
	my $log_at = -s $node->logfile;
	for my $round (1 .. 6)
	{
		$node->safe_psql($db, q{SELECT keyedstate.create_aggregation('dr_n', 'SELECT k, count(*) AS n FROM dr GROUP BY k', parallelism => 4)});
		$node->safe_psql($db, q{INSERT INTO dr (k) SELECT g % 100 FROM generate_series(1, 2000) g});
		ks_sync($node, $db, 'dr_n');
		$node->safe_psql($db, $round % 2 ? q{SELECT keyedstate.drop_aggregation('dr_n')} : q{DROP VIEW dr_n});
	}
	my $log = slurp_file($node->logfile, $log_at);
	my @gone = $log =~ /(ERROR:  .*dr_n.*)/g;
	is(scalar(@gone), 0, 'drops of an aggregation of 4 parts, 6 times: its workers log no error') or diag(join("\n", @gone[0 .. 2]));
}

$node->stop;

# max_worker_processes left no slot for the launcher at preload: the
# postmaster logs only "too many background workers"; status, a sync and a
# read say that no launcher runs (review robustness2, F3: 'starting', no
# reason anywhere)
{
	my $bare = ks_node('nolauncher', "max_worker_processes = 0\n");
	$bare->safe_psql('postgres', q{CREATE EXTENSION keyedstate; CREATE TABLE t (id bigserial PRIMARY KEY, k int);
SELECT keyedstate.create_aggregation('n', 'SELECT k, count(*) FROM t GROUP BY k');});
	ok(ks_wait_for($bare, 'postgres', q{SELECT state = 'starting' AND error ~
		'^no keyedstate launcher runs to start its worker: it could not be registered at server start, where max_worker_processes \(0\)'
		FROM keyedstate.status WHERE name = 'n'}, 30), 'no launcher (max_worker_processes = 0): status says so')
	  or diag($bare->safe_psql('postgres', q{SELECT state, error FROM keyedstate.status}));
	my ($ret, $out, $err) = $bare->psql('postgres', q{SELECT keyedstate.sync('n', '1 s')});
	like($err, qr/DETAIL:  No keyedstate launcher runs to start its worker/, '... and so does a sync');
	($ret, $out, $err) = $bare->psql('postgres', q{SET keyedstate.load_wait = 100; SELECT * FROM n});
	like($err, qr/aggregation public.n is not running\nDETAIL:  No keyedstate launcher runs/, '... and a read');
	$bare->stop;
}

done_testing();
