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
 *   Python, here an open-addressing table of positions whose keys are the
 *   block's own bytes there (see THE TABLE below).
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

/* THE TABLE of a block (the map 4-byte string -> last inserted position).
 * A slot holds 1 + a position, or 0 when empty; the key is not stored but
 * read back from the block (the 4 bytes at that position), so a slot is 2
 * bytes (positions are <= 65533) and a hit is still an exact 4-byte match.
 * Open addressing, linear probing from (key * golden ratio) >> (32 - bits).
 *
 * Speed: a probe that meets another key costs a mispredicted branch, so the
 * table is kept sparse (at most 1/GROW_AT full), yet only as large as the
 * block needs, since it is cleared per block and should stay in L2 (a full
 * block of realistic data has a few thousand keys: 2^16 slots, 128 KiB). It
 * starts at the size the previous block needed (the first block: a guess)
 * and doubles, rehashing, past 1/GROW_AT. It never grows once it is at least
 * twice the block length, or at MAX_BITS: a block holds at most 65534 keys,
 * so it is then at most half full and every probe ends on an empty slot.
 * The size only affects speed, never the map, so never the output. */
#define MIN_BITS 4u
#define MAX_BITS 17u
#define GROW_AT 8u     /* doubles when more than 1/GROW_AT full */
#define STACK_BITS 12u /* tables up to this size live on the stack */
#define HASH_MUL 0x9E3779B1u
#define NO_GROWTH 0xffffffffu

typedef struct {
    uint16_t *slots;   /* the table in use: stack, or heap */
    uint16_t *heap;    /* NULL, or malloc'd room for 1 << heap_bits slots */
    uint32_t heap_bits;
    uint32_t bits;     /* the table has 1 << bits slots */
    uint32_t count;    /* keys in it */
    uint32_t grow_at;  /* the count at which it doubles */
    uint16_t stack[1u << STACK_BITS];
} table_t;

/* Empties the table, sized for a block of len bytes that may get about guess
 * keys (the previous block's count; 0 for the first block). 0, or -1 when
 * out of memory. */
static int table_reset(table_t *t, uint32_t len, uint32_t guess)
{
    uint32_t bits = MIN_BITS;
    if (guess == 0)
        guess = len / 4;
    guess += guess / 4; /* some slack: growing mid-block costs a rehash */
    while (bits < MAX_BITS && ((1u << bits) / GROW_AT <= guess || bits < STACK_BITS) &&
           (1u << bits) < 2 * len)
        bits++;
    if (bits <= STACK_BITS) {
        t->slots = t->stack;
    } else {
        if (t->heap_bits < bits) {
            free(t->heap);
            t->heap = (uint16_t *)malloc(sizeof(uint16_t) << bits);
            t->heap_bits = t->heap != NULL ? bits : 0;
            if (t->heap == NULL)
                return -1;
        }
        t->slots = t->heap;
    }
    t->bits = bits;
    t->count = 0;
    /* with 2 * len slots it is never more than half full: no need to grow */
    t->grow_at = bits < MAX_BITS && (1u << bits) < 2 * len ? (1u << bits) / GROW_AT : NO_GROWTH;
    memset(t->slots, 0, sizeof(uint16_t) << bits);
    return 0;
}

/* Doubles the table of block blk (of len bytes), rehashing. 0, or -1 when
 * out of memory. */
static int table_grow(table_t *t, const uint8_t *blk, uint32_t len)
{
    uint32_t bits = t->bits + 1, mask = (1u << bits) - 1, n = 1u << t->bits, i;
    uint16_t *old = t->slots;
    uint16_t *fresh = (uint16_t *)malloc(sizeof(uint16_t) << bits);
    if (fresh == NULL)
        return -1;
    memset(fresh, 0, sizeof(uint16_t) << bits);
    for (i = 0; i < n; i++) {
        uint32_t v = old[i], h;
        if (v == 0)
            continue;
        h = (load32(blk + v - 1) * HASH_MUL) >> (32 - bits);
        while (fresh[h] != 0) /* the keys are distinct: the first empty slot */
            h = (h + 1) & mask;
        fresh[h] = (uint16_t)v;
    }
    free(t->heap); /* old, unless old is the stack */
    t->heap = fresh;
    t->heap_bits = bits;
    t->slots = fresh;
    t->bits = bits;
    t->grow_at = bits < MAX_BITS && (1u << bits) < 2 * len ? (1u << bits) / GROW_AT : NO_GROWTH;
    return 0;
}

/* Looks key up and sets its position to pos: v = 1 + its previous position,
 * or 0 when it is new. Decided by the slot alone, unless the slot holds
 * another key (rare: the table is sparse). */
#define TABLE_SWAP(v, key, pos)                                                \
    do {                                                                       \
        uint32_t i_ = ((key) * HASH_MUL) >> shift;                             \
        (v) = slots[i_];                                                       \
        while ((v) != 0 && load32(blk + (v) - 1) != (key)) {                   \
            i_ = (i_ + 1) & mask;                                              \
            (v) = slots[i_];                                                   \
        }                                                                      \
        slots[i_] = (uint16_t)((pos) + 1);                                     \
    } while (0)

/* TABLE_SWAP without the old position, counting a new key. Its loop test is
 * one branch, true only for a slot holding another key, so whether the key
 * is new does not cost a misprediction (an empty slot reads the block's first
 * bytes, and 0 * anything is 0). */
#define TABLE_PUT(key, pos)                                                    \
    do {                                                                       \
        uint32_t i_ = ((key) * HASH_MUL) >> shift, v_ = slots[i_];             \
        while ((uint64_t)v_ * (load32(blk + v_ - (v_ != 0)) ^ (key)) != 0) {   \
            i_ = (i_ + 1) & mask;                                              \
            v_ = slots[i_];                                                    \
        }                                                                      \
        slots[i_] = (uint16_t)((pos) + 1);                                     \
        count += v_ == 0;                                                      \
    } while (0)

#define TABLE_CHECK_GROWTH()                                                   \
    do {                                                                       \
        if (count >= grow_at) {                                                \
            t->count = count;                                                  \
            if (table_grow(t, blk, end) != 0)                                  \
                return NULL;                                                   \
            slots = t->slots;                                                  \
            mask = (1u << t->bits) - 1;                                        \
            shift = 32 - t->bits;                                              \
            grow_at = t->grow_at;                                              \
        }                                                                      \
    } while (0)

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
        op[0] = (uint8_t)(((offset >> 3) & 0xe0) | ((len - 4) << 2) | 1);
        op[1] = (uint8_t)offset;
        return op + 2;
    }
    op[0] = (uint8_t)(((len - 1) << 2) | 2);
    op[1] = (uint8_t)offset;
    op[2] = (uint8_t)(offset >> 8);
    return op + 3;
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

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORDWISE 1
static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
#else
#define WORDWISE 0
#endif

/* Compresses the block blk[0..end) to op; NULL when out of memory. src_end
 * is the end of the whole input: a short literal is copied as 16 bytes when
 * they are there to read.
 *
 * Writes may go up to 16 bytes past the element being written (a short
 * literal's 16-byte copy, a copy-1's third byte): the output always ends at
 * least 25 bytes short of pw_snappy_max_compressed_length. (A copy of c
 * bytes costs <= c - 1; a literal of m costs m + 1, or m + 2 or 3 when
 * m > 60; every literal but a block's last is followed by a copy. So a
 * block of L bytes takes <= L + 1 + 2L/61, the whole <= 6 + n + n/65536 +
 * 2n/61, and the bound is 32 + n + n/6.) */
static uint8_t *compress_block(table_t *t, const uint8_t *blk, uint32_t end, uint8_t *op,
                               const uint8_t *src_end)
{
    uint16_t *slots = t->slots;
    uint32_t mask = (1u << t->bits) - 1, shift = 32 - t->bits;
    uint32_t count = t->count, grow_at = t->grow_at;
    uint32_t ip = 0, next_emit = 0, skip = 32, limit, cand;

    if (end < 4)
        goto tail;
    limit = end - 4; /* the last position with 4 bytes left */
    for (;;) {
        /* Misses: a step of skip >> 5, skip growing by one, until a hit. */
        for (;;) {
            uint32_t key;
            if (ip > limit)
                goto tail;
            key = load32(blk + ip);
            TABLE_SWAP(cand, key, ip);
            if (cand != 0)
                break;
            count++;
            TABLE_CHECK_GROWTH();
            ip += skip >> 5;
            skip++;
        }
        /* The literal [next_emit, ip). */
        if (ip > next_emit) {
            uint32_t n = ip - next_emit;
            const uint8_t *lit = blk + next_emit;
            if (n <= 16 && src_end - lit >= 16) {
                *op = (uint8_t)((n - 1) << 2);
                memcpy(op + 1, lit, 16);
                op += n + 1;
            } else {
                op = emit_literal(op, lit, n);
            }
        }
        /* Copies, as long as the position right after one hits again (which
         * is the main loop's next lookup, with skip = 32, no literal). */
        for (;;) {
            const uint8_t *a = blk + cand + 3, *b = blk + ip + 4, *b_end = blk + end;
            uint32_t len, key, offset = ip + 1 - cand;
#if WORDWISE
            for (;;) {
                uint64_t x;
                if (b_end - b < 8) {
                    while (b < b_end && *a == *b) {
                        a++;
                        b++;
                    }
                    break;
                }
                x = load64(a) ^ load64(b);
                if (x != 0) {
                    b += (unsigned)__builtin_ctzll(x) >> 3;
                    break;
                }
                a += 8;
                b += 8;
            }
#else
            while (b < b_end && *a == *b) {
                a++;
                b++;
            }
#endif
            len = (uint32_t)(b - blk) - ip;
            ip += len;
            next_emit = ip;
            if (len <= 64) {
                /* emit_copy_piece without a branch: writes 3 bytes, keeps 2 or 3 */
                uint32_t one = (uint32_t)(len < 12) & (uint32_t)(offset < 2048), m = 0 - one;
                uint32_t w = ((((offset >> 3) & 0xe0) | ((len - 4) << 2) | 1 | ((offset & 0xff) << 8)) & m) |
                             ((((len - 1) << 2) | 2 | (offset << 8)) & ~m);
                op[0] = (uint8_t)w;
                op[1] = (uint8_t)(w >> 8);
                op[2] = (uint8_t)(w >> 16);
                op += 3 - one;
            } else {
                op = emit_copy(op, offset, len);
            }
            if (ip > limit) { /* no lookup at ip: maybe the insert at ip - 1 */
                if (ip + 3 <= end) {
                    key = load32(blk + ip - 1);
                    TABLE_PUT(key, ip - 1);
                }
                goto tail;
            }
            key = load32(blk + ip - 1);
            TABLE_PUT(key, ip - 1);
            key = load32(blk + ip);
            TABLE_SWAP(cand, key, ip);
            if (cand == 0)
                break;
            TABLE_CHECK_GROWTH();
        }
        /* that lookup missed: continue the scan from ip + 1, skip 33 */
        count++;
        TABLE_CHECK_GROWTH();
        ip += 1;
        skip = 33;
    }
tail:
    t->count = count;
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
    table_t t;

    if (pw_snappy_max_compressed_length(n) == 0)
        return 0;
    while (v >= 0x80) {
        *op++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *op++ = (uint8_t)v;

    t.heap = NULL;
    t.heap_bits = 0;
    t.count = 0;
    while (start < n) {
        uint32_t len = n - start < BLOCK_SIZE ? (uint32_t)(n - start) : BLOCK_SIZE;
        op = table_reset(&t, len, t.count) == 0 ? compress_block(&t, src + start, len, op, src + n) : NULL;
        if (op == NULL) {
            free(t.heap);
            return 0;
        }
        start += len;
    }
    free(t.heap);
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
