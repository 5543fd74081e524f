"""The served ranking service in the closed loop: `yarnit-ranker` over HTTP vs popularity (issue 8).

1. Train the parts on world data through the runner, with their gates: `yarnit-ctr` (click model, the
   default transform unless --transform), `yarnit-recs` (the five recommenders), then package and check
   `yarnit-ranker`; all three are promoted when blessed.
2. Run the world for --days fresh days (seed 1, the same shoppers for every arm) under: the popularity
   ranker; the click model alone in-process (no rules, no exploration); and `yarnit-ranker` served by a
   real HTTP server on 127.0.0.1 (candidates from the world's retrieval, business rules, ε-greedy
   exploration with logged propensities).

Usage: .venv/bin/python benchmarks/bench_ranker.py [--days 5] [--sessions 2000] [--transform ctr_features_v3]
       [--train-days 7] [--train-sessions 5000]
Writes benchmarks/results/ranker.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _loop(world_config: Any, ranker: Any, days: int, annotate: Any = None, nightly: Any = None) -> dict[str, Any]:
    """Run the world ``days`` under ``ranker``; ``nightly(day)`` runs after each closed day (the history job)."""
    from yarnit.world import World

    started = time.perf_counter()
    impressions = clicks = purchases = 0
    versions: set[str] = set()
    for day in World(world_config, ranker=ranker).run(days):
        if annotate is not None:
            day = annotate(day)
        if hasattr(ranker, "observe"):  # the in-process click model keeps its own shopper history
            ranker.observe(day.impressions)
        if nightly is not None:
            nightly(day)
        log = day.impressions
        impressions += len(log)
        clicks += int(log["clicked"].sum())
        purchases += int(log["purchased"].sum())
        versions |= set(log["model_version"])
    return {"impressions": impressions, "clicks": clicks, "ctr": clicks / max(1, impressions),
            "purchases": purchases, "versions": sorted(versions), "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--transform", default=None, help="Click-model transform (default: yarnit-ctr's).")
    parser.add_argument("--train-days", type=int, default=None, help="World days the click model trains on "
                        "(default: yarnit-ctr's).")
    parser.add_argument("--train-sessions", type=int, default=None, help="Sessions per training day "
                        "(default: yarnit-ctr's).")
    parser.add_argument("--max-iter", type=int, default=300, help="The logistic trainer's iterations (as "
                        "bench_recipes.py; the default 100 stops short of convergence on a week of data).")
    args = parser.parse_args()

    from yarnit.api import create_app
    from yarnit.api.server import BackgroundServer, prepare_for_traffic
    from yarnit.core import Settings, SimulatedClock
    from yarnit.features import FeatureStore
    from yarnit.recipes.history import publish_history
    from yarnit.recipes import builtin_pipeline
    from yarnit.recipes.ranking import ClickModelRanker
    from yarnit.registry import ModelRegistry
    from yarnit.serving import ServingOptions
    from yarnit.storage import open_workspace
    from yarnit.training import PipelineRunner
    from yarnit.world import WorldConfig, popularity_ranker
    from yarnit.world.traffic import RankerServiceRanker

    work = ROOT / "benchmarks" / ".work" / "ranker"
    shutil.rmtree(work, ignore_errors=True)
    world = WorldConfig(seed=1, sessions_per_day=args.sessions)
    # The server reads the shopper history with this clock: it follows the world's days (see nightly below).
    clock = SimulatedClock(world.start)
    ws = open_workspace(Settings.for_home(work), clock)
    out: dict[str, Any] = {"days": args.days, "sessions_per_day": args.sessions, "pipelines": {}}
    for name in ("yarnit-ctr", "yarnit-recs", "yarnit-ranker"):
        started = time.perf_counter()
        config: dict[str, Any] = {}
        if name == "yarnit-ctr":
            config["trainer_params"] = {"max_iter": args.max_iter}
            for key, value in (("transform", args.transform), ("days", args.train_days),
                               ("sessions_per_day", args.train_sessions)):
                if value is not None:
                    config[key] = value
        run = PipelineRunner(ws).run(builtin_pipeline(name), config=config)
        out["pipelines"][name] = {"run": run.id,
                                  "seconds": round(time.perf_counter() - started, 1)}
        print(name, out["pipelines"][name], flush=True)
    registry = ModelRegistry(ws)
    out["models"] = {m["name"]: m["aliases"] for m in registry.list_models()}
    out["popularity"] = _loop(world, popularity_ranker, args.days)
    click = ClickModelRanker.from_registry(registry, "ctr", exploration_rate=0.0)
    out["click_model_in_process"] = _loop(world, click, args.days)
    app = create_app(ws, serving=ServingOptions(log_fsync=False))
    prepare_for_traffic(app)
    with BackgroundServer(app) as server:
        ranker = RankerServiceRanker(server.url, "yarnit-ranker")
        ranker.wait_ready()
        store = FeatureStore(ws)
        logs: list[Any] = []
        published: list[dict[str, Any]] = []

        def nightly(day: Any) -> None:
            """After each world day: its log closes at 06:00 the next day; the history job publishes it."""
            import pandas as pd

            logs.append(day.impressions)
            clock.set(pd.Timestamp(day.day).tz_localize("UTC").to_pydatetime() + timedelta(days=1, hours=6))
            started = time.perf_counter()
            result = publish_history(store, pd.concat(logs, ignore_index=True))
            published.append({"rows_written": result.rows_written, "seconds": round(time.perf_counter() - started, 2)})

        out["yarnit_ranker_http"] = _loop(world, ranker, args.days, annotate=ranker.annotate, nightly=nightly)
        out["yarnit_ranker_http"]["history_published"] = published
        store.close()
        out["yarnit_ranker_http"] |= {"served_by": ranker.served_by, "explored_pages": ranker.explored,
                                      "pages": ranker.pages}
        ranker.close()
    base = out["popularity"]["ctr"]
    for arm in ("click_model_in_process", "yarnit_ranker_http"):
        out[arm]["lift_vs_popularity"] = out[arm]["ctr"] / base - 1
    out["command"] = (f".venv/bin/python benchmarks/bench_ranker.py --days {args.days} --sessions {args.sessions}"
                      + (f" --transform {args.transform}" if args.transform else "")
                      + (f" --train-days {args.train_days}" if args.train_days else "")
                      + (f" --train-sessions {args.train_sessions}" if args.train_sessions else "")
                      + (f" --max-iter {args.max_iter}" if args.max_iter != 300 else ""))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "ranker.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps({k: out[k] for k in ("popularity", "click_model_in_process", "yarnit_ranker_http")},
                     indent=1, default=str))


if __name__ == "__main__":
    main()
