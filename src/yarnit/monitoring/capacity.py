"""Capacity planning: how many ``yarnit serve`` replicas a model's traffic needs (book ch. 8; the SRE book).

``yarnit capacity MODEL`` puts two measurements together:

* **Demand**, from the prediction log (:func:`traffic_profile`). Requests per hour are counted from the
  primary records and the ``rejected`` window counts: shed requests are demand too, and leaving them out
  would plan for the capacity that shed them. Shadow copies are left out, and so are 404s (a scanner's
  made-up names). The profile gives the peak hour's requests per second, the mean over every hour from the
  first to the last (empty hours count as 0), the peak-to-mean ratio, and the growth: the least-squares
  slope of the daily mean over whole days, relative to their mean (at least two whole days, else 0, and
  the plan says so).
* **Supply**, the requests per second one replica serves within its latency SLO. It is either a recorded
  figure (``--replica-rps``, from a load test or ``benchmarks/``), or a short measured run
  (:func:`measure_replica_capacity`, below). The plan's ``replica_rps_source`` names which, and for a
  measured run the method, the latency objective and the step that set the figure.

The measured run asks the question the plan needs: the highest *offered* rate at which a real ``yarnit serve``
(one process, or ``--workers N``) on a loopback port keeps p99 ≤ the latency objective and at most 0.1 % of
requests failed or shed (503/429 count as errors). It is driven **open-loop** by the project's C generator
(:mod:`yarnit.loadtest.generator`): request i leaves at ``t0 + i / rate`` whatever the server does, and its latency
runs from that scheduled time, so a slow server cannot slow the load down (a closed-loop client's throughput is
what the client can drive, not a rate the server answers within its SLO, and a few Python client threads are
themselves the bottleneck of a multi-worker server). The requests are the production version's golden requests,
then the heaviest distinct instances the prediction log holds (:func:`yarnit.loadtest.inputs.hard_inputs`),
round-robin as OIP v1 ``:predict`` bodies. The search (:func:`search_capacity`):

* a ramp: 10 req/s, doubled after every passing step, until a step breaks the objective;
* then up to 3 bisections of the bracket (highest passing rate, lowest failing one), stopping early once the
  bracket is narrower than 5 % of the rate;
* each step lasts ``--measure-s`` ÷ 12 seconds (0.5..5 s), and a step starts only while it still fits in
  ``--measure-s`` (a failing step's generator may also wait up to 10 s for answers after its last send);
* the figure is the highest passing offered rate. Every step (rate, achieved rate, p50/p99, errors, pass or
  why not) is in the plan's ``measurement.steps``, and ``best_step`` says which one set it. When no step
  broke the objective before the time ran out, the figure is marked a lower bound; when none passed, the run
  fails with the steps it tried.

The objective is ``--latency-ms`` when given; else the tightest ``threshold_ms`` among the workspace SLO file's
``serving_latency`` SLOs that name the model or no model (:func:`latency_objective`); else 100 ms. The generator
is compiled on first use; without a C compiler the run fails with its ``MissingDependency`` (install gcc), never
falls back to another client. A step with fewer than 100 requests has the slowest one as its p99, so on a
shared machine one stall can fail a low-rate step: the ramp then stops early and the figure is low, never high.
The server logs to a scratch directory (``yarnit serve --prediction-log``), so the measurement never shows up
as demand, and runs with no prediction cache (``--cache-entries 0``): a handful of requests sent thousands of
times would otherwise measure cache hits, not the scoring a replica has to sustain.

The plan (:func:`plan_capacity`), as the SRE book's capacity planning does it:

* forecast peak = peak × (1 + growth per day × horizon days), never below the observed peak, × ``spike``
  (a known event, such as the knitting conference);
* replicas for the peak = ⌈forecast peak × headroom ÷ replica rps⌉, where the headroom (default 1.25)
  keeps a replica at 80 % of what it was measured to sustain;
* replicas = that + 2 (N+2: one replica may be down for a rollout while another fails, and the peak is
  still served).

The same arithmetic on the forecast mean gives the autoscaler's floor (also N+2), and the plan's
replicas give its ceiling (``yarnit deploy k8s --min-replicas … --max-replicas …``).

A replica's throughput is one serving process's (``--measure-s`` runs one process; with ``--workers N`` it runs
``yarnit serve --workers N`` and takes the measured rate over N, so workers that share cores or the
kernel's connection spreading show up in the figure), so the replicas for the peak are also the worker
processes one host needs: the plan prints ``yarnit serve --workers N`` with N =
replicas for the peak (at most 64). That line is for one host with at least N free cores; workers that share
cores add less than one replica each (docs/benchmarks.md, replica throughput), and one host is one failure
domain, so the N+2 spares still belong on other hosts.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from yarnit.core.errors import InvalidInput, NotFound, Unavailable
from yarnit.serving.predlog import read_segment, segment_paths

from .predlog_source import record_time

HOUR_S = 3600
MAX_SERVE_WORKERS = 64  # yarnit serve --workers accepts 1..64 (api/workers.py)
DAY_H = 24


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@dataclass(frozen=True)
class TrafficProfile:
    """A model's observed demand, hour by hour (see the module docstring for what counts)."""

    model: str
    requests: int
    hours: int
    first_hour: str | None
    last_hour: str | None
    peak_hour: str | None
    peak_rps: float
    mean_rps: float
    peak_to_mean: float | None
    whole_days: int
    daily_mean_rps: list[float]
    growth_rps_per_day: float
    growth_per_day: float  # relative to the mean of the whole days' means
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hourly_requests(log_dir: str | Path, model: str, *, since_s: float | None = None,
                    until_s: float | None = None) -> Counter[int]:
    """Requests to ``model`` per hour (key: the hour's start, epoch seconds), read segment by segment."""
    counts: Counter[int] = Counter()
    for segment in segment_paths(log_dir):
        for record in read_segment(segment).records:
            if record.get("model") != model or record.get("status") == 404:
                continue
            role = record.get("role")
            if role == "primary":
                n = 1
            elif role == "rejected":
                n = record.get("count")
                if type(n) is not int or n < 0:
                    continue
            else:
                continue
            at = record_time(record)
            if at is None or (since_s is not None and at < since_s) or (until_s is not None and at >= until_s):
                continue
            counts[int(at // HOUR_S) * HOUR_S] += n
    return counts


def traffic_profile(log_dir: str | Path, model: str, *, since_s: float | None = None,
                    until_s: float | None = None) -> TrafficProfile:
    """The demand side of the plan, from the prediction log."""
    counts = hourly_requests(log_dir, model, since_s=since_s, until_s=until_s)
    if not counts:
        raise NotFound(f"The prediction log at {log_dir} has no requests to {model!r}"
                       + (" in that window" if since_s or until_s else "")
                       + ": serve it first, or name the model the log holds (yarnit monitor traffic).")
    first, last = min(counts), max(counts)
    hours = (last - first) // HOUR_S + 1
    series = [counts.get(first + i * HOUR_S, 0) for i in range(hours)]
    total = sum(series)
    peak_index = max(range(hours), key=lambda i: series[i])
    peak_rps = series[peak_index] / HOUR_S
    mean_rps = total / (hours * HOUR_S)
    notes = []
    # whole days: UTC days whose 24 hours all lie inside the observed span
    start_day = math.ceil(first / (DAY_H * HOUR_S))
    end_day = (last + HOUR_S) // (DAY_H * HOUR_S)  # exclusive
    daily = []
    for day in range(start_day, end_day):
        begin = (day * DAY_H * HOUR_S - first) // HOUR_S
        daily.append(sum(series[begin:begin + DAY_H]) / (DAY_H * HOUR_S))
    slope = 0.0
    if len(daily) >= 2:
        xs = range(len(daily))
        x_mean = (len(daily) - 1) / 2
        y_mean = sum(daily) / len(daily)
        slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, daily, strict=True)) / \
            sum((x - x_mean) ** 2 for x in xs)
        growth = slope / y_mean if y_mean > 0 else 0.0
    else:
        growth = 0.0
        notes.append(f"growth needs two whole days of traffic; the log covers {len(daily)}: planned as flat")
    if hours < DAY_H:
        notes.append(f"only {hours} hour(s) observed: the daily peak may not be among them")
    return TrafficProfile(model=model, requests=total, hours=hours, first_hour=_iso(first), last_hour=_iso(last),
                          peak_hour=_iso(first + peak_index * HOUR_S), peak_rps=peak_rps, mean_rps=mean_rps,
                          peak_to_mean=peak_rps / mean_rps if mean_rps > 0 else None, whole_days=len(daily),
                          daily_mean_rps=daily, growth_rps_per_day=slope, growth_per_day=growth, notes=notes)


@dataclass(frozen=True)
class CapacityPlan:
    """Replicas for the forecast peak with N+2 redundancy, with every input that produced them."""

    model: str
    traffic: TrafficProfile
    replica_rps: float
    replica_rps_source: str
    headroom: float
    redundancy: int
    horizon_days: float
    spike: float
    forecast_peak_rps: float
    forecast_mean_rps: float
    replicas_for_peak: int
    replicas: int
    hpa_min_replicas: int
    hpa_max_replicas: int
    measurement: dict[str, Any] | None = None

    @property
    def serve_workers(self) -> int:
        """``yarnit serve --workers`` for one host that carries the forecast peak: one worker per process the
        peak needs (a replica's throughput is one serving process's), at most 64 (beyond: more hosts)."""
        return min(MAX_SERVE_WORKERS, self.replicas_for_peak)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"deploy": f"yarnit deploy k8s --replicas {self.hpa_min_replicas} --min-replicas "
                                         f"{self.hpa_min_replicas} --max-replicas {self.hpa_max_replicas}",
                               "serve_workers": self.serve_workers,
                               "serve": f"yarnit serve --workers {self.serve_workers}"}


def _check_positive(name: str, value: float, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            (value <= minimum if strict else value < minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InvalidInput(f"{name} must be a finite number {bound}; got {value!r}.")
    return float(value)


def plan_capacity(profile: TrafficProfile, *, replica_rps: float, replica_rps_source: str = "given",
                  headroom: float = 1.25, redundancy: int = 2, horizon_days: float = 30.0, spike: float = 1.0,
                  measurement: Mapping[str, Any] | None = None) -> CapacityPlan:
    """The supply side put against the demand side (the module docstring has the formulas)."""
    replica_rps = _check_positive("The per-replica throughput (requests/s)", replica_rps)
    headroom = _check_positive("The headroom factor", headroom, minimum=1.0, strict=False)
    horizon_days = _check_positive("The horizon (days)", horizon_days, strict=False)
    spike = _check_positive("The spike factor", spike, minimum=1.0, strict=False)
    if isinstance(redundancy, bool) or not isinstance(redundancy, int) or not 0 <= redundancy <= 100:
        raise InvalidInput(f"The redundancy (spare replicas) must be a whole number in 0..100; got {redundancy!r}.")
    trend = max(1.0, 1.0 + profile.growth_per_day * horizon_days)  # never plan below what was observed
    forecast_peak = profile.peak_rps * trend * spike
    forecast_mean = profile.mean_rps * trend
    # a tiny epsilon keeps 8.000000001 (float noise of an exact 8) from becoming 9 replicas
    for_peak = max(1, math.ceil(forecast_peak * headroom / replica_rps - 1e-9))
    for_mean = max(1, math.ceil(forecast_mean * headroom / replica_rps - 1e-9))
    return CapacityPlan(model=profile.model, traffic=profile, replica_rps=replica_rps,
                        replica_rps_source=replica_rps_source, headroom=headroom, redundancy=redundancy,
                        horizon_days=horizon_days, spike=spike, forecast_peak_rps=forecast_peak,
                        forecast_mean_rps=forecast_mean, replicas_for_peak=for_peak, replicas=for_peak + redundancy,
                        hpa_min_replicas=min(for_mean + redundancy, for_peak + redundancy),
                        hpa_max_replicas=for_peak + redundancy,
                        measurement=dict(measurement) if measurement is not None else None)


# --- a short measured run: the highest open-loop rate that meets the latency SLO ------------------------------
DEFAULT_LATENCY_MS = 100.0  # p99 objective when the workspace's SLO file declares no serving_latency SLO
MAX_ERROR_RATE = 0.001  # a step passes with at most this share of requests failed or shed
START_RPS = 10.0  # the ramp's first offered rate
MAX_RPS = 20_000.0  # the generator's bound (loadtest.run.MAX_RPS)
BISECT_STEPS = 3  # after the ramp breaks the SLO, this many halvings of the bracket
MIN_BRACKET = 0.05  # ... stopping early once the bracket is narrower than 5 % of its passing end


@dataclass(frozen=True)
class CapacityStep:
    """One step of the search: ``offered_rps`` for ``seconds``, open-loop, and what the replica did."""

    phase: str  # "ramp" or "bisect"
    offered_rps: float
    seconds: float
    sent: int
    ok: int
    errors: int  # no answer or any status but 200 (shed 503s and 429s included)
    achieved_rps: float  # 200s over the step's scheduled duration
    p50_ms: float | None  # from the scheduled send time (no coordinated omission)
    p99_ms: float | None
    passed: bool
    reason: str

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"error_rate": self.error_rate}


def judge_step(phase: str, offered_rps: float, seconds: float, statuses: Sequence[int],
               latencies_ms: Sequence[float], *, latency_ms: float,
               max_error_rate: float = MAX_ERROR_RATE) -> CapacityStep:
    """A step's figures from its requests (status 0: no answer) and whether it met the SLO."""
    from yarnit.loadtest.gate import percentile

    ok_latencies = sorted(ms for status, ms in zip(statuses, latencies_ms, strict=True) if status == 200)
    sent, ok = len(statuses), len(ok_latencies)
    p50, p99 = percentile(ok_latencies, 0.5), percentile(ok_latencies, 0.99)
    errors = sent - ok
    error_rate = errors / sent if sent else 1.0
    if not sent:
        passed, reason = False, "no request was sent"
    elif error_rate > max_error_rate:
        passed, reason = False, f"error rate {error_rate:.2%} > {max_error_rate:.2%}"
    elif p99 is None or p99 > latency_ms:
        passed, reason = False, f"p99 {p99:.1f} ms > {latency_ms:g} ms"
    else:
        passed, reason = True, f"p99 {p99:.1f} ms <= {latency_ms:g} ms, error rate {error_rate:.2%}"
    return CapacityStep(phase=phase, offered_rps=offered_rps, seconds=seconds, sent=sent, ok=ok, errors=errors,
                        achieved_rps=ok / seconds if seconds > 0 else 0.0, p50_ms=p50, p99_ms=p99, passed=passed,
                        reason=reason)


def search_capacity(run_step: Callable[[str, float], CapacityStep], *, time_left: Callable[[], bool],
                    start_rps: float = START_RPS, max_rps: float = MAX_RPS,
                    bisect_steps: int = BISECT_STEPS) -> tuple[list[CapacityStep], int | None]:
    """Every step run and the index of the one that sets the figure (the highest passing offered rate), or None.

    The ramp doubles the rate from ``start_rps`` until a step breaks the SLO (or ``max_rps``, or time runs out);
    then up to ``bisect_steps`` bisections of the bracket (highest pass, lowest failure), each step's rate the
    bracket's middle. When even ``start_rps`` fails, the bracket is (0, ``start_rps``). ``time_left()`` is asked
    before every step, so a run stops between steps once its budget is spent.
    """
    steps: list[CapacityStep] = []
    rate = start_rps
    while time_left():
        steps.append(run_step("ramp", rate))
        if not steps[-1].passed or rate * 2 > max_rps:
            break
        rate *= 2
    passing = [s.offered_rps for s in steps if s.passed]
    failing = [s.offered_rps for s in steps if not s.passed]
    if failing:
        low, high = max(passing, default=0.0), min(failing)
        for _ in range(bisect_steps):
            if high - low < MIN_BRACKET * max(low, high / 2) or not time_left():
                break
            middle = (low + high) / 2
            steps.append(run_step("bisect", middle))
            if steps[-1].passed:
                low = middle
            else:
                high = middle
    best = max((i for i, s in enumerate(steps) if s.passed), key=lambda i: steps[i].offered_rps, default=None)
    return steps, best


def latency_objective(home: str | Path, model: str, latency_ms: float | None = None) -> tuple[float, str]:
    """The p99 a measured run must keep, and where it came from.

    ``latency_ms`` when given (``--latency-ms``); else the tightest ``threshold_ms`` of the workspace SLO file's
    ``serving_latency`` SLOs that name ``model`` or no model; else :data:`DEFAULT_LATENCY_MS`.
    """
    from .slo import load_slo_file
    from .workspace import slo_path

    if latency_ms is not None:
        return _check_positive("--latency-ms", latency_ms), "--latency-ms"
    path = slo_path(home)
    if path.exists():
        slos = [s for s in load_slo_file(path).slos if s.sli == "serving_latency" and s.model in (None, model)]
        if slos:
            slo = min(slos, key=lambda s: float(s.params["threshold_ms"]))
            return float(slo.params["threshold_ms"]), f"SLO {slo.id} (threshold_ms)"
    return DEFAULT_LATENCY_MS, f"default ({DEFAULT_LATENCY_MS:g} ms; no serving_latency SLO for {model})"


def measure_replica_capacity(home: str | Path, model: str, rows: Sequence[bytes], *, seconds: float = 30.0,
                             latency_ms: float = DEFAULT_LATENCY_MS, latency_source: str = "given",
                             max_error_rate: float = MAX_ERROR_RATE, workers: int = 1, connections: int = 32,
                             start_rps: float = START_RPS, ready_timeout_s: float = 120.0) -> dict[str, Any]:
    """The highest offered rate (req/s) at which ``yarnit serve --workers N`` keeps p99 ≤ ``latency_ms`` and at
    most ``max_error_rate`` of requests failed or shed, found open-loop with the C generator (module docstring).

    ``rows`` are JSON instances (bytes), sent one per OIP v1 request round-robin. The server logs its
    predictions to a scratch directory (``--prediction-log``), not the workspace's. ``rps_per_worker`` is the
    figure over N, the per-process figure a plan needs.
    """
    from yarnit.loadtest import generator
    from yarnit.loadtest.inputs import request_bodies

    if not rows:
        raise InvalidInput(f"{model} has no golden requests to measure with; give --replica-rps from a load test.")
    if not 1 <= seconds <= 600 or not 1 <= workers <= MAX_SERVE_WORKERS or not 1 <= connections <= 1024:
        raise InvalidInput(f"A measured run needs 1..600 s, 1..{MAX_SERVE_WORKERS} workers and 1..1024 connections; "
                           f"got {seconds} s, {workers} workers, {connections} connections.")
    binary = generator.build(Path(home) / "loadtest" / "bin")  # MissingDependency without a C compiler
    step_s = min(5.0, max(0.5, seconds / 12))  # room for about 8 doublings (10 → 1280 req/s) and 3 bisections
    with tempfile.TemporaryDirectory(prefix="yarnit-capacity-") as scratch, \
            _serving(home, Path(scratch), workers, ready_timeout_s) as port:
        bodies = Path(scratch) / "bodies.txt"
        bodies.write_bytes(request_bodies(list(rows), len(rows)))
        samples_file = Path(scratch) / "samples.txt"
        warnings: list[str] = []

        def run_step(phase: str, rate: float) -> CapacityStep:
            duration = max(step_s, 2 / rate)  # at least two requests (the generator sends floor(rate × s))
            report = generator.run(binary, host="127.0.0.1", port=port, path=f"/v1/models/{model}:predict",
                                   rate=rate, duration_s=duration, bodies_file=bodies, connections=connections,
                                   samples_file=samples_file)
            warnings.extend(report.get("warnings", []))
            samples = generator.read_samples(samples_file)
            return judge_step(phase, rate, duration, [s.status for s in samples], [s.latency_ms for s in samples],
                              latency_ms=latency_ms, max_error_rate=max_error_rate)

        begun = time.monotonic()
        steps, best = search_capacity(run_step, start_rps=start_rps,
                                      time_left=lambda: time.monotonic() - begun + step_s <= seconds)
        took = time.monotonic() - begun
        cache_hits = _cache_hits(port)
    if best is None:
        tried = ", ".join(f"{s.offered_rps:.4g} req/s ({s.reason})" for s in steps) or "none (no time for a step)"
        raise Unavailable(f"No offered rate met {model}'s latency objective (p99 <= {latency_ms:g} ms, errors <= "
                          f"{max_error_rate:.2%}) in the measured run; tried {tried}. Raise --measure-s, check the "
                          "server (yarnit models promote), or give --replica-rps from a load test.")
    rps = steps[best].offered_rps
    broke = any(not s.passed for s in steps)
    return {"method": "open-loop ramp and bisection (C generator) at the latency SLO", "rps": rps,
            "lower_bound": not broke,  # no step broke the SLO before the budget ran out: the replica may do more
            "rps_per_worker": rps / workers, "workers": workers, "best_step": best, "steps": [s.to_dict() for s in steps],
            "step_s": step_s, "seconds": took, "connections": connections, "latency_objective_ms": latency_ms,
            "latency_source": latency_source, "max_error_rate": max_error_rate, "cache_hits": cache_hits,
            "p50_ms": steps[best].p50_ms, "p99_ms": steps[best].p99_ms, "warnings": warnings[:20]}


@contextlib.contextmanager
def _serving(home: str | Path, scratch: Path, workers: int, ready_timeout_s: float) -> Iterator[int]:
    """A real ``yarnit serve --workers N`` on a free loopback port, logging to ``scratch``; yields the port."""
    from yarnit.api.server import free_port

    port = free_port("127.0.0.1")
    env = {**os.environ, "YARNIT_HOME": str(home)}
    log = scratch / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "yarnit", "serve", "--port", str(port), "--workers",
                                 str(workers), "--prediction-log", str(scratch / "predlog"), "--cache-entries", "0"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise Unavailable(f"The measuring server exited ({proc.returncode}): "
                                  f"{log.read_text(errors='replace')[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"The measuring server was not ready within {ready_timeout_s:g} s.")
            time.sleep(0.1)
        yield port
    finally:
        _stop(proc)


def _cache_hits(port: int) -> int | None:
    """Instances the measuring server answered from its prediction cache (its ``/metrics``, every worker's): 0
    when the run measured scoring, as ``--cache-entries 0`` intends; None when the server did not say."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return None
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("yarnit_serving_cache_hits_total")))


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 40.0) -> None:
    """SIGTERM the server (a supervisor stops its workers within 30 s), then SIGKILL its whole session."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


__all__ = ["CapacityPlan", "CapacityStep", "TrafficProfile", "hourly_requests", "latency_objective",
           "measure_replica_capacity", "plan_capacity", "search_capacity", "traffic_profile"]
