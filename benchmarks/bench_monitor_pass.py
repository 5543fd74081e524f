"""What one monitor pass costs on a real month: replay hourly passes on a copy of a workspace.

    python benchmarks/bench_monitor_pass.py --home DEMO_OUT/faulted/home --passes 10

Copies the workspace (the replay writes alerts and state), opens it on a simulated clock one minute after
its last monitor pass, runs one pass to warm the monitor (a fresh monitor reads its checkpoints), then
``--passes`` passes an hour apart, and prints each pass's real and CPU milliseconds and their medians.
No peer runs the same SLOs over the same log, so this is a yarnit-only figure (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings, load_settings
from yarnit.monitoring.runner import Monitor, read_state
from yarnit.monitoring.slo import load_slo_file
from yarnit.storage import open_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None,
                        help="a workspace the monitor has run on (default: the last `yarnit demo`'s faulted month)")
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    if args.home is None:
        args.home = load_settings().home / "demo" / "faulted" / "home"
        if not args.home.is_dir():
            print(f"skipped: no operate demo at {args.home}; run `yarnit demo` first, or pass --home")
            return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.home, home)
        state = read_state(home)
        if state is None:
            raise SystemExit(f"{args.home} has no monitor state: run the monitor (or the demo) on it first")
        clock = SimulatedClock(datetime.fromisoformat(state["at"]) + timedelta(minutes=1))
        ws = open_workspace(Settings.for_home(home), clock)
        try:
            monitor = Monitor(ws, load_slo_file(home / "slos.yaml"))
            monitor.run_once()
            real, cpu = [], []
            for _ in range(args.passes):
                clock.advance(3600)
                t, c = time.perf_counter(), time.process_time()
                monitor.run_once()
                real.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
        finally:
            ws.close()
    print(json.dumps({"passes": args.passes, "real_ms": [round(x, 1) for x in real],
                      "cpu_ms": [round(x, 1) for x in cpu], "median_real_ms": round(statistics.median(real), 1),
                      "median_cpu_ms": round(statistics.median(cpu), 1)}, indent=1))


if __name__ == "__main__":
    main()
