"""The client and the embedded receiver speaking remote write 2.0, and the fallback to 1.0."""

from __future__ import annotations

import logging

import pytest

from promwrite import (
    Client,
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    UnsupportedProtocolError,
    WriteError,
    WriteRequest,
    codec,
    snappy,
)
from promwrite.client import PROTOCOL_HEADERS_V2
from promwrite.receiver import Receiver, protocol_of

from .faulty import OK, FaultyServer
from .prompb2_ref import as_v2

V2_CONTENT_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
WRITTEN = {
    "X-Prometheus-Remote-Write-Samples-Written": "1",
    "X-Prometheus-Remote-Write-Histograms-Written": "0",
    "X-Prometheus-Remote-Write-Exemplars-Written": "0",
}
V2_OK = ("status", 204, "", WRITTEN)


def one(name: str = "up", value: float = 1.0, ts: int = 1_700_000_000_000) -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": name, "job": "t"}, sample=Sample(value, timestamp_ms=ts))])


def rich() -> WriteRequest:
    """Everything 2.0 carries: metadata per series and per family, start timestamps, exemplars, histograms."""
    t = 1_700_000_000_000
    h = Histogram.from_buckets(schema=3, sum=12.5, positive={0: 4, 1: 7, 5: 2}, timestamp_ms=t)
    custom = Histogram(count=3, sum=1.5, schema=-53, positive_spans=[(0, 2)], positive_deltas=[1, 1],
                       custom_values=[0.5, 1.0], timestamp_ms=t)  # fmt: skip
    return WriteRequest(
        [
            TimeSeries({"__name__": "http_requests_total", "code": "200"},
                       [Sample(1027, timestamp_ms=t - 15_000), Sample(1043, timestamp_ms=t)],
                       exemplars=[Exemplar({"trace_id": "4bf92f3577b34da6"}, 1043, timestamp_ms=t)],
                       start_timestamp_ms=t - 3_600_000),
            TimeSeries({"__name__": "http_requests_total", "code": "500"}, [Sample(3, timestamp_ms=t)],
                       start_timestamp_ms=t - 3_600_000),
            TimeSeries({"__name__": "latency_seconds"}, histograms=[h, ], start_timestamp_ms=t - 60_000,
                       metadata=MetricMetadata(MetricType.HISTOGRAM, help="Latency.", unit="seconds")),
            TimeSeries({"__name__": "custom_seconds"}, histograms=[custom]),
            TimeSeries({"__name__": "temperature"}, [Sample(21.5, timestamp_ms=t)]),
        ],
        [MetricMetadata(MetricType.COUNTER, "http_requests", "Requests served."),
         MetricMetadata(MetricType.GAUGE, "temperature", "Room temperature.", "celsius")],
    )  # fmt: skip


def headers_of(arrival) -> dict:
    return {k.lower(): v for k, v in arrival.headers.items()}


def test_v2_headers_exact_and_counts_exposed() -> None:
    with FaultyServer([V2_OK]) as server, Client(server.url, protocol="2.0") as client:
        response = client.write(one())
        arrival = server.arrivals[0]
    headers = headers_of(arrival)
    assert headers["content-type"] == V2_CONTENT_TYPE  # exactly: no space after ";"
    assert headers["x-prometheus-remote-write-version"] == "2.0.0"
    assert headers["content-encoding"] == "snappy"
    assert codec.decode(snappy.decompress(arrival.body), protocol="2.0") == one()
    assert response.protocol == "2.0" and client.protocol == "2.0"
    assert (response.samples_written, response.histograms_written, response.exemplars_written) == (1, 0, 0)
    assert "samples_written=1" in repr(response)


def test_v2_headers_win_over_callers_headers() -> None:
    with FaultyServer([V2_OK]) as server:
        with Client(server.url, protocol="2.0", headers={"Content-Type": "text/plain"}) as client:
            client.write(one(), headers={"X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": "a"})
        headers = headers_of(server.arrivals[0])
    assert headers["content-type"] == V2_CONTENT_TYPE
    assert headers["x-prometheus-remote-write-version"] == "2.0.0"
    assert headers["x-scope-orgid"] == "a"


def test_embedded_receiver_gets_v2_whole_and_counts_come_back() -> None:
    request = rich()
    with Receiver() as receiver, Client(receiver.url, protocol="2.0") as client:
        response = client.write(request)
        assert receiver.received_protocols == ["2.0"]
        assert receiver.received == [as_v2(request)]
    assert response.status == 204 and response.protocol == "2.0"
    assert response.samples_written == 4
    assert response.histograms_written == 2
    assert response.exemplars_written == 1
    got = receiver.received[0].timeseries
    assert got[0].metadata == MetricMetadata(MetricType.COUNTER, "", "Requests served.")
    assert got[0].start_timestamp_ms == 1_700_000_000_000 - 3_600_000
    assert got[3].metadata is None and got[4].metadata.unit == "celsius"


def test_embedded_receiver_still_takes_v1() -> None:
    with Receiver() as receiver, Client(receiver.url) as client:
        response = client.write(one())
        assert receiver.received == [one()] and receiver.received_protocols == ["1.0"]
    assert response.protocol == "1.0" and response.samples_written is None and not response.reports_written


@pytest.mark.parametrize(
    "script, why",
    [
        ([OK], "without any X-Prometheus-Remote-Write-*-Written header"),
        ([("status", 415, "unsupported content type", {}), OK], "HTTP 415"),
    ],
    ids=["2xx-without-counts", "415"],
)
def test_fallback_resends_as_v1_and_remembers(script, why, caplog) -> None:
    with FaultyServer(script) as server, Client(server.url, protocol="2.0") as client:
        with caplog.at_level(logging.INFO, logger="promwrite"):
            response = client.write(one(value=1))
        assert why in caplog.text and "as 1.0 from now on" in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the caller sees it
        assert response.protocol == "1.0" and client.protocol == "1.0"
        client.write(one(value=2))
        arrivals = server.arrivals
    types = [headers_of(a)["content-type"] for a in arrivals]
    versions = [headers_of(a)["x-prometheus-remote-write-version"] for a in arrivals]
    assert types == [V2_CONTENT_TYPE, "application/x-protobuf", "application/x-protobuf"]
    assert versions == ["2.0.0", "0.1.0", "0.1.0"]
    assert [a.request for a in arrivals[1:]] == [one(value=1), one(value=2)]


@pytest.mark.parametrize(
    "script, status, why",
    [
        ([OK], 204, "answered HTTP 204 without any X-Prometheus-Remote-Write-*-Written header"),
        ([("status", 415, "unsupported content type", {})], 415, "HTTP 415 Unsupported Media Type (unsupported content type)"),
    ],
    ids=["2xx-without-counts", "415"],
)
def test_no_fallback_says_why(script, status, why) -> None:
    with FaultyServer(script) as server, Client(server.url, protocol="2.0", fallback=False) as client:
        with pytest.raises(UnsupportedProtocolError) as info:
            client.write(one())
        assert len(server.arrivals) == 1 and client.protocol == "2.0"
    error = info.value
    assert isinstance(error, WriteError) and error.status == status and not error.retryable
    assert why in str(error) and "remote write 2.0" in str(error) and "protocol='1.0'" in str(error)


def test_strict_v1_receiver_415_then_v1() -> None:
    request = rich()
    with Receiver(protocols=("1.0",)) as receiver, Client(receiver.url, protocol="2.0") as client:
        response = client.write(request)
        assert receiver.received_protocols == ["1.0"]
        got = receiver.received[0]
    assert response.protocol == "1.0"
    # 1.0 carries the samples and histograms; per-series metadata joins the request's
    assert [ts.samples for ts in got.timeseries] == [ts.samples for ts in request.timeseries]
    assert MetricMetadata(MetricType.HISTOGRAM, "latency_seconds", "Latency.", "seconds") in got.metadata


def test_other_errors_do_not_fall_back() -> None:
    script = [("status", 400, "out of order sample", WRITTEN)]
    with FaultyServer(script) as server, Client(server.url, protocol="2.0") as client:
        with pytest.raises(WriteError) as info:
            client.write(one())
        assert len(server.arrivals) == 1 and client.protocol == "2.0"
    assert info.value.status == 400 and not isinstance(info.value, UnsupportedProtocolError)


def test_send_v2_payload_falls_back_by_decoding() -> None:
    payload = codec.encode_payload(rich(), protocol="2.0")
    with FaultyServer([OK]) as server, Client(server.url) as client:
        response = client.send(payload, protocol="2.0")
        arrivals = server.arrivals
    assert response.protocol == "1.0" and len(arrivals) == 2
    assert arrivals[1].request == codec.decode(codec.encode(as_v2(rich())))


def test_protocol_checked() -> None:
    with pytest.raises(ValueError, match="protocol must be"):
        Client("http://127.0.0.1:1/api/v1/write", protocol="v2")
    assert PROTOCOL_HEADERS_V2["Content-Type"] == V2_CONTENT_TYPE


@pytest.mark.parametrize(
    "content_type, protocol",
    [
        (None, "1.0"),
        ("application/x-protobuf", "1.0"),
        ("application/x-protobuf;proto=prometheus.WriteRequest", "1.0"),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0"),
        ("Application/X-Protobuf; proto=io.prometheus.write.v2.Request", "2.0"),
        ('application/x-protobuf;proto="io.prometheus.write.v2.Request"', "2.0"),
        ("application/x-protobuf;proto=io.prometheus.write.v3.Request", None),
        ("application/json", None),
    ],
)
def test_receiver_content_negotiation(content_type, protocol) -> None:
    assert protocol_of(content_type) == protocol


def test_receiver_refuses_unknown_content_and_bad_v2() -> None:
    import http.client
    import urllib.parse

    with Receiver() as receiver:
        url = urllib.parse.urlsplit(receiver.url)
        for content_type, body, status in [
            ("application/x-protobuf;proto=foo.Bar", snappy.compress(b""), 415),
            (V2_CONTENT_TYPE, snappy.compress(b"\x22\x01\xff"), 400),  # a symbol that is not UTF-8
        ]:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            conn.request("POST", url.path, body=body, headers={"Content-Type": content_type, "Content-Encoding": "snappy"})
            answer = conn.getresponse()
            answer.read()
            conn.close()
            assert answer.status == status
            if status == 400:  # a 2.0 answer carries the counts, even when nothing was written
                assert answer.headers["X-Prometheus-Remote-Write-Samples-Written"] == "0"
        assert receiver.received == []
