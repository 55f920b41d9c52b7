"""promwrite.Writer against a local server that misbehaves on purpose (tests/faulty.py).

Every test decodes what the server received and checks exactly which samples
arrived and how many times, and that the counters add up:
added == sent + failed + dropped + spooled + queued.
"""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from array import array
from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

import pytest

import promwrite
from promwrite import (
    Exemplar,
    FailedBatch,
    Histogram,
    LabelSet,
    PromwriteError,
    QueueFullError,
    Retry,
    Sample,
    SeriesError,
    SeriesSet,
    TimeSeries,
    Writer,
)
from promwrite import spool as spool_mod

from .faulty import OK, Arrival, FaultyServer, free_port

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = Retry.forever(backoff_min=0.005, backoff_max=0.02)
Key = Tuple[Tuple[Tuple[str, str], ...], int, float]  # (labels, timestamp_ms, value)


class PortServer(FaultyServer):
    """A FaultyServer on a chosen port: for an endpoint that is down, then comes up."""

    def __init__(self, port: int, script: Sequence[Any] = (OK,)) -> None:
        super().__init__(script, port=port)


def writer(url: str, **kw: Any) -> Writer:
    kw.setdefault("flush_interval", 0.02)
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("close_at_exit", False)
    kw.setdefault("close_timeout", 5.0)
    return Writer(url, **kw)


def keys_of(arrival: Arrival) -> List[Key]:
    assert arrival.request is not None, "the server got a body that does not decode"
    return [
        (tuple((l.name, l.value) for l in ts.labels), s.timestamp_ms, s.value)
        for ts in arrival.request.timeseries
        for s in ts.samples
    ]


def received(server: FaultyServer, accepted_only: bool = False) -> Counter:
    """How many times each sample arrived (all requests, or only those answered 2xx)."""
    out: Counter = Counter()
    for arrival in server.arrivals:
        out.update(keys_of(arrival))
    return out


def key(labels: Dict[str, str], ts: int, value: float) -> Key:
    return (tuple(sorted(labels.items())), ts, float(value))


def add_samples(w: Writer, n: int, series: int = 5, start: int = 1_000_000, name: str = "m") -> List[Key]:
    keys = []
    for i in range(n):
        labels = {"__name__": name, "s": str(i % series)}
        ts = start + i
        w.add(labels, i, timestamp_ms=ts)
        keys.append(key(labels, ts, i))
    return keys


def assert_balanced(w: Writer, **expect: Any) -> promwrite.WriterStats:
    s = w.stats()
    assert s.balanced, s
    for name, value in expect.items():
        assert getattr(s, name) == value, (name, getattr(s, name), s)
    return s


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# ---- happy path -----------------------------------------------------------------------------


def test_every_sample_arrives_once_in_order_per_series_from_many_threads() -> None:
    with FaultyServer() as server:
        w = writer(server.url, shards=4, max_samples_per_send=300)
        expected: List[Key] = []
        lock = threading.Lock()

        def produce(t: int) -> None:
            keys = add_samples(w, 2000, series=7, start=10_000_000 * (t + 1), name=f"thread{t}")
            with lock:
                expected.extend(keys)

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert w.flush(10)
        got = received(server)
        assert got == Counter(expected)  # each exactly once
        last: Dict[Any, int] = {}
        for arrival in server.arrivals:  # arrival order = delivery order per shard
            for labels, ts, _ in keys_of(arrival):
                assert ts > last.get(labels, -1), "a series' samples arrived out of order"
                last[labels] = ts
        assert all(len(keys_of(a)) <= 300 for a in server.arrivals)
        s = assert_balanced(w, samples_added=8000, samples_sent=8000, samples_queued=0, series_added=28)
        assert s.requests == len(server.arrivals) and s.requests_failed == 0
        assert s.bytes_sent == sum(len(a.body) for a in server.arrivals)
        w.close()


def test_batches_by_age_without_flush() -> None:
    with FaultyServer() as server:
        with writer(server.url, flush_interval=0.1) as w:
            keys = add_samples(w, 3)
            start = time.monotonic()
            wait_for(lambda: sum(received(server).values()) >= 3, 3.0)
            assert 0.05 <= time.monotonic() - start < 2.0
            assert received(server) == Counter(keys)


def test_add_many_groups_each_series_once_per_request() -> None:
    sset = SeriesSet([{"__name__": "g", "i": str(i)} for i in range(100)])
    with FaultyServer() as server:
        w = writer(server.url, shards=2, flush_interval=10.0, max_samples_per_send=100_000)
        expected = []
        for r in range(10):
            values = array("d", [r * 1000.0 + i for i in range(100)])
            w.add_many(sset, values, timestamp_ms=5000 + r)
            expected += [key({"__name__": "g", "i": str(i)}, 5000 + r, r * 1000.0 + i) for i in range(100)]
        assert w.flush(5)
        assert received(server) == Counter(expected)
        entries = [ts for a in server.arrivals for ts in a.request.timeseries]
        assert len(entries) == 100  # each series once, with its 10 samples (labels sent once)
        assert all([s.timestamp_ms for s in ts.samples] == list(range(5000, 5010)) for ts in entries)
        assert_balanced(w, samples_sent=1000, series_added=100)
        w.close()


def test_add_many_of_series_already_seen_and_of_overlapping_sets_keeps_order() -> None:
    a_labels = [{"__name__": "o", "i": str(i)} for i in range(30)]
    b_labels = a_labels[10:20] + [{"__name__": "o", "i": f"b{i}"} for i in range(10)]
    with FaultyServer() as server:
        w = writer(server.url, shards=3, flush_interval=10.0, max_samples_per_send=7)
        expected: List[Key] = []
        for i in range(0, 30, 2):  # some series known before the set: their shard is fixed already
            w.add(a_labels[i], -1.0, timestamp_ms=1)
            expected.append(key(a_labels[i], 1, -1.0))
        set_a, set_b = SeriesSet(a_labels), SeriesSet(b_labels)
        for r in range(6):  # A and B share 10 series: their samples must stay in time order
            sset, labels = (set_a, a_labels) if r % 2 == 0 else (set_b, b_labels)
            values = [r * 100.0 + i for i in range(len(labels))]
            w.add_many(sset, values, timestamp_ms=10 + r)
            expected += [key(l, 10 + r, v) for l, v in zip(labels, values)]
        assert w.flush(5)
        assert received(server) == Counter(expected)
        assert all(len(keys_of(a)) <= 7 for a in server.arrivals)  # segments split to the request size
        last: Dict[Any, int] = {}
        for arrival in server.arrivals:
            for labels, ts, _ in keys_of(arrival):
                assert ts > last.get(labels, -1), "out of order"
                last[labels] = ts
        assert_balanced(w, samples_sent=len(expected), series_added=40)
        w.close()


def test_overlapping_sets_in_one_request_are_not_merged_out_of_order() -> None:
    shared = {"__name__": "ov", "k": "shared"}
    set_a = SeriesSet([shared, {"__name__": "ov", "k": "a"}])
    set_b = SeriesSet([shared, {"__name__": "ov", "k": "b"}])
    set_c = SeriesSet([{"__name__": "ov", "k": "c"}])  # disjoint from both: merging is fine
    with FaultyServer() as server:
        w = writer(server.url, shards=1, flush_interval=10.0)
        for r in range(4):
            w.add_many(set_a if r % 2 == 0 else set_b, [r, r], timestamp_ms=10 + r)
            w.add_many(set_c, [r], timestamp_ms=10 + r)
        assert w.flush(5)
        (arrival,) = server.arrivals
        stamps = [ts for labels, ts, _ in keys_of(arrival) if labels == lbl_key(shared)]
        assert stamps == [10, 11, 12, 13]
        c_entries = [ts for ts in arrival.request.timeseries if ts.labels[1].value == "c"]
        assert len(c_entries) == 1 and len(c_entries[0].samples) == 4  # merged: one entry, 4 samples
        w.close()


def lbl_key(labels: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_rows_and_columns_interleaved_with_splits() -> None:
    labels = [{"__name__": "mix", "i": str(i)} for i in range(20)]
    sset = SeriesSet(labels)
    with FaultyServer() as server:
        w = writer(server.url, shards=2, flush_interval=10.0, max_samples_per_send=13)
        expected: List[Key] = []
        ts = 100
        for r in range(20):
            ts += 1
            if r % 3 == 0:
                for l in labels[: r % 7 + 1]:
                    w.add(l, float(r), timestamp_ms=ts)
                    expected.append(key(l, ts, r))
            else:
                w.add_many(sset, array("d", [float(r)] * 20), timestamp_ms=ts)
                expected += [key(l, ts, r) for l in labels]
        assert w.flush(5)
        assert received(server) == Counter(expected)
        assert max(len(keys_of(a)) for a in server.arrivals) <= 13
        assert_balanced(w, samples_sent=len(expected))
        w.close()


def test_add_many_same_timestamp_twice_and_per_series_timestamps() -> None:
    sset = SeriesSet([{"__name__": "d", "i": str(i)} for i in range(4)])
    with FaultyServer() as server:
        w = writer(server.url, shards=1, flush_interval=10.0)
        w.add_many(sset, [1, 2, 3, 4], timestamp_ms=100)
        w.add_many(sset, [5, 6, 7, 8], timestamp_ms=100)  # same time: not merged, sent as added
        w.add_many(sset, [9, 10, 11, 12], timestamps_ms=[200, 201, 202, 203])
        w.add_many(sset, [13, 14, 15, 16], timestamps_ms=[150, 150, 150, 150])  # goes back in time
        assert w.flush(5)
        got = received(server)
        assert sum(got.values()) == 16 and got[key({"__name__": "d", "i": "0"}, 100, 5)] == 1
        assert got[key({"__name__": "d", "i": "3"}, 150, 16)] == 1
        assert_balanced(w, samples_sent=16)
        with pytest.raises(ValueError, match="4 series but 3 values"):
            w.add_many(sset, [1, 2, 3])
        w.close()


def test_add_series_with_samples_exemplars_and_histograms() -> None:
    h = Histogram.from_buckets(schema=0, sum=3.5, positive={0: 2, 1: 1}, timestamp_ms=2000)
    series = [
        TimeSeries({"__name__": "plain", "a": "b"}, [Sample(1, timestamp_ms=1000), (2.0, 1001)]),
        TimeSeries(
            LabelSet({"__name__": "rich"}),
            [Sample(5, timestamp_ms=1500)],
            exemplars=[Exemplar({"trace_id": "abc"}, 5, timestamp_ms=1500)],
            histograms=[h],
        ),
    ]
    with FaultyServer() as server:
        with writer(server.url, shards=1) as w:
            for ts in series:
                w.add_series(ts)
            assert w.flush(5)
            assert_balanced(w, samples_sent=4)  # 3 samples + 1 histogram
        got = [ts for a in server.arrivals for ts in a.request.timeseries]
        rich = [ts for ts in got if ts.labels[0].value == "rich"]
        assert rich[0].histograms == [h] and rich[0].exemplars == series[1].exemplars
        plain = {"__name__": "plain", "a": "b"}
        assert received(server) == Counter(
            [key(plain, 1000, 1), key(plain, 1001, 2), key({"__name__": "rich"}, 1500, 5)]
        )
        with writer(server.url) as w2:
            with pytest.raises(ValueError, match="no samples or histograms"):
                w2.add_series(TimeSeries({"__name__": "x"}, exemplars=[Exemplar({"a": "b"}, 1, timestamp_ms=1)]))
            with pytest.raises(SeriesError, match="strictly increasing"):
                w2.add_series(TimeSeries({"__name__": "x"}, [(1.0, 5), (2.0, 5)]))
            assert_balanced(w2, samples_added=0)


def test_bad_input_raises_at_add_and_queues_nothing() -> None:
    with FaultyServer() as server:
        with writer(server.url) as w:
            with pytest.raises(SeriesError, match="job"):
                w.add({"__name__": "x", "job": ""}, 1)
            with pytest.raises(SeriesError):
                w.add({"no_name": "x"}, 1)
            with pytest.raises(ValueError):
                w.add({"__name__": "x"}, "seven")
            with pytest.raises(SeriesError, match="1bad"):
                w.add_many(_BadSet(), [1.0, 2.0])
            assert_balanced(w, samples_added=0, series_added=0)
        assert server.arrivals == []


@pytest.mark.parametrize(
    "pair, problem",
    [(("1.5", 1), "sample value must be a number, not '1.5'"),
     ((1.5, 1.0), "sample timestamp must be int milliseconds, not 1.0"),
     ((1.5, 1 << 63), "sample timestamp 9223372036854775808 is outside the int64 range"),
     ((10**400, 2), r"sample value 1000.*\(401 digits\) is too large for a float"),
     ((1.5,), r"samples must be Sample objects or \(value, timestamp_ms\) pairs, not \(1.5,\)"),
     (1.5, r"samples must be Sample objects or \(value, timestamp_ms\) pairs, not 1.5")],
)
def test_add_series_names_the_series_and_its_bad_sample(kernels: Any, pair: object, problem: str) -> None:
    # add_series reads samples as the codec does (encoding.sample_arrays): before, it had its own
    # copy of that read, and every bad sample got one message that did not say what was wrong.
    with FaultyServer() as server:
        with writer(server.url, _kernels=kernels) as w:
            with pytest.raises(SeriesError, match="^series 0 bad{job='t'}: " + problem):
                w.add_series(TimeSeries({"__name__": "bad", "job": "t"}, [(1.0, 1), pair]))  # type: ignore[list-item]
            assert_balanced(w, samples_added=0, series_added=0)
        assert server.arrivals == []


class _BadSet:
    labels = ({"__name__": "ok"}, {"__name__": "1bad"})


def test_close_flushes_and_add_after_close_raises() -> None:
    with FaultyServer() as server:
        w = writer(server.url, flush_interval=60.0)
        keys = add_samples(w, 50)
        w.close()
        assert received(server) == Counter(keys)
        assert_balanced(w, samples_sent=50, samples_queued=0)
        with pytest.raises(PromwriteError, match="closed"):
            w.add({"__name__": "late"}, 1)
        w.close()  # idempotent


# ---- faults ----------------------------------------------------------------------------------


def test_n_times_500_then_204_resends_the_same_batch() -> None:
    script = [("status", 500, "storage busy", {})] * 3 + [OK]
    with FaultyServer(script) as server:
        w = writer(server.url, shards=1, flush_interval=60.0)
        keys = add_samples(w, 50)
        assert w.flush(5)
        assert len(server.arrivals) == 4
        assert all(Counter(keys_of(a)) == Counter(keys) for a in server.arrivals)  # the whole batch each time
        assert received(server) == Counter({k: 4 for k in keys})  # accepted once: the 4th
        s = assert_balanced(w, samples_sent=50, samples_retried=150, requests=1, requests_failed=3)
        assert s.samples_failed == {} and "storage busy" in (s.last_error or "")
        w.close()


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_retry_after_is_honoured(form: str) -> None:
    value = "1" if form == "seconds" else None
    with FaultyServer() as server:
        if value is None:
            import email.utils

            value = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1 to 2 s from now
        server.script = [("status", 429, "too many requests", {"Retry-After": value}), OK]
        w = writer(server.url, shards=1, flush_interval=60.0, retry=Retry.forever(backoff_min=0.001, backoff_max=5.0))
        keys = add_samples(w, 10)
        start = time.monotonic()
        assert w.flush(10)
        waited = time.monotonic() - start
        assert 0.9 <= waited <= 3.0, waited  # the backoff alone would be about 1 ms
        assert len(server.arrivals) == 2 and received(server) == Counter({k: 2 for k in keys})
        assert_balanced(w, samples_sent=10, samples_retried=10, requests_failed=1)
        w.close()


def test_400_is_not_retried_and_reported_with_the_server_message(caplog: pytest.LogCaptureFixture) -> None:
    failures: List[FailedBatch] = []
    script = [("status", 400, "out of bounds: sample too old", {}), OK]
    with FaultyServer(script) as server:
        url = server.url.replace("http://", "http://alice:hunter2@")
        with caplog.at_level(logging.INFO, logger="promwrite"):
            w = writer(url, shards=1, flush_interval=60.0, on_failure=failures.append)
            first = add_samples(w, 20)
            assert w.flush(5)
            second = add_samples(w, 5, start=2_000_000)
            assert w.flush(5)
            w.close()
        assert [Counter(keys_of(a)) for a in server.arrivals] == [Counter(first), Counter(second)]
        assert server.arrivals[0].headers["Authorization"].startswith("Basic ")
        s = assert_balanced(w, samples_sent=5, samples_retried=0, samples_failed={"http_400": 20})
        assert "sample too old" in (s.last_error or "")
        assert len(failures) == 1
        f = failures[0]
        assert (f.reason, f.samples, f.series, f.attempts) == ("http_400", 20, 20, 1)
        assert f.error.status == 400 and "sample too old" in f.error.body  # type: ignore[union-attr]
        assert f.payload == server.arrivals[0].body
        messages = [r.getMessage() for r in caplog.records]
        assert any("gave up 20 samples" in m and "sample too old" in m for m in messages), messages
        assert not any("hunter2" in m for m in messages)


def test_connection_refused_with_a_finite_policy_fails_the_batch() -> None:
    failures: List[FailedBatch] = []
    w = writer(
        f"http://127.0.0.1:{free_port()}/api/v1/write", shards=1, flush_interval=60.0, on_failure=failures.append,
        retry=Retry(max_attempts=3, backoff_min=0.01, backoff_max=0.01),
    )  # fmt: skip
    add_samples(w, 30)
    assert w.flush(5)
    assert_balanced(w, samples_sent=0, samples_failed={"connect": 30}, samples_retried=60, requests_failed=3)
    assert [(f.reason, f.samples, f.attempts) for f in failures] == [("connect", 30, 3)]
    assert "refused" in (w.stats().last_error or "")
    w.close()


def test_connection_refused_then_the_endpoint_comes_up() -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/api/v1/write", shards=2)
    keys = add_samples(w, 40)
    assert not w.flush(0.3)  # down: nothing resolves
    assert_balanced(w, samples_sent=0, samples_queued=40)
    with PortServer(port) as server:
        assert w.flush(5)
        assert received(server) == Counter(keys)  # refused attempts never arrived: once each
        s = assert_balanced(w, samples_sent=40, samples_queued=0)
        assert s.requests_failed > 0 and s.samples_retried > 0
        w.close()


@pytest.mark.parametrize("action", [("reset",), ("close",)])
def test_reset_mid_request_is_retried(action: Tuple[str]) -> None:
    with FaultyServer([action, OK]) as server:
        w = writer(server.url, shards=1, flush_interval=60.0)
        keys = add_samples(w, 25)
        assert w.flush(5)
        # The first request arrived whole and was cut off unanswered: ambiguous,
        # so it was sent again: every sample twice, the second time accepted.
        assert len(server.arrivals) == 2
        assert received(server) == Counter({k: 2 for k in keys})
        assert_balanced(w, samples_sent=25, samples_retried=25, requests_failed=1, requests=1)
        w.close()


def test_server_that_never_answers_times_out_and_is_retried() -> None:
    with FaultyServer([("hang", 4.0), OK]) as server:
        w = writer(server.url, shards=1, flush_interval=60.0, timeout=0.2)
        keys = add_samples(w, 15)
        start = time.monotonic()
        assert w.flush(5)
        assert 0.2 <= time.monotonic() - start < 3.0  # not waiting for the server to give up
        assert received(server) == Counter({k: 2 for k in keys})
        s = assert_balanced(w, samples_sent=15, samples_retried=15, requests_failed=1)
        assert "no answer within 0.2 s" in (s.last_error or "")
        w.close()


def test_timeouts_until_the_policy_gives_up() -> None:
    with FaultyServer([("hang", 0.5)]) as server:
        w = writer(server.url, shards=1, flush_interval=60.0, timeout=0.1,
                   retry=Retry(max_attempts=2, backoff_min=0.01, backoff_max=0.01))  # fmt: skip
        keys = add_samples(w, 5)
        assert w.flush(5)
        assert received(server) == Counter({k: 2 for k in keys})
        assert_balanced(w, samples_sent=0, samples_failed={"timeout": 5})
        w.close()


# ---- close() while the endpoint is down, spool -------------------------------------------------


def test_endpoint_down_at_close_without_spool_counts_the_loss() -> None:
    port = free_port()
    failures: List[FailedBatch] = []
    w = writer(f"http://127.0.0.1:{port}/api/v1/write", shards=2, on_failure=failures.append)
    add_samples(w, 30)
    start = time.monotonic()
    w.close(timeout=0.3)
    assert time.monotonic() - start < 2.0
    assert_balanced(w, samples_sent=0, samples_queued=0, samples_failed={"closed": 30}, samples_spooled=0)
    assert sum(f.samples for f in failures) == 30 and {f.reason for f in failures} == {"closed"}
    with PortServer(port) as server:  # up again: a new writer has nothing to resend
        w2 = writer(server.url)
        assert w2.flush(1)
        w2.close()
        assert server.arrivals == []


def test_endpoint_down_at_close_with_spool_delivers_at_next_start(tmp_path: pathlib.Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    w = writer(url, shards=2, spool_dir=str(tmp_path), max_samples_per_send=10)
    keys = add_samples(w, 35)
    w.close(timeout=0.3)
    assert_balanced(w, samples_sent=0, samples_queued=0, samples_failed={}, samples_spooled=35)
    files = sorted(tmp_path.glob("*.pwspool"))
    assert len(files) >= 4  # batches of at most 10
    assert sum(spool_mod.decode_file(f.read_bytes())[1] for f in files) == 35

    with PortServer(port) as server:
        w2 = writer(url, shards=2, spool_dir=str(tmp_path))
        new = add_samples(w2, 10, start=5_000_000)
        assert w2.flush(5)
        assert received(server) == Counter(keys + new)  # each exactly once
        first_new = min(i for i, a in enumerate(server.arrivals) if set(keys_of(a)) & set(new))
        last_old = max(i for i, a in enumerate(server.arrivals) if set(keys_of(a)) & set(keys))
        assert last_old < first_new  # the spool went first
        assert_balanced(w2, samples_added=45, samples_from_spool=35, samples_sent=45, samples_spooled=0)
        w2.close()
    assert list(tmp_path.glob("*.pwspool")) == []


def test_retries_exhausted_go_to_the_spool_not_lost(tmp_path: pathlib.Path) -> None:
    script = [("status", 503, "unavailable", {})] * 2
    with FaultyServer(script) as server:
        w = writer(server.url, shards=1, spool_dir=str(tmp_path),
                   retry=Retry(max_attempts=2, backoff_min=0.01, backoff_max=0.01))  # fmt: skip
        keys = add_samples(w, 12)
        assert w.flush(5)
        assert_balanced(w, samples_sent=0, samples_spooled=12, samples_failed={})
        w.close()
        assert len(server.arrivals) == 2
        server.script = [OK]
        w2 = writer(server.url, spool_dir=str(tmp_path))
        assert w2.flush(5)
        assert received(server) == Counter({k: 3 for k in keys})  # 2 refused + 1 accepted
        assert_balanced(w2, samples_sent=12, samples_from_spool=12)
        w2.close()


def test_corrupt_and_partial_spool_files_are_set_aside(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    with FaultyServer() as server:
        w = writer(f"http://127.0.0.1:{free_port()}/x", spool_dir=str(tmp_path), shards=1)
        good_keys = add_samples(w, 6)
        w.close(timeout=0.2)
        (good,) = tmp_path.glob("*.pwspool")
        data = good.read_bytes()
        (tmp_path / "00000000000000000001-1-000001.pwspool").write_bytes(b"garbage, not a spool file at all!!")
        (tmp_path / "00000000000000000002-1-000001.pwspool").write_bytes(data[:-3])  # truncated
        flipped = bytearray(data)
        flipped[-1] ^= 0xFF
        (tmp_path / "00000000000000000003-1-000001.pwspool").write_bytes(bytes(flipped))  # crc mismatch
        (tmp_path / ".00000000000000000004-1-000001.pwspool.tmp").write_bytes(data[:10])  # crash mid-write
        with caplog.at_level(logging.WARNING, logger="promwrite"):
            w2 = writer(server.url, spool_dir=str(tmp_path))
            assert w2.flush(5)
            w2.close()
        assert received(server) == Counter(good_keys)
        assert_balanced(w2, samples_sent=6, samples_from_spool=6)
        aside = sorted(p.name for p in tmp_path.glob("*.corrupt"))
        assert len(aside) == 4
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "crc32 mismatch" in text and "partial" in text and "magic" in text
        assert list(tmp_path.glob("*.pwspool")) == []


def test_spooled_batch_refused_at_replay_is_set_aside(tmp_path: pathlib.Path) -> None:
    w = writer(f"http://127.0.0.1:{free_port()}/x", spool_dir=str(tmp_path), shards=1)
    add_samples(w, 4)
    w.close(timeout=0.2)
    with FaultyServer([("status", 400, "too old", {})]) as server:
        w2 = writer(server.url, spool_dir=str(tmp_path))
        assert w2.flush(5)
        w2.close()
        assert len(server.arrivals) == 1
    assert_balanced(w2, samples_failed={"http_400": 4}, samples_from_spool=4)
    assert len(list(tmp_path.glob("*.rejected"))) == 1 and not list(tmp_path.glob("*.pwspool"))


def test_spool_dir_is_used_by_one_writer_at_a_time(tmp_path: pathlib.Path) -> None:
    with FaultyServer() as server:
        w = writer(server.url, spool_dir=str(tmp_path))
        with pytest.raises(spool_mod.SpoolError, match="in use"):
            writer(server.url, spool_dir=str(tmp_path))
        w.close()
        writer(server.url, spool_dir=str(tmp_path)).close()


# ---- bounded memory ----------------------------------------------------------------------------


def test_full_queue_blocks_then_raises_after_block_timeout() -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/x", shards=1, max_samples_per_send=10, max_queued_samples=100,
               flush_interval=60.0, block_timeout=0.2)  # fmt: skip
    add_samples(w, 10)
    wait_for(lambda: w.stats().requests_failed > 0)  # that batch is in flight, retrying
    add_samples(w, 100, start=2_000_000)  # fills the queue
    start = time.monotonic()
    with pytest.raises(QueueFullError, match="queue is full"):
        w.add({"__name__": "m", "s": "0"}, 1.0)
    assert time.monotonic() - start >= 0.19
    assert_balanced(w, samples_added=110, samples_queued=110)
    w.close(timeout=0.1)
    assert_balanced(w, samples_failed={"closed": 110})


def test_blocked_producer_resumes_when_the_endpoint_recovers() -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/x", shards=1, max_samples_per_send=10, max_queued_samples=50)
    done = threading.Event()
    keys: List[Key] = []

    def produce() -> None:
        keys.extend(add_samples(w, 200))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(0.3)
    assert not done.is_set()  # blocked: the endpoint is down and the queue is full
    assert w.stats().samples_added <= 60
    with PortServer(port) as server:
        t.join(10)
        assert done.is_set()
        assert w.flush(5)
        assert received(server) == Counter(keys)
        assert_balanced(w, samples_sent=200, samples_dropped={})
        w.close()


def test_drop_oldest_keeps_the_newest_and_counts_the_rest() -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/x", shards=1, max_samples_per_send=10, max_queued_samples=50,
               flush_interval=60.0, when_full="drop_oldest")  # fmt: skip
    keys = add_samples(w, 10, series=1)
    wait_for(lambda: w.stats().requests_failed > 0)  # the first batch is in flight, retrying
    keys += add_samples(w, 190, series=1, start=1_000_010)
    assert_balanced(w, samples_added=200, samples_dropped={"queue_full": 140}, samples_queued=60)
    with PortServer(port) as server:
        assert w.flush(5)
        assert received(server) == Counter(keys[:10] + keys[150:])  # the batch in flight, the newest 50
        assert_balanced(w, samples_sent=60, samples_dropped={"queue_full": 140}, samples_queued=0)
        w.close()


def test_memory_per_queued_sample_is_under_100_bytes() -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/x", shards=4, max_samples_per_send=10**7, flush_interval=3600,
               max_queued_samples=10**7)  # fmt: skip
    labels = [{"__name__": "node_cpu_seconds_total", "cpu": str(i % 64), "mode": "idle", "instance": f"host{i}:9100"}
              for i in range(1000)]  # fmt: skip
    sset = SeriesSet(labels)
    for lb in labels:  # series seen once: the label table is not what is measured
        w.add(lb, 0.0, timestamp_ms=1)
    w.add_many(sset, [0.0] * 1000, timestamp_ms=2)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for r in range(100):
            for i, lb in enumerate(labels):
                w.add(lb, float(i), timestamp_ms=10 + r)
        mid = tracemalloc.get_traced_memory()[0]
        values = array("d", range(1000))
        for r in range(200):
            w.add_many(sset, values, timestamp_ms=1000 + r)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_add = (mid - before) / 100_000
    per_many = (after - mid) / 200_000
    print(f"bytes per queued sample: add {per_add:.1f}, add_many {per_many:.1f}")
    assert per_add < 100 and per_many < 100, (per_add, per_many)
    assert_balanced(w, samples_queued=302_000)
    w.close(timeout=0.1)


def test_flush_interval_and_options_are_validated() -> None:
    with pytest.raises(ValueError):
        Writer("http://127.0.0.1:1/x", shards=0, close_at_exit=False)
    # Before, a bool passed as an int, an infinite interval failed in the shard threads, a str raised TypeError.
    for option, bad in [("shards", True), ("max_queued_samples", 10.0), ("max_samples_per_send", "10"),
                        ("flush_interval", float("inf")), ("flush_interval", "1")]:  # fmt: skip
        words = "positive seconds" if option == "flush_interval" else "a positive int"
        with pytest.raises(ValueError, match=f"^{option} must be {words}, not {bad!r}$"):
            Writer("http://127.0.0.1:1/x", close_at_exit=False, **{option: bad})
    with pytest.raises(ValueError):
        Writer("http://127.0.0.1:1/x", when_full="explode", close_at_exit=False)
    with pytest.raises(TypeError):
        Writer(promwrite.Client("http://127.0.0.1:1/x"), timeout=3, close_at_exit=False)


def test_on_failure_exceptions_do_not_stop_the_writer() -> None:
    def boom(batch: FailedBatch) -> None:
        raise RuntimeError("callback bug")

    with FaultyServer([("status", 422, "nope", {}), OK]) as server:
        w = writer(server.url, shards=1, flush_interval=60.0, on_failure=boom)
        add_samples(w, 3)
        assert w.flush(5)
        later = add_samples(w, 3, start=9_000_000)
        assert w.flush(5)
        assert Counter(keys_of(server.arrivals[-1])) == Counter(later)
        assert_balanced(w, samples_failed={"http_422": 3}, samples_sent=3)
        w.close()


def test_writer_shares_a_client_and_leaves_it_open() -> None:
    with FaultyServer() as server, promwrite.Client(server.url) as client:
        with Writer(client, close_at_exit=False, flush_interval=0.02) as w:
            keys = add_samples(w, 5)
        client.write(promwrite.WriteRequest([TimeSeries({"__name__": "after"}, [Sample(1, timestamp_ms=1)])]))
        assert received(server)[key({"__name__": "after"}, 1, 1)] == 1
        assert all(received(server)[k] == 1 for k in keys)


def test_close_at_interpreter_exit_flushes() -> None:
    with FaultyServer() as server:
        code = textwrap.dedent(
            f"""
            import promwrite
            w = promwrite.Writer({server.url!r}, flush_interval=3600)
            for i in range(25):
                w.add({{"__name__": "atexit", "i": str(i % 5)}}, i, timestamp_ms=1000 + i)
            # no close(): the interpreter exits with samples queued
            """
        )
        env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parent.parent))
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env=env)
        assert sum(received(server).values()) == 25


# ---- small things a user meets (issue 11) --------------------------------------------------------


def test_help_does_not_show_private_parameters() -> None:
    import inspect
    import pydoc

    assert "_kernels" not in inspect.signature(Writer).parameters
    assert "_kernels" not in pydoc.render_doc(Writer, renderer=pydoc.plaintext)


def test_series_of_an_add_that_raised_queue_full_is_not_counted() -> None:
    w = writer(f"http://127.0.0.1:{free_port()}/x", shards=1, max_samples_per_send=10, max_queued_samples=1,
               flush_interval=60.0, block_timeout=0.0)  # fmt: skip
    w.add({"__name__": "kept"}, 1.0)
    for labels in ({"__name__": "refused"}, [("__name__", "refused_too")], LabelSet({"__name__": "refused_3"})):
        with pytest.raises(QueueFullError):
            w.add(labels, 2.0)
    with pytest.raises(QueueFullError):
        w.add_series(TimeSeries({"__name__": "refused_4"}, [(1.0, 5)]))
    with pytest.raises(QueueFullError):
        w.add_many(SeriesSet([{"__name__": "refused_5"}]), [1.0])
    assert_balanced(w, samples_added=1, series_added=1)
    w.close(timeout=0.1)


# ---- spool hygiene ------------------------------------------------------------------------------


def test_spool_files_0600_and_directory_0700_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    spool = tmp_path / "spool"
    old = os.umask(0)
    try:
        w = writer(f"http://127.0.0.1:{free_port()}/x", spool_dir=str(spool), shards=1)
        add_samples(w, 3)
        w.close(timeout=0.2)
    finally:
        os.umask(old)
    assert (spool.stat().st_mode & 0o777) == 0o700
    files = list(spool.iterdir())
    assert any(f.name.endswith(".pwspool") for f in files) and any(f.name == ".lock" for f in files)
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {oct(0o600)}


def test_spool_lock_file_is_not_followed_through_a_symlink(tmp_path: pathlib.Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / ".lock").symlink_to(victim)
    with pytest.raises(spool_mod.SpoolError):
        writer(f"http://127.0.0.1:{free_port()}/x", spool_dir=str(spool))
    assert victim.read_bytes() == b"precious" and (victim.stat().st_mode & 0o777) == 0o644


READ_ONLY_SPOOL = """
import os, sys
import promwrite
from promwrite.spool import SpoolError
if os.geteuid() == 0:  # root writes anywhere: be nobody, as a service would be
    os.setgid(65534)
    os.setuid(65534)
for path in sys.argv[1:]:
    try:
        promwrite.Writer("http://127.0.0.1:9/x", spool_dir=path, close_at_exit=False)
    except SpoolError as exc:
        print("SpoolError", exc)
    except BaseException as exc:
        print("other", type(exc).__name__, exc)
    else:
        print("no error")
"""


def test_read_only_or_missing_spool_directory_raises_spool_error() -> None:
    import shutil
    import tempfile

    base = pathlib.Path(tempfile.mkdtemp(prefix="promwrite-ro-"))
    try:
        base.chmod(0o755)  # reachable by the unprivileged user
        read_only = base / "ro"
        read_only.mkdir()
        read_only.chmod(0o555)
        a_file = base / "a_file"
        a_file.write_text("")
        root = pathlib.Path(__file__).resolve().parent.parent
        out = subprocess.run(
            [sys.executable, "-c", READ_ONLY_SPOOL, str(read_only), str(a_file / "spool")],
            env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("SpoolError") for line in lines), out.stdout + out.stderr


def test_spool_header_fields_are_covered_by_the_crc(tmp_path: pathlib.Path) -> None:
    with FaultyServer() as server:
        w = writer(f"http://127.0.0.1:{free_port()}/x", spool_dir=str(tmp_path), shards=1)
        add_samples(w, 6)
        w.close(timeout=0.2)
        (good,) = tmp_path.glob("*.pwspool")
        data = bytearray(good.read_bytes())
        assert spool_mod.decode_file(bytes(data))[1] == 6
        at = 12 if data[4] == 1 else 8  # the sample count, where the format version puts it
        assert data[at] == 6
        data[at] = 7
        good.write_bytes(bytes(data))
        with pytest.raises(spool_mod.SpoolCorrupt, match="crc"):
            spool_mod.decode_file(bytes(data))
        w2 = writer(server.url, spool_dir=str(tmp_path))
        assert w2.flush(5)
        w2.close()
        assert server.arrivals == [] and len(list(tmp_path.glob("*.corrupt"))) == 1
