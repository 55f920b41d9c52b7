/* Protobuf encoding of prometheus.WriteRequest in C99 (see pbenc.h).
 *
 * Both kernels work in two passes: the first reads and checks every length
 * the caller gave against the buffer it describes and computes the exact
 * output size with overflow checks; the second takes that much memory and
 * writes. Pointers are only formed inside the buffers (offsets are compared
 * first), and a NULL buffer of length 0 is read as an empty one.
 */
#include "pbenc.h"

#include <stdlib.h>
#include <string.h>

#define SMALL_SORT 16 /* label sets up to this size are insertion-sorted */
#define PW_ARENA_BLOCKS 4 /* the most any kernel takes */
#include "pbcommon.h"

void pw_pb_free(void *p)
{
    free(p);
}

/* ---------------------------------------------------------- label sets */

/* Character classes: 1 label-name start, 2 label-name rest, 4 metric-name
 * start, 8 metric-name rest ([a-zA-Z_], [a-zA-Z0-9_], [a-zA-Z_:], [a-zA-Z0-9_:]). */
static const uint8_t char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 12, 0, 0, 0, 0, 0,
    0, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 0, 0, 0, 0, 15,
    0, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 0, 0, 0, 0, 0,
    /* 0x80..0xff: none */
};

/* s[0] in class `first`, the rest in class `rest`; n >= 1. */
PW_INLINE int valid_name(const uint8_t *s, size_t n, unsigned first, unsigned rest)
{
    unsigned all = rest;
    size_t i;
    for (i = 1; i < n; i++)
        all &= char_class[s[i]];
    return (char_class[s[0]] & first) && all;
}

typedef struct {
    const uint8_t *name, *value;
    size_t nlen, vlen;
} label_t;

/* The order of Python's sorted() on names: bytewise, a prefix first. */
PW_INLINE int name_cmp(const label_t *a, const label_t *b)
{
    const uint8_t *x = a->name, *y = b->name;
    size_t m = a->nlen < b->nlen ? a->nlen : b->nlen, i;
    for (i = 0; i < m; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return (a->nlen > b->nlen) - (a->nlen < b->nlen);
}

static void insertion_sort(label_t *v, size_t n)
{
    size_t i, j;
    for (i = 1; i < n; i++) {
        if (name_cmp(&v[i - 1], &v[i]) > 0) {
            label_t x = v[i];
            for (j = i; j > 0 && name_cmp(&v[j - 1], &x) > 0; j--)
                v[j] = v[j - 1];
            v[j] = x;
        }
    }
}

/* Bottom-up merge sort for big sets (O(n log n) whatever the input); tmp has n slots. */
static void merge_sort(label_t *v, label_t *tmp, size_t n)
{
    size_t width, i;
    label_t *src = v, *dst = tmp, *t;
    for (i = 0; i < n; i += SMALL_SORT)
        insertion_sort(v + i, n - i < SMALL_SORT ? n - i : SMALL_SORT);
    for (width = SMALL_SORT; width < n; width = width > n / 2 ? n : width * 2) {
        for (i = 0; i < n; i = n - i < 2 * width ? n : i + 2 * width) {
            size_t mid = n - i < width ? n : i + width;
            size_t end = n - i < 2 * width ? n : i + 2 * width;
            size_t a = i, b = mid, k = i;
            while (a < mid && b < end)
                dst[k++] = name_cmp(&src[b], &src[a]) < 0 ? src[b++] : src[a++];
            while (a < mid)
                dst[k++] = src[a++];
            while (b < end)
                dst[k++] = src[b++];
        }
        t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
}

/* 1 when the sorted set breaks a rule of _pyproto._label_set_problem; with
 * utf8_names any non-empty name is valid (the caller's text is UTF-8). */
static int set_invalid(const label_t *v, size_t n, int utf8_names)
{
    size_t k;
    int has_name = 0;
    for (k = 0; k < n; k++) {
        const label_t *l = &v[k];
        if (l->nlen == 0 || l->vlen == 0 || (!utf8_names && !valid_name(l->name, l->nlen, 1, 2)))
            return 1;
        if (k && name_cmp(&v[k - 1], l) == 0)
            return 1; /* duplicate */
        if (l->nlen == 8 && memcmp(l->name, "__name__", 8) == 0) {
            has_name = 1;
            if (!utf8_names && !valid_name(l->value, l->vlen, 4, 8))
                return 1;
        }
    }
    return !has_name;
}

/* Copies n bytes between distinct buffers; short copies inline, with
 * overlapping word moves that stay inside both. */
PW_INLINE void copy_bytes(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        uint64_t x, y;
        memcpy(&x, s, 8);
        memcpy(&y, s + n - 8, 8);
        memcpy(d, &x, 8);
        memcpy(d + n - 8, &y, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        memcpy(d, &x, 4);
        memcpy(d + n - 4, &y, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* Splits the text into n strings as pbenc.h describes: ends[k] is the offset
 * just past string k (which starts at 0, or just past the '\0' that ends
 * string k - 1 when lengths is NULL). 0 if the text does not split so. */
static int split_text(const uint8_t *t, size_t len, const int64_t *lengths, size_t n, size_t *ends)
{
    size_t k = 0, pos = 0, sum = 0;
    int ascii = 1;
    if (n == 0)
        return len == 0;
    if (lengths == NULL) {
#ifdef PW_LITTLE_ENDIAN
        for (; len - pos >= 8; pos += 8) {
            uint64_t v = load64(t + pos);
            /* 0x80 in exactly the zero bytes of v */
            uint64_t z = ~(((v & 0x7f7f7f7f7f7f7f7fu) + 0x7f7f7f7f7f7f7f7fu) | v | 0x7f7f7f7f7f7f7f7fu);
            while (z) {
                if (k == n - 1)
                    return 0; /* a separator too many: a string holds '\0' */
                ends[k++] = pos + (size_t)(__builtin_ctzll(z) >> 3);
                z &= z - 1;
            }
        }
#endif
        for (; pos < len; pos++) {
            if (t[pos] == 0) {
                if (k == n - 1)
                    return 0;
                ends[k++] = pos;
            }
        }
        if (k != n - 1)
            return 0;
        ends[k] = len;
        return 1;
    }
    for (k = 0; k < n; k++) {
        if (lengths[k] < 0)
            return 0;
        if (ascii && (uint64_t)lengths[k] <= (uint64_t)(len - sum)) {
            sum += (size_t)lengths[k];
            ends[k] = sum;
        } else {
            ascii = 0; /* more code points than bytes: not all one byte each */
        }
    }
    if (ascii && sum == len)
        return 1; /* as many code points as bytes: each is one byte */
    if (len && (t[0] & 0xC0) == 0x80)
        return 0; /* starts inside a character */
    for (k = 0; k < n; k++) {
        uint64_t chars = (uint64_t)lengths[k];
        for (; chars; chars--) {
            if (pos >= len)
                return 0;
            pos++;
            while (pos < len && (t[pos] & 0xC0) == 0x80)
                pos++;
        }
        ends[k] = pos;
    }
    return pos == len;
}

/* A column of strings in a split text: string j is text[start, ends[i]) for
 * i = j * stride + first, start = 0 for i = 0, else ends[i - 1] + sep. */
typedef struct {
    const uint8_t *text;
    const size_t *ends;
    size_t stride, first, sep;
} column_t;

PW_INLINE const uint8_t *column_at(const column_t *c, size_t j, size_t *len)
{
    size_t i = j * c->stride + c->first, start = i ? c->ends[i - 1] + c->sep : 0;
    *len = c->ends[i] - start;
    return c->text + start;
}

/* Both entry points, once their text is split: n_labels labels in sets of
 * counts[i] (already checked to add up), names and values from the columns. */
PW_INLINE int encode_sets(const column_t *names, const column_t *values, size_t n_labels,
                       const int64_t *counts, size_t n_sets, size_t max_count, int utf8_names, arena_t *arena,
                       uint8_t **out, size_t *info)
{
    label_t *labels = NULL;
    uint8_t *buf, *p, *f;
    size_t i, k, total = 0, fmt, alloc;

    /* pass 1: the exact size; each label is 0x0a len (0x0a len name 0x12 len value) */
    for (k = 0; k < n_labels; k++) {
        size_t nlen, vlen, body, field;
        column_at(names, k, &nlen);
        column_at(values, k, &vlen);
        if (nlen + vlen < 124) { /* body < 128: every length one byte */
            field = 6 + nlen + vlen;
        } else {
            size_t v = delimited_size(vlen);
            body = delimited_size(nlen);
            if (!body || !v || !add_to(&body, v) || !(field = delimited_size(body)))
                return PW_PB_ETOOBIG;
        }
        if (!add_to(&total, field))
            return PW_PB_ETOOBIG;
    }
    /* then the length of each set, as int64 in native byte order */
    if (n_sets > SIZE_MAX / sizeof(int64_t))
        return PW_PB_ETOOBIG;
    fmt = n_sets * sizeof(int64_t);
    alloc = total;
    if (!add_to(&alloc, fmt) || max_count > SIZE_MAX / 2 / sizeof *labels)
        return PW_PB_ETOOBIG;
    if (max_count) {
        labels = arena_get(arena, (max_count > SMALL_SORT ? 2 * max_count : max_count) * sizeof *labels);
        if (labels == NULL)
            return PW_PB_ENOMEM;
    }
    buf = arena_get(arena, alloc);
    if (buf == NULL)
        return PW_PB_ENOMEM;

    /* pass 2: per set, sort, check, write */
    p = buf;
    f = buf + total;
    k = 0;
    for (i = 0; i < n_sets; i++) {
        size_t n = (size_t)counts[i], j;
        uint8_t *set_start = p;
        for (j = 0; j < n; j++, k++) {
            labels[j].name = column_at(names, k, &labels[j].nlen);
            labels[j].value = column_at(values, k, &labels[j].vlen);
        }
        if (n > SMALL_SORT)
            merge_sort(labels, labels + max_count, n);
        else
            insertion_sort(labels, n);
        if (set_invalid(labels, n, utf8_names)) {
            info[PW_PB_ERR_SERIES] = i;
            return PW_PB_EINVALID;
        }
        for (j = 0; j < n; j++) {
            const label_t *l = &labels[j];
            size_t nlen = l->nlen, vlen = l->vlen;
            if (nlen + vlen < 124) {
                p[0] = 0x0a;
                p[1] = (uint8_t)(4 + nlen + vlen);
                p[2] = 0x0a;
                p[3] = (uint8_t)nlen;
                copy_bytes(p + 4, l->name, nlen);
                p += 4 + nlen;
                p[0] = 0x12;
                p[1] = (uint8_t)vlen;
                copy_bytes(p + 2, l->value, vlen);
                p += 2 + vlen;
            } else {
                size_t body = 2 + varint_len(nlen) + nlen + varint_len(vlen) + vlen;
                *p++ = 0x0a;
                p = put_varint(p, body);
                *p++ = 0x0a;
                p = put_varint(p, nlen);
                copy_bytes(p, l->name, nlen);
                p += nlen;
                *p++ = 0x12;
                p = put_varint(p, vlen);
                copy_bytes(p, l->value, vlen);
                p += vlen;
            }
        }
        {
            int64_t len = (int64_t)(p - set_start);
            memcpy(f, &len, sizeof len);
            f += sizeof len;
        }
    }
    *out = buf;
    info[PW_PB_LEN] = total;
    info[PW_PB_FMT_LEN] = (size_t)(f - (buf + total));
    return PW_PB_OK;
}

int pw_encode_label_sets(const uint8_t *text, size_t text_len,
                         const int64_t *lengths, size_t n_strings,
                         const int64_t *counts, size_t n_sets, int utf8_names,
                         uint8_t *scratch, size_t scratch_len,
                         uint8_t **out, size_t *info)
{
    arena_t arena;
    column_t names, values;
    size_t *ends, i, n_labels, left, max_count = 0;
    int rc;

    *out = NULL;
    for (i = 0; i < PW_PB_INFO_LEN; i++)
        info[i] = 0;
    arena_init(&arena, scratch, scratch_len);
    if (!buffer_ok(&text, text_len))
        return PW_PB_ESPLIT;
    /* counts: non-negative, adding up to the pairs of strings */
    if (n_strings % 2)
        return PW_PB_ECOUNTS;
    n_labels = left = n_strings / 2;
    if (!counts_fit(counts, n_sets, &left, &max_count) || left != n_labels)
        return PW_PB_ECOUNTS;
    if (n_strings > SIZE_MAX / sizeof *ends)
        return PW_PB_ETOOBIG;

    ends = arena_get(&arena, n_strings * sizeof *ends);
    if (ends == NULL)
        rc = PW_PB_ENOMEM;
    else if (!split_text(text, text_len, lengths, n_strings, ends))
        rc = PW_PB_ESPLIT;
    else {
        names.text = values.text = text;
        names.ends = values.ends = ends;
        names.stride = values.stride = 2;
        names.first = 0;
        values.first = 1;
        names.sep = values.sep = lengths == NULL ? 1 : 0;
        rc = encode_sets(&names, &values, n_labels, counts, n_sets, max_count, utf8_names, &arena, out, info);
    }
    info[PW_PB_WANTED] = arena.wanted;
    info[PW_PB_OWNED] = (size_t)arena_release(&arena, *out);
    return rc;
}

int pw_encode_label_columns(const uint8_t *names_text, size_t names_len,
                            const uint8_t *values_text, size_t values_len, size_t n_labels,
                            const int64_t *counts, size_t n_sets, int utf8_names,
                            uint8_t *scratch, size_t scratch_len,
                            uint8_t **out, size_t *info)
{
    arena_t arena;
    column_t names, values;
    size_t *nends, *vends, i, left = n_labels, max_count = 0;
    int rc;

    *out = NULL;
    for (i = 0; i < PW_PB_INFO_LEN; i++)
        info[i] = 0;
    arena_init(&arena, scratch, scratch_len);
    if (!buffer_ok(&names_text, names_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&values_text, values_len))
        return PW_PB_ESPLIT;
    if (!counts_fit(counts, n_sets, &left, &max_count) || left != n_labels)
        return PW_PB_ECOUNTS;
    if (n_labels > SIZE_MAX / sizeof *nends)
        return PW_PB_ETOOBIG;

    nends = arena_get(&arena, n_labels * sizeof *nends);
    vends = arena_get(&arena, n_labels * sizeof *vends);
    if (nends == NULL || vends == NULL)
        rc = PW_PB_ENOMEM;
    else if (!split_text(names_text, names_len, NULL, n_labels, nends) ||
             !split_text(values_text, values_len, NULL, n_labels, vends))
        rc = PW_PB_ESPLIT;
    else {
        names.text = names_text;
        values.text = values_text;
        names.ends = nends;
        values.ends = vends;
        names.stride = values.stride = 1;
        names.first = values.first = 0;
        names.sep = values.sep = 1;
        rc = encode_sets(&names, &values, n_labels, counts, n_sets, max_count, utf8_names, &arena, out, info);
    }
    info[PW_PB_WANTED] = arena.wanted;
    info[PW_PB_OWNED] = (size_t)arena_release(&arena, *out);
    return rc;
}

/* ------------------------------------------------------------- request */

int pw_encode_request(const uint8_t *labels, size_t labels_len, const int64_t *label_lens,
                      const int64_t *counts, size_t n_series,
                      const void *values, size_t n_values,
                      const void *timestamps, size_t n_timestamps,
                      const uint8_t *extras, size_t extras_len, const int64_t *extra_lens,
                      const uint8_t *metadata, size_t metadata_len,
                      int compress,
                      uint8_t *scratch, size_t scratch_len,
                      uint8_t **out, size_t *info)
{
    const uint8_t *vals = values, *stamps = timestamps;
    arena_t arena;
    size_t *bodies = NULL;
    uint8_t *buf, *p;
    size_t i, j, total = 0, loff = 0, eoff = 0;
    int rc = PW_PB_OK;

    *out = NULL;
    for (i = 0; i < PW_PB_INFO_LEN; i++)
        info[i] = 0;
    arena_init(&arena, scratch, scratch_len);
    if (!buffer_ok(&labels, labels_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&extras, extras_len))
        return PW_PB_ESPLIT;
    if (!buffer_ok(&metadata, metadata_len))
        return PW_PB_ESPLIT;
    if (n_series && label_lens == NULL)
        return PW_PB_ESPLIT;
    if (!lengths_cover(label_lens, n_series, labels_len))
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
    j = 0;
    for (i = 0; i < n_series; i++) {
        size_t body = (size_t)label_lens[i], end = j + (size_t)counts[i], samples = 0, field, bad;
        if (extra_lens && !add_to(&body, (size_t)extra_lens[i]))
            goto too_big;
        /* 0x12 len [0x09 <8 bytes>] [0x10 varint]: at most 22 bytes */
        if ((rc = size_samples(vals, stamps, j, end, 0, &samples, &bad)) != PW_PB_OK) {
            if (rc == PW_PB_EORDER) {
                info[PW_PB_ERR_SERIES] = i;
                info[PW_PB_ERR_SAMPLE] = bad;
            }
            goto done;
        }
        j = end;
        if (!add_to(&body, samples) || !(field = delimited_size(body)) || !add_to(&total, field))
            goto too_big;
        bodies[i] = body;
    }
    if (!add_to(&total, metadata_len))
        goto too_big;

    /* pass 2: write */
    buf = arena_get(&arena, total);
    if (buf == NULL) {
        rc = PW_PB_ENOMEM;
        goto done;
    }
    p = buf;
    j = 0;
    for (i = 0; i < n_series; i++) {
        size_t end = j + (size_t)counts[i], n = (size_t)label_lens[i];
        *p++ = 0x0a;
        p = put_varint(p, bodies[i]);
        p = put_bytes(p, labels + loff, n);
        loff += n;
        p = put_samples(p, vals, stamps, j, end, 0);
        j = end;
        if (extra_lens) {
            n = (size_t)extra_lens[i];
            p = put_bytes(p, extras + eoff, n);
            eoff += n;
        }
    }
    memcpy(p, metadata, metadata_len);
    return finish_request(&arena, PW_PB_OK, buf, total, compress, out, info,
                          PW_PB_LEN, PW_PB_WANTED, PW_PB_OWNED);

too_big:
    rc = PW_PB_ETOOBIG;
done:
    return finish_request(&arena, rc, NULL, 0, 0, out, info, PW_PB_LEN, PW_PB_WANTED, PW_PB_OWNED);
}
