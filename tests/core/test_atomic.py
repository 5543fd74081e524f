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
