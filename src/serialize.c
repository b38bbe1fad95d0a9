/*-------------------------------------------------------------------------
 *
 * serialize.c
 *	  Byte form of Datums for checkpoints, and the checks on reading them
 *	  and the checkpointed view rows back.  See serialize.h for the layout.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/toast_compression.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#include "rowerror.h"
#include "serialize.h"

/* The error for corrupted checkpoint data (see serialize.h). */
void
KsCheckpointCorrupted(const char *aggname, const char *fmt,...)
{
	StringInfoData detail;

	initStringInfo(&detail);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("checkpoint of aggregation %s is corrupted", aggname),
			 errdetail_internal("%s", detail.data),
			 errhint("Call keyedstate.rebuild() to recompute it from its source table.")));
	pg_unreachable();
}

/* A self-contained copy of a value (see serialize.h). */
Datum
KsDatumCopyOwned(Datum value, bool typbyval, int16 typlen)
{
	if (typbyval)
		return value;
	if (typlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
		return PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(value)));
	return datumCopy(value, false, typlen);
}

/* Append a 4-byte unsigned integer. */
void
KsWriteUint32(StringInfo buf, uint32 value)
{
	appendBinaryStringInfo(buf, (const char *) &value, sizeof(uint32));
}

/* Read a 4-byte unsigned integer. */
uint32
KsReadUint32(KsReader *r, const char *what)
{
	uint32		value;

	if (KsReaderLeft(r) < sizeof(uint32))
		KsCheckpointCorrupted(r->aggname, "The chunk ends inside %s.", what);
	memcpy(&value, r->pos, sizeof(uint32));
	r->pos += sizeof(uint32);
	return value;
}

/* Read one byte. */
uint8
KsReadUint8(KsReader *r, const char *what)
{
	uint8		value;

	if (KsReaderLeft(r) < 1)
		KsCheckpointCorrupted(r->aggname, "The chunk ends inside %s.", what);
	value = (uint8) *r->pos;
	r->pos++;
	return value;
}

/* Append a length-prefixed run of bytes. */
void
KsWriteBytes(StringInfo buf, const void *data, uint32 len)
{
	KsWriteUint32(buf, len);
	appendBinaryStringInfo(buf, (const char *) data, len);
}

/* Start a length-prefixed run appended in place (see serialize.h). */
int
KsBeginBytes(StringInfo buf)
{
	int			at = buf->len;

	KsWriteUint32(buf, 0);
	return at;
}

/* Fill in the length of a run started by KsBeginBytes. */
void
KsEndBytes(StringInfo buf, int at)
{
	uint32		len = buf->len - at - sizeof(uint32);

	memcpy(buf->data + at, &len, sizeof(uint32));
}

/* Read a length-prefixed run of bytes, without copying. */
const char *
KsReadBytes(KsReader *r, uint32 *len, const char *what)
{
	const char *data;

	*len = KsReadUint32(r, what);
	if (KsReaderLeft(r) < *len)
		KsCheckpointCorrupted(r->aggname,
							  "The length of %s (%u bytes) is more than the %zu bytes left in its chunk.",
							  what, *len, KsReaderLeft(r));
	data = r->pos;
	r->pos += *len;
	return data;
}

/* Append one value (see serialize.h). */
void
KsWriteDatum(StringInfo buf, Datum value, bool isnull, int16 typlen, bool typbyval)
{
	appendStringInfoChar(buf, isnull ? 0 : 1);
	if (isnull)
		return;
	if (typbyval)
	{
		/* as a heap tuple stores it: only the typlen-significant bits */
		union
		{
			Datum		d;
			char		bytes[sizeof(Datum)];
		}			image;

		store_att_byval(image.bytes, value, typlen);
		appendBinaryStringInfo(buf, image.bytes, typlen);
	}
	else if (typlen > 0)
		appendBinaryStringInfo(buf, DatumGetPointer(value), typlen);
	else if (typlen == -1)
	{
		struct varlena *v = (struct varlena *) DatumGetPointer(value);

		if (VARATT_IS_EXTERNAL_EXPANDED(v))
		{
			ExpandedObjectHeader *eoh = DatumGetEOHP(value);
			Size		size = EOH_get_flat_size(eoh);
			char	   *flat = palloc(size);

			EOH_flatten_into(eoh, flat, size);
			KsWriteBytes(buf, flat, size);
			pfree(flat);
		}
		else
		{
			struct varlena *plain = pg_detoast_datum_copy(v);

			KsWriteBytes(buf, plain, VARSIZE(plain));
			pfree(plain);
		}
	}
	else
	{
		const char *s = DatumGetCString(value);

		KsWriteBytes(buf, s, strlen(s) + 1);
	}
}

/* Read one value written by KsWriteDatum. */
Datum
KsReadDatum(KsReader *r, bool *isnull, int16 typlen, bool typbyval, const char *what)
{
	uint8		flag = KsReadUint8(r, what);

	if (flag == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	if (flag != 1)
		KsCheckpointCorrupted(r->aggname, "The null flag of %s is %d, not 0 or 1.",
							  what, flag);
	*isnull = false;
	if (typbyval)
	{
		Datum		value;

		if (KsReaderLeft(r) < (Size) typlen)
			KsCheckpointCorrupted(r->aggname, "The chunk ends inside %s.", what);
		/* what fetch_att gives for the bytes store_att_byval wrote */
		switch (typlen)
		{
			case 1:
				value = CharGetDatum(*r->pos);
				break;
			case 2:
				{
					int16		v;

					memcpy(&v, r->pos, sizeof(v));
					value = Int16GetDatum(v);
					break;
				}
			case 4:
				{
					int32		v;

					memcpy(&v, r->pos, sizeof(v));
					value = Int32GetDatum(v);
					break;
				}
#if SIZEOF_DATUM == 8
			case 8:
				memcpy(&value, r->pos, sizeof(value));
				break;
#endif
			default:
				elog(ERROR, "unsupported length %d of a pass-by-value type", typlen);
				value = (Datum) 0;	/* keep the compiler quiet */
		}
		r->pos += typlen;
		return value;
	}
	if (typlen > 0)
	{
		char	   *copy;

		if (KsReaderLeft(r) < (Size) typlen)
			KsCheckpointCorrupted(r->aggname, "The chunk ends inside %s.", what);
		copy = palloc(typlen);
		memcpy(copy, r->pos, typlen);
		r->pos += typlen;
		return PointerGetDatum(copy);
	}
	else
	{
		uint32		len;
		const char *data = KsReadBytes(r, &len, what);
		char	   *copy;

		if (typlen == -1)
		{
			union
			{
				uint32		word;
				char		bytes[VARHDRSZ];
			}			header;

			/* written detoasted: a plain 4-byte header giving this very length */
			if (len < VARHDRSZ)
				KsCheckpointCorrupted(r->aggname,
									  "The varlena value of %s has %u bytes, fewer than its header needs.",
									  what, len);
			memcpy(header.bytes, data, VARHDRSZ);
			if (!VARATT_IS_4B_U(header.bytes) || VARSIZE_4B(header.bytes) != len)
				KsCheckpointCorrupted(r->aggname,
									  "The varlena value of %s has %u bytes, but its header does not say so.",
									  what, len);
		}
		else if (len == 0 || memchr(data, '\0', len) != data + len - 1)
			KsCheckpointCorrupted(r->aggname,
								  "The string value of %s is not ended by its only NUL byte.",
								  what);
		copy = palloc(len);
		memcpy(copy, data, len);
		return PointerGetDatum(copy);
	}
}

/*
 * Check the trailer of an error row read back (rowerror.h): its length, the
 * bitmap of what failed (no bit past the view's natts, some bit set), and
 * for each bit an entry of a key's SQLSTATE and a message in the database's
 * encoding ending with a NUL, the entries filling the rest exactly.
 * Returns its length.
 */
static uint32
KsCheckRowErrorTrailer(const char *aggname, const char *row, uint32 rowlen, int natts)
{
	uint32		nbytes = KS_ROWERROR_BITMAP(natts);
	uint32		trailer;
	const char *bits;
	const char *p;
	const char *end;
	int			b;

	if (rowlen < SizeofMinimalTupleHeader + KS_ROWERROR_FIXED + nbytes)
		KsCheckpointCorrupted(aggname, "An error row has %u bytes, too few for its error.", rowlen);
	memcpy(&trailer, row + rowlen - KS_ROWERROR_FIXED, sizeof(uint32));
	if (trailer < KS_ROWERROR_FIXED + nbytes + sizeof(int32) + 1 ||
		trailer > rowlen - SizeofMinimalTupleHeader)
		KsCheckpointCorrupted(aggname, "An error row of %u bytes says its error has %u.",
							  rowlen, trailer);
	bits = row + rowlen - KS_ROWERROR_FIXED - nbytes;
	if ((((unsigned char) bits[nbytes - 1]) >> ((natts % 8) + 1)) != 0)
		KsCheckpointCorrupted(aggname, "An error row marks a column past the view's %d as failed.",
							  natts);
	p = row + rowlen - trailer;
	end = bits;
	for (b = 0; b <= natts; b++)
	{
		int32		code;
		const char *sqlstate;
		const char *nul;

		if (!(bits[b / 8] & (1 << (b % 8))))
			continue;
		if (end - p < (ptrdiff_t) sizeof(int32) + 1)
			KsCheckpointCorrupted(aggname, "An error row's errors end before the error of piece %d.", b);
		memcpy(&code, p, sizeof(int32));
		/* five characters of 0-9 and A-Z, as MAKE_SQLSTATE packs them */
		sqlstate = unpack_sql_state(code);
		if ((code & ~((1 << 30) - 1)) != 0 ||
			strspn(sqlstate, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 5)
			KsCheckpointCorrupted(aggname, "An error row has the error code %08X, which is no SQLSTATE.",
								  (uint32) code);
		if (!KsRowErrorOfKey(code))
			KsCheckpointCorrupted(aggname, "An error row has the error code %s, not one of a key's errors.",
								  sqlstate);
		p += sizeof(int32);
		nul = memchr(p, '\0', end - p);
		if (nul == NULL || nul - p > KS_ERROR_LEN - 1)
			KsCheckpointCorrupted(aggname, "An error row's message of piece %d does not end with a NUL byte in time.",
								  b);
		if (!pg_verifymbstr(p, nul - p, true))
			KsCheckpointCorrupted(aggname, "An error row's message is not valid in the database's encoding.");
		p = nul + 1;
	}
	if (p != end || p == row + rowlen - trailer)
		KsCheckpointCorrupted(aggname, "An error row's errors do not match what it marks as failed.");
	return trailer;
}

static void KsRowColumnOutside(const char *aggname, const char *column, uint32 rowlen)
			pg_attribute_noreturn();

/* The error for a published row column that runs past the row's end. */
static void
KsRowColumnOutside(const char *aggname, const char *column, uint32 rowlen)
{
	KsCheckpointCorrupted(aggname,
						  "Column \"%s\" of a published row of %u bytes runs past the end of the row.",
						  column, rowlen);
}

/*
 * Check that a checkpointed view row is a MinimalTuple of the view's row
 * type that readers can deform without reading outside it, walking it as
 * slot_deform_heap_tuple does: the header and null bitmap within the row,
 * then each non-null column at its alignment and inside the row (fixed
 * length types take exactly their length; a varlena has a 1-byte header or
 * an aligned 4-byte one, is no TOAST pointer, and if compressed has a sane
 * compression header; a cstring ends inside the row), the last column
 * ending the row.
 */
void
KsCheckStoredRow(const char *aggname, TupleDesc desc, const char *row, uint32 rowlen)
{
	MinimalTupleData hdr;
	const bits8 *bits;
	const char *data;
	bool		hasnulls;
	int			natts;
	uint32		hoff;
	uint32		datalen;
	uint32		tuplelen = rowlen;
	uint32		off = 0;
	int			i;

	if (rowlen < SizeofMinimalTupleHeader)
		KsCheckpointCorrupted(aggname, "A published row has %u bytes, fewer than a tuple header.",
							  rowlen);
	memcpy(&hdr, row, SizeofMinimalTupleHeader);
	if (hdr.t_len != rowlen)
		KsCheckpointCorrupted(aggname, "A published row of %u bytes says it has %u.",
							  rowlen, hdr.t_len);
	/* the error of a key whose row could not be computed: the tuple is before it */
	if (hdr.t_infomask2 & HEAP_ONLY_TUPLE)
		tuplelen -= KsCheckRowErrorTrailer(aggname, row, rowlen, desc->natts);
	natts = HeapTupleHeaderGetNatts(&hdr);
	if (natts != desc->natts)
		KsCheckpointCorrupted(aggname, "A published row has %d columns, but the view has %d.",
							  natts, desc->natts);
	if (hdr.t_infomask & HEAP_HASEXTERNAL)
		KsCheckpointCorrupted(aggname, "A published row says it refers to values stored outside it.");
	hasnulls = (hdr.t_infomask & HEAP_HASNULL) != 0;
	hoff = hdr.t_hoff;
	if (hoff < MINIMAL_TUPLE_OFFSET ||
		hoff - MINIMAL_TUPLE_OFFSET < SizeofMinimalTupleHeader + (hasnulls ? BITMAPLEN(natts) : 0) ||
		hoff - MINIMAL_TUPLE_OFFSET > tuplelen ||
		hoff - MINIMAL_TUPLE_OFFSET != MAXALIGN(hoff - MINIMAL_TUPLE_OFFSET))
		KsCheckpointCorrupted(aggname,
							  "A published row of %u bytes has its data at offset %u, which does not fit its header.",
							  rowlen, hoff);
	hoff -= MINIMAL_TUPLE_OFFSET;
	bits = (const bits8 *) row + offsetof(MinimalTupleData, t_bits);
	data = row + hoff;
	datalen = tuplelen - hoff;

	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);

		if (hasnulls && att_isnull(i, bits))
			continue;
		if (att->attlen > 0)
		{
			off = att_align_nominal(off, att->attalign);
			if (off > datalen || datalen - off < (uint32) att->attlen)
				KsRowColumnOutside(aggname, name, rowlen);
			/* name functions run strlen over the value */
			if (att->atttypid == NAMEOID && memchr(data + off, '\0', att->attlen) == NULL)
				KsCheckpointCorrupted(aggname,
									  "Column \"%s\" of a published row is a name without its NUL byte.",
									  name);
			off += att->attlen;
		}
		else if (att->attlen == -1)
		{
			union
			{
				uint32		word;
				char		bytes[VARHDRSZ_COMPRESSED];
			}			header;
			uint32		size;

			/* as att_align_pointer: a zero byte is padding before an aligned header */
			if (off < datalen && data[off] == 0)
				off = att_align_nominal(off, att->attalign);
			if (off >= datalen)
				KsRowColumnOutside(aggname, name, rowlen);
			header.bytes[0] = data[off];
			if (VARATT_IS_1B_E(header.bytes))
				KsCheckpointCorrupted(aggname,
									  "Column \"%s\" of a published row points to a value stored outside the row.",
									  name);
			if (VARATT_IS_1B(header.bytes))
				size = VARSIZE_1B(header.bytes);
			else
			{
				if (off != att_align_nominal(off, att->attalign))
					KsCheckpointCorrupted(aggname,
										  "Column \"%s\" of a published row has a 4-byte varlena header at an unaligned offset.",
										  name);
				if (datalen - off < VARHDRSZ)
					KsRowColumnOutside(aggname, name, rowlen);
				memcpy(header.bytes, data + off, VARHDRSZ);
				size = VARSIZE_4B(header.bytes);
				if (size < VARHDRSZ)
					KsCheckpointCorrupted(aggname,
										  "Column \"%s\" of a published row has a length of %u bytes, less than its header.",
										  name, size);
				if (VARATT_IS_4B_C(header.bytes))
				{
					uint32		extsize;
					uint32		method;

					if (size < VARHDRSZ_COMPRESSED || datalen - off < VARHDRSZ_COMPRESSED)
						KsRowColumnOutside(aggname, name, rowlen);
					memcpy(header.bytes, data + off, VARHDRSZ_COMPRESSED);
					extsize = VARDATA_COMPRESSED_GET_EXTSIZE(header.bytes);
					method = VARDATA_COMPRESSED_GET_COMPRESS_METHOD(header.bytes);
					/* compression keeps a value only if it got smaller */
					if ((method != TOAST_PGLZ_COMPRESSION_ID && method != TOAST_LZ4_COMPRESSION_ID) ||
						extsize > MaxAllocSize - VARHDRSZ ||
						extsize < size - VARHDRSZ_COMPRESSED)
						KsCheckpointCorrupted(aggname,
											  "Column \"%s\" of a published row is compressed with method %u to %u bytes from %u, which cannot be.",
											  name, method, size, extsize);
				}
			}
			if (size > datalen - off)
				KsRowColumnOutside(aggname, name, rowlen);
			off += size;
		}
		else if (att->attlen == -2)
		{
			const char *nul;

			off = att_align_nominal(off, att->attalign);
			if (off >= datalen)
				KsRowColumnOutside(aggname, name, rowlen);
			nul = memchr(data + off, '\0', datalen - off);
			if (nul == NULL)
				KsCheckpointCorrupted(aggname,
									  "Column \"%s\" of a published row is a string without its NUL byte.",
									  name);
			off = (uint32) (nul - data) + 1;
		}
		else
			elog(ERROR, "unexpected length %d of column \"%s\"", att->attlen, name);
	}
	if (off != datalen)
		KsCheckpointCorrupted(aggname, "A published row has %u bytes after its last column.",
							  datalen - off);
}
