"""Benchmark: drift of 20 numeric columns, 100,000 reference vs 100,000 current rows, yarnit vs Evidently.

What is measured, each system in its own child process, interleaved per repetition (yarnit, Evidently,
yarnit, Evidently …):

* yarnit: ``yarnit.monitoring.drift.dataset_drift(reference, current)`` on two pandas DataFrames, as a
  user calls it (default rule: KS p-value < 0.05 and normed Wasserstein >= 0.1 per column);
* Evidently 0.7.23: ``Report([DataDriftPreset()]).run(current_data=…, reference_data=…)`` on the same two
  DataFrames (its default for numeric columns above 1,000 rows: normed Wasserstein >= 0.1), in its own
  virtual environment ``benchmarks/.venvs/evidently`` (``pandas<3``: Evidently does not import with pandas 3).

Both read the same two Parquet files (written once) with ``pandas.read_parquet``; the read is timed
apart and **excluded** from the drift time of both. Each child first runs the call once on 2,000 rows
(imports and lazy initialisation out of the timed call), then times ``--calls`` full calls with
``time.perf_counter`` (and the process's CPU time, ``time.process_time``, less sensitive to the other
work on a shared machine). Reported: median and min–max over the repetitions (each repetition's figure is the
median of its calls), the Evidently/yarnit ratio per repetition, and whether both flag the same columns.

The data: 15 columns without change (normal, log-normal, exponential, uniform, Poisson counts,
Student t with 3 degrees of freedom, two with 1 % nulls) and 5 changed: a 0.5 σ mean shift, a 1.5×
scale change, a log-normal shift, a 0.15 σ shift (real but moderate: its KS statistic falls in the
band where scipy's exact p-value is slow) and a 0.05 σ shift (statistically real at this size, too small
to matter: neither system should flag it).

Usage::

    python benchmarks/bench_monitoring_drift.py [--rows 100000] [--reps 3] [--calls 3]

Writes ``benchmarks/results/monitoring_drift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "monitoring_drift"
VENVS = HERE / ".venvs"
PEER = "evidently"
PEER_PACKAGES = ["evidently==0.7.23", "pandas<3", "pyarrow"]
INSTALL_TIMEOUT_S = 1200
SHIFTED = {"c15": "mean +0.5 sd", "c16": "scale x1.5", "c17": "log-normal, log mean +0.3",
           "c18": "mean +0.05 sd (too small to matter)", "c19": "mean +0.15 sd"}

MAKE_DATA = r"""
import sys
import numpy as np
import pandas as pd
rows, ref_path, cur_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(17)

def columns(shifted):
    g = rng
    out = {}
    for i in range(5):
        out[f"c{i:02d}"] = g.normal(0, 1, rows)
    out["c05"] = g.lognormal(0, 1, rows)
    out["c06"] = g.exponential(2, rows)
    out["c07"] = g.uniform(0, 100, rows)
    out["c08"] = g.poisson(30, rows).astype(float)
    out["c09"] = g.standard_t(3, rows)
    out["c10"] = 25 + 5 * g.normal(0, 1, rows)
    out["c11"] = g.gamma(2, 3, rows)
    out["c12"] = g.normal(100, 15, rows)
    out["c13"] = g.lognormal(2, 0.5, rows)
    out["c14"] = g.beta(2, 5, rows)
    for name in ("c03", "c12"):  # 1 % nulls
        out[name][g.random(rows) < 0.01] = np.nan
    out["c15"] = g.normal(0.5 if shifted else 0, 1, rows)
    out["c16"] = g.normal(0, 1.5 if shifted else 1, rows)
    out["c17"] = g.lognormal(0.3 if shifted else 0, 1, rows)
    out["c18"] = g.normal(0.05 if shifted else 0, 1, rows)
    out["c19"] = g.normal(0.15 if shifted else 0, 1, rows)
    return pd.DataFrame({k: out[k] for k in sorted(out)})

columns(False).to_parquet(ref_path, index=False)
columns(True).to_parquet(cur_path, index=False)
"""

YARNIT_CHILD = r"""
import json, sys, time
import pandas as pd
t = time.perf_counter()
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
read_s = time.perf_counter() - t
calls = int(sys.argv[3])
from yarnit.monitoring.drift import dataset_drift
dataset_drift(reference.head(2000), current.head(2000))  # warm-up: imports, lazy initialisation
times, cpu = [], []
for _ in range(calls):
    t, c = time.perf_counter(), time.process_time()
    result = dataset_drift(reference, current)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
import yarnit
print(json.dumps({"times_s": times, "cpu_s": cpu, "read_s": read_s, "drifted": sorted(result.drifted_columns),
                  "dataset_drift": result.state.value, "version": getattr(yarnit, "__version__", "dev"),
                  "values": {c.column: c.value for c in result.columns},
                  "p_values": {c.column: c.p_value for c in result.columns}}))
"""

EVIDENTLY_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
t = time.perf_counter()
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
read_s = time.perf_counter() - t
calls = int(sys.argv[3])
import evidently
from evidently import Report
from evidently.presets import DataDriftPreset
Report([DataDriftPreset()]).run(current_data=current.head(2000), reference_data=reference.head(2000))  # warm-up
times, cpu = [], []
for _ in range(calls):
    t, c = time.perf_counter(), time.process_time()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
values, methods, count = {}, {}, None
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config["type"].endswith("ValueDrift"):
        values[config["column"]] = float(metric["value"])
        methods[config["column"]] = (config["method"], config["threshold"])
    elif config["type"].endswith("DriftedColumnsCount"):
        count = metric["value"]
# Evidently's rule for distance methods: drift when the score reaches the threshold (p-value methods: below).
drifted = sorted(c for c, v in values.items()
                 if (v < methods[c][1] if "p_value" in methods[c][0].lower() or "test" in methods[c][0].lower()
                     else v >= methods[c][1]))
print(json.dumps({"times_s": times, "cpu_s": cpu, "read_s": read_s, "drifted": drifted, "drifted_columns_count": count,
                  "version": evidently.__version__, "pandas": pd.__version__, "values": values,
                  "methods": sorted({m for m, _ in methods.values()})}))
"""


def ensure_venv() -> dict[str, Any]:
    """Create benchmarks/.venvs/evidently with Evidently installed (once); report how it went."""
    venv = VENVS / PEER
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    if marker.exists() or (python.exists() and subprocess.run(
            [str(python), "-c", "import evidently, pyarrow"], capture_output=True).returncode == 0):
        marker.write_text("ok\n")
        return {"python": str(python), "installed": True, "install_s": None, "note": "reused"}
    started = time.perf_counter()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True,
                       timeout=INSTALL_TIMEOUT_S, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {"python": str(python), "installed": False, "install_s": time.perf_counter() - started,
                "note": f"pip install did not finish within {INSTALL_TIMEOUT_S} s"}
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "")[-500:] if isinstance(exc.stderr, str) else ""
        return {"python": str(python), "installed": False, "install_s": time.perf_counter() - started,
                "note": f"install failed: {tail}"}
    marker.write_text("ok\n")
    return {"python": str(python), "installed": True, "install_s": time.perf_counter() - started, "note": "created"}


def make_data(rows: int) -> tuple[Path, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    ref, cur = WORK / f"reference-{rows}.parquet", WORK / f"current-{rows}.parquet"
    if not (ref.exists() and cur.exists()):
        subprocess.run([sys.executable, "-c", MAKE_DATA, str(rows), str(ref), str(cur)], check=True)
    return ref, cur


def run_child(python: str, code: str, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    if python == sys.executable:
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({python}):\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3, help="Interleaved repetitions (one child per system each).")
    parser.add_argument("--calls", type=int, default=3, help="Timed calls per child (after a small warm-up).")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "monitoring_drift.json")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    ref, cur = make_data(args.rows)
    peer = ensure_venv()
    systems = [("yarnit", sys.executable, YARNIT_CHILD)]
    if peer["installed"]:
        systems.append(("evidently", peer["python"], EVIDENTLY_CHILD))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}
    for rep in range(args.reps):
        for name, python, code in systems:
            result = run_child(python, code, [str(ref), str(cur), str(args.calls)])
            runs[name].append(result)
            print(f"rep {rep} {name:10s} median {statistics.median(result['times_s']):.3f} s "
                  f"(calls {', '.join(f'{t:.3f}' for t in result['times_s'])}; read {result['read_s']:.3f} s)",
                  flush=True)

    per_rep = {name: [statistics.median(r["times_s"]) for r in rs] for name, rs in runs.items()}
    systems_out: dict[str, Any] = {}
    for name, rs in runs.items():
        last = rs[-1]
        systems_out[name] = {"seconds": median_range(per_rep[name]), "per_rep_s": per_rep[name],
                             "cpu_seconds": median_range([statistics.median(r["cpu_s"]) for r in rs]),
                             "calls_s": [r["times_s"] for r in rs], "read_s": median_range([r["read_s"] for r in rs]),
                             "version": last.get("version"), "drifted": last["drifted"],
                             "values": last["values"]}
        for key in ("methods", "pandas", "drifted_columns_count", "p_values", "dataset_drift"):
            if key in last:
                systems_out[name][key] = last[key]
    result: dict[str, Any] = {
        "benchmark": "monitoring_drift",
        "command": f"python benchmarks/bench_monitoring_drift.py --rows {args.rows} --reps {args.reps} "
                   f"--calls {args.calls}",
        "what": "dataset drift, 20 numeric columns, reference vs current DataFrames (Parquet read excluded)",
        "rows": args.rows, "columns": 20, "reps": args.reps, "calls": args.calls, "changed_columns": SHIFTED,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_1m_at_start": load_start, "load_1m_at_end": os.getloadavg()[0]},
        "peer": peer, "systems": systems_out,
    }
    if "evidently" in per_rep:
        ratios = [e / y for e, y in zip(per_rep["evidently"], per_rep["yarnit"], strict=True)]
        result["evidently_over_yarnit"] = median_range(ratios)
        same = systems_out["yarnit"]["drifted"] == systems_out["evidently"]["drifted"]
        result["same_columns_flagged"] = same
        result["flagged_only_by_yarnit"] = sorted(set(systems_out["yarnit"]["drifted"])
                                                  - set(systems_out["evidently"]["drifted"]))
        result["flagged_only_by_evidently"] = sorted(set(systems_out["evidently"]["drifted"])
                                                     - set(systems_out["yarnit"]["drifted"]))
    result["targets"] = {
        "yarnit_le_0_3_s": systems_out["yarnit"]["seconds"]["median"] <= 0.3,
        "ge_20x_faster_than_evidently": (result["evidently_over_yarnit"]["median"] >= 20
                                         if "evidently_over_yarnit" in result else None),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps({k: result.get(k) for k in ("evidently_over_yarnit", "same_columns_flagged", "targets")},
                     indent=2))


if __name__ == "__main__":
    main()
