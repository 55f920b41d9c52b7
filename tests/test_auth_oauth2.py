"""OAuth2 client credentials against a local token endpoint of ours, and refresh on 401."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Optional

import pytest

import promwrite
from promwrite import (
    BearerAuth,
    Client,
    ConnectError,
    OAuth2,
    OAuth2Error,
    Sample,
    TimeSeries,
    WriteError,
    WriteRequest,
)

from .faulty import OK, FaultyServer, LoopbackServer, free_port

SECRET = "cl1ent-s3cret/+&="


class TokenServer(LoopbackServer):
    """A client-credentials token endpoint that counts requests and hands out tok-1, tok-2, ..."""

    def __init__(
        self, expires_in: Optional[float] = 3600, delay: float = 0.0, secret: str = SECRET, host: str = "127.0.0.1",
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.secret = secret
        self.requests: List[Dict[str, object]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler(), host)
        if tls is not None:  # https: the handshake happens as a connection is accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        scheme = "https" if isinstance(self._server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{port}/oauth2/token"

    @property
    def count(self) -> int:
        return len(self.requests)

    def _handler(self) -> type:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = urllib.parse.parse_qs(body)
                auth = self.headers.get("Authorization", "")
                client_id = secret = ""
                if auth.startswith("Basic "):
                    pair = base64.b64decode(auth[6:]).decode()
                    client_id, _, secret = (urllib.parse.unquote_plus(x) for x in pair.partition(":"))
                with owner._lock:
                    owner.requests.append({"form": form, "client_id": client_id, "secret": secret,
                                           "content_type": self.headers.get("Content-Type")})  # fmt: skip
                    n = len(owner.requests)
                time.sleep(owner.delay)
                if secret != owner.secret or form.get("grant_type") != ["client_credentials"]:
                    # Some real servers echo what they were sent: the client must not repeat it.
                    answer, status = {"error": "invalid_client", "error_description": f"bad secret {secret}"}, 401
                else:
                    answer, status = {"access_token": f"tok-{n}", "token_type": "Bearer"}, 200
                    if owner.expires_in is not None:
                        answer["expires_in"] = owner.expires_in
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # noqa: N815 - a followed 301/302/303 arrives as a GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> "TokenServer":
        super().__enter__()
        return self


def one() -> WriteRequest:
    series = TimeSeries({"__name__": "up", "job": "t"}, sample=Sample(1.0, timestamp_ms=1_700_000_000_000))
    return WriteRequest([series])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_request_form_and_client_auth() -> None:
    with TokenServer() as tokens:
        auth = OAuth2("my client", SECRET, tokens.url, ["write", "metrics"], endpoint_params={"audience": "prom"})
        assert auth.headers("http://x/api/v1/write", b"") == {"Authorization": "Bearer tok-1"}
    request = tokens.requests[0]
    assert request["form"] == {"grant_type": ["client_credentials"], "scope": ["write metrics"], "audience": ["prom"]}
    assert (request["client_id"], request["secret"]) == ("my client", SECRET)  # RFC 6749 2.3.1 encoding
    assert request["content_type"] == "application/x-www-form-urlencoded"


def test_token_is_cached_across_writes() -> None:
    with TokenServer() as tokens, FaultyServer() as server:
        with Client(server.url, auth=OAuth2("id", SECRET, tokens.url)) as client:
            for _ in range(5):
                client.write(one())
        assert tokens.count == 1
        assert {a.headers["Authorization"] for a in server.arrivals} == {"Bearer tok-1"}


@pytest.mark.parametrize("expires_in,early", [(100, 10.0), (3600, 30.0), (2, 0.2)])
def test_token_refreshed_shortly_before_expiry(expires_in: float, early: float) -> None:
    with TokenServer(expires_in=expires_in) as tokens:
        auth = OAuth2("id", SECRET, tokens.url)
        auth._clock = clock = FakeClock()
        assert auth.token() == "tok-1"
        clock.now += expires_in - early - 0.01
        assert auth.token() == "tok-1" and tokens.count == 1
        clock.now += 0.02
        assert auth.token() == "tok-2" and tokens.count == 2


def test_short_expiry_in_real_time() -> None:
    with TokenServer(expires_in=0.3) as tokens:
        auth = OAuth2("id", SECRET, tokens.url)
        assert auth.token() == "tok-1"
        time.sleep(0.35)
        assert auth.token() == "tok-2"


def test_token_without_expiry_is_kept_until_a_401() -> None:
    with TokenServer(expires_in=None) as tokens, FaultyServer([OK, ("status", 401, "expired", {}), OK]) as server:
        auth = OAuth2("id", SECRET, tokens.url)
        auth._clock = clock = FakeClock()
        with Client(server.url, auth=auth) as client:
            client.write(one())
            clock.now += 10**7
            client.write(one())  # 401 with tok-1, then once more with tok-2
        assert tokens.count == 2
        assert [a.headers["Authorization"] for a in server.arrivals] == ["Bearer tok-1"] * 2 + ["Bearer tok-2"]


def test_refresh_on_401_then_retry_once() -> None:
    with TokenServer() as tokens, FaultyServer([("status", 401, "token revoked", {}), OK]) as server:
        with Client(server.url, auth=OAuth2("id", SECRET, tokens.url)) as client:
            assert client.write(one()).status == 204
        assert [a.headers["Authorization"] for a in server.arrivals] == ["Bearer tok-1", "Bearer tok-2"]
        assert server.arrivals[0].body == server.arrivals[1].body
        assert tokens.count == 2


def test_a_second_401_is_raised_not_retried_again() -> None:
    with TokenServer() as tokens, FaultyServer([("status", 401, "no", {})]) as server:
        with Client(server.url, auth=OAuth2("id", SECRET, tokens.url)) as client, pytest.raises(WriteError) as info:
            client.write(one())
        assert info.value.status == 401
        assert len(server.arrivals) == 2 and tokens.count == 2
    assert SECRET not in str(info.value)


def test_other_auths_are_not_retried_on_401() -> None:
    with FaultyServer([("status", 401, "no", {})]) as server:
        with Client(server.url, auth=BearerAuth("abc")) as client, pytest.raises(WriteError):
            client.write(one())
        assert len(server.arrivals) == 1


def test_concurrent_callers_share_one_token_request() -> None:
    with TokenServer(delay=0.2) as tokens:
        auth = OAuth2("id", SECRET, tokens.url)
        results: List[str] = []
        threads = [threading.Thread(target=lambda: results.append(auth.token())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["tok-1"] * 8 and tokens.count == 1


def test_401s_from_many_threads_fetch_one_new_token() -> None:
    with TokenServer() as tokens:
        auth = OAuth2("id", SECRET, tokens.url)
        sent = auth.headers("u", b"")
        assert auth.on_unauthorized(sent) is True
        fresh = auth.headers("u", b"")
        assert fresh == {"Authorization": "Bearer tok-2"}
        auth.on_unauthorized(sent)  # a late 401 for the old token leaves the new one alone
        assert auth.headers("u", b"") == fresh and tokens.count == 2


def test_bad_credentials_error_has_no_secret() -> None:
    wrong = "wr0ng-S3CRET+/="
    with TokenServer() as tokens, FaultyServer() as server:
        auth = OAuth2("id", wrong, tokens.url)
        with Client(server.url, auth=auth) as client, pytest.raises(OAuth2Error) as info:
            client.write(one())
        assert not server.arrivals  # nothing was sent without a token
    error = info.value
    assert error.status == 401 and error.error == "invalid_client"
    assert "invalid_client" in str(error) and tokens.url in str(error)
    for text in (str(error), repr(error), repr(auth)):
        assert wrong not in text and urllib.parse.quote_plus(wrong) not in text
    assert SECRET not in repr(OAuth2("id", SECRET, "https://idp.example/token"))


def test_unreachable_token_endpoint_is_a_connect_error() -> None:
    auth = OAuth2("id", SECRET, f"http://127.0.0.1:{free_port()}/token", timeout=2)
    with pytest.raises(ConnectError) as info:
        auth.token()
    assert "token endpoint" in str(info.value) and SECRET not in str(info.value)


def test_answer_without_token_is_an_error() -> None:
    with FaultyServer([("status", 200, '{"token_type": "bearer"}', {})]) as server:
        with pytest.raises(OAuth2Error, match="without an access_token"):
            OAuth2("id", SECRET, server.url).token()


def test_arguments_checked() -> None:
    with pytest.raises(ValueError):
        OAuth2("", SECRET, "https://idp/token")
    with pytest.raises(ValueError):
        OAuth2("id", SECRET, "ftp://idp/token")
    with pytest.raises(ValueError):
        OAuth2("id", SECRET, "https://idp/token", timeout=0)
    assert OAuth2("id", SECRET, "https://idp/token", "a b").scopes == ("a", "b")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_token_endpoint_is_not_followed(status: int) -> None:
    # 127.0.0.2 is another loopback address: another origin, which must receive nothing.
    with TokenServer(host="127.0.0.2") as elsewhere:
        location = elsewhere.url + "?next=1"
        with FaultyServer([("status", status, "", {"Location": location})]) as redirector:
            auth = OAuth2("id", SECRET, redirector.url)
            with pytest.raises(OAuth2Error, match=f"HTTP {status}, a redirect to") as info:
                auth.token()
            assert len(redirector.arrivals) == 1
        assert elsewhere.requests == []
    error = info.value
    assert error.status == status and elsewhere.url in str(error)
    assert SECRET not in str(error) and urllib.parse.quote_plus(SECRET) not in str(error)


def test_a_trickling_token_endpoint_is_bounded_by_the_timeout() -> None:
    with FaultyServer([("trickle_headers", 0.5, 40)]) as server:
        auth = OAuth2("id", SECRET, server.url, timeout=1)
        started = time.monotonic()
        with pytest.raises(promwrite.TimeoutError, match="token endpoint"):
            auth.token()
        assert time.monotonic() - started < 2.0
