"""`AsyncClient`: remote write from asyncio code without blocking the event loop.

Each request runs on a small thread pool through a plain `Client` (the same
options, connections and errors), so no new dependency is needed and the
event loop only awaits the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from typing import Any, Callable, Mapping, Optional, Set

from .client import Client, WriteResponse
from .errors import PromwriteError
from .model import WriteRequest
from .retry import Retry

__all__ = ["AsyncClient"]


class AsyncClient:
    """A `Client` for asyncio: ``async with AsyncClient(url, ...) as c: await c.write(request)``.

    Takes `Client`'s options (`auth`, `headers`, `timeout`, TLS, `proxy`,
    `protocol`, ...) plus `workers`, the number of threads that send (at most
    that many requests are in flight at once; more wait their turn). A
    cancelled ``write`` returns at once, but a request already on the wire is
    not recalled: its thread finishes it (within `timeout`). `aclose` waits for
    the requests in flight (each bounded by `timeout`), then closes the
    connections.
    """

    def __init__(self, url: str, *, workers: int = 4, **client_options: Any) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, not {workers!r}")
        self.client = Client(url, **client_options)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="promwrite-aio")
        self._running: Set["concurrent.futures.Future[Any]"] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        """The endpoint, redacted (no credentials, no query values)."""
        return self.client.url

    @property
    def protocol(self) -> str:
        """The remote-write version `write` sends (see `Client.protocol`)."""
        return self.client.protocol

    async def write(
        self, request: WriteRequest, *, headers: Optional[Mapping[str, str]] = None, retry: Optional[Retry] = None
    ) -> WriteResponse:
        """`Client.write` on a pool thread: the same result and errors, awaited."""
        return await self._run(functools.partial(self.client.write, request, headers=headers, retry=retry))

    async def send(
        self,
        payload: bytes,
        *,
        headers: Optional[Mapping[str, str]] = None,
        retry: Optional[Retry] = None,
        protocol: str = "1.0",
    ) -> WriteResponse:
        """`Client.send` (an already encoded payload) on a pool thread."""
        return await self._run(
            functools.partial(self.client.send, payload, headers=headers, retry=retry, protocol=protocol)
        )

    async def _run(self, call: Callable[[], WriteResponse]) -> WriteResponse:
        with self._lock:
            if self._closed:
                raise PromwriteError("this AsyncClient is closed")
            future = self._pool.submit(call)
            self._running.add(future)
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    def _finished(self, future: "concurrent.futures.Future[Any]") -> None:
        with self._lock:
            self._running.discard(future)

    async def aclose(self) -> None:
        """Refuse new writes, wait for those in flight, close the connections and the threads."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        if running:
            await asyncio.wait([asyncio.wrap_future(f) for f in running])
        self._pool.shutdown(wait=False)
        self.client.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r}, auth={self.client.auth!r})"
