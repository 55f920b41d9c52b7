"""End to end against real servers: write through promwrite.Client, read back.

The servers (tests/servers.py, fixtures in conftest.py) are a real Prometheus
2.x with its remote-write receiver and a real single-node VictoriaMetrics, both
with basic auth. Every test writes its own series (the metric name carries the
test's name) with timestamps in the last few minutes, so tests are independent
and may run in any order.

What the servers do with special values (seen with Prometheus 2.42 and
VictoriaMetrics 1.79):
- Prometheus stores NaN and returns it as "NaN"; it stores the staleness
  marker, leaves it out of range vectors, and an instant query after it
  returns no sample for the series.
- VictoriaMetrics drops plain NaN samples at ingestion; it stores the staleness
  marker (``null`` in /api/v1/export) and an instant query after it returns
  nothing for the series.
"""

from __future__ import annotations

import math
import re
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional

import pytest

import promwrite
from promwrite import (
    STALE_NAN,
    BasicAuth,
    BucketSpan,
    Client,
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    WriteError,
    WriteRequest,
)
from promwrite import _backend, codec

import servers

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

UNICODE_LABELS = {
    "city": "Zürich",
    "greeting": "こんにちは世界",
    "emoji": "📈 up & to the right",
    "quote": 'say "hi"\\n',
    "env": "prod",
}


# ---- helpers -------------------------------------------------------------------


def metric_name(request: pytest.FixtureRequest, server: servers.Server, suffix: str = "") -> str:
    """A metric name unique to this test (and parametrization) and server."""
    raw = f"pw_{server.kind}_{request.node.name}_{suffix}"
    return re.sub(r"[^a-zA-Z0-9_]", "_", raw)


def now_ms() -> int:
    return int(time.time() * 1000)


def client_for(server: servers.Server, **kw: Any) -> Client:
    kw.setdefault("auth", BasicAuth(server.username, server.password))
    kw.setdefault("timeout", 10.0)
    return Client(server.write_url, **kw)


def push(client: Client, request: WriteRequest, kernels: Optional[_backend.Kernels] = None) -> None:
    """Write `request` encoded by `kernels`: through Client.write for the backend
    promwrite chose at import, through Client.send of codec.encode_with otherwise."""
    if kernels is None or kernels.name == _backend.name:
        response = client.write(request)
    else:
        response = client.send(codec.encode_with(kernels, request, compress=True))
    assert 200 <= response.status < 300, response


def exported(server: servers.Server, selector: str) -> List[Dict[str, Any]]:
    """Raw stored samples per series: [{"metric": {...}, "samples": [(ms, value)]}].

    VictoriaMetrics: /api/v1/export, which also shows staleness markers (as
    STALE_NAN). Prometheus: the range vector ``selector[3h]``, which hides them.
    """
    server.flush()
    if isinstance(server, servers.VictoriaMetricsServer):
        return [
            {
                "metric": s["metric"],
                "samples": [
                    (t, STALE_NAN if v is None else v) for t, v in zip(s["timestamps"], s["values"])
                ],
            }
            for s in server.export(selector)
        ]
    return server.raw_samples(selector)


def instant(server: servers.Server, promql: str, at_ms: int) -> List[Dict[str, Any]]:
    server.flush()
    return server.query(promql, at_ms / 1000.0)["result"]


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---- round trip ------------------------------------------------------------------


def test_samples_and_unicode_labels_round_trip(
    remote_server: servers.Server, kernels: _backend.Kernels, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, remote_server)
    t0 = now_ms() - 120_000
    series = []
    for shard in range(3):
        labels = {"__name__": name, "shard": str(shard), **UNICODE_LABELS}
        samples = [Sample(shard * 100 + i + 0.25, timestamp_ms=t0 + i * 10_000) for i in range(5)]
        series.append(TimeSeries(labels, samples))
    with client_for(remote_server) as client:
        push(client, WriteRequest(timeseries=series), kernels)

    got = exported(remote_server, name)
    assert len(got) == 3
    by_shard = {s["metric"]["shard"]: s for s in got}
    for shard in range(3):
        entry = by_shard[str(shard)]
        assert entry["metric"] == {"__name__": name, "shard": str(shard), **UNICODE_LABELS}
        assert entry["samples"] == [(t0 + i * 10_000, shard * 100 + i + 0.25) for i in range(5)]

    # Labels with unicode values are selectable, and the instant value is the last sample.
    result = instant(remote_server, f'{name}{{greeting="こんにちは世界",shard="2"}}', t0 + 40_001)
    assert [r["value"][1] for r in result] == ["204.25"]


def test_many_series_one_request(
    remote_server: servers.Server, kernels: _backend.Kernels, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, remote_server)
    t = now_ms() - 90_000
    series = [
        TimeSeries({"__name__": name, "i": str(i)}, sample=Sample(float(i), timestamp_ms=t)) for i in range(500)
    ]
    with client_for(remote_server) as client:
        push(client, WriteRequest(timeseries=series), kernels)
    result = instant(remote_server, f"count({name})", t + 1)
    assert result[0]["value"][1] == "500"
    result = instant(remote_server, f"sum({name})", t + 1)
    assert float(result[0]["value"][1]) == sum(range(500))


def test_nan_inf_and_stale_marker(
    remote_server: servers.Server, kernels: _backend.Kernels, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, remote_server)
    t0 = now_ms() - 100_000
    values = [1.0, math.nan, math.inf, -math.inf, 2.5]
    stamps = [t0 + i * 10_000 for i in range(len(values))]
    stale_at = t0 + 50_000
    ended = TimeSeries(
        {"__name__": name, "case": "ended"},
        [Sample(v, timestamp_ms=t) for v, t in zip(values, stamps)],
    ).mark_stale(timestamp_ms=stale_at)
    assert promwrite.is_stale_nan(ended.samples[-1].value)
    nan_last = TimeSeries(
        {"__name__": name, "case": "nan_last"},
        [Sample(3.0, timestamp_ms=t0), Sample(math.nan, timestamp_ms=t0 + 10_000)],
    )
    with client_for(remote_server) as client:
        push(client, WriteRequest(timeseries=[ended, nan_last]), kernels)

    got = {s["metric"]["case"]: s["samples"] for s in exported(remote_server, name)}
    ended_got = got["ended"]
    if isinstance(remote_server, servers.VictoriaMetricsServer):
        # Plain NaN is dropped by VictoriaMetrics; the staleness marker is kept.
        expected = [(t, v) for t, v in zip(stamps, values) if not math.isnan(v)]
        assert ended_got[:-1] == expected
        assert ended_got[-1][0] == stale_at and promwrite.is_stale_nan(ended_got[-1][1])
        assert "nan_last" not in got or got["nan_last"] == [(t0, 3.0)]
    else:
        # Prometheus keeps NaN bit-for-bit as a value and hides the marker from range vectors.
        assert [t for t, _ in ended_got] == stamps
        assert all(same_float(a, b) for (_, a), b in zip(ended_got, values))
        assert math.isnan(got["nan_last"][1][1])
        # A plain NaN is a value: the instant query shows it ...
        last = instant(remote_server, f'{name}{{case="nan_last"}}', t0 + 10_001)
        assert [r["value"][1] for r in last] == ["NaN"]

    # ... while after the staleness marker the series is gone (both servers).
    before = instant(remote_server, f'{name}{{case="ended"}}', stamps[-1] + 1)
    assert [r["value"][1] for r in before] == ["2.5"]
    assert instant(remote_server, f'{name}{{case="ended"}}', stale_at + 1) == []


def test_native_histogram_and_exemplar_prometheus(
    prometheus: servers.PrometheusServer, kernels: _backend.Kernels, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, prometheus)
    t = now_ms() - 60_000
    # schema 0: bucket i is (2^(i-1), 2^i]; buckets 0, 1 and 3 as two spans.
    first = Histogram.from_buckets(schema=0, sum=20.5, positive={0: 2, 1: 3, 3: 1}, zero_count=1, timestamp_ms=t)
    assert first.positive_spans == (BucketSpan(0, 2), BucketSpan(1, 1))
    assert first.count == 7
    second = Histogram(
        count=12, sum=30.0, schema=0, zero_count=1, zero_threshold=2.938735877055719e-39,
        positive_spans=[BucketSpan(0, 2), BucketSpan(1, 1)], positive_deltas=[3, 1, -2],
        negative_spans=[BucketSpan(1, 1)], negative_deltas=[2], timestamp_ms=t + 10_000,
    )
    hist = TimeSeries({"__name__": name + "_hist", "city": "Zürich"}, histograms=[first, second])
    exemplar_at = t + 5_000
    with_exemplar = TimeSeries(
        {"__name__": name + "_total", "city": "Zürich"},
        [Sample(10.0, timestamp_ms=t), Sample(11.0, timestamp_ms=exemplar_at)],
        exemplars=[Exemplar({"trace_id": "4bf92f3577b34da6", "span": "ünï"}, 0.75, timestamp_ms=exemplar_at)],
    )
    with client_for(prometheus) as client:
        push(client, WriteRequest(timeseries=[hist, with_exemplar]), kernels)

    def scalar(promql: str, at: int) -> float:
        result = instant(prometheus, promql, at)
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    assert scalar(f"histogram_count({name}_hist)", t + 1) == 7
    assert scalar(f"histogram_sum({name}_hist)", t + 1) == 20.5
    assert scalar(f"histogram_count({name}_hist)", t + 10_001) == 12
    assert scalar(f"histogram_sum({name}_hist)", t + 10_001) == 30.0

    # The buckets as Prometheus reads them back: [rule, lower, upper, count].
    result = instant(prometheus, f"{name}_hist", t + 10_001)
    buckets = [(float(lo), float(hi), float(n)) for _, lo, hi, n in result[0]["histogram"][1]["buckets"]]
    assert buckets == [
        (-2.0, -1.0, 2.0),  # negative bucket 1 is [-2, -1)
        (-2.938735877055719e-39, 2.938735877055719e-39, 1.0),  # zero bucket
        (0.5, 1.0, 3.0),
        (1.0, 2.0, 4.0),
        (4.0, 8.0, 2.0),
    ]

    found = prometheus.query_exemplars(f"{name}_total", (t - 1000) / 1000, (t + 20_000) / 1000)
    assert len(found) == 1
    assert found[0]["seriesLabels"] == {"__name__": name + "_total", "city": "Zürich"}
    [ex] = found[0]["exemplars"]
    assert ex["labels"] == {"trace_id": "4bf92f3577b34da6", "span": "ünï"}
    assert float(ex["value"]) == 0.75
    assert round(float(ex["timestamp"]) * 1000) == exemplar_at


def test_metadata_is_accepted(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    req = WriteRequest(
        timeseries=[TimeSeries({"__name__": name}, sample=Sample(1.0, timestamp_ms=now_ms() - 30_000))],
        metadata=[MetricMetadata(MetricType.GAUGE, name, help="A gauge ✓", unit="bytes")],
    )
    with client_for(remote_server) as client:
        push(client, req)
    assert len(exported(remote_server, name)) == 1


def test_concurrent_writes_from_threads(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    t0 = now_ms() - 200_000
    errors: List[BaseException] = []
    with client_for(remote_server) as client:

        def worker(thread: int) -> None:
            try:
                for i in range(10):
                    ts = TimeSeries(
                        {"__name__": name, "thread": str(thread)},
                        sample=Sample(float(i), timestamp_ms=t0 + i * 1000),
                    )
                    client.write(WriteRequest(timeseries=[ts]))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    assert not errors, errors
    got = exported(remote_server, name)
    assert sorted(s["metric"]["thread"] for s in got) == [str(n) for n in range(6)]
    for s in got:
        assert s["samples"] == [(t0 + i * 1000, float(i)) for i in range(10)]


# ---- auth ----------------------------------------------------------------------


def test_basic_auth_in_url(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    user = urllib.parse.quote(remote_server.username, safe="")
    pw = urllib.parse.quote(remote_server.password, safe="")
    url = remote_server.write_url.replace("http://", f"http://{user}:{pw}@")
    client = Client(url)
    assert remote_server.password not in repr(client) and pw not in repr(client)
    with client:
        client.write(WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(1.0))]))
    assert len(exported(remote_server, name)) == 1


@pytest.mark.parametrize("auth", ["wrong_password", "wrong_user", "none"])
def test_bad_credentials_give_401(remote_server: servers.Server, auth: str, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    creds = {
        "wrong_password": BasicAuth(remote_server.username, "not-" + remote_server.password),
        "wrong_user": BasicAuth("intruder", remote_server.password),
        "none": None,
    }[auth]
    with client_for(remote_server, auth=creds) as client:
        with pytest.raises(WriteError) as info:
            client.write(WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(1.0))]))
    err = info.value
    assert err.status == 401
    assert err.retryable is False
    assert isinstance(err, promwrite.PromwriteError)
    assert remote_server.password not in str(err) and remote_server.password not in repr(err)
    assert exported(remote_server, name) == []


# ---- the server's 400 reaches the caller ---------------------------------------------


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"this is not snappy", "snappy"),
        # valid snappy (one 11-byte literal) around invalid protobuf (wire type 7)
        (b"\x0b\x28\xff\xff\xff garbage", "proto"),
    ],
    ids=["bad-snappy", "bad-protobuf"],
)
def test_garbage_payload_gives_400_with_server_message(
    remote_server: servers.Server, payload: bytes, words: str
) -> None:
    with client_for(remote_server) as client:
        with pytest.raises(WriteError) as info:
            client.send(payload)
    err = info.value
    assert err.status == 400, err
    assert err.retryable is False
    assert words in err.body.lower(), err.body
    assert words in str(err).lower()


def test_out_of_bounds_sample_gives_400_prometheus(
    prometheus: servers.PrometheusServer, kernels: _backend.Kernels, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, prometheus)
    with client_for(prometheus) as client:
        # A recent sample first, so that the head block's bounds are set.
        push(client, WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(1.0))]), kernels)
        too_old = now_ms() - 3 * 3600 * 1000
        with pytest.raises(WriteError) as info:
            push(
                client,
                WriteRequest(timeseries=[TimeSeries({"__name__": name + "_old"}, sample=Sample(1.0, timestamp_ms=too_old))]),
                kernels,
            )
    assert info.value.status == 400
    assert not info.value.retryable
    assert "out of bounds" in info.value.body


def test_out_of_order_sample_gives_400_prometheus(
    prometheus: servers.PrometheusServer, request: pytest.FixtureRequest
) -> None:
    name = metric_name(request, prometheus)
    t = now_ms() - 30_000
    with client_for(prometheus) as client:
        client.write(WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(2.0, timestamp_ms=t))]))
        with pytest.raises(WriteError) as info:
            client.write(
                WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(1.0, timestamp_ms=t - 1000))])
            )
    assert info.value.status == 400
    assert "out of order" in info.value.body


def test_extra_label_query_string_victoria_metrics(
    victoria_metrics: servers.VictoriaMetricsServer, request: pytest.FixtureRequest
) -> None:
    """The client keeps the URL's query string: VictoriaMetrics adds extra_label."""
    name = metric_name(request, victoria_metrics)
    url = victoria_metrics.write_url + "?extra_label=" + urllib.parse.quote("team=ops ✓")
    with Client(url, auth=BasicAuth(victoria_metrics.username, victoria_metrics.password)) as client:
        client.write(WriteRequest(timeseries=[TimeSeries({"__name__": name}, sample=Sample(5.0))]))
    [series] = exported(victoria_metrics, name)
    assert series["metric"] == {"__name__": name, "team": "ops ✓"}


# ---- the fixtures themselves ------------------------------------------------------


def test_servers_require_auth_for_queries(remote_server: servers.Server) -> None:
    status, _ = remote_server.request("GET", "/api/v1/query", {"query": "1"}, auth=False)
    assert status == 401
    data = remote_server.query("1+1")
    # Prometheus answers a scalar, VictoriaMetrics a one-element vector.
    value = data["result"][1] if data["resultType"] == "scalar" else data["result"][0]["value"][1]
    assert value == "2"
