"""What one data-plane request costs in yarnit's own code, without the HTTP stack (in-process).

Drives the ASGI entry point (`asgi_entry`, as `yarnit serve` mounts it) with pre-built scopes, so the
figures exclude uvicorn, httptools and the socket: an admitted single-row request (v1, and the same row
as OIP v2 tensors), and a request shed by admission control (503), each with metrics on and off. Uses
the serving benchmark's workspace (run `benchmarks/bench_serving.py` first) and one of its single-row
bodies.

Two figures per request: wall time on the event loop, and CPU time of the whole process (every thread,
user and system). The prediction log is flushed before the clock stops, so the log writer's work for
these requests (its write and fdatasync) is inside the window, not left to the next scenario.

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
    row = json.loads(body)["instances"][0]
    body_v2 = json.dumps({"inputs": [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
        for k, v in row.items()]}).encode()
    requests = {protocol: ({"type": "http", "method": "POST", "path": path,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]}, payload)
                for protocol, path, payload in (("v1", "/v1/models/ctr:predict", body),
                                                ("v2", "/v2/models/ctr/infer", body_v2))}
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def per_request(protocol: str, n: int) -> tuple[float, float]:
        scope, payload = requests[protocol]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        for _ in range(200):
            await entry(scope, receive, send)
        assert service.log.flush()
        statuses.clear()
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            await entry(scope, receive, send)
        assert service.log.flush()
        return ((time.perf_counter() - started) / n * 1e6, (time.process_time() - started_cpu) / n * 1e6)

    async def scenario(protocol: str, shed: bool, metrics_on: bool) -> tuple[tuple[float, float], int]:
        metrics = entry.metrics
        entry.metrics = metrics if metrics_on else None
        service.admission.in_flight = 10**9 if shed else 0
        try:
            cost = await per_request(protocol, args.n)
        finally:
            entry.metrics = metrics
            service.admission.in_flight = 0
        return cost, statuses[-1]

    scenarios = [(protocol, shed, metrics_on) for protocol in ("v1", "v2") for shed in (False, True)
                 for metrics_on in (True, False) if protocol == "v1" or not shed]
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.reps):
        for protocol, shed, metrics_on in scenarios:
            (wall, cpu), status = asyncio.run(scenario(protocol, shed, metrics_on))
            assert status == (503 if shed else 200), status
            label = (f"{'shed 503' if shed else 'admitted 200'}, metrics {'on' if metrics_on else 'off'}"
                     + (", OIP v2" if protocol == "v2" else ""))
            results.setdefault(label, {"wall": [], "cpu": []})
            results[label]["wall"].append(wall)
            results[label]["cpu"].append(cpu)
    service.close()

    def stat(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    report = {"command": f".venv/bin/python benchmarks/bench_serving_cost.py --n {args.n} --reps {args.reps}",
              "us_per_request": {k: stat(v["wall"]) for k, v in results.items()},
              "cpu_us_per_request": {k: stat(v["cpu"]) for k, v in results.items()},
              "load_average_at_end": list(os.getloadavg())}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serving_cost.json").write_text(json.dumps(report, indent=2))
    print(f"{'':36s} {'wall µs, median (min–max)':>28s}   {'CPU µs, median (min–max)':>28s}")
    for label, wall in report["us_per_request"].items():
        cpu = report["cpu_us_per_request"][label]
        print(f"{label:36s} {wall['median']:7.1f} ({wall['min']:6.1f}–{wall['max']:6.1f})      "
              f"{cpu['median']:7.1f} ({cpu['min']:6.1f}–{cpu['max']:6.1f})")


if __name__ == "__main__":
    main()
