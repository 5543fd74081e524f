"""Evaluation benchmark (issue 7): 1,000,000 predictions × 20 slices × 1,000 bootstrap resamples ≤ 10 s on 2 cores.

Measures, each repetition in its own process (peak RSS from ``/usr/bin/time -v``):

* ``binary``: :func:`yarnit.evaluation.evaluate_binary`: AUC, PR-AUC, log loss, Brier, ECE, bias, mean
  prediction, positive rate and prediction std, each with a 95% bootstrap interval (1,000 resamples), on the
  whole distribution and 20 slices (two columns × 10 values): the issue's target;
* ``report``: everything the ctr pipeline's evaluate step computes at that size: the above for the candidate,
  point estimates for a production model, paired differences against it (DeLong for AUC) on the whole and every
  slice, group fairness over one column (with intervals) and ranking metrics over 100,000 groups of 10;
* per-metric point estimates, yarnit vs scikit-learn on the same 1,000,000 rows (context: same values, speed);
* scikit-learn as a row-level bootstrap would use it: the time of one resample of AUC + PR-AUC + log loss +
  Brier on 1,000,000 rows, scaled to 1,000 resamples of the whole and its 20 slices (an estimate, labelled so).

Usage: .venv/bin/python benchmarks/bench_evaluation.py [--rows 1000000] [--reps 3] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 10.0


def data(rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(1.2 * x - 3.0)))).astype(np.int8)
    p = 1 / (1 + np.exp(-(x - 2.9 + rng.normal(scale=0.4, size=rows))))
    q = 1 / (1 + np.exp(-(0.9 * x - 2.8 + rng.normal(scale=0.5, size=rows))))
    frame = pd.DataFrame({"country": rng.integers(0, 10, rows).astype(str),
                          "device": rng.integers(0, 10, rows).astype(str)})
    return {"y": y, "p": p, "q": q, "frame": frame, "groups": np.arange(rows) // 10}


def child(kind: str, rows: int, resamples: int) -> dict[str, Any]:
    """One timed measurement, run in a fresh process."""
    import numpy as np

    d = data(rows)
    y, p, q, frame = d["y"], d["p"], d["q"], d["frame"]
    out: dict[str, Any] = {}
    if kind in ("binary", "report"):
        from yarnit.evaluation import Bootstrap, ReportBuilder, Slices, evaluate_binary, time_ordered_holdout

        boot = Bootstrap(resamples=resamples)
        started, cpu = time.perf_counter(), time.process_time()
        if kind == "binary":
            slices = Slices.from_frame(frame, ["country", "device"])
            result = evaluate_binary(y, {"candidate": p}, distribution="holdout", slices=slices, bootstrap=boot)
            out["values"] = len(result.metrics)
            out["slices"] = len(slices)
        else:
            builder = ReportBuilder("bench", {"artifact_sha256": "0" * 64}, bootstrap=boot)
            builder.add(time_ordered_holdout("d0", "d0", rows=rows), y, {"candidate": p, "production": q},
                        frame=frame.assign(session=d["groups"]), slices=["country", "device"],
                        fairness=["country"], fairness_threshold=0.2, ranking_group="session", k=5, calibration=True)
            report = builder.build()
            out["values"] = len(report.metrics)
        out["wall_s"] = time.perf_counter() - started
        out["cpu_s"] = time.process_time() - cpu
        return out
    if kind == "metrics":
        from sklearn import metrics as skm
        from sklearn.calibration import calibration_curve

        from yarnit import evaluation as ev

        ranking_y = y[: rows - rows % 10].reshape(-1, 10)[:100_000].astype(float)
        ranking_s = p[: rows - rows % 10].reshape(-1, 10)[:100_000]
        ranking_g = d["groups"][: ranking_y.size]
        pairs = {
            "AUC-ROC": (lambda: ev.roc_auc(y, p), lambda: skm.roc_auc_score(y, p)),
            "PR-AUC": (lambda: ev.pr_auc(y, p), lambda: skm.average_precision_score(y, p)),
            "log loss": (lambda: ev.log_loss(y, p), lambda: skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7))),
            "Brier": (lambda: ev.brier_score(y, p), lambda: skm.brier_score_loss(y, p)),
            "calibration buckets": (lambda: ev.calibration(y, p).ece, lambda: calibration_curve(y, p, n_bins=10)),
            f"NDCG@5 ({len(ranking_y):,} groups of 10)": (
                lambda: ev.ndcg_at_k(ranking_y.ravel(), ranking_s.ravel(), ranking_g, k=5,
                                     groups_without_relevant="zero"),
                lambda: skm.ndcg_score(ranking_y, ranking_s, k=5)),
        }
        for name, (ours, theirs) in pairs.items():
            ours(), theirs()  # warm up
            t_ours, t_theirs = [], []
            for _ in range(3):  # interleaved
                t0 = time.perf_counter()
                ours()
                t_ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                theirs()
                t_theirs.append(time.perf_counter() - t0)
            out[name] = {"yarnit_s": statistics.median(t_ours), "sklearn_s": statistics.median(t_theirs)}
        # a row-level bootstrap with scikit-learn: cost of one resample on the whole distribution
        rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        for _ in range(2):
            i = rng.integers(0, rows, rows)
            yy, pp = y[i], p[i]
            skm.roc_auc_score(yy, pp), skm.average_precision_score(yy, pp)
            skm.log_loss(yy, np.clip(pp, 1e-7, 1 - 1e-7)), skm.brier_score_loss(yy, pp)
        out["sklearn_row_bootstrap_one_resample_s"] = (time.perf_counter() - t0) / 2
        return out
    raise SystemExit(f"unknown kind {kind!r}")


def run_child(kind: str, rows: int, resamples: int) -> dict[str, Any]:
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--child", kind, "--rows", str(rows),
           "--resamples", str(resamples)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result["peak_rss_mib"] = int(match.group(1)) / 1024 if match else None
    return result


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], unit: str = "s", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.resamples)))
        return
    import numpy
    import sklearn

    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {"binary": [], "report": [], "metrics": []}
    for rep in range(args.reps):
        for kind in runs:  # interleaved
            runs[kind].append(run_child(kind, args.rows, args.resamples))
        print(f"rep {rep}: binary {runs['binary'][-1]['wall_s']:.2f} s, report {runs['report'][-1]['wall_s']:.2f} s",
              flush=True)
    load_end = os.getloadavg()[0]
    binary = {k: summary([r[k] for r in runs["binary"]]) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
    report = {k: summary([r[k] for r in runs["report"]]) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
    metric_names = [k for k in runs["metrics"][0] if isinstance(runs["metrics"][0][k], dict)]
    per_metric = {name: {side: summary([r[name][side] for r in runs["metrics"]]) for side in ("yarnit_s", "sklearn_s")}
                  for name in metric_names}
    one = summary([r["sklearn_row_bootstrap_one_resample_s"] for r in runs["metrics"]])
    # the whole + 20 slices of 1/10 each = 3x the rows of the whole, per resample
    estimate_s = one["median"] * 3 * args.resamples
    command = (f".venv/bin/python benchmarks/bench_evaluation.py --rows {args.rows} --reps {args.reps} "
               f"--resamples {args.resamples}")
    results = {
        "benchmark": "evaluation", "rows": args.rows, "slices": runs["binary"][0]["slices"],
        "resamples": args.resamples, "reps": args.reps, "target_s": TARGET_S,
        "met": binary["wall_s"]["median"] <= TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1min_start": load_start,
                    "load_1min_end": load_end},
        "versions": {"numpy": numpy.__version__, "scikit-learn": sklearn.__version__},
        "binary_with_intervals": binary | {"values": runs["binary"][0]["values"]},
        "full_report": report | {"values": runs["report"][0]["values"]},
        "per_metric_point_estimates": per_metric,
        "sklearn_row_bootstrap": {"one_resample_whole_s": one, "estimated_total_s": estimate_s,
                                  "note": "estimate: one resample of AUC+PR-AUC+log loss+Brier on the whole, x3 for "
                                          "the 20 slices (each 1/10 of the rows), x resamples"},
        "command": command,
    }
    out = ROOT / "benchmarks" / "results" / "evaluation.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    busy = max(load_start, load_end) > 1.5
    lines = [
        "## Evaluation (`yarnit.evaluation`)", "",
        f"{args.rows:,} predictions, {results['slices']} slices (two columns × 10 values), {args.resamples:,} "
        f"bootstrap resamples (95% percentile intervals); {os.cpu_count()} cores; median (min–max) of {args.reps} "
        "repetitions, each in its own process; scikit-learn timings interleaved with yarnit's in the same process.",
        "", f"Command: `{command}`. Versions: numpy {numpy.__version__}, scikit-learn {sklearn.__version__}.", "",
        "| what | wall time | CPU (all threads) | peak RSS | target | met |", "|---|---|---|---|---|---|",
        f"| 9 binary metrics × (whole + {results['slices']} slices), each with a bootstrap interval "
        f"({results['binary_with_intervals']['values']} values) | {fmt(binary['wall_s'])} | {fmt(binary['cpu_s'])} | "
        f"{fmt(binary['peak_rss_mib'], 'MiB', 0)} | ≤ {TARGET_S:g} s | {results['met']} |",
        f"| the ctr evaluate step's full report at this size: + production model, paired differences (DeLong) per "
        f"slice, fairness by one column, NDCG/MAP/P@5/R@5 over {args.rows // 10:,} groups of 10 "
        f"({results['full_report']['values']} "
        f"values) | {fmt(report['wall_s'])} | {fmt(report['cpu_s'])} | {fmt(report['peak_rss_mib'], 'MiB', 0)} | — "
        "| — |",
        "", f"Point estimates on the same {args.rows:,} rows (same values as scikit-learn, to 1e-12):", "",
        "| metric | yarnit | scikit-learn | ratio (scikit-learn / yarnit) |", "|---|---|---|---|",
    ]
    for name, sides in per_metric.items():
        ratio = sides["sklearn_s"]["median"] / sides["yarnit_s"]["median"]
        lines.append(f"| {name} | {fmt(sides['yarnit_s'], 's', 3)} | {fmt(sides['sklearn_s'], 's', 3)} | "
                     f"{ratio:.1f}× |")
    lines += ["", f"A row-level bootstrap with scikit-learn would redraw {args.rows:,} rows per resample: one "
              f"resample of AUC + PR-AUC + log loss + Brier takes {fmt(one, 's', 2)}, so {args.resamples:,} "
              f"resamples of the whole and its slices would take about "
              f"{f'{estimate_s / 60:.0f} minutes' if estimate_s >= 120 else f'{estimate_s:.0f} s'} (estimate, "
              "not run). yarnit draws (score bin, label) cells instead (Poisson bootstrap; exact for count-based "
              "metrics, within-cell noise kept for means, ties within a bin for AUC with the interval re-centred on "
              "the exact value); tests check its intervals against a row-level bootstrap.", "",
              f"Load average (1 min) on the shared machine: {load_start:.1f} at start, {load_end:.1f} at end "
              f"({os.cpu_count()} cores)" + ("; other sessions were running, so absolute times are inflated." if busy
                                             else "."), ""]
    doc = ROOT / "benchmarks" / "results" / "evaluation.md"
    doc.write_text("\n".join(lines))
    print(f"wrote {out} and {doc}")


if __name__ == "__main__":
    main()
