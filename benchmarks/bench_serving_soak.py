"""Load and soak: open-loop phases at 1×, 2× and 10× the sustainable rate, then a soak with hot swaps and the monitor.

The issue asks for "an open-loop load generator on loopback (bounded in count
and time) at the sustainable rate, at 2× and at 10×; a 30-minute soak with hot
swaps every 30 s and the monitor running: error rate, p50/p99, shed rate,
goodput and RSS slope recorded". One command does all of it, on one server
(``yarnit serve``'s app, ``peers/yarnit_app.py``: prediction log fsynced,
metrics on, prediction cache on so that its bound is exercised, serving
admission defaults, max_in_flight 32) pinned to core 0, with single-row
bodies, 20,000 distinct ones (twice what the prediction cache holds):

1. **sustainable rate P**: wrk on core 1, closed loop, 8 connections, 5 s
   (after a 2 s warm-up): what this server answers on this machine, in this run
   (``--rate`` gives P instead);
2. **soak** for ``--soak-minutes`` (default 30) at ``--soak-load`` × P
   (default 0.7: at exactly 1× a queue builds up in the generator and the
   latencies say nothing), as back-to-back generator windows of ``--window-s``
   (default 60 s, so latency is seen over time and the generator's memory
   stays bounded), with:
   * a **hot swap** every ``--swap-every-s`` (default 30 s): a new model version
     (the same model with its intercept moved by 1e-6 × i, so every artifact is
     new and is loaded, compiled, validated and warmed for real) is registered
     and promoted to ``production``; the server's alias watcher swaps it in,
     and the time until ``/v2/models/ctr/ready`` names it is recorded. Should
     the release gate halt it (the monitor found the budget spent), it goes
     ahead with the audited override and is counted as halted;
   * **the monitor**: ``yarnit monitor run --follow --interval
     --monitor-interval`` (default 10 s, six times the production default)
     with an availability, a latency and a pipeline SLO, on core 0 beside the
     server at ``--nice 10``, as ``bench_monitoring_serving.py`` places it;
   * every ``--sample-s`` (default 10 s) the server's RSS (process and
     children, psutil) and a few gauges from ``/metrics``;
3. **phases** (``--phases 1,2,10``), after the soak so that the soak starts
   from a fresh server and a fresh error budget (at 10× the availability
   budget is spent and the release gate would halt the soak's swaps): the
   open-loop generator (``loadgen/openloop.c``, core 1, ``--phase-connections``
   256) offers each multiple of P for ``--phase-s`` seconds (default 20), and
   never more than ``--max-requests`` requests (the phase is shortened to
   fit): bounded in count and in time. Between phases the server is let drain
   (nothing in flight), so a phase's backlog is not the next one's.

Per phase and for the soak: **error rate** (connection errors, unanswered
requests and statuses other than 200 and 503, over the requests sent),
**shed rate** (503s over sent), **p50/p99** of the 200s from each request's
scheduled send time, **goodput** (200s a second, over P and over the offered
rate) and the **RSS slope** (least-squares, MiB per hour; over a phase of
seconds it is noise, over the soak it is the leak check). The soak's p50,
p99 and p99.9 are exact over all its 200s (``p*_ms_all``: every request's
latency is read from the generator's per-request file after each window),
beside the median window's and the worst window's (``p99_ms_worst_window``).
 "Flat" means the slope over the soak's
second half is within ``--flat-mib-per-hour`` (default 6, i.e. 0.1 MiB/min).

Usage::

    python benchmarks/bench_serving_soak.py [--soak-minutes 30] [--phase-s 20] [--phases 1,2,10] [--quick]

``--quick`` is ``--soak-minutes 1 --phase-s 5 --swap-every-s 15 --window-s 30 --warmup-s 5`` (the path end to end).
Writes ``benchmarks/results/serving_soak.json`` (``--out`` to change the name).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_monitoring_serving  # noqa: E402  (scripts beside this one)
import bench_serving  # noqa: E402
import loadgen  # noqa: E402
from yarnit.loadtest import generator  # noqa: E402
from bench_serving import (  # noqa: E402
    CATEGORICAL,
    HERE,
    NUMERIC,
    PEERS,
    PY,
    ROOT,
    YARNIT_HTTP,
    Server,
    ensure_wrk,
    free_port,
    make_data,
    make_yarnit_model,
    uvicorn_cmd,
    version_of,
    wrk,
    write_lua,
)

# Its own files, apart from bench_serving.py's (which may be running too): its helpers read this global.
WORK = bench_serving.WORK = HERE / ".work" / "serving-soak"
PATH = "/v1/models/ctr:predict"
SIGNATURE = {"inputs": {c: "string" for c in CATEGORICAL} | {c: "double" for c in NUMERIC}}


def rss_mib(pid: int) -> float:
    """RSS of the process and all its children, in MiB."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / (1 << 20)


def anon_mib(pid: int) -> float | None:
    """The server process's anonymous RSS (malloc'd memory) in MiB; the rest of its RSS is file pages (code,
    libraries, mapped files), so a step in one and not the other says which kind of memory grew."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    m = re.search(r"^Anonymous:\s+(\d+) kB$", text, re.M)
    return round(int(m.group(1)) / 1024, 2) if m else None


def scrape(port: int) -> dict[str, float | None]:
    """A few gauges from /metrics: prediction-log queue and drops, in-flight requests, the number of series."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    series = [line for line in text.splitlines() if line and not line.startswith("#")]

    def value(pattern: str) -> float | None:
        m = re.search(rf"^{pattern} ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else None

    return {"series": len(series), "log_queue_depth": value("yarnit_prediction_log_queue_depth"),
            "log_dropped": value(r'yarnit_prediction_log_records_total\{state="dropped"\}'),
            "log_flushed": value(r'yarnit_prediction_log_records_total\{state="flushed"\}'),
            "in_flight": value("yarnit_serving_in_flight")}


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else None


def rss_slope_mib_per_hour(samples: list[dict[str, Any]]) -> float | None:
    """The linear fit of the samples' RSS against their time, in MiB per hour."""
    fit = slope([(s["t_s"] / 3600, s["rss_mib"]) for s in samples])
    return None if fit is None else round(fit, 3)


def rss_median_slope_mib_per_hour(samples: list[dict[str, Any]]) -> float | None:
    """Theil-Sen: the median of the slopes between every two samples, in MiB per hour.

    Beside the least-squares fit, not instead of it: one step (the 30-minute soak's second half was flat at
    0.35 MiB/h before and after a single 14.4 MiB rise) moves the least-squares slope by tens of MiB/h and this
    one not at all, while a steady leak moves both alike. The two disagreeing says "a step", not "a leak".
    """
    points = [(s["t_s"] / 3600, s["rss_mib"]) for s in samples]
    slopes = sorted((y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:]
                    if x2 != x1)
    return round(statistics.median(slopes), 3) if slopes else None


def rss_steps(samples: list[dict[str, Any]], min_mib: float = 1.0) -> list[dict[str, float]]:
    """The rises of at least ``min_mib`` from one sample to the next: when, and by how much."""
    return [{"t_s": b["t_s"], "mib": round(b["rss_mib"] - a["rss_mib"], 2)} for a, b in itertools.pairwise(samples)
            if b["rss_mib"] - a["rss_mib"] >= min_mib]


def outcome(reports: list[dict[str, Any]], sustainable_rps: float) -> dict[str, Any]:
    """Error rate, shed rate, goodput and latencies of one or more generator reports (windows of one run)."""
    sent = sum(r.get("sent", 0) for r in reports)
    counts: dict[str, int] = {}
    for r in reports:
        for code, v in r.get("by_status", {}).items():
            counts[code] = counts.get(code, 0) + v.get("count", 0)
    answered = sum(counts.values())
    ok, shed = counts.get("200", 0), counts.get("503", 0)
    # Connection errors and requests never answered count as errors, as do statuses other than 200 and 503.
    errors = (sent - answered) + sum(n for code, n in counts.items() if code not in ("200", "503"))
    # Wall time of each window from its answers and its achieved rate (answers / elapsed, the drain included).
    seconds = sum(sum(v.get("count", 0) for v in r.get("by_status", {}).values()) / r["achieved_rps"]
                  for r in reports if r.get("achieved_rps"))
    p50s = [r["by_status"]["200"]["p50_ms"] for r in reports if "200" in r.get("by_status", {})]
    p99s = [r["by_status"]["200"]["p99_ms"] for r in reports if "200" in r.get("by_status", {})]
    offered = statistics.fmean(r["offered_rps"] for r in reports) if reports else None
    return {
        "offered_rps": offered, "sent": sent, "answered": answered, "by_status": counts, "seconds": round(seconds, 2),
        "error_rate": errors / sent if sent else None, "shed_rate": shed / sent if sent else None,
        "ok_rps": ok / seconds if seconds else None,
        "goodput_of_sustainable": ok / seconds / sustainable_rps if seconds else None,
        "goodput_of_offered": ok / seconds / offered if seconds and offered else None,
        # one window: its own percentiles; several: the median window and the worst one
        "p50_ms": statistics.median(p50s) if p50s else None, "p99_ms": statistics.median(p99s) if p99s else None,
        "p99_ms_worst_window": max(p99s) if p99s else None,
        "late_sends": sum(r.get("late_sends", 0) for r in reports),
        "max_send_lag_ms": max((r.get("max_send_lag_ms", 0) for r in reports), default=None),
        "warnings": [w for r in reports for w in r.get("warnings", [])][:5],
    }


class Monitor(bench_monitoring_serving.MonitorProcess):
    """The monitor beside the soak; a run can take a minute on a loaded core, so its stop waits longer.

    Stopping never raises: an exit status other than 0, or a monitor that has to be killed, is recorded
    in ``error`` and the soak's figures stand.
    """

    error: str | None = None

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.error = "did not stop within 180 s of SIGTERM; killed"
        if self.proc.returncode != 0 and self.error is None:
            self.error = f"exited with {self.proc.returncode}: {self.err.read_text()[-2000:]}"
        self.runs = [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


class Sampler:
    """Samples the server's RSS and /metrics every ``every_s`` on a thread until stopped."""

    def __init__(self, pid: int, port: int, every_s: float) -> None:
        self.pid, self.port, self.every_s = pid, port, every_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self.samples.append({"t_s": round(time.monotonic() - self.started, 1),
                                 "rss_mib": round(rss_mib(self.pid), 2), "anon_mib": anon_mib(self.pid),
                                 **scrape(self.port)})
            if self._stop.wait(self.every_s):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.samples.append({"t_s": round(time.monotonic() - self.started, 1), "rss_mib": round(rss_mib(self.pid), 2)})


class Swapper:
    """Registers and promotes a new version of ``ctr`` every ``every_s`` (start to start) on a thread; records each.

    A swap that takes longer than ``every_s`` delays the next one, which then starts at once.
    """

    def __init__(self, home: Path, pipe: Any, port: int, every_s: float) -> None:
        self.home, self.pipe, self.port, self.every_s = home, pipe, port, every_s
        self.swaps: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Swapper:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _served_version(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/models/ctr/ready", timeout=10) as r:
                return json.loads(r.read())["version"]
        except urllib.error.HTTPError as exc:  # 503 while the production version is not the registry's yet
            return json.loads(exc.read() or b"{}").get("version")
        except OSError:
            return None

    def _run(self) -> None:
        from yarnit.core import Settings
        from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
        from yarnit.registry.errors import ReleaseHalted
        from yarnit.storage import open_workspace

        i = 0
        with open_workspace(Settings.for_home(self.home)) as ws:
            registry = ModelRegistry(ws)
            next_at = self.started + self.every_s
            while True:
                i += 1
                # The artifact is made before its turn, so that the swaps keep their cadence (start to start):
                # making it takes seconds on a loaded core, and is not part of a swap.
                model = copy.deepcopy(self.pipe)
                model.named_steps["lr"].intercept_ = model.named_steps["lr"].intercept_ + 1e-6 * i
                blob = dump_sklearn(model)
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                next_at += self.every_s
                t0 = time.monotonic()
                halted = False
                try:
                    number = registry.register("ctr", blob, ArtifactFormat.SKOPS, signature=SIGNATURE).version
                    try:
                        registry.promote("ctr", number, actor="bench-soak", reason="soak hot swap")
                    except ReleaseHalted:
                        # The monitor found the availability budget spent (shedding counts against it) and the
                        # release gate halts changes: this soak is about swapping under load, so it goes ahead
                        # with the audited override, and the swap is marked as halted-and-overridden.
                        halted = True
                        registry.promote("ctr", number, actor="bench-soak", reason="soak hot swap",
                                         override_reason="benchmark soak: hot swap under load")
                except Exception as exc:  # noqa: BLE001  (recorded: the soak goes on and reports it)
                    self.failures.append(f"swap {i}: {type(exc).__name__}: {exc}")
                    print(f"  swap {i} failed: {self.failures[-1][:300]}", flush=True)
                    continue
                promoted = time.monotonic()
                seen = None
                while time.monotonic() - promoted < 60 and not self._stop.is_set():
                    if self._served_version() == str(number):
                        seen = time.monotonic()
                        break
                    time.sleep(0.05)
                self.swaps.append({"t_s": round(t0 - self.started, 1), "version": number, "release_halted": halted,
                                   "register_promote_ms": round((promoted - t0) * 1000, 1),
                                   "served_after_ms": None if seen is None else round((seen - promoted) * 1000, 1),
                                   # the soak ended while this swap's readiness was still being polled
                                   "cut_off_by_the_end": seen is None and self._stop.is_set()})
                print(f"  swap {i}: version {number}, served after {self.swaps[-1]['served_after_ms']} ms", flush=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def latencies_of_200s(path: Path) -> Any:
    """The 200s' latencies (ms, float32) from a generator's per-request file (``<status> <latency_us> <lag_us>``)."""
    values = numpy.fromfile(path, sep=" ", dtype=numpy.int64).reshape(-1, 3)
    return (values[values[:, 0] == 200, 1] / 1000.0).astype(numpy.float32)


def nearest_rank(values: Any, q: float) -> float | None:
    """The nearest-rank ``q`` quantile, in ms rounded to 0.1 µs."""
    if len(values) == 0:
        return None
    ordered = numpy.sort(values)
    return round(float(ordered[max(0, int(numpy.ceil(q * len(ordered))) - 1)]), 4)


def drain(port: int, limit_s: float = 120.0) -> float:
    """Wait until the server has nothing in flight (three scrapes in a row), at most ``limit_s``; the wait in s."""
    started, quiet = time.monotonic(), 0
    while time.monotonic() - started < limit_s and quiet < 3:
        quiet = quiet + 1 if (scrape(port).get("in_flight") or 0) <= 0 else 0
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def run_phase(port: int, bodies: Path, rate: float, seconds: float, connections: int, sustainable: float,
              pid: int, sample_s: float, max_requests: int) -> dict[str, Any]:
    """One open-loop run at ``rate``, bounded by ``seconds`` and by ``max_requests``."""
    seconds = min(seconds, max_requests / rate)
    with Sampler(pid, port, sample_s) as sampler:
        report = loadgen.run("127.0.0.1", port, PATH, rate, seconds, bodies, connections)
    return outcome([report], sustainable) | {
        "planned_s": round(seconds, 2), "planned_requests": int(rate * seconds), "connections": connections,
        "rss_mib": {"start": sampler.samples[0]["rss_mib"], "end": sampler.samples[-1]["rss_mib"],
                    "max": max(s["rss_mib"] for s in sampler.samples)},
        "rss_slope_mib_per_hour": rss_slope_mib_per_hour(sampler.samples)}


def train_pipe(frame: Any) -> Any:
    """The soak's base model, as ``make_yarnit_model`` trains it (its swaps are copies with a moved intercept)."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(max_iter=1000))])
    return pipe.fit(frame[CATEGORICAL + NUMERIC].to_dict("records"), frame["clicked"])


def targets_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The normalised targets ``run_all.py`` puts in docs/benchmarks.md's summary."""
    soak, phases = report["soak"], {p["multiple"]: p for p in report["phases"]}
    cut = soak.get("swaps_cut_off_by_the_end", 0)
    out: list[dict[str, Any]] = []
    second = soak["rss_slope_mib_per_hour"]["second_half"]
    out.append({"target": f"memory flat over a {report['config']['soak_minutes']:g}-minute soak with hot swaps and "
                          "the monitor (second-half RSS slope)",
                "figure": second, "unit": "MiB/h", "goal": f"|slope| <= {report['config']['flat_mib_per_hour']:g}",
                "peer": None, "ratio": None, "verdict": "reported" if second is None else
                "met" if abs(second) <= report["config"]["flat_mib_per_hour"] else "not met"})
    out.append({"target": "no errors during the soak (hot swaps every "
                          f"{report['config']['swap_every_s']:g} s)", "figure": soak["error_rate"], "unit": "of sent",
                "goal": "0", "peer": None, "ratio": None,
                "verdict": "met" if soak["error_rate"] == 0 and not soak["swap_failures"] else "not met"})
    out.append({"target": "every hot swap served (the new version answers /ready within 60 s)",
                "figure": f"{soak['swaps_done'] - soak['swaps_not_served_within_60s'] - cut} of "
                          f"{soak['swaps_done'] - cut}" + (f" (and {cut} cut off by the soak's end)" if cut else ""),
                "goal": "all", "peer": None, "ratio": None,
                "verdict": "met" if soak["swaps_done"] and not soak["swaps_not_served_within_60s"]
                and not soak["swap_failures"] else "not met"})
    for multiple in (2.0, 10.0):
        phase = phases.get(multiple)
        if phase is not None:
            out.append({"target": f"goodput at {multiple:g}x the sustainable rate, open loop",
                        "figure": phase["goodput_of_sustainable"], "unit": "of P", "goal": "reported", "peer": None,
                        "ratio": None, "verdict": "reported"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-minutes", type=float, default=30.0)
    parser.add_argument("--soak-load", type=float, default=0.7, help="the soak's rate as a multiple of P")
    parser.add_argument("--phases", default="1,2,10", help="open-loop phases, multiples of P ('' for none)")
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=5_000_000, help="at most this many requests a phase")
    parser.add_argument("--phase-connections", type=int, default=256)
    parser.add_argument("--rate", type=float, default=None, help="P in req/s (skips the wrk measurement)")
    parser.add_argument("--swap-every-s", type=float, default=30.0)
    parser.add_argument("--monitor-interval", default="10s")
    parser.add_argument("--window-s", type=float, default=60.0, help="length of one generator window in the soak")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=20.0, help="soak-rate load before the soak's clock starts")
    parser.add_argument("--flat-mib-per-hour", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=16, help="the soak's connections")
    parser.add_argument("--quick", action="store_true", help="a short run of the whole path (minutes)")
    parser.add_argument("--out", default="serving_soak.json", help="results file: a name under benchmarks/results/, or an absolute path")
    args = parser.parse_args()
    if args.quick:
        args.soak_minutes, args.phase_s, args.swap_every_s, args.window_s, args.warmup_s = 1.0, 5.0, 15.0, 30.0, 5.0
    multiples = [float(m) for m in args.phases.split(",") if m.strip()]
    ensure_wrk()
    loadgen.build()
    bench_monitoring_serving.WORK = WORK  # the monitor's output files go beside the soak's
    data = make_data()
    home = make_yarnit_model(data["frame"])
    (home / "slos.yaml").write_text(bench_monitoring_serving.SLOS)
    pipe = train_pipe(data["frame"])
    # 20,000 distinct single-row bodies: more than the prediction cache holds (10,000), so its bound is exercised.
    bodies = WORK / "soak_single.txt"
    records = data["frame"][CATEGORICAL + NUMERIC].to_dict("records")
    bodies.write_text("\n".join(json.dumps({"instances": [r]}) for r in records) + "\n")
    single_lua = WORK / "soak_single.lua"
    write_lua(single_lua, bodies)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {
        "YARNIT_HOME": str(home), "PYTHONPATH": str(ROOT / "src"), "BENCH_CACHE": "1"}
    port = free_port()
    server = Server("yarnit-soak", uvicorn_cmd(PY, "yarnit_app:app", port, PEERS, factory=True, http=YARNIT_HTTP), env,
                    port, PATH)
    load_before = os.getloadavg()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with server:
        assert server.proc is not None
        pid = server.proc.pid
        wrk(port, PATH, single_lua, 2)  # warm-up
        measured = None
        if args.rate is None:
            measured = wrk(port, PATH, single_lua, 5)
            sustainable = measured["rps"]
        else:
            sustainable = args.rate
        print(f"sustainable rate P = {sustainable:.0f} req/s", flush=True)
        rate = args.soak_load * sustainable
        print(f"soak: {rate:.0f} req/s for {args.soak_minutes:g} min, a hot swap every {args.swap_every_s:g} s, "
              f"the monitor every {args.monitor_interval}", flush=True)
        loadgen.run("127.0.0.1", port, PATH, rate, args.warmup_s, bodies, args.connections)  # warm-up, not counted
        windows: list[dict[str, Any]] = []
        ok_latencies: list[Any] = []  # every 200's latency (float32 ms), for the soak's exact p50/p99
        samples_file = WORK / "window.samples"
        monitor = Monitor(env, args.monitor_interval, 10)
        with monitor, Sampler(pid, port, args.sample_s) as sampler, \
                Swapper(home, pipe, port, args.swap_every_s) as swapper:
            end = time.monotonic() + args.soak_minutes * 60
            while (left := end - time.monotonic()) > 1:
                window = generator.run(loadgen.build(), host="127.0.0.1", port=port, path=PATH, rate=rate,
                                       duration_s=min(args.window_s, left), bodies_file=bodies,
                                       connections=args.connections, samples_file=samples_file, cpu="1")
                windows.append(window)
                ok_latencies.append(latencies_of_200s(samples_file))
                w = outcome([window], sustainable)
                print(f"  window {len(windows)}: sent {w['sent']}, errors {w['error_rate']}, shed "
                      f"{w['shed_rate']}, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, "
                      f"RSS {sampler.samples[-1]['rss_mib']} MiB", flush=True)
        # The phases after the soak: the soak then starts from a fresh server and error budget (at 10x the
        # budget is spent and the release gate would halt the soak's swaps), and its RSS from the warm-up alone.
        drain(port)
        phases = []
        for multiple in multiples:
            print(f"phase {multiple:g}x: {multiple * sustainable:.0f} req/s for at most {args.phase_s:g} s", flush=True)
            phase = {"multiple": multiple} | run_phase(port, bodies, multiple * sustainable, args.phase_s,
                                                       args.phase_connections, sustainable, pid, 1.0,
                                                       args.max_requests)
            phases.append(phase)
            print("  " + json.dumps({k: phase[k] for k in ("sent", "error_rate", "shed_rate", "goodput_of_sustainable",
                                                            "p50_ms", "p99_ms")}), flush=True)
            phase["drain_s"] = drain(port)  # the backlog a phase leaves is not the next one's
    samples = sampler.samples
    exact = numpy.concatenate(ok_latencies) if ok_latencies else numpy.zeros(0, dtype=numpy.float32)
    half = [s for s in samples if s["t_s"] >= args.soak_minutes * 30]
    soak = outcome(windows, sustainable) | {
        # exact over the whole soak (every 200's latency kept), beside the windows' median p50/p99 from outcome()
        "p50_ms_all": nearest_rank(exact, 0.50), "p99_ms_all": nearest_rank(exact, 0.99),
        "p999_ms_all": nearest_rank(exact, 0.999),
        "load": args.soak_load, "windows": [outcome([w], sustainable) | {"i": i} for i, w in enumerate(windows)],
        "rss_mib": {"start": samples[0]["rss_mib"], "end": samples[-1]["rss_mib"],
                    "max": max(s["rss_mib"] for s in samples)},
        "rss_slope_mib_per_hour": {"whole": rss_slope_mib_per_hour(samples),
                                   "second_half": rss_slope_mib_per_hour(half),
                                   "second_half_median": rss_median_slope_mib_per_hour(half)},
        "rss_steps_of_1_mib_or_more": rss_steps(samples),
        "swaps": swapper.swaps, "swap_failures": swapper.failures,
        "swaps_done": len(swapper.swaps), "swaps_release_halted": sum(s["release_halted"] for s in swapper.swaps),
        "swaps_not_served_within_60s": sum(s["served_after_ms"] is None and not s["cut_off_by_the_end"]
                                           for s in swapper.swaps),
        "swaps_cut_off_by_the_end": sum(s["cut_off_by_the_end"] for s in swapper.swaps),
        "swap_served_after_ms": {"median": statistics.median(d), "max": max(d)} if (
            d := [s["served_after_ms"] for s in swapper.swaps if s["served_after_ms"] is not None]) else None,
        "monitor": {"runs": len(monitor.runs), "error": monitor.error,
                    "run_ms_median": statistics.median(r["duration_ms"] for r in monitor.runs if "duration_ms" in r)
                    if any("duration_ms" in r for r in monitor.runs) else None,
                    "last_states": {s.get("slo"): s.get("state") for s in monitor.runs[-1].get("slos", [])}
                    if monitor.runs else {}},
        "samples": samples,
    }
    soak["flat"] = (soak["rss_slope_mib_per_hour"]["second_half"] is not None
                    and abs(soak["rss_slope_mib_per_hour"]["second_half"]) <= args.flat_mib_per_hour)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    report: dict[str, Any] = {
        "command": "python benchmarks/bench_serving_soak.py " + " ".join(sys.argv[1:]),
        "started_at": started_at,
        "versions": {"python": platform.python_version(), "machine": f"{cpu}, {os.cpu_count()} cores",
                     "onnxruntime": version_of(PY, "onnxruntime"), "uvicorn": version_of(PY, "uvicorn")},
        "setup": "yarnit server (yarnit_app:app: prediction log fsynced, metrics on, prediction cache on, "
                 "max_in_flight 32, HTTP fast lane) on core 0; yarnit monitor run --follow on core 0 (nice 10) "
                 "during the soak; open-loop loadgen/openloop.c on core 1; single-row bodies, 20,000 distinct",
        "config": {"soak_minutes": args.soak_minutes, "soak_load": args.soak_load, "phases": multiples,
                   "phase_s": args.phase_s, "max_requests": args.max_requests,
                   "phase_connections": args.phase_connections, "soak_connections": args.connections,
                   "swap_every_s": args.swap_every_s, "monitor_interval": args.monitor_interval,
                   "window_s": args.window_s, "sample_s": args.sample_s, "warmup_s": args.warmup_s,
                   "flat_mib_per_hour": args.flat_mib_per_hour},
        "sustainable": {"rps": sustainable, "wrk": measured},
        "phases": phases,
        "soak": soak,
        "load_average": {"before": list(load_before), "at_end": list(os.getloadavg())},
    }
    report["targets"] = targets_of(report)
    out = HERE / "results" / args.out  # a relative name goes under benchmarks/results/, an absolute path as it is
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out)
    print(json.dumps({"sustainable_rps": sustainable,
                      "phases": [{k: p[k] for k in ("multiple", "error_rate", "shed_rate", "goodput_of_sustainable",
                                                    "p50_ms", "p99_ms", "rss_slope_mib_per_hour")} for p in phases],
                      "soak": {k: soak[k] for k in ("error_rate", "shed_rate", "goodput_of_offered", "p50_ms",
                                                    "p99_ms", "p99_ms_worst_window", "rss_mib",
                                                    "rss_slope_mib_per_hour", "swap_served_after_ms", "flat")},
                      "targets": report["targets"]}, indent=2))


if __name__ == "__main__":
    main()
