"""Benchmark: yarnit's goodput under overload, closed loop (many clients) and open loop (2× and 10× the peak).

One yarnit server as ``yarnit serve`` runs it (fast lane, prediction log
fsynced, metrics on, prediction cache off, serving defaults for admission),
pinned to core 0; the load generators on core 1. Single-row bodies, as in
``bench_serving.py``. Per repetition:

* **peak**: wrk, closed loop, 16 and 64 connections: the better answer rate is P;
* **closed loop, many clients**: wrk ``-c256`` and ``-c1024``: answers (200)
  a second against P, and 503s a second;
* **open loop** (``loadgen/openloop.c``, 256 connections) at 2× and 10× P:
  goodput (200s a second against P), the admitted (200) and 503 p99s from
  each request's scheduled send time;
* **the previous policy** (``max_in_flight`` 64, 5 ms queue-delay target,
  fixed 0.1 ms FIFO slices) under wrk ``-c256``, in the same run;
* **the cost of a refusal**: a server that sheds everything
  (``max_in_flight`` 0) under wrk ``-c256``: 503s a second, so 1/that is what
  reading and refusing one request costs on this core, kernel included.

Usage::

    python benchmarks/bench_serving_overload.py [--reps 2] [--duration 5]

Writes ``benchmarks/results/serving_overload.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import loadgen
from bench_serving import (HERE, PEERS, PY, ROOT, WORK, YARNIT_HTTP, Server, ensure_wrk, free_port, make_data,
                           make_yarnit_model, uvicorn_cmd, write_lua)

TARGETS = {"closed_fraction_of_peak": 0.8, "open_2x_goodput": 0.8, "open_2x_admitted_p99_ms": 20.0,
           "open_2x_503_p99_ms": 5.0}
OPEN_CONNECTIONS = 256


def _more_files() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # wrk -c1024 needs more than 1024


def closed(port: int, path: str, lua: Path, duration: int, connections: int) -> dict[str, float]:
    """wrk, closed loop: answers (2xx) and refusals (non-2xx) per second."""
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", str(lua), f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=duration + 60, preexec_fn=_more_files, check=True).stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"answered_rps": (total - refused) / seconds, "refused_rps": refused / seconds,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}


def open_loop(port: int, path: str, rate: float, duration: int, peak: float) -> dict[str, Any]:
    report = loadgen.run("127.0.0.1", port, path, rate, duration, WORK / "single.txt", OPEN_CONNECTIONS)
    by_status = report.get("by_status", {})
    ok = by_status.get("200", {})
    shed = by_status.get("503", {})
    # Answers (any status) over the run's wall time, drain included (achieved_rps = answered / elapsed).
    answered = sum(v.get("count", 0) for v in by_status.values())
    seconds = answered / report["achieved_rps"] if report.get("achieved_rps") else duration
    return {"offered_rps": report["offered_rps"], "answered_rps": ok.get("count", 0) / seconds,
            "goodput": ok.get("count", 0) / seconds / peak, "admitted_p99_ms": ok.get("p99_ms"),
            "shed_p99_ms": shed.get("p99_ms"), "shed_rps": shed.get("count", 0) / seconds,
            "seconds": seconds, "errors": report.get("errors", 0), "late_sends": report.get("late_sends"),
            "warnings": report.get("warnings", [])}


class _Refusing(Server):
    """A server that sheds everything: ready once it answers 503."""

    def __enter__(self) -> _Refusing:
        assert self.proc is None
        self.proc = subprocess.Popen(["taskset", "-c", self.cores, *self.cmd], env=self.env,
                                     stdout=open(WORK / f"{self.name}.log", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary",
                                  "{}", f"http://127.0.0.1:{self.port}{self.path}"], capture_output=True, text=True)
            if out.stdout == "503":
                return self
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer within 120 s")


def yarnit(env: dict[str, str], name: str = "yarnit", kind: type[Server] = Server) -> Server:
    port = free_port()
    return kind(name, uvicorn_cmd(PY, "yarnit_app:app", port, PEERS, factory=True, http=YARNIT_HTTP), env, port,
                "/v1/models/ctr:predict")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    home = make_yarnit_model(make_data()["frame"])
    lua = WORK / "single.lua"
    write_lua(lua, WORK / "single.txt")
    base = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    env = base | {"YARNIT_HOME": str(home), "PYTHONPATH": str(ROOT / "src"), "BENCH_MAX_IN_FLIGHT": "",
                  "BENCH_MAX_CONN_PER_CLIENT": "4096"}
    reps: list[dict[str, Any]] = []
    for rep in range(args.reps):
        result: dict[str, Any] = {"load_before": os.getloadavg()}
        with yarnit(env) as server:
            closed(server.port, server.path, lua, 1, 16)  # warm-up
            # The peak: the better of 16 and 64 closed-loop connections (on a shared machine one of them can
            # leave the server idle while the client waits for its core).
            result["peak_by_connections"] = {c: closed(server.port, server.path, lua, args.duration, c)["answered_rps"]
                                             for c in (16, 64)}
            peak = result["peak_rps"] = max(result["peak_by_connections"].values())
            for connections in (256, 1024):
                result[f"closed_c{connections}"] = closed(server.port, server.path, lua, args.duration, connections)
                time.sleep(1)
            for factor in (2, 10):
                result[f"open_{factor}x"] = open_loop(server.port, server.path, factor * peak, args.duration, peak)
                time.sleep(1)
        # The previous policy, for comparison in the same run: max_in_flight 64, a 5 ms queue-delay target and
        # FIFO slices of a fixed 0.1 ms (the admission-after-body and prediction-log changes stay).
        with yarnit(env | {"BENCH_MAX_IN_FLIGHT": "64", "BENCH_MAX_QUEUE_DELAY_MS": "5", "BENCH_SCORE_SHARE": "0"},
                    "yarnit-previous-policy") as previous:
            closed(previous.port, previous.path, lua, 1, 16)
            result["previous_peak_rps"] = max(
                closed(previous.port, previous.path, lua, args.duration, c)["answered_rps"] for c in (16, 64))
            result["previous_closed_c256"] = closed(previous.port, previous.path, lua, args.duration, 256)
        with yarnit(env | {"BENCH_MAX_IN_FLIGHT": "0"}, "yarnit-shed-all", _Refusing) as shedding:
            result["shed_all_c256"] = closed(shedding.port, shedding.path, lua, args.duration, 256)
        result["load_after"] = os.getloadavg()
        print(f"rep {rep + 1}: {json.dumps(result)}", flush=True)
        reps.append(result)
    report = summarize(reps, args)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serving_overload.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["summary"], indent=2))


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(reps: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    def series(fn: Any) -> dict[str, float] | None:
        values = [v for v in (fn(r) for r in reps) if v is not None]
        return _stat(values) if values else None

    summary = {
        "peak_rps": series(lambda r: r["peak_rps"]),
        "closed_c256_fraction_of_peak": series(lambda r: r["closed_c256"]["answered_rps"] / r["peak_rps"]),
        "closed_c256_refused_rps": series(lambda r: r["closed_c256"]["refused_rps"]),
        "closed_c1024_fraction_of_peak": series(lambda r: r["closed_c1024"]["answered_rps"] / r["peak_rps"]),
        "closed_c1024_refused_rps": series(lambda r: r["closed_c1024"]["refused_rps"]),
        "open_2x_goodput": series(lambda r: r["open_2x"]["goodput"]),
        "open_2x_admitted_p99_ms": series(lambda r: r["open_2x"]["admitted_p99_ms"]),
        "open_2x_503_p99_ms": series(lambda r: r["open_2x"]["shed_p99_ms"]),
        "open_10x_goodput": series(lambda r: r["open_10x"]["goodput"]),
        "open_10x_admitted_p99_ms": series(lambda r: r["open_10x"]["admitted_p99_ms"]),
        "open_10x_503_p99_ms": series(lambda r: r["open_10x"]["shed_p99_ms"]),
        "previous_policy_c256_fraction_of_peak": series(
            lambda r: r["previous_closed_c256"]["answered_rps"] / r["previous_peak_rps"]),
        "previous_policy_c256_refused_rps": series(lambda r: r["previous_closed_c256"]["refused_rps"]),
        "refusals_per_s": series(lambda r: r["shed_all_c256"]["refused_rps"]),
        "refusal_cost_us": series(lambda r: 1e6 / r["shed_all_c256"]["refused_rps"]),
        "answer_cost_us": series(lambda r: 1e6 / r["peak_rps"]),
    }
    return {"command": f"python benchmarks/bench_serving_overload.py --reps {args.reps} --duration {args.duration}",
            "targets": TARGETS, "summary": summary, "reps": reps}


if __name__ == "__main__":
    main()
