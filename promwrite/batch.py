"""One columnar batch of series: what `SeriesSet` requests and the `Writer` hand to the kernels.

A `SeriesBatch` holds a request's series as columns: their encoded label
fields (joined, with a length each), a sample count per series, and all
values and timestamps in packed arrays, plus the few series that carry
exemplars, histograms or metadata. `encode` makes a 1.0 or 2.0 request of
it with one kernel call, so there is one encoder for both producers.
`BatchBuilder` assembles a batch piece by piece (the Writer's queue segments).
"""

from __future__ import annotations

from array import array
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ._backend import Kernels
from ._codec2 import encode_batch_v2
from .encoding import metadata_field
from .model import MetricMetadata, Sample, Time, TimeSeries, to_ms

__all__ = ["BatchBuilder", "SeriesBatch", "sample_columns"]

_ONE = array("q", [1])


def sample_columns(
    what: str, n: int, values: Sequence[float], time: Optional[Time], timestamp_ms: Optional[int],
    timestamps_ms: Optional[Sequence[int]],
) -> Tuple["array[float]", Union[int, "array[int]"]]:  # fmt: skip
    """One sample per series as columns: values (an ``array('d')`` given is used as is) and
    timestamps, one per series or, when all share one time, that time as an int."""
    try:
        vals = values if type(values) is array and values.typecode == "d" else array("d", values)  # type: ignore[attr-defined]
        stamps: Union[int, "array[int]"]
        if timestamps_ms is None:
            stamps = to_ms(time, timestamp_ms)
        elif time is not None or timestamp_ms is not None:
            raise ValueError("give timestamps_ms or one time, not both")
        else:
            stamps = array("q", timestamps_ms)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"{what}: values must be numbers, timestamps int64 ({exc})") from None
    if len(vals) != n or (type(stamps) is not int and len(stamps) != n):  # type: ignore[arg-type]
        count = 1 if type(stamps) is int else len(stamps)  # type: ignore[arg-type]
        raise ValueError(f"{what}: {n} series but {len(vals)} values and {count} timestamps")
    return vals, stamps


class SeriesBatch:
    """Series as columns: label fields, sample counts, values and timestamps (one kernel call).

    `rare` maps a series' position to its TimeSeries (with exemplars or
    histograms) and that series' 1.0 extra fields, encoded when it was added.
    `owner` is the SeriesSet the batch came from (one sample per series), whose
    2.0 symbols table is made once and kept on it.
    """

    __slots__ = ("label_text", "label_lengths", "counts", "values", "stamps", "rare", "owner")

    def __init__(
        self, label_text: bytes, label_lengths: "array[int]", counts: "array[int]", values: "array[float]",
        stamps: "array[int]", rare: Optional[Dict[int, Tuple[TimeSeries, bytes]]] = None, owner: Any = None,
    ) -> None:  # fmt: skip
        self.label_text = label_text
        self.label_lengths = label_lengths
        self.counts = counts
        self.values = values
        self.stamps = stamps
        self.rare = rare or {}
        self.owner = owner

    def __len__(self) -> int:
        """Series entries in the batch."""
        return len(self.label_lengths)

    def timeseries(self) -> List[TimeSeries]:
        """The batch as model objects (for a SeriesSet request whose series are looked at)."""
        new = tuple.__new__
        return [
            TimeSeries(labels, (new(Sample, pair),))
            for labels, pair in zip(self.owner.labels, zip(self.values, self.stamps))
        ]

    def encode(
        self, kernels: Kernels, protocol: str = "1.0", compress: bool = True, metadata: Sequence[MetricMetadata] = ()
    ) -> bytes:
        """The batch as one remote-write request (1.0 or 2.0), snappy-compressed with `compress`."""
        if protocol == "2.0":
            return encode_batch_v2(kernels, self, metadata, compress)
        extras: Optional[List[bytes]] = None
        if self.rare:
            extras = [b""] * len(self.label_lengths)
            for position, (_, fields) in self.rare.items():
                extras[position] = fields
        return kernels.encode_request(
            self.label_text, self.label_lengths, self.counts, self.values, self.stamps, extras,
            b"".join(map(metadata_field, metadata)), compress,
        )  # fmt: skip


class BatchBuilder:
    """Collects series entries, in order, into the columns of one SeriesBatch."""

    __slots__ = ("texts", "lengths", "counts", "values", "stamps", "rare")

    def __init__(self) -> None:
        self.texts: List[bytes] = []
        self.lengths = array("q")
        self.counts = array("q")
        self.values = array("d")
        self.stamps = array("q")
        self.rare: Dict[int, Tuple[TimeSeries, bytes]] = {}

    def add_single_samples(
        self, label_text: bytes, lengths: Iterable[int], values: "array[float]", stamps: "array[int]"
    ) -> None:
        """Series entries of one sample each: values[i] at stamps[i] for the i-th label field."""
        self.texts.append(label_text)
        self.lengths.extend(lengths)
        self.counts.extend(_ONE * len(values))
        self.values.extend(values)
        self.stamps.extend(stamps)

    def add_series(
        self, label_fields: bytes, values: "array[float]", stamps: "array[int]", rare: Optional[TimeSeries] = None,
        extras: bytes = b"",
    ) -> None:  # fmt: skip
        """One series entry with all its samples (and, for `rare`, its exemplars and histograms)."""
        if rare is not None:
            self.rare[len(self.lengths)] = (rare, extras)
        self.texts.append(label_fields)
        self.lengths.append(len(label_fields))
        self.counts.append(len(values))
        self.values.extend(values)
        self.stamps.extend(stamps)

    def add_interleaved(
        self, label_text: bytes, lengths: Sequence[int], runs: Sequence[Tuple["array[float]", "array[int]"]]
    ) -> None:
        """Series entries of k samples each: run r holds the r-th sample of every series."""
        m, k = len(lengths), len(runs)
        self.texts.append(label_text)
        self.lengths.extend(lengths)
        self.counts.extend(array("q", [k]) * m)
        values = array("d", bytes(8 * m * k))
        stamps = array("q", bytes(8 * m * k))
        for r, (run_values, run_stamps) in enumerate(runs):
            values[r::k] = run_values
            stamps[r::k] = run_stamps
        self.values.extend(values)
        self.stamps.extend(stamps)

    def build(self) -> SeriesBatch:
        return SeriesBatch(b"".join(self.texts), self.lengths, self.counts, self.values, self.stamps, self.rare)
