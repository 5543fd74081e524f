"""Metric values equal scikit-learn's on the same inputs, ties included; bad input gets a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from yarnit.core.errors import InvalidInput
from yarnit.evaluation import (
    UndefinedMetric,
    bias,
    brier_score,
    calibration,
    expected_calibration_error,
    log_loss,
    mean_average_precision,
    ndcg_at_k,
    pr_auc,
    precision_at_k,
    recall_at_k,
    roc_auc,
)


def _data(seed: int, n: int = 3000, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(int)
    p = np.clip(rng.normal(0.08 + 0.12 * y, 0.08), 0.0, 1.0)
    if decimals is not None:
        p = np.round(p, decimals)  # many ties
    return y, p


@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 2), (2, 1), (3, 3)])
def test_binary_metrics_equal_scikit_learn(seed: int, decimals: int | None) -> None:
    y, p = _data(seed, decimals=decimals)
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), abs=1e-12)
    assert log_loss(y, p, eps=1e-3) == pytest.approx(skm.log_loss(y, np.clip(p, 1e-3, 1 - 1e-3)), abs=1e-12)
    assert brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert bias(y, p) == pytest.approx(p.mean() - y.mean(), abs=1e-15)


def test_calibration_buckets_equal_calibration_curve_and_ece_is_the_weighted_gap() -> None:
    y, p = _data(4, decimals=1)  # values on bucket edges exercise the edge rule
    result = calibration(y, p, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    filled = [b for b in result.buckets if b.n]
    np.testing.assert_allclose([b.positive_rate for b in filled], prob_true, atol=1e-12)
    np.testing.assert_allclose([b.mean_prediction for b in filled], prob_pred, atol=1e-12)
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], p)
    by_hand = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum() for b in np.unique(bins)) / len(y)
    assert result.ece == pytest.approx(by_hand, abs=1e-12)
    assert expected_calibration_error(y, p) == pytest.approx(by_hand, abs=1e-12)
    assert sum(b.n for b in result.buckets) == len(y)


def test_log_loss_is_finite_for_confidently_wrong_predictions() -> None:
    assert log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(1e-7), rel=1e-9)


def _ranking(seed: int, groups: int = 200, size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((groups, size)) < 0.2).astype(float)
    y[:7] = 0.0  # some groups without a relevant item
    s = np.round(rng.random((groups, size)), 1)  # ties
    g = np.repeat(np.arange(groups), size)
    order = rng.permutation(groups * size)  # input order must not matter
    return y, s, g[order], order


@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_ndcg_equals_scikit_learn_ndcg_score(k: int) -> None:
    y, s, g, order = _ranking(10)
    flat_y, flat_s = y.ravel()[order], s.ravel()[order]
    assert ndcg_at_k(flat_y, flat_s, g, k=k, groups_without_relevant="zero") == pytest.approx(
        skm.ndcg_score(y, s, k=k), abs=1e-12)
    keep = y.sum(axis=1) > 0
    assert ndcg_at_k(flat_y, flat_s, g, k=k) == pytest.approx(skm.ndcg_score(y[keep], s[keep], k=k), abs=1e-12)
    graded = np.random.default_rng(k).integers(0, 4, y.shape).astype(float)
    assert ndcg_at_k(graded.ravel()[order], flat_s, g, k=k, groups_without_relevant="zero") == pytest.approx(
        skm.ndcg_score(graded, s, k=k), abs=1e-12)


def test_map_is_the_mean_of_scikit_learn_average_precision_over_groups_with_a_relevant_row() -> None:
    y, s, g, order = _ranking(11)
    expected = np.mean([skm.average_precision_score(y[i], s[i]) for i in range(len(y)) if y[i].sum() > 0])
    assert mean_average_precision(y.ravel()[order], s.ravel()[order], g) == pytest.approx(expected, abs=1e-12)


def test_precision_and_recall_at_k_average_tied_runs_like_ndcg() -> None:
    y = np.array([1, 0, 0, 1, 0, 1, 1, 0], dtype=float)
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.8, 0.7, 0.2])
    g = np.array(["a"] * 5 + ["b"] * 3)
    # group a: top 2 = 0.9 (relevant) + one of three tied 0.5s (1 of 3 relevant): 1 + 1/3 hits of 2
    # group b: top 2 = 0.8, 0.7, both relevant
    assert precision_at_k(y, s, g, k=2) == pytest.approx(((1 + 1 / 3) / 2 + 1.0) / 2)
    assert recall_at_k(y, s, g, k=2) == pytest.approx(((1 + 1 / 3) / 2 + 1.0) / 2)
    assert precision_at_k(y, s, g, k=10) == pytest.approx((2 / 5 + 2 / 3) / 2)  # divides by min(k, size)


def test_auc_with_one_label_class_is_undefined_with_the_reason() -> None:
    with pytest.raises(UndefinedMetric, match=r"AUC-ROC is undefined: all 4 labels are 0.*both positive and negative"):
        roc_auc([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(UndefinedMetric, match="PR-AUC is undefined: none of the 2 labels is positive"):
        pr_auc([0, 0], [0.1, 0.2])
    with pytest.raises(UndefinedMetric, match="none of the 1 groups has a relevant item"):
        ndcg_at_k([0, 0], [0.1, 0.2], ["a", "a"], k=1)


@pytest.mark.parametrize("y,p,message", [
    ([0, 1, 1], [0.1, 0.2], r"3 labels but 2 predictions; they must have the same length"),
    ([0, 1], [0.1, float("nan")], r"1 of 2 predictions are NaN or infinite \(first at row 1"),
    ([0, 2], [0.1, 0.2], r"Labels must be 0 or 1; row 1 has 2"),
    ([], [], r"0 labels and 0 predictions: there is nothing to evaluate"),
    ([0, 1], [0.1, 1.5], r"must be probabilities in \[0, 1\] for this metric; got values from 0.1 to 1.5"),
])
def test_bad_input_is_refused_with_a_clear_message(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        log_loss(y, p)


def test_auc_accepts_scores_outside_zero_one() -> None:
    assert roc_auc([0, 1, 0, 1], [-3.0, 2.0, 0.5, 7.0]) == skm.roc_auc_score([0, 1, 0, 1], [-3.0, 2.0, 0.5, 7.0])
