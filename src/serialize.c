/*-------------------------------------------------------------------------
 *
 * serialize.c
 *	  Byte form of Datums for checkpoints.  See serialize.h for the layout.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/detoast.h"
#include "access/tupmacs.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"

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
			 errhint("Restore keyedstate.state from a backup, or drop the aggregation and create it again to recompute it from its source table.")));
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
