"""The loop's lease: one loop per model and workspace, bound to its process (``flock``), with a holder file.

An exclusive ``flock`` on ``$YARNIT_HOME/continuous/loop-<model>.lock`` is held for as long as the loop runs. A
second loop is refused with the holder's pid, host, start and last heartbeat (from the holder file, rewritten
atomically each tick). The kernel drops the lock of a process that dies, ``kill -9`` included, so a dead loop's
lease ends with it; the heartbeat only tells ``yarnit loop status`` how recently the holder ticked. This is a
single-host lease: loops on several hosts sharing one PostgreSQL store would need a lease row in the store.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from yarnit.core.atomic import atomic_write_text
from yarnit.core.errors import Conflict


def continuous_dir(home: str | Path) -> Path:
    return Path(home) / "continuous"


class LoopLease:
    """An exclusive, process-bound lease on the loop of one model (``flock``), with a holder file for status."""

    def __init__(self, home: str | Path, model: str, *, clock: Any) -> None:
        self.dir = continuous_dir(home)
        self.model, self.clock = model, clock
        self.lock_path = self.dir / f"loop-{model}.lock"
        self.holder_path = self.dir / f"loop-{model}.holder.json"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder() or {}
            raise Conflict(
                f"Another loop of model {self.model!r} is running on this workspace: pid {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')}, since {holder.get('started_at', '?')} (last heartbeat "
                f"{holder.get('heartbeat_at', '?')}). Stop it first (kill {holder.get('pid', 'PID')}), or watch it "
                "with: yarnit loop status"
            ) from None
        self._fd = fd
        now = self.clock.now().isoformat()
        self._write({"pid": os.getpid(), "host": socket.gethostname(), "started_at": now, "heartbeat_at": now})

    def beat(self) -> None:
        holder = self.holder() or {}
        self._write(holder | {"heartbeat_at": self.clock.now().isoformat()})

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.holder_path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Whether a live process holds the lease now (a dead holder's lock is gone with it)."""
        if self._fd is not None:
            return False
        if not self.lock_path.exists():
            return False
        fd = os.open(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we took
        return False

    def holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.holder_path, json.dumps(data, sort_keys=True))

    def __enter__(self) -> LoopLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["LoopLease", "continuous_dir"]
