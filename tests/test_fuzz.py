"""The fuzz targets, each run for a bounded time (PROMWRITE_FUZZ_SECONDS, default 20).

* csrc/test_fuzz_snappy.c and csrc/test_fuzz_pbdec.c: libFuzzer targets for
  csrc/snappy.c and the C decoder csrc/pbdec.c, built with
  clang -fsanitize=fuzzer,address,undefined and run on seed corpora of valid
  snappy streams and of serialized 1.0 and 2.0 requests;
* tests/fuzz_snappy.py and tests/fuzz_decode.py: atheris targets (snappy in
  both backends; `codec.decode` / `decode_payload`, the two decode kernels
  against each other), run in a subprocess.

A finding fails the test with the reproducer's bytes in the message (also kept
as the crash-* file under the test's tmp dir). Turn it into a plain regression
test at the end of this file. Without clang (able to link libFuzzer) or
atheris the tests are skipped, unless PROMWRITE_REQUIRE_NATIVE=1 (CI), where
that is a failure, as in test_snappy_sanitized.py.

Longer runs by hand, e.g. with the seeds this file makes:
    python tests/fuzz_decode.py -max_total_time=600 -timeout=10 CORPUS_DIR
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest

from promwrite import _pysnappy
from promwrite import _backend
from promwrite.codec import decode, encode_with
from promwrite.errors import DecodeError
from promwrite.model import (
    BucketSpan,
    Exemplar,
    Histogram,
    MetricMetadata,
    MetricType,
    ResetHint,
    Sample,
    TimeSeries,
    WriteRequest,
)

from .ctools import CSRC, REQUIRE, ROOT, unavailable

TESTS = ROOT / "tests"
SECONDS = int(os.environ.get("PROMWRITE_FUZZ_SECONDS", "20"))
RSS_LIMIT_MB = 2048
PER_INPUT_TIMEOUT = 10  # seconds; an input this slow is reported as a hang
CLANG_FLAGS = [
    "-std=c99", "-g", "-O1", "-fno-omit-frame-pointer",
    "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
]  # fmt: skip


# ---- seed corpora ------------------------------------------------------------------

def _plain_samples() -> List[bytes]:
    return [
        b"",
        b"a",
        b"abcabcabcabcabcabcabcabc",
        bytes(range(256)) * 3,
        b"\x00" * 5000,
        b"remote write " * 700,  # long copies, far offsets
        bytes((i * 7919) % 251 for i in range(70000)),  # > 64 KiB: more than one block
    ]


def _requests() -> List[WriteRequest]:
    hist_int = Histogram(
        count=6, zero_count=1, sum=12.5, schema=1, zero_threshold=1e-3,
        positive_spans=[BucketSpan(0, 2), BucketSpan(1, 1)], positive_deltas=[1, 1, -1],
        negative_spans=[BucketSpan(-1, 1)], negative_deltas=[1],
        reset_hint=ResetHint.NO, timestamp_ms=1_700_000_000_000,
    )  # fmt: skip
    hist_float = Histogram(
        count=3.0, zero_count=0.5, sum=-1.25, schema=0,
        positive_spans=[BucketSpan(2, 2)], positive_counts=[1.0, 1.5],
        reset_hint=ResetHint.GAUGE, timestamp_ms=-5,
    )  # fmt: skip
    return [
        WriteRequest([TimeSeries({"__name__": "up", "job": "a"}, [Sample(1.0, timestamp_ms=1000)])]),
        WriteRequest(
            [
                TimeSeries(
                    {"__name__": "http_requests_total", "code": "200", "path": "/ä"},
                    [Sample(float(i), timestamp_ms=1_700_000_000_000 + i) for i in range(5)],
                    exemplars=[Exemplar({"trace_id": "abc123"}, 2.0, timestamp_ms=1_700_000_000_001)],
                ),
                TimeSeries({"__name__": "latency_seconds"}, histograms=[hist_int, hist_float]),
            ],
            [MetricMetadata(MetricType.COUNTER, "http_requests_total", "Requests.", "")],
        ),
        WriteRequest([], [MetricMetadata(MetricType.HISTOGRAM, "latency_seconds", "Latency.", "seconds")]),
    ]


def snappy_streams() -> List[bytes]:
    """Valid snappy blocks: the C target's seeds."""
    return [_pysnappy.compress(data) for data in _plain_samples()]


def fuzz_snappy_seeds() -> List[bytes]:
    """tests/fuzz_snappy.py seeds: mode byte >= 0x20 decodes the rest, < 0x20 compresses it."""
    return [b"\x20" + s for s in snappy_streams()] + [b"\x01" + d[:4096] for d in _plain_samples()]


def fuzz_decode_seeds() -> List[bytes]:
    """tests/fuzz_decode.py seeds: mode bit 0 = snappy body (else protobuf), bit 1 = 2.0 (else 1.0)."""
    python = _backend.available()[0]
    seeds = []
    for request in _requests():
        for v2, protocol in ((0, "1.0"), (2, "2.0")):
            raw = encode_with(python, request, compress=False, protocol=protocol)
            seeds += [bytes([v2]) + raw, bytes([v2 | 1]) + _pysnappy.compress(raw)]
    return seeds


def write_corpus(directory: pathlib.Path, seeds: List[bytes]) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:02d}").write_bytes(seed)
    return directory


# ---- running a fuzzer -----------------------------------------------------------

def _findings(artifacts: pathlib.Path) -> str:
    """The reproducers libFuzzer wrote (crash-*, leak-*, timeout-*, oom-*, slow-unit-*), as Python bytes."""
    lines = []
    for path in sorted(artifacts.glob("*-*")):
        data = path.read_bytes()
        shown = repr(data) if len(data) <= 4096 else repr(data[:4096]) + f" ... ({len(data)} bytes)"
        lines.append(f"reproducer {path} ({len(data)} bytes):\n    {shown}")
    return "\n".join(lines) or "(libFuzzer wrote no reproducer file)"


def run_fuzzer(cmd: List[str], tmp_path: pathlib.Path, corpus: pathlib.Path, env: Dict[str, str]) -> str:
    """Run a libFuzzer-style fuzzer for SECONDS; fail with the reproducer on a finding."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    args = [
        *cmd,
        f"-max_total_time={SECONDS}",
        f"-timeout={PER_INPUT_TIMEOUT}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    done = subprocess.run(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", timeout=SECONDS + 300,
    )  # fmt: skip
    output = done.stdout
    if done.returncode != 0:
        pytest.fail(
            f"{os.path.basename(cmd[-1])} found a problem (exit {done.returncode}).\n"
            f"{_findings(artifacts)}\n"
            "Replay: the same command with the reproducer file instead of the corpus dir;"
            " add the bytes as a regression test in tests/test_fuzz.py.\n"
            f"--- fuzzer output (tail) ---\n{output[-6000:]}",
            pytrace=False,
        )
    assert "Done " in output, f"the fuzzer did not run to its time limit:\n{output[-3000:]}"
    return output


# ---- libFuzzer: csrc/snappy.c and csrc/pbdec.c under ASan + UBSan ------------------------

def pbdec_seeds() -> List[bytes]:
    """Serialized requests, 1.0 and 2.0: the C decoder target's seeds."""
    python = _backend.available()[0]
    return [encode_with(python, r, compress=False, protocol=p) for r in _requests() for p in ("1.0", "2.0")]


LIBFUZZER_TARGETS = {
    "snappy": ("test_fuzz_snappy.c", "snappy.c", snappy_streams),
    "pbdec": ("test_fuzz_pbdec.c", "pbdec.c", pbdec_seeds),
}


@pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py
@pytest.mark.parametrize("target", list(LIBFUZZER_TARGETS))
def test_fuzz_c(target: str, tmp_path: pathlib.Path) -> None:
    clang = shutil.which("clang")
    if clang is None:
        unavailable("clang not found (libFuzzer needs it; scripts/test installs it)")
    driver, source, seeds = LIBFUZZER_TARGETS[target]
    exe = tmp_path / f"fuzz_{target}"
    sources = [str(CSRC / driver), str(CSRC / source)]
    built = subprocess.run(
        [clang, *CLANG_FLAGS, *sources, "-o", str(exe)], capture_output=True, text=True, timeout=300
    )
    if built.returncode != 0:
        probe = subprocess.run(
            [clang, *CLANG_FLAGS, "-x", "c", "-", "-o", str(tmp_path / "probe")],
            input="#include <stddef.h>\n#include <stdint.h>\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n",
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if probe.returncode != 0:
            unavailable(f"{clang} cannot link libFuzzer + sanitizers: {probe.stderr.strip()[-400:]}")
        pytest.fail(f"building the libFuzzer target failed:\n{built.stderr}")
    corpus = write_corpus(tmp_path / "corpus", seeds())
    env = dict(os.environ, UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    check = subprocess.run([str(exe), "-runs=0", str(corpus)], capture_output=True, text=True, env=env, timeout=120)
    if "LeakSanitizer has encountered a fatal error" in check.stderr:  # no ptrace here
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    run_fuzzer([str(exe)], tmp_path, corpus, env)


# ---- atheris: the Python targets ------------------------------------------------------

@pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py
@pytest.mark.parametrize("script", ["fuzz_snappy.py", "fuzz_decode.py"])
def test_fuzz_python(script: str, tmp_path: pathlib.Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        unavailable(f"atheris is not installed in {sys.executable} (pip install -e '.[test]')")
    seeds = fuzz_snappy_seeds() if script == "fuzz_snappy.py" else fuzz_decode_seeds()
    corpus = write_corpus(tmp_path / "corpus", seeds)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    output = run_fuzzer([sys.executable, str(TESTS / script)], tmp_path, corpus, env)
    if REQUIRE and script == "fuzz_decode.py":
        assert "'native'" in output, "PROMWRITE_REQUIRE_NATIVE=1 but fuzz_decode ran without the C backend"


# ---- regression tests: inputs the fuzzers once found -------------------------------------
# Plain tests of the properties the targets check, fed the (minimised) bytes.


def reencodes_faithfully(kernels: _backend.Kernels, raw: bytes) -> None:
    """fuzz_decode's re-encode property: decode raises only DecodeError; what
    it gives encodes or is refused with a ValueError (SeriesError), and what
    encodes decodes back to an equal request."""
    try:
        request = decode(raw)
    except DecodeError:
        return
    try:
        again = encode_with(kernels, request, compress=False)
    except ValueError:
        return
    assert decode(again) == request


_NAME_M = bytes.fromhex("0a0d" "0a085f5f6e616d655f5f" "12016d")  # label __name__="m"


def _one_histogram(histogram: bytes) -> bytes:
    """A WriteRequest of one series {__name__="m"} with one histogram (encoded fields)."""
    series = _NAME_M + b"\x22" + bytes([len(histogram)]) + histogram
    return b"\x0a" + bytes([len(series)]) + series


def test_regression_int_count_float_zero_count(kernels) -> None:
    # fuzz_decode: count_int=1 (field 1) with zero_count_float=0.5 (field 7) decodes
    # (the oneofs are independent on the wire); encode raised TypeError before
    # each oneof was written as its own value's kind.
    raw = _one_histogram(bytes.fromhex("0801" "39000000000000e03f"))
    assert raw.hex() == "0a1c0a0d0a085f5f6e616d655f5f12016d220b080139000000000000e03f"
    reencodes_faithfully(kernels, raw)


@pytest.mark.parametrize(
    "histogram",
    [
        "11000000000000e03f3005",  # count_float=0.5, zero_count_int=5 -> 5.0
        "11000000000000e03f",  # count_float=0.5, no zero_count: decoded as int 0 -> 0.0
    ],
)
def test_regression_float_count_int_zero_count(kernels, histogram: str) -> None:
    reencodes_faithfully(kernels, _one_histogram(bytes.fromhex(histogram)))
