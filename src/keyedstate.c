/*-------------------------------------------------------------------------
 *
 * keyedstate.c
 *	  Module entry point: _PG_init calls each part's init function.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "crashguard.h"
#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "hooks.h"
#include "source.h"

PG_MODULE_MAGIC;

/*
 * Load the module.  Settings are always defined (so that they can be set
 * per session and are reserved), but shared memory, the launcher, the
 * utility hook and the permission-check hook (writers.c) exist only when loaded
 * through shared_preload_libraries;
 * without it, every function that needs the worker says so.
 */
void
_PG_init(void)
{
	KsSettingsInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	KsShmemInit();
	KsCrashGuardInit();
	KsLauncherInit();
	KsHooksInit();
	KsWritersInit();
	KsOrphansInit();
}
