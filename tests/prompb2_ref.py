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

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from promwrite._codec2 import resolve_metadata
from promwrite.codec import metric_name
from promwrite.model import Exemplar, Histogram, MetricMetadata, TimeSeries, WriteRequest

F = descriptor_pb2.FieldDescriptorProto
_T = {
    "double": F.TYPE_DOUBLE, "int64": F.TYPE_INT64, "uint64": F.TYPE_UINT64,
    "uint32": F.TYPE_UINT32, "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64,
    "string": F.TYPE_STRING, "enum": F.TYPE_ENUM, "message": F.TYPE_MESSAGE,
}  # fmt: skip
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
        ("count_int", 1, "uint64", False, None, 0),
        ("count_float", 2, "double", False, None, 0),
        ("sum", 3, "double", False, None, None),
        ("schema", 4, "sint32", False, None, None),
        ("zero_threshold", 5, "double", False, None, None),
        ("zero_count_int", 6, "uint64", False, None, 1),
        ("zero_count_float", 7, "double", False, None, 1),
        ("negative_spans", 8, "message", True, P + "BucketSpan", None),
        ("negative_deltas", 9, "sint64", True, None, None),
        ("negative_counts", 10, "double", True, None, None),
        ("positive_spans", 11, "message", True, P + "BucketSpan", None),
        ("positive_deltas", 12, "sint64", True, None, None),
        ("positive_counts", 13, "double", True, None, None),
        ("reset_hint", 14, "enum", False, P + "Histogram.ResetHint", None),
        ("timestamp", 15, "int64", False, None, None),
        ("custom_values", 16, "double", True, None, None),
        ("start_timestamp", 17, "int64", False, None, None),
    ],
    "BucketSpan": [("offset", 1, "sint32", False, None, None), ("length", 2, "uint32", False, None, None)],
}
_ENUMS = {
    "Metadata": ("MetricType", "METRIC_TYPE_", ["UNSPECIFIED", "COUNTER", "GAUGE", "HISTOGRAM",
                                                "GAUGEHISTOGRAM", "SUMMARY", "INFO", "STATESET"]),
    "Histogram": ("ResetHint", "RESET_HINT_", ["UNSPECIFIED", "YES", "NO", "GAUGE"]),
}  # fmt: skip
_ONEOFS = {"Histogram": ["count", "zero_count"]}
_RESERVED = {"Request": [(1, 4)], "TimeSeries": [(6, 7)]}  # [start, end)


def _build() -> Dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="promwrite_test_prompb_v2.proto", package="io.prometheus.write.v2", syntax="proto3"
    )
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for start, end in _RESERVED.get(msg_name, []):
            msg.reserved_range.add(start=start, end=end)
        for oneof in _ONEOFS.get(msg_name, []):
            msg.oneof_decl.add(name=oneof)
        if msg_name in _ENUMS:
            enum_name, prefix, values = _ENUMS[msg_name]
            enum = msg.enum_type.add(name=enum_name)
            for number, value in enumerate(values):
                enum.value.add(name=prefix + value, number=number)
        for name, number, kind, repeated, type_name, oneof in fields:
            field = msg.field.add(
                name=name, number=number, type=_T[kind],
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
            )  # fmt: skip
            if type_name:
                field.type_name = type_name
            if oneof is not None:
                field.oneof_index = oneof
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"io.prometheus.write.v2.{name}"))
        for name in _MESSAGES
    }


PB2 = _build()


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
    if h.is_float:
        pb.count_float = h.count
        pb.zero_count_float = h.zero_count
    else:
        pb.count_int = h.count
        pb.zero_count_int = h.zero_count
    pb.sum = h.sum
    pb.schema = h.schema
    pb.zero_threshold = h.zero_threshold
    for side in ("negative", "positive"):
        for span in getattr(h, side + "_spans"):
            getattr(pb, side + "_spans").add(offset=span.offset, length=span.length)
        getattr(pb, side + "_deltas").extend(getattr(h, side + "_deltas"))
        getattr(pb, side + "_counts").extend(getattr(h, side + "_counts"))
    pb.reset_hint = int(h.reset_hint)
    pb.timestamp = h.timestamp_ms
    pb.custom_values.extend(h.custom_values)
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
