"""Name lookup bounded in time and in threads: `resolve`, used by every HTTP exchange.

The system resolver cannot be interrupted, so a name is looked up in a daemon
thread that is left to finish alone when its callers stop waiting. Against a
resolver that hangs, callers of the same (host, port) share the one lookup in
flight, and at most `MAX_LOOKUPS` lookups run at once: beyond that a call fails
at once, so retries against a dead DNS server cannot pile up threads.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["AddressInfo", "MAX_LOOKUPS", "ResolverBusy", "resolve"]

AddressInfo = Tuple[socket.AddressFamily, socket.SocketKind, int, str, Tuple[Any, ...]]

#: Lookups of distinct (host, port) in flight at once. A process talks to a few endpoints
#: (plus a token URL or a proxy each); 16 leaves room for many, while a hung resolver
#: holds at most 16 idle threads, not one per retry of every sender.
MAX_LOOKUPS = 16


class _Lookup:
    """One getaddrinfo in its own thread, and its answer (addresses or the exception) once done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Union[List[AddressInfo], BaseException, None] = None


_lock = threading.Lock()
_in_flight: Dict[Tuple[str, int], _Lookup] = {}


def _forget_in_child() -> None:
    """After fork: the parent's lookup threads are not in the child, so their lookups would never end here."""
    global _lock, _in_flight
    _lock = threading.Lock()
    _in_flight = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _look_up(key: Tuple[str, int], lookup: _Lookup) -> None:
    try:
        lookup.answer = socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
    except Exception as exc:  # gaierror, or UnicodeError for a name IDNA cannot encode
        lookup.answer = exc
    with _lock:
        del _in_flight[key]
    lookup.done.set()


class ResolverBusy(OSError):
    """A name not looked up, because `MAX_LOOKUPS` other lookups are still waiting on the resolver."""


def resolve(host: str, port: int, seconds: float) -> List[AddressInfo]:
    """The TCP addresses of `host`:`port` (getaddrinfo), or socket.timeout after `seconds`
    (ResolverBusy at once when `MAX_LOOKUPS` other names are still being looked up)."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address: look it up
    key = (host, port)
    with _lock:
        lookup: Optional[_Lookup] = _in_flight.get(key)
        if lookup is None:
            if len(_in_flight) >= MAX_LOOKUPS:
                raise ResolverBusy(f"{host!r} was not resolved: {MAX_LOOKUPS} other lookups are still waiting")
            lookup = _Lookup()
            thread = threading.Thread(target=_look_up, args=(key, lookup), name="promwrite-resolve", daemon=True)
            thread.start()  # under the lock: _look_up's removal waits for this insertion
            _in_flight[key] = lookup
    if not lookup.done.wait(seconds):
        raise socket.timeout(f"{host!r} was not resolved within {seconds:g} s")
    if isinstance(lookup.answer, BaseException):
        raise copy.copy(lookup.answer)  # its own copy: callers sharing the lookup each get a traceback
    assert lookup.answer is not None
    return lookup.answer
