"""The label join's calibration map fits isotonic regression with numpy, and must agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from yarnit.monitoring.quality_summary import (
    N_BINS,
    QualitySummary,
    calibration_map,
    isotonic_fit,
)


def test_the_numpy_fit_predicts_what_scikit_learn_predicts() -> None:
    rng = np.random.default_rng(7)
    centres = (np.arange(N_BINS) + 0.5) / N_BINS
    for _ in range(60):
        n = int(rng.integers(1, 300))
        x = np.round(rng.random(n) * rng.choice([1.0, 0.3]), int(rng.choice([2, 6])))  # ties included
        y = np.clip(x + rng.normal(0, 0.2, n), 0, 1)
        w = rng.integers(1, 40, n).astype(float)
        expected = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y, sample_weight=w)
        xs, fitted = isotonic_fit(x, y, w)
        assert np.all(np.diff(xs) > 0) and np.all(np.diff(fitted) >= -1e-12)
        assert np.allclose(np.interp(centres, xs, fitted), expected.predict(centres), atol=1e-12)


def test_the_calibration_map_is_monotone_and_needs_enough_labels() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(5000) * 0.3
    summary = QualitySummary()
    summary.add_predictions(scores)
    summary.add_labelled(scores, (rng.random(5000) < scores * 0.5).astype(int))  # scores twice too high
    mapping = calibration_map(summary)
    assert mapping is not None and mapping.shape == (N_BINS,) and np.all(np.diff(mapping) >= 0)
    assert 0.05 < mapping[int(0.2 * N_BINS)] < 0.15  # a 0.2 score maps to about 0.1
    assert calibration_map(summary, min_labelled=10_000) is None
