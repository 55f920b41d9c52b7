"""cffi builder for ``promwrite._cext``, the C kernels in this folder.

Every ``*.h`` here but ``test_*`` (test drivers' helpers) declares its cffi interface between the markers
``/* cffi:begin */`` and ``/* cffi:end */``; every ``*.c`` is compiled in.
Used by setup.py (out-of-line API mode) and by the sanitizer build in tests.
"""

from __future__ import annotations

import pathlib
import re
import sys
from typing import List

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
_BLOCK = re.compile(r"/\* cffi:begin \*/(.*?)/\* cffi:end \*/", re.S)


def headers() -> List[pathlib.Path]:
    return sorted(p for p in HERE.glob("*.h") if not p.name.startswith("test_"))


def sources() -> List[pathlib.Path]:
    return sorted(p for p in HERE.glob("*.c") if not p.name.startswith("test_"))


def cdef() -> str:
    return "\n".join(m.group(1) for h in headers() for m in _BLOCK.finditer(h.read_text()))


def make_builder(extra_compile_args: List[str] = (), extra_link_args: List[str] = ()) -> FFI:
    builder = FFI()
    builder.cdef(cdef())
    builder.set_source(
        "promwrite._cext",
        "".join(f'#include "{h.name}"\n' for h in headers()),
        sources=[str(p.relative_to(HERE.parent)) for p in sources()],
        include_dirs=[str(HERE.relative_to(HERE.parent))],
        extra_compile_args=["-std=c99", "-O2", *extra_compile_args],
        extra_link_args=list(extra_link_args),
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":  # python csrc/cffi_build.py: build in place for development
    sys.exit(0 if ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True) else 1)
