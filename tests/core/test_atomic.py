"""Atomic writes under injected I/O errors (RELIABILITY.md target 2) and crashes."""

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from yarnit.core import atomic_write_bytes, remove_temp_files
from yarnit.core.atomic import FileOps, atomic_create_chunks


class FailAt(FileOps):
    """Raises EIO (or ENOSPC) at the n-th call of one operation."""

    def __init__(self, op: str, code: int = errno.EIO) -> None:
        self.op, self.code, self.fsync_calls = op, code, 0

    def _maybe_fail(self, op: str) -> None:
        if op == self.op:
            raise OSError(self.code, os.strerror(self.code))

    def write(self, stream: BinaryIO, data: bytes) -> None:
        self._maybe_fail("write")
        super().write(stream, data)

    def fsync(self, stream: BinaryIO) -> None:
        self.fsync_calls += 1
        self._maybe_fail("fsync")
        super().fsync(stream)

    def rename(self, src: Path, dst: Path) -> None:
        self._maybe_fail("rename")
        super().rename(src, dst)

    def link(self, src: Path, dst: Path) -> None:
        self._maybe_fail("link")
        super().link(src, dst)


@pytest.mark.parametrize("op", ["write", "fsync", "rename"])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, op: str, code: int) -> None:
    target = tmp_path / "model.json"
    atomic_write_bytes(target, b"old")
    ops = FailAt(op, code)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"new", ops=ops)
    assert info.value.errno == code
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
    assert ops.fsync_calls <= 1  # a failed fsync is never retried


@pytest.mark.parametrize("op", ["write", "fsync", "link"])
def test_failed_create_leaves_nothing_under_the_final_name(tmp_path: Path, op: str) -> None:
    target = tmp_path / "blob"
    with pytest.raises(OSError):
        atomic_create_chunks(target, [b"a", b"b"], ops=FailAt(op))
    assert list(tmp_path.iterdir()) == []


def test_create_is_write_once(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    assert atomic_create_chunks(target, [b"first"]) is True
    assert atomic_create_chunks(target, [b"second"]) is False
    assert target.read_bytes() == b"first"


def test_temp_files_of_a_killed_writer_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    code = (
        "import os,sys\n"
        f"f=open({str(tmp_path)!r}+'/.tmp-x.'+str(os.getpid())+'.abcd','wb'); f.write(b'partial'); f.flush()\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); import time; time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    assert remove_temp_files(tmp_path) == []  # the writer is alive: leave its temp file
    proc.kill()
    proc.wait()
    removed = remove_temp_files(tmp_path)
    assert len(removed) == 1 and not removed[0].exists()


def test_a_scratch_process_writes_atomically_without_fsync_and_durability_is_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_durable(False)`` (the operate demo's scratch months) skips every fsync of an atomic write and makes
    SQLite commit without syncing; the write is still a rename of a complete temp file. The default syncs."""
    from yarnit.core.atomic import is_durable, set_durable, sync_fd

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    assert is_durable()
    atomic_write_bytes(tmp_path / "a", b"one")
    assert len(synced) == 2  # the file, then its directory
    with sqlite3_synchronous(tmp_path / "durable.db") as level:
        assert level == 2  # FULL

    previous = set_durable(False)
    try:
        assert previous is True and not is_durable()
        synced.clear()
        atomic_write_bytes(tmp_path / "a", b"two")
        fd = os.open(tmp_path / "a", os.O_RDONLY)
        sync_fd(fd)
        os.close(fd)
        assert synced == [] and (tmp_path / "a").read_bytes() == b"two"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
        with sqlite3_synchronous(tmp_path / "scratch.db") as level:
            assert level == 0  # OFF: a killed process still rolls back through the WAL
    finally:
        set_durable(previous)
    assert is_durable()


class sqlite3_synchronous:
    """The ``PRAGMA synchronous`` of a metadata-store connection made now (0 OFF, 2 FULL)."""

    def __init__(self, path: Path) -> None:
        from yarnit.storage.metadata import MetadataStore

        self.store = MetadataStore(f"sqlite:///{path}")

    def __enter__(self) -> int:
        from sqlalchemy import text

        with self.store.engine.connect() as conn:
            return int(conn.execute(text("PRAGMA synchronous")).scalar_one())

    def __exit__(self, *exc: object) -> None:
        self.store.close()
