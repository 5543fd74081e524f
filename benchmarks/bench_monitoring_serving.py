"""Benchmark: serving latency with `yarnit monitor run --follow` beside the server, against without, same run.

The server is `yarnit serve`'s app (``peers/yarnit_app.py``: prediction log fsynced, metrics on, no
prediction cache) pinned to core 0; the open-loop generator (``loadgen/openloop.c``) offers a fixed rate
of single-row requests from core 1, timing each request from its scheduled send. The monitor, when on,
is pinned to core 0 too, so it competes with the server for its core: the harsher of the two
placements on a 2-core machine (beside the generator it would disturb the measurement instead). It
runs every ``--interval`` (default 1 s, sixty times the production default of a minute) over the
server's own prediction log, with an availability and a latency SLO for the served model and a
pipeline-success SLO, and writes its alerts to a file sink.

Arms are interleaved per repetition (without, with, without, with, ...) and each repetition reports
the ratio of the two p99s; the spread between repetitions of the same arm is the noise the ratio is
compared with.

Usage::

    python benchmarks/bench_monitoring_serving.py [--reps 3] [--duration 10] [--rate 400] [--interval 1s] \
        [--nice 10] [--out monitoring_serving.json]

Writes ``benchmarks/results/<out>`` and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_serving as bs
import loadgen

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "monitoring_serving"
PATH = "/v1/models/ctr:predict"
CONNECTIONS = 16
SLOS = """\
service: yarnit-serving
slos:
  - name: ctr-availability
    sli: serving_availability
    model: ctr
    objective: 99.9
    window: 30d
    runbook: https://runbooks.example/ctr-availability
  - name: ctr-latency
    sli: serving_latency
    model: ctr
    objective: 99
    window: 30d
    params: {threshold_ms: 50}
  - name: training-success
    sli: pipeline_success
    objective: 95
    window: 7d
alerts:
  sinks:
    - {type: file, path: alerts.jsonl}
"""


class MonitorProcess:
    """`yarnit monitor run --follow --json` pinned to ``cores``; stopped with SIGTERM (as a service manager would)."""

    def __init__(self, env: dict[str, str], interval: str, nice: int, cores: str = "0") -> None:
        self.cmd = ["taskset", "-c", cores, sys.executable, "-m", "yarnit", "monitor", "run", "--follow", "--interval",
                    interval, "--nice", str(nice), "--json"]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs: list[dict[str, Any]] = []

    def __enter__(self) -> MonitorProcess:
        # Files, not pipes: a pipe nobody reads fills up and blocks the monitor's writes.
        self.out, self.err = WORK / "monitor.jsonl", WORK / "monitor.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=err)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"monitor exited with {self.proc.returncode}: {self.err.read_text()[-2000:]}")
        self.runs = [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=400.0, help="offered single-row requests per second")
    parser.add_argument("--interval", default="1s", help="the monitor's interval")
    parser.add_argument("--nice", type=int, default=10, help="the monitor's --nice (0: same priority as the server)")
    parser.add_argument("--out", default="monitoring_serving.json", help="results file under benchmarks/results/")
    args = parser.parse_args()
    bs.WORK = WORK  # bench_serving's helpers write their data, model and server logs under WORK
    WORK.mkdir(parents=True, exist_ok=True)
    data = bs.make_data()
    home = bs.make_yarnit_model(data["frame"])
    (home / "slos.yaml").write_text(SLOS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {
        "YARNIT_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    loadgen.build()

    def measure() -> dict[str, Any]:
        port = bs.free_port()
        server = bs.Server("yarnit", bs.uvicorn_cmd(sys.executable, "yarnit_app:app", port, bs.PEERS, factory=True,
                                                    http=bs.YARNIT_HTTP), env, port, PATH)
        with server:
            loadgen.run("127.0.0.1", port, PATH, args.rate, 2.0, WORK / "single.txt", CONNECTIONS)  # warm-up
            return loadgen.run("127.0.0.1", port, PATH, args.rate, args.duration, WORK / "single.txt", CONNECTIONS)

    reps: list[dict[str, Any]] = []
    for rep in range(args.reps):
        result: dict[str, Any] = {}
        for arm in ("without", "with"):
            if arm == "with":
                monitor = MonitorProcess(env, args.interval, args.nice)
                with monitor:
                    started = time.monotonic()
                    report = measure()
                    wall = time.monotonic() - started
                durations = [r["duration_ms"] for r in monitor.runs if "duration_ms" in r]
                result[arm] = _summary(report) | {"monitor_runs": len(monitor.runs), "monitor_wall_s": wall,
                                                  "monitor_run_ms": _stat(durations) if durations else None,
                                                  "monitor_states": [s["state"] for s in monitor.runs[-1]["slos"]]
                                                  if monitor.runs else []}
            else:
                result[arm] = _summary(measure())
            print(f"rep {rep + 1} {arm}: {json.dumps(result[arm])}", flush=True)
        result["p99_ratio"] = result["with"]["p99_ms"] / result["without"]["p99_ms"]
        result["p50_ratio"] = result["with"]["p50_ms"] / result["without"]["p50_ms"]
        reps.append(result)

    report = {
        "what": "serving p99 with `yarnit monitor run --follow` beside the server vs without (same run)",
        "config": {"rate_rps": args.rate, "duration_s": args.duration, "reps": args.reps,
                   "monitor_interval": args.interval, "monitor_nice": args.nice, "connections": CONNECTIONS,
                   "placement": "server and monitor on core 0, openloop generator on core 1, 127.0.0.1",
                   "slos": ["serving_availability", "serving_latency", "pipeline_success"]},
        "versions": {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "load_average_at_end": list(os.getloadavg())},
        "reps": reps,
        "summary": {
            "p99_ms_without": _stat([r["without"]["p99_ms"] for r in reps]),
            "p99_ms_with": _stat([r["with"]["p99_ms"] for r in reps]),
            "p50_ms_without": _stat([r["without"]["p50_ms"] for r in reps]),
            "p50_ms_with": _stat([r["with"]["p50_ms"] for r in reps]),
            "p99_ratio": _stat([r["p99_ratio"] for r in reps]),
            "p50_ratio": _stat([r["p50_ratio"] for r in reps]),
            "monitor_runs": [r["with"]["monitor_runs"] for r in reps],
            "monitor_run_ms_median": [(r["with"]["monitor_run_ms"] or {}).get("median") for r in reps],
        },
        "command": f"python benchmarks/bench_monitoring_serving.py --reps {args.reps} --duration {args.duration:g} "
                   f"--rate {args.rate:g} --interval {args.interval} --nice {args.nice} --out {args.out}",
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    ok = report["by_status"].get("200") or {}
    others = {code: v.get("count") for code, v in report["by_status"].items() if code != "200"}
    return {"answered_200": ok.get("count"), "p50_ms": ok.get("p50_ms"), "p99_ms": ok.get("p99_ms"),
            "p999_ms": ok.get("p999_ms"), "other_statuses": others, "achieved_rps": report.get("achieved_rps"),
            "late_sends": report.get("late_sends"), "warnings": report.get("warnings", [])[:5]}


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


if __name__ == "__main__":
    main()
