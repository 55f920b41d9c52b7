"""The kernels take sizes from buffers, never from a len() that an object may fake.

An argument whose ``__len__`` claims more than it holds made the C wrappers
read past its end. Each backend must give what the pure-Python kernel gives
for the same arguments (the same bytes, or the same error); and the C
accelerator, rebuilt with AddressSanitizer, must read nothing out of bounds.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from array import array
from typing import Any, Callable, Dict, Tuple

import pytest

from promwrite import TimeSeries, WriteRequest, _backend, _pyproto, _pysnappy, codec

from .ctools import COMPILERS, ROOT, cc_id, need, unavailable

PYTHON = next(k for k in _backend.available() if k.name == "python")
ASAN = ["-g", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer"]  # UBSan's runtime would need preloading too


class LyingBytes(bytes):
    """Bytes that claim 64 more than they hold."""

    def __len__(self) -> int:
        return super().__len__() + 64


class LyingList(list):
    """A list that claims 5 more items than it holds."""

    def __len__(self) -> int:
        return super().__len__() + 5


def cases() -> Dict[str, Tuple[str, Tuple[Any, ...]]]:
    """Each case: (kernel name, arguments with one lie in them)."""
    text, lengths = _pyproto.encode_labels(["__name__", "job"], ["up", "node"], [2])
    symbols, refs, ref_lengths, _ = _pyproto.encode_symbols_v2(text, lengths, [])
    samples = ([1], [1.0], [1000])
    one = WriteRequest([TimeSeries({"__name__": "up"}, [(1.0, 1000)])])
    return {
        "request label text": ("encode_request", (LyingBytes(text), [len(text) + 64], *samples, None, b"", False)),
        "request series": ("encode_request", (text, LyingList(lengths), LyingList([1]), [1.0], [1000], None, b"", False)),
        "labels counts": ("encode_labels", (["__name__", "job"], ["up", "node"], LyingList([2]))),
        "symbols_v2 label text": ("encode_symbols_v2", (LyingBytes(text), [len(text) + 64], [])),
        "symbols_v2 strings": ("encode_symbols_v2", (text, lengths, LyingList([b"extra"]))),
        "request_v2 symbols": ("encode_request_v2", (LyingBytes(symbols), refs, ref_lengths, *samples, None, None, False)),
        "request_v2 refs": ("encode_request_v2", (symbols, LyingBytes(refs), [len(refs) + 64], *samples, None, None, False)),
        "decode_v1 short limits": ("decode_v1", (codec.encode(one), [10, 10])),
        "decode_v2 short limits": ("decode_v2", (codec.encode(one, "2.0"), array("q", [10]))),
        "compress": ("compress", (LyingBytes(b"abcd" * 100),)),
        "decompress": ("decompress", (LyingBytes(_pysnappy.compress(b"abcd" * 100)), 1000)),
    }


def outcome(kernel: Callable[..., Any], *args: Any) -> Tuple[str, Any]:
    """("ok", result) or (error type, message): what a call gave."""
    try:
        return "ok", kernel(*args)
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("case", list(cases()))
def test_sizes_come_from_buffers_not_len(kernels: _backend.Kernels, case: str) -> None:
    name, args = cases()[case]
    assert outcome(getattr(kernels, name), *args) == outcome(getattr(PYTHON, name), *args)


def asan_runtime(cc: str) -> str:
    found = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=60).stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        unavailable(f"{cc} has no shared AddressSanitizer runtime to preload into Python")
    return found


@pytest.mark.long  # a full run only (PROMWRITE_FULL=1, CI): see conftest.py
@pytest.mark.timeout(600)
@pytest.mark.parametrize("cc", COMPILERS[:1], ids=cc_id)
def test_lying_lengths_under_address_sanitizer(cc: Any, tmp_path: pathlib.Path) -> None:
    """Every case through `_native` built with ASan, objects on malloc (no pymalloc to hide an over-read)."""
    cc = need(cc)
    runtime = asan_runtime(cc)
    shutil.copytree(ROOT / "promwrite", tmp_path / "promwrite", ignore=shutil.ignore_patterns("_cext*", "__pycache__"))
    shutil.copytree(ROOT / "csrc", tmp_path / "csrc")
    build = (
        "import sys; sys.path.insert(0, 'csrc'); import cffi_build; "
        f"cffi_build.make_builder({ASAN!r}, ['-fsanitize=address']).compile(tmpdir='.')"
    )
    done = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, CC=cc))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), PYTHONMALLOC="malloc",
               LD_PRELOAD=runtime, ASAN_OPTIONS="detect_leaks=0")  # fmt: skip
    found = {}
    for case in cases():  # one process each: ASan stops at the first error
        check = (
            "from tests import test_native_sizes as t\n"
            "from promwrite import _native\n"
            f"assert _native.__file__.startswith({str(tmp_path)!r})\n"
            f"name, args = t.cases()[{case!r}]\n"
            "print(t.outcome(getattr(_native, name), *args)[0])\n"
        )
        run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=env)  # fmt: skip
        if run.returncode != 0 or "AddressSanitizer" in run.stderr:
            found[case] = [line for line in run.stderr.splitlines() if "ERROR:" in line or " in pw_" in line][:2] \
                or run.stderr[-2000:]
    assert not found, (sorted(found), found)
