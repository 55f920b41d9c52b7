"""Authentication for remote-write endpoints: basic auth and bearer tokens.

An auth object adds headers to each request; it never shows its secret in a
repr, a log line or an error.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Dict, Optional, Protocol, Tuple

__all__ = ["Auth", "BasicAuth", "BearerAuth"]


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
