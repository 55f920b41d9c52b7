"""An embedded remote-write receiver on loopback, for the demo, tests and debugging.

It decompresses and decodes every POST with promwrite's own codec, keeps what
arrived, and answers as Prometheus does: 204 when stored, 400 with a reason
when the body is not a valid write, 401 when basic auth is required and wrong,
415 for a content type or encoding it does not take. It takes remote write 1.0
and 2.0 (by the ``proto=`` parameter of Content-Type), and answers a 2.0 write
with the ``X-Prometheus-Remote-Write-*-Written`` counts the 2.0 spec requires.
"""

from __future__ import annotations

import base64
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import codec, snappy
from ._pysnappy import max_compressed_length
from .errors import DecodeError, SnappyError
from .model import WriteRequest

__all__ = ["Receiver"]


class Receiver:
    """A remote-write endpoint in this process: ``with Receiver() as r: ... r.url``.

    `received` lists every decoded WriteRequest in arrival order (with its raw
    payload size in `payload_bytes` and its protocol, "1.0" or "2.0", in
    `received_protocols`); `on_write`, if given, is called with each.
    `protocols` are the versions it takes: ``("1.0",)`` makes it answer a 2.0
    write with 415, as a strict 1.0-only receiver would.
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
    ) -> None:
        self.received: List[WriteRequest] = []
        self.payload_bytes: List[int] = []
        self.received_protocols: List[str] = []
        self.protocols = tuple(codec._check_protocol(p) for p in protocols)
        self._lock = threading.Lock()
        self._on_write = on_write
        self._max_length = max_length
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            if basic_auth
            else None
        )
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
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
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(
        self, auth: Optional[str], body: bytes, content_type: Optional[str] = None,
        content_encoding: Optional[str] = None,
    ) -> Tuple[int, str, Dict[str, str]]:  # fmt: skip
        """(status, reason, extra headers) for one POST body, storing the request when valid."""
        if self._expected_auth is not None and not hmac.compare_digest(
            (auth or "").encode(), self._expected_auth.encode()
        ):
            return 401, "Unauthorized", {}
        if content_encoding is not None and content_encoding.strip().lower() != "snappy":
            return 415, f"unsupported Content-Encoding {content_encoding!r}: only snappy", {}
        protocol = protocol_of(content_type)
        if protocol not in self.protocols:
            return 415, f"unsupported Content-Type {content_type!r}", {}
        written = {}
        if protocol == "2.0":  # the counts go with every answer to a 2.0 write, 0 when rejected
            written = dict.fromkeys(_WRITTEN, "0")
        try:
            request = codec.decode_payload(body, self._max_length, protocol)
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

    def _handler_class(self) -> type:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    length = int(self.headers.get("Content-Length") or -1)
                except ValueError:
                    length = -1
                if length < 0:
                    status, reason = 411, "Content-Length required"
                elif length > max_compressed_length(receiver._max_length):
                    status, reason = 413, "payload too large"
                    self.close_connection = True
                else:
                    body = self.rfile.read(length)
                    status, reason, extra = receiver._accept(
                        self.headers.get("Authorization"), body, self.headers.get("Content-Type"),
                        self.headers.get("Content-Encoding"),
                    )  # fmt: skip
                data = reason.encode()
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="promwrite"')
                for key, value in (extra if status not in (411, 413) else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the receiver's owner reports what arrived

        return Handler


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
