"""csrc/pbdec.c (the decoder, 1.0 and 2.0) under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_pbdec.c (random valid requests checked
against what was encoded, every limit one below what a request holds,
mutated and truncated copies in exact-size buffers, hostile lengths and
references, the empty-series bomb) with each C compiler found and runs it;
also checks pbdec.c and the driver compile warning-free. Skipped without a C
compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import pytest

from .ctools import COMPILERS, assert_compiles, cc_id, run_sanitized

pytestmark = pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py


@pytest.mark.parametrize("opt", ["-O0", "-O2", "-O3"])
@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_pbdec_c_compiles_warning_free(cc: Optional[str], opt: str, tmp_path: pathlib.Path) -> None:
    assert_compiles(cc, opt, ("pbdec.c", "test_pbdec.c", "test_fuzz_pbdec.c"), tmp_path)


@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_pbdec_c_under_sanitizers(cc: Optional[str], tmp_path: pathlib.Path) -> None:
    assert "checks passed" in run_sanitized(cc, ("test_pbdec.c", "pbdec.c"), tmp_path)
