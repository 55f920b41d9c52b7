"""The data model: time conversion, value checks, histograms from buckets."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest

from promwrite import STALE_NAN, BucketSpan, Exemplar, Histogram, Label, Sample, TimeSeries, is_stale_nan


def test_sample_times() -> None:
    aware = datetime(2024, 1, 2, 3, 4, 5, 678_999, tzinfo=timezone.utc)
    assert Sample(1, aware).timestamp_ms == 1704164645678  # floored to the millisecond
    assert Sample(1, aware.astimezone(timezone(timedelta(hours=5)))).timestamp_ms == 1704164645678
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert Sample(1, naive).timestamp_ms == int(naive.timestamp() * 1000)  # local time, as datetime.timestamp()
    assert Sample(1, 1_700_000_000).timestamp_ms == 1_700_000_000_000
    assert Sample(1, 1_700_000_000.1234).timestamp_ms == 1_700_000_000_123
    assert Sample(1, timestamp_ms=-5).timestamp_ms == -5
    before = time.time_ns() // 1_000_000
    assert before <= Sample(1).timestamp_ms <= time.time_ns() // 1_000_000


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("1.5",), {}, "must be a number"),
        ((True,), {}, "must be a number"),
        ((1, 5), {"timestamp_ms": 5}, "not both"),
        ((1,), {"timestamp_ms": 1.5}, "must be an int"),
        ((1, math.inf), {}, "finite"),
        ((1, "2024-01-01"), {}, "datetime or seconds"),
        ((1,), {"timestamp_ms": 1 << 63}, "int64"),
        ((1.5,), {"timestamp_ms": 1 << 63}, "int64"),
        ((1.5,), {"timestamp_ms": -(1 << 63) - 1}, "int64"),
        ((1.5,), {"timestamp_ms": True}, "must be an int"),
        ((10**400,), {}, "too large for a float"),
        ((1.5, 1e308), {}, "outside the int64 range"),
        ((1.5, -1e300), {}, "outside the int64 range"),
    ],
)
def test_sample_rejects(args, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Sample(*args, **kwargs)


def test_stale_marker() -> None:
    assert math.isnan(STALE_NAN) and is_stale_nan(STALE_NAN) and not is_stale_nan(math.nan)
    ts = TimeSeries({"__name__": "x"}, sample=Sample(1, timestamp_ms=1)).mark_stale(timestamp_ms=2)
    assert is_stale_nan(ts.samples[-1].value) and ts.samples[-1].timestamp_ms == 2
    assert "STALE_NAN" in repr(ts)


def test_series_forms() -> None:
    s = TimeSeries([("b", "2"), Label("__name__", "m")], [Sample(1, timestamp_ms=1)], sample=Sample(2, timestamp_ms=2))
    assert s.labels == (Label("__name__", "m"), Label("b", "2"))
    assert [x.value for x in s.samples] == [1.0, 2.0]
    assert repr(s).startswith("TimeSeries(m{b='2'}")


def test_exemplar_label_limit() -> None:
    Exemplar({"trace_id": "a" * 120}, 1.0, timestamp_ms=1)
    with pytest.raises(ValueError, match="Prometheus allows 128"):
        Exemplar({"trace_id": "a" * 121}, 1.0, timestamp_ms=1)


def test_histogram_from_buckets_integer() -> None:
    h = Histogram.from_buckets(schema=0, sum=10.5, positive={0: 2, 1: 3, 4: 1}, negative={-1: 1}, zero_count=1, timestamp_ms=9)
    assert not h.is_float
    assert h.count == 8 and h.zero_count == 1
    assert h.positive_spans == (BucketSpan(0, 2), BucketSpan(2, 1))
    assert h.positive_deltas == (2, 1, -2)
    assert h.negative_spans == (BucketSpan(-1, 1),) and h.negative_deltas == (1,)


def test_histogram_from_buckets_float() -> None:
    h = Histogram.from_buckets(schema=3, sum=1.0, positive={5: 1.5, 6: 0.5}, timestamp_ms=9)
    assert h.is_float and h.count == 2.0 and h.positive_counts == (1.5, 0.5) and h.positive_spans == (BucketSpan(5, 2),)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"count": 1, "positive_spans": [BucketSpan(0, 2)], "positive_deltas": [1]}, "cover 2 buckets"),
        ({"count": 1.0, "positive_spans": [BucketSpan(0, 1)], "positive_deltas": [1]}, "takes \\*_counts"),
        ({"count": 1, "positive_spans": [BucketSpan(0, 1)], "positive_counts": [1.0]}, "takes \\*_deltas"),
        ({"count": -1}, "int in"),
        ({"count": 1, "schema": 9}, "outside -4..8"),
        ({"count": 1, "positive_spans": [BucketSpan(0, 1)], "positive_deltas": [-1]}, "negative bucket count"),
        ({"count": 1, "custom_values": [1.0]}, "only for schema -53"),
        ({"count": 1, "schema": 1e400}, "schema must be an integer"),
        ({"count": 1, "schema": 0, "zero_threshold": 10**400}, "too large for a float"),
        ({"count": 1, "positive_spans": [(0.5, 1)], "positive_deltas": [1]}, "span offset must be an integer"),
        ({"count": 1, "positive_spans": [(0, 1)], "positive_deltas": [math.inf]}, "bucket delta must be an integer"),
        ({"count": 1, "custom_values": [10**400], "schema": -53}, "too large for a float"),
        ({"count": 10**400}, "int in"),
    ],
)
def test_histogram_rejects(kwargs, match) -> None:
    kwargs.setdefault("schema", 0)
    with pytest.raises(ValueError, match=match):
        Histogram(sum=0.0, timestamp_ms=1, **kwargs)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Exemplar({"trace_id": "a"}, 10**400, timestamp_ms=1),
        lambda: Exemplar({"trace_id": "a"}, 1.0, 1e300),
        lambda: Histogram(count=1, sum=10**400, schema=0, timestamp_ms=1),
        lambda: Histogram.from_buckets(schema=0, sum=1.0, positive={0: 1.5}, zero_count=10**400),
        lambda: Histogram.from_buckets(schema=0, sum=1.0, positive={0: 10**400, 1: 0.5}),
        lambda: TimeSeries({"__name__": "x"}, start_timestamp_ms=10**400),
    ],
)
def test_constructors_raise_value_errors_for_bad_numbers(build) -> None:
    """Never OverflowError (issue 10 item 10): every bad number is a ValueError."""
    with pytest.raises(ValueError):
        build()


def test_sample_fast_path_is_the_same_sample() -> None:
    fast = Sample(1.5, timestamp_ms=7)
    assert type(fast) is Sample and fast == Sample(1.5, None, timestamp_ms=7) == (1.5, 7)
    assert Sample(2, timestamp_ms=7).value == 2.0 and type(Sample(2, timestamp_ms=7).value) is float
    assert Sample(1.5, timestamp_ms=(1 << 63) - 1).timestamp_ms == (1 << 63) - 1
