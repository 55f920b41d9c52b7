"""An embedded remote-write receiver on loopback, for the demo, tests and debugging.

It decompresses and decodes every POST with promwrite's own codec, keeps what
arrived, and answers as Prometheus does: 204 when stored, 400 with a reason
when the body is not a valid write, 401 when basic auth is required and wrong.
"""

from __future__ import annotations

import base64
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, List, Optional, Tuple

from . import codec, snappy
from ._pysnappy import max_compressed_length
from .errors import DecodeError, SnappyError
from .model import WriteRequest

__all__ = ["Receiver"]


class Receiver:
    """A remote-write endpoint in this process: ``with Receiver() as r: ... r.url``.

    `received` lists every decoded WriteRequest in arrival order (with its raw
    payload size in `payload_bytes`); `on_write`, if given, is called with each.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        basic_auth: Optional[Tuple[str, str]] = None,
        on_write: Optional[Callable[[WriteRequest], None]] = None,
        max_length: int = snappy.DEFAULT_MAX_LENGTH,
    ) -> None:
        self.received: List[WriteRequest] = []
        self.payload_bytes: List[int] = []
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

    def _accept(self, auth: Optional[str], body: bytes) -> Tuple[int, str]:
        """(status, reason) for one POST body, storing the request when valid."""
        if self._expected_auth is not None and not hmac.compare_digest(
            (auth or "").encode(), self._expected_auth.encode()
        ):
            return 401, "Unauthorized"
        try:
            request = codec.decode(snappy.decompress(body, self._max_length))
        except (SnappyError, DecodeError) as exc:
            return 400, f"bad remote write: {exc}"
        with self._lock:
            self.received.append(request)
            self.payload_bytes.append(len(body))
        if self._on_write is not None:
            self._on_write(request)
        return 204, ""

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
                    status, reason = receiver._accept(self.headers.get("Authorization"), body)
                data = reason.encode()
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="promwrite"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the receiver's owner reports what arrived

        return Handler
