"""The HTTP client against our misbehaving local server and the embedded receiver."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from typing import Callable

import pytest

import promwrite
from promwrite import (
    BasicAuth,
    BearerAuth,
    Client,
    ConnectError,
    Sample,
    OAuth2,
    SeriesError,
    TimeSeries,
    WriteError,
    WriteRequest,
)
from promwrite.receiver import Receiver

from .faulty import OK, FaultyServer, free_port

SECRET = "s3cr3t-P@ss"


def one(name: str = "up", value: float = 1.0, ts: int = 1_700_000_000_000) -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": name, "job": "t"}, sample=Sample(value, timestamp_ms=ts))])


def test_protocol_headers_and_body() -> None:
    with FaultyServer() as server, Client(server.url) as client:
        response = client.write(one())
        assert response.status == 204
        arrival = server.arrivals[0]
    headers = {k.lower(): v for k, v in arrival.headers.items()}
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert headers["user-agent"] == f"promwrite/{promwrite.__version__}"
    assert arrival.request == one()


def test_basic_auth_and_tenant_headers() -> None:
    with FaultyServer() as server:
        with Client(server.url, auth=BasicAuth("cls-id", SECRET), headers={"X-Scope-OrgID": "team-a"}) as client:
            client.write(one(), headers={"THANOS-TENANT": "t1", "X-Scope-OrgID": "team-b"})
        headers = server.arrivals[0].headers
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"cls-id:{SECRET}".encode()).decode()
    assert headers["X-Scope-OrgID"] == "team-b"  # per-write headers win
    assert headers["THANOS-TENANT"] == "t1"


def test_credentials_in_url_become_basic_auth_and_are_redacted() -> None:
    with FaultyServer([("status", 500, "boom", {})]) as server:
        url = server.url.replace("http://", f"http://user:{SECRET}@")
        client = Client(url)
        assert SECRET not in repr(client) and SECRET not in client.url
        with pytest.raises(WriteError) as info:
            client.write(one())
        assert server.arrivals[0].headers["Authorization"].startswith("Basic ")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_bearer_token_file_rotates(tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    auth = BearerAuth(token_file=str(token_file))
    with FaultyServer() as server, Client(server.url, auth=auth) as client:
        client.write(one())
        token_file.write_text("second-token-longer\n")
        os.utime(token_file, ns=(time.time_ns() + 10**9,) * 2)
        client.write(one())
    assert [a.headers["Authorization"] for a in server.arrivals] == ["Bearer first-token", "Bearer second-token-longer"]
    assert "token" not in repr(BearerAuth("abc")) .replace("token=***", "")


def test_secrets_never_shown(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="promwrite")
    with FaultyServer([("status", 401, "unauthorized", {})]) as server:
        for auth in (BasicAuth("u", SECRET), BearerAuth(SECRET)):
            client = Client(server.url, auth=auth)
            with pytest.raises(WriteError) as info:
                client.write(one())
            for text in (repr(client), repr(auth), str(info.value), repr(info.value), caplog.text):
                assert SECRET not in text


@pytest.mark.parametrize(
    "status, retryable",
    [(400, False), (401, False), (404, False), (409, False), (413, False), (429, True), (500, True), (502, True), (503, True)],
)
def test_write_error_statuses(status: int, retryable: bool) -> None:
    body = f"status {status}: out of order sample for series up"
    with FaultyServer([("status", status, body, {"Retry-After": "3"})]) as server, Client(server.url) as client:
        with pytest.raises(WriteError) as info:
            client.write(one())
    err = info.value
    assert (err.status, err.retryable, err.body) == (status, retryable, body)
    assert err.headers["retry-after"] == "3"
    assert isinstance(err, promwrite.PromwriteError)
    assert server.url in str(err) and body in str(err)


def test_connection_refused_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    with pytest.raises(ConnectError, match="127.0.0.1") as info:
        Client(url).write(one())
    assert "refused" in str(info.value)


def test_timeout() -> None:
    with FaultyServer([("hang", 2.0)]) as server:
        client = Client(server.url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(promwrite.TimeoutError, match="no answer within 0.3 s"):
            client.write(one())
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("action", [("close",), ("reset",)])
def test_connection_dropped_without_answer(action) -> None:
    with FaultyServer([action]) as server, Client(server.url) as client:
        with pytest.raises(ConnectError, match=server.url.split("/api")[0]):
            client.write(one())


def test_stale_kept_alive_connection_is_replaced() -> None:
    """The server closes an idle kept-alive connection: the next write uses a new one."""
    with FaultyServer([OK, ("close",), OK]) as server, Client(server.url) as client:
        client.write(one(value=1))
        # the server answers the second POST by closing; the client sent on a reused
        # connection, so it tries once more on a fresh one and that succeeds
        client.write(one(value=2))
        assert [a.request.timeseries[0].samples[0].value for a in server.arrivals] == [1, 2, 2]


def test_invalid_input_sends_nothing() -> None:
    with FaultyServer() as server, Client(server.url) as client:
        with pytest.raises(SeriesError, match="no __name__"):
            client.write(WriteRequest([TimeSeries({"job": "x"}, sample=Sample(1))]))
        with pytest.raises(ValueError):
            client.write(WriteRequest([TimeSeries({"__name__": "x"}, sample=Sample("12"))]))  # type: ignore[arg-type]
        assert server.arrivals == []


def test_threads_share_a_client() -> None:
    with Receiver() as receiver, Client(receiver.url) as client:
        def worker(k: int) -> None:
            for i in range(25):
                client.write(one(name=f"m{k}", value=i, ts=1_700_000_000_000 + i))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted((r.timeseries[0].labels[0].value, r.timeseries[0].samples[0].value) for r in receiver.received)
    assert got == sorted((f"m{k}", float(i)) for k in range(8) for i in range(25))


def test_closed_client_refuses() -> None:
    with FaultyServer() as server:
        with Client(server.url) as client:
            client.write(one())
        with pytest.raises(promwrite.PromwriteError, match="closed"):
            client.write(one())


def test_receiver_requires_basic_auth() -> None:
    with Receiver(basic_auth=("u", SECRET)) as receiver:
        with pytest.raises(WriteError) as info:
            Client(receiver.url, auth=BasicAuth("u", "wrong")).write(one())
        assert info.value.status == 401
        Client(receiver.url, auth=BasicAuth("u", SECRET)).write(one())
        assert len(receiver.received) == 1


def test_receiver_rejects_garbage_with_400() -> None:
    with Receiver() as receiver, Client(receiver.url) as client:
        with pytest.raises(WriteError) as info:
            client.send(b"\xff\xff\xff\xff\xff\xff")
    assert info.value.status == 400 and "snappy" in info.value.body


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"timeout": 0}, "timeout"),
        ({"ca_file": "x.pem"}, "TLS options"),
        ({"auth": BasicAuth("a", "b")}, None),
    ],
)
def test_client_options_checked(kwargs, match) -> None:
    if match is None:
        Client("http://127.0.0.1:1/api/v1/write", **kwargs)
    else:
        with pytest.raises(ValueError, match=match):
            Client("http://127.0.0.1:1/api/v1/write", **kwargs)
    with pytest.raises(ValueError, match="http"):
        Client("ftp://example/api")


def _in_fork(child: "Callable[[], None]", timeout: float = 10.0) -> int:
    """Run `child` in a forked process; its exit status (0: no exception), killed after `timeout`."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection_and_lock() -> None:
    # The parent's kept-alive connection and a lock held by one of its threads
    # at the moment of the fork must not reach the child: the child's write
    # goes out on a connection of its own, and does not hang on the lock.
    with FaultyServer() as server, Client(server.url, timeout=5) as client:
        client.write(one("before_fork"))
        assert server.connections == 1
        held, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            with client._lock:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        held.wait(5)
        try:
            status = _in_fork(lambda: client.write(one("in_child")))
        finally:
            release.set()
            holder.join()
        assert status == 0
        client.write(one("parent_after"))  # the parent's kept-alive connection is still its own
        names = [a.request.timeseries[0].labels[0].value for a in server.arrivals]
    assert sorted(names) == ["before_fork", "in_child", "parent_after"]
    assert server.connections == 2


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5", None])
def test_timeout_must_be_positive_finite_seconds(timeout: object) -> None:
    """NaN and infinity used to be taken (and fail later, inside the socket); a bool as 1 s."""
    with pytest.raises(ValueError, match=f"timeout must be positive seconds, not {timeout!r}"):
        Client("http://127.0.0.1:1/w", timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"timeout must be positive seconds, not {timeout!r}"):
        OAuth2("id", "secret", "https://idp/token", timeout=timeout)  # type: ignore[arg-type]
