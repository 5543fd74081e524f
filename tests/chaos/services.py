"""Throwaway PostgreSQL and Redis servers that a chaos test may stop and start (import as ``chaos.services``).

The shared servers on 5432/6379 are never touched: each fixture starts its own on a free port in a
temporary directory and removes it afterwards. PostgreSQL refuses to run as root, so as root the cluster
belongs to the ``postgres`` user and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from yarnit.api.server import free_port


def _wait_port(port: int, *, up: bool, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                is_up = True
        except OSError:
            is_up = False
        if is_up == up:
            return
        assert time.monotonic() < deadline, f"port {port} did not come {'up' if up else 'down'} in {timeout_s} s"
        time.sleep(0.05)


class ThrowawayPostgres:
    """``initdb`` into ``root``, then ``start()``/``stop()`` at will on a port of its own."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not binaries:
            pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
        self.bin = Path(binaries[-1]).parent
        # not under pytest's tmp_path: as root that is mode 0700, and the cluster's owner must reach it
        self.root = root = Path(tempfile.mkdtemp(prefix="yarnit-chaos-pg-"))
        self.data = root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start a PostgreSQL cluster")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, cwd=self.root)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "-t", "120", "start")
        _wait_port(self.port, up=True)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")
        _wait_port(self.port, up=False)

    def close(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)


class ThrowawayRedis:
    """A ``redis-server`` on a port of its own; ``stop()`` shuts it down (SIGTERM: it saves its RDB file first),
    ``start()`` starts it again on the same port and directory, so it comes back with its data."""

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary is not None
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "3600 1",
                                      "--appendonly", "no", "--dir", str(self.root), "--dbfilename", "dump.rdb"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None
        _wait_port(self.port, up=False)

    def close(self) -> None:
        if self.proc is not None:
            self.stop()
