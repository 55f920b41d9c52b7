"""An embedded remote-write receiver on loopback, for the demo, tests and debugging.

It decompresses and decodes every POST with promwrite's own codec, keeps what
arrived, and answers as Prometheus does: 204 when stored, 400 with a reason
when the body is not a valid write, 401 when basic auth is required and wrong,
413 when the body is over its limits, 415 for a content type or encoding it
does not take. It takes remote write 1.0 and 2.0 (by the ``proto=`` parameter
of Content-Type), and answers a 2.0 write with the
``X-Prometheus-Remote-Write-*-Written`` counts the 2.0 spec requires.

Slow or hostile peers cost it little (_serving.py holds the means): headers
and body each have a deadline for the whole read (a peer trickling a byte a
second is cut off), at most `max_connections` are served at once (more are
answered 503), a body is read in chunks as it arrives, never allocated from
its declared length, and all connections together hold at most
`memory_budget` bytes of bodies (more are answered 503 with Retry-After).
"""

from __future__ import annotations

import base64
import hmac
import io
import re
import socket
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import codec, snappy
from ._pysnappy import max_compressed_length, uncompressed_length
from ._checks import positive_int, positive_seconds
from ._serving import CHUNK, CappedServer, DeadlineReads, MemoryBudget, linger
from .decoder import DecodeLimits
from .errors import DecodeError, DecodeLimitError, SnappyError
from .model import WriteRequest

__all__ = ["DEFAULT_MEMORY_BUDGET", "Receiver"]

#: Bytes of bodies, compressed and decompressed, that a Receiver holds at once across its connections, unless
#: told otherwise (or more, when its `max_length` needs more for one request alone).
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024
_MAX_SNAPPY_LENGTH = (1 << 32) - 1  # the most a snappy block can declare (a 32-bit length)
_HEADERS_ALLOWANCE = 1 << 16  # bytes of request line and headers drained, with the body, from a refused peer

Answer = Tuple[int, str, Dict[str, str]]  # (status, reason, extra headers)


class Receiver:
    """A remote-write endpoint in this process: ``with Receiver() as r: ... r.url``.

    `received` lists every decoded WriteRequest in arrival order (with its raw
    payload size in `payload_bytes` and its protocol, "1.0" or "2.0", in
    `received_protocols`); `on_write`, if given, is called with each.
    `protocols` are the versions it takes: ``("1.0",)`` makes it answer a 2.0
    write with 415, as a strict 1.0-only receiver would. `max_length` bounds a
    body's decompressed size (and so its compressed size). A request's line
    and headers must arrive within `header_timeout` seconds of its start (an
    idle kept-alive connection is closed after it), its body within
    `body_timeout` seconds of its headers; at most `max_connections` are open.
    All connections together hold at most `memory_budget` bytes of bodies, as
    received and decompressed (default DEFAULT_MEMORY_BUDGET, or one request
    of `max_length` when that is more); a request that would go over it is
    answered 503 with ``Retry-After: 1``, which senders retry.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        basic_auth: Optional[Tuple[str, str]] = None,
        on_write: Optional[Callable[[WriteRequest], None]] = None,
        max_length: int = snappy.DEFAULT_MAX_LENGTH,
        protocols: Sequence[str] = ("1.0", "2.0"),
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        max_connections: int = 100,
        memory_budget: Optional[int] = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in [0, 65535] (0 picks a free one), not {port!r}")
        max_length = positive_int("max_length", max_length, _MAX_SNAPPY_LENGTH)
        header_timeout = positive_seconds("header_timeout", header_timeout)
        body_timeout = positive_seconds("body_timeout", body_timeout)
        max_connections = positive_int("max_connections", max_connections)
        largest_body = max_compressed_length(max_length)
        one_request = largest_body + max_length  # its body and what it decompresses to
        if memory_budget is None:
            memory_budget = max(DEFAULT_MEMORY_BUDGET, one_request)
        elif positive_int("memory_budget", memory_budget) < one_request:
            raise ValueError(
                f"memory_budget must hold at least one request of max_length {max_length:,} bytes (its body and"
                f" what it decompresses to): {one_request:,} bytes, not {memory_budget!r}"
            )  # fmt: skip
        self.received: List[WriteRequest] = []
        self.payload_bytes: List[int] = []
        self.received_protocols: List[str] = []
        self.protocols = tuple(codec._check_protocol(p) for p in protocols)
        self._lock = threading.Lock()
        self._on_write = on_write
        self._max_length = max_length
        self._limits = DecodeLimits(max_bytes=max_length)
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            if basic_auth
            else None
        )
        self._budget = MemoryBudget(memory_budget)
        self._server = CappedServer((host, port), self._handler_class(), max_connections, _busy(max_connections),
                                    _HEADERS_ALLOWANCE + largest_body)  # fmt: skip
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1/write"

    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._server.serve_forever, name="promwrite-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops accepting and ends the open connections (their threads then finish at once)."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _protocol(self, headers: Message, length: int) -> str:
        """The remote-write version a POST's headers name; _Refusal (401, 415) for what no body can mend."""
        if self._expected_auth is not None and not hmac.compare_digest(
            (headers.get("Authorization") or "").encode(), self._expected_auth.encode()
        ):
            raise _Refusal(401, "Unauthorized", length)
        encoding = headers.get("Content-Encoding")
        if encoding is not None and encoding.strip().lower() != "snappy":
            raise _Refusal(415, f"unsupported Content-Encoding {encoding!r}: only snappy", length)
        content_type = headers.get("Content-Type")
        protocol = protocol_of(content_type)
        if protocol not in self.protocols:
            raise _Refusal(415, f"unsupported Content-Type {content_type!r}", length)
        return protocol  # type: ignore[return-value]

    def _accept(self, body: Union[bytes, bytearray], protocol: str) -> Answer:
        """(status, reason, extra headers) for one POST body, storing the request when valid."""
        written = {}
        if protocol == "2.0":  # the counts go with every answer to a 2.0 write, 0 when rejected
            written = dict.fromkeys(_WRITTEN, "0")
        try:
            request = self._decode(body, protocol)
        except _Refusal as refusal:
            status, reason, _ = refusal.answer
            return status, reason, {**written, **_RETRY}
        except DecodeLimitError as exc:
            return 413, f"remote write over this receiver's limits: {exc}", written
        except (SnappyError, DecodeError) as exc:
            return 400, f"bad remote write: {exc}", written
        with self._lock:
            self.received.append(request)
            self.payload_bytes.append(len(body))
            self.received_protocols.append(protocol)
        if self._on_write is not None:
            self._on_write(request)
        if written:
            series = request.timeseries
            counts = (sum(len(ts.samples) for ts in series), sum(len(ts.histograms) for ts in series),
                      sum(len(ts.exemplars) for ts in series))  # fmt: skip
            written = {name: str(n) for name, n in zip(_WRITTEN, counts)}
        return 204, "", written

    def _decode(self, body: bytearray, protocol: str) -> WriteRequest:
        """codec.decode_payload, the decompressed size held in the memory budget meanwhile; _Refusal when spent."""
        try:
            size = uncompressed_length(body)
        except SnappyError:
            size = 0  # decode_payload refuses it, allocating nothing
        if size > self._max_length:
            size = 0  # the same: refused before it is decompressed
        if not self._budget.take(size):
            raise self._over_budget()
        try:
            return codec.decode_payload(body, None, protocol, limits=self._limits)
        finally:
            self._budget.give_back(size)

    def _over_budget(self, unread: int = 0) -> "_Refusal":
        reason = (f"busy: this receiver holds at most {self._budget.limit:,} bytes of request bodies at once;"
                  " try again")  # fmt: skip
        return _Refusal(503, reason, unread, _RETRY)

    def _post(self, handler: Any) -> Optional[Answer]:
        """The answer to the POST `handler` is serving; None when the peer left mid-body.

        Only a request its headers do not already refuse has its body read.
        """
        body = bytearray()  # held in the memory budget as it arrives, given back once answered
        try:
            try:
                length = _declared_length(handler.headers, max_compressed_length(self._max_length))
                protocol = self._protocol(handler.headers, length)
                handler.reads.start(self._body_timeout)
                if not self._read_body(handler.rfile, length, body):
                    return None
            except _Refusal as refusal:
                handler.close_connection = True  # the body was not (all) read
                handler.unread = refusal.unread
                return refusal.answer
            except socket.timeout:
                handler.close_connection = True
                return 408, f"the body did not arrive within {self._body_timeout:g} seconds", {}
            return self._accept(body, protocol)
        finally:
            self._budget.give_back(len(body))

    def _read_body(self, rfile: io.BufferedReader, length: int, body: bytearray) -> bool:
        """Reads `length` bytes into `body` a chunk at a time as they arrive, each taken from the memory
        budget before it is read; False when the peer closes first, _Refusal (503) when the budget is spent.

        Memory follows what arrived, never what was declared.
        """
        while len(body) < length:
            want = min(length - len(body), CHUNK)
            if not self._budget.take(want):
                raise self._over_budget(length - len(body))
            chunk = b""
            try:
                chunk = rfile.read1(want)
            finally:
                self._budget.give_back(want - len(chunk))  # what did not arrive (all of it on a timeout)
            if not chunk:
                return False
            body += chunk
        return True

    def _handler_class(self) -> type:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            unread = 0  # bytes of a refused body still to come

            def setup(self) -> None:
                super().setup()
                self.rfile.close()  # replaced by reads that keep to a deadline
                self.reads = DeadlineReads(self.connection)
                self.rfile = io.BufferedReader(self.reads)

            def handle_one_request(self) -> None:
                self.reads.start(receiver._header_timeout)  # from the end of the last request
                super().handle_one_request()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                answer = receiver._post(self)
                if answer is None:
                    self.close_connection = True  # the peer left mid-body: no one to answer
                    return
                status, reason, extra = answer
                self.connection.settimeout(receiver._header_timeout)  # bounds the answer's write
                data = reason.encode()
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="promwrite"')
                for key, value in extra.items():
                    self.send_header(key, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                if data:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if self.unread:  # the rest of a refused body: let its sender read this answer
                    linger(self.connection, self.unread, receiver._header_timeout)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the receiver's owner reports what arrived

        return Handler


class _Refusal(Exception):
    """An answer given before the body is (all) read (the connection closes after it); `unread` is
    what is left of the body, when known."""

    def __init__(self, status: int, reason: str, unread: int = 0, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(reason)
        self.answer: Answer = (status, reason, dict(headers or {}))
        self.unread = unread


_RETRY = {"Retry-After": "1"}


def _busy(max_connections: int) -> bytes:
    """The whole 503 answer to a connection over the cap (sent as it is accepted, before its request is read)."""
    reason = f"too many connections: this receiver serves at most {max_connections} at once".encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(reason), reason))  # fmt: skip


_DIGITS = re.compile(r"[0-9]{1,18}")


def _declared_length(headers: Message, limit: int) -> int:
    """The body's Content-Length; _Refusal (411, 400 or 413) when absent, malformed or over `limit`."""
    if headers.get("Transfer-Encoding") is not None:
        raise _Refusal(411, "Transfer-Encoding is not taken: send the body with a Content-Length")
    values = {value.strip() for value in headers.get_all("Content-Length") or ()}
    if not values:
        raise _Refusal(411, "Content-Length required")
    value = values.pop()
    if values or not _DIGITS.fullmatch(value):
        raise _Refusal(400, "malformed Content-Length: one decimal number of bytes expected")
    length = int(value)
    if length > limit:
        raise _Refusal(413, f"a body of {length} bytes is over this receiver's limit of {limit} bytes", length)
    return length


_WRITTEN = (
    "X-Prometheus-Remote-Write-Samples-Written",
    "X-Prometheus-Remote-Write-Histograms-Written",
    "X-Prometheus-Remote-Write-Exemplars-Written",
)
_PROTOS = {"prometheus.WriteRequest": "1.0", "io.prometheus.write.v2.Request": "2.0"}


def protocol_of(content_type: Optional[str]) -> Optional[str]:
    """The remote-write version a Content-Type names ("1.0", "2.0"), or None when it is not one.

    No header, or ``application/x-protobuf`` without ``proto=``, is 1.0 (as
    the spec says); parameters are parsed as RFC 9110 says (spaces allowed).
    """
    if content_type is None:
        return "1.0"
    media, *params = content_type.split(";")
    if media.strip().lower() != "application/x-protobuf":
        return None
    proto = "prometheus.WriteRequest"
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
    return _PROTOS.get(proto)
