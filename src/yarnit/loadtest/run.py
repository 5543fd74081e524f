"""``run_loadtest``: the candidate and production, each in its own staging server, under the same open-loop load.

A run (book ch. 15 case 4, "a self-serve staging load test"):

1. checks the request (the model and version exist, production has a version, the load is positive and
   within bounds) before anything starts;
2. draws hard inputs from the prediction log (:mod:`.inputs`): distinct instances production served,
   the heaviest first;
3. starts two staging servers (``python -m yarnit.api.staging``): real server processes on loopback,
   built as ``yarnit serve`` builds them, one pinned to the candidate version and one to the production
   version, both without the prediction cache and logging to a scratch directory. Two fresh processes
   rather than the running production server: the production side is measured the same way as the
   candidate (same process state, same options, no real traffic mixed in), and a load test never takes
   capacity from the live server;
4. drives them with the C open-loop generator (:mod:`.generator`) in the order production, candidate,
   candidate, production (ABBA: a drift of the machine's load over the run falls on both sides alike),
   repeated in rounds of slices of about 2 s (``slices_for``: a burst of other work on a shared machine
   then falls on both sides rather than on one), each at the full rate, after an unmeasured warm-up of
   each server; the two
   versions get the same inputs in the same order, and no input repeats within a version while distinct
   ones last;
5. judges the candidate against production (:mod:`.gate`), records the result (:mod:`.store`) and
   stops both servers. The scratch directory (request bodies, staging logs) is deleted.

Bounded: at most ``MAX_RPS`` requests/s, ``MAX_DURATION_S`` per version and ``MAX_REQUESTS`` per version;
each generator run ends at most 10 s after its last send, and a staging server that is not ready within
``startup_timeout_s`` ends the run with an error naming its log's last lines.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from yarnit.core.errors import Conflict, InvalidInput, Unavailable
from yarnit.core.ids import new_id
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace

from . import generator
from .gate import SideFigures, Tolerances, figures, judge
from .inputs import hard_inputs, request_bodies
from .store import LoadTestStore

MAX_RPS = 20_000.0
MAX_DURATION_S = 600.0
MAX_REQUESTS = 200_000
MAX_CONNECTIONS = 1024
MAX_DELAY_MS = 60_000.0


@dataclass(frozen=True)
class LoadTestPlan:
    """The load to offer each version, the gate's tolerances and how the generator runs."""

    rps: float
    duration_s: float
    tolerances: Tolerances = field(default_factory=Tolerances)
    connections: int = 64
    inject_delay_ms: float = 0.0  # drill: added to every candidate scoring (never to production's)
    spin_us: float | None = None  # generator busy-poll window (None: its default, 1 ms; 0: sleep, less precise)
    cpu: str | None = None  # pin the generator with taskset (keep it off the servers' cores)
    # the generator on a CPU of its own and the staging servers on the others (see ``placement``); False: the
    # scheduler places all three, and the generator's busy-poll then shares a core with the server it measures
    isolate: bool = True
    startup_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not _finite(self.rps) or self.rps <= 0 or self.rps > MAX_RPS:
            raise InvalidInput(f"--rps must be a number of requests per second in (0, {MAX_RPS:g}]; got {self.rps!r}.")
        if not _finite(self.duration_s) or self.duration_s <= 0 or self.duration_s > MAX_DURATION_S:
            raise InvalidInput(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds per version; got "
                               f"{self.duration_s!r}.")
        total = self.rps * self.duration_s
        if total < 2:
            raise InvalidInput(f"{self.rps:g} req/s for {self.duration_s:g} s is {total:g} requests per version; a "
                               "load test needs at least 2 (one per half). Raise --rps or --duration.")
        if total > MAX_REQUESTS:
            raise InvalidInput(f"{self.rps:g} req/s for {self.duration_s:g} s is {total:,.0f} requests per version; "
                               f"at most {MAX_REQUESTS:,}. Lower --rps or --duration.")
        if not isinstance(self.connections, int) or not 1 <= self.connections <= MAX_CONNECTIONS:
            raise InvalidInput(f"--connections must be an integer in [1, {MAX_CONNECTIONS}]; got {self.connections!r}.")
        if not _finite(self.inject_delay_ms) or not 0 <= self.inject_delay_ms <= MAX_DELAY_MS:
            raise InvalidInput(f"The injected delay must be in [0, {MAX_DELAY_MS:g}] ms; got {self.inject_delay_ms!r}.")
        if self.spin_us is not None and (not _finite(self.spin_us) or self.spin_us < 0):
            raise InvalidInput(f"spin_us must be >= 0; got {self.spin_us!r}.")
        if not _finite(self.startup_timeout_s) or self.startup_timeout_s <= 0:
            raise InvalidInput(f"startup_timeout_s must be > 0; got {self.startup_timeout_s!r}.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def staging_env(ws: Workspace) -> dict[str, str]:
    """The environment of a staging server: this workspace's settings, and this yarnit on the import path."""
    env = dict(os.environ)
    s = ws.settings
    env.update(YARNIT_HOME=str(s.home), YARNIT_DB_URL=s.db_url, YARNIT_ONLINE_STORE=s.online_store_url)
    for name, value in (("YARNIT_API_TOKEN", s.api_token), ("YARNIT_HMAC_KEY", s.hmac_key)):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def placement(plan: LoadTestPlan, available: set[int] | None = None) -> dict[str, str | None]:
    """Which CPUs the generator and the staging servers run on (``taskset -c`` lists; None: not pinned).

    Isolated (the default) the generator gets the last CPU this process may use and the servers the others, the
    way the serving benchmark pins its server and its generator: the generator busy-polls to send on time, and
    on a CPU it shares with the server it measures it adds its own time slices to the server's tail (on a
    quiet 2-core machine: production's p99 4.0-4.3 ms unpinned against 0.6-1.6 ms pinned, the same server and
    inputs, ``benchmarks/bench_loadtest_agreement.py``). An explicit ``plan.cpu`` pins the generator there and
    the servers on the remaining CPUs. One CPU, no ``taskset``, or ``isolate=False``: nothing is pinned.
    """
    cpus = sorted(available if available is not None else os.sched_getaffinity(0))
    if plan.cpu is not None:
        taken = _cpu_list(plan.cpu)
        rest = [c for c in cpus if c not in taken]
        servers = ",".join(map(str, rest)) if plan.isolate and rest and shutil.which("taskset") else None
        return {"generator": plan.cpu, "servers": servers}
    if not plan.isolate or len(cpus) < 2 or shutil.which("taskset") is None:
        return {"generator": None, "servers": None}
    return {"generator": str(cpus[-1]), "servers": ",".join(map(str, cpus[:-1]))}


def _cpu_list(text: str) -> set[int]:
    """The CPUs of a ``taskset -c`` list ("1", "0,2", "0-3"); an unreadable list takes none."""
    out: set[int] = set()
    for part in str(text).split(","):
        low, _, high = part.strip().partition("-")
        try:
            out.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return out


class StagingServer:
    """One ``python -m yarnit.api.staging`` process serving ``model`` v``version`` on a loopback port
    (pinned to ``cpus`` with ``taskset -c`` when given)."""

    def __init__(self, ws: Workspace, model: str, version: int, scratch: Path, *, role: str,
                 inject_delay_ms: float = 0.0, cpus: str | None = None) -> None:
        self.ws, self.model, self.version, self.role = ws, model, version, role
        self.dir = scratch / role
        self.inject_delay_ms = inject_delay_ms
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "yarnit.api.staging", "--model", self.model, "--version", str(self.version),
               "--log-dir", str(self.dir / "prediction_log"), "--port-file", str(self.dir / "port"),
               "--parent-pid", str(os.getpid())]  # it stops itself if this process dies without stopping it
        if self.inject_delay_ms:
            cmd += ["--inject-delay-ms", repr(float(self.inject_delay_ms))]
        taskset = shutil.which("taskset") if self.cpus else None
        if taskset is not None:  # from exec on: every thread the server starts inherits it
            cmd = [taskset, "-c", str(self.cpus), *cmd]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=staging_env(self.ws), start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        """Until the pinned version answers ``ready`` on its port; :class:`Unavailable` if it dies or times out."""
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise Unavailable(f"The staging server for {self.model} v{self.version} ({self.role}) exited with "
                                  f"{self.proc.returncode} before it was ready: {self.log_tail()}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"The staging server for {self.model} v{self.version} ({self.role}) was not ready "
                                  f"in time (raise startup_timeout_s on a slow machine): {self.log_tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        if not self.port:
            try:
                self.port = int((self.dir / "port").read_text(encoding="ascii"))
            except (FileNotFoundError, ValueError):
                return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/models/{self.model}/ready",
                                        timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def fallbacks(self) -> int:
        """Requests of the model its server answered by a fallback path so far (its ``/metrics``)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as answer:
                text = answer.read().decode("utf-8")
        except (urllib.error.URLError, OSError) as exc:
            raise Unavailable(f"The staging server for {self.model} v{self.version} did not answer /metrics: "
                              f"{exc}") from exc
        total = 0.0
        for family in text_string_to_metric_families(text):
            if family.name == "yarnit_serving_fallbacks":
                total += sum(s.value for s in family.samples
                             if s.name.endswith("_total") and s.labels.get("model") == self.model)
        return int(total)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " ".join(text[-chars:].split()) or "(empty log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # uvicorn's graceful exit: the scratch log is flushed
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> StagingServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


SLICE_S = 2.0  # about this long per slice
MAX_ROUNDS = 16


def slices_for(duration_s: float, per_version: int) -> int:
    """Slices per version (even: rounds of ABBA), about ``SLICE_S`` each, at least one request each.

    >>> slices_for(2, 100), slices_for(10, 1000), slices_for(30, 3000), slices_for(600, 10**5)
    (2, 4, 16, 32)
    """
    rounds = max(1, min(MAX_ROUNDS, round(duration_s / (2 * SLICE_S)), per_version // 2))
    return 2 * rounds


def _check_request(ws: Workspace, model: str, version: int) -> int:
    """Production's version; NotFound for an unknown model or version, Conflict without production."""
    registry = ModelRegistry(ws)
    registry.get(model, version)  # ModelNotFound / ModelVersionNotFound name the fix
    production = registry.aliases(model).get("production")
    if production is None:
        raise Conflict(f"{model} has no production version to measure v{version} against; promote one first "
                       f"(yarnit models promote {model} VERSION).")
    return int(production)


def run_loadtest(ws: Workspace, model: str, version: int, plan: LoadTestPlan, *, actor: str,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load-test ``model`` v``version`` against production (see the module docstring); the stored report."""
    say = progress or (lambda message: None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInput(f"--version must be a positive integer; got {version!r}.")
    baseline_version = _check_request(ws, model, version)
    per_version = int(plan.rps * plan.duration_s)
    slices = slices_for(plan.duration_s, per_version)
    counts = [per_version // slices + (1 if k < per_version % slices else 0) for k in range(slices)]
    from yarnit.monitoring.workspace import prediction_log_dir

    inputs = hard_inputs(prediction_log_dir(ws.home), model, per_version)
    if not inputs.rows:
        raise Conflict(f"The prediction log holds no served request of {model} to replay: a load test draws its "
                       "inputs from production's traffic. Serve some first (yarnit serve), then run it again.")
    binary = generator.build(ws.home / "loadtest" / "bin")
    started = time.monotonic()
    run_id = new_id("lt", ws.clock)
    created_at = ws.clock.now()
    scratch = ws.home / "loadtest" / run_id
    try:
        report = _measure(ws, model, version, baseline_version, plan, inputs.rows, counts, binary, scratch, say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    candidate: SideFigures = report.pop("candidate_figures")
    baseline: SideFigures = report.pop("baseline_figures")
    verdict = judge(candidate, baseline, plan.tolerances)
    result = {
        "id": run_id, "model": model, "version": version, "baseline_version": baseline_version,
        "created_at": created_at.isoformat(), "passed": verdict.passed, "reason": verdict.reason,
        "checks": [c.to_dict() for c in verdict.checks], "candidate": candidate.to_dict(),
        "baseline": baseline.to_dict(), "rps": plan.rps, "duration_s": plan.duration_s,
        "connections": plan.connections, "tolerances": plan.tolerances.to_dict(),
        "injected_delay_ms": plan.inject_delay_ms,
        "order": f"(production, candidate, candidate, production) x {slices // 2}, {len(counts)} slices per version",
        "inputs": {"requests_per_version": per_version, "distinct_rows": len(inputs.rows),
                   "distinct_seen": inputs.distinct_seen, "log_records_read": inputs.records_read,
                   "repeats": max(0, per_version - len(inputs.rows)), "prediction_cache": "off"},
        "seconds": round(time.monotonic() - started, 3), "actor": actor, **report,
    }
    LoadTestStore(ws).add(result, at=created_at, actor=actor)
    return result


def _measure(ws: Workspace, model: str, version: int, baseline_version: int, plan: LoadTestPlan, rows: list[bytes],
             counts: list[int], binary: Path, scratch: Path, say: Callable[[str], None]) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    path = f"/v1/models/{model}:predict"
    bodies = []
    for k, count in enumerate(counts):  # slice k of each version: the same rows, the next ones after slice k-1
        bodies.append(scratch / f"bodies-{k}.txt")
        bodies[k].write_bytes(request_bodies(rows, max(count, 1), start=sum(counts[:k])))
    warm_s = min(1.0, plan.duration_s / 4)
    warnings: list[str] = []
    cpus = placement(plan)
    with StagingServer(ws, model, baseline_version, scratch, role="production", cpus=cpus["servers"]) as prod, \
            StagingServer(ws, model, version, scratch, role="candidate", inject_delay_ms=plan.inject_delay_ms,
                          cpus=cpus["servers"]) as cand:
        say(f"starting staging servers: {model} v{version} (candidate) and v{baseline_version} (production)")
        prod.start()
        cand.start()
        deadline = time.monotonic() + plan.startup_timeout_s
        prod.wait_ready(deadline)
        cand.wait_ready(deadline)

        def drive(server: StagingServer, k: int | None, seconds: float) -> list[generator.Sample]:
            samples_file = scratch / f"samples-{server.role}-{k}.txt"
            out = generator.run(binary, host="127.0.0.1", port=server.port, path=path, rate=plan.rps,
                                duration_s=seconds, bodies_file=bodies[k or 0], connections=plan.connections,
                                samples_file=samples_file, spin_us=plan.spin_us, cpu=cpus["generator"])
            warnings.extend(f"{server.role}: {w}" for w in out.get("warnings", []))
            return generator.read_samples(samples_file)

        if plan.rps * warm_s >= 1:
            say(f"warming up each server for {warm_s:g} s (not measured)")
            drive(prod, None, warm_s)
            drive(cand, None, warm_s)
        before = {"production": prod.fallbacks(), "candidate": cand.fallbacks()}
        samples: dict[str, list[generator.Sample]] = {"production": [], "candidate": []}
        order = [(server, 2 * r + i) for r in range(len(counts) // 2)
                 for server, i in ((prod, 0), (cand, 0), (cand, 1), (prod, 1))]
        for server, k in order:
            seconds = (counts[k] + 0.5) / plan.rps  # the generator sends floor(rate * seconds): exactly counts[k]
            say(f"{server.role} v{server.version}: {counts[k]} requests at {plan.rps:g} req/s ({seconds:g} s)")
            samples[server.role].extend(drive(server, k, seconds))
        fallbacks = {"production": prod.fallbacks() - before["production"],
                     "candidate": cand.fallbacks() - before["candidate"]}
    return {"candidate_figures": figures(version, samples["candidate"], fallbacks["candidate"]),
            "baseline_figures": figures(baseline_version, samples["production"], fallbacks["production"]),
            "warnings": warnings[:20], "cpus": cpus}


__all__ = ["MAX_DURATION_S", "MAX_REQUESTS", "MAX_RPS", "LoadTestPlan", "StagingServer", "placement",
           "run_loadtest", "staging_env"]
