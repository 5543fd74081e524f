"""The one-merge KS + normed Wasserstein used by column drift equals scipy's two functions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from yarnit.monitoring import distances as d
from yarnit.monitoring.drift import column_drift


@pytest.mark.parametrize(("n", "m", "decimals", "shift"), [
    (100_000, 100_000, None, 0.0),   # equal sizes, continuous, no change
    (60_000, 25_000, None, 0.15),    # unequal sizes, a shift in scipy's slow p-value band
    (30_000, 45_000, 1, 0.05),       # heavy ties (one decimal)
    (12_000, 11_000, 0, 0.3),        # integers: ties everywhere
    (5_000, 8_000, None, 0.1),       # below 10,000: scipy's exact p-value
])
def test_ks_and_wasserstein_normed_equals_scipy(n, m, decimals, shift):
    rng = np.random.default_rng(n + m)
    a, b = rng.lognormal(size=n), rng.lognormal(shift, size=m)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    test, effect = d.ks_and_wasserstein_normed(a, b)
    expected = stats.ks_2samp(a, b)
    assert test.statistic == pytest.approx(float(expected.statistic), abs=1e-12)
    assert test.p_value == pytest.approx(float(expected.pvalue), abs=1e-9)
    assert effect == pytest.approx(stats.wasserstein_distance(a, b) / max(np.std(a), 1e-3), abs=1e-9)


def test_column_drift_reports_the_same_figures_as_the_separate_functions():
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(size=20_000), np.append(rng.normal(0.2, size=20_000), [np.nan, np.nan])
    result = column_drift(ref, cur, column="price")
    assert result.state.value == "drift" and result.current_size == 20_000
    assert result.p_value == pytest.approx(d.ks(ref, cur).p_value, abs=1e-9)
    assert result.value == pytest.approx(d.wasserstein_normed(ref, cur), abs=1e-9)
    assert np.isnan(d.ks_and_wasserstein_normed([], cur)[1])  # a side with no values: nan, never a crash


@pytest.mark.parametrize("n", [141.0, 2_000.0, 50_000.0, 100_000.0, 300_000.0])
@pytest.mark.parametrize("nx2", [0.5, 2.0, 2.2, 2.5, 4.0, 18.0, 50.0, 200.0, 369.0, 400.0])
def test_kstwo_sf_equals_scipy_in_every_branch(n, nx2):
    x = float(np.sqrt(nx2 / n))
    assert d.kstwo_sf(x, n) == pytest.approx(float(stats.kstwo.sf(x, n)), abs=1e-9)


def test_dataset_drift_reuses_buffers_without_touching_the_callers_data_or_the_figures():
    from yarnit.monitoring.drift import dataset_drift

    rng = np.random.default_rng(3)
    reference = {f"c{i}": rng.normal(size=15_000 + 1000 * i) for i in range(4)}
    current = {f"c{i}": rng.normal(0.3 * (i % 2), size=12_000 + 500 * i) for i in range(4)}
    reference["c1"][::7] = np.nan
    copies = {k: v.copy() for k, v in (reference | {f"cur{k}": v for k, v in current.items()}).items()}
    together = dataset_drift(reference, current)
    alone = [column_drift(reference[k], current[k], column=k) for k in reference]
    assert [c.to_dict() for c in together.columns] == [c.to_dict() for c in alone]
    assert together.drifted_columns == ["c1", "c3"]
    for key, value in (reference | {f"cur{k}": v for k, v in current.items()}).items():
        np.testing.assert_array_equal(value, copies[key])  # the caller's arrays are never sorted in place
