"""csrc/cpython/ (promwrite._cmodel) strict with each compiler, and under AddressSanitizer + UBSan.

The sanitized module is built into a copy of the package and runs the tests of
its every path (tests/test_cmodel.py, test_cbuild.py, the model and codec
tests) with objects on malloc, so that ASan sees every Python object the
module reads or writes.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
from typing import Any

import pytest

from .ctools import COMPILERS, CSRC, ROOT, SANITIZE, STRICT, build, cc_id, need, unavailable

SOURCES = [CSRC / "cpython" / name for name in ("cmodel.c", "cbuild.c")]  # setup.py's, as one module
INCLUDE = "-I" + sysconfig.get_paths()["include"]


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_compiles_strict(cc: Any, opt: str, tmp_path: pathlib.Path) -> None:
    for source in SOURCES:
        done = build(need(cc), [*STRICT, opt, "-fPIC", INCLUDE, "-c", str(source), "-o", str(tmp_path / "out.o")], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py
@pytest.mark.timeout(900)
@pytest.mark.parametrize("cc", COMPILERS[:1], ids=cc_id)
def test_model_paths_under_sanitizers(cc: Any, tmp_path: pathlib.Path) -> None:
    cc = need(cc)
    runtimes = []
    for lib in ("libasan.so", "libubsan.so"):
        found = subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True, timeout=60).stdout.strip()
        if not os.path.isabs(found) or not os.path.exists(found):
            unavailable(f"{cc} has no shared {lib} to preload into Python")
        runtimes.append(found)
    shutil.copytree(ROOT / "promwrite", tmp_path / "promwrite", ignore=shutil.ignore_patterns("_cmodel*", "__pycache__"))
    module = tmp_path / "promwrite" / ("_cmodel" + sysconfig.get_config_var("EXT_SUFFIX"))
    done = build(cc, [*SANITIZE, "-std=c99", "-shared", "-fPIC", INCLUDE, *map(str, SOURCES), "-o", str(module)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), PYTHONMALLOC="malloc",
               LD_PRELOAD=":".join(runtimes), ASAN_OPTIONS="detect_leaks=0", PROMWRITE_FULL="1")  # fmt: skip
    tests = [str(ROOT / "tests" / name) for name in ("test_cmodel.py", "test_cbuild.py", "test_model.py", "test_codec.py")]
    launch = (  # promwrite imported from the copy first, so that the tests, run in this process, take it
        "import sys, pytest, promwrite.model as m\n"
        f"assert m.cmodel.__file__ == {str(module)!r}, m.cmodel\n"
        f"sys.exit(pytest.main(['-q', '-x', '-n0', '-p', 'no:cacheprovider', *{tests!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", launch], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800)
    assert run.returncode == 0 and "Sanitizer" not in run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout, run.stdout[-3000:]
