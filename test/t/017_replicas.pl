# Replicas: on a standby no worker runs, and reading an aggregation or
# calling a control function fails at once with a clear error (not a wait
# for a worker that never comes); status says 'standby'.  After promotion
# every database's aggregations run again and are exact, also a database
# whose first aggregation came after the base backup (the file of
# databases, which is not WAL-logged, does not list it: the launcher's
# probe finds it).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $primary = ks_node('primary', '', allows_streaming => 1);
my $query = 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k';
my $oracle = 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k';

# Make database $db with a source and an aggregation over it.
sub make_db
{
	my ($db) = @_;
	$primary->safe_psql('postgres', "CREATE DATABASE $db");
	$primary->safe_psql($db, qq{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO ev (k, v) SELECT g % 50, g FROM generate_series(1, 5000) g;
SELECT keyedstate.create_aggregation('agg', '$query', checkpoint_interval => '100ms');
SELECT keyedstate.sync('agg');
});
}

make_db('early');
# an aggregation in parts, whose checkpoints are its parts'
$primary->safe_psql('early', qq{SELECT keyedstate.create_aggregation('par', '$query', parallelism => 2);
SELECT keyedstate.sync('par'); SELECT keyedstate.checkpoint('par');});
$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;
# a database whose first aggregation comes after the backup
make_db('late');
$primary->safe_psql($_, 'INSERT INTO ev (k, v) SELECT g % 70, g FROM generate_series(1, 3000) g') for qw(early late);
$primary->safe_psql($_, "SELECT keyedstate.sync('agg')") for qw(early late);
$primary->wait_for_catchup($standby);

# on the standby: errors at once, with PostgreSQL's codes
{
	my $t0 = time();
	my ($ret, $out, $err) = $standby->psql('early', "\\set VERBOSITY verbose\nSELECT count(*) FROM agg");
	my $secs = time() - $t0;
	like($err, qr/55000: keyedstate aggregations cannot be read during recovery/,
		'standby: reading a view fails with a clear error');
	ok($secs < 3, sprintf('standby: ... at once (%.2f s)', $secs));
	for my $call ("keyedstate.sync('agg', '30 s')", "keyedstate.pause('agg')",
		"keyedstate.checkpoint('agg')", "keyedstate.drop_aggregation('agg')",
		"keyedstate.create_aggregation('agg2', '$query')")
	{
		$t0 = time();
		($ret, $out, $err) = $standby->psql('early', "\\set VERBOSITY verbose\nSELECT $call");
		like($err, qr/25006: cannot execute keyedstate\.\w+\(\) during recovery/,
			"standby: $call fails with a clear error");
		ok(time() - $t0 < 3, "standby: ... at once");
	}
	is($standby->safe_psql('early', "SELECT state FROM keyedstate.status WHERE name = 'agg'"),
		'standby', "standby: status says 'standby'");
	# and the checkpoint of an aggregation in parts, as keyedstate.aggregations
	# does (it said 0 and no time: DBA review 10, D10-4)
	is($standby->safe_psql('early', q{SELECT s.checkpointed_offset >= 5000 AND s.checkpointed_offset = a.checkpointed_offset
		AND s.last_checkpoint = a.last_checkpoint
		FROM keyedstate.status s JOIN keyedstate.aggregations a USING (name) WHERE name = 'par'}), 't',
		"standby: status shows the checkpoint of an aggregation in parts");
	is($standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'keyedstate%'"),
		'0', 'standby: no keyedstate process runs');
}

# promote: both databases run again and are exact
$primary->stop('fast');
$standby->promote;
for my $db (qw(early late))
{
	ok(ks_wait_for($standby, $db, "SELECT state = 'running' FROM keyedstate.status WHERE name = 'agg'", 60),
		"promoted: database $db runs its aggregation")
	  or diag($standby->safe_psql($db, 'SELECT state FROM keyedstate.status'));
	$standby->safe_psql($db, 'INSERT INTO ev (k, v) SELECT g % 90, g FROM generate_series(1, 2000) g');
	ks_sync($standby, $db, 'agg');
	is(ks_mismatches($standby, $db, 'SELECT k, n, s FROM agg', $oracle), '0',
		"promoted: database $db is exact");
}
like(slurp_file($standby->data_dir . '/keyedstate.databases'), qr/^\d+\n\d+\n$/,
	'promoted: the file of databases lists both now');

$standby->stop;
done_testing();
