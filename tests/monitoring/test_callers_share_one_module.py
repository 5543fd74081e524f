"""Data validation and skew checks read their distances from yarnit.monitoring.distances."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import stats

from yarnit.data import DatasetSchema
from yarnit.data.statistics import profile
from yarnit.data.validation import validate
from yarnit.features.skew import linf_shares
from yarnit.features.skew import wasserstein_normed as skew_wasserstein_normed
from yarnit.monitoring import distances

NUMERIC = DatasetSchema.from_yaml("columns:\n  basket: {type: float64}\n")


def _drift(report) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {a.column: a.evidence for a in report.anomalies if a.kind == "distribution_change"}


def test_validation_does_not_flag_an_unchanged_heavy_tailed_column() -> None:
    rng = np.random.default_rng(2)
    before = pa.table({"basket": rng.lognormal(3, 2, 10_000)})
    after = pa.table({"basket": rng.lognormal(3, 2, 10_000)})
    report = validate(after, NUMERIC,
                      previous=profile(before))
    assert _drift(report) == {}


def test_validation_still_flags_a_real_numeric_shift_with_the_shared_estimate() -> None:
    rng = np.random.default_rng(4)
    before, after = rng.normal(100, 10, 5_000), rng.normal(103, 10, 5_000)
    previous = profile(pa.table({"basket": before}))
    report = validate(pa.table({"basket": after}), NUMERIC,
                      previous=previous)
    evidence = _drift(report)["basket"]
    exact = stats.wasserstein_distance(before, after) / np.std(before)
    assert evidence["metric"] == "wasserstein_normed" and abs(evidence["distance"] - exact) < 0.01
    low, high = evidence["distance_interval"]
    assert low <= exact <= high


def test_validation_l_infinity_is_the_shared_one() -> None:
    before = pa.table({"colour": ["red"] * 50 + ["blue"] * 50})
    after = pa.table({"colour": ["red"] * 80 + ["blue"] * 20})
    schema = DatasetSchema.from_yaml("columns:\n  colour: {type: string}\n")
    evidence = _drift(validate(after, schema, previous=profile(before)))["colour"]
    assert evidence["metric"] == "l_infinity" and abs(evidence["distance"] - 0.3) < 1e-12
    assert evidence["most_changed_value"] in ("red", "blue")


def test_skew_wasserstein_is_exact_on_a_log_normal_column() -> None:
    # The old skew estimator (1,000 quantiles) was off by up to 9 % on log-normal columns.
    rng = np.random.default_rng(9)
    served, offline = rng.lognormal(0, 1.5, 4_000), rng.lognormal(0.05, 1.5, 3_000)
    exact = stats.wasserstein_distance(served, offline) / np.std(offline)
    assert abs(skew_wasserstein_normed(served, offline) - exact) <= 1e-9
    assert skew_wasserstein_normed(served, offline) == distances.wasserstein_normed(offline, served)


def test_skew_linf_counts_nulls_as_a_category() -> None:
    assert abs(linf_shares(["a", None, None, "b"], ["a", "a", "b", "b"]) - 0.5) < 1e-12
    assert np.isnan(linf_shares([], ["a"]))


def test_validation_flags_a_category_column_whose_values_all_vanished() -> None:
    schema = DatasetSchema.from_yaml("columns:\n  colour: {type: string}\n")
    before = pa.table({"colour": ["red"] * 70 + ["blue"] * 30})
    after = pa.table({"colour": pa.array([None] * 100, pa.string())})
    evidence = _drift(validate(after, schema, previous=profile(before)))["colour"]
    assert evidence["distance"] == 0.7 and evidence["most_changed_value"] == "red"
