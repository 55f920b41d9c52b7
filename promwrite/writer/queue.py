"""The Writer's queue: what is waiting, per shard; backpressure; batch cutting; flush bookkeeping.

A series always goes to the same shard, and a shard's batches resolve in
order, so each series' samples arrive in order. Everything here runs under
the Writer's one lock (`lock`), which the delivery side shares for its counters.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

from ..errors import PromwriteError
from .segments import ColumnSegment, RowSegment, Segment, SeriesEntry, segment_size

__all__ = ["QueueFullError", "Shard", "ShardedQueue"]

_monotonic = time.monotonic


class QueueFullError(PromwriteError):
    """`Writer.add` waited `block_timeout` seconds for room in a full queue."""


class Shard:
    """One shard: its queue of segments and where its batches stand."""

    __slots__ = (
        "index", "queue", "rows", "pending", "first_at", "enqueued", "taken", "unresolved",
        "flush_upto", "waiting", "cv", "outbox", "outbox_cv", "cutting_done",
    )  # fmt: skip

    def __init__(self, index: int, lock: threading.Lock) -> None:
        self.index = index
        self.queue: Deque[Segment] = deque()
        self.rows: Optional[RowSegment] = None  # the open RowSegment at the tail, if any
        self.pending = 0  # samples in `queue`
        self.first_at = 0.0  # monotonic time the oldest queued sample came
        self.enqueued = 0  # samples ever queued here (positions for flush)
        self.taken = 0  # samples ever removed from the head (cut into batches or dropped)
        self.unresolved: Deque[int] = deque()  # start positions of batches cut, not yet resolved
        self.flush_upto = 0  # flush() asked for everything before this position
        self.waiting = False  # the cutter is waiting on cv
        self.cv = threading.Condition(lock)
        self.outbox: Deque[object] = deque()  # durable mode: batches cut (and spooled), waiting to be sent
        self.outbox_cv = threading.Condition(lock)
        self.cutting_done = False  # durable mode: the cutter has stopped (closing)

    def resolved_upto(self) -> int:
        return self.unresolved[0] if self.unresolved else self.taken

    def wake(self) -> None:
        if self.waiting:
            self.waiting = False
            self.cv.notify()


class ShardedQueue:
    """Bounded per-shard queues, the counters of what they hold, and the rules for cutting batches."""

    def __init__(self, lock: threading.Lock, shards: int, batch: int, max_queued: int, drop_oldest: bool,
                 block_timeout: Optional[float], interval: float, full_message: Callable[[], str]) -> None:  # fmt: skip
        self.batch = batch
        self.max_queued = max_queued
        self.drop = drop_oldest
        self.block_timeout = block_timeout
        self.interval = interval
        self.full_message = full_message  # what the writer says about a full queue (endpoint, last error)
        self.shards = [Shard(i, lock) for i in range(shards)]
        self.reset(lock)

    def reset(self, lock: threading.Lock) -> None:
        """Empty queues and counters on `lock` (also in a forked child: the parent's samples are the parent's)."""
        self.lock = lock
        self.room = threading.Condition(lock)  # producers waiting for room
        self.done = threading.Condition(lock)  # flush() waiting for batches to resolve
        for shard in self.shards:  # in place: the series table refers to these objects
            shard.__init__(shard.index, lock)  # type: ignore[misc]
        self.seq = 0  # segment sequence, for "oldest"
        self.blocked = 0  # producers waiting for room
        self.closed = False  # add() refused
        self.closing = False  # cutters: cut everything now, then stop
        self.queued = 0  # samples in the queues
        self.inflight = 0  # samples in batches cut and not yet resolved (or replayed from the spool)
        self.added = 0
        self.dropped: Dict[str, int] = {}

    # ---- putting (with `lock` held) -------------------------------------------------------

    def add_one(self, shard: Shard, idx: int, value: float, ts: int) -> None:
        """One sample of series `idx` (the `add` path)."""
        with self.lock:
            if self.queued >= self.max_queued or self.closed:
                self.make_room(1)
            rows = shard.rows
            if rows is None:
                rows = self._open_rows(shard)
            rows.idx.append(idx)
            rows.vals.append(value)
            rows.stamps.append(ts)
            self.queued += 1
            self.added += 1
            shard.enqueued += 1
            pending = shard.pending = shard.pending + 1
            if pending == 1:
                shard.first_at = _monotonic()
                if shard.waiting:
                    shard.cv.notify()
            elif pending >= self.batch:
                if len(rows.vals) >= self.batch:
                    shard.rows = None
                shard.wake()

    def add_rows(self, shard: Shard, idx: Sequence[int], vals: Sequence[float], stamps: Sequence[int]) -> None:
        """Samples of one series given as rows (the `add_series` path)."""
        n = len(vals)
        with self.lock:
            if self.queued + n > self.max_queued or self.closed:
                self.make_room(n)
            rows = shard.rows
            if rows is None:
                rows = self._open_rows(shard)
            rows.idx.extend(idx)
            rows.vals.extend(vals)
            rows.stamps.extend(stamps)
            if len(rows.vals) >= self.batch:
                shard.rows = None
            self._enqueued(shard, n)

    def add_segments(self, placed: Sequence[Tuple[Shard, Segment]], n: int) -> None:
        """Whole segments (add_many's slices, a series with exemplars or histograms), `n` samples in all."""
        with self.lock:
            if self.queued + n > self.max_queued or self.closed:
                self.make_room(n)
            for shard, segment in placed:
                self.seq += 1
                segment.seq = self.seq
                shard.queue.append(segment)
                shard.rows = None
                self._enqueued(shard, segment_size(segment))

    def _open_rows(self, shard: Shard) -> RowSegment:
        self.seq += 1
        rows = shard.rows = RowSegment(self.seq)
        shard.queue.append(rows)
        return rows

    def _enqueued(self, shard: Shard, n: int) -> None:
        self.queued += n
        self.added += n
        shard.enqueued += n
        was = shard.pending
        shard.pending = was + n
        if was == 0:
            shard.first_at = _monotonic()
        if was == 0 or shard.pending >= self.batch:
            shard.wake()

    def make_room(self, n: int) -> None:
        if self.closed:
            raise PromwriteError("this Writer is closed")
        if n > self.max_queued:
            raise ValueError(f"{n} samples at once exceed max_queued_samples={self.max_queued}")
        if self.queued + n <= self.max_queued:
            return
        if self.drop:
            self.drop_oldest(self.queued + n - self.max_queued, "queue_full")
            return
        deadline = None if self.block_timeout is None else _monotonic() + self.block_timeout
        self.blocked += 1
        try:
            for shard in self.shards:  # send what there is: someone is waiting for room
                shard.wake()
            while self.queued + n > self.max_queued:
                if self.closed:
                    raise PromwriteError("this Writer is closed")
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    raise QueueFullError(
                        f"the Writer's queue is full ({self.queued} of {self.max_queued} samples queued,"
                        f" {self.inflight} in flight{self.full_message()}) and stayed full for"
                        f" {self.block_timeout:g} s"
                    )
                self.room.wait(remaining)
        finally:
            self.blocked -= 1

    def drop_oldest(self, need: int, reason: str) -> None:
        dropped = 0
        while need > 0:
            oldest: Optional[Shard] = None
            for shard in self.shards:
                if shard.queue and (oldest is None or shard.queue[0].seq < oldest.queue[0].seq):
                    oldest = shard
            if oldest is None:
                break
            segment = oldest.queue[0]
            size = segment_size(segment)
            if type(segment) is RowSegment and size > need:
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
            self.queued -= k
            need -= k
            dropped += k
        if dropped:
            self.dropped[reason] = self.dropped.get(reason, 0) + dropped
            self.done.notify_all()

    # ---- cutting batches ------------------------------------------------------------------

    def next_batch(self, shard: Shard) -> Optional[Tuple[List[Segment], int]]:
        """Wait until the shard has a batch due (full, old, flushed, closing), cut it; None: stop."""
        with self.lock:
            while True:
                pending = shard.pending
                if pending:
                    if pending >= self.batch or shard.taken < shard.flush_upto or self.closing or self.blocked:
                        break
                    wait: Optional[float] = shard.first_at + self.interval - _monotonic()
                    if wait <= 0:  # type: ignore[operator]
                        break
                elif self.closing:
                    return None
                else:
                    wait = 5.0  # woken by the first sample
                shard.waiting = True
                shard.cv.wait(wait)
                shard.waiting = False
            return self._take(shard)

    def _take(self, shard: Shard) -> Tuple[List[Segment], int]:
        """Up to max_samples_per_send samples from the head of the shard's queue."""
        limit = self.batch
        queue = shard.queue
        out: List[Segment] = []
        n = 0
        while queue and n < limit:
            segment = queue[0]
            size = segment_size(segment)
            if n + size <= limit or (not out and type(segment) is SeriesEntry):
                queue.popleft()
                if shard.rows is segment:
                    shard.rows = None
                out.append(segment)
                n += size
                continue
            k = limit - n
            if type(segment) is RowSegment:
                head = RowSegment(segment.seq)
                head.idx, head.vals, head.stamps = segment.idx[:k], segment.vals[:k], segment.stamps[:k]
                del segment.idx[:k]
                del segment.vals[:k]
                del segment.stamps[:k]
                out.append(head)
                n += k
            elif type(segment) is ColumnSegment:
                st = segment.stamps
                out.append(ColumnSegment(segment.part, segment.vals[:k], st if type(st) is int else st[:k], segment.lo, segment.seq))
                segment.vals = segment.vals[k:]
                segment.stamps = st if type(st) is int else st[k:]
                segment.lo += k
                n += k
            break
        shard.pending -= n
        self.queued -= n
        self.inflight += n
        shard.unresolved.append(shard.taken)
        shard.taken += n
        if self.blocked:
            self.room.notify_all()
        return out, n

    def resolved(self, shard: Shard) -> None:
        """The shard's oldest batch is resolved (delivered, given up or left in the spool)."""
        with self.lock:
            shard.unresolved.popleft()
            self.done.notify_all()

    # ---- flush ------------------------------------------------------------------------

    def ask_flush(self) -> List[Tuple[Shard, int]]:
        """Every shard cuts what it has now; (shard, position) pairs to wait for."""
        with self.lock:
            targets = []
            for shard in self.shards:
                targets.append((shard, shard.enqueued))
                if shard.flush_upto < shard.enqueued:
                    shard.flush_upto = shard.enqueued
                    shard.wake()
            return targets

    def close(self) -> None:
        with self.lock:
            self.closed = self.closing = True
            for shard in self.shards:
                shard.wake()
                shard.outbox_cv.notify_all()
            self.room.notify_all()
