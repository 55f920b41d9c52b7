"""The contract of a compressed payload: Google's snappy (cramjam) and both our
decompressors read it back to the protobuf bytes (the compressed bytes of the
two backends may differ: the Python encoder writes its own snappy stream)."""

from __future__ import annotations

import cramjam

from promwrite import _backend

LIMIT = 1 << 30


def assert_decompresses_to(payload: bytes, raw: bytes) -> None:
    """`payload` decompresses to `raw` with cramjam and with every backend's decompressor."""
    assert bytes(cramjam.snappy.decompress_raw(payload)) == raw, "cramjam reads other bytes"
    for kernels in _backend.available():
        assert kernels.decompress(payload, LIMIT) == raw, kernels.name
