"""Benchmark: each dashboard page's first render in headless Chromium, and serving latency while it refreshes.

The workspace is an operate demo's (``--home``: e.g. ``DIR/faulted/home`` after ``yarnit demo --out DIR``;
without it a short clean demo of ``--days`` days is built first). The real app serves it on 127.0.0.1
(``BackgroundServer``, the clock at the monitor's last run), and Debian's Chromium (``/usr/bin/chromium``,
driven by Playwright) opens each page: once right after the server started (cold; Chromium has opened
``/v2`` once before, so its own first start is not counted) and ``--reps`` times more (warm). For each it records the first contentful paint and the navigation's response end, in ms
from the navigation start (what a person waits for).

Serving beside the dashboard: ``--predictions`` sequential one-page predictions are timed alone, then
while a thread loads every dashboard page in turn: paced at 2 pages a second (ten open dashboards each
refreshing every 5 s), and in a tight loop (far more than people refresh) with the page cache (2 s, the
default) and without it; arms interleaved, ``--reps`` times each; p50/p99 of each.
The render times are measured with the page cache off, so each one is a real rendering.

Usage::

    python benchmarks/bench_dashboard.py [--home HOME] [--days 4] [--reps 3] [--predictions 300]

``--predictions 0`` measures the pages only.

Writes ``benchmarks/results/dashboard.json`` and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

CHROMIUM = "/usr/bin/chromium"
RENDER = """() => new Promise(resolve => {
  const nav = performance.getEntriesByType('navigation')[0];
  const done = fcp => resolve({fcp: fcp, response_end: nav ? nav.responseEnd : null});
  const seen = performance.getEntriesByName('first-contentful-paint')[0];
  if (seen) { done(seen.startTime); return; }
  new PerformanceObserver(l => { const p = l.getEntriesByName('first-contentful-paint')[0]; if (p) done(p.startTime); })
    .observe({type: 'paint', buffered: true});
  setTimeout(() => done(null), 10000);
})"""


def build_demo(days: int, sessions: int) -> Path:
    from dashboard.conftest import (  # the browser tests' short month
        PIPELINE,
        ShortMonth,
    )

    from yarnit.demo.operate import simulate

    root = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    print(f"building a {days}-day demo at {sessions} sessions a day in {root} …", flush=True)
    simulate(str(root), ShortMonth(days=days, sessions_per_day=sessions, faults=(), pipeline=PIPELINE), False)
    return root / "home"


def page_paths(ws: Any) -> dict[str, str]:
    from yarnit.incidents import IncidentStore
    from yarnit.registry import ModelRegistry
    from yarnit.training import RunStore

    model = ModelRegistry(ws).list_models()[0]["name"]
    runs = RunStore(ws).list(None, 30)
    run = next((r for r in runs if r.pipeline == "yarnit-ctr"), runs[0]).id  # the training run: nine steps
    incidents = IncidentStore.open(ws.home, ws.clock).list("all", limit=1)
    paths = {"overview": "/", "model": f"/ui/models/{model}", "model-7d": f"/ui/models/{model}?window=7d",
             "model-slices": f"/ui/models/{model}?window=7d&by=device", "card": f"/ui/models/{model}/card",
             "rollout": f"/ui/rollouts/{model}", "slos": "/ui/slos", "drift": f"/ui/drift/{model}",
             "drift-7d": f"/ui/drift/{model}?window=7d&reference=previous",
             "data": "/ui/data", "incidents": "/ui/incidents", "runs": "/ui/runs", "run": f"/ui/runs/{run}"}
    if incidents:
        paths["incident"] = f"/ui/incidents/{incidents[0].id}"
    return paths


def render_times(browser: Any, base: str, paths: dict[str, str], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Chromium's first navigation starts its renderer machinery: pay that on a JSON endpoint (no dashboard code),
    # so the cold pass measures each page's first render by the server, not the browser's own start
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.new_page().goto(base + "/v2", wait_until="load")
    context.close()
    for round_ in range(reps + 1):
        for name, path in paths.items():
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(base + path, wait_until="load")
            timing = page.evaluate(RENDER)
            context.close()
            entry = out.setdefault(name, {"path": path, "cold": None, "warm": []})
            if round_ == 0:
                entry["cold"] = timing
            else:
                entry["warm"].append(timing)
    for entry in out.values():
        for key in ("fcp", "response_end"):
            values = [w[key] for w in entry["warm"] if w[key] is not None]
            entry[f"warm_{key}_median"] = round(statistics.median(values), 1) if values else None
            entry[f"warm_{key}_max"] = round(max(values), 1) if values else None
    return out


def serving_beside(app: Any, base: str, paths: dict[str, str], predictions: int, reps: int) -> dict[str, Any]:
    from yarnit.api.dashboard.cache import DEFAULT_TTL_S
    from yarnit.world import WorldConfig
    from yarnit.world.traffic import serve_traffic

    body = {"instances": next(serve_traffic(WorldConfig(seed=0, sessions_per_day=5, n_users=50), 1)).instances}
    # arm -> (seconds between page loads, page cache on); 0.5 s: ten open dashboards refreshing every 5 s
    plans = {"alone": (0.0, True), "2 pages/s (page cache 2 s)": (0.5, True),
             "tight loop (page cache 2 s)": (0.0, True), "tight loop (no page cache)": (0.0, False)}
    arms: dict[str, list[dict[str, float]]] = {arm: [] for arm in plans}
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(20):
            client.post("/v1/models/ctr:predict", json=body)
        for _ in range(reps):
            for arm, runs in arms.items():
                stop = threading.Event()
                pages_loaded = [0]

                pause, cache_on = plans[arm]

                def refresh(stop: threading.Event = stop, count: list[int] = pages_loaded, pause: float = pause
                            ) -> None:
                    with httpx.Client(base_url=base, timeout=30) as other:
                        while not stop.is_set():
                            for path in paths.values():
                                other.get(path)
                                count[0] += 1
                                if stop.wait(pause):
                                    return

                app.state.dashboard_cache.ttl_s = DEFAULT_TTL_S if cache_on else 0.0
                thread = threading.Thread(target=refresh, daemon=True) if arm != "alone" else None
                if thread:
                    thread.start()
                latencies = []
                for _ in range(predictions):
                    started = time.perf_counter()
                    response = client.post("/v1/models/ctr:predict", json=body)
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                stop.set()
                if thread:
                    thread.join()
                latencies.sort()
                runs.append({"p50_ms": round(latencies[len(latencies) // 2], 2),
                                  "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
                                  "pages_loaded": pages_loaded[0]})
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an operate demo's workspace home (default: build a short one)")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--predictions", type=int, default=300)
    parser.add_argument("--out", default="dashboard.json")
    parser.add_argument("--only", default="", help="comma-separated page names to measure (default: all)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from yarnit.api import create_app
    from yarnit.api.dashboard.cache import PageCache
    from yarnit.api.server import BackgroundServer
    from yarnit.core import Settings, SimulatedClock
    from yarnit.monitoring.runner import read_state
    from yarnit.storage import open_workspace

    home = args.home or build_demo(args.days, args.sessions)
    state = read_state(home)
    if state is None:
        raise SystemExit(f"{home}: the monitor never ran here; pass an operate demo's workspace home")
    ws = open_workspace(Settings.for_home(home), SimulatedClock(datetime.fromisoformat(state["at"])))
    app = create_app(ws, refresh_s=3600.0)
    with BackgroundServer(app) as server, sync_playwright() as playwright:
        paths = page_paths(ws)
        if args.only:
            paths = {k: v for k, v in paths.items() if k in args.only.split(",")}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        app.state.dashboard_cache = PageCache(ttl_s=0.0)  # every measured render is a real one
        try:
            pages = render_times(browser, server.url, paths, args.reps)
        finally:
            browser.close()
        serving = serving_beside(app, server.url, paths, args.predictions, args.reps) if args.predictions else {}
    app.state.serving.close()
    result = {"home": str(home), "clock": state["at"], "load_average": os.getloadavg(), "pages": pages,
              "serving": serving, "args": {k: str(v) for k, v in vars(args).items()}}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{'page':<13} {'cold FCP':>9} {'warm FCP med':>13} {'warm FCP max':>13} {'warm response med':>18}")
    for name, e in pages.items():
        print(f"{name:<13} {e['cold']['fcp']!s:>9} {e['warm_fcp_median']!s:>13} {e['warm_fcp_max']!s:>13} "
              f"{e['warm_response_end_median']!s:>18}")
    for arm, runs in serving.items():
        print(f"serving {arm}: " + ", ".join(f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms ({r['pages_loaded']} pages)"
                                             for r in runs))


if __name__ == "__main__":
    main()
