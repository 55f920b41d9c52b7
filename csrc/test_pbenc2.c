/* Sanitizer driver for pbenc2.c (not part of the extension: test_* is skipped).
 *
 *   cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address,undefined \
 *      -fno-sanitize-recover=all csrc/test_pbenc2.c csrc/pbenc2.c csrc/pbenc.c csrc/snappy.c
 *   ./a.out            # exits non-zero on the first failed check
 *
 * Checks known bytes; compares both kernels with the plain reference encoders
 * below (interning by linear search, parsing by the rules in pbenc2.h) on
 * deterministic random inputs, with every scratch placement, compressed and
 * not; feeds them mutated label text, whose outcome (error or bytes) must be
 * the reference's; and hostile sizes and pointers, which must give an error
 * code. The sanitizers catch any memory error, undefined behaviour or leak.
 */
#include "pbenc2.h"
#include "snappy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 0x2545F4914F6CDD1Du
#include "test_common.h"

static void put_i64(buf_t *b, int64_t v)
{
    put(b, &v, 8);
}

static void put_field(buf_t *b, uint8_t tag, const uint8_t *p, size_t n)
{
    put_byte(b, tag);
    put_varint(b, n);
    put(b, p, n);
}

/* Scratch: none, too small, or big, at a random (mis)alignment. */
static uint8_t scratch_mem[1 << 20];

static uint8_t *pick_scratch(size_t *len)
{
    switch (below(4)) {
    case 0:
        *len = 0;
        return NULL;
    case 1:
        *len = below(64);
        return scratch_mem + below(16);
    default:
        *len = sizeof scratch_mem - 16;
        return scratch_mem + below(16);
    }
}

static void release(uint8_t *out, const size_t *info)
{
    if (info[PW_PB2_OWNED])
        pw_pb_free(out);
}

/* ----------------------------------------------------------- reference */

typedef struct {
    const uint8_t *p;
    size_t n;
} str_t;

/* A varint of at most 10 bytes in t[*pos..end); 0 when longer or cut. */
static int ref_varint(const uint8_t *t, size_t *pos, size_t end, uint64_t *v)
{
    uint64_t x = 0;
    int i;
    for (i = 0; i < 10; i++) {
        uint8_t c;
        if (*pos >= end)
            return 0;
        c = t[(*pos)++];
        if (i == 9 && c > 1)
            return 0;
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (c < 0x80) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

static int ref_string(const uint8_t *t, size_t *pos, size_t end, uint8_t tag, str_t *s)
{
    uint64_t n;
    if (*pos >= end || t[*pos] != tag)
        return 0;
    (*pos)++;
    if (!ref_varint(t, pos, end, &n) || n > end - *pos)
        return 0;
    s->p = t + *pos;
    s->n = (size_t)n;
    *pos += (size_t)n;
    return 1;
}

typedef struct {
    str_t *v;
    size_t n, cap;
} table_t;

static uint32_t ref_intern(table_t *t, str_t s)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        if (t->v[i].n == s.n && (s.n == 0 || memcmp(t->v[i].p, s.p, s.n) == 0))
            return (uint32_t)i;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
        if (!t->v)
            exit(2);
    }
    t->v[t->n] = s;
    return (uint32_t)t->n++;
}

/* The expected output of pw_encode_symbols_v2, or 0 when the label text is refused. */
static int ref_symbols(const uint8_t *labels, const int64_t *label_lens, size_t n_sets, const uint8_t *strings,
                       const int64_t *string_lens, size_t n_strings, buf_t *out, size_t *sym_len, size_t *ref_len)
{
    table_t table = {NULL, 0, 0};
    buf_t refs = {NULL, 0, 0}, lens = {NULL, 0, 0}, srefs = {NULL, 0, 0};
    size_t i, pos = 0;
    int ok = 1;
    str_t empty = {(const uint8_t *)"", 0};
    if (labels == NULL)
        labels = empty.p;
    if (strings == NULL)
        strings = empty.p;
    ref_intern(&table, empty);
    for (i = 0; i < n_sets && ok; i++) {
        size_t end = pos + (size_t)label_lens[i];
        buf_t body = {NULL, 0, 0};
        size_t before = refs.len;
        while (pos < end) {
            str_t label, name, value;
            size_t p;
            if (!ref_string(labels, &pos, end, 0x0a, &label)) {
                ok = 0;
                break;
            }
            p = (size_t)(label.p - labels);
            if (!ref_string(labels, &p, p + label.n, 0x0a, &name) ||
                !ref_string(labels, &p, (size_t)(label.p - labels) + label.n, 0x12, &value) ||
                p != (size_t)(label.p - labels) + label.n) {
                ok = 0;
                break;
            }
            put_varint(&body, ref_intern(&table, name));
            put_varint(&body, ref_intern(&table, value));
        }
        if (body.len)
            put_field(&refs, 0x0a, body.p, body.len);
        put_i64(&lens, (int64_t)(refs.len - before));
        free(body.p);
    }
    for (i = 0, pos = 0; i < n_strings && ok; i++) {
        str_t s;
        s.p = strings + pos;
        s.n = (size_t)string_lens[i];
        pos += s.n;
        put_i64(&srefs, ref_intern(&table, s));
    }
    if (ok) {
        for (i = 0; i < table.n; i++)
            put_field(out, 0x22, table.v[i].p, table.v[i].n);
        *sym_len = out->len;
        *ref_len = refs.len;
        put(out, refs.p, refs.len);
        put(out, lens.p, lens.len);
        put(out, srefs.p, srefs.len);
    }
    free(table.v);
    free(refs.p);
    free(lens.p);
    free(srefs.p);
    return ok;
}

typedef struct {
    size_t n_series;
    buf_t symbols, refs, extras;
    int64_t *ref_lens, *extra_lens, *counts, *starts;
    double *values;
    int64_t *stamps;
    size_t n_samples;
} request_t;

/* The expected pw_encode_request_v2 output (uncompressed), or 0 with the out-of-order sample. */
static int ref_request(const request_t *r, buf_t *out, size_t *err_series, size_t *err_sample)
{
    size_t i, j = 0, roff = 0, eoff = 0;
    const uint8_t *refs = r->refs.p ? r->refs.p : (const uint8_t *)"";
    const uint8_t *extras = r->extras.p ? r->extras.p : (const uint8_t *)"";
    put(out, r->symbols.p, r->symbols.len);
    for (i = 0; i < r->n_series; i++) {
        buf_t body = {NULL, 0, 0};
        size_t k, start = j;
        int64_t begun = r->starts ? r->starts[i] : 0;
        put(&body, refs + roff, (size_t)r->ref_lens[i]);
        roff += (size_t)r->ref_lens[i];
        for (k = 0; k < (size_t)r->counts[i]; k++, j++) {
            buf_t s = {NULL, 0, 0};
            uint64_t bits;
            if (j > start && r->stamps[j] <= r->stamps[j - 1]) {
                *err_series = i;
                *err_sample = j;
                free(body.p);
                return 0;
            }
            memcpy(&bits, &r->values[j], 8);
            if (bits) {
                int b;
                put_byte(&s, 0x09);
                for (b = 0; b < 8; b++)
                    put_byte(&s, (uint8_t)(bits >> (8 * b)));
            }
            if (r->stamps[j]) {
                put_byte(&s, 0x10);
                put_varint(&s, (uint64_t)r->stamps[j]);
            }
            if (begun) {
                put_byte(&s, 0x18);
                put_varint(&s, (uint64_t)begun);
            }
            put_field(&body, 0x12, s.p, s.len);
            free(s.p);
        }
        if (r->extra_lens) {
            put(&body, extras + eoff, (size_t)r->extra_lens[i]);
            eoff += (size_t)r->extra_lens[i];
        }
        put_field(out, 0x2a, body.p, body.len);
        free(body.p);
    }
    return 1;
}

/* ------------------------------------------------------- random inputs */

static const char *const pool[] = {"", "__name__", "up", "job", "node", "a", "b", "instance", "le", "0.5"};

static void random_string(buf_t *b, size_t *len)
{
    size_t n, i;
    if (below(3)) {
        const char *s = pool[below(sizeof pool / sizeof *pool)];
        n = strlen(s);
        put(b, s, n);
    } else {
        n = below(4) ? below(20) : 100 + below(200);
        for (i = 0; i < n; i++)
            put_byte(b, (uint8_t)(below(5) ? 'a' + below(3) : below(256)));
    }
    *len = n;
}

/* Label text of n_sets random sets (names and values any bytes: this kernel does not judge them). */
static void random_labels(buf_t *text, int64_t *lens, size_t n_sets)
{
    size_t i, k;
    for (i = 0; i < n_sets; i++) {
        size_t before = text->len, labels = below(6);
        for (k = 0; k < labels; k++) {
            buf_t name = {NULL, 0, 0}, value = {NULL, 0, 0}, body = {NULL, 0, 0};
            size_t nn, vn;
            random_string(&name, &nn);
            random_string(&value, &vn);
            put_field(&body, 0x0a, name.p, nn);
            put_field(&body, 0x12, value.p, vn);
            put_field(text, 0x0a, body.p, body.len);
            free(name.p);
            free(value.p);
            free(body.p);
        }
        lens[i] = (int64_t)(text->len - before);
    }
}

static void symbols_round(int mutate)
{
    size_t n_sets = below(8), n_strings = below(6), i, scratch_len, sym_len = 0, ref_len = 0;
    int64_t *lens = malloc((n_sets + 1) * sizeof *lens), *slens = malloc((n_strings + 1) * sizeof *slens);
    buf_t text = {NULL, 0, 0}, strings = {NULL, 0, 0}, expected = {NULL, 0, 0};
    uint8_t *out, *scratch;
    size_t info[PW_PB2_INFO_LEN];
    int rc, ok;
    if (!lens || !slens)
        exit(2);
    random_labels(&text, lens, n_sets);
    for (i = 0; i < n_strings; i++) {
        size_t n;
        random_string(&strings, &n);
        slens[i] = (int64_t)n;
    }
    if (mutate && text.len) {
        size_t flips = 1 + below(3);
        for (i = 0; i < flips; i++)
            text.p[below(text.len)] = (uint8_t)rnd();
    }
    ok = ref_symbols(text.p, lens, n_sets, strings.p, slens, n_strings, &expected, &sym_len, &ref_len);
    scratch = pick_scratch(&scratch_len);
    rc = pw_encode_symbols_v2(text.p, text.len, lens, n_sets, strings.p, strings.len, slens, n_strings, scratch,
                              scratch_len, &out, info);
    if (ok) {
        CHECK(rc == PW_PB_OK);
        CHECK(info[PW_PB2_LEN] == expected.len);
        CHECK(info[PW_PB2_SYMBOLS_LEN] == sym_len && info[PW_PB2_REFS_LEN] == ref_len);
        CHECK(memcmp(out, expected.p, expected.len) == 0);
        release(out, info);
    } else {
        CHECK(rc == PW_PB_ESPLIT);
        CHECK(out == NULL && info[PW_PB2_OWNED] == 0);
    }
    free(lens);
    free(slens);
    free(text.p);
    free(strings.p);
    free(expected.p);
}

static void free_request(request_t *r)
{
    free(r->symbols.p);
    free(r->refs.p);
    free(r->extras.p);
    free(r->ref_lens);
    free(r->extra_lens);
    free(r->counts);
    free(r->starts);
    free(r->values);
    free(r->stamps);
}

static int64_t random_i64(void)
{
    switch (below(4)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)below(1000) - 500;
    default:
        return (int64_t)rnd();
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void random_request(request_t *r, int ordered)
{
    size_t i, j, n = below(8);
    memset(r, 0, sizeof *r);
    r->n_series = n;
    r->ref_lens = malloc((n + 1) * 8);
    r->counts = malloc((n + 1) * 8);
    r->starts = below(2) ? malloc((n + 1) * 8) : NULL;
    r->extra_lens = below(2) ? malloc((n + 1) * 8) : NULL;
    if (!r->ref_lens || !r->counts)
        exit(2);
    for (i = below(50); i; i--)
        put_byte(&r->symbols, (uint8_t)rnd());
    for (i = 0; i < n; i++) {
        size_t len = below(40);
        for (j = 0; j < len; j++)
            put_byte(&r->refs, (uint8_t)rnd());
        r->ref_lens[i] = (int64_t)len;
        r->counts[i] = (int64_t)below(6);
        r->n_samples += (size_t)r->counts[i];
        if (r->starts)
            r->starts[i] = random_i64();
        if (r->extra_lens) {
            len = below(30);
            for (j = 0; j < len; j++)
                put_byte(&r->extras, (uint8_t)rnd());
            r->extra_lens[i] = (int64_t)len;
        }
    }
    r->values = malloc((r->n_samples + 1) * 8);
    r->stamps = malloc((r->n_samples + 1) * 8);
    if (!r->values || !r->stamps)
        exit(2);
    for (i = 0, j = 0; i < n; i++) {
        size_t k, c = (size_t)r->counts[i];
        for (k = 0; k < c; k++) {
            uint64_t bits = below(4) ? rnd() : 0;
            memcpy(&r->values[j + k], &bits, 8);
            r->stamps[j + k] = random_i64();
        }
        if (ordered) {
            qsort(r->stamps + j, c, 8, cmp_i64);
            for (k = 1; k < c; k++)
                if (r->stamps[j + k] <= r->stamps[j + k - 1])
                    r->stamps[j + k] = r->stamps[j + k - 1] + 1; /* no overflow: random values are far apart */
        }
        j += c;
    }
}

static void request_round(int ordered)
{
    request_t r;
    buf_t expected = {NULL, 0, 0};
    size_t info[PW_PB2_INFO_LEN], err_series = 0, err_sample = 0, scratch_len;
    uint8_t *out, *scratch;
    int compress = (int)below(2), ok, rc;
    random_request(&r, ordered);
    ok = ref_request(&r, &expected, &err_series, &err_sample);
    scratch = pick_scratch(&scratch_len);
    rc = pw_encode_request_v2(r.symbols.p, r.symbols.len, r.refs.p, r.refs.len, r.ref_lens, r.counts, r.n_series,
                              r.values, r.n_samples, r.stamps, r.n_samples, r.starts, r.extras.p, r.extras.len,
                              r.extra_lens, compress, scratch, scratch_len, &out, info);
    if (!ok) {
        CHECK(rc == PW_PB_EORDER);
        CHECK(info[PW_PB2_ERR_SERIES] == err_series && info[PW_PB2_ERR_SAMPLE] == err_sample);
    } else if (compress) {
        uint8_t *dst = malloc(pw_snappy_max_compressed_length(expected.len) + 1);
        size_t n;
        if (!dst)
            exit(2);
        n = pw_snappy_compress(expected.p ? expected.p : (const uint8_t *)"", expected.len, dst);
        CHECK(rc == PW_PB_OK && info[PW_PB2_LEN] == n && memcmp(out, dst, n) == 0);
        free(dst);
        release(out, info);
    } else {
        CHECK(rc == PW_PB_OK && info[PW_PB2_LEN] == expected.len);
        CHECK(expected.len == 0 || memcmp(out, expected.p, expected.len) == 0);
        release(out, info);
    }
    free(expected.p);
    free_request(&r);
}

/* --------------------------------------------------------- known bytes */

static void test_known_bytes(void)
{
    /* up{job="a"}, up{job="b"}; strings "Up." and "a" */
    static const uint8_t labels[] = {
        0x0a, 0x0e, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x02, 'u', 'p',
        0x0a, 0x08, 0x0a, 0x03, 'j', 'o', 'b', 0x12, 0x01, 'a',
        0x0a, 0x0e, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x02, 'u', 'p',
        0x0a, 0x08, 0x0a, 0x03, 'j', 'o', 'b', 0x12, 0x01, 'b',
    };
    static const int64_t lens[] = {26, 26}, slens[] = {3, 1};
    static const uint8_t expected_symbols[] = {
        0x22, 0x00, 0x22, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x22, 0x02, 'u', 'p',
        0x22, 0x03, 'j', 'o', 'b', 0x22, 0x01, 'a', 0x22, 0x01, 'b', 0x22, 0x03, 'U', 'p', '.',
    };
    static const uint8_t expected_refs[] = {0x0a, 0x04, 1, 2, 3, 4, 0x0a, 0x04, 1, 2, 3, 5};
    int64_t v;
    size_t info[PW_PB2_INFO_LEN];
    uint8_t *out;
    int rc = pw_encode_symbols_v2(labels, sizeof labels, lens, 2, (const uint8_t *)"Up.a", 4, slens, 2, NULL, 0,
                                  &out, info);
    CHECK(rc == PW_PB_OK);
    CHECK(info[PW_PB2_SYMBOLS_LEN] == sizeof expected_symbols && info[PW_PB2_REFS_LEN] == sizeof expected_refs);
    CHECK(info[PW_PB2_LEN] == sizeof expected_symbols + sizeof expected_refs + 32);
    CHECK(memcmp(out, expected_symbols, sizeof expected_symbols) == 0);
    CHECK(memcmp(out + sizeof expected_symbols, expected_refs, sizeof expected_refs) == 0);
    memcpy(&v, out + info[PW_PB2_LEN] - 16, 8);
    CHECK(v == 6); /* "Up." */
    memcpy(&v, out + info[PW_PB2_LEN] - 8, 8);
    CHECK(v == 4); /* "a" is known */
    CHECK(info[PW_PB2_OWNED] == 1);
    release(out, info);

    {
        /* one series: refs [1,2], 1.0 @ 1000 with start 500 */
        static const uint8_t refs[] = {0x0a, 0x02, 1, 2};
        static const int64_t ref_lens[] = {4}, counts[] = {1}, stamps[] = {1000}, starts[] = {500};
        static const double values[] = {1.0};
        static const uint8_t want[] = {0x22, 0x00, 0x2a, 0x15, 0x0a, 0x02, 1, 2, 0x12, 0x0f, 0x09, 0, 0, 0, 0, 0,
                                       0, 0xf0, 0x3f, 0x10, 0xe8, 0x07, 0x18, 0xf4, 0x03};
        rc = pw_encode_request_v2((const uint8_t *)"\x22\x00", 2, refs, 4, ref_lens, counts, 1, values, 1, stamps, 1,
                                  starts, NULL, 0, NULL, 0, NULL, 0, &out, info);
        CHECK(rc == PW_PB_OK && info[PW_PB2_LEN] == sizeof want && memcmp(out, want, sizeof want) == 0);
        release(out, info);
    }
}

/* ------------------------------------------------------- hostile input */

static void test_hostile(void)
{
    static const uint8_t label[] = {0x0a, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, 'b'};
    static const uint8_t long_varint[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    int64_t lens[2] = {8, 0}, neg[1] = {-1}, counts[2] = {1, 1}, stamps[2] = {1, 2}, huge[1] = {INT64_MAX};
    double values[2] = {1, 2};
    size_t info[PW_PB2_INFO_LEN];
    uint8_t *out;
    int64_t eleven[1] = {11};

    CHECK(pw_encode_symbols_v2(NULL, 1, lens, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, NULL, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, neg, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, huge, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 7, lens, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, lens, 1, NULL, 3, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, lens, 1, (const uint8_t *)"abc", 3, NULL, 5, NULL, 0, &out, info) ==
          PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(label, 8, lens, 1, (const uint8_t *)"abc", 3, huge, 1, NULL, 0, &out, info) ==
          PW_PB_ESPLIT);
    CHECK(pw_encode_symbols_v2(long_varint, 11, eleven, 1, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(out == NULL);
    /* empty: just the "" symbol, from a NULL text */
    CHECK(pw_encode_symbols_v2(NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, &out, info) == PW_PB_OK);
    CHECK(info[PW_PB2_LEN] == 2 && out[0] == 0x22 && out[1] == 0);
    release(out, info);

    CHECK(pw_encode_request_v2(NULL, 1, NULL, 0, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, NULL, 0, NULL, 0, NULL, 0, &out,
                               info) == PW_PB_ESPLIT);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0,
                               NULL, 0, &out, info) == PW_PB_OK);
    release(out, info);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, values, 1, stamps, 2, NULL, NULL, 0, NULL, 0,
                               NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, NULL, 2, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, NULL, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, neg, counts, 1, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, values, 2, stamps, 2, NULL, label, 8, NULL, 0,
                               NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, values, SIZE_MAX, stamps, SIZE_MAX, NULL, NULL, 0,
                               NULL, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    counts[1] = -1;
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 2, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_ECOUNTS);
    counts[1] = 1;
    stamps[1] = 1;
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 1, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_OK);
    release(out, info);
    counts[0] = 2;
    lens[0] = 8;
    CHECK(pw_encode_request_v2(NULL, 0, label, 8, lens, counts, 1, values, 2, stamps, 2, NULL, NULL, 0, NULL, 0, NULL,
                               0, &out, info) == PW_PB_EORDER);
    CHECK(info[PW_PB2_ERR_SERIES] == 0 && info[PW_PB2_ERR_SAMPLE] == 1 && out == NULL);
}

/* A big request through both kernels: a grown table, multi-byte references, scratch too small. */
static void test_big(void)
{
    size_t n_sets = 20000, i, info[PW_PB2_INFO_LEN], sym_len = 0, ref_len = 0;
    int64_t *lens = malloc(n_sets * 8);
    buf_t text = {NULL, 0, 0}, expected = {NULL, 0, 0};
    uint8_t *out;
    if (!lens)
        exit(2);
    for (i = 0; i < n_sets; i++) {
        char value[32];
        buf_t body = {NULL, 0, 0};
        size_t before = text.len, n = (size_t)snprintf(value, sizeof value, "v%lu", (unsigned long)(i % 3000));
        put_field(&body, 0x0a, (const uint8_t *)"id", 2);
        put_field(&body, 0x12, (const uint8_t *)value, n);
        put_field(&text, 0x0a, body.p, body.len);
        free(body.p);
        lens[i] = (int64_t)(text.len - before);
    }
    CHECK(ref_symbols(text.p, lens, n_sets, NULL, NULL, 0, &expected, &sym_len, &ref_len));
    CHECK(pw_encode_symbols_v2(text.p, text.len, lens, n_sets, NULL, 0, NULL, 0, scratch_mem, 100, &out, info) ==
          PW_PB_OK);
    CHECK(info[PW_PB2_LEN] == expected.len && memcmp(out, expected.p, expected.len) == 0);
    CHECK(info[PW_PB2_WANTED] >= info[PW_PB2_LEN]);
    release(out, info);
    free(lens);
    free(text.p);
    free(expected.p);
}

int main(void)
{
    int i;
    test_known_bytes();
    test_hostile();
    test_big();
    for (i = 0; i < 3000; i++) {
        symbols_round(0);
        symbols_round(1);
        request_round(1);
        request_round(i % 4 == 0 ? 0 : 1);
    }
    printf("pbenc2: %lu checks passed\n", checks);
    return 0;
}
