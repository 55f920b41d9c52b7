"""Encode + compress, from plain Python data to wire bytes: promwrite vs protobuf+cramjam.

Workloads (deterministic, node-exporter / kube-state-metrics-like label sets from
`promwrite.demo`: `__name__` plus 8 labels, values 5-40 characters, some unicode):
  W1 fresh:  10,000 series x 1 sample, labels given as dicts;
  W2 batch:  1,000 series x 100 samples;
  W3 steady: the W1 series re-sent 20 times with new values. promwrite keeps
             the series in a SeriesSet (labels encoded once, outside the timing)
             and builds each request from the 10,000 new values; a second
             promwrite contender keeps a LabelSet per series and builds
             TimeSeries/Sample objects per write; protobuf
             builds its messages per write as a client building requests from
             its data does, and, as a second protobuf contender, keeps one
             message tree and only overwrites the sample fields. The objects
             rows build a TimeSeries and a Sample object per series and write,
             as the README's examples do.
Every contender's output is decompressed and decoded (by cramjam and the official
protobuf library) and checked equal to the input before it is timed.
Run: ``.venv/bin/python -m pytest bench/ --benchmark-only``.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Tuple

import cramjam
import pytest

from promwrite import _backend
from promwrite.codec import SeriesSet, encode_with
from promwrite.demo import node_exporter_labels
from promwrite.model import LabelSet, Sample, TimeSeries, WriteRequest
from tests.prompb_ref import PB

Series = Tuple[Dict[str, str], List[Tuple[float, int]]]
START = 1_700_000_000_000


def workload(n_series: int, n_samples: int, seed: int, start: int = START) -> List[Series]:
    rng = random.Random(seed)
    return [
        (labels, [(rng.random() * 1e9, start + j * 15_000) for j in range(n_samples)])
        for labels in node_exporter_labels(n_series)
    ]


W1 = workload(10_000, 1, 1)
W2 = workload(1_000, 100, 2)
W3_ROUNDS = [workload(10_000, 1, 100 + r, START + r * 15_000) for r in range(20)]


def pb_request(data: List[Series]) -> Any:
    req = PB["WriteRequest"]()
    for labels, samples in data:
        ts = req.timeseries.add()
        for name in sorted(labels):
            ts.labels.add(name=name, value=labels[name])
        for value, stamp in samples:
            ts.samples.add(value=value, timestamp=stamp)
    return req


def protobuf_cramjam(data: List[Series]) -> bytes:
    return bytes(cramjam.snappy.compress_raw(pb_request(data).SerializeToString()))


def promwrite_fresh(kernels: Any) -> Callable[[List[Series]], bytes]:
    """Samples as the (value, timestamp_ms) pairs the data already is (promwrite takes them as they are)."""

    def run(data: List[Series]) -> bytes:
        series = [TimeSeries(labels, samples) for labels, samples in data]
        return encode_with(kernels, WriteRequest(series), compress=True)

    return run


def promwrite_fresh_objects(kernels: Any) -> Callable[[List[Series]], bytes]:
    """The same with a Sample object made for every sample."""

    def run(data: List[Series]) -> bytes:
        series = [TimeSeries(labels, [Sample(v, timestamp_ms=t) for v, t in samples]) for labels, samples in data]
        return encode_with(kernels, WriteRequest(series), compress=True)

    return run


def check(wire: bytes, data: List[Series]) -> None:
    """The wire bytes decode (by the reference libraries) to exactly `data`."""
    decoded = PB["WriteRequest"].FromString(bytes(cramjam.snappy.decompress_raw(wire)))
    assert len(decoded.timeseries) == len(data)
    for ts, (labels, samples) in zip(decoded.timeseries, data):
        assert {lb.name: lb.value for lb in ts.labels} == labels
        assert [(s.value, s.timestamp) for s in ts.samples] == samples


CONTENDERS: Dict[str, Callable[[], Callable[[List[Series]], bytes]]] = {
    "protobuf+cramjam": lambda: protobuf_cramjam,
    **{f"promwrite {k.name}": (lambda k=k: promwrite_fresh(k)) for k in _backend.available()},
    **{f"promwrite {k.name} (Sample objects)": (lambda k=k: promwrite_fresh_objects(k)) for k in _backend.available()},
}


def _record(benchmark: Any, contender: str, samples: int, wire: int) -> None:
    benchmark.extra_info.update(contender=contender, samples=samples, wire_bytes=wire)


@pytest.mark.parametrize("contender", list(CONTENDERS))
@pytest.mark.parametrize("name, data", [("W1 fresh: 10,000 series x 1 sample", W1), ("W2 batch: 1,000 series x 100 samples", W2)])
def test_batch(benchmark: Any, contender: str, name: str, data: List[Series]) -> None:
    run = CONTENDERS[contender]()
    wire = run(data)
    check(wire, data)
    benchmark.group = name
    _record(benchmark, contender, sum(len(s) for _, s in data), len(wire))
    benchmark.pedantic(run, args=(data,), rounds=5 if "python" in contender else 21, warmup_rounds=1)


def steady_series_set(kernels: Any) -> Callable[[], List[bytes]]:
    series = SeriesSet(labels for labels, _ in W3_ROUNDS[0])

    def run() -> List[bytes]:
        return [
            encode_with(kernels, series.request([s[0][0] for _, s in data], timestamp_ms=data[0][1][0][1]), compress=True)
            for data in W3_ROUNDS
        ]

    return run


def steady_label_sets(kernels: Any) -> Callable[[], List[bytes]]:
    handles = [LabelSet(labels) for labels, _ in W3_ROUNDS[0]]

    def run() -> List[bytes]:
        return [
            encode_with(kernels, WriteRequest([TimeSeries(h, s) for h, (_, s) in zip(handles, data)]), compress=True)
            for data in W3_ROUNDS
        ]

    return run


def steady_objects(kernels: Any) -> Callable[[], List[bytes]]:
    """The idiomatic path of a steady producer: a TimeSeries with a Sample object per series, per write."""

    def run() -> List[bytes]:
        return [
            encode_with(
                kernels,
                WriteRequest([TimeSeries(labels, sample=Sample(s[0][0], timestamp_ms=s[0][1])) for labels, s in data]),
                compress=True,
            )
            for data in W3_ROUNDS
        ]

    return run


def steady_protobuf_reused() -> List[bytes]:
    req = pb_request(W3_ROUNDS[0])
    out = []
    for data in W3_ROUNDS:
        for ts, (_, samples) in zip(req.timeseries, data):
            sample = ts.samples[0]
            sample.value, sample.timestamp = samples[0]
        out.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    return out


STEADY: Dict[str, Callable[[], Callable[[], List[bytes]]]] = {
    "protobuf+cramjam": lambda: lambda: [protobuf_cramjam(d) for d in W3_ROUNDS],
    "protobuf+cramjam (reused messages)": lambda: steady_protobuf_reused,
    **{f"promwrite {k.name} (SeriesSet)": (lambda k=k: steady_series_set(k)) for k in _backend.available()},
    **{f"promwrite {k.name} (LabelSet per series)": (lambda k=k: steady_label_sets(k)) for k in _backend.available()},
    **{f"promwrite {k.name} (TimeSeries + Sample objects)": (lambda k=k: steady_objects(k)) for k in _backend.available()},
}


@pytest.mark.parametrize("contender", list(STEADY))
def test_steady(benchmark: Any, contender: str) -> None:
    run = STEADY[contender]()
    wires = run()
    for wire, data in zip(wires, W3_ROUNDS):
        check(wire, data)
    benchmark.group = "W3 steady: 10,000 series x 20 writes"
    _record(benchmark, contender, 20 * len(W3_ROUNDS[0]), sum(map(len, wires)))
    benchmark.pedantic(run, rounds=3 if "python" in contender else 9, warmup_rounds=1)
