"""The background Writer and remote write 2.0: batches go in the client's protocol, counted per protocol.

Accounting rule under test: a batch counts (in `samples_sent_by_protocol` and
`requests_by_protocol`) under the version the server accepted it in
(`WriteResponse.protocol`). Against a 1.0-only receiver the first batch goes
as 2.0, is refused (415) and re-sent as 1.0 by the client: it counts as 1.0,
so nothing counts as 2.0 there. The spool always holds 1.0 requests.
"""

from __future__ import annotations

import pathlib
import threading
from array import array
from collections import Counter
from typing import Any, List, Tuple

import pytest

from promwrite import (
    Client,
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    Retry,
    Sample,
    SeriesSet,
    TimeSeries,
    Writer,
    _backend,
    codec,
)
from promwrite import spool as spool_mod
from promwrite.receiver import Receiver

from .faulty import free_port

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = Retry.forever(backoff_min=0.005, backoff_max=0.02)
Key = Tuple[Tuple[Tuple[str, str], ...], int, float]

RICH = TimeSeries(
    {"__name__": "rich_total", "job": "j"},
    [Sample(5, timestamp_ms=1500), Sample(6, timestamp_ms=1600)],
    exemplars=[Exemplar({"trace_id": "abc"}, 5, timestamp_ms=1500)],
    histograms=[Histogram.from_buckets(schema=0, sum=3.5, positive={0: 2, 1: 1}, timestamp_ms=2000)],
    metadata=MetricMetadata(MetricType.COUNTER, "rich_total", "help text", "seconds"),
)


class SpyClient(Client):
    """A Client that records the protocol the Writer asks for in each send (not the client's own re-sends)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.asked: List[str] = []
        self._depth = threading.local()

    def send(self, payload: bytes, **kw: Any) -> Any:  # type: ignore[override]
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self.asked.append(kw.get("protocol", "1.0"))
        self._depth.n = depth + 1
        try:
            return super().send(payload, **kw)
        finally:
            self._depth.n = depth


def make_writer(client: Client, kernels: _backend.Kernels, **kw: Any) -> Writer:
    kw.setdefault("flush_interval", 0.02)
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("close_at_exit", False)
    kw.setdefault("close_timeout", 5.0)
    return Writer(client, _kernels=kernels, **kw)


def add_plain(w: Writer, n: int, start: int = 1_000_000) -> List[Key]:
    keys = []
    for i in range(n):
        labels = {"__name__": "m", "s": str(i % 5)}
        w.add(labels, i, timestamp_ms=start + i)
        keys.append((tuple(sorted(labels.items())), start + i, float(i)))
    return keys


def add_columns(w: Writer, rounds: int, start: int = 3_000_000) -> List[Key]:
    labels = [{"__name__": "col", "k": str(k)} for k in range(3)]
    ss = SeriesSet(labels)
    keys = []
    for r in range(rounds):
        w.add_many(ss, array("d", [r * 10.0 + k for k in range(3)]), timestamp_ms=start + r)
        keys += [(tuple(sorted(labels[k].items())), start + r, r * 10.0 + k) for k in range(3)]
    return keys


def received_keys(r: Receiver) -> Counter:
    return Counter(
        (tuple((l.name, l.value) for l in ts.labels), s.timestamp_ms, s.value)
        for req in r.received
        for ts in req.timeseries
        for s in ts.samples
    )


def rich_keys() -> List[Key]:
    labels = (("__name__", "rich_total"), ("job", "j"))
    return [(labels, 1500, 5.0), (labels, 1600, 6.0)]


def check_rich(r: Receiver) -> None:
    got = [ts for req in r.received for ts in req.timeseries if ts.labels[0].value == "rich_total"]
    assert [h for ts in got for h in ts.histograms] == RICH.histograms
    assert [e for ts in got for e in ts.exemplars] == RICH.exemplars


def test_v2_endpoint_gets_every_batch_as_v2(kernels: _backend.Kernels) -> None:
    with Receiver() as r:
        client = SpyClient(r.url, protocol="2.0")
        w = make_writer(client, kernels, shards=2, max_samples_per_send=40)
        keys = add_plain(w, 200) + add_columns(w, 20)
        w.add_series(RICH)
        assert w.flush(10)
        s = w.stats()
        w.close()
        total = 200 + 60 + 3  # 2 samples and 1 histogram in RICH
        assert s.balanced and s.samples_sent == total and s.samples_queued == 0, s
        assert r.received_protocols and set(r.received_protocols) == {"2.0"}
        assert set(client.asked) == {"2.0"} and client.protocol == "2.0"
        assert s.samples_sent_by_protocol == {"2.0": total}
        assert s.requests_by_protocol == {"2.0": len(r.received)} and s.requests == len(r.received)
        assert received_keys(r) == Counter(keys + rich_keys())  # each sample exactly once
        check_rich(r)
        rich_md = [ts.metadata for req in r.received for ts in req.timeseries if ts.labels[0].value == "rich_total"]
        assert all(md is not None and md.help == "help text" and md.unit == "seconds" for md in rich_md)


def test_v1_only_endpoint_falls_back_and_counts_everything_as_v1(kernels: _backend.Kernels) -> None:
    with Receiver(protocols=("1.0",)) as r:
        client = SpyClient(r.url, protocol="2.0")
        w = make_writer(client, kernels, shards=1, max_samples_per_send=10, flush_interval=30.0)  # full or flushed
        first = add_plain(w, 10)
        assert w.flush(10)
        s1 = w.stats()
        # the first batch went as 2.0, was refused (415) and re-sent as 1.0 by the client: it counts as 1.0
        assert client.asked == ["2.0"] and client.protocol == "1.0"
        assert s1.samples_sent_by_protocol == {"1.0": 10} and s1.requests_by_protocol == {"1.0": 1}
        later = add_plain(w, 25, start=2_000_000) + add_columns(w, 5)
        w.add_series(RICH)
        assert w.flush(10)
        s = w.stats()
        w.close()
        total = 10 + 25 + 15 + 3
        assert s.balanced and s.samples_sent == total and s.samples_queued == 0, s
        assert client.asked[0] == "2.0" and set(client.asked[1:]) == {"1.0"}  # later batches encoded as 1.0
        assert len(client.asked) >= 4
        assert set(r.received_protocols) == {"1.0"}
        assert s.samples_sent_by_protocol == {"1.0": total}
        assert s.requests_by_protocol == {"1.0": len(r.received)} and s.requests == len(r.received)
        assert s.requests_failed == 0  # the refused 2.0 attempt is the client's affair, not a failed request
        assert received_keys(r) == Counter(first + later + rich_keys())
        check_rich(r)


def test_concurrent_batches_before_fallback_all_count_as_v1(kernels: _backend.Kernels) -> None:
    with Receiver(protocols=("1.0",)) as r:
        client = SpyClient(r.url, protocol="2.0")
        w = make_writer(client, kernels, shards=4, max_samples_per_send=5)
        keys = add_plain(w, 200) + add_columns(w, 10)
        assert w.flush(10)
        s = w.stats()
        w.close()
        assert s.balanced and s.samples_sent == 230
        assert s.samples_sent_by_protocol == {"1.0": 230} and "2.0" not in s.requests_by_protocol
        assert set(r.received_protocols) == {"1.0"}
        assert received_keys(r) == Counter(keys)
        assert client.protocol == "1.0" and client.asked[0] == "2.0"


def test_spool_holds_v1_and_replays_to_a_v2_endpoint(kernels: _backend.Kernels, tmp_path: pathlib.Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    w = make_writer(Client(url, protocol="2.0"), kernels, shards=2, spool_dir=str(tmp_path), max_samples_per_send=10)
    old = add_plain(w, 35)
    w.close(timeout=0.3)
    s = w.stats()
    assert s.balanced and s.samples_spooled == 35 and s.samples_sent == 0 and s.samples_sent_by_protocol == {}
    files = sorted(tmp_path.glob("*.pwspool"))
    assert files
    n = 0
    for f in files:  # stored as 1.0 requests in the unchanged spool format
        payload, samples = spool_mod.decode_file(f.read_bytes())
        n += sum(len(ts.samples) for ts in codec.decode_payload(payload).timeseries)
        assert samples > 0
    assert n == 35

    with Receiver(port=port) as r:
        client = Client(r.url, protocol="2.0")
        w2 = make_writer(client, kernels, shards=2, spool_dir=str(tmp_path))
        new = add_plain(w2, 10, start=5_000_000)
        assert w2.flush(10)
        s2 = w2.stats()
        w2.close()
        assert s2.balanced and s2.samples_from_spool == 35 and s2.samples_sent == 45
        assert s2.samples_sent_by_protocol == {"1.0": 35, "2.0": 10}
        replayed = len(files)
        assert r.received_protocols[:replayed] == ["1.0"] * replayed  # the spool went first, as 1.0
        assert set(r.received_protocols[replayed:]) == {"2.0"}
        assert s2.requests_by_protocol == {"1.0": replayed, "2.0": len(r.received) - replayed}
        assert received_keys(r) == Counter(old + new)
        assert client.protocol == "2.0"
    assert list(tmp_path.glob("*.pwspool")) == []
