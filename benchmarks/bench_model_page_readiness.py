"""Benchmark: what the ML Test Score adds to the model page's server render, against the page without it.

On one workspace (``--home``: e.g. ``DIR/faulted/home`` after ``yarnit demo --out DIR``), in one process,
interleaved ``--reps`` times: the model page without the readiness section (the peer: the page as it was),
the page with a kept assessment (what a view gets once the dashboard's warm-up scored the model, or any
later view: ``ReadinessCache``), the page with no assessment kept (the first view scores inline), and the
records fingerprint alone (what each view pays to see whether the records changed). Medians and ratios to
the peer: absolute milliseconds move with the machine's load, the ratios less so.

Usage::

    python benchmarks/bench_model_page_readiness.py [--home HOME] [--model ctr] [--reps 9] [--build-days 10]

Without ``--home``: the last ``yarnit demo``'s faulted month, or, when there is none (a fresh clone's
``make bench``), a 10-day faulted month this run simulates first (``bench_monitor_pass.build_month``).

Writes ``benchmarks/results/model_page_readiness.json`` and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from yarnit.api.dashboard.models_pages import model_page
from yarnit.api.dashboard.readiness_pages import ReadinessCache, readiness_section, records_fingerprint
from yarnit.core import Settings, load_settings
from yarnit.storage import open_workspace

OUT = Path(__file__).resolve().parent / "results" / "model_page_readiness.json"


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None,
                        help="an operate demo's workspace (default: the last `yarnit demo`'s faulted month)")
    parser.add_argument("--model", default="ctr")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--build-days", type=int, default=10,
                        help="days of the month simulated when there is no demo workspace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.home is None:
            args.home = load_settings().home / "demo" / "faulted" / "home"
            if not args.home.is_dir():  # a fresh clone's `make bench`: simulate a month (bench_monitor_pass)
                from bench_monitor_pass import build_month

                print(f"no operate demo at {args.home}: simulating a {args.build_days}-day faulted month first",
                      flush=True)
                args.home = build_month(Path(tmp) / "month", args.build_days)
        measure(args)


def measure(args: argparse.Namespace) -> None:
    ws = open_workspace(Settings.for_home(args.home))
    model = args.model
    model_page(ws, model)  # imports and first connections are not what is compared
    kept = ReadinessCache(ttl_s=3600)
    kept.get(ws, model)
    arms: dict[str, list[float]] = {"page without readiness": [], "page with a kept score": [],
                                    "page scoring inline (nothing kept)": [], "records fingerprint": []}
    for _ in range(args.reps):
        arms["page without readiness"].append(_ms(lambda: model_page(ws, model)))
        arms["page with a kept score"].append(_ms(lambda: model_page(ws, model) + readiness_section(
            kept.get(ws, model)[0], age_s=1.0)))
        arms["page scoring inline (nothing kept)"].append(_ms(lambda: model_page(ws, model) + readiness_section(
            ReadinessCache().get(ws, model)[0], age_s=0.0)))
        arms["records fingerprint"].append(_ms(lambda: records_fingerprint(ws)))
    peer = statistics.median(arms["page without readiness"])
    ws.close()
    result = {"home": str(args.home), "model": model, "reps": args.reps, "load_average": os.getloadavg(),
              "median_ms": {k: round(statistics.median(v), 1) for k, v in arms.items()},
              "ratio_to_page_without_readiness": {k: round(statistics.median(v) / peer, 2) for k, v in arms.items()}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
