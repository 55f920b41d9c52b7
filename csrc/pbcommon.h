/* Helpers shared by the protobuf kernels pbenc.c and pbenc2.c: varints,
 * overflow-checked sizes, little-endian words, buffer checks, the scratch
 * arena and the closing snappy step. Internal: no cffi interface here, and
 * every function is static (inline), so each kernel gets its own copy.
 */
#ifndef PW_PBCOMMON_H
#define PW_PBCOMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbenc.h"
#include "snappy.h"

#ifndef PW_ARENA_BLOCKS
#define PW_ARENA_BLOCKS 8 /* the most blocks a kernel takes; define it lower before including */
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PW_GNUC 1
#endif
#ifdef PW_GNUC
#define PW_INLINE static inline __attribute__((always_inline))
#else
#define PW_INLINE static inline
#endif
#if defined(PW_GNUC) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PW_LITTLE_ENDIAN 1
#endif

static const uint8_t empty_buf[1] = {0};

/* ------------------------------------------------------------- helpers */

PW_INLINE size_t varint_len(uint64_t v)
{
    if (v < 0x80)
        return 1;
#ifdef PW_GNUC
    /* bits = 64 - clz (1..64); bytes = ceil(bits / 7) = (9 * bits + 64) / 64 */
    return (size_t)((9u * (unsigned)(64 - __builtin_clzll(v | 1u)) + 64u) / 64u);
#else
    {
        size_t n = 1;
        while (v >= 0x80) {
            v >>= 7;
            n++;
        }
        return n;
    }
#endif
}

PW_INLINE uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* *acc += x; 0 when that overflows. */
PW_INLINE int add_to(size_t *acc, size_t x)
{
    if (x > SIZE_MAX - *acc)
        return 0;
    *acc += x;
    return 1;
}

/* Bytes of a length-delimited field of n bytes with a one-byte tag; 0 on overflow. */
PW_INLINE size_t delimited_size(size_t n)
{
    size_t head = 1 + varint_len((uint64_t)n);
    return n > SIZE_MAX - head ? 0 : n + head;
}

PW_INLINE uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

PW_INLINE uint8_t *put_le64(uint8_t *p, uint64_t v)
{
#ifdef PW_LITTLE_ENDIAN
    memcpy(p, &v, 8);
#else
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
    return p + 8;
}

PW_INLINE uint8_t *put_bytes(uint8_t *p, const uint8_t *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Checks lens[0..n) are >= 0 and add up to exactly total (lens may be NULL when n is 0). */
static inline int lengths_cover(const int64_t *lens, size_t n, size_t total)
{
    size_t sum = 0, i;
    if (n && lens == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        if (lens[i] < 0 || (uint64_t)lens[i] > (uint64_t)(total - sum))
            return 0;
        sum += (size_t)lens[i];
    }
    return sum == total;
}

/* Checks counts[0..n) are >= 0 and add up to at most *total; sets *total to
 * their sum, *max to the largest. */
static inline int counts_fit(const int64_t *counts, size_t n, size_t *total, size_t *max)
{
    size_t i, sum = 0, top = 0;
    if (n && counts == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        if (counts[i] < 0 || (uint64_t)counts[i] > (uint64_t)(*total - sum))
            return 0;
        sum += (size_t)counts[i];
        if ((size_t)counts[i] > top)
            top = (size_t)counts[i];
    }
    *total = sum;
    *max = top;
    return 1;
}

/* Checks a request kernel's columns after its labels: the extras split by
 * extra_lens (NULL: none), counts[0..n_series) >= 0 adding up to at most the
 * samples there are (one value and one timestamp each), and the samples
 * there when there are any: PW_PB_OK, PW_PB_ESPLIT or PW_PB_ECOUNTS. */
static inline int check_series(size_t extras_len, const int64_t *extra_lens, const int64_t *counts,
                               size_t n_series, const void *vals, size_t n_values, const void *stamps,
                               size_t n_timestamps)
{
    size_t n_samples, max_count;
    if (extra_lens == NULL ? extras_len != 0 : !lengths_cover(extra_lens, n_series, extras_len))
        return PW_PB_ESPLIT;
    if (n_values > n_timestamps)
        n_values = n_timestamps; /* a sample takes one of each */
    if (n_values > SIZE_MAX / 8)
        return PW_PB_ECOUNTS; /* more 8-byte items than bytes */
    n_samples = n_values;
    if (!counts_fit(counts, n_series, &n_samples, &max_count))
        return PW_PB_ECOUNTS;
    if (n_samples && (vals == NULL || stamps == NULL))
        return PW_PB_ECOUNTS;
    return PW_PB_OK;
}

/* A caller's buffer of len bytes: a NULL one of length 0 becomes an empty
 * one; 0 when it is NULL with a length. */
static inline int buffer_ok(const uint8_t **buf, size_t len)
{
    if (*buf == NULL) {
        if (len)
            return 0;
        *buf = empty_buf;
    }
    return 1;
}

/* One sample field: 0x12 len [0x09 <8 bytes>] [0x10 varint] [0x18 varint];
 * the start timestamp (0x18) only in remote write 2.0, 0 leaves it out. */
PW_INLINE size_t sample_size(uint64_t bits, int64_t ts, size_t start_field)
{
    return 2 + (bits ? 9 : 0) + (ts ? 1 + varint_len((uint64_t)ts) : 0) + start_field;
}

PW_INLINE uint8_t *put_sample(uint8_t *p, uint64_t bits, int64_t ts, int64_t start)
{
    uint8_t *len = p + 1;
    p[0] = 0x12;
    p += 2;
    if (bits) {
        *p++ = 0x09;
        p = put_le64(p, bits);
    }
    if (ts) {
        *p++ = 0x10;
        p = put_varint(p, (uint64_t)ts);
    }
    if (start) {
        *p++ = 0x18;
        p = put_varint(p, (uint64_t)start);
    }
    *len = (uint8_t)(p - len - 1);
    return p;
}

/* Adds the sizes of samples [start, end) (8-byte values and timestamps at
 * vals, stamps) to *size, each with start_field more bytes: PW_PB_OK;
 * PW_PB_EORDER with *bad the first sample whose timestamp does not increase;
 * PW_PB_ETOOBIG when *size overflows. */
PW_INLINE int size_samples(const uint8_t *vals, const uint8_t *stamps, size_t start, size_t end,
                           size_t start_field, size_t *size, size_t *bad)
{
    size_t j;
    int64_t prev = 0;
    for (j = start; j < end; j++) {
        int64_t ts;
        uint64_t bits = load64(vals + 8 * j);
        memcpy(&ts, stamps + 8 * j, 8);
        if (j > start && ts <= prev) {
            *bad = j;
            return PW_PB_EORDER;
        }
        prev = ts;
        if (!add_to(size, sample_size(bits, ts, start_field)))
            return PW_PB_ETOOBIG;
    }
    return PW_PB_OK;
}

/* Writes samples [start, end) as size_samples sized them; the end of them. */
PW_INLINE uint8_t *put_samples(uint8_t *p, const uint8_t *vals, const uint8_t *stamps, size_t start,
                               size_t end, int64_t start_ts)
{
    size_t j;
    for (j = start; j < end; j++) {
        int64_t ts;
        memcpy(&ts, stamps + 8 * j, 8);
        p = put_sample(p, load64(vals + 8 * j), ts, start_ts);
    }
    return p;
}

/* ------------------------------------------------------------- memory */

/* Blocks from the caller's scratch while they fit, else from malloc. */
typedef struct {
    uint8_t *scratch;
    size_t cap, used, wanted;
    void *heap[PW_ARENA_BLOCKS];
    int n_heap;
} arena_t;

static inline void arena_init(arena_t *a, uint8_t *scratch, size_t cap)
{
    a->scratch = scratch;
    a->cap = scratch ? cap : 0;
    a->used = a->wanted = 0;
    a->n_heap = 0;
}

/* n bytes aligned for any use here; NULL when malloc fails. */
static inline void *arena_get(arena_t *a, size_t n)
{
    void *p;
    if (!add_to(&a->wanted, n) || !add_to(&a->wanted, 15))
        a->wanted = SIZE_MAX;
    if (a->cap) {
        size_t mis = (size_t)((uintptr_t)(a->scratch + a->used) & 15u);
        size_t start = a->used + (mis ? 16 - mis : 0);
        if (start <= a->cap && n <= a->cap - start) {
            a->used = start + n;
            return a->scratch + start;
        }
    }
    if (a->n_heap == PW_ARENA_BLOCKS)
        return NULL; /* not reached */
    p = malloc(n ? n : 1);
    if (p)
        a->heap[a->n_heap++] = p;
    return p;
}

/* Frees every malloc'd block but `keep`; 1 if keep was one of them. */
static inline int arena_release(arena_t *a, const void *keep)
{
    int i, owned = 0;
    for (i = 0; i < a->n_heap; i++) {
        if (a->heap[i] == keep)
            owned = 1;
        else
            free(a->heap[i]);
    }
    a->n_heap = 0;
    return owned;
}

/* Snappy-compresses *buf[0..*total) into a block from the arena and points
 * *buf, *total at the result: PW_PB_OK, PW_PB_ETOOBIG or PW_PB_ENOMEM. */
static inline int compress_in_arena(arena_t *a, uint8_t **buf, size_t *total)
{
    size_t bound = pw_snappy_max_compressed_length(*total), written;
    uint8_t *dst;
    if (bound == 0)
        return PW_PB_ETOOBIG;
    dst = arena_get(a, bound);
    if (dst == NULL)
        return PW_PB_ENOMEM;
    written = pw_snappy_compress(*buf, *total, dst);
    if (written == 0)
        return PW_PB_ENOMEM;
    *buf = dst;
    *total = written;
    return PW_PB_OK;
}

/* A request kernel's ending: on rc PW_PB_OK, buf[0..total) (compressed
 * first when asked) becomes *out and info[len_slot] its length; then the
 * arena's use goes to info[wanted_slot], info[owned_slot] and its blocks but
 * *out are freed. Returns rc, or the compression's error. */
static inline int finish_request(arena_t *a, int rc, uint8_t *buf, size_t total, int compress, uint8_t **out,
                                 size_t *info, int len_slot, int wanted_slot, int owned_slot)
{
    if (rc == PW_PB_OK && compress)
        rc = compress_in_arena(a, &buf, &total);
    if (rc == PW_PB_OK) {
        *out = buf;
        info[len_slot] = total;
    }
    info[wanted_slot] = a->wanted;
    info[owned_slot] = (size_t)arena_release(a, *out);
    return rc;
}

#endif /* PW_PBCOMMON_H */
