"""`pip install .` in fresh virtual environments: without cffi, and without a working compiler.

Both must install the pure-Python backend with a clear warning at build time,
and the demo must then run. These build real wheels from this checkout (pip
reaches PyPI for setuptools), so they take a while: ~1 minute together.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
WARNING = "promwrite's C accelerator was not built"


def run(cmd: List[str], cwd: pathlib.Path, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMWRITE_")}
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)


def fresh_venv(tmp_path: pathlib.Path) -> pathlib.Path:
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    result = run([base, "-m", "venv", str(venv)], tmp_path)
    assert result.returncode == 0, result.stderr
    return venv / "bin" / "python"


def copy_of_checkout(tmp_path: pathlib.Path) -> pathlib.Path:
    """The tracked source files only, so no built extension from this tree leaks in."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    dest = tmp_path / "src"
    for name in filter(None, files):
        target = dest / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name.decode()).read_bytes())
    return dest


def check_demo(python: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = run([str(python), "-m", "promwrite", "demo", "--series", "300", "--samples", "3"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend          python" in result.stdout
    assert "every series and sample arrived intact" in result.stdout


@pytest.fixture(scope="module")
def pip_reaches_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip (or fail in CI) when PyPI cannot be reached for setuptools."""
    probe = run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path_factory.mktemp("probe")), "setuptools"], ROOT)
    if probe.returncode != 0:
        if os.environ.get("PROMWRITE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"pip cannot reach the package index: {probe.stderr[-500:]}")
        pytest.skip("pip cannot reach the package index")


def test_install_without_cffi(tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    python = fresh_venv(tmp_path)
    src = copy_of_checkout(tmp_path)
    tools = run([str(python), "-m", "pip", "install", "-q", "setuptools>=61", "wheel"], tmp_path)
    assert tools.returncode == 0, tools.stderr
    assert run([str(python), "-c", "import cffi"], tmp_path).returncode != 0, "this venv must not have cffi"
    result = run([str(python), "-m", "pip", "install", "-v", "--no-build-isolation", str(src)], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert WARNING in result.stdout + result.stderr and "cffi is not installed" in result.stdout + result.stderr
    check_demo(python, tmp_path)


def test_install_without_compiler(tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    python = fresh_venv(tmp_path)
    src = copy_of_checkout(tmp_path)
    result = run([str(python), "-m", "pip", "install", "-v", str(src)], tmp_path, {"CC": "/bin/false"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert WARNING in result.stdout + result.stderr
    check_demo(python, tmp_path)
    native = run([str(python), "-c", "import promwrite._cext"], tmp_path)
    assert native.returncode != 0  # nothing half-built was installed
