"""Retry policy as data: which failures to retry, how long to wait, when to give up.

In the spirit of urllib3's ``Retry``: a frozen value you build once and pass
around (``client.write(request, retry=Retry())``, ``Writer(..., retry=...)``).

- Retried: `ConnectError` (refused, reset, DNS, TLS), `TimeoutError` (no
  answer in time: the server may have stored the request, so a retry can
  duplicate it; remote-write servers accept an identical sample twice), and
  `WriteError` with a status in `statuses` (by default 429 and every 5xx).
  Never retried: any other status (400 and the other 4xx: the same bytes would
  be refused again) and anything that is not a transport failure.
- Waits: exponential backoff with full jitter, ``uniform(backoff_min,
  min(backoff_max, backoff_min * 2 ** (attempt - 1)))``; a ``Retry-After``
  answer (seconds or an HTTP date) is honoured instead, capped by
  `backoff_max`.
- Gives up after `max_attempts` attempts in all (the first one included), or
  when the next attempt would start more than `max_elapsed` seconds after the
  first one; ``None`` lifts either cap.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timezone
from typing import Callable, FrozenSet, Optional, TypeVar

from .errors import ConnectError, TimeoutError, WriteError

__all__ = ["RETRY_STATUSES", "Retry", "retry_after_seconds"]

log = logging.getLogger("promwrite")

T = TypeVar("T")

#: The statuses retried by default: 429 Too Many Requests and every 5xx.
RETRY_STATUSES: FrozenSet[int] = frozenset({429, *range(500, 600)})


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class Retry:
    """When to retry a failed write, and how long to wait before the next attempt.

    `max_attempts`: attempts in all, the first included (1 = no retry; None =
    no limit). `max_elapsed`: seconds from the start of the first attempt after
    which no new attempt starts (None = no limit). `backoff_min`/`backoff_max`:
    the range of the jittered exponential backoff, in seconds. `statuses`: HTTP
    statuses worth retrying. `connect_errors`/`timeouts`: retry those failures.
    `respect_retry_after`: wait what the server's ``Retry-After`` asks (capped
    by `backoff_max`). `jitter`: False waits the top of the backoff range
    exactly (for tests and reasoning).
    """

    max_attempts: Optional[int] = 10
    max_elapsed: Optional[float] = 120.0
    backoff_min: float = 0.05
    backoff_max: float = 5.0
    statuses: FrozenSet[int] = field(default=RETRY_STATUSES)
    connect_errors: bool = True
    timeouts: bool = True
    respect_retry_after: bool = True
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1 or None, not {self.max_attempts!r}")
        if self.max_elapsed is not None and not self.max_elapsed >= 0:
            raise ValueError(f"max_elapsed must be >= 0 seconds or None, not {self.max_elapsed!r}")
        if not 0 <= self.backoff_min <= self.backoff_max:
            raise ValueError(
                f"need 0 <= backoff_min <= backoff_max, not {self.backoff_min!r} and {self.backoff_max!r}"
            )
        object.__setattr__(self, "statuses", frozenset(self.statuses))

    @classmethod
    def forever(cls, **changes: object) -> "Retry":
        """A policy that never gives up on a retryable failure (as Prometheus's own sender)."""
        return replace(cls(max_attempts=None, max_elapsed=None), **changes)  # type: ignore[arg-type]

    @classmethod
    def never(cls) -> "Retry":
        """One attempt, no retry."""
        return cls(max_attempts=1)

    def retryable(self, error: BaseException) -> bool:
        """True when `error` is a failure this policy retries (caps aside)."""
        if isinstance(error, WriteError):
            return error.status in self.statuses
        if isinstance(error, TimeoutError):
            return self.timeouts
        if isinstance(error, ConnectError):
            return self.connect_errors
        return False

    def backoff(self, attempt: int) -> float:
        """The jittered exponential wait after failed attempt number `attempt` (1-based)."""
        top = self.backoff_max
        if self.backoff_min > 0:
            exponent = min(max(attempt - 1, 0), 64)
            top = min(self.backoff_max, self.backoff_min * (2.0**exponent))
        if not self.jitter:
            return top
        return random.uniform(self.backoff_min, top)

    def delay(self, attempt: int, error: BaseException, elapsed: float = 0.0) -> Optional[float]:
        """Seconds to wait before the next attempt, or None to give up.

        `attempt` is the number of attempts made so far (1 after the first
        failure), `error` what the last one raised, `elapsed` the seconds since
        the first attempt started.
        """
        if not self.retryable(error):
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        wait: Optional[float] = None
        if self.respect_retry_after and isinstance(error, WriteError):
            wait = retry_after_seconds(_header(error, "Retry-After"))
            if wait is not None:
                wait = min(wait, self.backoff_max)
        if wait is None:
            wait = self.backoff(attempt)
        if self.max_elapsed is not None and elapsed + wait > self.max_elapsed:
            return None
        return wait

    def call(
        self,
        fn: Callable[[], T],
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """``fn()`` until it returns, retrying what this policy retries; raises the last error."""
        start = clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                wait = self.delay(attempt, exc, clock() - start)
                if wait is None:
                    raise
                log.info("promwrite: attempt %d failed (%s); retrying in %.3f s", attempt, exc, wait)
                sleep(wait)


def _header(error: WriteError, name: str) -> Optional[str]:
    headers = error.headers
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is None and isinstance(headers, dict):  # a plain dict: look case-insensitively
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value
