"""YarnIt's models against the world's ground truth (issue 8).

1. Train the click model (``yarnit-ctr``) on N warm-up days of world data, for each feature transform.
2. Report AUC on the next-day holdout next to the ground-truth oracle's and the popularity baseline's.
3. Close the loop: run 7 fresh days (another seed, the same shoppers for every arm) with the popularity
   ranker and with the click model as ranker (ε = 0.05 exploration, learning shopper and product history
   as it serves), and compare CTR. Then again on the training world itself, continued: its first N days
   run under popularity (the policy that logged the training data) and every ranker observes them, then
   each ranker serves the next 7 days ("closed_loop_warm").
4. Score the five ch. 12 recommenders offline on the day after their training window.
5. Check issue 8's targets: gap to the oracle ≤ 0.03 and lift over popularity ≥ 0.05 (AUC), loop CTR
   ≥ +20% over popularity, for the best transform.

Usage: .venv/bin/python benchmarks/bench_recipes.py [--days 7] [--sessions 5000] [--loop-days 7]
       [--loop-sessions 2000] [--exploration 0.05] [--out benchmarks/results/recipes.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMS = ("ctr_features_v1", "ctr_features_v2", "ctr_features_v3")
TARGETS = {"max_gap_to_oracle": 0.03, "min_lift_over_popularity": 0.05, "min_loop_ctr_lift": 0.20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--loop-days", type=int, default=7)
    parser.add_argument("--loop-sessions", type=int, default=2000)
    parser.add_argument("--exploration", type=float, default=0.05)
    parser.add_argument("--world-seed", type=int, default=0,
                        help="Seed of the training world; the fresh loop uses this seed + 1.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recipes.json")
    args = parser.parse_args()

    from yarnit.core import Settings
    from yarnit.recipes import ctr_pipeline
    from yarnit.recipes.ranking import ClickModelRanker, closed_loop_ctr
    from yarnit.recipes.recommenders import evaluate_recommenders, interactions_from_world
    from yarnit.registry import ModelRegistry
    from yarnit.storage import open_workspace
    from yarnit.training import PipelineRunner
    from yarnit.world import World, WorldConfig, popularity_ranker

    work = ROOT / "benchmarks" / ".work" / "recipes"
    shutil.rmtree(work, ignore_errors=True)
    ws = open_workspace(Settings.for_home(work))
    results: dict = {"days": args.days, "sessions_per_day": args.sessions, "world_seed": args.world_seed,
                     "click_model": {}}
    versions: dict = {}
    for transform in TRANSFORMS:
        started = time.perf_counter()
        run = PipelineRunner(ws).run(ctr_pipeline(), config={
            "days": args.days, "sessions_per_day": args.sessions, "world_seed": args.world_seed,
            "transform": transform, "promote": False,
            "trainer_params": {"max_iter": 300}})
        report = run.value("evaluate", "report")
        version = ModelRegistry(ws).get("ctr", run.value("register", "model_version")["version"])
        results["click_model"][transform] = {
            "auc": report["auc"], "auc_oracle": report.get("auc_oracle"), "auc_popularity": report.get("auc_popularity"),
            "gap_to_oracle": report.get("auc_oracle", 0) - report["auc"],
            "lift_over_popularity": report["auc"] - report.get("auc_popularity", 0), "seconds": time.perf_counter() - started,
            "model": version.ref}
        print(transform, json.dumps(results["click_model"][transform]), flush=True)
        versions[transform] = version

    def rankers() -> dict:
        """Fresh rankers: each learns history as it serves, so every loop starts them anew."""
        return {"popularity": popularity_ranker} | {
            t: ClickModelRanker(v, ws.artifacts.get_bytes(v.artifact_sha256), exploration_rate=args.exploration)
            for t, v in versions.items()}

    loops = {"closed_loop": closed_loop_ctr(rankers(), days=args.loop_days, seed=args.world_seed + 1,
                                            sessions_per_day=args.loop_sessions),
             "closed_loop_warm": closed_loop_ctr(rankers(), days=args.loop_days, seed=args.world_seed,
                                                 sessions_per_day=args.loop_sessions, warmup_days=args.days)}
    for key, loop in loops.items():
        base = next(r for r in loop if r.ranker == "popularity").ctr
        results[key] = [{"ranker": r.ranker, "ctr": r.ctr, "lift_vs_popularity": r.ctr / base - 1,
                         "clicks": r.clicks, "impressions": r.impressions, "purchases": r.purchases,
                         "exploration_rate": 0.0 if r.ranker == "popularity" else args.exploration}
                        for r in loop]
        for r in results[key]:
            print(key.replace("closed_", ""), json.dumps(r), flush=True)
    results["targets"] = _targets(results)
    print("targets", json.dumps(results["targets"]), flush=True)
    parts = list(World(WorldConfig(seed=args.world_seed, sessions_per_day=args.sessions)).run(args.days + 1))
    interactions, catalog = interactions_from_world(parts)
    last = parts[-1].day
    scores = evaluate_recommenders(interactions[interactions["day"] < last], interactions[interactions["day"] == last],
                                   catalog, k=10)
    results["recommenders"] = [s.__dict__ for s in scores]
    for s in scores:
        print("recommender", json.dumps(s.__dict__), flush=True)
    results["command"] = (f".venv/bin/python benchmarks/bench_recipes.py --days {args.days} --sessions {args.sessions} "
                          f"--loop-days {args.loop_days} --loop-sessions {args.loop_sessions} "
                          f"--exploration {args.exploration}"
                          + (f" --world-seed {args.world_seed}" if args.world_seed else "")
                          + (f" --out {args.out}" if args.out.name != "recipes.json" else ""))
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


def _targets(results: dict) -> dict:
    """Issue 8's targets for each transform: AUC near the oracle and above popularity, loop CTR lift."""
    loop = {r["ranker"]: r["lift_vs_popularity"] for r in results["closed_loop"]}
    out = {}
    for transform, figures in results["click_model"].items():
        checks = {"gap_to_oracle": figures["gap_to_oracle"] <= TARGETS["max_gap_to_oracle"],
                  "lift_over_popularity": figures["lift_over_popularity"] >= TARGETS["min_lift_over_popularity"],
                  "loop_ctr_lift": loop.get(transform, float("-inf")) >= TARGETS["min_loop_ctr_lift"]}
        out[transform] = checks | {"all": all(checks.values())}
    return TARGETS | {"met": out}


if __name__ == "__main__":
    main()
