"""Writer durability and fork safety, with real processes and a real VictoriaMetrics.

- kill -9: a producer process (a real Python process using the Writer with a
  spool) is killed with SIGKILL, once while the endpoint is up and once while
  nothing listens; a new Writer on the same spool then drains it into the
  server. Every sample added at least flush_interval + 0.5 s before the kill
  must be stored; duplicates are possible only for the batch in flight.
- fork: a Writer created before os.fork, multiprocessing's fork start method
  and a pre-fork server (a parent forks 4 workers) deliver every sample of
  every process exactly once.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List, Set, Tuple

import pytest

from promwrite import BasicAuth, Retry, Writer

import servers

pytestmark = [pytest.mark.servers, pytest.mark.timeout(180)]

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLUSH_INTERVAL = 0.2

PRODUCER = """
import os, sys, time
from promwrite import BasicAuth, Retry, Writer
url, user, password, spool, name, log_path = sys.argv[1:7]
base = int(sys.argv[7])
w = Writer(url, auth=BasicAuth(user, password), spool_dir=spool, flush_interval={interval},
           retry=Retry.forever(backoff_min=0.05, backoff_max=0.2), timeout=2.0, close_at_exit=False)
log = open(log_path, "w", buffering=1)
i = 0
while True:  # about 20,000 samples/s until killed
    for _ in range(200):
        w.add({{"__name__": name, "s": str(i % 50)}}, float(i), timestamp_ms=base + i)
        i += 1
    log.write(f"{{i}} {{time.time():.6f}}\\n")
    time.sleep(0.01)
"""


def python(script: str, *args: str, **kw: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, **kw)


def stored(vm: servers.VictoriaMetricsServer, name: str) -> Tuple[Set[Tuple[str, int]], int]:
    """Distinct (series, timestamp) stored for metric `name`, and the rows returned (duplicates too)."""
    vm.flush()
    distinct: Set[Tuple[str, int]] = set()
    rows = 0
    for s in vm.export(f'{{__name__="{name}"}}'):
        for t in s["timestamps"]:
            distinct.add((s["metric"]["s"], t))
            rows += 1
    return distinct, rows


def wait_for(vm: servers.VictoriaMetricsServer, name: str, count: int, seconds: float = 20.0) -> Tuple[Set[Any], int]:
    deadline = time.monotonic() + seconds
    while True:
        distinct, rows = stored(vm, name)
        if len(distinct) >= count or time.monotonic() > deadline:
            return distinct, rows
        time.sleep(0.2)


@pytest.mark.parametrize("endpoint", ["up", "down"])
def test_kill_9_loses_no_sample_added_a_flush_interval_before(
    endpoint: str, victoria_metrics: servers.VictoriaMetricsServer, tmp_path: pathlib.Path, capsys: Any
) -> None:
    vm = victoria_metrics
    name = f"pww_kill9_{endpoint}_{os.getpid()}"
    spool = tmp_path / "spool"
    log_path = tmp_path / "added.log"
    url = vm.write_url if endpoint == "up" else f"http://127.0.0.1:{servers.free_port()}/api/v1/write"
    base = int(time.time() * 1000) - 600_000
    producer = python(PRODUCER.format(interval=FLUSH_INTERVAL), url, vm.username, vm.password, str(spool), name,
                      str(log_path), str(base))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (log_path.exists() and log_path.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)  # started (imports take a while on a busy machine)
        time.sleep(2.5)
        assert producer.poll() is None, "the producer died on its own"
        producer.send_signal(signal.SIGKILL)
        killed_at = time.time()
        producer.wait(10)
    finally:
        if producer.poll() is None:
            producer.kill()
    marks = [(int(n), float(t)) for n, t in (line.split() for line in log_path.read_text().splitlines() if line)]
    added = marks[-1][0]
    must = max((n for n, t in marks if t <= killed_at - FLUSH_INTERVAL - 0.5), default=0)
    assert must > 2_000, marks[:5]

    w = Writer(vm.write_url, auth=BasicAuth(vm.username, vm.password), spool_dir=str(spool), close_at_exit=False,
               retry=Retry(max_attempts=5, backoff_min=0.05, backoff_max=0.2))  # fmt: skip
    assert w.flush(60)
    s = w.stats()
    w.close()
    assert s.balanced and s.failed == 0, s
    distinct, rows = wait_for(vm, name, must)
    expected = {(str(i % 50), base + i) for i in range(must)}
    lost = len(expected - distinct)
    extra = {k for k in distinct if k[1] - base >= added}
    with capsys.disabled():
        print(f"\nkill -9, endpoint {endpoint}: added {added:,} (in the log; {must:,} at least"
              f" {FLUSH_INTERVAL + 0.5:g} s before the kill), stored {len(distinct):,} distinct,"
              f" lost {lost}, duplicated rows {rows - len(distinct)}, replayed from the spool {s.samples_from_spool:,}")
    assert lost == 0
    assert not extra  # nothing stored that was never added
    assert not list(spool.glob("*.pwspool"))


# ---- fork --------------------------------------------------------------------------------------

FORK_COMMON = """
import json, os, sys, time
from promwrite import BasicAuth, Writer
url, user, password, name, spool = sys.argv[1:6]
def make():
    return Writer(url, auth=BasicAuth(user, password), flush_interval=60.0, timeout=5.0,
                  spool_dir=spool or None)
def add(w, who, n, base):
    for i in range(n):
        w.add({"__name__": name, "s": who}, float(i), timestamp_ms=base + i)
def report(w, who):
    print(json.dumps({"who": who, "sent": w.stats().samples_sent}), flush=True)
BASE = int(time.time() * 1000) - 600_000
"""

OS_FORK = FORK_COMMON + """
w = make()
add(w, "parent", 1000, BASE)  # queued in the parent at the fork (flush_interval is long)
pid = os.fork()
if pid == 0:
    add(w, "child", 1000, BASE)
    assert w.flush(30)
    report(w, "child")  # the child sent its own samples, none of the parent's
    sys.exit(0)
os.waitpid(pid, 0)
w.close()
report(w, "parent")
"""

MP_FORK = FORK_COMMON + """
import multiprocessing
def work(k):
    add(w, f"worker{k}", 2000, BASE)  # exits without close(): close_at_exit delivers
if __name__ == "__main__":
    w = make()
    add(w, "parent", 500, BASE)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=work, args=(k,)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    w.close()
    report(w, "parent")
"""

PRE_FORK = FORK_COMMON + """
w = make()  # created before the workers, as gunicorn --preload does
pids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        add(w, f"worker{k}", 10_000, BASE)
        sys.exit(0)
    pids.append(pid)
codes = [os.waitpid(pid, 0)[1] for pid in pids]
assert codes == [0, 0, 0, 0], codes
w.close()
report(w, "parent")
"""


@pytest.mark.parametrize(
    "script,expected",
    [
        (OS_FORK, {"parent": 1000, "child": 1000}),
        (MP_FORK, {"parent": 500, "worker0": 2000, "worker1": 2000}),
        (PRE_FORK, {f"worker{k}": 10_000 for k in range(4)}),
    ],
    ids=["os.fork", "multiprocessing-fork", "pre-fork-4-workers"],
)
@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_fork_every_sample_arrives_exactly_once(
    script: str, expected: Dict[str, int], spool: bool, victoria_metrics: servers.VictoriaMetricsServer,
    tmp_path: pathlib.Path, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    vm = victoria_metrics
    name = "pww_fork_" + "".join(c if c.isalnum() else "_" for c in request.node.name)
    spool_dir = str(tmp_path / "spool") if spool else ""
    proc = python(script, vm.write_url, vm.username, vm.password, name, spool_dir,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    reports = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    total = sum(expected.values())
    distinct, rows = wait_for(vm, name, total)
    per_series: Dict[str, int] = {}
    for who, _ in distinct:
        per_series[who] = per_series.get(who, 0) + 1
    assert per_series == expected, err.decode()[-2000:]
    assert rows == len(distinct) == total
    if script is OS_FORK:  # each process sent its own samples, the child none of the parent's
        assert sorted((r["who"], r["sent"]) for r in reports) == [("child", 1000), ("parent", 1000)]
    if spool:
        assert not list((tmp_path / "spool").rglob("*.pwspool")), "batches left in the spool"
