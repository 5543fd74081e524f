"""The yarnit-intent pipeline trains from simulated raters' labels, reports the labels' quality beside its
figures, registers with lineage back to the label task; the cached classifier answers repeats from cache."""

from __future__ import annotations

import pytest

from yarnit.core.errors import UnsafeArtifact
from yarnit.data import Lineage, Node
from yarnit.evaluation import EvaluationStore, card_for
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

    # the evaluation is stored (found by the version's bytes) with the labels' quality beside the figures
    stored = EvaluationStore(sqlite_ws).for_version(version)
    assert [e.id for e in stored] == [report["evaluation_id"]] == [version.metrics["evaluation_id"]]
    evaluation = EvaluationStore(sqlite_ws).report(stored[0].id)
    assert evaluation.value("accuracy", distribution="holdout") == report["accuracy"]
    quality = evaluation.sections["label_quality"]
    summary = report["label_quality"]
    assert quality["agreement"] == summary["agreement"] and quality["consensus_method"] == "dawid_skene"
    assert quality["raters"] == summary["raters"] == 8 and quality["guideline_version"] == "query-intent:v1"
    card = card_for(sqlite_ws, "yarnit-intent", version=1).to_markdown()
    alpha = summary["agreement"]["krippendorff_alpha"]
    for text in ("## Label quality", "| guideline version | query-intent:v1 |", "| consensus method | dawid_skene |",
                 "| raters | 8 |", f"| Krippendorff's alpha (nominal) | {alpha:.3f} |", "rater-08",
                 "## Classification", f"{report['accuracy']:.4f}", "how_to "):
        assert text in card, text

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


def test_the_data_plane_answers_the_intent_by_name_behind_its_prediction_cache(sqlite_ws: Workspace) -> None:
    import struct

    import orjson
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    PipelineRunner(sqlite_ws).run(builtin_pipeline("yarnit-intent"),
                                  config={"source": "world", "items": 120, "world_seed": 4, "promote": True})
    version = ModelRegistry(sqlite_ws).get("yarnit-intent", 1)
    classes = version.signature["classes"]
    model = IntentModel.from_bytes(sqlite_ws.artifacts.get_bytes(version.artifact_sha256))
    queries = ["how to cast on", "merino dk blue"]
    expected = model.classify(queries)  # what the artifact says, class by name
    body = {"instances": [{"query": q} for q in queries]}
    v2 = {"id": "intent-1", "inputs": [{"name": "query", "shape": [2], "datatype": "BYTES", "data": queries}]}
    with TestClient(create_app(sqlite_ws, refresh_s=0.0)) as http:
        first = http.post("/v1/models/yarnit-intent:predict", json=body).json()
        again = http.post("/v1/models/yarnit-intent:predict", json=body).json()
        tensors = http.post("/v2/models/yarnit-intent/infer", json=v2).json()
        binary = http.post("/v2/models/yarnit-intent/infer", json=v2 | {"parameters": {"binary_data_output": True}})
        metadata = http.get("/v2/models/yarnit-intent").json()
        missing = http.post("/v1/models/yarnit-intent:predict", json={"instances": [{"query": 7}]})
        metrics = http.get("/metrics").text
    assert first["served_by"] == "model" and first == again | {"request_id": first["request_id"]}
    assert [(p["class"], p["probability"]) for p in first["predictions"]] == [
        (label, pytest.approx(p, abs=1e-12)) for label, p in expected]
    assert first["predictions"][0]["class"] == "how_to" and all(p["class"] in classes for p in first["predictions"])

    outputs = {o["name"]: o for o in tensors["outputs"]}
    assert [o["name"] for o in tensors["outputs"]] == ["class", "probability"] and tensors["id"] == "intent-1"
    assert outputs["class"] == {"name": "class", "shape": [2], "datatype": "BYTES",
                                "data": [p["class"] for p in first["predictions"]]}
    assert outputs["probability"]["data"] == [p["probability"] for p in first["predictions"]]

    # the binary tensor extension: a JSON header, then each output's bytes (BYTES: 4-byte length + UTF-8)
    assert binary.status_code == 200, binary.text
    header_length = int(binary.headers["inference-header-content-length"])
    header = orjson.loads(binary.content[:header_length])
    raw = binary.content[header_length:]
    assert [(o["name"], o["datatype"]) for o in header["outputs"]] == [("class", "BYTES"), ("probability", "FP64")]
    size = header["outputs"][0]["parameters"]["binary_data_size"]
    names, at = [], 0
    while at < size:
        (n,) = struct.unpack_from("<I", raw, at)
        names.append(raw[at + 4:at + 4 + n].decode())
        at += 4 + n
    assert names == [p["class"] for p in first["predictions"]]
    assert list(struct.unpack_from("<2d", raw, size)) == [p["probability"] for p in first["predictions"]]

    assert metadata["outputs"] == [{"name": "class", "datatype": "BYTES", "shape": [-1]},
                                   {"name": "probability", "datatype": "FP64", "shape": [-1]}]
    assert metadata["parameters"] == {"classes": classes}
    assert metadata["inputs"] == [{"name": "query", "datatype": "BYTES", "shape": [-1]}]
    assert missing.status_code == 422 and "query" in missing.text  # a number is not a query: the input contract

    def counter(name: str) -> float:
        lines = [line for line in metrics.splitlines()
                 if line.startswith(name) and 'model="yarnit-intent"' in line]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    # the first request missed twice; the v1 repeat and both v2 requests hit (same version, same rows)
    assert counter("yarnit_serving_cache_misses_total") == 2.0
    assert counter("yarnit_serving_cache_hits_total") == 6.0


def test_an_intent_artifact_that_is_a_pickle_is_refused() -> None:
    import pickle

    with pytest.raises(UnsafeArtifact):
        IntentModel.from_bytes(pickle.dumps({"classes": ["a"]}))
