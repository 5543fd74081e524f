"""Soak: yarnit's data plane at about its sustainable load for ``--minutes``, sampling the server's memory.

The issue asks for "memory flat over a 10-minute soak". This drives the same
server as ``bench_serving.py`` (``yarnit serve`` settings: prediction log
fsynced, metrics on, prediction cache on so that its bound is exercised too)
with single-row bodies like its own, 20,000 distinct ones (twice what the
prediction cache holds):

1. the server runs alone on core 0 (``taskset -c 0``); wrk on core 1 measures
   its closed-loop single-row throughput at concurrency 8 for 5 s: the
   *sustainable* rate on this machine, in this run;
2. the open-loop generator (``loadgen/openloop.c``, core 1) then offers
   ``--load`` × that rate (default 1.0) for ``--minutes`` (default 10);
3. every ``--sample-s`` seconds (default 10) the server's RSS is read with
   psutil (the process and its children), and ``/metrics`` is scraped for
   the prediction-log queue depth and drops and the number of exported
   series (label growth shows there first).

Reported: RSS at start (first sample after the warm-up), end and max, and the
least-squares slope in MiB per minute over the whole soak and over its second
half (allocator warm-up shows in the first minutes; a leak keeps growing).
"Flat" means the second-half slope is within ``--flat-mib-per-min``
(default 0.1 MiB/min, i.e. < 6 MiB per hour).

Usage::

    python benchmarks/bench_serving_soak.py [--minutes 10] [--load 1.0] [--rate R]

Writes ``benchmarks/results/serving_soak.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving  # noqa: E402  (a script beside this one)
import loadgen  # noqa: E402
from bench_serving import (  # noqa: E402
    CATEGORICAL,
    HERE,
    NUMERIC,
    PEERS,
    PY,
    YARNIT_HTTP,
    ROOT,
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


def scrape(port: int) -> dict[str, float]:
    """A few gauges from /metrics: prediction-log queue and drops, and the number of series."""
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
    """Least-squares slope of (minutes, MiB)."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=1.0, help="offered rate as a multiple of the sustainable one")
    parser.add_argument("--rate", type=float, default=None, help="offered req/s (skips the wrk measurement)")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=20.0, help="load before the first counted sample")
    parser.add_argument("--flat-mib-per-min", type=float, default=0.1)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    ensure_wrk()
    data = make_data()
    home = make_yarnit_model(data["frame"])
    # 20,000 distinct single-row bodies: more than the prediction cache holds (10,000), so its bound is exercised.
    bodies = WORK / "soak_single.txt"
    records = data["frame"][CATEGORICAL + NUMERIC].to_dict("records")
    bodies.write_text("\n".join(json.dumps({"instances": [r]}) for r in records) + "\n")
    single_lua = WORK / "soak_single.lua"
    write_lua(single_lua, bodies)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {
        "YARNIT_HOME": str(home), "PYTHONPATH": str(ROOT / "src"), "BENCH_CACHE": "1"}
    port = free_port()
    server = Server("yarnit-soak", uvicorn_cmd(PY, "yarnit_app:app", port, PEERS, factory=True, http=YARNIT_HTTP), env, port,
                    "/v1/models/ctr:predict")
    samples: list[dict[str, Any]] = []
    with server:
        assert server.proc is not None
        pid = server.proc.pid
        wrk(port, server.path, single_lua, 2)  # warm-up
        sustainable = None
        if args.rate is None:
            sustainable = wrk(port, server.path, single_lua, 5)
            rate = args.load * sustainable["rps"]
        else:
            rate = args.rate
        duration_s = args.minutes * 60 + args.warmup_s
        print(f"soak: {rate:.0f} req/s offered for {duration_s:.0f} s "
              f"(sustainable {sustainable['rps'] if sustainable else 'not measured'})", flush=True)
        load = subprocess.Popen(["taskset", "-c", "1", str(loadgen.build()), "127.0.0.1", str(port),
                                 server.path, str(rate), str(duration_s), str(bodies),
                                 str(args.connections)], stdout=subprocess.PIPE, text=True)
        out: dict[str, str] = {}
        reader = threading.Thread(target=lambda: out.setdefault("stdout", load.communicate()[0]), daemon=True)
        reader.start()
        started = time.monotonic()
        before = rss_mib(pid)
        next_at = started + args.warmup_s
        while load.poll() is None:
            now = time.monotonic()
            if now >= next_at:
                samples.append({"t_s": round(now - started, 1), "rss_mib": round(rss_mib(pid), 2), **scrape(port)})
                print(f"  {samples[-1]}", flush=True)
                next_at += args.sample_s
            time.sleep(0.2)
        reader.join(timeout=60)
        after = rss_mib(pid)
    generated = json.loads(out.get("stdout") or "{}")
    counted = [s for s in samples if s["t_s"] >= args.warmup_s]
    points = [((s["t_s"] - args.warmup_s) / 60, s["rss_mib"]) for s in counted]
    half = [p for p in points if p[0] >= args.minutes / 2]
    rss = [p[1] for p in points]
    report = {
        "command": "python benchmarks/bench_serving_soak.py " + " ".join(sys.argv[1:]),
        "versions": {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "onnxruntime": version_of(PY, "onnxruntime"), "uvicorn": version_of(PY, "uvicorn")},
        "setup": "yarnit server (yarnit_app:app: prediction log fsynced, metrics on, prediction cache on, "
                 "max_in_flight 32, HTTP fast lane) on core 0; open-loop loadgen/openloop.c on core 1; single-row bodies",
        "sustainable": sustainable, "offered_rps": rate, "minutes": args.minutes, "warmup_s": args.warmup_s,
        "rss_mib": {"before_load": round(before, 2), "start": rss[0] if rss else None,
                    "end": rss[-1] if rss else None, "max": max(rss) if rss else None,
                    "after_load": round(after, 2)},
        "slope_mib_per_min": {"whole": slope(points), "second_half": slope(half)},
        "flat_criterion_mib_per_min": args.flat_mib_per_min,
        "loadgen": generated,
        "samples": samples,
        "load_average_at_end": os.getloadavg(),
    }
    second = report["slope_mib_per_min"]["second_half"]
    report["flat"] = second is not None and abs(second) <= args.flat_mib_per_min
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serving_soak.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("offered_rps", "rss_mib", "slope_mib_per_min", "flat")}, indent=2))


if __name__ == "__main__":
    main()
