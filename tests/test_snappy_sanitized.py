"""csrc/snappy.c under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_snappy.c (round trips, every tag kind,
corrupt streams, a bounded mutation-fuzz loop) with each C compiler found and
runs it; also checks snappy.c compiles warning-free. Skipped without a C
compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import List

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


COMPILERS = compilers()
params = COMPILERS or [None]


def build(cc: str, args: List[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([cc, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("cc", params, ids=lambda c: os.path.basename(c) if c else "none")
def test_snappy_c_compiles_warning_free(cc, tmp_path):
    if cc is None:
        unavailable("no C compiler found")
    done = build(cc, [*STRICT, "-O2", "-c", str(CSRC / "snappy.c"), "-o", str(tmp_path / "snappy.o")], tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("cc", params, ids=lambda c: os.path.basename(c) if c else "none")
def test_snappy_c_under_sanitizers(cc, tmp_path):
    if cc is None:
        unavailable("no C compiler found")
    exe = tmp_path / "test_snappy"
    done = build(cc, [*STRICT, *SANITIZE, str(CSRC / "test_snappy.c"), str(CSRC / "snappy.c"), "-o", str(exe)], tmp_path)
    if done.returncode != 0:
        probe = subprocess.run(
            [cc, *SANITIZE, "-x", "c", "-", "-o", str(tmp_path / "probe")],
            input="int main(void) { return 0; }\n", capture_output=True, text=True, timeout=120,
        )
        if probe.returncode != 0:
            unavailable(f"{cc} cannot build with sanitizers: {probe.stderr.strip()[:300]}")
        pytest.fail(done.stderr)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    if "LeakSanitizer has encountered a fatal error" in run.stderr:  # no ptrace here
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_snappy: ok" in run.stdout
