"""What one data-plane request costs in yarnit's own code, without the socket (in-process).

Two drivers, as in the server:

* the HTTP fast lane (``DataPlaneProtocol``, what ``yarnit serve`` runs): raw request bytes are fed to
  ``data_received`` of eight protocol instances in turn, one request per loop turn, answers written to
  an in-memory transport. The figure includes httptools' parsing and uvicorn's protocol code, not
  the kernel's socket work;
* the ASGI handler (``asgi_entry``) with pre-built scopes, which excludes uvicorn and httptools too.

For each: an admitted single-row request (v1; for ASGI also the same row as OIP v2 tensors) and a
request shed by admission control (503), with metrics on (and, for ASGI, off). Uses the serving
benchmark's workspace (run ``benchmarks/bench_serving.py`` first) and its single-row bodies.

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

    async def fast_lane(shed: bool, n: int) -> tuple[tuple[float, float], int]:
        """Per-request cost through DataPlaneProtocol (see the module docstring)."""
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        from yarnit.api.fastlane import DataPlaneProtocol

        config = Config(entry, http=DataPlaneProtocol, log_level="warning")
        config.load()
        state = ServerState()
        sinks = [_Sink() for _ in range(8)]
        protocols = []
        for sink in sinks:
            protocol = DataPlaneProtocol(config, state, {})
            protocol.connection_made(sink)  # type: ignore[arg-type]
            protocols.append(protocol)
        service.admission.in_flight = 10**9 if shed else 0
        try:
            async def run(count: int) -> None:
                for i in range(count):
                    protocols[i % 8].data_received(raw[i % len(raw)])
                    await asyncio.sleep(0)  # one request per loop turn: the lane scores it on the spot

            await run(400)
            assert service.log.flush()
            started, started_cpu = time.perf_counter(), time.process_time()
            await run(n)
            assert service.log.flush()
            cost = ((time.perf_counter() - started) / n * 1e6, (time.process_time() - started_cpu) / n * 1e6)
        finally:
            service.admission.in_flight = 0
            for protocol in protocols:
                protocol.connection_lost(None)
        return cost, int(sinks[0].last[9:12])

    raw = [b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(b), b)
           for b in (line.strip() for line in (WORK / "single.txt").read_bytes().splitlines()) if b]

    scenarios = [(protocol, shed, metrics_on) for protocol in ("v1", "v2") for shed in (False, True)
                 for metrics_on in (True, False) if protocol == "v1" or not shed]
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.reps):
        for shed in (False, True):
            (wall, cpu), status = asyncio.run(fast_lane(shed, args.n))
            assert status == (503 if shed else 200), status
            label = f"fast lane: {'shed 503' if shed else 'admitted 200'}, metrics on"
            results.setdefault(label, {"wall": [], "cpu": []})
            results[label]["wall"].append(wall)
            results[label]["cpu"].append(cpu)
        for protocol, shed, metrics_on in scenarios:
            (wall, cpu), status = asyncio.run(scenario(protocol, shed, metrics_on))
            assert status == (503 if shed else 200), status
            label = (f"ASGI: {'shed 503' if shed else 'admitted 200'}, metrics {'on' if metrics_on else 'off'}"
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
    print(f"{'':44s} {'wall µs, median (min–max)':>28s}   {'CPU µs, median (min–max)':>28s}")
    for label, wall in report["us_per_request"].items():
        cpu = report["cpu_us_per_request"][label]
        print(f"{label:44s} {wall['median']:7.1f} ({wall['min']:6.1f}–{wall['max']:6.1f})      "
              f"{cpu['median']:7.1f} ({cpu['min']:6.1f}–{cpu['max']:6.1f})")


class _Sink:
    """Stands in for the socket's transport: keeps the last answer written, counts nothing else."""

    def __init__(self) -> None:
        self.last = b""

    def write(self, data: bytes) -> None:
        self.last = data

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


if __name__ == "__main__":
    main()
