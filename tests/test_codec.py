"""The WriteRequest codec: byte-identical to the official protobuf library, on every backend."""

from __future__ import annotations

import math
import struct
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwrite import (
    STALE_NAN,
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    LabelSet,
    MetricMetadata,
    MetricType,
    ResetHint,
    Sample,
    SeriesError,
    TimeSeries,
    WriteRequest,
    decode,
    is_stale_nan,
)
from promwrite.codec import decode_payload, encode_with
from promwrite.errors import DecodeError

from .conftest import BACKENDS, examples
from .prompb_ref import PB, to_pb
from .snappy_check import assert_decompresses_to

INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, STALE_NAN, math.inf, -math.inf, 5e-324]),
    st.integers(0, 1 << 64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
)
LABEL_NAME = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True).filter(lambda n: n != "__name__")
METRIC_NAME = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
LONG_TEXT = st.text(min_size=120, max_size=300, alphabet=st.characters(blacklist_categories=("Cs",)))


@st.composite
def label_dicts(draw: st.DrawFn) -> dict:
    labels = draw(st.dictionaries(LABEL_NAME, st.one_of(TEXT, LONG_TEXT), max_size=10))
    labels["__name__"] = draw(METRIC_NAME)
    return labels


@st.composite
def samples(draw: st.DrawFn) -> List[Sample]:
    stamps = sorted(draw(st.sets(INT64, max_size=8)))
    return [Sample(draw(FLOATS), timestamp_ms=t) for t in stamps]


def deltas_for(n: int) -> st.SearchStrategy:
    return st.lists(st.integers(0, 1000), min_size=n, max_size=n).map(
        lambda counts: [c - p for c, p in zip(counts, [0, *counts])]
    )


@st.composite
def histograms(draw: st.DrawFn) -> Histogram:
    is_float = draw(st.booleans())
    custom = draw(st.booleans())
    schema = -53 if custom else draw(st.integers(-4, 8))
    sides = {}
    for side in (("positive",) if custom else ("negative", "positive")):
        lengths = draw(st.lists(st.integers(0, 4), max_size=3))
        offsets = [draw(st.integers(-5, 5))] + [draw(st.integers(0, 5)) for _ in lengths[1:]]
        sides[side + "_spans"] = [BucketSpan(o, n) for o, n in zip(offsets, lengths)]
        total = sum(lengths)
        if is_float:
            sides[side + "_counts"] = draw(st.lists(FLOATS, min_size=total, max_size=total))
        else:
            sides[side + "_deltas"] = draw(deltas_for(total))
    return Histogram(
        count=draw(FLOATS) if is_float else draw(st.integers(0, (1 << 64) - 1)),
        zero_count=draw(FLOATS) if is_float else draw(st.integers(0, 1 << 40)),
        sum=draw(FLOATS),
        schema=schema,
        zero_threshold=draw(FLOATS),
        reset_hint=draw(st.sampled_from(ResetHint)),
        timestamp_ms=draw(INT64),
        custom_values=draw(st.lists(FLOATS, max_size=4)) if custom else (),
        **sides,
    )


EXEMPLARS = st.builds(
    Exemplar,
    st.dictionaries(LABEL_NAME, st.text(max_size=10), max_size=3),
    FLOATS,
    timestamp_ms=INT64,
)
METADATA = st.builds(
    MetricMetadata,
    st.sampled_from(MetricType),
    st.text(max_size=20),
    st.text(max_size=40),
    st.text(max_size=10),
)


@st.composite
def requests(draw: st.DrawFn) -> WriteRequest:
    series = [
        TimeSeries(
            draw(label_dicts()),
            draw(samples()),
            exemplars=draw(st.lists(EXEMPLARS, max_size=2)),
            histograms=draw(st.lists(histograms(), max_size=2)),
        )
        for _ in range(draw(st.integers(0, 5)))
    ]
    return WriteRequest(series, draw(st.lists(METADATA, max_size=3)))


def test_known_bytes(kernels) -> None:
    """A hand-checked encoding: labels sorted, fields in order, zero fields left out."""
    req = WriteRequest([TimeSeries({"job": "a", "__name__": "up"}, [Sample(0.0, timestamp_ms=0), Sample(1.0, timestamp_ms=1000)])])
    expected = bytes.fromhex(
        "0a2a"  # timeseries, 42 bytes
        "0a0e" "0a085f5f6e616d655f5f" "12027570"  # __name__="up"
        "0a08" "0a036a6f62" "120161"  # job="a"
        "1200"  # 0.0 @ 0: an empty Sample
        "120c" "09000000000000f03f" "10e807"  # 1.0 @ 1000
    )
    assert encode_with(kernels, req, compress=False) == expected
    assert to_pb(req).SerializeToString() == expected


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests())
def test_identical_to_official_protobuf(req: WriteRequest) -> None:
    reference = to_pb(req).SerializeToString()
    for kernels in BACKENDS:
        assert encode_with(kernels, req, compress=False) == reference, kernels.name


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests())
def test_round_trip_and_payload(req: WriteRequest) -> None:
    payloads = [encode_with(k, req, compress=True) for k in BACKENDS]
    raw = encode_with(BACKENDS[0], req, compress=False)
    for payload in payloads:  # the backends' snappy bytes may differ; what they decompress to may not
        assert_decompresses_to(payload, raw)
        assert decode_payload(payload) == req
    assert decode(raw) == req
    # and the official library reads our bytes as the same message
    assert PB["WriteRequest"].FromString(raw) == to_pb(req)


@settings(max_examples=examples(100), deadline=None)
@given(requests())
def test_decode_reads_official_bytes(req: WriteRequest) -> None:
    assert decode(to_pb(req).SerializeToString()) == req


def test_decode_skips_unknown_fields() -> None:
    req = WriteRequest([TimeSeries({"__name__": "x"}, [Sample(2.5, timestamp_ms=7)])])
    raw = bytearray(to_pb(req).SerializeToString())
    # unknown varint field 9 at top level, unknown fixed32 field 10, unknown bytes field 11
    raw += b"\x48\x05" + b"\x55\x01\x02\x03\x04" + b"\x5a\x03abc"
    assert decode(bytes(raw)) == req


def test_special_values_bit_exact(kernels) -> None:
    values = [math.nan, STALE_NAN, math.inf, -math.inf, -0.0, 0.0, 5e-324]
    req = WriteRequest([TimeSeries({"__name__": "v"}, [Sample(v, timestamp_ms=i + 1) for i, v in enumerate(values)])])
    back = decode(encode_with(kernels, req, compress=False)).timeseries[0].samples
    assert [struct.pack("<d", s.value) for s in back] == [struct.pack("<d", v) for v in values]
    assert is_stale_nan(back[1].value) and not is_stale_nan(back[0].value)


@pytest.mark.parametrize(
    "labels, problem",
    [
        ({}, "no __name__"),
        ({"job": "x"}, "no __name__"),
        ({"__name__": "up", "": "x"}, "empty name"),
        ({"__name__": "up", "job": ""}, "empty value"),
        ({"__name__": "up", "bad-name": "x"}, "label name 'bad-name' is invalid"),
        ({"__name__": "up", "é": "x"}, "is invalid"),
        ({"__name__": "1up"}, "metric name '1up' is invalid"),
        ([("__name__", "up"), ("job", "a"), ("job", "b")], "duplicate label name 'job'"),
        ({"__name__": "up", "job": "\ud800"}, "not valid Unicode"),
        ({"__name__": "up", "job": 5}, "must be str"),
    ],
)
def test_invalid_labels_named(kernels, labels, problem) -> None:
    good = TimeSeries({"__name__": "ok"}, [Sample(1, timestamp_ms=1)])
    bad = TimeSeries(labels, [Sample(1, timestamp_ms=1)])
    with pytest.raises(SeriesError, match=problem) as info:
        encode_with(kernels, WriteRequest([good, bad]), compress=False)
    assert info.value.index == 1
    assert str(info.value).startswith("series 1")


def test_samples_out_of_order_named(kernels) -> None:
    series = [
        TimeSeries({"__name__": "a"}, [Sample(1, timestamp_ms=5)]),
        TimeSeries({"__name__": "b", "x": "y"}, [Sample(1, timestamp_ms=5), Sample(2, timestamp_ms=5)]),
    ]
    with pytest.raises(SeriesError) as info:
        encode_with(kernels, WriteRequest(series), compress=False)
    assert info.value.index == 1
    assert "b{x='y'}" in str(info.value) and "must increase" in str(info.value)


def test_non_series_rejected(kernels) -> None:
    with pytest.raises(ValueError, match="must be a TimeSeries"):
        encode_with(kernels, WriteRequest(["nope"]), compress=False)  # type: ignore[list-item]
    with pytest.raises(SeriesError, match="Sample objects"):
        encode_with(kernels, WriteRequest([TimeSeries({"__name__": "a"}, [1.0])]), compress=False)  # type: ignore[list-item]


def test_label_set_cache_reused(kernels) -> None:
    labels = LabelSet({"__name__": "up", "job": "a"})
    first = encode_with(kernels, WriteRequest([TimeSeries(labels, sample=Sample(1, timestamp_ms=1))]), compress=False)
    assert labels._pb is not None
    cached = labels._pb
    again = encode_with(kernels, WriteRequest([TimeSeries(labels, sample=Sample(1, timestamp_ms=1))]), compress=False)
    assert again == first and labels._pb is cached
    plain = encode_with(kernels, WriteRequest([TimeSeries({"job": "a", "__name__": "up"}, sample=Sample(1, timestamp_ms=1))]), compress=False)
    assert plain == first


def test_labels_given_as_pairs_and_labels() -> None:
    a = TimeSeries([Label("job", "x"), Label("__name__", "m")])
    b = TimeSeries([("__name__", "m"), ("job", "x")])
    c = TimeSeries({"job": "x", "__name__": "m"})
    assert a.labels == b.labels == c.labels == (Label("__name__", "m"), Label("job", "x"))


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=200))
def test_decode_garbage_only_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError:
        pass


@settings(max_examples=examples(300), deadline=None)
@given(requests(), st.data())
def test_decode_mutated_only_decode_error(req: WriteRequest, data: st.DataObject) -> None:
    raw = bytearray(to_pb(req).SerializeToString())
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode(bytes(raw[:cut]))
    except DecodeError:
        pass


def test_series_set_request(kernels) -> None:
    from promwrite import SeriesSet

    labels = [{"__name__": "cpu", "core": str(i)} for i in range(3)]
    series = SeriesSet(labels)
    request = series.request([1.5, math.nan, -0.0], timestamp_ms=1234)
    fast = encode_with(kernels, request, compress=True)
    plain = WriteRequest([TimeSeries(lb, sample=Sample(v, timestamp_ms=1234)) for lb, v in zip(labels, [1.5, math.nan, -0.0])])
    assert fast == encode_with(kernels, plain, compress=True)
    assert request.timeseries == plain.timeseries  # built on demand, same content
    per_series = series.request([1, 2, 3], timestamps_ms=[5, 6, 7])
    assert [ts.samples[0].timestamp_ms for ts in per_series.timeseries] == [5, 6, 7]


def test_series_set_checks() -> None:
    from promwrite import SeriesSet

    with pytest.raises(SeriesError, match="series 1 .*duplicate"):
        SeriesSet([{"__name__": "a"}, [("__name__", "b"), ("x", "1"), ("x", "2")]])
    series = SeriesSet([{"__name__": "a"}, {"__name__": "b"}])
    with pytest.raises(ValueError, match="2 series but 1 values"):
        series.request([1.0])
    with pytest.raises(ValueError, match="must be numbers"):
        series.request(["x", "y"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not both"):
        series.request([1, 2], timestamp_ms=1, timestamps_ms=[1, 2])


def test_series_set_request_edited_after_building(kernels) -> None:
    """Once `timeseries` is looked at, edits to it are what gets encoded."""
    from promwrite import SeriesSet

    request = SeriesSet([{"__name__": "a"}]).request([1.0], timestamp_ms=1)
    request.timeseries.append(TimeSeries({"__name__": "b"}, sample=Sample(2, timestamp_ms=1)))
    assert [ts.labels[0].value for ts in decode(encode_with(kernels, request, compress=False)).timeseries] == ["a", "b"]


def test_samples_as_pairs(kernels) -> None:
    as_samples = WriteRequest([TimeSeries({"__name__": "a"}, [Sample(1.5, timestamp_ms=1), Sample(-2, timestamp_ms=2)])])
    as_pairs = WriteRequest([TimeSeries({"__name__": "a"}, [(1.5, 1), (-2, 2)])])
    assert encode_with(kernels, as_pairs, compress=True) == encode_with(kernels, as_samples, compress=True)
    assert as_pairs == as_samples


@pytest.mark.parametrize(
    "pair, problem",
    [
        (("1.5", 1), "value must be a number"),
        ((1.5, 1.0), "timestamp must be int milliseconds"),
        ((1.5, 1 << 63), "outside the int64 range"),
        ((10**400, 2), "value 1000.*too large for a float"),
        ((1.5,), "pairs"),
        (1.5, "pairs"),
    ],
)
@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_bad_pairs_named(kernels, pair, problem, protocol) -> None:
    series = [TimeSeries({"__name__": "ok"}, [(1.0, 1)]), TimeSeries({"__name__": "bad"}, [(1.0, 1), pair])]
    with pytest.raises(SeriesError, match=problem) as info:
        encode_with(kernels, WriteRequest(series), compress=False, protocol=protocol)
    assert info.value.index == 1 and "series 1 bad{}: " in str(info.value)


def test_exemplar_label_not_unicode_is_a_series_error(kernels) -> None:
    bad = TimeSeries({"__name__": "x", "job": "a"}, [(1.0, 5)], exemplars=[Exemplar({"trace_id": "\ud800"}, 1.0, timestamp_ms=1)])
    request = WriteRequest([TimeSeries({"__name__": "ok"}, [(1.0, 5)]), bad])
    for protocol in ("1.0", "2.0"):
        with pytest.raises(SeriesError, match="series 1 x{job='a'}: exemplar .*not valid Unicode"):
            encode_with(kernels, request, compress=False, protocol=protocol)


@pytest.mark.parametrize("where", ["request", "series"])
def test_metadata_help_not_unicode_is_a_series_error(kernels, where) -> None:
    meta = MetricMetadata(MetricType.COUNTER, "x", "help \ud800")
    series = [TimeSeries({"__name__": "ok"}, [(1.0, 5)]), TimeSeries({"__name__": "x"}, [(1.0, 5)])]
    if where == "series":
        series[1] = TimeSeries({"__name__": "x"}, [(1.0, 5)], metadata=meta)
    request = WriteRequest(series, metadata=[meta] if where == "request" else [])
    for protocol in ("1.0", "2.0"):
        with pytest.raises(SeriesError, match="series 1 x{}: .*not valid Unicode"):
            encode_with(kernels, request, compress=False, protocol=protocol)
