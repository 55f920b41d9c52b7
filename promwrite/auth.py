"""Authentication for remote-write endpoints: basic auth, bearer tokens, AWS SigV4, OAuth2.

An auth object adds headers to each request; it never shows its secret in a
repr, a log line or an error.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import posixpath
import re
import ssl
import threading
import time
import urllib.parse
from typing import Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Tuple, Union

from ._checks import positive_seconds
from ._http import Endpoint, redact_url
from .errors import PromwriteError

__all__ = [
    "Auth", "AuthError", "BasicAuth", "BearerAuth", "OAuth2", "OAuth2Error",
    "SigV4Auth", "SigV4Signature", "sigv4_sign",
]  # fmt: skip


class Auth(Protocol):
    """Anything that returns the headers that authenticate one request."""

    def headers(self, url: str, body: bytes) -> Dict[str, str]: ...


class BasicAuth:
    """HTTP basic auth, as Tencent Cloud CLS (SecretId/SecretKey), Grafana Cloud
    and most reverse proxies ask for. Over plain http the password travels in
    clear text: use https outside a trusted network."""

    __slots__ = ("username", "_header")

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ValueError("BasicAuth takes a str username and password")
        if ":" in username:
            raise ValueError("a basic-auth username cannot contain ':'")
        self.username = username
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        self._header = "Basic " + token

    def headers(self, url: str, body: bytes) -> Dict[str, str]:
        return {"Authorization": self._header}

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class BearerAuth:
    """A bearer token, given directly or read from `token_file`.

    The file is read again whenever it changes (its mtime or size), as
    Kubernetes service-account tokens rotate under a running process.
    """

    __slots__ = ("token_file", "_token", "_stamp", "_lock")

    def __init__(self, token: Optional[str] = None, *, token_file: Optional[str] = None) -> None:
        if (token is None) == (token_file is None):
            raise ValueError("BearerAuth takes a token or a token_file, exactly one")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("the bearer token must be a non-empty str")
        self.token_file = os.fspath(token_file) if token_file is not None else None
        self._token = token.strip() if token is not None else ""
        self._stamp: Optional[Tuple[int, int]] = None
        self._lock = threading.Lock()
        if self.token_file is not None:
            self._current()  # fail now, at construction, if the file is unreadable

    def _current(self) -> str:
        if self.token_file is None:
            return self._token
        try:
            st = os.stat(self.token_file)
        except OSError as exc:
            raise ValueError(f"bearer token file {self.token_file!r}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                with open(self.token_file, encoding="utf-8") as f:
                    token = f.read().strip()
                if not token:
                    raise ValueError(f"bearer token file {self.token_file!r} is empty")
                self._token, self._stamp = token, stamp
            return self._token

    def headers(self, url: str, body: bytes) -> Dict[str, str]:
        return {"Authorization": "Bearer " + self._current()}

    def __repr__(self) -> str:
        if self.token_file is not None:
            return f"BearerAuth(token_file={self.token_file!r})"
        return "BearerAuth(token=***)"


# -- AWS Signature Version 4 -------------------------------------------------

_SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_SPACES = re.compile(r"\s+")


class AuthError(PromwriteError):
    """An auth object could not produce credentials (missing keys, a failed token request)."""


class SigV4Signature(NamedTuple):
    """The intermediate and final results of signing one request (see `sigv4_sign`)."""

    canonical_request: str
    string_to_sign: str
    signature: str
    signed_headers: str
    authorization: str


def _sigv4_canonical_uri(path: str) -> str:
    if not path:
        return "/"
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    # The path as sent (already percent-encoded) is encoded again: AWS's rule
    # for every service but S3.
    return urllib.parse.quote(normalized, safe="/~")


def _sigv4_canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((
            urllib.parse.quote(urllib.parse.unquote(key), safe="-_.~"),
            urllib.parse.quote(urllib.parse.unquote(value), safe="-_.~"),
        ))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def sigv4_sign(
    method: str,
    url: str,
    headers: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
    body: bytes,
    when: _dt.datetime,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    *,
    payload_hash: Optional[str] = None,
) -> SigV4Signature:
    """Sign one request with AWS Signature Version 4, as a pure function.

    Every header in `headers` (a mapping or (name, value) pairs; repeated
    names are joined with commas) is signed; it must include ``Host`` and
    ``X-Amz-Date`` as they will be sent. `when` is the signing time (its date
    gives the credential scope). `payload_hash` defaults to the SHA-256 of
    `body`. A naive `when` is taken as UTC. Returns the canonical request, the string to sign, the signature,
    the signed-header list and the Authorization header value.
    """
    parts = urllib.parse.urlsplit(url)
    items = headers.items() if isinstance(headers, Mapping) else headers
    canon: Dict[str, List[str]] = {}
    for name, value in items:
        canon.setdefault(name.strip().lower(), []).append(_SPACES.sub(" ", str(value)).strip())
    names = sorted(canon)
    canonical_headers = "".join(f"{n}:{','.join(canon[n])}\n" for n in names)
    signed_headers = ";".join(names)
    if payload_hash is None:
        payload_hash = hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join([
        method.upper(),
        _sigv4_canonical_uri(parts.path),
        _sigv4_canonical_query(parts.query),
        canonical_headers,
        signed_headers,
        payload_hash,
    ])
    when = when.astimezone(_dt.timezone.utc) if when.tzinfo else when
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = when.strftime("%Y%m%d")
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([
        _SIGV4_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    ])
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    authorization = (
        f"{_SIGV4_ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return SigV4Signature(canonical_request, string_to_sign, signature, signed_headers, authorization)


def _host_header(url: str) -> str:
    """The Host header http.client sends for `url` (port only when not the default)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    elif not host.isascii():
        host = host.encode("idna").decode("ascii")
    default = 443 if parts.scheme == "https" else 80
    if parts.port is not None and parts.port != default:
        host += f":{parts.port}"
    return host


class SigV4Auth:
    """AWS Signature Version 4, for AWS Managed Service for Prometheus (service "aps").

    Credentials default to the ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``
    and ``AWS_SESSION_TOKEN`` environment variables, read at each request when
    not given (so rotated environment credentials are picked up). Each request
    is signed at the current time over: the method (POST), the URL's path and
    query, ``host`` (sent exactly as signed), ``x-amz-date``,
    ``x-amz-content-sha256`` (the body's SHA-256, also the payload hash) and,
    with a session token, ``x-amz-security-token``. The Content-Type is not signed: the client's
    auth hook does not see the final headers (remote write 2.0 sends another
    Content-Type than 1.0), and the body hash already covers the payload.
    """

    __slots__ = ("region", "service", "_access_key", "_secret_key", "_session_token")

    def __init__(
        self,
        region: str,
        *,
        access_key: Optional[str] = None,
        secret_key: Optional[str] = None,
        session_token: Optional[str] = None,
        service: str = "aps",
    ) -> None:
        if not isinstance(region, str) or not region.strip():
            raise ValueError("SigV4Auth needs a region, e.g. 'us-east-1'")
        if not isinstance(service, str) or not service.strip():
            raise ValueError("SigV4Auth needs a service name")
        if (access_key is None) != (secret_key is None):
            raise ValueError("SigV4Auth takes access_key and secret_key together, or neither (environment)")
        self.region = region.strip()
        self.service = service.strip()
        self._access_key = access_key
        self._secret_key = secret_key
        self._session_token = session_token

    def _credentials(self) -> Tuple[str, str, Optional[str]]:
        if self._access_key is not None and self._secret_key is not None:
            return self._access_key, self._secret_key, self._session_token
        access = os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not access or not secret:
            raise AuthError(
                "SigV4Auth: no AWS credentials: pass access_key and secret_key, or set"
                " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return access, secret, self._session_token or os.environ.get("AWS_SESSION_TOKEN") or None

    def sign(self, url: str, body: bytes, when: Optional[_dt.datetime] = None) -> Dict[str, str]:
        """The headers that authenticate a POST of `body` to `url`, signed at `when` (default now)."""
        if when is None:
            when = _dt.datetime.now(_dt.timezone.utc)
        access, secret, token = self._credentials()
        payload_hash = hashlib.sha256(body).hexdigest()
        if when.tzinfo is not None:
            when = when.astimezone(_dt.timezone.utc)
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        added = {"X-Amz-Date": amz_date, "X-Amz-Content-Sha256": payload_hash}
        if token:
            added["X-Amz-Security-Token"] = token
        # Host goes out as signed (http.client then adds none of its own: through a
        # plain-http proxy it would otherwise write the port even when default).
        added = {"Host": _host_header(url), **added}
        signed = sigv4_sign(
            "POST", url, added, body, when, access, secret, self.region, self.service, payload_hash=payload_hash
        )
        added["Authorization"] = signed.authorization
        return added

    def headers(self, url: str, body: bytes) -> Dict[str, str]:
        return self.sign(url, body)

    def __repr__(self) -> str:
        source = "given" if self._access_key is not None else "environment"
        return f"SigV4Auth(region={self.region!r}, service={self.service!r}, credentials={source})"


# -- OAuth 2.0 client credentials --------------------------------------------


class OAuth2Error(AuthError):
    """The OAuth2 token endpoint refused or failed a token request.

    `status` is its HTTP status (0 when it answered 2xx without a usable
    token); `error` is the RFC 6749 error code when it sent one. The client
    secret never appears in the message.
    """

    def __init__(self, message: str, status: int = 0, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class OAuth2:
    """OAuth 2.0 client-credentials flow (RFC 6749 section 4.4), standard library only.

    The token is requested with a form POST of ``grant_type=client_credentials``
    (and ``scope``, and any `endpoint_params`) to `token_url`, the client
    authenticating by HTTP basic auth as RFC 6749 prefers. It is cached until
    shortly before it expires (10% of ``expires_in`` early, at most 30 s), and
    fetched again when the remote-write endpoint answers 401 (the client then
    retries that request once). Safe to share between threads: one request
    fetches a token while the others wait for it.

    A refused token request raises `OAuth2Error`; an unreachable or slow token
    endpoint raises `ConnectError` / `TimeoutError` (which a `Retry` retries);
    `timeout` bounds the whole token request. A redirect from the token
    endpoint is never followed (it would carry the client secret elsewhere):
    it raises `OAuth2Error`. Proxies come from the environment, as for `Client`.

    An https `token_url` is verified with `ssl_context` when given (e.g.
    ``ssl.create_default_context(cafile=...)`` for a private CA), else with the
    system's trust store; never with the `Client`'s TLS settings, which are for
    the remote-write endpoint: its CA, client certificate or
    `insecure_skip_verify` would otherwise reach, or stop verifying, the host
    that receives the client secret (Prometheus, too, gives oauth2 a tls_config
    of its own).
    """

    _MAX_EARLY = 30.0

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_url: str,
        scopes: Sequence[str] = (),
        *,
        endpoint_params: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
        timeout: float = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("OAuth2 needs a non-empty client_id")
        if not isinstance(client_secret, str):
            raise ValueError("OAuth2 takes a str client_secret")
        parts = urllib.parse.urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the OAuth2 token_url must be an http:// or https:// URL with a host")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ValueError(f"OAuth2's ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}")
        if ssl_context is not None and parts.scheme != "https":
            raise ValueError("OAuth2's ssl_context was given for a plain http:// token_url")
        if isinstance(scopes, str):
            scopes = scopes.split()
        timeout = positive_seconds("timeout", timeout)
        self.client_id = client_id
        self.token_url = token_url
        self.scopes: Tuple[str, ...] = tuple(scopes)
        self.endpoint_params: Dict[str, Union[str, Sequence[str]]] = dict(endpoint_params or {})
        self.timeout = float(timeout)
        self._endpoint = Endpoint(token_url, ssl_context, None)
        self._secret = client_secret
        self._token: Optional[str] = None
        self._expires_at: Optional[float] = None  # monotonic; None: no expiry given
        self._lock = threading.Lock()
        self._clock: Callable[[], float] = time.monotonic

    def _valid(self) -> bool:
        return self._token is not None and (self._expires_at is None or self._clock() < self._expires_at)

    def token(self) -> str:
        """The current access token, fetched when there is none or it is about to expire."""
        with self._lock:
            if not self._valid():
                self._fetch()
            assert self._token is not None
            return self._token

    def headers(self, url: str, body: bytes) -> Dict[str, str]:
        return {"Authorization": "Bearer " + self.token()}

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        """The endpoint answered 401 to a request with the headers `sent`: drop that token.

        Returns True when the request should be tried again (once) with a fresh
        token. A token another thread has replaced already is left alone.
        """
        with self._lock:
            if self._token is not None and sent.get("Authorization") == "Bearer " + self._token:
                self._token = None
                self._expires_at = None
        return True

    def _redact(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
            quoted = urllib.parse.quote_plus(self._secret)
            if quoted != self._secret:
                text = text.replace(quoted, "***")
        return text

    def _fetch(self) -> None:
        form: List[Tuple[str, str]] = [("grant_type", "client_credentials")]
        if self.scopes:
            form.append(("scope", " ".join(self.scopes)))
        for key, value in self.endpoint_params.items():
            for one in [value] if isinstance(value, str) else value:
                form.append((key, one))
        data = urllib.parse.urlencode(form).encode("ascii")
        # RFC 6749 2.3.1: the id and secret are form-urlencoded before basic auth.
        pair = f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self._secret)}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii"),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        endpoint = self._endpoint
        where = endpoint.shown
        started = self._clock()
        conn = endpoint.connection()
        try:
            status, answer_headers, raw, _ = endpoint.exchange(conn, data, headers, time.monotonic() + self.timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise endpoint.failure(exc, self.timeout, "OAuth2 token endpoint ") from None
        finally:
            conn.close()
        if 300 <= status < 400:
            # Never followed: a redirect would carry the client secret to another address.
            location = redact_url(answer_headers.get("Location") or "") or "nowhere"
            raise OAuth2Error(
                f"OAuth2 token endpoint {where} answered HTTP {status}, a redirect to {location}; redirects"
                " are not followed, so that the client secret goes to token_url only: set token_url to the"
                " address that issues tokens", status,
            )  # fmt: skip
        text = raw.decode("utf-8", "replace")
        try:
            answer = json.loads(text) if text.strip() else {}
        except ValueError:
            answer = None
        if not 200 <= status < 300:
            error = description = ""
            if isinstance(answer, dict):
                error = str(answer.get("error") or "")
                description = str(answer.get("error_description") or "")
            detail = ": ".join(x for x in (error, description) if x) or text.strip()[:300] or "(empty body)"
            raise OAuth2Error(
                f"OAuth2 token request to {where} for client {self.client_id!r} failed: HTTP {status}:"
                f" {self._redact(detail)}", status, error,
            )  # fmt: skip
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise OAuth2Error(f"OAuth2 token endpoint {where} answered HTTP {status} without an access_token")
        token_type = str(answer.get("token_type") or "bearer")
        if token_type.lower() != "bearer":
            raise OAuth2Error(f"OAuth2 token endpoint {where} gave a {token_type!r} token, not a bearer token")
        expires_at: Optional[float] = None
        expires_in = answer.get("expires_in")
        if expires_in is not None:
            try:
                lifetime = float(expires_in)
            except (TypeError, ValueError):
                raise OAuth2Error(f"OAuth2 token endpoint {where}: expires_in is not a number") from None
            expires_at = started + lifetime - min(self._MAX_EARLY, 0.1 * max(lifetime, 0.0))
        self._token, self._expires_at = token, expires_at

    def __repr__(self) -> str:
        return (
            f"OAuth2(client_id={self.client_id!r}, client_secret=***, token_url={self._endpoint.shown!r},"
            f" scopes={self.scopes!r})"
        )
