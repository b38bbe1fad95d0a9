# A crash loop: an aggregation whose state outgrows the memory the kernel
# grants is killed, the whole server restarts, its worker loads it again and
# is killed again, for ever (review robustness2, F6: 112 restarts in 45 s).
# A crash of a worker that died on its own (not ended by the postmaster's
# SIGQUIT) is charged to its aggregation holding the most memory (64 MB at
# least); after three, it is stopped with an error instead of being loaded
# again, and resume() runs it again.  Kills of a worker running only small
# aggregations (what every other test does) are charged to none, and so
# are kills of a backend, whatever the workers hold (security review 21,
# F2: a role's own session killed three times stopped another owner's
# aggregation).  Kills of the worker stand in for the OOM killer: the same
# SIGKILL.  A worker dying of a fault (SIGSEGV) in a step of an aggregation
# charges that one, whatever it holds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('crashloop');
my $db = 'postgres';
my $mb = 1024 * 1024;

$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE small (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('small_n', 'SELECT k, count(*) AS n FROM small GROUP BY k');
INSERT INTO small (k) SELECT g % 100 FROM generate_series(1, 1000) g;
});
ks_sync($node, $db, 'small_n');

# The number of crashes the server log charges to an aggregation.
sub charged
{
	my @lines = slurp_file($node->logfile) =~ /LOG:  keyedstate: the crash is charged to aggregation/g;
	return scalar @lines;
}

# three kills with small aggregations only: nothing is charged, nothing stopped
for my $round (1 .. 3)
{
	ks_kill_worker($node, $db);
	ok(ks_wait_state($node, $db, 'small_n', 'running'), "small aggregation, kill $round: running again");
}
is(charged(), 0, '... and no crash was charged to it');

# an aggregation of 2 keys of 40 MB each (string_agg's state grows by doubling: 128 MB)
$node->safe_psql($db, q{
CREATE TABLE big (id bigserial PRIMARY KEY, k int NOT NULL, t text NOT NULL);
SELECT keyedstate.create_aggregation('big_s', 'SELECT k, string_agg(t, '','') AS s FROM big GROUP BY k');
INSERT INTO big (k, t) SELECT g % 2, repeat(md5(g::text), 32) FROM generate_series(1, 80000) g;
});
my $big_loaded = qq{SELECT state = 'running' AND memory_bytes >= 64 * $mb FROM keyedstate.status WHERE name = 'big_s'};

# three kills of a backend (a role's own session): charged to none
for my $round (1 .. 3)
{
	ok(ks_wait_for($node, $db, $big_loaded, 120), "backend kill $round: the big aggregation holds 64 MB or more");
	my $launcher = ks_launcher_pid($node);
	my $sleeper = $node->background_psql($db, on_error_stop => 0);
	my $pid = $sleeper->query_safe('SELECT pg_backend_pid()');
	PostgreSQL::Test::Utils::system_log('pg_ctl', 'kill', 'KILL', $pid);
	ok(ks_wait_for($node, 'postgres', qq{SELECT pid <> $launcher FROM pg_stat_activity WHERE backend_type = 'keyedstate launcher'}, 60),
		"backend kill $round: the server went through a crash restart");
	eval { $sleeper->quit };
}
is(charged(), 0, '... and no crash of a backend was charged to the aggregations');

for my $round (1 .. 3)
{
	ok(ks_wait_for($node, $db, $big_loaded, 120), "crash $round: the big aggregation holds 64 MB or more")
	  or diag($node->safe_psql($db, q{SELECT state, memory_bytes, error FROM keyedstate.status WHERE name = 'big_s'}));
	ks_kill_worker($node, $db, 'big_s');
	ok(ks_wait_for($node, $db, 'SELECT true', 30), "crash $round: the server is back");
	is(charged(), $round, "crash $round: charged to it");
	like(slurp_file($node->logfile), qr/held \d+ MB of memory \(crash $round of 3 that stop it\)/,
		"crash $round: the log says how many more it takes");
}
ok(ks_wait_state($node, $db, 'big_s', 'failed'), 'after three crashes the big aggregation is stopped, not loaded again');
is($node->safe_psql($db, q{SELECT error FROM keyedstate.status WHERE name = 'big_s'}),
	'aggregation public.big_s was stopped after the server crashed 3 times while it held the most memory',
	'... and status says why');
my ($ret, $out, $err) = $node->psql($db, q{SELECT count(*) FROM big_s});
like($err, qr/HINT:  Bound its memory with memory_limit \(keyedstate.alter_aggregation\) or keyedstate.max_state_memory, then call keyedstate.resume\(\)/,
	'... and a read of it says what to do');
ok(ks_wait_state($node, $db, 'small_n', 'running'), '... while the small one runs');

# a crash charged to none (the big one is stopped, its memory given back) keeps it stopped
ks_kill_worker($node, $db);
ok(ks_wait_state($node, $db, 'small_n', 'running'), 'another crash: the small aggregation runs again');
ok(ks_holds(3, sub { ks_state($node, $db, 'big_s') eq 'failed' }), '... and the big one stays stopped');
is(charged(), 3, '... no crash charged to anything');

# resume() runs it again, exact
$node->safe_psql($db, q{SELECT keyedstate.resume('big_s')});
ks_sync($node, $db, 'big_s', '2 min');
is(ks_mismatches($node, $db, q{SELECT k, md5(s) FROM big_s},
	q{SELECT k, md5(string_agg(t, ',' ORDER BY id)) FROM big GROUP BY k}), '0',
	'resumed, it runs again and equals the GROUP BY');
ks_sync($node, $db, 'small_n');
is(ks_mismatches($node, $db, q{SELECT k, n FROM small_n}, q{SELECT k, count(*) FROM small GROUP BY k}), '0',
	'the small one is exact after its four crashes');

# A worker dying of a fault (SIGSEGV: a bug in an aggregate's C code, or in
# keyedstate's, met at every load) in a step of an aggregation: the crash
# is charged to that one, whatever memory it holds, and three stop it
# (exactness review 21, F1: 205 server restarts in 40 s of a window whose
# pane states a combine function had freed).  The signal is sent while the
# step sleeps in the query's function.
$node->safe_psql($db, q{
SELECT keyedstate.drop_aggregation('big_s');
CREATE FUNCTION slow_k(k int) RETURNS int IMMUTABLE LANGUAGE plpgsql
	AS $$ BEGIN PERFORM pg_sleep(0.005); RETURN k; END $$;
CREATE TABLE fault (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO fault (k) SELECT g % 10 FROM generate_series(1, 3000) g;
SELECT keyedstate.create_aggregation('fault_n', 'SELECT slow_k(k) AS k, count(*) AS n FROM fault GROUP BY 1',
	checkpoint_interval => '1 hour');
});
my $sleeping = q{SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'keyedstate worker' AND wait_event = 'PgSleep' LIMIT 1};
# the pid of the worker while it sleeps between rows, asked again until then (it
# sleeps most of a step: a second query after one that saw it asleep found it awake)
sub sleeping_pid
{
	my $deadline = time() + 60;
	my $pid = '';
	$pid = $node->safe_psql($db, $sleeping) while $pid eq '' && time() < $deadline;
	return $pid;
}
for my $round (1 .. 3)
{
	my $pid = sleeping_pid();
	ok($pid ne '', "fault $round: the worker runs a step of fault_n");
	ks_kill_worker($node, $db, undef, 'SEGV', $pid);
}
is(charged(), 6, 'the three faults were charged');
ok(ks_wait_state($node, $db, 'fault_n', 'failed'), 'after three faults in its steps the aggregation is stopped');
like($node->safe_psql($db, q{SELECT error FROM keyedstate.status WHERE name = 'fault_n'}),
	qr/^aggregation public.fault_n was stopped after its worker crashed 3 times in a step of it/,
	'... saying why');
ok(ks_wait_state($node, $db, 'small_n', 'running'), '... while the small one runs');
$node->safe_psql($db, q{SELECT keyedstate.resume('fault_n')});
ks_sync($node, $db, 'fault_n', '2 min');
is(ks_mismatches($node, $db, q{SELECT k, n FROM fault_n}, q{SELECT k, count(*) FROM fault GROUP BY k}), '0',
	'resumed, it equals the GROUP BY');

$node->stop;
done_testing();
