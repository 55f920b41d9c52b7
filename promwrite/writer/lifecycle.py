"""A process's Writers across `os.fork()` and interpreter exit.

Before a fork every Writer's locks are taken (so none is copied mid-change),
then released in the parent; in the child each Writer restarts with fresh
locks, threads and an empty queue. At exit, Writers made with
`close_at_exit` are closed, which delivers what they hold.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import TYPE_CHECKING, Any, List, Set

if TYPE_CHECKING:
    from .core import Writer

__all__ = ["closed", "track"]

log = logging.getLogger("promwrite")

_ALL: "weakref.WeakSet[Writer]" = weakref.WeakSet()  # every Writer of this process (for fork)
_LIVE: "Set[Writer]" = set()  # close_at_exit Writers not yet closed
_HELD: List[Any] = []  # the locks taken before a fork


def track(writer: "Writer", close_at_exit: bool) -> None:
    _ALL.add(writer)
    if close_at_exit:
        _LIVE.add(writer)


def closed(writer: "Writer") -> None:
    _LIVE.discard(writer)


def _before_fork() -> None:
    for writer in list(_ALL):
        for lock in writer._locks():
            lock.acquire()
            _HELD.append(lock)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop().release()


def _after_fork_in_child() -> None:
    _HELD.clear()  # the child's writers get new locks
    for writer in list(_ALL):
        try:
            writer._restart_in_child()
        except Exception:
            log.exception("promwrite: restarting a Writer in a forked child failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


@atexit.register
def _close_all() -> None:
    for writer in list(_LIVE):
        try:
            writer.close()
        except Exception:
            log.exception("promwrite: closing a Writer at exit failed")
