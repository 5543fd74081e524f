"""Drift: false-alarm rates, detection power, effect-size thresholds, dataset share, no-data states.

RELIABILITY.md §7 targets 12 (false alarms), 13 (power) and 14 (dataset drift share), seeded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from yarnit.core import InvalidInput
from yarnit.monitoring import (
    column_drift_from_profiles,
    slice_volume,
    ColumnDrift,
    DriftState,
    column_drift,
    dataset_drift,
    dataset_state,
    ks,
    prediction_drift,
    psi,
)
from yarnit.monitoring.distances import l_infinity


# -- target 12: false alarms ---------------------------------------------------
def test_ks_false_alarm_rate_on_iid_normals_is_near_alpha() -> None:
    rng = np.random.default_rng(1200)
    a, b = rng.normal(size=(1000, 500)), rng.normal(size=(1000, 500))
    alarms = np.mean([ks(x, y).p_value < 0.05 for x, y in zip(a, b, strict=True)])
    assert 0.03 <= alarms <= 0.07


def test_psi_of_iid_samples_of_10000_stays_below_002() -> None:
    rng = np.random.default_rng(1201)
    values = [psi(rng.normal(size=10_000), rng.normal(size=10_000), bins=30) for _ in range(300)]
    assert np.mean(np.array(values) < 0.02) >= 0.99


# -- target 13: detection power ------------------------------------------------
def test_ks_detects_a_half_sigma_shift_at_500_rows() -> None:
    rng = np.random.default_rng(1300)
    a, b = rng.normal(size=(500, 500)), rng.normal(0.5, size=(500, 500))
    detected = np.mean([ks(x, y).p_value < 0.05 for x, y in zip(a, b, strict=True)])
    assert detected >= 0.99


def test_a_fifth_sigma_shift_at_10000_rows_reaches_the_wasserstein_threshold() -> None:
    rng = np.random.default_rng(1301)
    for _ in range(20):
        r = column_drift(rng.normal(size=10_000), rng.normal(0.2, size=10_000), column="x")
        assert r.value is not None and r.value >= 0.1 and r.state is DriftState.DRIFT


def test_a_planted_five_point_category_shift_reads_005_and_trips_001() -> None:
    rng = np.random.default_rng(1302)
    cats = np.array(["merino", "cotton", "alpaca", "acrylic"])
    before = np.array([0.40, 0.30, 0.20, 0.10])
    after = np.array([0.45, 0.30 - 0.05 * 0.3 / 0.6, 0.20 - 0.05 * 0.2 / 0.6, 0.10 - 0.05 * 0.1 / 0.6])
    values, trips = [], 0
    for _ in range(500):
        ref, cur = rng.choice(cats, 10_000, p=before), rng.choice(cats, 10_000, p=after)
        r = column_drift(ref, cur, column="fiber", method="l_infinity", threshold=0.01)
        values.append(r.value)
        trips += r.state is DriftState.DRIFT
    v = np.array(values)
    # Sampling noise of a share difference at n = 10,000 is about 0.007: ±0.02 is a 3-sigma band, so a few of
    # 500 trials may fall just outside it; the mean sits on the planted shift and every trial trips 0.01.
    assert abs(v.mean() - 0.05) <= 0.002 and np.mean(np.abs(v - 0.05) <= 0.02) >= 0.99 and trips == 500


# -- effect-size thresholds by sample size -------------------------------------
def test_a_trivial_shift_on_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(5)
    r = column_drift(rng.normal(size=1_000_000), rng.normal(0.02, size=1_000_000), column="x")
    assert r.p_value is not None and r.p_value < 1e-6  # the test alone would alarm
    assert r.value is not None and r.value < 0.1 and r.state is DriftState.NO_DRIFT


def test_noise_on_200_rows_rarely_drifts_and_a_real_shift_does() -> None:
    rng = np.random.default_rng(6)
    states = [column_drift(rng.normal(size=200), rng.normal(size=200)).state for _ in range(300)]
    effect_alone = np.mean([column_drift(rng.normal(size=200), rng.normal(size=200), method="wasserstein_normed"
                                         ).drifted for _ in range(300)])
    assert np.mean([s is DriftState.DRIFT for s in states]) <= 0.07 < effect_alone  # the effect size alone is noisy
    assert column_drift(rng.normal(size=200), rng.normal(1.0, size=200)).state is DriftState.DRIFT


def test_categorical_default_uses_chi_square_and_jensen_shannon() -> None:
    rng = np.random.default_rng(8)
    same = column_drift(rng.choice(["a", "b", "c"], 5000), rng.choice(["a", "b", "c"], 5000))
    moved = column_drift(rng.choice(["a", "b", "c"], 5000), rng.choice(["a", "b", "c"], 5000, p=[0.7, 0.2, 0.1]))
    assert same.method == moved.method == "chi2+jensen_shannon" and same.kind == "categorical"
    assert same.state is DriftState.NO_DRIFT and moved.state is DriftState.DRIFT
    few_numbers = column_drift(rng.integers(0, 3, 2000), rng.integers(0, 3, 2000))
    assert few_numbers.kind == "categorical"  # at most 5 distinct values: counted, not integrated


def test_result_names_method_value_threshold_and_sizes() -> None:
    r = column_drift([1.0, 2.0, 3.0, np.nan], [2.0, 3.0, 4.0], column="price", kind="numeric",
                     method="wasserstein_normed", threshold=0.5)
    d = r.to_dict()
    assert (d["method"], d["threshold"], d["reference_size"], d["current_size"], d["state"]) == (
        "wasserstein_normed", 0.5, 3, 3, "drift")
    assert d["value"] == pytest.approx(1 / np.std([1.0, 2.0, 3.0]))


def test_unknown_method_or_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInput, match="choose one of"):
        column_drift([1.0], [1.0], kind="numeric", method="l_infinity")
    with pytest.raises(InvalidInput, match="'numeric' or 'categorical'"):
        column_drift([1.0], [1.0], kind="text")


# -- no data -------------------------------------------------------------------
@pytest.mark.parametrize("current", [[], [np.nan, np.nan], [None]])
def test_an_empty_window_is_no_data_never_a_pass(current: list) -> None:
    r = column_drift(np.arange(100.0), current, column="price", kind="numeric")
    assert r.state is DriftState.NO_DATA and r.value is None and not r.drifted
    assert "current window has no values" in r.detail["reason"]
    c = column_drift([], ["a"], column="colour", kind="categorical")
    assert c.state is DriftState.NO_DATA and "reference" in c.detail["reason"]


def test_dataset_with_no_data_anywhere_is_no_data() -> None:
    result = dataset_drift({"x": np.arange(50.0), "y": ["a", "b"] * 25}, {"x": [], "y": []})
    assert result.state is DriftState.NO_DATA and result.share is None
    assert dataset_drift({"x": np.arange(50.0)}, {}).column("x").state is DriftState.NO_DATA


# -- target 14: dataset drift share --------------------------------------------
@pytest.mark.parametrize(("drifted", "expected"), [(0, DriftState.NO_DRIFT), (49, DriftState.NO_DRIFT),
                                                   (50, DriftState.DRIFT), (100, DriftState.DRIFT)])
def test_dataset_drift_is_raised_iff_half_the_columns_drift(drifted: int, expected: DriftState) -> None:
    rng = np.random.default_rng(14)
    reference = {f"c{i:03d}": rng.normal(size=2000) for i in range(100)}
    current = {name: rng.normal(1.0 if i < drifted else 0.0, size=2000) for i, name in enumerate(reference)}
    result = dataset_drift(pd.DataFrame(reference), pa.table(current))
    assert len(result.drifted_columns) == drifted
    assert result.share == pytest.approx(drifted / 100) and result.state is expected


def test_feature_importance_weights_the_share() -> None:
    def verdict(name: str, drifted: bool) -> ColumnDrift:
        return ColumnDrift(name, "numeric", "ks+wasserstein_normed", 0.3 if drifted else 0.01, 0.1, 100, 100,
                           DriftState.DRIFT if drifted else DriftState.NO_DRIFT)

    results = [verdict("price", True)] + [verdict(f"f{i}", False) for i in range(4)]
    assert dataset_state(results).state is DriftState.NO_DRIFT  # 1 of 5 columns
    weighted = dataset_state(results, importance={"price": 0.6, "f0": 0.1, "f1": 0.1, "f2": 0.1, "f3": 0.1})
    assert weighted.state is DriftState.DRIFT and weighted.share == pytest.approx(0.6) and weighted.weighted
    with pytest.raises(InvalidInput, match="drift_share"):
        dataset_state(results, drift_share=0)


def test_prediction_drift_reads_scores_and_labels() -> None:
    rng = np.random.default_rng(15)
    scores = prediction_drift(rng.beta(2, 8, 3000), rng.beta(4, 6, 3000))
    assert scores.column == "prediction" and scores.kind == "numeric" and scores.drifted
    labels = prediction_drift(rng.choice(["buy", "skip"], 3000, p=[0.2, 0.8]), rng.choice(["buy", "skip"], 3000))
    assert labels.kind == "categorical" and labels.drifted


def test_categorical_l_infinity_names_the_category() -> None:
    assert l_infinity(["a"] * 9 + ["b"], ["a"] * 5 + ["b"] * 5) == (pytest.approx(0.4), "a")


# -- from profiles (mergeable summaries) ---------------------------------------
def _profile(**columns: object):  # type: ignore[no-untyped-def]
    from yarnit.data.statistics import profile

    return profile(pa.table(columns))


def test_profile_drift_agrees_with_the_value_drift() -> None:
    rng = np.random.default_rng(16)
    ref = {"price": rng.lognormal(3, 1, 20_000), "fiber": rng.choice(["merino", "cotton", "alpaca"], 20_000)}
    same = {"price": rng.lognormal(3, 1, 20_000), "fiber": rng.choice(["merino", "cotton", "alpaca"], 20_000)}
    moved = {"price": rng.lognormal(3.3, 1, 20_000),
             "fiber": rng.choice(["merino", "cotton", "alpaca"], 20_000, p=[0.6, 0.3, 0.1])}
    pr, ps, pm = _profile(**ref), _profile(**same), _profile(**moved)
    for name in ("price", "fiber"):
        assert column_drift_from_profiles(pr.columns[name], ps.columns[name], column=name).state \
            is column_drift(ref[name], same[name]).state is DriftState.NO_DRIFT
        from_profiles = column_drift_from_profiles(pr.columns[name], pm.columns[name], column=name)
        exact = column_drift(ref[name], moved[name])
        assert from_profiles.state is exact.state is DriftState.DRIFT
    w = column_drift_from_profiles(pr.columns["price"], pm.columns["price"])
    lo, hi = w.detail["effect_interval"]
    assert lo <= column_drift(ref["price"], moved["price"]).value <= hi


def test_profile_drift_on_a_redacted_or_empty_profile_is_no_data() -> None:
    full = _profile(price=np.arange(100.0)).columns["price"]
    redacted = _profile(price=np.arange(100.0)).redact(["price"]).columns["price"]
    empty = _profile(price=pa.array([None, None], pa.float64())).columns["price"]
    assert column_drift_from_profiles(full, redacted).state is DriftState.NO_DATA
    r = column_drift_from_profiles(full, empty)
    assert r.state is DriftState.NO_DATA and r.detail["reason"] == "current window has no values"


# -- per-slice volume ----------------------------------------------------------
def test_a_vanishing_slice_drifts_while_the_total_barely_moves() -> None:
    before = {"DE": 1000, "FR": 1000, "US": 1000, "JP": 10}
    after = {"DE": 1300, "FR": 1300, "US": 300, "JP": 0, "IT": 50}
    by_slice = {s.slice: s for s in slice_volume(before, after)}
    assert by_slice["US"].state is DriftState.DRIFT and by_slice["US"].change == pytest.approx(-0.7)
    assert by_slice["DE"].state is DriftState.NO_DRIFT
    assert by_slice["JP"].state is DriftState.NO_DATA  # 10 reference rows: too few to judge
    assert by_slice["IT"].change is None and by_slice["IT"].state is DriftState.NO_DRIFT
    assert {s.state for s in slice_volume(before, {})} == {DriftState.NO_DATA}


def test_module_example_holds() -> None:
    import doctest

    import yarnit.monitoring.drift as drift_module

    assert doctest.testmod(drift_module).failed == 0
