/* Protobuf encoding of io.prometheus.write.v2.Request in C99 (see pbenc2.h).
 *
 * Both kernels check every length the caller gave and compute exact output
 * sizes, with overflow checks, before they take memory and write. Interning
 * is an open-addressing hash table (linear probing) over byte strings, which
 * are only pointed to, never copied, until the symbols are written.
 */
#include "pbenc2.h"

#include <stdlib.h>
#include <string.h>

#include "pbcommon.h"

static void clear_info(size_t *info)
{
    size_t i;
    for (i = 0; i < PW_PB2_INFO_LEN; i++)
        info[i] = 0;
}

/* ------------------------------------------------------ label parsing */

/* A varint of at most 10 bytes in t[*pos..end) (the tenth byte at most 1);
 * 0 when it is longer or runs past end. */
PW_INLINE int read_varint(const uint8_t *t, size_t *pos, size_t end, uint64_t *value)
{
    uint64_t v = 0;
    unsigned shift = 0;
    size_t p = *pos;
    for (;;) {
        uint8_t byte;
        if (p >= end)
            return 0;
        byte = t[p++];
        if (shift == 63 && byte > 1)
            return 0;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80)
            break;
        shift += 7;
    }
    *pos = p;
    *value = v;
    return 1;
}

/* A length-delimited field with one-byte tag `tag` at t[*pos..end); its body
 * is t[*start, *start + *len) inside end. 0 if it is not there so. */
PW_INLINE int read_field(const uint8_t *t, size_t *pos, size_t end, uint8_t tag, size_t *start, size_t *len)
{
    size_t p = *pos;
    uint64_t n;
    if (p >= end || t[p] != tag)
        return 0;
    p++;
    if (!read_varint(t, &p, end, &n) || n > (uint64_t)(end - p))
        return 0;
    *start = p;
    *len = (size_t)n;
    *pos = p + (size_t)n;
    return 1;
}

/* The next Label field of t[*pos..end): name and value as (start, length). */
PW_INLINE int read_label(const uint8_t *t, size_t *pos, size_t end, size_t *name, size_t *nlen,
                          size_t *value, size_t *vlen)
{
    size_t body, blen, p;
    if (!read_field(t, pos, end, 0x0a, &body, &blen))
        return 0;
    p = body;
    if (!read_field(t, &p, body + blen, 0x0a, name, nlen))
        return 0;
    if (!read_field(t, &p, body + blen, 0x12, value, vlen))
        return 0;
    return p == body + blen;
}

/* ------------------------------------------------------------ interning */

typedef struct {
    uint32_t hash; /* low bits of the string's hash */
    uint32_t slot; /* symbol index + 1; 0: empty */
} entry_t;

typedef struct {
    entry_t *table; /* malloc'd; grown to keep it at most half full */
    size_t mask;
    const uint8_t **ptr; /* symbol k: ptr[k][0 .. len[k]) */
    size_t *len;
    size_t n;
} symbols_t;

PW_INLINE uint32_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ ((uint64_t)n * 0xff51afd7ed558ccdu);
    while (n >= 8) {
        h = (h ^ load64(p)) * 0xbf58476d1ce4e5b9u;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94d049bb133111ebu;
    }
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdu;
    return (uint32_t)(h ^ (h >> 32));
}

/* Doubles the table; 0 when malloc fails (the old table stays). */
static int grow(symbols_t *s)
{
    size_t cap = 2 * (s->mask + 1), i;
    entry_t *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return 0;
    for (i = 0; i <= s->mask; i++) {
        entry_t e = s->table[i];
        if (e.slot) {
            size_t j = e.hash & (cap - 1);
            while (t[j].slot)
                j = (j + 1) & (cap - 1);
            t[j] = e;
        }
    }
    free(s->table);
    s->table = t;
    s->mask = cap - 1;
    return 1;
}

/* *ref = the index of p[0..n), added when new (ptr and len have room); 0 when out of memory. */
static int intern(symbols_t *s, const uint8_t *p, size_t n, uint32_t *ref)
{
    uint32_t h = hash_bytes(p, n);
    size_t i = h & s->mask;
    for (;;) {
        entry_t *e = &s->table[i];
        if (e->slot == 0) {
            size_t k = s->n;
            if (2 * (k + 1) > s->mask + 1) {
                if (!grow(s))
                    return 0;
                i = h & s->mask; /* probe again in the new table */
                continue;
            }
            s->n = k + 1;
            e->slot = (uint32_t)(k + 1);
            e->hash = h;
            s->ptr[k] = p;
            s->len[k] = n;
            *ref = (uint32_t)k;
            return 1;
        }
        if (e->hash == h) {
            size_t k = e->slot - 1;
            if (s->len[k] == n && (n == 0 || memcmp(s->ptr[k], p, n) == 0)) {
                *ref = (uint32_t)k;
                return 1;
            }
        }
        i = (i + 1) & s->mask;
    }
}

/* The strings at each label position of the set before: consecutive sets
 * mostly share names and many values, which are then found without hashing. */
#define RECENT 32

typedef struct {
    const uint8_t *ptr[2 * RECENT];
    size_t len[2 * RECENT];
    uint32_t ref[2 * RECENT];
} recent_t;

PW_INLINE int intern_at(symbols_t *s, recent_t *r, size_t q, const uint8_t *p, size_t n, uint32_t *ref)
{
    if (q < 2 * RECENT) {
        if (r->len[q] == n && (n == 0 || memcmp(r->ptr[q], p, n) == 0)) {
            *ref = r->ref[q];
            r->ptr[q] = p;
            return 1;
        }
        if (!intern(s, p, n, ref))
            return 0;
        r->ptr[q] = p;
        r->len[q] = n;
        r->ref[q] = *ref;
        return 1;
    }
    return intern(s, p, n, ref);
}

int pw_encode_symbols_v2(const uint8_t *labels, size_t labels_len, const int64_t *label_lens, size_t n_sets,
                         const uint8_t *strings, size_t strings_len, const int64_t *string_lens,
                         size_t n_strings,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info)
{
    arena_t arena;
    symbols_t syms;
    recent_t recent;
    uint32_t *refs = NULL, r;
    size_t *bodies = NULL;
    uint8_t *buf, *p;
    size_t i, k, pos, end, n_label_strings = 0, max_symbols, cap, n_refs;
    size_t sym_bytes = 0, ref_bytes = 0, total;
    int rc = PW_PB_OK;

    *out = NULL;
    clear_info(info);
    arena_init(&arena, scratch, scratch_len);
    if (!buffer_ok(&labels, labels_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&strings, strings_len))
        return PW_PB_ESPLIT;
    if (!lengths_cover(label_lens, n_sets, labels_len) || !lengths_cover(string_lens, n_strings, strings_len))
        return PW_PB_ESPLIT;

    /* pass 1: check the label fields, count their strings */
    for (i = 0, pos = 0; i < n_sets; i++) {
        end = pos + (size_t)label_lens[i];
        while (pos < end) {
            size_t a, b, c, d;
            if (!read_label(labels, &pos, end, &a, &b, &c, &d))
                return PW_PB_ESPLIT;
            n_label_strings += 2;
        }
    }
    if (n_sets > SIZE_MAX / 16 || n_strings > SIZE_MAX / 16 || n_label_strings > SIZE_MAX / 16)
        return PW_PB_ETOOBIG;
    n_refs = n_label_strings + n_strings;
    max_symbols = n_refs + 1;
    if (max_symbols > UINT32_MAX || max_symbols > SIZE_MAX / 4 / sizeof(entry_t))
        return PW_PB_ETOOBIG;
    for (cap = 16; cap < 2 * max_symbols && cap < 4096; cap *= 2)
        ; /* grown as needed: at most 4 * max_symbols entries, no overflow */
    syms.table = calloc(cap, sizeof(entry_t));
    syms.mask = cap - 1;
    syms.n = 0;
    syms.ptr = arena_get(&arena, max_symbols * sizeof *syms.ptr);
    syms.len = arena_get(&arena, max_symbols * sizeof *syms.len);
    refs = arena_get(&arena, n_refs * sizeof *refs);
    bodies = arena_get(&arena, n_sets * sizeof *bodies);
    if (!syms.table || !syms.ptr || !syms.len || !refs || !bodies || !intern(&syms, empty_buf, 0, &r))
        goto no_memory;
    for (i = 0; i < 2 * RECENT; i++)
        recent.len[i] = SIZE_MAX; /* matches nothing */

    /* pass 2: intern, size the reference fields */
    k = 0;
    for (i = 0, pos = 0; i < n_sets; i++) {
        size_t body = 0, q = 0;
        end = pos + (size_t)label_lens[i];
        while (pos < end) {
            size_t a = 0, b = 0, c = 0, d = 0;
            if (!read_label(labels, &pos, end, &a, &b, &c, &d)) {
                rc = PW_PB_ESPLIT; /* not reached: pass 1 read the same */
                goto done;
            }
            if (!intern_at(&syms, &recent, q++, labels + a, b, &r))
                goto no_memory;
            refs[k++] = r;
            body += varint_len(r);
            if (!intern_at(&syms, &recent, q++, labels + c, d, &r))
                goto no_memory;
            refs[k++] = r;
            body += varint_len(r);
        }
        bodies[i] = body;
        if (body && !add_to(&ref_bytes, delimited_size(body)))
            goto too_big;
    }
    for (i = 0, pos = 0; i < n_strings; i++) {
        size_t n = (size_t)string_lens[i];
        if (!intern(&syms, strings + pos, n, &r))
            goto no_memory;
        refs[k++] = r;
        pos += n;
    }
    for (i = 0; i < syms.n; i++) {
        size_t field = delimited_size(syms.len[i]);
        if (!field || !add_to(&sym_bytes, field))
            goto too_big;
    }
    total = sym_bytes;
    if (!add_to(&total, ref_bytes) || !add_to(&total, 8 * n_sets) || !add_to(&total, 8 * n_strings))
        goto too_big;

    /* pass 3: write */
    buf = arena_get(&arena, total);
    if (buf == NULL) {
        rc = PW_PB_ENOMEM;
        goto done;
    }
    p = buf;
    for (i = 0; i < syms.n; i++) {
        *p++ = 0x22;
        p = put_varint(p, syms.len[i]);
        if (syms.len[i])
            memcpy(p, syms.ptr[i], syms.len[i]);
        p += syms.len[i];
    }
    k = 0;
    for (i = 0; i < n_sets; i++) {
        uint8_t *start = p;
        int64_t field;
        if (bodies[i]) {
            uint8_t *stop;
            *p++ = 0x0a;
            p = put_varint(p, bodies[i]);
            for (stop = p + bodies[i]; p < stop; k++)
                p = put_varint(p, refs[k]);
        }
        field = (int64_t)(p - start);
        memcpy(buf + sym_bytes + ref_bytes + 8 * i, &field, 8);
    }
    p = buf + sym_bytes + ref_bytes + 8 * n_sets;
    for (i = 0; i < n_strings; i++, k++) {
        int64_t r = (int64_t)refs[k];
        memcpy(p, &r, 8);
        p += 8;
    }
    *out = buf;
    info[PW_PB2_LEN] = total;
    info[PW_PB2_SYMBOLS_LEN] = sym_bytes;
    info[PW_PB2_REFS_LEN] = ref_bytes;
    goto done;

no_memory:
    rc = PW_PB_ENOMEM;
    goto done;
too_big:
    rc = PW_PB_ETOOBIG;
done:
    free(syms.table);
    info[PW_PB2_WANTED] = arena.wanted;
    info[PW_PB2_OWNED] = (size_t)arena_release(&arena, *out);
    return rc;
}

/* ------------------------------------------------------------- request */

int pw_encode_request_v2(const uint8_t *symbols, size_t symbols_len,
                         const uint8_t *refs, size_t refs_len, const int64_t *ref_lens,
                         const int64_t *counts, size_t n_series,
                         const void *values, size_t n_values,
                         const void *timestamps, size_t n_timestamps,
                         const void *starts,
                         const uint8_t *extras, size_t extras_len, const int64_t *extra_lens,
                         int compress,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info)
{
    const uint8_t *vals = values, *stamps = timestamps, *begins = starts;
    arena_t arena;
    size_t *bodies;
    uint8_t *buf, *p;
    size_t i, j, total, roff = 0, eoff = 0;
    int rc = PW_PB_OK;

    *out = NULL;
    clear_info(info);
    arena_init(&arena, scratch, scratch_len);
    if (!buffer_ok(&symbols, symbols_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&refs, refs_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&extras, extras_len))
        return PW_PB_ESPLIT;
    if (!lengths_cover(ref_lens, n_series, refs_len))
        return PW_PB_ESPLIT;
    rc = check_series(extras_len, extra_lens, counts, n_series, vals, n_values, stamps, n_timestamps);
    if (rc != PW_PB_OK)
        return rc;
    if (n_series > SIZE_MAX / sizeof *bodies)
        return PW_PB_ETOOBIG;
    bodies = arena_get(&arena, n_series * sizeof *bodies);
    if (bodies == NULL) {
        rc = PW_PB_ENOMEM;
        goto done;
    }

    /* pass 1: check the order of timestamps, size every series */
    total = symbols_len;
    for (i = 0, j = 0; i < n_series; i++) {
        size_t body = (size_t)ref_lens[i], end = j + (size_t)counts[i], field, tail = 0, bad;
        int64_t begun = 0;
        if (begins) {
            memcpy(&begun, begins + 8 * i, 8);
            if (begun)
                tail = 1 + varint_len((uint64_t)begun);
        }
        if (extra_lens && !add_to(&body, (size_t)extra_lens[i]))
            goto too_big;
        /* 0x12 len [0x09 <8 bytes>] [0x10 varint] [0x18 varint]: at most 33 bytes */
        if ((rc = size_samples(vals, stamps, j, end, tail, &body, &bad)) != PW_PB_OK) {
            if (rc == PW_PB_EORDER) {
                info[PW_PB2_ERR_SERIES] = i;
                info[PW_PB2_ERR_SAMPLE] = bad;
            }
            goto done;
        }
        j = end;
        if (!(field = delimited_size(body)) || !add_to(&total, field))
            goto too_big;
        bodies[i] = body;
    }

    /* pass 2: write */
    buf = arena_get(&arena, total);
    if (buf == NULL) {
        rc = PW_PB_ENOMEM;
        goto done;
    }
    memcpy(buf, symbols, symbols_len);
    p = buf + symbols_len;
    for (i = 0, j = 0; i < n_series; i++) {
        size_t end = j + (size_t)counts[i], n = (size_t)ref_lens[i];
        int64_t begun = 0;
        if (begins)
            memcpy(&begun, begins + 8 * i, 8);
        *p++ = 0x2a;
        p = put_varint(p, bodies[i]);
        p = put_bytes(p, refs + roff, n);
        roff += n;
        p = put_samples(p, vals, stamps, j, end, begun);
        j = end;
        if (extra_lens) {
            n = (size_t)extra_lens[i];
            p = put_bytes(p, extras + eoff, n);
            eoff += n;
        }
    }

    return finish_request(&arena, PW_PB_OK, buf, total, compress, out, info,
                          PW_PB2_LEN, PW_PB2_WANTED, PW_PB2_OWNED);

too_big:
    rc = PW_PB_ETOOBIG;
done:
    return finish_request(&arena, rc, NULL, 0, 0, out, info, PW_PB2_LEN, PW_PB2_WANTED, PW_PB2_OWNED);
}
