"""Encoding helpers shared by remote write 1.0 (`codec`) and 2.0 (`_codec2`).

Both versions take the same model: these functions encode label sets with
one kernel call, read samples into packed arrays (in C where
``promwrite._cmodel`` is built), name the series in the kernels' errors, and write the rare
protobuf parts (exemplars, histograms, metadata) that the kernels take as
ready bytes. Imported by both codec halves, so neither imports the other.
"""

from __future__ import annotations

import struct
from array import array
from itertools import chain
from operator import attrgetter
from typing import Iterable, List, Optional, Sequence, Tuple, Union

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
from .errors import SeriesError
from .model import (
    BucketSpan,
    Exemplar,
    Histogram,
    LabelSet,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    cmodel,
    format_labels,
    label_pairs,
    to_float,
    INT64_MAX,
    INT64_MIN,
)

__all__ = [
    "bad_metadata_text", "bad_samples_error", "encodable", "extras_v1", "histogram_body", "label_fields", "metadata_field", "metric_name",
    "named_error", "read_sample_arrays", "sample_arrays", "series_metadata_v1",
]  # fmt: skip

get_metadata = attrgetter("metadata")


def metric_name(ts: TimeSeries) -> str:
    """The ``__name__`` label of a series ("" when it has none)."""
    labels = ts._labels
    if type(labels) is dict:
        name = labels.get("__name__", "")
    else:
        name = next((v for n, v in label_pairs(labels) if n == "__name__"), "")  # type: ignore[union-attr]
    return name if isinstance(name, str) else ""


def series_metadata_v1(given: List[MetricMetadata], series: List[TimeSeries]) -> List[MetricMetadata]:
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


def label_fields(kernels: Kernels, series: List[TimeSeries]) -> Tuple[bytes, "array[int]"]:
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
    if kinds == {dict}:  # the common case: read by the backend, or gathered without a Python loop per label
        encode_dicts = getattr(kernels, "encode_label_dicts", None)
        found = encode_dicts(given) if encode_dicts is not None else None
        if found is not None:
            return found
        return encode_labels(
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
        text, lengths = encode_labels(kernels, series, fresh, names, values, counts)
        if len(fresh) == len(series) and kinds.isdisjoint({LabelSet}):
            return text, lengths
        start = 0
        for index, length in zip(fresh, lengths):
            out[index] = fields = text[start : start + length]
            start += length
            if isinstance(given[index], LabelSet):
                given[index].keep_encoding(fields)  # type: ignore[union-attr]
    return b"".join(out), array("q", map(len, out))  # type: ignore[arg-type]


def encode_labels(
    kernels: Kernels, series: List[TimeSeries], where: List[int],
    names: List[str], values: List[str], counts: List[int],
) -> Tuple[bytes, "array[int]"]:  # fmt: skip
    """The kernel's encode_labels, its errors naming the series (series[where[i]] is set i)."""
    try:
        return kernels.encode_labels(names, values, counts)
    except SeriesError as exc:
        raise named_error(exc, series, where[exc.index]) from None


def named_error(exc: SeriesError, series: List[TimeSeries], index: int) -> SeriesError:
    """The kernel's error again, with the series' position and labels in the message."""
    try:
        labels = format_labels(label_pairs(series[index]._labels))
    except Exception:  # labels too broken to print; the problem says why
        labels = ""
    return SeriesError(index, exc.problem, labels)



def encodable(texts: Iterable[str]) -> bool:
    """True when every one of these strings is UTF-8 encodable."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bad_metadata_text(entries: List[MetricMetadata], series: List[TimeSeries], exc: UnicodeEncodeError) -> ValueError:
    """The error for metadata whose text is not UTF-8: a SeriesError naming the series it describes."""
    problem = f"metadata help or unit is not valid Unicode ({exc.reason})"
    bad = next(m for m in entries if not encodable((m.metric_family_name, m.help, m.unit)))
    for index, ts in enumerate(series):
        if ts.metadata == bad or metric_name(ts) == bad.metric_family_name:
            return named_error(SeriesError(index, problem), series, index)
    return ValueError(f"metadata {bad.metric_family_name!r}: {problem}")


def _value_problem(value: object) -> str:
    """What is wrong with a sample's value ("" if nothing)."""
    if isinstance(value, (str, bytes, bool)) or not isinstance(value, (int, float)):
        return f"sample value must be a number, not {value!r}"
    try:
        to_float(value, "sample value")
    except ValueError as exc:  # an int too large for a float
        return str(exc)
    return ""


def _timestamp_problem(stamp: object) -> str:
    """What is wrong with a sample's timestamp ("" if nothing)."""
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        return f"sample timestamp must be int milliseconds, not {stamp!r}"
    if not INT64_MIN <= stamp <= INT64_MAX:
        return f"sample timestamp {stamp} is outside the int64 range"
    return ""


def bad_samples_error(series: List[TimeSeries]) -> SeriesError:
    """The error for the first sample that is neither a Sample nor a (value, timestamp_ms) pair."""
    for index, ts in enumerate(series):
        for sample in ts.samples:
            if isinstance(sample, Sample):
                continue
            if not isinstance(sample, (tuple, list)) or len(sample) != 2:
                problem = f"samples must be Sample objects or (value, timestamp_ms) pairs, not {sample!r}"
            else:
                problem = _value_problem(sample[0]) or _timestamp_problem(sample[1])
            if problem:
                return named_error(SeriesError(index, problem), series, index)
    return SeriesError(0, "a sample's value or timestamp is out of range")


def read_sample_arrays(per_series: List[Sequence[Tuple[float, int]]]) -> Tuple["array[int]", "array[float]", "array[int]"]:
    """Sample counts, values and timestamps of every series, as packed arrays (the Python twin
    of ``_cmodel.sample_arrays``); TypeError, OverflowError or IndexError for a bad sample."""
    counts = array("q", map(len, per_series))
    flat = list(chain.from_iterable(per_series))
    return counts, array("d", [s[0] for s in flat]), array("q", [s[1] for s in flat])


def sample_arrays(series: List[TimeSeries], per_series: List[Sequence[Tuple[float, int]]]) -> Tuple["array[int]", "array[float]", "array[int]"]:
    """`read_sample_arrays` of per_series (the samples of `series`), read in C where it can be;
    a SeriesError naming the first series with a bad sample."""
    found = cmodel.sample_arrays(per_series) if cmodel is not None else None
    if found is not None:
        columns = array("q"), array("d"), array("q")
        for column, data in zip(columns, found):
            column.frombytes(data)
        return columns
    try:
        return read_sample_arrays(per_series)
    except (AttributeError, TypeError, OverflowError, IndexError, KeyError):
        raise bad_samples_error(series) from None


def extras_v1(ts: TimeSeries) -> bytes:
    """Exemplar (field 3) and histogram (field 4) fields of a series."""
    return b"".join(
        [field_bytes(3, _exemplar(e)) for e in ts.exemplars]
        + [field_bytes(4, histogram_body(h)) for h in ts.histograms]
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


def histogram_body(h: Histogram) -> bytes:
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


def metadata_field(m: MetricMetadata) -> bytes:
    if not isinstance(m, MetricMetadata):
        raise ValueError(f"metadata entries must be MetricMetadata, not {type(m).__name__}")
    body = (
        field_varint(1, int(MetricType(m.type)))
        + field_string(2, m.metric_family_name)
        + field_string(4, m.help)
        + field_string(5, m.unit)
    )
    return field_bytes(3, body)
