"""The data model of a remote write: series of labels with samples, exemplars,
native histograms, and metric metadata, as in Prometheus's ``prompb`` messages.

Objects are plain and cheap to build; the rules that need the whole request
(sorted unique label names, ``__name__`` present, samples in time order) are
checked by `promwrite.codec` when the request is encoded, before anything is
sent, and the error names the series. Where ``promwrite._cmodel`` is built,
the usual calls of `Label`, `Sample` and `TimeSeries` are served by C (same
result, same checks; see `cmodel` below).
"""

from __future__ import annotations

import enum
import os
from collections import _tuplegetter  # type: ignore[attr-defined]  # namedtuple's field getter (C, with a fallback)
from types import ModuleType
from typing import (
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

__all__ = [
    "STALE_NAN",
    "BucketSpan",
    "Exemplar",
    "Histogram",
    "Label",
    "LabelSet",
    "Labels",
    "MetricMetadata",
    "MetricType",
    "ResetHint",
    "Sample",
    "TimeSeries",
    "Time",
    "WriteRequest",
    "is_stale_nan",
    "now_ms",
]

from .names import LEGACY, name_validation, valid_under_both
from .scalars import (
    INT64_MAX,
    INT64_MIN,
    STALE_NAN,
    Time,
    excerpt,
    float_bits,
    is_stale_nan,
    now_ms,
    to_float,
    to_int,
    to_ms,
)

_new_tuple = tuple.__new__


class Label(NamedTuple):
    """One label: a name and its value."""

    name: str
    value: str


class LabelSet:
    """An immutable label set, kept sorted, whose encoding is cached.

    Build one per series you send again and again and pass it as `labels`:
    the codec then encodes its labels once, not on every write.
    """

    __slots__ = ("labels", "_pb", "_hash")

    def __init__(self, labels: "Labels") -> None:
        self.labels: Tuple[Label, ...] = sort_labels(labels)
        self._pb: Optional[bytes] = None  # filled by the codec on first use
        self._hash: Optional[int] = None

    def keep_encoding(self, fields: bytes) -> None:
        """Keep the codec's encoding for later writes, unless it holds names that only
        the "utf-8" rules allow (they may change to legacy before the next write)."""
        if name_validation() == LEGACY or valid_under_both(self.labels):
            self._pb = fields

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LabelSet):
            return self.labels == other.labels
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self.labels)
        return self._hash

    def __repr__(self) -> str:
        return f"LabelSet({format_labels(self.labels)})"


#: Labels as given by callers: a mapping name -> value, a sequence of `Label` or
#: (name, value) pairs, or a `LabelSet`.
Labels = Union[Mapping[str, str], Sequence[Tuple[str, str]], LabelSet]


def label_pairs(labels: Labels) -> Iterable[Tuple[str, str]]:
    """The (name, value) pairs of labels in any accepted form, unsorted."""
    if isinstance(labels, Mapping):
        return labels.items()
    if isinstance(labels, (str, bytes)):
        raise ValueError(f"labels must be a mapping or a sequence of pairs, not {labels!r}")
    return labels


def sort_labels(labels: Labels) -> Tuple[Label, ...]:
    """Labels as a tuple of `Label` sorted by name (no other checks)."""
    if isinstance(labels, LabelSet):
        return labels.labels
    try:
        return tuple(sorted(Label(*pair) for pair in label_pairs(labels)))
    except TypeError as exc:
        raise ValueError(f"labels must be (name, value) pairs of str: {exc}") from None


def format_labels(labels: Iterable[Tuple[object, object]]) -> str:
    """``{name="value", ...}`` for error messages, with ``__name__`` in front."""
    pairs = list(labels)
    name = next((v for n, v in pairs if n == "__name__"), None)
    inner = ", ".join(f"{n}={v!r}" for n, v in pairs if n != "__name__" or name is None)
    head = name if isinstance(name, str) else ""
    return f"{head}{{{inner}}}"


class Sample(Tuple[float, int]):
    """A float value at a time, stored as integer milliseconds since the epoch.

    `time` is a datetime (naive means local time) or seconds since the epoch;
    `timestamp_ms` gives exact milliseconds; with neither, the sample is "now".
    A Sample is the pair ``(value, timestamp_ms)``: where a series takes
    samples, plain pairs of that form are accepted too (the cheapest way to
    pass many), and checked when the request is encoded.
    """

    __slots__ = ()

    def __new__(
        cls, value: float, time: Optional[Time] = None, *, timestamp_ms: Optional[int] = None
    ) -> "Sample":
        # The common call, Sample(float, timestamp_ms=int), takes the fewest steps Python allows.
        if type(timestamp_ms) is int and type(value) is float and time is None:
            if -0x8000000000000000 <= timestamp_ms <= 0x7FFFFFFFFFFFFFFF:
                return _new_tuple(cls, (value, timestamp_ms))
        return _new_tuple(cls, (to_float(value), to_ms(time, timestamp_ms)))

    # C-level getters, as namedtuple's fields (a Python property costs twice as much per read)
    value: float = _tuplegetter(0, "The value, a float.")  # type: ignore[assignment]
    timestamp_ms: int = _tuplegetter(1, "The time, in integer milliseconds since the epoch.")  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        """Equal to a Sample or pair of the same time and value, floats compared by bits."""
        if isinstance(other, tuple) and len(other) == 2:
            a, b = self[0], other[0]
            same = float_bits(a) == float_bits(b) if isinstance(b, float) else a == b
            return same and self[1] == other[1]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        value = "STALE_NAN" if is_stale_nan(self[0]) else repr(self[0])
        return f"Sample({value}, timestamp_ms={self[1]})"

    def __reduce__(self):  # type: ignore[no-untyped-def]  # pickle/copy: no re-checks, no "now"
        return (_sample, (self[0], self[1]))


def _sample(value: float, timestamp_ms: int) -> Sample:
    return _new_tuple(Sample, (value, timestamp_ms))


def _load_cmodel() -> Optional[ModuleType]:
    """promwrite._cmodel, the model's hot paths in C; None when not built or PROMWRITE_BACKEND=python."""
    if os.environ.get("PROMWRITE_BACKEND", "").strip().lower() == "python":
        return None
    try:
        from . import _cmodel  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cmodel  # type: ignore[no-any-return]


class Exemplar:
    """A sample that links to a trace: its labels (e.g. trace_id), value and time.

    Prometheus limits an exemplar's labels to 128 characters in all (names and
    values together); longer ones are refused here rather than by the server.
    """

    MAX_LABEL_CHARS = 128

    __slots__ = ("labels", "value", "timestamp_ms")

    def __init__(
        self,
        labels: Labels,
        value: float,
        time: Optional[Time] = None,
        *,
        timestamp_ms: Optional[int] = None,
    ) -> None:
        pairs = tuple(Label(*p) for p in label_pairs(labels))
        size = 0
        for name, val in pairs:
            if not isinstance(name, str) or not isinstance(val, str):
                raise ValueError(f"exemplar label {name!r}: names and values must be str")
            if not name:
                raise ValueError("exemplar label with an empty name")
            size += len(name) + len(val)
        if size > self.MAX_LABEL_CHARS:
            raise ValueError(
                f"exemplar labels {format_labels(pairs)} have {size} characters;"
                f" Prometheus allows {self.MAX_LABEL_CHARS}"
            )
        self.labels: Tuple[Label, ...] = pairs
        self.value: float = to_float(value)
        self.timestamp_ms: int = to_ms(time, timestamp_ms)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Exemplar):
            return (
                self.labels == other.labels
                and float_bits(self.value) == float_bits(other.value)
                and self.timestamp_ms == other.timestamp_ms
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Exemplar({format_labels(self.labels)}, {self.value!r},"
            f" timestamp_ms={self.timestamp_ms})"
        )


class BucketSpan(NamedTuple):
    """A run of `length` consecutive buckets, starting `offset` buckets after the previous run."""

    offset: int
    length: int


class ResetHint(enum.IntEnum):
    """Whether a histogram is known to be a counter reset (prompb numbering)."""

    UNKNOWN = 0
    YES = 1
    NO = 2
    GAUGE = 3


class Histogram:
    """A native (sparse) histogram, field for field as prompb's ``Histogram``.

    An integer histogram has int `count` and `zero_count` and its buckets as
    deltas (`positive_deltas`: the first bucket's count, then each bucket's
    difference to the one before); a float histogram has float counts and its
    buckets as absolute `positive_counts`. `from_buckets` builds either from
    plain bucket counts. Schema -53 is custom buckets with `custom_values` as
    upper bounds.
    """

    __slots__ = (
        "count",
        "sum",
        "schema",
        "zero_threshold",
        "zero_count",
        "negative_spans",
        "negative_deltas",
        "negative_counts",
        "positive_spans",
        "positive_deltas",
        "positive_counts",
        "reset_hint",
        "timestamp_ms",
        "custom_values",
    )

    def __init__(
        self,
        *,
        count: Union[int, float],
        sum: float,
        schema: int,
        zero_threshold: float = 0.0,
        zero_count: Union[int, float] = 0,
        negative_spans: Sequence[BucketSpan] = (),
        negative_deltas: Sequence[int] = (),
        negative_counts: Sequence[float] = (),
        positive_spans: Sequence[BucketSpan] = (),
        positive_deltas: Sequence[int] = (),
        positive_counts: Sequence[float] = (),
        reset_hint: ResetHint = ResetHint.UNKNOWN,
        time: Optional[Time] = None,
        timestamp_ms: Optional[int] = None,
        custom_values: Sequence[float] = (),
    ) -> None:
        self.count = count
        self.sum = to_float(sum, "histogram sum")
        self.schema = to_int(schema, "histogram schema")
        self.zero_threshold = to_float(zero_threshold, "zero_threshold")
        self.zero_count = zero_count
        self.negative_spans = _spans(negative_spans)
        self.negative_deltas = tuple(to_int(d, "bucket delta") for d in negative_deltas)
        self.negative_counts = tuple(to_float(c, "bucket count") for c in negative_counts)
        self.positive_spans = _spans(positive_spans)
        self.positive_deltas = tuple(to_int(d, "bucket delta") for d in positive_deltas)
        self.positive_counts = tuple(to_float(c, "bucket count") for c in positive_counts)
        self.reset_hint = ResetHint(reset_hint)
        self.timestamp_ms = to_ms(time, timestamp_ms)
        self.custom_values = tuple(to_float(c, "custom value") for c in custom_values)
        self._check()

    @property
    def is_float(self) -> bool:
        """True for a float histogram (absolute float bucket counts)."""
        return isinstance(self.count, float)

    def _check(self) -> None:
        if self.is_float:
            self.zero_count = to_float(self.zero_count, "zero_count")
            if self.negative_deltas or self.positive_deltas:
                raise ValueError("a float histogram (float count) takes *_counts, not *_deltas")
        else:
            for what in ("count", "zero_count"):
                v = getattr(self, what)
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
                    raise ValueError(f"histogram {what} must be an int in [0, 2**64), not {excerpt(v)}")
            if self.negative_counts or self.positive_counts:
                raise ValueError("an integer histogram (int count) takes *_deltas, not *_counts")
        if self.schema == -53:
            if self.negative_spans:
                raise ValueError("custom-bucket histograms (schema -53) have no negative buckets")
        elif not -4 <= self.schema <= 8:
            raise ValueError(f"histogram schema {self.schema} is outside -4..8 (or -53)")
        elif self.custom_values:
            raise ValueError("custom_values are only for schema -53")
        for side in ("negative", "positive"):
            spans = getattr(self, side + "_spans")
            buckets = getattr(self, side + ("_counts" if self.is_float else "_deltas"))
            for i, span in enumerate(spans):
                if not -(1 << 31) <= span.offset < 1 << 31 or not 0 <= span.length < 1 << 32:
                    raise ValueError(f"{side} span {span} is out of range")
                if i and span.offset < 0:
                    raise ValueError(f"{side} span {span}: only the first span may have a negative offset")
            if sum(s.length for s in spans) != len(buckets):
                raise ValueError(
                    f"{side} spans cover {sum(s.length for s in spans)} buckets"
                    f" but {len(buckets)} bucket values were given"
                )
            if not self.is_float:
                total = 0
                for d in buckets:
                    total += d
                    if total < 0:
                        raise ValueError(f"{side} deltas give a negative bucket count")
                    if not -(1 << 63) <= d < 1 << 63:
                        raise ValueError(f"{side} delta {d} is outside int64")

    @classmethod
    def from_buckets(
        cls,
        *,
        schema: int,
        sum: float,
        positive: Mapping[int, Union[int, float]] = {},
        negative: Mapping[int, Union[int, float]] = {},
        zero_count: Union[int, float] = 0,
        zero_threshold: float = 2.938735877055719e-39,
        count: Optional[Union[int, float]] = None,
        reset_hint: ResetHint = ResetHint.UNKNOWN,
        time: Optional[Time] = None,
        timestamp_ms: Optional[int] = None,
    ) -> "Histogram":
        """A histogram from plain counts per bucket index (`{index: count}`).

        Integer counts give an integer histogram (deltas), any float a float
        histogram. `count` defaults to the total of all buckets and the zero
        bucket. The default zero threshold is Prometheus's (2^-128).
        """
        values = [*positive.values(), *negative.values(), zero_count]
        is_float = any(isinstance(v, float) for v in values) or isinstance(count, float)
        try:
            total = count if count is not None else sum_(values)
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"bucket counts must be numbers that add up to a float ({exc})") from None
        fields = {}
        for side, buckets in (("positive", positive), ("negative", negative)):
            spans: List[BucketSpan] = []
            counts: List[Union[int, float]] = []
            prev: Optional[int] = None
            for index in sorted(buckets):
                if prev is not None and index == prev + 1:
                    spans[-1] = BucketSpan(spans[-1].offset, spans[-1].length + 1)
                else:
                    spans.append(BucketSpan(index if prev is None else index - prev - 1, 1))
                counts.append(buckets[index])
                prev = index
            fields[side + "_spans"] = spans
            if is_float:
                fields[side + "_counts"] = [to_float(c, "bucket count") for c in counts]
            else:
                fields[side + "_deltas"] = [c - p for c, p in zip(counts, [0, *counts])]
        return cls(
            count=to_float(total, "count") if is_float else to_int(total, "count"),
            sum=sum,
            schema=schema,
            zero_threshold=zero_threshold,
            zero_count=to_float(zero_count, "zero_count") if is_float else to_int(zero_count, "zero_count"),
            reset_hint=reset_hint,
            time=time,
            timestamp_ms=timestamp_ms,
            **fields,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return all(_same(getattr(self, a), getattr(other, a)) for a in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{a}={getattr(self, a)!r}" for a in self.__slots__ if getattr(self, a) != ())
        return f"Histogram({fields})"


sum_ = sum  # `sum` is a field name in Histogram's signatures


def _spans(spans: Iterable[Tuple[int, int]]) -> Tuple[BucketSpan, ...]:
    """Bucket spans as BucketSpan of two ints; ValueError for anything else."""
    try:
        return tuple(BucketSpan(to_int(offset, "span offset"), to_int(length, "span length")) for offset, length in spans)
    except TypeError:
        raise ValueError("bucket spans must be (offset, length) pairs of int") from None


def _same(a: object, b: object) -> bool:
    """Equality that tells floats apart by bits (NaN == NaN, 0.0 != -0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return float_bits(a) == float_bits(b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class TimeSeries:
    """One series: its labels and what to write for it.

    `labels` is a mapping name -> value, a sequence of `Label`, or a `LabelSet`
    (whose encoding is reused across writes). `samples` are `Sample` objects
    or plain ``(value, timestamp_ms)`` pairs. `sample=` adds one sample, as
    the Go client's `Sample` field does.

    Remote write 2.0 also carries, per series: `metadata` (a `MetricMetadata`:
    type, help and unit; its `metric_family_name` is not sent, "" means this
    series' own name) and `start_timestamp_ms`, the start ("created") time of
    a counter or histogram, sent with each of its samples and histograms (0 is
    "unset" on the wire, so it is refused: use 1 or -1). Remote write 1.0 has
    no place for a start time; it sends a series' metadata among the request's.
    """

    __slots__ = ("_labels", "samples", "exemplars", "histograms", "metadata", "start_timestamp_ms")

    def __init__(
        self,
        labels: Labels,
        samples: Iterable[Union[Sample, Tuple[float, int]]] = (),
        *,
        sample: Optional[Sample] = None,
        exemplars: Iterable[Exemplar] = (),
        histograms: Iterable[Histogram] = (),
        metadata: Optional["MetricMetadata"] = None,
        start_timestamp_ms: Optional[int] = None,
    ) -> None:
        self._labels = labels
        self.samples: List[Sample] = list(samples)
        if sample is not None:
            self.samples.append(sample)
        self.exemplars: List[Exemplar] = list(exemplars)
        self.histograms: List[Histogram] = list(histograms)
        self.metadata: Optional[MetricMetadata] = metadata
        self.start_timestamp_ms: Optional[int] = start_timestamp_ms
        if metadata is not None or start_timestamp_ms is not None:
            self._check_v2()

    def _check_v2(self) -> None:
        metadata, start = self.metadata, self.start_timestamp_ms
        if metadata is not None and not isinstance(metadata, MetricMetadata):
            raise ValueError(f"metadata must be a MetricMetadata, not {type(metadata).__name__}")
        if start is not None:
            if isinstance(start, bool) or not isinstance(start, int):
                raise ValueError(f"start_timestamp_ms must be an int, not {type(start).__name__}")
            if not INT64_MIN <= start <= INT64_MAX:
                raise ValueError(f"start_timestamp_ms {start} is outside the int64 range")
            if start == 0:
                raise ValueError("start_timestamp_ms 0 reads as unset on the wire: use None, or 1 or -1 for the epoch")

    @property
    def labels(self) -> Tuple[Label, ...]:
        """The labels, sorted by name, as they go on the wire."""
        labels = self._labels
        return labels.labels if type(labels) is LabelSet else sort_labels(labels)

    def mark_stale(self, time: Optional[Time] = None, *, timestamp_ms: Optional[int] = None) -> "TimeSeries":
        """Append the staleness marker, telling the server this series has ended."""
        self.samples.append(Sample(STALE_NAN, time, timestamp_ms=timestamp_ms))
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeSeries):
            return NotImplemented
        return (
            self.labels == other.labels
            and self.samples == other.samples
            and self.exemplars == other.exemplars
            and self.histograms == other.histograms
            and self.metadata == other.metadata
            and self.start_timestamp_ms == other.start_timestamp_ms
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [format_labels(self.labels)]
        for what in ("samples", "exemplars", "histograms", "metadata", "start_timestamp_ms"):
            if getattr(self, what):
                parts.append(f"{what}={getattr(self, what)!r}")
        return f"TimeSeries({', '.join(parts)})"


#: With the C module, the usual calls of Label(name, value), Sample(value,
#: timestamp_ms=t) and TimeSeries(labels, samples) are served by C (any other
#: by __new__ and __init__ above), and the codec reads samples and label dicts in C.
cmodel = _load_cmodel()
if cmodel is not None:
    cmodel.register_label(Label)
    cmodel.register_sample(Sample)
    cmodel.register_series(TimeSeries)


class MetricType(enum.IntEnum):
    """The type of a metric family, numbered as in prompb."""

    UNKNOWN = 0
    COUNTER = 1
    GAUGE = 2
    HISTOGRAM = 3
    GAUGEHISTOGRAM = 4
    SUMMARY = 5
    INFO = 6
    STATESET = 7


class MetricMetadata(NamedTuple):
    """Type, help and unit of a metric family, sent beside the series."""

    type: MetricType
    metric_family_name: str = ""
    help: str = ""
    unit: str = ""


class WriteRequest:
    """What one remote-write call sends: series and metadata.

    A request made by `promwrite.SeriesSet.request` holds its samples as
    columns and builds `timeseries` objects only if they are looked at.
    """

    __slots__ = ("_timeseries", "metadata", "_columns")

    def __init__(
        self, timeseries: Iterable[TimeSeries] = (), metadata: Iterable[MetricMetadata] = ()
    ) -> None:
        self._timeseries: Optional[List[TimeSeries]] = list(timeseries)
        self.metadata: List[MetricMetadata] = list(metadata)
        self._columns: Optional["Columns"] = None

    @classmethod
    def from_columns(cls, columns: "Columns", metadata: Iterable[MetricMetadata] = ()) -> "WriteRequest":
        request = cls(metadata=metadata)
        request._timeseries = None
        request._columns = columns
        return request

    @property
    def timeseries(self) -> List[TimeSeries]:
        if self._timeseries is None:
            assert self._columns is not None
            self._timeseries = self._columns.timeseries()
            self._columns = None  # from now on the list is the truth: it may be changed
        return self._timeseries

    @timeseries.setter
    def timeseries(self, value: Iterable[TimeSeries]) -> None:
        self._timeseries = list(value)
        self._columns = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WriteRequest):
            return NotImplemented
        return self.timeseries == other.timeseries and self.metadata == other.metadata

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WriteRequest(timeseries={self.timeseries!r}, metadata={self.metadata!r})"


class Columns(Protocol):
    """Samples kept as arrays beside pre-encoded labels (see `promwrite.SeriesSet`)."""

    def timeseries(self) -> List[TimeSeries]: ...
