"""Remote write 2.0 vs 1.0: payload size and encode time, on the workloads of test_encode.py.

  W1 fresh: 10,000 series x 1 sample;  W2 batch: 1,000 series x 100 samples
  (node-exporter-like label sets: `__name__` plus 8 labels).

For each workload and protocol: the serialized protobuf size, the snappy
payload size (what goes on the wire), and the time to encode + compress from
the model (series built from the plain data inside the timing, as
test_encode.py's promwrite contenders do), per backend, best of several runs.
Every payload is decoded and checked against the data first. The table is
printed and written to bench/v2_results.md.
Run: ``python -m pytest bench/test_v2_size.py -q -s``.
"""

from __future__ import annotations

import gc
import pathlib
import platform
import time
from typing import Any, Callable, Dict, List, Tuple

from promwrite import _backend, snappy
from promwrite.codec import decode, encode_with
from promwrite.model import TimeSeries, WriteRequest

from test_encode import W1, W2, Series  # bench/test_encode.py (bench/ is on sys.path under pytest)

WORKLOADS = {"W1 fresh: 10,000 series x 1 sample": W1, "W2 batch: 1,000 series x 100 samples": W2}
PROTOCOLS = ("1.0", "2.0")


def request_of(data: List[Series]) -> WriteRequest:
    return WriteRequest([TimeSeries(labels, samples) for labels, samples in data])


def interleaved_best(runs: Dict[str, Callable[[], Any]], rounds: int) -> Dict[str, float]:
    """Best time of each run, the runs taking turns round by round (so that a
    busy spell of the machine falls on all of them alike)."""
    best = {name: float("inf") for name in runs}
    for fn in runs.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in runs.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure() -> List[Dict[str, Any]]:
    rows = []
    for name, data in WORKLOADS.items():
        request = request_of(data)
        times: Dict[str, Dict[str, float]] = {p: {} for p in PROTOCOLS}
        wires = {}
        for protocol in PROTOCOLS:
            raw = encode_with(_backend.kernels, request, compress=False, protocol=protocol)
            wire = wires[protocol] = encode_with(_backend.kernels, request, compress=True, protocol=protocol)
            assert snappy.decompress(wire) == raw
            back = decode(raw, protocol)
            assert [(dict(ts.labels), ts.samples) for ts in back.timeseries] == [(lb, s) for lb, s in data]
            rows.append(dict(workload=name, protocol=protocol, raw=len(raw), wire=len(wire), times=times[protocol],
                             samples=sum(len(s) for _, s in data)))  # fmt: skip
        for kernels in _backend.available():
            runs = {}
            for protocol in PROTOCOLS:
                def run(k: Any = kernels, p: str = protocol) -> bytes:
                    return encode_with(k, request_of(data), compress=True, protocol=p)

                assert run() == wires[protocol], kernels.name
                runs[protocol] = run
            for protocol, best in interleaved_best(runs, 5 if kernels.name == "python" else 15).items():
                times[protocol][kernels.name] = best
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    backends = [k.name for k in _backend.available()]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "",
        "| workload | protocol | protobuf bytes | snappy bytes (wire) | wire vs 1.0 | "
        + " | ".join(f"encode+compress {b}" for b in backends)
        + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(backends),
    ]
    base = {r["workload"]: r for r in rows if r["protocol"] == "1.0"}
    for r in rows:
        ref = base[r["workload"]]
        cells = [f"{r['times'][b] * 1000:.1f} ms ({r['times'][b] / ref['times'][b]:.2f}x)" for b in backends]
        lines.append(
            f"| {r['workload']} | {r['protocol']} | {r['raw']:,} ({r['raw'] / ref['raw']:.3f}) | {r['wire']:,} |"
            f" {r['wire'] / ref['wire']:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def test_v2_size_and_time() -> None:
    rows = measure()
    text = table(rows)
    print("\n" + text)
    pathlib.Path(__file__).with_name("v2_results.md").write_text(text)
    by = {(r["workload"], r["protocol"]): r for r in rows}
    for name in WORKLOADS:
        assert by[(name, "2.0")]["raw"] < by[(name, "1.0")]["raw"]  # interning pays off uncompressed
        assert by[(name, "2.0")]["wire"] < by[(name, "1.0")]["wire"]  # and on the wire
