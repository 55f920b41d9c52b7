"""The official protobuf library's view of prompb (test-only reference).

Builds the message classes of prometheus/prompb types.proto and remote.proto
(remote write 1.0) from a descriptor written out here, so no protoc is needed,
and converts promwrite's model into them. Tests compare our bytes with
`SerializeToString()` of these.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from promwrite.model import Histogram, WriteRequest

F = descriptor_pb2.FieldDescriptorProto
_T = {
    "double": F.TYPE_DOUBLE, "int64": F.TYPE_INT64, "uint64": F.TYPE_UINT64,
    "uint32": F.TYPE_UINT32, "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64,
    "string": F.TYPE_STRING, "enum": F.TYPE_ENUM, "message": F.TYPE_MESSAGE,
}  # fmt: skip

# message -> [(name, number, type, repeated, type_name, oneof_index)]
HISTOGRAM_FIELDS = [
    ("count_int", 1, "uint64", False, None, 0),
    ("count_float", 2, "double", False, None, 0),
    ("sum", 3, "double", False, None, None),
    ("schema", 4, "sint32", False, None, None),
    ("zero_threshold", 5, "double", False, None, None),
    ("zero_count_int", 6, "uint64", False, None, 1),
    ("zero_count_float", 7, "double", False, None, 1),
    ("negative_spans", 8, "message", True, ".prometheus.BucketSpan", None),
    ("negative_deltas", 9, "sint64", True, None, None),
    ("negative_counts", 10, "double", True, None, None),
    ("positive_spans", 11, "message", True, ".prometheus.BucketSpan", None),
    ("positive_deltas", 12, "sint64", True, None, None),
    ("positive_counts", 13, "double", True, None, None),
    ("reset_hint", 14, "enum", False, ".prometheus.Histogram.ResetHint", None),
    ("timestamp", 15, "int64", False, None, None),
    ("custom_values", 16, "double", True, None, None),
]
_MESSAGES = {
    "MetricMetadata": [
        ("type", 1, "enum", False, ".prometheus.MetricMetadata.MetricType", None),
        ("metric_family_name", 2, "string", False, None, None),
        ("help", 4, "string", False, None, None),
        ("unit", 5, "string", False, None, None),
    ],
    "Sample": [("value", 1, "double", False, None, None), ("timestamp", 2, "int64", False, None, None)],
    "Exemplar": [
        ("labels", 1, "message", True, ".prometheus.Label", None),
        ("value", 2, "double", False, None, None),
        ("timestamp", 3, "int64", False, None, None),
    ],
    "Histogram": HISTOGRAM_FIELDS,
    "BucketSpan": [("offset", 1, "sint32", False, None, None), ("length", 2, "uint32", False, None, None)],
    "TimeSeries": [
        ("labels", 1, "message", True, ".prometheus.Label", None),
        ("samples", 2, "message", True, ".prometheus.Sample", None),
        ("exemplars", 3, "message", True, ".prometheus.Exemplar", None),
        ("histograms", 4, "message", True, ".prometheus.Histogram", None),
    ],
    "Label": [("name", 1, "string", False, None, None), ("value", 2, "string", False, None, None)],
    "WriteRequest": [
        ("timeseries", 1, "message", True, ".prometheus.TimeSeries", None),
        ("metadata", 3, "message", True, ".prometheus.MetricMetadata", None),
    ],
}
# message -> (enum name, value name prefix, value names)
_ENUMS = {
    "MetricMetadata": ("MetricType", "", ["UNKNOWN", "COUNTER", "GAUGE", "HISTOGRAM",
                                          "GAUGEHISTOGRAM", "SUMMARY", "INFO", "STATESET"]),
    "Histogram": ("ResetHint", "RESETHINT_", ["UNKNOWN", "YES", "NO", "GAUGE"]),
}  # fmt: skip
_ONEOFS = {"Histogram": ["count", "zero_count"]}


def build_classes(
    file_name: str,
    package: str,
    messages: Dict[str, List[Tuple[Any, ...]]],
    enums: Dict[str, Tuple[str, str, List[str]]],
    oneofs: Dict[str, List[str]],
    reserved: Optional[Dict[str, List[Tuple[int, int]]]] = None,
) -> Dict[str, Any]:
    """Message classes of `package` from tables as above (reserved: message -> [start, end) ranges)."""
    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for msg_name, fields in messages.items():
        msg = fdp.message_type.add(name=msg_name)
        for start, end in (reserved or {}).get(msg_name, []):
            msg.reserved_range.add(start=start, end=end)
        for oneof in oneofs.get(msg_name, []):
            msg.oneof_decl.add(name=oneof)
        if msg_name in enums:
            enum_name, prefix, values = enums[msg_name]
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
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}")) for name in messages}


PB = build_classes("promwrite_test_prompb.proto", "prometheus", _MESSAGES, _ENUMS, _ONEOFS)


def fill_histogram(pb: Any, h: Histogram) -> None:
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


def to_pb(request: WriteRequest) -> Any:
    """The official library's WriteRequest for a promwrite one (labels sorted, as we send them)."""
    out = PB["WriteRequest"]()
    for ts in request.timeseries:
        pts = out.timeseries.add()
        for label in ts.labels:
            pts.labels.add(name=label.name, value=label.value)
        for s in ts.samples:
            pts.samples.add(value=s.value, timestamp=s.timestamp_ms)
        for e in ts.exemplars:
            pe = pts.exemplars.add(value=e.value, timestamp=e.timestamp_ms)
            for label in e.labels:
                pe.labels.add(name=label.name, value=label.value)
        for h in ts.histograms:
            fill_histogram(pts.histograms.add(), h)
    for m in request.metadata:
        out.metadata.add(type=int(m.type), metric_family_name=m.metric_family_name, help=m.help, unit=m.unit)
    return out
