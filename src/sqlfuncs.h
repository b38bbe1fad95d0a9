/*-------------------------------------------------------------------------
 *
 * sqlfuncs.h
 *	  SQL-callable functions, the wake-up trigger and the utility hook.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SQLFUNCS_H
#define KS_SQLFUNCS_H

#include "keyedstate.h"

/* Install the utility hook (DROP EXTENSION); called from _PG_init. */
extern void KsSqlFuncsInit(void);

#endif							/* KS_SQLFUNCS_H */
