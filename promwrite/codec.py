"""Encoding and decoding of ``prometheus.WriteRequest`` (remote write 1.0),
and, with ``protocol="2.0"``, of ``io.prometheus.write.v2.Request`` (encoding
in `_codec2`, decoding in `decoder`).

`encode` turns the model into the exact bytes the official protobuf library
would produce; `encode_payload` also snappy-compresses them, as they go on the
wire. The bulk work is done by the backend's kernels (C or Python, chosen once
in `_backend`); this module flattens the request for them, words their errors,
and encodes the rare parts (exemplars, histograms, metadata) itself.
"""

from __future__ import annotations

import struct
from array import array
from itertools import chain
from operator import attrgetter
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from . import _backend, decoder
from ._backend import Kernels
from ._pyproto import (
    field_bytes,
    field_double,
    field_packed_doubles,
    field_packed_varints,
    field_string,
    field_varint,
    tag,
    varint,
    zigzag,
)
from .decoder import DecodeLimits
from .errors import SeriesError
from .model import (
    BucketSpan,
    Exemplar,
    Histogram,
    Labels,
    LabelSet,
    MetricMetadata,
    MetricType,
    Sample,
    Time,
    TimeSeries,
    WriteRequest,
    format_labels,
    label_pairs,
    to_ms,
    INT64_MAX,
    INT64_MIN,
)

__all__ = ["PROTOCOLS", "DecodeLimits", "SeriesSet", "decode", "decode_payload", "encode", "encode_payload"]

#: The remote-write protocol versions: "1.0" (prometheus.WriteRequest) and
#: "2.0" (io.prometheus.write.v2.Request).
PROTOCOLS = ("1.0", "2.0")


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be '1.0' or '2.0', not {protocol!r}")
    return protocol


def encode(request: WriteRequest, protocol: str = "1.0") -> bytes:
    """The serialized request, uncompressed; raises SeriesError/ValueError for bad input.

    `protocol` "1.0" gives a prometheus.WriteRequest, "2.0" an
    io.prometheus.write.v2.Request of the same content.
    """
    return encode_with(_backend.kernels, request, compress=False, protocol=protocol)


def encode_payload(request: WriteRequest, protocol: str = "1.0") -> bytes:
    """The request as remote write sends it: serialized, then snappy-compressed."""
    return encode_with(_backend.kernels, request, compress=True, protocol=protocol)


def encode_with(kernels: Kernels, request: WriteRequest, compress: bool, protocol: str = "1.0") -> bytes:
    """`encode`/`encode_payload` with the given backend (tests run each backend)."""
    if protocol != "1.0":
        from ._codec2 import encode_v2

        _check_protocol(protocol)
        return encode_v2(kernels, request, compress)
    try:
        metadata = b"".join(_metadata(m) for m in request.metadata)
    except UnicodeEncodeError as exc:
        raise _bad_metadata_text(request.metadata, request.timeseries, exc) from None
    columns = request._columns
    if isinstance(columns, _Columns):
        owner = columns.owner
        return kernels.encode_request(
            owner._text, owner._lengths, owner._ones, columns.values, columns.stamps, None, metadata, compress
        )
    series = request.timeseries
    label_text, label_lengths = _label_fields(kernels, series)
    if any(map(_get_metadata, series)):  # remote write 2.0's per-series metadata, as 1.0 can send it
        entries = _series_metadata_v1(request.metadata, series)
        try:
            metadata += b"".join(map(_metadata, entries))
        except UnicodeEncodeError as exc:
            raise _bad_metadata_text(entries, series, exc) from None
    try:
        per_series = [ts.samples for ts in series]
        counts = list(map(len, per_series))
        flat = list(chain.from_iterable(per_series))
        values = array("d", [s[0] for s in flat])
        stamps = array("q", [s[1] for s in flat])
    except (AttributeError, TypeError, OverflowError, IndexError, KeyError):
        raise _bad_samples(series) from None
    try:
        extras: Optional[List[bytes]] = [_extras(ts) if ts.exemplars or ts.histograms else b"" for ts in series]
    except UnicodeEncodeError as exc:
        index = next(i for i, ts in enumerate(series) if not _encodable(chain.from_iterable(chain.from_iterable(e.labels for e in ts.exemplars))))
        raise _named(SeriesError(index, f"exemplar label is not valid Unicode ({exc.reason})"), series, index) from None
    if not any(extras):  # type: ignore[arg-type]
        extras = None
    try:
        return kernels.encode_request(
            label_text, label_lengths, counts, values, stamps, extras, metadata, compress
        )
    except SeriesError as exc:
        raise _named(exc, series, exc.index) from None


_get_metadata = attrgetter("metadata")


def metric_name(ts: TimeSeries) -> str:
    """The ``__name__`` label of a series ("" when it has none)."""
    labels = ts._labels
    if type(labels) is dict:
        name = labels.get("__name__", "")
    else:
        name = next((v for n, v in label_pairs(labels) if n == "__name__"), "")  # type: ignore[union-attr]
    return name if isinstance(name, str) else ""


def _series_metadata_v1(given: List[MetricMetadata], series: List[TimeSeries]) -> List[MetricMetadata]:
    """Per-series metadata as request-level entries (family "" = the series' name), new ones only."""
    seen = set(given)
    out = []
    for ts in series:
        m = ts.metadata
        if m is None:
            continue
        if not isinstance(m, MetricMetadata):
            raise ValueError(f"metadata must be a MetricMetadata, not {type(m).__name__}")
        entry = m if m.metric_family_name else m._replace(metric_family_name=metric_name(ts))
        if entry not in seen:
            seen.add(entry)
            out.append(entry)
    return out


def _label_fields(kernels: Kernels, series: List[TimeSeries]) -> Tuple[bytes, "array[int]"]:
    """All series' encoded label fields, joined, and the length of each.

    Cached ones come from LabelSets; the rest are encoded in one kernel call
    (and cached in their LabelSet, if they have one).
    """
    kinds = set(map(type, series))
    if kinds - {TimeSeries}:
        index = next(i for i, ts in enumerate(series) if not isinstance(ts, TimeSeries))
        raise ValueError(f"timeseries[{index}] must be a TimeSeries, not {type(series[index]).__name__}")
    given = [ts._labels for ts in series]
    kinds = set(map(type, given))
    if kinds == {dict}:  # the common case, gathered without a Python loop per label
        return _encode_labels(
            kernels, series, list(range(len(series))), list(chain.from_iterable(given)),
            list(chain.from_iterable(map(dict.values, given))), list(map(len, given)),
        )  # fmt: skip
    out: List[Optional[bytes]] = [labels._pb if type(labels) is LabelSet else None for labels in given]
    fresh: List[int] = []  # positions in `series` still to encode
    names: List[str] = []
    values: List[str] = []
    counts: List[int] = []
    for index, labels in enumerate(given):
        if out[index] is not None:
            continue
        try:
            pairs = list(label_pairs(labels.labels if isinstance(labels, LabelSet) else labels))
            names += [name for name, _ in pairs]
            values += [value for _, value in pairs]
        except (TypeError, ValueError):
            raise SeriesError(index, f"labels must be (name, value) pairs, not {labels!r}") from None
        counts.append(len(pairs))
        fresh.append(index)
    if fresh:
        text, lengths = _encode_labels(kernels, series, fresh, names, values, counts)
        if len(fresh) == len(series) and kinds.isdisjoint({LabelSet}):
            return text, lengths
        start = 0
        for index, length in zip(fresh, lengths):
            out[index] = fields = text[start : start + length]
            start += length
            if isinstance(given[index], LabelSet):
                given[index]._pb = fields  # type: ignore[union-attr]
    return b"".join(out), array("q", map(len, out))  # type: ignore[arg-type]


def _encode_labels(
    kernels: Kernels, series: List[TimeSeries], where: List[int],
    names: List[str], values: List[str], counts: List[int],
) -> Tuple[bytes, "array[int]"]:  # fmt: skip
    """The kernel's encode_labels, its errors naming the series (series[where[i]] is set i)."""
    try:
        return kernels.encode_labels(names, values, counts)
    except SeriesError as exc:
        raise _named(exc, series, where[exc.index]) from None


def _named(exc: SeriesError, series: List[TimeSeries], index: int) -> SeriesError:
    """The kernel's error again, with the series' position and labels in the message."""
    try:
        labels = format_labels(label_pairs(series[index]._labels))
    except Exception:  # labels too broken to print; the problem says why
        labels = ""
    return SeriesError(index, exc.problem, labels)


class _Columns:
    """A SeriesSet's samples for one request: one value per series, as arrays."""

    __slots__ = ("owner", "values", "stamps")

    def __init__(self, owner: "SeriesSet", values: "array[float]", stamps: "array[int]") -> None:
        self.owner = owner
        self.values = values
        self.stamps = stamps

    def timeseries(self) -> List[TimeSeries]:
        new = tuple.__new__
        return [
            TimeSeries(labels, (new(Sample, pair),))
            for labels, pair in zip(self.owner.labels, zip(self.values, self.stamps))
        ]


class SeriesSet:
    """A fixed list of series whose labels are checked and encoded once.

    For producers that send the same series again and again with new values:
    ``client.write(series.request(values))`` writes one sample per series and
    costs only the samples, whichever backend runs. Bad labels raise a
    SeriesError here, at construction.
    """

    __slots__ = ("labels", "_text", "_lengths", "_ones", "_v2")

    def __init__(self, labels: Iterable[Labels]) -> None:
        self.labels: Tuple[Labels, ...] = tuple(labels)
        self._text, self._lengths = _label_fields(_backend.kernels, [TimeSeries(ls) for ls in self.labels])
        self._ones = array("q", [1]) * len(self.labels)
        self._v2: Optional[tuple] = None  # remote write 2.0: symbols and references, made on first use

    def __len__(self) -> int:
        return len(self.labels)

    def request(
        self,
        values: Sequence[float],
        time: Optional[Time] = None,
        *,
        timestamp_ms: Optional[int] = None,
        timestamps_ms: Optional[Sequence[int]] = None,
        metadata: Iterable[MetricMetadata] = (),
    ) -> WriteRequest:
        """A request of one sample per series: values[i] for series i.

        All samples share one time (`time`/`timestamp_ms` as for `Sample`,
        default now) unless `timestamps_ms` gives one per series.
        """
        n = len(self.labels)
        try:
            vals = values if type(values) is array and values.typecode == "d" else array("d", values)  # type: ignore[attr-defined]
            if timestamps_ms is None:
                stamps = array("q", [to_ms(time, timestamp_ms)]) * n
            elif time is not None or timestamp_ms is not None:
                raise ValueError("give timestamps_ms or one time, not both")
            else:
                stamps = array("q", timestamps_ms)
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"SeriesSet.request: values must be numbers, timestamps int64 ({exc})") from None
        if len(vals) != n or len(stamps) != n:
            raise ValueError(f"SeriesSet.request: {n} series but {len(vals)} values and {len(stamps)} timestamps")
        return WriteRequest.from_columns(_Columns(self, vals, stamps), metadata)


def _encodable(texts: Iterable[str]) -> bool:
    """True when every one of these strings is UTF-8 encodable."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_metadata_text(entries: List[MetricMetadata], series: List[TimeSeries], exc: UnicodeEncodeError) -> ValueError:
    """The error for metadata whose text is not UTF-8: a SeriesError naming the series it describes."""
    problem = f"metadata help or unit is not valid Unicode ({exc.reason})"
    bad = next(m for m in entries if not _encodable((m.metric_family_name, m.help, m.unit)))
    for index, ts in enumerate(series):
        if ts.metadata == bad or metric_name(ts) == bad.metric_family_name:
            return _named(SeriesError(index, problem), series, index)
    return ValueError(f"metadata {bad.metric_family_name!r}: {problem}")


def _bad_samples(series: List[TimeSeries]) -> SeriesError:
    """The error for the first sample that is neither a Sample nor a (value, timestamp_ms) pair."""
    for index, ts in enumerate(series):
        for sample in ts.samples:
            if isinstance(sample, Sample):
                continue
            problem = ""
            if not isinstance(sample, (tuple, list)) or len(sample) != 2:
                problem = f"samples must be Sample objects or (value, timestamp_ms) pairs, not {sample!r}"
            elif isinstance(sample[0], (str, bytes, bool)) or not isinstance(sample[0], (int, float)):
                problem = f"sample value must be a number, not {sample[0]!r}"
            elif isinstance(sample[1], bool) or not isinstance(sample[1], int):
                problem = f"sample timestamp must be int milliseconds, not {sample[1]!r}"
            elif not INT64_MIN <= sample[1] <= INT64_MAX:
                problem = f"sample timestamp {sample[1]} is outside the int64 range"
            if problem:
                return _named(SeriesError(index, problem), series, index)
    return SeriesError(0, "a sample's value or timestamp is out of range")


def _extras(ts: TimeSeries) -> bytes:
    """Exemplar (field 3) and histogram (field 4) fields of a series."""
    return b"".join(
        [field_bytes(3, _exemplar(e)) for e in ts.exemplars]
        + [field_bytes(4, _histogram(h)) for h in ts.histograms]
    )


def _label(label: Tuple[str, str]) -> bytes:
    return field_bytes(1, field_string(1, label[0]) + field_string(2, label[1]))


def _exemplar(e: Exemplar) -> bytes:
    return (
        b"".join(_label(lb) for lb in e.labels)
        + field_double(2, e.value)
        + field_varint(3, e.timestamp_ms)
    )


def _spans(field: int, spans: Tuple[BucketSpan, ...]) -> bytes:
    return b"".join(
        field_bytes(field, field_varint(1, zigzag(s.offset)) + field_varint(2, s.length))
        for s in spans
    )


def _oneof_count(int_field: int, float_field: int, value: Union[int, float]) -> bytes:
    if isinstance(value, float):
        return tag(float_field, 1) + struct.pack("<d", value)
    return tag(int_field, 0) + varint(value)


def _histogram(h: Histogram) -> bytes:
    # Each oneof is written as its value's kind, even when zero. The
    # constructor keeps both kinds alike; a decoded histogram keeps the wire's.
    count = _oneof_count(1, 2, h.count)
    zero_count = _oneof_count(6, 7, h.zero_count)
    return b"".join(
        [
            count,
            field_double(3, h.sum),
            field_varint(4, zigzag(h.schema)),
            field_double(5, h.zero_threshold),
            zero_count,
            _spans(8, h.negative_spans),
            field_packed_varints(9, [zigzag(d) for d in h.negative_deltas]),
            field_packed_doubles(10, h.negative_counts),
            _spans(11, h.positive_spans),
            field_packed_varints(12, [zigzag(d) for d in h.positive_deltas]),
            field_packed_doubles(13, h.positive_counts),
            field_varint(14, int(h.reset_hint)),
            field_varint(15, h.timestamp_ms),
            field_packed_doubles(16, h.custom_values),
        ]
    )


def _metadata(m: MetricMetadata) -> bytes:
    if not isinstance(m, MetricMetadata):
        raise ValueError(f"metadata entries must be MetricMetadata, not {type(m).__name__}")
    body = (
        field_varint(1, int(MetricType(m.type)))
        + field_string(2, m.metric_family_name)
        + field_string(4, m.help)
        + field_string(5, m.unit)
    )
    return field_bytes(3, body)


# --- decoding (in `decoder`) ---------------------------------------------------


def decode(data: bytes, protocol: str = "1.0", *, limits: Optional[DecodeLimits] = None) -> WriteRequest:
    """A WriteRequest from its serialized (uncompressed) bytes; unknown fields are skipped.

    Reads what any protobuf implementation (Prometheus, the official library,
    promwrite) writes; raises DecodeError for anything malformed, and
    DecodeLimitError for a request over `limits` (default: `DecodeLimits()`).
    Decoded objects are taken as they are on the wire, without the encoder's
    checks. `protocol` "2.0" reads an io.prometheus.write.v2.Request (strings
    resolved, per-series metadata and start timestamps kept; see `_codec2`).
    """
    return decoder.decode_with(_backend.kernels, data, _check_protocol(protocol), limits)


def decode_payload(
    data: bytes, max_length: Optional[int] = None, protocol: str = "1.0", *, limits: Optional[DecodeLimits] = None
) -> WriteRequest:
    """A WriteRequest from a remote-write body (snappy-compressed protobuf), within `limits`."""
    return decoder.decode_payload_with(_backend.kernels, data, max_length, _check_protocol(protocol), limits)
