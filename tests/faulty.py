"""A local HTTP server that misbehaves on purpose, for fault tests (loopback only).

Each POST takes the next action from a script; when the script runs out the
last action repeats. Actions: ``("status", code, body, headers)``,
``("close",)`` (drop the connection without answering), ``("reset",)`` (TCP
reset), ``("hang", seconds)`` (answer nothing for a while, then close),
``("slow", seconds)`` (answer 204 after a while),
``("trickle_headers", interval, lines)`` (a status line, then one header line
every `interval` seconds), ``("trickle_body", interval, size)`` (headers
declaring `size` bytes, then one byte every `interval` seconds),
``("huge", code, size, chunked)`` (a `size`-byte body, with Content-Length or
chunked, sent until done or until the client hangs up).
Every request that arrived is recorded, decoded where it can be.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple

from promwrite import snappy
from promwrite.codec import decode

Action = Tuple[Any, ...]
OK: Action = ("status", 204, "", {})


class Arrival:
    def __init__(self, headers: Dict[str, str], body: bytes, path: str = "") -> None:
        self.headers = headers
        self.path = path
        self.body = body
        try:
            self.request = decode(snappy.decompress(body))
        except ValueError:
            self.request = None


class LoopbackServer:
    """An HTTP server on a free loopback port, served by a thread between `with` and its end."""

    def __init__(self, handler: type, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class FaultyServer(LoopbackServer):
    def __init__(self, script: Sequence[Action] = (OK,), tls: Optional[ssl.SSLContext] = None, port: int = 0) -> None:
        self.script: List[Action] = list(script)
        self.arrivals: List[Arrival] = []
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__(self._handler(), port=port)
        if tls is not None:  # https: the handshake happens as a connection is accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self._server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/api/v1/write"

    def _next(self) -> Action:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server._lock:
                    server.arrivals.append(Arrival(dict(self.headers.items()), body, self.path))
                action = server._next()
                if action[0] == "status":
                    _, code, text, headers = action
                    data = text.encode()
                    self.send_response(code)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif action[0] == "close":
                    self.close_connection = True
                elif action[0] == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                elif action[0] == "slow":
                    time.sleep(action[1])
                    self.send_response(204)
                    self.end_headers()
                elif action[0] == "hang":
                    time.sleep(action[1])
                    self.close_connection = True
                else:
                    try:
                        self._misbehave(action)
                    except OSError:  # the client hung up, as it should
                        pass
                    self.close_connection = True

            def _misbehave(self, action: Action) -> None:
                if action[0] == "trickle_headers":
                    _, interval, lines = action
                    self.wfile.write(b"HTTP/1.1 204 No Content\r\n")
                    for i in range(lines):
                        self.wfile.write(b"X-Slow-%d: 1\r\n" % i)
                        time.sleep(interval)
                    self.wfile.write(b"\r\n")
                elif action[0] == "trickle_body":
                    _, interval, size = action
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                    for _ in range(size):
                        time.sleep(interval)
                        self.wfile.write(b"x")
                elif action[0] == "huge":
                    _, code, size, chunked = action
                    block = b"e" * 65536
                    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
                    self.wfile.write(b"HTTP/1.1 %d Whatever\r\n%s\r\n\r\n" % (code, framing))
                    for start in range(0, size, len(block)):
                        piece = block[: size - start]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> "FaultyServer":
        super().__enter__()
        return self


def free_port() -> int:
    """A loopback port with nothing listening (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_request(server: FaultyServer) -> Optional[Any]:
    return server.arrivals[0].request if server.arrivals else None
