"""One HTTP exchange bounded in time and memory, shared by `Client` and the OAuth2 token fetch.

`timeout` is a deadline for the whole exchange (name lookup, connect, TLS,
proxy tunnel, send, status line, headers, body): every socket operation gets only what is
left of it, so a peer that trickles bytes cannot hold a caller longer. An
answer's body is read up to a bound; the rest is never read (the connection is
closed instead). Nothing that can hold a secret (URL credentials and query,
proxy credentials, header values) reaches a message: header values are
checked before sending, URLs are shown redacted. Redirects are never followed.
"""

from __future__ import annotations

import base64
import http.client
import io
import re
import socket
import ssl
import time
import urllib.parse
import urllib.request
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from ._resolve import ResolverBusy, resolve
from .errors import ConnectError, PromwriteError, TimeoutError

__all__ = ["Endpoint", "MAX_BODY", "check_headers", "redact_url"]

#: Bytes of an answer's body kept (enough for an error message); the rest is not read.
MAX_BODY = 64 * 1024

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab


def redact_url(url: str) -> str:
    """The URL as it may be shown: no user:password, every query value ``***``, no fragment."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = netloc.rpartition("@")[2]
    query = "&".join(
        f"{key}=***" if sep else "***"
        for key, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse, before anything is sent, a header that cannot go out as given.

    The message names the header, never its value (which may be a secret):
    http.client would echo the whole value in its own error.
    """
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if not isinstance(value, str):
            raise ValueError(f"header {name!r}: the value must be a str, not {type(value).__name__}")
        if _CONTROL.search(value):
            raise ValueError(f"header {name!r}: the value has a line break or control character; not sent")
        if not value.isascii() and max(value) > "\xff":
            raise ValueError(f"header {name!r}: the value has a character outside Latin-1; not sent")


class Proxy(NamedTuple):
    """An http:// proxy: where it listens, its ``Proxy-Authorization`` (or None), and its redacted URL."""

    host: str
    port: int
    authorization: Optional[str]
    shown: str


def find_proxy(scheme: str, host: str, proxy: Optional[str]) -> Optional[Proxy]:
    """The proxy for `scheme`://`host`: `proxy` if given ("" for none), else the environment's."""
    if proxy is None:
        if urllib.request.proxy_bypass(host):
            return None
        proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"proxy must be an http:// URL, not {redact_url(proxy)!r}")
    authorization = None
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return Proxy(parts.hostname, parts.port or 80, authorization, redact_url(parts.geturl()))


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side where each read waits at most what is left of the exchange's deadline."""

    def __init__(self, sock: socket.socket, conn: "BoundedConnection") -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open while the answer is read
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._conn.remaining())
        return self._raw.readinto(buffer)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._raw.close()
        super().close()

    def makefile(self, mode: str) -> io.BufferedReader:
        """What http.client's response reads from (in place of ``socket.makefile``)."""
        return io.BufferedReader(self)


class BoundedConnection(http.client.HTTPConnection):
    """An HTTPConnection whose every operation ends by `deadline` (a time.monotonic() value)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.deadline = 0.0
        self.response_class = self._response  # type: ignore[assignment]
        self._create_connection = self._open  # type: ignore[assignment]

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the exchange's deadline passed")
        return left

    def _response(self, sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_DeadlineReader(sock, self), *args, **kwargs)  # type: ignore[arg-type]

    def _open(self, address: Tuple[str, int], *_: object) -> socket.socket:
        """socket.create_connection, with the name lookup, too, ending by the deadline."""
        error: Optional[OSError] = None
        for family, kind, proto, _name, sockaddr in resolve(*address, self.remaining()):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.remaining())
                sock.connect(sockaddr)
                return sock
            except OSError as exc:  # try the next address, as create_connection does
                sock.close()
                error = exc
        assert error is not None  # getaddrinfo gives at least one address or raises
        raise error

    def send(self, data: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.remaining())
        super().send(data)


class BoundedHTTPSConnection(BoundedConnection):
    """The same over TLS (the handshake, too, ends by the deadline)."""

    default_port = 443

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(host, port)
        self._context = context

    def connect(self) -> None:
        super().connect()  # TCP, and the proxy's CONNECT tunnel when there is one
        assert self.sock is not None
        self.sock.settimeout(self.remaining())
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._tunnel_host or self.host)


class Endpoint:
    """Where requests to one http(s) URL go: its host, path, TLS context and proxy.

    Proxy credentials (``http://user:pass@proxy:3128``) go as
    ``Proxy-Authorization``: on each request through a plain-http proxy, and on
    the CONNECT that opens a tunnel for https.
    """

    def __init__(self, url: str, ssl_context: Optional[ssl.SSLContext], proxy: Optional[str]) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the URL must be http:// or https:// with a host, not {redact_url(url)!r}")
        if re.search(r"[\x00-\x20\x7f]", url):
            raise ValueError(f"the URL {redact_url(url)!r} has a space or control character")
        self.shown = redact_url(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        if parts.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        self.ssl = ssl_context if parts.scheme == "https" else None
        self.proxy = find_proxy(parts.scheme, parts.hostname, proxy)

    def where(self) -> str:
        """The redacted URL, and the redacted proxy when there is one (for messages)."""
        return self.shown if self.proxy is None else f"{self.shown} (via proxy {self.proxy.shown})"

    def connection(self) -> BoundedConnection:
        """A new, not yet opened, connection to the host (or to the proxy)."""
        proxy = self.proxy
        host, port = (self.host, self.port) if proxy is None else (proxy.host, proxy.port)
        if self.ssl is None:
            return BoundedConnection(host, port)
        conn = BoundedHTTPSConnection(host, port, self.ssl)
        if proxy is not None:
            tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
        return conn

    def exchange(
        self, conn: BoundedConnection, payload: bytes, headers: Mapping[str, str], deadline: float
    ) -> Tuple[int, http.client.HTTPMessage, bytes, bool]:
        """POST `payload`: status, headers, the first MAX_BODY bytes of the body, and whether
        `conn` may be kept alive. All of it by `deadline` (time.monotonic()), or socket.timeout."""
        conn.deadline = deadline
        target = self.path
        sent: Dict[str, str] = dict(headers)
        if self.proxy is not None and self.ssl is None:
            target = f"http://{self.host}:{self.port}{self.path}"  # absolute form for a proxy
            if self.proxy.authorization:
                sent["Proxy-Authorization"] = self.proxy.authorization
        conn.request("POST", target, body=payload, headers=sent)
        response = conn.getresponse()
        body = response.read(MAX_BODY + 1)
        complete = response.isclosed()  # the whole body was read (http.client closes it then)
        return response.status, response.headers, body[:MAX_BODY], complete and not response.will_close

    def failure(self, exc: BaseException, timeout: float, what: str = "") -> PromwriteError:
        """The error a caller gets for `exc` raised by an exchange (nothing secret in it)."""
        where = f"{what}{self.where()}"
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return TimeoutError(f"{where}: no answer within {timeout:g} s")
        if isinstance(exc, ResolverBusy):
            return ConnectError(f"{where}: {exc}")
        if isinstance(exc, ssl.SSLError):
            return ConnectError(f"{where}: TLS failed: {exc.reason or type(exc).__name__}")
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"{where}: connection refused")
        if isinstance(exc, socket.gaierror):
            return ConnectError(f"{where}: host not found ({exc.strerror})")
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
            return ConnectError(f"{where}: the server closed the connection before answering")
        return ConnectError(f"{where}: {type(exc).__name__}: {exc}")
