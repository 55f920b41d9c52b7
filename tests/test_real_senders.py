"""Real senders against the embedded Receiver (and so against the decoder).

A real Prometheus (scraping itself every second, sending metric metadata) and
a real vmagent (likewise) remote-write to a `Receiver`; every request must
decode and be answered 2xx (the senders count no failed or retried sends),
and what arrived must be what each sender says it sent: its own send counters
match the receiver's counts at a quiet moment, and the samples match its
TSDB (Prometheus) or its /metrics (vmagent). Bounded in time: a few seconds
of sends, loops of bounded count.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Dict, List, Tuple

import pytest

from promwrite.model import MetricType
from promwrite.receiver import Receiver

from .conftest import REQUIRE_SERVERS
from .servers import PrometheusSender, Server, ServerUnavailable, VmagentSender

WAIT_S = 90.0
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)


def metric(text: str, name: str, where: Callable[[str], bool] = lambda labels: True) -> float:
    """The sum of the samples of `name` in exposition `text` whose label text passes `where`."""
    return sum(float(v) for n, labels, v in _LINE.findall(text) if n == name and where(labels or ""))


def started(server: Server) -> Server:
    try:
        return server.start()
    except Exception:
        server.stop()
        raise


def make(cls: type, tmp_path, url: str) -> Server:  # type: ignore[no-untyped-def]
    try:
        return cls(tmp_path / cls.kind, url)
    except ServerUnavailable as exc:
        if REQUIRE_SERVERS:
            pytest.fail(f"PROMWRITE_REQUIRE_SERVERS=1 and {exc}", pytrace=False)
        pytest.skip(str(exc))


def received_counts(receiver: Receiver) -> Tuple[int, int, int]:
    """(requests with series, samples, requests) that arrived."""
    with receiver._lock:
        requests = list(receiver.received)
    with_series = [r for r in requests if r.timeseries]
    return len(with_series), sum(len(ts.samples) for r in with_series for ts in r.timeseries), len(requests)


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def samples_of(receiver: Receiver, name: str) -> List[Tuple[Dict[str, str], int, float]]:
    with receiver._lock:
        requests = list(receiver.received)
    return [
        (dict(ts.labels), t, v)
        for r in requests
        for ts in r.timeseries
        if dict(ts.labels).get("__name__") == name
        for v, t in ts.samples
    ]


def test_prometheus_remote_write_decodes_and_matches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Receiver() as receiver:
        sender = started(make(PrometheusSender, tmp_path, receiver.url))
        try:
            wait_for("3 sample writes and metadata", lambda: received_counts(receiver)[0] >= 3
                     and any(r.metadata for r in receiver.received))  # fmt: skip
            state: Dict[str, object] = {}

            def quiet() -> bool:
                text = sender.request("GET", "/metrics")[1].decode()
                got = received_counts(receiver)[1]
                sent = metric(text, "prometheus_remote_storage_samples_total")
                pending = metric(text, "prometheus_remote_storage_samples_pending")
                state.update(text=text, sent=sent, got=got)
                return sent == got and pending == 0

            wait_for("Prometheus's samples_total to equal what arrived", quiet, 60)
            text = str(state["text"])
            for failed in ("samples_failed_total", "samples_retried_total", "metadata_failed_total",
                           "metadata_retried_total"):  # fmt: skip
                assert metric(text, f"prometheus_remote_storage_{failed}") == 0, failed
            assert metric(text, "prometheus_remote_storage_metadata_total") >= 1
            # the samples of `up` that arrived are the ones Prometheus stored
            stored = {(t, v) for s in sender.raw_samples('up{job="self"}') for t, v in s["samples"]}
            ups = samples_of(receiver, "up")
            assert ups and all(labels["job"] == "self" for labels, _, _ in ups)
            assert {(t, v) for _, t, v in ups} <= stored
            # metadata as its API gives it
            api = sender.get_json("/api/v1/metadata", {"metric": "prometheus_build_info"})["data"]
            want = api["prometheus_build_info"][0]
            sent_md = [m for r in receiver.received for m in r.metadata if m.metric_family_name == "prometheus_build_info"]
            assert sent_md and all(m.type == MetricType.GAUGE and m.help == want["help"] for m in sent_md)
        finally:
            sender.stop()


def test_vmagent_remote_write_decodes_and_matches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Receiver() as receiver:
        agent = started(make(VmagentSender, tmp_path, receiver.url))
        try:
            wait_for("3 writes from vmagent", lambda: received_counts(receiver)[2] >= 3)
            state: Dict[str, object] = {}

            def quiet() -> bool:
                text = agent.metrics()  # type: ignore[attr-defined]
                with_series, got, requests = received_counts(receiver)
                blocks = metric(text, "vmagent_remotewrite_block_size_rows_count")
                rows = metric(text, "vmagent_remotewrite_block_size_rows_sum")
                ok = metric(text, "vmagent_remotewrite_requests_total", lambda ls: 'status_code="2XX"' in ls)
                state.update(text=text, blocks=blocks, rows=rows, ok=ok, got=got, requests=requests)
                return blocks == ok == requests and rows == got

            wait_for("vmagent's block and 2XX counters to equal what arrived", quiet, 60)
            text = str(state["text"])
            assert metric(text, "vmagent_remotewrite_requests_total", lambda ls: 'status_code="2XX"' not in ls) == 0
            assert metric(text, "vmagent_remotewrite_packets_dropped_total") == 0
            ups = samples_of(receiver, "up")
            assert ups and all(v == 1.0 and labels["job"] == "self" for labels, _, v in ups)
            oks = samples_of(receiver, "vmagent_remotewrite_requests_total")
            now_ok = metric(agent.metrics(), "vmagent_remotewrite_requests_total",  # type: ignore[attr-defined]
                            lambda ls: 'status_code="2XX"' in ls)  # fmt: skip
            assert all(v <= now_ok for labels, _, v in oks if labels.get("status_code") == "2XX")
        finally:
            agent.stop()
