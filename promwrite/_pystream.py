"""Snappy for the pure-Python encoder: the block written as the request is encoded.

`_pysnappy.compress` finds repeats by probing every few bytes, which in pure
Python costs more than the encoding. The encoder knows where the repeats are,
so `compress_request` emits them directly as snappy copies:

* a label field sent before is a copy of its last occurrence; consecutive
  copies from consecutive source bytes merge into one;
* a new label field is compared with the last new one of the same name: the
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

from itertools import repeat
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ._pysamples import UniformSamples
from ._pysnappy import COPY2, MAX_INPUT, MESSAGES, copy_ops, literal_tag, varint
from .errors import SnappyError

__all__ = ["LabelText", "compress_request", "sample_pieces"]

_VALUE_TAG = literal_tag(8)


class LabelText(bytes):
    """`_pyproto.encode_labels`' joined label fields, keeping the fields (`fields`, all
    sets' one after the other; `counts` of them per set) so that `compress_request` need
    not cut the text up again (when it comes with the lengths it was made with)."""

    def __new__(cls, joined: List[bytes], fields: List[bytes], counts: List[int]) -> "LabelText":
        self = super().__new__(cls, b"".join(joined))
        self.fields = fields
        self.counts = counts
        self.lengths = list(map(len, joined))  # the label_lengths that go with it
        return self

    def __reduce__(self) -> Tuple[type, Tuple[bytes]]:
        return bytes, (bytes(self),)  # pickled and copied as the plain bytes


class _Stream:
    """A snappy block being written; at most one of a literal and a copy is pending."""

    __slots__ = ("out", "pos", "lit", "coff", "clen", "last")

    def __init__(self) -> None:
        self.out = bytearray()  # elements written
        self.pos = 0  # uncompressed bytes so far
        self.lit = bytearray()  # pending literal
        self.coff = -1  # pending copy's offset; -1, which no offset equals, when none
        self.clen = 0  # pending copy's length; 0: none
        self.last: Dict[bytes, int] = {}  # piece -> where it last began

    def flush(self) -> None:
        """Writes what is pending."""
        if self.clen:
            self.out += copy_ops(self.coff, self.clen)
            self.coff, self.clen = -1, 0
        elif self.lit:
            self.out += literal_tag(len(self.lit))
            self.out += self.lit
            self.lit.clear()

    def literal(self, data: bytes) -> None:
        if data:
            if self.clen:
                self.flush()
            self.lit += data
            self.pos += len(data)

    def copy(self, offset: int, data: bytes) -> None:
        """`data`, which is also what stands `offset` bytes back: a copy when that pays."""
        n = len(data)
        if offset == self.coff:
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

    def like(self, field: bytes, where: int, other: bytes) -> None:
        """A new label field given its name's last new one of another length, `other` at
        `where`: its length bytes, then copies of the common prefix and suffix of the rest."""
        pos = self.pos
        n, m = len(field), len(other)
        head, skip = (2 if field[1] < 0x80 else 3), (2 if other[1] < 0x80 else 3)
        a, b = field[head:], other[skip:]
        k = min(len(a), len(b))
        x = int.from_bytes(a[:k], "big") ^ int.from_bytes(b[:k], "big")
        pre = head + k - ((x.bit_length() + 7) >> 3)
        y = int.from_bytes(a[len(a) - k :], "little") ^ int.from_bytes(b[len(b) - k :], "little")
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

    `samples` is a `UniformSamples`, or per series its Sample fields.
    """
    # The label fields are the hot loop: the stream's state is in locals there
    # (CPython is fastest on those) and synced around the `_Stream` methods.
    s = _Stream()
    out, lit, last = s.out, s.lit, s.last
    get = last.get
    # label name part -> the last new field of that name, and where it began
    like_field: Dict[bytes, bytes] = {}
    like_at: Dict[bytes, int] = {}
    like_get = like_field.get
    from_bytes = int.from_bytes
    all_fields, field_counts = _label_fields(label_text, label_lengths)
    uniform = samples if type(samples) is UniformSamples else None
    runs: Dict[bytes, int] = {}  # a series' timestamp varints -> where its records began
    seen_ends: Set[bytes] = set()  # the first and last timestamp fields of each series
    width = uniform.width if uniform is not None else 0
    size = uniform.size if uniform is not None else 0
    pos, coff, clen = 0, -1, 0
    sample = 0
    headers: Dict[int, bytes] = {}  # series length -> 0x0a <length>
    first = 0  # the series' first field in all_fields
    for index, (n_fields, count, length, extra) in enumerate(zip(field_counts, counts, label_lengths, extras if extras is not None else repeat(b""))):
        fields = all_fields[first : first + n_fields]
        first += n_fields
        if count < 0:  # a negative count takes no samples
            count = 0
        if uniform is not None:
            body = uniform.records[sample * size : (sample + count) * size]
        else:
            body = b"".join(samples[index])  # type: ignore[index]
        if type(extra) is not bytes:
            extra = bytes(extra)
        length += len(body) + len(extra)
        header = headers.get(length)
        if header is None:
            header = headers[length] = b"\x0a" + varint(length)
        if clen:
            out += COPY2(clen * 4 - 2, coff) if 11 < clen < 65 and coff < 0x10000 else copy_ops(coff, clen)
            coff, clen = -1, 0
        lit += header
        pos += len(header)

        for field in fields:
            n = len(field)
            seen = get(field)
            last[field] = pos
            if seen is not None:
                if pos - seen == coff:  # right after the pending copy's source
                    clen += n
                    pos += n
                    continue
                if n > 3:
                    if clen:
                        out += COPY2(clen * 4 - 2, coff) if 11 < clen < 65 and coff < 0x10000 else copy_ops(coff, clen)
                    elif lit:
                        out += literal_tag(len(lit))
                        out += lit
                        lit.clear()
                    coff, clen = pos - seen, n
                    pos += n
                    continue
            elif n > 4:  # new: copy what it shares with its name's last new field
                head = 2 if field[1] < 0x80 else 3
                key = field[head : head + 2 + field[head + 1]]  # 0x0a len name
                other = like_get(key)
                like_field[key] = field
                if other is not None:
                    offset = pos - like_at[key]
                like_at[key] = pos
                if other is not None and len(other) == n:  # the usual case: one XOR finds both ends
                    x = from_bytes(field, "big") ^ from_bytes(other, "big")
                    pre = n - ((x.bit_length() + 7) >> 3)  # at least 2: 0x0a and the length agree
                    suf = ((x & -x).bit_length() - 1) >> 3
                    if offset == coff:
                        clen += pre
                    else:
                        if clen:
                            out += COPY2(clen * 4 - 2, coff) if 11 < clen < 65 and coff < 0x10000 else copy_ops(coff, clen)
                        elif lit:
                            out += literal_tag(len(lit))
                            out += lit
                            lit.clear()
                        coff, clen = offset, pre
                    if clen > 3:
                        out += COPY2(clen * 4 - 2, coff) if 11 < clen < 65 and coff < 0x10000 else copy_ops(coff, clen)
                    else:  # too short for a copy
                        lit += field[:pre]
                    lit += field[pre : n - suf]
                    if suf > 3:
                        out += literal_tag(len(lit))
                        out += lit
                        lit.clear()
                        coff, clen = offset, suf
                    else:
                        if suf:
                            lit += field[n - suf :]
                        coff, clen = -1, 0
                    pos += n
                    continue
                if other is not None:
                    s.pos, s.coff, s.clen = pos, coff, clen
                    s.like(field, pos - offset, other)
                    pos, coff, clen = s.pos, s.coff, s.clen
                    continue
            if clen:
                out += copy_ops(coff, clen)
                coff, clen = -1, 0
            lit += field
            pos += n

        if count and width > 2:  # the records: as an earlier series' with the same timestamps?
            key = uniform.stamps[sample * width : (sample + count) * width]  # type: ignore[union-attr]
            seen = runs.get(key)
            runs[key] = pos
            if seen is not None and (count < 4 or uniform.doubles[sample * 8 : (sample + count) * 8 : 8].count(0) * 4 <= count):  # type: ignore[union-attr]
                offset = pos - seen
                if clen:
                    out += COPY2(clen * 4 - 2, coff) if 11 < clen < 65 and coff < 0x10000 else copy_ops(coff, clen)
                lit += body[:11]  # 0x12 len 0x09 and the first value
                out += literal_tag(len(lit))
                out += lit
                lit.clear()
                if count > 1:
                    out += _run_middle(offset, uniform, sample, count)  # type: ignore[arg-type]
                coff, clen = offset, width + 1  # the last timestamp field
                pos += count * size
                body = b""
        if body:
            s.pos, s.coff, s.clen = pos, coff, clen
            if uniform is not None:
                series = [body[j : j + size] for j in range(0, len(body), size)]
            else:
                series = samples[index]  # type: ignore[index]
            ends = _stamp_field(series[0]) + _stamp_field(series[-1])
            s.pieces(sample_pieces(body, series, ends in seen_ends))
            seen_ends.add(ends)
            pos, coff, clen = s.pos, s.coff, s.clen
        sample += count
        if extra:
            s.pos, s.coff, s.clen = pos, coff, clen
            s.pieces((extra,))
            pos, coff, clen = s.pos, s.coff, s.clen
    s.pos, s.coff, s.clen = pos, coff, clen
    if metadata:
        s.pieces((bytes(metadata),))
    s.flush()
    if s.pos > MAX_INPUT:
        raise SnappyError(MESSAGES[-9])
    return varint(s.pos) + bytes(out)


def _label_fields(label_text: bytes, label_lengths: Sequence[int]) -> Tuple[List[bytes], List[int]]:
    """All series' label fields, one after the other, and how many each series has:
    `LabelText`'s, or label_text cut at each ``0x0a len`` (where it is not a field as
    encode_labels writes them, any cut gives the same bytes)."""
    if getattr(label_text, "lengths", None) == list(label_lengths):
        return label_text.fields, label_text.counts  # type: ignore[attr-defined]
    fields = []
    counts = []
    start = 0
    for length in label_lengths:
        end = start + length
        before = len(fields)
        p = start
        while p < end:
            if p + 2 < end and label_text[p + 1] < 0x80:
                q = min(p + 2 + label_text[p + 1], end)
            elif p + 3 < end:
                q = min(p + 3 + (label_text[p + 1] & 0x7F | label_text[p + 2] << 7), end)
            else:
                q = end
            fields.append(label_text[p:q])
            p = q
        counts.append(len(fields) - before)
        start = end
    return fields, counts


def _stamp_field(field: bytes) -> bytes:
    """The timestamp field of a Sample field (empty for timestamp 0)."""
    return field[11:] if field[2:3] == b"\x09" else field[2:]


def sample_pieces(body: bytes, fields: Sequence[bytes], shared: bool) -> List[bytes]:
    """A series' Sample `fields` (joined: `body`) cut where repeats begin and end:
    around each value's bytes past its low zero bytes (the tag, length and zero bytes
    recur with the timestamp field before them; a value of 3 such bytes or fewer, a
    small number, stays with them) and, unless the timestamps are
    `shared` (an earlier series began and ended at the same times, so whole
    timestamp fields recur), before each timestamp's top 3 bytes (which recur
    from sample to sample)."""
    pieces = []
    start = p = 0
    for field in fields:
        if field[2:3] == b"\x09":  # a value: cut after its low zero bytes (unless few are left) and after it
            low = int.from_bytes(field[3:11], "little")
            cut = p + 3 + (((low & -low).bit_length() - 1) >> 3 if low else 8)
            if cut < p + 8:
                pieces.append(body[start:cut])
                start = cut
            pieces.append(body[start : p + 11])
            start = p + 11
        p += len(field)
        if not shared and p - start > 4:
            pieces.append(body[start : p - 3])
            start = p - 3
    pieces.append(body[start:])
    return pieces


def _run_middle(offset: int, uniform: UniformSamples, first: int, count: int) -> bytearray:
    """Samples 2.. of a series whose timestamps stand `offset` back: per sample a copy of
    ``0x10 <timestamp> 0x12 len 0x09`` and the value as an 8-byte literal, built column by column."""
    ops = copy_ops(offset, uniform.width + 4)
    unit = len(ops) + 9
    middle = bytearray((ops + _VALUE_TAG + bytes(8)) * (count - 1))
    values = uniform.doubles[(first + 1) * 8 : (first + count) * 8]
    for k in range(8):
        middle[len(ops) + 1 + k :: unit] = values[k::8]
    return middle
