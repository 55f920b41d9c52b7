"""`import promwrite` in a fresh interpreter: it never warns, says on demand why a
backend runs, and reaches every submodule the README documents.

The real installs without cffi and without a compiler are in test_install.py;
here a missing module is made missing in the child (None in sys.modules), which
is how the import system itself reports one that is not there.
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


def python(code: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run `code` with warnings as errors in a fresh interpreter (outside the checkout)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMWRITE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True,
                          env=full_env, cwd=ROOT.parent, timeout=60)


def reason_when_missing(module: str, backend: str = "auto") -> subprocess.CompletedProcess:
    code = f"import sys; sys.modules[{module!r}] = None; import promwrite; print(promwrite.backend); print(promwrite.backend_reason)"
    return python(code, {"PROMWRITE_BACKEND": backend})


def documented_submodules() -> List[str]:
    names = set(re.findall(r"\bpromwrite\.([a-z][a-z0-9_]*)\b", (ROOT / "README.md").read_text(encoding="utf-8")))
    return sorted(n for n in names if (ROOT / "promwrite" / f"{n}.py").is_file() or (ROOT / "promwrite" / n).is_dir())


def test_every_documented_submodule_is_reachable_after_import() -> None:
    names = documented_submodules()
    assert {"snappy", "receiver", "exposition", "errors"} <= set(names)
    result = python(f"import promwrite, types\nfor n in {names!r}: assert isinstance(getattr(promwrite, n), types.ModuleType), n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    result = python("import promwrite\ntry: promwrite.no_such_thing\nexcept AttributeError as e: print(e)")
    assert result.stdout == "module 'promwrite' has no attribute 'no_such_thing'\n", result.stderr


@pytest.mark.parametrize("backend", ["auto", "python"])
def test_import_is_silent_and_gives_the_reason(backend: str) -> None:
    result = python("import promwrite; print(promwrite.backend); print(promwrite.backend_reason)",
                    {"PROMWRITE_BACKEND": backend})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    name, reason = result.stdout.splitlines()
    if backend == "python":
        assert name == "python" and reason.startswith("PROMWRITE_BACKEND=python forces the pure-Python backend")
    elif name == "native":
        assert reason == "the C accelerator is built and imports"
    else:
        assert "for the C backend:" in reason, reason


def test_cffi_missing_is_silent_and_says_how_to_get_native() -> None:
    result = reason_when_missing("_cffi_backend")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == [
        "python",
        "the C accelerator is built but cffi, which it needs at run time, is not installed;"
        " for the C backend: pip install cffi (or install promwrite[native])",
    ]


def test_source_folder_without_c_module_says_so() -> None:
    """What `python -m promwrite` run inside a checkout meets when only the installed copy is built."""
    result = reason_when_missing("promwrite._cext")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    name, reason = result.stdout.splitlines()
    assert name == "python"
    assert reason.startswith(f"promwrite was imported from the source folder {ROOT / 'promwrite'}, where no C module is built")
    assert "run the installed `promwrite` command" in reason and "python setup.py build_ext --inplace" in reason


def test_backend_native_required_names_the_reason() -> None:
    result = reason_when_missing("_cffi_backend", backend="native")
    assert result.returncode == 1
    assert "ImportError: PROMWRITE_BACKEND=native requires the C accelerator: the C accelerator is built but cffi" in result.stderr
