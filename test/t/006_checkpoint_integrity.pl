# Recovery never trusts the bytes of a checkpoint.  Fifty-one small
# aggregations (ten key types times five kinds of aggregates: value states,
# serialized states, replayed inputs, HAVING, a mix; and one with error
# rows, whose trailers readers trust) are checkpointed (a
# full checkpoint and a delta each); then, round after round, each one's
# keyedstate_internal.state rows are restored and damaged in a different random way
# (bytes flipped, overwritten, zeroed, swapped, inserted or deleted, the
# chunk truncated or extended, a column of its row changed) and the worker
# is made to recover.  Every case must end in one of two ways: the
# aggregation runs and equals its GROUP BY oracle, or it failed with
# "checkpoint of aggregation ... is corrupted".  The server never crashes,
# and once the rows are restored, resume() makes the aggregation exact
# again.
#
# Every other round recomputes the CRC-32C of the damaged chunks, as a
# forger would, so that the structural checks behind the CRC are exercised
# on their own: anywhere in the chunks of the aggregations whose values are
# plain scalars, and only inside the serialized transition states of the
# others, whose published rows hold numerics and arrays.  (The CRC alone
# guards the inside of such values, as page checksums guard them in a
# table; only a superuser can write keyedstate_internal.state.)  A forged chunk may
# recover with wrong values (a changed count is still a well-formed count),
# but never crashes the worker or a reader and never yields an unreadable
# view.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../perl";
use KsTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $rounds = 24;
srand($ENV{KS_TEST_SEED} // 20240607);

my $node = ks_node('integrity');

# --- CRC-32C (Castagnoli, reflected, table-driven), as the server computes it
my @crc_table;
for my $i (0 .. 255)
{
	my $c = $i;
	$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
	$crc_table[$i] = $c;
}

sub crc32c
{
	my ($bytes) = @_;
	my $crc = 0xFFFFFFFF;
	$crc = $crc_table[ ($crc ^ $_) & 0xFF ] ^ ($crc >> 8) for unpack('C*', $bytes);
	return $crc ^ 0xFFFFFFFF;
}
is(sprintf('%08X', crc32c('123456789')), 'E3069283', 'the test computes CRC-32C');

# The CRC a chunk carries (checkpoint.c, KsChunkCrc): over its row's
# columns in native byte order, then over its data from the flags (byte 5) on.
sub chunk_crc
{
	my ($r) = @_;
	my $cols = pack('l q l C s s l', $r->{aggregation_id}, $r->{checkpoint_id}, $r->{chunk},
		$r->{is_full} eq 't' ? 1 : 0, $r->{first_key_group}, $r->{last_key_group}, $r->{nkeys});
	return crc32c($cols . substr($r->{data}, 5));
}

# --- fifty-one aggregations over one source table
$node->safe_psql('postgres', q{
CREATE EXTENSION keyedstate;
CREATE TABLE ev (id bigserial PRIMARY KEY, k int, g int2, d date, t text, n numeric,
				 b bool, ts timestamptz, f float8, by bytea, v int, x bigint, s text);
});

# Insert a row for each i of the set $from; the key columns take a few
# dozen values each, many of them negative or before 2000.
sub insert_rows
{
	my ($from) = @_;
	$node->safe_psql('postgres', qq{
INSERT INTO ev (k, g, d, t, n, b, ts, f, by, v, x, s)
SELECT (i * 7) % 41 - 20, (i % 15 - 7)::int2, date '1995-06-01' + ((i * 3) % 37 - 18),
	   'key ' || (i % 13), round((i % 11) / 4.0, 2) - 1, i % 3 = 0,
	   timestamptz '1998-01-01 00:00+00' + (i % 17 - 8) * interval '1 day 1 hour',
	   (i % 9 - 4) * 0.5, decode(md5((i % 12)::text), 'hex'),
	   (i * 37) % 1000 - 500, i::bigint * 1000003, substr(md5(i::text), 1, 5 + i % 4)
  FROM $from});
}

# key columns: [ columns, whether their values are plain scalars ]
my @keysets = (
	[ 'k', 1 ], [ 'g', 1 ], [ 'd', 1 ], [ 't', 1 ], [ 'n', 0 ],
	[ 'b', 1 ], [ 'k, t', 1 ], [ 'ts', 1 ], [ 'f', 1 ], [ 'by', 1 ],
);
# aggregates: [ view columns, oracle columns, HAVING, plain scalars ]
my @aggsets = (
	[ 'count(*) AS c, sum(v) AS sv, min(s) AS lo, max(s) AS hi',
	  'count(*), sum(v), min(s), max(s)', '', 1 ],
	[ 'avg(n) AS an, sum(x) AS sx, array_agg(v) AS av',
	  'avg(n), sum(x), array_agg(v ORDER BY id)', '', 0 ],
	[ 'count(*) AS c, string_agg(s, \',\') AS ss',
	  'count(*), string_agg(s, \',\' ORDER BY id)', '', 1 ],
	[ 'count(*) AS c, sum(v) AS sv', 'count(*), sum(v)', ' HAVING sum(v) % 3 = 0', 1 ],
	[ 'count(*) AS c, avg(f) AS af, bool_and(b) AS ba, max(d) AS md, string_agg(s, \'|\') AS sp',
	  'count(*), avg(f), bool_and(b), max(d), string_agg(s, \'|\' ORDER BY id)', '', 1 ],
);

insert_rows('generate_series(1, 600) i');
my @aggs;
for my $ki (0 .. $#keysets)
{
	for my $ai (0 .. $#aggsets)
	{
		my ($keys, $kplain) = @{ $keysets[$ki] };
		my ($viewcols, $oraclecols, $having, $aplain) = @{ $aggsets[$ai] };
		my $name = sprintf('a%02d', scalar(@aggs) + 1);
		my $query = "SELECT $keys, $viewcols FROM ev GROUP BY $keys$having";
		(my $quoted = $query) =~ s/'/''/g;
		$node->safe_psql('postgres',
			"SELECT keyedstate.create_aggregation('$name', '$quoted', checkpoint_interval => '1 hour')");
		push @aggs, {
			name => $name,
			plain => $kplain && $aplain,
			oracle => "SELECT $keys, $oraclecols FROM ev GROUP BY $keys$having",
		};
	}
}
# and one with error rows (rowerror.h) in its chunks: the rows of the keys
# whose count is a multiple of 5 cannot be computed; compared on the columns
# that compute
{
	my $name = sprintf('a%02d', scalar(@aggs) + 1);
	$node->safe_psql('postgres', qq{SELECT keyedstate.create_aggregation('$name',
		'SELECT k, count(*) AS c, sum(v) AS sv, 1000 / (count(*) % 5) AS q FROM ev GROUP BY k',
		checkpoint_interval => '1 hour')});
	push @aggs, {
		name => $name,
		plain => 1,
		errors => 1,
		view => "(SELECT k, c, sv FROM $name)",
		oracle => 'SELECT k, count(*), sum(v) FROM ev GROUP BY k',
	};
}
my %agg_by_name = map { $_->{name} => $_ } @aggs;
my $naggs = scalar(@aggs);

# A full checkpoint, then a delta of one key per aggregation.  The delta
# stays much smaller than the full checkpoint, so the checkpoint a worker
# takes when it is stopped never becomes a full one that would replace the
# damaged rows with the worker's memory.
$node->safe_psql('postgres', 'SELECT keyedstate.sync(name, \'2 min\') FROM keyedstate.aggregations');
$node->safe_psql('postgres', 'SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations');
insert_rows('(SELECT 7 AS i FROM generate_series(1, 3)) s');
$node->safe_psql('postgres', 'SELECT keyedstate.sync(name, \'2 min\') FROM keyedstate.aggregations');
$node->safe_psql('postgres', 'SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations');

# the pristine rows, kept in a table and in Perl
$node->safe_psql('postgres', 'CREATE TABLE pristine AS SELECT * FROM keyedstate_internal.state');
my %ids = map { split(/\|/) } split(/\n/, $node->safe_psql('postgres',
	'SELECT a.id, a.view::text FROM keyedstate_internal.aggregation a'));
my %rows_of;
for my $line (split(/\n/, $node->safe_psql('postgres', q{
SELECT aggregation_id, checkpoint_id, chunk, is_full, first_key_group, last_key_group, nkeys,
	   encode(data, 'hex') FROM pristine ORDER BY 1, 2, 3})))
{
	my %r;
	@r{qw(aggregation_id checkpoint_id chunk is_full first_key_group last_key_group nkeys data)} =
	  split(/\|/, $line);
	$r{data} = pack('H*', $r{data});
	push @{ $rows_of{ $ids{ $r{aggregation_id} } } }, \%r;
}
is($node->safe_psql('postgres', qq{SELECT (SELECT count(*) FROM $aggs[-1]{name} WHERE c % 5 = 0) > 0
	AND (SELECT row_errors > 0 FROM keyedstate.status WHERE name = '$aggs[-1]{name}')}), 't',
	'the chunks of the last aggregation hold error rows');
is(scalar(grep { scalar(@{ $rows_of{ $_->{name} } // [] }) == 2 } @aggs), $naggs,
	'each aggregation has a full checkpoint and a delta');
is(scalar(grep { crc32c_ok($_) } map { @{ $rows_of{ $_->{name} } } } @aggs), 2 * $naggs,
	'every pristine chunk carries the CRC-32C the test computes');

sub crc32c_ok
{
	my ($r) = @_;
	return unpack('L', substr($r->{data}, 1, 4)) == chunk_crc($r);
}

my $plain_aggs = grep { $_->{plain} } @aggs;
note "$naggs aggregations, $plain_aggs with plain scalar values only";

# --- damaging a chunk

# random bytes
sub rbytes
{
	my ($n) = @_;
	return join('', map { chr(int(rand(256))) } 1 .. $n);
}

# A copy of row $r damaged one random way; bytes before $from stay.
sub damage
{
	my ($r, $from) = @_;
	my %m = %$r;
	my $len = length($m{data});
	my @kinds = qw(flip flip overwrite overwrite bytes zero swap insert delete truncate extend column);
	my $kind = $kinds[ int(rand(@kinds)) ];
	my $pos = $from + int(rand($len - $from));
	if ($kind eq 'flip')
	{
		substr($m{data}, $pos, 1) = chr(ord(substr($m{data}, $pos, 1)) ^ (1 + int(rand(255))));
	}
	elsif ($kind eq 'overwrite')
	{
		substr($m{data}, $pos, 1) = rbytes(1);
	}
	elsif ($kind eq 'bytes')
	{
		substr($m{data}, $from + int(rand($len - $from)), 1) = rbytes(1) for 1 .. 2 + int(rand(7));
	}
	elsif ($kind eq 'zero')
	{
		my $n = 1 + int(rand(16));
		$n = $len - $pos if $pos + $n > $len;
		substr($m{data}, $pos, $n) = "\0" x $n;
	}
	elsif ($kind eq 'swap')
	{
		my $n = 1 + int(rand(8));
		my $a = $from + int(rand($len - $from - 2 * $n));
		my $b = $a + $n + int(rand($len - $a - 2 * $n));
		my $x = substr($m{data}, $a, $n);
		substr($m{data}, $a, $n) = substr($m{data}, $b, $n);
		substr($m{data}, $b, $n) = $x;
	}
	elsif ($kind eq 'insert')
	{
		substr($m{data}, $pos, 0) = rbytes(1 + int(rand(8)));
	}
	elsif ($kind eq 'delete')
	{
		substr($m{data}, $pos, 1 + int(rand(8))) = '';
	}
	elsif ($kind eq 'truncate')
	{
		$m{data} = substr($m{data}, 0, $pos);
	}
	elsif ($kind eq 'extend')
	{
		$m{data} .= rbytes(1 + int(rand(16)));
	}
	else
	{
		my $col = (qw(nkeys nkeys first_key_group last_key_group is_full chunk))[ int(rand(6)) ];
		if ($col eq 'is_full') { $m{is_full} = $m{is_full} eq 't' ? 'f' : 't'; }
		elsif ($col eq 'chunk') { $m{chunk} += 1 + int(rand(3)); }
		else { $m{$col} += (-2, -1, 1, 2, 100)[ int(rand(5)) ]; }
		$kind = "column $col";
	}
	return (\%m, $kind);
}

# A copy of row $r with one to three bytes inside the transition states of
# one random key damaged, its lengths and published row left alone: the
# state bytes reach the deserialization and transition functions.
sub damage_states
{
	my ($r) = @_;
	my %m = %$r;
	my $len = length($m{data});
	my @regions;
	# the header: 18 bytes since format 5 (the offset and chain a last chunk binds), 6 before
	my $p = ord(substr($m{data}, 0, 1)) >= 5 ? 18 : 6;
	# per key: group (2 bytes), flags (1), time (8), then three lengths with their bytes
	while ($p + 11 <= $len)
	{
		$p += 11;
		my $klen = unpack('L', substr($m{data}, $p, 4));
		$p += 4 + $klen;
		my $slen = unpack('L', substr($m{data}, $p, 4));
		push @regions, [ $p + 4, $slen ] if $slen > 0;
		$p += 4 + $slen;
		$p += 4 + unpack('L', substr($m{data}, $p, 4));
	}
	my ($at, $n) = @{ $regions[ int(rand(@regions)) ] };
	my $kind = (qw(flip overwrite bytes))[ int(rand(3)) ];
	for (1 .. ($kind eq 'bytes' ? 3 : 1))
	{
		my $pos = $at + int(rand($n));
		substr($m{data}, $pos, 1) = $kind eq 'flip'
		  ? chr(ord(substr($m{data}, $pos, 1)) ^ (1 + int(rand(255))))
		  : rbytes(1);
	}
	return (\%m, "state $kind");
}

# SQL that replaces a pristine row by a damaged one.
sub update_sql
{
	my ($orig, $m) = @_;
	return sprintf(q{UPDATE keyedstate_internal.state SET data = '\x%s', chunk = %d, is_full = %s,
	first_key_group = %d, last_key_group = %d, nkeys = %d
 WHERE aggregation_id = %d AND checkpoint_id = %d AND chunk = %d;
}, unpack('H*', $m->{data}), $m->{chunk}, $m->{is_full} eq 't' ? 'true' : 'false',
		$m->{first_key_group}, $m->{last_key_group}, $m->{nkeys},
		$orig->{aggregation_id}, $orig->{checkpoint_id}, $orig->{chunk});
}

# Whether a damaged row differs from its pristine one.
sub changed
{
	my ($o, $m) = @_;
	return scalar(grep { $o->{$_} ne $m->{$_} }
		  qw(data chunk is_full first_key_group last_key_group nkeys));
}

# (damage and repair by hand: keyedstate.allow_state_writes lets a superuser write the rows)
my $restore_sql = 'SET LOCAL keyedstate.allow_state_writes = on; DELETE FROM keyedstate_internal.state; INSERT INTO keyedstate_internal.state SELECT * FROM pristine;';

# --- watching a recovery

# The aggregations whose recovery the server log reports since $offset:
# those that recovered, and those that failed (with the error's message,
# details and contexts), and the log itself.
sub log_outcomes
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my (%recovered, @errors, %open, $last);
	for my $line (split(/\n/, $log))
	{
		if ($line =~ /^\t/ && defined($last))
		{
			$last->{text} .= "\n$line";
			next;
		}
		next unless $line =~ /\[(\d+)\] (?:\S+ )?(LOG|ERROR|DETAIL|HINT|CONTEXT|STATEMENT|WARNING|FATAL|PANIC):  (.*)$/;
		my ($pid, $level, $msg) = ($1, $2, $3);
		if ($level eq 'LOG' && $msg =~ /^keyedstate aggregation public\.(a\d\d) recovered/)
		{
			$recovered{$1} = 1;
			$last = undef;
		}
		elsif ($level eq 'ERROR')
		{
			$last = $open{$pid} = { message => $msg, text => $line };
			push @errors, $last;
		}
		elsif ($level =~ /^(DETAIL|HINT|CONTEXT)$/ && $open{$pid})
		{
			$open{$pid}{text} .= "\n$line";
			$last = $open{$pid};
		}
		else
		{
			$last = undef;
		}
	}
	my %failed;
	for my $e (@errors)
	{
		$failed{$1} = $e if $e->{text} =~ /aggregation public\.(a\d\d)\b/;
	}
	return (\%recovered, \%failed, $log);
}

# SIGTERM the worker (the launcher starts a new one, which recovers every
# aggregation), then wait until each one recovered or failed; returns the
# outcome per aggregation.
sub recover_all
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
								 WHERE backend_type = 'keyedstate worker'});
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		my ($recovered, $failed, $log) = log_outcomes($offset);
		die "a server process crashed:\n$log" if $log =~ /terminated by signal|server process .* was terminated/;
		if (scalar(keys %$recovered) + scalar(keys %$failed) >= $naggs)
		{
			my %state = map { split(/\|/, $_, 2) } split(/\n/, $node->safe_psql('postgres',
				"SELECT name, state || '|' || coalesce(error, '') FROM keyedstate.status"));
			my %outcome;
			for my $a (@aggs)
			{
				my ($st, $err) = split(/\|/, $state{ $a->{name} }, 2);
				if ($recovered->{ $a->{name} } && $st eq 'running')
				{
					$outcome{ $a->{name} } = { state => 'running' };
				}
				elsif ($failed->{ $a->{name} } && $st eq 'failed')
				{
					$outcome{ $a->{name} } = { state => 'failed', error => $err,
						log => $failed->{ $a->{name} }{text} };
				}
			}
			return \%outcome if scalar(keys %outcome) == $naggs;
		}
		sleep(0.1);
	}
	my ($recovered, $failed, $log) = log_outcomes($offset);
	die "recovery did not finish for every aggregation:\n$log";
}

# For each aggregation of a list: the rows in which its view and its oracle
# differ, after reading the view whole as text; undef and the error if that
# failed.  All in one query, or one by one when that fails.
sub compare
{
	my @list = @_;
	my %result;
	my $sql = join("\nUNION ALL\n", map { my $v = $_->{view} // $_->{name}; qq{SELECT '$_->{name}',
	(SELECT count(*) FROM (SELECT x::text FROM $v x) r),
	(SELECT count(*) FROM ((SELECT * FROM $v v EXCEPT ALL $_->{oracle})
		UNION ALL ($_->{oracle} EXCEPT ALL SELECT * FROM $v v)) d)} } @list);
	return {} unless @list;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	if ($ret == 0)
	{
		for my $line (split(/\n/, $out))
		{
			my ($name, undef, $m) = split(/\|/, $line);
			$result{$name} = [ $m, '' ];
		}
		return \%result;
	}
	return { map { %{ compare($_) } } @list } if @list > 1;
	return { $list[0]{name} => [ undef, $err ] };
}

my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my %count;				# outcome counts per mode
my @problems;
my %kinds;
my %details;			# what the errors said
my $cases = 0;

for my $round (1 .. $rounds)
{
	my $forge = ($round % 2 == 0);
	my $sql = "BEGIN; $restore_sql";
	my %case;
	for my $a (@aggs)
	{
		my $rows = $rows_of{ $a->{name} };
		my $orig = $rows->[ int(rand(@$rows)) ];
		my $mode = !$forge ? 'plain' : $a->{plain} ? 'forged' : 'forged states';
		my ($m, $kind) = $mode eq 'forged states' ? damage_states($orig)
		  : damage($orig, $mode eq 'forged' ? 5 : 0);
		if ($mode ne 'plain' && length($m->{data}) >= 6)
		{
			substr($m->{data}, 1, 4) = pack('L', chunk_crc($m));
		}
		$case{ $a->{name} } = {
			mode => $mode,
			kind => $kind,
			changed => changed($orig, $m),
		};
		$kinds{$kind}++;
		$sql .= update_sql($orig, $m);
	}
	$node->safe_psql('postgres', "$sql COMMIT;");

	my $outcome = recover_all();
	my $compared = compare(grep { $outcome->{ $_->{name} }{state} eq 'running' } @aggs);
	my @resume;
	for my $a (@aggs)
	{
		my $c = $case{ $a->{name} };
		my $o = $outcome->{ $a->{name} };
		my $what = "round $round, $a->{name}, $c->{mode} $c->{kind}";
		$cases++;
		if ($o->{state} eq 'failed')
		{
			push @resume, $a->{name};
			if ($o->{error} =~ /^checkpoint of aggregation public\.$a->{name} is corrupted$/)
			{
				$count{"$c->{mode} failed clearly"}++;
				# what the detail says, numbers left out
				if ($o->{log} =~ /DETAIL:  (.*)/)
				{
					(my $d = $1) =~ s/\b[0-9A-F]{8}\b|(?<![\w-])-?\d+\b/N/g;
					$d =~ s/"[^"]*"/"C"/g;
					$details{"$c->{mode}: $d"}++;
				}
			}
			else
			{
				push @problems, "$what: failed with another error: $o->{error}";
			}
			push @problems, "$what: an unchanged chunk failed: $o->{log}" unless $c->{changed};
			next;
		}
		my ($m, $err) = @{ $compared->{ $a->{name} } };
		if (!defined($m) && $c->{mode} ne 'plain' && $a->{errors}
			&& $err =~ /could not compute the row of a key/)
		{
			# a forged chunk marking other columns of an error row as failed
			$count{"$c->{mode} recovered other error rows"}++;
		}
		elsif (!defined($m))
		{
			push @problems, "$what: the view cannot be read: $err";
		}
		elsif ($m eq '0')
		{
			$count{"$c->{mode} recovered exactly"}++;
			$count{"$c->{mode} recovered exactly, unchanged"}++ unless $c->{changed};
		}
		elsif ($c->{mode} ne 'plain')
		{
			# a forged chunk of well-formed values recovers them, wrong or not
			$count{"$c->{mode} recovered other well-formed values"}++;
		}
		else
		{
			push @problems, "$what: recovered with $m wrong rows";
		}
		push @problems, "$what: a damaged chunk recovered without a forged CRC"
		  if $c->{mode} eq 'plain' && $c->{changed};
	}

	# restored rows: resume() recovers exact views
	$node->safe_psql('postgres', "BEGIN; $restore_sql COMMIT;");
	my @failed = @resume;
	if (@failed)
	{
		$node->safe_psql('postgres',
			join('', map { "SELECT keyedstate.resume('$_');" } @failed));
		my $list = join(',', map { "'$_'" } @failed);
		ks_wait_for($node, 'postgres',
			"SELECT bool_and(state = 'running') FROM keyedstate.status WHERE name IN ($list)", 60)
		  or push @problems, "round $round: resumed aggregations did not run again";
		my $again = compare(map { $agg_by_name{$_} } @failed);
		for my $name (@failed)
		{
			my ($m, $err) = @{ $again->{$name} };
			push @problems, "round $round, $name: not exact after resume() ("
			  . ($m // $err) . ')'
			  unless defined($m) && $m eq '0';
		}
	}
	is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time,
		"round $round: the server never restarted");
}

# last, every aggregation recovers the restored rows exactly
my $outcome = recover_all();
my $final = compare(@aggs);
my @inexact = grep {
	my ($m) = @{ $final->{ $_->{name} } };
	$outcome->{ $_->{name} }{state} ne 'running' || !defined($m) || $m ne '0'
} @aggs;
is(join(', ', map { $_->{name} } @inexact), '', 'every aggregation recovers the restored checkpoint exactly');


# the recovered states, not only the recovered rows, are exact: more rows
# for every key, aggregated on top of them
insert_rows('generate_series(1, 600) i');
$node->safe_psql('postgres', 'SELECT keyedstate.sync(name, \'2 min\') FROM keyedstate.aggregations');
$final = compare(@aggs);
is(join(', ', map { $_->{name} } grep { ($final->{ $_->{name} }[0] // '') ne '0' } @aggs), '',
	'the recovered states go on exactly with more rows');

# chunks deleted by hand: the catalog knows how many chunks the committed
# checkpoint's chain has, so all of one aggregation's chunks gone, or a
# whole checkpoint of another, fail as damaged, not as fewer keys
$node->safe_psql('postgres', q{SELECT keyedstate.checkpoint(name) FROM keyedstate.aggregations;
CREATE TABLE saved AS SELECT * FROM keyedstate_internal.state;});
my ($gone_all, $gone_one) = map { $_->{name} } @aggs[0, 1];
$node->safe_psql('postgres', qq{SET keyedstate.allow_state_writes = on;
DELETE FROM keyedstate_internal.state s USING keyedstate_internal.aggregation a
 WHERE a.view = '$gone_all'::regclass AND s.aggregation_id = a.id;
DELETE FROM keyedstate_internal.state s USING keyedstate_internal.aggregation a
 WHERE a.view = '$gone_one'::regclass AND s.aggregation_id = a.id
   AND s.checkpoint_id = (SELECT max(checkpoint_id) FROM keyedstate_internal.state WHERE aggregation_id = a.id);});
# (a kill, not a stop: a stopping worker's last checkpoint may be a full one from its memory)
ks_kill_worker($node, 'postgres');
for my $name ($gone_all, $gone_one)
{
	ok(ks_wait_for($node, 'postgres', qq{SELECT state = 'failed' AND error = 'checkpoint of aggregation public.$name is corrupted'
		FROM keyedstate.status WHERE name = '$name'}, 60),
		"$name, with " . ($name eq $gone_all ? 'every chunk' : 'its newest checkpoint') . ' deleted, fails as damaged')
	  or diag($node->safe_psql('postgres', "SELECT state, error FROM keyedstate.status WHERE name = '$name'"));
}
$node->safe_psql('postgres', qq{SET keyedstate.allow_state_writes = on;
DELETE FROM keyedstate_internal.state; INSERT INTO keyedstate_internal.state SELECT * FROM saved;
SELECT keyedstate.resume('$gone_all'); SELECT keyedstate.resume('$gone_one');});
ok(ks_wait_for($node, 'postgres', "SELECT bool_and(state = 'running') FROM keyedstate.status WHERE name IN ('$gone_all', '$gone_one')", 60),
	'... and runs again once they are back');
$final = compare(map { $agg_by_name{$_} } $gone_all, $gone_one);
is(join(', ', grep { ($final->{$_}[0] // '') ne '0' } $gone_all, $gone_one), '', '... exactly');

# the catalog rows of parts are read back too (review bytes 62, F3, F6):
# parts whose key groups overlap would count a group's rows twice, and a
# part seeded from what is not its own retired parts would load another
# aggregation's keys; either fails the aggregation as damaged, at once
$node->safe_psql('postgres', q{CREATE TABLE pev (id bigserial PRIMARY KEY, k int NOT NULL);
INSERT INTO pev (k) SELECT i % 97 FROM generate_series(1, 3000) i;
SELECT keyedstate.create_aggregation('parts2', 'SELECT k, count(*) AS n FROM pev GROUP BY k', parallelism => 2);
SELECT keyedstate.sync('parts2', '1 min'); SELECT keyedstate.checkpoint('parts2');
CREATE TABLE saved_parts AS SELECT * FROM keyedstate_internal.part;});
my $parts_oracle = 'SELECT k, count(*) AS n FROM pev GROUP BY k';
$node->safe_psql('postgres', q{UPDATE keyedstate_internal.part SET first_key_group = 0
 WHERE aggregation_id = (SELECT id FROM keyedstate_internal.aggregation WHERE view = 'parts2'::regclass) AND part = 1});
ks_kill_worker($node, 'postgres');
ok(ks_wait_for($node, 'postgres', q{SELECT state = 'failed' AND error = 'checkpoint of aggregation public.parts2 is corrupted'
	FROM keyedstate.status WHERE name = 'parts2'}, 60), 'parts whose key groups overlap fail as damaged')
  or diag($node->safe_psql('postgres', "SELECT state, error FROM keyedstate.status WHERE name = 'parts2'"));
like(scalar(slurp_file($node->logfile)), qr/DETAIL:  Its part 1 has key groups 0 to 127, but part 1 of 2 has groups 64 to 127\./,
	'... and say which part');
$node->safe_psql('postgres', q{UPDATE keyedstate_internal.part p SET first_key_group = s.first_key_group
 FROM saved_parts s WHERE s.id = p.id; SELECT keyedstate.resume('parts2');});
ok(ks_wait_for($node, 'postgres', "SELECT state = 'running' FROM keyedstate.status WHERE name = 'parts2'", 60),
	'... and run again once the rows are back');
$node->safe_psql('postgres', q{INSERT INTO pev (k) SELECT i % 97 FROM generate_series(1, 500) i;
SELECT keyedstate.sync('parts2', '1 min');});
is(ks_mismatches($node, 'postgres', 'SELECT * FROM parts2', $parts_oracle), '0', '... exactly');

# a rescale's new parts are seeded from the retired ones; seeds edited (in
# the rescale's transaction, before any part could load) to name another
# aggregation fail at once, not after a wait for that one
$node->safe_psql('postgres', q{SELECT keyedstate.checkpoint('parts2');
BEGIN;
SELECT keyedstate.alter_aggregation('parts2', parallelism => 3);
CREATE TABLE saved_seeds AS SELECT id, seed_from FROM keyedstate_internal.part WHERE seed_from IS NOT NULL;
UPDATE keyedstate_internal.part SET seed_from = ARRAY[(SELECT min(id) FROM keyedstate_internal.aggregation)]
 WHERE seed_from IS NOT NULL;
COMMIT;});
ok(ks_wait_for($node, 'postgres', q{SELECT state = 'failed' AND error = 'checkpoint of aggregation public.parts2 is corrupted'
	FROM keyedstate.status WHERE name = 'parts2'}, 30), 'a part seeded from another aggregation fails as damaged')
  or diag($node->safe_psql('postgres', "SELECT state, error FROM keyedstate.status WHERE name = 'parts2'"));
$node->safe_psql('postgres', q{UPDATE keyedstate_internal.part p SET seed_from = s.seed_from FROM saved_seeds s
 WHERE s.id = p.id; SELECT keyedstate.resume('parts2');});
ok(ks_wait_for($node, 'postgres', "SELECT state = 'running' FROM keyedstate.status WHERE name = 'parts2'", 60),
	'... and the rescale goes on once its seeds are back');
$node->safe_psql('postgres', q{INSERT INTO pev (k) SELECT i % 97 FROM generate_series(1, 500) i;
SELECT keyedstate.sync('parts2', '1 min');});
is(ks_mismatches($node, 'postgres', 'SELECT * FROM parts2', $parts_oracle), '0', '... exactly');

# the offset and the chain of the committed checkpoint are bound to its
# last chunk (review bytes 62, F4): an offset edited by hand (rows counted
# twice or skipped), or the newest checkpoint deleted with the number of
# chunks lowered to match, fail as damaged
$node->safe_psql('postgres', q{SELECT keyedstate.create_aggregation('bound1', 'SELECT k, count(*) AS n FROM pev GROUP BY k');
SELECT keyedstate.sync('bound1', '1 min'); SELECT keyedstate.checkpoint('bound1');});
my $bound_where = q{WHERE view = 'bound1'::regclass};
# (edited while paused, once its last checkpoint is in: a running worker
# may checkpoint again, an offset the sequence moved past with no row, and
# so undo the edit before it loads, a CI failure; then a kill, after which
# resume() loads it from the catalog)
sub pause_bound1
{
	$node->safe_psql('postgres', q{SELECT keyedstate.pause('bound1')});
	ks_wait_for($node, 'postgres', q{SELECT state = 'paused' AND checkpointed_offset = consumed_offset
		FROM keyedstate.status WHERE name = 'bound1'}, 60) or die 'bound1 did not pause';
}
for my $edit ('checkpointed_offset - 100', 'checkpointed_offset + 100')
{
	pause_bound1();
	$node->safe_psql('postgres', "UPDATE keyedstate_internal.aggregation SET checkpointed_offset = $edit $bound_where");
	ks_kill_worker($node, 'postgres');
	$node->safe_psql('postgres', q{SELECT keyedstate.resume('bound1')});
	ok(ks_wait_for($node, 'postgres', q{SELECT state = 'failed' AND error = 'checkpoint of aggregation public.bound1 is corrupted'
		FROM keyedstate.status WHERE name = 'bound1'}, 60), "an offset edited to $edit fails as damaged")
	  or diag($node->safe_psql('postgres', "SELECT state, error FROM keyedstate.status WHERE name = 'bound1'"));
	(my $undo = $edit) =~ tr/+-/-+/;
	$node->safe_psql('postgres', "UPDATE keyedstate_internal.aggregation SET checkpointed_offset = $undo $bound_where; SELECT keyedstate.resume('bound1');");
	ok(ks_wait_for($node, 'postgres', "SELECT state = 'running' FROM keyedstate.status WHERE name = 'bound1'", 60),
		'... and runs again once it is back');
}
like(scalar(slurp_file($node->logfile)), qr/DETAIL:  Checkpoint \d+ was taken at offset \d+, but its catalog row says \d+\./,
	'... saying what disagrees');
$node->safe_psql('postgres', q{INSERT INTO pev (k) SELECT i % 97 FROM generate_series(1, 300) i;
SELECT keyedstate.sync('bound1', '1 min'); SELECT keyedstate.checkpoint('bound1');});
pause_bound1();
$node->safe_psql('postgres', q{CREATE TABLE saved_bound AS SELECT s.* FROM keyedstate_internal.state s JOIN keyedstate_internal.aggregation a
 ON a.id = s.aggregation_id WHERE a.view = 'bound1'::regclass AND s.checkpoint_id = a.checkpoint_id;});
$node->safe_psql('postgres', qq{SET keyedstate.allow_state_writes = on;
UPDATE keyedstate_internal.aggregation SET checkpoint_chunks = checkpoint_chunks - (SELECT count(*) FROM saved_bound) $bound_where;
DELETE FROM keyedstate_internal.state s USING saved_bound b
 WHERE s.aggregation_id = b.aggregation_id AND s.checkpoint_id = b.checkpoint_id;});
ks_kill_worker($node, 'postgres');
$node->safe_psql('postgres', q{SELECT keyedstate.resume('bound1')});
ok(ks_wait_for($node, 'postgres', q{SELECT state = 'failed' AND error = 'checkpoint of aggregation public.bound1 is corrupted'
	FROM keyedstate.status WHERE name = 'bound1'}, 60), 'the newest checkpoint deleted with its chunks uncounted fails as damaged')
  or diag($node->safe_psql('postgres', "SELECT state, error FROM keyedstate.status WHERE name = 'bound1'"));
$node->safe_psql('postgres', qq{SET keyedstate.allow_state_writes = on;
INSERT INTO keyedstate_internal.state SELECT * FROM saved_bound;
UPDATE keyedstate_internal.aggregation SET checkpoint_chunks = checkpoint_chunks + (SELECT count(*) FROM saved_bound) $bound_where;
SELECT keyedstate.resume('bound1');});
ok(ks_wait_for($node, 'postgres', "SELECT state = 'running' FROM keyedstate.status WHERE name = 'bound1'", 60),
	'... and runs again once it is back');
$node->safe_psql('postgres', q{INSERT INTO pev (k) SELECT i % 97 FROM generate_series(1, 200) i;
SELECT keyedstate.sync('bound1', '1 min');});
is(ks_mismatches($node, 'postgres', 'SELECT * FROM bound1', $parts_oracle), '0', '... exactly');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal (?!9:)/, 'no server process crashed (but the worker killed on purpose)');
is(join("\n", @problems), '', "each of $cases damaged checkpoints failed clearly or recovered exactly");
ok($cases >= 1000, "at least 1000 cases ($cases)");
ok(($count{'forged failed clearly'} // 0) > 0 && ($count{'plain failed clearly'} // 0) > 0,
	'damage was found both by the CRC and behind a forged CRC');
note "cases: $cases in $rounds rounds";
note "$_: $count{$_}" for sort keys %count;
note 'damage: ' . join(', ', map { "$_ $kinds{$_}" } sort keys %kinds);
note "found: $details{$_} x $_" for sort { $details{$b} <=> $details{$a} || $a cmp $b } keys %details;

$node->stop;
done_testing();
