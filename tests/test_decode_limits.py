"""DecodeLimits: what one request may hold, on both backends and through the embedded Receiver.

A hostile body inside every size limit (empty series: 2 bytes each, 0.8 MB
of snappy for 16 MiB) once took 37 s and 2.4 GB to decode; now it is refused
after the bytes that exceed the estimated memory budget. Timings and peak
memory are measured by bench/decode_bomb.py, not asserted here.
"""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from promwrite import DecodeLimitError, DecodeLimits, Sample, TimeSeries, WriteRequest, _pysnappy
from promwrite.codec import decode, decode_payload, encode_with
from promwrite.decoder import decode_payload_with, decode_with
from promwrite.errors import DecodeError
from promwrite.model import Exemplar, Histogram, MetricMetadata
from promwrite.receiver import Receiver

BOMB_MIB = 4


def bomb(protocol: str, mib: int = BOMB_MIB) -> bytes:
    """A snappy body of empty series (1.0: ``0a00``, 2.0: ``2a00``) that decompresses to `mib` MiB."""
    unit = b"\x0a\x00" if protocol == "1.0" else b"\x2a\x00"
    return _pysnappy.compress(unit * (mib << 19))


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_empty_series_bomb_refused(kernels: Any, protocol: str) -> None:
    with pytest.raises(DecodeLimitError, match="max_expansion"):
        decode_payload_with(kernels, bomb(protocol), None, protocol)


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_bomb_refused_by_the_public_entry_points(protocol: str) -> None:
    with pytest.raises(DecodeLimitError):
        decode_payload(bomb(protocol), protocol=protocol)
    with pytest.raises(DecodeLimitError):
        decode(_pysnappy.decompress(bomb(protocol), 1 << 30), protocol, limits=DecodeLimits())


def test_decompressed_size_refused_before_decompressing(kernels: Any) -> None:
    small = DecodeLimits(max_bytes=100)
    with pytest.raises(DecodeLimitError, match="max_bytes"):
        decode_payload_with(kernels, _pysnappy.compress(bytes(101)), None, "1.0", small)
    with pytest.raises(DecodeLimitError, match="max_bytes"):
        decode_with(kernels, bytes(101), "1.0", small)


def _request() -> WriteRequest:
    """2 series, 4 labels, 3 samples, 1 exemplar (1 label), 1 histogram (3 buckets), 1 metadata."""
    return WriteRequest(
        [
            TimeSeries({"__name__": "a", "job": "x"}, [Sample(1.0, timestamp_ms=1), Sample(2.0, timestamp_ms=2)],
                       exemplars=[Exemplar({"trace_id": "t"}, 1.0, timestamp_ms=1)]),
            TimeSeries({"__name__": "b", "job": "x"}, [Sample(3.0, timestamp_ms=3)],
                       histograms=[Histogram.from_buckets(schema=0, sum=1.0, positive={0: 1, 1: 2}, time=1)]),
        ],
        [MetricMetadata(1, "a", "help")],
    )  # fmt: skip


@pytest.mark.parametrize(
    "field, holds",
    [("max_series", 2), ("max_labels", 5), ("max_samples", 3), ("max_exemplars", 1),
     ("max_histograms", 1), ("max_buckets", 3), ("max_metadata", 1)],
)  # fmt: skip
def test_each_count_limit(kernels: Any, field: str, holds: int) -> None:
    raw = encode_with(kernels, _request(), compress=False)
    assert decode_with(kernels, raw, "1.0", DecodeLimits(**{field: holds})) == _request()
    with pytest.raises(DecodeLimitError, match=field) as info:
        decode_with(kernels, raw, "1.0", DecodeLimits(**{field: holds - 1}))
    assert isinstance(info.value, DecodeError) and isinstance(info.value, ValueError)


def test_expansion_limit(kernels: Any) -> None:
    raw = encode_with(kernels, _request(), compress=False)
    decode_with(kernels, raw, "1.0", DecodeLimits(max_expansion=0))  # under the 64 KiB floor
    many = WriteRequest([TimeSeries({"__name__": f"m{i}"}, [(1.0, 1)]) for i in range(2000)])
    raw = encode_with(kernels, many, compress=False)
    assert len(decode_with(kernels, raw, "1.0").timeseries) == 2000
    with pytest.raises(DecodeLimitError, match="max_expansion"):
        decode_with(kernels, raw, "1.0", DecodeLimits(max_expansion=0))


def test_limits_checked() -> None:
    with pytest.raises(ValueError, match="max_series"):
        decode(b"", limits=DecodeLimits(max_series=-1))
    with pytest.raises(TypeError, match="DecodeLimits"):
        decode(b"", limits={"max_series": 1})  # type: ignore[arg-type]


def test_real_sender_sizes_accepted(kernels: Any) -> None:
    """10,000 series of 9 labels (5x what Prometheus sends at most in one request) and 2.0 as well."""
    from promwrite.demo import node_exporter_labels

    req = WriteRequest([TimeSeries(labels, [(0.5, 1_700_000_000_000)]) for labels in node_exporter_labels(10_000)])
    for protocol in ("1.0", "2.0"):
        body = encode_with(kernels, req, compress=True, protocol=protocol)
        assert len(decode_payload_with(kernels, body, None, protocol).timeseries) == 10_000


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_receiver_refuses_bomb(protocol: str) -> None:
    """The embedded Receiver answers a bomb with 413 naming the limit."""
    body = bomb(protocol)
    content_type = "application/x-protobuf" + (";proto=io.prometheus.write.v2.Request" if protocol == "2.0" else "")
    with Receiver() as receiver:
        host, port = receiver._server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request("POST", "/api/v1/write", body,
                         {"Content-Type": content_type, "Content-Encoding": "snappy"})  # fmt: skip
            answer = conn.getresponse()
            text = answer.read().decode()
        finally:
            conn.close()
        assert answer.status == 413, (answer.status, text)
        assert "DecodeLimits.max_expansion" in text
        assert receiver.received == []


def _field(key: int, payload: bytes) -> bytes:
    return bytes([key]) + _pysnappy.varint(len(payload)) + payload


# Elements that cost little memory for their 2 bytes but much time to decode: a MiB of them
# once passed max_expansion (512k spans, 335k metadata, 167k exemplars) and took over a second
# to decode; they are now counted by their time too. Each body: more than the limit now allows,
# fewer than it once did.
SLOW_ELEMENTS = {
    "spans": _field(0x0A, _field(0x22, b"\x5a\x00" * 300_000)),  # one histogram's positive spans
    "metadata": b"\x1a\x00" * 300_000,  # 1.0 WriteRequest.metadata
    "exemplars": _field(0x0A, b"\x1a\x00" * 140_000),  # one series' exemplars
}


@pytest.mark.parametrize("what", list(SLOW_ELEMENTS))
def test_elements_slow_to_decode_count_their_time(kernels: Any, what: str) -> None:
    body = SLOW_ELEMENTS[what]
    body += b"\x7a" + _pysnappy.varint((1 << 20) - len(body) - 8) + bytes((1 << 20) - len(body) - 8)  # to 1 MiB
    with pytest.raises(DecodeLimitError, match="max_expansion"):
        decode_with(kernels, body, "1.0")
    decode_with(kernels, body, "1.0", DecodeLimits(max_expansion=200))  # a body in bounds otherwise


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_big_native_histograms_accepted(kernels: Any, protocol: str) -> None:
    """600 series of a 160-bucket histogram (1 byte a bucket on the wire): once refused as 40+ bytes a byte."""
    histogram = Histogram.from_buckets(schema=3, sum=1.0, positive={i: 1 + i % 3 for i in range(160)}, time=1)
    req = WriteRequest([TimeSeries({"__name__": "h", "i": str(i)}, histograms=[histogram]) for i in range(600)])
    raw = encode_with(kernels, req, compress=False, protocol=protocol)
    assert len(raw) > 100_000  # well over the 64 KiB any request may take
    assert decode_with(kernels, raw, protocol) == req
