# pg_upgrade: the aggregations' analysed queries hold OIDs of functions and
# operators, which pg_upgrade does not keep.  After an upgrade the worker
# finds that its aggregation was made in another cluster (the system
# identifier) and binds its stored definition again before loading it; the
# view then equals the GROUP BY oracle, point lookups included.  No worker
# runs in pg_upgrade's binary-upgrade servers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = ks_node('old');
$old->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
-- burn OIDs so that the new cluster gives the functions other ones
DO $$ BEGIN FOR i IN 1..300 LOOP
	EXECUTE format('CREATE FUNCTION burn_%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
	EXECUTE format('DROP FUNCTION burn_%s()', i);
END LOOP; END $$;
CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE FUNCTION my_add(bigint, int) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
CREATE AGGREGATE my_sum(int) (sfunc = my_add, stype = bigint, initcond = '0');
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL);
INSERT INTO ev (k, v) SELECT g % 50, g FROM generate_series(1, 5000) g;
SELECT keyedstate.create_aggregation('agg', 'SELECT twice(k) AS k2, my_sum(v) AS s, count(*) AS n FROM ev GROUP BY 1');
SELECT keyedstate.sync('agg');
SELECT keyedstate.checkpoint('agg');
});
my $old_oid = $old->safe_psql('postgres', q{SELECT 'twice(int)'::regprocedure::oid});
my $types_sql = q{SELECT key_types::text || ' ' || stored_types::text FROM keyedstate_internal.aggregation};
my $old_types = $old->safe_psql('postgres', $types_sql);
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'keyedstate'
max_worker_processes = 16
keyedstate.naptime = 100
});
my $bindir = $new->config_data('--bindir');
chdir $new->basedir or die "cannot chdir to " . $new->basedir;
command_ok([ 'pg_upgrade', '--no-sync', '-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir, '-s', $new->host, '-p', $old->port, '-P', $new->port ],
	'pg_upgrade of a cluster with an aggregation');
$new->start;
isnt($new->safe_psql('postgres', q{SELECT 'twice(int)'::regprocedure::oid}), $old_oid,
	'(precondition) the function has another OID after the upgrade');
$new->safe_psql('postgres', 'INSERT INTO ev (k, v) SELECT g % 70, g FROM generate_series(1, 2000) g');
ks_sync($new, 'postgres', 'agg', '1 min');
is(ks_state($new, 'postgres', 'agg'), 'running', 'after pg_upgrade the aggregation runs');
is(ks_mismatches($new, 'postgres', 'SELECT k2, s, n FROM agg',
	'SELECT twice(k), my_sum(v), count(*) FROM ev GROUP BY 1'), '0', 'after pg_upgrade it is exact');
is($new->safe_psql('postgres', 'SELECT s FROM agg WHERE k2 = 120'),
	$new->safe_psql('postgres', 'SELECT sum(v) FROM ev WHERE k * 2 = 120'), 'a point lookup finds its key');
ok($new->log_contains('keyedstate bound aggregation public.agg to the objects of this database'), 'the log says it was bound again');
is($new->safe_psql('postgres', $types_sql), $old_types, 'the types it stores are recorded again, the same');
is($new->safe_psql('postgres', q{SELECT aggregates::regprocedure[] FROM keyedstate_internal.aggregation}),
	'{my_sum(integer),count()}', 'the aggregates it calls are recorded again, as OIDs of this cluster');
my ($ret, $out, $err) = $new->psql('postgres', 'DROP FUNCTION twice(int)');
like($err, qr/depend/, 'the view depends on the functions it calls again');

# An installation an earlier build made keeps keyedstate's tables in schema
# keyedstate, where this build does not look (it keeps them in
# keyedstate_internal).  Simulated: the schema renamed, and the event
# triggers, whose bodies name the tables, disabled.  Nothing of it runs and
# no worker fails over it, no role's DDL fails, its functions and views say
# how to make it anew, and it can be dropped and made again (re-review
# today 22, F1: the worker failed every second, and every role's TRUNCATE
# and ALTER TABLE failed, naming keyedstate_internal.aggregation).
$new->safe_psql('postgres', 'CREATE DATABASE olddb');
$new->safe_psql('olddb', q{CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO ev (k) SELECT g % 5 FROM generate_series(1, 100) g;
SELECT keyedstate.create_aggregation('oagg', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
SELECT keyedstate.sync('oagg');
CREATE ROLE regress_other LOGIN;
GRANT CREATE ON SCHEMA public TO regress_other;
CREATE TABLE mine (a int);
ALTER TABLE mine OWNER TO regress_other;});
$new->safe_psql('olddb', q{ALTER EVENT TRIGGER keyedstate_ddl_end DISABLE;
ALTER EVENT TRIGGER keyedstate_sql_drop DISABLE;
ALTER SCHEMA keyedstate_internal RENAME TO keyedstate_earlier;});
# (the server started again with this build, as after an upgrade of the library)
my $restart_at = -s $new->logfile;
$new->restart;
my $at = -s $new->logfile;
sleep(4);
unlike(slurp_file($new->logfile, $at), qr/keyedstate_internal\.\w+" does not exist|terminated by signal/,
	'an earlier build\'s installation: no worker fails over it');
like(slurp_file($new->logfile, $restart_at), qr/WARNING:  keyedstate in database "olddb" was installed by an earlier build/,
	'... and the log says what it is');
($ret, $out, $err) = $new->psql('olddb', q{TRUNCATE mine; ALTER TABLE mine ADD COLUMN b int;
CREATE OR REPLACE VIEW mine_v AS SELECT a FROM mine; CREATE RULE r AS ON INSERT TO mine_v DO INSTEAD NOTHING},
	extra_params => [ '-U', 'regress_other' ]);
is($ret, 0, '... no role\'s TRUNCATE, ALTER TABLE, view or rule fails over it') or diag($err);
for my $call (q{SELECT keyedstate.sync('oagg')}, q{SELECT * FROM oagg}, q{SELECT keyedstate.create_aggregation('n2', 'SELECT k, count(*) FROM ev GROUP BY k')})
{
	($ret, $out, $err) = $new->psql('olddb', $call);
	like($err, qr/keyedstate in this database was installed by an earlier build.*\n.*\n.*HINT:  .*DROP EXTENSION keyedstate CASCADE/s,
		"... $call says how to make it anew");
}
$new->safe_psql('olddb', q{DROP EXTENSION keyedstate CASCADE; CREATE EXTENSION keyedstate;
SELECT keyedstate.create_aggregation('oagg', 'SELECT k, count(*) AS n FROM ev GROUP BY k');});
ks_sync($new, 'olddb', 'oagg', '1 min');
is(ks_mismatches($new, 'olddb', 'SELECT k, n FROM oagg', 'SELECT k, count(*) FROM ev GROUP BY k'), '0',
	'... dropped and made again, it runs, exact');
$new->stop;
done_testing();
