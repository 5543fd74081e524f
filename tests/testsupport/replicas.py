"""Real ``yarnit serve`` replica processes behind a real HAProxy, for the replica test and its benchmark.

Every part is a process of its own: N servers on loopback ports (what ``yarnit serve`` runs, with generous
admission limits) (one shared workspace directory for artifacts, one PostgreSQL schema,
Redis) and ``haproxy -db`` with the configuration ``yarnit deploy lb`` writes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from yarnit.api.server import free_port
from yarnit.deploy import LoadBalancerOptions, haproxy_config

# What `yarnit serve` runs (create_app, prepare_for_traffic, uvicorn with the fast lane), with generous admission
# limits: the replica test is about routing and failover, and a loaded CI machine must not shed its requests.
SERVER = """
import sys
from yarnit.api import create_app
from yarnit.api.dataplane import asgi_entry
from yarnit.api.server import prepare_for_traffic, serve_forever
from yarnit.core import load_settings
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace
app = create_app(open_workspace(load_settings()), serving=ServingOptions(deadline_ms=30_000, max_queue_delay_ms=None))
prepare_for_traffic(app)
serve_forever(asgi_entry(app), "127.0.0.1", int(sys.argv[1]))
"""


def haproxy_binary() -> str | None:
    """HAProxy from Debian's package (``apt-get install haproxy``), or None."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


def wait_until(predicate, bound_s: float, what: str, poll_s: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a true value (returned) or ``bound_s`` passes (AssertionError)."""
    deadline = time.monotonic() + bound_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {bound_s:g} s"
        time.sleep(poll_s)


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class ReplicaCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (kills every process it started)."""

    root: Path
    env: dict[str, str]
    n_replicas: int = 2
    check_interval_ms: int = 200
    replica_env: dict[int, dict[str, str]] = field(default_factory=dict)  # per-replica overrides, by index
    replicas: list[Replica] = field(default_factory=list)
    lb_port: int = 0
    stats_port: int = 0
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def start(self, haproxy: str) -> ReplicaCluster:
        for i in range(self.n_replicas):
            self.replicas.append(self._start_replica(i))
        for replica in self.replicas:
            wait_until(lambda r=replica: r.ready() or self._dead(r), 120, f"replica on :{replica.port} ready")
        self.lb_port, self.stats_port = free_port(), free_port()
        options = LoadBalancerOptions(bind=f"127.0.0.1:{self.lb_port}", check_interval_ms=self.check_interval_ms,
                                      fall=2, rise=1, stats_port=self.stats_port,
                                      log_stdout=True)
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config([f"127.0.0.1:{r.port}" for r in self.replicas], options))
        with open(self.root / "haproxy.log", "wb") as log:
            self.haproxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=log)
        wait_until(lambda: self.every_replica_up() or self._lb_dead(), 30, "haproxy seeing every replica UP")
        return self

    def every_replica_up(self) -> bool:
        """HAProxy answers its stats and shows each of the ``n_replicas`` replicas UP. No answer is not "all UP":
        before HAProxy listens the stats are empty, and ``all()`` of nothing would let load start too early."""
        servers = self.servers()
        return len(servers) == self.n_replicas and all(s["status"] == "UP" for s in servers.values())

    def _start_replica(self, i: int) -> Replica:
        port = free_port()
        log = self.root / f"replica-{i + 1}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=out, stderr=out,
                                    env=self.env | self.replica_env.get(i, {}))
        return Replica(port, proc, log)

    def _dead(self, replica: Replica) -> bool:
        assert replica.proc.poll() is None, f"replica exited: {replica.log.read_text()[-2000:]}"
        return False

    def _lb_dead(self) -> bool:
        assert self.haproxy is not None and self.haproxy.poll() is None, \
            f"haproxy exited: {(self.root / 'haproxy.log').read_text()[-2000:]}"
        return False

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of each replica (its stats CSV row: status, stot, wretr, wredis …)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=2).text
        except httpx.HTTPError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r for r in rows if r["pxname"] == "yarnit_replicas" and r["svname"].startswith("replica")}

    def kill_9(self, index: int) -> None:
        os.kill(self.replicas[index].proc.pid, signal.SIGKILL)
        self.replicas[index].proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in [r.proc for r in self.replicas] + ([self.haproxy] if self.haproxy is not None else []):
            if proc.poll() is None:
                proc.terminate()
        for proc in [r.proc for r in self.replicas] + ([self.haproxy] if self.haproxy is not None else []):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}]


class Load:
    """Client threads posting two-row predictions to ``url`` until stopped; every outcome is kept."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.outcomes: list[tuple[object, int | None, list[float] | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/v1/models/ctr:predict", json={"instances": ROWS})
                except httpx.HTTPError as exc:
                    self.outcomes.append((f"{exc!r} at {time.monotonic():.3f}", None, None))
                    continue
                body = response.json() if response.status_code == 200 else {}
                self.outcomes.append((response.status_code, body.get("model_version"), body.get("predictions")))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _served_version(url: str) -> int | None:
    try:
        response = httpx.post(f"{url}/v1/models/ctr:predict", json={"instances": ROWS}, timeout=5)
    except httpx.HTTPError:
        return None
    return int(response.headers["x-yarnit-model-version"]) if response.status_code == 200 else None


def propagation_s(cluster: ReplicaCluster, version: int, committed_at: float) -> float:
    """Seconds from the commit until every replica answers with ``version`` (each polled on its own port)."""
    seen: dict[int, float] = {}

    def everywhere() -> bool:
        for replica in cluster.replicas:
            if replica.port not in seen and _served_version(replica.url) == version:
                seen[replica.port] = time.monotonic() - committed_at
        return len(seen) == len(cluster.replicas)

    wait_until(everywhere, 30, f"v{version} served by every replica", poll_s=0.005)
    return max(seen.values())


class TcpProxy:
    """A loopback TCP forwarder to ``target`` that the test can cut (every connection reset, new ones refused) and
    restore: how one replica loses its network path to PostgreSQL while the others keep theirs."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self._listener is not None:
            with contextlib.suppress(OSError):  # close() alone leaves a thread blocked in accept() accepting
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                conn.close()

    def restore(self) -> None:
        self.start()
