"""csrc/pbenc.c under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_pbenc.c (known bytes, both kernels
against plain reference encoders on deterministic random inputs, hostile
sizes, garbage text, every scratch placement) with each C compiler found and
runs it; also checks pbenc.c and the driver compile warning-free. Skipped
without a C compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI): then a failure.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
REQUIRE = os.environ.get("PROMWRITE_REQUIRE_NATIVE") == "1"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def compilers() -> List[str]:
    found: List[str] = []
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        path = shutil.which(name) if name else None
        if path and os.path.realpath(path) not in {os.path.realpath(p) for p in found}:
            found.append(path)
    return found


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"PROMWRITE_REQUIRE_NATIVE=1 but {reason}")
    pytest.skip(reason)


COMPILERS: List[Optional[str]] = list(compilers()) or [None]


def build(cc: str, args: List[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([cc, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("opt", ["-O0", "-O2", "-O3"])
@pytest.mark.parametrize("cc", COMPILERS, ids=lambda c: os.path.basename(c) if c else "none")
def test_pbenc_c_compiles_warning_free(cc: Optional[str], opt: str, tmp_path: pathlib.Path) -> None:
    if cc is None:
        unavailable("no C compiler found")
    for source in ("pbenc.c", "test_pbenc.c"):
        done = build(cc, [*STRICT, opt, "-c", str(CSRC / source), "-o", str(tmp_path / "out.o")], tmp_path)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("cc", COMPILERS, ids=lambda c: os.path.basename(c) if c else "none")
def test_pbenc_c_under_sanitizers(cc: Optional[str], tmp_path: pathlib.Path) -> None:
    if cc is None:
        unavailable("no C compiler found")
    exe = tmp_path / "test_pbenc"
    sources = [str(CSRC / name) for name in ("test_pbenc.c", "pbenc.c", "snappy.c")]
    done = build(cc, [*STRICT, *SANITIZE, *sources, "-o", str(exe)], tmp_path)
    if done.returncode != 0:
        probe = subprocess.run(
            [cc, *SANITIZE, "-x", "c", "-", "-o", str(tmp_path / "probe")],
            input="int main(void) { return 0; }\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if probe.returncode != 0:
            unavailable(f"{cc} cannot build with sanitizers: {probe.stderr.strip()[:300]}")
        pytest.fail(done.stderr)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    if "LeakSanitizer has encountered a fatal error" in run.stderr:  # no ptrace here
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "checks passed" in run.stdout
