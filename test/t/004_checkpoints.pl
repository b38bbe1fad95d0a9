# Incremental checkpoints: a checkpoint writes only the keys that changed,
# a full checkpoint replaces the deltas once they outgrow it, and recovery
# from a full checkpoint plus deltas (newest version of each key wins) is
# exact, for every way a state is made durable (value, serialize function,
# replayed inputs).  Checkpoints are written in slices by the steps after
# their capture while rows go on being consumed: a kill in the middle of
# one, with writers changing captured keys, recovers exactly and leaves no
# chunk of the unfinished checkpoint behind.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('ckpt');

$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL, n numeric NOT NULL);
INSERT INTO ev (k, v, n) SELECT g % 2000, g, g / 7.0 FROM generate_series(1, 20000) g;
SELECT keyedstate.create_aggregation('ev_stats',
	'SELECT k, count(*) AS c, sum(v) AS s, avg(n) AS an, string_agg(v::text, '','' ORDER BY id) AS vs,
			stddev_pop(n) AS sn, var_samp(v) AS vv
	   FROM ev GROUP BY k',
	checkpoint_interval => '1 hour');
SELECT keyedstate.sync('ev_stats');
SELECT keyedstate.checkpoint('ev_stats');
});

my $oracle = q{SELECT k, count(*), sum(v), avg(n), string_agg(v::text, ',' ORDER BY id), stddev_pop(n), var_samp(v)
				 FROM ev GROUP BY k};

# Wait until every aggregation runs again after a restart, then sync them.
sub wait_synced
{
	ks_wait_state($node, 'postgres', undef, 'running') or die "aggregations did not resume";
	ks_sync_all($node, 'postgres');
}
my $rows_sql = q{SELECT count(DISTINCT checkpoint_id) || ' ' || bool_or(is_full)::int || ' ' || sum(nkeys)
				   FROM keyedstate_internal.state};

is($node->safe_psql('postgres', $rows_sql), '1 1 2000', 'the first checkpoint is full and holds every key');

# 5% of the keys change between checkpoints: each checkpoint adds a delta of 100 keys
my $deltas_seen = 0;
my $full_again = 0;
for my $round (1 .. 40)
{
	my $first = ($round * 100) % 2000;
	$node->safe_psql('postgres', qq{
INSERT INTO ev (k, v, n) SELECT $first + g, $round, $round FROM generate_series(0, 99) g;
SELECT keyedstate.sync('ev_stats');
SELECT keyedstate.checkpoint('ev_stats');
});
	my $last = $node->safe_psql('postgres',
		'SELECT sum(nkeys) || \' \' || bool_and(is_full)::int FROM keyedstate_internal.state
		  WHERE checkpoint_id = (SELECT max(checkpoint_id) FROM keyedstate_internal.state)');
	$deltas_seen++ if $last eq '100 0';
	$full_again++ if $last eq '2000 1';
}
ok($deltas_seen >= 30, "checkpoints write only the changed keys ($deltas_seen deltas of 100 keys)");
ok($full_again >= 1, "deltas that outgrow the full checkpoint are replaced by a new one ($full_again times)");
# a full checkpoint's older rows are deleted by the steps after its commit, a few a step
ok(ks_wait_for($node, 'postgres', q{SELECT count(*) = 0 FROM keyedstate_internal.state
	WHERE checkpoint_id < (SELECT max(checkpoint_id) FROM keyedstate_internal.state WHERE is_full)}, 60),
	'the rows a full checkpoint made obsolete are deleted after it, idle or not');
# the longest pause of consumption a checkpoint caused is part of its duration
is($node->safe_psql('postgres', q{SELECT last_checkpoint_pause_ms > 0 AND last_checkpoint_pause_ms <= last_checkpoint_ms
	FROM keyedstate.status WHERE name = 'ev_stats'}), 't', 'status shows the longest pause of the last checkpoint, within its duration');
my ($ids) = split(/ /, $node->safe_psql('postgres', $rows_sql));
ok($ids < 41 - $full_again, "older checkpoints are deleted ($ids checkpoints kept of 41)");

# an aggregation whose HAVING hides keys: hidden keys are checkpointed
# without a published row, and stay hidden (or appear) correctly after recovery
$node->safe_psql('postgres', q{SELECT keyedstate.create_aggregation('ev_having',
	'SELECT k, count(*) AS c, max(v) AS hi FROM ev GROUP BY k HAVING sum(v) % 3 = 0');
SELECT keyedstate.sync('ev_having');
SELECT keyedstate.checkpoint('ev_having');});
my $having_oracle = q{SELECT k, count(*), max(v) FROM ev GROUP BY k HAVING sum(v) % 3 = 0};
my $hidden = $node->safe_psql('postgres',
	"SELECT 2000 - count(*) FROM ev_having");
ok($hidden > 0 && $hidden < 2000, "HAVING hides some keys ($hidden of 2000)");

# rows after the last checkpoint are replayed; the recovered view is exact
$node->safe_psql('postgres', q{INSERT INTO ev (k, v, n) SELECT g, 7, 7 FROM generate_series(0, 99) g;
SELECT keyedstate.sync('ev_stats');});
$node->stop('immediate');
$node->start;
wait_synced();
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_stats', $oracle), '0',
	'recovery from a full checkpoint and deltas is exact');
is(ks_status($node, 'postgres', 'ev_stats', 'rows_replayed'), '100',
	'only the rows after the last checkpoint are replayed');
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_having', $having_oracle), '0',
	'recovered keys hidden by HAVING stay hidden, the others visible');

# a clean stop checkpoints; recovering that is exact too, with nothing replayed
$node->safe_psql('postgres', q{INSERT INTO ev (k, v, n) SELECT g, 8, 8 FROM generate_series(0, 1999, 3) g;
SELECT keyedstate.sync('ev_stats');});
$node->restart;
# checkpoint() right after the start waits for the worker to take the
# aggregation up (it said "is not running" until then)
my ($ckret, $ckout, $ckerr) = $node->psql('postgres', q{SELECT keyedstate.checkpoint('ev_stats')});
is($ckret, 0, 'checkpoint() right after a restart waits for the worker and checkpoints') or diag($ckerr);
wait_synced();
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_stats', $oracle), '0',
	'recovery after a clean stop is exact');
is(ks_status($node, 'postgres', 'ev_stats', 'rows_replayed'), '0',
	'nothing is replayed after a clean stop');
is(ks_mismatches($node, 'postgres', 'SELECT * FROM ev_having', $having_oracle), '0',
	'HAVING is exact after a clean restart');
$node->safe_psql('postgres', "SELECT keyedstate.drop_aggregation('ev_having')");

# a clean stop in the middle of consuming a backlog (each row takes a
# millisecond) ends the step early and checkpoints what it consumed:
# still nothing is replayed, and the rest is consumed after the restart
$node->safe_psql('postgres', q{
CREATE FUNCTION slow_id(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
	'BEGIN PERFORM pg_sleep(0.001); RETURN $1; END';
CREATE TABLE slow_ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
SELECT keyedstate.create_aggregation('slow_stats',
	'SELECT k, count(*) AS c, sum(slow_id(v)) AS s FROM slow_ev GROUP BY k');
INSERT INTO slow_ev (k, v) SELECT g % 50, g FROM generate_series(1, 8000) g;
});
ok(ks_wait_for($node, 'postgres',
	q{SELECT rows_consumed > 500 FROM keyedstate.status WHERE name = 'slow_stats'}),
	'(precondition) the slow aggregation is consuming its backlog');
my $before = ks_status($node, 'postgres', 'slow_stats', 'rows_consumed');
$node->restart;
ok($before < 8000, "(precondition) the stop came in the middle of the backlog ($before of 8000 rows consumed)");
wait_synced();
is(ks_mismatches($node, 'postgres', 'SELECT * FROM slow_stats',
	'SELECT k, count(*), sum(v) FROM slow_ev GROUP BY k'), '0',
	'a clean stop in the middle of a backlog recovers exactly');
is(ks_status($node, 'postgres', 'slow_stats', 'rows_replayed'), '0',
	"nothing is replayed after a clean stop in the middle of a backlog ($before of 8000 consumed before it)");
$node->safe_psql('postgres', "SELECT keyedstate.drop_aggregation('slow_stats')");

# dropping an aggregation while its worker checkpoints every few
# milliseconds under inserts leaves no checkpoint rows behind
my $writer = $node->background_psql('postgres');
for my $i (1 .. 20)
{
	$node->safe_psql('postgres', q{SELECT keyedstate.create_aggregation('churn',
		'SELECT k, count(*) AS c FROM ev GROUP BY k', checkpoint_interval => '5ms')});
	$writer->query_safe(q{INSERT INTO ev (k, v, n) SELECT g % 2000, g, g FROM generate_series(1, 2000) g});
	$node->safe_psql('postgres', q{SELECT keyedstate.sync('churn')});
	$writer->query_safe(q{INSERT INTO ev (k, v, n) SELECT g % 2000, g, g FROM generate_series(1, 2000) g});
	$node->safe_psql('postgres', q{SELECT keyedstate.drop_aggregation('churn')});
}
$writer->quit;
is($node->safe_psql('postgres',
	'SELECT count(*) FROM keyedstate_internal.state WHERE aggregation_id NOT IN (SELECT id FROM keyedstate_internal.aggregation)'),
	'0', 'no checkpoint rows outlive their aggregation');

# a checkpoint of 300,000 keys takes a dozen slices; writers change keys
# it has captured but not written yet, and the worker is killed midway
$node->safe_psql('postgres', q{
CREATE TABLE big (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL, n numeric NOT NULL);
INSERT INTO big (k, v, n) SELECT g, g, g / 3.0 FROM generate_series(1, 300000) g;
SELECT keyedstate.create_aggregation('big_stats',
	'SELECT k, count(*) AS c, sum(v) AS s, avg(n) AS an, max(v) AS mx FROM big GROUP BY k',
	checkpoint_interval => '1 hour');
SELECT keyedstate.sync('big_stats', '5 min');
SELECT keyedstate.checkpoint('big_stats');
});
my $big_oracle = q{SELECT k, count(*), sum(v), avg(n), max(v) FROM big GROUP BY k};
my $uncommitted = q{SELECT count(*) FROM keyedstate_internal.state s JOIN keyedstate_internal.aggregation a ON a.id = s.aggregation_id
					 WHERE a.view = 'big_stats'::regclass AND s.checkpoint_id > a.checkpoint_id};
my $script = ks_script($node, 'touch.sql', q{\set key random(1, 300000)
INSERT INTO big (k, v, n) VALUES (:key, 1, 1.5);
});
my $inflight = 0;
for my $round (1 .. 3)
{
	$node->safe_psql('postgres', q{
INSERT INTO big (k, v, n) SELECT g, 2, 0.5 FROM generate_series(1, 300000) g;
SELECT keyedstate.sync('big_stats', '5 min');
SELECT keyedstate.alter_aggregation('big_stats', checkpoint_interval => '10 ms');
});
	my ($bench) = ks_pgbench($node, 'postgres', '-c', '2', '-T', '3', '-f', $script);
	# kill the worker while the checkpoint's chunks are written but not committed
	if (ks_wait_for($node, 'postgres', "SELECT ($uncommitted) > 0", 30))
	{
		$inflight++;
		ks_kill_worker($node, 'postgres');
	}
	$bench->finish;
	$node->safe_psql('postgres', q{SELECT keyedstate.alter_aggregation('big_stats', checkpoint_interval => '1 hour')});
	ks_wait_state($node, 'postgres', 'big_stats', 'running', 60)
	  or die 'big_stats did not resume: ' . ks_status($node, 'postgres', 'big_stats', q{state || ' ' || coalesce(error, '')});
	ks_sync($node, 'postgres', 'big_stats', '5 min');
	is(ks_mismatches($node, 'postgres', 'SELECT * FROM big_stats', $big_oracle), '0',
		"round $round: exact after a kill in the middle of a checkpoint's slices");
	is($node->safe_psql('postgres', $uncommitted), '0', "round $round: the unfinished checkpoint's chunks are gone");
}
is($inflight, 3, 'every kill came while a checkpoint was being written');
$node->safe_psql('postgres', q{SELECT keyedstate.checkpoint('big_stats')});
$node->restart;
ks_wait_state($node, 'postgres', 'big_stats', 'running') or die 'big_stats did not resume';
ks_sync($node, 'postgres', 'big_stats', '5 min');
is(ks_mismatches($node, 'postgres', 'SELECT * FROM big_stats', $big_oracle), '0',
	'exact after the checkpoints completed and a clean restart');

# A DBA's VACUUM FULL (or CLUSTER, REINDEX, SET TABLESPACE) of keyedstate_internal.state
# or keyedstate_internal.cold holds an exclusive lock on it: checkpoints wait, by
# skipping their slices, while the steps go on consuming and publishing.
$node->safe_psql('postgres', q{SELECT keyedstate.alter_aggregation('big_stats', checkpoint_interval => '100 ms');
SELECT keyedstate.checkpoint('big_stats')});
for my $table ('keyedstate_internal.state', 'keyedstate_internal.cold', 'keyedstate_internal.state_pkey')
{
	my $dba = $node->background_psql('postgres');
	my $what = $table =~ /pkey/ ? "REINDEX INDEX $table" : "LOCK TABLE $table IN ACCESS EXCLUSIVE MODE";
	$dba->query_safe("BEGIN; $what");
	my $before = $node->safe_psql('postgres', q{SELECT checkpointed_offset FROM keyedstate.status WHERE name = 'big_stats'});
	my $slowest = 0;
	for my $round (1 .. 5)
	{
		$node->safe_psql('postgres', q{INSERT INTO big (k, v, n) SELECT g, 3, 1 FROM generate_series(1, 1000) g});
		my $t0 = time();
		$node->safe_psql('postgres', q{SELECT keyedstate.sync('big_stats', '30 s')});
		$slowest = time() - $t0 if time() - $t0 > $slowest;
	}
	ok($slowest < 5, "$table held exclusively: the aggregation consumes on (slowest sync ${slowest}s)");
	is($node->safe_psql('postgres', q{SELECT checkpointed_offset FROM keyedstate.status WHERE name = 'big_stats'}), $before,
		"... and no checkpoint committed meanwhile");
	$dba->query_safe('COMMIT');
	$dba->quit;
	ok(ks_wait_for($node, 'postgres', qq{SELECT checkpointed_offset > $before AND state = 'running'
		FROM keyedstate.status WHERE name = 'big_stats'}, 60), '... and once it is free the checkpoints go on');
}
is(ks_mismatches($node, 'postgres', 'SELECT * FROM big_stats', $big_oracle), '0', 'exact after the held tables');

# Another session holds the source itself (a long VACUUM FULL, CLUSTER or
# a rewriting ALTER TABLE): nothing is consumed meanwhile, status says
# waiting with its pid, and checkpoints go on (they read only the state,
# as the final one does), an explicit one too (review DBA 9, D9-2).
{
	$node->safe_psql('postgres', q{SELECT keyedstate.alter_aggregation('big_stats', checkpoint_interval => '1 hour');
INSERT INTO big (k, v, n) SELECT g, 4, 1 FROM generate_series(1, 500) g});
	ks_sync($node, 'postgres', 'big_stats');
	my $holder = $node->background_psql('postgres');
	my $pid = $holder->query_safe(q{BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE; SELECT pg_backend_pid()});
	ok(ks_wait_for($node, 'postgres', qq{SELECT state = 'waiting' AND waiting_pid = $pid FROM keyedstate.status WHERE name = 'big_stats'}, 30),
		'the source held by another session: status says waiting, with its pid');
	$node->safe_psql('postgres', q{SET statement_timeout = '30s'; SELECT keyedstate.checkpoint('big_stats')});
	is($node->safe_psql('postgres', q{SELECT checkpointed_offset = consumed_offset FROM keyedstate.status WHERE name = 'big_stats'}),
		't', '... and an explicit checkpoint is taken meanwhile');
	$holder->query_safe('COMMIT');
	$holder->quit;
	ok(ks_wait_for($node, 'postgres', q{SELECT state = 'running' FROM keyedstate.status WHERE name = 'big_stats'}, 30),
		'... running again once it is free');
}
ks_kill_worker($node, 'postgres');
ks_wait_state($node, 'postgres', 'big_stats', 'running', 60) or die 'big_stats did not come back';
ks_sync($node, 'postgres', 'big_stats', '5 min');
is(ks_mismatches($node, 'postgres', 'SELECT * FROM big_stats', $big_oracle), '0', '... and after a kill that follows');

# An error of the server's resources (a full disk under keyedstate_internal.state,
# out of memory, a deadlock) passes: the aggregation does not fail, its
# view keeps the state it had, status shows the error, and it loads again
# by itself (a function raising disk_full stands for the disk here).
$node->safe_psql('postgres', q{
CREATE TABLE disk (is_full boolean NOT NULL);
INSERT INTO disk VALUES (false);
CREATE FUNCTION written(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF (SELECT is_full FROM disk) THEN
		RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
	END IF;
	RETURN v;
END $$;
CREATE TABLE passing (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO passing (k, v) SELECT g % 10, g FROM generate_series(1, 100) g;
SELECT keyedstate.create_aggregation('passing_sums', 'SELECT k, count(*) AS n, sum(written(v)) AS s FROM passing GROUP BY k');
SELECT keyedstate.sync('passing_sums');
SELECT keyedstate.checkpoint('passing_sums');
UPDATE disk SET is_full = true;
INSERT INTO passing (k, v) SELECT g % 10, g FROM generate_series(1, 50) g;
});
ok(ks_wait_for($node, 'postgres', q{SELECT error LIKE 'could not extend file%' FROM keyedstate.status WHERE name = 'passing_sums'}, 30),
	'a passing error: status shows it') or diag(ks_status($node, 'postgres', 'passing_sums', q{state || ' ' || coalesce(error, '')}));
select(undef, undef, undef, 3);
is(ks_status($node, 'postgres', 'passing_sums', 'state'), 'running', '... the aggregation did not fail, retried meanwhile');
ok(ks_wait_for($node, 'postgres', q{SELECT sum(n) = 100 FROM passing_sums}, 30), '... and between attempts its view shows the state it had');
like(slurp_file($node->logfile), qr/WARNING:  could not extend file.*\n.*DETAIL:  keyedstate loads aggregation public\.passing_sums again in \d+ s/,
	'... the log says it is tried again');
like(slurp_file($node->logfile), qr/keyedstate aggregation public\.passing_sums of database postgres, input row with offset \d+/,
	'... naming the aggregation, its database and the row');
$node->safe_psql('postgres', 'UPDATE disk SET is_full = false');
ks_sync($node, 'postgres', 'passing_sums', '2 min');
is(ks_mismatches($node, 'postgres', 'SELECT k, n, s FROM passing_sums', 'SELECT k, count(*), sum(v) FROM passing GROUP BY k'), '0',
	'once the disk has room it goes on by itself, exact');
is(ks_status($node, 'postgres', 'passing_sums', q{state || coalesce(error, '')}), 'running', '... and status shows no error');
# out of shared memory (any role can fill the lock table) passes the same way, for a while
$node->safe_psql('postgres', q{
CREATE OR REPLACE FUNCTION written(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF (SELECT is_full FROM disk) THEN
		RAISE EXCEPTION 'out of shared memory' USING ERRCODE = 'out_of_memory', HINT = 'You might need to increase max_locks_per_transaction.';
	END IF;
	RETURN v;
END $$;
SELECT keyedstate.checkpoint('passing_sums');
UPDATE disk SET is_full = true;
INSERT INTO passing (k, v) SELECT g % 10, g FROM generate_series(1, 50) g;
});
ok(ks_wait_for($node, 'postgres', q{SELECT state = 'running' AND error = 'out of shared memory' FROM keyedstate.status WHERE name = 'passing_sums'}, 30),
	'out of shared memory passes too: status shows it, the aggregation runs')
  or diag(ks_status($node, 'postgres', 'passing_sums', q{state || ' ' || coalesce(error, '')}));
$node->safe_psql('postgres', 'UPDATE disk SET is_full = false');
ks_sync($node, 'postgres', 'passing_sums', '2 min');
is(ks_mismatches($node, 'postgres', 'SELECT k, n, s FROM passing_sums', 'SELECT k, count(*), sum(v) FROM passing GROUP BY k'), '0',
	'... and once the memory is back it goes on, exact');
# and so does a file the server cannot open: keyedstate_internal.state in a
# tablespace made unreadable (as a permission fault, or a file system
# remounted read-only, shows: "permission denied", 42501, which a privilege
# check of the owner's would fail with) while the server was down
{
	my $tsdir = $node->basedir . '/ts_fault';
	mkdir $tsdir or die "mkdir $tsdir: $!";
	$node->safe_psql('postgres', "CREATE TABLESPACE ts_fault LOCATION '$tsdir'");
	$node->safe_psql('postgres', 'ALTER TABLE keyedstate_internal.state SET TABLESPACE ts_fault');
	$node->safe_psql('postgres', q{SELECT keyedstate.checkpoint('passing_sums')});
	$node->stop('fast');
	my ($versiondir) = glob("$tsdir/PG_*");
	chmod(0000, $versiondir) or die "chmod $versiondir: $!";
	$node->start;
	$node->safe_psql('postgres', q{INSERT INTO passing (k, v) SELECT g % 10, g FROM generate_series(1, 20) g});
	ok(ks_wait_for($node, 'postgres', q{SELECT state <> 'failed' AND error LIKE '%Permission denied%' FROM keyedstate.status WHERE name = 'passing_sums'}, 60),
		'a file that cannot be opened passes: status shows it, the aggregation is not failed')
	  or diag(ks_status($node, 'postgres', 'passing_sums', q{state || ' ' || coalesce(error, '')}));
	is($node->safe_psql('postgres', q{SELECT consumed_offset IS NULL AND lag_rows = 20
		AND checkpointed_offset = (SELECT checkpointed_offset FROM keyedstate.aggregations WHERE name = 'passing_sums')
		FROM keyedstate.status WHERE name = 'passing_sums'}), 't',
		'... and, not loaded, its offsets are the catalog\'s, not zeros');
	chmod(0700, $versiondir) or die "chmod $versiondir: $!";
	ks_sync($node, 'postgres', 'passing_sums', '3 min');
	is(ks_mismatches($node, 'postgres', 'SELECT k, n, s FROM passing_sums', 'SELECT k, count(*), sum(v) FROM passing GROUP BY k'), '0',
		'... and once it can be opened it goes on by itself, exact');
	$node->safe_psql('postgres', 'ALTER TABLE keyedstate_internal.state SET TABLESPACE pg_default');
	$node->safe_psql('postgres', 'DROP TABLESPACE ts_fault');
}

# A superuser's pg_cancel_backend() of a worker in a step (not a pause or
# a drop, whose SIGINTs keyedstate sends and counts) fails the aggregation,
# as it cancels a query; resume() brings it back
$node->safe_psql('postgres', q{
CREATE FUNCTION slowly(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN v; END $$;
CREATE TABLE cancelled (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('cancelled_n', 'SELECT slowly(k) AS k, count(*) AS n FROM cancelled GROUP BY 1');
INSERT INTO cancelled (k) SELECT g FROM generate_series(1, 50) g;
});
my $sleeper = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'keyedstate worker' AND wait_event = 'PgSleep'};
ok(ks_wait_for($node, 'postgres', "SELECT count(*) > 0 FROM ($sleeper) s", 30), '(precondition) a worker is in a slow step');
$node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM ($sleeper) s");
ok(ks_wait_for($node, 'postgres', q{SELECT state = 'failed' AND error LIKE 'canceling statement due to user request%'
	FROM keyedstate.status WHERE name = 'cancelled_n'}, 30), "pg_cancel_backend of the worker fails the step's aggregation")
  or diag(ks_status($node, 'postgres', 'cancelled_n', q{state || ' ' || coalesce(error, '')}));
$node->safe_psql('postgres', q{CREATE OR REPLACE FUNCTION slowly(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v; END $$;
SELECT keyedstate.resume('cancelled_n')});
ks_sync($node, 'postgres', 'cancelled_n', '60 s');
is(ks_mismatches($node, 'postgres', 'SELECT k, n FROM cancelled_n', 'SELECT k, count(*) FROM cancelled GROUP BY k'), '0',
	'... and after resume() it is exact');

# An open transaction of the owner's holding the aggregation's catalog row
# (an uncommitted alter_aggregation()) keeps its checkpoints waiting: a
# checkpoint() timing out says whose transaction (review robustness2, F7:
# it timed out after a minute with no detail); reading goes on (no budget)
$node->safe_psql('postgres', q{CREATE TABLE rowlock (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('rowlock_n', 'SELECT k, count(*) AS n FROM rowlock GROUP BY k');});
ks_sync($node, 'postgres', 'rowlock_n', '1 min');
{
	my $owner = $node->background_psql('postgres');
	my $opid = $owner->query_safe('SELECT pg_backend_pid()');
	$owner->query_safe(q{BEGIN; SELECT keyedstate.alter_aggregation('rowlock_n', checkpoint_interval => '2 s')});
	$node->safe_psql('postgres', q{INSERT INTO rowlock (k) SELECT g % 10 FROM generate_series(1, 1000) g});
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT keyedstate.checkpoint('rowlock_n', '3 s')});
	like($err, qr/timed out waiting for a checkpoint of aggregation public\.rowlock_n\n.*DETAIL:  Its checkpoints wait for process $opid, whose open transaction holds a lock on its definition/,
		'a checkpoint held back by an open transaction on the definition says whose');
	ks_sync($node, 'postgres', 'rowlock_n', '1 min');
	is(ks_mismatches($node, 'postgres', 'SELECT k, n FROM rowlock_n', 'SELECT k, count(*) FROM rowlock GROUP BY k'), '0',
		'... while reading goes on, exact');
	$owner->query_safe('COMMIT');
	$owner->quit;
}
{
	my ($ret, $out, $err) = $node->psql('postgres', q{SELECT keyedstate.checkpoint('rowlock_n', '30 s')});
	is($ret, 0, '... and once it committed, the checkpoint goes through') or diag($err);
}
$node->safe_psql('postgres', q{SELECT keyedstate.drop_aggregation('rowlock_n'); DROP TABLE rowlock});

# While checkpoints follow each other (a backlog being read, every key
# changing between them: each is full), the rows of those they replaced
# are deleted as they go: they stayed until the backlog was read, and the
# state table grew until the disk was full (fault review 42, F2: 53 full
# checkpoints kept after 100 s of a rebuild)
$node->safe_psql('postgres', q{
CREATE TABLE backlog (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO backlog (k, v) SELECT g % 1000, g FROM generate_series(1, 150000) g;
SELECT keyedstate.create_aggregation('backlog_n',
	'SELECT k, count(*) AS n, sum(length(regexp_replace(repeat(v::text, 300), ''1'', ''x'', ''g''))) AS s FROM backlog GROUP BY k');});
my ($most_full, $polls, $done) = (0, 0, 0);
my $kept_sql = q{SELECT s.consumed_offset >= 150000, (SELECT count(DISTINCT st.checkpoint_id) FILTER (WHERE st.is_full)
	FROM keyedstate_internal.state st JOIN keyedstate_internal.aggregation a ON a.id = st.aggregation_id
	WHERE a.view = 'backlog_n'::regclass) FROM keyedstate.status s WHERE s.name = 'backlog_n'};
for (my $deadline = time() + 120; !$done && time() < $deadline; $polls++)
{
	my ($caught_up, $full) = split /\|/, $node->safe_psql('postgres', $kept_sql);
	$most_full = $full if $full > $most_full;
	$done = $caught_up eq 't';
	select(undef, undef, undef, 0.2) unless $done;
}
ok($done && $polls > 5, "the backlog is read over many steps ($polls looks)");
cmp_ok($most_full, '<=', 2, 'full checkpoints kept while reading it: at most the latest and the one replacing it');
note("most full checkpoints kept: $most_full, looks: $polls");
is(ks_mismatches($node, 'postgres', 'SELECT k, n, s FROM backlog_n',
	q{SELECT k, count(*), sum(length(regexp_replace(repeat(v::text, 300), '1', 'x', 'g'))) FROM backlog GROUP BY k}), '0',
	'... and exact');
$node->safe_psql('postgres', q{SELECT keyedstate.drop_aggregation('backlog_n'); DROP TABLE backlog});

$node->stop;
done_testing();
