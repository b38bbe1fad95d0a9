# Crash recovery: concurrent writers, the postmaster killed with SIGKILL
# five times, the worker killed, an immediate shutdown, a clean shutdown.
# After each restart the aggregation resumes by itself; at the end the view
# equals the plain GROUP BY exactly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $node = ks_node('crash');

$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v bigint NOT NULL, n numeric NOT NULL, t text);
SELECT keyedstate.create_aggregation('ev_stats',
	'SELECT k, count(*) AS c, sum(v) AS s, sum(n) AS sn, min(v) AS lo, max(v) AS hi,
	        avg(n) AS an, string_agg(t, '','') AS ts
	   FROM ev GROUP BY k',
	checkpoint_interval => '300ms');
});

my $oracle = q{SELECT k, count(*), sum(v), sum(n), min(v), max(v), avg(n), string_agg(t, ',' ORDER BY id)
				 FROM ev GROUP BY k};

my $script = ks_script($node, 'insert.sql', q{INSERT INTO ev (k, v, n, t)
SELECT (random() * 50)::int, (random() * 1000000)::bigint, round((random() * 100)::numeric, 2), substr(md5(random()::text), 1, 6)
  FROM generate_series(1, 20);
});

# Start 8 concurrent writers for up to 30 s; they die with the server.
sub start_load
{
	my ($h) = ks_pgbench($node, 'postgres', '-c', '8', '-T', '30', '-f', $script);
	return $h;
}

# Stop the writers of start_load (the server they wrote to is gone).
sub stop_load
{
	my ($h) = @_;
	$h->kill_kill;
	$h->finish;
}

# Wait until the aggregation runs again after a restart, sync it, and
# report how many rows were re-read since the last recovery.
sub resumed_and_replayed
{
	ks_wait_state($node, 'postgres', 'ev_stats', 'running')
	  or die "aggregation did not resume";
	ks_sync($node, 'postgres', 'ev_stats');
	return ks_status($node, 'postgres', 'ev_stats', 'rows_replayed');
}

my @replayed;

# five SIGKILLs of the postmaster during the load, at varying moments
for my $round (1 .. 5)
{
	my $h = start_load();
	# a load duration, not a wait: the crash comes after 1 to 3 s of writes
	sleep(1 + rand(2));
	$node->kill9;
	stop_load($h);
	ks_restart_after_crash($node, 1);
	push @replayed, "postmaster kill $round: " . resumed_and_replayed();
}

# SIGKILL of the worker alone: restart_after_crash brings everything back
{
	my $h = start_load();
	# a load duration, not a wait: the worker dies after 2 s of writes
	sleep(2);
	ok(ks_worker_pid($node, 'postgres') =~ /^\d+$/, 'worker is running');
	ks_kill_worker($node, 'postgres');
	stop_load($h);
	push @replayed, 'worker kill: ' . resumed_and_replayed();
}

# immediate shutdown during the load
{
	my $h = start_load();
	# a load duration, not a wait: the server stops after 2 s of writes
	sleep(2);
	$node->stop('immediate');
	stop_load($h);
	$node->start;
	push @replayed, 'immediate stop: ' . resumed_and_replayed();
}

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM ev');
ok($rows > 1000, "writers inserted rows ($rows)");
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_stats', $oracle), '0',
	'view equals the GROUP BY oracle after seven crashes');

# a clean stop checkpoints first: nothing is replayed afterwards
$node->stop('fast');
$node->start;
my $clean = resumed_and_replayed();
push @replayed, "clean stop: $clean";
is($clean, '0', 'no rows replayed after a clean stop');
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_stats', $oracle), '0',
	'view equals the oracle after a clean restart');

# point lookups still work on the recovered state
is($node->safe_psql('postgres', "SELECT c FROM ev_stats WHERE k = 7"),
   $node->safe_psql('postgres', "SELECT count(*) FROM ev WHERE k = 7"), 'point lookup');

note "rows replayed after each restart: " . join('; ', @replayed);
note "rows compared: $rows";

$node->stop;
done_testing();
