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
 *	  pass-by-value types: typlen bytes, as a heap tuple stores them
 *	    (store_att_byval), read back with fetch_att: the Datum read is the
 *	    canonical one a fresh heap read gives, whatever the upper bits of
 *	    the Datum written were
 *	  fixed-length by-reference types: typlen bytes
 *	  varlena (typlen -1): 4-byte length, then the bytes of the plain
 *	    4-byte-header varlena (detoasted, expanded objects flattened)
 *	  cstring (typlen -2): 4-byte length including the NUL, then the bytes
 * Integers are written in native byte order.
 *
 * Reading never trusts the bytes: every length, flag and header is checked
 * against what is left before it is used, and anything wrong raises
 * KsCheckpointCorrupted naming the aggregation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_SERIALIZE_H
#define KS_SERIALIZE_H

#include "keyedstate.h"

#include "access/tupdesc.h"
#include "lib/stringinfo.h"

/* Bytes being read back: the next byte, the end, and whose they are. */
typedef struct KsReader
{
	const char *pos;
	const char *end;
	const char *aggname;		/* for KsCheckpointCorrupted */
} KsReader;

/* Start reading `len` bytes at `data` of aggregation `aggname`. */
static inline void
KsReaderInit(KsReader *r, const char *data, Size len, const char *aggname)
{
	r->pos = data;
	r->end = data + len;
	r->aggname = aggname;
}

/* Bytes not read yet. */
static inline Size
KsReaderLeft(const KsReader *r)
{
	return (Size) (r->end - r->pos);
}

/*
 * The one error for checkpoint data that does not hold what it should:
 * ERRCODE_DATA_CORRUPTED, "checkpoint of aggregation %s is corrupted", and
 * the formatted detail saying what was wrong (a full sentence).
 */
extern void KsCheckpointCorrupted(const char *aggname, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();

/*
 * The canonical Datum of a pass-by-value value of length typlen: what
 * fetch_att gives after store_att_byval, i.e. only the typlen-significant
 * bits count, sign-extended as Int32GetDatum and friends do.
 */
static inline Datum
KsCanonicalByVal(Datum value, int16 typlen)
{
	switch (typlen)
	{
		case 1:
			return CharGetDatum(DatumGetChar(value));
		case 2:
			return Int16GetDatum(DatumGetInt16(value));
		case 4:
			return Int32GetDatum(DatumGetInt32(value));
		default:
			return value;
	}
}

/* Append one value to buf. */
extern void KsWriteDatum(StringInfo buf, Datum value, bool isnull,
						 int16 typlen, bool typbyval);

/*
 * Read one value, advancing the reader.  By-reference values are palloc'd
 * in CurrentMemoryContext; by-value ones are canonical.  `what` names the
 * value for the error detail ("a key", "a transition state").
 */
extern Datum KsReadDatum(KsReader *r, bool *isnull, int16 typlen, bool typbyval,
						 const char *what);

/*
 * A copy of a value in CurrentMemoryContext that refers to nothing outside
 * itself: a value stored out of line in a table's TOAST relation is
 * fetched, an expanded object flattened.  Keys and states outlive the
 * input rows they came from, which may be deleted and vacuumed away.
 */
extern Datum KsDatumCopyOwned(Datum value, bool typbyval, int16 typlen);

/* Fixed-size helpers with the same error behaviour. */
extern void KsWriteUint32(StringInfo buf, uint32 value);
extern uint32 KsReadUint32(KsReader *r, const char *what);
extern uint8 KsReadUint8(KsReader *r, const char *what);
extern void KsWriteBytes(StringInfo buf, const void *data, uint32 len);

/*
 * Start a length-prefixed byte run whose bytes the caller appends next, in
 * place (KsReadBytes reads it back); returns where its length goes, for
 * KsEndBytes to fill in.
 */
extern int	KsBeginBytes(StringInfo buf);
extern void KsEndBytes(StringInfo buf, int at);

/* Reads a length-prefixed byte run written by KsWriteBytes; no copy. */
extern const char *KsReadBytes(KsReader *r, uint32 *len, const char *what);

/*
 * Check that a stored view row is a MinimalTuple of row type `desc` that
 * readers can deform without reading outside its `rowlen` bytes; raises
 * KsCheckpointCorrupted for aggregation `aggname` otherwise.
 */
extern void KsCheckStoredRow(const char *aggname, TupleDesc desc, const char *row,
							 uint32 rowlen);

#endif							/* KS_SERIALIZE_H */
