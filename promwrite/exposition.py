"""A parser of the Prometheus text exposition format (version 0.0.4), into a WriteRequest.

    request = promwrite.exposition.parse(text, labels={"instance": "host1"})

Each sample line ``metric{label="value",...} value [timestamp_ms]`` becomes a
sample of its series (lines of the same series are merged, in time order);
``# TYPE`` and ``# HELP`` (and OpenMetrics' ``# UNIT``) become the request's
`MetricMetadata`, one per family, so the ``_bucket``/``_sum``/``_count``
series of a histogram and the quantile series of a summary keep their own
names, as Prometheus stores them after a scrape, under their family's
metadata. Other comments and blank lines are skipped. Samples without a
timestamp all get the same "now", taken once per parse. Errors raise
`ParseError`, a ValueError naming the line and column.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from .model import MetricMetadata, MetricType, TimeSeries, WriteRequest, now_ms as _now_ms

__all__ = ["ParseError", "TYPES", "parse"]

#: ``# TYPE`` words and what they map to (``untyped`` is the 0.0.4 word for unknown).
TYPES: Dict[str, MetricType] = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.GAUGEHISTOGRAM,
    "summary": MetricType.SUMMARY,
    "untyped": MetricType.UNKNOWN,
    "unknown": MetricType.UNKNOWN,
    "info": MetricType.INFO,
    "stateset": MetricType.STATESET,
}

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)
_TIMESTAMP = re.compile(r"[+-]?[0-9]+")
_TOKEN = re.compile(r"[^ \t]+")
_SPACE = re.compile(r"[ \t]*")
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ParseError(ValueError):
    """Text that is not valid exposition format; `line` and `column` count from 1."""

    def __init__(self, line: int, column: int, problem: str) -> None:
        super().__init__(f"line {line}, column {column}: {problem}")
        self.line = line
        self.column = column
        self.problem = problem


def _help_unescape(text: str) -> str:
    return re.sub(r"\\([\\n])", lambda m: "\n" if m.group(1) == "n" else "\\", text)


class _Family:
    __slots__ = ("name", "type", "help", "unit", "typed", "helped")

    def __init__(self, name: str) -> None:
        self.name = name
        self.type = MetricType.UNKNOWN
        self.help = ""
        self.unit = ""
        self.typed = self.helped = False

    def metadata(self) -> MetricMetadata:
        return MetricMetadata(self.type, self.name, self.help, self.unit)


def parse(
    text: str,
    labels: Optional[Mapping[str, str]] = None,
    *,
    now_ms: Optional[int] = None,
) -> WriteRequest:
    """Parse exposition-format `text` into a WriteRequest (series and metadata).

    `labels` are added to every series (and win over a sample's own label of
    the same name, as a target label the user asked for). `now_ms` is the
    timestamp of samples that have none (default: the time of this call).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    extra = dict(labels or {})
    for name in extra:
        if name != "__name__" and not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"invalid label name {name!r}")
    now = _now_ms() if now_ms is None else int(now_ms)
    families: Dict[str, _Family] = {}
    series: Dict[Tuple[Tuple[str, str], ...], List[Tuple[float, int]]] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip(" \t")
        if not stripped:
            continue
        if stripped.startswith("#"):
            _comment(line, lineno, families)
            continue
        key, value, stamp = _sample(line, lineno)
        if extra:
            merged = dict(key)
            merged.update(extra)
            key = tuple(sorted(merged.items()))
        series.setdefault(key, []).append((value, now if stamp is None else stamp))
    timeseries = []
    for key, samples in series.items():
        samples.sort(key=lambda s: s[1])
        timeseries.append(TimeSeries(dict(key), samples))
    return WriteRequest(timeseries, [f.metadata() for f in families.values() if f.typed or f.helped or f.unit])


def _comment(line: str, lineno: int, families: Dict[str, _Family]) -> None:
    start = len(line) - len(line.lstrip(" \t")) + 1  # after "#"
    pos = _SPACE.match(line, start).end()
    word = _TOKEN.match(line, pos)
    if word is None or word.group() not in ("HELP", "TYPE", "UNIT") or pos == start:
        return  # a plain comment
    kind = word.group()
    pos = _SPACE.match(line, word.end()).end()
    name = _NAME.match(line, pos)
    if name is None:
        raise ParseError(lineno, pos + 1, f"# {kind} needs a metric name")
    after = name.end()
    if after < len(line) and line[after] not in " \t":
        raise ParseError(lineno, after + 1, f"invalid character {line[after]!r} in metric name")
    family = families.get(name.group())
    if family is None:
        family = families[name.group()] = _Family(name.group())
    rest_at = _SPACE.match(line, after).end()
    rest = line[rest_at:]
    if kind == "HELP":
        if family.helped:
            raise ParseError(lineno, start, f"second # HELP for {family.name}")
        family.help, family.helped = _help_unescape(rest), True
    elif kind == "UNIT":
        family.unit = rest.strip(" \t")
    else:
        word = rest.strip(" \t")
        if word not in TYPES:
            raise ParseError(lineno, rest_at + 1, f"unknown metric type {word!r} (want one of {', '.join(TYPES)})")
        if family.typed:
            raise ParseError(lineno, start, f"second # TYPE for {family.name}")
        family.type, family.typed = TYPES[word], True


def _sample(line: str, lineno: int) -> Tuple[Tuple[Tuple[str, str], ...], float, Optional[int]]:
    pos = _SPACE.match(line).end()
    name = _NAME.match(line, pos)
    if name is None:
        raise ParseError(lineno, pos + 1, f"expected a metric name, found {line[pos]!r}")
    labels: Dict[str, str] = {"__name__": name.group()}
    pos = name.end()
    brace = _SPACE.match(line, pos).end()
    if brace < len(line) and line[brace] == "{":
        pos = _labels(line, lineno, brace + 1, labels)
    elif pos < len(line) and line[pos] not in " \t":
        raise ParseError(lineno, pos + 1, f"invalid character {line[pos]!r} in metric name")
    space = _SPACE.match(line, pos).end()
    if space == pos or space >= len(line):
        raise ParseError(lineno, space + 1, "expected a space and then the sample value")
    token = _TOKEN.match(line, space)
    assert token is not None
    if not _VALUE.fullmatch(token.group()):
        raise ParseError(lineno, space + 1, f"invalid sample value {token.group()!r}")
    value = float(token.group())
    pos = _SPACE.match(line, token.end()).end()
    stamp: Optional[int] = None
    if pos < len(line):
        token = _TOKEN.match(line, pos)
        assert token is not None
        if not _TIMESTAMP.fullmatch(token.group()):
            raise ParseError(lineno, pos + 1, f"invalid timestamp {token.group()!r} (want integer milliseconds)")
        stamp = int(token.group())
        end = _SPACE.match(line, token.end()).end()
        if end < len(line):
            raise ParseError(lineno, end + 1, f"unexpected text after the timestamp: {line[end:]!r}")
    return tuple(sorted(labels.items())), value, stamp


def _labels(line: str, lineno: int, pos: int, labels: Dict[str, str]) -> int:
    """Parse ``name="value",...}`` from `pos` into `labels`; return the position after ``}``."""
    while True:
        pos = _SPACE.match(line, pos).end()
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        name = _LABEL_NAME.match(line, pos)
        if name is None:
            found = repr(line[pos]) if pos < len(line) else "the end of the line"
            raise ParseError(lineno, pos + 1, f"expected a label name or '}}', found {found}")
        if name.group() in labels:
            raise ParseError(lineno, pos + 1, f"duplicate label {name.group()!r}")
        pos = _SPACE.match(line, name.end()).end()
        if pos >= len(line) or line[pos] != "=":
            raise ParseError(lineno, pos + 1, f"expected '=' after label name {name.group()!r}")
        pos = _SPACE.match(line, pos + 1).end()
        if pos >= len(line) or line[pos] != '"':
            raise ParseError(lineno, pos + 1, f"expected '\"' to open the value of label {name.group()!r}")
        pos += 1
        chars: List[str] = []
        while True:
            if pos >= len(line):
                raise ParseError(lineno, pos + 1, f"unterminated value of label {name.group()!r}")
            c = line[pos]
            if c == '"':
                pos += 1
                break
            if c == "\\":
                nxt = line[pos + 1] if pos + 1 < len(line) else ""
                if nxt not in _LABEL_ESCAPES or not nxt:
                    raise ParseError(lineno, pos + 1, f"invalid escape '\\{nxt}' in label value (want \\\\, \\\" or \\n)")
                chars.append(_LABEL_ESCAPES[nxt])
                pos += 2
                continue
            chars.append(c)
            pos += 1
        labels[name.group()] = "".join(chars)
        pos = _SPACE.match(line, pos).end()
        if pos < len(line) and line[pos] == ",":
            pos += 1
            continue
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        found = repr(line[pos]) if pos < len(line) else "the end of the line"
        raise ParseError(lineno, pos + 1, f"expected ',' or '}}' after a label value, found {found}")
