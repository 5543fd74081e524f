"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

A reader sees either the old file or the complete new one, never a torn file,
even if the process is killed at any point (RELIABILITY.md 5.3). A failed fsync
is raised, never retried: after a failed fsync the kernel may have dropped the
dirty pages, so a second "successful" fsync would be a lie (PostgreSQL
fsyncgate, RELIABILITY.md 5.2).

The system calls go through a :class:`FileOps` object so that tests can inject
EIO/ENOSPC at every write, fsync and rename.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


_durable = True


def set_durable(durable: bool) -> bool:
    """Whether this process's writes reach the disk before they count (the default: True); returns the old value.

    False keeps every write atomic (temp file and rename: a killed process still leaves the old or the new file,
    and SQLite's journal still rolls back a half-done transaction) but skips the fsyncs, so a power cut or a
    kernel crash may lose the last writes. Only for scratch workspaces that nothing relies on after the process
    ends: the operate demo's two simulated months (``yarnit demo``; ``--durable`` keeps them fsynced), which
    compress 720 hours of hourly state writes into minutes. Read by :class:`FileOps`, :func:`sync_fd`, the
    prediction log and the metadata store's SQLite connections when they are made.
    """
    global _durable
    previous, _durable = _durable, bool(durable)
    return previous


def is_durable() -> bool:
    return _durable


def sync_fd(fd: int, *, data_only: bool = False) -> None:
    """``fsync`` (or ``fdatasync``) ``fd`` unless this process writes without durability (:func:`set_durable`)."""
    if _durable:
        (os.fdatasync if data_only else os.fsync)(fd)


class FileOps:
    """The system calls an atomic write makes. Subclass to inject faults in tests."""

    def write(self, stream: BinaryIO, data: bytes) -> None:
        stream.write(data)

    def fsync(self, stream: BinaryIO) -> None:
        stream.flush()
        sync_fd(stream.fileno())

    def rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def fsync_dir(self, directory: Path) -> None:
        if not _durable:
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def link(self, src: Path, dst: Path) -> None:
        """Create ``dst`` as a hard link to ``src``; fails if ``dst`` exists."""
        os.link(src, dst)


DEFAULT_OPS = FileOps()


class UnsyncedOps(FileOps):
    """Atomic but not durable: for files rebuilt from durable state on every run (a status cache). A killed
    process still leaves the old or the new file; only a power cut can leave an older one."""

    def fsync(self, stream: BinaryIO) -> None:
        stream.flush()

    def fsync_dir(self, directory: Path) -> None:
        return None


UNSYNCED_OPS = UnsyncedOps()


def make_dirs(path: str | Path, mode: int = 0o755) -> Path:
    """``mkdir -p`` where every directory it creates gets ``mode`` (less the umask), the missing parents too.

    ``Path.mkdir(parents=True, mode=…)`` gives ``mode`` only to the last directory; the parents it creates get
    0o777 less the umask, so under a umask of 0 or 002 they were world- or group-writable (CVE-2026-4137: others
    could then swap files in). Directories that already exist are left as they are.
    """
    path = Path(path)
    missing = []
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
    return path


@contextlib.contextmanager
def _temp_beside(path: Path, mode: int) -> Iterator[tuple[Path, BinaryIO]]:
    make_dirs(path.parent)
    temp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield temp, stream
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def atomic_write_chunks(
    path: str | Path, chunks: Iterable[bytes], *, mode: int = 0o644, ops: FileOps = DEFAULT_OPS
) -> None:
    """Write ``chunks`` to ``path`` atomically, replacing any existing file."""
    target = Path(path)
    with _temp_beside(target, mode) as (temp, stream):
        for chunk in chunks:
            ops.write(stream, chunk)
        ops.fsync(stream)
        stream.close()
        ops.rename(temp, target)
    ops.fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = 0o644, ops: FileOps = DEFAULT_OPS) -> None:
    """Write ``data`` to ``path`` atomically, replacing any existing file."""
    atomic_write_chunks(path, [data], mode=mode, ops=ops)


def atomic_write_text(path: str | Path, text: str, *, mode: int = 0o644, ops: FileOps = DEFAULT_OPS) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode, ops=ops)


def atomic_create_chunks(
    path: str | Path, chunks: Iterable[bytes], *, mode: int = 0o444, ops: FileOps = DEFAULT_OPS
) -> bool:
    """Create ``path`` atomically with ``chunks`` unless it already exists (write-once).

    Returns True if this call created the file, False if it was already there.
    Uses link() rather than rename() so two writers racing for one name can
    never replace each other's file.
    """
    target = Path(path)
    with _temp_beside(target, mode) as (temp, stream):
        for chunk in chunks:
            ops.write(stream, chunk)
        ops.fsync(stream)
        stream.close()
        try:
            ops.link(temp, target)
            created = True
        except FileExistsError:
            created = False
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    if created:
        ops.fsync_dir(target.parent)
    return created


def pid_alive(pid: int) -> bool:
    """True if a process with this id is running (ours counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(temp: Path) -> bool:
    parts = temp.name.rsplit(".", 2)
    return len(parts) == 3 and parts[1].isdigit() and pid_alive(int(parts[1]))


def remove_temp_files(root: str | Path, *, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """Delete temp files under ``root`` left by writers that died mid-write; return them.

    Temp files of processes that are still running are left alone: they may be
    in the middle of a write. Directories in ``exclude`` are not searched.
    """
    removed: list[Path] = []
    base = Path(root)
    if not base.exists():
        return removed
    skipped = {Path(p) for p in exclude}
    for directory, subdirs, files in os.walk(base):
        here = Path(directory)
        subdirs[:] = [d for d in subdirs if here / d not in skipped]
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            temp = here / name
            if _writer_alive(temp):
                continue
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed.append(temp)
    return removed


__all__ = [
    "DEFAULT_OPS",
    "FileOps",
    "TEMP_PREFIX",
    "UNSYNCED_OPS",
    "UnsyncedOps",
    "atomic_create_chunks",
    "atomic_write_bytes",
    "atomic_write_chunks",
    "atomic_write_text",
    "make_dirs",
    "pid_alive",
    "remove_temp_files",
]
