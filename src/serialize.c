/*-------------------------------------------------------------------------
 *
 * serialize.c
 *	  Byte form of Datums for checkpoints.  See serialize.h for the layout.
 *
 *-------------------------------------------------------------------------
 */
#include "keyedstate.h"

#include "access/detoast.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"

#include "serialize.h"

/* Error for input that does not hold what it should. */
static void
KsCorrupted(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupted keyedstate checkpoint data")));
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
KsReadUint32(const char **pos, const char *end)
{
	uint32		value;

	if (end - *pos < (ptrdiff_t) sizeof(uint32))
		KsCorrupted();
	memcpy(&value, *pos, sizeof(uint32));
	*pos += sizeof(uint32);
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
KsReadBytes(const char **pos, const char *end, uint32 *len)
{
	const char *data;

	*len = KsReadUint32(pos, end);
	if ((uint64) (end - *pos) < *len)
		KsCorrupted();
	data = *pos;
	*pos += *len;
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
		appendBinaryStringInfo(buf, (const char *) &value, typlen);
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
KsReadDatum(const char **pos, const char *end, bool *isnull, int16 typlen, bool typbyval)
{
	char		flag;

	if (*pos >= end)
		KsCorrupted();
	flag = **pos;
	(*pos)++;
	if (flag == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	if (flag != 1)
		KsCorrupted();
	*isnull = false;
	if (typbyval)
	{
		Datum		value = 0;

		if (end - *pos < typlen)
			KsCorrupted();
		memcpy(&value, *pos, typlen);
		*pos += typlen;
		return value;
	}
	if (typlen > 0)
	{
		char	   *copy;

		if (end - *pos < typlen)
			KsCorrupted();
		copy = palloc(typlen);
		memcpy(copy, *pos, typlen);
		*pos += typlen;
		return PointerGetDatum(copy);
	}
	else
	{
		uint32		len;
		const char *data = KsReadBytes(pos, end, &len);
		char	   *copy;

		if (typlen == -1 && (len < VARHDRSZ || VARSIZE(data) != len))
			KsCorrupted();
		if (typlen == -2 && (len == 0 || data[len - 1] != '\0'))
			KsCorrupted();
		copy = palloc(len);
		memcpy(copy, data, len);
		return PointerGetDatum(copy);
	}
}
