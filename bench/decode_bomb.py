"""Time and peak memory of decoding one hostile body, in a fresh process (VmHWM).

    python bench/decode_bomb.py KIND MIB        # PROMWRITE_BACKEND picks the backend
    python bench/decode_bomb.py all MIB         # every kind, each in its own process

KIND: v1-series / v2-series (``0a00`` / ``2a00`` repeated: empty series, over
the limits); otherwise one of SHAPES below, as many of its elements as the default
limits accept and one skipped field padding the body to size. MIB: the
decompressed size. Prints one JSON line per body: outcome (ok or the error),
the best CPU seconds of three decode_payload calls, peak RSS in MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict

from promwrite import _pysnappy, codec
from promwrite._pydecode import (
    COST_BUCKET,
    COST_EXEMPLAR,
    COST_HISTOGRAM,
    COST_LABEL_REF,
    COST_METADATA,
    COST_PAIR,
    COST_SAMPLE,
    COST_SERIES,
    COST_SPAN,
    COST_STRING,
)
from promwrite.decoder import DecodeLimits

_varint = _pysnappy.varint


def _ld(key: int, payload: bytes) -> bytes:
    return bytes([key]) + _varint(len(payload)) + payload


def _minimal(i: int) -> bytes:
    """A series of one label a="<i>" and one sample (value 1.5, a current timestamp)."""
    label = _ld(0x0A, b"\x0a\x01a" + _ld(0x12, str(i).encode()))
    sample = _ld(0x12, b"\x09" + bytes(7) + b"\x3f" + b"\x10" + _varint(1_700_000_000_000 + i))
    return _ld(0x0A, label + sample)


def _distinct_label(i: int) -> bytes:
    return _ld(0x0A, b"\x0a\x01a" + _ld(0x12, str(i).encode()))


def _fill(unit: bytes, cost: int, budget: int, size: int, reserve: int = 64) -> int:
    """How many `unit`s fit both the cost budget and the size."""
    return max(0, min((budget - 4096) // cost, (size - reserve) // len(unit)))


def _in_series_v1(inner: bytes) -> bytes:
    return _ld(0x0A, inner)


def _shape(kind: str, size: int) -> bytes:
    """The elements of a SHAPE body: as many as the default limits' cost budget and the size allow."""
    budget = DecodeLimits().max_expansion * size + (64 << 10)
    if kind == "v1-accepted":
        return b"\x0a\x00" * _fill(b"\x0a\x00", COST_SERIES, budget, size)
    if kind == "v2-accepted":
        return b"\x2a\x00" * _fill(b"\x2a\x00", 2 * COST_SERIES, budget, size)
    if kind == "v1-minimal":
        out, i, spent = [], 0, 0
        while True:
            unit = _minimal(i)
            cost = COST_SERIES + COST_LABEL_REF + COST_PAIR + COST_STRING + len(str(i)) + COST_SAMPLE
            if spent + cost > budget - 4096 or (i + 1) * len(unit) > size - 64:
                break
            out.append(unit)
            spent += cost
            i += 1
        return b"".join(out)
    if kind == "v1-distinct-labels":
        out, i, spent, used = [], 0, COST_SERIES, 16
        while True:
            unit = _distinct_label(i)
            cost = COST_LABEL_REF + COST_PAIR + COST_STRING + len(str(i))
            if spent + cost > budget - 4096 or used + len(unit) > size - 64:
                break
            out.append(unit)
            spent += cost
            used += len(unit)
            i += 1
        return _in_series_v1(b"".join(out))
    single = {  # one series holding many of one small element: (unit, cost)
        "v1-labels": (b"\x0a\x00", COST_LABEL_REF),
        "v1-samples": (b"\x12\x00", COST_SAMPLE),
        "v1-exemplars": (b"\x1a\x00", COST_EXEMPLAR),
    }
    if kind in single:
        unit, cost = single[kind]
        return _in_series_v1(unit * _fill(unit, cost, budget - COST_SERIES, size))
    if kind == "v1-exemplar-labels":
        n = _fill(b"\x0a\x00", COST_LABEL_REF, budget - COST_SERIES - COST_EXEMPLAR, size)
        return _in_series_v1(_ld(0x1A, b"\x0a\x00" * n))
    if kind == "v1-metadata":
        return b"\x1a\x00" * _fill(b"\x1a\x00", COST_METADATA, budget, size)
    if kind == "v1-spans":
        n = _fill(b"\x5a\x00", COST_SPAN, budget - COST_SERIES - COST_HISTOGRAM, size)
        return _in_series_v1(_ld(0x22, b"\x5a\x00" * n))
    if kind == "v1-deltas":
        n = _fill(b"\x00", COST_BUCKET, budget - COST_SERIES - COST_HISTOGRAM, size)
        return _in_series_v1(_ld(0x22, _ld(0x62, bytes(n))))
    if kind == "v1-skipped":
        return b"\x7a\x00" * ((size - 64) // 2)
    if kind == "v2-symbols":
        return b"\x22\x00" * _fill(b"\x22\x00", COST_STRING, budget, size)
    if kind == "v2-refs":
        n = 2 * _fill(b"\x00\x00", COST_LABEL_REF, budget - 2 * COST_SERIES - COST_PAIR, size)
        return b"\x22\x00" + _ld(0x2A, _ld(0x0A, bytes(n)))
    v2_single = {  # one 2.0 series holding many of one small element: (unit, cost)
        "v2-metadata": (b"\x2a\x00", COST_METADATA),
        "v2-exemplars": (b"\x22\x00", COST_EXEMPLAR),
        "v2-samples": (b"\x12\x00", COST_SAMPLE),
        "v2-runs": (b"\x12\x02\x18\x01\x12\x02\x18\x02", 2 * (COST_SAMPLE + COST_SERIES)),
    }
    if kind in v2_single:
        unit, cost = v2_single[kind]
        return b"\x22\x00" + _ld(0x2A, unit * _fill(unit, cost, budget - 2 * COST_SERIES, size))
    if kind == "v2-spans":
        n = _fill(b"\x5a\x00", COST_SPAN, budget - 3 * COST_SERIES - COST_HISTOGRAM, size)
        return b"\x22\x00" + _ld(0x2A, _ld(0x1A, b"\x5a\x00" * n))
    raise SystemExit(f"unknown kind {kind!r}")


SHAPES = ("v1-accepted", "v1-minimal", "v1-distinct-labels", "v1-labels", "v1-samples", "v1-exemplars",
          "v1-exemplar-labels", "v1-metadata", "v1-spans", "v1-deltas", "v1-skipped",
          "v2-accepted", "v2-symbols", "v2-refs", "v2-metadata", "v2-exemplars", "v2-samples", "v2-runs",
          "v2-spans")  # fmt: skip


def body(kind: str, size: int) -> bytes:
    if kind in ("v1-series", "v2-series"):
        return (b"\x0a\x00" if kind == "v1-series" else b"\x2a\x00") * (size // 2)
    raw = _shape(kind, size)
    pad = size - len(raw) - 8
    return raw + (b"\x7a" + _varint(pad) + bytes(pad) if pad > 0 else b"")  # field 15: skipped


def peak_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, mib: float, rounds: int = 3) -> Dict[str, object]:
    """Decodes the body `rounds` times: the best CPU time (the machine may be shared) and the peak RSS."""
    raw = body(kind, int(mib * (1 << 20)))
    payload = _pysnappy.compress(raw)
    del raw
    protocol = "2.0" if kind.startswith("v2") else "1.0"
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        try:
            request = codec.decode_payload(payload, protocol=protocol)
            outcome = f"ok: {len(request.timeseries)} series, {len(request.metadata)} metadata"
        except ValueError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        best = min(best, time.process_time() - start)
        request = None
    return {"kind": kind, "mib": mib, "payload_bytes": len(payload), "outcome": outcome,
            "cpu_seconds": round(best, 3), "peak_mib": round(peak_mib(), 1)}  # fmt: skip


def main() -> None:
    kind, mib = sys.argv[1], sys.argv[2]
    if kind == "all":
        for shape in SHAPES:
            subprocess.run([sys.executable, __file__, shape, mib], env=os.environ, check=True)
        return
    print(json.dumps(measure(kind, float(mib))), flush=True)


if __name__ == "__main__":
    main()
