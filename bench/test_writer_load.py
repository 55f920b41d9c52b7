"""Load: samples/s sustained through promwrite.Writer into a real VictoriaMetrics on loopback.

Several producer threads add samples for D seconds (PROMWRITE_LOAD_SECONDS,
default 5); the clock stops when `flush()` returns, i.e. when the server has
acknowledged everything added. Workloads:
  add_many: 2 producers, each with its own SeriesSet of 10,000 node-exporter-like
            series, calling ``add_many(set, values, timestamp_ms=...)`` in a loop;
  add:      2 producers calling ``add(labels, value, timestamp_ms=...)`` for
            1,000 LabelSets each (the per-sample path);
  enqueue:  no server: 1,000,000 samples queued into a writer that sends nothing,
            to time the producer side alone and measure memory per queued
            sample (tracemalloc: peak traced bytes / queued samples).
Where the time goes is printed per run: CPU seconds of this process and of the
VictoriaMetrics process per million samples, and the wall time the writer's
shard threads spent encoding and sending (waiting for the server).
Each runs in memory and with a durable spool (``spool_dir``: every batch
written and fsync'ed before it is sent; "no-fsync" shows what the fsync costs).
Run: ``./scripts/test bench/test_writer_load.py`` (or with ``--benchmark-only``).
The table of bench/conftest.py shows samples/s; the details print as they run.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time
import tracemalloc
from array import array
from typing import Any, Dict, Iterator, List

import pytest

from promwrite import BasicAuth, LabelSet, SeriesSet, Writer, backend
from promwrite.demo import node_exporter_labels
from tests import servers

SECONDS = float(os.environ.get("PROMWRITE_LOAD_SECONDS", "5"))
TICK = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.VictoriaMetricsServer]:
    try:
        server = servers.VictoriaMetricsServer(tmp_path_factory.mktemp("vm-load"))
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Timed:
    """Wall time spent in the writer's encode and send, summed over its shard threads."""

    def __init__(self, w: Writer) -> None:
        self.encode = self.send = 0.0
        self._lock = threading.Lock()
        encode, send = w._encode, w.client.send

        def timed_encode(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return encode(*a, **k)
            finally:
                with self._lock:
                    self.encode += time.perf_counter() - t

        def timed_send(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return send(*a, **k)
            finally:
                with self._lock:
                    self.send += time.perf_counter() - t

        w._encode = timed_encode  # type: ignore[method-assign]
        w.client.send = timed_send  # type: ignore[method-assign]


def labels_for(producer: int, n: int) -> List[Dict[str, str]]:
    out = []
    for labels in node_exporter_labels(n):
        labels = dict(labels)
        labels["producer"] = str(producer)
        out.append(labels)
    return out


class SpoolBytes:
    """Bytes the writer's spool wrote to disk (files: header and payload)."""

    def __init__(self, w: Writer) -> None:
        self.bytes = 0
        spool = w._spool
        if spool is None:
            return
        write = spool.write

        def counted(payload: bytes, samples: int) -> Any:
            self.bytes += len(payload) + 32
            return write(payload, samples)

        spool.write = counted  # type: ignore[method-assign]


def run_load(
    server: servers.VictoriaMetricsServer, path: str, producers: int, series: int, spool: str = "",
    tmp: Any = None, **options: Any,
) -> Dict[str, Any]:  # fmt: skip
    """`spool`: "" (in memory), "fsync" (durable spool, fsync per batch) or "no-fsync" (spool, no fsync)."""
    w = Writer(
        server.write_url,
        auth=BasicAuth(server.username, server.password),
        max_queued_samples=2_000_000,
        close_at_exit=False,
        spool_dir=str(tmp / "spool") if spool else None,
        **options,
    )
    if spool == "no-fsync":
        w._spool.fsync = False  # type: ignore[union-attr]
    timed = Timed(w)
    disk = SpoolBytes(w)
    t0 = int(time.time() * 1000) - 3_000_000  # rounds go forward 1 ms each, within the hour
    if path == "add_many":
        sets = [SeriesSet(labels_for(p, series)) for p in range(producers)]
        for s in sets:  # the series are new to the server: create them before the clock runs
            w.add_many(s, array("d", bytes(8 * series)), timestamp_ms=t0 - 1)
    else:
        label_sets = [[LabelSet(ls) for ls in labels_for(p, series)] for p in range(producers)]
        for p in range(producers):
            for ls in label_sets[p]:
                w.add(ls, 0.0, timestamp_ms=t0 - 1)
    assert w.flush(60)
    stop = threading.Event()
    busy = [0.0] * producers

    def produce(p: int) -> None:
        r = 0
        started = time.perf_counter()
        if path == "add_many":
            values = array("d", range(series))
            s = sets[p]
            while not stop.is_set():
                w.add_many(s, values, timestamp_ms=t0 + r)
                r += 1
        else:
            add = w.add
            mine = label_sets[p]
            while not stop.is_set():
                ts = t0 + r
                for ls in mine:
                    add(ls, 1.5, timestamp_ms=ts)
                r += 1
        busy[p] = time.perf_counter() - started

    before = w.stats()
    disk.bytes = 0
    vm_cpu0, cpu0 = cpu_of(server.proc.pid), time.process_time()  # type: ignore[union-attr]
    start = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    assert w.flush(120)
    elapsed = time.perf_counter() - start
    vm_cpu, cpu = cpu_of(server.proc.pid) - vm_cpu0, time.process_time() - cpu0  # type: ignore[union-attr]
    after = w.stats()
    w.close()
    assert after.balanced and after.failed == 0 and after.dropped == 0, after
    samples = after.samples_sent - before.samples_sent
    wire = after.bytes_sent - before.bytes_sent
    millions = samples / 1e6
    config = ", ".join(f"{k}={v:,}" for k, v in options.items()) or "default options"
    if spool:
        config += f", spool_dir ({spool})"
    return {
        "spool_bytes_per_sample": disk.bytes / samples,
        "contender": f"Writer.{path} ({producers} threads x {series:,} series, {config}, {backend})",
        "samples": samples,
        "wire_bytes": wire,
        "elapsed": elapsed,
        "rate": samples / elapsed,
        "requests": after.requests - before.requests,
        "cpu_per_million": cpu / millions,
        "vm_cpu_per_million": vm_cpu / millions,
        "encode_per_million": timed.encode / millions,
        "send_wall_per_million": timed.send / millions,
        "producer_busy": sum(busy) / producers / elapsed,
    }


def report(capsys: pytest.CaptureFixture, r: Dict[str, Any]) -> None:
    with capsys.disabled():
        print(
            f"\n{r['contender']}: {r['samples']:,} samples in {r['elapsed']:.2f} s = {r['rate']:,.0f} samples/s;"
            f" {r['wire_bytes'] / r['samples']:.2f} wire bytes/sample, {r['requests']} requests;"
            f" per million samples: promwrite process {r['cpu_per_million']:.2f} CPU-s"
            f" (encode {r['encode_per_million']:.2f} s wall), VictoriaMetrics {r['vm_cpu_per_million']:.2f} CPU-s,"
            f" shards waiting on HTTP {r['send_wall_per_million']:.2f} s wall"
            + (f"; spool: {r['spool_bytes_per_sample']:.2f} bytes written per sample" if r["spool_bytes_per_sample"] else "")
        )


TUNED = {"shards": 8, "max_samples_per_send": 50_000}


@pytest.mark.parametrize(
    "path,producers,series,options",
    [
        ("add_many", 2, 10_000, {}), ("add_many", 2, 10_000, {"spool": "fsync"}),
        ("add_many", 2, 10_000, {"spool": "no-fsync"}), ("add_many", 2, 10_000, TUNED),
        ("add_many", 2, 10_000, dict(TUNED, spool="fsync")), ("add", 2, 1_000, {}), ("add", 2, 1_000, {"spool": "fsync"}),
    ],
    ids=["add_many-default", "add_many-spool", "add_many-spool-nofsync", "add_many-tuned", "add_many-tuned-spool",
         "add-default", "add-spool"],
)  # fmt: skip
def test_writer_load(benchmark: Any, vm: servers.VictoriaMetricsServer, capsys: pytest.CaptureFixture,
                     tmp_path: pathlib.Path, path: str, producers: int, series: int, options: Dict[str, Any]) -> None:  # fmt: skip
    benchmark.group = "Writer load: producer threads -> Writer -> VictoriaMetrics (loopback)"
    result: Dict[str, Any] = {}

    def run() -> None:
        result.update(run_load(vm, path, producers, series, tmp=tmp_path, **options))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    report(capsys, result)


def test_writer_enqueue_memory(benchmark: Any, capsys: pytest.CaptureFixture) -> None:
    """Producer-side cost and memory per queued sample, with nothing sent."""
    benchmark.group = "Writer enqueue (nothing sent): producer cost and memory per queued sample"
    n_series, rounds = 10_000, 100
    w = Writer("http://127.0.0.1:9/unused", shards=4, max_samples_per_send=10**8, flush_interval=3600,
               max_queued_samples=10**8, close_at_exit=False)  # fmt: skip
    labels = node_exporter_labels(n_series)
    sset = SeriesSet(labels)
    label_sets = [LabelSet(ls) for ls in labels]
    w.add_many(sset, array("d", bytes(8 * n_series)), timestamp_ms=1)
    for ls in label_sets[:1000]:
        w.add(ls, 0.0, timestamp_ms=1)
    values = array("d", range(n_series))
    result: Dict[str, Any] = {}

    def run() -> None:  # timed: add_many into the queue
        for r in range(rounds):
            w.add_many(sset, values, timestamp_ms=10 + r)

    t = time.perf_counter()
    for r in range(200):
        for ls in label_sets[:1000]:
            w.add(ls, 1.0, timestamp_ms=10 + r)
    add_rate = 200_000 / (time.perf_counter() - t)
    tracemalloc.start()  # memory: the same again, traced
    try:
        base = tracemalloc.get_traced_memory()[0]
        for r in range(rounds):
            w.add_many(sset, values, timestamp_ms=1000 + r)
        mid, peak1 = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for r in range(200):
            for ls in label_sets[:1000]:
                w.add(ls, 1.0, timestamp_ms=1000 + r)
        _, peak2 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    t = time.perf_counter()
    benchmark.pedantic(run, rounds=1, iterations=1)
    many_rate = n_series * rounds / (time.perf_counter() - t)
    result.update(
        contender=f"Writer.add_many into the queue, nothing sent ({backend})", samples=n_series * rounds, wire_bytes=0,
        add_many_rate=many_rate, add_rate=add_rate,
        add_many_bytes_per_sample=(peak1 - base) / (n_series * rounds), add_bytes_per_sample=(peak2 - mid) / 200_000,
    )  # fmt: skip
    benchmark.extra_info.update(result)
    assert w.stats().samples_queued == 2 * n_series * rounds + n_series + 1_000 + 400_000
    w.close(timeout=0.01)
    with capsys.disabled():
        print(
            f"\nenqueue only: add_many {result['add_many_rate']:,.0f} samples/s,"
            f" {result['add_many_bytes_per_sample']:.1f} bytes per queued sample (peak);"
            f" add {result['add_rate']:,.0f} samples/s (one thread),"
            f" {result['add_bytes_per_sample']:.1f} bytes per queued sample (peak)"
        )
    assert result["add_many_bytes_per_sample"] < 100 and result["add_bytes_per_sample"] < 100
