"""`pip install` in fresh virtual environments, from a copy of this checkout's tracked files.

The README's first command must give the C backend; without cffi or without a
working compiler the install must give the pure-Python backend with a clear
warning at build time, an import that never warns, and a demo that runs and says
why. These build real wheels (pip reaches the package index for setuptools and
cffi), so they take a while: ~1 minute together.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
WARNING = "promwrite's C accelerator was not built"

pytestmark = pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py


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


def activated(python: pathlib.Path) -> Dict[str, str]:
    """The environment `. venv/bin/activate` gives."""
    venv = python.parent.parent
    return {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def readme_first_command() -> str:
    """The first line of the README's first ```sh block, without its comment."""
    block = re.search(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    assert block, "README.md has no ```sh block"
    return block.group(1).splitlines()[0].split("  #")[0].strip()


def check_python_backend(python: pathlib.Path, tmp_path: pathlib.Path, reason: str) -> None:
    """Import is silent and says why the backend is python; the demo runs and says the same."""
    imported = run([str(python), "-W", "error", "-c", "import promwrite; print(promwrite.backend_reason)"], tmp_path)
    assert imported.returncode == 0 and imported.stderr == "", imported.stderr
    assert imported.stdout.startswith(reason), imported.stdout
    result = run([str(python), "-m", "promwrite", "demo", "--series", "300", "--samples", "3"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend          python\n" in result.stdout
    assert f"backend reason   {imported.stdout}" in result.stdout
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
    check_python_backend(python, tmp_path, "the C accelerator was not built when promwrite was installed")


def test_install_without_compiler(tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    python = fresh_venv(tmp_path)
    src = copy_of_checkout(tmp_path)
    result = run([str(python), "-m", "pip", "install", "-v", str(src)], tmp_path, {"CC": "/bin/false"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert WARNING in result.stdout + result.stderr
    check_python_backend(python, tmp_path, "the C accelerator was not built when promwrite was installed")
    native = run([str(python), "-c", "import promwrite._cext"], tmp_path)
    assert native.returncode != 0  # nothing half-built was installed


def test_plain_install_without_cffi_at_run_time(tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    """`pip install .`: the C module is built (cffi is a build requirement) but cffi is not installed."""
    python = fresh_venv(tmp_path)
    src = copy_of_checkout(tmp_path)
    result = run([str(python), "-m", "pip", "install", str(src)], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    built = run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('promwrite._cext'))"], tmp_path)
    assert built.stdout.startswith("ModuleSpec(name='promwrite._cext'"), built.stdout + built.stderr
    assert run([str(python), "-c", "import cffi"], tmp_path).returncode != 0
    check_python_backend(python, tmp_path, "the C accelerator is built but cffi, which it needs at run time, is not installed")
    assert run([str(python), "-m", "pip", "install", "-q", "cffi"], tmp_path).returncode == 0
    native = run([str(python), "-W", "error", "-c", "import promwrite; print(promwrite.backend)"], tmp_path)
    assert native.stdout == "native\n" and native.stderr == ""


def test_readme_first_command_runs_native(tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    """From a fresh copy of the checkout, in a fresh activated venv: the C backend, and it says so."""
    python = fresh_venv(tmp_path)
    src = copy_of_checkout(tmp_path)
    command = readme_first_command()
    result = run(["bash", "-c", command], src, activated(python))
    assert result.returncode == 0, command + "\n" + result.stdout[-3000:] + result.stderr[-3000:]
    assert "  backend          native\n  backend reason   the C accelerator is built and imports\n" in result.stdout
    assert "every series and sample arrived intact" in result.stdout
    # `python -m promwrite` inside the checkout imports the source folder instead, and says so.
    inside = run([str(python), "-m", "promwrite", "demo", "--series", "60", "--samples", "2"], src, activated(python))
    assert inside.returncode == 0, inside.stderr
    assert f"backend reason   promwrite was imported from the source folder {src / 'promwrite'}" in inside.stdout
