# A memory budget in parallel: an aggregation with parallelism => N and a
# memory_limit splits the budget between its parts by their key groups;
# each part evicts its own keys to keyedstate_internal.cold under its own id and
# loads them back.  The view (every part's published and cold keys) and
# point lookups equal the GROUP BY oracle under concurrent writers, after a
# kill -9 and a restart.  Rescaling moves the evicted keys with their key
# groups (each new part copies its groups' cold rows from the parts it is
# seeded from): up, down and to one part, under writers and with a kill -9
# in the middle; the retired parts' cold rows go with them, and a drop
# leaves none.  A budget too small for its parts is refused, and damaged
# cold rows met by a rescale's copy fail the new part.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('parbudget', "keyedstate.max_workers = 4\nmax_connections = 40\n");
my $db = 'postgres';

$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL, t text);
INSERT INTO ev (k, v, t)
SELECT g, g % 1000 + r, CASE WHEN g % 7 = 0 THEN NULL ELSE 't' || (g % 7) END
  FROM generate_series(1, 40000) g, generate_series(1, 2) r;
SELECT keyedstate.create_aggregation('pb',
	'SELECT k, count(*) AS c, sum(v) AS s, avg(v) AS a, max(t) AS mt, string_agg(v::text, '','' ORDER BY id) AS vs
	   FROM ev GROUP BY k', parallelism => 2, memory_limit => '8MB', checkpoint_interval => '200 ms');
});
my $oracle = q{SELECT k, count(*), sum(v), avg(v), max(t), string_agg(v::text, ',' ORDER BY id) FROM ev GROUP BY k};
my $view = 'SELECT k, c, s, a, mt, vs FROM pb';

# the view against its oracle, and lookups of a few keys (evicted or not)
sub exact
{
	my ($what) = @_;
	ks_sync_all($node, $db, '5 min');
	my $m = ks_mismatches($node, $db, $view, $oracle);
	is($m, '0', "$what: the view equals the oracle")
	  or diag($node->safe_psql($db, "SELECT 'view', * FROM (($view) EXCEPT ALL ($oracle)) v LIMIT 5"));
	my $bad = 0;
	for my $k (1, 2, 777, 12345, 39999, 40000)
	{
		my $got = $node->safe_psql($db, "$view WHERE k = $k");
		my $want = $node->safe_psql($db, "$oracle HAVING k = $k");
		$bad++, diag("key $k: $got, expected $want") if $got ne $want;
	}
	is($bad, 0, "$what: point lookups equal the oracle");
}

# the parts of the current layout, each running, with cold keys in each
sub parts_cold
{
	my ($n) = @_;
	return ks_wait_for($node, $db, qq{
SELECT count(*) = $n AND bool_and(state = 'running' AND pid IS NOT NULL AND keys_cold > 0)
   AND sum(last_key_group - first_key_group + 1) = 128
  FROM keyedstate.workers WHERE aggregation = 'pb'}, 120);
}

# cold rows of anything but the current parts (retired parts', the aggregation's own)
sub stray_cold_rows
{
	return $node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.cold c
	WHERE c.aggregation_id NOT IN (SELECT id FROM keyedstate_internal.part WHERE NOT retired)});
}

# --- 1. each part evicts its own keys within its share ---------------------
ks_sync_all($node, $db, '5 min');
ok(parts_cold(2), 'both parts run and each has evicted keys');
is($node->safe_psql($db, q{SELECT string_agg(memory_limit::text, ',' ORDER BY part) FROM keyedstate.workers WHERE aggregation = 'pb'}),
	'4194304,4194304', 'each part has the share of memory_limit of its key groups');
is(ks_status($node, $db, 'pb', 'memory_limit'), 8 * 1024 * 1024, 'status shows the whole budget');
is(ks_status($node, $db, 'pb', 'keys'), '40000', 'status counts every key once, in memory or cold');
ok(ks_status($node, $db, 'pb', 'keys_in_memory') < 40000, 'and fewer in memory');
is($node->safe_psql($db, q{SELECT count(DISTINCT aggregation_id) FROM keyedstate_internal.cold
	WHERE aggregation_id IN (SELECT id FROM keyedstate_internal.part)}), '2', 'each part has cold rows under its own id');
ok(ks_wait_for($node, $db, q{SELECT bool_and(memory_bytes <= 3 * memory_limit) FROM keyedstate.workers WHERE aggregation = 'pb'}, 60),
	'each part keeps near its share')
  or diag($node->safe_psql($db, 'SELECT * FROM keyedstate.workers'));
exact('evicted in parts');

# --- 2. writers bring cold keys back while readers scan --------------------
my $w = ks_script($node, 'w.sql', q{
\set k random(1, 50000)
INSERT INTO ev (k, v, t) SELECT :k + g, g, 'w' || (g % 3) FROM generate_series(0, 30) g;
});
my $r = ks_script($node, 'r.sql', q{
SELECT count(*) FROM pb;
SELECT * FROM pb WHERE k = 4321;
});
# (rate-limited: nearly every row reloads a cold key, which a part does at
# about 10,000 rows/s here)
my ($wh) = ks_pgbench($node, $db, '-c', '2', '-R', '100', '-T', '5', '-f', $w);
my ($rh) = ks_pgbench($node, $db, '-c', '1', '-T', '5', '-f', $r);
$wh->finish;
$rh->finish;
ok($node->safe_psql($db, q{SELECT sum(reloads) > 0 FROM keyedstate.status WHERE name = 'pb'}) eq 't',
	'rows for evicted keys loaded them back');
exact('writers and readers');

# --- 3. a kill -9 while writers run, then a restart -------------------------
($wh) = ks_pgbench($node, $db, '-c', '2', '-R', '100', '-T', '4', '-f', $w);
sleep(1);
ks_kill_worker($node, $db);
$wh->finish;
exact('kill -9 during writes');
$node->restart;
ok(parts_cold(2), 'after a restart both parts run with their cold keys');
exact('restart');

# the parts' upkeep never scans keyedstate_internal.cold whole (every
# aggregation's rows): forgetting the retired parts' rows after a part's
# full checkpoint did once per checkpoint where the statistics say one
# aggregation holds most cold rows (n_distinct = 1 here; the benchmark's
# 930,000 rows: 40% of a part's time, growing with the table's bloat)
my $cold_scans = q{SELECT seq_scan FROM pg_stat_all_tables WHERE relid = 'keyedstate_internal.cold'::regclass};
$node->safe_psql($db, q{ALTER TABLE keyedstate_internal.cold ALTER COLUMN aggregation_id SET (n_distinct = 1)});
$node->safe_psql($db, q{ANALYZE keyedstate_internal.cold});
my $scans = $node->safe_psql($db, $cold_scans);
# (a resume loads the parts again: each one's first checkpoint is full)
$node->safe_psql($db, q{SELECT keyedstate.pause('pb')});
$node->safe_psql($db, q{SELECT keyedstate.resume('pb')});
($wh) = ks_pgbench($node, $db, '-c', '1', '-R', '50', '-T', '4', '-f', $w);
$wh->finish;
$node->safe_psql($db, q{SELECT keyedstate.checkpoint('pb')});
ok(!ks_wait_for($node, $db, "SELECT ($cold_scans) > $scans", 4),
	'full checkpoints of parts read no cold rows but their own')
  or diag($node->safe_psql($db, $cold_scans) . " sequential scans, $scans before");
$node->safe_psql($db, q{ALTER TABLE keyedstate_internal.cold ALTER COLUMN aggregation_id RESET (n_distinct)});
exact('full checkpoints after a resume');

# --- 4. rescales move the evicted keys with their key groups ----------------
# (the three rescales take about a second: writers run for all of them)
($wh) = ks_pgbench($node, $db, '-c', '2', '-R', '100', '-T', '5', '-f', $w);
my $log_at = -s $node->logfile;
for my $to (3, 1, 2)
{
	$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('pb', parallelism => $to)");
	ok(parts_cold($to), "rescaled to $to parts under writers, each with cold keys");
	# the next rescale needs every new part's first checkpoint
	$node->safe_psql($db, "SELECT keyedstate.checkpoint('pb')");
}
$wh->finish;
like(slurp_file($node->logfile, $log_at), qr/part \d+ took over \d+ evicted keys of its key groups/,
	'the new parts copied the cold rows of their key groups');
exact('rescales with evicted keys');
$node->safe_psql($db, "SELECT keyedstate.checkpoint('pb')");
ok(ks_wait_for($node, $db, q{SELECT count(*) = 0 FROM keyedstate_internal.part WHERE retired}, 30),
	'the retired parts go');
is(stray_cold_rows(), '0', 'and their cold rows with them');

# --- 5. a kill -9 in the middle of a rescale --------------------------------
($wh) = ks_pgbench($node, $db, '-c', '2', '-R', '100', '-T', '6', '-f', $w);
sleep(1);
$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('pb', parallelism => 4)");
ks_kill_worker($node, $db);
$wh->finish;
ok(parts_cold(4), 'after a kill -9 during the rescale the four new parts run with cold keys');
exact('kill -9 during a rescale');
$node->safe_psql($db, "SELECT keyedstate.checkpoint('pb')");
ok(ks_wait_for($node, $db, q{SELECT count(*) = 0 FROM keyedstate_internal.part WHERE retired}, 30),
	'the retired parts go after the kill too');
is(stray_cold_rows(), '0', 'with their cold rows');
is($node->safe_psql($db, q{SELECT sum(cold_keys) FROM keyedstate_internal.part WHERE NOT retired}),
	$node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.cold}),
	'the parts count exactly the cold rows there are');

# --- 6. a part gets at least 1MB: too many parts for the budget are refused
my ($ret, $out, $err) = $node->psql($db, q{SELECT keyedstate.alter_aggregation('pb', parallelism => 16)});
like($err, qr/memory_limit must give each of 16 parts at least 1024 kB/, 'a rescale leaving a part under 1MB is refused');
($ret, $out, $err) = $node->psql($db, q{SELECT keyedstate.alter_aggregation('pb', memory_limit => '3MB')});
like($err, qr/memory_limit must give each of 4 parts at least 1024 kB/, 'and so is a budget too small for the parts');
($ret, $out, $err) = $node->psql($db, q{SELECT keyedstate.create_aggregation('pb_bad', 'SELECT k, count(*) FROM ev GROUP BY k',
	parallelism => 3, max_parallelism => 8, memory_limit => '3MB')});
like($err, qr/memory_limit must give each of 3 parts at least 1024 kB/, 'and an aggregation created with one');

# --- 7. a damaged cold row read by a rescale's copy fails the new part ------
# (damaged before the rescale: a paused aggregation's new parts load, and
# copy, at once)
$node->safe_psql($db, q{SELECT keyedstate.pause('pb')});
$log_at = -s $node->logfile;
$node->safe_psql($db, q{
UPDATE keyedstate_internal.cold c SET data = set_byte(data, 20, (get_byte(data, 20) + 1) % 256)
  FROM keyedstate_internal.part p WHERE NOT p.retired AND c.aggregation_id = p.id});
$node->safe_psql($db, q{SELECT keyedstate.alter_aggregation('pb', parallelism => 2)});
$node->safe_psql($db, q{SELECT keyedstate.resume('pb')});
ok(ks_wait_state($node, $db, 'pb', 'failed', 60), 'a seed with damaged cold rows fails the new part');
like(ks_status($node, $db, 'pb', 'error'), qr/checkpoint of aggregation public.pb is corrupted/,
	'and says its checkpoint is corrupted');
like(slurp_file($node->logfile, $log_at), qr/The CRC-32C of cold key \d+ is/, 'the log says which check failed');
is($node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.cold c JOIN keyedstate_internal.part p ON p.id = c.aggregation_id
	WHERE NOT p.retired}), '0', 'and no copy was kept');
$node->safe_psql($db, q{SELECT keyedstate.rebuild('pb')});
exact('rebuilt after the damaged copy');
ok(parts_cold(2), 'the rebuilt parts evict again');

# --- 8. removing the budget, and a drop -------------------------------------------
# without a budget, the keys evicted before stay cold until rows come for them
$node->safe_psql($db, q{SELECT keyedstate.alter_aggregation('pb', memory_limit => '0')});
ok(ks_wait_for($node, $db, q{SELECT memory_limit IS NULL FROM keyedstate.status WHERE name = 'pb'}, 30),
	'the budget can be removed');
$node->safe_psql($db, q{INSERT INTO ev (k, v, t) SELECT g, 1, 'z' FROM generate_series(1, 40000, 3) g});
exact('budget removed');
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('pb')");
is($node->safe_psql($db, 'SELECT (SELECT count(*) FROM keyedstate_internal.cold) + (SELECT count(*) FROM keyedstate_internal.part)'), '0',
	'dropping it leaves no cold row and no part');

$node->stop;
done_testing();
