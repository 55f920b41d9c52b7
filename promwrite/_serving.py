"""What bounds the embedded receiver's connections: read deadlines, a connection cap, a memory budget.

The receiver (receiver.py) decides what a request means; this module decides
how much of the machine one peer, or all of them together, may hold: time
(each read keeps to a deadline), threads (at most `max_connections`), memory
(a budget of body bytes shared by all connections), and how a refused peer
still reads its answer rather than a reset connection.
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Set, Tuple

__all__ = ["CHUNK", "CappedServer", "DeadlineReads", "MemoryBudget", "linger"]

#: Connections refused for being over the cap that are drained at once (a short-lived thread each); more
#: are closed at once, and may then see a reset if they were still sending.
LINGERING = 8
#: Seconds a connection refused for being over the cap is drained before it is closed.
REFUSAL_LINGER = 2.0
#: Bytes asked of the socket at a time.
CHUNK = 1 << 16


class DeadlineReads(io.RawIOBase):
    """A socket's reads, each given only what is left until a deadline, so a trickle cannot extend it."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._seconds = 0.0
        self._deadline = 0.0

    def start(self, seconds: float) -> None:
        """Reads from now on must be done within `seconds`."""
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"not read within {self._seconds:g} seconds")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def linger(sock: socket.socket, max_bytes: int, seconds: float) -> None:
    """After an answer to a request whose body was not read: end our side, then read and drop up to
    `max_bytes` for at most `seconds`, so that a peer still sending reads the answer, not a reset.

    Closing a socket with unread bytes makes the kernel send a reset, which
    also discards the answer not yet read at the other end.
    """
    deadline = time.monotonic() + seconds
    scratch = bytearray(CHUNK)
    try:
        sock.shutdown(socket.SHUT_WR)
        while max_bytes > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            got = sock.recv_into(scratch, min(max_bytes, CHUNK))
            if not got:
                return
            max_bytes -= got
    except OSError:
        pass  # gone, or too slow: it is closed next either way


class MemoryBudget:
    """Bytes of request bodies (as received, and decompressed) held at once by all connections: at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0  # the most ever held at once, for tests and debugging
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) when that would go over the limit."""
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
            self.peak = max(self.peak, self.held)
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size


class CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once; more are answered `busy` (a 503).

    The accepting thread never waits on a refused peer: up to LINGERING refused
    connections are answered and drained (up to `drain_bytes`, REFUSAL_LINGER
    seconds) by a short-lived thread each, so that a peer that was sending a
    body reads the 503; beyond those, the answer is sent without waiting and
    the connection closed.
    """

    daemon_threads = True
    request_queue_size = 128  # a burst of connects waits in the backlog rather than retrying SYNs

    def __init__(
        self, address: Tuple[str, int], handler: type, max_connections: int, busy: bytes, drain_bytes: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lingering = threading.BoundedSemaphore(LINGERING)
        self._open: Set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._busy = busy
        self._drain_bytes = drain_bytes
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        self._track(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def _refuse(self, request: socket.socket) -> None:
        if self._lingering.acquire(blocking=False):
            self._track(request)
            try:
                threading.Thread(target=self._answer_and_drain, args=(request,), name="promwrite-refusal",
                                 daemon=True).start()  # fmt: skip
            except BaseException:  # no thread to be had: the server closes the connection
                self._untrack(request)
                self._lingering.release()
                raise
            return
        try:
            request.setblocking(False)  # never wait on a peer from the accepting thread
            request.send(self._busy)
        except OSError:
            pass
        self.shutdown_request(request)

    def _answer_and_drain(self, request: socket.socket) -> None:
        try:
            request.settimeout(REFUSAL_LINGER)
            request.sendall(self._busy)
            linger(request, self._drain_bytes, REFUSAL_LINGER)
        except OSError:
            pass
        finally:
            self._untrack(request)
            request.close()
            self._lingering.release()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _track(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.add(request)

    def _untrack(self, request: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(request)

    def _release(self, request: socket.socket) -> None:
        self._untrack(request)
        self._slots.release()

    def close_connections(self) -> None:
        """Ends every open connection, served or being refused (their threads then finish at once)."""
        with self._open_lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by its thread

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a peer that reset or timed out is no error here
            super().handle_error(request, client_address)
