"""promwrite.Writer against real Prometheus and VictoriaMetrics (tests/servers.py).

A stream through the Writer (add, add_series, add_many) into each server, read
back sample by sample; and a stream during which the server is stopped and
started again (same port, same data): the Writer retries through the outage,
and every sample it accepted is queryable afterwards.
"""

from __future__ import annotations

import os
import re
import threading
import time
from array import array
from typing import Any, Dict, Set, Tuple

import pytest

from promwrite import BasicAuth, Retry, Sample, SeriesSet, TimeSeries, Writer

import servers

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

REQUIRE_SERVERS = os.environ.get("PROMWRITE_REQUIRE_SERVERS") == "1"
Stored = Set[Tuple[Tuple[Tuple[str, str], ...], int, float]]


def metric(request: pytest.FixtureRequest, server: servers.Server, suffix: str = "") -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", f"pww_{server.kind}_{request.node.name}_{suffix}")


def writer_for(server: servers.Server, **kw: Any) -> Writer:
    kw.setdefault("auth", BasicAuth(server.username, server.password))
    kw.setdefault("timeout", 5.0)
    kw.setdefault("flush_interval", 0.05)
    kw.setdefault("retry", Retry.forever(backoff_min=0.05, backoff_max=0.5))
    kw.setdefault("close_at_exit", False)
    return Writer(server.write_url, **kw)


def stored(server: servers.Server, name: str) -> Tuple[Stored, int]:
    """Every stored sample of metrics named `name`*, and how many rows came back (duplicates too)."""
    server.flush()
    out: Stored = set()
    rows = 0
    selector = f'{{__name__=~"{name}.*"}}'
    if isinstance(server, servers.VictoriaMetricsServer):
        for s in server.export(selector):
            labels = tuple(sorted(s["metric"].items()))
            for t, v in zip(s["timestamps"], s["values"]):
                out.add((labels, t, v))
                rows += 1
    else:
        for s in server.raw_samples(selector):
            labels = tuple(sorted(s["metric"].items()))
            for t, v in s["samples"]:
                out.add((labels, t, v))
                rows += 1
    return out, rows


def lbl(d: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted(d.items()))


def test_writer_stream_round_trip(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric(request, remote_server)
    t0 = int(time.time() * 1000) - 120_000
    expected: Stored = set()
    sset_labels = [{"__name__": name + "_set", "i": str(i), "zone": "zürich"} for i in range(200)]
    sset = SeriesSet(sset_labels)
    with writer_for(remote_server, shards=3, max_samples_per_send=1000) as w:
        for r in range(20):
            values = array("d", [r * 1000 + i + 0.5 for i in range(200)])
            w.add_many(sset, values, timestamp_ms=t0 + r * 1000)
            expected |= {(lbl(l), t0 + r * 1000, r * 1000 + i + 0.5) for i, l in enumerate(sset_labels)}
        for i in range(300):
            labels = {"__name__": name + "_add", "k": str(i % 30)}
            w.add(labels, float(i), timestamp_ms=t0 + 30_000 + i)
            expected.add((lbl(labels), t0 + 30_000 + i, float(i)))
        series = TimeSeries({"__name__": name + "_series"}, [Sample(j, timestamp_ms=t0 + 60_000 + j) for j in range(50)])
        w.add_series(series)
        expected |= {((("__name__", name + "_series"),), t0 + 60_000 + j, float(j)) for j in range(50)}
        assert w.flush(30)
        s = w.stats()
        assert s.balanced and s.samples_sent == 4350 and s.failed == 0 and s.dropped == 0
    got, rows = stored(remote_server, name)
    assert got == expected
    assert rows == len(expected)  # nothing twice


def _own_server(kind: str, tmp_path: Any) -> servers.Server:
    cls = servers.PrometheusServer if kind == "prometheus" else servers.VictoriaMetricsServer
    try:
        server = cls(tmp_path / kind)
    except servers.ServerUnavailable as exc:
        if REQUIRE_SERVERS:
            pytest.fail(f"PROMWRITE_REQUIRE_SERVERS=1 and {exc}", pytrace=False)
        pytest.skip(str(exc))
    return server.start()


@pytest.mark.parametrize("kind", ["prometheus", "victoria-metrics"])
def test_server_restarted_mid_stream_loses_nothing(kind: str, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    server = _own_server(kind, tmp_path)  # its own: this test stops it
    try:
        name = metric(request, server)
        labels = [{"__name__": name, "i": str(i)} for i in range(50)]
        sset = SeriesSet(labels)
        t0 = int(time.time() * 1000) - 60_000
        w = writer_for(server, shards=2, max_samples_per_send=500)
        expected: Stored = set()
        stop = threading.Event()
        rounds = [0]

        def produce() -> None:
            r = 0
            while not stop.is_set() and r < 2000:
                values = array("d", [r * 64 + i + 0.25 for i in range(50)])  # exact in decimal too (VictoriaMetrics)
                w.add_many(sset, values, timestamp_ms=t0 + r * 10)
                expected.update((lbl(l), t0 + r * 10, r * 64 + i + 0.25) for i, l in enumerate(labels))
                r += 1
                time.sleep(0.002)
            rounds[0] = r

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            time.sleep(0.5)
            sent_before = w.stats().samples_sent
            server.restart(down_s=0.7)
            time.sleep(0.5)
        finally:
            stop.set()
            producer.join(30)
        w.close(timeout=60)
        s = w.stats()
        assert s.balanced and s.samples_queued == 0, s
        assert s.failed == 0 and s.dropped == 0 and s.samples_spooled == 0, s
        assert s.samples_sent == s.samples_added == 50 * rounds[0]
        assert sent_before > 0 and s.requests_failed > 0, s  # it was streaming, and it hit the outage
        got, rows = stored(server, name)
        missing = expected - got
        assert not missing, f"{len(missing)} accepted samples are not stored, e.g. {sorted(missing)[:3]}"
        assert got == expected
        print(f"{kind}: {len(expected)} samples, {s.requests_failed} failed requests during the restart, "
              f"{rows - len(expected)} stored twice (ambiguous failures resent)")  # fmt: skip
    finally:
        server.stop()
