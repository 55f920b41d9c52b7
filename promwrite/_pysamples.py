"""The Sample fields of a request's series, for the pure-Python encoder (`_pyproto`).

When every value has nonzero bits and every timestamp is a positive varint of
one width (what clients send), all samples are records of one size, built
whole-column at a time (`uniform_samples`); else field by field (`sample_fields`).
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from itertools import accumulate, compress as select, islice
from operator import ge
from typing import List, Optional, Sequence

from ._pysnappy import SMALL_VARINTS as _SMALL, varint
from .errors import SeriesError

__all__ = ["UniformSamples", "sample_fields", "uniform_samples"]

_DOUBLE = struct.Struct("<d")
_ZERO8 = bytes(8)


class UniformSamples:
    """Every sample of a request as equal-size records ``0x12 len 0x09 <8> 0x10 <width>``
    (no zero value, every timestamp a `width`-byte varint), with their columns."""

    __slots__ = ("records", "size", "stamps", "doubles", "width")

    def __init__(self, records: bytes, stamps: bytes, doubles: bytes, width: int) -> None:
        self.records = records  # the records, one after the other
        self.size = 12 + width  # bytes per record
        self.stamps = stamps  # the timestamps' varints, `width` bytes each
        self.doubles = doubles  # the values' 8 bytes each
        self.width = width


def uniform_samples(counts: Sequence[int], values: Sequence[float], timestamps: Sequence[int]) -> Optional[UniformSamples]:
    """All samples as equal-size records, built by whole-column copies; None unless every value
    has nonzero bits and every timestamp is positive and of one varint width (then `sample_fields`).

    Raises SeriesError for timestamps that do not increase within a series, as `sample_fields` would.
    """
    total = sum(counts)
    if not total or min(counts) < 0 or not (_is_array(values, "d") and _is_array(timestamps, "q")):
        return None
    doubles, stamps = values[:total], timestamps[:total]
    if 0.0 in doubles:  # also -0.0, whose bits are not zero: the general path keeps it
        return None
    distinct = set(stamps)
    low, high = min(distinct), max(distinct)
    width = (high.bit_length() + 6) // 7
    if low <= 0 or (low.bit_length() + 6) // 7 != width:
        return None
    drops = set(select(range(1, total), map(ge, stamps, islice(stamps, 1, None))))  # j: stamps[j-1] >= stamps[j]
    starts = list(accumulate(counts, initial=0))
    if not drops <= set(starts):
        j = min(drops - set(starts))
        raise SeriesError(bisect_right(starts, j) - 1, f"sample timestamps must increase: {stamps[j]} comes after {stamps[j - 1]}")
    if sys.byteorder != "little":
        doubles.byteswap()
    raw = doubles.tobytes()
    varints = {stamp: varint(stamp) for stamp in distinct}
    stamp_bytes = b"".join(map(varints.__getitem__, stamps))
    size = 12 + width
    records = bytearray(bytes((0x12, 10 + width, 0x09)) + _ZERO8 + b"\x10" + bytes(width)) * total
    for k in range(8):
        records[3 + k :: size] = raw[k::8]
    for k in range(width):
        records[12 + k :: size] = stamp_bytes[k::width]
    return UniformSamples(bytes(records), stamp_bytes, raw, width)


def _is_array(column: Sequence, typecode: str) -> bool:
    return type(column) is array and column.typecode == typecode  # type: ignore[attr-defined]


def sample_fields(counts: Sequence[int], values: Sequence[float], timestamps: Sequence[int]) -> List[List[bytes]]:
    """Per series its Sample fields (zero value and timestamp left out); SeriesError if
    timestamps do not increase."""
    pack = _DOUBLE.pack
    out = []
    pos = 0
    for index, count in enumerate(counts):
        prev = None
        fields = []
        for j in range(pos, pos + count):
            ts = timestamps[j]
            if prev is not None and ts <= prev:
                raise SeriesError(index, f"sample timestamps must increase: {ts} comes after {prev}")
            prev = ts
            packed = pack(values[j])
            value = b"\x09" + packed if packed != _ZERO8 else b""
            stamp = b"\x10" + varint(ts) if ts else b""
            fields.append(b"\x12" + _SMALL[len(value) + len(stamp)] + value + stamp)
        out.append(fields)
        pos += count
    return out
