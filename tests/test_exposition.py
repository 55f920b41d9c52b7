"""promwrite.exposition.parse: the Prometheus text exposition format into a WriteRequest."""

from __future__ import annotations

import math
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwrite import MetricMetadata, MetricType, TimeSeries
from promwrite.exposition import ParseError, parse

NOW = 1_700_000_000_000

NODE_EXPORTER = r"""# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.0631e-05
go_gc_duration_seconds{quantile="0.25"} 3.4742e-05
go_gc_duration_seconds{quantile="0.5"} 4.1191e-05
go_gc_duration_seconds{quantile="1"} 0.000912336
go_gc_duration_seconds_sum 0.089113585
go_gc_duration_seconds_count 1839
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1.26418294e+06
node_cpu_seconds_total{cpu="0",mode="user"} 20155.31
node_cpu_seconds_total{cpu="1",mode="idle"} 1.26413925e+06
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 3.0727245824e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/1000"} 8.33970176e+08
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="x86_64",nodename="edge-01",release="6.1.0-13-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)"} 1
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 8.472627761e+09
node_network_receive_bytes_total{device="lo"} 1.2345e+06
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{handler="/metrics",le="0.005"} 1020
http_request_duration_seconds_bucket{handler="/metrics",le="0.1"} 1100
http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 1107
http_request_duration_seconds_sum{handler="/metrics"} 6.25
http_request_duration_seconds_count{handler="/metrics"} 1107
# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise
# TYPE node_textfile_scrape_error gauge
node_textfile_scrape_error 0
# a plain comment, skipped

untyped_thing{path="C:\\dir\\file",quote="say \"hi\"",nl="a\nb"} -Inf 1699999999000
weird_values{v="nan"} NaN
weird_values{v="pinf"} +Inf
"""


def by_name(request):
    out = {}
    for ts in request.timeseries:
        labels = dict(ts.labels)
        out.setdefault(labels.pop("__name__"), []).append((labels, ts.samples))
    return out


def test_node_exporter_scrape() -> None:
    request = parse(NODE_EXPORTER, now_ms=NOW)
    series = by_name(request)
    assert len(request.timeseries) == 23
    assert series["go_gc_duration_seconds"][1] == ({"quantile": "0.25"}, [(3.4742e-05, NOW)])
    assert series["go_gc_duration_seconds_count"] == [({}, [(1839.0, NOW)])]
    assert series["node_cpu_seconds_total"][1] == ({"cpu": "0", "mode": "user"}, [(20155.31, NOW)])
    assert [lab["le"] for lab, _ in series["http_request_duration_seconds_bucket"]] == ["0.005", "0.1", "+Inf"]
    assert series["node_uname_info"][0][0]["version"] == "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)"
    (labels, samples), = series["untyped_thing"]
    assert labels == {"path": "C:\\dir\\file", "quote": 'say "hi"', "nl": "a\nb"}
    assert samples == [(-math.inf, 1699999999000)]
    nan, pinf = series["weird_values"]
    assert math.isnan(nan[1][0][0]) and pinf[1] == [(math.inf, NOW)]
    assert request.metadata == [
        MetricMetadata(MetricType.SUMMARY, "go_gc_duration_seconds", "A summary of the pause duration of garbage collection cycles."),
        MetricMetadata(MetricType.COUNTER, "node_cpu_seconds_total", "Seconds the CPUs spent in each mode."),
        MetricMetadata(MetricType.GAUGE, "node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."),
        MetricMetadata(MetricType.GAUGE, "node_uname_info", "Labeled system information as provided by the uname system call."),
        MetricMetadata(MetricType.COUNTER, "node_network_receive_bytes_total", "Network device statistic receive_bytes."),
        MetricMetadata(MetricType.HISTOGRAM, "http_request_duration_seconds", "Request latency."),
        MetricMetadata(MetricType.GAUGE, "node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise"),
    ]


def test_now_is_shared_and_default() -> None:
    import time

    before = int(time.time() * 1000)
    request = parse("a 1\nb 2\nc 3 42\n")
    stamps = [ts.samples[0][1] for ts in request.timeseries]
    assert stamps[0] == stamps[1] >= before and stamps[2] == 42


@pytest.mark.parametrize(
    "word, kind",
    [("counter", MetricType.COUNTER), ("gauge", MetricType.GAUGE), ("histogram", MetricType.HISTOGRAM),
     ("summary", MetricType.SUMMARY), ("untyped", MetricType.UNKNOWN), ("unknown", MetricType.UNKNOWN),
     ("info", MetricType.INFO), ("stateset", MetricType.STATESET), ("gaugehistogram", MetricType.GAUGEHISTOGRAM)],
)
def test_types(word: str, kind: MetricType) -> None:
    request = parse(f"# TYPE m {word}\nm 1\n", now_ms=NOW)
    assert request.metadata == [MetricMetadata(kind, "m", "")]


def test_help_escapes_unit_and_help_only() -> None:
    request = parse("# HELP m line one\\nline two \\\\ back \\q\n# UNIT m seconds\nm 1\n# HELP other x\n", now_ms=NOW)
    assert request.metadata == [
        MetricMetadata(MetricType.UNKNOWN, "m", "line one\nline two \\ back \\q", "seconds"),
        MetricMetadata(MetricType.UNKNOWN, "other", "x"),
    ]


def test_extra_labels_win_and_merge_same_series() -> None:
    request = parse('m{instance="own",a="1"} 1 2000\nm{a="1",instance="x"} 2 1000\n',
                    {"instance": "host1", "job": "cron"}, now_ms=NOW)
    assert request.timeseries == [TimeSeries({"__name__": "m", "a": "1", "instance": "host1", "job": "cron"},
                                             [(2.0, 1000), (1.0, 2000)])]


def test_spacing_crlf_trailing_comma_and_empty_braces() -> None:
    request = parse('  m { a = "1" , } \t 1.5e3  \t 7 \r\nn{} 2\r\n', now_ms=NOW)
    assert request.timeseries == [TimeSeries({"__name__": "m", "a": "1"}, [(1500.0, 7)]),
                                  TimeSeries({"__name__": "n"}, [(2.0, NOW)])]


def test_bytes_input() -> None:
    assert parse(b'm{city="Z\xc3\xbcrich"} 1 1', now_ms=NOW).timeseries[0].labels[1].value == "Zürich"


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ('m{a="x} 1', 1, 10, "unterminated"),
        ("ok 1\nm 1 2 3", 2, 7, "after the timestamp"),
        ("m{a=1} 2", 1, 5, "open the value"),
        ("m abc", 1, 3, "invalid sample value"),
        ("m 1_000", 1, 3, "invalid sample value"),
        ("m 1 1.5", 1, 5, "integer milliseconds"),
        ("# TYPE m bogus", 1, 10, "unknown metric type"),
        ('m{a="\\q"} 1', 1, 6, "invalid escape"),
        ("1m 2", 1, 1, "expected a metric name"),
        ("m", 1, 2, "sample value"),
        ("m{a} 1", 1, 4, "expected '='"),
        ('m{a="1" b="2"} 1', 1, 9, "expected ',' or '}'"),
        ('m{a="1",a="2"} 1', 1, 9, "duplicate label"),
        ("m-x 1", 1, 2, "invalid character"),
        ("# TYPE m gauge\n# TYPE m counter", 2, 1, "second # TYPE"),
        ("# TYPE", 1, 7, "needs a metric name"),
        ('m{1a="x"} 1', 1, 3, "label name"),
    ],
)
def test_malformed(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, now_ms=NOW)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"line {line}, column {column}: ")
    assert isinstance(info.value, ValueError)


def test_bad_extra_label_name() -> None:
    with pytest.raises(ValueError, match="invalid label name"):
        parse("m 1", {"bad-name": "x"})


# ---- linear time, short excerpts, bounded numbers ------------------------------


def _parse_in_child(text_expr: str, seconds: float = 30) -> str:
    """ParseError's message for the text `text_expr` builds, parsed in a child process killed after `seconds`."""
    import subprocess
    import sys

    code = (
        "from promwrite.exposition import ParseError, parse\n"
        f"text = {text_expr}\n"
        "try:\n    parse(text, now_ms=1)\nexcept ParseError as exc:\n    print(exc)\nelse:\n    print('parsed')\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing {text_expr} took over {seconds} s (quadratic?)")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize(
    "text_expr, words",
    [
        ("'m ' + '1' * 1_000_000 + 'x'", "invalid sample value '1111"),  # 32 KB of this took 20 s
        ("'m 1.' + '1' * 1_000_000 + 'e'", "invalid sample value '1.11"),
        ("'m 1e' + '1' * 1_000_000 + '-'", "invalid sample value '1e11"),
        ("'m 1 ' + '1' * 1_000_000 + 'x'", "invalid timestamp '1111"),
        ("'m 1 1.' + '1' * 1_000_000 + 'x # {a=\"b\"} 1\\n# EOF'", "invalid timestamp '1.11"),
        ("'m{a=\"' + 'x' * 1_000_000 + '\\\\q\"} 1'", "invalid escape"),
        ("'m{' + 'a' * 1_000_000 + '-\"x\"} 1'", "expected '=' after label name 'aaaa"),
        ("'m ' + '9' * 1_000_000", "parsed"),  # a long number is a float (inf), as Go's ParseFloat reads it
    ],
)
def test_long_tokens_parse_in_linear_time_and_errors_quote_an_excerpt(text_expr: str, words: str) -> None:
    message = _parse_in_child(text_expr)
    assert words in message
    assert len(message) < 200, message[:300]  # an excerpt and the token's length, not the token


@pytest.mark.parametrize("digits", [19, 20, 4300, 5000, 100_000])
def test_huge_timestamp_is_a_parse_error(digits: int) -> None:
    text = "m 1 " + "9" * digits
    with pytest.raises(ParseError, match="out of range") as info:
        parse(text, now_ms=NOW)
    assert (info.value.line, info.value.column) == (1, 5)
    assert len(str(info.value)) < 120


def test_int64_timestamps_and_leading_zeros() -> None:
    request = parse(f"a 1 {2**63 - 1}\nb 1 -{2**63}\nc 1 {'0' * 5000}42\n", now_ms=NOW)
    assert [ts.samples[0][1] for ts in request.timeseries] == [2**63 - 1, -(2**63), 42]
    with pytest.raises(ParseError, match="out of range"):
        parse(f"a 1 {2**63}")


# ---- as real scrapes are ----------------------------------------------------------


def test_empty_label_values_are_no_labels() -> None:
    """Prometheus's scraper drops a label with an empty value (VictoriaMetrics' /metrics has them)."""
    request = parse('m{a="",b="x",c=""} 1\nm{b="x"} 2 5\nn{a=""} 3\n', {"job": "j", "b": ""}, now_ms=NOW)
    assert request.timeseries == [TimeSeries({"__name__": "m", "job": "j"}, [(2.0, 5), (1.0, NOW)]),
                                  TimeSeries({"__name__": "n", "job": "j"}, [(3.0, NOW)])]


def test_quoted_utf8_names() -> None:
    """Prometheus 3 writes names that are not legacy ones quoted, the metric name inside the braces."""
    text = (
        '# HELP "my.metric" Help of a dotted name.\n'
        '# TYPE "my.metric" counter\n'
        '{"my.metric", "label.name"="v", job="j"} 1\n'
        '{"my.metric","label.name"="w"} 2 7\n'
        'legacy{"quoted"="q", "Zürich \\"x\\"\\n"="ü"} 3\n'
        '{__name__="also.legacy.way"} 4\n'
    )
    request = parse(text, now_ms=NOW)
    assert request.timeseries == [
        TimeSeries({"__name__": "my.metric", "label.name": "v", "job": "j"}, [(1.0, NOW)]),
        TimeSeries({"__name__": "my.metric", "label.name": "w"}, [(2.0, 7)]),
        TimeSeries({"__name__": "legacy", "quoted": "q", 'Zürich "x"\n': "ü"}, [(3.0, NOW)]),
        TimeSeries({"__name__": "also.legacy.way"}, [(4.0, NOW)]),
    ]
    assert request.metadata == [MetricMetadata(MetricType.COUNTER, "my.metric", "Help of a dotted name.")]


@pytest.mark.parametrize(
    "text, column, words",
    [
        ('"my.metric" 1', 1, "goes inside the braces"),
        ('{"a", "b"} 1', 7, "a second metric name 'b'"),
        ('m{"a"} 1', 3, "a second metric name 'a'"),
        ('{""} 1', 2, "empty metric name"),
        ('{a="x"} 1', 1, "no metric name"),
        ('m{""="x"} 1', 3, "empty label name"),
        ('{"a", "b"="1", "b"="2"} 1', 16, "duplicate label 'b'"),
        ('{"a.b} 1', 9, "unterminated quoted name"),
        ('# TYPE "a.b counter', 20, "unterminated metric name"),
    ],
)
def test_quoted_name_errors(text: str, column: int, words: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, now_ms=NOW)
    assert info.value.column == column and words in str(info.value), str(info.value)


OPENMETRICS = """# TYPE acme_http_requests counter
# UNIT acme_http_requests requests
# HELP acme_http_requests Requests served.
acme_http_requests_total{path="/api",code="200"} 1027.0 1700000000.123 # {trace_id="KOO5S4vxi0o"} 0.67 1700000000.001
acme_http_requests_created{path="/api",code="200"} 1699990000.5
acme_http_requests_total{path="/",code=""} 3 # {trace_id="x"} 1
acme_http_requests_created{path="/"} 1699990001
# TYPE rpc_seconds histogram
# UNIT rpc_seconds seconds
rpc_seconds_bucket{le="0.1"} 8 # {trace_id="a"} 0.05
rpc_seconds_bucket{le="+Inf"} 9
rpc_seconds_count 9
rpc_seconds_sum 1.5e-1
rpc_seconds_created 1699990002.25
# TYPE q summary
q{quantile="0.5"} 0.2
q_count 4
q_created 1.69999e9
# TYPE build info
build_info{version="1.2"} 1
# TYPE plain gauge
plain 2.5 1e9
plain_created 7
# TYPE odd counter
odd_total{at="huge"} 1
odd_created{at="huge"} 1e17
odd_total{at="zero"} 1
odd_created{at="zero"} 0
odd_total{at="nan"} 1
odd_created{at="nan"} NaN
# EOF
"""


def test_openmetrics_text() -> None:
    request = parse(OPENMETRICS, {"job": "om"}, now_ms=NOW)
    series = {(dict(ts.labels)["__name__"], dict(ts.labels).get("path")): ts for ts in request.timeseries}
    api = series["acme_http_requests_total", "/api"]
    assert api.samples == [(1027.0, 1700000000123)]  # float seconds to ms
    assert [(dict(e.labels), e.value, e.timestamp_ms) for e in api.exemplars] == [({"trace_id": "KOO5S4vxi0o"}, 0.67, 1700000000001)]
    assert api.start_timestamp_ms == 1699990000500
    root = series["acme_http_requests_total", "/"]
    assert dict(root.labels) == {"__name__": "acme_http_requests_total", "path": "/", "job": "om"}
    assert [(e.value, e.timestamp_ms) for e in root.exemplars] == [(1.0, NOW)]  # no time: the sample's
    assert root.start_timestamp_ms == 1699990001000
    assert series["acme_http_requests_created", "/api"].samples == [(1699990000.5, NOW)]  # kept, as Prometheus keeps it
    assert series["acme_http_requests_created", "/api"].start_timestamp_ms is None
    for name in ("rpc_seconds_bucket", "rpc_seconds_count", "rpc_seconds_sum"):
        assert all(ts.start_timestamp_ms == 1699990002250 for ts in request.timeseries if dict(ts.labels)["__name__"] == name)
    assert series["q", None].start_timestamp_ms == series["q_count", None].start_timestamp_ms == 1699990000000
    assert series["plain", None].samples == [(2.5, 1_000_000_000_000)]
    assert series["plain", None].start_timestamp_ms is None  # a gauge has no _created
    assert series["build_info", None].samples == [(1.0, NOW)]
    odd = {dict(ts.labels)["at"]: ts.start_timestamp_ms for ts in request.timeseries if "odd" in dict(ts.labels)["__name__"]}
    assert odd == {"huge": None, "zero": None, "nan": None}  # no start time rather than a wrong one
    assert request.metadata == [
        MetricMetadata(MetricType.COUNTER, "acme_http_requests", "Requests served.", "requests"),
        MetricMetadata(MetricType.HISTOGRAM, "rpc_seconds", "", "seconds"),
        MetricMetadata(MetricType.SUMMARY, "q", ""),
        MetricMetadata(MetricType.INFO, "build", ""),
        MetricMetadata(MetricType.GAUGE, "plain", ""),
        MetricMetadata(MetricType.COUNTER, "odd", ""),
    ]


@pytest.mark.parametrize(
    "stamp, ms",
    [("1.001", 1001), ("1700000000.123", 1700000000123), ("0.0005", 0), ("0.0015", 2), ("-1.5", -1500),
     ("1e3", 1_000_000), ("1E-3", 1), ("0", 0), (".5", 500), ("5.", 5000), ("1" + "0" * 15 + ".0", 10**18),
     ("0." + "0" * 5000 + "1", 0)],
)
def test_openmetrics_timestamps_exact(stamp: str, ms: int) -> None:
    (ts,) = parse(f"m 1 {stamp}\n# EOF\n", now_ms=NOW).timeseries
    assert ts.samples == [(1.0, ms)]


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("m 1\n# EOF\nn 2\n# EOF\n", 3, 1, "text after '# EOF' (line 2)"),
        ("m 1 15 # {a=\"b\"} 1\n", 1, 8, "exemplar ('# {...}') is OpenMetrics"),
        ("m 1 inf\n# EOF", 1, 5, "invalid timestamp 'inf'"),
        ("m 1 NaN\n# EOF", 1, 5, "invalid timestamp 'NaN'"),
        ("m 1 1e300\n# EOF", 1, 5, "out of range"),
        ("m 1 # a\n# EOF", 1, 7, "expected '{'"),
        ("m 1 #{a=\"b\"} 1\n# EOF", 1, 5, "unexpected text after the value"),
        ('m 1 # {a="b"}\n# EOF', 1, 14, "exemplar value"),
        ('m 1 # {a="b"} 1 2 3\n# EOF', 1, 19, "after the exemplar"),
        ('m 1 # {a="' + "x" * 200 + '"} 1\n# EOF', 1, 7, "exemplar: exemplar labels"),
    ],
)
def test_openmetrics_errors(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, now_ms=NOW)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert words in str(info.value)


PIECES = ['m', 'a_b', '{', '}', '"', '=', ',', ' ', '\t', '#', '# ', '\\', '\\n', '\n', '1', '.', 'e', '-', '+',
          'Inf', 'NaN', '_created', '_total', '# EOF', '# TYPE ', 'counter', '# HELP ', '# UNIT ', 'ü', '\r', ':',
          '{"x.y"', '"q"="v"', 'le="1"', '1700000000.5', '9' * 25]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.booleans())
def test_any_text_parses_or_raises_parse_error(pieces: List[str], openmetrics: bool) -> None:
    text = "".join(pieces) + ("\n# EOF\n" if openmetrics else "")
    try:
        request = parse(text, now_ms=NOW)
    except ParseError as exc:
        assert len(exc.problem) < 200
    else:
        assert all(ts.samples for ts in request.timeseries)
