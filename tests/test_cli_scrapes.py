"""Real scrapes through ``promwrite send``: the /metrics of the suite's Prometheus and
VictoriaMetrics (and OpenMetrics text with exemplars and UTF-8 names), piped into both
servers, every series read back through their query APIs."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Dict, FrozenSet, Tuple

import pytest

from promwrite.exposition import parse
from promwrite.receiver import Receiver

import servers

from .test_cli import run

pytestmark = pytest.mark.timeout(240)

Stored = Dict[FrozenSet[Tuple[str, str]], Tuple[float, int]]


def _send(text: str, target: servers.Server, run_id: str, *options: str) -> None:
    result = run(["send", target.write_url, "--label", f"pw_scrape={run_id}", *options], stdin=text,
                 env={"PROMWRITE_USERNAME": target.username, "PROMWRITE_PASSWORD": target.password})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent ")


def _read_back(target: servers.Server, run_id: str) -> Stored:
    """Every series stored with pw_scrape=run_id: its labels -> (value, timestamp_ms) of its one sample."""
    target.flush()
    selector = f'{{pw_scrape="{run_id}"}}'
    out: Stored = {}
    if isinstance(target, servers.VictoriaMetricsServer):
        for s in target.export(selector):
            assert len(s["values"]) == 1, s
            out[frozenset(s["metric"].items())] = (s["values"][0], s["timestamps"][0])
    else:
        for s in target.raw_samples(selector, at_s=time.time() + 60):
            assert len(s["samples"]) == 1, s
            stamp, value = s["samples"][0]
            out[frozenset(s["metric"].items())] = (value, stamp)
    return out


def _assert_all_stored(text: str, target: servers.Server, run_id: str) -> int:
    """What `text` parses to (with the run's label) is exactly what `target` holds, value for value
    (VictoriaMetrics keeps 12 significant digits of a float, and drops NaN samples: an idle summary's quantiles)."""
    victoria = isinstance(target, servers.VictoriaMetricsServer)
    precision = 1e-11 if victoria else 0.0
    expected = {frozenset(ts.labels): ts.samples[0] for ts in parse(text, {"pw_scrape": run_id}, now_ms=0).timeseries
                if not (victoria and math.isnan(ts.samples[0][0]))}
    stored: Stored = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # bounded: VictoriaMetrics makes new series searchable within seconds
        stored = _read_back(target, run_id)
        if len(stored) >= len(expected):
            break
        time.sleep(0.5)
    assert stored.keys() == expected.keys(), (sorted(expected.keys() - stored.keys(), key=str)[:5],
                                              sorted(stored.keys() - expected.keys(), key=str)[:5])
    for key, (value, stamp) in expected.items():
        got, got_stamp = stored[key]
        same = got == value or math.isclose(got, value, rel_tol=precision) or (math.isnan(value) and math.isnan(got))
        assert same, (key, got, value)
        assert stamp == 0 or got_stamp == stamp, (key, got_stamp, stamp)  # 0: "now" at send time
    return len(expected)


@pytest.mark.servers
@pytest.mark.parametrize("source", ["prometheus", "victoria_metrics"])
def test_real_scrape_sent_into_both_servers(source: str, prometheus: Any, victoria_metrics: Any) -> None:
    status, body = {"prometheus": prometheus, "victoria_metrics": victoria_metrics}[source].request("GET", "/metrics")
    assert status == 200, body[:300]
    scrape = body.decode()
    if source == "victoria_metrics":
        assert '=""' in scrape  # labels with empty values, which a scraper drops
    for target in (prometheus, victoria_metrics):
        run_id = uuid.uuid4().hex[:12]
        _send(scrape, target, run_id)
        assert _assert_all_stored(scrape, target, run_id) > 200


OPENMETRICS = """# TYPE pw_om_requests counter
# HELP pw_om_requests Requests served.
pw_om_requests_total{path="/api",code="200"} 1027 {now_s}.123 # {trace_id="KOO5S4vxi0o"} 0.67 {now_s}.001
pw_om_requests_created{path="/api",code="200"} 1699990000.5
pw_om_requests_total{path="/",code=""} 3 {now_s}.5
# TYPE pw_om_seconds histogram
# UNIT pw_om_seconds seconds
pw_om_seconds_bucket{le="0.1"} 8 {now_s}.25 # {trace_id="a"} 0.05 {now_s}
pw_om_seconds_bucket{le="+Inf"} 9 {now_s}.25
pw_om_seconds_count 9 {now_s}.25
pw_om_seconds_sum 1.5e-1 {now_s}.25
# EOF
"""


@pytest.mark.servers
def test_openmetrics_text_into_both_servers(prometheus: Any, victoria_metrics: Any) -> None:
    text = OPENMETRICS.replace("{now_s}", str(int(time.time()) - 5))
    run_ids = {}
    for target in (prometheus, victoria_metrics):
        run_ids[target.kind] = run_id = uuid.uuid4().hex[:12]
        _send(text, target, run_id)
        assert _assert_all_stored(text, target, run_id) == 7  # float-second timestamps kept to the millisecond
    now = time.time()
    selector = f'pw_om_requests_total{{pw_scrape="{run_ids[prometheus.kind]}"}}'
    (exemplars,) = prometheus.query_exemplars(selector, now - 600, now + 60)
    assert [e["labels"] for e in exemplars["exemplars"]] == [{"trace_id": "KOO5S4vxi0o"}]


UTF8_TEXT = """# TYPE "pw.utf8.requests" counter
{"pw.utf8.requests", "host.name"="a", code="200"} 5
{"pw.utf8.requests", "host.name"="b", code=""} 6
pw_legacy{"zone.id"="eu-1"} 7
"""


@pytest.mark.servers
def test_utf8_names_into_both_servers(prometheus: Any, victoria_metrics: Any) -> None:
    """Prometheus 3's quoted names go as they are with --utf8-names; without it, a usage error says so."""
    refused = run(["send", prometheus.write_url], stdin=UTF8_TEXT)
    assert refused.returncode == 2 and "--utf8-names" in refused.stderr, refused.stderr
    for target in (prometheus, victoria_metrics):
        run_id = uuid.uuid4().hex[:12]
        _send(UTF8_TEXT, target, run_id, "--utf8-names")
        assert _assert_all_stored(UTF8_TEXT, target, run_id) == 3


def test_utf8_names_to_receiver() -> None:
    with Receiver() as receiver:
        refused = run(["send", receiver.url, "--label", "dc.name=x"], stdin=UTF8_TEXT)
        assert refused.returncode == 2 and "--utf8-names allows any UTF-8 name" in refused.stderr, refused.stderr
        refused = run(["send", receiver.url], stdin=UTF8_TEXT)
        assert refused.returncode == 2, refused.stderr
        assert "metric name 'pw.utf8.requests' is not a legacy name; --utf8-names sends" in refused.stderr
        assert not receiver.received
        sent = run(["send", receiver.url, "--utf8-names", "--label", "dc.name=x"], stdin=UTF8_TEXT)
        assert sent.returncode == 0, sent.stderr
        (request,) = receiver.received
    assert [dict(ts.labels) for ts in request.timeseries] == [
        {"__name__": "pw.utf8.requests", "host.name": "a", "code": "200", "dc.name": "x"},
        {"__name__": "pw.utf8.requests", "host.name": "b", "dc.name": "x"},
        {"__name__": "pw_legacy", "zone.id": "eu-1", "dc.name": "x"},
    ]
