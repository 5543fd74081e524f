"""A classifier with named classes (signature output 'class'): checked at load, answered by name behind the
prediction cache, logged with its classes; a version whose classes do not match its artifact never serves."""

from __future__ import annotations

import numpy as np
import pytest
from serving.helpers import make_service

from yarnit.recipes.intent import N_FEATURES, IntentModel
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.serving import ModelRuntime
from yarnit.serving.errors import VersionRejected
from yarnit.serving.fallback import HeuristicFallback
from yarnit.serving.predlog import read_prediction_log
from yarnit.storage import Workspace

CLASSES = ["brand", "how_to", "product"]


def _model() -> IntentModel:
    # Biases only: every query is "how_to" with probability e^2 / (e^2 + 2)
    return IntentModel(CLASSES, np.zeros((3, N_FEATURES)), np.array([0.0, 2.0, 0.0]))


def _register(ws: Workspace, signature: dict[str, object]) -> int:
    registry = ModelRegistry(ws)
    version = registry.register("intent", _model().to_bytes(), ArtifactFormat.INTENT, signature=signature)
    registry.promote("intent", version.version)
    return version.version


def test_a_classifier_answers_its_class_by_name_behind_the_cache_and_logs_it(sqlite_ws: Workspace) -> None:
    _register(sqlite_ws, {"inputs": {"query": "string"}, "output": "class", "classes": CLASSES,
                          "golden": [{"instance": {"query": "how to knit"}, "class": "how_to"}]})
    service = make_service(sqlite_ws)
    try:
        first = service.predict("intent", [{"query": "a"}, {"query": "b"}], request_id="r1")
        again = service.predict("intent", [{"query": "a"}], request_id="r2")
        service.record(request_id="r1", protocol="v1", model="intent", status=200, latency_s=0.001, prediction=first)
        shadow, _hits, _defaults = service._score_uncached("intent", first.answered_by, [{"query": "a"}])
    finally:
        service.close()
    p = float(np.exp(2.0) / (np.exp(2.0) + 2.0))
    assert (first.kind, first.classes, first.cache_hits) == ("class", ["how_to", "how_to"], 0)
    assert first.values == pytest.approx([p, p], abs=1e-12)
    assert (again.classes, again.values, again.cache_hits) == (["how_to"], first.values[:1], 1)
    assert shadow == first.values[:1]  # a classifier scored as the shadow: its most likely class's probability
    assert service.stats.cache_hits == {("intent", "1"): 1} and service.stats.cache_misses == {("intent", "1"): 2}
    logged = [r for r in read_prediction_log(sqlite_ws.home / "prediction_log") if r.get("request_id") == "r1"]
    assert logged[0]["classes"] == ["how_to", "how_to"] and logged[0]["predictions"] == first.values


@pytest.mark.parametrize(("signature", "reason"), [
    ({"output": "class", "classes": ["brand", "product", "how_to"]}, "artifact's classes"),
    ({"output": "class"}, "'classes' is not a list of at least two distinct names"),
    ({"output": "class", "classes": CLASSES, "golden": [{"instance": {"query": "x"}, "class": "brand"}]},
     "was classified 'how_to', expected 'brand'"),
])
def test_a_classifier_whose_classes_or_golden_answers_do_not_hold_is_not_loaded(
        sqlite_ws: Workspace, signature: dict[str, object], reason: str) -> None:
    number = _register(sqlite_ws, {"inputs": {"query": "string"}, **signature})
    runtime = ModelRuntime(ModelRegistry(sqlite_ws), sqlite_ws.clock, refresh_s=60)
    try:
        with pytest.raises(VersionRejected, match=reason):
            runtime.load_version(ModelRegistry(sqlite_ws).get("intent", number))
    finally:
        runtime.close()


def test_a_classifier_has_no_probability_heuristic_to_fall_back_on() -> None:
    # a base rate is a probability, not a class: the chain ends in a 503 rather than answer a number
    assert not HeuristicFallback.for_version({"output": "class", "classes": CLASSES}, {"base_rate": 0.1}).available
    assert HeuristicFallback.for_version({}, {"base_rate": 0.1}).available
