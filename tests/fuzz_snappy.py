"""Coverage-guided fuzzing of snappy with atheris (not collected by pytest).

    pip install atheris
    python tests/fuzz_snappy.py -max_total_time=60 [-rss_limit_mb=4096] [corpus_dir]

Each input is decoded by `_pysnappy.decompress` and, when the accelerator is
built, `_native.decompress`. Checked: nothing but SnappyError escapes, both
backends give the same bytes or the same message, decoded output compresses
to identical bytes in both backends and round trips. The first byte of the
input picks a mode; in mode "compress" the rest is compressed instead.

Coverage guidance comes from the Python decoder (instrumented), which mirrors
the C one check for check. csrc/test_fuzz_snappy.c is the libFuzzer target for
the C code itself under ASan/UBSan.
"""

from __future__ import annotations

import pathlib
import sys

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # run from a checkout

with atheris.instrument_imports():
    from promwrite import _pysnappy
    from promwrite.errors import SnappyError

try:
    from promwrite import _native
except ImportError:  # pure-Python only: still fuzz the decoder
    _native = None

LIMIT = 1 << 20


def outcome(decompress, data: bytes):
    try:
        return "ok", decompress(data, LIMIT)
    except SnappyError as exc:
        return "error", str(exc)


def check_compress(data: bytes) -> None:
    packed = _pysnappy.compress(data)
    assert len(packed) <= _pysnappy.max_compressed_length(len(data))
    if _native is not None:
        assert _native.compress(data) == packed, "backends compress differently"
        assert _native.decompress(packed, len(data)) == data
    assert _pysnappy.decompress(packed, len(data)) == data


def TestOneInput(raw: bytes) -> None:  # noqa: N802 - atheris' name
    if not raw:
        return
    mode, data = raw[0], raw[1:]
    if mode < 0x20:  # compress repetitions of the input: copies of every shape
        check_compress(data * (1 + mode))
        return
    py = outcome(_pysnappy.decompress, data)
    if _native is not None:
        native = outcome(_native.decompress, data)
        assert native == py, f"backends disagree: {native[:1]} vs {py[:1]}"
    if py[0] == "ok":
        check_compress(py[1])


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
