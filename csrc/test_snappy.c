/* Standalone driver for csrc/snappy.c, meant to run under ASan + UBSan:
 *
 *   cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address,undefined \
 *      -fno-sanitize-recover=all csrc/test_snappy.c csrc/snappy.c && ./a.out
 *
 * Round trips on generated inputs, golden vectors (the bytes the Python
 * compressor emits), hand-built streams of every tag kind, corrupt streams,
 * and a bounded deterministic mutation-fuzz loop. Every buffer is malloc'd at
 * its exact size so the sanitizer sees any access one byte past it.
 * Optional argument: fuzz iterations (default 500000). Exits non-zero on
 * failure.
 */
#include "snappy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            if (failures > 20)                                             \
                exit(1);                                                   \
        }                                                                  \
    } while (0)

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static uint8_t *dup_exact(const uint8_t *src, size_t n)
{
    uint8_t *p = (uint8_t *)malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    if (n)
        memcpy(p, src, n);
    return p;
}

/* Compresses into an exact-size buffer; returns it (caller frees), *out_n set. */
static uint8_t *compress_exact(const uint8_t *data, size_t n, size_t *out_n)
{
    size_t bound = pw_snappy_max_compressed_length(n);
    uint8_t *src = dup_exact(data, n);
    uint8_t *dst = (uint8_t *)malloc(bound);
    size_t k;
    CHECK(bound > 0, "bound for %zu", n);
    if (dst == NULL)
        exit(2);
    k = pw_snappy_compress(src, n, dst);
    CHECK(k > 0 && k <= bound, "compress %zu -> %zu (bound %zu)", n, k, bound);
    free(src);
    *out_n = k;
    return dst;
}

/* Decodes an exact-size copy of src; returns rc; *out (malloc'd) on success. */
static int decompress_exact(const uint8_t *stream, size_t n, uint8_t **out, uint64_t *out_len, uint64_t cap)
{
    uint8_t *src = dup_exact(stream, n);
    uint64_t total = 0;
    uint8_t *dst;
    int rc = pw_snappy_uncompressed_length(src, n, &total);
    *out = NULL;
    if (rc == 0 && total > cap)
        rc = 1; /* over our limit: not decoded */
    if (rc == 0) {
        dst = (uint8_t *)malloc(total ? (size_t)total : 1);
        if (dst == NULL)
            exit(2);
        rc = pw_snappy_decompress(src, n, total ? dst : NULL, (size_t)total);
        if (rc == 0) {
            *out = dst;
            *out_len = total;
        } else {
            free(dst);
        }
    }
    free(src);
    return rc;
}

static void round_trip(const uint8_t *data, size_t n)
{
    size_t k;
    uint8_t *packed = compress_exact(data, n, &k);
    uint8_t *out = NULL;
    uint64_t out_len = 0;
    int rc = decompress_exact(packed, k, &out, &out_len, (uint64_t)1 << 32);
    CHECK(rc == 0, "round trip of %zu bytes: rc %d", n, rc);
    if (rc == 0) {
        CHECK(out_len == n && (n == 0 || memcmp(out, data, n) == 0), "round trip of %zu bytes differs", n);
        free(out);
    }
    /* Every strict prefix of a valid stream is invalid. Checking them all is
     * quadratic, so only the last few and a handful of others. */
    if (k < 4096) {
        size_t cut;
        for (cut = 0; cut < k; cut += (k - cut > 16 ? 1 + below(64) : 1)) {
            rc = decompress_exact(packed, cut, &out, &out_len, (uint64_t)1 << 32);
            CHECK(rc < 0, "prefix %zu of %zu decoded (rc %d)", cut, k, rc);
            free(out);
        }
    }
    free(packed);
}

/* Repetitive data: pieces from a small pool, runs of bytes, random bytes. */
static size_t gen_input(uint8_t *buf, size_t cap)
{
    uint8_t pool[8][128];
    size_t pool_len[8], n = 0, target = below(cap + 1), i, j;
    size_t kind = below(4);
    for (i = 0; i < 8; i++) {
        pool_len[i] = 1 + below(kind == 0 ? 8 : 128);
        for (j = 0; j < pool_len[i]; j++)
            pool[i][j] = (uint8_t)(kind == 1 ? 'a' + below(3) : rnd());
    }
    while (n < target) {
        size_t what = below(10);
        if (kind == 3 || what == 0) { /* random bytes */
            size_t len = 1 + below(64);
            for (j = 0; j < len && n < target; j++)
                buf[n++] = (uint8_t)rnd();
        } else if (what == 1) { /* a run */
            size_t len = 1 + below(300);
            uint8_t b = (uint8_t)rnd();
            for (j = 0; j < len && n < target; j++)
                buf[n++] = b;
        } else {
            size_t p = below(8);
            for (j = 0; j < pool_len[p] && n < target; j++)
                buf[n++] = pool[p][j];
        }
    }
    return n;
}

static void test_round_trips(void)
{
    size_t cap = 300000, i, n;
    uint8_t *buf = (uint8_t *)malloc(cap);
    if (buf == NULL)
        exit(2);
    for (n = 0; n <= 300; n++) { /* every small size */
        size_t j;
        for (j = 0; j < n; j++)
            buf[j] = (uint8_t)"abcab"[below(5)];
        round_trip(buf, n);
    }
    for (i = 0; i < 400; i++) {
        n = gen_input(buf, i % 20 == 0 ? cap : 5000);
        round_trip(buf, n);
    }
    memset(buf, 'z', cap); /* long runs across block boundaries */
    round_trip(buf, 65536);
    round_trip(buf, 65537);
    round_trip(buf, cap);
    for (i = 0; i < cap; i++)
        buf[i] = (uint8_t)rnd(); /* incompressible: the skip heuristic */
    round_trip(buf, cap);
    free(buf);
}

/* A plain reference of the compressor specified at the top of snappy.c (and
 * of promwrite/_pysnappy.py): the exact map is a simple table of full keys,
 * twice the block size, cleared per block. pw_snappy_compress, with its
 * sized/growing table of positions, must emit the very same bytes. */
typedef struct {
    uint32_t key, pos, used;
} ref_slot;

static ref_slot *ref_table;

static uint32_t ref_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Sets key's position to pos; returns 1 + the old one, or 0. */
static uint32_t ref_swap(uint32_t key, uint32_t pos)
{
    uint32_t i = (key * 0x9E3779B1u) >> 15, old;
    while (ref_table[i].used && ref_table[i].key != key)
        i = (i + 1) & 0x1ffff;
    old = ref_table[i].used ? ref_table[i].pos + 1 : 0;
    ref_table[i].key = key;
    ref_table[i].pos = pos;
    ref_table[i].used = 1;
    return old;
}

static uint8_t *ref_literal(uint8_t *op, const uint8_t *lit, uint32_t len)
{
    uint32_t n = len - 1;
    if (n < 60) {
        *op++ = (uint8_t)(n << 2);
    } else {
        unsigned nb = n < 0x100u ? 1 : n < 0x10000u ? 2 : 3, i;
        *op++ = (uint8_t)((59 + nb) << 2);
        for (i = 0; i < nb; i++)
            *op++ = (uint8_t)(n >> (8 * i));
    }
    memcpy(op, lit, len);
    return op + len;
}

static uint8_t *ref_copy(uint8_t *op, uint32_t offset, uint32_t len)
{
    while (len > 0) {
        uint32_t piece = len >= 68 ? 64 : len > 64 ? 60 : len;
        if (piece < 12 && offset < 2048) {
            *op++ = (uint8_t)(((offset >> 3) & 0xe0) | ((piece - 4) << 2) | 1);
            *op++ = (uint8_t)offset;
        } else {
            *op++ = (uint8_t)(((piece - 1) << 2) | 2);
            *op++ = (uint8_t)offset;
            *op++ = (uint8_t)(offset >> 8);
        }
        len -= piece;
    }
    return op;
}

static size_t ref_compress(const uint8_t *src, size_t n, uint8_t *dst)
{
    uint8_t *op = dst;
    size_t v = n, start;
    while (v >= 0x80) {
        *op++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *op++ = (uint8_t)v;
    for (start = 0; start < n; start += 65536) {
        const uint8_t *blk = src + start;
        uint32_t end = n - start < 65536 ? (uint32_t)(n - start) : 65536;
        uint32_t ip = 0, next_emit = 0, skip = 32;
        memset(ref_table, 0, sizeof(ref_slot) << 17);
        while (ip + 4 <= end) {
            uint32_t cand = ref_swap(ref_load32(blk + ip), ip), len = 4;
            if (cand == 0) {
                ip += skip >> 5;
                skip++;
                continue;
            }
            cand--;
            if (ip > next_emit)
                op = ref_literal(op, blk + next_emit, ip - next_emit);
            while (ip + len < end && blk[cand + len] == blk[ip + len])
                len++;
            op = ref_copy(op, ip - cand, len);
            ip += len;
            next_emit = ip;
            skip = 32;
            if (ip + 3 <= end)
                ref_swap(ref_load32(blk + ip - 1), ip - 1);
        }
        if (next_emit < end)
            op = ref_literal(op, blk + next_emit, end - next_emit);
    }
    return (size_t)(op - dst);
}

static void same_as_reference(const uint8_t *data, size_t n, const char *what)
{
    size_t k, rk;
    uint8_t *packed = compress_exact(data, n, &k);
    uint8_t *ref = (uint8_t *)malloc(pw_snappy_max_compressed_length(n));
    if (ref == NULL)
        exit(2);
    rk = ref_compress(data, n, ref);
    CHECK(k == rk && memcmp(packed, ref, k) == 0, "%s: %zu bytes differ from the reference", what, n);
    free(ref);
    free(packed);
}

/* Many distinct keys at short intervals: 3 fresh bytes, then 4 copied ones. */
static size_t gen_many_keys(uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j;
        for (j = 0; j < 3 && i < n; j++)
            buf[i++] = (uint8_t)rnd();
        if (i >= 8) {
            size_t from = i - 4 - below(i - 4 < 2000 ? i - 4 : 2000);
            for (j = 0; j < 4 && i < n; j++)
                buf[i++] = buf[from + j];
        }
    }
    return n;
}

static void test_reference(void)
{
    size_t cap = 5 * 65536 + 3000, i, n;
    uint8_t *buf = (uint8_t *)malloc(cap);
    ref_table = (ref_slot *)malloc(sizeof(ref_slot) << 17);
    if (buf == NULL || ref_table == NULL)
        exit(2);
    for (n = 0; n <= 300; n++) {
        size_t j;
        for (j = 0; j < n; j++)
            buf[j] = (uint8_t)"abcdab"[below(6)];
        same_as_reference(buf, n, "small");
    }
    for (i = 0; i < 60; i++) {
        n = gen_input(buf, i % 6 == 0 ? cap : 20000);
        same_as_reference(buf, n, "generated");
    }
    /* a block of few keys, then blocks of many: the table starts small and
     * grows (rehashes) all the way, mid-block, then a short last block */
    memset(buf, 0, 65536);
    gen_many_keys(buf + 65536, 3 * 65536);
    memset(buf + 4 * 65536, 'q', 1000);
    gen_many_keys(buf + 4 * 65536 + 1000, cap - 4 * 65536 - 1000);
    same_as_reference(buf, cap, "growth");
    same_as_reference(buf, 2 * 65536 + 777, "growth, short last block");
    gen_many_keys(buf, cap);
    same_as_reference(buf, cap, "many keys");
    for (i = 0; i < cap; i++)
        buf[i] = (uint8_t)rnd();
    same_as_reference(buf, cap, "random");
    free(ref_table);
    free(buf);
}

struct golden {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
};

static void test_golden(void)
{
    /* From promwrite._pysnappy.compress: both implementations must agree. */
    static const struct golden cases[] = {
        {"", 0, "\x00", 1},
        {"a", 1, "\x01\x00\x61", 3},
        {"abcdabcdabcd", 12, "\x0c\x0c\x61\x62\x63\x64\x11\x04", 8},
        {"xabababababxabababababxabababababtail", 37,
         "\x25\x08\x78\x61\x62\x11\x02\x56\x0b\x00\x0c\x74\x61\x69\x6c", 15},
    };
    size_t i, k;
    uint8_t run[100];
    uint8_t *packed;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        packed = compress_exact((const uint8_t *)cases[i].in, cases[i].in_len, &k);
        CHECK(k == cases[i].out_len && memcmp(packed, cases[i].out, k) == 0, "golden case %zu", i);
        free(packed);
    }
    memset(run, 'a', sizeof run);
    packed = compress_exact(run, sizeof run, &k);
    CHECK(k == 9 && memcmp(packed, "\x64\x00\x61\xfe\x01\x00\x8a\x01\x00", 9) == 0, "golden run of 100");
    free(packed);
}

struct stream_case {
    const char *name;
    const char *in;
    size_t in_len;
    int rc;
    const char *out;
    size_t out_len;
};

static void test_streams(void)
{
    static const struct stream_case cases[] = {
        {"empty", "\x00", 1, 0, "", 0},
        {"literal", "\x03\x08" "abc", 5, 0, "abc", 3},
        {"literal 1-byte length", "\x01\xf0\x00" "z", 4, 0, "z", 1},
        {"literal 2-byte length", "\x02\xf4\x01\x00" "zz", 6, 0, "zz", 2},
        {"literal 3-byte length", "\x02\xf8\x01\x00\x00" "zz", 7, 0, "zz", 2},
        {"literal 4-byte length", "\x02\xfc\x01\x00\x00\x00" "zz", 8, 0, "zz", 2},
        {"copy-1", "\x0c\x0c" "abcd" "\x11\x04", 8, 0, "abcdabcdabcd", 12},
        {"copy-2", "\x0c\x0c" "abcd" "\x1e\x04\x00", 9, 0, "abcdabcdabcd", 12},
        {"copy-4", "\x0c\x0c" "abcd" "\x1f\x04\x00\x00\x00", 11, 0, "abcdabcdabcd", 12},
        {"overlap xababab", "\x07\x08" "xab" "\x01\x02", 7, 0, "xababab", 7},
        {"overlap run", "\x0c\x00" "a" "\x1d\x01", 5, 0, "aaaaaaaaaaaa", 12},
        {"overlap copy-4", "\x0b\x04" "ab" "\x23\x02\x00\x00\x00", 9, 0, "abababababa", 11},
        {"no input", "", 0, PW_SNAPPY_EHEADER, NULL, 0},
        {"varint truncated", "\x80", 1, PW_SNAPPY_EHEADER, NULL, 0},
        {"varint 6 bytes", "\x80\x80\x80\x80\x80\x00", 6, PW_SNAPPY_EHEADER, NULL, 0},
        {"varint over 2^32-1", "\x80\x80\x80\x80\x10\x00\x00", 7, PW_SNAPPY_EHEADER, NULL, 0},
        {"impossible length", "\xe8\x07\x00" "a" "\xfe\x01\x00", 7, PW_SNAPPY_EIMPOSSIBLE, NULL, 0},
        {"offset 0", "\x0c\x0c" "abcd" "\x11\x00", 8, PW_SNAPPY_EOFFSET, NULL, 0},
        {"offset beyond", "\x0c\x0c" "abcd" "\x11\x05", 8, PW_SNAPPY_EOFFSET, NULL, 0},
        {"copy-4 offset huge", "\x0c\x0c" "abcd" "\x1f\xff\xff\xff\xff", 11, PW_SNAPPY_EOFFSET, NULL, 0},
        {"copy first", "\x08\x11\x01", 3, PW_SNAPPY_EOFFSET, NULL, 0},
        {"over declared (literal)", "\x03\x0c" "abcd", 6, PW_SNAPPY_EOVERFLOW, NULL, 0},
        {"over declared (copy)", "\x0a\x0c" "abcd" "\x11\x04", 8, PW_SNAPPY_EOVERFLOW, NULL, 0},
        {"under declared", "\x05\x0c" "abcd", 6, PW_SNAPPY_ESHORT, NULL, 0},
        {"literal truncated", "\x04\x0c" "abc", 5, PW_SNAPPY_ETRUNCATED, NULL, 0},
        {"literal length truncated", "\x05\xf8\x2b", 3, PW_SNAPPY_ETRUNCATED, NULL, 0},
        {"literal length 2^32", "\x05\xfc\xff\xff\xff\xff" "hello", 11, PW_SNAPPY_ETRUNCATED, NULL, 0},
        {"copy-1 truncated", "\x0c\x0c" "abcd" "\x11", 7, PW_SNAPPY_ETRUNCATED, NULL, 0},
        {"copy-2 truncated", "\x0c\x0c" "abcd" "\x1e\x04", 8, PW_SNAPPY_ETRUNCATED, NULL, 0},
        {"copy-4 truncated", "\x0c\x0c" "abcd" "\x1f\x04\x00\x00", 10, PW_SNAPPY_ETRUNCATED, NULL, 0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct stream_case *c = &cases[i];
        uint8_t *out = NULL;
        uint64_t out_len = 0;
        int rc = decompress_exact((const uint8_t *)c->in, c->in_len, &out, &out_len, 1u << 20);
        CHECK(rc == c->rc, "%s: rc %d, expected %d", c->name, rc, c->rc);
        if (rc == 0 && c->rc == 0)
            CHECK(out_len == c->out_len && memcmp(out, c->out, c->out_len) == 0, "%s: wrong output", c->name);
        free(out);
        CHECK(strlen(pw_snappy_strerror(rc)) > 0, "%s: no message", c->name);
    }
    {   /* a destination smaller than declared is refused */
        uint8_t dst[11];
        CHECK(pw_snappy_decompress((const uint8_t *)"\x0c\x0c" "abcd" "\x11\x04", 8, dst, sizeof dst) ==
                  PW_SNAPPY_EDSTSMALL, "dst too small");
    }
}

static void test_limits(void)
{
    CHECK(pw_snappy_max_compressed_length(0) == 32, "bound 0");
    CHECK(pw_snappy_max_compressed_length(600) == 732, "bound 600");
    CHECK(pw_snappy_max_compressed_length(0xffffffffu) == 32 + 0xffffffffull + 0xffffffffull / 6 ||
              sizeof(size_t) < 8,
          "bound 2^32-1");
    CHECK(pw_snappy_max_compressed_length((size_t)-1) == 0, "bound SIZE_MAX");
    if (sizeof(size_t) > 4)
        CHECK(pw_snappy_max_compressed_length((size_t)0xffffffffu + 1) == 0, "bound 2^32");
    CHECK(pw_snappy_compress((const uint8_t *)"", (size_t)-1, NULL) == 0, "compress SIZE_MAX");
}

static int known_code(int rc)
{
    return rc == 0 || rc == 1 || (rc <= PW_SNAPPY_EHEADER && rc >= PW_SNAPPY_ETOOBIG);
}

static void test_fuzz(long iterations, double max_seconds)
{
    enum { SEEDS = 24, MAXLEN = 4096 };
    uint8_t *seeds[SEEDS];
    size_t seed_len[SEEDS], i;
    uint8_t buf[MAXLEN + 64], input[MAXLEN];
    long it, decoded = 0;
    clock_t start = clock();
    for (i = 0; i < SEEDS; i++) {
        size_t n = gen_input(input, i < 4 ? 64 : MAXLEN);
        seeds[i] = compress_exact(input, n, &seed_len[i]);
    }
    for (it = 0; it < iterations; it++) {
        size_t s = below(SEEDS), n = seed_len[s], m, muts = 1 + below(4);
        uint8_t *out = NULL;
        uint64_t out_len = 0;
        int rc;
        if (n > MAXLEN)
            n = MAXLEN;
        memcpy(buf, seeds[s], n);
        for (m = 0; m < muts; m++) {
            size_t what = below(10);
            if (what < 5 && n) {
                buf[below(n)] = (uint8_t)rnd();
            } else if (what < 7 && n) {
                buf[below(n)] ^= (uint8_t)(1u << below(8));
            } else if (what < 8 && n < MAXLEN + 60) {
                size_t at = below(n + 1);
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = (uint8_t)rnd();
                n++;
            } else if (what < 9) {
                n = below(n + 1);
            } else if (n) { /* tweak the varint header */
                buf[0] = (uint8_t)rnd();
            }
        }
        rc = decompress_exact(buf, n, &out, &out_len, (uint64_t)1 << 24);
        CHECK(known_code(rc), "fuzz: unknown rc %d", rc);
        if (rc == 0) {
            decoded++;
            free(out);
        }
        if ((it & 1023) == 0 && (double)(clock() - start) / CLOCKS_PER_SEC > max_seconds)
            break;
    }
    for (i = 0; i < SEEDS; i++)
        free(seeds[i]);
    printf("fuzz: %ld mutated inputs, %ld decoded, %.2fs\n", it, decoded,
           (double)(clock() - start) / CLOCKS_PER_SEC);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 500000;
    test_golden();
    test_streams();
    test_limits();
    test_round_trips();
    test_reference();
    test_fuzz(iterations, 20.0);
    if (failures) {
        fprintf(stderr, "test_snappy: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_snappy: ok\n");
    return 0;
}
