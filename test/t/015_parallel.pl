# Parallel aggregations: parallelism => N splits the key groups into N
# parts, each consumed by a worker of the pool; the view reads every part
# and equals the GROUP BY oracle (order-sensitive aggregates included)
# under concurrent writers.  Rescaling with alter_aggregation(parallelism)
# moves key groups between parts without losing or double-counting a row:
# up, down, to and from 1, under writers, with a kill -9 in the middle of a
# rescale, and across a restart.  A TTL and a partitioned source work in
# parts too.  A seed's damaged checkpoint fails the new part; another role
# can neither rescale nor exceed its limit through parts.  Wrong
# parameters are refused clearly.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = ks_node('parallel', "keyedstate.max_workers = 4\nmax_connections = 40\n");
my $db = 'postgres';

$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v numeric NOT NULL, t text);
INSERT INTO ev (k, v, t) SELECT g % 2000, g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'x' || g END
	FROM generate_series(1, 30000) g;
SELECT keyedstate.create_aggregation('par',
	'SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS lo, max(t) AS hi,
	        string_agg(id::text, '','' ORDER BY id) AS ids
	   FROM ev GROUP BY k', parallelism => 2);
-- placed before the others come (more parts than workers then share them)
SELECT keyedstate.sync('par');
-- a text key and few key groups
SELECT keyedstate.create_aggregation('par_text',
	'SELECT t, count(*) AS n FROM ev GROUP BY t', parallelism => 3, max_parallelism => 16);
-- every kind of durable state: internal ones serialized (sum of bigint,
-- numeric avg and var_samp), values (stddev's float8[], int4 avg's int8[],
-- bit_or, bool_and, a by-reference min) and internal ones replayed from
-- their inputs (array_agg, jsonb_object_agg)
SELECT keyedstate.create_aggregation('par_kinds',
	'SELECT k % 300 AS g, sum(id) AS si, avg(v) AS av, var_samp(v) AS vs,
	        round(stddev(v::float8)::numeric, 6) AS sd, avg(k) AS ak, bit_or(id) AS bo,
	        bool_and(t IS NOT NULL) AS ba, min(t) AS mt, array_agg(id) AS ids,
	        jsonb_object_agg(id, t) AS jo
	   FROM ev GROUP BY k % 300', parallelism => 2, max_parallelism => 64);
});
my %oracle = (
	par => q{SELECT k, count(*), sum(v), avg(v), min(v), max(t), string_agg(id::text, ',' ORDER BY id)
			   FROM ev GROUP BY k},
	par_text => 'SELECT t, count(*) FROM ev GROUP BY t',
	# (stddev of float8 in offset order, as the view adds the rows: in
	# another order its last digits differ, and rounding may show it)
	par_kinds => q{SELECT k % 300, sum(id), avg(v), var_samp(v), round(stddev(v::float8 ORDER BY id)::numeric, 6), avg(k),
			   bit_or(id), bool_and(t IS NOT NULL), min(t), array_agg(id ORDER BY id),
			   jsonb_object_agg(id, t ORDER BY id)
			   FROM ev GROUP BY k % 300},
);

# both views equal their oracles
sub exact
{
	my ($what) = @_;
	ks_sync_all($node, $db, '3 min');
	for my $name (sort keys %oracle)
	{
		is(ks_mismatches($node, $db, "SELECT * FROM $name", $oracle{$name}), '0', "$what: $name is exact");
	}
}

# the parts of an aggregation as keyedstate.workers shows them, once each runs
sub parts_running
{
	my ($name, $n) = @_;
	return ks_wait_for($node, $db, qq{
SELECT count(*) = $n AND bool_and(state = 'running' AND pid IS NOT NULL)
   AND min(first_key_group) = 0
   AND max(last_key_group) = (SELECT max_parallelism - 1 FROM keyedstate.aggregations WHERE name = '$name')
   AND sum(last_key_group - first_key_group + 1) = (SELECT max_parallelism FROM keyedstate.aggregations WHERE name = '$name')
  FROM keyedstate.workers WHERE aggregation = '$name'}, 60);
}

ks_sync_all($node, $db);
ok(parts_running('par', 2), 'par runs in two parts covering every key group once');
ok(parts_running('par_text', 3), 'par_text runs in three parts of its 16 key groups');
# (parts assigned before the pool grew share a worker until the next balancing)
ok(ks_wait_for($node, $db, q{SELECT count(DISTINCT pid) = 2 FROM keyedstate.workers WHERE aggregation = 'par'}, 60),
	'the two parts of par run in two workers');
is(ks_status($node, $db, 'par', 'parallelism'), '2', 'status shows the parallelism');
is(ks_status($node, $db, 'par', 'keys'), '2000', 'status counts the keys of every part');
exact('start');

# a point lookup finds its key in whichever part holds it
is($node->safe_psql($db, 'SELECT n FROM par WHERE k = 7'),
	$node->safe_psql($db, 'SELECT count(*) FROM ev WHERE k = 7'), 'a point lookup reads the right part');
is($node->safe_psql($db, q{SELECT n FROM par_text WHERE t IS NULL}),
	$node->safe_psql($db, q{SELECT count(*) FROM ev WHERE t IS NULL}), 'a NULL key is found too');

# --- rescaling under concurrent writers ----------------------------------
my $script = ks_script($node, 'ins.sql', q{
\set k random(0, 2999)
INSERT INTO ev (k, v, t) SELECT :k, g, 'w' || (:k % 50) FROM generate_series(1, 5) g;
});
my ($bench) = ks_pgbench($node, $db, '-c', '4', '-T', '12', '-f', $script);
for my $to (3, 1, 2)
{
	$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('par', parallelism => $to)");
	ok(parts_running('par', $to), "rescaled to $to parts under writers");
	# the next rescale needs every new part's first checkpoint
	$node->safe_psql($db, "SELECT keyedstate.checkpoint('par')");
}
$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('par_text', parallelism => 1)");
$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('par_kinds', parallelism => 3)");
$bench->finish;
ok(parts_running('par_text', 1), 'par_text rescaled to one part');
ok(parts_running('par_kinds', 3), 'par_kinds rescaled to three parts');
$node->safe_psql($db, "SELECT keyedstate.checkpoint('par_kinds')");
exact('rescales under writers');
is($node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.part p JOIN keyedstate.aggregations a ON a.id = p.aggregation_id
	WHERE a.name = 'par' AND NOT p.retired}), '2', 'the catalog holds the two parts of the last layout');
$node->safe_psql($db, "SELECT keyedstate.checkpoint('par')");
is($node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.part p JOIN keyedstate.aggregations a ON a.id = p.aggregation_id
	WHERE a.name = 'par' AND NOT p.retired AND p.seed_from IS NOT NULL}), '0',
	'once the new parts checkpointed, none is seeded any more');
# the retired parts go at the parts' next step after their checkpoints (ckptcommit.c)
$node->safe_psql($db, "SELECT keyedstate.checkpoint('par_text')");
ok(ks_wait_for($node, $db, q{SELECT count(*) = 0 FROM keyedstate_internal.part WHERE retired}, 30),
	'then the retired parts are gone');
is($node->safe_psql($db, q{SELECT count(*) FROM keyedstate_internal.state s
	WHERE s.aggregation_id NOT IN (SELECT id FROM keyedstate_internal.part)
	  AND s.aggregation_id NOT IN (SELECT a.id FROM keyedstate_internal.aggregation a
	                               WHERE NOT EXISTS (SELECT FROM keyedstate_internal.part p WHERE p.aggregation_id = a.id))}),
	'0', 'and so are their checkpoints, and those of the aggregations from when they ran whole');

# --- a second rescale before the first completed is refused --------------
my ($ret, $out, $err) = $node->psql($db, q{BEGIN;
SELECT keyedstate.alter_aggregation('par', parallelism => 3);
SELECT keyedstate.alter_aggregation('par', parallelism => 4);
COMMIT;});
like($err, qr/cannot be rescaled now.*\n.*previous rescale is still running/,
	'a rescale while the previous one runs is refused');

# --- a kill -9 in the middle of a rescale ---------------------------------
($bench) = ks_pgbench($node, $db, '-c', '4', '-T', '8', '-f', $script);
sleep(1);
$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('par', parallelism => 4)");
$node->safe_psql($db, "SELECT keyedstate.alter_aggregation('par_kinds', parallelism => 2)");
# before the new parts took their first checkpoint (checkpoint_interval 1 s)
ks_kill_worker($node, $db);
$bench->finish;
ok(parts_running('par', 4), 'after a kill -9 during the rescale the four new parts run');
ok(parts_running('par_kinds', 2), 'and the two new parts of par_kinds');
exact('kill -9 during a rescale');

# --- a restart ------------------------------------------------------------
$node->restart;
ok(parts_running('par', 4), 'after a restart the four parts run again');
$node->safe_psql($db, q{INSERT INTO ev (k, v, t) SELECT g % 2000, g, 'r' FROM generate_series(1, 1000) g});
exact('restart');

# --- pause, resume and rebuild reach every part ---------------------------
$node->safe_psql($db, "SELECT keyedstate.pause('par')");
ok(ks_wait_for($node, $db, q{SELECT bool_and(state = 'paused') FROM keyedstate.workers WHERE aggregation = 'par'}, 30),
	'pause reaches every part');
$node->safe_psql($db, "SELECT keyedstate.resume('par'); SELECT keyedstate.rebuild('par')");
exact('rebuild');

# --- a failing part fails the aggregation ---------------------------------
$node->safe_psql($db, q{
CREATE FUNCTION picky(k int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
	$$BEGIN IF k = 4242 THEN RAISE EXCEPTION 'picky about %', k; END IF; RETURN k; END$$;
SELECT keyedstate.create_aggregation('par_picky', 'SELECT k, sum(picky(k)) AS s FROM ev GROUP BY k', parallelism => 2);
INSERT INTO ev (k, v) VALUES (4242, 1);});
ok(ks_wait_state($node, $db, 'par_picky', 'failed'), 'a part that fails fails the aggregation in status');
($ret, $out, $err) = $node->psql($db, 'SELECT count(*) FROM par_picky');
like($err, qr/aggregation public.par_picky has failed/, 'and its view says so');
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('par_picky')");

# --- a TTL in every part, and a partitioned source --------------------------
$node->safe_psql($db, q{
CREATE TABLE tev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO tev (k) SELECT g % 100 FROM generate_series(1, 1000) g;
SELECT keyedstate.create_aggregation('par_ttl', 'SELECT k, count(*) AS c FROM tev GROUP BY k',
	parallelism => 2, ttl => '3 s', checkpoint_interval => '200 ms');
CREATE TABLE pev (id bigserial, k int NOT NULL, part int NOT NULL) PARTITION BY LIST (part);
CREATE INDEX ON pev (id);
CREATE TABLE pev_0 PARTITION OF pev FOR VALUES IN (0);
CREATE TABLE pev_1 PARTITION OF pev FOR VALUES IN (1);
INSERT INTO pev (k, part) SELECT g % 300, g % 2 FROM generate_series(1, 3000) g;
SELECT keyedstate.create_aggregation('par_parted', 'SELECT k, count(*) AS c, string_agg(id::text, '','' ORDER BY id) AS ids FROM pev GROUP BY k',
	parallelism => 2);
SELECT keyedstate.sync('par_ttl'); SELECT keyedstate.sync('par_parted');});
is($node->safe_psql($db, 'SELECT count(*) FROM par_ttl'), '100', 'par_ttl: every key is there before its TTL');
ok(ks_wait_for($node, $db, 'SELECT count(*) = 0 FROM par_ttl', 30), 'par_ttl: the TTL empties every part');
$node->safe_psql($db, 'INSERT INTO tev (k) VALUES (7), (7), (93)');
ks_sync($node, $db, 'par_ttl');
is($node->safe_psql($db, q{SELECT string_agg(k || ':' || c, ',' ORDER BY k) FROM par_ttl}), '7:2,93:1',
	'par_ttl: keys back after their TTL start afresh, in whichever part holds them');
$node->safe_psql($db, q{INSERT INTO pev_1 (k, part) SELECT g % 300, 1 FROM generate_series(1, 500) g;
INSERT INTO pev (k, part) SELECT g % 300, 0 FROM generate_series(1, 500) g;});
ks_sync($node, $db, 'par_parted');
is(ks_mismatches($node, $db, 'SELECT * FROM par_parted',
	"SELECT k, count(*), string_agg(id::text, ',' ORDER BY id) FROM pev GROUP BY k"), '0',
	'par_parted: a partitioned source consumed by two parts is exact');
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('par_ttl'); SELECT keyedstate.drop_aggregation('par_parted');});

# --- rescaled twice while paused: the new parts consume what their seeds
# had and checkpoint it, so the second rescale need not wait for a resume
$node->safe_psql($db, q{
SELECT keyedstate.create_aggregation('par_twice', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k',
	parallelism => 2);
SELECT keyedstate.sync('par_twice');
SELECT keyedstate.pause('par_twice');});
# Rescale par_twice to $n parts once it may be (30 s at most); whether it was.
sub rescale_when_allowed
{
	my ($n) = @_;
	for (1 .. 150)
	{
		my ($ret) = $node->psql($db, "SELECT keyedstate.alter_aggregation('par_twice', parallelism => $n)");
		return 1 if $ret == 0;
		usleep(200_000);
	}
	return 0;
}
# a paused part checkpoints what its view shows before it may be rescaled
ok(rescale_when_allowed(3), 'a paused aggregation is rescaled once its parts checkpointed what their view shows');
my $twice = rescale_when_allowed(1);
ok($twice, 'a second rescale while paused goes through once the new parts checkpointed');
is(ks_mismatches($node, $db, 'SELECT * FROM par_twice', 'SELECT k, count(*), sum(v) FROM ev GROUP BY k'), '0',
	'still paused, its view shows every key');
$node->safe_psql($db, q{SELECT keyedstate.resume('par_twice')});
ks_sync($node, $db, 'par_twice');
is(ks_mismatches($node, $db, 'SELECT * FROM par_twice', 'SELECT k, count(*), sum(v) FROM ev GROUP BY k'), '0',
	'resumed, it is exact');
$node->safe_psql($db, q{SELECT keyedstate.drop_aggregation('par_twice')});

# --- a seed's damaged checkpoint fails the new part; a rebuild recovers ----
$node->safe_psql($db, q{
SELECT keyedstate.create_aggregation('par_dmg', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k',
	parallelism => 2);
SELECT keyedstate.sync('par_dmg'); SELECT keyedstate.checkpoint('par_dmg');
SELECT keyedstate.pause('par_dmg');});
# one byte of part 0's chunks, read back when the new part seeds from it
# (damaged before the rescale: a paused aggregation's new parts load at once)
$node->safe_psql($db, q{SET keyedstate.allow_state_writes = on;
UPDATE keyedstate_internal.state s SET data = set_byte(data, 40, (get_byte(data, 40) + 1) % 256)
  FROM keyedstate_internal.part p JOIN keyedstate.aggregations a ON a.id = p.aggregation_id
 WHERE a.name = 'par_dmg' AND NOT p.retired AND p.part = 0 AND s.aggregation_id = p.id});
$node->safe_psql($db, q{SELECT keyedstate.alter_aggregation('par_dmg', parallelism => 1)});
$node->safe_psql($db, "SELECT keyedstate.resume('par_dmg')");
ok(ks_wait_state($node, $db, 'par_dmg', 'failed', 30), 'a seed with a damaged chunk fails the new part');
like(ks_status($node, $db, 'par_dmg', 'error'), qr/checkpoint of aggregation public.par_dmg is corrupted/,
	'and says its checkpoint is corrupted');
$node->safe_psql($db, "SELECT keyedstate.rebuild('par_dmg')");
ks_sync($node, $db, 'par_dmg');
is(ks_mismatches($node, $db, 'SELECT * FROM par_dmg', 'SELECT k, count(*), sum(v) FROM ev GROUP BY k'), '0',
	'after a rebuild it is exact again');
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('par_dmg')");

# --- another role can neither rescale nor exceed its limit through parts -----
$node->safe_psql($db, q{
CREATE ROLE regress_other LOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO regress_other;
CREATE TABLE other_ev (id bigserial PRIMARY KEY, k int);
ALTER TABLE other_ev OWNER TO regress_other;
ALTER SYSTEM SET keyedstate.max_aggregations_per_owner = 3;
SELECT pg_reload_conf();});
($ret, $out, $err) = $node->psql($db, q{SET ROLE regress_other;
SELECT keyedstate.alter_aggregation('par', parallelism => 1)});
like($err, qr/must be owner of view par/, 'another role cannot rescale an aggregation');
($ret, $out, $err) = $node->psql($db, q{SET ROLE regress_other;
SELECT keyedstate.create_aggregation('other_par', 'SELECT k, count(*) FROM other_ev GROUP BY k', parallelism => 4)});
like($err, qr/4 parts would take role "regress_other" past keyedstate.max_aggregations_per_owner \(3\)\nDETAIL:  Besides this aggregation, the role holds 0 aggregation slots/,
	'each part counts against max_aggregations_per_owner, and the message says so (user review 50, F3: "already owns 3")') or diag($err);
ok(ks_wait_for($node, $db, q{SELECT count(*) = 0 FROM pg_class WHERE relname = 'other_par'}, 5),
	'and nothing of it is left');
$node->safe_psql($db, q{ALTER SYSTEM RESET keyedstate.max_aggregations_per_owner; SELECT pg_reload_conf();});

# --- wrong parameters -----------------------------------------------------
for my $case (
	[ 'parallelism => 0', qr/parallelism must be between 1 and max_parallelism \(128\)/ ],
	[ 'parallelism => 200', qr/parallelism must be between 1 and max_parallelism \(128\)/ ],
	[ 'max_parallelism => 40000', qr/max_parallelism must be between 1 and 32768/ ])
{
	($ret, $out, $err) = $node->psql($db,
		"SELECT keyedstate.create_aggregation('bad', 'SELECT k, count(*) FROM ev GROUP BY k', $case->[0])");
	like($err, $case->[1], "create_aggregation refuses $case->[0]");
}
($ret, $out, $err) = $node->psql($db, "SELECT keyedstate.alter_aggregation('par', parallelism => 129)");
like($err, qr/parallelism must be between 1 and max_parallelism/, 'alter_aggregation refuses a parallelism above max_parallelism');

# --- drop leaves nothing behind --------------------------------------------
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('par')");
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('par_text')");
$node->safe_psql($db, "SELECT keyedstate.drop_aggregation('par_kinds')");
is($node->safe_psql($db, 'SELECT (SELECT count(*) FROM keyedstate_internal.part) + (SELECT count(*) FROM keyedstate_internal.state)'), '0',
	'dropping parallel aggregations leaves no part and no checkpoint');
ok(ks_wait_for($node, $db, 'SELECT count(*) = 0 FROM keyedstate.worker_status()', 30), 'and frees their slots');

$node->stop;
done_testing();
