"""Slow and hostile HTTP peers for the receiver's hardening tests (loopback only, bounded in time).

Each attack returns what it observed; `proc_status` reads a server process's
threads and memory from /proc, so tests can hold a real `promwrite receive`
to numbers rather than trusting its own accounting.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Tuple

import servers

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUEST_LINE = b"POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def proc_status(pid: int) -> Dict[str, int]:
    """Threads, VmSize, VmRSS and VmHWM (peak RSS) of a process, in kB for the sizes."""
    out: Dict[str, int] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmSize", "VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@contextlib.contextmanager
def receive_process(*args: str, stdout: Any = subprocess.DEVNULL) -> Iterator[Tuple[subprocess.Popen, int]]:
    """`python -m promwrite receive` on a free loopback port, printing to `stdout`: (process, port).

    One malloc arena, so that its VmSize counts what it allocates rather than
    glibc's 64 MB reservation per thread.
    """
    port = servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMWRITE_")}
    env["MALLOC_ARENA_MAX"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "promwrite", "receive", "--port", str(port), *args],
                            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert "listening on" in banner, banner
        yield proc, port
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_by_peer(sock: socket.socket, wait: float) -> Tuple[bool, bytes]:
    """Whether the peer closed `sock` within `wait` seconds, and what it sent before."""
    got = b""
    end = time.monotonic() + wait
    while True:
        left = max(end - time.monotonic(), 0.0)
        if not select.select([sock], [], [], left)[0]:
            return False, got
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk


def trickle(port: int, head: bytes, drip: bytes, interval: float, limit: float) -> Tuple[float, bytes]:
    """Sends `head`, then `drip` one byte per `interval`; (seconds until the server hung up, its answer).

    The time is `limit` (or the drip's end) when the server never hangs up.
    """
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(head)
        answer = b""
        for byte in drip:
            closed, got = closed_by_peer(sock, interval)
            answer += got
            if closed or time.monotonic() - started >= limit:
                return time.monotonic() - started, answer
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started, answer
        return time.monotonic() - started, answer


def open_many(port: int, count: int, data: bytes) -> List[socket.socket]:
    """`count` connections that each sent `data` and wait (the caller closes them)."""
    socks: List[socket.socket] = []
    try:
        for _ in range(count):
            sock = connect(port)
            socks.append(sock)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused at once: what a capped server may do
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: List[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def exchange(port: int, raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """Sends `raw` (a hand-made request) and reads one answer: (status, headers, body)."""
    with connect(port) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()
