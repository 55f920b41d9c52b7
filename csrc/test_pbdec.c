/* Sanitizer driver for pbdec.c (not part of the extension: test_* is skipped).
 *
 *   cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address,undefined \
 *      -fno-sanitize-recover=all csrc/test_pbdec.c csrc/pbdec.c
 *   ./a.out            # exits non-zero on the first failed check
 *
 * Builds random valid 1.0 and 2.0 requests with a plain encoder below and
 * checks the decoded vectors against what was encoded; then decodes mutated
 * and truncated copies (each in an exact-size buffer) and hostile inputs
 * under random limits, checking the invariants of test_pbdec_check.h. The
 * sanitizers catch any memory error, undefined behaviour or leak.
 */
#include "pbdec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 0x9E3779B97F4A7C15u
#include "test_common.h"
#include "test_pbdec_check.h"

static const char *WORDS[] = {"", "__name__", "job", "up", "instance", "a", "z\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "long-value-0123456789"};
#define N_WORDS (sizeof WORDS / sizeof WORDS[0])

static void put_len_field(buf_t *b, uint8_t tag, const buf_t *inner)
{
    put_byte(b, tag);
    put_varint(b, inner->len);
    put(b, inner->p, inner->len);
}

static void put_string(buf_t *b, uint8_t tag, const char *s)
{
    size_t n = strlen(s);
    put_byte(b, tag);
    put_varint(b, n);
    put(b, s, n);
}

static void put_fixed64(buf_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        put_byte(b, (uint8_t)(v >> (8 * i)));
}

typedef struct {
    size_t series, labels, samples;
    int64_t first_stamp;
    size_t first_series_samples;
    uint64_t values_xor, stamps_xor; /* 1.0: of every sample */
} built_t;

/* A random 1.0 request (labels from WORDS, samples with random bits). */
static void build_v1(buf_t *out, built_t *what)
{
    size_t n = below(6);
    memset(what, 0, sizeof *what);
    for (size_t s = 0; s < n; s++) {
        buf_t series = {0}, label = {0}, sample = {0};
        size_t labels = below(5), samples = below(4);
        for (size_t k = 0; k < labels; k++) {
            label.len = 0;
            put_string(&label, 0x0a, WORDS[below(N_WORDS)]);
            put_string(&label, 0x12, WORDS[below(N_WORDS)]);
            put_len_field(&series, 0x0a, &label);
        }
        for (size_t k = 0; k < samples; k++) {
            int64_t stamp = (int64_t)(rnd() >> below(64)) - (int64_t)(rnd() >> 2 >> below(62));
            uint64_t bits = rnd();
            sample.len = 0;
            put_byte(&sample, 0x09);
            put_fixed64(&sample, bits);
            put_byte(&sample, 0x10);
            put_varint(&sample, (uint64_t)stamp);
            what->values_xor ^= bits;
            what->stamps_xor ^= (uint64_t)stamp;
            put_len_field(&series, 0x12, &sample);
            if (what->samples == 0)
                what->first_stamp = stamp;
            what->samples++;
        }
        if (below(4) == 0) { /* a histogram: count, spans, packed deltas and counts */
            buf_t h = {0}, span = {0};
            put_byte(&h, 0x08);
            put_varint(&h, below(100));
            put_byte(&span, 0x08);
            put_varint(&span, 3);
            put_len_field(&h, 0x5a, &span);
            put_byte(&h, 0x62);
            put_varint(&h, 2);
            put_byte(&h, 0x02);
            put_byte(&h, 0x03);
            put_byte(&h, 0x82);
            put_byte(&h, 0x01);
            put_varint(&h, 8);
            put_fixed64(&h, rnd());
            put_len_field(&series, 0x22, &h);
            free(h.p);
            free(span.p);
        }
        if (s == 0)
            what->first_series_samples = samples;
        what->labels += labels;
        put_len_field(out, 0x0a, &series);
        free(series.p);
        free(label.p);
        free(sample.p);
    }
    what->series = n;
    if (below(2)) {
        buf_t m = {0};
        put_byte(&m, 0x08);
        put_varint(&m, below(8));
        put_string(&m, 0x12, WORDS[below(N_WORDS)]);
        put_string(&m, 0x22, WORDS[below(N_WORDS)]);
        put_len_field(out, 0x1a, &m);
        free(m.p);
    }
}

/* A random 2.0 request: symbols WORDS (""), series with in-range refs. */
static void build_v2(buf_t *out, built_t *what)
{
    size_t n = below(6);
    memset(what, 0, sizeof *what);
    for (size_t i = 0; i < N_WORDS; i++)
        put_string(out, 0x22, WORDS[i]);
    for (size_t s = 0; s < n; s++) {
        buf_t series = {0}, refs = {0}, sample = {0};
        size_t labels = below(5), samples = below(4);
        for (size_t k = 0; k < 2 * labels; k++)
            put_varint(&refs, below(N_WORDS));
        if (labels)
            put_len_field(&series, 0x0a, &refs);
        for (size_t k = 0; k < samples; k++) {
            sample.len = 0;
            put_byte(&sample, 0x09);
            put_fixed64(&sample, rnd());
            put_byte(&sample, 0x10);
            put_varint(&sample, rnd());
            if (below(2)) {
                put_byte(&sample, 0x18);
                put_varint(&sample, below(3));
            }
            put_len_field(&series, 0x12, &sample);
        }
        if (below(3) == 0) {
            buf_t m = {0};
            put_byte(&m, 0x08);
            put_varint(&m, 1);
            put_byte(&m, 0x18);
            put_varint(&m, below(N_WORDS));
            put_len_field(&series, 0x2a, &m);
            free(m.p);
        }
        what->labels += labels;
        what->samples += samples;
        put_len_field(out, 0x2a, &series);
        free(series.p);
        free(refs.p);
        free(sample.p);
    }
    what->series = n;
}

static void check_valid(int v2)
{
    buf_t req = {0};
    built_t what;
    pw_decoded out;
    int rc;
    if (v2)
        build_v2(&req, &what);
    else
        build_v1(&req, &what);
    rc = (v2 ? pw_decode_v2 : pw_decode_v1)(req.p, req.len, PBDEC_LIMITS_BIG, rnd(), &out);
    CHECK(rc == 0);
    check_decoded(rc, &out, req.len, PBDEC_LIMITS_BIG, v2);
    CHECK(out.len[PW_DEC_SERIES_LABELS] == what.series);
    CHECK(out.len[PW_DEC_LABEL_REFS] == what.labels);
    CHECK(out.len[PW_DEC_VALUES] == what.samples);
    if (!v2 && what.samples) {
        uint64_t values_xor = 0, stamps_xor = 0;
        for (size_t i = 0; i < what.samples; i++) {
            values_xor ^= (uint64_t)out.vec[PW_DEC_VALUES][i];
            stamps_xor ^= (uint64_t)out.vec[PW_DEC_STAMPS][i];
        }
        CHECK(out.vec[PW_DEC_STAMPS][0] == what.first_stamp);
        CHECK(values_xor == what.values_xor && stamps_xor == what.stamps_xor);
    }
    if (!v2 && what.series)
        CHECK((size_t)out.vec[PW_DEC_SERIES_SAMPLES][0] == what.first_series_samples);
    if (v2)
        CHECK(out.len[PW_DEC_STRING_ENDS] == N_WORDS);
    pw_decoded_free(&out);

    /* every limit one below what the request holds fails with that limit */
    for (int lim = 0; lim < PW_LIM_N; lim++) {
        int64_t limits[PW_LIM_N];
        memcpy(limits, PBDEC_LIMITS_BIG, sizeof limits);
        rc = (v2 ? pw_decode_v2 : pw_decode_v1)(req.p, req.len, limits, 1, &out);
        CHECK(rc == 0);
        limits[lim] = out.counts[lim] - 1;
        pw_decoded_free(&out);
        if (limits[lim] < 0)
            continue;
        rc = (v2 ? pw_decode_v2 : pw_decode_v1)(req.p, req.len, limits, 2, &out);
        CHECK(rc == PW_DEC_ELIMIT && out.err[0] == (uint64_t)lim && out.err[1] == (uint64_t)limits[lim]);
        pw_decoded_free(&out);
    }

    /* mutated and truncated copies, under random limits */
    for (int round = 0; round < 20; round++) {
        buf_t m = {0};
        int64_t limits[PW_LIM_N];
        put(&m, req.p, req.len);
        for (size_t k = below(4) + 1; k > 0 && m.len; k--)
            m.p[below(m.len)] = (uint8_t)rnd();
        m.len = below(m.len + 1);
        for (int i = 0; i < PW_LIM_N; i++)
            limits[i] = below(3) ? PBDEC_LIMITS_BIG[i] : (int64_t)below(50 * (i == PW_LIM_COST ? 100 : 1));
        decode_checked(m.p, m.len, limits);
        free(m.p);
    }
    free(req.p);
}

/* String k of a decode (its text holds no NUL but the separators). */
static const char *nth_string(const pw_decoded *o, size_t k)
{
    const char *s = (const char *)o->text;
    while (k--)
        s += strlen(s) + 1;
    return s;
}

/* Many distinct labels in a small body (the tables start at a size guessed
 * from the body's length, then grow), each read twice, the second time in
 * reverse order: every string and pair is stored once, found again after
 * the tables grew, and each label's pair is the same both times. */
static void check_tables_grow(int v2)
{
    enum { DISTINCT = 3000 };
    buf_t req = {0}, series = {0}, inner = {0};
    char word[16];
    pw_decoded out;
    int rc;
    if (v2) {
        put_string(&req, 0x22, "");
        put_string(&req, 0x22, "k");
        for (int i = 0; i < DISTINCT; i++) {
            snprintf(word, sizeof word, "v%d", i);
            put_string(&req, 0x22, word);
        }
        for (int i = 0; i < 2 * DISTINCT; i++) {
            put_varint(&inner, 1);
            put_varint(&inner, (uint64_t)(i < DISTINCT ? i : 2 * DISTINCT - 1 - i) + 2);
        }
        put_len_field(&series, 0x0a, &inner);
        put_len_field(&req, 0x2a, &series);
    } else {
        for (int i = 0; i < 2 * DISTINCT; i++) {
            inner.len = 0;
            snprintf(word, sizeof word, "v%d", i < DISTINCT ? i : 2 * DISTINCT - 1 - i);
            put_string(&inner, 0x0a, "k");
            put_string(&inner, 0x12, word);
            put_len_field(&series, 0x0a, &inner);
        }
        put_len_field(&req, 0x0a, &series);
    }
    rc = (v2 ? pw_decode_v2 : pw_decode_v1)(req.p, req.len, PBDEC_LIMITS_BIG, rnd(), &out);
    CHECK(rc == 0);
    check_decoded(rc, &out, req.len, PBDEC_LIMITS_BIG, v2);
    CHECK(out.len[PW_DEC_STRING_ENDS] == DISTINCT + 2 && out.len[PW_DEC_PAIRS] == 2 * DISTINCT);
    CHECK(out.len[PW_DEC_LABEL_REFS] == 2 * DISTINCT);
    for (int i = 0; i < DISTINCT; i++) {
        int64_t pair = out.vec[PW_DEC_LABEL_REFS][i];
        CHECK(pair == i && out.vec[PW_DEC_LABEL_REFS][2 * DISTINCT - 1 - i] == pair);
        snprintf(word, sizeof word, "v%d", i);
        CHECK(strcmp(nth_string(&out, (size_t)out.vec[PW_DEC_PAIRS][2 * pair]), "k") == 0);
        CHECK(strcmp(nth_string(&out, (size_t)out.vec[PW_DEC_PAIRS][2 * pair + 1]), word) == 0);
    }
    pw_decoded_free(&out);
    free(req.p);
    free(series.p);
    free(inner.p);
}

static void check_hostile(void)
{
    static const uint8_t cases[][12] = {
        {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, /* length 2^64-1 */
        {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, /* varint over 64 bits */
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},       /* field 2^61-1, wire type 7 */
        {0x2a, 0x08, 0x0a, 0x06, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00},       /* ref 2^32-1 */
        {0x0a, 0x04, 0x22, 0x02, 0x52, 0x01},                               /* packed doubles cut */
    };
    pw_decoded out;
    int rc;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t n = 0; n <= sizeof cases[i]; n++)
            decode_checked(cases[i], n, PBDEC_LIMITS_BIG);
    rc = pw_decode_v1(cases[0], 11, PBDEC_LIMITS_BIG, 0, &out);
    CHECK(rc == PW_DEC_ECLAIMS && out.err[0] == 1 && out.err[1] == UINT64_MAX && out.err[2] == 0);
    pw_decoded_free(&out);
    rc = pw_decode_v1(cases[1], 11, PBDEC_LIMITS_BIG, 0, &out);
    CHECK(rc == PW_DEC_EVARINT_64);
    pw_decoded_free(&out);
    rc = pw_decode_v2(cases[3], 10, PBDEC_LIMITS_BIG, 0, &out);
    CHECK(rc == PW_DEC_EREF && out.err[0] == 0 && out.err[1] == 0xffffffffu && out.err[2] == 0);
    pw_decoded_free(&out);
    rc = pw_decode_v1(NULL, 0, PBDEC_LIMITS_BIG, 0, &out);
    CHECK(rc == 0 && out.len[PW_DEC_SERIES_LABELS] == 0);
    pw_decoded_free(&out);
    pw_decoded_free(NULL);

    /* the empty-series bomb stops at the cost limit, having read only the bytes up to it */
    {
        size_t n = 1 << 20;
        uint8_t *bomb = (uint8_t *)malloc(n);
        int64_t limits[PW_LIM_N];
        CHECK(bomb != NULL);
        for (size_t i = 0; i < n; i += 2) {
            bomb[i] = 0x0a;
            bomb[i + 1] = 0x00;
        }
        memcpy(limits, PBDEC_LIMITS_BIG, sizeof limits);
        limits[PW_LIM_COST] = 32 * (int64_t)n;
        rc = pw_decode_v1(bomb, n, limits, 0, &out);
        CHECK(rc == PW_DEC_ELIMIT && out.err[0] == PW_LIM_COST);
        CHECK(out.len[PW_DEC_SERIES_LABELS] < n / 10); /* of n / 2 */
        pw_decoded_free(&out);
        free(bomb);
    }
}

int main(void)
{
    for (int i = 0; i < 400; i++) {
        check_valid(0);
        check_valid(1);
    }
    check_tables_grow(0);
    check_tables_grow(1);
    check_hostile();
    printf("pbdec: %lu checks passed\n", checks);
    return 0;
}
