"""The remote-write client: one POST per request, over kept-alive connections.

Built on the standard library's HTTP stack (``http.client`` under
``urllib``'s URL, proxy and TLS handling). Any number of threads may call
`Client.write` at once: each takes its own connection from a small pool.
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import threading
import time
import urllib.parse
import weakref
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from . import codec
from ._version import __version__
from ._checks import positive_seconds
from ._http import BoundedConnection, Endpoint, check_headers
from .auth import Auth, BasicAuth
from .errors import PromwriteError, UnsupportedProtocolError, WriteError
from .model import WriteRequest
from .retry import Retry

__all__ = ["Client", "WriteResponse"]

log = logging.getLogger("promwrite")

#: Headers every remote-write 1.0 request carries (the spec's required set).
PROTOCOL_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
#: What a remote-write 2.0 request carries instead (no space after ";": some
#: receivers do not parse one, and read the body as 1.0).
PROTOCOL_HEADERS_V2 = {
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}
#: The response headers by which a 2.0 receiver says how much it wrote.
WRITTEN_HEADERS = (
    "X-Prometheus-Remote-Write-Samples-Written",
    "X-Prometheus-Remote-Write-Histograms-Written",
    "X-Prometheus-Remote-Write-Exemplars-Written",
)
_MAX_IDLE = 16  # kept-alive connections per client

#: Every live Client, so that a forked child can drop what it inherited.
_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _reset_in_child() -> None:
    """After os.fork(): each Client forgets the parent's connections and lock.

    A kept-alive socket inherited from the parent is the parent's: writing on
    it from the child would interleave two requests on one connection. The
    child drops them without closing them (closing would not affect the parent,
    but a TLS close_notify would), and gets a fresh lock, since the parent's may
    have been held by another thread at the moment of the fork.
    """
    for client in list(_clients):
        client._lock = threading.Lock()
        client._idle = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


class WriteResponse:
    """A 2xx answer: its status, headers (case-insensitive) and body.

    `protocol` is the remote-write version the request went as ("1.0", or
    "2.0"); `samples_written`, `histograms_written` and `exemplars_written`
    are the counts a 2.0 receiver reports (None when the header is absent).
    """

    __slots__ = ("status", "headers", "body", "protocol")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, protocol: str = "1.0") -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.protocol = protocol

    def _count(self, name: str) -> Optional[int]:
        value = self.headers.get(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def samples_written(self) -> Optional[int]:
        return self._count(WRITTEN_HEADERS[0])

    @property
    def histograms_written(self) -> Optional[int]:
        return self._count(WRITTEN_HEADERS[1])

    @property
    def exemplars_written(self) -> Optional[int]:
        return self._count(WRITTEN_HEADERS[2])

    @property
    def reports_written(self) -> bool:
        """True when the receiver sent any of the written-count headers (2.0 receivers must)."""
        return any(self.headers.get(name) is not None for name in WRITTEN_HEADERS)

    def __repr__(self) -> str:
        counts = ""
        if self.reports_written:
            counts = (
                f", samples_written={self.samples_written}, histograms_written={self.histograms_written},"
                f" exemplars_written={self.exemplars_written}"
            )
        return f"WriteResponse(status={self.status}, protocol={self.protocol!r}{counts}, body={self.body[:200]!r})"


class Client:
    """Sends WriteRequests to one remote-write URL.

    `auth` is a `BasicAuth`, `BearerAuth`, `SigV4Auth`, `OAuth2` or any
    object with a ``headers(url, body)`` method; credentials in the URL (``https://user:pass@host/...``) are
    taken as basic auth. `headers` go with every request (e.g. a tenant:
    ``X-Scope-OrgID`` for Mimir/Cortex, ``THANOS-TENANT`` for Thanos). TLS
    comes from `ssl_context`, or is built from `ca_file`, `cert_file`/`key_file`
    (client certificate) and `insecure_skip_verify`. `proxy` is a proxy URL;
    by default the ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` environment is
    honoured, and ``proxy=""`` turns proxies off; credentials in a proxy URL
    (``http://user:pass@proxy:3128``) go as ``Proxy-Authorization``.

    `timeout` is a deadline in seconds for each whole exchange (name lookup,
    connect, TLS, send, status line, headers and body), not for each socket
    read: a server (or DNS) that trickles or stalls gets TimeoutError once it
    is spent. Only the
    first 64 KiB of an answer's body are read (the rest is not, and that
    connection is closed). Header values that cannot be sent as given (a line
    break, a control character) are refused with a ValueError naming the
    header, before anything is sent. URLs are shown (``url``, reprs, errors)
    without credentials or query values.

    `protocol` is the remote-write version to send: "1.0" (the default;
    every receiver takes it) or "2.0" (interned strings, metadata and start
    timestamps per series; Prometheus 2.54+ takes it). When a receiver shows
    it does not take 2.0 (a 415, or a 2xx without the written-count headers
    2.0 receivers send), the client re-sends that request as 1.0 and uses 1.0
    from then on (`protocol` says which is in use), unless `fallback` is
    False: then `UnsupportedProtocolError` says why.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: Optional[Auth] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        insecure_skip_verify: bool = False,
        proxy: Optional[str] = None,
        user_agent: Optional[str] = None,
        protocol: str = "1.0",
        fallback: bool = True,
    ) -> None:
        self._protocol = codec._check_protocol(protocol)
        self.fallback = bool(fallback)
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None:
            if auth is not None:
                raise ValueError("credentials in the URL and auth= both given; use one")
            auth = BasicAuth(
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            )
        timeout = positive_seconds("timeout", timeout)
        tls = _make_ssl(parts.scheme, ssl_context, ca_file, cert_file, key_file, insecure_skip_verify)
        self._endpoint = Endpoint(url, tls, proxy)
        self.url = self._endpoint.shown
        self.auth = auth
        self.timeout = float(timeout)
        self._headers: Dict[str, str] = {
            "User-Agent": user_agent or f"promwrite/{__version__}",
            **PROTOCOL_HEADERS,
            **dict(headers or {}),
        }
        check_headers(self._headers)
        self._idle: List[BoundedConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        _clients.add(self)

    # -- connections ----------------------------------------------------------

    def _checkout(self) -> Tuple[BoundedConnection, bool]:
        with self._lock:
            if self._closed:
                raise PromwriteError("this Client is closed")
            if self._idle:
                return self._idle.pop(), True
        return self._endpoint.connection(), False

    def _checkin(self, conn: BoundedConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close kept-alive connections; the client cannot write afterwards."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, auth={self.auth!r})"

    # -- writing --------------------------------------------------------------

    def write(
        self,
        request: WriteRequest,
        *,
        headers: Optional[Mapping[str, str]] = None,
        retry: Optional[Retry] = None,
    ) -> WriteResponse:
        """Encode, compress and POST `request`; raise WriteError on a non-2xx answer.

        Invalid input raises ValueError (a SeriesError naming the series)
        before anything is sent; unreachable endpoints raise ConnectError,
        slow ones TimeoutError. With `retry` (a `promwrite.Retry`), failures it
        retries are retried with its backoff, and the last error is raised when
        it gives up; by default nothing is retried. The request is encoded once.
        With `protocol` "2.0", a receiver that does not take 2.0 gets the
        request again as 1.0 (see the class docstring).
        """
        protocol = self._protocol
        if protocol == "1.0":
            return self.send(codec.encode_payload(request), headers=headers, retry=retry)
        payload = codec.encode_payload(request, protocol)
        return self._send_v2(payload, headers, retry, lambda: codec.encode_payload(request))

    @property
    def protocol(self) -> str:
        """The remote-write version `write` sends: as configured, or "1.0" after a fallback."""
        return self._protocol

    def _send_v2(
        self,
        payload: bytes,
        headers: Optional[Mapping[str, str]],
        retry: Optional[Retry],
        as_v1: Callable[[], bytes],
    ) -> WriteResponse:
        """POST a 2.0 payload; if the receiver shows it does not take 2.0, fall back (or raise)."""
        v2_headers = {**(headers or {}), **PROTOCOL_HEADERS_V2}
        try:
            response = self.send(payload, headers=v2_headers, retry=retry)  # the bytes as they are
        except WriteError as exc:
            if exc.status != 415:
                raise
            status, body, answer_headers = exc.status, exc.body, exc.headers
            reason = f"it answered HTTP 415 Unsupported Media Type ({body.strip()[:200] or 'no reason given'})"
        else:
            if response.reports_written:
                response.protocol = "2.0"
                return response
            status, body, answer_headers = response.status, response.body.decode("utf-8", "replace"), response.headers
            reason = (
                f"it answered HTTP {status} without any X-Prometheus-Remote-Write-*-Written header, as a"
                " 1.0 receiver does (it reads a 2.0 body as an empty 1.0 request)"
            )
        if not self.fallback:
            raise UnsupportedProtocolError(self.url, status, body, answer_headers, "2.0", reason)
        # INFO, not WARNING: the caller sees it in response.protocol and Client.protocol.
        log.info("remote write to %s: %s; sending as 1.0 from now on", self.url, reason)
        self._protocol = "1.0"
        return self.send(as_v1(), headers=headers, retry=retry)

    def send(
        self,
        payload: bytes,
        *,
        headers: Optional[Mapping[str, str]] = None,
        retry: Optional[Retry] = None,
        protocol: str = "1.0",
    ) -> WriteResponse:
        """POST an already encoded, snappy-compressed payload (e.g. one kept on disk).

        `retry` as for `write`. `protocol` is the payload's remote-write
        version; a "2.0" payload falls back as `write` does (decoded and
        encoded again as 1.0), or raises UnsupportedProtocolError.
        """
        if protocol != "1.0":
            codec._check_protocol(protocol)
            return self._send_v2(
                payload, headers, retry, lambda: codec.encode_payload(codec.decode_payload(payload, protocol="2.0"))
            )
        if retry is None:
            return self._send_once(payload, headers)
        return retry.call(lambda: self._send_once(payload, headers))

    def _send_once(
        self, payload: bytes, headers: Optional[Mapping[str, str]], reauth: bool = True
    ) -> WriteResponse:
        all_headers = dict(self._headers)
        if headers:
            all_headers.update(headers)
        if self.auth is not None:
            all_headers.update(self.auth.headers(self.url, payload))
        check_headers(all_headers)
        status, answer_headers, body = self._post(payload, all_headers)
        if status == 401 and reauth and self.auth is not None:
            # An auth with an on_unauthorized(sent_headers) hook (OAuth2) may drop a
            # token the server no longer takes; the request then goes once more.
            hook = getattr(self.auth, "on_unauthorized", None)
            if hook is not None and hook(all_headers):
                return self._send_once(payload, headers, reauth=False)
        if not 200 <= status < 300:
            text = body.decode("utf-8", "replace")
            log.debug("remote write to %s failed: HTTP %d: %s", self.url, status, text.strip()[:500])
            raise WriteError(self.url, status, text, answer_headers)
        return WriteResponse(status, answer_headers, body)

    def _post(self, payload: bytes, headers: Dict[str, str]) -> Tuple[int, http.client.HTTPMessage, bytes]:
        """One POST within the timeout; a kept-alive connection the server had closed is replaced once."""
        endpoint = self._endpoint
        deadline = time.monotonic() + self.timeout
        conn, reused = self._checkout()
        try:
            try:
                status, answer_headers, body, keep = endpoint.exchange(conn, payload, headers, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                conn.close()
                conn = endpoint.connection()
                status, answer_headers, body, keep = endpoint.exchange(conn, payload, headers, deadline)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise endpoint.failure(exc, self.timeout) from None
        if keep:
            self._checkin(conn)
        else:
            conn.close()
        return status, answer_headers, body


def _make_ssl(
    scheme: str,
    context: Optional[ssl.SSLContext],
    ca_file: Optional[str],
    cert_file: Optional[str],
    key_file: Optional[str],
    insecure: bool,
) -> Optional[ssl.SSLContext]:
    """The TLS context for an https:// URL from the Client's TLS options (None for http://)."""
    if scheme != "https":
        if context or ca_file or cert_file or insecure:
            raise ValueError("TLS options were given for a plain http:// URL")
        return None
    if context is not None:
        if ca_file or cert_file or key_file or insecure:
            raise ValueError("give ssl_context or the TLS file options, not both")
        return context
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    elif key_file:
        raise ValueError("key_file needs cert_file")
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
