"""What a Writer reports: a batch it gave up (`FailedBatch`) and its counters (`WriterStats`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

__all__ = ["FailedBatch", "WriterStats"]


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


