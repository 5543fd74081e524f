"""A replica whose PostgreSQL stops reports not-ready (and stays live), then ready again once it is back.

The replica test (test_replicas_haproxy.py) cuts a replica's path to PostgreSQL through a TCP proxy and needs
HAProxy. This one stops the database server itself (what an outage or a failover looks like) and needs no load
balancer. It uses a throwaway cluster of its own (initdb into a temporary directory, a free port), never the
shared server on 5432.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testsupport import register_ctr
from testsupport.replicas import wait_until

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer, free_port
from yarnit.core import Settings
from yarnit.storage import open_workspace

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster in ``directory`` on ``port`` (trust auth, loopback only), run as ``postgres`` if root."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self.directory.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.directory.parent, "postgres", "postgres")
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(_pg_bin("initdb") or "initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.directory / "data"), "-o", options, "-l",
                  str(self.directory / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
        pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    # its own directory under /tmp: pytest's are private to root, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="yarnit-pg-"))
    cluster = ThrowawayPostgres(base / "cluster", free_port("127.0.0.1"))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        subprocess.run([*cluster.as_user, _pg_bin("pg_ctl") or "pg_ctl", "-D", str(cluster.directory / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_replica_whose_postgres_stops_is_not_ready_but_live_and_ready_again_when_it_returns(
        postgres: ThrowawayPostgres, tmp_path: Path) -> None:
    with open_workspace(Settings.for_home(tmp_path / "home", db_url=postgres.url)) as ws:
        register_ctr(ws)
        with BackgroundServer(create_app(ws)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/v2/health/ready").status_code == 200
            postgres.stop()
            ready = wait_until(lambda: (r := http.get("/v2/health/ready")).status_code == 503 and r, 60,
                               "readiness failing without PostgreSQL")
            assert ready.headers["retry-after"] == "1" and ready.json()["ready"] is False
            assert "metadata store" in ready.json()["reason"], ready.text
            assert "Traceback" not in ready.text
            assert http.get("/v2/health/live").status_code == 200  # not restarted for the database's outage
            postgres.start()
            wait_until(lambda: http.get("/v2/health/ready").status_code == 200, 60,
                       "readiness back once PostgreSQL is")
