"""push_registry: a prometheus_client registry arrives as a scrape of it would be stored."""

from __future__ import annotations

import math
import time
import uuid
from types import SimpleNamespace
from typing import Any, Dict, FrozenSet, Tuple

import pytest

import promwrite
from promwrite import BasicAuth, Client, MetricType, TimeSeries
from promwrite.exposition import parse
from promwrite.receiver import Receiver
from promwrite.registry import push_registry, registry_request

pc = pytest.importorskip("prometheus_client")

NOW = 1_700_000_000_000


def make_registry(prefix: str = "app") -> Any:
    r = pc.CollectorRegistry()
    c = pc.Counter(f"{prefix}_requests", "Requests served.", ["code"], registry=r)
    c.labels("200").inc(41)
    c.labels("500").inc(2)
    g = pc.Gauge(f"{prefix}_temperature", "Temperature.", unit="celsius", registry=r)
    g.set(-12.25)
    h = pc.Histogram(f"{prefix}_latency_seconds", "Latency.", ["path"], buckets=(0.01, 0.1, 1), registry=r)
    for v in (0.005, 0.05, 0.5, 5):
        h.labels("/api").observe(v)
    s = pc.Summary(f"{prefix}_payload_bytes", "Payload size.", registry=r)
    s.observe(512)
    s.observe(1024)
    i = pc.Info(f"{prefix}_build", "Build information.", registry=r)
    i.info({"version": "1.2.3", "commit": 'ab"c\\d'})
    e = pc.Enum(f"{prefix}_state", "Service state.", states=["starting", "running", "stopped"], registry=r)
    e.state("running")
    return r


def keyed(request: Any) -> Dict[FrozenSet[Tuple[str, str]], Any]:
    return {frozenset(ts.labels): [tuple(s) for s in ts.samples] for ts in request.timeseries}


def test_same_as_parsing_the_registry_exposition() -> None:
    r = make_registry()
    grouping = {"instance": "box1", "zone": "a"}
    ours = registry_request(r, job="batch", grouping=grouping, now_ms=NOW)
    scrape = parse(pc.generate_latest(r).decode(), {"job": "batch", **grouping}, now_ms=NOW)
    assert keyed(ours) == keyed(scrape)
    assert len(ours.timeseries) == len(scrape.timeseries) == (2 + 2) + 1 + (4 + 2 + 1) + 3 + 1 + 3
    assert [m._replace(unit="") for m in ours.metadata] == scrape.metadata
    types = {m.metric_family_name: m.type for m in ours.metadata}
    assert types["app_requests_total"] == MetricType.COUNTER
    assert types["app_requests_created"] == MetricType.GAUGE
    assert types["app_latency_seconds"] == MetricType.HISTOGRAM
    assert types["app_payload_bytes"] == MetricType.SUMMARY
    assert types["app_build_info"] == types["app_state"] == MetricType.GAUGE
    assert next(m for m in ours.metadata if m.metric_family_name == "app_temperature_celsius").unit == "celsius"
    states = {dict(ts.labels)["app_state"]: ts.samples[0][0] for ts in ours.timeseries
              if dict(ts.labels)["__name__"] == "app_state"}
    assert states == {"starting": 0.0, "running": 1.0, "stopped": 0.0}


def test_v2_created_becomes_start_timestamps() -> None:
    r = make_registry()
    ours = registry_request(r, job="j", protocol="2.0", now_ms=NOW)
    names = {dict(ts.labels)["__name__"] for ts in ours.timeseries}
    assert not any(n.endswith("_created") for n in names)
    created = {frozenset(ts.labels): ts for ts in registry_request(r, job="j", now_ms=NOW).timeseries}
    for ts in ours.timeseries:
        name = dict(ts.labels)["__name__"]
        if name.startswith(("app_requests_total", "app_latency_seconds", "app_payload_bytes")):
            base = {k: v for k, v in ts.labels if k not in ("le", "quantile")}
            family = name.rsplit("_", 1)[0] if not name.startswith("app_requests") else "app_requests"
            if family == "app_latency_seconds_bucket":
                family = "app_latency_seconds"
            base["__name__"] = f"{family}_created"
            expected = created[frozenset(base.items())].samples[0][0]
            assert ts.start_timestamp_ms == int(round(expected * 1000)), name
        else:
            assert ts.start_timestamp_ms is None, name


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_push_to_embedded_receiver(protocol: str) -> None:
    r = make_registry()
    with Receiver() as receiver:
        response = push_registry(receiver.url, r, job="batch", grouping={"instance": "i1"}, protocol=protocol)
        assert response.status == 204 and response.protocol == protocol
        (arrived,) = receiver.received
    expected = registry_request(r, job="batch", grouping={"instance": "i1"}, protocol=protocol)
    assert {k: [v for v, _ in s] for k, s in keyed(arrived).items()} == {
        k: [v for v, _ in s] for k, s in keyed(expected).items()}
    assert all(dict(ts.labels)["job"] == "batch" and dict(ts.labels)["instance"] == "i1" for ts in arrived.timeseries)


def test_push_with_client_and_duck_typed_registry() -> None:
    sample = SimpleNamespace(name="jobs_done_total", labels={"queue": "q1"}, value=7.0, timestamp=1700000000.5)
    family = SimpleNamespace(name="jobs_done", type="counter", documentation="Jobs.", unit="", samples=[sample])
    registry = SimpleNamespace(collect=lambda: [family])
    with Receiver() as receiver, Client(receiver.url) as client:
        push_registry(None, registry, job="cron", client=client)
        (arrived,) = receiver.received
    assert arrived.timeseries == [
        TimeSeries({"__name__": "jobs_done_total", "queue": "q1", "job": "cron"}, [(7.0, 1700000000500)])]
    assert arrived.metadata[0].metric_family_name == "jobs_done_total"
    with pytest.raises(ValueError):
        push_registry(None, registry)
    with pytest.raises(ValueError):
        push_registry("http://x/", registry, client=Client("http://x/"), timeout=1)
    assert promwrite.push_registry is push_registry


@pytest.mark.servers
@pytest.mark.timeout(120)
def test_push_registry_to_prometheus(prometheus: Any) -> None:
    prefix = "pw_registry_" + uuid.uuid4().hex[:8]
    r = make_registry(prefix)
    push_registry(prometheus.write_url, r, job="pushed", grouping={"instance": "box"},
                  auth=BasicAuth(prometheus.username, prometheus.password))
    scrape = parse(pc.generate_latest(r).decode(), {"job": "pushed", "instance": "box"})
    prometheus.flush()
    stored = {frozenset(s["metric"].items() | {("__name__", s["metric"]["__name__"])}): [v for _, v in s["samples"]]
              for s in prometheus.raw_samples(f'{{__name__=~"{prefix}_.*"}}', at_s=time.time() + 60)}
    expected = {frozenset(ts.labels): [v for v, _ in ts.samples] for ts in scrape.timeseries}
    assert stored.keys() == expected.keys()
    for key, values in expected.items():
        assert len(stored[key]) == 1
        assert stored[key][0] == values[0] or (math.isnan(values[0]) and math.isnan(stored[key][0])), key


class _NativeCollector:
    """A collector with a native histogram, as prometheus_client models one."""

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.metrics_core import Metric
        from prometheus_client.samples import BucketSpan as PcSpan
        from prometheus_client.samples import NativeHistogram

        family = Metric("rpc_seconds", "RPC latency.", "histogram")
        native = NativeHistogram(
            count_value=6, sum_value=2.5, schema=3, zero_threshold=1e-9, zero_count=1,
            pos_spans=[PcSpan(0, 2), PcSpan(3, 1)], pos_deltas=[2, -1, 1],
            neg_spans=[PcSpan(-2, 1)], neg_deltas=[1],
        )  # fmt: skip
        family.add_sample("rpc_seconds", {"svc": "a"}, 0.0, None, None, native)
        yield family


@pytest.mark.parametrize("protocol", ["1.0", "2.0"])
def test_native_histogram_from_registry(protocol: str) -> None:
    with Receiver() as receiver:
        push_registry(receiver.url, _NativeCollector(), job="j", protocol=protocol)
        (request,) = receiver.received
    (series,) = request.timeseries
    assert dict(series.labels) == {"__name__": "rpc_seconds", "svc": "a", "job": "j"}
    (h,) = series.histograms
    assert (h.count, h.sum, h.schema, h.zero_count) == (6, 2.5, 3, 1)
    assert [tuple(s) for s in h.positive_spans] == [(0, 2), (3, 1)] and list(h.positive_deltas) == [2, -1, 1]
    assert [tuple(s) for s in h.negative_spans] == [(-2, 1)] and list(h.negative_deltas) == [1]
    assert not series.samples
