"""The one statistics module: exact distances equal SciPy; summary distances stay inside their stated bounds."""

from __future__ import annotations

import doctest

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance as spatial

from yarnit.core import InvalidInput
from yarnit.data.statistics import profile
from yarnit.monitoring import distances as d

TOL = 1e-9


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [
        (rng.normal(size=500), rng.normal(0.3, 1.2, size=700)),
        (rng.lognormal(0, 2, size=3000), rng.lognormal(0.1, 2, size=2000)),
        (rng.integers(0, 7, size=400).astype(float), rng.integers(0, 9, size=300).astype(float)),  # ties
        (rng.exponential(size=20), rng.exponential(size=11)),
    ]


@pytest.mark.parametrize("case", range(4))
def test_ks_equals_scipy_ks_2samp(case: int) -> None:
    a, b = _pairs()[case]
    ours, ref = d.ks(a, b), stats.ks_2samp(a, b)
    assert abs(ours.statistic - ref.statistic) <= TOL and abs(ours.p_value - ref.pvalue) <= TOL


@pytest.mark.parametrize("case", range(4))
def test_batched_ks_statistic_equals_scipy_row_by_row(case: int) -> None:
    a, b = _pairs()[case]
    got = d.ks_statistic_batch(np.vstack([a, a[::-1]]), np.vstack([b, b]))
    assert np.allclose(got, stats.ks_2samp(a, b).statistic, atol=TOL, rtol=0)


@pytest.mark.parametrize("case", range(4))
def test_wasserstein_normed_equals_scipy_over_reference_std(case: int) -> None:
    a, b = _pairs()[case]
    assert abs(d.wasserstein_normed(a, b) - stats.wasserstein_distance(a, b) / np.std(a)) <= TOL


def test_numeric_nulls_are_dropped_before_computing() -> None:
    a = np.array([1.0, np.nan, 2.0, 3.0])
    b = [1.0, None, 2.0, 3.5]
    assert d.wasserstein_normed(a, b) == pytest.approx(stats.wasserstein_distance([1, 2, 3], [1, 2, 3.5])
                                                        / np.std([1, 2, 3]), abs=TOL)
    assert d.ks(a, b).statistic == pytest.approx(stats.ks_2samp([1, 2, 3], [1, 2, 3.5]).statistic, abs=TOL)


def test_chi_square_equals_scipy_chi2_contingency() -> None:
    ref = {"a": 120, "b": 30, "c": 50}
    cur = {"a": 100, "b": 60, "d": 5}
    ours = d.chi_square(ref, cur)
    table = np.array([[120, 30, 50, 0], [100, 60, 0, 5]])
    res = stats.chi2_contingency(table)
    assert abs(ours.statistic - res.statistic) <= TOL and abs(ours.p_value - res.pvalue) <= TOL
    two = d.chi_square({"x": 40, "y": 60}, {"x": 55, "y": 45})  # one degree of freedom: Yates, like SciPy
    res2 = stats.chi2_contingency(np.array([[40, 60], [55, 45]]))
    assert abs(two.statistic - res2.statistic) <= TOL and abs(two.p_value - res2.pvalue) <= TOL


def test_categorical_distances_follow_their_stated_conventions() -> None:
    ref, cur = {"a": 50, "b": 50}, {"a": 80, "b": 10, "c": 10}
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.8, 0.1, 0.1])
    assert d.l_infinity(ref, cur) == (pytest.approx(0.4), "b")
    assert d.categorical_jensen_shannon(ref, cur) == pytest.approx(spatial.jensenshannon(p, q, base=2), abs=TOL)
    pe = np.where(p == 0, d.EPSILON, p)
    assert d.categorical_psi(ref, cur) == pytest.approx(float(np.sum((q - pe) * np.log(q / pe))), abs=TOL)
    assert d.category_counts(["a", None, float("nan"), "a"]) == {"a": 2, None: 2}


def test_numeric_psi_and_js_use_equal_frequency_reference_bins() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=3000), rng.normal(0.5, size=3000)
    edges = np.unique(np.quantile(a, np.arange(1, 30) / 30))
    pa_ = np.bincount(np.searchsorted(edges, a, side="right"), minlength=30) / a.size
    pb_ = np.bincount(np.searchsorted(edges, b, side="right"), minlength=30) / b.size
    assert d.jensen_shannon(a, b) == pytest.approx(spatial.jensenshannon(pa_, pb_, base=2), abs=TOL)
    pbe = np.where(pb_ == 0, d.EPSILON, pb_)
    assert d.psi(a, b) == pytest.approx(float(np.sum((pbe - pa_) * np.log(pbe / pa_))), abs=TOL)


def test_empty_side_gives_nan_never_a_number_or_crash() -> None:
    for value in (d.wasserstein_normed([], [1.0]), d.psi([1.0], [np.nan]), d.jensen_shannon([], []),
                  d.ks([1.0], []).p_value, d.chi_square({}, {"a": 1}).p_value, d.l_infinity({"a": 1}, {})[0],
                  d.categorical_psi({}, {}), d.categorical_jensen_shannon({"a": 2}, {})):
        assert np.isnan(value)
    assert d.wasserstein_normed_from_quantiles(None, [1.0] * 101, 1.0) is None
    assert d.ks_from_quantiles([1.0] * 101, None) is None


def _column(values: np.ndarray):  # type: ignore[no-untyped-def]
    return profile(pa.table({"v": values})).columns["v"]


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_unchanged_heavy_tailed_column_reads_near_zero_from_profiles(sigma: float) -> None:
    # The old estimator integrated the 101 profile quantiles including min and max: a log-normal column with
    # sigma=2 and no change at all read about 1.6 (sixteen times the 0.1 threshold).
    rng = np.random.default_rng(int(sigma * 10))
    a, b = rng.lognormal(0, sigma, 10_000), rng.lognormal(0, sigma, 10_000)
    ca, cb = _column(a), _column(b)
    est = d.wasserstein_normed_from_quantiles(ca.quantiles, cb.quantiles, ca.std)
    assert est is not None and est.value < 0.05  # half the default 0.1 threshold
    exact = d.wasserstein_normed(a, b)
    assert est.lower - 1e-3 <= exact <= est.upper + 1e-3


@pytest.mark.parametrize("shift", [0.0, 0.2, 1.0])
def test_summary_distances_bracket_the_exact_ones(shift: float) -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=10_000), rng.normal(shift, size=8_000)
    ca, cb = _column(a), _column(b)
    w = d.wasserstein_normed_from_quantiles(ca.quantiles, cb.quantiles, ca.std)
    k = d.ks_from_quantiles(ca.quantiles, cb.quantiles)
    assert w is not None and k is not None
    exact_w, exact_k = d.wasserstein_normed(a, b), d.ks(a, b).statistic
    assert w.lower <= exact_w <= w.upper and abs(w.value - exact_w) < 0.01
    assert k.lower <= exact_k <= k.upper and k.max_error <= 0.02 + TOL


def test_mismatched_quantile_summaries_are_refused_with_the_lengths() -> None:
    with pytest.raises(InvalidInput, match="101 levels.*got 101 and 5"):
        d.wasserstein_normed_from_quantiles([0.0] * 101, [0.0] * 5, 1.0)


def test_module_examples_hold() -> None:
    assert doctest.testmod(d).failed == 0


def test_ks_from_quantiles_treats_a_constant_column_as_one_atom() -> None:
    same = d.ks_from_quantiles([5.0] * 101, [5.0] * 101)
    moved = d.ks_from_quantiles([5.0] * 101, [6.0] * 101)
    assert same is not None and moved is not None
    assert same.value == 0.0 and moved.value == 1.0
    exact = d.ks(np.full(50, 5.0), np.r_[np.full(25, 5.0), np.full(25, 6.0)]).statistic
    half = d.ks_from_quantiles([5.0] * 101, list(np.quantile(np.r_[np.full(25, 5.0), np.full(25, 6.0)],
                                                              d.DEFAULT_LEVELS)))
    assert half is not None and half.lower <= exact <= half.upper
