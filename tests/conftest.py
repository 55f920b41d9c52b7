"""Shared fixtures: every codec test runs once per backend (python, native).

A quick run (the default) deselects the tests marked ``long`` (fuzzing,
sanitizer builds, fresh installs) unless their file is named on the command
line, and runs a tenth of each property test's Hypothesis examples (`examples`);
a full run, PROMWRITE_FULL=1 (``./scripts/test --full``; CI), runs everything.
"""

from __future__ import annotations

import os
import pathlib
from typing import List, Set

import pytest

from promwrite import _backend

REQUIRE_NATIVE = os.environ.get("PROMWRITE_REQUIRE_NATIVE") == "1"


def _backends() -> List[_backend.Kernels]:
    found = _backend.available()
    if REQUIRE_NATIVE and not any(k.name == "native" for k in found):
        raise RuntimeError("PROMWRITE_REQUIRE_NATIVE=1 but the C accelerator did not import")
    return found


BACKENDS = _backends()
FULL = os.environ.get("PROMWRITE_FULL") == "1"


def examples(n: int) -> int:
    """Hypothesis examples for a property test: `n` in a full run, a tenth (at least 25) in a quick one."""
    return n if FULL else min(n, max(25, n // 10))


def _named_files(config: pytest.Config) -> Set[pathlib.Path]:
    """The test files named on the command line (a file, or a test in it)."""
    base = config.invocation_params.dir
    paths = {(base / arg.split("::")[0]).resolve() for arg in config.args}
    return {p for p in paths if p.is_file()}


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if FULL:
        return
    named = _named_files(config)
    long = [i for i in items if i.get_closest_marker("long") and i.path.resolve() not in named]
    if long:
        config.hook.pytest_deselected(items=long)
        dropped = set(long)
        items[:] = [i for i in items if i not in dropped]


def pytest_report_header(config: pytest.Config) -> str:
    if FULL:
        return "full run (PROMWRITE_FULL=1): long tests included"
    return "quick run: long tests (fuzzing, sanitizers, fresh installs) deselected; PROMWRITE_FULL=1 or ./scripts/test --full runs them (CI does)"


@pytest.fixture(params=BACKENDS, ids=lambda k: k.name)
def kernels(request: pytest.FixtureRequest) -> _backend.Kernels:
    """The kernels of one backend; tests taking this run once per backend."""
    return request.param


# ---- real servers (tests/servers.py) -----------------------------------------
# Session-scoped: each server starts once, on 127.0.0.1 with a free port and a
# temporary data dir, and is stopped at the end. A missing binary skips the
# tests that need it, or fails them when PROMWRITE_REQUIRE_SERVERS=1 (CI).

import sys  # noqa: E402
from typing import Iterator, Type  # noqa: E402

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import servers  # noqa: E402

REQUIRE_SERVERS = os.environ.get("PROMWRITE_REQUIRE_SERVERS") == "1"


def _server(cls: Type[servers.Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    try:
        server = cls(tmp_path_factory.mktemp(cls.kind))
    except servers.ServerUnavailable as exc:
        if REQUIRE_SERVERS:
            pytest.fail(f"PROMWRITE_REQUIRE_SERVERS=1 and {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        server.start()
    except servers.ServerError as exc:
        pytest.fail(f"{cls.kind} did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.PrometheusServer]:
    """A running Prometheus (remote-write receiver, native histograms, exemplars, basic auth)."""
    yield from _server(servers.PrometheusServer, tmp_path_factory)  # type: ignore[misc]


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.VictoriaMetricsServer]:
    """A running single-node VictoriaMetrics with basic auth."""
    yield from _server(servers.VictoriaMetricsServer, tmp_path_factory)  # type: ignore[misc]


@pytest.fixture(params=["prometheus", "victoria_metrics"])
def remote_server(request: pytest.FixtureRequest) -> servers.Server:
    """Each real server in turn (for tests that hold for both)."""
    return request.getfixturevalue(request.param)
