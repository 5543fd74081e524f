"""What one monitor pass costs on a real month: replay hourly passes on a copy of a workspace.

    python benchmarks/bench_monitor_pass.py [--home DEMO_OUT/faulted/home] [--passes 10] [--build-days 10]

Copies the workspace (the replay writes alerts and state), opens it on a simulated clock one minute after
its last monitor pass, runs one pass to warm the monitor (a fresh monitor reads its checkpoints), then
``--passes`` passes an hour apart, and prints each pass's real and CPU milliseconds and their medians.
Without ``--home`` it uses the last ``yarnit demo``'s faulted month, and when there is none (a fresh clone's
``make bench``) it first simulates a faulted month of its own: ``--build-days`` days of the operate demo
(seed 0) with the demo's faults that fit in them, the same code ``yarnit demo`` runs. Writes
``benchmarks/results/monitor_pass.json`` (``--out``). No peer runs the same SLOs over the same log, so this
is a yarnit-only figure (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
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

HERE = Path(__file__).resolve().parent


def build_month(out: Path, days: int) -> Path:
    """Simulate a faulted operate-demo month of ``days`` days under ``out``; its workspace home."""
    from yarnit.demo.operate import DEMO_FAULTS, OperateConfig, simulate
    from yarnit.world.faults import parse_fault

    # a fault fits when its first day leaves a day after it to be seen (OperateConfig's own rule)
    faults = tuple(f for f in DEMO_FAULTS if parse_fault(f[0]).day < days - 1)
    simulate(str(out), OperateConfig(days=days, seed=0, faults=faults), True)
    return out / "home"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None,
                        help="a workspace the monitor has run on (default: the last `yarnit demo`'s faulted month)")
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--build-days", type=int, default=10,
                        help="days of the month simulated when there is no demo workspace")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "monitor_pass.json")
    args = parser.parse_args()
    built = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.home is None:
            args.home = load_settings().home / "demo" / "faulted" / "home"
            if not args.home.is_dir():
                print(f"no operate demo at {args.home}: simulating a {args.build_days}-day faulted month first",
                      flush=True)
                t = time.perf_counter()
                args.home = build_month(Path(tmp) / "month", args.build_days)
                built = {"days": args.build_days, "seed": 0, "wall_s": round(time.perf_counter() - t, 1)}
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
    result = {"command": "python benchmarks/bench_monitor_pass.py"
                         + (f" --home {args.home}" if built is None else f" --build-days {args.build_days}"),
              "workspace": "a month this run simulated" if built else str(args.home), "built": built,
              "passes": args.passes, "real_ms": [round(x, 1) for x in real],
              "cpu_ms": [round(x, 1) for x in cpu], "median_real_ms": round(statistics.median(real), 1),
              "median_cpu_ms": round(statistics.median(cpu), 1), "load_average_at_end": list(os.getloadavg())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
