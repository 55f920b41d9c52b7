"""Retry policy (promwrite.Retry) and Client.write(retry=...) against a misbehaving server."""

from __future__ import annotations

import email.utils
import random
import time
from typing import List

import pytest

from promwrite import Client, ConnectError, Retry, Sample, TimeoutError, TimeSeries, WriteError, WriteRequest
from promwrite.retry import RETRY_STATUSES, retry_after_seconds

from .faulty import OK, FaultyServer, free_port


def write_error(status: int, headers=None) -> WriteError:
    return WriteError("http://x/api/v1/write", status, "body", headers or {})


def request(n: int = 3) -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": "r", "i": str(i)}, [Sample(i, timestamp_ms=1000 + i)]) for i in range(n)])


# ---- which failures retry -------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    assert Retry().retryable(write_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_4xx_never_retry(status: int) -> None:
    policy = Retry()
    assert not policy.retryable(write_error(status))
    assert policy.delay(1, write_error(status)) is None


def test_transport_failures_retry_and_other_errors_do_not() -> None:
    policy = Retry()
    assert policy.retryable(ConnectError("refused"))
    assert policy.retryable(TimeoutError("slow"))
    assert not policy.retryable(ValueError("bad input"))
    assert not policy.retryable(RuntimeError("bug"))
    assert not Retry(connect_errors=False).retryable(ConnectError("refused"))
    assert not Retry(timeouts=False).retryable(TimeoutError("slow"))
    assert Retry(statuses={418}).retryable(write_error(418))
    assert not Retry(statuses={418}).retryable(write_error(503))
    assert RETRY_STATUSES == {429, *range(500, 600)}


# ---- how long to wait -------------------------------------------------------------------


def test_exponential_backoff_without_jitter() -> None:
    policy = Retry(backoff_min=0.1, backoff_max=1.0, jitter=False, max_attempts=None, max_elapsed=None)
    waits = [policy.delay(a, ConnectError("x")) for a in range(1, 8)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert policy.delay(10_000, ConnectError("x")) == 1.0  # no overflow


def test_full_jitter_stays_between_min_and_the_exponential_cap() -> None:
    random.seed(7)
    policy = Retry(backoff_min=0.1, backoff_max=2.0, max_attempts=None)
    for attempt, top in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (9, 2.0)]:
        waits = [policy.delay(attempt, write_error(503)) for _ in range(300)]
        assert all(0.1 <= w <= top for w in waits), (attempt, min(waits), max(waits))  # type: ignore[operator]
        if top > 0.1:
            assert max(waits) - min(waits) > (top - 0.1) * 0.5  # actually spread, not constant  # type: ignore[operator]


def test_retry_after_seconds_is_honoured_and_capped() -> None:
    policy = Retry(backoff_min=0.01, backoff_max=10.0)
    assert policy.delay(1, write_error(429, {"Retry-After": "3"})) == 3.0
    assert policy.delay(1, write_error(503, {"retry-after": "7"})) == 7.0  # any case
    assert policy.delay(1, write_error(429, {"Retry-After": "3600"})) == 10.0  # capped by backoff_max
    assert Retry(respect_retry_after=False, jitter=False, backoff_min=0.01).delay(
        1, write_error(429, {"Retry-After": "3"})
    ) == 0.01


def test_retry_after_http_date() -> None:
    now = time.time()
    in_20s = email.utils.formatdate(now + 20, usegmt=True)
    assert 18.5 <= retry_after_seconds(in_20s, now=now) <= 20.0  # type: ignore[operator]
    assert retry_after_seconds(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    policy = Retry(backoff_min=0.01, backoff_max=5.0)
    assert policy.delay(1, write_error(503, {"Retry-After": in_20s})) == 5.0  # capped
    soon = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 <= Retry(backoff_max=30).delay(1, write_error(429, {"Retry-After": soon})) <= 3.0  # type: ignore[operator]


@pytest.mark.parametrize("junk", ["", "soon", "-5", "nan", "Mon, 99 Foo 2024"])
def test_unreadable_retry_after_falls_back_to_backoff(junk: str) -> None:
    got = retry_after_seconds(junk)
    assert got is None or got == 0.0  # "-5" reads as "now"
    wait = Retry(backoff_min=0.2, backoff_max=1.0, jitter=False).delay(1, write_error(429, {"Retry-After": junk}))
    assert wait == (0.0 if got == 0.0 else 0.2)


# ---- when to give up ------------------------------------------------------------------------


def test_max_attempts_counts_the_first_attempt() -> None:
    policy = Retry(max_attempts=3, max_elapsed=None)
    assert policy.delay(1, ConnectError("x")) is not None
    assert policy.delay(2, ConnectError("x")) is not None
    assert policy.delay(3, ConnectError("x")) is None
    assert Retry.never().delay(1, ConnectError("x")) is None


def test_max_elapsed_gives_up_when_the_next_attempt_would_start_too_late() -> None:
    policy = Retry(max_attempts=None, max_elapsed=10.0, backoff_min=1.0, backoff_max=1.0)
    assert policy.delay(5, ConnectError("x"), elapsed=8.5) == 1.0
    assert policy.delay(5, ConnectError("x"), elapsed=9.5) is None
    forever = Retry.forever(backoff_min=1.0, backoff_max=1.0)
    assert forever.delay(10**6, ConnectError("x"), elapsed=1e9) == 1.0


def test_policy_is_validated_and_frozen() -> None:
    with pytest.raises(ValueError):
        Retry(max_attempts=0)
    with pytest.raises(ValueError):
        Retry(backoff_min=2.0, backoff_max=1.0)
    with pytest.raises(ValueError):
        Retry(max_elapsed=-1)
    with pytest.raises(Exception):
        Retry().max_attempts = 3  # type: ignore[misc]
    assert Retry(statuses=[500]).statuses == frozenset({500})
    assert Retry.forever().max_attempts is None and Retry.forever().max_elapsed is None


def test_call_retries_then_returns_and_raises_the_last_error() -> None:
    sleeps: List[float] = []
    outcomes = [ConnectError("a"), write_error(503), "done"]

    def fn() -> str:
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    policy = Retry(backoff_min=0.5, backoff_max=4.0, jitter=False)
    assert policy.call(fn, sleep=sleeps.append) == "done"
    assert sleeps == [0.5, 1.0]

    calls = []

    def refused() -> None:
        calls.append(1)
        raise ConnectError(f"refused {len(calls)}")

    with pytest.raises(ConnectError, match="refused 4"):
        Retry(max_attempts=4, backoff_min=0.1, jitter=False).call(refused, sleep=sleeps.append)
    assert len(calls) == 4

    def bad() -> None:
        calls.append(1)
        raise write_error(400)

    calls.clear()
    with pytest.raises(WriteError):
        Retry().call(bad, sleep=sleeps.append)
    assert len(calls) == 1


# ---- Client.write(retry=...) against a server --------------------------------------------------


def test_client_write_does_not_retry_by_default() -> None:
    with FaultyServer([("status", 503, "down", {}), OK]) as server, Client(server.url) as client:
        with pytest.raises(WriteError) as info:
            client.write(request())
        assert info.value.status == 503
        assert len(server.arrivals) == 1


def test_client_write_retries_5xx_then_succeeds_sending_the_same_bytes() -> None:
    script = [("status", 500, "boom", {})] * 3 + [OK]
    with FaultyServer(script) as server, Client(server.url) as client:
        response = client.write(request(), retry=Retry(backoff_min=0.01, backoff_max=0.02))
        assert response.status == 204
        assert len(server.arrivals) == 4
        assert len({a.body for a in server.arrivals}) == 1  # encoded once, resent as is
        assert server.arrivals[0].request == request()


def test_client_write_gives_up_after_max_attempts() -> None:
    with FaultyServer([("status", 502, "bad gateway", {})]) as server, Client(server.url) as client:
        with pytest.raises(WriteError, match="502"):
            client.write(request(), retry=Retry(max_attempts=3, backoff_min=0.01, backoff_max=0.01))
        assert len(server.arrivals) == 3


def test_client_write_400_is_not_retried() -> None:
    with FaultyServer([("status", 400, "out of order sample", {}), OK]) as server, Client(server.url) as client:
        with pytest.raises(WriteError, match="out of order sample"):
            client.write(request(), retry=Retry(backoff_min=0.01))
        assert len(server.arrivals) == 1


def test_client_write_honours_retry_after_seconds() -> None:
    with FaultyServer([("status", 429, "slow down", {"Retry-After": "1"}), OK]) as server, Client(server.url) as client:
        start = time.monotonic()
        client.write(request(), retry=Retry(backoff_min=0.01, backoff_max=2.0))
        assert time.monotonic() - start >= 0.95
        assert len(server.arrivals) == 2


def test_client_send_retries_connection_refused() -> None:
    with Client(f"http://127.0.0.1:{free_port()}/api/v1/write") as client:
        start = time.monotonic()
        with pytest.raises(ConnectError, match="refused"):
            client.send(b"\x00", retry=Retry(max_attempts=3, backoff_min=0.05, backoff_max=0.05, jitter=False))
        assert time.monotonic() - start >= 0.09  # two waits of 0.05 s
