# Crash recovery: concurrent writers, the postmaster killed with SIGKILL
# five times, the worker killed, an immediate shutdown, a clean shutdown.
# After each restart the aggregation resumes by itself; at the end the view
# equals the plain GROUP BY exactly.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep);

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'keyedstate'
restart_after_crash = on
max_worker_processes = 16
keyedstate.naptime = 100
});
$node->start;

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
my $mismatch_sql = "SELECT count(*) FROM ((SELECT * FROM ev_stats EXCEPT $oracle)
					UNION ALL ($oracle EXCEPT SELECT * FROM ev_stats)) d";

my $script = $node->basedir . '/insert.sql';
open(my $fh, '>', $script) or die;
print $fh q{INSERT INTO ev (k, v, n, t)
SELECT (random() * 50)::int, (random() * 1000000)::bigint, round((random() * 100)::numeric, 2), substr(md5(random()::text), 1, 6)
  FROM generate_series(1, 20);
};
close($fh);

# Start concurrent writers for a while; they die with the server.
sub start_load
{
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	return IPC::Run::start(
		[ 'pgbench', '-n', '-c', '8', '-T', $seconds, '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
}

# Start again once the killed server's orphaned processes have exited.
sub restart
{
	for (1 .. 100)
	{
		return if $node->start(fail_ok => 1);
		# a failed start leaves the stale pid behind in the node object
		$node->{_pid} = undef;
		sleep(0.2);
	}
	die "server did not restart";
}

# Wait until the aggregation runs again after a restart.
sub wait_running
{
	$node->poll_query_until('postgres',
		"SELECT state = 'running' FROM keyedstate.status WHERE name = 'ev_stats'")
	  or die "aggregation did not resume";
}

# Sync and report how many rows were re-read since the last recovery.
sub sync_and_replayed
{
	$node->safe_psql('postgres', "SELECT keyedstate.sync('ev_stats', '2 min')");
	return $node->safe_psql('postgres',
		"SELECT rows_replayed FROM keyedstate.status WHERE name = 'ev_stats'");
}

my @replayed;

# five SIGKILLs of the postmaster during the load, at varying moments
for my $round (1 .. 5)
{
	my $h = start_load(30);
	sleep(1 + rand(2));
	$node->kill9;
	$h->kill_kill;
	$h->finish;
	restart();
	wait_running();
	push @replayed, "postmaster kill $round: " . sync_and_replayed();
}

# SIGKILL of the worker alone: restart_after_crash brings everything back
{
	my $h = start_load(30);
	sleep(2);
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'keyedstate worker'");
	ok($pid =~ /^\d+$/, 'worker is running');
	PostgreSQL::Test::Utils::system_log('pg_ctl', 'kill', 'KILL', $pid);
	$h->kill_kill;
	$h->finish;
	$node->poll_query_until('postgres', 'SELECT true') or die;
	wait_running();
	push @replayed, 'worker kill: ' . sync_and_replayed();
}

# immediate shutdown during the load
{
	my $h = start_load(30);
	sleep(2);
	$node->stop('immediate');
	$h->kill_kill;
	$h->finish;
	$node->start;
	wait_running();
	push @replayed, 'immediate stop: ' . sync_and_replayed();
}

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM ev');
ok($rows > 1000, "writers inserted rows ($rows)");
is($node->safe_psql('postgres', $mismatch_sql), '0', 'view equals the GROUP BY oracle after seven crashes');

# a clean stop checkpoints first: nothing is replayed afterwards
$node->stop('fast');
$node->start;
wait_running();
my $clean = sync_and_replayed();
push @replayed, "clean stop: $clean";
is($clean, '0', 'no rows replayed after a clean stop');
is($node->safe_psql('postgres', $mismatch_sql), '0', 'view equals the oracle after a clean restart');

# point lookups still work on the recovered state
is($node->safe_psql('postgres', "SELECT c FROM ev_stats WHERE k = 7"),
   $node->safe_psql('postgres', "SELECT count(*) FROM ev WHERE k = 7"), 'point lookup');

note "rows replayed after each restart: " . join('; ', @replayed);
note "rows compared: $rows";

$node->stop;
done_testing();
