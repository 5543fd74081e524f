"""Benchmark: the YarnIt world, 30 days x 20,000 sessions/day, written to Parquet.

Runs the real command (``yarnit world generate``) in a child process and
measures its wall time and peak resident memory (``getrusage`` of the child),
then a second child that only simulates (no Parquet) to show where the time
goes. Targets (issue 3): <= 30 s and <= 2 GiB on 2 cores.

Usage::

    python benchmarks/bench_world.py [--days 30] [--sessions-per-day 20000] [--out benchmarks/results/world.json]

Writes the figures as JSON to ``benchmarks/results/world.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_WALL_S = 30.0
TARGET_RSS_MIB = 2048.0

GENERATE = "from yarnit.cli.world import app; app(prog_name='yarnit world')"
SIMULATE = """
import sys
from yarnit.world import World, WorldConfig
rows = 0
for day in World(WorldConfig(seed=0, sessions_per_day=int(sys.argv[2]))).run(int(sys.argv[1])):
    rows += len(day.impressions)
print(rows)
"""


def _child(argv: list[str]) -> tuple[float, float, float, str]:
    """Run argv in a fresh process; return (wall s, CPU s, peak RSS MiB of the children so far, stdout).

    CPU seconds (user + system) are less sensitive than wall time to other load on the machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, done.stdout  # Linux reports ru_maxrss in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "world.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="yarnit-bench-world-") as scratch:
        target = Path(scratch) / "world"
        command = ["generate", "--days", str(args.days), "--sessions-per-day", str(args.sessions_per_day),
                   "--seed", "0", "--out", str(target), "--json"]
        wall, cpu, rss, stdout = _child([sys.executable, "-c", GENERATE, *command])
        summary = json.loads(stdout)
        size_mib = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 2**20
    sim_wall, sim_cpu, _, sim_out = _child([sys.executable, "-c", SIMULATE, str(args.days), str(args.sessions_per_day)])
    load = os.getloadavg()[0]

    import numpy
    import pandas
    import pyarrow

    rows = summary["rows"]
    result = {
        "benchmark": "world",
        "command": f"yarnit world generate --days {args.days} --sessions-per-day {args.sessions_per_day} "
                   "--seed 0 --out DIR",
        "reproduce": "python benchmarks/bench_world.py",
        "days": args.days,
        "sessions_per_day": args.sessions_per_day,
        "generate": {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss, 1),
            "output_mib": round(size_mib, 1),
            "rows": rows,
            "impressions_per_s": round(rows["impressions"] / wall),
        },
        "simulate_only": {"wall_s": round(sim_wall, 2), "cpu_s": round(sim_cpu, 2),
                          "impressions": int(sim_out.strip())},
        "target": {"wall_s": TARGET_WALL_S, "peak_rss_mib": TARGET_RSS_MIB},
        "meets_target": wall <= TARGET_WALL_S and rss <= TARGET_RSS_MIB,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_after": round(load, 2),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__,
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
