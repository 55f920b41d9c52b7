"""Checks of numeric arguments, shared so that each bad value gets the same ValueError naming it."""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["positive_int", "positive_seconds"]


def positive_int(name: str, value: object, most: Optional[int] = None) -> int:
    """`value` when it is an int >= 1 (and <= `most`); else ValueError naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        bound = f" of at most {most:,}" if most is not None else ""
        raise ValueError(f"{name} must be a positive int{bound}, not {value!r}")
    return value


def positive_seconds(name: str, value: object) -> float:
    """`value` as a float when it is a finite number > 0; else ValueError naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be positive seconds, not {value!r}")
    return float(value)
