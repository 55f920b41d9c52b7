"""Snappy for the pure-Python encoder: the block written as the request is encoded.

`_pysnappy.compress` finds repeats by probing every few bytes, which in pure
Python costs more than the encoding. The encoder knows where the repeats are,
so `compress_request` emits them directly as snappy copies:

* a label field sent before is a copy of its last occurrence; consecutive
  copies from consecutive source bytes merge into one;
* a new label field is compared with the last one of the same name: the
  common prefix and suffix are copies, the middle a literal (``instance``
  values that differ in a digit cost a byte or two);
* a series whose timestamps equal an earlier series' copies each sample's
  ``timestamp, next sample's header`` from there: a sample costs its 8 value
  bytes plus a 1-byte tag and a 2-3 byte copy;
* the rest (values, first timestamps, extras, metadata) are literals, whole
  pieces seen before again copies.

The result is a valid snappy block (Google's snappy and both our decoders read
it) whose bytes differ from `_pysnappy.compress`'s; on remote-write requests it
is about as small as Google's (tests/test_snappy_stream.py bounds it).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ._pysnappy import MAX_INPUT, MESSAGES, copy_ops, literal_tag, varint
from .errors import SnappyError

__all__ = ["UniformSamples", "compress_request"]

_VALUE_TAG = literal_tag(8)


class UniformSamples:
    """Every sample of a request as equal-size records ``0x12 len 0x09 <8> 0x10 <width>``
    (no zero value, every timestamp a `width`-byte varint), with their columns."""

    __slots__ = ("records", "size", "stamps", "doubles", "width")

    def __init__(self, records: bytes, stamps: bytes, doubles: bytes, width: int) -> None:
        self.records = records  # the records, one after the other
        self.size = 12 + width  # bytes per record
        self.stamps = stamps  # the timestamps' varints, `width` bytes each
        self.doubles = doubles  # the values' 8 bytes each
        self.width = width


class _Stream:
    """A snappy block being written; at most one of a literal and a copy is pending."""

    __slots__ = ("out", "pos", "lit", "coff", "clen", "last", "similar")

    def __init__(self) -> None:
        self.out = bytearray()  # elements written
        self.pos = 0  # uncompressed bytes so far
        self.lit: List[bytes] = []  # pending literal
        self.coff = 0  # pending copy's offset
        self.clen = 0  # pending copy's length; 0: none
        self.last: Dict[bytes, int] = {}  # piece -> where it last began
        self.similar: Dict[bytes, Tuple[int, bytes]] = {}  # label name -> (where, field) of its last new field

    def flush(self) -> None:
        """Writes what is pending."""
        if self.clen:
            self.out += copy_ops(self.coff, self.clen)
            self.clen = 0
        elif self.lit:
            data = b"".join(self.lit)
            self.out += literal_tag(len(data))
            self.out += data
            self.lit = []

    def literal(self, data: bytes) -> None:
        if data:
            if self.clen:
                self.flush()
            self.lit.append(data)
            self.pos += len(data)

    def copy(self, offset: int, data: bytes) -> None:
        """`data`, which is also what stands `offset` bytes back: a copy when that pays."""
        n = len(data)
        if self.clen and offset == self.coff:
            self.clen += n
        elif n < 4:
            self.literal(data)
            return
        else:
            self.flush()
            self.coff, self.clen = offset, n
        self.pos += n

    def pieces(self, pieces: Sequence[bytes]) -> None:
        """Pieces in order: each a copy of its last occurrence when there is one."""
        get, last = self.last.get, self.last
        for piece in pieces:
            seen = get(piece)
            last[piece] = self.pos
            if seen is None:
                self.literal(piece)
            else:
                self.copy(self.pos - seen, piece)

    def new_field(self, field: bytes) -> None:
        """A label field not sent before: prefix and suffix copied from the last new field of its name."""
        pos = self.pos
        head = 2 if field[1] < 0x80 else 3
        key = field[head : head + 2 + field[head + 1]] if len(field) > head + 1 else field
        prev = self.similar.get(key)
        self.similar[key] = (pos, field)
        if prev is None:
            self.literal(field)
            return
        where, other = prev
        n, m = len(field), len(other)
        if n == m:  # the usual case: one XOR gives both ends
            x = int.from_bytes(field, "big") ^ int.from_bytes(other, "big")
            pre = n - ((x.bit_length() + 7) >> 3)
            suf = min(((x & -x).bit_length() - 1) >> 3, n - pre) if x else 0
            self.copy(pos - where, field[:pre])
        else:  # the lengths differ: the length bytes do, the name part and the value's ends may not
            skip = 2 if other[1] < 0x80 else 3
            a, b = field[head:], other[skip:]
            k = min(len(a), len(b))
            x = int.from_bytes(a[:k], "big") ^ int.from_bytes(b[:k], "big")
            pre = head + k - ((x.bit_length() + 7) >> 3)
            y = int.from_bytes(a[-k:], "little") ^ int.from_bytes(b[-k:], "little")
            suf = min(k - ((y.bit_length() + 7) >> 3), n - pre)
            self.literal(field[:head])
            self.copy(pos + head - where - skip, field[head:pre])
        self.literal(field[pre : n - suf])
        self.copy(pos + n - where - m, field[n - suf :])


def compress_request(
    label_text: bytes,
    label_lengths: Sequence[int],
    counts: Sequence[int],
    samples: "UniformSamples | List[bytes]",
    extras: Optional[Sequence[bytes]],
    metadata: bytes,
) -> bytes:
    """The snappy block of a WriteRequest given as encode_request's parts: series i is
    ``0x0a len``, its label fields, its samples, extras[i]; then `metadata`.

    `samples` is a `UniformSamples`, or per sample two pieces (``0x12 len`` and
    the value field; the timestamp field) that join to the sample records.
    """
    s = _Stream()
    out, last = s.out, s.last
    get = last.get
    uniform = samples if type(samples) is UniformSamples else None
    runs: Dict[bytes, int] = {}  # a series' timestamp varints -> where its records began
    start = sample = 0
    for index, length in enumerate(label_lengths):
        count = counts[index] if counts[index] > 0 else 0  # a negative count takes none
        end = start + length
        if uniform is not None:
            size = uniform.size
            body = uniform.records[sample * size : (sample + count) * size]
        else:
            body = b"".join(samples[2 * sample : 2 * (sample + count)])  # type: ignore[index]
        extra = extras[index] if extras is not None else b""
        if type(extra) is not bytes:
            extra = bytes(extra)
        s.literal(b"\x0a" + varint(length + len(body) + len(extra)))

        # The label fields: the hot loop, inlined (the pending state in locals).
        pos, coff, clen = s.pos, s.coff, s.clen
        p = start
        while p < end:
            size = label_text[p + 1] if p + 2 < end else 0  # 0x0a len: a field as encode_labels makes them
            q = p + 2 + size if size < 0x80 else p + 3 + (size & 0x7F | label_text[p + 2] << 7)
            if q > end:  # not one: any cut gives the same bytes
                q = end
            field = label_text[p:q]
            seen = get(field)
            last[field] = pos
            if seen is not None and (q - p >= 4 or (clen and pos - seen == coff)):
                if clen and pos - seen == coff:
                    clen += q - p
                else:
                    if clen:
                        out += copy_ops(coff, clen)
                    elif s.lit:
                        s.clen = 0
                        s.flush()
                    coff, clen = pos - seen, q - p
                pos += q - p
            else:
                s.pos, s.coff, s.clen = pos, coff, clen
                if seen is None and q - p > 3:
                    s.new_field(field)
                else:
                    s.literal(field)
                pos, coff, clen = s.pos, s.coff, s.clen
            p = q
        s.pos, s.coff, s.clen = pos, coff, clen

        if uniform is None:
            s.pieces(samples[2 * sample : 2 * (sample + count)])  # type: ignore[arg-type]
        elif count:
            _sample_run(s, uniform, runs, sample, count, body)
        sample += count
        start = end
        if extra:
            s.pieces((extra,))
    if metadata:
        s.pieces((bytes(metadata),))
    s.flush()
    if s.pos > MAX_INPUT:
        raise SnappyError(MESSAGES[-9])
    return varint(s.pos) + bytes(out)


def _sample_run(s: _Stream, uniform: UniformSamples, runs: Dict[bytes, int], first: int, count: int, body: bytes) -> None:
    """One series' records: copies of an earlier series' with the same timestamps, else pieces."""
    width = uniform.width
    key = uniform.stamps[first * width : (first + count) * width]
    seen = runs.get(key)
    runs[key] = s.pos
    size = uniform.size
    if seen is None or width < 3:
        s.pieces([piece for j in range(0, len(body), size) for piece in (body[j : j + 11], body[j + 11 : j + size])])
        return
    offset = s.pos - seen
    s.literal(body[:11])  # 0x12 len 0x09 and the first value
    if count > 1:
        ops = copy_ops(offset, width + 4)  # 0x10 <timestamp> 0x12 len 0x09
        unit = len(ops) + 9
        middle = bytearray((ops + _VALUE_TAG + bytes(8)) * (count - 1))
        values = uniform.doubles[(first + 1) * 8 : (first + count) * 8]
        for k in range(8):
            middle[len(ops) + 1 + k :: unit] = values[k::8]
        s.flush()
        s.out += middle
        s.pos += (count - 1) * size
    s.copy(offset, body[-1 - width :])  # the last timestamp field
