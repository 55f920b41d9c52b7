/* Snappy block format (raw, not framed): compress and decompress.
 *
 * The compressor is promwrite's own, specified at the top of snappy.c and of
 * promwrite/_pysnappy.py, which emits the very same bytes for every input.
 * Any valid snappy stream decodes; every error is a negative PW_SNAPPY_E*
 * code, with a message from pw_snappy_strerror (the python backend raises the
 * same messages).
 */
#ifndef PW_SNAPPY_H
#define PW_SNAPPY_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
enum {
    PW_SNAPPY_OK = 0,
    PW_SNAPPY_EHEADER = -1,     /* length varint truncated, over 5 bytes, or > 2^32-1 */
    PW_SNAPPY_ETRUNCATED = -2,  /* an element runs past the end of the input */
    PW_SNAPPY_EOFFSET = -3,     /* copy offset 0 or before the start of the output */
    PW_SNAPPY_EOVERFLOW = -4,   /* output would exceed the declared length */
    PW_SNAPPY_ESHORT = -5,      /* input ended before the declared length */
    PW_SNAPPY_EIMPOSSIBLE = -6, /* declared length more than the input can expand to */
    PW_SNAPPY_EDSTSMALL = -7,   /* dst_len smaller than the declared length */
    PW_SNAPPY_ENOMEM = -8,
    PW_SNAPPY_ETOOBIG = -9      /* input over 2^32-1 bytes */
};

/* Most bytes pw_snappy_compress writes for n input bytes; 0 if n is too large
 * (> 0xffffffff, or the bound does not fit a size_t). */
size_t pw_snappy_max_compressed_length(size_t n);

/* Compresses src[0..n) into dst, which has pw_snappy_max_compressed_length(n)
 * bytes. Returns the bytes written (>= 1), or 0 on allocation failure or when
 * n is too large. src and dst must not overlap. */
size_t pw_snappy_compress(const uint8_t *src, size_t n, uint8_t *dst);

/* The length src declares, into *out. 0, or PW_SNAPPY_EHEADER, or
 * PW_SNAPPY_EIMPOSSIBLE when the rest of src could not expand to it. */
int pw_snappy_uncompressed_length(const uint8_t *src, size_t n, uint64_t *out);

/* Decodes src into dst[0..declared length); dst_len must be at least that.
 * 0 on success, else a negative PW_SNAPPY_E* code (dst contents undefined). */
int pw_snappy_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t dst_len);

/* A static message for a PW_SNAPPY_E* code. */
const char *pw_snappy_strerror(int code);
/* cffi:end */

#endif
