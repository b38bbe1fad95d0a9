# Concurrent writers committing out of offset order: single and multi-row
# inserts, COPY, rollbacks, savepoints rolled back, sleeps before commit,
# and one transaction held open.  Nothing may be skipped or counted twice,
# and the open writer shows as 'waiting' with its pid.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('writers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'keyedstate'
max_worker_processes = 16
max_connections = 40
keyedstate.naptime = 100
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE pay (id bigserial PRIMARY KEY, acct int NOT NULL, amount numeric NOT NULL);
SELECT keyedstate.create_aggregation('balances',
	'SELECT acct, count(*) AS n, sum(amount) AS total, min(amount) AS lo, max(amount) AS hi
	   FROM pay GROUP BY acct');
});

my $dir = $node->basedir;
my %scripts = (
	'single.sql' => q{INSERT INTO pay (acct, amount) VALUES ((random() * 20)::int, round((random() * 100)::numeric, 2));},
	'multi.sql' => q{INSERT INTO pay (acct, amount) SELECT (random() * 20)::int, g FROM generate_series(1, 25) g;},
	'rollback.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) SELECT 999, g FROM generate_series(1, 10) g;\nROLLBACK;},
	'slow.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) VALUES ((random() * 20)::int, 1);\nSELECT pg_sleep(random() * 0.05);\nCOMMIT;},
	'savepoint.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) VALUES (1, 5);\nSAVEPOINT s;\nINSERT INTO pay (acct, amount) VALUES (998, 7);\nROLLBACK TO s;\nINSERT INTO pay (acct, amount) VALUES (2, 6);\nCOMMIT;},
	'copy.sql' => q{COPY pay (acct, amount) FROM PROGRAM 'seq 1 40 | sed "s/$/\t1.5/"';},
);
for my $name (keys %scripts)
{
	open(my $fh, '>', "$dir/$name") or die;
	print $fh $scripts{$name}, "\n";
	close($fh);
}

# one transaction inserts and stays open while everything else commits
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe("INSERT INTO pay (acct, amount) VALUES (5, 1000)");
my $open_pid = $open->query_safe('SELECT pg_backend_pid()');

# and another that inserts, stays open, and rolls back
my $aborting = $node->background_psql('postgres');
$aborting->query_safe('BEGIN');
$aborting->query_safe("INSERT INTO pay (acct, amount) VALUES (997, 1)");
my $aborting_pid = $aborting->query_safe('SELECT pg_backend_pid()');

my ($out, $err) = ('', '');
my @files = map { ('-f', "$dir/$_") } sort keys %scripts;
my $h = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '16', '-j', '2', '-T', '30', @files,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);

# the open writer holds the frontier back: 'waiting', with its pid
$node->poll_query_until('postgres',
	"SELECT state = 'waiting' AND waiting_pid IN ($open_pid, $aborting_pid) FROM keyedstate.status WHERE name = 'balances'")
  or die "aggregation did not report the open writer";
pass('an open writer shows as waiting with its pid');

# the aborting writer rolls back, then the open one commits, both behind thousands of newer rows

sleep(5);
$aborting->query_safe('ROLLBACK');
$aborting->quit;
sleep(5);
$open->query_safe('COMMIT');
$open->quit;

$h->finish;
like($out, qr/number of transactions actually processed/, 'pgbench ran');

$node->safe_psql('postgres', "SELECT keyedstate.sync('balances', '2 min')");
my $oracle = 'SELECT acct, count(*), sum(amount), min(amount), max(amount) FROM pay GROUP BY acct';
is($node->safe_psql('postgres',
	"SELECT count(*) FROM ((SELECT * FROM balances EXCEPT $oracle) UNION ALL ($oracle EXCEPT SELECT * FROM balances)) d"),
	'0', 'view equals the GROUP BY oracle');
is($node->safe_psql('postgres', 'SELECT count(*) FROM balances WHERE acct IN (997, 998, 999)'), '0',
	'rolled back rows are not counted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pay WHERE amount = 1000'), '1',
	'the long-open transaction committed');
is($node->safe_psql('postgres', 'SELECT hi FROM balances WHERE acct = 5'), '1000',
	'its row, with an offset below thousands of others, is counted once');
note 'rows: ' . $node->safe_psql('postgres', 'SELECT count(*) FROM pay');

$node->stop;
done_testing();
