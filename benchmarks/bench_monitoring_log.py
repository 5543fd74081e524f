"""Benchmark: incremental summaries of a 10,000,000-row prediction log (yarnit.monitoring.traffic).

What is measured, each step in its own child process (peak RSS from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in the child):

1. **full**: the first ``update`` over the whole log (no checkpoint): time,
   bytes, records, rows, peak RSS (target ≤ 1 GiB);
2. **noop**: a rerun with nothing new (reads no segment bytes);
3. **append**: new segments holding ``--append-share`` of the rows are
   written, then a rerun: its time against the full run's, next to the byte
   share it had to read (incremental means the two ratios agree);
4. **drift**: ``drift_report`` over 1 day of the summaries (stored summaries only).

The peer is the full re-read (what a monitor without a checkpoint pays on every
run): the append rerun is reported as a ratio of it, measured in the same run.

The log is written in the writer's real format (``<crc32 hex> <json>\\n``
lines, as ``PredictionLog._encode`` makes them, segments of at most 64 MiB like
the writer's default), records of ``--rows-per-request`` rows each with 4
features (price, qty, country, device) and a keyed-hash ``user_id`` (skipped
as personal data), one prediction per row, spread over 10 days; the appended rows fall in the 5 hours after them.

Usage::

    python benchmarks/bench_monitoring_log.py [--rows 10000000] [--rows-per-request 5]

Writes ``benchmarks/results/monitoring_log.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "monitoring_log"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
SPAN_S = 10 * 86400
SEGMENT_BYTES = 64 << 20
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "SE", "PL", "JP", "CA", "AU"]
DEVICES = ["mobile", "desktop", "tablet"]


def generate(directory: Path, rows: int, per_request: int, run: str, first_request: int, seed: int, *,
             start: datetime = START, span_s: int = SPAN_S) -> dict[str, Any]:
    """Write ``rows`` rows as prediction-log segments ``seg-<run>-<n>.log``; the bytes and records written."""
    import numpy as np
    import orjson

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    requests = rows // per_request
    chunk = 50_000
    segment, size, handle, written = 0, 0, None, 0
    started = time.perf_counter()
    for lo in range(0, requests, chunk):
        n = min(chunk, requests - lo)
        m = n * per_request
        prices = np.round(rng.lognormal(3.0, 0.6, m), 2).tolist()
        qty = rng.integers(1, 20, m).tolist()
        country = rng.integers(0, len(COUNTRIES), m).tolist()
        device = rng.integers(0, len(DEVICES), m).tolist()
        users = rng.integers(0, 1 << 40, m).tolist()
        preds = np.round(rng.random(m), 6).tolist()
        times = np.sort(rng.integers(0, span_s, n)).tolist()
        lines = []
        for i in range(n):
            base = i * per_request
            rid = first_request + lo + i
            instances = [{"price": prices[base + j], "qty": qty[base + j], "country": COUNTRIES[country[base + j]],
                          "device": DEVICES[device[base + j]], "user_id": f"hmac-sha256:{users[base + j]:032x}"}
                         for j in range(per_request)]
            record = {"request_id": f"req-{rid}", "time": (start + timedelta(seconds=times[i])).isoformat(),
                      "role": "primary", "protocol": "v1", "model": "ctr", "status": 200,
                      "latency_ms": 3.2, "key": None, "version": 1 + (rid % 10 == 0), "alias": "production",
                      "served_by": "model", "reason": None, "predictions": preds[base:base + per_request],
                      "feature_defaults": None, "instances": instances, "seq": rid}
            payload = orjson.dumps(record)
            lines.append(b"%08x %s\n" % (zlib.crc32(payload), payload))
        data = b"".join(lines)
        if handle is None or size + len(data) > SEGMENT_BYTES:
            if handle is not None:
                handle.close()
            segment += 1
            handle = open(directory / f"seg-{run}-{segment:06d}.log", "wb")  # noqa: SIM115
            size = 0
        handle.write(data)
        size += len(data)
        written += len(data)
    if handle is not None:
        handle.close()
    return {"rows": requests * per_request, "records": requests, "bytes": written, "segments": segment,
            "seconds": time.perf_counter() - started}


CHILD = r"""
import json, resource, sys, time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from pathlib import Path
from yarnit.core.clock import SimulatedClock
from yarnit.monitoring import traffic
home, step = Path(sys.argv[1]), sys.argv[2]
clock = SimulatedClock(datetime(2026, 3, 11, 6, tzinfo=timezone.utc))
ws = SimpleNamespace(home=home, clock=clock, settings=SimpleNamespace(dask_scheduler=None))
t0 = time.perf_counter()
if step == "drift":
    out = traffic.drift_report(ws, "ctr", window="1d", reference_window="1d", clock=clock)
    out = {"state": out["state"], "columns": len(out["columns"]), "requests": out["window"]["requests"]}
else:
    out = traffic.update(ws, clock=clock)
seconds = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_bytes": usage.ru_maxrss * 1024, "report": out}))
"""


def child(home: Path, step: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", CHILD, str(home), step], env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SUMMARIZER = r"""
import sys
from datetime import datetime, timezone
from types import SimpleNamespace
from pathlib import Path
from yarnit.core.clock import SimulatedClock
from yarnit.monitoring import traffic
clock = SimulatedClock(datetime(2026, 3, 11, 6, tzinfo=timezone.utc))
ws = SimpleNamespace(home=Path(sys.argv[1]), clock=clock, settings=SimpleNamespace(dask_scheduler=None))
print(traffic.update(ws, clock=clock)["records"])
"""


def serving_p99(reps: int, duration: int) -> dict[str, Any]:
    """Single-row p99 of ``yarnit serve`` (core 0, wrk on core 1) alone and with the summarizer on core 0.

    Interleaved per repetition: alone, beside the summarizer, beside the summarizer under ``nice 19``. The
    summarizer reads a 1,000,000-row log from scratch each time (longer than the wrk run) and is killed
    (SIGKILL, our own child) when wrk ends: a kill -9 mid-update, which the next run must survive.
    """
    sys.path.insert(0, str(HERE))
    import bench_serving as bs

    bs.ensure_wrk()
    bs.WORK.mkdir(parents=True, exist_ok=True)
    data = bs.make_data()
    home = bs.make_yarnit_model(data["frame"])
    lua = bs.WORK / "single.lua"
    bs.write_lua(lua, bs.WORK / "single.txt")
    side = WORK / "side-home"
    generate(side / "prediction_log", 1_000_000, 5, "plog-s", 0, 3)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    env = base_env | {"YARNIT_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    runs: list[dict[str, Any]] = []
    server = bs.Server("yarnit", bs.uvicorn_cmd(sys.executable, "yarnit_app:app", port := bs.free_port(), bs.PEERS,
                                                factory=True, http=bs.YARNIT_HTTP),
                       env, port, "/v1/models/ctr:predict")
    with server:
        bs.wrk(port, server.path, lua, 1)  # warm-up
        for rep in range(reps):
            row: dict[str, Any] = {}
            for mode in ("alone", "beside", "beside_nice19"):
                proc = None
                if mode != "alone":
                    shutil.rmtree(side / "monitoring", ignore_errors=True)
                    cmd = ["taskset", "-c", "0", *(["nice", "-n", "19"] if mode == "beside_nice19" else []),
                           sys.executable, "-c", SUMMARIZER, str(side)]
                    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)  # let it get past its imports and into the log
                row[mode] = bs.wrk(port, server.path, lua, duration)
                if proc is not None:
                    row[mode]["summarizer_still_running"] = proc.poll() is None
                    proc.kill()
                    proc.wait()
            print(f"rep {rep + 1}: {json.dumps(row)}", file=sys.stderr, flush=True)
            runs.append(row)
    after = subprocess.run([sys.executable, "-c", SUMMARIZER, str(side)], env=dict(
        os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True, text=True, timeout=900, check=True)

    def med(mode: str, key: str) -> float:
        return float(sorted(r[mode][key] for r in runs)[len(runs) // 2])

    return {"reps": runs, "duration_s": duration,
            "median_p99_ms": {m: med(m, "p99_ms") for m in ("alone", "beside", "beside_nice19")},
            "median_rps": {m: med(m, "rps") for m in ("alone", "beside", "beside_nice19")},
            "p99_ratio_beside_to_alone": [r["beside"]["p99_ms"] / r["alone"]["p99_ms"] for r in runs],
            "p99_ratio_nice19_to_alone": [r["beside_nice19"]["p99_ms"] / r["alone"]["p99_ms"] for r in runs],
            "records_after_kill9_rerun": int(after.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serving", action="store_true", help="only the serving p99 part (adds it to the results)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rows-per-request", type=int, default=5)
    parser.add_argument("--append-share", type=float, default=0.02)
    parser.add_argument("--keep", action="store_true", help="keep the generated log in benchmarks/.work")
    args = parser.parse_args()
    if args.serving:
        out = HERE / "results" / "monitoring_log.json"
        result = json.loads(out.read_text()) if out.exists() else {}
        result["serving_p99_beside_summarizer"] = serving_p99(args.reps, args.duration)
        result["serving_command"] = f"python benchmarks/bench_monitoring_log.py --serving --reps {args.reps} " \
            f"--duration {args.duration}"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["serving_p99_beside_summarizer"], indent=2))
        shutil.rmtree(WORK, ignore_errors=True)
        return
    shutil.rmtree(WORK, ignore_errors=True)
    home = WORK / "home"
    log = home / "prediction_log"
    print(f"generating {args.rows:,} rows …", file=sys.stderr)
    made = generate(log, args.rows, args.rows_per_request, "plog-a", 0, 1)
    print(f"  {made}", file=sys.stderr)
    full = child(home, "full")
    print(f"full: {full['seconds']:.1f} s, peak {full['peak_rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)
    noop = child(home, "noop")
    # new traffic: the next 5 hours after the first span (what a monitor finds on its next run)
    added = generate(log, int(args.rows * args.append_share), args.rows_per_request, "plog-b", made["records"], 2,
                     start=START + timedelta(seconds=SPAN_S), span_s=5 * 3600)
    append = child(home, "append")
    print(f"append: {append['seconds']:.1f} s", file=sys.stderr)
    drift = child(home, "drift")
    full_bytes = full["report"]["bytes"]
    result = {
        "benchmark": "monitoring_log",
        "command": f"python benchmarks/bench_monitoring_log.py --rows {args.rows} --rows-per-request "
                   f"{args.rows_per_request} --append-share {args.append_share}",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "generated": made, "appended": added,
        "full": full, "noop": noop, "append": append, "drift": drift,
        "rows_per_second_full": made["rows"] / full["seconds"],
        "append_byte_share": append["report"]["bytes"] / full_bytes,
        "append_time_ratio_to_full_reread": append["seconds"] / full["seconds"],
        "append_cpu_ratio_to_full_reread": append["cpu_seconds"] / full["cpu_seconds"],
        "load_average_at_end": os.getloadavg(),
        "peak_rss_limit_bytes": 1 << 30,
        "peak_rss_ok": max(full["peak_rss_bytes"], append["peak_rss_bytes"]) <= 1 << 30,
    }
    out = HERE / "results" / "monitoring_log.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
