"""The client against slow and hostile peers: bounded time and memory, and no secret leaves.

Loopback only; every server here stops on its own within a bounded count of steps.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import logging
import os
import pathlib
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

import promwrite
from promwrite import (
    AsyncClient, BearerAuth, Client, ConnectError, OAuth2, OAuth2Error, Retry, Sample, TimeSeries, WriteError,
    WriteRequest, Writer,
)  # fmt: skip

from .faulty import OK, FaultyServer, LoopbackServer, free_port
from .test_auth_oauth2 import TokenServer

SECRET = "hunter2-Zq9xK"
ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def one(name: str = "up") -> WriteRequest:
    return WriteRequest([TimeSeries({"__name__": name, "job": "t"}, sample=Sample(1.0, timestamp_ms=1_700_000_000_000))])


# -- timeout is a deadline for the whole exchange ---------------------------------------------


@pytest.mark.parametrize("action", [("trickle_headers", 0.5, 40), ("trickle_body", 0.5, 40)], ids=["headers", "body"])
def test_timeout_bounds_a_trickling_answer(action: Tuple[object, ...]) -> None:
    # One header line (or body byte) every 0.5 s never lets a 2 s socket read time out:
    # before, the write took the whole 20 s trickle; the deadline ends it at 2 s.
    with FaultyServer([action]) as server, Client(server.url, timeout=2) as client:
        started = time.monotonic()
        with pytest.raises(promwrite.TimeoutError, match="no answer within 2 s"):
            client.write(one())
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed


def test_a_writer_shard_is_bounded_by_the_deadline_too() -> None:
    with FaultyServer([("trickle_headers", 0.5, 40)]) as server:
        w = Writer(server.url, timeout=1, shards=1, flush_interval=0.02, retry=Retry(max_attempts=1),
                   close_at_exit=False, close_timeout=5)  # fmt: skip
        try:
            w.add({"__name__": "up"}, 1.0, timestamp_ms=1_700_000_000_000)
            started = time.monotonic()
            assert w.flush(10)
            assert time.monotonic() - started < 3.0
            stats = w.stats()
        finally:
            w.close()
    assert stats.samples_failed == {"timeout": 1}
    assert "no answer within 1 s" in (stats.last_error or "")


@pytest.fixture
def hanging_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """socket.getaddrinfo made to hang on looking up "localhost" (for up to 10 s, until the test ends), as
    with an unreachable DNS server; a numeric-only query (AI_NUMERICHOST: no lookup) still answers at once."""
    real = socket.getaddrinfo
    release = threading.Event()

    def hanging(host: object, port: object, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> object:
        if host == "localhost" and not flags & socket.AI_NUMERICHOST:
            release.wait(10)
        return real(host, port, family, type, proto, flags)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    yield
    release.set()


def _write_with(url: str) -> None:
    with Client(url, timeout=1) as client:
        client.write(one())


def _write_async(url: str) -> None:
    async def write() -> None:
        async with AsyncClient(url, timeout=1) as client:
            await client.write(one())

    asyncio.run(write())


def _fetch_token(url: str) -> None:
    OAuth2("id", SECRET, url, timeout=1).token()


@pytest.mark.parametrize("call", [_write_with, _write_async, _fetch_token], ids=["client", "asyncio", "oauth2"])
def test_timeout_bounds_the_name_lookup(hanging_resolver: None, call: Callable[[str], None]) -> None:
    # Before, getaddrinfo ran outside the deadline: the call waited the resolver's 10 s, then went on.
    with FaultyServer() as server:
        started = time.monotonic()
        with pytest.raises(promwrite.TimeoutError, match="no answer within 1 s"):
            call(server.url.replace("127.0.0.1", "localhost"))
        elapsed = time.monotonic() - started
        assert server.arrivals == []
    assert elapsed < 2.0, elapsed


def _lookup_threads() -> int:
    return sum(t.name == "promwrite-resolve" and t.is_alive() for t in threading.enumerate())


def _lookup_threads_reach(count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _lookup_threads() != count and time.monotonic() < deadline:
        time.sleep(0.01)
    return _lookup_threads() == count


def test_lookups_on_a_hung_resolver_are_shared_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, every call left its own thread waiting on the resolver: 400 calls, 400 threads.
    from promwrite._resolve import MAX_LOOKUPS, ResolverBusy, resolve

    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: object, port: object, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> object:
        if flags & socket.AI_NUMERICHOST:
            return real(host, port, family, type, proto, flags)  # type: ignore[arg-type]
        release.wait(30)  # a name: hangs, as with an unreachable DNS server, until released
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    assert _lookup_threads_reach(0, 10)  # other tests' lookups have ended
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        for _ in range(200):
            with pytest.raises(socket.timeout, match="'same.test' was not resolved within 0.01 s"):
                resolve("same.test", 80, 0.01)
        assert _lookup_threads() == 1  # one lookup, shared by every caller
        refused = 0
        for i in range(200):
            with pytest.raises((socket.timeout, ResolverBusy), match=f"'host{i}.test' was not resolved") as info:
                resolve(f"host{i}.test", 80, 0.01)
            refused += isinstance(info.value, ResolverBusy) and "lookups are still waiting" in str(info.value)
        assert _lookup_threads() == MAX_LOOKUPS
        with Client("http://busy.test:9/w", timeout=5) as client, pytest.raises(ConnectError) as busy:
            client.write(WriteRequest([TimeSeries({"__name__": "up"}, [(1.0, 1)])]))
        assert str(busy.value) == ("http://busy.test:9/w: 'busy.test' was not resolved:"
                                   f" {MAX_LOOKUPS} other lookups are still waiting")  # at once, and not "no answer within 5 s"
        assert refused == 200 - (MAX_LOOKUPS - 1)  # failed at once, without a thread
        assert resolve("127.0.0.1", 80, 0.01)[0][4] == ("127.0.0.1", 80)  # an address needs no lookup
    finally:
        release.set()
    assert _lookup_threads_reach(0, 10)
    assert resolve("same.test", 80, 5)[0][4] == ("127.0.0.1", 80)  # a new lookup once they ended


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_wait_on_its_parents_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent's lookup thread is not in the child: its shared lookup would never end there, and
    # every lookup of that name in the child would wait its whole timeout.
    from promwrite._resolve import resolve

    release = threading.Event()

    def hanging(host: object, port: object, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> object:
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "not a numeric address")
        release.wait(30)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(socket.timeout):
            resolve("forked.test", 80, 0.01)  # its lookup hangs on in a thread
        pid = os.fork()
        if pid == 0:  # the child: the resolver answers now
            code = 1
            try:
                release.set()
                code = 0 if resolve("forked.test", 80, 5)[0][4] == ("127.0.0.1", 80) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


# -- bodies are read up to a bound ---------------------------------------------------------------

HUGE = 64 << 20


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("code", [200, 500])
def test_a_huge_answer_is_not_read_whole(code: int, chunked: bool) -> None:
    with FaultyServer([("huge", code, HUGE, chunked), OK]) as server, Client(server.url, timeout=20) as client:
        tracemalloc.start()
        try:
            if code == 200:
                body = client.write(one()).body
            else:
                with pytest.raises(WriteError) as info:
                    client.write(one())
                body = info.value.body.encode()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert body == b"e" * 65536  # what WriteError.body keeps
        assert peak < 2 << 20, f"peak {peak / 2**20:.1f} MiB for a {HUGE >> 20} MiB answer"
        client.write(one())  # the rest was not read: that connection was closed, a new one serves
        assert server.connections == 2


# -- header values that cannot be sent, URL queries, proxy credentials -----------------------------


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    with FaultyServer() as server:
        with pytest.raises(ValueError, match="X-Api-Key") as built:
            Client(server.url, headers={"X-Api-Key": f"k\r\nX-Evil: {SECRET}"})
        cases = [(BearerAuth(f"abc\n{SECRET}"), None, "Authorization"), (None, {"X-Key": f"a\n{SECRET}"}, "X-Key")]
        errors: List[BaseException] = [built.value]
        for auth, headers, name in cases:
            with Client(server.url, auth=auth) as client:
                with pytest.raises(ValueError, match=name) as info:
                    client.write(one(), headers=headers)
                errors.append(info.value)
        assert server.arrivals == []
    for err in errors:
        assert SECRET not in str(err) and SECRET not in repr(err)


def test_query_string_secrets_are_redacted() -> None:
    refused = f"http://127.0.0.1:{free_port()}/api/v1/write?api_key={SECRET}&tenant=a"
    client = Client(refused)
    shown = [client.url, repr(client)]
    with pytest.raises(ConnectError) as connect:
        client.write(one())
    with FaultyServer([("hang", 2.0)]) as hanging, Client(hanging.url + f"?api_key={SECRET}", timeout=0.3) as slow:
        with pytest.raises(promwrite.TimeoutError) as timeout:
            slow.write(one())
    with FaultyServer([("status", 500, "boom", {})]) as failing:
        with Client(failing.url + f"?api_key={SECRET}") as c500:
            with pytest.raises(WriteError) as write:
                c500.write(one())
        assert failing.arrivals[0].path == f"/api/v1/write?api_key={SECRET}"  # sent, only not shown
    assert client.url.endswith("/api/v1/write?api_key=***&tenant=***")
    for err in (connect.value, timeout.value, write.value):
        shown += [str(err), repr(err)]
    assert not [text for text in shown if SECRET in text]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1, and the CA file (the self-signed certificate) a client trusts."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def test_timeout_bounds_a_trickling_answer_over_tls(tls: Tuple[ssl.SSLContext, str]) -> None:
    context, ca_file = tls
    with FaultyServer([OK, ("trickle_headers", 0.5, 40)], tls=context) as server:
        with Client(server.url, ca_file=ca_file, timeout=2) as client:
            assert client.write(one()).status == 204
            started = time.monotonic()
            with pytest.raises(promwrite.TimeoutError):
                client.write(one())
            assert time.monotonic() - started < 3.0


def test_an_https_token_endpoint_redirecting_to_plain_http_is_not_followed(
    tls: Tuple[ssl.SSLContext, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10, point 3: urllib followed such a redirect, re-sending the client secret in clear text.
    context, ca_file = tls
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # OAuth2 verifies with the default trust store
    with TokenServer(host="127.0.0.2") as elsewhere:  # another loopback address, plain http
        with FaultyServer([("status", 302, "", {"Location": elsewhere.url})], tls=context) as redirector:
            with pytest.raises(OAuth2Error, match="HTTP 302, a redirect to http://127.0.0.2") as info:
                OAuth2("id", SECRET, redirector.url).token()
            assert [a.headers["Authorization"][:6] for a in redirector.arrivals] == ["Basic "]  # it got the request
        assert elsewhere.requests == []
    assert SECRET not in str(info.value)


def test_oauth2_verifies_its_token_endpoint_with_the_given_ssl_context(tls: Tuple[ssl.SSLContext, str]) -> None:
    # Before, OAuth2 took no ssl_context: a token endpoint behind a private CA was out of reach
    # unless the whole process's trust store (SSL_CERT_FILE) was changed.
    context, ca_file = tls
    with TokenServer(secret=SECRET, tls=context) as tokens:
        with pytest.raises(ConnectError, match="OAuth2 token endpoint https://127.0.0.1:.*TLS failed: CERTIFICATE_VERIFY_FAILED"):
            OAuth2("id", SECRET, tokens.url).token()  # the system's trust store knows nothing of the test CA
        assert OAuth2("id", SECRET, tokens.url, ssl_context=ssl.create_default_context(cafile=ca_file)).token() == "tok-1"
        # The Client's TLS settings are the remote-write endpoint's, not the token endpoint's: not borrowed.
        with FaultyServer([OK], tls=context) as endpoint:
            with Client(endpoint.url, ca_file=ca_file, auth=OAuth2("id", SECRET, tokens.url)) as client:
                with pytest.raises(ConnectError, match="OAuth2 token endpoint .*CERTIFICATE_VERIFY_FAILED"):
                    client.write(one())
            assert endpoint.arrivals == []
        assert len(tokens.requests) == 1
    with pytest.raises(ValueError, match="ssl_context was given for a plain http:// token_url"):
        OAuth2("id", SECRET, "http://127.0.0.1:9/token", ssl_context=ssl.create_default_context())
    with pytest.raises(ValueError, match="ssl_context must be an ssl.SSLContext, not str"):
        OAuth2("id", SECRET, "https://127.0.0.1:9/token", ssl_context=ca_file)  # type: ignore[arg-type]


class RecordingProxy(LoopbackServer):
    """An http proxy that records each request line and headers and asks for basic credentials:
    with them it answers a POST 204 itself and tunnels a CONNECT; without, 407."""

    def __init__(self) -> None:
        self.seen: List[Tuple[str, str, Dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _allowed(self) -> bool:
                owner.seen.append((self.command, self.path, dict(self.headers.items())))
                if self.headers.get("Proxy-Authorization") == PROXY_AUTH:
                    return True
                self.send_response(407)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.close_connection = True
                return False

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self._allowed():
                    self.send_response(204)
                    self.end_headers()

            def do_CONNECT(self) -> None:  # noqa: N802
                self.close_connection = True
                if not self._allowed():
                    return
                host, _, port = self.path.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=5) as upstream:
                    self.send_response(200)
                    self.end_headers()
                    ends = {self.connection: upstream, upstream: self.connection}
                    for _ in range(1000):  # bounded: a few exchanges at most
                        readable = select.select(list(ends), [], [], 5)[0]
                        data = readable[0].recv(65536) if readable else b""
                        if not data:
                            return
                        ends[readable[0]].sendall(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)

    def url(self, password: str = SECRET) -> str:
        return f"http://proxyuser:{password}@127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "RecordingProxy":
        super().__enter__()
        return self


PROXY_AUTH = "Basic " + base64.b64encode(f"proxyuser:{SECRET}".encode()).decode()


def test_proxy_credentials_are_sent_as_proxy_authorization(tls: Tuple[ssl.SSLContext, str]) -> None:
    context, ca_file = tls
    port = free_port()
    with RecordingProxy() as proxy, FaultyServer(tls=context) as target:
        assert Client(f"http://127.0.0.1:{port}/api/v1/write", proxy=proxy.url()).write(one()).status == 204
        with Client(target.url, proxy=proxy.url(), ca_file=ca_file) as tunnelled:  # CONNECT, then TLS inside
            assert tunnelled.write(one()).status == 204
        assert len(target.arrivals) == 1
        seen = proxy.seen
    assert [(method, path) for method, path, _ in seen] == [
        ("POST", f"http://127.0.0.1:{port}/api/v1/write"), ("CONNECT", target.url.split("/")[2]),
    ]  # fmt: skip
    assert [headers.get("Proxy-Authorization") for _, _, headers in seen] == [PROXY_AUTH, PROXY_AUTH]


def test_proxy_credentials_are_never_shown() -> None:
    wrong = SECRET[::-1]
    with RecordingProxy() as proxy:
        plain = Client(f"http://127.0.0.1:{free_port()}/api/v1/write", proxy=proxy.url(wrong))
        with pytest.raises(WriteError) as refused:
            plain.write(one())
        tunnelled = Client(f"https://127.0.0.1:{free_port()}/api/v1/write", proxy=proxy.url(wrong))
        with pytest.raises(ConnectError, match="407") as failed:
            tunnelled.write(one())
    assert refused.value.status == 407
    assert "proxy http://127.0.0.1:" in str(failed.value)  # named, without its credentials
    for text in (str(refused.value), str(failed.value), repr(failed.value), repr(plain), repr(tunnelled), plain.url):
        assert wrong not in text


def test_the_writer_log_and_stats_carry_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    with FaultyServer([("status", 500, "boom", {})]) as server:
        targets = [(server.url, BearerAuth(f"abc\n{SECRET}")), (server.url + f"?api_key={SECRET}", None)]
        with caplog.at_level(logging.DEBUG, logger="promwrite"):
            for url, auth in targets:
                w = Writer(url, auth=auth, shards=1, flush_interval=0.02, retry=Retry(max_attempts=1),
                           close_at_exit=False, close_timeout=5)  # fmt: skip
                try:
                    w.add({"__name__": "up"}, 1.0, timestamp_ms=1_700_000_000_000)
                    assert w.flush(10)
                    last_error = w.stats().last_error or ""
                finally:
                    w.close()
                assert last_error and SECRET not in last_error
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and "Authorization" in errors[0]
    assert SECRET not in caplog.text


def run_send(url: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PROMWRITE_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "promwrite", "send", url, "up 1"], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=90)  # fmt: skip


def test_the_cli_stderr_carries_no_secret() -> None:
    refused = f"http://127.0.0.1:{free_port()}/api/v1/write"
    with FaultyServer() as server:
        bad_token = run_send(server.url, {"PROMWRITE_BEARER_TOKEN": f"abc\n{SECRET}"})
        assert server.arrivals == []
    in_query = run_send(refused + f"?api_key={SECRET}", {})
    assert bad_token.returncode == 2 and "Authorization" in bad_token.stderr
    assert in_query.returncode == 1 and "refused" in in_query.stderr
    for result in (bad_token, in_query):
        assert SECRET not in result.stderr + result.stdout


# -- logging etiquette, module structure ------------------------------------------------------------


def test_nothing_at_warning_for_what_the_caller_is_told(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="promwrite"):
        with FaultyServer([("status", 400, "bad sample", {})]) as server, Client(server.url) as client:
            with pytest.raises(WriteError):
                client.write(one())
        with pytest.raises(ConnectError):
            Client(f"http://127.0.0.1:{free_port()}/w").write(one())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _package_imports(module: str) -> List[str]:
    """The promwrite modules `module` imports, at any level of its code."""
    tree = ast.parse((ROOT / "promwrite" / f"{module}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found += [node.module] if node.module else [alias.name for alias in node.names]
    return found


def test_client_auth_and_http_import_one_way() -> None:
    assert "client" not in _package_imports("auth")
    assert not {"client", "auth"} & set(_package_imports("_http"))
