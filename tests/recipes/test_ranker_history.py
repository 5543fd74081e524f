"""A served ranker on a v3 click model reads each shopper's history from the feature store (no train/serve skew).

Real parts: a SQLite workspace on a simulated clock, the shopper_history view
backfilled and materialized by the nightly job, the yarnit-recs and
yarnit-ranker pipelines, and the HTTP server on a loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings, SimulatedClock
from yarnit.features import FeatureStore
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.features.shopper_history import history_features
from yarnit.recipes.affinity import add_user_affinity
from yarnit.recipes.ctr import RAW_INPUTS, V2_INPUTS
from yarnit.recipes.history import latest_by_user, history_rows, publish_history
from yarnit.recipes.pipelines import builtin_pipeline
from yarnit.recipes.ranker import RankingModel
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner
from yarnit.training.trainers import make_trainer
from yarnit.world import World, WorldConfig

RANKER = "yarnit-ranker"
WORLD = WorldConfig(seed=2, sessions_per_day=300, n_users=600)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, pd.DataFrame]]:
    clock = SimulatedClock(WORLD.start)
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ranker-history") / "home"), clock)
    log = pd.concat([d.impressions for d in World(WORLD).run(2)], ignore_index=True)
    model = make_trainer("logistic").fit(FRAME_TRANSFORMS["ctr_features_v3"](add_user_affinity(log)),
                                         log["clicked"].to_numpy(), seed=0)
    registry = ModelRegistry(ws)
    version = registry.register("ctr", model.artifact, model.artifact_format, signature={
        "inputs": RAW_INPUTS | V2_INPUTS, "output": "click probability", "transform": "ctr_features_v3",
        "online_features": history_features()})
    registry.promote("ctr", version.version)
    runner = PipelineRunner(ws)
    runner.run(builtin_pipeline("yarnit-recs"), config={"days": 2, "sessions_per_day": 300, "n_users": 600,
                                                         "min_eval_users": 5})
    runner.run(builtin_pipeline(RANKER), config={"loop_sessions": 150, "loop_days": 2,
                                                 "rules": {"exploration_rate": 0.0}})
    clock.set(WORLD.start + timedelta(days=2, hours=6))  # the second day's log has closed
    with FeatureStore(ws) as store:
        publish_history(store, log)
    yield ws, log
    ws.close()


def _page(log: pd.DataFrame, user: str) -> dict[str, Any]:
    products = log.drop_duplicates("product_id").head(25)
    candidates = [{"product_id": p, "fiber": f, "weight_class": w, "color": c} for p, f, w, c in
                  products[["product_id", "fiber", "weight_class", "color"]].itertuples(index=False)]
    return {"user_id": user, "query": "", "country": "GB", "device": "app", "hour": 20, "day_of_week": 2,
            "k": 8, "candidates": candidates}


def test_the_served_ranker_scores_with_the_shoppers_history(setup: tuple[Workspace, pd.DataFrame]) -> None:
    ws, log = setup
    registry = ModelRegistry(ws)
    served_version = registry.resolve(RANKER, "production")
    assert [f["name"] for f in served_version.signature["online_features"]][:2] == ["history_impressions",
                                                                                      "history_clicks"]
    ranker = registry.load(served_version)
    assert isinstance(ranker, RankingModel) and ranker.needs_history
    history = latest_by_user(history_rows(log))
    user = max(history, key=lambda u: history[u]["history_impressions"])
    page = _page(log, user)
    with_history = ranker.rank([{**page, **history[user]}], explore=False)[0]
    without = ranker.rank([page], explore=False)[0]
    assert with_history["scores"] != without["scores"]  # the history moves this shopper's scores
    app = create_app(ws)
    with BackgroundServer(app) as server:
        body = httpx.post(f"{server.url}/v1/models/{RANKER}:predict", json={"instances": [page]}, timeout=30).json()
        slate = body["predictions"][0]
        assert body["served_by"] == "model"
        assert slate["items"] == with_history["items"]
        np.testing.assert_allclose(slate["scores"], with_history["scores"], rtol=0, atol=1e-12)
        new = httpx.post(f"{server.url}/v1/models/{RANKER}:predict", timeout=30,
                         json={"instances": [{**page, "user_id": "u-never-seen"}]}).json()["predictions"][0]
        np.testing.assert_allclose(new["scores"], without["scores"][: len(new["scores"])], rtol=0, atol=1e-12)
        counted = app.state.serving.features.defaults_total
        assert counted.get((RANKER, "history_clicks", "missing")) == 1  # only the unknown shopper's request


def test_the_served_click_model_reads_the_history_too(setup: tuple[Workspace, pd.DataFrame]) -> None:
    ws, log = setup
    history = latest_by_user(history_rows(log))
    user = max(history, key=lambda u: history[u]["history_clicks"])
    row = log[log["user_id"] == user].iloc[-1].to_dict()
    request = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
               if k in RAW_INPUTS or k in V2_INPUTS or k == "position"}
    registry = ModelRegistry(ws)
    ctr = registry.load(registry.resolve("ctr", "production"))
    from yarnit.features import get_transform

    transform = get_transform("ctr_features_v3")
    expected = float(ctr.predict_proba([transform({**request, **history[user]})])[0])
    cold = float(ctr.predict_proba([transform(request)])[0])
    assert abs(expected - cold) > 1e-6
    with BackgroundServer(create_app(ws)) as server:
        body = httpx.post(f"{server.url}/v1/models/ctr:predict", json={"instances": [request]}, timeout=30).json()
    assert body["predictions"][0] == pytest.approx(expected, abs=1e-9)
