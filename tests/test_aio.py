"""AsyncClient under a running event loop: the loop keeps running while requests are on the wire."""

from __future__ import annotations

import asyncio
import time
from typing import List

import pytest

import promwrite
from promwrite import AsyncClient, BasicAuth, Sample, TimeSeries, WriteError, WriteRequest

from .faulty import FaultyServer

pytestmark = pytest.mark.timeout(60)


def one(name: str = "up") -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": name, "job": "t"}, sample=Sample(1.0, timestamp_ms=1_700_000_000_000))])


async def ticking(ticks: List[float], stop: asyncio.Event) -> None:
    for _ in range(1000):  # bounded: 10 s at most
        if stop.is_set():
            return
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


def test_the_loop_keeps_ticking_while_slow_writes_are_in_flight() -> None:
    async def main(url: str) -> List[float]:
        ticks: List[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(ticking(ticks, stop))
        async with AsyncClient(url, auth=BasicAuth("u", "p"), timeout=5, workers=2) as client:
            responses = await asyncio.gather(client.write(one("a")), client.write(one("b")))
        stop.set()
        await ticker
        assert [r.status for r in responses] == [204, 204]
        return ticks

    with FaultyServer([("slow", 1.0)]) as server:
        ticks = asyncio.run(main(server.url))
        assert sorted(a.request.timeseries[0].labels[0].value for a in server.arrivals) == ["a", "b"]
        assert {a.headers["Authorization"] for a in server.arrivals} == {"Basic dTpw"}  # Client's options
    # One second of slow answers: the ticker ran all along (a blocked loop ticks once).
    assert len(ticks) >= 30 and max(b - a for a, b in zip(ticks, ticks[1:])) < 0.5


def test_errors_arrive_as_exceptions() -> None:
    async def main(url: str) -> None:
        async with AsyncClient(url) as client:
            with pytest.raises(WriteError) as info:
                await client.write(one())
            assert info.value.status == 400 and "bad" in info.value.body

    with FaultyServer([("status", 400, "bad sample", {})]) as server:
        asyncio.run(main(server.url))


def test_cancel_returns_at_once_and_close_waits_for_what_is_on_the_wire() -> None:
    async def main(url: str) -> float:
        client = AsyncClient(url, timeout=5, workers=1)
        first = asyncio.create_task(client.write(one("on_the_wire")))
        queued = asyncio.create_task(client.write(one("queued")))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        first.cancel()
        queued.cancel()
        for task in (first, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert time.monotonic() - started < 0.5  # the awaiting task is free at once
        await client.aclose()  # waits for the request already sent, then closes
        closed_after = time.monotonic() - started
        with pytest.raises(promwrite.PromwriteError, match="closed"):
            await client.write(one())
        return closed_after

    with FaultyServer([("slow", 1.0)]) as server:
        closed_after = asyncio.run(main(server.url))
        # the request on the wire was finished by its thread; the queued one never left
        assert [a.request.timeseries[0].labels[0].value for a in server.arrivals] == ["on_the_wire"]
    assert 0.5 < closed_after < 3.0


def test_options_checked() -> None:
    with pytest.raises(ValueError, match="workers"):
        AsyncClient("http://127.0.0.1:1/w", workers=0)
    with pytest.raises(ValueError, match="timeout"):
        AsyncClient("http://127.0.0.1:1/w", timeout=0)
    assert "***" in AsyncClient("http://127.0.0.1:1/w?api_key=k").url
