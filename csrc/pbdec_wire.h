/* Wire primitives of the decoder pbdec.c: growable int64 vectors, varints,
 * strict UTF-8, keyed hashing. Internal: no cffi interface here, every
 * function static inline. Error codes are pbdec.h's.
 */
#ifndef PW_PBDEC_WIRE_H
#define PW_PBDEC_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbdec.h"

typedef struct {
    int64_t *p;
    size_t len, cap;
} vec_t;


static inline int push(vec_t *v, int64_t x)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        int64_t *p;
        if (cap > SIZE_MAX / sizeof(int64_t))
            return PW_DEC_ENOMEM;
        p = (int64_t *)realloc(v->p, cap * sizeof(int64_t));
        if (p == NULL)
            return PW_DEC_ENOMEM;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len++] = x;
    return 0;
}

static inline int rd_varint(const uint8_t *b, size_t *pos, size_t end, uint64_t *out)
{
    uint64_t r = 0;
    unsigned shift = 0;
    size_t p = *pos;
    if (p < end && b[p] < 0x80) { /* one byte: most keys, lengths and small values */
        *out = b[p];
        *pos = p + 1;
        return 0;
    }
    for (;;) {
        uint8_t c;
        if (p >= end)
            return PW_DEC_ETRUNC_VARINT;
        c = b[p++];
        if (shift == 63 && c > 1)
            return PW_DEC_EVARINT_64;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *pos = p;
            *out = r;
            return 0;
        }
        shift += 7; /* at most 63: a tenth byte either ends the varint or fails above */
    }
}

/* Strict UTF-8 (as Python's decoder): its code points and bytes per code point in a str. */
static inline int utf8_check(const uint8_t *s, size_t n, int64_t *code_points, int64_t *width)
{
    size_t i = 0;
    int64_t count = 0;
    uint32_t top = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t k;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return PW_DEC_EUTF8;
        }
        if (n - i - 1 < k)
            return PW_DEC_EUTF8;
        for (size_t j = 1; j <= k; j++) {
            uint8_t b = s[i + j];
            if (b < lo || b > hi)
                return PW_DEC_EUTF8;
            lo = 0x80;
            hi = 0xbf;
            cp = (cp << 6) | (b & 0x3f);
        }
        if (cp > top)
            top = cp;
        i += k + 1;
        count++;
    }
    *code_points = count;
    *width = top < 0x100 ? 1 : top < 0x10000 ? 2 : 4;
    return 0;
}

/* The little-endian uint64 or uint32 at p (compilers make this one load). */
static inline uint64_t rd_fixed(const uint8_t *p, unsigned size)
{
    uint64_t lo = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
    if (size == 4)
        return lo;
    return lo | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t h = mix(seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL));
    uint64_t w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = mix(h ^ w);
        p += 8;
        n -= 8;
    }
    w = 0;
    if (n)
        memcpy(&w, p, n);
    return mix(h ^ w ^ 0xa5);
}

static inline uint64_t hash_pair(int64_t a, int64_t b, uint64_t seed)
{
    return mix(mix(seed ^ (uint64_t)a) ^ (uint64_t)b);
}

#endif /* PW_PBDEC_WIRE_H */
