/*-------------------------------------------------------------------------
 *
 * serialize.h
 *	  Byte form of Datums, for keys and transition states in checkpoints.
 *
 * The form is the in-memory image of the value (detoasted and flattened),
 * so it is only meaningful inside the cluster that wrote it, like the rest
 * of the data directory.  Layout of one value:
 *	1 byte		0 = NULL, 1 = present
 *	then, if present:
 *	  pass-by-value types: typlen bytes of the value
 *	  fixed-length by-reference types: typlen bytes
 *	  varlena (typlen -1): 4-byte length, then the bytes of the plain
 *	    4-byte-header varlena (detoasted, expanded objects flattened)
 *	  cstring (typlen -2): 4-byte length including the NUL, then the bytes
 * Integers are written in native byte order.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SERIALIZE_H
#define KS_SERIALIZE_H

#include "keyedstate.h"

#include "lib/stringinfo.h"

/* Append one value to buf. */
extern void KsWriteDatum(StringInfo buf, Datum value, bool isnull,
						 int16 typlen, bool typbyval);

/*
 * Read one value at *pos (not beyond end), advancing *pos.  By-reference
 * values are palloc'd in CurrentMemoryContext.  Truncated or malformed input
 * raises ERRCODE_DATA_CORRUPTED.
 */
extern Datum KsReadDatum(const char **pos, const char *end, bool *isnull,
						 int16 typlen, bool typbyval);

/*
 * A copy of a value in CurrentMemoryContext that refers to nothing outside
 * itself: a value stored out of line in a table's TOAST relation is
 * fetched, an expanded object flattened.  Keys and states outlive the
 * input rows they came from, which may be deleted and vacuumed away.
 */
extern Datum KsDatumCopyOwned(Datum value, bool typbyval, int16 typlen);

/* Fixed-size helpers with the same error behaviour. */
extern void KsWriteUint32(StringInfo buf, uint32 value);
extern uint32 KsReadUint32(const char **pos, const char *end);
extern void KsWriteBytes(StringInfo buf, const void *data, uint32 len);

/*
 * Start a length-prefixed byte run whose bytes the caller appends next, in
 * place (KsReadBytes reads it back); returns where its length goes, for
 * KsEndBytes to fill in.
 */
extern int	KsBeginBytes(StringInfo buf);
extern void KsEndBytes(StringInfo buf, int at);

/* Reads a length-prefixed byte run written by KsWriteBytes; no copy. */
extern const char *KsReadBytes(const char **pos, const char *end, uint32 *len);

#endif							/* KS_SERIALIZE_H */
