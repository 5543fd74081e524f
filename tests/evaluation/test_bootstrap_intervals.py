"""Cell-based bootstrap intervals agree with a row-level bootstrap, and are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from yarnit.core.errors import InvalidInput
from yarnit.evaluation import Bootstrap, evaluate_binary, evaluate_ranking
from yarnit.evaluation.bootstrap import mean_interval

RESAMPLES = 1000


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.2 * x - 2.5)))).astype(int)
    p = 1 / (1 + np.exp(-(x - 2.4 + rng.normal(scale=0.3, size=n))))
    return y, p


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return _data(2000, seed=3)


@pytest.fixture(scope="module")
def row_bootstrap(sample: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[float, float]]:
    """The textbook bootstrap: redraw rows, recompute (AUC by ranks, PR-AUC by scikit-learn)."""
    from scipy.stats import rankdata

    y, p = sample
    rng = np.random.default_rng(4)
    stats: dict[str, list[float]] = {"auc": [], "pr_auc": [], "log_loss": [], "brier": [], "bias": [], "ece": []}
    edges = np.linspace(0, 1, 11)[1:-1]
    for _ in range(RESAMPLES):
        i = rng.integers(0, len(y), len(y))
        yy, pp = y[i], p[i]
        pos = yy == 1
        n1, n0 = pos.sum(), (~pos).sum()
        stats["auc"].append((rankdata(pp)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
        stats["pr_auc"].append(skm.average_precision_score(yy, pp))
        clipped = np.clip(pp, 1e-7, 1 - 1e-7)
        stats["log_loss"].append(-np.mean(np.where(pos, np.log(clipped), np.log(1 - clipped))))
        stats["brier"].append(np.mean((pp - yy) ** 2))
        stats["bias"].append(pp.mean() - yy.mean())
        b = np.searchsorted(edges, pp)
        stats["ece"].append(np.abs(np.bincount(b, weights=pp, minlength=10) - np.bincount(b, weights=yy, minlength=10))
                            .sum() / len(yy))
    return {k: tuple(np.quantile(v, [0.025, 0.975])) for k, v in stats.items()}  # type: ignore[misc]


@pytest.mark.parametrize("max_bins", [64, 2048])
def test_intervals_match_a_row_level_bootstrap(max_bins: int, sample: tuple[np.ndarray, np.ndarray],
                                               row_bootstrap: dict[str, tuple[float, float]]) -> None:
    y, p = sample
    result = evaluate_binary(y, {"candidate": p}, distribution="holdout",
                             bootstrap=Bootstrap(resamples=RESAMPLES, max_bins=max_bins, workers=1))
    ours = {m.metric: m for m in result.metrics}
    for metric, (low, high) in row_bootstrap.items():
        width = high - low
        assert ours[metric].ci_low == pytest.approx(low, abs=0.12 * width), metric
        assert ours[metric].ci_high == pytest.approx(high, abs=0.12 * width), metric
        assert ours[metric].ci_low <= ours[metric].value <= ours[metric].ci_high, metric


def test_the_same_seed_gives_the_same_intervals_whatever_the_threads() -> None:
    y, p = _data(5000, seed=5)
    groups = np.random.default_rng(0).integers(0, 4, len(y)).astype(str)
    import pandas as pd

    from yarnit.evaluation import Slices

    slices = Slices.from_frame(pd.DataFrame({"g": groups}), ["g"])
    one = evaluate_binary(y, {"candidate": p}, distribution="d", slices=slices, bootstrap=Bootstrap(workers=1))
    two = evaluate_binary(y, {"candidate": p}, distribution="d", slices=slices, bootstrap=Bootstrap(workers=2))
    assert [m.to_dict() for m in one.metrics] == [m.to_dict() for m in two.metrics]
    other = evaluate_binary(y, {"candidate": p}, distribution="d", bootstrap=Bootstrap(seed=1))
    assert other.metrics[0].ci != one.metrics[0].ci


def test_ranking_intervals_are_over_groups() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.15).astype(float)
    s = rng.random(4000) + 0.3 * y
    g = np.repeat(np.arange(400), 10)
    values = {m.metric: m for m in evaluate_ranking(y, s, g, k=5, distribution="d", bootstrap=Bootstrap())}
    for m in values.values():
        assert m.ci_low is not None and m.ci_low <= m.value <= m.ci_high
    per_group = np.random.default_rng(1).random(300)
    low, high = mean_interval(per_group, Bootstrap(), "x")
    half = 1.96 * per_group.std(ddof=1) / np.sqrt(len(per_group))
    assert low == pytest.approx(per_group.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(per_group.mean() + half, abs=0.15 * half)


@pytest.mark.parametrize("kwargs,message", [
    ({"resamples": 5}, "resamples must be an int in \\[10, 100000\\], got 5"),
    ({"confidence": 1.0}, "confidence must be in \\[0.5, 1\\), got 1.0"),
    ({"max_bins": 2}, "max_bins must be an int in \\[8, 1000000\\], got 2"),
])
def test_bad_bootstrap_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Bootstrap(**kwargs)  # type: ignore[arg-type]
