"""The C model on the newest CPython this machine has besides the suite's own.

promwrite._cmodel is written against CPython's C API, which changes between
versions (object layouts, vectorcall, GC flags). The suite runs on one
interpreter; here the package is installed from a copy of the checkout into a
fresh venv of the newest other interpreter found (3.9 up: the C API's changes come
with new versions; 3.9, the oldest supported, was checked by hand), and the tests that
hold the C objects to their Python twins run there.
"""

from __future__ import annotations

import glob
import os
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest

from tests.test_install import copy_of_checkout, pip_reaches_index, run  # noqa: F401 (a fixture)

pytestmark = pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
TWIN_TESTS = ["tests/test_cmodel.py", "tests/test_cbuild.py"]


def other_interpreters() -> List[Tuple[str, str]]:
    """(version, path) of the newest CPython 3.9+ on this machine other than this one's minor version."""
    found: Dict[Tuple[int, int], str] = {}
    candidates = glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
    candidates += glob.glob("/usr/bin/python3.[0-9]*") + glob.glob("/usr/local/bin/python3.[0-9]*")
    for path in sorted(candidates):
        match = re.search(r"python3\.(\d+)$", path) or re.search(r"versions/3\.(\d+)\.", path)
        if match and os.access(path, os.X_OK):
            minor = int(match.group(1))
            if minor >= 9 and minor != sys.version_info.minor:
                found.setdefault((3, minor), path)
    return [(f"{major}.{minor}", found[(major, minor)]) for major, minor in sorted(found)[-1:]]


INTERPRETERS = other_interpreters()


@pytest.mark.skipif(not INTERPRETERS, reason="no other CPython 3.9+ on this machine")
@pytest.mark.parametrize("version, interpreter", INTERPRETERS, ids=[v for v, _ in INTERPRETERS])
def test_c_model_matches_python_on(version: str, interpreter: str, tmp_path: pathlib.Path, pip_reaches_index: None) -> None:
    venv = tmp_path / "venv"
    assert run([interpreter, "-m", "venv", str(venv)], tmp_path).returncode == 0
    python = str(venv / "bin" / "python")
    src = copy_of_checkout(tmp_path)
    installed = run([python, "-m", "pip", "install", "-q", f"{src}[native]", "pytest", "hypothesis", "protobuf", "cramjam"], tmp_path)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    loaded = run([python, "-W", "error", "-c", "import promwrite, promwrite.model as m; print(promwrite.backend, m.cmodel is not None)"], tmp_path)
    assert loaded.stdout == "native True\n", loaded.stdout + loaded.stderr
    # From the copy's root without its promwrite/ folder, so the installed (built) package is the one imported.
    (src / "promwrite").rename(src / "promwrite-source")
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TWIN_TESTS], src, {"PROMWRITE_REQUIRE_NATIVE": "1"})
    assert result.returncode == 0, f"Python {version}:\n" + result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-1000:]
