"""Real Prometheus and VictoriaMetrics servers for the integration tests.

Each server runs as a child process on 127.0.0.1 with a free port, its own
temporary data directory and HTTP basic auth. `start()` returns once the
server's readiness endpoint answers (bounded wait); `stop()` terminates it and
kills it if it does not exit in time. Servers also die with the test process
(PR_SET_PDEATHSIG on Linux) and are stopped at interpreter exit, so that no
process outlives the run even when pytest is interrupted.

Queries go through the servers' HTTP APIs with urllib only:
``query`` (/api/v1/query), ``query_range`` (/api/v1/query_range),
``series`` (/api/v1/series); Prometheus adds ``query_exemplars``
(/api/v1/query_exemplars) and VictoriaMetrics ``export`` (/api/v1/export).

Binaries are looked up on PATH (``prometheus``, ``victoria-metrics``) or taken
from PROMWRITE_PROMETHEUS_BIN / PROMWRITE_VICTORIA_METRICS_BIN.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "PrometheusSender",
    "PrometheusServer",
    "Server",
    "ServerError",
    "ServerUnavailable",
    "VictoriaMetricsServer",
    "VmagentSender",
    "free_port",
    "parse_value",
]

START_TIMEOUT = float(os.environ.get("PROMWRITE_SERVER_START_TIMEOUT", "60"))
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0

_RUNNING: "set[Server]" = set()


class ServerUnavailable(Exception):
    """The server's binary (or what it needs, e.g. bcrypt) is not installed."""


class ServerError(Exception):
    """The server did not start, or its API answered with an error."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_value(text: str) -> float:
    """A sample value as the query APIs print it ("1.5", "NaN", "+Inf", "-Inf")."""
    return float(text)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to send SIGTERM to the server when the test process dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except Exception:
            pass


def _find_binary(env: str, names: Sequence[str]) -> Optional[str]:
    override = os.environ.get(env)
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    for name in names:  # sbin-less PATHs in minimal containers
        path = os.path.join("/usr/bin", name)
        if os.access(path, os.X_OK):
            return path
    return None


class Server:
    """A running server: `url` (base), `write_url`, `username`, `password`."""

    kind = "server"
    binary_env = ""
    binary_names: Sequence[str] = ()
    write_path = ""
    ready_path = ""

    def __init__(self, data_dir: Union[str, os.PathLike], username: str = "promwrite",
                 password: str = "s3cret:p@ss wörd") -> None:
        self.binary = _find_binary(self.binary_env, self.binary_names)
        if self.binary is None:
            raise ServerUnavailable(
                f"{self.kind}: binary not found (looked for {', '.join(self.binary_names)} "
                f"on PATH and in /usr/bin; set {self.binary_env} or install it: "
                f"apt-get install -y {self.binary_names[0]})"
            )
        self.dir = pathlib.Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self.port = 0
        self.url = ""
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.dir / "server.log"
        self._log = None

    # ---- life cycle -------------------------------------------------------

    @classmethod
    def available(cls) -> bool:
        return _find_binary(cls.binary_env, cls.binary_names) is not None

    def command(self) -> List[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files etc. into self.dir before each start attempt."""

    @property
    def write_url(self) -> str:
        return self.url + self.write_path

    def start(self, attempts: int = 3) -> "Server":
        def new_port() -> None:
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"

        return self._launch(attempts, before_each=new_port, pause=0.0)

    def _launch(self, attempts: int, before_each: Callable[[], None], pause: float) -> "Server":
        """Spawn and wait until ready, trying again (after `pause` s) only when the port was taken."""
        last = ""
        for _ in range(attempts):
            before_each()
            self.prepare()
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                self.command(),
                cwd=str(self.dir),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            _RUNNING.add(self)
            try:
                self._wait_ready()
                return self
            except ServerError as exc:
                last = str(exc)
                self.stop()
                if "address already in use" not in last.lower():
                    break  # a port race is worth a retry; anything else is not
                time.sleep(pause)
        raise ServerError(last)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        error = "no answer yet"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.kind} exited with status {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                status, body = self.request("GET", self.ready_path, timeout=2.0)
                if status == 200:
                    return
                error = f"HTTP {status}: {body[:200]!r}"
            except OSError as exc:
                error = str(exc)
            time.sleep(0.1)
        raise ServerError(
            f"{self.kind} not ready on {self.url}{self.ready_path} after {START_TIMEOUT:.0f}s "
            f"({error}):\n" + self.log_tail()
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, down_s: float = 0.0, attempts: int = 40) -> "Server":
        """Stop the server (SIGTERM) and start it again on the same port and data
        directory after `down_s` seconds, as a deploy or a crash-and-restart
        does; returns once it is ready again. (Added for the Writer tests.)"""
        assert self.port, "restart() needs a server that was started"
        self.stop()
        time.sleep(down_s)
        return self._launch(attempts, before_each=lambda: None, pause=0.25)  # the old socket may linger

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url or '(not started)'}>"

    # ---- HTTP -------------------------------------------------------------

    def auth_header(self, username: Optional[str] = None, password: Optional[str] = None) -> str:
        user = self.username if username is None else username
        pw = self.password if password is None else password
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode("ascii")

    def request(
        self,
        method: str,
        path: str,
        params: Optional[Mapping[str, Any]] = None,
        data: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: bool = True,
        timeout: float = HTTP_TIMEOUT,
    ) -> "tuple[int, bytes]":
        """Raw HTTP to the server: (status, body); non-2xx is returned, not raised."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        req = urllib.request.Request(url, data=data, method=method)
        if auth:
            req.add_header("Authorization", self.auth_header())
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    def get_json(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        status, body = self.request("GET", path, params)
        try:
            doc = json.loads(body)
        except ValueError:
            raise ServerError(f"GET {path} {params}: HTTP {status}: {body[:500]!r}") from None
        if status != 200 or (isinstance(doc, dict) and doc.get("status") == "error"):
            raise ServerError(f"GET {path} {params}: HTTP {status}: {body[:500]!r}")
        return doc

    # ---- Prometheus HTTP API (both servers) -------------------------------

    def flush(self) -> None:
        """Make samples written so far visible to queries (no-op where not needed)."""

    def query(self, promql: str, time_s: Optional[float] = None) -> Dict[str, Any]:
        """Instant query; returns the API's ``data`` ({resultType, result})."""
        params: Dict[str, Any] = {"query": promql}
        if time_s is not None:
            params["time"] = f"{time_s:.3f}"
        return self.get_json("/api/v1/query", params)["data"]

    def query_range(self, promql: str, start_s: float, end_s: float, step_s: float) -> Dict[str, Any]:
        params = {"query": promql, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": step_s}
        return self.get_json("/api/v1/query_range", params)["data"]

    def series(self, match: str, start_s: Optional[float] = None, end_s: Optional[float] = None) -> List[Dict[str, str]]:
        params: Dict[str, Any] = {"match[]": match}
        if start_s is not None:
            params["start"] = f"{start_s:.3f}"
        if end_s is not None:
            params["end"] = f"{end_s:.3f}"
        return self.get_json("/api/v1/series", params)["data"]

    def raw_samples(self, selector: str, at_s: Optional[float] = None, window: str = "3h") -> List[Dict[str, Any]]:
        """Every stored sample of the matching series in ``[at - window, at]``
        (at: a minute from now by default).

        Uses the instant query ``selector[window]`` (a matrix of raw samples);
        returns ``[{"metric": {...}, "samples": [(timestamp_ms, float), ...]}]``.
        """
        data = self.query(f"{selector}[{window}]", at_s if at_s is not None else time.time() + 60)
        if data["resultType"] != "matrix":
            raise ServerError(f"{selector}[{window}]: expected a matrix, got {data}")
        return [
            {
                "metric": r["metric"],
                "samples": [(round(float(t) * 1000), parse_value(v)) for t, v in r.get("values", [])],
            }
            for r in data["result"]
        ]


class PrometheusServer(Server):
    """Prometheus with the remote-write receiver, native histograms, exemplars, basic auth."""

    kind = "prometheus"
    binary_env = "PROMWRITE_PROMETHEUS_BIN"
    binary_names = ("prometheus",)
    write_path = "/api/v1/write"
    ready_path = "/-/ready"
    bcrypt_rounds = 10

    def __init__(self, data_dir: Union[str, os.PathLike], **kw: str) -> None:
        super().__init__(data_dir, **kw)
        self.password_hash = bcrypt_hash(self.password, self.bcrypt_rounds)

    def prepare(self) -> None:
        (self.dir / "prometheus.yml").write_text(
            "# promwrite test server: no scrape targets, remote-write receiver only.\n"
            "global:\n"
            "  scrape_interval: 15s\n"
            "  evaluation_interval: 15s\n"
            "  external_labels: {}\n"
            "scrape_configs: []\n"
        )
        (self.dir / "web.yml").write_text(
            "basic_auth_users:\n"
            f"  {json.dumps(self.username)}: {json.dumps(self.password_hash)}\n"
        )

    def command(self) -> List[str]:
        assert self.binary is not None
        return [
            self.binary,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--web.config.file={self.dir / 'web.yml'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            "--storage.tsdb.retention.time=30d",
            "--web.enable-remote-write-receiver",
            "--enable-feature=native-histograms,exemplar-storage",
            "--log.level=info",
        ]

    def query_exemplars(self, promql: str, start_s: float, end_s: float) -> List[Dict[str, Any]]:
        """/api/v1/query_exemplars: [{"seriesLabels": {...}, "exemplars": [{labels, value, timestamp}]}]."""
        params = {"query": promql, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
        return self.get_json("/api/v1/query_exemplars", params)["data"]


class VictoriaMetricsServer(Server):
    """Single-node VictoriaMetrics with basic auth; remote write at /api/v1/write.

    VictoriaMetrics buffers fresh rows in memory for a second or two, caches
    query results and, by default, hides the last 30-60s from queries
    (-search.latencyOffset). The server is started with the cache off and a
    zero latency offset, and `flush()` calls /internal/force_flush so that
    written samples are searchable at once.
    """

    kind = "victoria-metrics"
    binary_env = "PROMWRITE_VICTORIA_METRICS_BIN"
    binary_names = ("victoria-metrics", "victoria-metrics-prod")
    write_path = "/api/v1/write"
    ready_path = "/health"

    def command(self) -> List[str]:
        assert self.binary is not None
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.dir / 'data'}",
            f"-httpAuth.username={self.username}",
            f"-httpAuth.password={self.password}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-selfScrapeInterval=0",
            "-loggerLevel=INFO",
        ]

    def flush(self) -> None:
        status, body = self.request("GET", "/internal/force_flush")
        if status != 200:
            raise ServerError(f"/internal/force_flush: HTTP {status}: {body[:300]!r}")

    def export(self, match: str, start_s: Optional[float] = None, end_s: Optional[float] = None) -> List[Dict[str, Any]]:
        """/api/v1/export: raw samples, [{"metric", "values", "timestamps"}] (one per series).

        The default window is the last 3 hours up to a minute ahead: without an
        explicit end, VictoriaMetrics leaves out samples of the current second.
        """
        now = time.time()
        params: Dict[str, Any] = {
            "match[]": match,
            "start": f"{now - 3 * 3600 if start_s is None else start_s:.3f}",
            "end": f"{now + 60 if end_s is None else end_s:.3f}",
        }
        status, body = self.request("GET", "/api/v1/export", params)
        if status != 200:
            raise ServerError(f"/api/v1/export {match}: HTTP {status}: {body[:500]!r}")
        # VictoriaMetrics prints +Inf, -Inf and NaN as bare words, which are not
        # JSON, and staleness markers as null: values come back as float or None.
        out = []
        for line in body.decode().splitlines():
            if line.strip():
                doc = json.loads(_BARE_FLOATS.sub(r'"\1"', line))
                doc["values"] = [None if v is None else float(v) for v in doc["values"]]
                out.append(doc)
        return out


_BARE_FLOATS = re.compile(r'(?<=[\[,])([+-]?Inf|NaN)(?=[,\]])')


class PrometheusSender(PrometheusServer):
    """Prometheus as a remote-write *sender*: it scrapes itself every second and
    remote-writes what it scrapes (and metric metadata) to `remote_write_url`."""

    kind = "prometheus-sender"

    def __init__(self, data_dir: Union[str, os.PathLike], remote_write_url: str, **kw: str) -> None:
        super().__init__(data_dir, **kw)
        self.remote_write_url = remote_write_url

    def prepare(self) -> None:
        super().prepare()
        (self.dir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: self\n"
            f"    basic_auth: {{username: {json.dumps(self.username)}, password: {json.dumps(self.password)}}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.port}']}}]\n"
            "remote_write:\n"
            f"  - url: {json.dumps(self.remote_write_url)}\n"
            "    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}\n"
            "    metadata_config: {send: true, send_interval: 1s}\n"
        )


class VmagentSender(Server):
    """vmagent scraping its own /metrics every second and remote-writing to `remote_write_url`."""

    kind = "vmagent"
    binary_env = "PROMWRITE_VMAGENT_BIN"
    binary_names = ("vmagent", "vmagent-prod")
    ready_path = "/health"

    def __init__(self, data_dir: Union[str, os.PathLike], remote_write_url: str, **kw: str) -> None:
        super().__init__(data_dir, **kw)
        self.remote_write_url = remote_write_url

    def prepare(self) -> None:
        (self.dir / "scrape.yml").write_text(
            "scrape_configs:\n"
            "  - job_name: self\n"
            "    scrape_interval: 1s\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.port}']}}]\n"
        )

    def command(self) -> List[str]:
        assert self.binary is not None
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-promscrape.config={self.dir / 'scrape.yml'}",
            f"-remoteWrite.url={self.remote_write_url}",
            f"-remoteWrite.tmpDataPath={self.dir / 'queue'}",
            "-remoteWrite.flushInterval=1s",
            "-loggerLevel=INFO",
        ]

    def metrics(self) -> str:
        status, body = self.request("GET", "/metrics", auth=False)
        if status != 200:
            raise ServerError(f"/metrics: HTTP {status}: {body[:300]!r}")
        return body.decode()


def bcrypt_hash(password: str, rounds: int = 10) -> str:
    """A bcrypt hash for Prometheus's web config: python bcrypt, else htpasswd."""
    try:
        import bcrypt
    except ImportError:
        bcrypt = None
    if bcrypt is not None:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode("ascii")
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run(
            [htpasswd, "-niB", "-C", str(rounds), "user"],
            input=password.encode(), capture_output=True, check=True,
        ).stdout.decode()
        return out.strip().split(":", 1)[1]
    raise ServerUnavailable(
        "prometheus basic auth needs a bcrypt hash: pip install bcrypt (in the 'test' extra) "
        "or apt-get install apache2-utils"
    )


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


if __name__ == "__main__":  # python tests/servers.py: start both, print, wait for Ctrl-C
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        started = []
        for cls in (PrometheusServer, VictoriaMetricsServer):
            try:
                started.append(cls(os.path.join(tmp, cls.kind)).start())
            except ServerUnavailable as exc:
                print(exc)
        for s in started:
            print(f"{s.kind}: {s.write_url} user={s.username!r} password={s.password!r}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            for s in started:
                s.stop()
