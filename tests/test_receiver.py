"""The embedded receiver against slow and hostile peers: bounded time, threads and memory; clear answers.

Timing tests use a Receiver in this process with short timeouts; thread and
memory tests run `promwrite receive` as it ships and read its /proc status.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

from promwrite import Client, TimeSeries, WriteError, WriteRequest, codec, snappy
from promwrite._pysnappy import max_compressed_length
from promwrite._serving import LINGERING
from promwrite.receiver import Receiver

import hostile

pytestmark = pytest.mark.timeout(120)

HEAD = hostile.REQUEST_LINE
V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


def port_of(receiver: Receiver) -> int:
    return int(receiver.url.split(":")[2].split("/")[0])


def post(body: bytes, **headers: str) -> bytes:
    """A whole POST with Content-Length, plus `headers` (underscores as dashes)."""
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return HEAD + f"Content-Length: {len(body)}\r\n{lines}\r\n".encode() + body


def one() -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": "up", "job": "rx"}, [(1.0, 1000)])])


def taken_again(port: int) -> int:
    """The status of a write sent until it is not 503 (the threads of closed connections end first), for 10 s."""
    deadline = time.monotonic() + 10
    while True:
        status, _, _ = hostile.exchange(port, post(codec.encode_payload(one()), Content_Encoding="snappy"))
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_slowloris_headers_cut_off_at_the_header_deadline() -> None:
    with Receiver(header_timeout=1.0) as receiver:
        took, answer = hostile.trickle(port_of(receiver), HEAD, b"X-Slow: " + b"a" * 60, 0.2, limit=10)
    assert 0.9 <= took < 4.0, took  # a byte every 0.2 s does not extend the deadline
    assert answer == b""


def test_slowloris_body_cut_off_at_the_body_deadline_with_408() -> None:
    with Receiver(body_timeout=1.0) as receiver:
        took, answer = hostile.trickle(port_of(receiver), HEAD + b"Content-Length: 100\r\n\r\n", b"\0" * 60, 0.2,
                                       limit=10)  # fmt: skip
        assert receiver.received == []
    assert 0.9 <= took < 4.0, took
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1 seconds" in answer


def test_body_in_pieces_within_the_deadline_is_taken() -> None:
    request = one()
    raw = post(codec.encode_payload(request), Content_Encoding="snappy")
    with Receiver(body_timeout=5.0) as receiver, hostile.connect(port_of(receiver)) as sock:
        for start in range(0, len(raw), 7):
            sock.sendall(raw[start : start + 7])
            time.sleep(0.01)
        closed, answer = hostile.closed_by_peer(sock, 2.0)
        assert answer.startswith(b"HTTP/1.1 204 "), answer
        assert not closed  # kept alive
        assert receiver.received == [request]


def test_idle_kept_alive_connection_closed_and_client_reconnects() -> None:
    with Receiver(header_timeout=0.5) as receiver, Client(receiver.url) as client:
        client.write(one())
        time.sleep(1.0)  # the receiver closes the idle connection
        client.write(one())
        assert len(receiver.received) == 2


def test_stop_ends_open_connections_at_once() -> None:
    receiver = Receiver().start()  # its header deadline (10 s) is far off
    socks = hostile.open_many(port_of(receiver), 3, HEAD)
    try:
        time.sleep(0.2)
        started = time.monotonic()
        receiver.stop()
        assert time.monotonic() - started < 3.0
        assert [hostile.closed_by_peer(sock, 2.0)[0] for sock in socks] == [True] * 3  # no thread left reading
    finally:
        hostile.close_all(socks)


def test_connection_cap_answers_503_from_the_accepting_thread() -> None:
    with Receiver(max_connections=2, header_timeout=30.0) as receiver:
        port = port_of(receiver)
        held = hostile.open_many(port, 2, HEAD)
        try:
            time.sleep(0.2)
            started = time.monotonic()
            status, headers, body = hostile.exchange(port, post(codec.encode_payload(one()), Content_Encoding="snappy"))
            assert status == 503 and headers["Retry-After"] == "1" and b"at most 2" in body
            assert time.monotonic() - started < 3.0
        finally:
            hostile.close_all(held)
        assert taken_again(port) == 204


def test_a_sender_over_the_cap_reads_the_503_not_a_reset() -> None:
    # Before, the refused connection was closed with the body unread: the kernel reset it, and the
    # sender got "the server closed the connection before answering" instead of the 503.
    body = snappy.compress(os.urandom(8_000_000))  # far more than the socket buffers hold
    with Receiver(max_connections=1, header_timeout=30.0) as receiver:
        held = hostile.open_many(port_of(receiver), 1, HEAD)
        try:
            time.sleep(0.2)
            for _ in range(3):
                with Client(receiver.url, timeout=10) as client, pytest.raises(WriteError) as info:
                    client.send(body)
                assert info.value.status == 503 and "at most 1 at once" in info.value.body
                assert info.value.headers["Retry-After"] == "1"
        finally:
            hostile.close_all(held)
        assert receiver.received == []


def test_refusals_never_hold_the_accepting_thread() -> None:
    with Receiver(max_connections=1, header_timeout=30.0) as receiver:
        port = port_of(receiver)
        held = hostile.open_many(port, 1, HEAD)
        silent = hostile.open_many(port, LINGERING + 4, b"")  # refused, drained while they say nothing
        try:
            time.sleep(0.2)
            started = time.monotonic()
            status, _, _ = hostile.exchange(port, post(codec.encode_payload(one()), Content_Encoding="snappy"))
            assert (status, time.monotonic() - started < 3.0) == (503, True)  # lingering on each: 24 s
            assert all(hostile.closed_by_peer(sock, 1.0)[1].startswith(b"HTTP/1.1 503 ") for sock in silent)
        finally:
            hostile.close_all(held + silent)
        assert taken_again(port) == 204


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer read from `sock` (status line, headers and body), as it came."""
    sock.settimeout(5.0)
    response = http.client.HTTPResponse(sock)
    response.begin()
    head = "".join(f"{name}: {value}\r\n" for name, value in response.getheaders())
    return f"HTTP/1.1 {response.status} {response.reason}\r\n{head}\r\n".encode() + response.read()


def big_write(size: int) -> bytes:
    """A valid remote-write body of about `size` bytes (one series with a long random label value)."""
    value = base64.b64encode(os.urandom(size * 3 // 4)).decode()[:size]
    return codec.encode_payload(WriteRequest([TimeSeries({"__name__": "big", "pad": value}, [(1.0, 1000)])]))


def test_memory_budget_bounds_bodies_held_at_once() -> None:
    body = big_write(1_000_000)  # about 1 MB as sent and decompressed (random text compresses little)
    budget = 5_000_000  # at least one request of max_length (2.45 MB sent, 2 MB decompressed)
    with Receiver(max_length=2_000_000, memory_budget=budget, body_timeout=20.0) as receiver:
        port = port_of(receiver)
        socks = hostile.open_many(port, 8, post(body, Content_Encoding="snappy")[:-1])  # all but the last byte
        try:
            deadline = time.monotonic() + 10
            while True:  # until each body has arrived but its last byte (held, and the byte awaited), or was refused
                early = [hostile.closed_by_peer(sock, 0.0)[1] for sock in socks]
                waiting = early.count(b"")
                if receiver._budget.held == waiting * len(body) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            held = receiver._budget.held
            assert held == waiting * len(body), (waiting, held, [answer[:40] for answer in early])
            for sock, answer in zip(socks, early):
                if not answer:
                    sock.sendall(body[-1:])  # each decodes within the budget, or is answered 503
            answers = [answer or read_answer(sock) for sock, answer in zip(socks, early)]
        finally:
            hostile.close_all(socks)
        assert taken_again(port) == 204
        assert receiver._budget.peak <= budget and receiver._budget.held == 0
    assert 1 <= waiting <= 4, waiting  # 8 would hold 8 MB
    statuses = [answer.split(b" ", 2)[1] for answer in answers]
    assert set(statuses) <= {b"204", b"503"} and statuses.count(b"503") >= 4, statuses
    assert all(b"Retry-After: 1\r\n" in answer and b"at once; try again" in answer
               for answer in answers if answer.startswith(b"HTTP/1.1 503"))  # fmt: skip


def test_a_sender_over_the_memory_budget_reads_the_503_mid_body() -> None:
    held_body = big_write(1_200_000)
    with Receiver(max_length=2_000_000, memory_budget=5_000_000, body_timeout=20.0) as receiver:
        port = port_of(receiver)
        held = hostile.open_many(port, 3, post(held_body, Content_Encoding="snappy")[:-1])  # 3.6 MB of 5 MB
        try:
            deadline = time.monotonic() + 10
            while receiver._budget.held < 3 * len(held_body) and time.monotonic() < deadline:
                time.sleep(0.05)
            with Client(receiver.url, timeout=10) as client, pytest.raises(WriteError) as info:
                client.send(big_write(1_900_000))  # refused once 1.4 MB of it arrived; the rest drained
        finally:
            hostile.close_all(held)
        assert receiver.received == [] and receiver._budget.peak <= 5_000_000
    assert info.value.status == 503 and info.value.retryable and info.value.headers["Retry-After"] == "1"
    assert "at most 5,000,000 bytes of request bodies at once; try again" in info.value.body


@pytest.mark.parametrize(
    "raw, status, words",
    [
        (HEAD + b"\r\n", 411, "Content-Length required"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "Transfer-Encoding"),
        (HEAD + b"Content-Length: abc\r\n\r\n", 400, "malformed Content-Length"),
        (HEAD + b"Content-Length: 1_0\r\n\r\n0123456789", 400, "malformed Content-Length"),  # int() takes it
        (HEAD + b"Content-Length: -1\r\n\r\n", 400, "malformed Content-Length"),
        (HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "malformed Content-Length"),
        (HEAD + b"Content-Length: %d\r\n\r\n" % (max_compressed_length(1000) + 1), 413,
         f"a body of {max_compressed_length(1000) + 1} bytes is over this receiver's limit of"
         f" {max_compressed_length(1000)} bytes"),
        (post(snappy.compress(b"\0" * 1001), Content_Encoding="snappy"), 413,
         "over this receiver's limits: the request is 1,001 bytes decompressed, over DecodeLimits.max_bytes = 1,000"),
        (post(snappy.compress(b"\0" * 1001), Content_Type=V2), 413, "the request is 1,001 bytes decompressed"),
        (post(b"\xff\xff\xff\xff\xff\xff"), 400, "bad remote write: snappy"),
        (post(snappy.compress(b"\x0a\x05\x0a\x03")), 400, "bad remote write"),
    ],
)
def test_malformed_is_400_over_limit_is_413_with_a_reason(raw: bytes, status: int, words: str) -> None:
    with Receiver(max_length=1000) as receiver:
        got, headers, body = hostile.exchange(port_of(receiver), raw)
        assert receiver.received == []
    assert got == status and words in body.decode(), (got, body)
    if b"proto=io.prometheus.write.v2" in raw:  # a 2.0 answer carries the counts, 0 when refused
        assert headers["X-Prometheus-Remote-Write-Samples-Written"] == "0"


@pytest.mark.parametrize(
    "header, status",
    [(b"Authorization: Basic d3Jvbmc6d3Jvbmc=", 401), (b"Content-Type: application/json", 415),
     (b"Content-Encoding: gzip", 415)],
)
def test_refused_by_its_headers_before_the_body_is_read(header: bytes, status: int) -> None:
    with Receiver(basic_auth=("u", "p") if status == 401 else None, header_timeout=2.0) as receiver:
        started = time.monotonic()
        raw = HEAD + b"Content-Length: 50000000\r\n" + header + b"\r\n\r\n" + b"\0" * 10  # the rest never comes
        got, headers, _ = hostile.exchange(port_of(receiver), raw)
        assert (got, time.monotonic() - started < 3.0) == (status, True)  # not the 10 s of the rest
        assert headers["Connection"] == "close"


def test_sender_of_an_over_limit_body_reads_the_413_not_a_reset() -> None:
    body = snappy.compress(os.urandom(8_000_000))  # far more than the socket buffers hold
    with Receiver(max_length=100_000) as receiver, Client(receiver.url) as client:
        with pytest.raises(WriteError) as info:
            client.send(body)
        assert receiver.received == []
    assert info.value.status == 413 and f"a body of {len(body)} bytes is over" in info.value.body


def test_half_open_flood_holds_at_most_the_cap_in_threads() -> None:
    with hostile.receive_process() as (proc, port):
        socks = hostile.open_many(port, 300, HEAD)  # each sent half a request, then waits
        try:
            time.sleep(1.0)
            status = hostile.proc_status(proc.pid)
            refused = [hostile.closed_by_peer(sock, 0.5 if i == 100 else 0.0) for i, sock in enumerate(socks)]
        finally:
            hostile.close_all(socks)
        assert status["Threads"] <= 100 + LINGERING + 3, status  # the cap, lingering refusals, accepting and main
        closed = [answer for was_closed, answer in refused if was_closed]
        assert len(closed) >= 200 and all(a.startswith(b"HTTP/1.1 503 ") for a in closed if a)
        assert taken_again(port) == 204  # serves again once the flood is gone


def test_huge_declared_bodies_cost_what_arrived() -> None:
    declared = 78_000_000  # under the default limit; 20 of them 1.5 GB when allocated up front
    with hostile.receive_process() as (proc, port):
        socks = hostile.open_many(port, 20, HEAD)
        try:
            time.sleep(1.0)  # a thread (and stack) for each
            before: Dict[str, int] = hostile.proc_status(proc.pid)
            for sock in socks:
                sock.sendall(b"Content-Length: %d\r\n\r\n" % declared + b"\0" * 10)
            time.sleep(1.5)
            after = hostile.proc_status(proc.pid)
        finally:
            hostile.close_all(socks)
    assert after["Threads"] == before["Threads"]
    grown_kb = after["VmSize"] - before["VmSize"]
    assert grown_kb < 20 * 1024, (before, after)  # 20 x 78 MB declared: under 1 MB each was allocated
    assert after["VmHWM"] - before["VmHWM"] < 20 * 1024, (before, after)


def test_memory_budget_bounds_what_a_receive_process_holds() -> None:
    # 12 connections each sending 4 MB but the last byte: before, all 12 were held (VmHWM +46 MB);
    # with a 10 MB budget, two are, the others answered 503 (+10 MB).
    budget = 10_000_000
    data = os.urandom(4_000_000)
    with hostile.receive_process("--max-length", "4000000", "--memory-budget", str(budget)) as (proc, port):
        socks = hostile.open_many(port, 12, HEAD)
        try:
            time.sleep(1.0)  # a thread (and stack) for each
            before = hostile.proc_status(proc.pid)
            for sock in socks:
                sock.sendall(b"Content-Length: %d\r\nContent-Encoding: snappy\r\n\r\n" % len(data) + data[:-1])
            time.sleep(1.5)
            after = hostile.proc_status(proc.pid)
            answers = [hostile.closed_by_peer(sock, 0.0)[1] for sock in socks]
        finally:
            hostile.close_all(socks)
    assert after["VmHWM"] - before["VmHWM"] < (budget >> 10) + 6 * 1024, (before, after)
    refused = [answer for answer in answers if answer]
    assert len(refused) >= 12 - budget // len(data), answers
    assert all(answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1\r\n" in answer for answer in refused)


def test_receive_flags_set_its_timeouts_cap_and_limits() -> None:
    flags = ["--header-timeout", "1", "--body-timeout", "1", "--max-connections", "2", "--max-length", "1000"]
    with hostile.receive_process(*flags) as (proc, port):
        held = hostile.open_many(port, 2, HEAD)  # first: no earlier connection's thread may still hold a slot
        try:
            time.sleep(0.2)
            status, _, body = hostile.exchange(port, post(codec.encode_payload(one()), Content_Encoding="snappy"))
            assert status == 503 and b"at most 2 at once" in body
        finally:
            hostile.close_all(held)
        assert taken_again(port) == 204
        took, answer = hostile.trickle(port, HEAD, b"X-Slow: " + b"a" * 60, 0.2, limit=10)
        assert 0.9 <= took < 4.0 and answer == b"", took
        took, answer = hostile.trickle(port, HEAD + b"Content-Length: 100\r\n\r\n", b"\0" * 60, 0.2, limit=10)
        assert 0.9 <= took < 4.0 and b"did not arrive within 1 seconds" in answer, took
        status, _, body = hostile.exchange(port, post(snappy.compress(b"\0" * 1001), Content_Encoding="snappy"))
        assert status == 413 and b"1,001 bytes decompressed, over DecodeLimits.max_bytes = 1,000" in body


@pytest.mark.parametrize(
    "options, words",
    [({"max_length": 0}, "max_length must be a positive int of at most 4,294,967,295, not 0"),
     ({"max_length": -1}, "max_length must be a positive int of at most 4,294,967,295, not -1"),
     ({"max_length": 1 << 32}, "max_length must be a positive int of at most 4,294,967,295, not 4294967296"),
     ({"max_length": "1000"}, "max_length must be a positive int of at most 4,294,967,295, not '1000'"),
     ({"max_length": 1000.0}, "max_length must be a positive int of at most 4,294,967,295, not 1000.0"),
     ({"memory_budget": 0}, "memory_budget must be a positive int, not 0"),
     ({"memory_budget": -(1 << 30)}, "memory_budget must be a positive int, not -1073741824"),
     ({"memory_budget": 1e9}, "memory_budget must be a positive int, not 1000000000.0"),
     ({"max_length": 1000, "memory_budget": 1000}, "memory_budget must hold at least one request"),
     ({"max_connections": 0}, "max_connections must be a positive int, not 0"),
     ({"max_connections": True}, "max_connections must be a positive int, not True"),
     ({"max_connections": 2.5}, "max_connections must be a positive int, not 2.5"),
     ({"header_timeout": 0}, "header_timeout must be positive seconds, not 0"),
     ({"header_timeout": "10"}, "header_timeout must be positive seconds, not '10'"),
     ({"body_timeout": -1.0}, "body_timeout must be positive seconds, not -1.0"),
     ({"body_timeout": float("nan")}, "body_timeout must be positive seconds, not nan"),
     ({"body_timeout": float("inf")}, "body_timeout must be positive seconds, not inf"),
     ({"port": -1}, "port must be an int in [0, 65535] (0 picks a free one), not -1"),
     ({"port": 65536}, "port must be an int in [0, 65535] (0 picks a free one), not 65536")],
    ids=lambda v: "" if isinstance(v, str) else "-".join(f"{k}={v!r}" for k, v in v.items()),
)
def test_receiver_refuses_nonsensical_numbers(options: Dict[str, object], words: str) -> None:
    # Before, max_length=0 made a receiver that answered every write 413, and a string or float
    # raised a TypeError from deep inside (or was taken), and an inf timeout failed at the first read.
    with pytest.raises(ValueError) as info:
        Receiver(**options)  # type: ignore[arg-type]
    assert words in str(info.value)


@pytest.mark.parametrize(
    "flags, words",
    [(["--max-connections", "0"], "argument --max-connections: must be a positive whole number, not '0'"),
     (["--max-length", "0"], "argument --max-length: must be a positive whole number, not '0'"),
     (["--max-length", "-5"], "argument --max-length: must be a positive whole number, not '-5'"),
     (["--memory-budget", "1.5"], "argument --memory-budget: must be a positive whole number, not '1.5'"),
     (["--header-timeout", "0"], "argument --header-timeout: must be a positive number of seconds, not '0'"),
     (["--body-timeout", "nan"], "argument --body-timeout: must be a positive number of seconds, not 'nan'"),
     (["--port", "70000"], "argument --port: must be a port number in [0, 65535], not '70000'"),
     (["--max-length", "5000000000"], "max_length must be a positive int of at most 4,294,967,295"),
     (["--max-length", "1000", "--memory-budget", "1000"], "memory_budget must hold at least one request")],
)
def test_receive_refuses_bad_flag_values(flags: List[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "promwrite", "receive", "--port", "0", *flags],
                          capture_output=True, text=True, timeout=60, cwd=hostile.ROOT)  # fmt: skip
    assert done.returncode == 2 and words in done.stderr, done.stderr
