"""Remote write 2.0 codec: byte-identical to the official protobuf library, on every backend."""

from __future__ import annotations

import math
import struct
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import (
    STALE_NAN,
    Exemplar,
    Histogram,
    LabelSet,
    MetricMetadata,
    MetricType,
    Sample,
    SeriesError,
    SeriesSet,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
)
from promwrite.codec import decode_payload, encode_with
from promwrite.errors import DecodeError

from .conftest import BACKENDS, examples
from .prompb2_ref import PB2, as_v2, to_pb2
from .prompb_ref import to_pb
from .test_codec import EXEMPLARS, FLOATS, INT64, METADATA, histograms, label_dicts, samples

V2 = "2.0"
NONZERO_INT64 = INT64.filter(bool)
SERIES_METADATA = st.builds(
    MetricMetadata, st.sampled_from(MetricType), st.just(""), st.text(max_size=30), st.text(max_size=8)
)


@st.composite
def requests_v2(draw: st.DrawFn) -> WriteRequest:
    """Random requests using everything 2.0 carries (and mixed series that it splits)."""
    series = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["samples", "histograms", "both", "none"]))
        series.append(
            TimeSeries(
                draw(label_dicts()),
                draw(samples()) if kind in ("samples", "both") else [],
                histograms=draw(st.lists(histograms(), min_size=1, max_size=2)) if kind in ("histograms", "both") else [],
                exemplars=draw(st.lists(EXEMPLARS, max_size=2)),
                metadata=draw(st.none() | SERIES_METADATA),
                start_timestamp_ms=draw(st.none() | NONZERO_INT64),
            )
        )
    # request-level metadata: random families, and some for the series' own names (and suffixed names)
    metadata = draw(st.lists(METADATA, max_size=2))
    for ts in series:
        name = dict(ts.labels)["__name__"]
        if draw(st.booleans()):
            cut = next((name[: -len(x)] for x in ("_total", "_bucket", "_sum") if name.endswith(x) and len(name) > len(x)), name)
            metadata.append(MetricMetadata(draw(st.sampled_from(MetricType)), cut, draw(st.text(max_size=20))))
    return WriteRequest(series, metadata)


def v2_bytes(kernels, req: WriteRequest, compress: bool = False) -> bytes:
    return encode_with(kernels, req, compress=compress, protocol=V2)


# ---- known bytes ------------------------------------------------------------------


def test_known_bytes(kernels) -> None:
    """A hand-checked encoding: symbols "" first and in order of use, refs packed, rc.4 start timestamps."""
    req = WriteRequest(
        [
            TimeSeries({"job": "a", "__name__": "up"}, [Sample(0.0, timestamp_ms=0), Sample(1.0, timestamp_ms=1000)],
                       start_timestamp_ms=500, metadata=MetricMetadata(MetricType.GAUGE, help="Up.")),
            TimeSeries({"__name__": "up", "job": "b"}, [Sample(2.0, timestamp_ms=1000)]),
        ]
    )  # fmt: skip
    expected = bytes.fromhex(
        "2200"  # symbols[0] = ""
        "22085f5f6e616d655f5f" "22027570" "22036a6f62" "220161"  # __name__, up, job, a
        "220162" "2203"  "55702e"  # b, then "Up." (metadata strings come after all labels)
        "2a22"  # timeseries 1, 34 bytes
        "0a0401020304"  # labels_refs [1, 2, 3, 4]
        "1203" "18f403"  # 0.0 @ 0, start 500: only the start timestamp
        "120f" "09000000000000f03f" "10e807" "18f403"  # 1.0 @ 1000, start 500
        "2a04" "0802" "1806"  # metadata: GAUGE, help_ref 6, unit_ref 0 left out
        "2a14"  # timeseries 2, 20 bytes
        "0a0401020305"  # labels_refs [1, 2, 3, 5]
        "120c" "090000000000000040" "10e807"  # 2.0 @ 1000
    )
    assert v2_bytes(kernels, req) == expected
    assert to_pb2(req).SerializeToString() == expected


def test_symbols_shared_across_labels_exemplars_and_metadata(kernels) -> None:
    req = WriteRequest(
        [TimeSeries({"__name__": "x", "trace_id": "x"}, [Sample(1, timestamp_ms=1)],
                    exemplars=[Exemplar({"trace_id": "x"}, 1, timestamp_ms=1)],
                    metadata=MetricMetadata(MetricType.COUNTER, help="x", unit="x"))]
    )  # fmt: skip
    pb = PB2["Request"].FromString(v2_bytes(kernels, req))
    assert list(pb.symbols) == ["", "__name__", "x", "trace_id"]
    assert list(pb.timeseries[0].exemplars[0].labels_refs) == [3, 2]
    assert (pb.timeseries[0].metadata.help_ref, pb.timeseries[0].metadata.unit_ref) == (2, 2)


# ---- the official library ---------------------------------------------------------


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests_v2())
def test_identical_to_official_protobuf(req: WriteRequest) -> None:
    reference = to_pb2(req).SerializeToString()
    for kernels in BACKENDS:
        assert v2_bytes(kernels, req) == reference, kernels.name


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests_v2())
def test_round_trip_and_payload(req: WriteRequest) -> None:
    payloads = {k.name: v2_bytes(k, req, compress=True) for k in BACKENDS}
    assert len(set(payloads.values())) == 1, "backends disagree on the compressed payload"
    raw = v2_bytes(BACKENDS[0], req)
    expected = as_v2(req)
    assert decode(raw, protocol=V2) == expected
    assert decode_payload(next(iter(payloads.values())), protocol=V2) == expected
    assert PB2["Request"].FromString(raw) == to_pb2(req)
    # what 2.0 carries, encoded again, is the same message
    assert v2_bytes(BACKENDS[0], expected) == raw


@settings(max_examples=examples(100), deadline=None)
@given(requests_v2())
def test_decode_reads_official_bytes(req: WriteRequest) -> None:
    assert decode(to_pb2(req).SerializeToString(), protocol=V2) == as_v2(req)


@settings(max_examples=examples(100), deadline=None)
@given(requests_v2())
def test_v2_bytes_read_as_v1_are_empty(req: WriteRequest) -> None:
    """Fields 1-3 are reserved in 2.0: a 1.0 receiver reads a 2.0 body as an empty request."""
    raw = v2_bytes(BACKENDS[0], req)
    assert decode(raw) == WriteRequest()


# ---- what 2.0 does with the model -----------------------------------------------


def test_series_with_samples_and_histograms_is_split(kernels) -> None:
    h = Histogram.from_buckets(schema=0, sum=3.0, positive={0: 1, 1: 2}, timestamp_ms=10)
    ts = TimeSeries({"__name__": "lat"}, [Sample(1, timestamp_ms=10)], histograms=[h],
                    exemplars=[Exemplar({"trace_id": "t"}, 1, timestamp_ms=10)], start_timestamp_ms=7)  # fmt: skip
    pb = PB2["Request"].FromString(v2_bytes(kernels, WriteRequest([ts])))
    assert len(pb.timeseries) == 2
    first, second = pb.timeseries
    assert len(first.samples) == 1 and not first.histograms and len(first.exemplars) == 1
    assert not second.samples and len(second.histograms) == 1 and not second.exemplars
    assert first.samples[0].start_timestamp == 7 and second.histograms[0].start_timestamp == 7
    assert list(first.labels_refs) == list(second.labels_refs)


def test_custom_buckets_histogram(kernels) -> None:
    h = Histogram(count=5, sum=2.5, schema=-53, positive_spans=[(0, 3)], positive_deltas=[1, 1, 0],
                  custom_values=[0.1, 0.5, 1.0], timestamp_ms=99)  # fmt: skip
    req = WriteRequest([TimeSeries({"__name__": "cb"}, histograms=[h], start_timestamp_ms=50)])
    raw = v2_bytes(kernels, req)
    assert raw == to_pb2(req).SerializeToString()
    pb = PB2["Request"].FromString(raw).timeseries[0].histograms[0]
    assert pb.schema == -53 and list(pb.custom_values) == [0.1, 0.5, 1.0] and pb.start_timestamp == 50
    assert decode(raw, protocol=V2).timeseries[0].histograms == [h]


@pytest.mark.parametrize(
    "family, kind, series_name, found",
    [
        ("http_requests_total", MetricType.COUNTER, "http_requests_total", True),
        ("http_requests", MetricType.COUNTER, "http_requests_total", True),
        ("http_requests", MetricType.COUNTER, "http_requests_created", True),
        ("latency", MetricType.HISTOGRAM, "latency_bucket", True),
        ("latency", MetricType.SUMMARY, "latency_count", True),
        ("latency", MetricType.SUMMARY, "latency_bucket", False),  # summaries have no buckets
        ("temp", MetricType.GAUGE, "temp_total", False),  # a gauge has no _total series
        ("build", MetricType.INFO, "build_info", True),
        ("other", MetricType.GAUGE, "temp", False),
    ],
)
def test_request_metadata_goes_to_its_series(kernels, family, kind, series_name, found) -> None:
    req = WriteRequest([TimeSeries({"__name__": series_name}, [Sample(1, timestamp_ms=1)])],
                       [MetricMetadata(kind, family, "Some help.", "seconds")])  # fmt: skip
    got = decode(v2_bytes(kernels, req), protocol=V2).timeseries[0].metadata
    assert got == (MetricMetadata(kind, "", "Some help.", "seconds") if found else None)


def test_series_metadata_wins_over_request_metadata(kernels) -> None:
    own = MetricMetadata(MetricType.GAUGE, help="own")
    req = WriteRequest([TimeSeries({"__name__": "m"}, [Sample(1, timestamp_ms=1)], metadata=own)],
                       [MetricMetadata(MetricType.COUNTER, "m", "request")])  # fmt: skip
    assert decode(v2_bytes(kernels, req), protocol=V2).timeseries[0].metadata == own


def test_empty_metadata_is_still_sent(kernels) -> None:
    req = WriteRequest([TimeSeries({"__name__": "m"}, [Sample(1, timestamp_ms=1)], metadata=MetricMetadata(MetricType.UNKNOWN))])
    raw = v2_bytes(kernels, req)
    assert raw.endswith(b"\x2a\x00") and raw == to_pb2(req).SerializeToString()
    assert decode(raw, protocol=V2).timeseries[0].metadata == MetricMetadata(MetricType.UNKNOWN)


def test_series_metadata_sent_by_v1_as_request_metadata(kernels) -> None:
    md = MetricMetadata(MetricType.COUNTER, help="Requests.")
    series = [
        TimeSeries({"__name__": "req_total", "code": "200"}, [Sample(1, timestamp_ms=1)], metadata=md),
        TimeSeries({"__name__": "req_total", "code": "500"}, [Sample(1, timestamp_ms=1)], metadata=md),
        TimeSeries({"__name__": "up"}, [Sample(1, timestamp_ms=1)], metadata=MetricMetadata(MetricType.GAUGE, "up")),
    ]
    given = [MetricMetadata(MetricType.GAUGE, "up")]
    v1 = decode(encode_with(kernels, WriteRequest(series, given), compress=False))
    assert v1.metadata == [MetricMetadata(MetricType.GAUGE, "up"), MetricMetadata(MetricType.COUNTER, "req_total", "Requests.")]
    plain = WriteRequest([TimeSeries(ts.labels, ts.samples) for ts in series], v1.metadata)
    assert encode_with(kernels, WriteRequest(series, given), compress=False) == to_pb(plain).SerializeToString()


def test_start_timestamps_decode_as_runs() -> None:
    """Samples of one 2.0 series with different start timestamps (a counter reset) come back as one series per run."""
    pb = PB2["Request"](symbols=["", "__name__", "c"])
    ts = pb.timeseries.add(labels_refs=[1, 2])
    for t, start in [(10, 5), (20, 5), (30, 25), (40, 0)]:
        ts.samples.add(value=t, timestamp=t, start_timestamp=start)
    ts.metadata.type = 1
    ts.exemplars.add(value=1, timestamp=10)
    got = decode(pb.SerializeToString(), protocol=V2).timeseries
    assert [[s.timestamp_ms for s in x.samples] for x in got] == [[10, 20], [30], [40]]
    assert [x.start_timestamp_ms for x in got] == [5, 25, None]
    assert [len(x.exemplars) for x in got] == [1, 0, 0]
    assert all(x.metadata == MetricMetadata(MetricType.COUNTER) for x in got)


def test_special_values_bit_exact(kernels) -> None:
    values = [math.nan, STALE_NAN, math.inf, -math.inf, -0.0, 0.0, 5e-324]
    req = WriteRequest([TimeSeries({"__name__": "v"}, [Sample(v, timestamp_ms=i + 1) for i, v in enumerate(values)])])
    back = decode(v2_bytes(kernels, req), protocol=V2).timeseries[0].samples
    assert [struct.pack("<d", s.value) for s in back] == [struct.pack("<d", v) for v in values]


def test_label_set_and_series_set(kernels) -> None:
    labels = [{"__name__": "cpu", "core": str(i), "mode": "idle"} for i in range(3)]
    handles = [LabelSet(lb) for lb in labels]
    plain = WriteRequest([TimeSeries(lb, sample=Sample(v, timestamp_ms=9)) for lb, v in zip(labels, [1.5, 2.5, -0.0])])
    cached = WriteRequest([TimeSeries(h, sample=Sample(v, timestamp_ms=9)) for h, v in zip(handles, [1.5, 2.5, -0.0])])
    series_set = SeriesSet(labels)
    fast = series_set.request([1.5, 2.5, -0.0], timestamp_ms=9)
    expected = v2_bytes(kernels, plain, compress=True)
    assert v2_bytes(kernels, cached, compress=True) == expected
    assert v2_bytes(kernels, fast, compress=True) == expected
    assert v2_bytes(kernels, series_set.request([1.5, 2.5, -0.0], timestamp_ms=9), compress=True) == expected
    md = [MetricMetadata(MetricType.COUNTER, "cpu", "CPU time.", "seconds")]
    with_md = series_set.request([1, 2, 3], timestamp_ms=9, metadata=md)
    plain_md = WriteRequest([TimeSeries(lb, sample=Sample(v, timestamp_ms=9)) for lb, v in zip(labels, [1, 2, 3])], md)
    assert v2_bytes(kernels, with_md) == v2_bytes(kernels, plain_md) == to_pb2(plain_md).SerializeToString()
    assert v2_bytes(kernels, fast) == v2_bytes(kernels, plain)  # the cache follows the request's metadata


# ---- errors ----------------------------------------------------------------------


def test_invalid_labels_named_with_the_callers_index(kernels) -> None:
    h = Histogram.from_buckets(schema=0, sum=1.0, positive={0: 1}, timestamp_ms=1)
    series = [
        TimeSeries({"__name__": "mixed"}, [Sample(1, timestamp_ms=1)], histograms=[h]),  # sent as two
        TimeSeries({"__name__": "ok"}, [Sample(1, timestamp_ms=1)], metadata=MetricMetadata(MetricType.GAUGE)),
        TimeSeries({"__name__": "bad", "x": ""}, [Sample(1, timestamp_ms=1)]),
    ]
    with pytest.raises(SeriesError, match="empty value") as info:
        v2_bytes(kernels, WriteRequest(series))
    assert info.value.index == 2 and str(info.value).startswith("series 2 bad")


def test_samples_out_of_order_named(kernels) -> None:
    h = Histogram.from_buckets(schema=0, sum=1.0, positive={0: 1}, timestamp_ms=1)
    series = [
        TimeSeries({"__name__": "a"}, [Sample(1, timestamp_ms=5)], histograms=[h]),
        TimeSeries({"__name__": "b", "x": "y"}, [Sample(1, timestamp_ms=5), Sample(2, timestamp_ms=5)]),
    ]
    with pytest.raises(SeriesError, match="must increase") as info:
        v2_bytes(kernels, WriteRequest(series))
    assert info.value.index == 1 and "b{x='y'}" in str(info.value)


def test_bad_text_and_objects_named(kernels) -> None:
    ok = TimeSeries({"__name__": "ok"}, [Sample(1, timestamp_ms=1)])
    bad = TimeSeries({"__name__": "m"}, [Sample(1, timestamp_ms=1)], metadata=MetricMetadata(MetricType.GAUGE, help="\ud800"))
    with pytest.raises(SeriesError, match="not valid Unicode") as info:
        v2_bytes(kernels, WriteRequest([ok, bad]))
    assert info.value.index == 1
    with pytest.raises(SeriesError, match="Sample objects"):
        v2_bytes(kernels, WriteRequest([TimeSeries({"__name__": "a"}, [1.0])]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="must be a TimeSeries"):
        v2_bytes(kernels, WriteRequest(["nope"]))  # type: ignore[list-item]


def test_model_checks() -> None:
    with pytest.raises(ValueError, match="reads as unset"):
        TimeSeries({"__name__": "a"}, start_timestamp_ms=0)
    with pytest.raises(ValueError, match="int64"):
        TimeSeries({"__name__": "a"}, start_timestamp_ms=1 << 63)
    with pytest.raises(ValueError, match="must be an int"):
        TimeSeries({"__name__": "a"}, start_timestamp_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MetricMetadata"):
        TimeSeries({"__name__": "a"}, metadata="counter")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="protocol must be"):
        encode(WriteRequest(), protocol="2")


@pytest.mark.parametrize(
    "text, lengths",
    [
        (b"\x0a\x03\x0a\x01a", [5]),  # no value field
        (b"\x0b\x00", [2]),  # not a Label field
        (b"\x0a\x05\x0a\x01a\x12\x05b", [7]),  # value runs past the label
        (b"\x0a\x04\x0a\x01a\x12\x00\x00", [7]),  # a byte left over in the label
        (b"\x0a\x04\x0a\x01a\x12\x00", [3, 3]),  # a set ends inside a label
        (b"\x0a\x04\x0a\x01a\x12\x00", [7]),  # lengths past the text
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", [12]),  # an 11-byte varint
    ],
)
def test_symbols_kernel_refuses_malformed_label_text(kernels, text, lengths) -> None:
    with pytest.raises(ValueError):
        kernels.encode_symbols_v2(text, lengths, [])


# ---- decoding hostile bytes --------------------------------------------------------


def test_decode_refs_checked() -> None:
    pb = PB2["Request"](symbols=["", "__name__"])
    pb.timeseries.add(labels_refs=[1, 2])
    with pytest.raises(DecodeError, match="symbol 2"):
        decode(pb.SerializeToString(), protocol=V2)
    pb.timeseries[0].labels_refs[:] = [1]
    with pytest.raises(DecodeError, match="odd number"):
        decode(pb.SerializeToString(), protocol=V2)


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=200))
def test_decode_garbage_only_decode_error(data: bytes) -> None:
    try:
        decode(data, protocol=V2)
    except DecodeError:
        pass


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests_v2(), st.data())
def test_decode_mutated_only_decode_error(req: WriteRequest, data: st.DataObject) -> None:
    raw = bytearray(to_pb2(req).SerializeToString())
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode(bytes(raw[:cut]), protocol=V2)
    except DecodeError:
        pass
