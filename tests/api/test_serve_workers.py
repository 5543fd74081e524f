"""`yarnit serve --workers N`: real processes, real HTTP on 127.0.0.1.

Two workers share one listening socket: both answer (each response names its slot in ``x-yarnit-worker``),
a ``kill -9`` of one leaves the server answering while the supervisor starts a replacement, and SIGTERM to the
supervisor stops every worker gracefully (their prediction logs flushed, one segment run per process).
Every wait is for a condition with a generous bound: the machine may be loaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from testsupport import register_ctr
from typer.testing import CliRunner

from yarnit.api.server import free_port
from yarnit.api.workers import MAX_WORKERS, parse_workers
from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.core.errors import InvalidInput
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.serving.predlog import scan_prediction_log, segment_paths
from yarnit.storage import open_workspace

BODY = {"inputs": [{"name": "fiber", "shape": [1], "datatype": "BYTES", "data": ["merino"]},
                   {"name": "price", "shape": [1], "datatype": "FP64", "data": [3.0]}]}
BOUND_S = 180.0  # model loads in fresh interpreters on a shared 2-core machine


def test_workers_option_is_checked() -> None:
    assert parse_workers("1") == 1 and parse_workers(" 64 ") == MAX_WORKERS
    assert 1 <= parse_workers("auto") <= MAX_WORKERS
    for bad in ("0", "65", "-1", "two", "1.5", "", "+2"):
        with pytest.raises(InvalidInput, match="--workers must be a whole number from 1 to 64"):
            parse_workers(bad)
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 1
    assert "--workers must be a whole number from 1 to 64" in result.output


def _children(ppid: int) -> dict[int, int]:
    """{worker slot: pid} of the worker processes whose parent is ``ppid`` (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != ppid or b"yarnit.api.workers" not in argv:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie not reaped yet
            continue
        found[int(argv[argv.index(b"--slot") + 1])] = int(entry.name)
    return found


def _exited(pid: int) -> bool:
    """True once every thread of ``pid`` has exited, so its files are closed: gone, or only a zombie left.

    Not "absent from _children": a dying process's cmdline reads empty once its memory is freed, before its
    descriptors close. Not "the process is a zombie" either: a worker has threads, and under SIGKILL its main
    thread can turn zombie while another thread still holds the descriptor table (and the listening socket);
    a connection queued to that socket in that window is reset when the last thread closes it."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # that thread is gone
        if state not in ("Z", "X"):
            return False
    return True


def _wait(condition, what: str, bound_s: float = BOUND_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound_s:g} s: {what}")
        time.sleep(0.1)


def _predict(url: str) -> tuple[int, str | None]:
    """One request on a fresh connection (so the kernel hands it to whichever worker accepts first)."""
    response = httpx.post(f"{url}/v2/models/ctr/infer", json=BODY, timeout=60,
                          headers={"connection": "close"})
    return response.status_code, response.headers.get("x-yarnit-worker")


def _start_two_workers(tmp_path: Path) -> tuple[Path, str, subprocess.Popen[bytes]]:
    """(workspace home, url, supervisor): ``yarnit serve --workers 2`` on a workspace with ctr v1 registered,
    its output in tmp_path/serve.log."""
    home = tmp_path / "home"
    ws = open_workspace(Settings.for_home(home))
    register_ctr(ws, 1)
    ws.close()
    port = free_port()
    env = {**os.environ, "YARNIT_HOME": str(home)}
    env.pop("YARNIT_DB_URL", None)
    with open(tmp_path / "serve.log", "wb") as out:  # the child keeps its own copy of the descriptor
        sup = subprocess.Popen([sys.executable, "-m", "yarnit", "serve", "--port", str(port), "--workers", "2"],
                               env=env, stdout=out, stderr=subprocess.STDOUT)
    return home, f"http://127.0.0.1:{port}", sup


def _kill_all(sup: subprocess.Popen[bytes]) -> None:
    """Whatever a failed test left running: the supervisor, then its workers."""
    if sup.poll() is None:
        sup.kill()
        sup.wait()
    for pid in _children(sup.pid).values():
        os.kill(pid, signal.SIGKILL)


def test_two_workers_answer_survive_a_kill_and_stop_on_sigterm(tmp_path: Path) -> None:
    home, url, sup = _start_two_workers(tmp_path)
    try:
        workers = _wait(lambda: len(_children(sup.pid)) == 2 and _children(sup.pid), "two worker processes")
        assert set(workers) == {1, 2}

        def log() -> str:
            return (tmp_path / "serve.log").read_text(errors="replace")

        _wait(lambda: log().count(" ready (pid ") >= 2 or sup.poll() is not None, "both workers ready")
        assert sup.poll() is None, log()
        seen: Counter[str | None] = Counter()

        def both_answered() -> bool:
            status, slot = _predict(url)
            assert status == 200
            seen[slot] += 1
            return {"1", "2"} <= set(seen)

        _wait(both_answered, f"answers from both workers (seen {seen})")
        assert set(seen) == {"1", "2"}  # the slot only: no pid, host or path in the header

        # kill -9 worker 1: the server keeps answering (worker 2) and the supervisor starts a new worker 1
        os.kill(workers[1], signal.SIGKILL)
        # (a connection the kernel queued for worker 1 while it was dying is reset with its socket: that is
        # the SO_REUSEPORT trade-off in api/workers.py; once it is gone, no connection goes its way)
        _wait(lambda: _exited(workers[1]), "the killed worker's every thread gone")
        statuses: Counter[int] = Counter()

        def replaced() -> bool:
            status, _ = _predict(url)
            statuses[status] += 1
            now = _children(sup.pid)
            return now.get(1) not in (None, workers[1]) and log().count(" ready (pid ") >= 3

        _wait(replaced, "a replacement for the killed worker, ready")
        assert statuses[200] >= 1 and set(statuses) == {200}, statuses
        assert f"(pid {workers[1]}) exited with signal 9; restarting it" in log()
        after: Counter[str | None] = Counter()

        def new_worker_answers() -> bool:
            status, slot = _predict(url)
            assert status == 200
            after[slot] += 1
            return "1" in after

        _wait(new_worker_answers, "an answer from the replacement worker")
        pids_before_stop = set(_children(sup.pid).values())
        assert len(pids_before_stop) == 2 and workers[2] in pids_before_stop

        # SIGTERM to the supervisor: every worker stops, then the supervisor exits 0
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=BOUND_S) == 0, log()
        for pid in pids_before_stop:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v2/health/live", timeout=5)
    finally:
        _kill_all(sup)

    # each worker process wrote its own prediction-log segments (run ids differ), and no line is torn
    segments = segment_paths(prediction_log_dir(home))
    runs = {path.name.rsplit("-", 1)[0] for path in segments}
    # worker 2 and the replacement of 1 (the killed worker's last records may not have been flushed)
    assert len(runs) >= 2, runs
    scan = scan_prediction_log(prediction_log_dir(home))
    assert scan.corrupt_lines == 0
    answered = sum(seen.values()) + sum(statuses.values()) + sum(after.values())
    assert sum(1 for r in scan.records if r.get("role") == "primary" and r.get("status") == 200) >= \
        answered - seen["1"]  # the killed worker's unflushed records may be lost (kill -9)


_MAIN_THREAD_EXITS_FIRST = """
import ctypes, socket, sys, threading
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
threading.Thread(target=sys.stdin.read).start()  # holds the process (and the socket) until stdin closes
ctypes.CDLL(None).pthread_exit(None)  # the main thread exits first: it turns zombie, the process lives on
"""


def test_a_process_whose_main_thread_died_first_is_not_gone_while_another_thread_holds_its_socket() -> None:
    """The CI flake of 2026-12-08: the kill test took the killed worker's zombie main thread for "gone",
    asked for a prediction while another thread still held the listening socket, and was reset."""
    child = subprocess.Popen([sys.executable, "-c", _MAIN_THREAD_EXITS_FIRST], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        _wait(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
              "the main thread a zombie")
        # the socket still listens: the kernel completes a connection to it
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            pass
        assert not _exited(child.pid)
        child.stdin.close()  # the last thread ends
        _wait(lambda: _exited(child.pid), "every thread gone")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=30)
    finally:
        child.kill()
        child.wait()


def test_the_port_is_checked_and_held_for_the_workers() -> None:
    from yarnit.api.workers import reserve_port, worker_listener
    from yarnit.core.errors import Unavailable

    with socket.create_server(("127.0.0.1", 0)) as taken:  # a port some other server listens on
        with pytest.raises(Unavailable, match="Is another server using the port"):
            reserve_port("127.0.0.1", taken.getsockname()[1])
    port = free_port()
    held = reserve_port("127.0.0.1", port)
    try:
        with pytest.raises(Unavailable, match="Address already in use"):  # a second server on the same port
            reserve_port("127.0.0.1", port)
        # the workers' sockets join the port; connections reach them, never the reservation
        one, two = worker_listener("127.0.0.1", port), worker_listener("127.0.0.1", port)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
        accepted = Counter()
        deadline = time.monotonic() + 30
        while sum(accepted.values()) < len(clients) and time.monotonic() < deadline:
            for name, listener in (("one", one), ("two", two)):
                with contextlib.suppress(BlockingIOError):
                    conn, _ = listener.accept()
                    conn.close()
                    accepted[name] += 1
        assert sum(accepted.values()) == 32 and accepted["one"] > 0 and accepted["two"] > 0, accepted
        for sock in (*clients, one, two):
            sock.close()
    finally:
        held.close()


def test_a_worker_that_never_starts_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    from yarnit.api.workers import Supervisor
    from yarnit.core.errors import Unavailable

    # every "worker" exits 1 at once: no worker was ever ready, so the supervisor gives up instead of looping
    with pytest.raises(Unavailable, match="Worker [12] failed to start \\(status 1\\)"):
        Supervisor("127.0.0.1", free_port(), 2, python="/bin/false").run()


def test_a_crash_looping_worker_is_restarted_with_a_growing_back_off(tmp_path: Path) -> None:
    # a stand-in worker (real process) that says "ready" and exits at once, every time
    stub = tmp_path / "stub-python"
    stub.write_text(f"#!{sys.executable}\n"
                    "import os, sys\n"
                    "fd = int(sys.argv[sys.argv.index('--ready-fd') + 1])\n"
                    "os.write(fd, b'ready\\n')\n")
    stub.chmod(0o755)
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
            "from yarnit.api.workers import Supervisor; "
            f"sys.exit(Supervisor('127.0.0.1', {free_port()}, 1, python={str(stub)!r}).run())")
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        sup = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: "restarting it in 2 s" in log.read_text() or sup.poll() is not None, "a third restart", 120)
        text = log.read_text()
        assert sup.poll() is None, text
        delays = [line.split("restarting it in ")[1] for line in text.splitlines() if "restarting it in" in line]
        assert delays[:3] == ["0.5 s", "1 s", "2 s"], text  # up after a crash, never quick restarts in a loop
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=60) == 0, log.read_text()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def _requests_by_worker(exposition: str) -> dict[str, float]:
    """{worker slot: answered ctr requests} from one /metrics scrape (a valid exposition, or this raises)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name == "yarnit_serving_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("model") == "ctr":
                    slot = sample.labels.get("worker", "?")
                    counts[slot] = counts.get(slot, 0.0) + sample.value
    return counts


def test_metrics_through_the_shared_port_count_every_workers_requests(tmp_path: Path) -> None:
    """A scrape reaches one worker; it must still show the whole server's traffic, one series per worker."""
    _home, url, sup = _start_two_workers(tmp_path)
    try:
        _wait(lambda: (tmp_path / "serve.log").read_text(errors="replace").count(" ready (pid ") >= 2
              or sup.poll() is not None, "both workers ready")
        assert sup.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")
        answered: Counter[str | None] = Counter()

        def both_answered_twice() -> bool:
            status, slot = _predict(url)
            assert status == 200
            answered[slot] += 1
            return answered["1"] >= 2 and answered["2"] >= 2

        _wait(both_answered_twice, f"two answers from each worker (seen {answered})")
        scrapes: list[dict[str, float]] = []

        def whole_server_counted() -> bool:
            scrape = httpx.get(f"{url}/metrics", timeout=60, headers={"connection": "close"})
            assert scrape.status_code == 200
            text = scrape.text
            assert text.count("# TYPE yarnit_serving_requests_total counter") == 1  # one family, not one per worker
            scrapes.append(_requests_by_worker(text))
            return scrapes[-1] == {"1": float(answered["1"]), "2": float(answered["2"])} \
                and 'yarnit_serve_worker_up{worker="1"} 1.0' in text and 'yarnit_serve_worker_up{worker="2"} 1.0' in text

        _wait(whole_server_counted, f"a scrape with both workers' counts {dict(answered)} (last: {scrapes[-1:]})", 120)
        text = httpx.get(f"{url}/metrics", timeout=60, headers={"connection": "close"}).text
        # the workspace's own gauges come once, not once per worker
        assert sum(1 for line in text.splitlines() if line.startswith("yarnit_feature_freshness_up")) == 1
        one = httpx.get(f"{url}/metrics?scope=worker", timeout=60, headers={"connection": "close"})
        assert set(_requests_by_worker(one.text)) == {one.headers["x-yarnit-worker"]}  # one worker asked alone
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=BOUND_S) == 0
    finally:
        _kill_all(sup)
