"""Where decode time goes, on the W1 and W2 bodies of bench/test_decode.py.

    python bench/decode_profile.py [ROUNDS]

Per backend: decompress, kernel (wire bytes to columns), build (columns to
model objects), read (the bench's loop over every label and sample), and
protobuf+cramjam's whole decode-and-read beside them; best of ROUNDS (default
15) by time.process_time, in ms. The read loops are test_decode's own.

"ceiling" is protobuf+cramjam's total over our read loop alone: the ratio a
decoder that took no time at all would reach, since the bench reads every
label and sample in Python after decoding (as it must, to compare like with like).
"""

from __future__ import annotations

import gc
import pathlib
import sys
import time
from typing import Any, Callable, Tuple

sys.path[:0] = [str(pathlib.Path(__file__).parent), str(pathlib.Path(__file__).parent.parent)]

from test_decode import read_protobuf  # noqa: E402
from test_encode import W1, W2, protobuf_cramjam  # noqa: E402

from promwrite import _backend, decoder  # noqa: E402
from promwrite.decoder import DEFAULT_LIMITS  # noqa: E402


def best(rounds: int, run: Callable[[], Any]) -> Tuple[float, Any]:
    """The least CPU ms of `rounds` calls (collector on, as the bench runs), and the last result."""
    least, result = float("inf"), None
    for _ in range(rounds):
        start = time.process_time()
        result = run()
        least = min(least, time.process_time() - start)
    return least * 1e3, result


def read(request: Any) -> Any:
    """test_decode.read_promwrite's loop, on an already decoded request."""
    return [
        ([(lb.name, lb.value) for lb in ts.labels], [(s.value, s.timestamp_ms) for s in ts.samples])
        for ts in request.timeseries
    ]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    print("| workload | contender | decompress | kernel | build | read | total | protobuf+cramjam | ratio | ceiling |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, data in (("W1 10k x 1", W1), ("W2 1k x 100", W2)):
        wire = protobuf_cramjam(data)
        reference, _ = best(rounds, lambda: read_protobuf(wire))
        for kernels in _backend.available():
            t_raw, raw = best(rounds, lambda: kernels.decompress(wire, 1 << 30))
            limits = DEFAULT_LIMITS.kernel_limits(len(raw))
            t_kernel, cols = best(rounds, lambda: kernels.decode_v1(raw, limits, 1))

            def build() -> Any:
                gc.disable()  # as decode_with builds
                try:
                    return decoder._build_v1(raw, cols)
                finally:
                    gc.enable()

            t_build, request = best(rounds, build)
            t_read, _ = best(rounds, lambda: read(request))
            total, _ = best(rounds, lambda: read(decoder.decode_payload_with(kernels, wire, None, "1.0")))
            print(f"| {name} | promwrite {kernels.name} | {t_raw:.1f} | {t_kernel:.1f} | {t_build:.1f} | {t_read:.1f} |"
                  f" {total:.1f} | {reference:.1f} | {reference / total:.2f}x | {reference / t_read:.2f}x |")


if __name__ == "__main__":
    main()
