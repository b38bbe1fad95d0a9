# Concurrent writers committing out of offset order: single and multi-row
# inserts, COPY, rollbacks, savepoints rolled back, sleeps before commit,
# and one transaction held open.  Nothing may be skipped or counted twice,
# and the open writer shows as 'waiting' with its pid.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('writers', "max_connections = 40\n");

$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE pay (id bigserial PRIMARY KEY, acct int NOT NULL, amount numeric NOT NULL);
SELECT keyedstate.create_aggregation('balances',
	'SELECT acct, count(*) AS n, sum(amount) AS total, min(amount) AS lo, max(amount) AS hi
	   FROM pay GROUP BY acct');
});

my %scripts = (
	'single.sql' => q{INSERT INTO pay (acct, amount) VALUES ((random() * 20)::int, round((random() * 100)::numeric, 2));},
	'multi.sql' => q{INSERT INTO pay (acct, amount) SELECT (random() * 20)::int, g FROM generate_series(1, 25) g;},
	'rollback.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) SELECT 999, g FROM generate_series(1, 10) g;\nROLLBACK;},
	'slow.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) VALUES ((random() * 20)::int, 1);\nSELECT pg_sleep(random() * 0.05);\nCOMMIT;},
	'savepoint.sql' => qq{BEGIN;\nINSERT INTO pay (acct, amount) VALUES (1, 5);\nSAVEPOINT s;\nINSERT INTO pay (acct, amount) VALUES (998, 7);\nROLLBACK TO s;\nINSERT INTO pay (acct, amount) VALUES (2, 6);\nCOMMIT;},
	'copy.sql' => q{COPY pay (acct, amount) FROM PROGRAM 'seq 1 40 | sed "s/$/\t1.5/"';},
);
my @files = map { ('-f', ks_script($node, $_, "$scripts{$_}\n")) } sort keys %scripts;

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

my ($h, $out) = ks_pgbench($node, 'postgres', '-c', '16', '-j', '2', '-T', '30', @files);

# the open writer holds the frontier back: 'waiting', with its pid
ks_wait_for($node, 'postgres',
	"SELECT state = 'waiting' AND waiting_pid IN ($open_pid, $aborting_pid) FROM keyedstate.status WHERE name = 'balances'",
	$PostgreSQL::Test::Utils::timeout_default)
  or die "aggregation did not report the open writer";
pass('an open writer shows as waiting with its pid');

# the aborting writer rolls back, then the open one commits, both behind
# thousands of newer rows.  The sleeps are load durations, not waits: they
# say how long each writer stays open while the 16 clients commit (5 s and
# 10 s), not for anything to happen.
sleep(5);
$aborting->query_safe('ROLLBACK');
$aborting->quit;
sleep(5);
$open->query_safe('COMMIT');
$open->quit;

$h->finish;
like($$out, qr/number of transactions actually processed/, 'pgbench ran');

ks_sync($node, 'postgres', 'balances');
my $oracle = 'SELECT acct, count(*), sum(amount), min(amount), max(amount) FROM pay GROUP BY acct';
is(ks_mismatches($node, 'postgres', 'SELECT * FROM balances', $oracle),
	'0', 'view equals the GROUP BY oracle');
is($node->safe_psql('postgres', 'SELECT count(*) FROM balances WHERE acct IN (997, 998, 999)'), '0',
	'rolled back rows are not counted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pay WHERE amount = 1000'), '1',
	'the long-open transaction committed');
is($node->safe_psql('postgres', 'SELECT hi FROM balances WHERE acct = 5'), '1000',
	'its row, with an offset below thousands of others, is counted once');
note 'rows: ' . $node->safe_psql('postgres', 'SELECT count(*) FROM pay');

# an aggregation that fails while it waits for a writer no longer names that
# writer's pid (security review 36, I1: the failure kept it, shown to every
# role, long after the session was gone)
$node->safe_psql('postgres', q{CREATE ROLE regress_rls_owner LOGIN;
CREATE SCHEMA rls AUTHORIZATION regress_rls_owner;
SET ROLE regress_rls_owner;
CREATE TABLE rls.ev (id bigserial PRIMARY KEY, k int NOT NULL);
SELECT keyedstate.create_aggregation('rls.n', 'SELECT k, count(*) AS n FROM rls.ev GROUP BY k');});
my $rls = $node->background_psql('postgres', extra_params => [ '-U', 'regress_rls_owner' ]);
my $rls_pid = $rls->query_safe('BEGIN; INSERT INTO rls.ev (k) VALUES (1); SELECT pg_backend_pid()');
$node->safe_psql('postgres', 'INSERT INTO rls.ev (k) VALUES (2)');
ok(ks_wait_for($node, 'postgres', qq{SELECT state = 'waiting' AND waiting_pid = $rls_pid FROM keyedstate.status WHERE name = 'rls.n'}, 60),
	'(precondition) the aggregation waits for the open writer');
$rls->query_safe('ALTER TABLE rls.ev ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; COMMIT');
$rls->quit;
ok(ks_wait_state($node, 'postgres', 'rls.n', 'failed'), '(precondition) row-level security on its source fails it');
is($node->safe_psql('postgres', q{SELECT coalesce(waiting_pid::text, 'null') FROM keyedstate.status WHERE name = 'rls.n'}), 'null',
	'a failed aggregation names no writer it waited for');

$node->stop;
done_testing();
