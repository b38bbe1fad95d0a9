#!/usr/bin/perl
# The house rules of src/ that a compiler does not check, checked on every
# test run (test/run-tests.sh):
#   1. only the shared-memory and store files take LWLocks;
#   2. no two parts include each other's headers, directly or in a circle
#      (a part is a header and the .c files it declares, see keyedstate.h);
#   3. no source file is much over 600 lines.
# Prints one line per rule and exits non-zero if one is broken.
use strict;
use warnings;
use File::Basename;
use FindBin;

my $src = "$FindBin::Bin/../src";
my %lock_owners = map { $_ => 1 } qw(shmem.c dbslots.c pool.c poolshare.c progress.c store.c storewrite.c storeread.c);
# .c files declared by another part's header
my %part_of = (dbslots => 'shmem', wakeups => 'shmem', pool => 'shmem', poolshare => 'shmem', progress => 'shmem', waitwords => 'shmem', storewrite => 'store',
	storeread => 'store', catalogparts => 'catalog', offsets => 'source', sourcetree => 'source', writers => 'source', lookupexec => 'lookup',
	create => 'hooks', control => 'hooks', alter => 'hooks', restore => 'hooks', absent => 'hooks', aggserial => 'aggcall',
	keydirty => 'keytable', keyshape => 'keytable', coldread => 'cold', windowquery => 'window', ckptcommit => 'checkpoint', seed => 'recovery', chunkcheck => 'recovery');
my $max_lines = 630;
my $broken = 0;

sub part { my $b = basename(shift); $b =~ s/\.[ch]$//; return $part_of{$b} // $b; }

sub slurp { my $f = shift; open(my $fh, '<', $f) or die "$f: $!"; local $/; return <$fh>; }

my @files = sort(glob("$src/*.c"), glob("$src/*.h"));

# 1. locks
my @lockers = grep { slurp($_) =~ /\bLWLock(Acquire|ConditionalAcquire)\s*\(/ } @files;
my @stray = grep { !$lock_owners{basename($_)} } @lockers;
printf "LWLocks taken in: %s\n", join(' ', map { basename($_) } @lockers);
if (@stray) { print "BROKEN: LWLocks taken outside the shared-memory and store files: @stray\n"; $broken = 1; }

# 2. include cycles between parts
my %deps;
for my $f (@files)
{
	my $from = part($f);
	for my $inc (slurp($f) =~ /^#include "([^"]+)"/mg)
	{
		next if $inc eq 'keyedstate.h' || !-e "$src/$inc";
		my $to = part($inc);
		$deps{$from}{$to} = 1 if $to ne $from;
	}
}
my (%state, @cycle);
sub visit
{
	my ($p, @path) = @_;
	return if @cycle;
	$state{$p} = 1;
	for my $q (sort keys %{ $deps{$p} // {} })
	{
		if (($state{$q} // 0) == 1) { @cycle = (@path, $p, $q); return; }
		visit($q, @path, $p) unless $state{$q};
		return if @cycle;
	}
	$state{$p} = 2;
}
visit($_) for sort keys %deps;
printf "parts including other parts: %d, with %d dependencies, no circle unless said below\n", scalar(keys %deps),
	scalar(map { keys %$_ } values %deps);
if (@cycle) { print "BROKEN: parts include each other: @cycle\n"; $broken = 1; }

# 3. file sizes
my @long;
for my $f (grep { /\.c$/ } @files)
{
	my $n = () = slurp($f) =~ /\n/g;
	push @long, basename($f) . " ($n)" if $n > $max_lines;
}
if (@long) { print "BROKEN: source files over $max_lines lines: @long\n"; $broken = 1; }
else { print "no source file over $max_lines lines\n"; }

exit $broken;
