"""The operate demo serves a share of the shop's pages through ``yarnit-ranker``, over the same HTTP server (h41).

A short month (two days of a small shop, on a real server): the bootstrap trains the recommenders and packages
the first ranker with the first click model; a seeded hash of each page's session id sends a fixed share of the
pages to the ranker, the rest to ``ctr``; both answer with named versions, in the shop's counts and in the
server's prediction log. When ``ctr`` gets a new production version, the ranker is evaluated with it (the
declared dependency's triple) and re-pinned. A ranker request that fails falls back to popularity and is counted.
"""

from __future__ import annotations

import zlib
from collections import Counter

import pandas as pd
import pytest

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.continuous.dependencies import ModelDependencies
from yarnit.demo.operate import RANKER, OperateConfig, _Month, _ShopRanker
from yarnit.registry import ModelRegistry
from yarnit.serving.predlog import read_prediction_log
from yarnit.world import World, WorldConfig

pytestmark = pytest.mark.timeout(600)
PIPELINE = {"bootstrap_resamples": 10, "golden_rows": 200, "slices": ["device"], "fairness_groups": []}


def test_pages_go_to_ctr_and_the_ranker_by_share_and_the_ranker_follows_a_new_production_ctr(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = OperateConfig(days=10, sessions_per_day=150, faults=(), pipeline=PIPELINE, ranker_share=0.25)
    month = _Month(tmp_path / "month", config, False, lambda _m: None)
    try:
        month.run(days=2)
        record = month.record(0.0)
        answered = Counter()
        for day in record["daily"]:
            answered.update(day["answered_by"])
            assert day["ranker_production"] == "yarnit-ranker:v1 (ctr:v1)"
        assert set(answered) == {"ctr:v1", f"{RANKER}:v1"}, answered
        share = answered[f"{RANKER}:v1"] / sum(answered.values())
        assert 0.15 < share < 0.35, answered  # a quarter of the pages, by the hash

        # the month's CPU outside its hourly steps, by part: the ranker's bootstrap, the serving refresh, the world
        # and the shop, the HTTP server's thread, the scoring pool (the ranker's pages are offloaded to it) and the
        # log writer; each thread's own clock, so none of them is a step's share counted twice
        timings = record["timings"]
        parts = ("bootstrap_cpu", "serving_refresh_cpu", "world_shop_cpu", "server_thread_cpu", "scoring_pool_cpu",
                 "log_writer_cpu")
        assert all(timings.get(k, 0.0) > 0 for k in parts), {k: timings.get(k) for k in parts}
        assert timings["bootstrap"] > 0 and timings["serving_refresh"] > 0

        # the server's log: who answered each page, by name and version; the ranker's pages are the hashed ones
        primary = [r for r in read_prediction_log(month.ws.home / "prediction_log") if r.get("role") == "primary"]
        by_model = Counter((r["model"], r["version"], r["served_by"]) for r in primary)
        assert by_model == {("ctr", 1, "model"): answered["ctr:v1"], (RANKER, 1, "model"): answered[f"{RANKER}:v1"]}
        for r in primary:
            if r["model"] == RANKER:
                assert len(r["predictions"][0]["items"]) == 10 and len(r["instances"][0]["candidates"]) == 30

        # the world's log names the ranker on its pages; only ctr's pages carry a request id for the click labels
        impressions = pd.read_parquet(next((tmp_path / "month" / "world" / "impressions").rglob("*.parquet")))
        ranked = impressions["model_version"] == f"{RANKER}:v1"
        assert ranked.any() and (impressions.loc[~ranked, "model_version"] == "ctr:v1").all()
        assert impressions.loc[ranked, "request_id"].isna().all()
        assert impressions.loc[~ranked, "request_id"].notna().all()
        hashed = impressions["session_id"].astype(str).map(lambda s: zlib.crc32(f"0/{s}".encode()) < 0.25 * 2 ** 32)
        assert (hashed == ranked).all()

        # a new production click model that is worse inside the ranker: the triple regresses, the ranker holds
        registry = ModelRegistry(month.ws)
        worse = registry.versions("ctr")[-1]
        assert worse.version == 2, "the loop trained a click model on the first day"
        registry.promote("ctr", worse.version, actor="test", reason="a new production click model")
        month._repin_ranker()
        assert [(r["ctr"], r["pinned"], r["action"]) for r in month.repins] == [(2, 1, "held")], month.repins
        assert "auc_vs_production" in month.repins[0]["reason"] and month.repins[0]["auc"] is not None
        assert registry.aliases(RANKER)["production"] == 1
        month._repin_ranker()  # held once per production click model, not re-evaluated every hour
        assert len(month.repins) == 1

        # the next production click model is sound inside the ranker (the first one's model, registered again as a
        # new version): the triple passes, the ranker pipeline packages it, checks it and promotes it
        first = registry.get("ctr", 1)
        again = registry.register("ctr", month.ws.artifacts.get_bytes(first.artifact_sha256), first.artifact_format,
                                  signature=first.signature, dataset_version_ids=first.dataset_version_ids,
                                  run_id=first.run_id)
        registry.promote("ctr", again.version, actor="test", reason="the next production click model")
        month._repin_ranker()
        assert [(r["ctr"], r["action"], r.get("new_ranker")) for r in month.repins[1:]] == \
            [(again.version, "re-pinned", 2)], [r.get("reason") for r in month.repins]
        ranker = registry.resolve(RANKER, "production")
        assert ranker.version == 2 and ranker.signature["lineage"]["click_model"]["version"] == again.version
        triples = ModelDependencies(month.ws).evaluations(RANKER, upstream="ctr")
        assert {(t.upstream_version, t.consumer_version, t.regressed) for t in triples} >= {(2, 1, True),
                                                                                            (again.version, 1, False)}
        assert month._ranker_production() == f"{RANKER}:v2 (ctr:v{again.version})"

        # the hours after it, with nothing new to decide, read two alias rows, not the versions behind them (h47)
        month._repin_ranker()  # the first hour learns what v2 pins
        resolved: list[tuple[str, str]] = []
        resolve = ModelRegistry.resolve
        monkeypatch.setattr(ModelRegistry, "resolve", lambda self, name, alias: resolved.append((name, alias))
                            or resolve(self, name, alias))
        for _hour in range(3):
            month._repin_ranker()
        assert resolved == [] and len(month.repins) == 2, resolved
    finally:
        month.close()


def test_a_failed_ranker_request_falls_back_to_popularity_and_is_counted(sqlite_ws, clock) -> None:
    """Every page goes to a ranker the server does not have: each answer is the shop's popularity order, counted
    as the failure it was, and no page waits for a label."""
    app = create_app(sqlite_ws)
    world = WorldConfig(seed=3, sessions_per_day=20, n_users=200)
    try:
        with BackgroundServer(app) as server:
            shop = _ShopRanker(server.url, "ctr", chunk=world.n_candidates, id_prefix="t", on_error="popularity")
            shop.clock = clock
            shop.route(1.0, 0, world.slate_size)
            shop.ranker_url = "/v1/models/no-such-ranker:predict"
            day = next(iter(World(world, ranker=shop).run(1)))
            shop.close()
    finally:
        app.state.serving.close()
    assert set(shop.answered_by) == {f"HTTP 404 ({RANKER})"} and shop.answered_by[f"HTTP 404 ({RANKER})"] == \
        shop.requests > 0
    assert len(shop.failures) == shop.requests
    assert day.impressions["request_id"].isna().all() and shop.unshown.empty


def test_the_serving_threads_cpu_is_read_from_each_threads_own_clock() -> None:
    """A month reports its serving threads' CPU by kind (server, scoring pool, log writer), summed over a kind's
    threads; a thread of another name is not counted."""
    import threading
    import time

    from yarnit.demo.operate import _serving_threads_cpu

    stop = threading.Event()

    def burn(seconds: float) -> None:
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass
        stop.wait(30)

    names = ["yarnit-score-90", "yarnit-score-91", "yarnit-predlog", "someone-else"]
    threads = [threading.Thread(target=burn, args=(0.02,), name=n, daemon=True) for n in names]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # each thread has spent its CPU once its own clock says so (no wall time assumed)
            cpu = _serving_threads_cpu()
            if cpu.get("scoring_pool_cpu", 0.0) >= 0.04 and cpu.get("log_writer_cpu", 0.0) >= 0.02:
                break
            assert time.monotonic() < deadline, cpu
            time.sleep(0.01)
        assert set(cpu) <= {"scoring_pool_cpu", "log_writer_cpu", "server_thread_cpu"}
        assert "server_thread_cpu" not in cpu or cpu["server_thread_cpu"] >= 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
