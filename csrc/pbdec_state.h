/* The state of one decode in pbdec.c and its two primitives: reading a
 * field, counting an element against the limits. Internal: no cffi
 * interface here, every function static. Error codes are pbdec.h's.
 */
#ifndef PW_PBDEC_STATE_H
#define PW_PBDEC_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "pbdec.h"
#include "pbdec_table.h"
#include "pbdec_wire.h"

typedef struct {
    uint64_t field, val;
    unsigned wt;
    size_t start, end; /* a length-delimited field's bytes */
} fld_t;

typedef struct {
    const uint8_t *buf;
    size_t buf_len;
    vec_t v[PW_DEC_NVEC];
    uint8_t *text; /* each string followed by a NUL */
    size_t text_len, text_cap;
    int nul_inside;
    vec_t byte_ends;     /* byte end of each string in text (before its NUL) */
    vec_t spans;         /* 2.0: start, end of each series */
    vec_t refs;          /* 2.0: the labels_refs of the series being read */
    vec_t exemplar_refs; /* 2.0: those of the exemplar being read */
    table_t strings;     /* 1.0: entry k is string k + 1 (string 0, "", is never looked up) */
    table_t pairs;       /* entry k is pair k */
    table_t labels;      /* 1.0: entry k is row k of labels_read */
    vec_t labels_read;   /* 1.0: start, end and pair id of each distinct label message read */
    hash_key_t key;
    int64_t limits[PW_LIM_N];
    int64_t counts[PW_LIM_N];
    int64_t code_points;
    uint64_t *err;
} dec_t;

#define TRY(x)                   \
    do {                         \
        int rc_ = (x);           \
        if (rc_ != 0)            \
            return rc_;          \
    } while (0)

DEC_NOINLINE int claims_too_much(dec_t *d, uint64_t field, uint64_t size, size_t left)
{
    d->err[0] = field;
    d->err[1] = size;
    d->err[2] = left;
    return PW_DEC_ECLAIMS;
}

DEC_INLINE int next_field(dec_t *d, size_t *pos, size_t end, fld_t *f)
{
    uint64_t key, size;
    TRY(rd_varint(d->buf, pos, end, &key));
    f->field = key >> 3;
    f->wt = (unsigned)(key & 7);
    if (DEC_UNLIKELY(f->field == 0))
        return PW_DEC_EFIELD_0;
    switch (f->wt) {
    case 0:
        return rd_varint(d->buf, pos, end, &f->val);
    case 1:
    case 5:
        size = f->wt == 1 ? 8 : 4;
        if (end - *pos < size)
            return PW_DEC_ETRUNC_FIXED;
        f->val = f->wt == 1 ? rd_le64(d->buf + *pos) : rd_le32(d->buf + *pos);
        *pos += size;
        return 0;
    case 2:
        TRY(rd_varint(d->buf, pos, end, &size));
        if (DEC_UNLIKELY(size > end - *pos))
            return claims_too_much(d, f->field, size, end - *pos);
        f->start = *pos;
        f->end = *pos + (size_t)size;
        *pos = f->end;
        return 0;
    default:
        d->err[0] = f->wt;
        d->err[1] = f->field;
        return PW_DEC_EWIRE_TYPE;
    }
}

DEC_NOINLINE int over_limit(dec_t *d, int what)
{
    d->err[0] = (uint64_t)what;
    d->err[1] = (uint64_t)d->limits[what];
    return PW_DEC_ELIMIT;
}

/* Counts n more of `what` (a PW_LIM_* index, or -1 for none) and `cost` bytes. */
DEC_INLINE int charge(dec_t *d, int what, int64_t n, int64_t cost)
{
    if (what >= 0) {
        if (DEC_UNLIKELY(n > d->limits[what] - d->counts[what]))
            return over_limit(d, what);
        d->counts[what] += n;
    }
    if (DEC_UNLIKELY(cost > d->limits[PW_LIM_COST] - d->counts[PW_LIM_COST]))
        return over_limit(d, PW_LIM_COST);
    d->counts[PW_LIM_COST] += cost;
    return 0;
}

#endif /* PW_PBDEC_STATE_H */
