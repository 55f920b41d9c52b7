"""Snappy block format (what remote write puts on the wire), no dependencies.

Raw blocks as Prometheus sends them (``Content-Encoding: snappy``), not the
framed stream format. Runs in C when the accelerator is built, else in pure
Python; both give the same bytes.
"""

from __future__ import annotations

from typing import Union

from ._backend import kernels as _kernels
from .errors import SnappyError

__all__ = ["DEFAULT_MAX_LENGTH", "SnappyError", "compress", "decompress"]

DEFAULT_MAX_LENGTH = 64 * 1024 * 1024
"""decompress refuses larger declared lengths unless told otherwise: a few
bytes of snappy can claim gigabytes, so a server must cap what it allocates."""

Buffer = Union[bytes, bytearray, memoryview]

_compress = _kernels.compress
_decompress = _kernels.decompress


def compress(data: Buffer) -> bytes:
    """Snappy-compress `data` as one raw block (the remote-write body encoding)."""
    return _compress(data)


def decompress(data: Buffer, max_length: int = DEFAULT_MAX_LENGTH) -> bytes:
    """Decode a raw snappy block.

    Raises SnappyError when `data` is corrupt or truncated, or declares more
    than `max_length` bytes (checked before anything is allocated).
    """
    return _decompress(data, max_length)
