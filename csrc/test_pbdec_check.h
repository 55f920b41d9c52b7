/* The invariants of a pw_decoded, shared by the sanitizer driver test_pbdec.c
 * and the libFuzzer target test_fuzz_pbdec.c (not part of the extension). */
#ifndef PW_TEST_PBDEC_CHECK_H
#define PW_TEST_PBDEC_CHECK_H

#include "pbdec.h"

#include <stdlib.h>

#define DEC_CHECK(cond)      \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

static const int64_t PBDEC_LIMITS_BIG[PW_LIM_N] = {1 << 30, 1 << 30, 1 << 30, 1 << 30,
                                                    1 << 30, 1 << 30, 1 << 30, (int64_t)1 << 40};

static int64_t sum_of(const int64_t *p, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        DEC_CHECK(p[i] >= 0);
        s += p[i];
    }
    return s;
}

/* Checks what a decode of n input bytes gave: rc in range, every id and
 * count consistent with the vectors, every byte range inside the input,
 * the counts within the limits; the output at most a fixed multiple of n. */
static void check_decoded(int rc, const pw_decoded *o, size_t n, const int64_t *limits, int v2)
{
    size_t strings = o->len[PW_DEC_STRING_ENDS], pairs = o->len[PW_DEC_PAIRS] / 2, total = 0;
    DEC_CHECK(rc <= 0 && rc >= PW_DEC_ELIMIT);
    for (int i = 0; i < PW_LIM_N; i++)
        DEC_CHECK(o->counts[i] >= 0 && o->counts[i] <= limits[i]);
    if (rc != 0)
        return;
    for (int i = 0; i < PW_DEC_NVEC; i++)
        total += o->len[i];
    DEC_CHECK(total <= 2 * n + 1); /* at most two int64s per input byte */
    DEC_CHECK(strings <= n + 1 && o->text_len <= n + strings); /* each string's bytes and a NUL */
    size_t nuls = 0;
    for (size_t i = 0; i < o->text_len; i++)
        nuls += o->text[i] == 0;
    DEC_CHECK(o->nul_inside ? nuls > strings : nuls == strings);
    DEC_CHECK(o->text_len == 0 || o->text[o->text_len - 1] == 0);
    DEC_CHECK(o->len[PW_DEC_NON_ASCII] % 2 == 0);
    for (size_t i = 0, at = 0; i < o->len[PW_DEC_NON_ASCII]; i += 2) { /* in order, each a string (NUL after it) */
        const int64_t *row = o->vec[PW_DEC_NON_ASCII] + i;
        DEC_CHECK(row[0] >= (int64_t)at && row[0] < row[1] && (size_t)row[1] < o->text_len && o->text[row[1]] == 0);
        DEC_CHECK(row[0] == 0 || o->text[row[0] - 1] == 0);
        at = (size_t)row[1] + 1;
    }
    DEC_CHECK(o->len[PW_DEC_PAIRS] % 2 == 0);
    for (size_t i = 1; i < strings; i++)
        DEC_CHECK(o->vec[PW_DEC_STRING_ENDS][i] >= o->vec[PW_DEC_STRING_ENDS][i - 1]);
    for (size_t i = 0; i < 2 * pairs; i++)
        DEC_CHECK(o->vec[PW_DEC_PAIRS][i] >= 0 && (size_t)o->vec[PW_DEC_PAIRS][i] < strings);
    for (size_t i = 0; i < o->len[PW_DEC_LABEL_REFS]; i++)
        DEC_CHECK(o->vec[PW_DEC_LABEL_REFS][i] >= 0 && (size_t)o->vec[PW_DEC_LABEL_REFS][i] < pairs);
    for (size_t i = 0; i < o->len[PW_DEC_EXEMPLAR_REFS]; i++)
        DEC_CHECK(o->vec[PW_DEC_EXEMPLAR_REFS][i] >= 0 && (size_t)o->vec[PW_DEC_EXEMPLAR_REFS][i] < pairs);
    size_t series = o->len[PW_DEC_SERIES_LABELS];
    DEC_CHECK(o->len[PW_DEC_SERIES_SAMPLES] == series);
    DEC_CHECK((size_t)sum_of(o->vec[PW_DEC_SERIES_LABELS], series) == o->len[PW_DEC_LABEL_REFS]);
    DEC_CHECK((size_t)sum_of(o->vec[PW_DEC_SERIES_SAMPLES], series) == o->len[PW_DEC_VALUES]);
    DEC_CHECK(o->len[PW_DEC_STAMPS] == o->len[PW_DEC_VALUES]);
    DEC_CHECK(o->len[PW_DEC_STARTS] == (v2 ? o->len[PW_DEC_VALUES] : 0));
    DEC_CHECK(o->len[PW_DEC_EXEMPLARS] % 4 == 0 && o->len[PW_DEC_HISTOGRAMS] % 3 == 0 && o->len[PW_DEC_METADATA] % 4 == 0);
    int64_t exemplar_labels = 0;
    for (size_t i = 0; i < o->len[PW_DEC_EXEMPLARS]; i += 4) {
        DEC_CHECK(o->vec[PW_DEC_EXEMPLARS][i] >= 0 && (size_t)o->vec[PW_DEC_EXEMPLARS][i] < series);
        DEC_CHECK(o->vec[PW_DEC_EXEMPLARS][i + 1] >= 0);
        exemplar_labels += o->vec[PW_DEC_EXEMPLARS][i + 1];
    }
    DEC_CHECK((size_t)exemplar_labels == o->len[PW_DEC_EXEMPLAR_REFS]);
    for (size_t i = 0; i < o->len[PW_DEC_HISTOGRAMS]; i += 3) {
        const int64_t *h = o->vec[PW_DEC_HISTOGRAMS] + i;
        DEC_CHECK(h[0] >= 0 && (size_t)h[0] < series && h[1] >= 0 && h[1] <= h[2] && (size_t)h[2] <= n);
    }
    for (size_t i = 0; i < o->len[PW_DEC_METADATA]; i += 4) {
        const int64_t *m = o->vec[PW_DEC_METADATA] + i;
        if (v2)
            DEC_CHECK(m[0] >= 0 && (size_t)m[0] < series && (size_t)m[2] < strings && (size_t)m[3] < strings);
        else
            DEC_CHECK((size_t)m[1] < strings && (size_t)m[2] < strings && (size_t)m[3] < strings);
    }
    for (size_t i = 0; i < o->len[PW_DEC_UNSORTED]; i++)
        DEC_CHECK(o->vec[PW_DEC_UNSORTED][i] >= 0 && (size_t)o->vec[PW_DEC_UNSORTED][i] < series);
    DEC_CHECK((int64_t)series <= o->counts[PW_LIM_SERIES]);
}

/* Decodes data[0..n) as both versions from an exact-size copy (so ASan sees any over-read), checked. */
static void decode_checked(const uint8_t *data, size_t n, const int64_t *limits)
{
    for (int v2 = 0; v2 < 2; v2++) {
        uint8_t *copy = (uint8_t *)malloc(n ? n : 1);
        pw_decoded out;
        int rc;
        DEC_CHECK(copy != NULL);
        if (n)
            memcpy(copy, data, n);
        rc = (v2 ? pw_decode_v2 : pw_decode_v1)(n ? copy : NULL, n, limits, 0x9e3779b97f4a7c15ULL, &out);
        check_decoded(rc, &out, n, limits, v2);
        pw_decoded_free(&out);
        free(copy);
    }
}

#endif /* PW_TEST_PBDEC_CHECK_H */
