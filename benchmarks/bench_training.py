"""Training benchmark (issue 6): the YarnIt click model on 30 days of world data.

Measures, in a fresh workspace:
  * data → registered model: the whole ``yarnit-ctr`` pipeline (world simulation, dataset version,
    validation, features, training, evaluation, gate, registration), wall time and peak RSS;
  * a cached rerun of the unchanged pipeline (target ≤ 2 s);
  * training throughput (rows/s of the train step) per trainer on the same dataset.

Each measurement runs in its own process (``yarnit pipeline run``) so that peak RSS is per run.
Usage: .venv/bin/python benchmarks/bench_training.py [--days 30] [--sessions 20000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
YARNIT = [sys.executable, "-m", "yarnit"]


def run(home: Path, *args: str) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and the --json result of one `yarnit` command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *YARNIT, *args, "--json"], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"yarnit {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    return wall, rss_kb / 1024, json.loads(proc.stdout)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


#: per trainer, a parameter (and its default) that a millionth more or less leaves the work the same
CACHE_BUSTER = {"logistic": ("tol", 1e-4), "lightgbm": ("learning_rate", 0.1), "hist_gbm": ("learning_rate", 0.1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--trainers", default="logistic,lightgbm")
    args = parser.parse_args()
    work = ROOT / "benchmarks" / ".work" / "training"
    config = ["--set", f"days={args.days}", "--set", f"sessions_per_day={args.sessions}"]
    end_to_end, rss, cached, steps = [], [], [], []
    for rep in range(args.reps):
        shutil.rmtree(work, ignore_errors=True)
        wall, peak, result = run(work, "pipeline", "run", "yarnit-ctr", *config)
        end_to_end.append(wall)
        rss.append(peak)
        steps.append({s["step"]: s["wall_s"] for s in result["steps"]})
        wall_cached, _, again = run(work, "pipeline", "run", "yarnit-ctr", *config)
        assert all(s["state"] == "cached" for s in again["steps"] if s["step"] in ("select", "split", "train"))
        cached.append(wall_cached)
        print(f"rep {rep}: data → registered model {wall:.1f} s (peak {peak:.0f} MiB), cached rerun {wall_cached:.2f} s",
              flush=True)
    rows = result["steps"][0]["rows"]
    throughput = {}
    for trainer in args.trainers.split(","):
        values = []
        for rep in range(args.reps):
            # a train-only change of a parameter that does not change the work (a stopping tolerance or a step
            # size moved by a millionth) changes the train step's cache key, so only training reruns. (An unknown
            # key did this until pipelines refused unknown parameters.)
            name, default = CACHE_BUSTER[trainer]
            params = json.dumps({name: default * (1.0 + rep * 1e-6)})
            _, _, out = run(work, "pipeline", "run", "yarnit-ctr", *config, "--set", f"trainer={trainer}",
                            "--set", "promote=false", "--set", f"train.trainer_params={params}")
            train = next(s for s in out["steps"] if s["step"] == "train")
            values.append(train["rows_per_s"])
        throughput[trainer] = summary(values)
        print(f"{trainer}: {throughput[trainer]['median']:,.0f} rows/s in the train step", flush=True)
    results = {
        "benchmark": "training", "days": args.days, "sessions_per_day": args.sessions, "rows": rows,
        "reps": args.reps, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data_to_registered_model_s": summary(end_to_end), "peak_rss_mib": summary(rss),
        "cached_rerun_s": summary(cached), "steps_s": steps, "train_rows_per_s": throughput,
        "command": f".venv/bin/python benchmarks/bench_training.py --days {args.days} --sessions {args.sessions} "
                   f"--reps {args.reps}",
    }
    out = ROOT / "benchmarks" / "results" / "training.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
