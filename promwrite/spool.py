"""A directory of undelivered remote-write payloads, kept across restarts.

`Writer(spool_dir=...)` writes here the batches it could not deliver (retries
ran out, or `close()` came while the endpoint was down) and sends them first
the next time a Writer starts on the same directory.

One file per batch, named so that names sort in write order
(``<ns since epoch>-<pid>-<seq>.pwspool``), holding a header and the payload
exactly as it goes on the wire (snappy-compressed protobuf)::

    offset  size  field
    0       4     magic b"PWSP"
    4       2     format version (1), little endian
    6       2     header size in bytes (32)
    8       4     crc32 of the payload
    12      8     samples in the payload
    20      8     payload size in bytes
    28      4     reserved (0)
    32      ...   payload

Files are written atomically: to a hidden temporary file in the same
directory, flushed and fsync'ed, then renamed into place (and the directory
fsync'ed). A file that fails any check (short, bad magic or version, size or
crc mismatch) and any temporary file left by a crash are moved aside (renamed
with a ``.corrupt`` suffix) with a warning; nothing in the directory can make
a Writer fail to start. A directory is used by one Writer at a time (an
advisory lock on ``.lock``).
"""

from __future__ import annotations

import logging
import os
import pathlib
import struct
import threading
import time
import zlib
from typing import List, Optional, Tuple, Union

from .errors import PromwriteError

try:  # advisory locking is POSIX; elsewhere the directory is simply not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "SpoolCorrupt", "SpoolError"]

log = logging.getLogger("promwrite")

MAGIC = b"PWSP"
VERSION = 1
HEADER = struct.Struct("<4sHHIQQI")  # magic, version, header size, crc32, samples, payload size, reserved
SUFFIX = ".pwspool"
CORRUPT = ".corrupt"
REJECTED = ".rejected"


class SpoolError(PromwriteError):
    """The spool directory cannot be used (locked by another Writer, not writable, full)."""


class SpoolCorrupt(ValueError):
    """A spool file fails its checks; the message says which."""


def encode_file(payload: bytes, samples: int) -> bytes:
    """Header and payload, as a spool file holds them."""
    return HEADER.pack(MAGIC, VERSION, HEADER.size, zlib.crc32(payload), samples, len(payload), 0) + payload


def decode_file(data: bytes) -> Tuple[bytes, int]:
    """(payload, samples) from a spool file's bytes; SpoolCorrupt when a check fails."""
    if len(data) < HEADER.size:
        raise SpoolCorrupt(f"{len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, size, crc, samples, length, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SpoolCorrupt(f"not a promwrite spool file (magic {magic!r})")
    if version != VERSION or size < HEADER.size:
        raise SpoolCorrupt(f"format version {version} (header {size} bytes) is not one this promwrite reads")
    payload = data[size:]
    if len(payload) != length:
        raise SpoolCorrupt(f"payload is {len(payload)} bytes, the header says {length} (partial write?)")
    if zlib.crc32(payload) != crc:
        raise SpoolCorrupt("payload crc32 mismatch")
    return payload, samples


class Spool:
    """The spool directory of one Writer: write, list, read, remove, set aside."""

    def __init__(self, directory: Union[str, os.PathLike], max_bytes: Optional[int] = None) -> None:
        self.dir = pathlib.Path(directory)
        self.max_bytes = max_bytes
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"spool directory {str(self.dir)!r}: {exc.strerror or exc}") from None
        self._lock_fd: Optional[int] = None
        self._mutex = threading.Lock()
        self._seq = 0
        self.bytes = 0  # in spool files
        self._lock()
        self._clean_temporaries()
        self.bytes = sum(self._size(p) for p in self.pending())

    # ---- locking ------------------------------------------------------------------

    def _lock(self) -> None:
        path = self.dir / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise SpoolError(f"spool directory {str(self.dir)!r} is in use by another Writer") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the directory for the next Writer."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    # ---- reading ------------------------------------------------------------------

    def pending(self) -> List[pathlib.Path]:
        """Spooled batches, oldest first."""
        return sorted(self.dir.glob("*" + SUFFIX))

    def read(self, path: pathlib.Path) -> Tuple[bytes, int]:
        """(payload, samples) of a spool file; SpoolCorrupt when it fails a check."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpoolCorrupt(f"unreadable: {exc.strerror or exc}") from None
        return decode_file(data)

    def remove(self, path: pathlib.Path) -> None:
        size = self._size(path)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        with self._mutex:
            self.bytes = max(0, self.bytes - size)

    def set_aside(self, path: pathlib.Path, suffix: str, why: str) -> Optional[pathlib.Path]:
        """Rename `path` out of the way (kept for inspection), with a warning saying why."""
        target = path.with_name(path.name + suffix)
        size = self._size(path)
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error("promwrite: spool file %s: %s, and it cannot be moved aside: %s", path, why, exc)
            return None
        if path.name.endswith(SUFFIX):
            with self._mutex:
                self.bytes = max(0, self.bytes - size)
        log.warning("promwrite: spool file %s: %s; moved aside to %s", path, why, target.name)
        return target

    def _clean_temporaries(self) -> None:
        for tmp in sorted(self.dir.glob(".*.tmp")):
            self.set_aside(tmp, CORRUPT, "a partial write left by an interrupted process")

    @staticmethod
    def _size(path: pathlib.Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    # ---- writing ------------------------------------------------------------------

    def write(self, payload: bytes, samples: int) -> pathlib.Path:
        """Store one batch atomically; SpoolError when it cannot (disk full, max_bytes)."""
        data = encode_file(payload, samples)
        with self._mutex:
            if self.max_bytes is not None and self.bytes + len(data) > self.max_bytes:
                raise SpoolError(
                    f"spool directory {str(self.dir)!r} is full ({self.bytes} of {self.max_bytes} bytes used)"
                )
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
            self.bytes += len(data)
        final = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._sync_dir()
        except OSError as exc:
            with self._mutex:
                self.bytes -= len(data)
            try:
                tmp.unlink()
            except OSError:
                pass
            raise SpoolError(f"spool directory {str(self.dir)!r}: {exc.strerror or exc}") from None
        return final

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self.dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
