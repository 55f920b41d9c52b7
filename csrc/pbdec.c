/* Protobuf decoding of remote-write requests into flat arrays (see pbdec.h).
 *
 * The walk mirrors promwrite/_pydecode.py step for step: fields in wire
 * order, each element counted (limits) when its field is met, its content
 * checked, then stored. Any change here is made there too.
 */
#include "pbdec.h"

#include <stdlib.h>
#include <string.h>

#include "pbdec_state.h"

/* What PW_LIM_COST counts per element: the estimated bytes of the Python
 * objects it becomes (CPython 3.x, 64-bit), raised where decoding it takes
 * longer than that many bytes' worth (about 10 ns a unit in pure Python) so
 * that the limit bounds time as well. Same numbers in _pydecode.py. */
enum {
    COST_SERIES = 480,    /* TimeSeries, its three lists, its label tuple and LabelSet */
    COST_LABEL_REF = 8,   /* a pointer in a label tuple */
    COST_PAIR = 80,       /* a Label */
    COST_STRING = 64,     /* a str, plus 1, 2 or 4 bytes per code point */
    COST_SAMPLE = 136,    /* a Sample, its float and int, a list slot */
    COST_EXEMPLAR = 320,  /* an Exemplar, its float, int and label tuple (~200), and its time */
    COST_HISTOGRAM = 1000,
    COST_SPAN = 128,      /* a BucketSpan (~64), and its time */
    COST_BUCKET = 16,     /* a delta (a small int: 8 in a tuple), count or custom value (8 wire bytes) */
    COST_METADATA = 160   /* a MetricMetadata (~100), and its time */
};

/* ------------------------------------------------------------ strings */

DEC_INLINE size_t string_start(const dec_t *d, int64_t id)
{
    return id == 0 ? 0 : (size_t)d->byte_ends.p[id - 1] + 1;
}

DEC_INLINE size_t string_len(const dec_t *d, int64_t id)
{
    return (size_t)d->byte_ends.p[id] - string_start(d, id);
}

/* Makes room for `n` more bytes of text. */
DEC_NOINLINE int text_reserve(dec_t *d, size_t n)
{
    size_t cap = d->text_cap ? d->text_cap : 256;
    uint8_t *p;
    while (cap - d->text_len < n) {
        if (cap > SIZE_MAX / 2)
            return PW_DEC_ENOMEM;
        cap *= 2;
    }
    p = (uint8_t *)realloc(d->text, cap);
    if (p == NULL)
        return PW_DEC_ENOMEM;
    d->text = p;
    d->text_cap = cap;
    return 0;
}

/* Appends data[start..end), of `cps` code points, and a NUL as a new string. */
static int store_string(dec_t *d, size_t start, size_t end, int64_t cps)
{
    size_t n = end - start;
    if (d->text_cap - d->text_len <= n)
        TRY(text_reserve(d, n + 1)); /* n < the input's length: no overflow */
    if ((size_t)cps != n) { /* not all ASCII: Python decodes the rest of the text as Latin-1, faster */
        TRY(push(&d->v[PW_DEC_NON_ASCII], (int64_t)d->text_len));
        TRY(push(&d->v[PW_DEC_NON_ASCII], (int64_t)(d->text_len + n)));
    }
    if (n)
        memcpy(d->text + d->text_len, d->buf + start, n);
    d->text_len += n;
    d->text[d->text_len++] = 0;
    d->code_points += cps + 1;
    TRY(push(&d->byte_ends, (int64_t)d->text_len - 1));
    return push(&d->v[PW_DEC_STRING_ENDS], d->code_points);
}

/* Appends data[start..end) as a new string, UTF-8 checked and counted. */
static int add_string(dec_t *d, size_t start, size_t end)
{
    int64_t cps, width;
    TRY(utf8_check(d->buf + start, end - start, &cps, &width, &d->nul_inside));
    TRY(charge(d, -1, 0, COST_STRING + width * cps));
    return store_string(d, start, end, cps);
}

/* 1.0: the id of the string data[start..end), added when new. */
static int intern_string(dec_t *d, size_t start, size_t end, int64_t *id)
{
    size_t n = end - start, at;
    int64_t k;
    uint64_t h;
    if (n == 0) {
        *id = 0; /* "", stored first */
        return 0;
    }
    TRY(table_room(&d->strings, d));
    h = hash_bytes(d->buf + start, n, &d->key);
    for (at = (size_t)h; (k = table_next(&d->strings, h, &at)) >= 0;) {
        if (string_len(d, k + 1) == n && same_bytes(d->text + string_start(d, k + 1), d->buf + start, n)) {
            *id = k + 1;
            return 0;
        }
    }
    *id = (int64_t)d->byte_ends.len;
    TRY(add_string(d, start, end));
    table_add(&d->strings, h, at);
    return 0;
}

/* The id of the label pair (name, value), added (and counted) when new. */
static int intern_pair(dec_t *d, int64_t name, int64_t value, int64_t *id)
{
    const int64_t *pairs;
    size_t at;
    int64_t k;
    uint64_t h;
    TRY(table_room(&d->pairs, d));
    h = hash_pair(name, value, &d->key);
    pairs = d->v[PW_DEC_PAIRS].p;
    for (at = (size_t)h; (k = table_next(&d->pairs, h, &at)) >= 0;) {
        if (pairs[2 * k] == name && pairs[2 * k + 1] == value) {
            *id = k;
            return 0;
        }
    }
    TRY(charge(d, -1, 0, COST_PAIR));
    *id = (int64_t)d->v[PW_DEC_PAIRS].len / 2;
    TRY(push(&d->v[PW_DEC_PAIRS], name));
    TRY(push(&d->v[PW_DEC_PAIRS], value));
    table_add(&d->pairs, h, at);
    return 0;
}

/* The hashes of the entries of d's tables (d the decoder), to grow them. */
static uint64_t string_hash(const void *d_, size_t k)
{
    const dec_t *d = (const dec_t *)d_;
    return hash_bytes(d->text + string_start(d, (int64_t)k + 1), string_len(d, (int64_t)k + 1), &d->key);
}

static uint64_t pair_hash(const void *d_, size_t k)
{
    const dec_t *d = (const dec_t *)d_;
    return hash_pair(d->v[PW_DEC_PAIRS].p[2 * k], d->v[PW_DEC_PAIRS].p[2 * k + 1], &d->key);
}

static uint64_t label_hash(const void *d_, size_t k)
{
    const dec_t *d = (const dec_t *)d_;
    const int64_t *row = d->labels_read.p + 3 * k;
    return hash_bytes(d->buf + row[0], (size_t)(row[1] - row[0]), &d->key);
}

/* Notes the series if the names of its labels (the last `count` label refs) do not strictly increase. */
static int note_order(dec_t *d, int64_t series, size_t count)
{
    const vec_t *refs = &d->v[PW_DEC_LABEL_REFS];
    const int64_t *pairs = d->v[PW_DEC_PAIRS].p;
    for (size_t k = refs->len - count + 1; k < refs->len; k++) {
        int64_t a = pairs[2 * refs->p[k - 1]], b = pairs[2 * refs->p[k]];
        if (a == b || !sorts_before(d->text + string_start(d, a), string_len(d, a), d->text + string_start(d, b),
                                    string_len(d, b)))
            return push(&d->v[PW_DEC_UNSORTED], series);
    }
    return 0;
}

/* Checks the fields of data[pos..end) and nothing more. */
static int skip_message(dec_t *d, size_t pos, size_t end)
{
    fld_t f;
    while (pos < end)
        TRY(next_field(d, &pos, end, &f));
    return 0;
}

/* The number of varints packed in data[pos..end), each checked. */
static int count_varints(dec_t *d, size_t pos, size_t end, int64_t *n)
{
    uint64_t v;
    int64_t k = 0;
    while (pos < end) {
        TRY(rd_varint(d->buf, &pos, end, &v));
        k++;
    }
    *n = k;
    return 0;
}

/* A native histogram's bytes, checked; Python decodes the checked message. */
static int check_histogram(dec_t *d, size_t pos, size_t end)
{
    fld_t f;
    while (pos < end) {
        int64_t n = 0;
        TRY(next_field(d, &pos, end, &f));
        switch (f.field) {
        case 8:
        case 11: /* spans */
            if (f.wt != 2)
                continue;
            TRY(skip_message(d, f.start, f.end));
            TRY(charge(d, PW_LIM_BUCKETS, 1, COST_SPAN));
            continue;
        case 9:
        case 12: /* deltas */
            if (f.wt == 0)
                n = 1;
            else if (f.wt == 2)
                TRY(count_varints(d, f.start, f.end, &n));
            break;
        case 10:
        case 13:
        case 16: /* counts, custom values */
            if (f.wt == 1) {
                n = 1;
            } else if (f.wt == 2) {
                if ((f.end - f.start) % 8)
                    return PW_DEC_EPACKED_DOUBLES;
                n = (int64_t)((f.end - f.start) / 8);
            }
            break;
        default:
            continue;
        }
        TRY(charge(d, PW_LIM_BUCKETS, n, n * COST_BUCKET));
    }
    return 0;
}

/* Counts a sample and reads its value bits, timestamp and (2.0) start timestamp. */
DEC_INLINE int read_sample(dec_t *d, size_t pos, size_t end, int v2)
{
    const uint8_t *b = d->buf;
    uint64_t value = 0, ts = 0, start = 0;
    TRY(charge(d, PW_LIM_SAMPLES, 1, COST_SAMPLE));
    if (end - pos > 10 && b[pos] == 0x09 && b[pos + 9] == 0x10) { /* the usual sample: value, then timestamp */
        size_t p = pos + 10;
        if (!rd_varint_word(b, &p, end, d->buf_len, &ts))
            TRY(rd_varint(b, &p, end, &ts));
        if (p == end) {
            value = rd_le64(b + pos + 1);
            pos = end;
        } else {
            ts = 0;
        }
    }
    while (pos < end) {
        fld_t f;
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1 && f.wt == 1)
            value = f.val;
        else if (f.field == 2 && f.wt == 0)
            ts = f.val;
        else if (v2 && f.field == 3 && f.wt == 0)
            start = f.val;
    }
    TRY(push(&d->v[PW_DEC_VALUES], (int64_t)value));
    TRY(push(&d->v[PW_DEC_STAMPS], (int64_t)ts));
    return v2 ? push(&d->v[PW_DEC_STARTS], (int64_t)start) : 0;
}

/* ------------------------------------------------------------------ 1.0 */

/* The label message data[pos..end), of hash h, as a pair id appended to `into`. */
static int label_v1(dec_t *d, size_t pos, size_t end, uint64_t h, vec_t *into)
{
    int64_t name = 0, value = 0, id, k;
    size_t start = pos, at;
    fld_t f;
    TRY(charge(d, PW_LIM_LABELS, 1, COST_LABEL_REF));
    /* A label message read before (most repeat across series) has its strings and pair
     * interned already: its pair id, from the memo, is all that reading it again would give. */
    TRY(table_room(&d->labels, d));
    for (at = (size_t)h; (k = table_next(&d->labels, h, &at)) >= 0;) {
        const int64_t *row = d->labels_read.p + 3 * k;
        if ((size_t)(row[1] - row[0]) == end - pos && same_bytes(d->buf + row[0], d->buf + pos, end - pos))
            return push(into, row[2]);
    }
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.wt == 2 && (f.field == 1 || f.field == 2)) {
            TRY(intern_string(d, f.start, f.end, &id));
            if (f.field == 1)
                name = id;
            else
                value = id;
        }
    }
    TRY(intern_pair(d, name, value, &id));
    TRY(push(&d->labels_read, (int64_t)start));
    TRY(push(&d->labels_read, (int64_t)end));
    TRY(push(&d->labels_read, id));
    table_add(&d->labels, h, at);
    return push(into, id);
}

static int exemplar_v1(dec_t *d, size_t pos, size_t end, int64_t series)
{
    int64_t labels = 0;
    uint64_t value = 0, ts = 0;
    fld_t f;
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1 && f.wt == 2) {
            TRY(label_v1(d, f.start, f.end, hash_bytes(d->buf + f.start, f.end - f.start, &d->key),
                         &d->v[PW_DEC_EXEMPLAR_REFS]));
            labels++;
        } else if (f.field == 2 && f.wt == 1) {
            value = f.val;
        } else if (f.field == 3 && f.wt == 0) {
            ts = f.val;
        }
    }
    vec_t *rows = &d->v[PW_DEC_EXEMPLARS];
    TRY(push(rows, series));
    TRY(push(rows, labels));
    TRY(push(rows, (int64_t)value));
    return push(rows, (int64_t)ts);
}

enum { LOOKAHEAD = 16 };

/* Hashes the label messages a series starts with (up to LOOKAHEAD, with a
 * one-byte key and length: the usual) and has the CPU fetch their memo slots,
 * so that the cache misses of their lookups overlap. Checks nothing: the walk
 * reads them again. Their starts go to at[], their hashes to h[]; how many. */
static size_t hash_labels_ahead(const dec_t *d, size_t pos, size_t end, size_t *at, uint64_t *h)
{
    const uint8_t *b = d->buf;
    size_t k = 0;
    while (k < LOOKAHEAD && end - pos >= 2 && b[pos] == 0x0a && b[pos + 1] < 0x80 && b[pos + 1] <= end - pos - 2) {
        at[k] = pos + 2;
        pos = at[k] + b[pos + 1];
        h[k] = hash_bytes(b + at[k], pos - at[k], &d->key);
        table_prefetch(&d->labels, h[k]);
        k++;
    }
    return k;
}

static int series_v1(dec_t *d, size_t pos, size_t end)
{
    int64_t series = (int64_t)d->v[PW_DEC_SERIES_LABELS].len, labels = 0, samples = 0;
    size_t ahead_at[LOOKAHEAD], ahead, next = 0;
    uint64_t ahead_hash[LOOKAHEAD], h;
    fld_t f;
    ahead = hash_labels_ahead(d, pos, end, ahead_at, ahead_hash);
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.wt != 2)
            continue;
        switch (f.field) {
        case 1:
            if (next < ahead && ahead_at[next] == f.start)
                h = ahead_hash[next++];
            else
                h = hash_bytes(d->buf + f.start, f.end - f.start, &d->key);
            TRY(label_v1(d, f.start, f.end, h, &d->v[PW_DEC_LABEL_REFS]));
            labels++;
            break;
        case 2:
            TRY(read_sample(d, f.start, f.end, 0));
            samples++;
            break;
        case 3:
            TRY(charge(d, PW_LIM_EXEMPLARS, 1, COST_EXEMPLAR));
            TRY(exemplar_v1(d, f.start, f.end, series));
            break;
        case 4:
            TRY(charge(d, PW_LIM_HISTOGRAMS, 1, COST_HISTOGRAM));
            TRY(check_histogram(d, f.start, f.end));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], series));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], (int64_t)f.start));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], (int64_t)f.end));
            break;
        default:
            break;
        }
    }
    TRY(note_order(d, series, (size_t)labels));
    TRY(push(&d->v[PW_DEC_SERIES_LABELS], labels));
    return push(&d->v[PW_DEC_SERIES_SAMPLES], samples);
}

static int metadata_v1(dec_t *d, size_t pos, size_t end)
{
    int64_t kind = 0, text[3] = {0, 0, 0}; /* family name, help, unit */
    fld_t f;
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1 && f.wt == 0) {
            kind = (int64_t)f.val;
        } else if (f.wt == 2 && (f.field == 2 || f.field == 4 || f.field == 5)) {
            int64_t id;
            TRY(intern_string(d, f.start, f.end, &id));
            text[f.field == 2 ? 0 : f.field == 4 ? 1 : 2] = id;
        }
    }
    vec_t *rows = &d->v[PW_DEC_METADATA];
    TRY(push(rows, kind));
    TRY(push(rows, text[0]));
    TRY(push(rows, text[1]));
    return push(rows, text[2]);
}

static int walk_v1(dec_t *d, size_t n)
{
    size_t pos = 0;
    fld_t f;
    TRY(store_string(d, 0, 0, 0)); /* id 0: "", what an absent string field reads as (free: a singleton) */
    while (pos < n) {
        TRY(next_field(d, &pos, n, &f));
        if (f.field == 1 && f.wt == 2) {
            TRY(charge(d, PW_LIM_SERIES, 1, COST_SERIES));
            TRY(series_v1(d, f.start, f.end));
        } else if (f.field == 3 && f.wt == 2) {
            TRY(charge(d, PW_LIM_METADATA, 1, COST_METADATA));
            TRY(metadata_v1(d, f.start, f.end));
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ 2.0 */

/* Appends a repeated uint32 field's references (one, or packed) to `refs`. */
static int read_refs(dec_t *d, const fld_t *f, vec_t *refs)
{
    size_t pos;
    uint64_t v;
    if (f->wt == 0)
        return push(refs, (int64_t)(f->val & 0xffffffffu));
    if (f->wt != 2)
        return 0;
    for (pos = f->start; pos < f->end;) {
        TRY(rd_varint(d->buf, &pos, f->end, &v));
        TRY(push(refs, (int64_t)(v & 0xffffffffu)));
    }
    return 0;
}

static int check_ref(dec_t *d, int what, int64_t ref)
{
    if ((size_t)ref < d->byte_ends.len)
        return 0;
    d->err[0] = (uint64_t)what;
    d->err[1] = (uint64_t)ref;
    d->err[2] = d->byte_ends.len;
    return PW_DEC_EREF;
}

/* `refs` as label pairs of `what` (0 series, 1 exemplar), appended to `into`. */
static int ref_pairs(dec_t *d, int what, const vec_t *refs, vec_t *into)
{
    size_t n = refs->len;
    if (n % 2) {
        d->err[0] = (uint64_t)what;
        d->err[1] = n;
        return PW_DEC_EODD_REFS;
    }
    for (size_t i = 0; i < n; i += 2) {
        int64_t id;
        TRY(check_ref(d, what, refs->p[i]));
        TRY(check_ref(d, what, refs->p[i + 1]));
        TRY(charge(d, PW_LIM_LABELS, 1, COST_LABEL_REF));
        TRY(intern_pair(d, refs->p[i], refs->p[i + 1], &id));
        TRY(push(into, id));
    }
    return 0;
}

static int exemplar_v2(dec_t *d, size_t pos, size_t end, int64_t series)
{
    uint64_t value = 0, ts = 0;
    fld_t f;
    d->exemplar_refs.len = 0;
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1)
            TRY(read_refs(d, &f, &d->exemplar_refs));
        else if (f.field == 2 && f.wt == 1)
            value = f.val;
        else if (f.field == 3 && f.wt == 0)
            ts = f.val;
    }
    TRY(ref_pairs(d, 1, &d->exemplar_refs, &d->v[PW_DEC_EXEMPLAR_REFS]));
    vec_t *rows = &d->v[PW_DEC_EXEMPLARS];
    TRY(push(rows, series));
    TRY(push(rows, (int64_t)(d->exemplar_refs.len / 2)));
    TRY(push(rows, (int64_t)value));
    return push(rows, (int64_t)ts);
}

static int metadata_v2(dec_t *d, size_t pos, size_t end, int64_t series)
{
    int64_t kind = 0, refs[2] = {0, 0}; /* help, unit */
    fld_t f;
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1 && f.wt == 0)
            kind = (int64_t)f.val;
        else if ((f.field == 3 || f.field == 4) && f.wt == 0)
            refs[f.field - 3] = (int64_t)(f.val & 0xffffffffu);
    }
    TRY(check_ref(d, 2, refs[0]));
    TRY(check_ref(d, 2, refs[1]));
    vec_t *rows = &d->v[PW_DEC_METADATA];
    TRY(push(rows, series));
    TRY(push(rows, kind));
    TRY(push(rows, refs[0]));
    return push(rows, refs[1]);
}

static int sample_v2(dec_t *d, size_t pos, size_t end, int64_t earlier)
{
    size_t k;
    TRY(read_sample(d, pos, end, 1));
    k = d->v[PW_DEC_STARTS].len;
    if (earlier > 0 && d->v[PW_DEC_STARTS].p[k - 1] != d->v[PW_DEC_STARTS].p[k - 2])
        TRY(charge(d, -1, 0, COST_SERIES)); /* a new run of start timestamps: another TimeSeries */
    return 0;
}

static int series_v2(dec_t *d, size_t pos, size_t end, int64_t series)
{
    int64_t samples = 0, labels_before = (int64_t)d->v[PW_DEC_LABEL_REFS].len;
    fld_t f;
    d->refs.len = 0;
    while (pos < end) {
        TRY(next_field(d, &pos, end, &f));
        if (f.field == 1) {
            TRY(read_refs(d, &f, &d->refs));
            continue;
        }
        if (f.wt != 2)
            continue;
        switch (f.field) {
        case 2:
            TRY(sample_v2(d, f.start, f.end, samples));
            samples++;
            break;
        case 3:
            TRY(charge(d, PW_LIM_HISTOGRAMS, 1, COST_HISTOGRAM + COST_SERIES));
            TRY(check_histogram(d, f.start, f.end));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], series));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], (int64_t)f.start));
            TRY(push(&d->v[PW_DEC_HISTOGRAMS], (int64_t)f.end));
            break;
        case 4:
            TRY(charge(d, PW_LIM_EXEMPLARS, 1, COST_EXEMPLAR));
            TRY(exemplar_v2(d, f.start, f.end, series));
            break;
        case 5:
            TRY(charge(d, PW_LIM_METADATA, 1, COST_METADATA));
            TRY(metadata_v2(d, f.start, f.end, series));
            break;
        default:
            break;
        }
    }
    TRY(ref_pairs(d, 0, &d->refs, &d->v[PW_DEC_LABEL_REFS]));
    TRY(note_order(d, series, d->refs.len / 2));
    TRY(push(&d->v[PW_DEC_SERIES_LABELS], (int64_t)d->v[PW_DEC_LABEL_REFS].len - labels_before));
    return push(&d->v[PW_DEC_SERIES_SAMPLES], samples);
}

static int walk_v2(dec_t *d, size_t n)
{
    size_t pos = 0;
    fld_t f;
    while (pos < n) {
        TRY(next_field(d, &pos, n, &f));
        if (f.field == 4 && f.wt == 2) {
            TRY(add_string(d, f.start, f.end));
        } else if (f.field == 5 && f.wt == 2) {
            TRY(charge(d, PW_LIM_SERIES, 1, COST_SERIES));
            TRY(push(&d->spans, (int64_t)f.start));
            TRY(push(&d->spans, (int64_t)f.end));
        }
    }
    for (size_t i = 0; i < d->spans.len; i += 2)
        TRY(series_v2(d, (size_t)d->spans.p[i], (size_t)d->spans.p[i + 1], (int64_t)(i / 2)));
    return 0;
}

/* --------------------------------------------------------------- entry */

/* The smaller of n / per and the cost budget / cost. */
static size_t room_for(const dec_t *d, size_t n, size_t per, int64_t cost)
{
    uint64_t budget = d->limits[PW_LIM_COST] > 0 ? (uint64_t)d->limits[PW_LIM_COST] / (uint64_t)cost : 0;
    return budget < n / per ? (size_t)budget : n / per;
}

/* Room, before the walk, for what a body of n bytes usually holds, so that
 * the vectors and tables seldom grow (they still can): a fixed fraction of
 * n, never more than the cost budget pays for. */
static int presize(dec_t *d, int v2, size_t n)
{
    size_t distinct = room_for(d, n, 128, COST_PAIR), series = room_for(d, n, 256, COST_SERIES);
    size_t labels = room_for(d, n, 64, COST_LABEL_REF), samples = room_for(d, n, 32, COST_SAMPLE);
    TRY(text_reserve(d, room_for(d, n, 8, COST_STRING) + 1));
    TRY(vec_reserve(&d->byte_ends, distinct));
    TRY(vec_reserve(&d->v[PW_DEC_STRING_ENDS], distinct));
    TRY(vec_reserve(&d->v[PW_DEC_PAIRS], 2 * distinct));
    TRY(vec_reserve(&d->v[PW_DEC_LABEL_REFS], labels));
    TRY(vec_reserve(&d->v[PW_DEC_SERIES_LABELS], series));
    TRY(vec_reserve(&d->v[PW_DEC_SERIES_SAMPLES], series));
    TRY(vec_reserve(&d->v[PW_DEC_VALUES], samples));
    TRY(vec_reserve(&d->v[PW_DEC_STAMPS], samples));
    TRY(table_init(&d->pairs, distinct, pair_hash));
    if (v2) {
        TRY(vec_reserve(&d->v[PW_DEC_STARTS], samples));
        return vec_reserve(&d->spans, 2 * series);
    }
    TRY(vec_reserve(&d->labels_read, 3 * distinct));
    TRY(table_init(&d->strings, distinct, string_hash));
    return table_init(&d->labels, distinct, label_hash);
}

static int run(int v2, const uint8_t *data, size_t n, const int64_t *limits, uint64_t seed, pw_decoded *out)
{
    static const uint8_t empty[1] = {0};
    dec_t d;
    int rc;
    memset(out, 0, sizeof *out);
    memset(&d, 0, sizeof d);
    d.buf = data ? data : empty;
    d.buf_len = data ? n : 0;
    memcpy(d.limits, limits, sizeof d.limits);
    d.key = hash_key(seed);
    d.err = out->err;
    if (data == NULL && n != 0)
        return PW_DEC_ETRUNC_VARINT;
    rc = presize(&d, v2, n);
    if (rc == 0)
        rc = v2 ? walk_v2(&d, n) : walk_v1(&d, n);
    free(d.byte_ends.p);
    free(d.spans.p);
    free(d.refs.p);
    free(d.exemplar_refs.p);
    free(d.labels_read.p);
    free(d.strings.slot);
    free(d.pairs.slot);
    free(d.labels.slot);
    for (int i = 0; i < PW_DEC_NVEC; i++) {
        out->vec[i] = d.v[i].p;
        out->len[i] = d.v[i].len;
    }
    out->text = d.text;
    out->text_len = d.text_len;
    out->nul_inside = d.nul_inside;
    memcpy(out->counts, d.counts, sizeof d.counts);
    return rc;
}

int pw_decode_v1(const uint8_t *data, size_t n, const int64_t *limits, uint64_t seed, pw_decoded *out)
{
    return run(0, data, n, limits, seed, out);
}

int pw_decode_v2(const uint8_t *data, size_t n, const int64_t *limits, uint64_t seed, pw_decoded *out)
{
    return run(1, data, n, limits, seed, out);
}

void pw_decoded_free(pw_decoded *out)
{
    if (out == NULL)
        return;
    for (int i = 0; i < PW_DEC_NVEC; i++) {
        free(out->vec[i]);
        out->vec[i] = NULL;
        out->len[i] = 0;
    }
    free(out->text);
    out->text = NULL;
    out->text_len = 0;
}
