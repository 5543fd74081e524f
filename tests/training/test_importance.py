"""Feature importances recorded by every trainer, and carried back to the request's input columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yarnit.features.request_time_frame import ctr_features_v1_frame
from yarnit.training.importance import input_sources, to_inputs
from yarnit.training.trainers import make_trainer


def data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The label depends on fiber strongly, on price weakly, and not at all on noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"fiber": rng.choice(["merino", "acrylic", "silk", "wool"], n),
                          "price": rng.gamma(2.0, 5.0, n), "noise": rng.normal(size=n)})
    logit = -1 + 2.5 * (frame["fiber"] == "merino") - 0.04 * frame["price"]
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


@pytest.mark.parametrize("name", ["logistic", "hist_gbm", "lightgbm"])
def test_every_trainer_records_normalized_importances_by_frame_column(name: str) -> None:
    frame, y = data()
    weights = make_trainer(name).fit(frame, y, seed=0).training["feature_importance"]
    assert set(weights) == {"fiber", "price", "noise"}  # one-hot columns (fiber=merino …) summed into fiber
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    assert weights["fiber"] > weights["noise"], weights  # what the label depends on weighs more than noise


def test_lightgbm_importance_is_the_boosters_gain() -> None:
    from yarnit.registry import load_predictor

    frame, y = data()
    model = make_trainer("lightgbm").fit(frame, y, seed=0)
    booster = load_predictor(model.artifact, model.artifact_format).booster  # type: ignore[attr-defined]
    gain = booster.feature_importance(importance_type="gain")
    expected = dict(zip(frame.columns, gain / gain.sum(), strict=True))
    assert model.training["feature_importance"] == pytest.approx(expected)


def test_derived_columns_are_traced_back_to_the_inputs_they_are_computed_from() -> None:
    rng = np.random.default_rng(0)
    n = 300
    raw = pd.DataFrame({"country": rng.choice(["US", "DE", "FR"], n), "fiber": rng.choice(["silk", "wool"], n),
                        "price_usd": rng.gamma(2.0, 5.0, n), "hour": rng.integers(0, 24, n),
                        "query": rng.choice(["", "silk yarn", "red wool"], n), "position": 1})
    sources = input_sources(ctr_features_v1_frame, raw, ["country", "fiber", "price_usd", "hour", "query"])
    assert sources["country_x_fiber"] == ["country", "fiber"]
    assert sources["log_price_usd"] == ["price_usd"] and sources["price_bucket"] == ["price_usd"]
    assert sources["hour_block"] == ["hour"] and sources["query_match_fiber"] == ["fiber", "query"]
    assert sources["position"] == []  # fixed at serving: no input feeds it
    weights = to_inputs({"country_x_fiber": 0.5, "log_price_usd": 0.3, "position": 0.2}, sources)
    # a derived column's weight is shared equally by its inputs; a column no input feeds is dropped, then renormalized
    assert weights == pytest.approx({"country": 0.25 / 0.8, "fiber": 0.25 / 0.8, "price_usd": 0.3 / 0.8})
    assert to_inputs(None, sources) is None and to_inputs({"position": 1.0}, sources) is None
