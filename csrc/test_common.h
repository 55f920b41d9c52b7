/* Helpers shared by the sanitizer drivers test_pbenc.c and test_pbenc2.c
 * (not part of the extension: cffi_build.py skips test_* files). Define
 * TEST_RNG_SEED, the driver's random seed, before including this.
 */
#ifndef PW_TEST_COMMON_H
#define PW_TEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* ------------------------------------------------------------ utilities */

static uint64_t rng_state = TEST_RNG_SEED;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t below(size_t n) /* 0..n-1, n >= 1 */
{
    return (size_t)(rnd() % n);
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *src, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            exit(2);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_byte(buf_t *b, uint8_t c)
{
    put(b, &c, 1);
}

static void put_varint(buf_t *b, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(b, (uint8_t)v);
}

#endif /* PW_TEST_COMMON_H */
