"""Building and running the C test drivers in csrc/ (shared by the sanitizer and fuzz tests).

Tests using a C compiler are skipped without one, unless
PROMWRITE_REQUIRE_NATIVE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import List, Optional, Sequence

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


COMPILERS: List[Optional[str]] = list(compilers()) or [None]  # [None]: the tests report no compiler


def cc_id(cc: Optional[str]) -> str:
    return os.path.basename(cc) if cc else "none"


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"PROMWRITE_REQUIRE_NATIVE=1 but {reason}")
    pytest.skip(reason)


def need(cc: Optional[str]) -> str:
    if cc is None:
        unavailable("no C compiler found")
    return cc


def build(cc: str, args: List[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([cc, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_compiles(cc: Optional[str], opt: str, sources: Sequence[str], tmp_path: pathlib.Path) -> None:
    """Each of csrc/`sources` compiles with STRICT (warnings are errors) at `opt`."""
    cc = need(cc)
    for source in sources:
        done = build(cc, [*STRICT, opt, "-c", str(CSRC / source), "-o", str(tmp_path / "out.o")], tmp_path)
        assert done.returncode == 0, done.stderr


def run_sanitized(cc: Optional[str], sources: Sequence[str], tmp_path: pathlib.Path) -> str:
    """Builds csrc/`sources` (the driver first) with STRICT + SANITIZE, runs it; its stdout, asserting success."""
    cc = need(cc)
    exe = tmp_path / pathlib.Path(sources[0]).stem
    done = build(cc, [*STRICT, *SANITIZE, *(str(CSRC / s) for s in sources), "-o", str(exe)], tmp_path)
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
    return run.stdout
