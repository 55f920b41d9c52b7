"""Snappy block format in pure Python: the python backend's compress/decompress.

Raw block format (not the framed stream format): a varint of the uncompressed
length, then literal and copy elements (google/snappy format_description.txt).

THE COMPRESSION ALGORITHM of `compress` (csrc/snappy.c implements the very
same; the two must emit identical bytes for every input, which
tests/test_snappy.py checks; the Python encoder's requests are compressed by
`_pystream` instead, which emits copies where it knows the repeats are):

* The input is cut into blocks of 65536 bytes, compressed independently: a
  copy never reaches into an earlier block, so offsets are < 65536.
* Per block, a table maps each 4-byte string to the LAST block position at
  which it was inserted. It is exact (keyed by the 4 bytes themselves, never a
  lossy hash), so a hit is always a real 4-byte match and both implementations
  see the same hits: here a dict keyed by ``src[ip:ip+4]``, in C an
  open-addressing table of positions whose keys are read back from the block.
* Scan: ``ip = next_emit = block start; skip = 32``. While ``ip + 4 <= end``:
  look up the 4 bytes at ip, then insert ip for them. On a miss,
  ``ip += skip >> 5; skip += 1`` (the reference's skip heuristic: after 32
  misses in a row probe every 2nd byte, after 64 every 3rd, ...). On a hit at
  candidate c: emit the pending literal ``[next_emit, ip)``, extend the match
  forward as far as it goes (bounded by the block end; it may overlap ip),
  emit the copy (offset ``ip - c``), then ``ip += length; next_emit = ip;
  skip = 32`` and, if ``ip + 3 <= end``, insert position ``ip - 1``. At the
  end emit ``[next_emit, end)`` as a literal.
* A literal of n bytes: tag ``(n-1) << 2`` for n <= 60, else tag 60..63
  followed by n-1 in 1..4 little-endian bytes (the fewest that hold it).
* A copy of length L at offset o is split as the reference does: while
  L >= 68 emit 64; if L > 64 emit 60; then the rest (4..64). Each piece is a
  copy-1 (2 bytes) when its length is < 12 and o < 2048, else a copy-2.
  (copy-4 is never emitted, since offsets stay < 65536, but is decoded.)

Decoding accepts any valid stream and raises errors.SnappyError on anything
else; the messages are the same as the C backend's (``MESSAGES``).
"""

from __future__ import annotations

import struct
from typing import Union

from .errors import SnappyError

__all__ = ["compress", "decompress", "uncompressed_length", "max_compressed_length", "MESSAGES"]

BLOCK_SIZE = 65536
MAX_INPUT = 0xFFFFFFFF

Buffer = Union[bytes, bytearray, memoryview]

# The error messages of both backends, by the C error code (csrc/snappy.h).
MESSAGES = {
    -1: "snappy: bad length header (truncated, over 5 bytes, or over 2**32-1)",
    -2: "snappy: truncated input",
    -3: "snappy: copy offset is zero or reaches before the start of the output",
    -4: "snappy: output would exceed the declared length",
    -5: "snappy: output is shorter than the declared length",
    -6: "snappy: declared length is larger than this input can expand to",
    -7: "snappy: destination buffer too small",
    -8: "snappy: out of memory",
    -9: "snappy: input too large (over 2**32-1 bytes)",
}


def _fail(code: int) -> SnappyError:
    return SnappyError(MESSAGES[code])


def too_long(total: int, max_length: int) -> SnappyError:
    """The error both backends raise when the declared length is over the limit."""
    return SnappyError(f"snappy: declared length {total} exceeds the limit of {max_length} bytes")


def max_compressed_length(n: int) -> int:
    """Upper bound of compress() output for n input bytes (the reference's)."""
    return 32 + n + n // 6


def max_expansion(n: int) -> int:
    """Most bytes n bytes of elements can decode to: a copy-2 makes 64 of 3."""
    return (n // 3) * 64 + (11 if n % 3 == 2 else 0)


# One-byte varints, looked up rather than computed (lengths and small ints).
SMALL_VARINTS = [bytes([i]) for i in range(128)]
SMALL_TAGS = [bytes([i << 2]) for i in range(60)]  # literal tags of 1..60 bytes
# Copy elements: tag and offset. A copy-2 of 1..64 bytes is COPY2(length * 4 - 2, offset).
COPY1 = struct.Struct("<BB").pack
COPY2 = struct.Struct("<BH").pack
COPY4 = struct.Struct("<BI").pack
_U64_MASK = (1 << 64) - 1


def varint(value: int) -> bytes:
    """Base-128 varint of an unsigned value; negative int64 as its 64-bit two's complement.

    Snappy's length header and protobuf's varints are the same encoding; _pyproto imports this.
    """
    if 0 <= value < 128:
        return SMALL_VARINTS[value]
    value &= _U64_MASK
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_tag(n: int) -> bytes:
    """The tag of an n-byte literal (1 <= n < 2**32): one byte up to 60, else 2-5."""
    if n <= 60:
        return SMALL_TAGS[n - 1]
    n -= 1
    size = (n.bit_length() + 7) >> 3
    return bytes(((59 + size) << 2,)) + n.to_bytes(size, "little")


def copy_ops(offset: int, length: int) -> bytes:
    """A copy of `length` bytes from `offset` back, split like the reference:
    64s while >= 68 are left, a 60 if over 64, then the rest; each piece a
    copy-1 when 4-11 bytes and under 2048 back, else a copy-2 (a copy-4 past 65535)."""
    if length < 65 and offset < 0x10000:  # one element, the usual case
        if 3 < length < 12 and offset < 2048:
            return COPY1(offset >> 8 << 5 | length - 4 << 2 | 1, offset & 0xFF)
        return COPY2(length * 4 - 2, offset)
    if offset > 0xFFFF:
        ops = b""
        while length > 64:
            ops += COPY4(0xFF, offset)
            length -= 64
        return ops + COPY4((length - 1) << 2 | 3, offset)
    ops = b""
    while length >= 68:
        ops += COPY2(0xFE, offset)
        length -= 64
    if length > 64:
        ops += COPY2(0xEE, offset)
        length -= 60
    return ops + copy_ops(offset, length)


def compress(data: Buffer) -> bytes:
    """Snappy-compress `data` (block format); the exact bytes csrc/snappy.c emits."""
    src = data if type(data) is bytes else bytes(data)
    n = len(src)
    if n > MAX_INPUT:
        raise _fail(-9)
    out = bytearray(varint(n))
    for start in range(0, n, BLOCK_SIZE):
        _compress_block(src, start, min(start + BLOCK_SIZE, n), out)
    return bytes(out)


def _compress_block(src: bytes, start: int, end: int, out: bytearray) -> None:
    # Everything is inlined in one loop: locals are what CPython does fastest.
    table: dict = {}
    get = table.get
    tags = SMALL_TAGS
    from_bytes = int.from_bytes
    ip = next_emit = start
    last = end - 4  # last position with 4 bytes left in the block
    skip = 32
    while ip <= last:
        key = src[ip : ip + 4]
        cand = get(key)
        table[key] = ip
        if cand is None:
            ip += skip >> 5
            skip += 1
            continue

        if ip > next_emit:  # the literal [next_emit, ip)
            out += tags[ip - next_emit - 1] if ip - next_emit <= 60 else literal_tag(ip - next_emit)
            out += src[next_emit:ip]

        # Extend the 4-byte match: compare a 64-byte window (then doubling
        # ones); in the first unequal window the first differing byte is the
        # top byte of the big-endian XOR.
        most = end - ip
        stop = 68 if most > 68 else most
        a = src[cand + 4 : cand + stop]
        b = src[ip + 4 : ip + stop]
        if a != b:
            length = stop - (((from_bytes(a, "big") ^ from_bytes(b, "big")).bit_length() + 7) >> 3)
        else:
            length = stop
            width = 128
            while length < most:
                stop = length + width
                if stop > most:
                    stop = most
                a = src[cand + length : cand + stop]
                b = src[ip + length : ip + stop]
                if a != b:
                    x = from_bytes(a, "big") ^ from_bytes(b, "big")
                    length = stop - ((x.bit_length() + 7) >> 3)
                    break
                length = stop
                width <<= 1

        offset = ip - cand  # copy_ops, its one-element cases inlined
        if length < 12 and offset < 2048:
            out += COPY1(offset >> 8 << 5 | length - 4 << 2 | 1, offset & 0xFF)
        else:
            out += COPY2(length * 4 - 2, offset) if length < 65 else copy_ops(offset, length)
        ip += length
        next_emit = ip
        skip = 32
        if ip <= last + 1:
            table[src[ip - 1 : ip + 3]] = ip - 1

    if next_emit < end:
        out += literal_tag(end - next_emit)
        out += src[next_emit:end]


def _header(src: bytes) -> "tuple[int, int]":
    """(declared length, header size); SnappyError when the varint is bad or
    declares more than the rest of the input could possibly expand to."""
    value = 0
    shift = 0
    for pos in range(min(5, len(src))):
        byte = src[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > MAX_INPUT:
                break
            if value > max_expansion(len(src) - pos - 1):
                raise _fail(-6)
            return value, pos + 1
        shift += 7
    raise _fail(-1)


def uncompressed_length(data: Buffer) -> int:
    """The length a snappy block declares; SnappyError when the header is bad."""
    return _header(data if type(data) in (bytes, bytearray) else bytes(data))[0]


def decompress(data: Buffer, max_length: int) -> bytes:
    """Decode a snappy block; SnappyError if corrupt, truncated, or over max_length.

    The declared length is checked against what the input could possibly
    expand to and against `max_length` before any output is allocated.
    """
    src = data if type(data) is bytes else bytes(data)
    total, pos = _header(src)
    if total > max_length:
        raise too_long(total, max_length)
    n = len(src)
    out = bytearray()
    have = 0  # len(out)
    from_bytes = int.from_bytes
    while pos < n:
        tag = src[pos]
        kind = tag & 3
        if kind == 2:  # copy, 2-byte offset (the most common element)
            if pos + 3 > n:
                raise _fail(-2)
            length = (tag >> 2) + 1
            offset = src[pos + 1] | (src[pos + 2] << 8)
            pos += 3
        elif kind == 0:  # literal
            length = (tag >> 2) + 1
            pos += 1
            if length > 60:
                nb = length - 60
                if pos + nb > n:
                    raise _fail(-2)
                length = from_bytes(src[pos : pos + nb], "little") + 1
                pos += nb
            stop = pos + length
            if stop > n:
                raise _fail(-2)
            have += length
            if have > total:
                raise _fail(-4)
            out += src[pos:stop]
            pos = stop
            continue
        elif kind == 1:  # copy, 1-byte offset
            if pos + 2 > n:
                raise _fail(-2)
            length = ((tag >> 2) & 7) + 4
            offset = ((tag & 0xE0) << 3) | src[pos + 1]
            pos += 2
        else:  # copy, 4-byte offset
            if pos + 5 > n:
                raise _fail(-2)
            length = (tag >> 2) + 1
            offset = from_bytes(src[pos + 1 : pos + 5], "little")
            pos += 5
        if offset == 0 or offset > have:
            raise _fail(-3)
        if have + length > total:
            raise _fail(-4)
        if length <= offset:
            begin = have - offset
            out += out[begin : begin + length]
        else:  # overlapping: the last `offset` bytes repeat (run-length style)
            run = out[have - offset :]
            q, r = divmod(length, offset)
            out += run * q + run[:r]
        have += length
    if have != total:
        raise _fail(-5)
    return bytes(out)
