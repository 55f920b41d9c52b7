"""csrc/pbenc2.c (remote write 2.0) under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_pbenc2.c (known bytes, both kernels
against plain reference encoders on deterministic random inputs, mutated
label text, hostile sizes, every scratch placement) with each C compiler
found and runs it; also checks pbenc2.c and the driver compile warning-free.
Skipped without a C compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Optional

import pytest

from .test_c_sanitized_pbenc import COMPILERS, CSRC, SANITIZE, STRICT, build, unavailable


@pytest.mark.parametrize("opt", ["-O0", "-O2", "-O3"])
@pytest.mark.parametrize("cc", COMPILERS, ids=lambda c: os.path.basename(c) if c else "none")
def test_pbenc2_c_compiles_warning_free(cc: Optional[str], opt: str, tmp_path: pathlib.Path) -> None:
    if cc is None:
        unavailable("no C compiler found")
    for source in ("pbenc2.c", "test_pbenc2.c"):
        done = build(cc, [*STRICT, opt, "-c", str(CSRC / source), "-o", str(tmp_path / "out.o")], tmp_path)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("cc", COMPILERS, ids=lambda c: os.path.basename(c) if c else "none")
def test_pbenc2_c_under_sanitizers(cc: Optional[str], tmp_path: pathlib.Path) -> None:
    if cc is None:
        unavailable("no C compiler found")
    exe = tmp_path / "test_pbenc2"
    sources = [str(CSRC / name) for name in ("test_pbenc2.c", "pbenc2.c", "pbenc.c", "snappy.c")]
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
