/* Protobuf decoding of prometheus.WriteRequest (remote write 1.0) and
 * io.prometheus.write.v2.Request (2.0) into flat arrays.
 *
 * Twins of decode_v1 / decode_v2 in promwrite/_pydecode.py, which are the
 * reference: for every input both give the same arrays or the same error
 * (code and err[] values). C cannot build Python objects, so these validate
 * the wire and return what Python needs to build the model in bulk: each
 * distinct string once (UTF-8 checked), each distinct label pair once,
 * samples as packed arrays, the rare parts as rows.
 *
 * Bounds: every length read from the wire is checked against what is left;
 * each element of the output stands for at least one input byte, so the
 * output is a fixed multiple of the input; `limits` caps the counts and the
 * estimated memory of what Python will build (checked as the walk goes, so a
 * request over a limit costs only the bytes read until then).
 */
#ifndef PW_PBDEC_H
#define PW_PBDEC_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
enum {                            /* the vectors of a pw_decoded, all int64 */
    PW_DEC_STRING_ENDS = 0,       /* code-point end of each string's NUL in text (decoded) */
    PW_DEC_PAIRS = 1,             /* name id, value id of each distinct label pair */
    PW_DEC_LABEL_REFS = 2,        /* pair ids of every series' labels, series by series */
    PW_DEC_SERIES_LABELS = 3,     /* label count of each series */
    PW_DEC_SERIES_SAMPLES = 4,    /* sample count of each series */
    PW_DEC_VALUES = 5,            /* sample values (IEEE-754 bits: read as doubles) */
    PW_DEC_STAMPS = 6,            /* sample timestamps */
    PW_DEC_STARTS = 7,            /* 2.0: each sample's start timestamp */
    PW_DEC_EXEMPLARS = 8,         /* rows: series, label count, value bits, timestamp */
    PW_DEC_EXEMPLAR_REFS = 9,     /* pair ids of every exemplar's labels */
    PW_DEC_HISTOGRAMS = 10,       /* rows: series, start, end (the message's bytes in the input) */
    PW_DEC_METADATA = 11,         /* rows: 1.0 kind, name id, help id, unit id; 2.0 series, kind, help id, unit id */
    PW_DEC_UNSORTED = 12,         /* each series whose label names are not strictly increasing */
    PW_DEC_NON_ASCII = 13,        /* byte start, end in text of each string not all ASCII */
    PW_DEC_NVEC = 14
};

enum {                            /* limits[] and counts: what a request may hold */
    PW_LIM_SERIES = 0,
    PW_LIM_LABELS = 1,            /* label references, of series and exemplars */
    PW_LIM_SAMPLES = 2,
    PW_LIM_EXEMPLARS = 3,
    PW_LIM_HISTOGRAMS = 4,
    PW_LIM_BUCKETS = 5,           /* histogram spans, deltas, counts and custom values */
    PW_LIM_METADATA = 6,
    PW_LIM_COST = 7,              /* estimated bytes of the Python objects (see COST_* in pbdec.c) */
    PW_LIM_N = 8
};

enum {                            /* return codes; err[] holds the values the message names */
    PW_DEC_OK = 0,
    PW_DEC_ENOMEM = -1,
    PW_DEC_ETRUNC_VARINT = -2,
    PW_DEC_EVARINT_64 = -3,
    PW_DEC_EFIELD_0 = -4,
    PW_DEC_ETRUNC_FIXED = -5,
    PW_DEC_ECLAIMS = -6,          /* field err[0] claims err[1] bytes, err[2] are left */
    PW_DEC_EWIRE_TYPE = -7,       /* wire type err[0] of field err[1] */
    PW_DEC_EUTF8 = -8,
    PW_DEC_EPACKED_DOUBLES = -9,
    PW_DEC_EREF = -10,            /* err[0] what (0 series, 1 exemplar, 2 metadata), ref err[1], symbols err[2] */
    PW_DEC_EODD_REFS = -11,       /* err[0] what, err[1] references */
    PW_DEC_ELIMIT = -12           /* err[0] a PW_LIM_* index, err[1] its limit */
};

typedef struct {
    uint8_t *text;                /* every string's UTF-8, each followed by a NUL */
    size_t text_len;
    int nul_inside;               /* 1 when a string holds a NUL (split text by PW_DEC_STRING_ENDS then) */
    int64_t *vec[14];             /* PW_DEC_NVEC vectors */
    size_t len[14];               /* their lengths, in int64s */
    uint64_t err[3];
    int64_t counts[8];            /* PW_LIM_N: what the request holds */
} pw_decoded;

/* Decodes data[0..n) as a 1.0 WriteRequest / 2.0 Request. `limits` has
 * PW_LIM_N entries; `seed` keys the hash tables. Returns PW_DEC_OK with
 * *out filled (free it with pw_decoded_free, also after an error), or a
 * negative code. */
int pw_decode_v1(const uint8_t *data, size_t n, const int64_t *limits, uint64_t seed, pw_decoded *out);
int pw_decode_v2(const uint8_t *data, size_t n, const int64_t *limits, uint64_t seed, pw_decoded *out);
void pw_decoded_free(pw_decoded *out);
/* cffi:end */

#endif /* PW_PBDEC_H */
