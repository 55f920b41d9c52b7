/* Wire primitives of the decoder pbdec.c: growable int64 vectors, varints,
 * strict UTF-8, keyed hashing, short byte comparisons. Internal: no cffi
 * interface here, every function static inline. Error codes are pbdec.h's.
 */
#ifndef PW_PBDEC_WIRE_H
#define PW_PBDEC_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbdec.h"

#if defined(__GNUC__) || defined(__clang__)
#define DEC_INLINE static inline __attribute__((always_inline))
#define DEC_NOINLINE static __attribute__((noinline))
#define DEC_LIKELY(x) __builtin_expect(!!(x), 1)
#define DEC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DEC_PREFETCH(p) __builtin_prefetch(p)
#else
#define DEC_INLINE static inline
#define DEC_NOINLINE static
#define DEC_LIKELY(x) (x)
#define DEC_UNLIKELY(x) (x)
#define DEC_PREFETCH(p) ((void)(p))
#endif

typedef struct {
    int64_t *p;
    size_t len, cap;
} vec_t;

/* Makes room for at least `want` int64s in all (at least doubling, from 16). */
DEC_NOINLINE int vec_reserve(vec_t *v, size_t want)
{
    size_t cap = v->cap ? v->cap : 16;
    int64_t *p;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            return PW_DEC_ENOMEM;
        cap *= 2;
    }
    if (cap == v->cap)
        return 0;
    if (cap > SIZE_MAX / sizeof(int64_t))
        return PW_DEC_ENOMEM;
    p = (int64_t *)realloc(v->p, cap * sizeof(int64_t));
    if (p == NULL)
        return PW_DEC_ENOMEM;
    v->p = p;
    v->cap = cap;
    return 0;
}

DEC_INLINE int push(vec_t *v, int64_t x)
{
    if (DEC_UNLIKELY(v->len == v->cap) && vec_reserve(v, v->len + 1))
        return PW_DEC_ENOMEM;
    v->p[v->len++] = x;
    return 0;
}

/* The little-endian uint64 / uint32 at p (compilers make these one load). */
DEC_INLINE uint64_t rd_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

DEC_INLINE uint64_t rd_le32(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

#define ASCII_MASK 0x8080808080808080ULL
#define LOW_ONES 0x0101010101010101ULL

/* The varint at b + *pos if the eight bytes there (b holds `readable`)
 * hold all of it and it ends by `end` (1), else 0. */
DEC_INLINE int rd_varint_word(const uint8_t *b, size_t *pos, size_t end, size_t readable, uint64_t *out)
{
#if defined(__GNUC__) || defined(__clang__)
    size_t p = *pos, after;
    if (readable - p >= 8) {
        uint64_t w = rd_le64(b + p), stops = ~w & ASCII_MASK, last, r;
        if (stops == 0)
            return 0;
        last = stops & (0 - stops); /* the high bit of the varint's last byte */
        after = p + (size_t)(__builtin_ctzll(last) >> 3) + 1;
        if (after > end)
            return 0;
        r = w & ((last << 1) - 1) & ~ASCII_MASK;
        r = ((r & 0x7f007f007f007f00ULL) >> 1) | (r & 0x007f007f007f007fULL); /* 7-bit groups, packed */
        r = ((r & 0x3fff00003fff0000ULL) >> 2) | (r & 0x00003fff00003fffULL);
        r = ((r & 0x0fffffff00000000ULL) >> 4) | (r & 0x000000000fffffffULL);
        *pos = after;
        *out = r;
        return 1;
    }
#else
    (void)b, (void)pos, (void)end, (void)readable, (void)out;
#endif
    return 0;
}

DEC_NOINLINE int rd_varint_long(const uint8_t *b, size_t *pos, size_t end, uint64_t *out)
{
    uint64_t r = 0;
    unsigned shift = 0;
    size_t p = *pos;
    if (rd_varint_word(b, pos, end, end, out))
        return 0;
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

DEC_INLINE int rd_varint(const uint8_t *b, size_t *pos, size_t end, uint64_t *out)
{
    size_t p = *pos;
    if (DEC_LIKELY(p < end && b[p] < 0x80)) { /* one byte: most keys, lengths and small values */
        *out = b[p];
        *pos = p + 1;
        return 0;
    }
    return rd_varint_long(b, pos, end, out);
}

/* Strict UTF-8 (as Python's decoder) with the str it makes: its code points,
 * bytes per code point, and whether it holds a NUL (*nul set to 1 if so). */
DEC_INLINE int utf8_check(const uint8_t *s, size_t n, int64_t *code_points, int64_t *width, int *nul)
{
    size_t i = 0;
    int64_t count = 0;
    uint32_t top = 0;
    while (i < n) {
        uint32_t c, cp;
        size_t k;
        uint8_t lo = 0x80, hi = 0xbf;
        if (n - i >= 8) { /* eight ASCII bytes at once */
            uint64_t w = rd_le64(s + i);
            if ((w & ASCII_MASK) == 0) {
                if ((w - LOW_ONES) & ~w & ASCII_MASK)
                    *nul = 1;
                i += 8;
                count += 8;
                continue;
            }
        }
        c = s[i];
        if (c < 0x80) {
            if (c == 0)
                *nul = 1;
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

/* a[0..n) == b[0..n), inline: the spans compared here are short. */
DEC_INLINE int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i;
    if (n >= 8) {
        for (i = 0; i + 8 < n; i += 8)
            if (rd_le64(a + i) != rd_le64(b + i))
                return 0;
        return rd_le64(a + n - 8) == rd_le64(b + n - 8);
    }
    if (n >= 4)
        return rd_le32(a) == rd_le32(b) && rd_le32(a + n - 4) == rd_le32(b + n - 4);
    for (i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Whether a[0..na) sorts strictly before b[0..nb) (bytewise, as Python's str order for UTF-8). */
DEC_INLINE int sorts_before(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return a[i] < b[i];
    return na < nb;
}

/* ------------------------------------------------------------- hashing
 * Keyed by a per-call seed, so that a sender who does not know it cannot
 * make keys collide: the table probes then stay short on any input. Each
 * step multiplies two key-masked 64-bit words to 128 bits and folds the
 * halves (as wyhash): 16 input bytes per multiplication. */

typedef struct {
    uint64_t k0, k1, k2;
} hash_key_t;

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 dec_u128;
DEC_INLINE uint64_t fold_mul(uint64_t a, uint64_t b)
{
    dec_u128 r = (dec_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}
#else
DEC_INLINE uint64_t fold_mul(uint64_t a, uint64_t b)
{
    uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    uint64_t lo = (ll & 0xffffffffu) | mid << 32;
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
}
#endif

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static inline hash_key_t hash_key(uint64_t seed)
{
    hash_key_t k;
    k.k0 = mix(seed ^ 0xa0761d6478bd642fULL);
    k.k1 = mix(k.k0 ^ 0xe7037ed1a0b428dbULL);
    k.k2 = mix(k.k1 ^ 0x8ebc6af09c88c6e3ULL);
    return k;
}

DEC_INLINE uint64_t hash_bytes(const uint8_t *p, size_t n, const hash_key_t *k)
{
    uint64_t a, b, h = k->k0 ^ n;
    if (n <= 16) {
        if (n >= 8) {
            a = rd_le64(p);
            b = rd_le64(p + n - 8);
        } else if (n >= 4) {
            a = rd_le32(p);
            b = rd_le32(p + n - 4);
        } else {
            a = n ? (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1] : 0;
            b = 0;
        }
    } else {
        size_t left = n;
        while (left > 16) {
            h = fold_mul(rd_le64(p) ^ k->k1, rd_le64(p + 8) ^ h);
            p += 16;
            left -= 16;
        }
        a = rd_le64(p + left - 16);
        b = rd_le64(p + left - 8);
    }
    return fold_mul(k->k2 ^ n, fold_mul(a ^ k->k1, b ^ h));
}

DEC_INLINE uint64_t hash_pair(int64_t a, int64_t b, const hash_key_t *k)
{
    return fold_mul(k->k2, fold_mul((uint64_t)a ^ k->k0, (uint64_t)b ^ k->k1));
}

#endif /* PW_PBDEC_WIRE_H */
