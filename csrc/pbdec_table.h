/* The hash tables of the decoder pbdec.c: open addressing over entries
 * 0, 1, ... whose keys their user stores (a string, a pair, a label
 * message), probed linearly. Internal: no cffi interface here, every
 * function static. Error codes are pbdec.h's.
 */
#ifndef PW_PBDEC_TABLE_H
#define PW_PBDEC_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pbdec.h"
#include "pbdec_wire.h"

/* The hash of entry k, from its key as the user of the table stores it. */
typedef uint64_t (*entry_hash_fn)(const void *user, size_t k);

/* A 32-bit slot (small tables stay in cache) holds the bits of its entry's
 * hash above the index bits, and the entry + 1 below them, so that a probe
 * compares keys only when those bits match; 0 is empty. */
typedef struct {
    uint32_t *slot;
    size_t mask; /* slots - 1: a power of two up to 2^32, more than twice the entries */
    size_t used; /* entries */
    entry_hash_fn hash_of;
} table_t;

#define TABLE_MAX_SLOTS ((uint64_t)1 << 32)

/* A table with room for `expected` entries before it grows. */
static inline int table_init(table_t *t, size_t expected, entry_hash_fn hash_of)
{
    size_t slots = 64;
    while (slots / 2 <= expected && slots < TABLE_MAX_SLOTS / 2 && slots < SIZE_MAX / 8)
        slots *= 2;
    t->slot = (uint32_t *)calloc(slots, sizeof(uint32_t));
    if (t->slot == NULL)
        return PW_DEC_ENOMEM;
    t->mask = slots - 1;
    t->used = 0;
    t->hash_of = hash_of;
    return 0;
}

/* Doubles the slots and places every entry again, rehashed from its key
 * (ENOMEM past 2^32 slots: a body of 2^31 distinct keys, many GiB). */
DEC_NOINLINE int table_grow(table_t *t, const void *user)
{
    size_t slots = t->mask + 1, mask;
    uint32_t *s;
    if ((uint64_t)slots >= TABLE_MAX_SLOTS || slots > SIZE_MAX / 2 / sizeof(uint32_t))
        return PW_DEC_ENOMEM;
    s = (uint32_t *)calloc(2 * slots, sizeof(uint32_t));
    if (s == NULL)
        return PW_DEC_ENOMEM;
    mask = 2 * slots - 1;
    for (size_t k = 0; k < t->used; k++) {
        uint64_t h = t->hash_of(user, k);
        size_t at = (size_t)h;
        while (s[at & mask])
            at++;
        s[at & mask] = (uint32_t)((h & ~(uint64_t)mask) | (uint64_t)(k + 1));
    }
    free(t->slot);
    t->slot = s;
    t->mask = mask;
    return 0;
}

/* Makes room for one more entry (before looking up a key that may be added). */
DEC_INLINE int table_room(table_t *t, const void *user)
{
    if (DEC_UNLIKELY(2 * (t->used + 1) > t->mask))
        return table_grow(t, user);
    return 0;
}

/* The next entry from slot *at on with hash h's bits, or -1 at the empty
 * slot ending h's run (*at then that slot: where h's entry goes). Start with
 * *at = h. */
DEC_INLINE int64_t table_next(const table_t *t, uint64_t h, size_t *at)
{
    uint32_t high = (uint32_t)~t->mask, s;
    while ((s = t->slot[*at & t->mask]) != 0) {
        ++*at;
        if ((s & high) == ((uint32_t)h & high))
            return (int64_t)(s & t->mask) - 1;
    }
    return -1;
}

/* Adds the next entry, of hash h, at the slot table_next ended on. */
DEC_INLINE void table_add(table_t *t, uint64_t h, size_t at)
{
    t->slot[at & t->mask] = (uint32_t)((h & ~(uint64_t)t->mask) | (uint64_t)++t->used);
}

/* Has the CPU fetch the slot where a lookup of hash h starts. */
DEC_INLINE void table_prefetch(const table_t *t, uint64_t h)
{
    DEC_PREFETCH(&t->slot[h & t->mask]);
}

#endif /* PW_PBDEC_TABLE_H */
