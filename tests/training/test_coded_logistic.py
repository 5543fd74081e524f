"""The logistic trainer's solver on category codes (training/logistic.py) finds scikit-learn's optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core import InvalidInput
from yarnit.registry import load_predictor
from yarnit.training.chunks import FeatureChunks, narrow
from yarnit.training.encoding import encode_frame, fit_and_encode
from yarnit.training.logistic import GROUP_CELLS, fit_and_code, fit_coded
from yarnit.training.trainers import make_trainer


def clicks(n: int = 20000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Text columns (one with rare values and missing ones), a 0/1 flag and a skewed number."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "fiber": rng.choice(["merino", "acrylic", "silk", "wool", "alpaca"], n),
        "product": [f"p{i}" for i in rng.zipf(1.6, n) % 60],
        "query": pd.Series(rng.choice(["sock", "hat", None], n, p=[0.5, 0.3, 0.2])).astype("category"),
        "in_stock": rng.integers(0, 2, n).astype(float),
        "price": rng.gamma(2.0, 0.5, n),
    })
    logit = (-2 + 1.2 * (frame["fiber"] == "merino") - 0.4 * frame["price"] + 0.8 * frame["in_stock"]
             + 0.5 * (frame["query"] == "sock"))
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)


MAX_ITER = 1000  # both solvers converge (the optimum is compared, not where 100 iterations stop)


def sklearn_fit(frame: pd.DataFrame, y: np.ndarray, min_count: int = 1) -> tuple[np.ndarray, float, np.ndarray]:
    vectorizer, x, _ = fit_and_encode(frame, min_count=min_count)
    model = LogisticRegression(C=1.0, max_iter=MAX_ITER, tol=1e-4, solver="lbfgs").fit(x, y)
    assert model.n_iter_[0] < MAX_ITER
    return model.coef_[0], float(model.intercept_[0]), model.predict_proba(x)[:, 1]


@pytest.mark.parametrize("min_count", [1, 5])
def test_coded_solver_reaches_scikit_learns_optimum(min_count: int) -> None:
    frame, y = clicks()
    expected_coef, expected_intercept, expected = sklearn_fit(frame, y, min_count)
    chunks = FeatureChunks(lambda: [narrow(frame.iloc[i:i + 6000]) for i in range(0, len(frame), 6000)],
                           rows=len(frame))
    vectorizer, coded, columns = fit_and_code(chunks, min_count=min_count)
    assert columns == list(frame.columns) and coded.rows == len(frame)
    coef, intercept, iterations = fit_coded(coded, y == 1, max_iter=MAX_ITER)
    assert 0 < iterations < MAX_ITER
    np.testing.assert_allclose(coef, expected_coef, atol=2e-3)
    assert abs(intercept - expected_intercept) < 2e-3
    x = encode_frame(vectorizer, frame)
    np.testing.assert_allclose(1 / (1 + np.exp(-(x @ coef + intercept))), expected, atol=2e-4)
    # the product and its transpose are the CSR matrix's
    w = np.random.default_rng(1).normal(size=coded.n_features)
    np.testing.assert_allclose(coded.product(w, 0.5), x @ w + 0.5, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(2).normal(size=len(frame))
    np.testing.assert_allclose(coded.transposed_product(g), x.T @ g, rtol=1e-10, atol=1e-9)


def test_logistic_trainer_artifact_scores_like_scikit_learn() -> None:
    frame, y = clicks(seed=3)
    _coef, _intercept, expected = sklearn_fit(frame, y)
    model = make_trainer("logistic", max_iter=MAX_ITER).fit(frame, y, seed=0)
    scores = load_predictor(model.artifact, model.artifact_format).predict_proba(frame.head(500).to_dict("records"))
    np.testing.assert_allclose(scores, expected[:500], atol=2e-4)
    assert model.training["iterations"] > 0 and sum(model.training["feature_importance"].values()) == \
        pytest.approx(1.0)


def test_coded_solver_rejects_missing_numbers_as_scikit_learn_does() -> None:
    frame, y = clicks(n=200)
    frame.loc[3, "price"] = np.nan
    with pytest.raises(InvalidInput, match="'price' holds NaN"):
        make_trainer("logistic").fit(frame, y, seed=0)


def test_few_valued_columns_share_code_arrays_and_many_valued_numbers_stay_dense() -> None:
    frame, _y = clicks()
    _vectorizer, coded, _ = fit_and_code(FeatureChunks.of(narrow(frame)))
    grouped = [c.name for g in coded.groups for c in g.columns]
    # the texts and the 0/1 flag are codes, packed into groups of at most GROUP_CELLS combinations
    assert sorted(grouped) == ["fiber", "in_stock", "product", "query"]
    assert [name for name, _i, _v in coded.numeric] == ["price"]  # ~20,000 distinct values: a dense column
    assert all(int(np.prod(g.shape)) <= GROUP_CELLS and g.codes.dtype == np.uint16 for g in coded.groups)
    assert len(coded.groups) == 1 and coded.nbytes == len(frame) * (2 + 8)


def test_a_text_column_with_more_values_than_a_group_holds_gets_wide_codes() -> None:
    rng = np.random.default_rng(4)
    n = 70000  # every user once: more values than uint16 codes hold
    frame = pd.DataFrame({"user": [f"u{i}" for i in rng.permutation(n)], "fiber": rng.choice(["a", "b"], n),
                          "price": rng.integers(0, 5, n).astype(float)})
    vectorizer, coded, _ = fit_and_code(frame)
    (alone,) = [g for g in coded.groups if [c.name for c in g.columns] == ["user"]]
    assert alone.codes.dtype == np.int32
    x = encode_frame(vectorizer, frame)
    w = rng.normal(size=coded.n_features)
    np.testing.assert_allclose(coded.product(w, -0.25), x @ w - 0.25, rtol=1e-12, atol=1e-12)
    g = rng.normal(size=n)
    np.testing.assert_allclose(coded.transposed_product(g), x.T @ g, rtol=1e-10, atol=1e-9)
    sums, squares = coded.moments()
    np.testing.assert_allclose(sums, np.asarray(x.sum(axis=0)).ravel(), rtol=1e-12)
    np.testing.assert_allclose(squares, np.asarray(x.multiply(x).sum(axis=0)).ravel(), rtol=1e-12)


def test_a_number_that_changes_between_the_passes_is_refused() -> None:
    frame, _y = clicks(n=300)
    passes = iter([frame, frame.assign(in_stock=frame["in_stock"] * 2)])
    chunks = FeatureChunks(lambda: [next(passes)], rows=len(frame))
    with pytest.raises(InvalidInput, match="'in_stock' gave other values.*same on every pass"):
        fit_and_code(chunks)
