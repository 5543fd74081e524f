"""yarnit-recs: the five recommenders trained on world data, evaluated offline, gated and registered safely."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from yarnit.core import Settings, SimulatedClock, UnsafeArtifact, utc
from yarnit.recipes.pipelines import builtin_pipeline
from yarnit.recipes.recommenders import RECOMMENDERS, RecommenderSet
from yarnit.recipes.recs_pipeline import DEFAULTS, gate
from yarnit.registry import ArtifactFormat, ModelRegistry, load_predictor
from yarnit.serving import ModelRuntime
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner, RunResult, StepContext

SMALL = {"days": 3, "sessions_per_day": 300, "n_users": 600, "min_eval_users": 5}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path_factory.mktemp("recs") / "home"))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def run(ws: Workspace) -> RunResult:
    return PipelineRunner(ws).run(builtin_pipeline("yarnit-recs"), config=SMALL)


def test_the_pipeline_trains_evaluates_gates_and_registers_all_five(ws: Workspace, run: RunResult) -> None:
    registry = ModelRegistry(ws)
    version = registry.resolve("yarnit-recs", "production")
    assert run.value("register", "model_version")["version"] == version.version
    assert version.artifact_format is ArtifactFormat.RECS_NPZ and version.signature["output"] == "ranking"
    scores = version.metrics["scores"]
    assert set(scores) == set(RECOMMENDERS)
    for row in scores.values():
        assert 0 <= row["precision_at_k"] <= 1 and 0 <= row["ndcg_at_k"] <= 1 and row["coverage"] > 0
    assert "popular" in version.signature["serving"] and version.metrics["blessed"] is True
    assert len(version.dataset_version_ids) == 2  # interactions and catalog: lineage to the data
    # an unchanged rerun is cached and registers nothing new (stable bytes)
    again = PipelineRunner(ws).run(builtin_pipeline("yarnit-recs"), config=SMALL)
    assert {s.step: s.state for s in again.steps}["train"] == "cached"
    assert [v.version for v in registry.versions("yarnit-recs")] == [version.version]


def test_the_registered_artifact_recommends_what_was_fitted(ws: Workspace, run: RunResult) -> None:
    registry = ModelRegistry(ws)
    version = registry.resolve("yarnit-recs", "production")
    loaded = registry.load(version)
    assert isinstance(loaded, RecommenderSet)
    model = run.value("train", "model")
    fitted = RecommenderSet.from_bytes(model.artifact)
    users = [str(u) for u in fitted.models["popular"].users[:20]] + ["u-nobody"]
    for name in RECOMMENDERS:
        assert loaded.models[name].recommend(users, 10) == fitted.models[name].recommend(users, 10)
    assert loaded.to_bytes() == model.artifact  # byte-stable: equal models, equal artifacts
    # the serving runtime loads it as a ranking model and its golden slates check out
    served = ModelRuntime(registry, SimulatedClock(utc(2026, 1, 5)), refresh_s=0.0).current("yarnit-recs")
    golden = version.signature["golden"][0]
    assert served.is_ranking and served.rank([golden["instance"]])[0]["items"] == golden["items"]


def test_a_reproduction_gives_the_same_bytes(ws: Workspace, run: RunResult) -> None:
    from yarnit.training.reproduce import reproduce

    result = reproduce(PipelineRunner(ws), run.id, builtin_pipeline("yarnit-recs"))
    assert result.reproduced and all(m.identical_bytes for m in result.models)


def test_arrays_that_need_pickle_are_refused(ws: Workspace, run: RunResult) -> None:
    version = ModelRegistry(ws).resolve("yarnit-recs", "production")
    with zipfile.ZipFile(io.BytesIO(ws.artifacts.get_bytes(version.artifact_sha256))) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    sneaky = io.BytesIO()
    np.savez(sneaky, **{"index.items": np.array([{"not": "an item"}], dtype=object)})  # pickled inside the npz
    members["arrays.npz"] = sneaky.getvalue()
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    with pytest.raises(UnsafeArtifact, match="without pickle"):
        load_predictor(forged.getvalue(), ArtifactFormat.RECS_NPZ)
    assert json.loads(members["manifest.json"])["schema"] == "yarnit-recs/v1"


def test_it_also_trains_on_a_recorded_impression_log(ws: Workspace) -> None:
    from yarnit.data import Datasets
    from yarnit.world import World, WorldConfig

    days = list(World(WorldConfig(seed=4, sessions_per_day=300, n_users=600)).run(3))
    log = pd.concat([d.impressions for d in days], ignore_index=True)
    Datasets(ws).ingest_frame("impressions-for-recs", log, source="world seed=4", pii_columns=["user_id"],
                              subject="user_id")
    result = PipelineRunner(ws).run(builtin_pipeline("yarnit-recs"), config={
        **SMALL, "source": "dataset", "dataset": "impressions-for-recs", "model": "recs-from-log"})
    version = ModelRegistry(ws).get("recs-from-log", result.value("register", "model_version")["version"])
    engaged = set(log.loc[(log["clicked"] == 1) | (log["purchased"] == 1), "product_id"])
    assert version.metrics["scores"]["popular"]["users"] >= 5
    assert set(version.signature["fallback"]["popular"][:5]) <= engaged  # top sellers, then most clicked


def _gate(ws: Workspace, scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ctx = StepContext(ws, "run_test", "yarnit-recs", "gate", dict(DEFAULTS), 0)
    verdict: dict[str, Any] = gate(ctx, {"k": 10, "scores": scores})["verdict"]
    return verdict


def _row(**values: float) -> dict[str, float]:
    base = {"precision_at_k": 0.05, "recall_at_k": 0.2, "ndcg_at_k": 0.1, "coverage": 0.05, "novelty": 6.0,
            "users": 100}
    return base | values


def test_a_recommender_below_popularity_on_every_metric_is_not_served(ws: Workspace) -> None:
    verdict = _gate(ws, {"popular": _row(), "content": _row(coverage=0.3),
                         "browsing": _row(precision_at_k=0.01, recall_at_k=0.1, ndcg_at_k=0.05, coverage=0.01,
                                          novelty=5.0)})
    assert verdict["blessed"] is True and verdict["serving"] == ["popular", "content"]
    assert verdict["recommenders"]["browsing"]["reasons"] == [
        "browsing: below popularity on every compared metric (precision_at_k 0.0100 < 0.0500, recall_at_k "
        "0.1000 < 0.2000, ndcg_at_k 0.0500 < 0.1000, coverage 0.0100 < 0.0500, novelty 5.0000 < 6.0000)"]


def test_a_set_whose_fallback_is_broken_is_refused(ws: Workspace) -> None:
    verdict = _gate(ws, {"popular": _row(ndcg_at_k=float("nan")), "content": _row()})
    assert verdict["blessed"] is False
    assert "popular: ndcg_at_k is nan, not a finite number" in verdict["reasons"]
    assert any("universal fallback, is not sane" in r for r in verdict["reasons"])
