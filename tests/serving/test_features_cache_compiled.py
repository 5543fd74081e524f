"""Online features (missing/stale policy), the prediction cache, and the compiled fast path."""

from __future__ import annotations

from datetime import timedelta

import lightgbm
import numpy as np
import pytest
from serving.helpers import SIGNATURE, Faults, fit_ctr
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from yarnit.core import SimulatedClock
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.registry.formats import SklearnPredictor
from yarnit.registry.lightgbm_format import LightgbmPredictor, dump_lightgbm
from yarnit.serving import FeatureSpec, OnlineFeatures, PredictionCache, StaticFeatureSource, compile_predictor
from yarnit.storage import Workspace

ONLINE = SIGNATURE | {"online_features": [
    {"name": "user_ctr_7d", "entity": "user_id", "default": 0.01, "max_age_s": 3600}]}


class BrokenSource:
    def get(self, entity, keys, features):
        raise ConnectionError("redis is down")


def test_missing_stale_and_failed_features_get_defaults_and_are_counted(clock: SimulatedClock) -> None:
    source = StaticFeatureSource({("user_id", "u1"): {"user_ctr_7d": 0.2}, ("user_id", "u2"): {"user_ctr_7d": 0.3}},
                                 event_time=clock.now())
    online = OnlineFeatures(source, clock)
    specs = FeatureSpec.from_signature(ONLINE)
    rows, report = online.enrich("ctr", specs, [{"user_id": "u1"}, {"user_id": "u9"}, {}])
    assert [r["user_ctr_7d"] for r in rows] == [0.2, 0.01, 0.01]
    assert report.defaults == {("user_ctr_7d", "missing"): 2}
    clock.advance(timedelta(hours=2))
    rows, report = online.enrich("ctr", specs, [{"user_id": "u2"}])
    assert rows[0]["user_ctr_7d"] == 0.01 and report.defaults == {("user_ctr_7d", "stale"): 1}
    rows, report = OnlineFeatures(BrokenSource(), clock).enrich("ctr", specs, [{"user_id": "u1"}])
    assert rows[0]["user_ctr_7d"] == 0.01 and report.defaults == {("user_ctr_7d", "error"): 1}
    assert online.defaults_total == {("ctr", "user_ctr_7d", "missing"): 2, ("ctr", "user_ctr_7d", "stale"): 1}


def test_the_model_sees_online_features_and_a_broken_store_is_not_a_500(ctr_ws: Workspace, faults: Faults,
                                                                         service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    version = registry.register("ctr", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS, signature=ONLINE)
    registry.promote("ctr", version.version)
    service = service_factory(faults, compile=False)
    service.features.source = StaticFeatureSource({("user_id", "u1"): {"user_ctr_7d": 0.4}})
    prediction = service.predict("ctr", [{"fiber": "merino", "user_id": "u1"}])
    assert faults.seen[version.version][-1] == [{"fiber": "merino", "user_id": "u1", "user_ctr_7d": 0.4}]
    service.features.source = BrokenSource()
    prediction = service.predict("ctr", [{"fiber": "merino", "user_id": "u1"}])
    assert prediction.served_by == "model" and prediction.feature_defaults == {"user_ctr_7d": 1}


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    cache = PredictionCache(max_entries=2)
    cache.put("a", 0.1)
    cache.put("b", 0.2)
    assert cache.get("a") == 0.1
    cache.put("c", 0.3)
    assert cache.get("b") is None and cache.get("a") == 0.1 and len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 1)


def test_repeated_instances_are_answered_from_the_cache_per_version(ctr_ws: Workspace, faults: Faults,
                                                                     service_factory) -> None:
    service = service_factory(faults, compile=False)
    first = service.predict("ctr", [{"fiber": "merino"}, {"fiber": "acrylic"}])
    calls = len(faults.seen[1])
    again = service.predict("ctr", [{"fiber": "acrylic"}, {"fiber": "merino"}, {"fiber": "silk"}])
    assert again.cache_hits == 2 and again.values[:2] == first.values[::-1]
    assert faults.seen[1][calls:] == [[{"fiber": "silk"}]]  # only the new instance was scored
    ModelRegistry(ctr_ws).promote("ctr", 2)
    assert service.predict("ctr", [{"fiber": "merino"}]).cache_hits == 0  # a new version starts cold


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"fiber": str(rng.choice(["merino", "acrylic", "silk"])), "color": str(rng.choice(list("abcd"))),
             "price": float(rng.uniform(1, 40)), "discount": float(rng.uniform(0, 0.5))} for _ in range(n)]


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
    GradientBoostingClassifier(n_estimators=20, random_state=0),
])
def test_tree_models_compile_and_agree_with_native_within_1e_6(estimator) -> None:
    rows = _rows(400)
    labels = [int(r["fiber"] == "merino" or r["price"] > 30) for r in rows]
    native = SklearnPredictor(Pipeline([("v", DictVectorizer()), ("m", estimator)]).fit(rows, labels))
    result = compile_predictor(native, rows[:10])
    assert result.kind == "tree-onnx" and result.max_abs_diff <= 1e-6
    fresh = _rows(300, seed=1)
    assert np.max(np.abs(result.compiled.predict_proba(fresh) - native.predict_proba(fresh))) <= 1e-6


def test_what_cannot_be_compiled_stays_native_with_a_reason() -> None:
    rows = _rows(100)
    labels = [int(r["price"] > 20) for r in rows]
    scaled = Pipeline([("v", DictVectorizer()), ("s", StandardScaler(with_mean=False)),
                       ("m", fit_ctr(1.0).steps[1][1].__class__())]).fit(rows, labels)
    assert "3 steps" in compile_predictor(SklearnPredictor(scaled), rows).reason
    matrix = np.array([[r["price"], r["discount"]] for r in rows])
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "zero_as_missing": True},
                             lightgbm.Dataset(matrix, labels, feature_name=["price", "discount"]), 5)
    result = compile_predictor(LightgbmPredictor.from_bytes(dump_lightgbm(booster)), rows)
    assert result.compiled is None and result.kind == "native" and "zero_as_missing" in result.reason


def test_small_batches_of_a_linear_model_skip_the_graph_and_still_agree_with_native() -> None:
    from yarnit.serving.compiled import SMALL_BATCH_ROWS

    rows = _rows(200, seed=3)
    native = SklearnPredictor(fit_ctr(1.0))
    result = compile_predictor(native, rows)
    assert result.kind == "linear-onnx" and result.max_abs_diff <= 1e-6
    compiled = result.compiled
    small, large = rows[:SMALL_BATCH_ROWS], rows[:SMALL_BATCH_ROWS + 1]
    for batch in (small, large, [rows[0]]):  # the per-row route, the graph, one row
        assert np.max(np.abs(compiled.predict_proba(batch) - native.predict_proba(batch))) <= 1e-6
    # unseen values and absurd numbers: no overflow, a probability in [0, 1], equal to native
    odd = [{"country": "nowhere", "price": 1e300}, {"price": -1e300}, {}]
    scores = compiled.predict_proba(odd)
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.max(np.abs(scores - native.predict_proba(odd))) <= 1e-6
