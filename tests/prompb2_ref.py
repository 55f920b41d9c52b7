"""The official protobuf library's view of remote write 2.0 (test-only reference).

Builds the message classes of prometheus/prometheus
``prompb/io/prometheus/write/v2/types.proto`` in the layout of spec 2.0-rc.4
(``Sample.start_timestamp = 3``, ``Histogram.start_timestamp = 17``,
``TimeSeries`` field 6 reserved) from a descriptor written out here, so no
protoc is needed, and converts promwrite's model into them the way promwrite
documents it (promwrite/_codec2.py): the symbols table in order of first use,
labels first, then exemplar labels and metadata strings; a series with samples
and histograms split in two; metadata from the series or the request.
`as_v2` is what decoding the 2.0 bytes must give back.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from promwrite._codec2 import resolve_metadata
from promwrite.encoding import metric_name
from promwrite.model import Exemplar, Histogram, MetricMetadata, TimeSeries, WriteRequest

from .prompb_ref import HISTOGRAM_FIELDS, build_classes, fill_histogram

P = ".io.prometheus.write.v2."

# message -> [(name, number, type, repeated, type_name, oneof_index)]
_MESSAGES = {
    "Request": [
        ("symbols", 4, "string", True, None, None),
        ("timeseries", 5, "message", True, P + "TimeSeries", None),
    ],
    "TimeSeries": [
        ("labels_refs", 1, "uint32", True, None, None),
        ("samples", 2, "message", True, P + "Sample", None),
        ("histograms", 3, "message", True, P + "Histogram", None),
        ("exemplars", 4, "message", True, P + "Exemplar", None),
        ("metadata", 5, "message", False, P + "Metadata", None),
    ],
    "Exemplar": [
        ("labels_refs", 1, "uint32", True, None, None),
        ("value", 2, "double", False, None, None),
        ("timestamp", 3, "int64", False, None, None),
    ],
    "Sample": [
        ("value", 1, "double", False, None, None),
        ("timestamp", 2, "int64", False, None, None),
        ("start_timestamp", 3, "int64", False, None, None),
    ],
    "Metadata": [
        ("type", 1, "enum", False, P + "Metadata.MetricType", None),
        ("help_ref", 3, "uint32", False, None, None),
        ("unit_ref", 4, "uint32", False, None, None),
    ],
    "Histogram": [
        (name, number, kind, repeated, type_name and type_name.replace(".prometheus.", P), oneof)
        for name, number, kind, repeated, type_name, oneof in HISTOGRAM_FIELDS
    ]
    + [("start_timestamp", 17, "int64", False, None, None)],
    "BucketSpan": [("offset", 1, "sint32", False, None, None), ("length", 2, "uint32", False, None, None)],
}
_ENUMS = {
    "Metadata": ("MetricType", "METRIC_TYPE_", ["UNSPECIFIED", "COUNTER", "GAUGE", "HISTOGRAM",
                                                "GAUGEHISTOGRAM", "SUMMARY", "INFO", "STATESET"]),
    "Histogram": ("ResetHint", "RESET_HINT_", ["UNSPECIFIED", "YES", "NO", "GAUGE"]),
}  # fmt: skip
_ONEOFS = {"Histogram": ["count", "zero_count"]}
_RESERVED = {"Request": [(1, 4)], "TimeSeries": [(6, 7)]}  # [start, end)


PB2 = build_classes(
    "promwrite_test_prompb_v2.proto", "io.prometheus.write.v2", _MESSAGES, _ENUMS, _ONEOFS, _RESERVED
)


def _metadata_for(request: WriteRequest, ts: TimeSeries) -> Optional[MetricMetadata]:
    if ts.metadata is not None:
        return ts.metadata
    index: Dict[str, MetricMetadata] = {}
    for m in request.metadata:
        index.setdefault(m.metric_family_name, m)
    return resolve_metadata(index, metric_name(ts)) if index else None


def as_v2(request: WriteRequest) -> WriteRequest:
    """What a 2.0 request carries of `request`, as `decode(..., protocol="2.0")` gives it back."""
    out: List[TimeSeries] = []
    for ts in request.timeseries:
        md = _metadata_for(request, ts)
        if md is not None:
            md = md._replace(metric_family_name="")
        exemplars = [Exemplar(sorted(e.labels), e.value, timestamp_ms=e.timestamp_ms) for e in ts.exemplars]
        start = ts.start_timestamp_ms if ts.samples or ts.histograms else None  # nothing to carry it
        common: Dict[str, Any] = dict(metadata=md, start_timestamp_ms=start)
        if ts.samples and ts.histograms:
            out.append(TimeSeries(ts.labels, ts.samples, exemplars=exemplars, **common))
            out.append(TimeSeries(ts.labels, histograms=ts.histograms, **common))
        else:
            out.append(TimeSeries(ts.labels, ts.samples, histograms=ts.histograms, exemplars=exemplars, **common))
    return WriteRequest(out)


def _histogram(pb: Any, h: Histogram, start: int) -> None:
    fill_histogram(pb, h)
    pb.start_timestamp = start


def to_pb2(request: WriteRequest) -> Any:
    """The official library's io.prometheus.write.v2.Request for a promwrite request."""
    v2 = as_v2(request).timeseries
    table: Dict[str, int] = {"": 0}

    def ref(text: str) -> int:
        return table.setdefault(text, len(table))

    label_refs = [[ref(s) for label in ts.labels for s in label] for ts in v2]  # all labels first
    out = PB2["Request"]()
    for ts, refs in zip(v2, label_refs):
        pts = out.timeseries.add()
        pts.labels_refs.extend(refs)
        start = ts.start_timestamp_ms or 0
        for s in ts.samples:
            pts.samples.add(value=s.value, timestamp=s.timestamp_ms, start_timestamp=start)
        for h in ts.histograms:
            _histogram(pts.histograms.add(), h, start)
        for e in ts.exemplars:
            pe = pts.exemplars.add(value=e.value, timestamp=e.timestamp_ms)
            pe.labels_refs.extend(ref(s) for label in e.labels for s in label)
        if ts.metadata is not None:
            pts.metadata.SetInParent()
            pts.metadata.type = int(ts.metadata.type)
            pts.metadata.help_ref = ref(ts.metadata.help)
            pts.metadata.unit_ref = ref(ts.metadata.unit)
    out.symbols.extend(table)
    return out
