"""``yarnit serve --workers N``: N worker processes on one port, under a supervisor.

How the workers share the port: each worker listens on its own ``SO_REUSEPORT`` socket, opened once its
models are loaded and warmed, and the kernel spreads new connections over the listening sockets by a hash of
the connection's addresses. A pre-bound socket shared by every worker was tried first and measured: idle
workers race for each wake-up and the winner's event loop accepts every connection pending at that moment,
so the 16 keep-alive connections a load generator opened at once all went to one worker, and a second worker
added nothing (docs/benchmarks.md, "replica throughput"). With ``SO_REUSEPORT`` they split about evenly.
What the choice costs, and how it is kept small:

* A worker that dies takes its accept queue with it: connections the kernel had queued for it but it had
  not accepted yet are reset (on Linux ≥ 5.14 the ``net.ipv4.tcp_migrate_req=1`` sysctl hands them to
  another worker instead). Its socket closes with it, so no new connection goes its way; the others take
  them all until the replacement has loaded its models and opened its own socket.
* ``SO_REUSEPORT`` lets any process of the same user join the port. The supervisor first binds the port
  *without* it (a port in use is one clear error before any worker starts), then keeps a bound,
  not-listening ``SO_REUSEPORT`` socket for as long as it runs: a second server started on the port by
  mistake fails the same check instead of silently taking half the connections. A bound socket that does
  not listen gets no connections.

Each worker is a fresh interpreter (``python -m yarnit.api.workers``), not a fork of the supervisor: it
opens the workspace itself, builds its own app, loads and warms its own models, and shares nothing in
memory with the others; nothing is handed down but the address to listen on. What workers write is per process already: prediction-log segments are named by a random per-process run id and held
with ``flock``; skew-log parts carry a random id; temp files carry the writer's pid; SQLite is in WAL mode
with a 30 s busy timeout, so the few metadata writes a server makes (lineage of a new segment) wait for
each other instead of failing. The supervisor migrates the schema before the workers start, and the
workers open the workspace without migrating, so they never race to migrate.

The supervisor:

* starts the workers, each in its own process group (a terminal's Ctrl-C reaches only the supervisor, which
  forwards exactly one signal: uvicorn takes a second one as "exit now"), with ``PR_SET_PDEATHSIG`` so a
  worker ends if the supervisor is killed;
* reads one ``ready`` line per worker on a pipe (models loaded and warmed, socket served);
* restarts a worker that exits: at once if it had been up for ``stable_s``, else after a back-off that
  doubles from 0.5 s to 30 s (a crash loop does not spin); if no worker has ever become ready and one fails
  to start, everything stops and the supervisor exits 1 (a bad workspace is an error, not a loop);
* on SIGTERM or SIGINT sends SIGTERM to every worker (uvicorn's graceful shutdown: stop accepting, finish
  in-flight requests, flush the prediction log), waits ``stop_timeout_s``, then ``SIGKILL``\\ s what is left;
  a second signal kills at once.

Every response of a worker carries ``x-yarnit-worker: <slot>`` (1..N): the slot number only, no pid, host
name or path. It tells an operator (and the tests) which worker answered.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from types import FrameType

from yarnit.core import Clock, SystemClock
from yarnit.core.errors import InvalidInput, Unavailable

log = logging.getLogger("yarnit.serve")

MAX_WORKERS = 64
STARTUP_FAILED = 3  # a worker's exit status when it could not open the workspace or load its app
WORKER_HEADER = "x-yarnit-worker"


def parse_workers(text: str | int) -> int:
    """``--workers``: a whole number in 1..64, or ``auto`` (the CPUs this process may run on, at most 64)."""
    raw = str(text).strip().lower()
    if raw == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            cpus = os.cpu_count() or 1
        return max(1, min(MAX_WORKERS, cpus))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_WORKERS or raw != str(n):
        raise InvalidInput(f"--workers must be a whole number from 1 to {MAX_WORKERS}, or 'auto' (one per CPU); "
                           f"got {str(text)!r}.")
    return n


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reserve_port(host: str, port: int) -> socket.socket:
    """Check that ``host:port`` is free and hold it for the workers (see the module docstring)."""
    family = _family(host)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # no SO_REUSEPORT: fails if anyone holds it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        # bound, never listening: holds the port, takes no connection. No SO_REUSEADDR on it: Linux lets two
        # SO_REUSEADDR sockets share a port while neither listens, and the probe above must fail against it.
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise Unavailable(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server using "
                          f"the port? Pick another with --port.") from exc
    return sock


def worker_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A worker's own listening socket in the port's ``SO_REUSEPORT`` group."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


@dataclass
class _Slot:
    number: int  # 1..N, stable across restarts
    proc: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None
    ready: bool = False
    ready_at: float = 0.0
    restart_at: float | None = None
    backoff_s: float = 0.0
    starts: int = 0
    buffer: bytes = field(default=b"")


class Supervisor:
    """Runs ``workers`` worker processes on ``sock`` until told to stop (see the module docstring)."""

    def __init__(self, host: str, port: int, workers: int, *, clock: Clock | None = None,
                 stop_timeout_s: float = 30.0, stable_s: float = 30.0, env: dict[str, str] | None = None,
                 python: str = sys.executable, log_dir: str | None = None, cache_entries: int | None = None) -> None:
        self.host, self.port = host, port
        self.log_dir = log_dir  # the workers' prediction log (None: the workspace's)
        self.cache_entries = cache_entries  # the workers' prediction cache (None: the serving default)
        self.slots = [_Slot(number=i + 1) for i in range(workers)]
        self.clock = clock or SystemClock()
        self.stop_timeout_s = stop_timeout_s
        self.stable_s = stable_s
        self.env = dict(os.environ if env is None else env)
        self.python = python
        self.signals = 0
        self.ever_ready = False
        self.restarts = 0
        # each worker's private Unix socket, for the others' /metrics (api/worker_metrics.py); mode 0700
        self.peers_dir = tempfile.mkdtemp(prefix="yarnit-workers-")

    # -- signals ----------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:  # a second Ctrl-C / SIGTERM: do not wait for graceful shutdowns
            for slot in self.slots:
                self._send(slot, signal.SIGKILL)

    def _send(self, slot: _Slot, signum: int) -> None:
        if slot.proc is not None and slot.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                slot.proc.send_signal(signum)

    # -- workers ----------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        read_fd, write_fd = os.pipe()
        argv = [self.python, "-m", "yarnit.api.workers", "--host", self.host, "--port", str(self.port),
                "--ready-fd", str(write_fd), "--slot", str(slot.number), "--supervisor", str(os.getpid()),
                "--peers-dir", self.peers_dir, *(["--log-dir", self.log_dir] if self.log_dir else []),
                *(["--cache-entries", str(self.cache_entries)] if self.cache_entries is not None else [])]
        try:
            slot.proc = subprocess.Popen(argv, env=self.env, pass_fds=(write_fd,), process_group=0)
        finally:
            os.close(write_fd)
        slot.ready_fd, slot.ready, slot.buffer, slot.restart_at = read_fd, False, b"", None
        slot.starts += 1
        log.info("worker %d starting (pid %d)", slot.number, slot.proc.pid)

    def _close_pipe(self, slot: _Slot) -> None:
        if slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None

    def _read_ready(self, timeout_s: float) -> None:
        fds = {slot.ready_fd: slot for slot in self.slots if slot.ready_fd is not None}
        if not fds:
            select.select([], [], [], timeout_s)
            return
        try:
            readable, _, _ = select.select(list(fds), [], [], timeout_s)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; a signal handler may still cut it short
            return
        for fd in readable:
            slot = fds[fd]
            chunk = os.read(fd, 256)
            if not chunk:  # the worker closed its end: it exited (reaped in _reap)
                self._close_pipe(slot)
                continue
            slot.buffer += chunk
            if b"ready" in slot.buffer and not slot.ready:
                slot.ready, slot.ready_at = True, self.clock.monotonic()
                self.ever_ready = True
                log.info("worker %d ready (pid %d)", slot.number, slot.proc.pid if slot.proc else -1)

    def _reap(self) -> None:
        now = self.clock.monotonic()
        for slot in self.slots:
            if slot.proc is None or slot.restart_at is not None:
                continue
            code = slot.proc.poll()
            if code is None:
                continue
            self._close_pipe(slot)
            how = f"signal {-code}" if code < 0 else f"status {code}"
            if not slot.ready and not self.ever_ready:
                raise Unavailable(f"Worker {slot.number} failed to start ({how}); its error is printed above. "
                                  "Fix it and start the server again (yarnit serve without --workers shows "
                                  "the same error in one process).")
            if slot.ready and now - slot.ready_at >= self.stable_s:
                slot.backoff_s = 0.0
            else:
                slot.backoff_s = min(30.0, max(0.5, slot.backoff_s * 2))
            slot.restart_at = now + slot.backoff_s
            self.restarts += 1
            log.warning("worker %d (pid %d) exited with %s; restarting it%s", slot.number, slot.proc.pid, how,
                        f" in {slot.backoff_s:g} s" if slot.backoff_s else "")

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status (0 after a clean stop)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._spawn(slot)
            while not self.signals:
                self._read_ready(0.1)
                if self.signals:
                    break
                self._reap()
                now = self.clock.monotonic()
                for slot in self.slots:
                    if slot.restart_at is not None and now >= slot.restart_at and not self.signals:
                        self._spawn(slot)
            return 0
        finally:
            self._stop()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _stop(self) -> None:
        for slot in self.slots:
            self._send(slot, signal.SIGTERM)
        deadline = self.clock.monotonic() + self.stop_timeout_s
        for slot in self.slots:
            if slot.proc is None:
                continue
            while slot.proc.poll() is None and self.clock.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    slot.proc.wait(timeout=0.1)
            if slot.proc.poll() is None:
                log.warning("worker %d (pid %d) did not stop within %g s; killing it", slot.number,
                            slot.proc.pid, self.stop_timeout_s)
                slot.proc.kill()
                slot.proc.wait()
            self._close_pipe(slot)
        shutil.rmtree(self.peers_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [slot.proc.pid for slot in self.slots if slot.proc is not None and slot.proc.poll() is None]


def serve_workers(host: str, port: int, workers: int, *, stop_timeout_s: float = 30.0,
                  log_dir: str | None = None, cache_entries: int | None = None) -> int:
    """``yarnit serve --workers N`` after the workspace is migrated: bind, supervise, return the exit status."""
    reservation = reserve_port(host, port)
    try:
        log.info("serving on http://%s:%d with %d worker processes", host, port, workers)
        return Supervisor(host, port, workers, stop_timeout_s=stop_timeout_s, log_dir=log_dir,
                          cache_entries=cache_entries).run()
    finally:
        reservation.close()


# --- the worker process ---------------------------------------------------------------------------------------
def _die_with_parent(supervisor: int) -> None:
    """Linux: get SIGTERM when the supervisor dies (even by kill -9), then check it had not died already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:
        sys.exit(0)


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yarnit.api.workers", description="One yarnit serve worker.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True, help="Pipe to write 'ready' on.")
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--supervisor", type=int, required=True)
    parser.add_argument("--peers-dir", default=None, help="The supervisor's private directory of worker sockets.")
    parser.add_argument("--log-dir", default=None, help="Prediction log directory (default: the workspace's).")
    parser.add_argument("--cache-entries", type=int, default=None, help="Prediction cache rows (0: no cache).")
    args = parser.parse_args(argv)
    _die_with_parent(args.supervisor)
    logging.basicConfig(level=logging.INFO, format=f"worker {args.slot}: %(levelname)s %(name)s: %(message)s")
    try:
        from pathlib import Path

        import uvicorn

        from yarnit.api import create_app
        from yarnit.api.dataplane import asgi_entry
        from yarnit.api.fastlane import DataPlaneProtocol
        from yarnit.api.server import prepare_for_traffic
        from yarnit.core import load_settings
        from yarnit.serving import ServingOptions
        from yarnit.storage import open_workspace

        ws = open_workspace(load_settings(), migrate=False)  # the supervisor migrated before starting workers
        options = ServingOptions(log_dir=Path(args.log_dir) if args.log_dir else None)
        if args.cache_entries is not None:
            options = replace(options, cache_entries=args.cache_entries)
        app = create_app(ws, serving=options)
        for name, outcome in prepare_for_traffic(app).items():
            log.info("serving %s: %s", name, outcome)
        sockets = []
        if args.peers_dir:  # the other workers read this one's counters here, for a whole-server /metrics
            from yarnit.api.worker_metrics import WorkerPeers, peer_listener

            app.state.worker_peers = WorkerPeers(args.slot, Path(args.peers_dir))
            sockets.append(peer_listener(args.peers_dir, args.slot))
        # only now: the kernel sends it connections once it is ready
        sockets.insert(0, worker_listener(args.host, args.port))
        server = uvicorn.Server(uvicorn.Config(
            asgi_entry(app), log_level="info", access_log=False, http=DataPlaneProtocol,
            headers=[(WORKER_HEADER, str(args.slot))]))
    except Exception as exc:  # noqa: BLE001 - the supervisor needs a status, the operator the reason
        print(f"worker {args.slot}: could not start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return STARTUP_FAILED
    ready = args.ready_fd

    # uvicorn calls this once its servers accept on the socket: then the supervisor hears "ready"
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets=sockets)
        with contextlib.suppress(OSError):
            os.write(ready, b"ready\n")
            os.close(ready)

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=sockets)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
