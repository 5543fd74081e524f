"""What one data-plane request costs in yarnit's own code, without the HTTP stack (in-process).

Drives the ASGI entry point (`asgi_entry`, as `yarnit serve` mounts it) with pre-built scopes, so the
figures exclude uvicorn, httptools and the socket: an admitted single-row request, and a request shed
by admission control (503), each with metrics on and off. Uses the serving benchmark's workspace
(run `benchmarks/bench_serving.py` first) and one of its single-row bodies.

Usage: .venv/bin/python benchmarks/bench_serving_cost.py [--n 5000] [--reps 3]
Writes benchmarks/results/serving_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "serving"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not (WORK / "home").exists():
        raise SystemExit("Run benchmarks/bench_serving.py first: it builds the workspace this script scores with.")
    os.environ["YARNIT_HOME"] = str(WORK / "home")
    from yarnit.api import create_app
    from yarnit.api.dataplane import asgi_entry
    from yarnit.api.server import prepare_for_traffic
    from yarnit.core import load_settings
    from yarnit.serving import ServingOptions
    from yarnit.storage import open_workspace

    app = create_app(open_workspace(load_settings()), serving=ServingOptions(cache_entries=0, max_in_flight=32))
    prepare_for_traffic(app)
    service = app.state.serving
    entry = asgi_entry(app)
    body = (WORK / "single.txt").read_bytes().splitlines()[0].strip()
    scope = {"type": "http", "method": "POST", "path": "/v1/models/ctr:predict",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def per_request(n: int) -> float:
        for _ in range(200):
            await entry(scope, receive, send)
        statuses.clear()
        started = time.perf_counter()
        for _ in range(n):
            await entry(scope, receive, send)
        return (time.perf_counter() - started) / n * 1e6

    async def scenario(shed: bool, metrics_on: bool) -> tuple[float, int]:
        metrics = entry.metrics
        entry.metrics = metrics if metrics_on else None
        service.admission.in_flight = 10**9 if shed else 0
        try:
            cost = await per_request(args.n)
        finally:
            entry.metrics = metrics
            service.admission.in_flight = 0
        return cost, statuses[-1]

    results: dict[str, list[float]] = {}
    for _ in range(args.reps):
        for shed in (False, True):
            for metrics_on in (True, False):
                cost, status = asyncio.run(scenario(shed, metrics_on))
                assert status == (503 if shed else 200), status
                label = f"{'shed 503' if shed else 'admitted 200'}, metrics {'on' if metrics_on else 'off'}"
                results.setdefault(label, []).append(cost)
    service.close()
    report = {"command": f".venv/bin/python benchmarks/bench_serving_cost.py --n {args.n} --reps {args.reps}",
              "us_per_request": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                                 for k, v in results.items()},
              "load_average_at_end": list(os.getloadavg())}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serving_cost.json").write_text(json.dumps(report, indent=2))
    for label, row in report["us_per_request"].items():
        print(f"{label:28s} {row['median']:7.1f} µs ({row['min']:.1f}–{row['max']:.1f})")


if __name__ == "__main__":
    main()
