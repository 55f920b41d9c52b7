"""The Writer's table of series: each distinct label set encoded once, by the codec's kernel.

A queued sample refers to its series by an index into this table; the
table also remembers which shard each series lives in and how each SeriesSet
passed to `add_many` splits over the shards (`SetLayout`).
"""

from __future__ import annotations

import threading
import zlib
from array import array
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import _backend
from ..errors import SeriesError
from ..model import LabelSet, format_labels, sort_labels
from .segments import SetLayout, SetSlice

if TYPE_CHECKING:
    from .queue import Shard

__all__ = ["SeriesTable", "fast_key"]

_SET_CACHE = 256  # SeriesSets whose layout a Writer remembers (least recently used go first)
Entry = Tuple["Shard", int]  # the series' shard and its index in the table


class SeriesTable:
    """Encoded label fields per series index, the lookups that find them, and the sets' layouts.

    `fast` maps labels as given (when hashable) to a series the Writer has
    queued a sample of: the `add` path's one dict lookup. `series_added`
    counts series with at least one sample accepted into the queue.
    """

    def __init__(self, shards: Sequence["Shard"], kernels: _backend.Kernels) -> None:
        self.shards = shards
        self.kernels = kernels
        self.lock = threading.RLock()
        self.fields: List[bytes] = []  # encoded label fields per series index
        self.field_len: List[int] = []
        self.fast: Dict[Any, Entry] = {}
        self.canonical: Dict[Tuple[Tuple[str, str], ...], Entry] = {}
        self.counted = bytearray()  # per series index: a sample of it was accepted
        self.series_added = 0
        self.sets: "OrderedDict[int, SetLayout]" = OrderedDict()
        self.set_count = 0
        self.disjoint: Dict[Tuple[int, int], Any] = {}  # ids of two SetLayouts -> (a, b, no series in common)

    # ---- series accepted ----------------------------------------------------------------

    def admit(self, key: Any, entry: Entry) -> None:
        """A sample of `entry` was queued: count the series, and let `key` find it fast from now on."""
        with self.lock:
            self.count(entry[1])
            if key is not None:
                self.fast[key] = entry

    def count(self, index: int) -> None:
        if not self.counted[index]:
            self.counted[index] = 1
            self.series_added += 1

    def count_layout(self, layout: SetLayout) -> None:
        with self.lock:
            for index in layout.indices:
                self.count(index)
            layout.counted = True

    # ---- interning ------------------------------------------------------------------------

    def intern(self, labels: Any) -> Entry:
        """(shard, index) of a series, encoding its labels the first time it is seen."""
        return self.intern_many([labels])[0]

    def intern_many(self, many: Sequence[Any], prefer: Optional[Callable[[int], int]] = None) -> List[Entry]:
        out: List[Optional[Entry]] = [None] * len(many)
        canon: Dict[int, Tuple[Tuple[str, str], ...]] = {}  # position -> sorted labels, for the unknown
        for i, labels in enumerate(many):
            key = fast_key(labels)
            entry = _get(self.fast, key) if key is not None else None
            if entry is None:
                try:
                    canon[i] = pairs = sort_labels(labels)
                except (TypeError, ValueError) as exc:
                    raise SeriesError(i, f"labels must be a mapping or (name, value) pairs: {exc}") from None
                entry = _get(self.canonical, pairs)
            out[i] = entry
        if any(e is None for e in out):
            with self.lock:
                todo = []
                for i, entry in enumerate(out):
                    if entry is None:
                        out[i] = _get(self.canonical, canon[i])  # interned meanwhile?
                        if out[i] is None:
                            todo.append(i)
                try:
                    fields = self._encode_label_sets([canon[i] for i in todo], [many[i] for i in todo])
                except SeriesError as exc:
                    raise SeriesError(todo[exc.index], exc.problem, exc.labels) from None
                for i, text in zip(todo, fields):
                    entry = _get(self.canonical, canon[i])  # the same series twice in `many`
                    if entry is None:
                        index = prefer(i) if prefer is not None else zlib.crc32(text) % len(self.shards)
                        labels = many[i]
                        if isinstance(labels, LabelSet) and labels._pb is None:
                            labels.keep_encoding(text)
                        entry = (self.shards[index], len(self.fields))
                        self.fields.append(text)
                        self.field_len.append(len(text))
                        self.counted.append(0)
                        self.canonical[canon[i]] = entry
                    out[i] = entry
        return out  # type: ignore[return-value]

    def _encode_label_sets(self, sets: List[Tuple[Tuple[str, str], ...]], given: List[Any]) -> List[bytes]:
        """Encoded label fields of each set, in one kernel call; SeriesError names a bad one."""
        if not sets:
            return []
        cached = [g._pb if isinstance(g, LabelSet) else None for g in given]
        if all(c is not None for c in cached):
            return cached  # type: ignore[return-value]
        names = [name for pairs in sets for name, _ in pairs]
        values = [value for pairs in sets for _, value in pairs]
        counts = [len(pairs) for pairs in sets]
        try:
            text, lengths = self.kernels.encode_labels(names, values, counts)
        except SeriesError as exc:
            raise SeriesError(exc.index, exc.problem, format_labels(sets[exc.index])) from None
        fields = []
        start = 0
        for length in lengths:
            fields.append(text[start : start + length])
            start += length
        return fields

    # ---- SeriesSets ---------------------------------------------------------------------

    def layout(self, series_set: Any) -> SetLayout:
        """How `series_set`'s series split over the shards (made once per set, then remembered)."""
        with self.lock:
            layout = self.sets.get(id(series_set))
            if layout is not None and layout.owner is series_set:
                self.sets.move_to_end(id(series_set))
                return layout
            labels = getattr(series_set, "labels", None)
            if labels is None or isinstance(labels, (str, bytes)):
                raise TypeError(f"add_many takes a promwrite.SeriesSet, not {type(series_set).__name__}")
            labels = tuple(labels)
            layout = SetLayout(series_set, len(labels))
            nshards = len(self.shards)
            base = self.set_count % nshards
            self.set_count += 1
            count = max(len(labels), 1)
            # Series new to this writer go in contiguous blocks per shard, so
            # that add_many splits the values by slicing, not by gathering.
            entries = self.intern_many(labels, prefer=lambda i: (base + i * nshards // count) % nshards)
            by_shard: Dict[int, List[int]] = {}
            for position, (shard, _) in enumerate(entries):
                by_shard.setdefault(shard.index, []).append(position)
            layout.indices = array("I", [idx for _, idx in entries])
            layout.duplicates = len(set(layout.indices)) != len(layout.indices)
            for index in sorted(by_shard):
                positions = by_shard[index]
                fields = [self.fields[entries[p][1]] for p in positions]
                layout.parts.append(SetSlice(layout, self.shards[index], positions, fields))
            self.sets[id(series_set)] = layout
            while len(self.sets) > _SET_CACHE:
                self.sets.popitem(last=False)
        return layout

    def sets_disjoint(self, a: SetLayout, b: SetLayout) -> bool:
        """No series in common between two sets (remembered per pair)."""
        key = (id(a), id(b)) if id(a) < id(b) else (id(b), id(a))
        known = self.disjoint.get(key)
        if known is None or {id(known[0]), id(known[1])} != set(key):  # ids of sets since gone
            if len(self.disjoint) > 4 * _SET_CACHE:
                self.disjoint.clear()
            known = self.disjoint[key] = (a, b, set(a.indices).isdisjoint(b.indices))
        return known[2]


def fast_key(labels: Any) -> Any:
    """A hashable key for labels as given (insertion order counts), or None."""
    kind = type(labels)
    if kind is dict:
        return (tuple(labels), tuple(labels.values()))
    if kind is LabelSet:
        return labels
    if isinstance(labels, Mapping):
        return (tuple(labels), tuple(labels.values()))
    try:
        key = tuple(labels) if isinstance(labels, (list, tuple)) else None
        if key is not None:
            hash(key)
        return key
    except TypeError:
        return None


def _get(table: Dict[Any, Any], key: Any) -> Any:
    try:
        return table.get(key)
    except TypeError:  # unhashable: never interned (the kernel will say why)
        return None
