"""Remote write 2.0: encoding of ``io.prometheus.write.v2.Request`` (decoding is in `decoder`).

Reached through `promwrite.codec` (``encode(request, protocol="2.0")``,
``decode(data, protocol="2.0")``); the input is the same model as for 1.0.

What goes on the wire, and in which order (the official protobuf library's
serialization of the same message gives the same bytes):

- ``symbols``: "" first, then every series' label names and values in order
  of first use (series by series, labels sorted by name, name before value),
  then the strings of exemplar labels and metadata (help, unit) in order of
  first use, series by series.
- one ``TimeSeries`` per series, with ``labels_refs``; its samples (each with
  the series' `start_timestamp_ms`, when set); histograms (likewise, field
  17); exemplars (labels sorted by name); metadata: the series' own
  `metadata`, else the request's `MetricMetadata` for its metric family (the
  series' name, or that name less a ``_total``/``_bucket``/``_count``/... suffix
  of a family of a matching type). 2.0 does not allow samples and histograms
  in one TimeSeries: a series with both is sent as two, the samples (and
  exemplars) first.

`decoder` gives one TimeSeries per run of samples (then of histograms) that
share a start timestamp, each with the series' metadata (family name "") and
the exemplars on the first; a request has no request-level metadata in 2.0.
"""

from __future__ import annotations

from array import array
from operator import attrgetter
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from ._backend import Kernels
from ._pyproto import field_bytes, field_double, field_varint, varint
from .encoding import histogram_body, label_fields, metric_name, named_error, sample_arrays
from .errors import SeriesError
if TYPE_CHECKING:
    from .batch import SeriesBatch
from .model import (
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    TimeSeries,
    WriteRequest,
)

__all__ = ["encode_batch_v2", "encode_v2", "resolve_metadata"]

_get_samples = attrgetter("samples")
_get_histograms = attrgetter("histograms")
_get_exemplars = attrgetter("exemplars")
_get_metadata = attrgetter("metadata")
_get_start = attrgetter("start_timestamp_ms")

# A series named family + suffix takes the family's metadata when its type is one of these.
_SUFFIXES = {
    "_total": (MetricType.COUNTER,),
    "_created": (MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY),
    "_bucket": (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM),
    "_count": (MetricType.HISTOGRAM, MetricType.SUMMARY),
    "_sum": (MetricType.HISTOGRAM, MetricType.SUMMARY),
    "_gcount": (MetricType.GAUGEHISTOGRAM,),
    "_gsum": (MetricType.GAUGEHISTOGRAM,),
    "_info": (MetricType.INFO,),
}


# --- encoding ------------------------------------------------------------------


class SeriesExtras:
    """A series' parts other than labels and samples, as 2.0 sends them."""

    __slots__ = ("with_samples", "histograms", "exemplars", "metadata")

    def __init__(self, with_samples: bool, histograms: Sequence[Histogram], exemplars: Sequence[Exemplar],
                 metadata: Optional[MetricMetadata]) -> None:  # fmt: skip
        self.with_samples = with_samples
        self.histograms = histograms
        self.exemplars = exemplars
        self.metadata = metadata


def _metadata_index(entries: Sequence[MetricMetadata]) -> Dict[str, MetricMetadata]:
    index: Dict[str, MetricMetadata] = {}
    for m in entries:
        if not isinstance(m, MetricMetadata):
            raise ValueError(f"metadata entries must be MetricMetadata, not {type(m).__name__}")
        index.setdefault(m.metric_family_name, m)
    return index


def resolve_metadata(index: Dict[str, MetricMetadata], name: str) -> Optional[MetricMetadata]:
    """The request-level metadata for a series named `name` (see the module docstring)."""
    found = index.get(name)
    if found is not None:
        return found
    for suffix, kinds in _SUFFIXES.items():
        if name.endswith(suffix):
            found = index.get(name[: -len(suffix)])
            if found is not None and found.type in kinds:
                return found
    return None


def _split(series: List[TimeSeries], index: Optional[Dict[str, MetricMetadata]],
           any_histograms: bool) -> Tuple[List[TimeSeries], List[int], List[SeriesExtras]]:  # fmt: skip
    """The 2.0 series (a series with samples and histograms becomes two), the
    position of each in `series`, and the rare parts of each."""
    out: List[TimeSeries] = []
    where: List[int] = []
    rare: List[SeriesExtras] = []
    for i, ts in enumerate(series):
        md = ts.metadata
        if md is None and index:
            md = resolve_metadata(index, metric_name(ts))
        elif md is not None and not isinstance(md, MetricMetadata):
            raise named_error(SeriesError(i, f"metadata must be a MetricMetadata, not {type(md).__name__}"), series, i)
        if any_histograms and ts.samples and ts.histograms:
            out += [ts, ts]
            where += [i, i]
            rare += [SeriesExtras(True, (), ts.exemplars, md), SeriesExtras(False, ts.histograms, (), md)]
        else:
            out.append(ts)
            where.append(i)
            rare.append(SeriesExtras(True, ts.histograms, ts.exemplars, md))
    return out, where, rare


class _Strings:
    """The strings of exemplars and metadata, each once, in order of first use."""

    __slots__ = ("position", "encoded")

    def __init__(self) -> None:
        self.position: Dict[str, int] = {}
        self.encoded: List[bytes] = []

    def add(self, text: str) -> None:
        if text not in self.position:
            self.position[text] = len(self.encoded)
            self.encoded.append(text.encode("utf-8"))


def _gather_strings(rare: List[SeriesExtras], series: List[TimeSeries], where: List[int]) -> _Strings:
    strings = _Strings()
    add = strings.add
    for k, parts in enumerate(rare):
        try:
            for e in parts.exemplars:
                for name, value in sorted(e.labels):
                    add(name)
                    add(value)
            md = parts.metadata
            if md is not None:
                add(md.help)
                add(md.unit)
        except UnicodeEncodeError as exc:
            problem = f"exemplar or metadata text is not valid Unicode ({exc.reason})"
            raise named_error(SeriesError(where[k], problem), series, where[k]) from None
        except (TypeError, AttributeError) as exc:
            problem = f"exemplars must be Exemplar objects, metadata MetricMetadata ({exc})"
            raise named_error(SeriesError(where[k], problem), series, where[k]) from None
    return strings


def _extras(rare: List[SeriesExtras], starts: Optional[Sequence[int]], strings: _Strings,
            refs: Sequence[int]) -> List[bytes]:  # fmt: skip
    """Fields 3 (histograms), 4 (exemplars) and 5 (metadata) of every 2.0 series."""
    position = strings.position
    cached: Dict[Tuple[int, str, str], bytes] = {}
    out = []
    for k, parts in enumerate(rare):
        fields = []
        if parts.histograms:
            begun = starts[k] if starts is not None else 0
            tail = b"\x88\x01" + varint(begun) if begun else b""  # start_timestamp = 17
            fields += [field_bytes(3, histogram_body(h) + tail) for h in parts.histograms]
        for e in parts.exemplars:
            label_refs = [refs[position[s]] for pair in sorted(e.labels) for s in pair]
            body = b""
            if label_refs:
                packed = b"".join(map(varint, label_refs))
                body = b"\x0a" + varint(len(packed)) + packed
            fields.append(field_bytes(4, body + field_double(2, e.value) + field_varint(3, e.timestamp_ms)))
        md = parts.metadata
        if md is not None:
            key = (int(MetricType(md.type)), md.help, md.unit)
            encoded = cached.get(key)
            if encoded is None:
                body = field_varint(1, key[0]) + field_varint(3, refs[position[md.help]]) + field_varint(
                    4, refs[position[md.unit]]
                )
                encoded = cached[key] = field_bytes(5, body)
            fields.append(encoded)
        out.append(b"".join(fields))
    return out


def encode_v2(kernels: Kernels, request: WriteRequest, compress: bool) -> bytes:
    """The serialized (and, with `compress`, snappy-compressed) 2.0 Request."""
    series = request.timeseries
    kinds = set(map(type, series))
    if kinds - {TimeSeries}:
        bad = next(i for i, ts in enumerate(series) if not isinstance(ts, TimeSeries))
        raise ValueError(f"timeseries[{bad}] must be a TimeSeries, not {type(series[bad]).__name__}")
    index = _metadata_index(request.metadata) if request.metadata else None
    any_histograms = any(map(_get_histograms, series))
    plain = not (index or any_histograms or any(map(_get_exemplars, series)) or any(map(_get_metadata, series)))
    if plain:
        v2series, where, rare = series, None, None
    else:
        v2series, where, rare = _split(series, index, any_histograms)
    try:
        label_text, label_lengths = label_fields(kernels, v2series)
    except SeriesError as exc:
        if where is None:
            raise
        raise SeriesError(where[exc.index], exc.problem, exc.labels) from None
    starts = None
    if any(map(_get_start, v2series)):
        starts = array("q", [ts.start_timestamp_ms or 0 for ts in v2series])
    extras = None
    if rare is not None:
        assert where is not None
        strings = _gather_strings(rare, series, where)
        symbols, refs_text, refs_lengths, refs = kernels.encode_symbols_v2(label_text, label_lengths, strings.encoded)
        extras = _extras(rare, starts, strings, refs)
        if not any(extras):
            extras = None
    else:
        symbols, refs_text, refs_lengths, _ = kernels.encode_symbols_v2(label_text, label_lengths, [])
    if rare is None:
        per_series = list(map(_get_samples, series))
    else:
        per_series = [ts.samples if parts.with_samples else [] for ts, parts in zip(v2series, rare)]
    counts, values, stamps = sample_arrays(series, per_series)
    try:
        return kernels.encode_request_v2(
            symbols, refs_text, refs_lengths, counts, values, stamps, starts, extras, compress
        )
    except SeriesError as exc:
        at = exc.index if where is None else where[exc.index]
        raise named_error(exc, series, at) from None


def encode_batch_v2(kernels: Kernels, batch: "SeriesBatch", metadata: Sequence[MetricMetadata], compress: bool) -> bytes:
    """A `SeriesBatch` as a 2.0 Request, from its 1.0 label fields and columns.

    A SeriesSet's batch (`owner`) keeps its symbols table (and metadata, per
    distinct request metadata) on the set. Series with exemplars or
    histograms (`batch.rare`) get their 2.0 parts as `encode_v2` makes them
    (one with samples and histograms becomes two series).
    """
    owner = batch.owner
    if owner is not None:
        key = tuple(metadata)
        cached = owner._v2
        if cached is None or cached[0] != key:
            series = [TimeSeries(labels) for labels in owner.labels]
            index = _metadata_index(metadata) if metadata else None
            parts = [SeriesExtras(True, (), (), resolve_metadata(index, metric_name(ts)) if index else None) for ts in series]
            strings = _gather_strings(parts, series, list(range(len(series))))
            symbols, refs_text, refs_lengths, refs = kernels.encode_symbols_v2(
                batch.label_text, batch.label_lengths, strings.encoded
            )
            extras: Optional[List[bytes]] = _extras(parts, None, strings, refs)
            if not any(extras):  # type: ignore[arg-type]
                extras = None
            cached = owner._v2 = (key, symbols, refs_text, refs_lengths, extras)
        _, symbols, refs_text, refs_lengths, extras = cached
        return kernels.encode_request_v2(
            symbols, refs_text, refs_lengths, batch.counts, batch.values, batch.stamps, None, extras, compress
        )
    if not batch.rare:
        symbols, refs_text, refs_lengths, _ = kernels.encode_symbols_v2(batch.label_text, batch.label_lengths, [])
        return kernels.encode_request_v2(
            symbols, refs_text, refs_lengths, batch.counts, batch.values, batch.stamps, None, None, compress
        )
    return _encode_rare_batch_v2(kernels, batch, compress)


def _encode_rare_batch_v2(kernels: Kernels, batch: "SeriesBatch", compress: bool) -> bytes:
    """A batch with exemplars or histograms: their series split and given their 2.0 parts."""
    texts: List[bytes] = []
    lengths = array("q")
    counts = array("q")
    starts = array("q")
    parts: List[SeriesExtras] = []
    owners: List[TimeSeries] = []
    part_starts = array("q")
    part_at: Dict[int, int] = {}  # 2.0 series position -> index in parts
    label_text, offset = batch.label_text, 0
    for i, length in enumerate(batch.label_lengths):
        text = label_text[offset : offset + length]
        offset += length
        rare = batch.rare.get(i)
        if rare is None:
            texts.append(text)
            lengths.append(length)
            counts.append(batch.counts[i])
            starts.append(0)
            continue
        ts = rare[0]
        begun = ts.start_timestamp_ms or 0
        for part in _split([ts], None, True)[2]:
            part_at[len(lengths)] = len(parts)
            parts.append(part)
            owners.append(ts)
            part_starts.append(begun)
            texts.append(text)
            lengths.append(length)
            counts.append(batch.counts[i] if part.with_samples else 0)
            starts.append(begun)
    strings = _gather_strings(parts, owners, list(range(len(parts))))
    symbols, refs_text, refs_lengths, refs = kernels.encode_symbols_v2(b"".join(texts), lengths, strings.encoded)
    fields = _extras(parts, part_starts, strings, refs)
    extras: Optional[List[bytes]] = None
    if any(fields):
        extras = [b""] * len(lengths)
        for position, k in part_at.items():
            extras[position] = fields[k]
    return kernels.encode_request_v2(
        symbols, refs_text, refs_lengths, counts, batch.values, batch.stamps, starts if any(starts) else None,
        extras, compress,
    )  # fmt: skip
