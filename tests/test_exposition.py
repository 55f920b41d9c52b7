"""promwrite.exposition.parse: the Prometheus text exposition format into a WriteRequest."""

from __future__ import annotations

import math

import pytest

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
