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
  (:func:`measure_replica_rps`): a real ``yarnit serve`` (one process, or ``--workers N``) on a loopback port,
  driven closed-loop by a few client threads with the version's golden requests. It logs to a scratch
  directory (``yarnit serve --prediction-log``), so the measurement never shows up as demand.

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
``yarnit serve --workers N`` and takes the measured requests/s over N, so workers that share cores or the
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
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
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


# --- a short measured run -------------------------------------------------------------------------------------
def measure_replica_rps(home: str | Path, model: str, instances: Sequence[Mapping[str, Any]], *,
                        seconds: float = 5.0, concurrency: int = 4, latency_slo_ms: float | None = None,
                        workers: int = 1, ready_timeout_s: float = 120.0) -> dict[str, Any]:
    """Requests/s ``yarnit serve --workers N`` answers with 200, closed-loop, ``concurrency`` clients; also
    per worker (``rps_per_worker``: the whole server's figure over N, the per-process figure a plan needs).

    Single-instance OIP v2 requests cycle through ``instances``. With ``latency_slo_ms`` the figure is the
    throughput *at the SLO*: if the run's p99 exceeds it, the plan is told so rather than trusting the rps.
    The server logs its predictions to a scratch directory (``--prediction-log``), not the workspace's.
    """
    import httpx

    from yarnit.api.server import free_port
    from yarnit.api.workers import WORKER_HEADER  # which worker answered

    if not instances:
        raise InvalidInput(f"{model} has no golden requests to measure with; give --replica-rps from a load test.")
    if not 0.5 <= seconds <= 600 or not 1 <= concurrency <= 64 or not 1 <= workers <= MAX_SERVE_WORKERS:
        raise InvalidInput(f"A measured run needs 0.5..600 s, 1..64 clients and 1..{MAX_SERVE_WORKERS} workers; "
                           f"got {seconds} s, {concurrency} clients, {workers} workers.")
    port = free_port("127.0.0.1")
    env = {**os.environ, "YARNIT_HOME": str(home)}
    with tempfile.TemporaryDirectory(prefix="yarnit-capacity-") as scratch:
        log = Path(scratch) / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "yarnit", "serve", "--port", str(port), "--workers",
                                     str(workers), "--prediction-log", str(Path(scratch) / "predlog")],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if proc.poll() is not None:
                    raise Unavailable(f"The measuring server exited ({proc.returncode}): "
                                      f"{log.read_text(errors='replace')[-500:]}")
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise Unavailable(f"The measuring server was not ready within {ready_timeout_s:g} s.")
                time.sleep(0.1)
            bodies = [{"inputs": [{"name": k, "shape": [1], "datatype": _datatype(v), "data": [v]}
                                  for k, v in instance.items()]} for instance in instances]
            latencies: list[float] = []
            statuses: Counter[int] = Counter()
            by_worker: Counter[str] = Counter()
            lock = threading.Lock()
            # the clients exist before the clock starts (building one took over a second on a loaded machine),
            # and each sends at least one request
            https = [httpx.Client(base_url=url, timeout=10) for _ in range(concurrency)]
            stop_at = time.monotonic() + seconds

            def client(offset: int) -> None:
                with https[offset] as http:
                    i = offset
                    while i == offset or time.monotonic() < stop_at:
                        started = time.perf_counter()
                        worker = ""
                        try:
                            answer = http.post(f"/v2/models/{model}/infer", json=bodies[i % len(bodies)])
                            status, worker = answer.status_code, answer.headers.get(WORKER_HEADER, "")
                        except httpx.HTTPError:
                            status = 0
                        elapsed = (time.perf_counter() - started) * 1000.0
                        with lock:
                            statuses[status] += 1
                            if status == 200:
                                latencies.append(elapsed)
                                by_worker[worker] += 1
                        i += 1

            threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
            begun = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - begun
        finally:
            _stop(proc)
    ok = statuses.get(200, 0)
    if ok == 0:
        raise Unavailable(f"No request to {model} was answered 200 in the measured run (statuses "
                          f"{dict(statuses)}); is it served (yarnit models promote)?")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(math.ceil(0.99 * len(latencies))) - 1)]
    result = {"rps": ok / took, "rps_per_worker": ok / took / workers, "workers": workers, "seconds": took,
              "concurrency": concurrency, "requests": sum(statuses.values()), "ok": ok,
              "statuses": {str(k): v for k, v in sorted(statuses.items())},
              "ok_by_worker": dict(sorted(by_worker.items())) if workers > 1 else None,
              "p50_ms": latencies[len(latencies) // 2], "p99_ms": p99, "latency_slo_ms": latency_slo_ms,
              "within_slo": None if latency_slo_ms is None else p99 <= latency_slo_ms}
    return result


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 40.0) -> None:
    """SIGTERM the server (a supervisor stops its workers within 30 s), then SIGKILL its whole session."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _datatype(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FP64"
    return "BYTES"


__all__ = ["CapacityPlan", "TrafficProfile", "hourly_requests", "measure_replica_rps", "plan_capacity",
           "traffic_profile"]
