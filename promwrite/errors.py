"""Every exception promwrite raises on purpose; all derive from PromwriteError."""

from __future__ import annotations

from typing import Mapping, Optional

__all__ = [
    "ConnectError",
    "SeriesError",
    "DecodeError",
    "PromwriteError",
    "SnappyError",
    "TimeoutError",
    "UnsupportedProtocolError",
    "WriteError",
]


class PromwriteError(Exception):
    """Base of promwrite's own errors."""


class SnappyError(PromwriteError, ValueError):
    """Snappy input is corrupt, truncated, or declares more than the allowed length."""


class SeriesError(PromwriteError, ValueError):
    """A series is invalid (its labels, or its samples' order); nothing was sent.

    `index` is the series' position in the request (or in the kernel call that
    found it); `problem` says what is wrong; `labels`, when known, name it.
    """

    def __init__(self, index: int, problem: str, labels: str = "") -> None:
        where = f"series {index} {labels}" if labels else f"series {index}"
        super().__init__(f"{where}: {problem}")
        self.index = index
        self.problem = problem
        self.labels = labels


class DecodeError(PromwriteError, ValueError):
    """Bytes given to `decode` are not a valid serialized WriteRequest."""


class DecodeLimitError(DecodeError):
    """A request is valid so far but larger than the decoder's limits allow.

    Receivers answer it with 413 rather than 400: the sender did nothing wrong
    in form, it sent more in one request than this receiver takes.
    """


class WriteError(PromwriteError):
    """The endpoint answered with a non-2xx status; `.body` says what it rejected."""

    def __init__(
        self, url: str, status: int, body: str, headers: Optional[Mapping[str, str]] = None
    ) -> None:
        self.url = url
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        super().__init__(f"{url}: HTTP {status}: {body.strip()[:500] or '(empty body)'}")

    @property
    def retryable(self) -> bool:
        """True when sending the same request again may succeed (5xx and 429)."""
        return self.status >= 500 or self.status == 429


class UnsupportedProtocolError(WriteError):
    """The receiver does not take remote write 2.0, and the client may not fall back to 1.0.

    It answered 415 Unsupported Media Type, or a 2xx without any of the
    ``X-Prometheus-Remote-Write-*-Written`` headers a 2.0 receiver must send
    (a 1.0 receiver reads a 2.0 body as an empty 1.0 request: it stores
    nothing and says 204). `reason` says which; `protocol` is what was sent.
    """

    def __init__(
        self, url: str, status: int, body: str, headers: Optional[Mapping[str, str]] = None,
        protocol: str = "2.0", reason: str = "",
    ) -> None:  # fmt: skip
        super().__init__(url, status, body, headers)
        self.protocol = protocol
        self.reason = reason
        self.args = (
            f"{url}: the receiver does not take remote write {protocol}: {reason}; nothing was"
            " stored. Send with protocol='1.0', or let the client fall back (fallback=True)",
        )


class ConnectError(PromwriteError, ConnectionError):
    """The endpoint could not be reached (refused, reset, DNS, TLS)."""


class TimeoutError(PromwriteError, TimeoutError):  # noqa: A001 - shadows builtin on purpose
    """The endpoint did not answer within the client's timeout."""
