"""A batching background writer: add samples from any thread; promwrite sends them.

    with promwrite.Writer("http://localhost:9090/api/v1/write") as w:
        w.add({"__name__": "jobs_done_total", "queue": "mail"}, 17)

`Writer` keeps what `add` accepted in bounded, compact per-shard queues,
encodes a batch with one kernel call when it is full (`max_samples_per_send`)
or old (`flush_interval`), and sends it from one of several shard threads,
retrying by a `Retry` policy. A series always goes to the same shard and a
shard sends one batch at a time, so each series' samples arrive in order.

Memory: a queued sample costs an index into a table of encoded label sets
(interned: each distinct series is encoded once, by the codec's kernel) and
its value and timestamp in packed arrays: about 20 bytes on the `add` path, 8
to 16 on the `add_many` path. `max_queued_samples` bounds the queues; when
they are full, `add` blocks (optionally up to `block_timeout`, then raises
`QueueFullError`) or, with ``when_full="drop_oldest"``, the oldest queued
samples are dropped and counted.

Accounting (`stats()`), at any moment: ``added == sent + failed + dropped +
spooled + queued`` (queued includes batches in flight). With `spool_dir`,
batches not delivered when retries run out or at `close()` are written to
disk and sent first by the next Writer on that directory.

Protocol: a batch is encoded in the remote-write version the client uses at
that moment (`Client.protocol`): 2.0 for ``Client(url, protocol="2.0")``, 1.0
once the client has fallen back. Sent samples and requests are counted per
the version the server accepted them in (`WriteResponse.protocol`), so a
2.0 batch that triggered the fallback (and went again as 1.0) counts as 1.0.
Spooled batches are always stored as 1.0 (re-encoded when the batch was 2.0),
so the spool format is unchanged and every receiver takes them at replay.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time as _time
import zlib
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from operator import itemgetter
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _backend
from ._codec2 import _extras as _extras_v2, _gather_strings, _split
from .client import Client
from .codec import _extras as _encode_extras  # exemplar/histogram fields of a series
from .errors import ConnectError, PromwriteError, SeriesError, TimeoutError, WriteError
from .model import LabelSet, Labels, Time, TimeSeries, format_labels, sort_labels, to_float, to_ms
from .retry import Retry
from .spool import CORRUPT, REJECTED, Spool, SpoolCorrupt, SpoolError

__all__ = ["FailedBatch", "QueueFullError", "Writer", "WriterStats"]

log = logging.getLogger("promwrite")

_monotonic = _time.monotonic
_time_ns = _time.time_ns
_ONE = array("q", [1])
_I64 = 1 << 63
_SET_CACHE = 256  # SeriesSets whose layout a Writer remembers (least recently used go first)


class QueueFullError(PromwriteError):
    """`Writer.add` waited `block_timeout` seconds for room in a full queue."""


@dataclass(frozen=True)
class FailedBatch:
    """A batch given up (passed to `on_failure`): why, what, and its payload.

    `reason` is ``"http_<status>"`` (the server refused it, or kept answering
    that status until the retry policy gave up), ``"connect"``, ``"timeout"``,
    ``"closed"`` (still undelivered when `close()` ran out of time, no spool),
    ``"spool_error"`` (the spool could not take it) or ``"invalid"`` (it could
    not be encoded). `payload` is the snappy-compressed request, as sent;
    `protocol` its remote-write version ("1.0" or "2.0").
    """

    reason: str
    samples: int
    series: int
    attempts: int
    error: Optional[BaseException]
    payload: Optional[bytes] = field(repr=False, default=None)
    protocol: str = "1.0"


@dataclass(frozen=True)
class WriterStats:
    """A consistent snapshot of a Writer's counters (samples unless named otherwise).

    ``samples_added == samples_sent + failed + dropped + samples_spooled +
    samples_queued`` always holds; `samples_queued` includes batches in flight.
    Samples read back from the spool at start count as added (and in
    `samples_from_spool`). `samples_sent_by_protocol` and
    `requests_by_protocol` split `samples_sent` and `requests` by the
    remote-write version the server accepted ("1.0", "2.0"; only versions
    that delivered something appear).
    """

    samples_added: int
    series_added: int
    samples_sent: int
    samples_retried: int
    samples_failed: Mapping[str, int]
    samples_dropped: Mapping[str, int]
    samples_spooled: int
    samples_queued: int
    samples_from_spool: int
    bytes_sent: int
    requests: int
    requests_failed: int
    last_error: Optional[str]
    samples_sent_by_protocol: Mapping[str, int] = field(default_factory=dict)
    requests_by_protocol: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.samples_failed.values())

    @property
    def dropped(self) -> int:
        return sum(self.samples_dropped.values())

    @property
    def balanced(self) -> bool:
        """The accounting invariant (always True; for tests and assertions)."""
        return self.samples_added == (
            self.samples_sent + self.failed + self.dropped + self.samples_spooled + self.samples_queued
        ) and sum(self.samples_sent_by_protocol.values()) == self.samples_sent


# ---- queued data --------------------------------------------------------------------
# A shard's queue is a deque of segments, oldest first:
#   _Rows:  samples from add()/add_series(): per sample an index into the label
#           table, a value and a timestamp, in three packed arrays;
#   _Col:   one add_many() call's samples for the series of one _Part (the
#           slice of a SeriesSet in this shard): values, one timestamp or one each;
#   _Entry: one series with exemplars or histograms (encoded at add time).


class _Rows:
    __slots__ = ("idx", "vals", "stamps", "seq")

    def __init__(self, seq: int) -> None:
        self.idx = array("I")
        self.vals = array("d")
        self.stamps = array("q")
        self.seq = seq


class _Col:
    __slots__ = ("part", "vals", "stamps", "lo", "seq")

    def __init__(self, part: "_Part", vals: "array[float]", stamps: Any, lo: int, seq: int) -> None:
        self.part = part
        self.vals = vals
        self.stamps = stamps  # int (one for all) or array 'q'
        self.lo = lo  # position of vals[0] in the part
        self.seq = seq

    def stamp_array(self) -> "array[int]":
        st = self.stamps
        return array("q", [st]) * len(self.vals) if type(st) is int else st


class _Entry:
    __slots__ = ("idx", "vals", "stamps", "extras", "n", "seq", "series")

    def __init__(
        self, idx: int, vals: "array[float]", stamps: "array[int]", extras: bytes, n: int, seq: int,
        series: Optional[TimeSeries] = None,
    ) -> None:  # fmt: skip
        self.idx = idx
        self.vals = vals
        self.stamps = stamps
        self.extras = extras  # 1.0 fields (exemplars, histograms)
        self.n = n
        self.seq = seq
        self.series = series  # for 2.0: its exemplars, histograms, metadata, start timestamp


def _size(seg: Any) -> int:
    return seg.n if type(seg) is _Entry else len(seg.vals)


class _SetInfo:
    """How one SeriesSet's series map to shards (computed once per set)."""

    __slots__ = ("owner", "parts", "n", "indices", "duplicates")

    def __init__(self, owner: Any, n: int) -> None:
        self.owner = owner
        self.parts: List[_Part] = []
        self.n = n
        self.indices = array("I")  # label-table index of each series
        self.duplicates = False  # a series is in the set twice


class _Part:
    """The series of a SeriesSet that live in one shard, with their encoded labels."""

    __slots__ = ("info", "shard", "lo", "hi", "getter", "text", "lengths", "offsets", "n")

    def __init__(self, info: _SetInfo, shard: "_Shard", positions: List[int], fields: List[bytes]) -> None:
        self.info = info
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
        """This part's items of a per-series sequence (array), in part order."""
        if self.getter is None:
            return seq[self.lo : self.hi]
        return array(seq.typecode, self.getter(seq))

    def labels(self, lo: int, n: int) -> Tuple[bytes, "array[int]"]:
        if lo == 0 and n == self.n:
            return self.text, self.lengths
        return self.text[self.offsets[lo] : self.offsets[lo + n]], self.lengths[lo : lo + n]


class _Shard:
    __slots__ = (
        "index", "queue", "rows", "pending", "first_at", "enqueued", "taken",
        "inflight_start", "flush_upto", "waiting", "cv", "thread",
    )  # fmt: skip

    def __init__(self, index: int, lock: threading.Lock) -> None:
        self.index = index
        self.queue: Deque[Any] = deque()
        self.rows: Optional[_Rows] = None  # the open _Rows at the tail, if any
        self.pending = 0  # samples in `queue`
        self.first_at = 0.0  # monotonic time the oldest queued sample came
        self.enqueued = 0  # samples ever queued here (positions for flush)
        self.taken = 0  # samples ever removed from the head (sent off or dropped)
        self.inflight_start: Optional[int] = None  # position of the batch in flight
        self.flush_upto = 0  # flush() asked for everything before this position
        self.waiting = False  # the sender is waiting on cv
        self.cv = threading.Condition(lock)
        self.thread: Optional[threading.Thread] = None

    def resolved_upto(self) -> int:
        return self.taken if self.inflight_start is None else self.inflight_start


# ---- the writer -----------------------------------------------------------------------


class Writer:
    """Batches samples added from any thread and sends them in the background.

    `target` is a `Client` (shared, not closed by the Writer) or a URL, with
    the client's options as further keywords (``auth=``, ``headers=``,
    ``timeout=``, TLS, proxy). Options:

    - `max_samples_per_send`: samples per request at most (default 10,000);
    - `flush_interval`: seconds a sample may wait for its batch to fill (1.0);
    - `shards`: batches in flight at once (4); a series always goes to the
      same shard, so its samples are sent in order;
    - `max_queued_samples`: the queues' bound (1,000,000), batches in flight
      aside; when full, `when_full="block"` (default) makes `add` wait, up to
      `block_timeout` seconds if given (then `QueueFullError`), and
      ``"drop_oldest"`` drops the oldest queued samples (counted as dropped,
      reason ``"queue_full"``);
    - `retry`: a `Retry`; default `Retry.forever()` (retry what is
      retryable until delivered or `close()`); 4xx other than 429 never retry;
    - `spool_dir`: keep undeliverable batches on disk (see `promwrite.spool`)
      and send them first at the next start; `spool_max_bytes` bounds it;
    - `on_failure`: called with a `FailedBatch` for every batch given up
      (from a sender thread; exceptions in it are logged and ignored);
    - `close_timeout`: how long `close()` waits for delivery by default (30 s);
    - `close_at_exit`: close (and so flush) at interpreter exit (True).
    """

    def __init__(
        self,
        target: Union[Client, str],
        *,
        max_samples_per_send: int = 10_000,
        flush_interval: float = 1.0,
        shards: int = 4,
        max_queued_samples: int = 1_000_000,
        when_full: str = "block",
        block_timeout: Optional[float] = None,
        retry: Optional[Retry] = None,
        spool_dir: Optional[str] = None,
        spool_max_bytes: Optional[int] = None,
        on_failure: Optional[Callable[[FailedBatch], Any]] = None,
        close_timeout: float = 30.0,
        close_at_exit: bool = True,
        _kernels: Optional[_backend.Kernels] = None,
        **client_options: Any,
    ) -> None:
        if isinstance(target, Client):
            if client_options:
                raise TypeError(f"client options {sorted(client_options)} given with a Client; give a URL instead")
            self.client, self._owns_client = target, False
        elif isinstance(target, str):
            self.client, self._owns_client = Client(target, **client_options), True
        else:
            raise TypeError(f"target must be a Client or a URL, not {type(target).__name__}")
        if not isinstance(max_samples_per_send, int) or max_samples_per_send < 1:
            raise ValueError(f"max_samples_per_send must be a positive int, not {max_samples_per_send!r}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive seconds, not {flush_interval!r}")
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive int, not {shards!r}")
        if not isinstance(max_queued_samples, int) or max_queued_samples < 1:
            raise ValueError(f"max_queued_samples must be a positive int, not {max_queued_samples!r}")
        if when_full not in ("block", "drop_oldest"):
            raise ValueError(f"when_full must be 'block' or 'drop_oldest', not {when_full!r}")
        if block_timeout is not None and not block_timeout >= 0:
            raise ValueError(f"block_timeout must be >= 0 seconds or None, not {block_timeout!r}")
        self._kernels = _kernels if _kernels is not None else _backend.kernels
        self._batch = max_samples_per_send
        self._interval = float(flush_interval)
        self._max_queued = max_queued_samples
        self._drop = when_full == "drop_oldest"
        self._block_timeout = block_timeout
        self.retry = retry if retry is not None else Retry.forever()
        self._on_failure = on_failure
        self._close_timeout = float(close_timeout)

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # producers waiting for room
        self._done = threading.Condition(self._lock)  # flush() waiting for batches to resolve
        self._shards = [_Shard(i, self._lock) for i in range(shards)]
        self._seq = 0  # segment sequence, for "oldest"
        self._blocked = 0  # producers waiting for room
        self._closed = False  # add() refused
        self._closing = False  # senders: send everything now, then stop
        self._abort = threading.Event()  # close() ran out of time: stop retrying

        # interned series: label table and lookups
        self._intern_lock = threading.RLock()
        self._fields: List[bytes] = []  # encoded label fields per series index
        self._field_len: List[int] = []
        self._disjoint: Dict[Tuple[int, int], Any] = {}  # ids of two _SetInfos -> (a, b, no series in common)
        self._canonical: Dict[Tuple[Tuple[str, str], ...], Tuple[_Shard, int]] = {}
        self._fast: Dict[Any, Tuple[_Shard, int]] = {}  # other hashable spellings of the same labels
        self._sets: "OrderedDict[int, _SetInfo]" = OrderedDict()
        self._set_count = 0

        # counters (under _lock)
        self._queued = 0  # samples in the queues
        self._inflight = 0  # samples in batches being sent (or replayed from the spool)
        self._added = 0
        self._sent = 0
        self._retried = 0
        self._spooled = 0
        self._from_spool = 0
        self._bytes = 0
        self._requests = 0
        self._requests_failed = 0
        self._sent_by: Dict[str, int] = {}  # samples sent, by the protocol the server accepted
        self._requests_by: Dict[str, int] = {}
        self._failed: Dict[str, int] = {}
        self._dropped: Dict[str, int] = {}
        self._last_error: Optional[str] = None

        self._spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        self._replayed = threading.Event()
        self._threads: List[threading.Thread] = []
        try:
            if self._spool is not None and self._spool.pending():
                t = threading.Thread(target=self._replay, name="promwrite-spool", daemon=True)
                self._threads.append(t)
            else:
                self._replayed.set()
            for shard in self._shards:
                shard.thread = threading.Thread(
                    target=self._sender, args=(shard,), name=f"promwrite-shard-{shard.index}", daemon=True
                )
                self._threads.append(shard.thread)
            for t in self._threads:
                t.start()
        except BaseException:
            self._abort.set()
            if self._spool is not None:
                self._spool.close()
            raise
        if close_at_exit:
            _LIVE.add(self)

    # ---- adding ------------------------------------------------------------------------

    def add(self, labels: Labels, value: float, time: Optional[Time] = None, *, timestamp_ms: Optional[int] = None) -> None:
        """Queue one sample of the series `labels` (a dict, pairs or a LabelSet).

        `time`/`timestamp_ms` as for `Sample` (default: now). Bad labels raise
        SeriesError here, the first time a series is seen. Blocks while the
        queue is full (see `when_full`).
        """
        if time is None:
            if timestamp_ms is None:
                ts = _time_ns() // 1_000_000
            elif type(timestamp_ms) is int and -_I64 <= timestamp_ms < _I64:
                ts = timestamp_ms
            else:
                ts = to_ms(None, timestamp_ms)
        else:
            ts = to_ms(time, timestamp_ms)
        if type(value) is not float:
            value = to_float(value)
        kind = type(labels)
        if kind is dict:
            key: Any = (tuple(labels), tuple(labels.values()))
        elif kind is LabelSet:
            key = labels
        else:
            key = _fast_key(labels)
        try:
            shard, idx = self._fast[key]
        except (KeyError, TypeError):
            shard, idx = self._intern(labels)
        with self._lock:
            if self._queued >= self._max_queued or self._closed:
                self._make_room(1)
            rows = shard.rows
            if rows is None:
                rows = self._open_rows(shard)
            rows.idx.append(idx)
            rows.vals.append(value)
            rows.stamps.append(ts)
            self._queued += 1
            self._added += 1
            shard.enqueued += 1
            pending = shard.pending = shard.pending + 1
            if pending == 1:
                shard.first_at = _monotonic()
                if shard.waiting:
                    shard.cv.notify()
            elif pending >= self._batch:
                if len(rows.vals) >= self._batch:
                    shard.rows = None
                if shard.waiting:
                    shard.waiting = False
                    shard.cv.notify()

    def add_series(self, series: TimeSeries) -> None:
        """Queue a TimeSeries: its samples (in time order), exemplars and histograms."""
        if not isinstance(series, TimeSeries):
            raise TypeError(f"add_series takes a TimeSeries, not {type(series).__name__}")
        samples = series.samples
        try:
            vals = array("d", [s[0] for s in samples])
            stamps = array("q", [s[1] for s in samples])
        except (TypeError, IndexError, KeyError, OverflowError):
            raise ValueError(
                f"series {format_labels(series.labels)}: samples must be Sample objects or (value, timestamp_ms) pairs"
            ) from None
        if any(a >= b for a, b in zip(stamps, stamps[1:])):
            raise SeriesError(0, "sample timestamps are not strictly increasing", format_labels(series.labels))
        if not len(vals) and not series.histograms:
            raise ValueError(f"series {format_labels(series.labels)} has no samples or histograms to write")
        shard, idx = self._intern(series._labels)
        if series.exemplars or series.histograms:
            n = len(vals) + len(series.histograms)
            segment = _Entry(idx, vals, stamps, _encode_extras(series), n, 0, series)
            with self._lock:
                if self._queued + n > self._max_queued or self._closed:
                    self._make_room(n)
                segment.seq = self._next_seq()
                shard.queue.append(segment)
                shard.rows = None
                self._enqueued(shard, n)
            return
        n = len(vals)
        with self._lock:
            if self._queued + n > self._max_queued or self._closed:
                self._make_room(n)
            rows = shard.rows
            if rows is None:
                rows = self._open_rows(shard)
            rows.idx.extend(array("I", [idx]) * n)
            rows.vals.extend(vals)
            rows.stamps.extend(stamps)
            if len(rows.vals) >= self._batch:
                shard.rows = None
            self._enqueued(shard, n)

    def add_many(
        self,
        series: Any,
        values: Sequence[float],
        time: Optional[Time] = None,
        *,
        timestamp_ms: Optional[int] = None,
        timestamps_ms: Optional[Sequence[int]] = None,
    ) -> None:
        """Queue one sample for every series of a `promwrite.SeriesSet`: values[i] for series i.

        All at one time (`time`/`timestamp_ms`, default now) unless
        `timestamps_ms` gives one per series. The fast path: the set's labels
        are interned once, and each call costs little more than copying the
        values (pass an ``array('d')`` to save the conversion).
        """
        info = self._set_info(series)
        n = info.n
        try:
            own = not (type(values) is array and values.typecode == "d")  # type: ignore[attr-defined]
            vals = array("d", values) if own else values
            if timestamps_ms is None:
                stamps: Any = to_ms(time, timestamp_ms)
            elif time is not None or timestamp_ms is not None:
                raise ValueError("give timestamps_ms or one time, not both")
            else:
                stamps = array("q", timestamps_ms)
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"add_many: values must be numbers, timestamps int64 ({exc})") from None
        if len(vals) != n or (type(stamps) is not int and len(stamps) != n):
            count = 1 if type(stamps) is int else len(stamps)
            raise ValueError(f"add_many: {n} series but {len(vals)} values and {count} timestamps")
        if n == 0:
            return
        if n > self._max_queued:
            raise ValueError(f"add_many: {n} samples at once exceed max_queued_samples={self._max_queued}")
        segments = []
        for part in info.parts:
            if part.n == n:
                v = vals if own else vals[:]
                s = stamps if type(stamps) is int else stamps[:]
            else:
                v = part.take(vals)
                s = stamps if type(stamps) is int else part.take(stamps)
            segments.append(_Col(part, v, s, 0, 0))
        with self._lock:
            if self._queued + n > self._max_queued or self._closed:
                self._make_room(n)
            for segment in segments:
                shard = segment.part.shard
                segment.seq = self._next_seq()
                shard.queue.append(segment)
                shard.rows = None
                self._enqueued(shard, len(segment.vals))

    # ---- queue internals (called with _lock held) --------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _open_rows(self, shard: _Shard) -> _Rows:
        rows = shard.rows = _Rows(self._next_seq())
        shard.queue.append(rows)
        return rows

    def _enqueued(self, shard: _Shard, n: int) -> None:
        self._queued += n
        self._added += n
        shard.enqueued += n
        was = shard.pending
        shard.pending = was + n
        if was == 0:
            shard.first_at = _monotonic()
        if shard.waiting and (was == 0 or shard.pending >= self._batch):
            shard.waiting = False
            shard.cv.notify()

    def _make_room(self, n: int) -> None:
        if self._closed:
            raise PromwriteError("this Writer is closed")
        if n > self._max_queued:
            raise ValueError(f"{n} samples at once exceed max_queued_samples={self._max_queued}")
        if self._queued + n <= self._max_queued:
            return
        if self._drop:
            self._drop_oldest(self._queued + n - self._max_queued, "queue_full")
            return
        deadline = None if self._block_timeout is None else _monotonic() + self._block_timeout
        self._blocked += 1
        try:
            for shard in self._shards:  # send what there is: someone is waiting for room
                if shard.waiting:
                    shard.waiting = False
                    shard.cv.notify()
            while self._queued + n > self._max_queued:
                if self._closed:
                    raise PromwriteError("this Writer is closed")
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    raise QueueFullError(
                        f"the Writer's queue is full ({self._queued} of {self._max_queued} samples queued,"
                        f" {self._inflight} in flight to {self.client.url}) and stayed full for"
                        f" {self._block_timeout:g} s; last error: {self._last_error or 'none'}"
                    )
                self._room.wait(remaining)
        finally:
            self._blocked -= 1

    def _drop_oldest(self, need: int, reason: str) -> None:
        dropped = 0
        while need > 0:
            oldest: Optional[_Shard] = None
            for shard in self._shards:
                if shard.queue and (oldest is None or shard.queue[0].seq < oldest.queue[0].seq):
                    oldest = shard
            if oldest is None:
                break
            segment = oldest.queue[0]
            size = _size(segment)
            if type(segment) is _Rows and size > need:
                k = need
                del segment.idx[:k]
                del segment.vals[:k]
                del segment.stamps[:k]
            else:
                k = size
                oldest.queue.popleft()
                if oldest.rows is segment:
                    oldest.rows = None
            oldest.pending -= k
            oldest.taken += k
            self._queued -= k
            need -= k
            dropped += k
        if dropped:
            self._dropped[reason] = self._dropped.get(reason, 0) + dropped
            self._done.notify_all()

    def _take(self, shard: _Shard) -> Tuple[List[Any], int]:
        """Up to max_samples_per_send samples from the head of the shard's queue."""
        limit = self._batch
        queue = shard.queue
        out: List[Any] = []
        n = 0
        while queue and n < limit:
            segment = queue[0]
            size = _size(segment)
            if n + size <= limit or (not out and type(segment) is _Entry):
                queue.popleft()
                if shard.rows is segment:
                    shard.rows = None
                out.append(segment)
                n += size
                continue
            k = limit - n
            if type(segment) is _Rows:
                head = _Rows(segment.seq)
                head.idx, head.vals, head.stamps = segment.idx[:k], segment.vals[:k], segment.stamps[:k]
                del segment.idx[:k]
                del segment.vals[:k]
                del segment.stamps[:k]
                out.append(head)
                n += k
            elif type(segment) is _Col:
                st = segment.stamps
                out.append(_Col(segment.part, segment.vals[:k], st if type(st) is int else st[:k], segment.lo, segment.seq))
                segment.vals = segment.vals[k:]
                segment.stamps = st if type(st) is int else st[k:]
                segment.lo += k
                n += k
            break
        shard.pending -= n
        self._queued -= n
        self._inflight += n
        shard.inflight_start = shard.taken
        shard.taken += n
        if self._blocked:
            self._room.notify_all()
        return out, n

    # ---- interning ----------------------------------------------------------------------

    def _intern(self, labels: Any) -> Tuple[_Shard, int]:
        """(shard, index) of a series, encoding its labels the first time it is seen."""
        return self._intern_many([labels])[0]

    def _intern_many(self, many: Sequence[Any], prefer: Optional[Callable[[int], int]] = None) -> List[Tuple[_Shard, int]]:
        out: List[Optional[Tuple[_Shard, int]]] = [None] * len(many)
        keys: List[Any] = [None] * len(many)
        canon: Dict[int, Tuple[Tuple[str, str], ...]] = {}  # position -> sorted labels, for the unknown
        for i, labels in enumerate(many):
            key = _fast_key(labels)
            entry = None
            if key is not None:
                try:
                    entry = self._fast.get(key)
                except TypeError:  # an unhashable value inside
                    key = None
            keys[i] = key
            if entry is None:
                try:
                    canon[i] = pairs = sort_labels(labels)
                except (TypeError, ValueError) as exc:
                    raise SeriesError(i, f"labels must be a mapping or (name, value) pairs: {exc}") from None
                entry = _get(self._canonical, pairs)
            out[i] = entry
        if any(e is None for e in out):
            with self._intern_lock:
                todo = []
                for i, entry in enumerate(out):
                    if entry is None:
                        out[i] = _get(self._canonical, canon[i])  # interned meanwhile?
                        if out[i] is None:
                            todo.append(i)
                try:
                    fields = self._encode_label_sets([canon[i] for i in todo], [many[i] for i in todo])
                except SeriesError as exc:
                    raise SeriesError(todo[exc.index], exc.problem, exc.labels) from None
                for i, text in zip(todo, fields):
                    entry = _get(self._canonical, canon[i])  # the same series twice in `many`
                    if entry is None:
                        index = prefer(i) if prefer is not None else zlib.crc32(text) % len(self._shards)
                        labels = many[i]
                        if isinstance(labels, LabelSet) and labels._pb is None:
                            labels._pb = text
                        with self._lock:
                            entry = (self._shards[index], len(self._fields))
                            self._fields.append(text)
                            self._field_len.append(len(text))
                        self._canonical[canon[i]] = entry
                    out[i] = entry
        fast = self._fast
        for key, entry in zip(keys, out):
            if key is not None:
                fast[key] = entry  # type: ignore[assignment]
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
            result = self._kernels.encode_labels(names, values, counts)
        except SeriesError as exc:
            raise SeriesError(exc.index, exc.problem, format_labels(sets[exc.index])) from None
        text, lengths = result
        fields = []
        start = 0
        for length in lengths:
            fields.append(text[start : start + length])
            start += length
        return fields

    def _set_info(self, series_set: Any) -> _SetInfo:
        with self._lock:
            info = self._sets.get(id(series_set))
            if info is not None and info.owner is series_set:
                self._sets.move_to_end(id(series_set))
                return info
        labels = getattr(series_set, "labels", None)
        if labels is None or isinstance(labels, (str, bytes)):
            raise TypeError(f"add_many takes a promwrite.SeriesSet, not {type(series_set).__name__}")
        labels = tuple(labels)
        with self._intern_lock:
            info = _SetInfo(series_set, len(labels))
            nshards = len(self._shards)
            base = self._set_count % nshards
            self._set_count += 1
            count = max(len(labels), 1)
            # Series new to this writer go in contiguous blocks per shard, so
            # that add_many splits the values by slicing, not by gathering.
            entries = self._intern_many(labels, prefer=lambda i: (base + i * nshards // count) % nshards)
            by_shard: Dict[int, List[int]] = {}
            for position, (shard, idx) in enumerate(entries):
                by_shard.setdefault(shard.index, []).append(position)
            info.indices = array("I", [idx for _, idx in entries])
            info.duplicates = len(set(info.indices)) != len(info.indices)
            for index in sorted(by_shard):
                positions = by_shard[index]
                fields = [self._fields[entries[p][1]] for p in positions]
                info.parts.append(_Part(info, self._shards[index], positions, fields))
            with self._lock:
                self._sets[id(series_set)] = info
                while len(self._sets) > _SET_CACHE:
                    self._sets.popitem(last=False)
        return info

    # ---- encoding -------------------------------------------------------------------------

    def _encode(self, segments: List[Any], group: bool = True, protocol: str = "1.0") -> Tuple[bytes, int]:
        """One request for a batch: (compressed payload, series entries), one kernel call.

        Consecutive add_many segments of the same series are merged: each
        series once with all its samples (so its labels go on the wire once).
        `protocol` is the remote-write version to encode ("1.0" or "2.0").
        """
        texts: List[bytes] = []
        lengths = array("q")
        counts = array("q")
        vals = array("d")
        stamps = array("q")
        extras: Dict[int, bytes] = {}
        series_at: Dict[int, TimeSeries] = {}  # for 2.0: entry position -> the series of an _Entry
        fields = self._fields
        field_len = self._field_len
        i = 0
        while i < len(segments):
            segment = segments[i]
            kind = type(segment)
            if kind is _Rows:
                idx = segment.idx
                texts.append(b"".join(map(fields.__getitem__, idx)))
                lengths.extend(map(field_len.__getitem__, idx))
                counts.extend(_ONE * len(idx))
                vals.extend(segment.vals)
                stamps.extend(segment.stamps)
                i += 1
            elif kind is _Entry:
                extras[len(lengths)] = segment.extras
                series_at[len(lengths)] = segment.series
                texts.append(fields[segment.idx])
                lengths.append(field_len[segment.idx])
                counts.append(len(segment.vals))
                vals.extend(segment.vals)
                stamps.extend(segment.stamps)
                i += 1
            else:
                j = i + 1
                while j < len(segments) and type(segments[j]) is _Col:
                    j += 1
                for run in self._column_groups(segments[i:j], group):
                    first = run[0]
                    m = len(first.vals)
                    text, lens = first.part.labels(first.lo, m)
                    texts.append(text)
                    lengths.extend(lens)
                    k = len(run)
                    if k == 1:
                        counts.extend(_ONE * m)
                        vals.extend(first.vals)
                        stamps.extend(first.stamp_array())
                        continue
                    counts.extend(array("q", [k]) * m)
                    v = array("d", bytes(8 * m * k))
                    s = array("q", bytes(8 * m * k))
                    for r, segment in enumerate(run):
                        v[r::k] = segment.vals
                        s[r::k] = segment.stamp_array()
                    vals.extend(v)
                    stamps.extend(s)
                i = j
        entries = len(lengths)
        try:
            if protocol == "2.0":
                payload = self._encode_v2(b"".join(texts), lengths, counts, vals, stamps, series_at)
            else:
                extra_list = None
                if extras:
                    extra_list = [b""] * entries
                    for position, data in extras.items():
                        extra_list[position] = data
                payload = self._kernels.encode_request(
                    b"".join(texts), lengths, counts, vals, stamps, extra_list, b"", True
                )
        except SeriesError:
            if not group:
                raise
            return self._encode(segments, group=False, protocol=protocol)  # samples not in time order: do not merge
        return payload, entries

    def _encode_v2(
        self, label_text: bytes, lengths: "array[int]", counts: "array[int]", vals: "array[float]",
        stamps: "array[int]", series_at: Dict[int, TimeSeries],
    ) -> bytes:  # fmt: skip
        """The batch as a remote-write 2.0 request, from the same 1.0 label fields and columns.

        Series with exemplars or histograms (`series_at`) get their 2.0 parts
        as `promwrite._codec2` makes them (with their metadata and start
        timestamp; one with samples and histograms becomes two series).
        """
        kernels = self._kernels
        if not series_at:
            symbols, refs_text, refs_lengths, _ = kernels.encode_symbols_v2(label_text, lengths, [])
            return kernels.encode_request_v2(symbols, refs_text, refs_lengths, counts, vals, stamps, None, None, True)
        texts: List[bytes] = []
        v2_lengths = array("q")
        v2_counts = array("q")
        starts = array("q")
        rare: List[Any] = []  # _codec2._Rare of each part of a series in series_at
        owners: List[TimeSeries] = []
        rare_starts = array("q")
        rare_at: Dict[int, int] = {}  # 2.0 series position -> index in rare
        offset = 0
        for i, length in enumerate(lengths):
            text = label_text[offset : offset + length]
            offset += length
            ts = series_at.get(i)
            if ts is None:
                texts.append(text)
                v2_lengths.append(length)
                v2_counts.append(counts[i])
                starts.append(0)
                continue
            begun = ts.start_timestamp_ms or 0
            for part in _split([ts], None, True)[2]:
                rare_at[len(v2_lengths)] = len(rare)
                rare.append(part)
                owners.append(ts)
                rare_starts.append(begun)
                texts.append(text)
                v2_lengths.append(length)
                v2_counts.append(counts[i] if part.with_samples else 0)
                starts.append(begun)
        strings = _gather_strings(rare, owners, list(range(len(rare))))
        symbols, refs_text, refs_lengths, refs = kernels.encode_symbols_v2(b"".join(texts), v2_lengths, strings.encoded)
        parts = _extras_v2(rare, rare_starts, strings, refs)
        extras: Optional[List[bytes]] = None
        if any(parts):
            extras = [b""] * len(v2_lengths)
            for position, k in rare_at.items():
                extras[position] = parts[k]
        return kernels.encode_request_v2(
            symbols, refs_text, refs_lengths, v2_counts, vals, stamps, starts if any(starts) else None, extras, True
        )

    def _column_groups(self, run: List[_Col], group: bool) -> List[List[_Col]]:
        """add_many segments in a row, as groups of segments to encode together.

        A group is segments of the same series (same part and range), whose
        samples go out as one series entry each, with all their samples:
        only for sets that have no series in common with another set in the
        run (else the order of one series' samples could change) and, for
        shared timestamps, when they increase. Entries of different sets may
        change places: they are different series.
        """
        if not group or len(run) == 1:
            return [[segment] for segment in run]
        infos = list({id(segment.part.info): segment.part.info for segment in run}.values())
        blocked = {id(info) for info in infos if info.duplicates}
        for x, a in enumerate(infos):
            for b in infos[x + 1 :]:
                if not self._sets_disjoint(a, b):
                    blocked.update((id(a), id(b)))
        groups: Dict[Tuple[int, int, int], List[_Col]] = {}
        order: List[List[_Col]] = []
        for segment in run:
            if id(segment.part.info) in blocked:  # shares series with another set here: as added
                order.append([segment])
                continue
            k = (id(segment.part), segment.lo, len(segment.vals))
            members = groups.get(k)
            if members is None:
                members = groups[k] = []
                order.append(members)
            members.append(segment)
        out: List[List[_Col]] = []
        for members in order:
            stamps = [m.stamps for m in members]
            if len(members) > 1 and all(type(t) is int for t in stamps) and any(
                a >= b for a, b in zip(stamps, stamps[1:])
            ):
                out.extend([m] for m in members)  # the same time twice: separate entries, as added
            else:
                out.append(members)
        return out

    def _sets_disjoint(self, a: _SetInfo, b: _SetInfo) -> bool:
        key = (id(a), id(b)) if id(a) < id(b) else (id(b), id(a))
        known = self._disjoint.get(key)
        if known is None or {id(known[0]), id(known[1])} != set(key):  # ids of sets since gone
            if len(self._disjoint) > 4 * _SET_CACHE:
                self._disjoint.clear()
            known = self._disjoint[key] = (a, b, set(a.indices).isdisjoint(b.indices))
        return known[2]

    # ---- sending ---------------------------------------------------------------------------

    def _sender(self, shard: _Shard) -> None:
        self._replayed.wait()
        lock = self._lock
        batch = self._batch
        interval = self._interval
        while True:
            with lock:
                while True:
                    pending = shard.pending
                    if pending:
                        if pending >= batch or shard.taken < shard.flush_upto or self._closing or self._blocked:
                            break
                        wait: Optional[float] = shard.first_at + interval - _monotonic()
                        if wait <= 0:  # type: ignore[operator]
                            break
                    elif self._closing:
                        return
                    else:
                        wait = 5.0  # woken by the first sample
                    shard.waiting = True
                    shard.cv.wait(wait)
                    shard.waiting = False
                segments, n = self._take(shard)
            try:
                self._deliver(segments, n)
            except BaseException as exc:  # never leave a batch unaccounted for
                log.exception("promwrite: writer shard %d failed unexpectedly", shard.index)
                self._settle(n, "invalid", exc, None, 0, 0)
            finally:
                with lock:
                    shard.inflight_start = None
                    self._done.notify_all()

    def _deliver(self, segments: List[Any], n: int) -> None:
        protocol = self.client.protocol  # 2.0 until the client falls back to 1.0
        try:
            payload, entries = self._encode(segments, protocol=protocol)
        except Exception as exc:
            log.error("promwrite: a batch of %d samples could not be encoded, dropped: %s", n, exc)
            self._settle(n, "invalid", exc, None, 0, 0, protocol)
            return
        outcome, error, attempts, accepted = self._transmit(payload, n, protocol)
        if outcome != "sent" and self._spool is not None and not _refused(outcome):
            try:  # the spool holds 1.0 requests only: any receiver takes them at replay
                self._spool.write(payload if protocol == "1.0" else self._encode(segments, protocol="1.0")[0], n)
            except (SpoolError, ValueError) as exc:
                log.error("promwrite: could not spool %d undelivered samples: %s", n, exc)
                outcome, error = "spool_error", exc
            else:
                self._settle(n, "spooled", error, payload, entries, attempts, protocol)
                return
        self._settle(n, outcome, error, payload, entries, attempts, accepted)

    def _transmit(
        self, payload: bytes, n: int, protocol: str = "1.0"
    ) -> Tuple[str, Optional[BaseException], int, str]:
        """Send with retries: ("sent", None, attempts, accepted protocol) or (failure reason,
        last error, attempts, `protocol`). A 2.0 payload may be accepted as 1.0 (client fallback)."""
        start = _monotonic()
        attempt = 0
        error: Optional[BaseException] = None
        while True:
            if self._abort.is_set():
                reason = "closed" if error is None or self.retry.retryable(error) else _reason(error)
                return reason, error, attempt, protocol
            attempt += 1
            try:
                response = self.client.send(payload, protocol=protocol)
            except Exception as exc:
                error = exc
                with self._lock:
                    self._requests_failed += 1
                    self._last_error = str(exc)
                wait = self.retry.delay(attempt, exc, _monotonic() - start)
                if wait is None:
                    return _reason(exc), exc, attempt, protocol
                with self._lock:
                    self._retried += n
                (log.warning if attempt == 1 else log.info)(
                    "promwrite: sending %d samples failed (attempt %d): %s; retrying in %.2f s", n, attempt, exc, wait
                )
                self._abort.wait(wait)
            else:
                if attempt > 1:
                    log.info("promwrite: %d samples delivered after %d attempts", n, attempt)
                return "sent", None, attempt, getattr(response, "protocol", None) or protocol

    def _settle(
        self, n: int, outcome: str, error: Optional[BaseException], payload: Optional[bytes], entries: int,
        attempts: int, protocol: str = "1.0",
    ) -> None:  # fmt: skip
        """Account for a finished batch (its samples leave 'in flight').

        `protocol`: the version the server accepted (sent), else the payload's.
        """
        with self._lock:
            self._inflight -= n
            if outcome == "sent":
                self._sent += n
                self._sent_by[protocol] = self._sent_by.get(protocol, 0) + n
                self._requests += 1
                self._requests_by[protocol] = self._requests_by.get(protocol, 0) + 1
                self._bytes += len(payload or b"")
            elif outcome == "spooled":
                self._spooled += n
            else:
                self._failed[outcome] = self._failed.get(outcome, 0) + n
                if error is not None:
                    self._last_error = str(error)
            self._done.notify_all()
        if outcome in ("sent", "spooled"):
            if outcome == "spooled":
                log.warning("promwrite: %d undelivered samples spooled to %s (%s)", n, self._spool.dir, error)  # type: ignore[union-attr]
            return
        log.error(
            "promwrite: gave up %d samples after %d attempts (%s): %s",
            n, attempts, outcome, error or "writer closed before delivery",
        )  # fmt: skip
        if self._on_failure is not None:
            try:
                self._on_failure(FailedBatch(outcome, n, entries, attempts, error, payload, protocol))
            except Exception:
                log.exception("promwrite: on_failure callback raised")

    def _replay(self) -> None:
        """Send spooled batches, oldest first, before anything new."""
        spool = self._spool
        assert spool is not None
        try:
            for path in spool.pending():
                if self._abort.is_set():
                    break
                try:
                    payload, n = spool.read(path)
                except SpoolCorrupt as exc:
                    spool.set_aside(path, CORRUPT, str(exc))
                    continue
                with self._lock:
                    self._added += n
                    self._from_spool += n
                    self._inflight += n
                outcome, error, attempts, accepted = self._transmit(payload, n)  # spooled batches are 1.0
                if outcome == "sent":
                    spool.remove(path)
                    self._settle(n, "sent", None, payload, 0, attempts, accepted)
                    log.info("promwrite: resent %d spooled samples from %s", n, path.name)
                elif _refused(outcome):
                    spool.set_aside(path, REJECTED, f"refused by the server: {error}")
                    self._settle(n, outcome, error, payload, 0, attempts)
                else:  # still undeliverable: it stays spooled, and so do the files after it
                    self._settle(n, "spooled", error, payload, 0, attempts)
                    break
        except Exception:
            log.exception("promwrite: resending the spool failed")
        finally:
            self._replayed.set()
            with self._lock:
                self._done.notify_all()

    # ---- flush, close, stats ------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything added so far now, and wait until it is delivered or given up.

        True when it all resolved, False when `timeout` seconds passed first.
        """
        deadline = None if timeout is None else _monotonic() + timeout
        with self._lock:
            targets = []
            for shard in self._shards:
                targets.append((shard, shard.enqueued))
                if shard.flush_upto < shard.enqueued:
                    shard.flush_upto = shard.enqueued
                    if shard.waiting:
                        shard.waiting = False
                        shard.cv.notify()
            while not (
                self._replayed.is_set() and all(shard.resolved_upto() >= target for shard, target in targets)
            ):
                if not any(t.is_alive() for t in self._threads):
                    return False
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, then stop. Waits up to `timeout` seconds (default: `close_timeout`).

        What is still undelivered then (the endpoint is down, retries go on)
        is spooled with `spool_dir`, else counted failed (reason ``"closed"``).
        A request on the wire at that moment may add up to the client's
        timeout. `add` raises after close.
        """
        timeout = self._close_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return
            self._closed = self._closing = True
            for shard in self._shards:
                shard.waiting = False
                shard.cv.notify()
            self._room.notify_all()
        _LIVE.discard(self)
        deadline = _monotonic() + max(0.0, timeout)
        for t in self._threads:
            t.join(max(0.0, deadline - _monotonic()))
        if any(t.is_alive() for t in self._threads):
            with self._lock:
                left = self._queued + self._inflight
            log.warning(
                "promwrite: close(): %d samples not delivered to %s within %g s; %s",
                left, self.client.url, timeout, "spooling them" if self._spool is not None else "giving them up",
            )  # fmt: skip
        self._abort.set()
        for t in self._threads:
            t.join(self.client.timeout + 5.0)
        if self._spool is not None:
            self._spool.close()
        if self._owns_client:
            self.client.close()

    def stats(self) -> WriterStats:
        """The counters, as one consistent snapshot."""
        with self._lock:
            return WriterStats(
                samples_added=self._added,
                series_added=len(self._fields),
                samples_sent=self._sent,
                samples_retried=self._retried,
                samples_failed=dict(self._failed),
                samples_dropped=dict(self._dropped),
                samples_spooled=self._spooled,
                samples_queued=self._queued + self._inflight,
                samples_from_spool=self._from_spool,
                bytes_sent=self._bytes,
                requests=self._requests,
                requests_failed=self._requests_failed,
                last_error=self._last_error,
                samples_sent_by_protocol=dict(self._sent_by),
                requests_by_protocol=dict(self._requests_by),
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"Writer({self.client.url!r}, shards={len(self._shards)}, queued={s.samples_queued},"
            f" sent={s.samples_sent}, failed={s.failed}, dropped={s.dropped}{', closed' if self._closed else ''})"
        )


def _fast_key(labels: Any) -> Any:
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


def _reason(error: BaseException) -> str:
    if isinstance(error, WriteError):
        return f"http_{error.status}"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectError):
        return "connect"
    return "error"


def _refused(outcome: str) -> bool:
    """A failure that resending the same bytes cannot fix (4xx other than 429, bad encoding)."""
    return outcome == "invalid" or (outcome.startswith("http_4") and outcome != "http_429")


# ---- close at interpreter exit ------------------------------------------------------------

_LIVE: "set[Writer]" = set()


@atexit.register
def _close_all() -> None:
    for writer in list(_LIVE):
        try:
            writer.close()
        except Exception:
            log.exception("promwrite: closing a Writer at exit failed")
