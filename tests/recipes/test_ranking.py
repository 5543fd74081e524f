"""The click model as the world's ranker: same features as training, logged versions, the loop responds."""

from __future__ import annotations

import numpy as np
import pytest

from yarnit.core import InvalidInput, Settings
from yarnit.recipes import ctr_pipeline
from yarnit.recipes.ranking import ClickModelRanker, closed_loop_ctr
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner
from yarnit.world import World, WorldConfig, random_ranker


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ranking")))
    PipelineRunner(ws).run(ctr_pipeline(), config={"days": 3, "sessions_per_day": 600})
    return ws


@pytest.fixture
def ranker(trained: Workspace) -> ClickModelRanker:
    return ClickModelRanker.from_registry(ModelRegistry(trained), "ctr", exploration_rate=0.05)


def test_batch_scores_equal_the_serving_path(ranker: ClickModelRanker) -> None:
    day = next(iter(World(WorldConfig(seed=5, sessions_per_day=50, n_users=200)).run(1)))
    candidates = day.impressions.head(200)
    fast = ranker.score_frame(candidates)
    from yarnit.features import ctr_features_v1

    records = [ctr_features_v1({**r, "position": 1}) for r in candidates.to_dict("records")]
    slow = ranker.predictor.predict_proba(records)
    assert np.max(np.abs(fast - slow)) <= 1e-9


def test_the_loop_logs_the_model_version_and_beats_a_random_order(ranker: ClickModelRanker) -> None:
    results = {r.ranker: r for r in closed_loop_ctr({"model": ranker, "random": random_ranker}, days=2,
                                                    sessions_per_day=600)}
    assert results["model"].model_versions == ("ctr:v1",)
    assert results["model"].impressions == results["random"].impressions
    assert results["model"].ctr > results["random"].ctr


def test_exploration_rate_is_checked(trained: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"exploration_rate must be in \[0, 1\]; got 2"):
        ClickModelRanker.from_registry(ModelRegistry(trained), "ctr", exploration_rate=2)
