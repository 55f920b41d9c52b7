"""Decoding of remote-write requests (1.0 and 2.0) into the model, within limits.

A backend's decode kernel (C, or its Python twin in `_pydecode`) checks the
wire bytes and returns flat columns: each distinct string and label pair once,
samples as arrays, the rare parts as rows. This module builds the model
objects from them in bulk (the series in C, csrc/cpython/cbuild.c, where
promwrite._cmodel is built), and decodes native histograms (checked by the
kernel) itself. `DecodeLimits` bound what one request may hold, so that a
small hostile body cannot take unbounded time or memory.

Reached through `promwrite.codec.decode` / `decode_payload`.
"""

from __future__ import annotations

import gc
import os
import struct
from array import array
from itertools import accumulate, repeat
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import _pysnappy
from ._backend import Kernels
from ._pydecode import Decoded, field_at, fields
from .errors import DecodeLimitError
from .model import (
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    LabelSet,
    MetricMetadata,
    MetricType,
    ResetHint,
    Sample,
    TimeSeries,
    WriteRequest,
    cmodel,
)

__all__ = ["DEFAULT_LIMITS", "DecodeLimits", "decode_histogram", "decode_payload_with", "decode_with"]

_EXPANSION_FLOOR = 64 << 10  # bytes any request may take decoded, however small


class DecodeLimits(NamedTuple):
    """What one request may hold; beyond any of these, decoding raises DecodeLimitError.

    The defaults are far above what real senders send (Prometheus: at most
    2,000 samples a request; vmagent: 10,000), and bound the worst accepted
    body: `max_expansion` caps the memory of the decoded objects at that many
    bytes per byte of serialized request (plus 64 KiB), estimated as it is read,
    with the elements slow to decode for their size (spans, exemplars,
    metadata) counted dearer, so that it bounds decode time too. (A minimal
    series, one short label and one sample in 30 bytes, takes about 770 bytes
    as Python objects: 32 leaves room for those, not for bombs of empty
    elements at 64 or more.)
    """

    max_bytes: int = 64 << 20  # serialized (decompressed) size
    max_series: int = 1_000_000
    max_labels: int = 20_000_000  # label references, of series and exemplars
    max_samples: int = 10_000_000
    max_exemplars: int = 1_000_000
    max_histograms: int = 1_000_000
    max_buckets: int = 20_000_000  # histogram spans, deltas, counts and custom values
    max_metadata: int = 1_000_000
    max_expansion: int = 32

    def kernel_limits(self, size: int) -> "array[int]":
        """The limits as a decode kernel takes them, for a request of `size` bytes."""
        for name, value in zip(self._fields, self):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 40:
                raise ValueError(f"DecodeLimits.{name} must be an int in [0, 2**40], not {value!r}")
        return array("q", [*self[1:8], self.max_expansion * size + _EXPANSION_FLOOR])


DEFAULT_LIMITS = DecodeLimits()
_SEED = int.from_bytes(os.urandom(8), "little")  # keys the C decoder's hash tables


def decode_with(
    kernels: Kernels, data: bytes, protocol: str = "1.0", limits: Optional[DecodeLimits] = None
) -> WriteRequest:
    """`codec.decode` with the given backend (the protocol already checked)."""
    limits = _limits(limits)
    size = memoryview(data).nbytes
    if size > limits.max_bytes:
        raise DecodeLimitError(f"the request is {size:,} bytes, over DecodeLimits.max_bytes = {limits.max_bytes:,}")
    if protocol == "1.0":
        cols = kernels.decode_v1(data, limits.kernel_limits(size), _SEED)
    else:
        cols = kernels.decode_v2(data, limits.kernel_limits(size), _SEED)
    collecting = gc.isenabled()
    gc.disable()  # the objects built hold no cycles; collections while building them are pure cost
    try:
        return _build_v1(data, cols) if protocol == "1.0" else _build_v2(data, cols)
    finally:
        if collecting:
            gc.enable()


def decode_payload_with(
    kernels: Kernels, data: bytes, max_length: Optional[int], protocol: str, limits: Optional[DecodeLimits] = None
) -> WriteRequest:
    """`codec.decode_payload` with the given backend: over `max_length` is a
    SnappyError, over the limits' max_bytes a DecodeLimitError (both before allocating)."""
    limits = _limits(limits)
    declared = _pysnappy.uncompressed_length(data)
    if declared > limits.max_bytes:
        raise DecodeLimitError(
            f"the request is {declared:,} bytes decompressed, over DecodeLimits.max_bytes = {limits.max_bytes:,}"
        )
    raw = kernels.decompress(data, limits.max_bytes if max_length is None else max_length)
    return decode_with(kernels, raw, protocol, limits)


def _limits(limits: Optional[DecodeLimits]) -> DecodeLimits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, DecodeLimits):
        raise TypeError(f"limits must be a DecodeLimits, not {type(limits).__name__}")
    return limits


# --- building the model ------------------------------------------------------

_new_label = tuple.__new__


def _made_labels(names: Iterable[str], values: Iterable[str]) -> List[Label]:
    """Label objects; from C (untracked by the GC: two str make no cycle) where model.cmodel serves them."""
    if cmodel is not None:
        return list(map(Label, names, values))
    return list(map(_new_label, repeat(Label), zip(names, values)))


_new_object = object.__new__
if cmodel is not None:
    cmodel.register_label_set(LabelSet)  # the LabelSets cmodel's builders make


def _bounds(counts: "array[int]") -> Tuple[List[int], List[int]]:
    ends = list(accumulate(counts))
    return [0, *ends[:-1]], ends


def _split(items: Sequence[Any], counts: "array[int]") -> List[Any]:
    """items cut into consecutive lists of counts[i] items."""
    return list(map(items.__getitem__, map(slice, *_bounds(counts))))


def _labels(cols: Decoded, refs: "array[int]", counts: "array[int]") -> List[Tuple[Label, ...]]:
    """Per entry, its labels as a tuple of (shared) Label objects."""
    strings, pairs = cols.strings, cols.pairs
    text = strings.__getitem__
    labels = _made_labels(map(text, pairs[0::2]), map(text, pairs[1::2]))
    flat = tuple(map(labels.__getitem__, refs))
    return list(map(flat.__getitem__, map(slice, *_bounds(counts))))  # a tuple's slices are tuples


def _label_sets(cols: Decoded) -> List[Any]:
    """Each series' labels: a LabelSet when sorted by name (as `TimeSeries.labels` gives
    them, without sorting again), else the tuple as it came. In C where model.cmodel is built."""
    if cmodel is not None:
        return cmodel.build_label_sets(cols.strings, cols.pairs, cols.label_refs, cols.series_labels, cols.unsorted)
    tuples: List[Any] = _labels(cols, cols.label_refs, cols.series_labels)
    sets: List[Any] = []
    append = sets.append
    for labels in tuples:  # a plain loop: slot stores are faster here than map() over descriptors
        label_set = _new_object(LabelSet)
        label_set.labels = labels
        label_set._pb = label_set._hash = None
        append(label_set)
    for i in set(cols.unsorted):
        sets[i] = tuples[i]
    return sets


def _samples(cols: Decoded) -> List[List[Sample]]:
    """Each series' samples, as a list of Sample objects (from C, untracked by the GC, where model.cmodel is built)."""
    if cmodel is not None:
        return cmodel.build_sample_lists(cols.values, cols.stamps, cols.series_samples)
    return _split(list(map(_new_label, repeat(Sample), zip(cols.values, cols.stamps))), cols.series_samples)


def _series(labels: Sequence[Any], samples: Sequence[List[Sample]], metadata: Optional[Sequence[Any]] = None,
            starts: Optional[Sequence[Any]] = None) -> List[TimeSeries]:
    """TimeSeries objects, filled from the wire as they are (no constructor checks); in C where model.cmodel is built."""
    if cmodel is not None:
        return cmodel.build_series(labels, samples, metadata, starts)
    out: List[TimeSeries] = []
    append = out.append
    for labels_of, samples_of, metadata_of, start in zip(
        labels, samples, repeat(None) if metadata is None else metadata, repeat(None) if starts is None else starts
    ):
        series = _new_object(TimeSeries)
        series._labels = labels_of
        series.samples = samples_of
        series.exemplars = []
        series.histograms = []
        series.metadata = metadata_of
        series.start_timestamp_ms = start
        append(series)
    return out


def _series_of(cols: Decoded, metadata: Optional[List[Any]] = None) -> List[TimeSeries]:
    """A TimeSeries of each series' labels and samples (and metadata); in one C call, each series'
    objects made together, where model.cmodel is built."""
    if cmodel is not None:
        return cmodel.build_request_series(cols.strings, cols.pairs, cols.label_refs, cols.series_labels,
                                           cols.unsorted, cols.values, cols.stamps, cols.series_samples, metadata)
    return _series(_label_sets(cols), _samples(cols), metadata)


def _doubles(bits: Sequence[int]) -> "array[float]":
    out = array("d")
    out.frombytes(array("q", bits).tobytes())
    return out


def _exemplars(cols: Decoded) -> List[Tuple[int, Exemplar]]:
    """(series, Exemplar) of each exemplar row."""
    rows = cols.exemplars
    out: List[Tuple[int, Exemplar]] = []
    if not rows:
        return out  # the usual: and _labels would build every Label again
    append = out.append
    labels = _labels(cols, cols.exemplar_refs, rows[1::4])
    for s, labels_of, value, stamp in zip(rows[0::4], labels, _doubles(rows[2::4]), rows[3::4]):
        exemplar = _new_object(Exemplar)  # slot stores: as in _label_sets
        exemplar.labels = labels_of
        exemplar.value = value
        exemplar.timestamp_ms = stamp
        append((s, exemplar))
    return out


_KINDS = {int(kind): kind for kind in MetricType}


def _metadata(text: List[str], kinds: Sequence[int], names: Iterable[str], helps: Sequence[int],
              units: Sequence[int]) -> List[MetricMetadata]:
    """A MetricMetadata per row; equal rows share one (the tuples are immutable; hostile bodies repeat them)."""
    made: Dict[Tuple[int, str, int, int], MetricMetadata] = {}
    out: List[MetricMetadata] = []
    append = out.append
    for row in zip(kinds, names, helps, units):
        found = made.get(row)
        if found is None:
            kind, name, help_id, unit_id = row
            found = made[row] = _new_label(MetricMetadata, (_kind(kind), name, text[help_id], text[unit_id]))
        append(found)
    return out


def _kind(value: int) -> Any:
    value &= (1 << 64) - 1
    return _KINDS.get(value, value)


def _build_v1(data: bytes, cols: Decoded) -> WriteRequest:
    series = _series_of(cols)
    for s, exemplar in _exemplars(cols):
        series[s].exemplars.append(exemplar)
    rows = cols.histograms
    for s, start, end in zip(rows[0::3], rows[1::3], rows[2::3]):
        series[s].histograms.append(decode_histogram(data, start, end)[0])
    text, rows = cols.strings, cols.metadata
    return WriteRequest(series, _metadata(text, rows[0::4], map(text.__getitem__, rows[1::4]), rows[2::4], rows[3::4]))


def _build_v2(data: bytes, cols: Decoded) -> WriteRequest:
    """One TimeSeries per run of samples (then histograms) of equal start timestamp (see `_codec2`)."""
    n = len(cols.series_labels)
    metadata: List[Optional[MetricMetadata]] = [None] * n
    rows = cols.metadata
    for s, found in zip(rows[0::4], _metadata(cols.strings, rows[1::4], repeat(""), rows[2::4], rows[3::4])):
        metadata[s] = found
    exemplars = _exemplars(cols)
    rows = cols.histograms
    if not rows and not any(cols.starts):
        series = _series_of(cols, metadata)
        for s, exemplar in exemplars:
            series[s].exemplars.append(exemplar)
        return WriteRequest(series)
    labels = _label_sets(cols)
    histograms: Dict[int, List[Tuple[Histogram, int]]] = {}
    for s, start, end in zip(rows[0::3], rows[1::3], rows[2::3]):
        histograms.setdefault(s, []).append(decode_histogram(data, start, end))
    own_exemplars: Dict[int, List[Exemplar]] = {}
    for s, exemplar in exemplars:
        own_exemplars.setdefault(s, []).append(exemplar)
    samples, starts = _samples(cols), _split(cols.starts, cols.series_samples)
    out: List[TimeSeries] = []
    for s in range(n):
        runs = [("samples", items, begun) for items, begun in _sample_runs(samples[s], starts[s])]
        runs += [("histograms", items, begun) for items, begun in _runs(histograms.get(s, []))]
        for k, (what, items, begun) in enumerate(runs or [("samples", [], 0)]):
            parts: Dict[str, List[Any]] = {"samples": [], "histograms": []}
            parts[what] = items
            out += _series([labels[s]], [parts["samples"]], [metadata[s]], [begun or None])
            out[-1].histograms = parts["histograms"]
            if k == 0:
                out[-1].exemplars = own_exemplars.get(s, [])
    return WriteRequest(out)


def _sample_runs(samples: List[Sample], starts: "array[int]") -> List[Tuple[List[Sample], int]]:
    """A series' samples grouped by equal start timestamp; the list itself when all share one (the usual)."""
    if starts and starts.count(starts[0]) == len(starts):
        return [(samples, starts[0])]
    return _runs(list(zip(samples, starts)))


def _runs(items: List[Tuple[Any, int]]) -> List[Tuple[List[Any], int]]:
    """Consecutive items grouped by equal start timestamp."""
    out: List[Tuple[List[Any], int]] = []
    for item, begun in items:
        if out and out[-1][1] == begun:
            out[-1][0].append(item)
        else:
            out.append(([item], begun))
    return out


# --- native histograms (checked by the kernel) ---------------------------------

_F64 = struct.Struct("<d")


def _new(cls: type, **attrs: object) -> Any:
    """An instance filled from the wire as it is, skipping constructor checks."""
    obj = object.__new__(cls)
    for name, value in attrs.items():
        object.__setattr__(obj, name, value)
    return obj


def _double(bits: int) -> float:
    return _F64.unpack(bits.to_bytes(8, "little"))[0]


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


_UNZIGZAG_BYTE = [_unzigzag(b) for b in range(0x80)]


def _repeated(buf: bytes, wt: int, val: int, stop: int, scalar_wt: int) -> List[Any]:
    """Items of a repeated scalar field, packed (wire type 2) or one at a time."""
    if wt == scalar_wt:
        return [_double(val) if scalar_wt == 1 else _unzigzag(val)]
    if wt != 2:
        return []
    if scalar_wt == 1:
        return list(struct.unpack(f"<{(stop - val) // 8}d", buf[val:stop]))
    packed = buf[val:stop]
    if packed.isascii():  # every varint one byte (small deltas: the usual)
        return list(map(_UNZIGZAG_BYTE.__getitem__, packed))
    out = []
    append = out.append
    item = shift = 0
    for byte in packed:  # checked by the kernel: whole varints of at most 64 bits
        if byte < 0x80:
            item |= byte << shift
            append((item >> 1) ^ -(item & 1))
            item = shift = 0
        else:
            item |= (byte & 0x7F) << shift
            shift += 7
    return out


_NO_SPAN = BucketSpan(0, 0)


def _span(buf: bytes, start: int, end: int) -> BucketSpan:
    if start == end:
        return _NO_SPAN  # shared: an immutable tuple
    offset = length = 0
    for field, wt, val, _ in fields(buf, start, end):
        if field == 1 and wt == 0:
            offset = _unzigzag(val & 0xFFFFFFFF)
        elif field == 2 and wt == 0:
            length = val & 0xFFFFFFFF
    return BucketSpan(offset, length)


_SIDES = {8: "negative_spans", 11: "positive_spans", 9: "negative_deltas", 12: "positive_deltas",
          10: "negative_counts", 13: "positive_counts", 16: "custom_values"}  # fmt: skip


def decode_histogram(buf: bytes, start: int, end: int) -> Tuple[Histogram, int]:
    """A Histogram from buf[start:end] (checked by the kernel) and its 2.0 start timestamp (field 17)."""
    h: Dict[str, Any] = {
        "count": 0, "sum": 0.0, "schema": 0, "zero_threshold": 0.0, "zero_count": 0,
        "negative_spans": [], "negative_deltas": [], "negative_counts": [],
        "positive_spans": [], "positive_deltas": [], "positive_counts": [],
        "reset_hint": ResetHint.UNKNOWN, "timestamp_ms": 0, "custom_values": [],
    }  # fmt: skip
    begun = 0
    while start < end:
        field, wt, val, stop, start = field_at(buf, start, end)
        if (field == 11 or field == 8) and wt == 2:  # spans first: a histogram may hold many
            h[_SIDES[field]].append(_span(buf, val, stop))
        elif field in (1, 6) and wt == 0:
            h["count" if field == 1 else "zero_count"] = val
        elif field in (2, 3, 5, 7) and wt == 1:
            h[{2: "count", 3: "sum", 5: "zero_threshold", 7: "zero_count"}[field]] = _double(val)
        elif field == 4 and wt == 0:
            h["schema"] = _unzigzag(val & 0xFFFFFFFF)
        elif field in (9, 12):
            h[_SIDES[field]] += _repeated(buf, wt, val, stop, 0)
        elif field in (10, 13, 16):
            h[_SIDES[field]] += _repeated(buf, wt, val, stop, 1)
        elif field == 14 and wt == 0:
            try:
                h["reset_hint"] = ResetHint(val)
            except ValueError:
                h["reset_hint"] = val
        elif field == 15 and wt == 0:
            h["timestamp_ms"] = _int64(val)
        elif field == 17 and wt == 0:
            begun = _int64(val)
    for key, value in h.items():
        if isinstance(value, list):
            h[key] = tuple(value)
    return _new(Histogram, **h), begun

