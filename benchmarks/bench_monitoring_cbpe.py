"""Performance estimation before labels (issue 17): yarnit's CBPE vs NannyML's CBPE on the same log.

The log: a click model's scores on 100,000 labelled reference predictions and
100,000 analysis predictions in five chunks of 20,000, whose score
distribution shifts from chunk to chunk (so each chunk has its own AUC).
Scenarios: ``calibrated`` (the scores are the true click probabilities) and
``miscalibrated`` (the scores are a distorted version: ``σ(1.4·logit p +
0.4)``); both tools fit a calibration map on the reference first (NannyML:
isotonic regression per row; yarnit: isotonic regression over its 2,000
histogram bins). Each chunk's estimated ROC AUC and accuracy are compared
with the realized ones (scikit-learn on the chunk's labels, which neither
estimator sees); the score is the mean absolute error over the chunks.

Time: NannyML's ``CBPE.fit`` + ``estimate`` (inside its own process, after
imports); yarnit's reference summary, calibration map, chunk summaries and
estimates (in process, warm). Repetitions interleaved, median (min-max).

Usage: .venv/bin/python benchmarks/bench_monitoring_cbpe.py [--rows 100000] [--reps 3]
The peer's venv (benchmarks/.venvs/nannyml: nannyml 0.13.1, pandas<3, statsmodels) is created if missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "benchmarks" / ".venvs" / "nannyml"
PEER = ROOT / "benchmarks" / "peers" / "nannyml_cbpe.py"
CHUNKS = 5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_log(rows: int, scenario: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, analysis): y_pred_proba, y_pred (score > 0.5), y_true; analysis chunks drift."""
    rng = np.random.default_rng(seed)

    def part(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(loc=shift, scale=1.0 + 0.15 * shift, size=n)
        p_true = _sigmoid(1.3 * x - 1.6)
        y = (rng.random(n) < p_true).astype(np.int64)
        score = p_true if scenario == "calibrated" else _sigmoid(1.4 * np.log(p_true / (1 - p_true)) + 0.4)
        return pd.DataFrame({"y_pred_proba": score, "y_pred": (score > 0.5).astype(np.int64), "y_true": y})

    reference = part(rows, 0.0)
    size = rows // CHUNKS
    analysis = pd.concat([part(size, shift) for shift in np.linspace(-0.6, 0.9, CHUNKS)], ignore_index=True)
    return reference, analysis


def yarnit_cbpe(reference: pd.DataFrame, analysis: pd.DataFrame, chunk: int) -> tuple[float, list[dict[str, Any]]]:
    from yarnit.monitoring.quality_summary import QualitySummary, calibration_map

    start = time.perf_counter()
    ref = QualitySummary()
    ref.add_labelled(reference["y_pred_proba"].to_numpy(), reference["y_true"].to_numpy())
    mapping = calibration_map(ref)
    scores = analysis["y_pred_proba"].to_numpy()
    estimates = []
    for i in range(len(analysis) // chunk):
        summary = QualitySummary()
        summary.add_predictions(scores[i * chunk:(i + 1) * chunk])
        estimates.append(summary.estimate(mapping))
    return time.perf_counter() - start, estimates


def realized(analysis: pd.DataFrame, chunk: int) -> tuple[list[float], list[float]]:
    auc, acc = [], []
    for i in range(len(analysis) // chunk):
        part = analysis.iloc[i * chunk:(i + 1) * chunk]
        auc.append(float(roc_auc_score(part["y_true"], part["y_pred_proba"])))
        acc.append(float(accuracy_score(part["y_true"], part["y_pred"])))
    return auc, acc


def ensure_peer() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "nannyml==0.13.1", "pandas<3", "statsmodels"],
                       check=True)
    return python


def mae(a: list[float], b: list[float]) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "monitoring_cbpe.json")
    args = parser.parse_args()
    python = ensure_peer()
    chunk = args.rows // CHUNKS
    results: dict[str, Any] = {"rows_reference": args.rows, "rows_analysis": args.rows, "chunks": CHUNKS,
                               "reps": args.reps, "python": platform.python_version(), "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in ("calibrated", "miscalibrated"):
            reference, analysis = make_log(args.rows, scenario)
            ref_path, ana_path = Path(tmp) / f"{scenario}-ref.parquet", Path(tmp) / f"{scenario}-ana.parquet"
            reference.to_parquet(ref_path)
            analysis.to_parquet(ana_path)
            real_auc, real_acc = realized(analysis, chunk)
            yarnit_cbpe(reference, analysis, chunk)  # warm-up (imports, sklearn's isotonic)
            yarnit_s, peer_s, ratios = [], [], []
            peer: dict[str, Any] = {}
            estimates: list[dict[str, Any]] = []
            for _ in range(args.reps):  # interleaved: yarnit, NannyML, yarnit, NannyML …
                seconds, estimates = yarnit_cbpe(reference, analysis, chunk)
                yarnit_s.append(seconds)
                done = subprocess.run([str(python), str(PEER), str(ref_path), str(ana_path), str(chunk)],
                                      capture_output=True, text=True, check=True)
                peer = json.loads(done.stdout.strip().splitlines()[-1])
                peer_s.append(peer["seconds"])
                ratios.append(peer["seconds"] / seconds)
            y_auc = [e["auc"] for e in estimates]
            y_acc = [e["accuracy"] for e in estimates]
            results["nannyml"], results["pandas_peer"] = peer["nannyml"], peer["pandas"]
            results["scenarios"][scenario] = {
                "realized_auc": real_auc,
                "yarnit": {"estimated_auc": y_auc, "estimated_accuracy": y_acc, "auc_mae": mae(y_auc, real_auc),
                           "accuracy_mae": mae(y_acc, real_acc), "seconds": statistics.median(yarnit_s),
                           "seconds_min_max": [min(yarnit_s), max(yarnit_s)]},
                "nannyml": {"estimated_auc": peer["estimated_auc"], "estimated_accuracy": peer["estimated_accuracy"],
                            "auc_mae": mae(peer["estimated_auc"], real_auc),
                            "accuracy_mae": mae(peer["estimated_accuracy"], real_acc),
                            "seconds": statistics.median(peer_s), "seconds_min_max": [min(peer_s), max(peer_s)]},
                "speedup_median": statistics.median(ratios), "speedup_min_max": [min(ratios), max(ratios)],
            }
            s = results["scenarios"][scenario]
            print(f"{scenario}: AUC MAE yarnit {s['yarnit']['auc_mae']:.4f} vs NannyML {s['nannyml']['auc_mae']:.4f}; "
                  f"accuracy MAE {s['yarnit']['accuracy_mae']:.4f} vs {s['nannyml']['accuracy_mae']:.4f}; "
                  f"time {s['yarnit']['seconds'] * 1000:.1f} ms vs {s['nannyml']['seconds'] * 1000:.0f} ms "
                  f"({s['speedup_median']:.0f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
