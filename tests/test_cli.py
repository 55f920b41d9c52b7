"""The command line, run for real: ``python -m promwrite`` in a subprocess."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any, Dict, List, Optional

import pytest

import promwrite
from promwrite import Client, MetricType, TimeSeries, WriteRequest
from promwrite.exposition import parse
from promwrite.receiver import Receiver

import servers

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def run(args: List[str], stdin: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMWRITE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "promwrite", *args], input=stdin, capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=90)


def one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    err = result.stderr
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("command", [[], ["send"], ["receive"], ["demo"]])
def test_help_on_every_command(command: List[str]) -> None:
    result = run([*command, "--help"])
    assert result.returncode == 0 and result.stdout.startswith("usage: promwrite"), result
    assert result.stderr == ""
    description = result.stdout.split("\n\n")[1]  # the paragraph after the usage lines
    assert not description.startswith(("options:", "positional arguments:")), result.stdout


def test_version_says_backend_and_why() -> None:
    result = run(["--version"])
    assert result.returncode == 0 and result.stderr == "", result
    assert result.stdout.startswith(f"promwrite {promwrite.__version__} from {ROOT / 'promwrite'} (Python ")
    assert f"\nbackend {promwrite.backend}: {promwrite.backend_reason}\n" in result.stdout


def test_send_without_url_says_where_samples_come_from() -> None:
    err = one_line_error(run(["send"]), 2, "no URL given", "promwrite send [options] URL [SAMPLE ...]",
                         "from the arguments, or from standard input")
    assert "required" not in err


def test_send_verbose_names_the_backend() -> None:
    with Receiver() as receiver:
        result = run(["send", "-v", receiver.url, "up 1"])
        assert result.returncode == 0, result.stderr
        assert f"backend {promwrite.backend}: {promwrite.backend_reason}" in result.stderr
        assert len(receiver.received) == 1


def test_send_arguments_to_receiver() -> None:
    with Receiver() as receiver:
        result = run(["send", receiver.url, 'disk_free{mount="/"} 12.5 1700000000000', "up NaN",
                      "--label", "instance=host1", "-l", "job=cron", "--header", "X-Scope-OrgID: t1"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("sent 2 series, 2 samples, 0 metadata to http://127.0.0.1:")
        assert result.stderr == ""
        (request,) = receiver.received
    first, second = request.timeseries
    assert first == TimeSeries({"__name__": "disk_free", "mount": "/", "instance": "host1", "job": "cron"},
                               [(12.5, 1700000000000)])
    assert dict(second.labels) == {"__name__": "up", "instance": "host1", "job": "cron"}
    assert math.isnan(second.samples[0][0]) and abs(second.samples[0][1] - time.time() * 1000) < 60_000


def test_send_stdin_basic_auth_from_env_and_file(tmp_path: pathlib.Path) -> None:
    text = "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total{queue=\"a\"} 3 1000\n"
    password = "p@ss: wörd"
    with Receiver(basic_auth=("ci", password)) as receiver:
        ok = run(["send", receiver.url, "--username", "ci"], stdin=text, env={"PROMWRITE_PASSWORD": password})
        assert ok.returncode == 0, ok.stderr
        secret = tmp_path / "pw"
        secret.write_text(password + "\n")
        ok = run(["send", receiver.url, "-", "--password-file", str(secret)], stdin=text,
                 env={"PROMWRITE_USERNAME": "ci"})
        assert ok.returncode == 0, ok.stderr
        bad = run(["send", receiver.url, "--username", "ci"], stdin=text, env={"PROMWRITE_PASSWORD": "wrong"})
        err = one_line_error(bad, 1, "write failed", "401")
        assert "wrong" not in err
        assert len(receiver.received) == 2
    assert receiver.received[0] == parse(text, now_ms=0)
    assert receiver.received[0].metadata[0].type == MetricType.COUNTER


def test_send_protocol_2_and_bearer_token(tmp_path: pathlib.Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    with Receiver() as receiver:
        result = run(["send", receiver.url, "--protocol", "2.0", "--bearer-token-file", str(token),
                      "--timeout", "5", "# TYPE m gauge", "m 1 5"])
        assert result.returncode == 0, result.stderr
        assert "remote write 2.0" in result.stdout
        result = run(["send", receiver.url, "m 2 6"], env={"PROMWRITE_BEARER_TOKEN": "xyz"})
        assert result.returncode == 0, result.stderr
        assert receiver.received_protocols == ["2.0", "1.0"]
    assert receiver.received[0].timeseries[0].metadata.type == MetricType.GAUGE


@pytest.mark.parametrize(
    "args, stdin, code, words",
    [
        (["send", "URL"], "ok 1\nok 2\nbad{a=\"x} 1\n", 2, ["standard input: line 3, column 12", "unterminated"]),
        (["send", "URL", "m 1", "m{a=b} 2"], None, 2, ["arguments: argument 2, column 5"]),
        (["send", "URL"], "# only a comment\n\n", 2, ["no samples"]),
        (["send", "URL", "m 1", "--bogus"], None, 2, ["unrecognized arguments: --bogus"]),
        (["frobnicate"], None, 2, ["invalid choice"]),
        ([], None, 2, ["required"]),
        (["send", "URL", "m 1", "--label", "novalue"], None, 2, ["--label 'novalue' is not NAME=VALUE"]),
        (["send", "URL", "m 1", "--username", "u"], None, 2, ["PROMWRITE_PASSWORD"]),
        (["send", "URL", "m 1", "--username", "u", "--password-file", "/nonexistent/pw"], None, 2, ["cannot read"]),
        (["send", "URL", "m 1", "--protocol", "3.0"], None, 2, ["invalid choice"]),
        (["send", "ftp://x/y", "m 1"], None, 2, ["http:// or https://"]),
        (["send", "URL", "m 1", "--timeout", "soon"], None, 2, ["invalid float"]),
        (["send", "URL", "m 1", "--password", "x"], None, 2, ["unrecognized arguments"]),
    ],
)
def test_usage_and_parse_errors(args: List[str], stdin: Optional[str], code: int, words: List[str]) -> None:
    with Receiver() as receiver:
        result = run([receiver.url if a == "URL" else a for a in args], stdin=stdin)
        one_line_error(result, code, *words)
        assert receiver.received == []


def test_unreachable_and_refused() -> None:
    port = servers.free_port()
    one_line_error(run(["send", f"http://127.0.0.1:{port}/api/v1/write", "m 1"]), 1, "write failed", "refused")
    one_line_error(run(["send", "http://no-such-host.invalid/api/v1/write", "m 1", "--timeout", "5"]), 1,
                   "write failed")


def start_receive(*args: str) -> "tuple[subprocess.Popen, str]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMWRITE_")}
    env.update({"PROMWRITE_PASSWORD": "rx-secret"} if "--username" in args else {})
    port = servers.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "promwrite", "receive", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    banner = proc.stderr.readline()
    assert "listening on" in banner, banner
    return proc, f"http://127.0.0.1:{port}/api/v1/write"


def stop_receive(proc: subprocess.Popen) -> "tuple[str, str]":
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def test_receive_text() -> None:
    proc, url = start_receive()
    try:
        with Client(url) as client:
            client.write(WriteRequest([TimeSeries({"__name__": "a_total", "q": 'x"y\\z\n'}, [(1.5, 1000), (math.inf, 2000)])]))
        assert run(["send", url, "--protocol", "2.0", "# HELP b Bee.", "# TYPE b gauge", "b NaN 3000"]).returncode == 0
    finally:
        out, err = stop_receive(proc)
    assert out.splitlines() == [
        "# write 1: remote write 1.0, " + out.split("1.0, ")[1].split(" bytes")[0] + " bytes, 1 series, 2 samples",
        'a_total{q="x\\"y\\\\z\\n"} 1.5 1000',
        'a_total{q="x\\"y\\\\z\\n"} +Inf 2000',
        "# write 2: remote write 2.0, " + out.split("2.0, ")[1].split(" bytes")[0] + " bytes, 1 series, 1 samples",
        "# b type=gauge help='Bee.'",
        "b NaN 3000",
    ]
    assert "stopped after 2 writes" in err
    # what receive prints parses back as exposition text
    back = parse(out, now_ms=0)
    assert [dict(ts.labels)["__name__"] for ts in back.timeseries] == ["a_total", "b"]


def test_receive_json_with_basic_auth() -> None:
    proc, url = start_receive("--format", "json", "--username", "rx")
    try:
        refused = run(["send", url, "m 1"])
        one_line_error(refused, 1, "401")
        ok = run(["send", url, "--username", "rx", "# TYPE m counter", 'm{k="v"} 2 5000'],
                 env={"PROMWRITE_PASSWORD": "rx-secret"})
        assert ok.returncode == 0, ok.stderr
    finally:
        out, _ = stop_receive(proc)
    (line,) = out.splitlines()
    obj = json.loads(line)
    assert obj["protocol"] == "1.0" and obj["write"] == 1
    assert obj["timeseries"] == [{"labels": {"__name__": "m", "k": "v"}, "samples": [[2.0, 5000]]}]
    assert obj["metadata"] == [{"type": "counter", "metric_family_name": "m", "help": "", "unit": ""}]


def test_receive_port_in_use() -> None:
    with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        one_line_error(run(["receive", "--port", port]), 1, "cannot listen")


def test_demo() -> None:
    result = run(["demo", "--series", "60", "--samples", "3"])
    assert result.returncode == 0, result.stderr
    assert "every series and sample arrived intact" in result.stdout
    assert f"  backend          {promwrite.backend}\n  backend reason   {promwrite.backend_reason}\n" in result.stdout


# ---- a real exporter, piped through `promwrite send` ------------------------------

pc = pytest.importorskip("prometheus_client")


def exporter_text(prefix: str) -> str:
    """Serve a registry over HTTP with prometheus_client's own exporter and scrape it with urllib."""
    registry = pc.CollectorRegistry()
    pc.Counter(f"{prefix}_requests", "Requests.", ["code"], registry=registry).labels("200").inc(7)
    pc.Gauge(f"{prefix}_queue_depth", "Depth.", registry=registry).set(float("nan"))
    h = pc.Histogram(f"{prefix}_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    h.observe(0.05)
    h.observe(3)
    pc.Summary(f"{prefix}_size_bytes", "Size.", registry=registry).observe(100)
    pc.Info(f"{prefix}_build", "Build.", registry=registry).info({"version": "1.0"})
    pc.Enum(f"{prefix}_mode", "Mode.", states=["a", "b"], registry=registry).state("b")
    port = servers.free_port()
    server, thread = pc.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            return answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()


def test_exporter_scrape_to_receiver() -> None:
    text = exporter_text("exp")
    with Receiver() as receiver:
        result = run(["send", receiver.url, "--label", "instance=host1"], stdin=text)
        assert result.returncode == 0, result.stderr
        (arrived,) = receiver.received
    expected = parse(text, {"instance": "host1"}, now_ms=0)
    assert [ts.labels for ts in arrived.timeseries] == [ts.labels for ts in expected.timeseries]
    assert [v for ts in arrived.timeseries for v, _ in ts.samples] == pytest.approx(
        [v for ts in expected.timeseries for v, _ in ts.samples], nan_ok=True)
    assert arrived.metadata == expected.metadata


@pytest.mark.servers
def test_exporter_scrape_to_prometheus(prometheus: Any) -> None:
    prefix = "pw_cli_" + uuid.uuid4().hex[:8]
    text = exporter_text(prefix)
    result = run(["send", prometheus.write_url, "--label", "job=cli", "--label", "instance=edge-01"], stdin=text,
                 env={"PROMWRITE_USERNAME": prometheus.username, "PROMWRITE_PASSWORD": prometheus.password})
    assert result.returncode == 0, result.stderr
    expected = {frozenset(ts.labels): ts.samples[0][0] for ts in parse(text, {"job": "cli", "instance": "edge-01"}).timeseries}
    prometheus.flush()
    stored = {}
    for s in prometheus.raw_samples(f'{{__name__=~"{prefix}_.*"}}', at_s=time.time() + 60):
        assert len(s["samples"]) == 1, s
        stored[frozenset(s["metric"].items())] = s["samples"][0][1]
    assert stored.keys() == expected.keys()
    assert len(stored) == 2 + 1 + 6 + 3 + 1 + 2
    for key, value in expected.items():
        assert stored[key] == value or (math.isnan(value) and math.isnan(stored[key])), key


def test_headers_and_bearer_token_on_the_wire(tmp_path: pathlib.Path) -> None:
    import http.server
    import threading

    seen: List[Dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    token = tmp_path / "token"
    token.write_text("from-file\n")
    try:
        assert run(["send", url, "m 1", "-H", "X-Scope-OrgID: tenant-a", "--header", "THANOS-TENANT:t2",
                    "--bearer-token-file", str(token)]).returncode == 0
        assert run(["send", url, "m 1"], env={"PROMWRITE_BEARER_TOKEN": "from-env"}).returncode == 0
        one_line_error(run(["send", url, "m 1", "--username", "u"],
                           env={"PROMWRITE_BEARER_TOKEN": "t", "PROMWRITE_PASSWORD": "p"}), 2, "not both")
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0]["X-Scope-OrgID"] == "tenant-a" and seen[0]["THANOS-TENANT"] == "t2"
    assert seen[0]["Authorization"] == "Bearer from-file"
    assert seen[1]["Authorization"] == "Bearer from-env"
    assert len(seen) == 2
