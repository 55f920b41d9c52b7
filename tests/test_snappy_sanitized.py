"""csrc/snappy.c under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds the standalone driver csrc/test_snappy.c (round trips, every tag kind,
corrupt streams, a bounded mutation-fuzz loop) with each C compiler found and
runs it; also checks snappy.c compiles warning-free. Skipped without a C
compiler, unless PROMWRITE_REQUIRE_NATIVE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import pytest

from .ctools import COMPILERS, assert_compiles, cc_id, run_sanitized

pytestmark = pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py


@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_snappy_c_compiles_warning_free(cc, tmp_path):
    assert_compiles(cc, "-O2", ("snappy.c",), tmp_path)


@pytest.mark.parametrize("cc", COMPILERS, ids=cc_id)
def test_snappy_c_under_sanitizers(cc, tmp_path):
    assert "test_snappy: ok" in run_sanitized(cc, ("test_snappy.c", "snappy.c"), tmp_path)
