"""A parser of the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, into a WriteRequest.

    request = promwrite.exposition.parse(text, labels={"instance": "host1"})

Each sample line ``metric{label="value",...} value [timestamp]`` becomes a
sample of its series (lines of the same series are merged, in time order);
``# TYPE``, ``# HELP`` and ``# UNIT`` become the request's `MetricMetadata`,
one per family, so the ``_bucket``/``_sum``/``_count`` series of a histogram
and the quantile series of a summary keep their own names, as Prometheus
stores them after a scrape, under their family's metadata. Text is taken as a
real scrape is: a label with an empty value is no label (dropped), and
Prometheus 3's quoted names are accepted (``{"my.metric", "label.name"="v"}``;
see `promwrite.names` for sending them). Text whose last line is ``# EOF`` is
OpenMetrics: timestamps are float seconds (converted to milliseconds),
exemplars after ``# `` are kept, and a ``_created`` sample (kept as a series,
as Prometheus keeps it) also sets its family's series' `start_timestamp_ms`
(sent by remote write 2.0). Samples without a timestamp all get the same
"now", taken once per parse. Errors raise `ParseError`, a ValueError naming
the line and column. Parsing takes time linear in the text's length.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from typing import Dict, List, Mapping, Optional, Tuple

from . import names as _names
from .model import (
    INT64_MAX,
    INT64_MIN,
    Exemplar,
    MetricMetadata,
    MetricType,
    TimeSeries,
    WriteRequest,
    now_ms as _now_ms,
)

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

# Patterns are single character classes: a match never backtracks, so the
# parse takes time linear in the text. Numbers are checked by float() itself.
_SPACE = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[^ \t]*")
_PLAIN = re.compile(r'[^"\\]*')  # a quoted string up to its next quote or backslash
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_EXCERPT = 32  # characters of a token an error quotes
# The types whose `_created` sample dates its family's series; those series, by
# suffix, with the label that tells them apart from the `_created` one.
_CREATED_TYPES = (MetricType.COUNTER, MetricType.HISTOGRAM, MetricType.SUMMARY)
_DATED = (("", "quantile"), ("_total", ""), ("_bucket", "le"), ("_count", ""), ("_sum", ""))

_Key = Tuple[Tuple[str, str], ...]


class ParseError(ValueError):
    """Text that is not valid exposition format; `line` and `column` count from 1."""

    def __init__(self, line: int, column: int, problem: str) -> None:
        super().__init__(f"line {line}, column {column}: {problem}")
        self.line = line
        self.column = column
        self.problem = problem


def excerpt(text: str) -> str:
    """`text` quoted for an error message: whole when short, else its start and length."""
    if len(text) <= _EXCERPT:
        return repr(text)
    return f"{text[:_EXCERPT]!r}... ({len(text)} characters)"


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


class _Sample:
    """One sample line, parsed: the metric name, its labels, value, time and exemplar."""

    __slots__ = ("name", "labels", "value", "stamp", "exemplar")

    def __init__(self) -> None:
        self.name: Optional[str] = None
        self.labels: Dict[str, str] = {}
        self.value = 0.0
        self.stamp = 0
        self.exemplar: Optional[Exemplar] = None


def parse(
    text: str,
    labels: Optional[Mapping[str, str]] = None,
    *,
    now_ms: Optional[int] = None,
) -> WriteRequest:
    """Parse exposition-format or OpenMetrics `text` into a WriteRequest (series and metadata).

    `labels` are added to every series (and win over a sample's own label of
    the same name, as a target label the user asked for; an empty value
    removes the label). `now_ms` is the timestamp of samples that have none
    (default: the time of this call).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    extra = dict(labels or {})
    for name in extra:
        if name != "__name__" and not _names.is_valid_label_name(name):
            raise ValueError(f"invalid label name {name!r} (names match {_names.LABEL_NAME_RULE})")
    now = _now_ms() if now_ms is None else int(now_ms)
    tail = text.rstrip(" \t\r\n")
    openmetrics = tail == "# EOF" or tail.endswith("\n# EOF")
    families: Dict[str, _Family] = {}
    series: Dict[_Key, Tuple[List[Tuple[float, int]], List[Exemplar]]] = {}
    created: Dict[Tuple[str, _Key], float] = {}  # OpenMetrics: (family, labels) -> its _created
    origin: Dict[_Key, Tuple[str, _Key]] = {}  # OpenMetrics: series -> (name, labels) as in the text
    ended = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip(" \t")
        if not stripped:
            continue
        if ended:
            raise ParseError(lineno, 1, f"text after '# EOF' (line {ended}), which ends OpenMetrics text")
        if stripped.startswith("#"):
            if stripped == "# EOF":
                ended = lineno
            else:
                _comment(line, lineno, families)
            continue
        name, sample = _sample_line(line, lineno, openmetrics, now)
        found = sample.labels
        if openmetrics:
            own = tuple(sorted((n, v) for n, v in found.items() if v))
        found["__name__"] = name
        if extra:
            found.update(extra)
        key = tuple(sorted(found.items() if "" not in found.values() else ((n, v) for n, v in found.items() if v)))
        if openmetrics:
            origin.setdefault(key, (name, own))
            family = families.get(name[:-8]) if name.endswith("_created") else None
            if family is not None and family.type in _CREATED_TYPES:
                created[(family.name, own)] = sample.value
        samples, exemplars = series.setdefault(key, ([], []))
        samples.append((sample.value, sample.stamp))
        if sample.exemplar is not None:
            exemplars.append(sample.exemplar)
    starts = _start_times(origin, created) if created else {}
    timeseries = []
    for key, (samples, exemplars) in series.items():
        samples.sort(key=lambda s: s[1])
        timeseries.append(TimeSeries(dict(key), samples, exemplars=exemplars, start_timestamp_ms=starts.get(key)))
    return WriteRequest(timeseries, [f.metadata() for f in families.values() if f.typed or f.helped or f.unit])


def _start_times(origin: Dict[_Key, Tuple[str, _Key]], created: Dict[Tuple[str, _Key], float]) -> Dict[_Key, int]:
    """The start_timestamp_ms of each series that a `_created` sample (seconds) dates."""
    out: Dict[_Key, int] = {}
    for key, (name, own) in origin.items():
        for suffix, distinct in _DATED:
            if not name.endswith(suffix):
                continue
            family = name[: len(name) - len(suffix)]
            seconds = created.get((family, tuple(p for p in own if p[0] != distinct)))
            if seconds is None:
                continue
            ms = seconds * 1000
            if INT64_MIN < ms < INT64_MAX and round(ms):  # not NaN, in range, not 0 ("unset" on the wire)
                out[key] = round(ms)
            break
    return out


def _name_at(line: str, lineno: int, pos: int, what: str) -> Tuple[str, int]:
    """A metric name, plain or quoted, at `pos`: the name and the position after it."""
    if pos < len(line) and line[pos] == '"':
        name, end = _quoted(line, lineno, pos, what)
        if not name:
            raise ParseError(lineno, pos + 1, f"empty {what}")
        return name, end
    match = _names.LEGACY_METRIC_NAME.match(line, pos)
    if match is None:
        found = repr(line[pos]) if pos < len(line) else "the end of the line"
        raise ParseError(lineno, pos + 1, f"expected a {what}, found {found}")
    return match.group(), match.end()


def _comment(line: str, lineno: int, families: Dict[str, _Family]) -> None:
    start = len(line) - len(line.lstrip(" \t")) + 1  # after "#"
    pos = _SPACE.match(line, start).end()
    word_end = _TOKEN.match(line, pos).end()
    kind = line[pos:word_end]
    if kind not in ("HELP", "TYPE", "UNIT") or pos == start:
        return  # a plain comment
    pos = _SPACE.match(line, word_end).end()
    if pos >= len(line):
        raise ParseError(lineno, pos + 1, f"# {kind} needs a metric name")
    name, after = _name_at(line, lineno, pos, "metric name")
    if after < len(line) and line[after] not in " \t":
        raise ParseError(lineno, after + 1, f"invalid character {line[after]!r} after the metric name")
    family = families.get(name)
    if family is None:
        family = families[name] = _Family(name)
    rest_at = _SPACE.match(line, after).end()
    rest = line[rest_at:]
    if kind == "HELP":
        if family.helped:
            raise ParseError(lineno, start, f"second # HELP for {excerpt(family.name)}")
        family.help, family.helped = _help_unescape(rest), True
    elif kind == "UNIT":
        family.unit = rest.strip(" \t")
    else:
        word = rest.strip(" \t")
        if word not in TYPES:
            raise ParseError(lineno, rest_at + 1, f"unknown metric type {excerpt(word)} (want one of {', '.join(TYPES)})")
        if family.typed:
            raise ParseError(lineno, start, f"second # TYPE for {excerpt(family.name)}")
        family.type, family.typed = TYPES[word], True


def _sample_line(line: str, lineno: int, openmetrics: bool, now: int) -> Tuple[str, _Sample]:
    """``name{labels} value [timestamp] [# {labels} value [timestamp]]``: the name and the rest.

    A sample without a timestamp, and its exemplar without one, get `now`.
    """
    out = _Sample()
    out.stamp = now
    pos = _SPACE.match(line).end() if line[0] in " \t" else 0
    if line[pos] == '"':
        raise ParseError(lineno, pos + 1, 'a quoted metric name goes inside the braces: {"name", label="value"}')
    if line[pos] != "{":
        out.name, pos = _name_at(line, lineno, pos, "metric name")
    brace = _SPACE.match(line, pos).end()
    if brace < len(line) and line[brace] == "{":
        pos = _labels(line, lineno, brace + 1, out)
    elif pos < len(line) and line[pos] not in " \t":
        raise ParseError(lineno, pos + 1, f"invalid character {line[pos]!r} in metric name")
    if out.name is None:
        raise ParseError(lineno, brace + 1, 'no metric name (give it before the braces, or quoted inside them)')
    out.value, pos = _number(line, lineno, pos, "sample value")
    stamped = pos < len(line) and line[pos] != "#"
    if stamped:
        out.stamp, pos = _timestamp(line, lineno, pos, openmetrics)
    if pos < len(line):
        if not line.startswith("# ", pos):
            what = "timestamp" if stamped else "value"
            raise ParseError(lineno, pos + 1, f"unexpected text after the {what}: {excerpt(line[pos:])}")
        if not openmetrics:
            raise ParseError(lineno, pos + 1, "an exemplar ('# {...}') is OpenMetrics: such text ends with '# EOF'")
        out.exemplar = _exemplar_at(line, lineno, pos + 2, out.stamp)
    return out.name, out


def _exemplar_at(line: str, lineno: int, pos: int, stamp: int) -> Exemplar:
    """An OpenMetrics exemplar ``{labels} value [timestamp]`` from `pos` to the end of the line
    (`stamp`, its sample's time, when it has none of its own)."""
    column = pos + 1
    pos = _SPACE.match(line, pos).end()
    if pos >= len(line) or line[pos] != "{":
        raise ParseError(lineno, pos + 1, "expected '{' to open the exemplar's labels")
    found = _Sample()
    pos = _labels(line, lineno, pos + 1, found, exemplar=True)
    value, pos = _number(line, lineno, pos, "exemplar value")
    if pos < len(line):
        stamp, pos = _timestamp(line, lineno, pos, True)
        if pos < len(line):
            raise ParseError(lineno, pos + 1, f"unexpected text after the exemplar: {excerpt(line[pos:])}")
    try:
        return Exemplar({n: v for n, v in found.labels.items() if v}, value, timestamp_ms=stamp)
    except ValueError as exc:
        raise ParseError(lineno, column, f"exemplar: {exc}") from None


def _number(line: str, lineno: int, pos: int, what: str) -> Tuple[float, int]:
    """A space, then a float at `pos`: its value and the position after the spaces that follow."""
    start = _SPACE.match(line, pos).end()
    if start == pos or start >= len(line):
        raise ParseError(lineno, start + 1, f"expected a space and then the {what}")
    end = _TOKEN.match(line, start).end()
    value = _float(line[start:end])
    if value is None:
        raise ParseError(lineno, start + 1, f"invalid {what} {excerpt(line[start:end])}")
    return value, _SPACE.match(line, end).end()


def _float(token: str) -> Optional[float]:
    """`token` as a float if it is one in Go's and the format's syntax (e.g. 1.5e3, -Inf, NaN), else None.

    Python's float() takes that syntax in linear time, and also underscores,
    non-ASCII digits and surrounding white space, which are refused first.
    """
    if not token.isascii() or "_" in token or token.strip() != token:
        return None
    try:
        return float(token)
    except ValueError:
        return None


def _timestamp(line: str, lineno: int, pos: int, seconds: bool) -> Tuple[int, int]:
    """A timestamp at `pos` in milliseconds (given as integer ms, or OpenMetrics' float seconds)."""
    end = _TOKEN.match(line, pos).end()
    token = line[pos:end]
    digits = token[1:] if token[:1] in ("+", "-") else token
    if seconds:
        if _float(token) is None or "n" in token.lower():  # "n": inf, infinity and nan are not times
            raise ParseError(lineno, pos + 1, f"invalid timestamp {excerpt(token)} (want seconds, e.g. 1700000000.5)")
        stamp = _seconds_ms(token)
    else:
        if not (digits.isascii() and digits.isdigit()):
            raise ParseError(lineno, pos + 1, f"invalid timestamp {excerpt(token)} (want integer milliseconds)")
        significant = digits.lstrip("0")  # int() would refuse over 4,300 digits
        stamp = (-1 if token[0] == "-" else 1) * int(significant or "0") if len(significant) <= 19 else None
    if stamp is None or not INT64_MIN <= stamp <= INT64_MAX:
        raise ParseError(lineno, pos + 1, f"timestamp {excerpt(token)} is out of range")
    return stamp, _SPACE.match(line, end).end()


def _seconds_ms(token: str) -> Optional[int]:
    """Decimal seconds as milliseconds, rounded half to even; None when far out of range."""
    seconds = Decimal(token)
    if not seconds or seconds.adjusted() < -4:
        return 0
    if seconds.adjusted() > 18:
        return None
    exact = Context(prec=len(token) + 4, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN)
    return int(exact.multiply(seconds, 1000).to_integral_value(context=exact))


def _quoted(line: str, lineno: int, pos: int, what: str, label: Optional[str] = None) -> Tuple[str, int]:
    """The string quoted at line[pos] ('"'), unescaped, and the position after its closing quote.

    Errors call it `what` (of `label`, when it is a label's value).
    """
    start = pos + 1
    end = _PLAIN.match(line, start).end()
    if end < len(line) and line[end] == '"':  # no escapes: the common case
        return line[start:end], end + 1
    parts = [line[start:end]]
    while True:
        if end >= len(line) or line[end] != "\\":
            break
        escaped = line[end + 1 : end + 2]
        if escaped not in _ESCAPES:
            what += "" if label is None else f" {excerpt(label)}"
            raise ParseError(lineno, end + 1, f"invalid escape '\\{escaped}' in {what} (want \\\\, \\\" or \\n)")
        parts.append(_ESCAPES[escaped])
        pos = end + 2
        end = _PLAIN.match(line, pos).end()
        parts.append(line[pos:end])
    if end >= len(line):
        what += "" if label is None else f" {excerpt(label)}"
        raise ParseError(lineno, end + 1, f"unterminated {what}")
    return "".join(parts), end + 1


def _labels(line: str, lineno: int, pos: int, out: _Sample, exemplar: bool = False) -> int:
    """``name="value",...}`` from `pos` into `out`; the position after ``}``.

    A quoted string alone (no ``=``) is the metric name, as Prometheus 3 writes
    names that are not legacy ones; exemplars have no metric name.
    """
    labels = out.labels
    while True:
        if pos < len(line) and line[pos] in " \t":
            pos = _SPACE.match(line, pos).end()
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        at = pos
        quoted = pos < len(line) and line[pos] == '"'
        if quoted:
            name, pos = _quoted(line, lineno, pos, "quoted name")
        else:
            match = _names.LEGACY_LABEL_NAME.match(line, pos)
            if match is None:
                found = repr(line[pos]) if pos < len(line) else "the end of the line"
                raise ParseError(lineno, pos + 1, f"expected a label name or '}}', found {found}")
            name, pos = match.group(), match.end()
        if pos < len(line) and line[pos] in " \t":
            pos = _SPACE.match(line, pos).end()
        if quoted and not exemplar and (pos >= len(line) or line[pos] in ",}"):
            _set_name(out, name, lineno, at)
        else:
            if not name:
                raise ParseError(lineno, at + 1, "empty label name")
            if name in labels:
                raise ParseError(lineno, at + 1, f"duplicate label {excerpt(name)}")
            if pos >= len(line) or line[pos] != "=":
                raise ParseError(lineno, pos + 1, f"expected '=' after label name {excerpt(name)}")
            pos += 1
            if pos < len(line) and line[pos] in " \t":
                pos = _SPACE.match(line, pos).end()
            if pos >= len(line) or line[pos] != '"':
                raise ParseError(lineno, pos + 1, f"expected '\"' to open the value of label {excerpt(name)}")
            value, pos = _quoted(line, lineno, pos, "value of label", name)
            if name == "__name__" and not exemplar:
                _set_name(out, value, lineno, at)
            else:
                labels[name] = value
            if pos < len(line) and line[pos] in " \t":
                pos = _SPACE.match(line, pos).end()
        if pos < len(line) and line[pos] == ",":
            pos += 1
            continue
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        found = repr(line[pos]) if pos < len(line) else "the end of the line"
        raise ParseError(lineno, pos + 1, f"expected ',' or '}}' after a label value, found {found}")


def _set_name(out: _Sample, name: str, lineno: int, column: int) -> None:
    """The metric name given inside the braces (quoted alone, or as ``__name__``)."""
    if out.name is not None:
        raise ParseError(lineno, column + 1, f"a second metric name {excerpt(name)} (the first is {excerpt(out.name)})")
    if not name:
        raise ParseError(lineno, column + 1, "empty metric name")
    out.name = name
