"""Frame scoring through ``training.encoding.score_frame`` equals the native (dicts) path, or declines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry.formats import SklearnPredictor
from yarnit.training.encoding import encode_frame, fit_vectorizer, score_frame


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "price": rng.gamma(2.0, 5.0, n), "rank": rng.integers(1, 40, n),
        "fiber": pd.Categorical(rng.choice(["merino", "acrylic", "alpaca", "silk"], n)),
        "device": rng.choice(["mobile", "desktop"], n).astype(object)})


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"}).to_dict("records")


def _fit(model) -> SklearnPredictor:
    train = _frame(2_000, 0)
    y = ((train["price"] < 10) ^ (train["fiber"] == "silk")).astype(int).to_numpy()
    vectorizer = fit_vectorizer(train)
    model.fit(encode_frame(vectorizer, train), y)
    return SklearnPredictor(Pipeline([("vectorize", vectorizer), ("model", model)]))


def test_a_pipeline_scores_the_same_from_the_frame_with_values_unseen_in_training():
    for model in (LogisticRegression(max_iter=500), RandomForestClassifier(n_estimators=5, random_state=0)):
        predictor = _fit(model)
        frame = _frame(5_000, 1)
        frame.loc[frame.index[::7], "device"] = "tablet"  # a value the vectorizer never saw weighs nothing
        fast = score_frame(predictor, frame)
        assert fast is not None
        np.testing.assert_allclose(fast, predictor.predict_proba(_records(frame)), rtol=0, atol=1e-12)


def test_shapes_it_does_not_cover_are_left_to_the_native_model():
    logistic = _fit(LogisticRegression(max_iter=500))
    holes = _frame(100, 2)
    holes.loc[3, "price"] = np.nan
    assert score_frame(logistic, holes) is None  # the native path raises what scikit-learn raises
    mixed = _frame(100, 3).astype({"device": object})
    mixed.loc[5, "device"] = 3
    assert score_frame(logistic, mixed) is None
    flags = _frame(100, 4).assign(in_stock=True)  # a bool: a number to DictVectorizer, a text to encode_frame
    assert score_frame(logistic, flags) is None
    assert score_frame(object(), _frame(10, 5)) is None
    assert score_frame(SklearnPredictor(LogisticRegression()), _frame(10, 5)) is None
