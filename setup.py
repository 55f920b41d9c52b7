"""Builds the optional C accelerator; without cffi or a compiler, installs pure Python.

The shape follows MarkupSafe: try the extension, and if it cannot be built,
warn loudly and install the pure-Python backend, which gives identical bytes.
"""

from __future__ import annotations

import os
import platform
import sys
import traceback

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BANNER = "=" * 74


def warn(reason: str) -> None:
    sys.stderr.write(
        f"\n{BANNER}\nWARNING: promwrite's C accelerator was not built: {reason}\n"
        "promwrite is installed with its pure-Python backend (same output, slower).\n"
        "For the accelerator, install a C compiler and cffi, then reinstall.\n"
        f"{BANNER}\n\n"
    )


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, ...
            warn(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            traceback.print_exc()
            warn(f"{type(exc).__name__}: {exc}")


def extensions() -> list:
    if os.environ.get("PROMWRITE_BUILD_NATIVE", "1") == "0":
        warn("PROMWRITE_BUILD_NATIVE=0")
        return []
    # csrc/cpython/: the model's hot paths, on the CPython API (no cffi)
    cpython = [
        Extension("promwrite._cmodel", ["csrc/cpython/cmodel.c", "csrc/cpython/cbuild.c"],
                  depends=["csrc/cpython/cmodel.h"], extra_compile_args=["-std=c99", "-O2"])
    ] if platform.python_implementation() == "CPython" else []  # fmt: skip
    try:
        import cffi  # noqa: F401
    except ImportError:
        warn("cffi is not installed")
        return cpython
    sys.path.insert(0, os.path.join(HERE, "csrc"))
    try:
        from cffi_build import ffibuilder  # csrc/cffi_build.py
    finally:
        sys.path.pop(0)
    return [ffibuilder.distutils_extension(tmpdir="build/cffi"), *cpython]


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
