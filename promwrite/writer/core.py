"""`Writer`: the public face of the batching background writer (see the package docstring)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time as _time
from array import array
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from .. import _backend
from .._checks import positive_int, positive_seconds
from ..client import Client
from ..encoding import extras_v1, sample_arrays
from ..errors import SeriesError
from ..model import LabelSet, Labels, Time, TimeSeries, format_labels, to_float, to_ms
from ..retry import Retry
from ..spool import Spool, SpoolError
from . import lifecycle
from .delivery import Delivery, default_spool_cap
from .queue import Shard, ShardedQueue
from .reports import FailedBatch, WriterStats
from ..batch import sample_columns
from .segments import ColumnSegment, Segment, SeriesEntry, build_batch
from .series_table import SeriesTable, fast_key

__all__ = ["Writer"]

log = logging.getLogger("promwrite")

_time_ns = _time.time_ns
_monotonic = _time.monotonic
_I64 = 1 << 63


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
    - `spool_dir`: a write-ahead queue on disk (see `promwrite.spool`): every
      batch is written there before it is sent, so after a crash or
      ``kill -9`` the next Writer on the directory sends what was cut into a
      batch (at least once: the batches on the wire at the kill, one per
      shard at most, may arrive twice); `spool_max_bytes` bounds it (default
      1 GiB, or half the disk's room for it when less; at the bound batches
      wait in memory, and what close() cannot deliver is failed "spool_error");
    - `on_failure`: called with a `FailedBatch` for every batch given up
      (from a sender thread; exceptions in it are logged and ignored);
    - `close_timeout`: how long `close()` waits for delivery by default (30 s);
    - `close_at_exit`: close (and so flush) at interpreter exit (True).

    A Writer survives `os.fork()`: the child gets fresh threads, an empty
    queue (what the parent queued is the parent's to send) and, with a
    spool, a spool segment of its own.
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
        **client_options: Any,
    ) -> None:
        kernels: Optional[_backend.Kernels] = client_options.pop("_kernels", None)  # tests: a chosen backend
        if isinstance(target, Client):
            if client_options:
                raise TypeError(f"client options {sorted(client_options)} given with a Client; give a URL instead")
            self.client, self._owns_client = target, False
        elif isinstance(target, str):
            self.client, self._owns_client = Client(target, **client_options), True
        else:
            raise TypeError(f"target must be a Client or a URL, not {type(target).__name__}")
        positive_int("max_samples_per_send", max_samples_per_send)
        positive_seconds("flush_interval", flush_interval)
        positive_int("shards", shards)
        positive_int("max_queued_samples", max_queued_samples)
        if when_full not in ("block", "drop_oldest"):
            raise ValueError(f"when_full must be 'block' or 'drop_oldest', not {when_full!r}")
        if block_timeout is not None and not block_timeout >= 0:
            raise ValueError(f"block_timeout must be >= 0 seconds or None, not {block_timeout!r}")
        self.retry = retry if retry is not None else Retry.forever()
        self._on_failure = on_failure
        self._close_timeout = float(close_timeout)
        self._close_at_exit = close_at_exit
        self._closed = False
        self._queue = ShardedQueue(
            threading.Lock(), shards, max_samples_per_send, max_queued_samples, when_full == "drop_oldest",
            block_timeout, float(flush_interval), self._full_message,
        )  # fmt: skip
        self._table = SeriesTable(self._queue.shards, kernels if kernels is not None else _backend.kernels)
        if spool_max_bytes is not None:
            positive_int("spool_max_bytes", spool_max_bytes)
        self._spool = Spool(spool_dir, spool_max_bytes) if spool_dir is not None else None
        if self._spool is not None and spool_max_bytes is None:
            self._spool.max_bytes = default_spool_cap(self._spool)
        self._delivery = Delivery(self.client, self.retry, self._queue, self._spool, on_failure)
        self._threads: List[threading.Thread] = []
        try:
            self._start(self._spool.pending() if self._spool is not None else [])
        except BaseException:
            self._delivery.abort.set()
            if self._spool is not None:
                self._spool.close()
            raise
        lifecycle.track(self, close_at_exit)

    def _start(self, replay: List[Any]) -> None:
        """Start the threads: per shard a cutter-and-sender, or (with a spool) a cutter and a sender."""
        delivery = self._delivery
        threads = []
        if replay:
            threads.append(threading.Thread(target=delivery.replay, args=(replay,), name="promwrite-spool", daemon=True))
        else:
            delivery.replayed.set()
        for shard in self._queue.shards:
            if self._spool is None:
                threads.append(threading.Thread(target=self._send_loop, args=(shard,), daemon=True,
                                                name=f"promwrite-shard-{shard.index}"))  # fmt: skip
            else:
                threads.append(threading.Thread(target=self._cut_loop, args=(shard,), daemon=True,
                                                name=f"promwrite-cut-{shard.index}"))  # fmt: skip
                threads.append(threading.Thread(target=delivery.sender, args=(shard,), daemon=True,
                                                name=f"promwrite-send-{shard.index}"))  # fmt: skip
        self._threads = threads
        for t in threads:
            t.start()

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
            key = fast_key(labels)
        try:
            shard, idx = self._table.fast[key]
        except (KeyError, TypeError):
            entry = self._table.intern(labels)
            self._queue.add_one(entry[0], entry[1], value, ts)
            self._table.admit(key, entry)  # counted once a sample of it is queued
            return
        self._queue.add_one(shard, idx, value, ts)

    def add_series(self, series: TimeSeries) -> None:
        """Queue a TimeSeries: its samples (in time order), exemplars and histograms."""
        if not isinstance(series, TimeSeries):
            raise TypeError(f"add_series takes a TimeSeries, not {type(series).__name__}")
        _, vals, stamps = sample_arrays([series], [series.samples])  # SeriesError naming the series and sample
        if any(a >= b for a, b in zip(stamps, stamps[1:])):
            raise SeriesError(0, "sample timestamps are not strictly increasing", format_labels(series.labels))
        if not len(vals) and not series.histograms:
            raise ValueError(f"series {format_labels(series.labels)} has no samples or histograms to write")
        shard, idx = self._table.intern(series._labels)
        if series.exemplars or series.histograms:
            n = len(vals) + len(series.histograms)
            self._queue.add_segments([(shard, SeriesEntry(idx, vals, stamps, extras_v1(series), n, 0, series))], n)
        else:
            self._queue.add_rows(shard, array("I", [idx]) * len(vals), vals, stamps)
        self._table.admit(None, (shard, idx))

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
        layout = self._table.layout(series)
        n = layout.n
        vals, stamps = sample_columns("add_many", n, values, time, timestamp_ms, timestamps_ms)
        own = vals is not values  # a copy made here may go to the queue as it is
        if n == 0:
            return
        if n > self._queue.max_queued:
            raise ValueError(f"add_many: {n} samples at once exceed max_queued_samples={self._queue.max_queued}")
        placed: List[Tuple[Shard, Segment]] = []
        for part in layout.parts:
            if part.n == n:
                v = vals if own else vals[:]
                s = stamps if type(stamps) is int else stamps[:]
            else:
                v = part.take(vals)
                s = stamps if type(stamps) is int else part.take(stamps)
            placed.append((part.shard, ColumnSegment(part, v, s, 0, 0)))
        self._queue.add_segments(placed, n)
        if not layout.counted:
            self._table.count_layout(layout)

    # ---- the shards' threads ------------------------------------------------------------

    def _encode(self, segments: List[Segment], protocol: str = "1.0") -> Tuple[bytes, int]:
        """One request for a batch: (compressed payload, series entries), one kernel call."""
        batch = build_batch(segments, self._table)
        try:
            return batch.encode(self._table.kernels, protocol), len(batch)
        except SeriesError:  # samples of a series not in time order once merged: encode them as added
            batch = build_batch(segments, self._table, group=False)
            return batch.encode(self._table.kernels, protocol), len(batch)

    def _send_loop(self, shard: Shard) -> None:
        """Without a spool: cut a batch, send it, then the next."""
        queue, delivery = self._queue, self._delivery
        while True:
            taken = queue.next_batch(shard)
            if taken is None:
                return
            segments, n = taken
            try:
                delivery.send(delivery.cut(lambda protocol: self._encode(segments, protocol), n))
            except BaseException as exc:  # never leave a batch unaccounted for
                log.exception("promwrite: writer shard %d failed unexpectedly", shard.index)
                delivery.settle(n, "invalid", exc, None, 0, 0)
            finally:
                queue.resolved(shard)

    def _cut_loop(self, shard: Shard) -> None:
        """With a spool: cut each batch when due and write it to the spool, whatever the endpoint does."""
        queue, delivery = self._queue, self._delivery
        try:
            while True:
                taken = queue.next_batch(shard)
                if taken is None:
                    return
                segments, n = taken
                delivery.hand_over(shard, delivery.cut(lambda protocol: self._encode(segments, protocol), n))
        finally:
            with queue.lock:
                shard.cutting_done = True
                shard.outbox_cv.notify_all()

    # ---- flush, close, stats ------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything added so far now, and wait until it is delivered or given up.

        True when it all resolved, False when `timeout` seconds passed first.
        """
        deadline = None if timeout is None else _monotonic() + timeout
        queue = self._queue
        targets = queue.ask_flush()
        with queue.lock:
            while not (
                self._delivery.replayed.is_set() and all(shard.resolved_upto() >= target for shard, target in targets)
            ):
                if not any(t.is_alive() for t in self._threads):
                    return False
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                queue.done.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, then stop. Waits up to `timeout` seconds (default: `close_timeout`).

        What is still undelivered then (the endpoint is down, retries go on)
        stays in the spool with `spool_dir`, else is counted failed (reason
        ``"closed"``). A request on the wire at that moment may add up to
        the client's timeout. `add` raises after close.
        """
        timeout = self._close_timeout if timeout is None else timeout
        with self._queue.lock:
            if self._closed:
                return
            self._closed = True
        self._queue.close()
        lifecycle.closed(self)
        deadline = _monotonic() + max(0.0, timeout)
        for t in self._threads:
            t.join(max(0.0, deadline - _monotonic()))
        if any(t.is_alive() for t in self._threads):
            with self._queue.lock:
                left = self._queue.queued + self._queue.inflight
            log.warning(
                "promwrite: close(): %d samples not delivered to %s within %g s; %s",
                left, self.client.url, timeout, "leaving them in the spool" if self._spool is not None else "giving them up",
            )  # fmt: skip
        self._delivery.abort.set()
        for t in self._threads:
            t.join(self.client.timeout + 5.0)
        if self._spool is not None:
            self._spool.close()
        if self._owns_client:
            self.client.close()

    def stats(self) -> WriterStats:
        """The counters, as one consistent snapshot."""
        queue, delivery = self._queue, self._delivery
        with queue.lock:
            return WriterStats(
                samples_added=queue.added,
                series_added=self._table.series_added,
                samples_sent=delivery.sent,
                samples_retried=delivery.retried,
                samples_failed=dict(delivery.failed),
                samples_dropped=dict(queue.dropped),
                samples_spooled=delivery.spooled,
                samples_queued=queue.queued + queue.inflight,
                samples_from_spool=delivery.from_spool,
                bytes_sent=delivery.bytes,
                requests=delivery.requests,
                requests_failed=delivery.requests_failed,
                last_error=delivery.last_error,
                samples_sent_by_protocol=dict(delivery.sent_by),
                requests_by_protocol=dict(delivery.requests_by),
            )

    def _full_message(self) -> str:
        return f" to {self.client.url}; last error: {self._delivery.last_error or 'none'}"

    @property
    def spool_max_bytes(self) -> Optional[int]:
        """The bound of the spool in effect (given, or the default), None without a spool."""
        return self._spool.max_bytes if self._spool is not None else None

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
            f"Writer({self.client.url!r}, shards={len(self._queue.shards)}, queued={s.samples_queued},"
            f" sent={s.samples_sent}, failed={s.failed}, dropped={s.dropped}{', closed' if self._closed else ''})"
        )

    # ---- fork ----------------------------------------------------------------------------

    def _locks(self) -> List[Any]:
        spool_mutex = [self._spool._mutex] if self._spool is not None else []
        return [self._table.lock, self._queue.lock] + spool_mutex

    def _restart_in_child(self) -> None:
        """After fork, in the child: fresh locks, an empty queue, zero counters, own spool segment, new threads."""
        lock = threading.Lock()
        self._table.lock = threading.RLock()
        self._queue.reset(lock)
        if self._closed:
            self._queue.closed = self._queue.closing = True
            return
        spool = None
        if self._spool is not None:
            self._spool.forget()
            try:
                spool = Spool(self._spool.root, self._spool.max_bytes, fsync=self._spool.fsync, segment=True)
            except SpoolError as exc:
                log.error("promwrite: forked child %d has no spool (%s); sending from memory", os.getpid(), exc)
        self._spool = spool
        self._delivery = Delivery(self.client, self.retry, self._queue, spool, self._on_failure)
        self._start([])
        if self._close_at_exit and "multiprocessing" in sys.modules:
            # A multiprocessing child ends with os._exit: close at its exit through its finalizers.
            import multiprocessing.util as mp_util

            mp_util.register_after_fork(self, Writer._close_at_process_exit)

    def _close_at_process_exit(self) -> None:
        import multiprocessing.util as mp_util

        mp_util.Finalize(self, self.close, exitpriority=10)
