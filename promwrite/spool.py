"""A directory of remote-write payloads kept across crashes and restarts: the Writer's write-ahead queue.

`Writer(spool_dir=...)` writes every batch here before it sends it and
removes the file once the server accepted it or refused it for good; what is
left (the process was killed, retries ran out, `close()` came while the
endpoint was down) is sent first by the next Writer on the same directory.

One file per batch, named so that names sort in write order
(``<ns since epoch>-<pid>-<seq>.pwspool``), holding a header and the payload
exactly as it goes on the wire (snappy-compressed protobuf)::

    offset  size  field
    0       4     magic b"PWSP"
    4       2     format version (2), little endian
    6       2     header size in bytes (32)
    8       8     samples in the payload
    16      8     payload size in bytes
    24      4     reserved (0)
    28      4     crc32 of header bytes 0..27 and the payload
    32      ...   payload

(Version 1 files, whose crc covers the payload only, are still read.)
Files are written atomically: to a hidden temporary file in the same
directory, fsync'ed, then renamed into place (and the directory fsync'ed).
A file that fails any check and any temporary file left by a crash are moved
aside (renamed with a ``.corrupt`` suffix) with a warning; nothing in the
directory can make a Writer fail to start. Files are 0600, directories 0700.

A directory belongs to one Writer process at a time (an advisory lock on
``.lock``, opened without following symlinks). A Writer inherited by a forked
child writes to a segment of its own, ``<pid>-<ns>.seg/`` with its own lock;
the next Writer on the directory takes over segments whose process is gone
(their lock is free) and sends their files too, so no two processes ever
send the same file.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
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

__all__ = ["Spool", "SpoolCorrupt", "SpoolError", "decode_file", "encode_file"]

log = logging.getLogger("promwrite")

MAGIC = b"PWSP"
VERSION = 2
HEADER = struct.Struct("<4sHHQQII")  # magic, version, header size, samples, payload size, reserved, crc32
HEADER_V1 = struct.Struct("<4sHHIQQI")  # magic, version, header size, crc32 (payload), samples, payload size, reserved
SUFFIX = ".pwspool"
SEGMENT = ".seg"
CORRUPT = ".corrupt"
REJECTED = ".rejected"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SpoolError(PromwriteError):
    """The spool directory cannot be used (locked by another Writer, not writable, full)."""


class SpoolCorrupt(ValueError):
    """A spool file fails its checks; the message says which."""


def encode_file(payload: bytes, samples: int) -> bytes:
    """Header and payload, as a spool file holds them (the crc covers both)."""
    head = HEADER.pack(MAGIC, VERSION, HEADER.size, samples, len(payload), 0, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload


def decode_file(data: bytes) -> Tuple[bytes, int]:
    """(payload, samples) from a spool file's bytes; SpoolCorrupt when a check fails."""
    if len(data) < HEADER.size:
        raise SpoolCorrupt(f"{len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, size = struct.unpack_from("<4sHH", data)
    if magic != MAGIC:
        raise SpoolCorrupt(f"not a promwrite spool file (magic {magic!r})")
    if version == 1 and size >= HEADER_V1.size:
        _, _, _, crc, samples, length, _ = HEADER_V1.unpack_from(data)
        covered = zlib.crc32(data[size:])
    elif version == VERSION and size >= HEADER.size:
        _, _, _, samples, length, _, crc = HEADER.unpack_from(data)
        covered = zlib.crc32(data[size:], zlib.crc32(data[: HEADER.size - 4]))
    else:
        raise SpoolCorrupt(f"format version {version} (header {size} bytes) is not one this promwrite reads")
    if len(data) - size != length:
        raise SpoolCorrupt(f"payload is {len(data) - size} bytes, the header says {length} (partial write?)")
    if covered != crc:
        raise SpoolCorrupt("crc32 mismatch (header or payload)")
    return data[size:], samples


def _locked(path: pathlib.Path) -> Optional[int]:
    """A descriptor holding an exclusive lock on `path` (never a symlink), or None when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


class Spool:
    """One process's spool directory (or segment): write, list, read, remove, set aside.

    `fsync` False skips the per-batch fsync (a kill loses nothing either way;
    fsync guards against a machine crash). `segment` makes this process's own
    segment under `directory` (for a forked child) instead of taking the
    directory and the segments of processes that are gone.
    """

    def __init__(self, directory: Union[str, os.PathLike], max_bytes: Optional[int] = None, *,
                 fsync: bool = True, segment: bool = False) -> None:  # fmt: skip
        self.root = pathlib.Path(directory)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._seq = 0
        self._lock_fds: List[int] = []
        self.claimed: List[pathlib.Path] = []  # segments of processes that are gone, taken over
        self.bytes = 0  # in spool files
        try:
            _make_dir(self.root)
            if segment:
                self.dir = self._new_segment()
            else:
                self.dir = self.root
                self._take(self.root / ".lock", f"spool directory {str(self.root)!r} is in use by another Writer")
                self._claim_segments()
        except OSError as exc:
            self.close()
            raise SpoolError(f"spool directory {str(self.root)!r}: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise
        self._clean_temporaries()
        self.bytes = sum(self._size(p) for p in self.pending())

    # ---- locking ------------------------------------------------------------------

    def _take(self, lock: pathlib.Path, busy: str) -> None:
        fd = _locked(lock)
        if fd is None:
            raise SpoolError(busy)
        self._lock_fds.append(fd)

    def _new_segment(self) -> pathlib.Path:
        name = f"{os.getpid()}-{time.time_ns()}"
        making = self.root / f".{name}.making"
        _make_dir(making)
        self._take(making / ".lock", f"spool segment {str(making)!r} is in use")
        final = self.root / (name + SEGMENT)
        os.replace(making, final)  # visible only once locked: nobody takes it over meanwhile
        return final

    def _claim_segments(self) -> None:
        for segment in sorted(self.root.glob("*" + SEGMENT)):
            if segment.is_symlink() or not segment.is_dir() or not (segment / ".lock").exists():
                continue
            fd = _locked(segment / ".lock")
            if fd is not None:  # its process is gone: its batches are ours to send
                self._lock_fds.append(fd)
                self.claimed.append(segment)

    def close(self) -> None:
        """Release the directory (and remove taken-over segments left empty)."""
        segments = self.claimed + ([self.dir] if getattr(self, "dir", self.root) != self.root else [])
        for segment in segments:
            try:
                empty = all(p.name == ".lock" for p in segment.iterdir())
            except OSError:
                continue
            if empty:
                shutil.rmtree(segment, ignore_errors=True)
        fds, self._lock_fds = self._lock_fds, []
        for fd in fds:
            os.close(fd)  # closing the descriptor drops the flock

    def forget(self) -> None:
        """In a forked child: let go of the parent's locks without touching the parent's files."""
        fds, self._lock_fds = self._lock_fds, []
        for fd in fds:
            os.close(fd)  # the parent's descriptor keeps the lock

    # ---- reading ------------------------------------------------------------------

    def pending(self) -> List[pathlib.Path]:
        """Spooled batches, oldest first (this directory's and those of taken-over segments)."""
        paths = list(self.dir.glob("*" + SUFFIX))
        for segment in self.claimed:
            paths += segment.glob("*" + SUFFIX)
        return sorted(paths, key=lambda p: p.name)

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
        for directory in [self.dir] + self.claimed:
            for tmp in sorted(directory.glob(".*.tmp")):
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
                    f"spool directory {str(self.root)!r} is full ({self.bytes} of {self.max_bytes} bytes used)"
                )
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
            self.bytes += len(data)
        final = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            if self.fsync:
                self._sync_dir()
        except OSError as exc:
            with self._mutex:
                self.bytes -= len(data)
            try:
                tmp.unlink()
            except OSError:
                pass
            raise SpoolError(f"spool directory {str(self.root)!r}: {exc.strerror or exc}") from None
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


def _make_dir(path: pathlib.Path) -> None:
    """`path` as a directory (0700 when made here); OSError when it cannot be."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
