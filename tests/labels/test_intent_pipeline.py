"""The yarnit-intent pipeline trains from simulated raters' labels, reports the labels' quality beside its
figures, registers with lineage back to the label task; the cached classifier answers repeats from cache."""

from __future__ import annotations

import pytest

from yarnit.core.errors import UnsafeArtifact
from yarnit.data import Lineage, Node
from yarnit.recipes.intent import CachedIntentClassifier, IntentModel
from yarnit.recipes.pipelines import builtin_pipeline
from yarnit.registry import ModelRegistry, load_predictor
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner

pytestmark = pytest.mark.timeout(120)


def test_the_pipeline_trains_on_simulated_raters_labels_and_traces_back_to_the_task(sqlite_ws: Workspace) -> None:
    result = PipelineRunner(sqlite_ws).run(builtin_pipeline("yarnit-intent"),
                                           config={"source": "world", "items": 300, "world_seed": 3, "promote": True})
    report = result.value("evaluate", "report")
    assert report["accuracy"] > 0.75 and report["holdout_rows"] == 60
    assert report["label_quality"]["flagged_raters"] == ["rater-08"]  # the adversary, flagged from golden items
    version = ModelRegistry(sqlite_ws).get("yarnit-intent", 1)
    assert version.metrics["label_quality"]["schema"] == "query-intent:v1"
    up = Lineage(sqlite_ws).upstream(Node("model_version", version.id))
    assert "label_task" in {n.kind for n in up.nodes}  # model <- label set <- task <- the queries

    loaded = ModelRegistry(sqlite_ws).load(version)  # what serving would load: verified bytes, no pickle
    assert isinstance(loaded, IntentModel)
    model = IntentModel.from_bytes(sqlite_ws.artifacts.get_bytes(version.artifact_sha256))
    cached = CachedIntentClassifier(model, version.id)
    queries = ["merino dk blue", "how to cast on", "fjordull yarn", "stitch markers"]
    first = [cached.classify(q) for q in queries]
    again = [cached.classify(q) for q in queries]
    assert [label for label, _ in first] == [label for label, _ in again]
    assert all(abs(a[1] - b[1]) < 1e-9 for a, b in zip(first, again, strict=True))
    assert cached.hit_rate == 0.5 and first[1][0] == "how_to"
    assert load_predictor(model.to_bytes(), "yarnit-intent-npz").predict_proba([{"query": "how to knit"}])[0] > 0.25


def test_the_data_plane_serves_the_intent_model_behind_its_prediction_cache(sqlite_ws: Workspace) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    PipelineRunner(sqlite_ws).run(builtin_pipeline("yarnit-intent"),
                                  config={"source": "world", "items": 120, "world_seed": 4, "promote": True})
    body = {"instances": [{"query": "how to cast on"}, {"query": "merino dk blue"}]}
    with TestClient(create_app(sqlite_ws, refresh_s=0.0)) as http:
        first = http.post("/v1/models/yarnit-intent:predict", json=body).json()
        again = http.post("/v1/models/yarnit-intent:predict", json=body).json()
        metrics = http.get("/metrics").text
    assert first["served_by"] == "model" and first["predictions"] == again["predictions"]
    assert all(0.25 < p <= 1.0 for p in first["predictions"])  # the most likely intent's probability
    hits = [line for line in metrics.splitlines()
            if line.startswith("yarnit_serving_cache_hits_total") and 'model="yarnit-intent"' in line]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) == 2.0  # the repeated request came from the cache


def test_an_intent_artifact_that_is_a_pickle_is_refused() -> None:
    import pickle

    with pytest.raises(UnsafeArtifact):
        IntentModel.from_bytes(pickle.dumps({"classes": ["a"]}))
