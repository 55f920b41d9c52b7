"""Time and peak memory of decoding one hostile body, in a fresh process (VmHWM).

    python bench/decode_bomb.py KIND MIB        # PROMWRITE_BACKEND picks the backend

KIND: v1-series (``0a00`` repeated: empty 1.0 series), v2-series (``2a00``),
v1-samples (one series of empty samples ``1200``), v1-labels (one series of
empty labels ``0a00``); v1-accepted / v2-accepted: the worst body the default
limits accept, as many empty series as the memory budget allows and an
unknown field padding it to size. MIB: the decompressed size. Prints one JSON line:
outcome (ok or the error), seconds of decode_payload, peak RSS in MiB.
"""

from __future__ import annotations

import json
import sys
import time

from promwrite import _pysnappy, codec
from promwrite._pydecode import COST_SERIES
from promwrite.decoder import DecodeLimits


def body(kind: str, size: int) -> bytes:
    if kind.endswith("-accepted"):
        limits = DecodeLimits()
        budget = limits.max_expansion * size + (64 << 10)
        series = budget // (COST_SERIES + (COST_SERIES if kind.startswith("v2") else 0)) - 8
        unit = b"\x0a\x00" if kind.startswith("v1") else b"\x2a\x00"
        pad = size - 2 * series - 8
        return unit * series + b"\x7a" + _pysnappy.varint(pad) + bytes(pad)  # field 15: skipped
    if kind in ("v1-series", "v2-series"):
        return (b"\x0a\x00" if kind == "v1-series" else b"\x2a\x00") * (size // 2)
    unit = b"\x12\x00" if kind == "v1-samples" else b"\x0a\x00"
    inner = unit * ((size - 8) // 2)
    return b"\x0a" + _pysnappy.varint(len(inner)) + inner


def peak_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    kind, mib = sys.argv[1], float(sys.argv[2])
    raw = body(kind, int(mib * (1 << 20)))
    payload = _pysnappy.compress(raw)
    del raw
    protocol = "2.0" if kind.startswith("v2") else "1.0"
    start = time.perf_counter()
    try:
        request = codec.decode_payload(payload, protocol=protocol)
        outcome = f"ok: {len(request.timeseries)} series"
    except ValueError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - start
    print(json.dumps({"kind": kind, "mib": mib, "payload_bytes": len(payload), "outcome": outcome,
                      "seconds": round(elapsed, 3), "peak_mib": round(peak_mib(), 1)}))


if __name__ == "__main__":
    main()
