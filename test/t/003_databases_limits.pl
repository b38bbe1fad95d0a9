# Runtime: every database with aggregations gets a worker, also after a
# restart; without shared_preload_libraries the extension installs but its
# functions say what is missing; running out of shared memory fails the
# aggregation with a hint, keeps the server up and loses nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = ks_node('dbs', "keyedstate.max_shared_memory = '2MB'\nmax_prepared_transactions = 2\n");

# two databases, each with its own aggregation and worker
for my $db ('db_a', 'db_b')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int, v int);
INSERT INTO ev (k, v) SELECT g % 10, g FROM generate_series(1, 1000) g;
SELECT keyedstate.create_aggregation('ev_sum', 'SELECT k, sum(v) AS s FROM ev GROUP BY k');
SELECT keyedstate.sync('ev_sum');
});
}
is($node->safe_psql('postgres',
	"SELECT count(DISTINCT datname) FROM pg_stat_activity WHERE backend_type = 'keyedstate worker'"),
	'2', 'one worker per database');

# a restart finds both databases again by itself
$node->restart;
for my $db ('db_a', 'db_b')
{
	$node->safe_psql($db, "INSERT INTO ev (k, v) VALUES (1, 1)");
	is($node->safe_psql($db, "SELECT keyedstate.sync('ev_sum', '30s') > 0"), 't', "$db resumes after restart");
	is($node->safe_psql($db, "SELECT s FROM ev_sum WHERE k = 1"),
	   $node->safe_psql($db, "SELECT sum(v) FROM ev WHERE k = 1"), "$db is exact");
}

# a database without aggregations gets no worker, so it can be dropped
$node->safe_psql('postgres', 'CREATE DATABASE db_plain');
$node->safe_psql('postgres', 'DROP DATABASE db_plain');
pass('a database without aggregations can be dropped');

# shared memory runs out: the aggregation fails with a hint, the server stays up
$node->safe_psql('db_a', q{
CREATE TABLE wide (id bigserial PRIMARY KEY, k int, t text);
SELECT keyedstate.create_aggregation('wide_keys', 'SELECT k, max(t) AS t FROM wide GROUP BY k');
INSERT INTO wide (k, t) SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g;
});
my ($ret, $out, $err) = $node->psql('db_a', "SELECT keyedstate.sync('wide_keys', '1 min')");
like($err, qr/has failed/, 'aggregation fails when shared memory runs out');
like(ks_status($node, 'db_a', 'wide_keys', 'error'),
	qr/shared memory is exhausted/, 'status shows the error');
ok($node->log_contains('Increase keyedstate.max_shared_memory'), 'the log has the hint');
is($node->safe_psql('db_a', "SELECT keyedstate.sync('ev_sum') > 0"), 't', 'other aggregations keep running');
$node->safe_psql('db_a', "SELECT keyedstate.drop_aggregation('wide_keys')");
is($node->safe_psql('db_a', "SELECT keyedstate.sync('ev_sum') > 0"), 't', 'memory is given back on drop');

# an aggregation dropped and made again at once, each taking most of the
# shared memory: the new one waits for the old one's rows to be freed (a
# worker frees them between its steps), it does not fail.  One worker: it
# retires the old rows and runs the new aggregation in the same round.
$node->safe_psql('db_a', 'ALTER SYSTEM SET keyedstate.max_workers = 1');
$node->reload;
ok(ks_wait_for($node, 'db_a', q{SELECT count(DISTINCT worker) = 1 FROM keyedstate.workers}, 60),
	'(precondition) one worker runs every aggregation');
$node->safe_psql('db_a', q{
CREATE TABLE wide2 (id bigserial PRIMARY KEY, k int, t text);
INSERT INTO wide2 (k, t) SELECT g, repeat('y', 500) FROM generate_series(1, 2200) g;
SELECT keyedstate.create_aggregation('wide_old', 'SELECT k, max(t) AS t FROM wide2 GROUP BY k');
SELECT keyedstate.sync('wide_old', '1 min');
});
$node->safe_psql('db_a', q{
BEGIN;
SELECT keyedstate.drop_aggregation('wide_old');
SELECT keyedstate.create_aggregation('wide_new', 'SELECT k, max(t) AS t FROM wide2 GROUP BY k');
COMMIT;
});
($ret, $out, $err) = $node->psql('db_a', "SELECT keyedstate.sync('wide_new', '1 min')");
is($ret, 0, 'an aggregation made again right after its drop waits for the shared memory the old one frees')
  or diag($err);
is($node->safe_psql('db_a', 'SELECT count(*) FROM wide_new'), '2200', 'it has every key');
$node->safe_psql('db_a', "SELECT keyedstate.drop_aggregation('wide_new')");
$node->safe_psql('db_a', 'ALTER SYSTEM RESET keyedstate.max_workers');
$node->reload;

# a row that makes an aggregate fail logs one error, not a loop or a flood
$node->safe_psql('db_a', q{
CREATE FUNCTION fussy_acc(bigint, int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN IF $2 = 7 THEN RAISE EXCEPTION 'fussy about %', $2; END IF; RETURN $1 + $2; END $$;
CREATE AGGREGATE fussy_sum(int) (sfunc = fussy_acc, stype = bigint, initcond = '0');
CREATE TABLE f (id bigserial PRIMARY KEY, v int);
SELECT keyedstate.create_aggregation('fussy', 'SELECT v % 2 AS g, fussy_sum(v) AS s FROM f GROUP BY 1');
INSERT INTO f (v) SELECT generate_series(1, 10);
});
ks_wait_state($node, 'db_a', 'fussy', 'failed') or die 'aggregation did not fail';
# the error is in the log once it failed; then the count must stay at one
# while the worker keeps running (naptime 100 ms: 30 rounds to retry in)
$node->wait_for_log(qr/ERROR:  fussy about 7/);
# How often the failing row's error is in the log.
sub failures_logged
{
	my $n = () = slurp_file($node->logfile) =~ /ERROR:  fussy about 7/g;
	return $n;
}
ks_holds(3, sub { failures_logged() == 1 });
is(failures_logged(), 1, 'the failure is logged once');
$node->safe_psql('db_a', "SELECT keyedstate.drop_aggregation('fussy')");

# Whether ev_sum of database $db takes a new row and equals its oracle.
sub runs_exactly
{
	my ($db) = @_;
	$node->safe_psql($db, 'INSERT INTO ev (k, v) VALUES (3, 3)');
	return $node->safe_psql($db, "SELECT keyedstate.sync('ev_sum', '30s') > 0") eq 't' &&
	  ks_mismatches($node, $db, 'SELECT k, s FROM ev_sum', 'SELECT k, sum(v) FROM ev GROUP BY k') eq '0';
}

# The file of the databases the launcher starts workers for.
sub remembered
{
	my $f = $node->data_dir . '/keyedstate.databases';
	return -e $f ? join(' ', sort split /\s+/, slurp_file($f)) : '';
}

# the commands that need a database to themselves work while it has
# aggregations (their workers leave for the command, then come back), and
# a copy of it runs its copies of the aggregations
$node->safe_psql('postgres', 'ALTER DATABASE db_a RENAME TO db_a2');
ok(runs_exactly('db_a2'), 'ALTER DATABASE ... RENAME works, and the aggregation runs on');
$node->safe_psql('postgres', 'CREATE DATABASE db_copy TEMPLATE db_a2');
ok(runs_exactly('db_a2'), 'CREATE DATABASE ... TEMPLATE a database with aggregations works');
ok(ks_wait_for($node, 'db_copy', "SELECT state = 'running' FROM keyedstate.status WHERE name = 'ev_sum'", 30)
	  && runs_exactly('db_copy'), "the copy's aggregation runs, exactly");
$node->safe_psql('postgres', 'ALTER DATABASE db_a2 RENAME TO db_a');
my $copy_oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'db_copy'");

# closed to connections for a while: not forgotten, it runs again once open
$node->safe_psql('postgres', q{
ALTER DATABASE db_copy ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'db_copy';
});
ok(ks_wait_for($node, 'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'db_copy'", 30),
	'(precondition) no worker in a database closed to connections');
ok(ks_holds(2, sub { remembered() =~ /\b$copy_oid\b/ }),
	'a database closed to connections stays remembered');
$node->safe_psql('postgres', 'ALTER DATABASE db_copy ALLOW_CONNECTIONS true');
ok(runs_exactly('db_copy'), 'a database closed to connections for a while runs again once open');
$node->restart;
ok(runs_exactly('db_copy'), '... also after a restart');

# a database the file does not list (a promoted standby, an upgrade): found
unlink($node->data_dir . '/keyedstate.databases');
$node->restart;
ok(runs_exactly('db_a') && runs_exactly('db_copy'),
	'databases missing from the file of databases are found at start');

# DROP EXTENSION stops the worker of that database, and it is forgotten
$node->safe_psql('db_copy', 'DROP EXTENSION keyedstate CASCADE');
ok(ks_wait_for($node, 'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'db_copy'", 30),
	'(precondition) the worker of a database without keyedstate leaves');
my $deadline = time() + 30;
sleep(0.1) while remembered() =~ /\b$copy_oid\b/ && time() < $deadline;
unlike(remembered(), qr/\b$copy_oid\b/, 'a database whose extension was dropped is forgotten');
$node->safe_psql('postgres', 'DROP DATABASE db_copy');

# a transaction renaming a database, here a prepared one, holds its lock:
# a worker or a probe connecting to it waits.  A fast shutdown does not wait
# for them (a worker waiting to connect ignored SIGTERM), and at start the
# probe of that database is ended after a while so that the databases after
# it are found.
{
	for my $d (qw(held_db found_db))
	{
		$node->safe_psql('postgres', "CREATE DATABASE $d");
		$node->safe_psql($d, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
SELECT keyedstate.create_aggregation('ev_sum', 'SELECT k, sum(v) AS s FROM ev GROUP BY k');
INSERT INTO ev (k, v) VALUES (1, 1);});
		ok(runs_exactly($d), "(precondition) $d runs");
	}
	$node->safe_psql('postgres', q{BEGIN; ALTER DATABASE held_db RENAME TO held_db2; PREPARE TRANSACTION 'held'});
	# its worker comes back and waits for the lock
	ok(ks_wait_for($node, 'postgres', q{SELECT count(*) > 0 FROM pg_locks
		WHERE locktype = 'object' AND classid = 'pg_database'::regclass AND NOT granted}, 30),
		'(precondition) a worker waits to connect to the database being renamed');
	my $t0 = time();
	$node->stop('fast');
	ok(time() - $t0 < 20, sprintf('a fast shutdown does not wait for it (%.1f s)', time() - $t0));
	unlink($node->data_dir . '/keyedstate.databases');
	$node->start;
	ok(runs_exactly('found_db'), 'at start, a database after the one whose probe waits for its lock is found');
	$node->safe_psql('postgres', q{ROLLBACK PREPARED 'held'});
	ok(runs_exactly('held_db'), 'once the rename is rolled back, the probed-again database runs');
	$node->safe_psql('postgres', 'DROP DATABASE held_db WITH (FORCE); DROP DATABASE found_db WITH (FORCE)');
}

# too few max_worker_processes: an aggregation whose worker the launcher
# cannot start says why in keyedstate.status, and runs once a slot is free
# (the launchers of keyedstate and of logical replication, and one worker
# for each of db_a and db_b, take the four)
$node->append_conf('postgresql.conf', "max_worker_processes = 4\n");
$node->restart;
for my $db ('db_a', 'db_b')
{
	$node->safe_psql($db, 'INSERT INTO ev (k, v) VALUES (2, 2)');
	ks_sync($node, $db, 'ev_sum', '60s');
}
$node->safe_psql('db_a', q{
CREATE ROLE regress_lack;
CREATE SCHEMA lack AUTHORIZATION regress_lack;
SET ROLE regress_lack;
CREATE TABLE lack.ev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO lack.ev (k) SELECT g % 5 FROM generate_series(1, 100) g;
SELECT keyedstate.create_aggregation('lack.n', 'SELECT k, count(*) AS n FROM lack.ev GROUP BY k');
RESET ROLE;
});
ok(ks_wait_for($node, 'db_a', q{SELECT state = 'starting' AND error LIKE 'no background worker slot is free to run it (max_worker_processes is 4)'
	FROM keyedstate.status WHERE name = 'lack.n'}, 60),
	'an owner whose worker finds no background worker slot: status says so');
$node->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$node->restart;
ks_sync($node, 'db_a', 'lack.n', '60s');
is(ks_mismatches($node, 'db_a', 'SELECT k, n FROM lack.n', 'SELECT k, count(*) FROM lack.ev GROUP BY k'), '0',
	'... and with slots to spare it runs, exact');
is($node->safe_psql('db_a', q{SELECT error IS NULL FROM keyedstate.status WHERE name = 'lack.n'}), 't',
	'... without the message');
$node->safe_psql('db_a', q{SELECT keyedstate.drop_aggregation('lack.n'); DROP SCHEMA lack CASCADE});

# too few aggregation slots (keyedstate.max_aggregations lowered; also what
# a CREATE DATABASE ... TEMPLATE copy meets): an aggregation that gets none
# says why in keyedstate.status, in sync()'s error and in the log, by name
# (it stayed 'starting' with no reason anywhere but a log line naming
# internal ids: DBA review 10, D10-1)
$node->append_conf('postgresql.conf', "keyedstate.max_aggregations = 1\n");
my $log_at = -s $node->logfile;
$node->restart;
my $noslot = 'no keyedstate aggregation slot is free for it (keyedstate.max_aggregations is 1)';
my $lacking;
my $slot_deadline = time() + 60;
while (!defined($lacking) && time() < $slot_deadline)
{
	for my $db ('db_a', 'db_b')
	{
		$lacking //= $db if $node->safe_psql($db, qq{SELECT state || ':' || coalesce(error, '') FROM keyedstate.status
			WHERE name = 'ev_sum'}) eq "starting:$noslot";
	}
	sleep(0.2) unless defined($lacking);
}
ok(defined($lacking), 'an aggregation without an aggregation slot: status says why');
($ret, $out, $err) = $node->psql($lacking // 'db_a', q{SELECT keyedstate.sync('ev_sum', '1 s')});
like($err, qr/DETAIL:  No keyedstate aggregation slot is free for it \(keyedstate.max_aggregations is 1\)/,
	'... so does sync() when it times out') or diag($err);
($ret, $out, $err) = $node->psql($lacking // 'db_a', q{SET keyedstate.load_wait = 100; SELECT * FROM ev_sum});
like($err, qr/ERROR:  aggregation public.ev_sum is not running\nDETAIL:  No keyedstate aggregation slot is free for it/,
	'... and a read, which calls it not running (user review 50, F6: "still loading")') or diag($err);
ok(ks_wait_for($node, 'postgres', "SELECT pg_read_file('" . $node->logfile . "', $log_at, 100000000)
	~ 'no keyedstate aggregation slot is free for aggregation public.ev_sum'", 30),
	'... and the log, naming it');
# once a slot is free it starts, with no restart: its database kept a
# worker waiting for one (every aggregation of a database without a slot
# left it with none, and nothing started one again: re-review today 14, F3)
my $has = ($lacking // 'db_a') eq 'db_a' ? 'db_b' : 'db_a';
$node->safe_psql($has, q{SELECT keyedstate.drop_aggregation('ev_sum')});
ks_sync($node, $lacking // 'db_a', 'ev_sum', '60s');
is($node->safe_psql($lacking // 'db_a', q{SELECT state || ':' || coalesce(error, '') FROM keyedstate.status WHERE name = 'ev_sum'}),
	'running:', '... and once a slot is free it runs, without a restart');
$node->append_conf('postgresql.conf', "keyedstate.max_aggregations = 64\n");
$node->restart;
$node->safe_psql($has, q{SELECT keyedstate.create_aggregation('ev_sum', 'SELECT k, sum(v) AS s FROM ev GROUP BY k')});
for my $db ('db_a', 'db_b')
{
	ks_sync($node, $db, 'ev_sum', '60s');
	is($node->safe_psql($db, q{SELECT error IS NULL FROM keyedstate.status WHERE name = 'ev_sum'}), 't',
		"$db: with slots again it runs, without the message");
}

# a database left with no worker at all (one slot for db_a and db_b): its
# aggregations, which no worker has taken up, say why too
$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$node->restart;
my $why = q{SELECT state || ':' || coalesce(error, '') FROM keyedstate.status WHERE name = 'ev_sum'};
my $msg = 'starting:no background worker slot is free to run it (max_worker_processes is 3)';
$deadline = time() + 60;
my ($why_a, $why_b) = ('', '');
while (time() < $deadline)
{
	($why_a, $why_b) = map { $node->safe_psql($_, $why) } ('db_a', 'db_b');
	last if ($why_a eq $msg) != ($why_b eq $msg) && ($why_a =~ /^running:$/ || $why_b =~ /^running:$/);
	sleep(0.2);
}
ok(($why_a eq $msg) != ($why_b eq $msg) && ($why_a =~ /^running:$/ || $why_b =~ /^running:$/),
	'a database without any worker: its aggregation is starting and says why') or diag("db_a: $why_a; db_b: $why_b");
# a sync of it that times out says why too (no worker had taken it up,
# so the sync found no part to ask: newuser review 1, F1)
{
	my ($rc, $out, $err) = $node->psql($why_a eq $msg ? 'db_a' : 'db_b', q{SELECT keyedstate.sync('ev_sum', '1 s')});
	like($err, qr/timed out waiting for sync of aggregation public.ev_sum\n.*DETAIL:  No background worker slot is free to run it \(max_worker_processes is 3\)/s,
		'... and a sync of it timing out says why');
}
# so does one created there meanwhile, which no worker took up, and a sync
# or a read that times out waiting for it says why
{
	my $lacking = $why_a eq $msg ? 'db_a' : 'db_b';
	$node->safe_psql($lacking, q{SELECT keyedstate.create_aggregation('ev_new', 'SELECT k, count(*) AS n FROM ev GROUP BY k')});
	is($node->safe_psql($lacking, q{SELECT state || ':' || coalesce(error, '') FROM keyedstate.status WHERE name = 'ev_new'}),
		$msg, '... so does an aggregation created there meanwhile');
	my ($rc, $out, $err) = $node->psql($lacking, q{SELECT keyedstate.sync('ev_new', '1 s')});
	like($err, qr/timed out waiting for sync of aggregation public.ev_new\n.*DETAIL:  No background worker slot is free to run it \(max_worker_processes is 3\)/s,
		'... and a sync timing out waiting for it says why');
	($rc, $out, $err) = $node->psql($lacking, q{SET keyedstate.load_wait = 100; SELECT * FROM ev_new});
	like($err, qr/ERROR:  aggregation public.ev_new is not running\n.*DETAIL:  No background worker slot is free to run it/s,
		'... as does a read of its view');
	$node->safe_psql($lacking, q{SELECT keyedstate.drop_aggregation('ev_new')});
}
$node->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$node->restart;

# keyedstate.max_workers raised beyond what max_worker_processes can start
# (four workers here): the pool plans the workers that could start, so no
# aggregation stays assigned to a worker without a process, stale
$node->append_conf('postgresql.conf', "max_worker_processes = 6\nkeyedstate.max_workers = 4\nkeyedstate.pool_settle_time = '4s'\n");
$node->restart;
$node->safe_psql('db_a', join('', map { "SELECT keyedstate.create_aggregation('many_$_', 'SELECT k, count(*) AS n FROM ev WHERE k > $_ GROUP BY k');\n" } 1 .. 6));
ks_sync_all($node, 'db_a', '60s');
my $logpos = -s $node->logfile;
$node->safe_psql('db_a', q{ALTER SYSTEM SET keyedstate.max_workers = 64; SELECT pg_reload_conf()});
ok(eval { $node->wait_for_log(qr/could not start keyedstate worker for database "db_a"/, $logpos); 1 },
	'(precondition) the pool planned more workers than can start');
# (watched for 12 s: the pool spreads aggregations over new workers up to
# two balance rechecks after a reload, half pool_settle_time each, 2 s
# here, and an aggregation moved to a worker that never starts would stop
# then)
my ($caught_up, $t_watch) = (0, time());
while (time() - $t_watch < 12 || $caught_up < 3)
{
	last if time() - $t_watch > 60;
	$node->safe_psql('db_a', 'INSERT INTO ev (k, v) SELECT g, g FROM generate_series(1, 10) g');
	my ($rc) = $node->psql('db_a', q{SELECT keyedstate.sync(name, '10 s') FROM keyedstate.aggregations});
	$caught_up = $rc == 0 ? $caught_up + 1 : 0;
	sleep(1);			# a round a second, for the 12 s watched
}
ok($caught_up >= 3, 'max_workers beyond max_worker_processes: every aggregation goes on consuming')
  or diag($node->safe_psql('db_a', 'SELECT * FROM keyedstate.workers'));
is(join(',', map { ks_mismatches($node, 'db_a', "SELECT k, n FROM many_$_", "SELECT k, count(*) FROM ev WHERE k > $_ GROUP BY k") } 1 .. 6),
	'0,0,0,0,0,0', '... exactly');
$node->safe_psql('db_a', q{ALTER SYSTEM RESET keyedstate.max_workers; SELECT pg_reload_conf();}
	. join('', map { "SELECT keyedstate.drop_aggregation('many_$_');" } 1 .. 6));
$node->append_conf('postgresql.conf', "max_worker_processes = 16\nkeyedstate.max_workers = 12\n");
$node->restart;

# a view read right after a restart waits for its aggregation to load,
# instead of failing while the slot knows no view yet
$node->restart;
($ret, $out, $err) = $node->psql('db_a', join('', map { "EXPLAIN SELECT * FROM ev_sum;\n" } 1 .. 200),
	on_error_stop => 1);
is($ret, 0, 'a view planned again and again right after a restart: no error while it loads');
is($node->safe_psql('db_a', 'SELECT count(*) = (SELECT count(DISTINCT k) FROM ev) FROM ev_sum'), 't',
	'a view read at once after a restart waits for it to load');

# keyedstate.step_timeout at its maximum (no timeout, in effect): the kill
# timer's grace must not wrap around and end every step at once
$node->safe_psql('db_a', 'ALTER SYSTEM SET keyedstate.step_timeout = 2147483647; SELECT pg_reload_conf()');
for (1 .. 3)
{
	$node->safe_psql('db_a', 'INSERT INTO ev (k, v) SELECT g % 10, 1 FROM generate_series(1, 20000) g');
	ks_sync($node, 'db_a', 'ev_sum', '60s');
}
is(ks_state($node, 'db_a', 'ev_sum'), 'running', 'step_timeout at its maximum: steps run');
$node->safe_psql('db_a', 'ALTER SYSTEM RESET keyedstate.step_timeout; SELECT pg_reload_conf()');

# a prepared transaction that inserted holds the aggregation back, and
# status names no session: its backend id is a later session's
# (the worker sees the writer before it prepares; the preparing session
# stays, its backend id now running another transaction)
my $preparer = $node->background_psql('db_a');
my $preparer_pid = $preparer->query_safe('SELECT pg_backend_pid()');
$preparer->query_safe(q{BEGIN; INSERT INTO ev (k, v) VALUES (4, 4)});
$node->safe_psql('db_a', 'INSERT INTO ev (k, v) VALUES (4, 4)');
ok(ks_wait_for($node, 'db_a', qq{SELECT state = 'waiting' AND waiting_pid = $preparer_pid FROM keyedstate.status WHERE name = 'ev_sum'}, 30),
	'an open transaction that inserted holds the frontier: waiting, for its pid');
$preparer->query_safe(q{PREPARE TRANSACTION 'held_rows'});
$preparer->query_safe('SELECT 1');
ok(ks_wait_for($node, 'db_a', q{SELECT state = 'waiting' AND waiting_pid IS NULL FROM keyedstate.status WHERE name = 'ev_sum'}, 30),
	'... prepared, it still does, and waiting_pid no longer names its session');
$node->safe_psql('db_a', q{COMMIT PREPARED 'held_rows'});
$preparer->quit;
ks_sync($node, 'db_a', 'ev_sum', '60s');
is(ks_mismatches($node, 'db_a', 'SELECT k, s FROM ev_sum', 'SELECT k, sum(v) FROM ev GROUP BY k'), '0',
	'... and once committed its row counts');

# CREATE INDEX CONCURRENTLY never inserts: its locks do not hold the frontier
# (its expression takes 4 s for one row, in the build and again in the validation)
$node->safe_psql('db_a', q{INSERT INTO ev (k, v) VALUES (424242, 0);
CREATE FUNCTION slow_k(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
	$$BEGIN IF $1 = 424242 THEN PERFORM pg_sleep(4); END IF; RETURN $1; END$$});
my $cic = $node->background_psql('db_a');
$cic->query_until(qr/building/, "\\echo building\nCREATE INDEX CONCURRENTLY ev_slow ON ev (slow_k(k));\n");
ok(ks_wait_for($node, 'db_a', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'}, 30),
	'(precondition) an index is being built concurrently');
$node->safe_psql('db_a', 'INSERT INTO ev (k, v) VALUES (5, 5)');
($ret) = $node->psql('db_a', q{SELECT keyedstate.sync('ev_sum', '5s')});
ok($ret == 0 && $node->safe_psql('db_a',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'}) eq 't',
	'a row inserted during CREATE INDEX CONCURRENTLY is consumed before the build ends');
$cic->quit;
$node->safe_psql('db_a', 'DROP INDEX IF EXISTS ev_slow; DROP FUNCTION slow_k(int)');

# a REINDEX of the offset index held open while the source's definition
# changes (a GRANT): the worker sets its leaves up again without waiting
# for the index, so the step neither blocks nor runs into its timeout
$node->safe_psql('db_a', 'ALTER SYSTEM SET keyedstate.step_timeout = 1000; SELECT pg_reload_conf()');
$node->safe_psql('db_a', 'INSERT INTO ev (k, v) VALUES (6, 6)');
ks_sync($node, 'db_a', 'ev_sum', '60s');
my $reindex = $node->background_psql('db_a');
$reindex->query_safe('BEGIN; REINDEX INDEX ev_pkey');
$node->safe_psql('db_a', 'CREATE ROLE regress_reindex; GRANT SELECT ON ev TO regress_reindex');
ok(!ks_wait_for($node, 'db_a', q{SELECT state = 'failed' FROM keyedstate.status WHERE name = 'ev_sum'}, 7),
	'an offset index held by REINDEX for seven step timeouts: the aggregation does not fail');
$reindex->query_safe('COMMIT');
$reindex->quit;
$node->safe_psql('db_a', 'INSERT INTO ev (k, v) VALUES (6, 6)');
ks_sync($node, 'db_a', 'ev_sum', '60s');
is(ks_mismatches($node, 'db_a', 'SELECT k, s FROM ev_sum', 'SELECT k, sum(v) FROM ev GROUP BY k'), '0',
	'... and once the REINDEX is done it is exact');
$node->safe_psql('db_a', 'ALTER SYSTEM RESET keyedstate.step_timeout; SELECT pg_reload_conf()');

# recovery is keyedstate's own work: an owner whose statement_timeout is
# far below the time it takes to load her keys still gets her aggregation
# back after a restart (only the replayed user code is timed, key by key;
# 50 ms, not less: a step of one row must not outlast it on a loaded machine)
$node->safe_psql('db_a', q{
CREATE ROLE regress_quick;
ALTER ROLE regress_quick SET statement_timeout = '50ms';
CREATE SCHEMA quick AUTHORIZATION regress_quick;
SET ROLE regress_quick;
CREATE TABLE quick.ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO quick.ev (k, v) SELECT g % 2000, g % 7 FROM generate_series(1, 300000) g;
SELECT keyedstate.create_aggregation('quick.n', 'SELECT k, count(*) AS n, string_agg(v::text, '''') AS vs FROM quick.ev GROUP BY k');
RESET ROLE;
});
ks_sync($node, 'db_a', 'quick.n', '5 min');
$node->safe_psql('db_a', q{SELECT keyedstate.checkpoint('quick.n')});
# a load is bounded by keyedstate.step_timeout alone: with cold caches
# after a restart, reading the catalog to load outlasted a statement_timeout
# of a few milliseconds, which failed the aggregation (review robustness 4, F3)
$node->safe_psql('db_a', q{ALTER ROLE regress_quick SET statement_timeout = '1ms'});
$node->restart;
ok(ks_wait_for($node, 'db_a', q{SELECT state <> 'starting' FROM keyedstate.status WHERE name = 'quick.n'}, 120)
	&& ks_state($node, 'db_a', 'quick.n') eq 'running',
	'an owner with a 1 ms statement_timeout: her aggregation loads after a restart')
  or diag($node->safe_psql('db_a', q{SELECT state, error FROM keyedstate.status WHERE name = 'quick.n'}));
$node->safe_psql('db_a', q{ALTER ROLE regress_quick SET statement_timeout = '50ms'});
$node->safe_psql('db_a', 'INSERT INTO quick.ev (k, v) VALUES (1, 1)');
ks_sync($node, 'db_a', 'quick.n', '5 min');
is(ks_state($node, 'db_a', 'quick.n'), 'running', 'an owner with a 50 ms statement_timeout: her 2,000 keys of 150 replayed rows each recover after a restart');
is(ks_mismatches($node, 'db_a', 'SELECT k, n, vs FROM quick.n', q{SELECT k, count(*), string_agg(v::text, '' ORDER BY id) FROM quick.ev GROUP BY k}), '0',
	'... exact');
$node->safe_psql('db_a', q{SELECT keyedstate.drop_aggregation('quick.n'); DROP SCHEMA quick CASCADE});

# DROP EXTENSION stops the worker of that database
$node->safe_psql('db_b', 'DROP EXTENSION keyedstate CASCADE');
ks_wait_for($node, 'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND datname = 'db_b'",
	$PostgreSQL::Test::Utils::timeout_default)
  or die 'worker of db_b did not stop';
$node->safe_psql('postgres', 'DROP DATABASE db_b');
pass('the worker stops with DROP EXTENSION and the database can be dropped');

# a template database gets no worker: creating an aggregation there warns,
# and status says why it does not run; the databases made from it run
# their copies (review DBA 9, D9-3)
$node->safe_psql('postgres', 'CREATE DATABASE db_tpl IS_TEMPLATE true');
$node->safe_psql('db_tpl', q{CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int);
INSERT INTO ev (k) SELECT g % 4 FROM generate_series(1, 100) g});
($ret, $out, $err) = $node->psql('db_tpl', q{SELECT keyedstate.create_aggregation('tpl_n', 'SELECT k, count(*) AS n FROM ev GROUP BY k')});
like($err, qr/WARNING:  aggregation public.tpl_n will not run: database "db_tpl" is a template/,
	'an aggregation created in a template database warns that it will not run there');
is($node->safe_psql('db_tpl', q{SELECT state || ': ' || error FROM keyedstate.status WHERE name = 'tpl_n'}),
	'starting: database "db_tpl" is a template, where keyedstate runs no worker', '... and status says why');
# a sync or a read there fails at once, saying why (they waited their
# whole timeout: newuser review 1, F1)
my $t0 = time();
($ret, $out, $err) = $node->psql('db_tpl', q{SELECT keyedstate.sync('tpl_n', '20 s')});
like($err, qr/ERROR:  aggregation public.tpl_n does not run: database "db_tpl" is a template/, '... a sync there fails, saying why');
($ret, $out, $err) = $node->psql('db_tpl', q{SELECT * FROM tpl_n});
like($err, qr/ERROR:  aggregation public.tpl_n does not run: database "db_tpl" is a template/, '... and a read');
ok(time() - $t0 < 8, '... at once');
$node->safe_psql('postgres', 'CREATE DATABASE db_from_tpl TEMPLATE db_tpl');
ks_sync($node, 'db_from_tpl', 'tpl_n');
is($node->safe_psql('db_from_tpl', q{SELECT sum(n) FROM tpl_n}), '100', '... while a database made from it runs its copy');
$node->safe_psql('postgres', 'DROP DATABASE db_from_tpl');
$node->safe_psql('postgres', 'ALTER DATABASE db_tpl IS_TEMPLATE false');
$node->safe_psql('postgres', 'DROP DATABASE db_tpl');

# the probe runs without the database's settings: a role set with ALTER
# DATABASE made it fail, and a database the file did not list (after a
# pg_upgrade, a promotion) was never found (re-review today 51, F1)
$node->safe_psql('postgres', 'CREATE DATABASE db_role');
$node->safe_psql('db_role', q{CREATE EXTENSION keyedstate; CREATE ROLE regress_db_role_r;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int); INSERT INTO ev (k) VALUES (1), (1), (2);
SELECT keyedstate.create_aggregation('r_n', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
SELECT keyedstate.sync('r_n');
ALTER DATABASE db_role SET role = 'regress_db_role_r';});
# (and one whose create_aggregation() is prepared: the probe counts the
# prepared transaction as work, re-review today 54, F1)
$node->safe_psql('postgres', 'CREATE DATABASE db_prep');
$node->safe_psql('db_prep', q{CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int); INSERT INTO ev (k) VALUES (1), (2), (2);
BEGIN; SELECT keyedstate.create_aggregation('p_n', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
PREPARE TRANSACTION 'db_prep_p';});
my %unlisted = map { $_ => 1 } split /\n/, $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname IN ('db_role', 'db_prep')});
$node->stop;
my $dbfile = $node->data_dir . '/keyedstate.databases';
my @listed = grep { $_ ne '' && !$unlisted{$_} } split /\s+/, slurp_file($dbfile);
open(my $dbfh, '>', $dbfile) or die "cannot write $dbfile: $!";
print $dbfh map { "$_\n" } @listed;
close($dbfh);
$node->start;
$node->safe_psql('db_role', q{SET ROLE NONE; INSERT INTO ev (k) VALUES (2)});
($ret, $out, $err) = $node->psql('db_role', q{SET ROLE NONE; SELECT keyedstate.sync('r_n', '60 s'); SELECT string_agg(k || ':' || n, ',' ORDER BY k) FROM r_n});
is($out, "4\n1:2,2:2", 'a database with a role set, not listed in the file, is found by the probe and runs') or diag($err);
$node->safe_psql('db_prep', q{COMMIT PREPARED 'db_prep_p'});
($ret, $out, $err) = $node->psql('db_prep', q{SELECT keyedstate.sync('p_n', '60 s'); SELECT string_agg(k || ':' || n, ',' ORDER BY k) FROM p_n});
is($out, "3\n1:1,2:2", '... and so is one whose create_aggregation() was prepared before the restart, once committed') or diag($err);
$node->safe_psql('postgres', 'DROP DATABASE db_role; DROP DATABASE db_prep; DROP ROLE regress_db_role_r');

# database slots (64) are for databases with work: a rolled-back
# create_aggregation() gives its database's slot back, and the probes after
# a restart take none for a database with keyedstate and nothing else (user
# review 50, F1: such databases took slots for good, and 64 of them refused
# every new aggregation of the server)
$node->safe_psql('postgres', 'CREATE DATABASE db_bare');
$node->safe_psql('db_bare', q{CREATE EXTENSION keyedstate; CREATE TABLE ev (id bigserial PRIMARY KEY, k int); INSERT INTO ev (k) VALUES (1), (2), (2)});
my @bare = map { "db_bare$_" } (1 .. 66);
$node->safe_psql('postgres', "CREATE DATABASE $_ TEMPLATE db_bare") for @bare;
# (no background worker slot free: no worker starts to find the database
# empty and let its slot go, as the reviewer's server, whose workers filled
# max_worker_processes)
$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$node->restart;
my @refused;
for my $db (@bare)
{
	($ret, $out, $err) = $node->psql($db, q{BEGIN; SELECT keyedstate.create_aggregation('bare_n', 'SELECT k, count(*) AS n FROM ev GROUP BY k'); ROLLBACK;});
	push @refused, "$db: $err" if $ret != 0;
}
is(scalar(@refused), 0, 'a rolled-back create_aggregation gives its database slot back (66 databases)')
  or diag(join("\n", @refused[0 .. 2]));
$node->append_conf('postgresql.conf', "max_worker_processes = 16\n");
$node->restart;
# (the launcher probes each database once, one at a time: until none has run for 2 s)
my $quiet = 0;
my $probes_deadline = time() + 120;
while ($quiet < 10 && time() < $probes_deadline)
{
	sleep(0.2);
	$quiet = $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'keyedstate probe'}) eq '0' ? $quiet + 1 : 0;
}
for my $db ('db_bare65', 'db_bare66')
{
	($ret, $out, $err) = $node->psql($db, q{SELECT keyedstate.create_aggregation('bare_n', 'SELECT k, count(*) AS n FROM ev GROUP BY k'); SELECT keyedstate.sync('bare_n', '30 s'); SELECT string_agg(k || ':' || n, ',' ORDER BY k) FROM bare_n});
	is($out, "\n3\n1:1,2:2", "after a restart, $db (of 68 with keyedstate installed) gets a slot and runs") or diag($err);
}
$node->stop;

# without shared_preload_libraries
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION keyedstate');
is($ret, 0, 'the extension installs without the preload');
like($err, qr/WARNING:  keyedstate is not loaded\nDETAIL:  .*\nHINT:  Add keyedstate to shared_preload_libraries/,
	'... and says at once that nothing runs until it is preloaded (user review 50, F7)');
$plain->safe_psql('postgres', 'CREATE TABLE ev (id bigserial PRIMARY KEY, k int)');
($ret, $out, $err) = $plain->psql('postgres',
	"SELECT keyedstate.create_aggregation('x', 'SELECT k, count(*) FROM ev GROUP BY k')");
like($err, qr/keyedstate is not loaded/, 'functions need the preload');
like($err, qr/shared_preload_libraries/, 'and the hint names the setting');
$plain->safe_psql('postgres', 'INSERT INTO ev (k) VALUES (1)');
pass('inserts into tables work without the preload');
$plain->stop;

done_testing();
