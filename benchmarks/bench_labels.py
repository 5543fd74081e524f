"""Human labels benchmark (issue 21): agreement vs the peers, consensus, rater flags, active learning, pre-labels.

All on the YarnIt world's labeling queries and its simulated rater pool, in one run:

* agreement statistics vs scikit-learn (Cohen's kappa), statsmodels (Fleiss' kappa) and the ``krippendorff``
  package (alpha, nominal): the largest absolute difference over many random data sets (target <= 1e-9), and
  the time of each on 20,000 items x 5 raters (context);
* consensus accuracy against the true intents: majority vote vs Dawid-Skene, with and without down-weighting
  flagged raters, each seed a full task in a SQLite workspace answered by the simulated pool
  (target: Dawid-Skene beats majority);
* the answer number at which the adversarial rater is flagged from golden items (target: <= 50);
* active learning (uncertainty + diversity, and uncertainty only) vs random sampling: labels needed to reach
  the accuracy random sampling has at its full budget (target: <= 60 %), over several seeds;
* pre-labels: how often raters agree with the model when its pre-label is shown vs hidden (anchoring), and
  their accuracy on golden items in both arms;
* the intent classifier (``yarnit.recipes.intent``) alone vs behind the prediction cache, one query per call,
  on a Zipf stream of 20,000 requests over 500 queries (target: repeated queries >= 10x the uncached rate).

Usage: .venv/bin/python benchmarks/bench_labels.py [--seeds 5] [--items 400] [--budget 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def agreement_vs_peers(n_sets: int) -> dict[str, Any]:
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    from yarnit.labels import cohen_kappa, count_table, fleiss_kappa, krippendorff_alpha

    worst = {"cohen": 0.0, "fleiss": 0.0, "krippendorff": 0.0}
    for seed in range(n_sets):
        rng = np.random.default_rng(seed)
        k, n, r = 2 + seed % 6, 30 + seed * 7, 2 + seed % 5
        truth = rng.integers(0, k, n)
        a = np.where(rng.random((n, r)) < rng.uniform(0.2, 0.9), truth[:, None], rng.integers(0, k, (n, r)))
        worst["cohen"] = max(worst["cohen"], abs(cohen_kappa(a[:, 0], a[:, 1]) - cohen_kappa_score(a[:, 0], a[:, 1])))
        t = count_table(a, int(a.max()) + 1)
        worst["fleiss"] = max(worst["fleiss"], abs(fleiss_kappa(t) - sm_fleiss(t)))
        m = a.astype(float)
        m[rng.random(m.shape) < 0.25] = np.nan
        worst["krippendorff"] = max(worst["krippendorff"], abs(
            krippendorff_alpha(m.T) - krippendorff.alpha(reliability_data=m.T, level_of_measurement="nominal")))
    rng = np.random.default_rng(99)
    truth = rng.integers(0, 4, 20_000)
    big = np.where(rng.random((20_000, 5)) < 0.7, truth[:, None], rng.integers(0, 4, (20_000, 5)))
    table = count_table(big, 4)
    timings = {}
    for name, fn in (("cohen yarnit", lambda: cohen_kappa(big[:, 0], big[:, 1])),
                     ("cohen sklearn", lambda: cohen_kappa_score(big[:, 0], big[:, 1])),
                     ("fleiss yarnit", lambda: fleiss_kappa(table)),
                     ("fleiss statsmodels", lambda: sm_fleiss(table)),
                     ("alpha yarnit", lambda: krippendorff_alpha(big.T)),
                     ("alpha krippendorff", lambda: krippendorff.alpha(reliability_data=big.T,
                                                                       level_of_measurement="nominal"))):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        timings[name] = statistics.median(runs)
    return {"sets": n_sets, "max_abs_difference": worst, "median_s_20000x5": timings}


def simulated_task(seed: int, items: int, *, prelabels: bool = False) -> dict[str, Any]:
    from yarnit.core import Settings, SimulatedClock, utc
    from yarnit.data import Datasets
    from yarnit.labels import Labels, run_raters
    from yarnit.storage import open_workspace
    from yarnit.world import INTENTS, RaterPool, labeling_queries

    frame = labeling_queries(seed=1000 + seed, n=items)
    truth = {k: INTENTS.index(v) for k, v in zip(frame["query_id"], frame["intent"], strict=True)}
    golden_rows = np.random.default_rng(seed).choice(items, items // 10, replace=False)
    with tempfile.TemporaryDirectory() as home, \
            open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5))) as ws:
        version = Datasets(ws).ingest_frame("queries", frame[["query_id", "query"]], source="world")
        labels = Labels(ws)
        labels.define_schema("intent", INTENTS, "Intent of a search query.")
        pool = RaterPool.default(len(INTENTS), seed=seed)
        labels.create_task("t", dataset=version.ref, schema="intent", raters=[p.rater_id for p in pool.profiles],
                           overlap=3, key_column="query_id", text_column="query", seed=seed,
                           golden={frame["query_id"][i]: frame["intent"][i] for i in golden_rows})

        def answer(r: str, k: str, p: str | None) -> str:
            return INTENTS[pool.answer(r, k, truth[k], prelabel=None if p is None else INTENTS.index(p))]

        start = time.perf_counter()
        if prelabels:
            run_raters(labels, "t", answer, max_answers_per_rater=30)
            labels.prelabel_from_model("t", show_share=0.5, seed=seed)
        answers = run_raters(labels, "t", answer)
        elapsed = time.perf_counter() - start
        out: dict[str, Any] = {"seed": seed, "answers_per_s": len(answers) / elapsed}
        if prelabels:
            effect = labels.prelabel_effect("t")
            answers_all = labels.answers("t")
            for arm, shown in (("shown", True), ("hidden", False)):
                mine = [a for a in answers_all if a.prelabel_shown == shown]
                effect[arm]["accuracy_vs_truth"] = float(np.mean([INTENTS.index(a.label) == truth[a.item_key]
                                                                  for a in mine])) if mine else None
            out["prelabels"] = effect
            return out
        for method, weighted in (("majority", False), ("majority", True), ("dawid_skene", False),
                                 ("dawid_skene", True)):
            chosen = [c for c in labels.consensus("t", method=method, weighted=weighted) if c.source == "human"]
            out[f"{method}{'_weighted' if weighted else ''}"] = float(np.mean(
                [INTENTS.index(c.label) == truth[c.item_key] for c in chosen]))
        quality = labels.quality("t")
        adversary = next(p.rater_id for p in pool.profiles if p.adversarial)
        out["adversary_flagged_at_answer"] = quality[adversary].flagged_at_answer
        out["others_flagged"] = sorted(r for r, q in quality.items() if q.flagged and r != adversary)
        out["tiring_rater_drift"] = quality[next(p.rater_id for p in pool.profiles if p.fatigue_per_100)].drift
        agreement = labels.agreement("t")
        out["agreement"] = {k: agreement[k] for k in ("krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean")}
    return out


def active_learning(seed: int, budget: int, pool_size: int) -> dict[str, Any]:
    from yarnit.labels.active import labels_to_reach, learning_curve
    from yarnit.world import INTENTS, labeling_queries

    frame = labeling_queries(seed=300 + seed, n=pool_size + 300)
    texts, y = frame["query"].tolist(), np.array([INTENTS.index(i) for i in frame["intent"]])
    args = (texts[:pool_size], y[:pool_size], texts[pool_size:], y[pool_size:])
    curves = {s: learning_curve(*args, classes=INTENTS, strategy=s, seed=seed, budget=budget)  # type: ignore[arg-type]
              for s in ("random", "uncertainty_diversity", "uncertainty")}
    target = curves["random"][-1]["accuracy"]
    return {"seed": seed, "random_accuracy_at_budget": target,
            "labels_to_reach": {s: labels_to_reach(c, target) for s, c in curves.items()},
            "accuracy_at_budget": {s: c[-1]["accuracy"] for s, c in curves.items()}}


def intent_cache(requests: int) -> dict[str, Any]:
    """Queries per second of the intent model alone vs behind the prediction cache, one query per call."""
    from yarnit.labels.active import TextClassifier, featurize
    from yarnit.recipes.intent import CachedIntentClassifier, IntentModel
    from yarnit.world import INTENTS, labeling_queries

    frame = labeling_queries(seed=7, n=800)
    y = np.array([INTENTS.index(i) for i in frame["intent"]])
    model = IntentModel.from_classifier(TextClassifier(INTENTS).fit(featurize(frame["query"].tolist()), y))
    distinct = frame["query"].tolist()[:500]
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, len(distinct) + 1)  # Zipf: a few queries are most of the traffic
    stream = [distinct[i] for i in rng.choice(len(distinct), requests, p=weights / weights.sum())]
    out: dict[str, Any] = {"requests": requests, "distinct_queries": len(distinct)}
    runs: dict[str, list[float]] = {"uncached": [], "cached_stream": [], "cached_repeats": []}
    for _ in range(3):
        start = time.perf_counter()
        for q in stream:
            model.classify([q])
        runs["uncached"].append(requests / (time.perf_counter() - start))
        cached = CachedIntentClassifier(model, "mv_bench")
        start = time.perf_counter()
        for q in stream:
            cached.classify(q)
        runs["cached_stream"].append(requests / (time.perf_counter() - start))
        out["stream_hit_rate"] = cached.hit_rate
        start = time.perf_counter()
        for q in stream:  # every query seen: all hits
            cached.classify(q)
        runs["cached_repeats"].append(requests / (time.perf_counter() - start))
    out["per_s_median"] = {k: statistics.median(v) for k, v in runs.items()}
    out["per_s_range"] = {k: [min(v), max(v)] for k, v in runs.items()}
    out["repeat_speedup"] = out["per_s_median"]["cached_repeats"] / out["per_s_median"]["uncached"]
    out["stream_speedup"] = out["per_s_median"]["cached_stream"] / out["per_s_median"]["uncached"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--pool", type=int, default=800)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    result: dict[str, Any] = {"config": vars(args), "agreement": agreement_vs_peers(60)}
    print(json.dumps(result["agreement"], indent=1), flush=True)
    result["consensus"] = [simulated_task(s, args.items) for s in range(args.seeds)]
    print(json.dumps(result["consensus"], indent=1), flush=True)
    result["prelabels"] = [simulated_task(s, args.items, prelabels=True) for s in range(min(args.seeds, 3))]
    print(json.dumps(result["prelabels"], indent=1), flush=True)
    result["active_learning"] = [active_learning(s, args.budget, args.pool) for s in range(args.seeds)]
    print(json.dumps(result["active_learning"], indent=1), flush=True)
    result["intent_cache"] = intent_cache(20_000)
    print(json.dumps(result["intent_cache"], indent=1), flush=True)
    result["load_average"] = [load_start, os.getloadavg()[0]]
    result["wall_s"] = time.perf_counter() - started
    from importlib.metadata import version

    import krippendorff  # noqa: F401
    import sklearn
    import statsmodels
    result["versions"] = {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                          "statsmodels": statsmodels.__version__, "krippendorff": version("krippendorff")}
    out = ROOT / "benchmarks" / "results" / "labels.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"written {out} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
