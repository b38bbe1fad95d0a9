# keyedstate: PGXS build
MODULE_big = keyedstate
OBJS = \
	src/keyedstate.o \
	src/settings.o \
	src/shmem.o \
	src/crashguard.o \
	src/dbslots.o \
	src/wakeups.o \
	src/pool.o \
	src/poolshare.o \
	src/progress.o \
	src/waitwords.o \
	src/store.o \
	src/storewrite.o \
	src/storeread.o \
	src/storefree.o \
	src/serialize.o \
	src/rowbuild.o \
	src/rowerror.o \
	src/keytable.o \
	src/keyshape.o \
	src/keycompact.o \
	src/keydirty.o \
	src/aggcall.o \
	src/aggserial.o \
	src/apply.o \
	src/definition.o \
	src/pinned.o \
	src/inputorder.o \
	src/callcheck.o \
	src/catalog.o \
	src/catalogparts.o \
	src/source.o \
	src/sourcetree.o \
	src/writers.o \
	src/sourceddl.o \
	src/sourcedefaults.o \
	src/offsets.o \
	src/publish.o \
	src/expire.o \
	src/evict.o \
	src/cold.o \
	src/colddelete.o \
	src/coldfilter.o \
	src/coldread.o \
	src/coldplace.o \
	src/coldseed.o \
	src/coldsweep.o \
	src/window.o \
	src/windowquery.o \
	src/checkpoint.o \
	src/ckptcommit.o \
	src/recovery.o \
	src/chunkcheck.o \
	src/seed.o \
	src/run.o \
	src/owner.o \
	src/runlife.o \
	src/runbound.o \
	src/step.o \
	src/worker.o \
	src/launcher.o \
	src/liveview.o \
	src/lookup.o \
	src/lookupexec.o \
	src/livewrite.o \
	src/create.o \
	src/arguments.o \
	src/control.o \
	src/alter.o \
	src/hooks.o \
	src/hookoffsets.o \
	src/hookpartitions.o \
	src/hooksource.o \
	src/waketrig.o \
	src/dbhooks.o \
	src/keytypes.o \
	src/aggguard.o \
	src/restore.o \
	src/restoredata.o \
	src/orphans.o \
	src/absent.o \
	src/tempdeps.o

EXTENSION = keyedstate
DATA = $(wildcard sql/keyedstate--*.sql)
PGFILEDESC = "keyedstate - exact continuous keyed aggregation"

# pg_regress tests run against a private, preloaded temporary instance
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/keyedstate--%,$(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=$(srcdir)/test/regress.conf

TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS = -I$(srcdir)/src
# Warnings are errors.  -Wextra except unused parameters, which PostgreSQL's
# own callback interfaces (hooks, FDW routines, signal handlers) and
# headers are full of.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Werror

EXTRA_CLEAN = tmp_check tmp_check_regress results regression.diffs regression.out log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when a header changes
$(OBJS): $(wildcard $(srcdir)/src/*.h)
