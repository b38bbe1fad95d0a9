# Shared helpers of keyedstate's TAP tests: a preloaded cluster, waits that
# poll a condition until a deadline (never a fixed sleep), and the oracle
# comparison of a live view with the same query run as a plain GROUP BY.
#
#	use FindBin;
#	use lib "$FindBin::Bin/../perl";
#	use KsTest;
package KsTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(ks_node ks_wait_for ks_mismatches ks_sync ks_worker_pid
  ks_kill_worker ks_wait_crash_restart ks_restart_after_crash ks_state ks_status ks_wait_state
  ks_sync_all ks_holds ks_script ks_pgbench ks_launcher_pid ks_behind_hider);

# A started cluster with keyedstate preloaded; $conf is appended to
# postgresql.conf after the defaults, so it can override them; %init goes
# to init (allows_streaming => 1 for a primary).  keyedstate.max_workers is
# 12: a worker for each owner of a test's aggregations (an owner beyond it
# waits for one).
sub ks_node
{
	my ($name, $conf, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'keyedstate'
max_worker_processes = 16
restart_after_crash = on
keyedstate.naptime = 100
keyedstate.max_workers = 12
} . ($conf // ''));
	$node->start;
	return $node;
}

# Poll $sql in database $db until it returns 't'; false after $seconds
# (default 60).
sub ks_wait_for
{
	my ($node, $db, $sql, $seconds) = @_;
	my $deadline = time() + ($seconds // 60);
	while (time() < $deadline)
	{
		# (while the server restarts after a crash, psql may exit before it
		# reads the query: IPC::Run then dies writing it, "Broken pipe", which
		# ended 019 once, two files running at a time)
		my ($ret, $out, $err) = (1, '', '');
		eval {
			local $SIG{PIPE} = 'IGNORE';
			($ret, $out, $err) = $node->psql($db, $sql);
		};
		return 1 if $ret == 0 && defined $out && $out eq 't';
		sleep(0.05);
	}
	return 0;
}

# Rows in which the result of $view_sql and $oracle_sql differ, counted
# both ways with EXCEPT ALL (so duplicated keys count too); $settings, if
# given, run first (SET enable_hashagg = off for keys chosen to share one
# hash, which flood PostgreSQL's own hash tables too).
sub ks_mismatches
{
	my ($node, $db, $view_sql, $oracle_sql, $settings) = @_;
	$settings //= '';
	my $n = $node->safe_psql($db, qq{$settings
SELECT count(*) FROM (($view_sql EXCEPT ALL $oracle_sql)
		UNION ALL ($oracle_sql EXCEPT ALL $view_sql)) d});
	# what differs, for the failure's report (a few rows of each side)
	Test::More::diag($node->safe_psql($db, qq{$settings
(SELECT 'view only' AS side, v.* FROM ($view_sql EXCEPT ALL $oracle_sql) v LIMIT 10)
UNION ALL
(SELECT 'oracle only', o.* FROM ($oracle_sql EXCEPT ALL $view_sql) o LIMIT 10)}))
	  if $n ne '0';
	return $n;
}

# A name race: a session holds $hider (a table that hides the real one on
# the search path $sql sets) ACCESS EXCLUSIVE; a new session runs $sql,
# whose last command must wait for that lock ($waits names that check);
# then the hider is dropped, so that the command goes on with the real
# table and leaves its session idle in its transaction ($then names that
# check).  Extra arguments go to background_psql (a role).  Returns the
# session and its pid.
sub ks_behind_hider
{
	my ($node, $db, $hider, $sql, $waits, $then, @params) = @_;
	my $holder = $node->background_psql($db, @params);
	$holder->query_safe("BEGIN; LOCK $hider IN ACCESS EXCLUSIVE MODE");
	my $session = $node->background_psql($db, @params);
	my $pid = $session->query_safe('SELECT pg_backend_pid()');
	$session->query_until(qr/behind_hider/, "\\echo behind_hider\n$sql\n");
	ok(ks_wait_for($node, $db, qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}, 30),
		$waits);
	$holder->query_safe("DROP TABLE $hider; COMMIT");
	$holder->quit;
	ok(ks_wait_for($node, $db, qq{SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE pid = $pid}, 30),
		$then);
	return ($session, $pid);
}

# keyedstate.sync() of an aggregation; returns the consumed offset.
sub ks_sync
{
	my ($node, $db, $name, $timeout) = @_;
	$timeout //= '2 min';
	return $node->safe_psql($db, "SELECT keyedstate.sync('$name', '$timeout')");
}

# keyedstate.sync() of every aggregation of a database.
sub ks_sync_all
{
	my ($node, $db, $timeout) = @_;
	$timeout //= '2 min';
	$node->safe_psql($db,
		"SELECT keyedstate.sync(name, '$timeout') FROM keyedstate.aggregations");
	return;
}

# One column of an aggregation's row in keyedstate.status.
sub ks_status
{
	my ($node, $db, $name, $column) = @_;
	return $node->safe_psql($db,
		"SELECT $column FROM keyedstate.status WHERE name = '$name'");
}

# The state of an aggregation as keyedstate.status shows it.
sub ks_state
{
	my ($node, $db, $name) = @_;
	return ks_status($node, $db, $name, 'state');
}

# Poll until aggregation $name (every aggregation of $db if $name is undef)
# is in $state; false after $seconds (default: the test-suite timeout).
sub ks_wait_state
{
	my ($node, $db, $name, $state, $seconds) = @_;
	my $sql = defined $name
	  ? "SELECT state = '$state' FROM keyedstate.status WHERE name = '$name'"
	  : "SELECT bool_and(state = '$state') FROM keyedstate.status";
	return ks_wait_for($node, $db, $sql,
		$seconds // $PostgreSQL::Test::Utils::timeout_default);
}

# Poll $check (a sub) for $seconds: false as soon as it returns false, true
# if it held every time; for "this stays so", where waiting cannot end early.
sub ks_holds
{
	my ($seconds, $check) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		return 0 unless $check->();
		sleep(0.1);
	}
	return $check->() ? 1 : 0;
}

# Write $text to file $name in the node's base directory; returns its path
# (for pgbench scripts).
sub ks_script
{
	my ($node, $name, $text) = @_;
	my $path = $node->basedir . "/$name";
	open(my $fh, '>', $path) or die "cannot write $path: $!";
	print $fh $text;
	close($fh) or die "cannot write $path: $!";
	return $path;
}

# Start pgbench in the background against database $db with @args; returns
# the IPC::Run harness (finish or kill_kill it) and a reference to its
# stdout, filled once it has finished.
sub ks_pgbench
{
	my ($node, $db, @args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', @args, '-h', $node->host, '-p', $node->port, $db ],
		'>', \$out, '2>', \$err);
	return ($h, \$out);
}

# The pid of the keyedstate worker running an aggregation of a database
# (its first part), or of the database's first worker when no aggregation
# is named; '' if none runs.
sub ks_worker_pid
{
	my ($node, $db, $agg) = @_;
	return $node->safe_psql($db, qq{
SELECT pid FROM keyedstate.workers WHERE aggregation = '$agg' ORDER BY part LIMIT 1}) if defined $agg;
	return $node->safe_psql('postgres', qq{
SELECT pid FROM pg_stat_activity
 WHERE backend_type = 'keyedstate worker' AND datname = '$db' ORDER BY pid LIMIT 1});
}

# The pid of the keyedstate launcher, or '' if none runs.
sub ks_launcher_pid
{
	my ($node) = @_;
	my ($ret, $out) = $node->psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'keyedstate launcher'");
	return $ret == 0 ? $out : '';
}

# SIGKILL the worker of a database (the one running aggregation $agg, if
# named; or the process $pid, with a signal $signal, if given), then wait
# until the server has gone through the crash restart (restart_after_crash
# restarts everything): a connection alone can succeed before the
# postmaster noticed the death, so wait for a launcher other than the one
# before the kill.
sub ks_kill_worker
{
	my ($node, $db, $agg, $signal, $pid) = @_;
	$pid //= ks_worker_pid($node, $db, $agg);
	my $launcher = ks_launcher_pid($node);
	die "no keyedstate worker in $db" unless $pid =~ /^\d+$/;
	if (defined $signal)
	{
		kill($signal, $pid) or die "cannot signal $pid";
	}
	else
	{
		PostgreSQL::Test::Utils::system_log('pg_ctl', 'kill', 'KILL', $pid);
	}
	ks_wait_crash_restart($node, $launcher);
	return $pid;
}

# Wait for the server's restart after a crash, told by a launcher other than
# $launcher (ks_launcher_pid before the crash), and for it to accept connections.
sub ks_wait_crash_restart
{
	my ($node, $launcher) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my $now = eval {
			local $SIG{PIPE} = 'IGNORE';
			ks_launcher_pid($node);
		} // '';
		last if $now =~ /^\d+$/ && $now ne $launcher;
		sleep(0.1);
	}
	ks_restart_after_crash($node);
}

# Wait until a crashed server accepts connections again, or start it again
# after a kill of the postmaster.
sub ks_restart_after_crash
{
	my ($node, $start) = @_;
	if ($start)
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
	# psql may die of a broken pipe while the server restarts: try again until the deadline
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my $up = eval {
			local $SIG{PIPE} = 'IGNORE';
			my ($ret, $out) = $node->psql('postgres', 'SELECT true');
			$ret == 0 && $out eq 't';
		};
		return if $up;
		sleep(0.1);
	}
	die 'server did not come back';
}

1;
