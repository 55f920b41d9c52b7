"""Which metric and label names are valid, process-wide: legacy (the default) or any UTF-8.

    promwrite.set_name_validation("utf-8")   # e.g. {"my.metric", "host.name"="a"}

This mirrors Go's ``model.NameValidationScheme``. Legacy names (label names
``[a-zA-Z_][a-zA-Z0-9_]*``, metric names ``[a-zA-Z_:][a-zA-Z0-9_:]*``) are what
every receiver accepts, hence the default; "utf-8" allows any non-empty name, as
Prometheus 3 does, and sends it as is. Both backends' label kernels read the
mode on every call.
"""

from __future__ import annotations

import re
from typing import Iterable, Tuple

__all__ = [
    "LEGACY", "UTF8", "is_valid_label_name", "is_valid_metric_name", "name_validation", "set_name_validation",
    "valid_under_both",
]

LEGACY = "legacy"
UTF8 = "utf-8"

LABEL_NAME_RULE = "[a-zA-Z_][a-zA-Z0-9_]*"
METRIC_NAME_RULE = "[a-zA-Z_:][a-zA-Z0-9_:]*"
LEGACY_LABEL_NAME = re.compile(LABEL_NAME_RULE)
LEGACY_METRIC_NAME = re.compile(METRIC_NAME_RULE)

_scheme = LEGACY


def set_name_validation(scheme: str) -> None:
    """Choose the name rules for every later encode: "legacy" (default) or "utf-8"."""
    global _scheme
    if scheme not in (LEGACY, UTF8):
        raise ValueError(f"name validation must be {LEGACY!r} or {UTF8!r}, not {scheme!r}")
    _scheme = scheme


def name_validation() -> str:
    """The name rules in force: "legacy" or "utf-8"."""
    return _scheme


def is_valid_label_name(name: str) -> bool:
    """Whether `name` is a valid label name under the rules in force."""
    return bool(name) if _scheme == UTF8 else LEGACY_LABEL_NAME.fullmatch(name) is not None


def is_valid_metric_name(name: str) -> bool:
    """Whether `name` is a valid metric name under the rules in force."""
    return bool(name) if _scheme == UTF8 else LEGACY_METRIC_NAME.fullmatch(name) is not None


def valid_under_both(pairs: Iterable[Tuple[str, str]]) -> bool:
    """Whether label pairs are valid under the legacy rules, hence under either: an
    encoding checked under "utf-8" may only be kept for later if so, as the rules can change."""
    return all(
        LEGACY_LABEL_NAME.fullmatch(name) is not None
        and (name != "__name__" or LEGACY_METRIC_NAME.fullmatch(value) is not None)
        for name, value in pairs
    )
