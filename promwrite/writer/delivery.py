"""The Writer's delivery: sending a batch with retries, the write-ahead spool, and the accounting.

Without a spool, a shard's thread cuts a batch, sends it and only then cuts
the next. With `spool_dir`, each shard has two threads: a cutter that writes
every batch to the spool as soon as it is due (full or `flush_interval`
old), whether or not the endpoint answers, and a sender that sends the
shard's spooled batches in order and removes each file once the server
accepted it or refused it for good. So a `kill -9` loses nothing that was
cut into a batch; the batches on the wire at that moment (one per shard)
may arrive twice.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import codec
from ..client import Client
from ..errors import ConnectError, TimeoutError, WriteError
from ..retry import Retry
from ..spool import CORRUPT, REJECTED, Spool, SpoolCorrupt, SpoolError
from .queue import ShardedQueue
from .reports import FailedBatch

__all__ = ["CutBatch", "DEFAULT_SPOOL_MAX_BYTES", "Delivery", "default_spool_cap"]

log = logging.getLogger("promwrite")

_monotonic = time.monotonic
_KEPT_IN_MEMORY = 4  # batches per shard waiting to be sent whose payload stays in memory (the rest: on disk)

#: The most a Writer's spool holds unless `spool_max_bytes` says: 90 to 180 million samples (a batch
#: takes 6-12 compressed bytes a sample, measured with 10 or 1 samples per series), hours of a busy
#: process's output behind a dead endpoint, while a full disk would stop everything else on it.
DEFAULT_SPOOL_MAX_BYTES = 1 << 30


def default_spool_cap(spool: Spool) -> int:
    """DEFAULT_SPOOL_MAX_BYTES, or half the room `spool` has on its disk (free space plus what it holds)
    when that is less: a spool behind a dead endpoint must not fill the disk others write to."""
    try:
        room = shutil.disk_usage(spool.root).free + spool.bytes
    except OSError:
        return DEFAULT_SPOOL_MAX_BYTES
    return min(DEFAULT_SPOOL_MAX_BYTES, room // 2)


class CutBatch:
    """A batch cut from a shard's queue: its payload as sent, and its spool file (durable mode)."""

    __slots__ = ("payload", "protocol", "path", "samples", "entries")

    def __init__(self, payload: Optional[bytes], protocol: str, path: Optional[pathlib.Path], samples: int,
                 entries: int) -> None:  # fmt: skip
        self.payload = payload  # None once dropped from memory: read back from `path`
        self.protocol = protocol
        self.path = path
        self.samples = samples
        self.entries = entries


class Delivery:
    """Sends batches with retries, keeps them in the spool, and counts what became of every sample."""

    def __init__(self, client: Client, retry: Retry, queue: ShardedQueue, spool: Optional[Spool],
                 on_failure: Optional[Callable[[FailedBatch], Any]]) -> None:  # fmt: skip
        self.client = client
        self.retry = retry
        self.queue = queue
        self.lock = queue.lock
        self.spool = spool
        self.on_failure = on_failure
        self.abort = threading.Event()  # close() ran out of time: stop retrying
        self.replayed = threading.Event()  # spooled batches of an earlier process went first
        self.sent = 0
        self.retried = 0
        self.spooled = 0
        self.from_spool = 0
        self.bytes = 0
        self.requests = 0
        self.requests_failed = 0
        self.sent_by: Dict[str, int] = {}  # samples sent, by the protocol the server accepted
        self.requests_by: Dict[str, int] = {}
        self.failed: Dict[str, int] = {}
        self.last_error: Optional[str] = None

    # ---- a batch ----------------------------------------------------------------------

    def cut(self, encode: Callable[[str], Tuple[bytes, int]], n: int) -> CutBatch:
        """Encode a batch in the client's protocol and, with a spool, write it there first (1.0)."""
        protocol = self.client.protocol  # 2.0 until the client falls back to 1.0
        try:
            payload, entries = encode(protocol)
            stored = None if self.spool is None else payload if protocol == "1.0" else encode("1.0")[0]
        except Exception as exc:
            log.error("promwrite: a batch of %d samples could not be encoded, dropped: %s", n, exc)
            self.settle(n, "invalid", exc, None, 0, 0, protocol)
            return CutBatch(None, protocol, None, n, 0)  # settled already
        path = None
        if stored is not None:
            try:  # the spool holds 1.0 requests only: any receiver takes them at replay
                path = self.spool.write(stored, n)  # type: ignore[union-attr]
            except SpoolError as exc:
                log.error("promwrite: could not spool a batch of %d samples (sending it anyway): %s", n, exc)
        return CutBatch(payload, protocol, path, n, entries)

    def send(self, batch: CutBatch) -> None:
        """Send a cut batch (retrying by the policy) and settle it; its spool file goes once resolved."""
        payload, protocol, n = batch.payload, batch.protocol, batch.samples
        if payload is None and batch.path is None:
            return  # it could not be encoded: settled when it was cut
        if payload is None:
            try:
                payload, _ = self.spool.read(batch.path)  # type: ignore[union-attr, arg-type]
                protocol = "1.0"
            except SpoolCorrupt as exc:
                self.spool.set_aside(batch.path, CORRUPT, str(exc))  # type: ignore[union-attr, arg-type]
                self.settle(n, "spool_error", exc, None, batch.entries, 0, protocol)
                return
        outcome, error, attempts, accepted = self.transmit(payload, n, protocol)
        if outcome == "sent" or refused(outcome):
            if batch.path is not None:
                self.spool.remove(batch.path)  # type: ignore[union-attr]
            self.settle(n, outcome, error, payload, batch.entries, attempts, accepted)
            return
        if batch.path is None and self.spool is not None:
            try:
                batch.path = self.spool.write(payload if protocol == "1.0" else self._as_v1(payload), n)
            except (SpoolError, ValueError) as exc:
                log.error("promwrite: could not spool %d undelivered samples: %s", n, exc)
                outcome, error = "spool_error", exc
        if batch.path is not None:
            outcome = "spooled"
        self.settle(n, outcome, error, payload, batch.entries, attempts, protocol)

    @staticmethod
    def _as_v1(payload: bytes) -> bytes:
        return codec.encode_payload(codec.decode_payload(payload, protocol="2.0"))

    def transmit(self, payload: bytes, n: int, protocol: str = "1.0") -> Tuple[str, Optional[BaseException], int, str]:
        """Send with retries: ("sent", None, attempts, accepted protocol) or (failure reason,
        last error, attempts, `protocol`). A 2.0 payload may be accepted as 1.0 (client fallback)."""
        start = _monotonic()
        attempt = 0
        error: Optional[BaseException] = None
        while True:
            if self.abort.is_set():
                reason = "closed" if error is None or self.retry.retryable(error) else failure_reason(error)
                return reason, error, attempt, protocol
            attempt += 1
            try:
                response = self.client.send(payload, protocol=protocol)
            except Exception as exc:
                error = exc
                with self.lock:
                    self.requests_failed += 1
                    self.last_error = str(exc)
                wait = self.retry.delay(attempt, exc, _monotonic() - start)
                if wait is None:
                    return failure_reason(exc), exc, attempt, protocol
                with self.lock:
                    self.retried += n
                (log.warning if attempt == 1 else log.info)(
                    "promwrite: sending %d samples failed (attempt %d): %s; retrying in %.2f s", n, attempt, exc, wait
                )
                self.abort.wait(wait)
            else:
                if attempt > 1:
                    log.info("promwrite: %d samples delivered after %d attempts", n, attempt)
                return "sent", None, attempt, getattr(response, "protocol", None) or protocol

    def settle(
        self, n: int, outcome: str, error: Optional[BaseException], payload: Optional[bytes], entries: int,
        attempts: int, protocol: str = "1.0",
    ) -> None:  # fmt: skip
        """Account for a finished batch (its samples leave 'in flight').

        `protocol`: the version the server accepted (sent), else the payload's.
        """
        with self.lock:
            self.queue.inflight -= n
            if outcome == "sent":
                self.sent += n
                self.sent_by[protocol] = self.sent_by.get(protocol, 0) + n
                self.requests += 1
                self.requests_by[protocol] = self.requests_by.get(protocol, 0) + 1
                self.bytes += len(payload or b"")
            elif outcome == "spooled":
                self.spooled += n
            else:
                self.failed[outcome] = self.failed.get(outcome, 0) + n
                if error is not None:
                    self.last_error = str(error)
            self.queue.done.notify_all()
        if outcome == "sent":
            return
        if outcome == "spooled":
            log.warning("promwrite: %d undelivered samples left in the spool %s (%s)", n, self.spool.dir, error)  # type: ignore[union-attr]
            return
        log.error(
            "promwrite: gave up %d samples after %d attempts (%s): %s",
            n, attempts, outcome, error or "writer closed before delivery",
        )  # fmt: skip
        if self.on_failure is not None:
            try:
                self.on_failure(FailedBatch(outcome, n, entries, attempts, error, payload, protocol))
            except Exception:
                log.exception("promwrite: on_failure callback raised")

    # ---- durable mode: a shard's sender ------------------------------------------------

    def sender(self, shard: Any) -> None:
        """Send the shard's cut batches in order until its cutter stopped and none is left."""
        self.replayed.wait()
        while True:
            with self.lock:
                while not shard.outbox and not shard.cutting_done:
                    shard.outbox_cv.wait()
                if not shard.outbox:
                    return
                batch = shard.outbox[0]
            try:
                self.send(batch)
            except BaseException as exc:  # never leave a batch unaccounted for
                log.exception("promwrite: writer shard %d failed unexpectedly", shard.index)
                self.settle(batch.samples, "invalid", exc, None, 0, 0)
            finally:
                with self.lock:
                    shard.outbox.popleft()
                    shard.outbox_cv.notify_all()
                self.queue.resolved(shard)

    def hand_over(self, shard: Any, batch: CutBatch) -> None:
        """A cutter passes a batch to its shard's sender (payload kept in memory for the first few)."""
        with self.lock:
            if len(shard.outbox) >= _KEPT_IN_MEMORY and batch.path is not None:
                batch.payload = None
            shard.outbox.append(batch)
            shard.outbox_cv.notify_all()
            while shard.outbox and shard.outbox[-1].path is None and not self.abort.is_set():
                shard.outbox_cv.wait(0.5)  # not on disk: keep memory bounded until it is sent

    # ---- replay --------------------------------------------------------------------------

    def replay(self, paths: List[pathlib.Path]) -> None:
        """Send batches spooled by an earlier process, oldest first, before anything new."""
        spool = self.spool
        assert spool is not None
        try:
            for path in paths:
                if self.abort.is_set():
                    break
                try:
                    payload, n = spool.read(path)
                except SpoolCorrupt as exc:
                    spool.set_aside(path, CORRUPT, str(exc))
                    continue
                with self.lock:
                    self.queue.added += n
                    self.from_spool += n
                    self.queue.inflight += n
                outcome, error, attempts, accepted = self.transmit(payload, n)  # spooled batches are 1.0
                if outcome == "sent":
                    spool.remove(path)
                    self.settle(n, "sent", None, payload, 0, attempts, accepted)
                    log.info("promwrite: resent %d spooled samples from %s", n, path.name)
                elif refused(outcome):
                    spool.set_aside(path, REJECTED, f"refused by the server: {error}")
                    self.settle(n, outcome, error, payload, 0, attempts)
                else:  # still undeliverable: it stays spooled, and so do the files after it
                    self.settle(n, "spooled", error, payload, 0, attempts)
                    break
        except Exception:
            log.exception("promwrite: resending the spool failed")
        finally:
            self.replayed.set()
            with self.lock:
                self.queue.done.notify_all()


def failure_reason(error: BaseException) -> str:
    if isinstance(error, WriteError):
        return f"http_{error.status}"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectError):
        return "connect"
    return "error"


def refused(outcome: str) -> bool:
    """A failure that resending the same bytes cannot fix (4xx other than 429, bad encoding)."""
    return outcome == "invalid" or (outcome.startswith("http_4") and outcome != "http_429")
