/* Sanitizer driver for pbenc.c (not part of the extension: test_* is skipped).
 *
 *   cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address,undefined \
 *      -fno-sanitize-recover=all csrc/test_pbenc.c csrc/pbenc.c csrc/snappy.c
 *   ./a.out            # exits non-zero on the first failed check
 *
 * Checks known bytes, compares both kernels with the plain reference
 * encoders below on deterministic random inputs (every scratch placement,
 * both ways of splitting the text, compressed and not), and feeds them
 * hostile sizes and garbage, which must give an error code and no memory
 * error (address/undefined sanitizers) and no leak.
 */
#include "pbenc.h"
#include "snappy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 0x9E3779B97F4A7C15u
#include "test_common.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A scratch placement: none, tiny, misaligned, big. scratch_mem backs them. */
static uint8_t scratch_mem[1 << 20];

static uint8_t *pick_scratch(size_t *len)
{
    switch (below(5)) {
    case 0:
        *len = 0;
        return NULL;
    case 1:
        *len = below(64);
        return scratch_mem + 1 + below(15); /* misaligned */
    case 2:
        *len = below(4096);
        return scratch_mem + below(16);
    case 3:
        *len = below(sizeof scratch_mem - 16);
        return scratch_mem + 3;
    default:
        *len = sizeof scratch_mem;
        return scratch_mem;
    }
}

/* Frees a result the way the Python wrapper does. */
static void release(uint8_t *out, const size_t *info)
{
    if (info[PW_PB_OWNED])
        pw_pb_free(out);
}

/* ------------------------------------------------- label set reference */

typedef struct {
    const uint8_t *s;
    size_t n;
} str_t;

typedef struct {
    str_t name, value;
} pair_t;

static int str_cmp(str_t a, str_t b)
{
    size_t m = a.n < b.n ? a.n : b.n;
    int c = m ? memcmp(a.s, b.s, m) : 0;
    if (c)
        return c;
    return (a.n > b.n) - (a.n < b.n);
}

static int in_class(uint8_t c, int colon, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (colon && c == ':')
        return 1;
    return !first && c >= '0' && c <= '9';
}

static int good_name(str_t s, int colon)
{
    size_t i;
    if (s.n == 0)
        return 0;
    for (i = 0; i < s.n; i++)
        if (!in_class(s.s[i], colon, i == 0))
            return 0;
    return 1;
}

/* Appends the encoded set (sorted by a bubble sort); 0 if invalid. */
static int ref_label_set(pair_t *v, size_t n, buf_t *out)
{
    size_t i, j;
    int has_name = 0;
    for (i = 0; i < n; i++)
        for (j = 0; j + 1 < n - i; j++)
            if (str_cmp(v[j].name, v[j + 1].name) > 0) {
                pair_t t = v[j];
                v[j] = v[j + 1];
                v[j + 1] = t;
            }
    for (i = 0; i < n; i++) {
        if (i && str_cmp(v[i - 1].name, v[i].name) == 0)
            return 0;
        if (!good_name(v[i].name, 0) || v[i].value.n == 0)
            return 0;
        if (v[i].name.n == 8 && memcmp(v[i].name.s, "__name__", 8) == 0) {
            has_name = 1;
            if (!good_name(v[i].value, 1))
                return 0;
        }
    }
    if (!has_name)
        return 0;
    for (i = 0; i < n; i++) {
        size_t body = 1 + varint_size(v[i].name.n) + v[i].name.n + 1 + varint_size(v[i].value.n) + v[i].value.n;
        put_byte(out, 0x0a);
        put_varint(out, body);
        put_byte(out, 0x0a);
        put_varint(out, v[i].name.n);
        put(out, v[i].name.s, v[i].name.n);
        put_byte(out, 0x12);
        put_varint(out, v[i].value.n);
        put(out, v[i].value.s, v[i].value.n);
    }
    return 1;
}

/* ----------------------------------------------------- random strings */

/* Appends one UTF-8 character (no surrogates); returns its bytes. */
static size_t put_char(buf_t *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(b, u, n);
    return n;
}

static uint32_t random_char(int ascii_only)
{
    static const char pool[] = "abcxyzABZ_09:-. ";
    switch (ascii_only ? 0 : below(6)) {
    case 0:
    case 1:
        return (uint32_t)(uint8_t)pool[below(sizeof pool - 1)];
    case 2:
        return 0xE9; /* 2 bytes */
    case 3:
        return 0x20AC; /* 3 bytes */
    case 4:
        return 0x1F600; /* 4 bytes */
    default:
        return below(8) == 0 ? 0 : (uint32_t)(0x80 + below(0xD800 - 0x80));
    }
}

static const char *const odd_names[] = {"", "1bad", "bad-name", "__name__x", "m:x", "\xc3\xa9", "job", "__name__"};

typedef struct {
    buf_t text;      /* '\0'-separated */
    buf_t joined;    /* concatenated */
    int64_t *chars;  /* code points per string */
    size_t *off, *len;
    size_t n, cap;
    int has_nul;
} strings_t;

static void add_string(strings_t *s, const uint8_t *p, size_t n, int64_t chars)
{
    size_t i;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->chars = realloc(s->chars, s->cap * sizeof *s->chars);
        s->off = realloc(s->off, s->cap * sizeof *s->off);
        s->len = realloc(s->len, s->cap * sizeof *s->len);
        if (!s->chars || !s->off || !s->len)
            exit(2);
    }
    if (s->n)
        put_byte(&s->text, 0);
    s->off[s->n] = s->joined.len;
    s->len[s->n] = n;
    s->chars[s->n] = chars;
    put(&s->text, p, n);
    put(&s->joined, p, n);
    for (i = 0; i < n; i++)
        if (p[i] == 0)
            s->has_nul = 1;
    s->n++;
}

static void add_cstring(strings_t *s, const char *c)
{
    size_t n = strlen(c), i;
    int64_t chars = 0;
    for (i = 0; i < n; i++)
        chars += ((uint8_t)c[i] & 0xC0) != 0x80;
    add_string(s, (const uint8_t *)c, n, chars);
}

/* A label value: random UTF-8 of any length (maybe empty, maybe with '\0'). */
static void add_value(strings_t *s, int may_be_empty)
{
    buf_t b = {0};
    int64_t chars = 0;
    size_t n, i;
    n = below(20) == 0 ? 100 + below(200) : below(12);
    if (below(300) == 0)
        n = 16384 + below(100); /* 3-byte varint lengths */
    if (n == 0 && !may_be_empty)
        n = 1;
    for (i = 0; i < n; i++) {
        put_char(&b, random_char(below(3) == 0));
        chars++;
    }
    add_string(s, b.p, b.len, chars);
    free(b.p);
}

/* A metric name, valid unless bad. */
static void add_metric_name(strings_t *s, int bad)
{
    static const char first[] = "abzAZ_:", rest[] = "abzAZ_:09";
    char tmp[24];
    size_t n = 1 + below(20), i;
    tmp[0] = bad ? "0-. "[below(4)] : first[below(sizeof first - 1)];
    for (i = 1; i < n; i++)
        tmp[i] = rest[below(sizeof rest - 1)];
    tmp[n] = 0;
    add_cstring(s, tmp);
}

/* Appends a label set of c labels: valid, or broken in one random way. */
static void add_set(strings_t *s, size_t c, int broken)
{
    size_t used[96], j, k, where = below(c ? c : 1);
    int kind = broken ? (int)below(6) : -1;
    char tmp[16];
    for (k = 0; k < 96; k++)
        used[k] = k;
    for (k = 95; k > 0; k--) { /* shuffle the label numbers */
        size_t r = below(k + 1), t = used[k];
        used[k] = used[r];
        used[r] = t;
    }
    for (j = 0; j < c; j++) {
        if (j == where && kind != 0) {
            add_cstring(s, "__name__");
            add_metric_name(s, kind == 1);
            continue;
        }
        if (kind == 2 && j == (where + 1) % c) {
            add_cstring(s, odd_names[below(sizeof odd_names / sizeof *odd_names)]);
        } else if (kind == 3 && j == (where + 1) % c && j) {
            sprintf(tmp, "l%u", (unsigned)used[j - 1]); /* a duplicate */
            add_cstring(s, tmp);
        } else {
            sprintf(tmp, "%c%u", "lLx_"[used[j] % 4], (unsigned)used[j]);
            add_cstring(s, tmp);
        }
        add_value(s, kind == 4);
    }
}

static void free_strings(strings_t *s)
{
    free(s->text.p);
    free(s->joined.p);
    free(s->chars);
    free(s->off);
    free(s->len);
}

/* ---------------------------------------------------------- label tests */

static void check_format(const uint8_t *out, const size_t *info, size_t n_sets, const size_t *set_lens)
{
    const uint8_t *f = out + info[PW_PB_LEN];
    size_t i, sum = 0;
    CHECK(info[PW_PB_FMT_LEN] == n_sets * sizeof(int64_t));
    for (i = 0; i < n_sets; i++) {
        int64_t v;
        memcpy(&v, f + i * sizeof v, sizeof v);
        CHECK(v >= 0);
        if (set_lens)
            CHECK((size_t)v == set_lens[i]);
        sum += (size_t)v;
    }
    CHECK(sum == info[PW_PB_LEN]);
}

static void test_known_label_bytes(void)
{
    static const uint8_t text[] = "job\0a\0__name__\0up";
    static const uint8_t want[] = "\x0a\x0e\x0a\x08__name__\x12\x02up\x0a\x08\x0a\x03job\x12\x01\x61";
    int64_t count = 2;
    uint8_t *out;
    size_t info[PW_PB_INFO_LEN];
    int rc = pw_encode_label_sets(text, sizeof text - 1, NULL, 4, &count, 1, 0, NULL, 0, &out, info);
    CHECK(rc == PW_PB_OK);
    CHECK(info[PW_PB_LEN] == sizeof want - 1 && memcmp(out, want, sizeof want - 1) == 0);
    {
        int64_t len;
        CHECK(info[PW_PB_FMT_LEN] == sizeof len);
        memcpy(&len, out + info[PW_PB_LEN], sizeof len);
        CHECK(len == 26);
    }
    CHECK(info[PW_PB_OWNED] == 1);
    release(out, info);
}

/* Labels whose lengths straddle the 1-, 2- and 3-byte varint boundaries. */
static void test_boundary_lengths(void)
{
    static const size_t sizes[] = {0, 1, 100, 110, 111, 112, 113, 118, 119, 120, 121, 122, 123, 124, 125,
                                   126, 127, 128, 129, 130, 16370, 16375, 16376, 16377, 16378, 16379, 16380,
                                   16381, 16383, 16384, 16385};
    size_t a, b;
    for (a = 0; a < sizeof sizes / sizeof *sizes; a++) {
        for (b = 0; b < sizeof sizes / sizeof *sizes; b++) {
            size_t nlen = 1 + sizes[a], vlen = 1 + sizes[b], len = 8 + 1 + 2 + 1 + nlen + 1 + vlen, i;
            uint8_t *text = xmalloc(len), *out;
            int64_t count = 2;
            size_t info[PW_PB_INFO_LEN];
            pair_t pairs[2];
            buf_t want = {0};
            memcpy(text, "__name__\0up\0", 12);
            for (i = 0; i < nlen; i++)
                text[12 + i] = (uint8_t)('a' + i % 26);
            text[12 + nlen] = 0;
            memset(text + 13 + nlen, 'v', vlen);
            pairs[0].name.s = text;
            pairs[0].name.n = 8;
            pairs[0].value.s = text + 9;
            pairs[0].value.n = 2;
            pairs[1].name.s = text + 12;
            pairs[1].name.n = nlen;
            pairs[1].value.s = text + 13 + nlen;
            pairs[1].value.n = vlen;
            CHECK(ref_label_set(pairs, 2, &want));
            CHECK(pw_encode_label_sets(text, len, NULL, 4, &count, 1, 0, NULL, 0, &out, info) == PW_PB_OK);
            CHECK(info[PW_PB_LEN] == want.len && memcmp(out, want.p, want.len) == 0);
            release(out, info);
            free(want.p);
            free(text);
        }
    }
}

static void random_label_round(void)
{
    strings_t s = {{0}, {0}, 0, 0, 0, 0, 0, 0};
    size_t n_sets = below(6), i, k = 0;
    int64_t counts64[8];
    buf_t want = {0};
    size_t set_lens[8];
    int want_rc = PW_PB_OK;
    size_t want_err = 0, mode;
    pair_t *pairs;

    for (i = 0; i < n_sets; i++) {
        size_t c = below(10) == 0 ? 17 + below(60) : below(9);
        add_set(&s, c, below(5) == 0);
        counts64[i] = (int64_t)c;
    }
    /* reference, set by set */
    pairs = xmalloc((s.n / 2 + 1) * sizeof *pairs);
    for (i = 0; i < n_sets; i++) {
        size_t c = (size_t)counts64[i], j, before = want.len;
        for (j = 0; j < c; j++, k += 2) {
            pairs[j].name.s = s.joined.p ? s.joined.p + s.off[k] : NULL;
            pairs[j].name.n = s.len[k];
            pairs[j].value.s = s.joined.p ? s.joined.p + s.off[k + 1] : NULL;
            pairs[j].value.n = s.len[k + 1];
        }
        if (want_rc == PW_PB_OK && !ref_label_set(pairs, c, &want)) {
            want_rc = PW_PB_EINVALID;
            want_err = i;
        }
        set_lens[i] = want.len - before;
    }
    free(pairs);

    for (mode = 0; mode < 4; mode++) {
        int sep = mode < 2;
        uint8_t *out, *scratch;
        size_t info[PW_PB_INFO_LEN], scratch_len;
        int rc;
        scratch = pick_scratch(&scratch_len);
        rc = pw_encode_label_sets(sep ? s.text.p : s.joined.p, sep ? s.text.len : s.joined.len,
                                  sep ? NULL : s.chars, s.n, counts64, n_sets, 0, scratch, scratch_len, &out, info);
        if (sep && s.has_nul) {
            CHECK(rc == PW_PB_ESPLIT);
            continue;
        }
        CHECK(rc == want_rc);
        if (rc == PW_PB_EINVALID)
            CHECK(info[PW_PB_ERR_SERIES] == want_err);
        if (rc == PW_PB_OK) {
            CHECK(info[PW_PB_LEN] == want.len);
            CHECK(want.len == 0 || memcmp(out, want.p, want.len) == 0);
            check_format(out, info, n_sets, set_lens);
            CHECK(info[PW_PB_WANTED] >= info[PW_PB_LEN]);
            release(out, info);
        } else {
            CHECK(out == NULL && info[PW_PB_OWNED] == 0);
        }
    }
    /* the same labels as two columns */
    {
        buf_t names = {0}, values = {0};
        uint8_t *out, *scratch;
        size_t info[PW_PB_INFO_LEN], scratch_len;
        int rc;
        for (k = 0; k < s.n; k++) {
            buf_t *col = k % 2 ? &values : &names;
            if (k >= 2)
                put_byte(col, 0);
            put(col, s.joined.p ? s.joined.p + s.off[k] : NULL, s.len[k]);
        }
        scratch = pick_scratch(&scratch_len);
        rc = pw_encode_label_columns(names.p, names.len, values.p, values.len, s.n / 2, counts64, n_sets, 0, scratch,
                                     scratch_len, &out, info);
        if (s.has_nul) {
            CHECK(rc == PW_PB_ESPLIT);
        } else {
            CHECK(rc == want_rc);
            if (rc == PW_PB_EINVALID)
                CHECK(info[PW_PB_ERR_SERIES] == want_err);
            if (rc == PW_PB_OK) {
                CHECK(info[PW_PB_LEN] == want.len && (want.len == 0 || memcmp(out, want.p, want.len) == 0));
                check_format(out, info, n_sets, set_lens);
                release(out, info);
            }
        }
        free(names.p);
        free(values.p);
    }
    free(want.p);
    free_strings(&s);
}

/* Garbage text, counts and lengths: an error or a consistent result, never a crash. */
static void garbage_label_round(void)
{
    size_t text_len = below(64), n_strings = below(12), n_sets = below(5), i;
    uint8_t *text = xmalloc(text_len);
    int64_t *lengths = xmalloc(n_strings * sizeof *lengths + 1);
    int64_t counts[5];
    static const int64_t odd[] = {0, 1, -1, INT64_MAX, INT64_MIN, 0x7fffffff, 2, 3};
    for (i = 0; i < text_len; i++)
        text[i] = (uint8_t)(below(3) == 0 ? 0 : below(3) == 0 ? 0x80 + below(128) : 'a' + below(3));
    for (i = 0; i < n_strings; i++)
        lengths[i] = below(4) == 0 ? odd[below(8)] : (int64_t)below(8);
    for (i = 0; i < n_sets; i++)
        counts[i] = below(4) == 0 ? odd[below(8)] : (int64_t)below(4);
    for (i = 0; i < 2; i++) {
        uint8_t *out, *scratch;
        size_t info[PW_PB_INFO_LEN], scratch_len;
        int rc;
        scratch = pick_scratch(&scratch_len);
        rc = pw_encode_label_sets(text, text_len, i ? lengths : NULL, n_strings, counts, n_sets, 0, scratch,
                                  scratch_len, &out, info);
        CHECK(rc <= 0 && rc >= PW_PB_ENOMEM);
        if (rc == PW_PB_OK) {
            check_format(out, info, n_sets, NULL);
            release(out, info);
        }
    }
    free(text);
    free(lengths);
}

static void test_hostile_label_sizes(void)
{
    uint8_t *out;
    size_t info[PW_PB_INFO_LEN];
    static const uint8_t text[] = "__name__\0up";
    static const uint8_t utf8[] = "\xc3\xa9\xe2\x82"; /* e-acute, then a truncated euro sign */
    int64_t big = INT64_MAX, neg = -1, one = 1, two[2] = {INT64_MAX, INT64_MAX};
    int64_t lens_over[2] = {INT64_MAX, INT64_MAX}, lens_neg[2] = {-1, 3}, lens_ok[2] = {8, 2};
    int64_t lens_chars[2] = {1, 1}, lens_long[2] = {1, 5};

    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 2, &big, 1, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 2, &neg, 1, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 2, two, 2, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 3, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 2, NULL, 1, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    /* counts that claim 2^63 labels: too big before anything is read */
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, SIZE_MAX - 1, &big, 1, 0, NULL, 0, &out, info) ==
          PW_PB_ETOOBIG);
    /* strings but no sets; no separator; a separator too many */
    CHECK(pw_encode_label_sets(text, sizeof text - 1, NULL, 4, two, 0, 0, NULL, 0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_sets(text, 8, NULL, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets((const uint8_t *)"a\0b\0c", 5, NULL, 2, &one, 1, 0, NULL, 0, &out, info) ==
          PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(NULL, 3, NULL, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(NULL, 0, NULL, 0, NULL, 0, 0, NULL, 0, &out, info) == PW_PB_OK);
    CHECK(info[PW_PB_LEN] == 0 && info[PW_PB_FMT_LEN] == 0);
    release(out, info);
    CHECK(pw_encode_label_sets(text, 3, NULL, 0, NULL, 0, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(text, 3, lens_ok, 0, NULL, 0, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    /* lengths: overflowing, negative, past the end, short of it */
    CHECK(pw_encode_label_sets(text, 10, lens_over, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(text, 10, lens_neg, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(text, 9, lens_ok, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets((const uint8_t *)"__name__up", 10, lens_ok, 2, &one, 1, 0, NULL, 0, &out, info) ==
          PW_PB_OK);
    CHECK(info[PW_PB_LEN] == 16);
    release(out, info);
    /* columns: counts off, a string short, NULL texts */
    CHECK(pw_encode_label_columns((const uint8_t *)"a\0b", 3, (const uint8_t *)"x", 1, 2, &one, 1, 0, NULL, 0, &out,
                                  info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_columns((const uint8_t *)"a\0b", 3, (const uint8_t *)"x", 1, 2, two, 2, 0, NULL, 0, &out,
                                  info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_columns((const uint8_t *)"__name__", 8, (const uint8_t *)"x", 1, SIZE_MAX, &big, 1, 0, NULL,
                                  0, &out, info) == PW_PB_ECOUNTS);
    CHECK(pw_encode_label_columns((const uint8_t *)"a\0b", 3, (const uint8_t *)"x", 1, 2, &lens_ok[1], 1, 0, NULL, 0,
                                  &out, info) == PW_PB_ESPLIT); /* two names, one value */
    CHECK(pw_encode_label_columns(NULL, 1, (const uint8_t *)"x", 1, 1, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_columns((const uint8_t *)"x", 1, NULL, 1, 1, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_columns(NULL, 0, NULL, 0, 0, NULL, 0, 0, NULL, 0, &out, info) == PW_PB_OK);
    release(out, info);
    CHECK(pw_encode_label_columns((const uint8_t *)"__name__", 8, (const uint8_t *)"up", 2, 1, &one, 1, 0, NULL, 0, &out,
                                  info) == PW_PB_OK);
    {
        int64_t len;
        CHECK(info[PW_PB_LEN] == 16 && info[PW_PB_FMT_LEN] == sizeof len);
        memcpy(&len, out + 16, sizeof len);
        CHECK(len == 16);
    }
    release(out, info);
    /* a UTF-8 metric and label name: invalid by legacy rules, valid with utf8_names; empty never */
    {
        static const uint8_t nm[] = "__name__\0a.b", val[] = "my.m\0x";
        int64_t two_labels = 2;
        CHECK(pw_encode_label_columns(nm, sizeof nm - 1, val, sizeof val - 1, 2, &two_labels, 1, 0, NULL, 0, &out,
                                      info) == PW_PB_EINVALID);
        CHECK(pw_encode_label_columns(nm, sizeof nm - 1, val, sizeof val - 1, 2, &two_labels, 1, 1, NULL, 0, &out,
                                      info) == PW_PB_OK);
        CHECK(info[PW_PB_LEN] == (2 + 16) + (2 + 8));
        release(out, info);
        CHECK(pw_encode_label_columns(nm, 9, val, sizeof val - 1, 2, &two_labels, 1, 1, NULL, 0, &out, info) ==
              PW_PB_EINVALID); /* an empty label name */
    }
    /* malformed UTF-8 in the text */
    CHECK(pw_encode_label_sets(utf8 + 1, 3, lens_chars, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(utf8, 4, lens_long, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
    CHECK(pw_encode_label_sets(utf8, 4, lens_chars, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_EINVALID);
    CHECK(pw_encode_label_sets(utf8, 0, lens_chars, 2, &one, 1, 0, NULL, 0, &out, info) == PW_PB_ESPLIT);
}

/* ------------------------------------------------------- request tests */

typedef struct {
    buf_t labels, extras, metadata;
    int64_t *label_lens, *extra_lens, *counts;
    double *values;
    int64_t *stamps;
    size_t n_series, n_samples;
} request_t;

static void free_request(request_t *r)
{
    free(r->labels.p);
    free(r->extras.p);
    free(r->metadata.p);
    free(r->label_lens);
    free(r->extra_lens);
    free(r->counts);
    free(r->values);
    free(r->stamps);
}

static double random_double(void)
{
    static const uint64_t special[] = {0, 0x8000000000000000u, 0x7FF8000000000000u, 0x7FF0000000000000u,
                                       0xFFF0000000000000u, 0x7FF0000000000002u, 1, 0x3FF0000000000000u};
    uint64_t bits = below(3) ? special[below(8)] : rnd();
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static int64_t random_stamp(void)
{
    static const int64_t special[] = {0, 1, -1, INT64_MIN, INT64_MAX, 127, 128, 1700000000000};
    return below(3) ? special[below(8)] : (int64_t)rnd();
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A random request; with ordered, each series' timestamps strictly increase. */
static void random_request(request_t *r, int ordered)
{
    size_t i, j = 0;
    memset(r, 0, sizeof *r);
    r->n_series = below(8);
    r->label_lens = xmalloc(r->n_series * sizeof(int64_t));
    r->extra_lens = xmalloc(r->n_series * sizeof(int64_t));
    r->counts = xmalloc(r->n_series * sizeof(int64_t));
    r->values = xmalloc(8 * 8 * 40);
    r->stamps = xmalloc(8 * 8 * 40);
    for (i = 0; i < r->n_series; i++) {
        size_t n = below(16) == 0 ? 130 + below(20000) : below(30), c = below(6) == 0 ? 20 + below(20) : below(4), k;
        size_t e = below(4) == 0 ? below(200) : 0;
        for (k = 0; k < n; k++)
            put_byte(&r->labels, (uint8_t)rnd());
        for (k = 0; k < e; k++)
            put_byte(&r->extras, (uint8_t)rnd());
        r->label_lens[i] = (int64_t)n;
        r->extra_lens[i] = (int64_t)e;
        r->counts[i] = (int64_t)c;
        for (k = 0; k < c; k++, j++) {
            r->values[j] = random_double();
            r->stamps[j] = random_stamp();
        }
        if (ordered) {
            qsort(r->stamps + j - c, c, sizeof(int64_t), cmp_i64);
            for (k = j - c + 1; k < j; k++)
                if (r->stamps[k] <= r->stamps[k - 1])
                    r->stamps[k] = r->stamps[k - 1] == INT64_MAX ? r->stamps[k - 1] : r->stamps[k - 1] + 1;
        }
    }
    r->n_samples = j;
    for (i = below(40); i > 0; i--)
        put_byte(&r->metadata, (uint8_t)rnd());
}

/* The plain encoder; 0 and the series/sample on an order error. */
static int ref_request(const request_t *r, buf_t *out, size_t *err_series, size_t *err_sample)
{
    size_t i, j = 0, lo = 0, eo = 0;
    for (i = 0; i < r->n_series; i++) {
        buf_t body = {0};
        size_t k, c = (size_t)r->counts[i];
        put(&body, r->labels.p ? r->labels.p + lo : NULL, (size_t)r->label_lens[i]);
        lo += (size_t)r->label_lens[i];
        for (k = 0; k < c; k++, j++) {
            buf_t sample = {0};
            uint64_t bits;
            memcpy(&bits, &r->values[j], 8);
            if (k && r->stamps[j] <= r->stamps[j - 1]) {
                *err_series = i;
                *err_sample = j;
                free(body.p);
                return 0;
            }
            if (bits) {
                int b;
                put_byte(&sample, 0x09);
                for (b = 0; b < 8; b++)
                    put_byte(&sample, (uint8_t)(bits >> (8 * b)));
            }
            if (r->stamps[j]) {
                put_byte(&sample, 0x10);
                put_varint(&sample, (uint64_t)r->stamps[j]);
            }
            put_byte(&body, 0x12);
            put_varint(&body, sample.len);
            put(&body, sample.p, sample.len);
            free(sample.p);
        }
        put(&body, r->extras.p ? r->extras.p + eo : NULL, (size_t)r->extra_lens[i]);
        eo += (size_t)r->extra_lens[i];
        put_byte(out, 0x0a);
        put_varint(out, body.len);
        put(out, body.p, body.len);
        free(body.p);
    }
    put(out, r->metadata.p, r->metadata.len);
    return 1;
}

static void random_request_round(int ordered)
{
    request_t r;
    buf_t want = {0};
    size_t want_series = 0, want_sample = 0, mode;
    int ok;
    random_request(&r, ordered);
    ok = ref_request(&r, &want, &want_series, &want_sample);
    for (mode = 0; mode < 4; mode++) {
        int compress = (int)(mode & 1), no_extras = r.extras.len == 0 && below(2);
        uint8_t *out, *scratch;
        size_t info[PW_PB_INFO_LEN], scratch_len;
        int rc;
        scratch = pick_scratch(&scratch_len);
        rc = pw_encode_request(r.labels.p, r.labels.len, r.label_lens, r.counts, r.n_series, r.values, r.n_samples,
                               r.stamps, r.n_samples, r.extras.p, r.extras.len, no_extras ? NULL : r.extra_lens,
                               r.metadata.p, r.metadata.len, compress, scratch, scratch_len, &out, info);
        if (!ok) {
            CHECK(rc == PW_PB_EORDER);
            CHECK(info[PW_PB_ERR_SERIES] == want_series && info[PW_PB_ERR_SAMPLE] == want_sample);
            CHECK(out == NULL);
            continue;
        }
        CHECK(rc == PW_PB_OK);
        if (!compress) {
            CHECK(info[PW_PB_LEN] == want.len && (want.len == 0 || memcmp(out, want.p, want.len) == 0));
        } else {
            uint64_t declared;
            uint8_t *raw;
            CHECK(pw_snappy_uncompressed_length(out, info[PW_PB_LEN], &declared) == 0);
            CHECK(declared == want.len);
            raw = xmalloc(want.len);
            CHECK(pw_snappy_decompress(out, info[PW_PB_LEN], raw, want.len) == 0);
            CHECK(want.len == 0 || memcmp(raw, want.p, want.len) == 0);
            free(raw);
        }
        release(out, info);
    }
    free(want.p);
    free_request(&r);
}

static void test_known_request_bytes(void)
{
    /* one series: labels "L", samples (0.0, 0) and (-0.0, 1), no extras; metadata "M" */
    double values[2] = {0.0, -0.0};
    int64_t stamps[2] = {0, 1}, lens[1] = {1}, counts[1] = {2};
    static const uint8_t want[] = "\x0a\x10L\x12\x00\x12\x0b\x09\0\0\0\0\0\0\0\x80\x10\x01M";
    uint8_t *out;
    size_t info[PW_PB_INFO_LEN];
    CHECK(pw_encode_request((const uint8_t *)"L", 1, lens, counts, 1, values, 2, stamps, 2, NULL, 0, NULL,
                            (const uint8_t *)"M", 1, 0, NULL, 0, &out, info) == PW_PB_OK);
    CHECK(info[PW_PB_LEN] == sizeof want - 1 && memcmp(out, want, sizeof want - 1) == 0);
    release(out, info);
    CHECK(pw_encode_request(NULL, 0, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, NULL, 0, 1, NULL, 0,
                            &out, info) == PW_PB_OK);
    CHECK(info[PW_PB_LEN] == 1 && out[0] == 0); /* snappy of nothing */
    release(out, info);
}

static void test_hostile_request_sizes(void)
{
    double v[3] = {1, 2, 3};
    int64_t t[3] = {1, 2, 3};
    int64_t one[1] = {1}, big[2] = {INT64_MAX, INT64_MAX}, neg[1] = {-1}, three[1] = {3}, four[1] = {4};
    int64_t lens1[1] = {1}, lens_big[1] = {INT64_MAX}, lens_neg[1] = {-1}, lens2[2] = {INT64_MAX, 2};
    uint8_t *out;
    size_t info[PW_PB_INFO_LEN];
    const uint8_t *L = (const uint8_t *)"xy";
#define REQ(labels, llen, label_lens, counts, n, nv, nt, extras, elen, extra_lens)                               \
    pw_encode_request(labels, llen, label_lens, counts, n, v, nv, t, nt, extras, elen, extra_lens, NULL, 0, \
                      0, NULL, 0, &out, info)
    CHECK(REQ(L, 1, lens1, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_OK);
    release(out, info);
    CHECK(REQ(L, 1, lens_big, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens_neg, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 2, lens2, big, 2, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 2, lens1, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(NULL, 1, lens1, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, NULL, one, 1, 3, 3, NULL, 0, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens1, one, 1, 3, 3, L, 1, NULL) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens1, one, 1, 3, 3, L, 1, lens_big) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens1, one, 1, 3, 3, L, 1, lens_neg) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens1, one, 1, 3, 3, NULL, 1, lens1) == PW_PB_ESPLIT);
    CHECK(REQ(L, 1, lens1, big, 1, 3, 3, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(REQ(L, 1, lens1, neg, 1, 3, 3, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(REQ(L, 1, lens1, four, 1, 3, 3, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(REQ(L, 1, lens1, three, 1, 3, 2, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(REQ(L, 1, lens1, three, 1, 3, 3, NULL, 0, NULL) == PW_PB_OK);
    release(out, info);
    CHECK(REQ(L, 1, lens1, NULL, 1, 3, 3, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(REQ(NULL, 0, NULL, NULL, 0, SIZE_MAX, SIZE_MAX, NULL, 0, NULL) == PW_PB_ECOUNTS);
    CHECK(pw_encode_request(L, 1, lens1, one, 1, NULL, 1, t, 1, NULL, 0, NULL, NULL, 0, 0, NULL, 0, &out, info) ==
          PW_PB_ECOUNTS);
    CHECK(pw_encode_request(L, 1, lens1, one, 1, v, 1, t, 1, NULL, 0, NULL, NULL, 5, 0, NULL, 0, &out, info) ==
          PW_PB_ESPLIT);
    t[1] = 1;
    CHECK(REQ(L, 1, lens1, three, 1, 3, 3, NULL, 0, NULL) == PW_PB_EORDER);
    CHECK(info[PW_PB_ERR_SERIES] == 0 && info[PW_PB_ERR_SAMPLE] == 1);
#undef REQ
    pw_pb_free(NULL);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 3000, i;
    test_known_label_bytes();
    test_boundary_lengths();
    test_hostile_label_sizes();
    test_known_request_bytes();
    test_hostile_request_sizes();
    for (i = 0; i < rounds; i++) {
        random_label_round();
        garbage_label_round();
        random_request_round(i % 3 != 0);
    }
    printf("test_pbenc: %lu checks passed\n", checks);
    return 0;
}
