"""What a Writer's shard queue holds, and how a run of it becomes one `SeriesBatch`.

A shard's queue is a deque of segments, oldest first:

- `RowSegment`: samples from `add`/`add_series`: per sample an index into
  the series table, a value and a timestamp, in three packed arrays;
- `ColumnSegment`: one `add_many` call's samples for the series of one
  `SetSlice` (the part of a SeriesSet in this shard): values, and one
  timestamp for all or one each;
- `SeriesEntry`: one series with exemplars or histograms (its extra fields
  encoded at add time).
"""

from __future__ import annotations

from array import array
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from ..batch import BatchBuilder, SeriesBatch
from ..model import TimeSeries

if TYPE_CHECKING:
    from .queue import Shard
    from .series_table import SeriesTable

__all__ = ["ColumnSegment", "RowSegment", "SeriesEntry", "SetLayout", "SetSlice", "build_batch", "segment_size"]


class RowSegment:
    """Samples of any series, one per row: series index, value, timestamp."""

    __slots__ = ("idx", "vals", "stamps", "seq")

    def __init__(self, seq: int) -> None:
        self.idx = array("I")
        self.vals = array("d")
        self.stamps = array("q")
        self.seq = seq


class ColumnSegment:
    """One add_many call's samples for the series of one SetSlice, from position `lo` on."""

    __slots__ = ("part", "vals", "stamps", "lo", "seq")

    def __init__(self, part: "SetSlice", vals: "array[float]", stamps: Any, lo: int, seq: int) -> None:
        self.part = part
        self.vals = vals
        self.stamps = stamps  # int (one for all) or array 'q'
        self.lo = lo  # position of vals[0] in the part
        self.seq = seq

    def stamp_array(self) -> "array[int]":
        st = self.stamps
        return array("q", [st]) * len(self.vals) if type(st) is int else st


class SeriesEntry:
    """One series with exemplars or histograms: its samples and its 1.0 extra fields."""

    __slots__ = ("idx", "vals", "stamps", "extras", "n", "seq", "series")

    def __init__(
        self, idx: int, vals: "array[float]", stamps: "array[int]", extras: bytes, n: int, seq: int,
        series: TimeSeries,
    ) -> None:  # fmt: skip
        self.idx = idx
        self.vals = vals
        self.stamps = stamps
        self.extras = extras  # 1.0 fields (exemplars, histograms)
        self.n = n
        self.seq = seq
        self.series = series  # for 2.0: its exemplars, histograms, metadata, start timestamp


Segment = Union[RowSegment, ColumnSegment, SeriesEntry]


def segment_size(seg: Segment) -> int:
    return seg.n if type(seg) is SeriesEntry else len(seg.vals)  # type: ignore[union-attr]


class SetLayout:
    """How one SeriesSet's series map to shards (computed once per set)."""

    __slots__ = ("owner", "parts", "n", "indices", "duplicates", "counted")

    def __init__(self, owner: Any, n: int) -> None:
        self.owner = owner
        self.counted = False  # its series count in series_added (an add_many of it was accepted)
        self.parts: List[SetSlice] = []
        self.n = n
        self.indices = array("I")  # series-table index of each series
        self.duplicates = False  # a series is in the set twice


class SetSlice:
    """The series of a SeriesSet that live in one shard, with their encoded labels."""

    __slots__ = ("layout", "shard", "lo", "hi", "getter", "text", "lengths", "offsets", "n")

    def __init__(self, layout: SetLayout, shard: "Shard", positions: List[int], fields: List[bytes]) -> None:
        self.layout = layout
        self.shard = shard
        self.n = len(positions)
        self.lo, self.hi = positions[0], positions[-1] + 1
        if self.hi - self.lo == self.n:
            self.getter: Optional[Callable[[Any], Any]] = None  # contiguous: a slice
        elif self.n == 1:
            only = positions[0]
            self.getter = lambda seq: (seq[only],)
        else:
            self.getter = itemgetter(*positions)
        self.text = b"".join(fields)
        self.lengths = array("q", map(len, fields))
        offsets = array("q", [0]) * (self.n + 1)
        total = 0
        for i, length in enumerate(self.lengths):
            total += length
            offsets[i + 1] = total
        self.offsets = offsets

    def take(self, seq: Any) -> Any:
        """This slice's items of a per-series sequence (array), in slice order."""
        if self.getter is None:
            return seq[self.lo : self.hi]
        return array(seq.typecode, self.getter(seq))

    def labels(self, lo: int, n: int) -> Tuple[bytes, "array[int]"]:
        if lo == 0 and n == self.n:
            return self.text, self.lengths
        return self.text[self.offsets[lo] : self.offsets[lo + n]], self.lengths[lo : lo + n]


def build_batch(segments: List[Segment], table: "SeriesTable", group: bool = True) -> SeriesBatch:
    """The columns of one request for a run of segments.

    With `group`, consecutive add_many segments of the same series are
    merged: each series once with all its samples (its labels on the wire once).
    """
    builder = BatchBuilder()
    fields = table.fields
    field_len = table.field_len
    i = 0
    while i < len(segments):
        segment = segments[i]
        kind = type(segment)
        if kind is RowSegment:
            idx = segment.idx  # type: ignore[union-attr]
            builder.add_single_samples(
                b"".join(map(fields.__getitem__, idx)), map(field_len.__getitem__, idx),
                segment.vals, segment.stamps,  # type: ignore[union-attr]
            )  # fmt: skip
            i += 1
        elif kind is SeriesEntry:
            entry: SeriesEntry = segment  # type: ignore[assignment]
            builder.add_series(fields[entry.idx], entry.vals, entry.stamps, entry.series, entry.extras)
            i += 1
        else:
            j = i + 1
            while j < len(segments) and type(segments[j]) is ColumnSegment:
                j += 1
            for run in _column_groups(segments[i:j], table, group):  # type: ignore[arg-type]
                first = run[0]
                text, lengths = first.part.labels(first.lo, len(first.vals))
                if len(run) == 1:
                    builder.add_single_samples(text, lengths, first.vals, first.stamp_array())
                else:
                    builder.add_interleaved(text, lengths, [(s.vals, s.stamp_array()) for s in run])
            i = j
    return builder.build()


def _column_groups(run: List[ColumnSegment], table: "SeriesTable", group: bool) -> List[List[ColumnSegment]]:
    """add_many segments in a row, as groups of segments to encode together.

    A group is segments of the same series (same slice and range), whose
    samples go out as one series entry each, with all their samples: only
    for sets that have no series in common with another set in the run
    (else the order of one series' samples could change) and, for shared
    timestamps, when they increase. Entries of different sets may change
    places: they are different series.
    """
    if not group or len(run) == 1:
        return [[segment] for segment in run]
    layouts = list({id(segment.part.layout): segment.part.layout for segment in run}.values())
    blocked = {id(layout) for layout in layouts if layout.duplicates}
    for x, a in enumerate(layouts):
        for b in layouts[x + 1 :]:
            if not table.sets_disjoint(a, b):
                blocked.update((id(a), id(b)))
    groups: Dict[Tuple[int, int, int], List[ColumnSegment]] = {}
    order: List[List[ColumnSegment]] = []
    for segment in run:
        if id(segment.part.layout) in blocked:  # shares series with another set here: as added
            order.append([segment])
            continue
        k = (id(segment.part), segment.lo, len(segment.vals))
        members = groups.get(k)
        if members is None:
            members = groups[k] = []
            order.append(members)
        members.append(segment)
    out: List[List[ColumnSegment]] = []
    for members in order:
        stamps = [m.stamps for m in members]
        if len(members) > 1 and all(type(t) is int for t in stamps) and any(
            a >= b for a, b in zip(stamps, stamps[1:])
        ):
            out.extend([m] for m in members)  # the same time twice: separate entries, as added
        else:
            out.append(members)
    return out
