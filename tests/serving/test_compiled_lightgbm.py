"""The LightGBM compiled path: one ONNX TreeEnsemble in float64, encoded exactly as the native model is."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest

from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.registry.lightgbm_format import LightgbmPredictor, dump_lightgbm
from yarnit.serving import ModelRuntime, compile_predictor
from yarnit.storage import Workspace
from yarnit.training.trainers import LightgbmTrainer

FIBERS = ["merino", "acrylic", "cotton", "silk", "alpaca"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "fiber": rng.choice(FIBERS, n),
        "color": rng.choice([f"c{i}" for i in range(30)], n),
        "price": rng.uniform(1, 60, n).round(2),
        "discount": rng.choice([0.0, 0.1, 0.2, np.nan], n),
    })
    return frame


def _labels(frame: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = -2 + 1.5 * (frame["fiber"] == "merino") - 0.03 * frame["price"] + 3 * frame["discount"].fillna(0)
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


@pytest.fixture(scope="module")
def trained() -> tuple[bytes, pd.DataFrame]:
    frame = _frame(4000, seed=1)
    model = LightgbmTrainer(num_boost_round=60).fit(frame, _labels(frame, 2), seed=0)
    return model.artifact, frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # As a request carries them: a missing value is an absent key, not NaN.
    return [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
            for r in frame.to_dict("records")]


def test_a_trained_lightgbm_model_with_categories_compiles_and_matches_native(trained) -> None:
    artifact, frame = trained
    native = LightgbmPredictor.from_bytes(artifact)
    assert native.categories, "the trainer stores category lists for text features"
    result = compile_predictor(native, _records(frame.head(20)))
    assert (result.kind, result.reason) == ("lightgbm-onnx", "ok")
    assert result.max_abs_diff <= 1e-6 and result.n_probes >= 256
    fresh = _records(_frame(2000, seed=7))
    fresh += [{"fiber": "wool-we-never-saw", "price": 12.0}, {}, {"color": "c3"}, {"price": 1e308},
              {"price": -1e308, "discount": 0.1}]
    assert np.max(np.abs(result.compiled.predict_proba(fresh) - native.predict_proba(fresh))) <= 1e-12


def test_the_compiled_path_scores_the_matrix_training_encoded(trained) -> None:
    artifact, frame = trained
    native = LightgbmPredictor.from_bytes(artifact)
    sample = frame.head(200)
    training_matrix, names, _categories = LightgbmTrainer().encode(sample, dict(zip(
        ["fiber", "color"], native.booster.pandas_categorical, strict=True)))
    served = native.encode(_records(sample))
    assert names == native.feature_names
    np.testing.assert_array_equal(served, training_matrix)  # NaN where training had NaN, same codes
    compiled = compile_predictor(native, []).compiled
    np.testing.assert_array_equal(compiled.encoder.encode(_records(sample)), training_matrix)


def test_splits_at_a_threshold_take_lightgbms_float64_branch(trained) -> None:
    artifact, _frame_ = trained
    native = LightgbmPredictor.from_bytes(artifact)
    compiled = compile_predictor(native, []).compiled
    thresholds = sorted({n["threshold"] for t in native.booster.dump_model()["tree_info"]
                         for n in _internal(t["tree_structure"]) if n["decision_type"] == "<="
                         and native.feature_names[n["split_feature"]] == "price"})
    rows = [{"fiber": "merino", "price": float(x)} for t in thresholds
            for x in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf))]
    np.testing.assert_allclose(compiled.predict_proba(rows), native.predict_proba(rows), rtol=0, atol=1e-12)


def _internal(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "split_feature" not in node:
        return []
    return [node, *_internal(node["left_child"]), *_internal(node["right_child"])]


def _numeric_booster(**params: Any) -> LightgbmPredictor:
    rng = np.random.default_rng(0)
    n = 3000
    x = np.column_stack([rng.integers(0, 8, n).astype(float), rng.uniform(0, 50, n), rng.normal(size=n)])
    x[rng.random(n) < 0.1, 1] = np.nan
    y = (((x[:, 0] % 3 == 0) & (np.nan_to_num(x[:, 1]) > 20)) | (rng.random(n) < 0.1)).astype(int)
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 20, "num_leaves": 7,
                              **params},
                             lightgbm.Dataset(x, y, feature_name=["code", "price", "z"], categorical_feature=[0]), 20)
    return LightgbmPredictor.from_bytes(dump_lightgbm(booster))


@pytest.mark.parametrize("params", [{}, {"sigmoid": 0.5},
                                    {"boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1}])
def test_raw_numeric_category_codes_are_truncated_like_lightgbm(params: dict[str, Any]) -> None:
    native = _numeric_booster(**params)
    result = compile_predictor(native, [{"code": 1, "price": 3.0}])
    assert result.kind == "lightgbm-onnx", result.reason
    rows = [{"code": c, "price": p, "z": z} for c in (-1.0, -0.5, 0.0, 0.5, 2.0, 2.7, 3.0, 6.9, 40.0)
            for p in (0.0, 19.5, 35.0) for z in (-1.0, 0.3)] + [{"price": 5.0}, {"code": 3.0}]
    np.testing.assert_allclose(result.compiled.predict_proba(rows), native.predict_proba(rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("params", "reason"), [({"zero_as_missing": True}, "zero_as_missing"),
                                                ({"linear_tree": True}, "linear trees"),
                                                ({"objective": "regression"}, "not binary")])
def test_what_the_converter_does_not_translate_stays_native_with_a_reason(params: dict[str, Any],
                                                                          reason: str) -> None:
    result = compile_predictor(_numeric_booster(**params), [{"code": 1, "price": 3.0}])
    assert result.compiled is None and result.kind == "native" and reason in result.reason


class _Disagreeing(LightgbmPredictor):
    """A native model whose scores are off by 1e-3: the load-time check must refuse the compiled graph."""

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        return super().predict_proba(instances) * 0.999


def test_a_compiled_graph_that_disagrees_with_native_is_not_used(trained) -> None:
    artifact, frame = trained
    native = LightgbmPredictor.from_bytes(artifact)
    disagreeing = _Disagreeing(native.booster, artifact.decode())
    result = compile_predictor(disagreeing, _records(frame.head(5)))
    assert result.compiled is None and result.kind == "native"
    assert result.reason.startswith("compiled scores differ from native by") and result.max_abs_diff > 1e-6


def test_the_runtime_serves_a_registered_lightgbm_version_on_the_compiled_path(sqlite_ws: Workspace,
                                                                                trained) -> None:
    artifact, frame = trained
    registry = ModelRegistry(sqlite_ws)
    registry.register("knit", artifact, ArtifactFormat.LIGHTGBM_TEXT,
                      signature={"inputs": {"fiber": "string", "color": "string", "price": "double",
                                            "discount": "double"}})
    registry.promote("knit", 1)
    runtime = ModelRuntime(registry, sqlite_ws.clock, refresh_s=0.0)
    loaded = runtime.current("knit")
    assert loaded.path == "lightgbm-onnx" and loaded.compile.max_abs_diff <= 1e-6
    rows = _records(frame.tail(50))
    np.testing.assert_allclose(loaded.score(rows), loaded.native.predict_proba(rows), rtol=0, atol=1e-12)


def test_trees_that_are_a_single_leaf_compile_too() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 1000},
                             lightgbm.Dataset(x, (x[:, 0] > 0).astype(int), feature_name=["a", "b"]), 3)
    assert "split_feature" not in booster.dump_model()["tree_info"][0]["tree_structure"]
    native = LightgbmPredictor.from_bytes(dump_lightgbm(booster))
    result = compile_predictor(native, [{"a": 1.0}])
    assert result.kind == "lightgbm-onnx" and result.max_abs_diff <= 1e-12
