"""The bound of a Writer's spool: its default, and what happens when a spool behind a dead endpoint reaches it."""

from __future__ import annotations

import logging
import pathlib
import shutil
from collections import Counter
from typing import List

import pytest

from promwrite import QueueFullError, Writer

from .faulty import FaultyServer, free_port
from .test_writer import Key, PortServer, assert_balanced, key, received, writer

pytestmark = pytest.mark.timeout(60)


def spooled_bytes(directory: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*.pwspool"))


def test_a_spool_is_bounded_by_default(tmp_path: pathlib.Path) -> None:
    # Before, spool_max_bytes defaulted to None: a spool behind a dead endpoint grew until the disk was full.
    with FaultyServer() as server:
        w = writer(server.url, spool_dir=str(tmp_path))
        try:
            cap = w.spool_max_bytes
        finally:
            w.close()
        room = shutil.disk_usage(tmp_path).free // 2  # the disk's free space moves a little meanwhile
        assert cap is not None and cap <= 1 << 30  # 1 GiB, or half the disk's room when that is less
        assert cap == 1 << 30 or abs(cap - room) < 64 << 20, (cap, room)
        w = writer(server.url, spool_dir=str(tmp_path), spool_max_bytes=5000)
        w.close()
        assert w.spool_max_bytes == 5000
        w = writer(server.url)
        w.close()
        assert w.spool_max_bytes is None  # no spool
        for bad in (0, -1, 1.5, "1000", True):
            with pytest.raises(ValueError, match=f"spool_max_bytes must be a positive int, not {bad!r}"):
                writer(server.url, spool_dir=str(tmp_path), spool_max_bytes=bad)


def fill_to_the_bound(w: Writer, limit: int) -> List[Key]:
    """Add samples until `add` gives up (QueueFullError): the spool is at its bound and the queue full."""
    keys: List[Key] = []
    for i in range(limit):
        labels = {"__name__": "m", "s": str(i % 10)}
        try:
            w.add(labels, i, timestamp_ms=1_000_000 + i)
        except QueueFullError:
            return keys
        keys.append(key(labels, 1_000_000 + i, i))
    raise AssertionError(f"add never gave up in {limit} samples")


@pytest.mark.parametrize("endpoint_returns", [True, False], ids=["endpoint-returns", "endpoint-stays-down"])
def test_at_the_spool_bound_batches_wait_in_memory_and_none_is_lost_silently(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, endpoint_returns: bool
) -> None:
    port = free_port()
    w = writer(f"http://127.0.0.1:{port}/x", spool_dir=str(tmp_path), spool_max_bytes=3000, shards=1,
               max_samples_per_send=50, max_queued_samples=200, block_timeout=0.3)  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="promwrite"):
        keys = fill_to_the_bound(w, 5000)
    assert spooled_bytes(tmp_path) <= 3000
    assert "is full (" in caplog.text and "of 3000 bytes used)" in caplog.text  # said, at ERROR
    stats = assert_balanced(w, samples_added=len(keys), samples_sent=0)
    assert stats.samples_queued > 200  # the queue's 200, and batches the spool could not take, in memory
    if endpoint_returns:
        with PortServer(port) as server:
            assert w.flush(20)
            w.close()
        assert received(server) == Counter(keys)
        assert_balanced(w, samples_sent=len(keys), samples_failed={}, samples_spooled=0)
        assert spooled_bytes(tmp_path) == 0
    else:
        w.close(timeout=0.5)
        s = assert_balanced(w, samples_sent=0, samples_queued=0)
        assert set(s.samples_failed) == {"spool_error"}  # counted, and logged, as failed
        assert s.samples_spooled + s.samples_failed["spool_error"] == len(keys)
        assert "spool_error" in caplog.text and spooled_bytes(tmp_path) <= 3000
