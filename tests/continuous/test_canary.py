"""RELIABILITY.md §7 target 9: the canary judge (Kayenta's Mann-Whitney classifier and weighted-sum scoring)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from yarnit.continuous.canary import (
    HIGH,
    LOW,
    NODATA,
    PASS,
    MetricResult,
    MetricSpec,
    Thresholds,
    distribution,
    hodges_lehmann,
    mann_whitney,
    proportions,
    score,
)
from yarnit.core.errors import InvalidInput

LATENCY = MetricSpec("latency_ms", confidence=0.98, tolerance=0.25)
TRIALS = 500


def lognormal(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    """Latency-like samples with the given mean and coefficient of variation."""
    sigma2 = np.log1p(cv**2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)


def test_target9_same_distribution_passes_in_at_least_98_percent_of_500_trials() -> None:
    rng = np.random.default_rng(9)
    verdicts = [mann_whitney(lognormal(rng, 100, 0.3, 50), lognormal(rng, 100, 0.3, 50), LATENCY).verdict
                for _ in range(TRIALS)]
    assert verdicts.count(PASS) / TRIALS >= 0.98, verdicts.count(PASS)


def test_target9_fifty_percent_slower_canary_is_high_in_at_least_99_percent() -> None:
    rng = np.random.default_rng(10)
    verdicts = [mann_whitney(lognormal(rng, 100, 0.3, 50), lognormal(rng, 150, 0.3, 50), LATENCY).verdict
                for _ in range(TRIALS)]
    assert verdicts.count(HIGH) / TRIALS >= 0.99, verdicts.count(HIGH)


def test_faster_canary_is_low_but_only_fails_when_direction_says_so() -> None:
    rng = np.random.default_rng(11)
    base, fast = lognormal(rng, 100, 0.3, 200), lognormal(rng, 50, 0.3, 200)
    assert mann_whitney(base, fast, MetricSpec("lat", direction="either")).verdict == LOW
    assert mann_whitney(base, fast, MetricSpec("lat", direction="increase")).verdict == PASS


def test_hodges_lehmann_interval_covers_the_shift_and_matches_the_pairwise_median() -> None:
    rng = np.random.default_rng(12)
    b, c = rng.normal(10, 1, 80), rng.normal(12, 1, 80)
    estimate, low, high = hodges_lehmann(b, c, 0.98)
    assert estimate == pytest.approx(np.median(np.subtract.outer(c, b)))
    assert low < 2.0 < high and low < estimate < high
    # the U test agrees: the shift is significant
    assert stats.mannwhitneyu(c, b).pvalue < 0.02


def test_too_few_samples_is_nodata_never_pass() -> None:
    result = mann_whitney([1.0] * 49, [1.0] * 100, LATENCY)
    assert result.verdict == NODATA and "49" in result.reason


def test_two_proportion_test_flags_error_rate_and_respects_the_absolute_bound() -> None:
    spec = MetricSpec("error_rate", kind="rate")
    assert proportions(2, 2000, 10, 200, spec).verdict == HIGH  # 0.1 % vs 5 %
    assert proportions(2, 2000, 0, 200, spec).verdict == PASS
    bound = MetricSpec("error_rate", kind="rate", max_rate=0.01)
    high = proportions(0, 0, 8, 100, bound)  # 92 % success: surely below 99 %, with or without a baseline
    assert high.verdict == HIGH and "bound" in high.reason
    assert proportions(0, 0, 1, 99, bound).verdict == PASS  # one error in 99 does not prove a 1 % error rate
    ctr = MetricSpec("ctr", kind="rate", direction="decrease", required=False)
    assert proportions(500, 5000, 20, 1000, ctr).verdict == LOW  # 10 % -> 2 %
    with pytest.raises(InvalidInput, match="more events than trials"):
        proportions(5, 4, 0, 100, spec)


def test_prediction_distribution_shift_is_flagged_by_ks() -> None:
    rng = np.random.default_rng(13)
    spec = MetricSpec("predictions", kind="distribution", tolerance=0.1)
    assert distribution(rng.beta(2, 8, 1000), rng.beta(2, 8, 1000), spec).verdict == PASS
    assert distribution(rng.beta(2, 8, 1000), rng.beta(8, 2, 1000), spec).verdict == HIGH


def _r(name: str, verdict: str, *, group: str = "g", critical: bool = False, required: bool = True) -> MetricResult:
    return MetricResult(name, "latency", group, verdict, critical, required, "")


def test_target9_scoring_critical_failure_and_nodata_give_zero() -> None:
    results = [_r(f"m{i}", PASS) for i in range(9)] + [_r("errors", HIGH, critical=True)]
    judged = score(results)
    assert judged.score == 0 and judged.decision == "fail" and "errors" in judged.reason
    half = [_r("a", PASS), _r("b", PASS), _r("c", NODATA), _r("d", NODATA)]
    judged = score(half)
    assert judged.score == 0 and judged.decision == "nodata"
    assert score([_r("a", PASS), _r("b", PASS), _r("c", NODATA, required=False)]).decision == "pass"
    # a canary failing every request: no latencies to compare, but its critical error rate fails it
    failing = score([_r("errors", HIGH, critical=True), _r("lat", NODATA), _r("preds", NODATA)])
    assert failing.score == 0 and failing.decision == "fail"


def test_target9_summary_at_least_95_promotes_below_75_fails_between_holds() -> None:
    twenty = [_r(f"m{i}", PASS) for i in range(20)]
    assert score(twenty[:19] + [_r("x", HIGH)]).score == 95 and score(twenty[:19] + [_r("x", HIGH)]).decision == "pass"
    five = [_r(f"m{i}", PASS) for i in range(5)]
    assert score(five[:4] + [_r("x", HIGH)]).decision == "marginal"  # 80
    assert score(five[:3] + [_r("x", HIGH), _r("y", LOW)]).decision == "fail"  # 60
    # group weights: a failing heavy group drags the summary down; unweighted groups share what is left
    grouped = [_r("lat", PASS, group="latency"), _r("err", HIGH, group="errors"), _r("p", PASS, group="quality")]
    judged = score(grouped, group_weights={"errors": 50})
    assert judged.groups == {"latency": 100.0, "errors": 0.0, "quality": 100.0} and judged.score == 50
    with pytest.raises(InvalidInput, match="marginal"):
        Thresholds(pass_score=70, marginal=80)
    with pytest.raises(InvalidInput, match="without metrics"):
        score(grouped, group_weights={"nope": 10})
