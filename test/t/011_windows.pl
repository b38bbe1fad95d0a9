# Tumbling and sliding time windows (window_size, window_slide,
# time_column): the view equals the GROUP BY over the rows joined with
# every window they belong to, for timestamptz and timestamp time columns,
# aggregates merged through their combine functions (values, internal
# states with serialize functions), WHERE and HAVING, rows without a time,
# rows arriving out of time order from concurrent writers, and after a
# crash and a clean restart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('windows');
my $db = 'postgres';

$node->safe_psql($db, q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL, n numeric NOT NULL,
				 ts timestamptz, lt timestamp);
-- rows spread over three hours, in random time order, some without a time
CREATE FUNCTION add_rows(cnt int) RETURNS void LANGUAGE sql AS $$
INSERT INTO ev (k, v, n, ts, lt)
SELECT (random() * 20)::int, (random() * 1000)::int, round((random() * 100)::numeric, 2),
	   CASE WHEN random() < 0.02 THEN NULL
			ELSE '2026-03-01 00:00:00+00'::timestamptz + random() * interval '3 hours' END,
	   CASE WHEN random() < 0.02 THEN NULL
			ELSE '2026-03-01 00:00:00'::timestamp + random() * interval '3 hours' END
  FROM generate_series(1, cnt);
$$;
SELECT add_rows(5000);
});

# name => [ create arguments, oracle ]
my %aggs;

# The oracle of a window: rows joined with every window holding their time.
sub window_oracle
{
	my ($size, $slide, $col, $type, $select, $from_where, $group, $having) = @_;
	my $origin = "'1970-01-01 00:00:00+00'::$type";
	return qq{SELECT w AS window_start, w + interval '$size' AS window_end, $select
  FROM ev, LATERAL generate_series(date_bin('$slide', $col, $origin) - (interval '$size' - interval '$slide'),
								   date_bin('$slide', $col, $origin), interval '$slide') w
 WHERE $col IS NOT NULL $from_where
 GROUP BY 1, 2, $group $having};
}

$aggs{hop_tz} = [
	q{'SELECT k, count(*) AS c, sum(v) AS s, avg(n) AS an, min(v) AS mi, max(n) AS mx,
			  bool_and(v % 2 = 0) AS ba, stddev_pop(n) AS sd FROM ev GROUP BY k',
	  window_size => '10 minutes', window_slide => '2 minutes', time_column => 'ts'},
	window_oracle('10 minutes', '2 minutes', 'ts', 'timestamptz',
		'k, count(*), sum(v), avg(n), min(v), max(n), bool_and(v % 2 = 0), stddev_pop(n)',
		'', 'k', '') ];
$aggs{hop_ts} = [
	q{'SELECT k % 3 AS g, count(*) AS c, sum(n) AS sn FROM ev WHERE v % 5 <> 0
		GROUP BY k % 3 HAVING count(*) > 3',
	  window_size => '1 hour', window_slide => '15 minutes', time_column => 'lt'},
	window_oracle('1 hour', '15 minutes', 'lt', 'timestamp', 'k % 3, count(*), sum(n)',
		'AND v % 5 <> 0', 'k % 3', 'HAVING count(*) > 3') ];
$aggs{tumble} = [
	q{'SELECT k, count(*) AS c, sum(v) AS s, array_agg(v) AS av FROM ev GROUP BY k',
	  window_size => '5 minutes', time_column => 'ts'},
	window_oracle('5 minutes', '5 minutes', 'ts', 'timestamptz',
		'k, count(*), sum(v), array_agg(v ORDER BY id)', '', 'k', '') ];

for my $name (sort keys %aggs)
{
	$node->safe_psql($db, "SELECT keyedstate.create_aggregation('$name', $aggs{$name}[0])");
}
is($node->safe_psql($db, q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
						   WHERE attrelid = 'hop_tz'::regclass AND attnum > 0}),
	'window_start,window_end,k,c,s,an,mi,mx,ba,sd', 'the view leads with window_start and window_end');

# every aggregation against its oracle
sub check
{
	my ($when) = @_;
	ks_sync_all($node, $db);
	for my $name (sort keys %aggs)
	{
		my $view = $name eq 'tumble'
		  ? 'SELECT window_start, window_end, k, c, s, av FROM tumble'
		  : "SELECT * FROM $name";
		is(ks_mismatches($node, $db, $view, $aggs{$name}[1]), '0', "$name: exact $when");
	}
}
check('after the first rows');
ok($node->safe_psql($db, 'SELECT count(*) > 1000 FROM hop_tz'), 'there are many windows');

# a point lookup of one window and key
my $one = $node->safe_psql($db, q{SELECT window_start || ' ' || k FROM hop_tz ORDER BY c DESC LIMIT 1});
my ($ws, $wk) = $one =~ /^(.*) (\d+)$/;
is($node->safe_psql($db, qq{SELECT c FROM hop_tz WHERE window_start = '$ws' AND k = $wk}),
	$node->safe_psql($db, qq{SELECT count(*) FROM ev WHERE k = $wk AND ts >= '$ws' AND ts < '$ws'::timestamptz + interval '10 minutes'}),
	'a point lookup of a window and key');
like($node->safe_psql($db, qq{EXPLAIN SELECT c FROM hop_tz WHERE window_start = '$ws' AND k = $wk}),
	qr/Key Lookup: true/, 'it is pushed down as a key lookup');

# concurrent writers with rows in random time order, then a crash in the middle
my $script = ks_script($node, 'add.sql', "SELECT add_rows(50);\n");
my ($bench) = ks_pgbench($node, $db, '-c', '2', '-T', '4', '-f', $script);
sleep(2);
ks_kill_worker($node, $db);
$bench->finish;
ks_wait_state($node, $db, undef, 'running') or die 'aggregations did not resume';
check('after concurrent writers and a crash');

$node->safe_psql($db, 'SELECT add_rows(2000)');
$node->restart;
ks_wait_state($node, $db, undef, 'running') or die 'aggregations did not resume';
check('after a clean restart');

done_testing();
