"""csrc/pbenc2.c (remote write 2.0) under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_pbenc2.c (known bytes, both kernels
against plain reference encoders on deterministic random inputs, mutated
label text, hostile sizes, every scratch placement) with each C compiler
found and runs it; also checks pbenc2.c and the driver compile warning-free.
Skipped without a C compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import pytest

from .ctools import COMPILERS, assert_compiles, cc_id, run_sanitized

pytestmark = pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py


@pytest.mark.parametrize("opt", ["-O0", "-O2", "-O3"])
@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_pbenc2_c_compiles_warning_free(cc: Optional[str], opt: str, tmp_path: pathlib.Path) -> None:
    assert_compiles(cc, opt, ("pbenc2.c", "test_pbenc2.c"), tmp_path)


@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_pbenc2_c_under_sanitizers(cc: Optional[str], tmp_path: pathlib.Path) -> None:
    assert "checks passed" in run_sanitized(cc, ("test_pbenc2.c", "pbenc2.c", "pbenc.c", "snappy.c"), tmp_path)
