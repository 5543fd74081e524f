"""A ctr_features_v3 click model: trained by yarnit-ctr, served by ClickModelRanker with the same history."""

from __future__ import annotations

import numpy as np
import pytest

from yarnit.core import Settings
from yarnit.features import get_transform
from yarnit.recipes import ctr_pipeline
from yarnit.recipes.ranking import ClickModelRanker, closed_loop_ctr
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner
from yarnit.world import World, WorldConfig, random_ranker


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ctr_v3")))
    PipelineRunner(ws).run(ctr_pipeline(), config={"days": 3, "sessions_per_day": 400, "transform": "ctr_features_v3",
                                                   "bootstrap_resamples": 50, "golden_rows": 200})
    return ws


def test_v3_model_records_its_transform_and_history_inputs(trained: Workspace) -> None:
    version = ModelRegistry(trained).get("ctr", 1)
    assert version.signature["transform"] == "ctr_features_v3"
    assert {"user_id", "product_id"} <= set(version.signature["inputs"])


def test_batch_scores_equal_the_serving_path_with_history(trained: Workspace) -> None:
    ranker = ClickModelRanker.from_registry(ModelRegistry(trained), "ctr", exploration_rate=0.0)
    days = list(World(WorldConfig(seed=0, sessions_per_day=400)).run(2))
    ranker.observe(days[0].impressions)
    candidates = days[1].impressions.drop(columns=["clicked"]).tail(300)  # after 06:00, once day 0 has closed
    fast = ranker.score_frame(candidates)
    annotated = ranker.history.annotate(candidates)
    transform = get_transform("ctr_features_v3")
    slow = ranker.predictor.predict_proba([transform({**r, "position": 1}) for r in annotated.to_dict("records")])
    assert np.max(np.abs(fast - np.asarray(slow))) <= 1e-9
    assert annotated["user_history_impressions"].max() > 0  # the shoppers of day 0 are known on day 1


def test_warm_loop_counts_only_the_days_after_the_warm_up(trained: Workspace) -> None:
    ranker = ClickModelRanker.from_registry(ModelRegistry(trained), "ctr", exploration_rate=0.05)
    results = {r.ranker: r for r in closed_loop_ctr({"model": ranker, "random": random_ranker}, days=1, seed=0,
                                                    sessions_per_day=300, warmup_days=2)}
    assert results["model"].model_versions == ("ctr:v1",)  # the warm-up days (popularity) are not counted
    assert results["random"].model_versions == ("random",)
    assert results["model"].impressions == results["random"].impressions
    assert len(set(ranker.history.counts[("user_id",)]["day"])) == 3  # observed: 2 warm-up days + 1 served
