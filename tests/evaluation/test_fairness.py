"""Group fairness by Fairlearn's definitions, computed by hand here (Fairlearn is not a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from yarnit.core.errors import InvalidInput
from yarnit.evaluation import Bootstrap, group_fairness


def _data(seed: int = 0, n: int = 6000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["en", "es", "de", "no"], size=n, p=[0.5, 0.25, 0.15, 0.1])
    shift = {"en": 0.0, "es": 0.05, "de": -0.03, "no": 0.02}
    y = (rng.random(n) < 0.2).astype(int)
    p = np.clip(rng.normal(0.15 + 0.15 * y + np.vectorize(shift.get)(groups), 0.1), 0, 1)
    return y, p, groups


def _by_hand(y: np.ndarray, selected: np.ndarray, groups: np.ndarray) -> tuple[float, float, dict[str, tuple]]:
    """Fairlearn: demographic_parity_difference and equalized_odds_difference (between_groups, worst_case)."""
    rates = {}
    for g in np.unique(groups):
        m = groups == g
        selection = selected[m].mean()
        tpr = selected[m & (y == 1)].sum() / (m & (y == 1)).sum()
        fpr = selected[m & (y == 0)].sum() / (m & (y == 0)).sum()
        rates[str(g)] = (selection, tpr, fpr)
    sel = [r[0] for r in rates.values()]
    tpr = [r[1] for r in rates.values()]
    fpr = [r[2] for r in rates.values()]
    return max(sel) - min(sel), max(max(tpr) - min(tpr), max(fpr) - min(fpr)), rates


@pytest.mark.parametrize("threshold", [0.1, 0.25, 0.4])
def test_rates_and_differences_follow_fairlearns_definitions(threshold: float) -> None:
    y, p, groups = _data()
    result = group_fairness(y, p, groups, threshold=threshold, column="language", distribution="holdout")
    dp, eo, rates = _by_hand(y, p >= threshold, groups)
    assert result.demographic_parity_difference.value == pytest.approx(dp, abs=1e-12)
    assert result.equalized_odds_difference.value == pytest.approx(eo, abs=1e-12)
    for g in result.groups:
        assert (g.selection_rate, g.true_positive_rate, g.false_positive_rate) == pytest.approx(rates[g.group],
                                                                                                abs=1e-12)
    assert result.demographic_parity_difference.slice == "language=*"
    assert {m.slice for m in result.group_metrics} == {f"language={g}" for g in ("de", "en", "es", "no")}


def test_intervals_come_from_an_exact_bootstrap_of_the_count_table() -> None:
    y, p, groups = _data(1)
    result = group_fairness(y, p, groups, threshold=0.2, column="language", distribution="holdout",
                            bootstrap=Bootstrap(resamples=500))
    for m in (result.demographic_parity_difference, result.equalized_odds_difference, *result.group_metrics):
        assert m.ci is not None and m.ci[0] <= m.value <= m.ci[1]
    again = group_fairness(y, p, groups, threshold=0.2, column="language", distribution="holdout",
                           bootstrap=Bootstrap(resamples=500))
    assert again.to_dict() == result.to_dict()


def test_a_group_without_positives_is_reported_undefined_not_zero() -> None:
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.9, 0.1])
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    result = group_fairness(y, p, groups, threshold=0.5, column="country", distribution="holdout")
    c = next(g for g in result.groups if g.group == "c")
    assert c.true_positive_rate is None and c.false_positive_rate == 0.5
    assert any("country=c has no positive label: its TPR is undefined (Fairlearn would report 0)" in n
               for n in result.notes)
    # TPR difference over a (1.0) and b (0.0) only; FPR over all three (0, 1, 0.5)
    assert result.true_positive_rate_difference.value == 1.0
    assert result.false_positive_rate_difference.value == 1.0


def test_small_groups_can_be_left_out_of_the_differences() -> None:
    y, p, groups = _data(2)
    groups = groups.copy()
    groups[:3] = "is"
    result = group_fairness(y, p, groups, threshold=0.2, column="language", distribution="holdout",
                            min_group_rows=50)
    assert any("language=is has 3 rows (< 50)" in n for n in result.notes)
    dp, _eo, _ = _by_hand(y[groups != "is"], (p >= 0.2)[groups != "is"], groups[groups != "is"])
    assert result.demographic_parity_difference.value == pytest.approx(dp, abs=1e-12)


def test_bad_fairness_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"threshold must be a probability in \[0, 1\], got 2"):
        group_fairness([0, 1], [0.1, 0.2], ["a", "b"], threshold=2, column="c", distribution="d")
    with pytest.raises(InvalidInput, match="Got 2 labels but 3 values of sensitive column 'c'"):
        group_fairness([0, 1], [0.1, 0.2], ["a", "b", "c"], threshold=0.5, column="c", distribution="d")
