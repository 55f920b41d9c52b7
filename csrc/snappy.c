/* Snappy block format in C99: promwrite's native compress/decompress.
 *
 * THE COMPRESSION ALGORITHM (promwrite/_pysnappy.py implements the very same;
 * the two must emit identical bytes for every input, tests check it):
 *
 * - The input is cut into blocks of 65536 bytes, compressed independently: a
 *   copy never reaches into an earlier block, so offsets are < 65536.
 * - Per block, a table maps each 4-byte string to the LAST block position at
 *   which it was inserted. It is exact (keyed by the 4 bytes themselves, never
 *   a lossy hash), so a hit is always a real 4-byte match and both
 *   implementations see the same hits: a dict keyed by src[ip:ip+4] in
 *   Python, here an open-addressing table keyed by the 32-bit value (linear
 *   probing, at most half full, cleared between blocks by a generation stamp).
 * - Scan: ip = next_emit = block start; skip = 32. While ip + 4 <= end: look
 *   up the 4 bytes at ip, then insert ip for them. On a miss,
 *   ip += skip >> 5; skip += 1 (the reference's skip heuristic). On a hit at
 *   candidate c: emit the pending literal [next_emit, ip), extend the match
 *   forward as far as it goes (bounded by the block end; it may overlap ip),
 *   emit the copy (offset ip - c), then ip += length; next_emit = ip;
 *   skip = 32 and, if ip + 3 <= end, insert position ip - 1. At the end emit
 *   [next_emit, end) as a literal.
 * - A literal of n bytes: tag (n-1) << 2 for n <= 60, else tag 60..63 followed
 *   by n-1 in 1..4 little-endian bytes (the fewest that hold it).
 * - A copy of length L at offset o is split as the reference does: while
 *   L >= 68 emit 64; if L > 64 emit 60; then the rest (4..64). Each piece is a
 *   copy-1 when its length is < 12 and o < 2048, else a copy-2. (copy-4 is
 *   never emitted, offsets stay < 65536, but it is decoded.)
 *
 * Decoding bounds every length read from the wire before using it; all
 * arithmetic is on counts already known to be in range, never on pointers
 * past the end.
 */
#include "snappy.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 65536u
#define MAX_INPUT 0xffffffffu

static uint32_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* byte order is irrelevant: only compared for equality */
    return v;
}

/* ---------------------------------------------------------------- compress */

typedef struct {
    uint32_t key;
    uint16_t pos;
    uint16_t gen; /* slot is live iff gen equals the table's current gen */
} slot_t;

typedef struct {
    slot_t *slots;
    uint32_t mask;
    unsigned shift;
    uint16_t gen;
} table_t;

/* Looks key up and sets its position to pos; returns the old position or -1. */
static int32_t table_swap(table_t *t, uint32_t key, uint16_t pos)
{
    uint32_t i = (key * 0x9E3779B1u) >> t->shift;
    for (;;) {
        slot_t *s = &t->slots[i];
        if (s->gen != t->gen) {
            s->key = key;
            s->pos = pos;
            s->gen = t->gen;
            return -1;
        }
        if (s->key == key) {
            int32_t old = s->pos;
            s->pos = pos;
            return old;
        }
        i = (i + 1) & t->mask;
    }
}

static void table_next_block(table_t *t)
{
    if (t->gen == 0xffffu) {
        memset(t->slots, 0, ((size_t)t->mask + 1) * sizeof(slot_t));
        t->gen = 0;
    }
    t->gen++;
}

static uint8_t *emit_literal(uint8_t *op, const uint8_t *lit, uint32_t len)
{
    uint32_t n = len - 1;
    if (n < 60) {
        *op++ = (uint8_t)(n << 2);
    } else {
        unsigned nb = n < 0x100u ? 1 : n < 0x10000u ? 2 : n < 0x1000000u ? 3 : 4;
        unsigned i;
        *op++ = (uint8_t)((59 + nb) << 2);
        for (i = 0; i < nb; i++)
            *op++ = (uint8_t)(n >> (8 * i));
    }
    memcpy(op, lit, len);
    return op + len;
}

/* One copy piece: 4 <= len <= 64, 1 <= offset < 65536. */
static uint8_t *emit_copy_piece(uint8_t *op, uint32_t offset, uint32_t len)
{
    if (len < 12 && offset < 2048) {
        *op++ = (uint8_t)(((offset >> 3) & 0xe0) | ((len - 4) << 2) | 1);
        *op++ = (uint8_t)(offset & 0xff);
    } else {
        *op++ = (uint8_t)(((len - 1) << 2) | 2);
        *op++ = (uint8_t)(offset & 0xff);
        *op++ = (uint8_t)(offset >> 8);
    }
    return op;
}

static uint8_t *emit_copy(uint8_t *op, uint32_t offset, uint32_t len)
{
    while (len >= 68) {
        op = emit_copy_piece(op, offset, 64);
        len -= 64;
    }
    if (len > 64) {
        op = emit_copy_piece(op, offset, 60);
        len -= 60;
    }
    return emit_copy_piece(op, offset, len);
}

/* Length of the common prefix of a[0..most) and b[0..most). */
static uint32_t common_prefix(const uint8_t *a, const uint8_t *b, uint32_t most)
{
    uint32_t i = 0;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (most - i >= 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return i + ((uint32_t)__builtin_ctzll(x ^ y) >> 3);
        i += 8;
    }
#endif
    while (i < most && a[i] == b[i])
        i++;
    return i;
}

static uint8_t *compress_block(table_t *t, const uint8_t *blk, uint32_t end, uint8_t *op)
{
    uint32_t ip = 0, next_emit = 0, skip = 32;
    while (end >= 4 && ip <= end - 4) {
        int32_t cand = table_swap(t, load32(blk + ip), (uint16_t)ip);
        uint32_t len, offset;
        if (cand < 0) {
            ip += skip >> 5;
            skip++;
            continue;
        }
        if (ip > next_emit)
            op = emit_literal(op, blk + next_emit, ip - next_emit);
        offset = ip - (uint32_t)cand;
        len = 4 + common_prefix(blk + cand + 4, blk + ip + 4, end - ip - 4);
        op = emit_copy(op, offset, len);
        ip += len;
        next_emit = ip;
        skip = 32;
        if (ip + 3 <= end)
            table_swap(t, load32(blk + ip - 1), (uint16_t)(ip - 1));
    }
    if (next_emit < end)
        op = emit_literal(op, blk + next_emit, end - next_emit);
    return op;
}

size_t pw_snappy_max_compressed_length(size_t n)
{
    uint64_t bound;
    if ((uint64_t)n > MAX_INPUT)
        return 0;
    bound = 32 + (uint64_t)n + (uint64_t)n / 6;
    if (bound > (uint64_t)SIZE_MAX)
        return 0;
    return (size_t)bound;
}

size_t pw_snappy_compress(const uint8_t *src, size_t n, uint8_t *dst)
{
    uint8_t *op = dst;
    uint64_t v = n;
    size_t start = 0;
    uint32_t cap = 16;
    table_t t;

    if (pw_snappy_max_compressed_length(n) == 0)
        return 0;
    while (v >= 0x80) {
        *op++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *op++ = (uint8_t)v;
    if (n == 0)
        return 1;

    /* Twice the largest block: at most half full, so probing always ends. */
    while (cap < 2 * (n < BLOCK_SIZE ? (uint32_t)n : BLOCK_SIZE))
        cap <<= 1;
    t.slots = (slot_t *)calloc(cap, sizeof(slot_t));
    if (t.slots == NULL)
        return 0;
    t.mask = cap - 1;
    t.shift = 32;
    for (; cap > 1; cap >>= 1)
        t.shift--;
    t.gen = 0;

    while (start < n) {
        uint32_t len = n - start < BLOCK_SIZE ? (uint32_t)(n - start) : BLOCK_SIZE;
        table_next_block(&t);
        op = compress_block(&t, src + start, len, op);
        start += len;
    }
    free(t.slots);
    return (size_t)(op - dst);
}

/* -------------------------------------------------------------- decompress */

/* Most bytes m bytes of elements can produce: a copy-2 makes 64 of 3. */
static uint64_t max_expansion(uint64_t m)
{
    return (m / 3) * 64 + (m % 3 == 2 ? 11 : 0);
}

/* Declared length and header size; PW_SNAPPY_EHEADER / EIMPOSSIBLE. */
static int read_header(const uint8_t *src, size_t n, uint64_t *total, size_t *hdr)
{
    uint64_t value = 0;
    size_t pos;
    for (pos = 0; pos < n && pos < 5; pos++) {
        uint8_t byte = src[pos];
        value |= (uint64_t)(byte & 0x7f) << (7 * pos);
        if (byte < 0x80) {
            if (value > MAX_INPUT)
                return PW_SNAPPY_EHEADER;
            if (value > max_expansion(n - pos - 1))
                return PW_SNAPPY_EIMPOSSIBLE;
            *total = value;
            *hdr = pos + 1;
            return PW_SNAPPY_OK;
        }
    }
    return PW_SNAPPY_EHEADER;
}

int pw_snappy_uncompressed_length(const uint8_t *src, size_t n, uint64_t *out)
{
    size_t hdr;
    return read_header(src, n, out, &hdr);
}

int pw_snappy_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t dst_len)
{
    uint64_t total;
    size_t pos, have = 0; /* have <= total <= dst_len at all times */
    int rc = read_header(src, n, &total, &pos);
    if (rc != PW_SNAPPY_OK)
        return rc;
    if (total > (uint64_t)dst_len)
        return PW_SNAPPY_EDSTSMALL;

    while (pos < n) {
        uint8_t tag = src[pos];
        uint64_t len, offset;
        if ((tag & 3) == 0) {
            len = (uint64_t)(tag >> 2) + 1;
            pos++;
            if (len > 60) {
                size_t nb = (size_t)len - 60, i;
                if (nb > n - pos)
                    return PW_SNAPPY_ETRUNCATED;
                len = 0;
                for (i = 0; i < nb; i++)
                    len |= (uint64_t)src[pos + i] << (8 * i);
                len += 1; /* <= 2^32 */
                pos += nb;
            }
            if (len > (uint64_t)(n - pos))
                return PW_SNAPPY_ETRUNCATED;
            if (len > total - have)
                return PW_SNAPPY_EOVERFLOW;
            memcpy(dst + have, src + pos, (size_t)len);
            pos += (size_t)len;
            have += (size_t)len;
            continue;
        }
        switch (tag & 3) {
        case 1:
            if (n - pos < 2)
                return PW_SNAPPY_ETRUNCATED;
            len = ((tag >> 2) & 7) + 4;
            offset = ((uint64_t)(tag & 0xe0) << 3) | src[pos + 1];
            pos += 2;
            break;
        case 2:
            if (n - pos < 3)
                return PW_SNAPPY_ETRUNCATED;
            len = (uint64_t)(tag >> 2) + 1;
            offset = (uint64_t)src[pos + 1] | ((uint64_t)src[pos + 2] << 8);
            pos += 3;
            break;
        default:
            if (n - pos < 5)
                return PW_SNAPPY_ETRUNCATED;
            len = (uint64_t)(tag >> 2) + 1;
            offset = (uint64_t)src[pos + 1] | ((uint64_t)src[pos + 2] << 8) |
                     ((uint64_t)src[pos + 3] << 16) | ((uint64_t)src[pos + 4] << 24);
            pos += 5;
            break;
        }
        if (offset == 0 || offset > have)
            return PW_SNAPPY_EOFFSET;
        if (len > total - have)
            return PW_SNAPPY_EOVERFLOW;
        {
            uint8_t *op = dst + have;
            const uint8_t *from = op - (size_t)offset;
            size_t k = (size_t)len;
            if (offset >= len) {
                memcpy(op, from, k);
            } else { /* overlapping: byte order matters (run-length style) */
                size_t i;
                for (i = 0; i < k; i++)
                    op[i] = from[i];
            }
            have += k;
        }
    }
    if (have != total)
        return PW_SNAPPY_ESHORT;
    return PW_SNAPPY_OK;
}

const char *pw_snappy_strerror(int code)
{
    switch (code) {
    case PW_SNAPPY_OK:
        return "snappy: ok";
    case PW_SNAPPY_EHEADER:
        return "snappy: bad length header (truncated, over 5 bytes, or over 2**32-1)";
    case PW_SNAPPY_ETRUNCATED:
        return "snappy: truncated input";
    case PW_SNAPPY_EOFFSET:
        return "snappy: copy offset is zero or reaches before the start of the output";
    case PW_SNAPPY_EOVERFLOW:
        return "snappy: output would exceed the declared length";
    case PW_SNAPPY_ESHORT:
        return "snappy: output is shorter than the declared length";
    case PW_SNAPPY_EIMPOSSIBLE:
        return "snappy: declared length is larger than this input can expand to";
    case PW_SNAPPY_EDSTSMALL:
        return "snappy: destination buffer too small";
    case PW_SNAPPY_ENOMEM:
        return "snappy: out of memory";
    case PW_SNAPPY_ETOOBIG:
        return "snappy: input too large (over 2**32-1 bytes)";
    default:
        return "snappy: unknown error";
    }
}
