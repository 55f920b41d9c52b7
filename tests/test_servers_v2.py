"""Remote write 2.0 against real 1.0-only receivers: Prometheus 2.42 and VictoriaMetrics.

Neither takes io.prometheus.write.v2.Request: both read the body as a 1.0
WriteRequest, find none of its fields (2.0 reserves 1-3), store nothing and
answer 204 without the written-count headers. The client sees that, sends the
same request again as 1.0, and keeps 1.0 for the endpoint; every sample is
then queryable. With fallback off, the error says why and nothing is stored.
"""

from __future__ import annotations

from typing import List

import pytest

from promwrite import (
    Exemplar,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    UnsupportedProtocolError,
    WriteRequest,
    codec,
)

import servers

from .test_servers import UNICODE_LABELS, client_for, exported, metric_name, now_ms

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]


def v2_request(name: str, t0: int) -> WriteRequest:
    """Series that use what 2.0 adds: start timestamps, metadata per series and per family, exemplars."""
    series: List[TimeSeries] = []
    for shard in range(3):
        series.append(
            TimeSeries(
                {"__name__": name + "_total", "shard": str(shard), **UNICODE_LABELS},
                [Sample(shard * 100 + i + 0.5, timestamp_ms=t0 + i * 10_000) for i in range(5)],
                exemplars=[Exemplar({"trace_id": f"t{shard}"}, shard * 100 + 0.5, timestamp_ms=t0)],
                start_timestamp_ms=t0 - 3_600_000,
            )
        )
    series.append(
        TimeSeries({"__name__": name + "_temp"}, [Sample(21.5, timestamp_ms=t0)],
                   metadata=MetricMetadata(MetricType.GAUGE, help="Temperature.", unit="celsius"))  # fmt: skip
    )
    return WriteRequest(series, [MetricMetadata(MetricType.COUNTER, name, "Things counted.")])


def stored(server: servers.Server, name: str) -> dict:
    return {
        tuple(sorted(s["metric"].items())): s["samples"]
        for s in exported(server, f'{{__name__=~"{name}_.*"}}')
    }


def test_v2_falls_back_and_every_sample_is_stored(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    t0 = now_ms() - 120_000
    req = v2_request(name, t0)
    with client_for(remote_server, protocol="2.0") as client:
        response = client.write(req)
        assert response.status // 100 == 2
        assert response.protocol == "1.0" and client.protocol == "1.0"  # fell back, and stays there
        again = client.write(WriteRequest([TimeSeries({"__name__": name + "_later"}, [Sample(7, timestamp_ms=t0)])]))
        assert again.protocol == "1.0"
    got = stored(remote_server, name)
    expected = {
        tuple(sorted(dict(ts.labels).items())): [(s.timestamp_ms, s.value) for s in ts.samples]
        for ts in req.timeseries
    }
    expected[(("__name__", name + "_later"),)] = [(t0, 7.0)]
    assert got == expected


def test_v2_without_fallback_says_why_and_stores_nothing(
    remote_server: servers.Server, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, remote_server)
    t0 = now_ms() - 120_000
    with client_for(remote_server, protocol="2.0", fallback=False) as client:
        with pytest.raises(UnsupportedProtocolError) as info:
            client.write(v2_request(name, t0))
        assert client.protocol == "2.0"
    message = str(info.value)
    assert "does not take remote write 2.0" in message
    assert "without any X-Prometheus-Remote-Write-*-Written header" in message
    assert "protocol='1.0'" in message and "fallback=True" in message
    assert stored(remote_server, name) == {}  # the 2.0 body was read as an empty 1.0 request


def test_v2_payload_sent_as_is_is_read_as_empty(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    """What the fallback detects: a 1.0 receiver answers a 2.0 body with a bare 2xx and stores nothing."""
    name = metric_name(request, remote_server)
    payload = codec.encode_payload(v2_request(name, now_ms() - 60_000), protocol="2.0")
    with client_for(remote_server) as client:
        response = client.send(payload, headers={"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
    assert response.status // 100 == 2 and not response.reports_written
    assert stored(remote_server, name) == {}
