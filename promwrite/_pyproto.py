"""The pure-Python backend: protobuf primitives and the encoding kernels.

Field order and zero-skipping follow what the official protobuf library emits
for proto3 (fields in number order; a scalar equal to zero, by bits for
doubles, is left out; repeated numbers packed), so the bytes are identical.
The native backend (`_native`) must match these functions byte for byte, and
words its errors by calling `encode_labels` here.
"""

from __future__ import annotations

import struct
from array import array
from itertools import chain
from operator import itemgetter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import _pydecode, _pysnappy, _pystream, names as _names
from ._pysamples import UniformSamples, sample_fields, uniform_samples
from ._pystream import LabelText
from ._pysnappy import SMALL_VARINTS as _SMALL, varint
from .errors import SeriesError

_DOUBLE = struct.Struct("<d")
_ZERO8 = bytes(8)
_FIELD_HEADS = [b"\x0a" + bytes([i]) for i in range(128)]  # 0x0a len, for the lengths under 128
_UNSEEN = b""  # a name not yet in `heads` (no head is empty)

_LABEL_NAME = _names.LEGACY_LABEL_NAME.fullmatch
_METRIC_NAME = _names.LEGACY_METRIC_NAME.fullmatch
_UTF8_HINT = "; promwrite.set_name_validation('utf-8') allows any UTF-8 name"


def zigzag(value: int) -> int:
    """Zigzag encoding of a signed integer (for sint32/sint64 fields)."""
    return (value << 1) ^ (value >> 63)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def field_bytes(field: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or message), always emitted."""
    return tag(field, 2) + varint(len(data)) + data


def field_string(field: int, text: str) -> bytes:
    """A proto3 string field: left out when empty."""
    return field_bytes(field, text.encode("utf-8")) if text else b""


def field_double(field: int, value: float) -> bytes:
    """A proto3 double field: left out when its bits are all zero (so -0.0 is kept)."""
    packed = _DOUBLE.pack(value)
    return tag(field, 1) + packed if packed != _ZERO8 else b""


def field_varint(field: int, value: int) -> bytes:
    """A proto3 int/uint/enum field: left out when zero."""
    return tag(field, 0) + varint(value) if value else b""


def field_packed_doubles(field: int, values: Sequence[float]) -> bytes:
    if not values:
        return b""
    return field_bytes(field, struct.pack(f"<{len(values)}d", *values))


def field_packed_varints(field: int, values: Sequence[int]) -> bytes:
    if not values:
        return b""
    return field_bytes(field, b"".join(varint(v) for v in values))


def _label_set_problem(pairs: List[tuple], legacy: bool) -> str:
    """What is wrong with one label set, or "" when it is valid (pairs sorted by name; `legacy` names)."""
    has_name = False
    prev = None
    for name, value in pairs:
        if name == prev:
            return f"duplicate label name {name!r}"
        prev = name
        if not name:
            return "a label has an empty name"
        if legacy and not _LABEL_NAME(name):
            return f"label name {name!r} is invalid (names match {_names.LABEL_NAME_RULE}{_UTF8_HINT})"
        if not value:
            return f"label {name!r} has an empty value (Prometheus reads that as no label: leave it out)"
        if name == "__name__":
            has_name = True
            if legacy and not _METRIC_NAME(value):
                return f"metric name {value!r} is invalid (names match {_names.METRIC_NAME_RULE}{_UTF8_HINT})"
    if not has_name:
        return "no __name__ label (the metric name)"
    return ""


def encode_labels(names: Sequence[str], values: Sequence[str], counts: Sequence[int]) -> Tuple[bytes, "array[int]"]:
    """Encoded, sorted, validated label fields per set (see `_backend.Kernels`).

    Each distinct (name, value) is checked and encoded once per call, and each
    distinct sequence of names sorted once; a set that is not plainly valid goes
    through `_encode_label_set`, which words the error.
    """
    legacy = _names.name_validation() == _names.LEGACY
    if len(names) != len(values) or sum(counts) != len(names):
        raise ValueError(f"{len(names)} names, {len(values)} values, counts adding up to {sum(counts)}")
    keys = names  # what each set's sorting is looked up by
    try:
        fields: Dict[Tuple[str, str], Optional[bytes]] = dict.fromkeys(zip(names, values))
    except TypeError:  # an unhashable name or value: each set checked in full, the first bad one raising
        fields, keys = {}, [None] * len(names)
    heads: Dict[str, Optional[bytes]] = {}  # each name's encoded start (0x0a len name 0x12), None if invalid
    for pair in fields:  # each label's field, None if it is invalid on its own
        name, value = pair
        head = heads.get(name, _UNSEEN) if type(name) is str else None
        if head is _UNSEEN:
            head = heads[name] = _label_head(name, legacy)
        if head is None or type(value) is not str or not value or (legacy and name == "__name__" and not _METRIC_NAME(value)):
            continue
        try:
            text = value.encode("utf-8")
        except UnicodeEncodeError:
            continue
        size = len(text)
        body = head + (_SMALL[size] if size < 0x80 else varint(size)) + text
        size = len(body)
        fields[pair] = (_FIELD_HEADS[size] if size < 0x80 else b"\x0a" + varint(size)) + body
    flat = list(map(fields.__getitem__, zip(names, values))) if fields else [None] * len(names)
    orders: Dict[tuple, Optional[Callable[[List[Optional[bytes]]], Sequence[bytes]]]] = {}
    joined: List[bytes] = []  # each set's fields, joined
    flat_sorted: List[bytes] = []  # each set's fields in name order, one set after the other
    n_fields: List[int] = []
    pos = 0
    for index, count in enumerate(counts):
        end = pos + count
        key = tuple(keys[pos:end])
        order = orders.get(key, _UNSEEN)
        if order is _UNSEEN:
            order = orders[key] = _sorter(key)
        encoded = flat[pos:end]
        if order is None or None in encoded:
            ordered: Sequence[bytes] = (_encode_label_set(index, list(zip(names[pos:end], values[pos:end])), legacy),)
        else:
            ordered = order(encoded)  # type: ignore[arg-type]
        joined.append(b"".join(ordered))
        flat_sorted += ordered
        n_fields.append(len(ordered))
        pos = end
    text = LabelText(joined, flat_sorted, n_fields)
    return text, array("q", text.lengths)


def _sorter(names: tuple) -> Optional[Callable[[List[Optional[bytes]]], Sequence[bytes]]]:
    """What puts a set's fields in name order, for sets with these names; None if the
    names cannot make a valid set (a duplicate, no __name__, not all str)."""
    if "__name__" not in names or len(set(names)) != len(names) or not all(type(n) is str for n in names):
        return None
    if len(names) == 1:
        return tuple
    return itemgetter(*sorted(range(len(names)), key=names.__getitem__))


def _label_head(name: str, legacy: bool) -> Optional[bytes]:
    """``0x0a len name 0x12``: a Label field's name and the value's tag; None for an invalid name."""
    if not name or (legacy and not _LABEL_NAME(name)):
        return None
    try:
        return field_bytes(1, name.encode("utf-8")) + b"\x12"
    except UnicodeEncodeError:
        return None


def _encode_label_set(index: int, pairs: List[Tuple[str, str]], legacy: bool) -> bytes:
    """One label set checked in full: its fields, or SeriesError saying what is wrong."""
    for text in chain([name for name, _ in pairs], [value for _, value in pairs]):  # names first
        if not isinstance(text, str):
            raise SeriesError(index, f"label names and values must be str, not {type(text).__name__}")
    pairs = sorted(pairs)
    problem = _label_set_problem(pairs, legacy)
    if problem:
        raise SeriesError(index, problem)
    parts = []
    for name, value in pairs:
        try:
            body = field_bytes(1, name.encode("utf-8")) + field_bytes(2, value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise SeriesError(index, f"label {name!r}: value is not valid Unicode text ({exc.reason})") from None
        parts.append(b"\x0a" + varint(len(body)) + body)
    return b"".join(parts)


def encode_request(
    label_text: bytes,
    label_lengths: Sequence[int],
    counts: Sequence[int],
    values: Sequence[float],
    timestamps: Sequence[int],
    extras: Optional[Sequence[bytes]],
    metadata: bytes,
    compress: bool,
) -> bytes:
    """A serialized prometheus.WriteRequest from flat parts (see `_backend.Kernels`).

    Compressed by `_pystream`, which knows the parts: the bytes differ from
    `_pysnappy.compress`'s and decompress to the same request.
    """
    if sum(label_lengths) != len(label_text) or len(counts) != len(label_lengths):
        raise ValueError("label_lengths must cover label_text, one length per series")
    if sum(counts) > min(len(values), len(timestamps)):
        raise ValueError("the sample counts add up to more values or timestamps than given")
    if extras is not None and len(extras) != len(label_lengths):
        raise ValueError("extras need one entry per series")
    if not isinstance(label_text, bytes):  # (a LabelText is one)
        label_text = bytes(label_text)
    samples = uniform_samples(counts, values, timestamps)
    if samples is None:
        samples = sample_fields(counts, values, timestamps)  # type: ignore[assignment]
    if compress:
        return _pystream.compress_request(label_text, label_lengths, counts, samples, extras, metadata)  # type: ignore[arg-type]
    parts = []
    start = sample = 0
    for index, length in enumerate(label_lengths):
        if type(samples) is UniformSamples:
            count = counts[index] if counts[index] > 0 else 0
            body = samples.records[sample * samples.size : (sample + count) * samples.size]
            sample += count
        else:
            body = b"".join(samples[index])  # type: ignore[index]
        extra = extras[index] if extras is not None else b""
        parts += (b"\x0a" + varint(length + len(body) + len(extra)), label_text[start : start + length], body, extra)
        start += length
    parts.append(metadata)
    return b"".join(parts)


# --- remote write 2.0 (io.prometheus.write.v2.Request) ----------------------
# Twins of csrc/pbenc2.c. A Request is `repeated string symbols = 4` (every
# string once, "" first) then `repeated TimeSeries timeseries = 5`, whose
# labels are `repeated uint32 labels_refs = 1` (packed indices into symbols).


def _label_strings(label_text: bytes, start: int, end: int) -> List[bytes]:
    """name, value, name, value, ... of the Label fields in label_text[start:end],
    which must be exactly as encode_labels writes them; else ValueError."""
    out = []
    pos = start
    text = label_text
    try:
        while pos < end:
            if text[pos] != 0x0A:
                raise IndexError
            size, pos = _uvarint(text, pos + 1)
            stop = pos + size
            if stop > end or text[pos] != 0x0A:
                raise IndexError
            size, pos = _uvarint(text, pos + 1)
            out.append(text[pos : pos + size])
            pos += size
            if pos >= stop or text[pos] != 0x12:
                raise IndexError
            size, pos = _uvarint(text, pos + 1)
            out.append(text[pos : pos + size])
            pos += size
            if pos != stop:
                raise IndexError
    except IndexError:
        raise ValueError("label_text is not a sequence of Label fields as encode_labels writes them") from None
    return out


def _uvarint(text: bytes, pos: int) -> Tuple[int, int]:
    """A varint at text[pos] (at most 10 bytes) and the position after it; IndexError if malformed."""
    byte = text[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    while True:
        pos += 1
        byte = text[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift == 63 and byte > 1:
                raise IndexError
            return value, pos + 1
        shift += 7
        if shift > 63:
            raise IndexError


def _packed_refs(refs: List[int]) -> bytes:
    """Field 1 (labels_refs) of a v2 TimeSeries or Exemplar: packed varints; b"" when empty."""
    if not refs:
        return b""
    body = bytes(refs) if max(refs) < 0x80 else b"".join(map(varint, refs))
    return b"\x0a" + varint(len(body)) + body


def encode_symbols_v2(
    label_text: bytes, label_lengths: Sequence[int], strings: Sequence[bytes]
) -> Tuple[bytes, bytes, "array[int]", "array[int]"]:
    """The symbols table and label references of a v2 Request (see `_backend.Kernels`)."""
    if sum(label_lengths) != len(label_text) or any(n < 0 for n in label_lengths):
        raise ValueError("label_lengths must cover label_text")
    if type(label_text) is not bytes:
        label_text = bytes(label_text)
    table = {b"": 0}
    intern = table.setdefault
    parts = []
    start = 0
    for length in label_lengths:
        end = start + length
        parts.append(_packed_refs([intern(s, len(table)) for s in _label_strings(label_text, start, end)]))
        start = end
    string_refs = array("q", [intern(bytes(s), len(table)) for s in strings])
    symbols = b"".join([b"\x22" + varint(len(s)) + s for s in table])
    return symbols, b"".join(parts), array("q", map(len, parts)), string_refs


def encode_request_v2(
    symbols: bytes,
    refs_text: bytes,
    refs_lengths: Sequence[int],
    counts: Sequence[int],
    values: Sequence[float],
    timestamps: Sequence[int],
    starts: Optional[Sequence[int]],
    extras: Optional[Sequence[bytes]],
    compress: bool,
) -> bytes:
    """A serialized io.prometheus.write.v2.Request from flat parts (see `_backend.Kernels`)."""
    n = len(refs_lengths)
    if sum(refs_lengths) != len(refs_text) or len(counts) != n or any(x < 0 for x in refs_lengths):
        raise ValueError("refs_lengths must cover refs_text, one length per series")
    if (starts is not None and len(starts) != n) or (extras is not None and len(extras) != n):
        raise ValueError("starts and extras need one entry per series")
    if any(c < 0 for c in counts) or sum(counts) > min(len(values), len(timestamps)):
        raise ValueError("the sample counts add up to more values or timestamps than given")
    pack = _DOUBLE.pack
    parts = [symbols]
    pos = 0
    start = 0
    for index, length in enumerate(refs_lengths):
        body = [refs_text[start : start + length]]
        start += length
        begun = starts[index] if starts is not None else 0
        tail = b"\x18" + varint(begun) if begun else b""
        prev = None
        for j in range(pos, pos + counts[index]):
            ts = timestamps[j]
            if prev is not None and ts <= prev:
                raise SeriesError(index, f"sample timestamps must increase: {ts} comes after {prev}")
            prev = ts
            packed = pack(values[j])
            sample = (b"\x09" + packed if packed != _ZERO8 else b"") + (b"\x10" + varint(ts) if ts else b"") + tail
            body.append(b"\x12" + _SMALL[len(sample)] + sample)
        pos += counts[index]
        if extras is not None:
            body.append(extras[index])
        series = b"".join(body)
        parts.append(b"\x2a" + varint(len(series)) + series)
    out = b"".join(parts)
    return _pysnappy.compress(out) if compress else out


class _PythonKernels:
    """The pure-Python backend's kernels (see `_backend.Kernels`)."""

    name = "python"
    encode_labels = staticmethod(encode_labels)
    encode_request = staticmethod(encode_request)
    encode_symbols_v2 = staticmethod(encode_symbols_v2)
    encode_request_v2 = staticmethod(encode_request_v2)
    compress = staticmethod(_pysnappy.compress)
    decompress = staticmethod(_pysnappy.decompress)
    decode_v1 = staticmethod(_pydecode.decode_v1)
    decode_v2 = staticmethod(_pydecode.decode_v2)

    def __repr__(self) -> str:
        return "<promwrite backend 'python'>"


KERNELS = _PythonKernels()
