"""What each real receiver keeps of what promwrite sends: the README's receiver table.

Each test writes one feature to one server (Prometheus 2.42 and VictoriaMetrics
1.79, as Debian 12 packages them; tests/servers.py) and records what its query
API then shows; KEEPS is that record, and the README's table ("Which receiver
keeps what") must say the same, first word of each cell.
"""

from __future__ import annotations

import pathlib
import re
from typing import Dict, Tuple

import pytest

from promwrite import (
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    UnsupportedProtocolError,
    WriteRequest,
)

import servers

from .test_servers import client_for, metric_name, now_ms

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
KINDS = {"prometheus": "Prometheus", "victoria-metrics": "VictoriaMetrics"}

#: (feature, server kind) -> what the server does with it: kept, dropped (answered 2xx,
#: stored nothing of it), or no (remote write 2.0 not taken: stored nothing).
KEEPS: Dict[Tuple[str, str], str] = {
    ("native histograms", "prometheus"): "kept",
    ("native histograms", "victoria-metrics"): "dropped",
    ("exemplars", "prometheus"): "kept",
    ("exemplars", "victoria-metrics"): "dropped",
    ("metadata", "prometheus"): "dropped",
    ("metadata", "victoria-metrics"): "dropped",
    ("remote write 2.0", "prometheus"): "no",
    ("remote write 2.0", "victoria-metrics"): "no",
}


def test_native_histograms(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    t = now_ms() - 60_000
    histogram = Histogram.from_buckets(schema=0, sum=20.5, positive={0: 2, 1: 3}, timestamp_ms=t)
    with client_for(remote_server) as client:
        assert client.write(WriteRequest([TimeSeries({"__name__": name}, histograms=[histogram])])).status == 204
    remote_server.flush()
    result = remote_server.query(name, (t + 1000) / 1000)["result"]
    counts = [r["histogram"][1]["count"] for r in result if "histogram" in r]
    seen = "kept" if counts == ["5"] else "dropped" if result == [] else f"other: {result}"
    assert seen == KEEPS["native histograms", remote_server.kind]


def test_exemplars(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    t = now_ms() - 60_000
    series = TimeSeries({"__name__": name}, [Sample(1.0, timestamp_ms=t)],
                        exemplars=[Exemplar({"trace_id": "4bf92f3577b34da6"}, 1.0, timestamp_ms=t)])
    with client_for(remote_server) as client:
        assert client.write(WriteRequest([series])).status == 204
    remote_server.flush()
    assert remote_server.series(name, (t - 1000) / 1000) == [{"__name__": name}]  # the sample is stored
    status, body = remote_server.request("GET", "/api/v1/query_exemplars",
                                         {"query": name, "start": (t - 1000) / 1000, "end": (t + 1000) / 1000})
    assert status == 200, body
    seen = "kept" if b'"trace_id":"4bf92f3577b34da6"' in body else "dropped"
    assert seen == KEEPS["exemplars", remote_server.kind]


def test_metadata(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    req = WriteRequest([TimeSeries({"__name__": name}, [Sample(1.0, timestamp_ms=now_ms() - 60_000)])],
                       [MetricMetadata(MetricType.GAUGE, name, "Metadata probe.", "bytes")])
    with client_for(remote_server) as client:
        assert client.write(req).status == 204
    remote_server.flush()
    metadata = remote_server.get_json("/api/v1/metadata", {"metric": name})["data"]
    seen = "kept" if metadata.get(name) else "dropped"
    assert seen == KEEPS["metadata", remote_server.kind]


def test_remote_write_2(remote_server: servers.Server, request: pytest.FixtureRequest) -> None:
    name = metric_name(request, remote_server)
    t = now_ms() - 60_000
    with client_for(remote_server, protocol="2.0", fallback=False) as client:
        try:
            client.write(WriteRequest([TimeSeries({"__name__": name}, [Sample(1.0, timestamp_ms=t)])]))
            taken = True
        except UnsupportedProtocolError:
            taken = False
    remote_server.flush()
    stored = remote_server.series(name, (t - 1000) / 1000)
    seen = "kept" if taken and stored else "no" if not (taken or stored) else f"other: taken {taken}, stored {stored}"
    assert seen == KEEPS["remote write 2.0", remote_server.kind]


def readme_table() -> Dict[Tuple[str, str], str]:
    """The README's receiver table: (feature, server kind) -> the cell's first word."""
    text = README.read_text(encoding="utf-8")
    header = re.search(r"^\| feature \| (.+) \|$", text, re.M)
    assert header, "README.md has no '| feature | ...' receiver table"
    kinds = [next(k for k, word in KINDS.items() if cell.startswith(word)) for cell in header.group(1).split(" | ")]
    table = {}
    for row in re.findall(r"^\| ([a-z0-9. ]+) \| (.+) \|$", text[header.end():].split("\n\n")[0], re.M):
        for kind, cell in zip(kinds, row[1].split(" | ")):
            table[row[0], kind] = re.match(r"\**(\w+)", cell).group(1)
    return table


def test_readme_table_says_what_the_servers_do() -> None:
    assert readme_table() == KEEPS
