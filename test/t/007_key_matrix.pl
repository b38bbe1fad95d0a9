# Recovered keys are the same keys as fresh ones, for every kind of key
# type: by-value types of each length (including negative values, whose
# Datums are sign-extended), fixed-length by-reference types, varlena and
# container types, and NULL.  Rows are aggregated, checkpointed and
# recovered (after an immediate shutdown, then after a SIGKILL of the
# worker), and more rows for the same keys arrive after each recovery: the
# view must equal the GROUP BY oracle and hold each key once, every time.
# Every key type runs three times: whole, in parts over key groups that are
# rescaled between the recoveries (a key hashed differently when fresh,
# recovered or seeded would land in two parts and show twice), and whole
# under a memory budget so small that its keys are evicted to
# keyedstate_internal.cold at every checkpoint and loaded back by the next rows (a
# key stored or reloaded differently would show twice or lose its counts).
# Those read a twin source, kvb, with ten rows for each row of kv, spread
# over a second key column pad, so that thousands of keys exceed the
# budget.  Point lookups must find every key, in memory or evicted.  Every
# view also has a column that fails for the keys whose count is a multiple
# of 3: their error rows (rowerror.h) go through the same paths, a qual on
# the count skips them, and a scan reading that column raises their error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = ks_node('keys', "keyedstate.max_aggregations = 400\nkeyedstate.max_workers = 2\n");

# Key types and the values rows take (SQL expressions of that type).  Equal
# values written differently ('1 day' and '24 hours', 1.0 and 1.00, 0 and
# -0, '{[1,2]}' and '{[1,3)}', and 'a' and 'A' under a case-insensitive
# nondeterministic collation) must become one key.  Ranges, multiranges,
# nested composites, arrays of composites and domains (over a base type and
# over a composite) go through the same code as their base types.
my @types = (
	[ 'int2', 'int2', qw(-32768 -5 -1 0 1 32767 NULL) ],
	[ 'int4', 'int4', qw(-2147483648 -123456 -1 0 7 2147483647 NULL) ],
	[ 'int8', 'int8', qw(-9223372036854775808 -5000000000 -1 0 9223372036854775807 NULL) ],
	[ 'date', 'date', q{'0044-03-15 BC'}, q{'1970-01-01'}, q{'1999-12-31'}, q{'2000-01-01'},
		q{'2024-02-29'}, q{'-infinity'}, q{'infinity'}, 'NULL' ],
	[ 'ts', 'timestamp', q{'1969-07-20 20:17:40'}, q{'1999-12-31 23:59:59.999999'},
		q{'2000-01-01 00:00'}, q{'2038-01-19 03:14:08'}, q{'-infinity'}, 'NULL' ],
	[ 'tstz', 'timestamptz', q{'1969-07-20 20:17:40+00'}, q{'1999-12-31 23:59:59.5-05'},
		q{'2000-01-01 05:00+05'}, q{'2000-01-01 00:00+00'}, 'NULL' ],
	[ 'time', 'time', q{'00:00'}, q{'12:34:56.789'}, q{'23:59:59.999999'}, 'NULL' ],
	[ 'timetz', 'timetz', q{'00:00+00'}, q{'12:00-05'}, q{'17:00+00'}, q{'23:59:59.99+14'}, 'NULL' ],
	[ 'f4', 'float4', q{'-0'}, '0', '-1.5', '1.5', q{'NaN'}, q{'Infinity'}, q{'-Infinity'},
		'-3.4e38', 'NULL' ],
	[ 'f8', 'float8', q{'-0'}, '0', '-1e308', '2.5', q{'NaN'}, q{'-Infinity'}, '-4.9e-324', 'NULL' ],
	[ 'num', 'numeric', '1.0', '1.00', '1', '-0.5', '-0.50', q{'NaN'}, '1e100', '-1e-100', 'NULL' ],
	[ 'txt', 'text', q{''}, q{'a'}, q{'Ünïcødé'}, q{repeat('long ', 1000)}, q{repeat(md5('x'), 4000)},
		'NULL' ],
	[ 'vc', 'varchar(20)', q{'b'}, q{'b '}, q{'-1'}, 'NULL' ],
	[ 'bpc', 'char(4)', q{'a'}, q{'a  '}, q{'ab'}, 'NULL' ],
	[ 'nm', 'name', q{'abc'}, q{'x'}, q{repeat('n', 63)}, 'NULL' ],
	[ 'ch', '"char"', q{'a'}, q{'\377'}, q{'\200'}, q{'\001'}, 'NULL' ],
	[ 'bo', 'bool', 'true', 'false', 'NULL' ],
	[ 'oid', 'oid', '0', '1', '2147483648', '3000000000', '4294967295', 'NULL' ],
	[ 'lsn', 'pg_lsn', q{'0/0'}, q{'FFFFFFFF/FFFFFFFF'}, q{'80000000/1'}, 'NULL' ],
	[ 'tid', 'tid', q{'(0,1)'}, q{'(4294967295,65535)'}, q{'(2147483648,1)'}, 'NULL' ],
	[ 'uuid', 'uuid', q{'00000000-0000-0000-0000-000000000000'},
		q{'ffffffff-ffff-ffff-ffff-ffffffffffff'}, q{'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'}, 'NULL' ],
	[ 'inet', 'inet', q{'10.0.0.1'}, q{'10.0.0.1/8'}, q{'::1'}, q{'255.255.255.255'}, 'NULL' ],
	[ 'cidr', 'cidr', q{'10.0.0.0/8'}, q{'192.168.0.0/16'}, q{'::/0'}, 'NULL' ],
	[ 'mac', 'macaddr', q{'08:00:2b:01:02:03'}, q{'ff:ff:ff:ff:ff:ff'}, 'NULL' ],
	[ 'mac8', 'macaddr8', q{'08:00:2b:01:02:03:04:05'}, q{'00:00:00:00:00:00:00:00'}, 'NULL' ],
	[ 'itv', 'interval', q{'1 day'}, q{'24 hours'}, q{'-1 mon'}, q{'30 days'}, q{'00:00:00.000001'},
		'NULL' ],
	[ 'bin', 'bytea', q{'\x'}, q{'\x00ff'}, q{'\xdeadbeef'}, q{decode(repeat('ab', 5000), 'hex')},
		'NULL' ],
	[ 'jb', 'jsonb', q{'{"a": 1}'}, q{'{"a":1.0}'}, q{'[1, 2, "x"]'}, q{'null'}, q{'-1'}, 'NULL' ],
	[ 'ia', 'int4[]', q{'{1,2}'}, q{'{-1,-2}'}, q{'{}'}, q{'{NULL}'}, q{'[0:1]={1,2}'}, 'NULL' ],
	[ 'ta', 'text[]', q{'{a,b}'}, q{'{"a,b"}'}, q{'{{x,y},{z,NULL}}'}, 'NULL' ],
	[ 'rec', 'pair', q{ROW(1, 'x')}, q{ROW(-1, NULL)}, q{ROW(NULL, NULL)}, 'NULL' ],
	[ 'en', 'mood', q{'sad'}, q{'ok'}, q{'happy'}, 'NULL' ],
	[ 'rng', 'int4range', q{'[1,5)'}, q{'[1,4]'}, q{'empty'}, q{'(,)'}, q{'[-10,-5)'}, 'NULL' ],
	[ 'nr', 'numrange', q{'[1.0,2.0)'}, q{'[1.00,2)'}, q{'empty'}, q{'(,5)'}, 'NULL' ],
	[ 'mr', 'int4multirange', q{'{[1,3),[5,7)}'}, q{'{[1,2],[5,6]}'}, q{'{}'}, q{'{(,0)}'}, 'NULL' ],
	[ 'nest', 'outerpair', q{ROW(ROW(1, 'x'), '{a}')}, q{ROW(ROW(NULL, NULL), '{}')}, q{ROW(NULL, NULL)},
		'NULL' ],
	[ 'pa', 'pair[]', q{ARRAY[ROW(1, 'x')::pair]}, q{'{}'}, q{ARRAY[ROW(NULL, NULL)::pair, ROW(2, 'y')::pair]},
		'NULL' ],
	[ 'dom', 'smallpos', '-5', '0', '7', 'NULL' ],
	[ 'pd', 'pairdom', q{ROW(0, 'y')}, q{ROW(1, NULL)}, 'NULL' ],
	[ 'ci', 'text COLLATE ci', q{'a'}, q{'A'}, q{'b'}, q{'ß'}, q{'SS'}, q{'ss'}, 'NULL' ],
);

$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TYPE pair AS (a int, b text);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE outerpair AS (p pair, tags text[]);
CREATE DOMAIN smallpos AS int CHECK (VALUE > -100);
CREATE DOMAIN pairdom AS pair CHECK ((VALUE).a IS DISTINCT FROM 42);
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
});
my $cols = join(', ', map { "k_$_->[0] $_->[1]" } @types);
$node->safe_psql('postgres', "CREATE TABLE kv (id bigserial PRIMARY KEY, v int NOT NULL, $cols)");
$node->safe_psql('postgres', "CREATE TABLE kvb (id bigserial PRIMARY KEY, v int NOT NULL, pad int NOT NULL, $cols)");

# Insert $n rows into kv, and ten times as many into kvb; row g gets value
# (g + $shift) % (number of values) of each type, so every batch hits every
# key again (in kvb too: its ten pads depend on g + $shift only).
sub insert_rows
{
	my ($n, $shift) = @_;
	my @exprs;
	for my $t (@types)
	{
		my ($name, $type, @values) = @$t;
		my $nv = scalar(@values);
		my $case = "CASE (g + $shift) % $nv "
		  . join(' ', map { "WHEN $_ THEN ($values[$_])::$type" } 0 .. $nv - 1) . ' END';
		push @exprs, $case;
	}
	my $names = join(', ', map { "k_$_->[0]" } @types);
	$node->safe_psql('postgres',
		"INSERT INTO kv (v, $names) SELECT g, " . join(', ', @exprs)
		  . " FROM generate_series(1, $n) g");
	$node->safe_psql('postgres',
		"INSERT INTO kvb (v, pad, $names) SELECT g, j * 1000 + (g + $shift) % 1000, " . join(', ', @exprs)
		  . " FROM generate_series(1, $n) g, generate_series(0, 9) j");
}

# one aggregation per key type, and one with a key mixing several types;
# each also in parts (by_*_p: 2 parts over 5 key groups, so that a few
# keys already spread over both) and under a budget (by_*_b: 1MB, over
# kvb's thousands of keys, so that most keys are evicted at each checkpoint)
my %legs = ('' => q{checkpoint_interval => '1 hour'},
	'_p' => q{checkpoint_interval => '1 hour', parallelism => 2, max_parallelism => 5},
	'_b' => q{checkpoint_interval => '100 ms', memory_limit => '1MB'});
my %aggs;
my $mixed = 'k_int2, k_int4, k_date, k_ch, k_num, k_txt, k_itv, k_bo, k_f4, k_ia';
for my $t (@types, [ 'mixed' ])
{
	for my $p (sort keys %legs)
	{
		my $name = "by_$t->[0]$p";
		my @sk = $t->[0] eq 'mixed' ? split(/, /, $mixed) : ("k_$t->[0]");
		my @vk = $t->[0] eq 'mixed' ? @sk : ('k');
		my $src = 'kv';
		if ($p eq '_b')
		{
			push @sk, 'pad';
			push @vk, 'pad';
			$src = 'kvb';
		}
		my $as = join(', ', map { $sk[$_] eq $vk[$_] ? $sk[$_] : "$sk[$_] AS $vk[$_]" } 0 .. $#sk);
		my $keys = join(', ', @sk);
		$aggs{$name} = {
			keys => join(', ', @vk),
			source => $src,
			source_keys => $keys,
			budget => $p eq '_b',
			view => 'SELECT ' . join(', ', @vk) . ", c, s FROM $name",
			oracle => "SELECT $keys, count(*), sum(v) FROM $src GROUP BY $keys",
			view_q => 'SELECT ' . join(', ', @vk) . ", c, s, q FROM $name WHERE c % 3 <> 0",
			oracle_q => "SELECT $keys, count(*), sum(v), 1000 / (count(*) % 3) FROM $src GROUP BY $keys"
			  . ' HAVING count(*) % 3 <> 0',
		};
		$node->safe_psql('postgres', qq{SELECT keyedstate.create_aggregation('$name',
			'SELECT $as, count(*) AS c, sum(v) AS s, 1000 / (count(*) % 3) AS q FROM $src GROUP BY $keys',
			$legs{$p})});
	}
}
my $naggs = scalar(keys %aggs);
my $nparted = scalar(grep { /_p$/ } keys %aggs);

# Rescale every aggregation in parts to $n parts, and wait until the
# rescale has completed (no part is retired any more).
sub rescale_all
{
	my ($n) = @_;
	$node->safe_psql('postgres',
		"SELECT keyedstate.alter_aggregation(name, parallelism => $n) FROM keyedstate.aggregations WHERE name LIKE '%\\_p'");
	sync_all();
	$node->safe_psql('postgres',
		'SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations');
	ks_wait_for($node, 'postgres', 'SELECT NOT EXISTS (SELECT FROM keyedstate_internal.part WHERE retired)', 120)
	  or die 'a rescale to ' . $n . ' did not complete';
	is($node->safe_psql('postgres',
		"SELECT count(DISTINCT aggregation) || ' ' || count(*) FROM keyedstate.workers WHERE aggregation LIKE '%\\_p'"),
		$nparted . ' ' . ($nparted * $n), "every aggregation in parts now runs in $n parts");
}

# Sync every aggregation.
sub sync_all
{
	$node->safe_psql('postgres',
		'SELECT keyedstate.sync(name, \'2 min\') FROM keyedstate.aggregations');
}

# Wait until every aggregation runs (after a restart), then sync.
sub wait_running
{
	ks_wait_for($node, 'postgres',
		"SELECT count(*) = $naggs AND bool_and(state = 'running') FROM keyedstate.status", 120)
	  or die 'aggregations did not resume: '
	  . $node->safe_psql('postgres', "SELECT string_agg(name || ' ' || state || ' ' || coalesce(error, ''), '; ') FROM keyedstate.status WHERE state <> 'running'");
	sync_all();
}

# Run many checks in one statement (a psql per check would be most of this
# test's time): each check is a query returning one value, or the error it
# raised ('error: ' and its message); t_plan gives a query's plan.
$node->safe_psql('postgres', q{
CREATE FUNCTION t_value(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE q INTO r;
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN 'error: ' || SQLERRM;
END $$;
CREATE FUNCTION t_plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text; r text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP r := r || l || E'\n'; END LOOP;
	RETURN r;
END $$;});

# Run the named checks of every aggregation in one statement: %$checks
# maps a check's name to a sub giving its query for an aggregation (and
# 'plan:' names a query whose plan is wanted); returns, per aggregation,
# a hash of the checks' results.
sub run_checks
{
	my ($checks) = @_;
	my @names = sort keys %$checks;
	my @rows;
	for my $name (sort keys %aggs)
	{
		my @vals = map {
			my $q = $checks->{$_}->($aggs{$name}, $name);
			/^plan:/ ? "t_plan(\$q\$$q\$q\$)" : "t_value(\$q\$$q\$q\$)"
		} @names;
		push @rows, "SELECT '$name', " . join(', ', map { "replace(replace($_, E'\\n', ' '), '|', '/')" } @vals);
	}
	my %res;
	for my $line (split /\n/, $node->safe_psql('postgres', join("\nUNION ALL\n", @rows)))
	{
		my ($name, @v) = split /\|/, $line, -1;
		@{ $res{$name} }{@names} = @v;
	}
	return \%res;
}

# The count of the rows two queries differ by (as ks_mismatches).
sub mismatch_sql
{
	my ($a, $b) = @_;
	return "SELECT count(*) FROM (($a EXCEPT ALL $b) UNION ALL ($b EXCEPT ALL $a)) d";
}

# Compare every aggregation with its oracle; no key may appear twice.
sub check_all
{
	my ($when) = @_;
	my (@wrong, @dups);
	my $nerrs = 0;
	my $res = run_checks({
		view => sub { mismatch_sql($_[0]{view}, $_[0]{oracle}) },
		# the keys whose count is a multiple of 3 have error rows (rowerror.h):
		# a qual on the count skips them, a scan reading q raises their error
		view_q => sub { mismatch_sql($_[0]{view_q}, $_[0]{oracle_q}) },
		nerr => sub {
			my @sk = split(/, /, $_[0]{source_keys});
			"SELECT count(*) FROM ($_[0]{oracle}) o(" . join(', ', map { "x$_" } 0 .. $#sk) . ', c, s) WHERE c % 3 = 0'
		},
		scan => sub { "SELECT sum(q) FROM $_[1]" },
		dups => sub { "SELECT count(*) FROM (SELECT 1 FROM $_[1] GROUP BY $_[0]{keys} HAVING count(*) > 1) d" },
	});
	for my $name (sort keys %aggs)
	{
		my $r = $res->{$name};
		push @wrong, "$name ($r->{view} rows)" if $r->{view} ne '0';
		push @wrong, "$name (error rows: $r->{view_q} rows)" if $r->{view_q} ne '0';
		push @wrong, "$name (a scan of $r->{nerr} error rows: " . ($r->{scan} =~ /^error: / ? $r->{scan} : 'no error') . ')'
		  if ($r->{nerr} ne '0') != ($r->{scan} =~ /^error: division by zero/ ? 1 : 0);
		$nerrs += $r->{nerr};
		push @dups, "$name ($r->{dups} keys)" if $r->{dups} ne '0';
	}
	is(join(', ', @wrong), '', "$when: every view equals its GROUP BY oracle, also past error rows");
	ok($nerrs > 0, "$when: there were error rows ($nerrs)");
	is(join(', ', @dups), '', "$when: no key appears twice in any view");
	check_lookups($when);
}

# Look every key without NULLs up in every view, one lookup per key (the
# lateral subquery cannot be flattened, so each key is a parameter of the
# view's scan): each must find its row, in memory or evicted, equal to the
# oracle's.
sub check_lookups
{
	my ($when) = @_;
	my (@wrong, @plans);
	my %looked;
	my %oracle;
	for my $name (sort keys %aggs)
	{
		my $a = $aggs{$name};
		my @vk = split /, /, $a->{keys};
		my @sk = split /, /, $a->{source_keys};
		my $notnull = join(' AND ', map { "$_ IS NOT NULL" } @sk);
		# under a budget, the keys of a sample of the pads
		$notnull .= ' AND pad % 97 = 0' if $a->{budget};
		my $match = join(' AND ', map { "v.$vk[$_] = o.$sk[$_]" } 0 .. $#vk);
		$looked{$name} = "SELECT o.*, l.c, l.s FROM (SELECT DISTINCT $a->{source_keys} FROM $a->{source} WHERE $notnull) o "
		  . "CROSS JOIN LATERAL (SELECT v.c, v.s FROM $name v WHERE $match OFFSET 0) l";
		$oracle{$name} = "SELECT $a->{source_keys}, count(*), sum(v) FROM $a->{source} WHERE $notnull GROUP BY $a->{source_keys}";
	}
	my $res = run_checks({
		'plan:' => sub { $looked{$_[1]} },
		lookups => sub { mismatch_sql($looked{$_[1]}, $oracle{$_[1]}) },
	});
	for my $name (sort keys %aggs)
	{
		push @plans, $name unless $res->{$name}{'plan:'} =~ /Key Lookup: true/;
		push @wrong, "$name ($res->{$name}{lookups} rows)" if $res->{$name}{lookups} ne '0';
	}
	is(join(', ', @plans), '', "$when: keys are looked up by their hash in every view");
	is(join(', ', @wrong), '', "$when: every key's lookup finds its row");
}

# Every aggregation under a budget has evicted keys, and has keys in
# keyedstate_internal.cold now.
sub check_evicted
{
	my ($when) = @_;
	my @none;
	for my $name (sort grep { $aggs{$_}{budget} } keys %aggs)
	{
		push @none, $name unless ks_wait_for($node, 'postgres',
			"SELECT evictions > 0 AND keys_in_memory < keys FROM keyedstate.status WHERE name = '$name'", 30);
	}
	is(join(', ', @none), '', "$when: every aggregation under a budget has keys evicted");
}

insert_rows(600, 0);
sync_all();
check_evicted('fresh keys');
check_all('fresh keys');
# the key groups really split the keys: most aggregations in parts have
# keys in both parts (hashes are fixed, so this count is too)
my $split = $node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT aggregation FROM keyedstate.workers
		WHERE aggregation LIKE '%\\_p' GROUP BY aggregation HAVING bool_and(keys > 0)) s});
cmp_ok($split, '>=', 25, "keys are spread over both parts in $split of " . $nparted . ' aggregations in parts');
my $nkeys = $node->safe_psql('postgres', 'SELECT sum(keys) FROM keyedstate.status');
$node->safe_psql('postgres',
	'SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations');

# first recovery: after an immediate shutdown
$node->stop('immediate');
$node->start;
wait_running();
check_all('recovered after an immediate shutdown');
rescale_all(3);
check_all('rescaled from 2 parts to 3 after the recovery');
insert_rows(400, 3);
sync_all();
check_all('recovered keys hit again after an immediate shutdown');
check_evicted('recovered keys hit again');

# second recovery, of keys recovered once and hit again: after a SIGKILL
# of the worker (restart_after_crash restarts the server)
$node->safe_psql('postgres',
	'SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations');
ks_kill_worker($node, 'postgres');
wait_running();
check_all('recovered again after a worker kill');
rescale_all(1);
check_all('rescaled from 3 parts to 1 after the kill');
insert_rows(300, 5);
sync_all();
check_all('keys recovered twice hit again');
rescale_all(2);
insert_rows(100, 7);
sync_all();
check_all('rescaled from 1 part to 2, and hit again');

is($node->safe_psql('postgres', 'SELECT sum(keys) FROM keyedstate.status'), $nkeys,
	"the number of keys never changes ($nkeys keys in $naggs aggregations)");
note scalar(@types) . " key types and one mixed key, $nkeys keys in $naggs aggregations";

$node->stop;
done_testing();
