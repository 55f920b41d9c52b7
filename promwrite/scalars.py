"""Sample values and times: conversion to the float and int64 milliseconds the wire carries.

Shared by the model's constructors, the Writer and the exposition parser, so a bad
number or time gets the same ValueError wherever it comes in (never OverflowError).
"""

from __future__ import annotations

import math
import struct
import time as _time
from datetime import datetime, timedelta, timezone
from typing import Optional, Union

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "STALE_NAN",
    "Time",
    "excerpt",
    "float_bits",
    "is_stale_nan",
    "now_ms",
    "to_float",
    "to_int",
    "to_ms",
]

_DOUBLE = struct.Struct("<d")
_U64 = struct.Struct("<Q")

#: Prometheus's staleness marker: a NaN with this exact bit pattern tells the
#: server that a series ended (it vanishes from queries after this sample).
STALE_NAN: float = _DOUBLE.unpack(_U64.pack(0x7FF0000000000002))[0]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)

#: A point in time: a datetime (naive means local time) or seconds since the epoch.
Time = Union[datetime, int, float]


def float_bits(value: float) -> int:
    """The IEEE-754 bits of a float, so NaNs and -0.0 compare exactly."""
    return _U64.unpack(_DOUBLE.pack(value))[0]


def is_stale_nan(value: float) -> bool:
    """True for Prometheus's staleness marker (and only for it, not other NaNs)."""
    return float_bits(value) == 0x7FF0000000000002


def now_ms() -> int:
    """The current time in integer milliseconds since the epoch."""
    return _time.time_ns() // 1_000_000


def to_ms(time: Optional[Time], timestamp_ms: Optional[int]) -> int:
    """Milliseconds since the epoch from `time` or exact `timestamp_ms`; now if neither."""
    if timestamp_ms is not None:
        if time is not None:
            raise ValueError("give time or timestamp_ms, not both")
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
            raise ValueError(f"timestamp_ms must be an int, not {type(timestamp_ms).__name__}")
        ms = int(timestamp_ms)
    elif time is None:
        return now_ms()
    elif isinstance(time, datetime):
        aware = time if time.tzinfo is not None else time.astimezone()
        ms = (aware - _EPOCH) // _MS
    elif isinstance(time, bool) or not isinstance(time, (int, float)):
        raise ValueError(
            f"time must be a datetime or seconds since the epoch, not {type(time).__name__}"
        )
    elif isinstance(time, int):
        ms = time * 1000
    else:
        if not math.isfinite(time):
            raise ValueError(f"time must be finite, not {time!r}")
        scaled = time * 1000
        if not -9.3e18 < scaled < 9.3e18:  # round() of an infinite product raises OverflowError
            raise ValueError(f"time {time!r} s is outside the int64 range of milliseconds")
        ms = round(scaled)
    if not INT64_MIN <= ms <= INT64_MAX:
        raise ValueError(f"timestamp {excerpt(ms)} ms is outside the int64 range")
    return ms


def excerpt(number: object) -> str:
    """A number for an error message, at most 40 characters of it."""
    text = repr(number)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def to_float(value: object, what: str = "value") -> float:
    """A sample value as float; any real number is fine, text is not."""
    if isinstance(value, float):
        return value
    if isinstance(value, (str, bytes, bytearray, bool)) or not hasattr(value, "__float__"):
        raise ValueError(f"{what} must be a number, not {type(value).__name__}")
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"{what} {excerpt(value)} is too large for a float") from None


def to_int(value: object, what: str) -> int:
    """int(value) for an integer field (schema, bucket delta), any failure a ValueError."""
    if type(value) is int:
        return value
    try:
        if isinstance(value, float) and not value.is_integer():
            raise TypeError
        return int(value)  # type: ignore[call-overload]
    except (TypeError, OverflowError):
        raise ValueError(f"{what} must be an integer, not {type(value).__name__} {excerpt(value)}") from None
