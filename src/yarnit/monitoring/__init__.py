"""Monitoring: the one statistics module and drift of columns, predictions and datasets.

``distances.py`` holds every distribution distance (exact on arrays, bounded
from summaries); ``drift.py`` turns them into verdicts with defaults by type
and sample size (a significance test and an effect-size threshold).
"""

from .distances import (
    Estimate,
    TestResult,
    categorical_jensen_shannon,
    categorical_psi,
    chi_square,
    jensen_shannon,
    ks,
    ks_from_quantiles,
    l_infinity,
    psi,
    wasserstein_normed,
    wasserstein_normed_from_quantiles,
)
from .drift import (
    ColumnDrift,
    DatasetDrift,
    DriftState,
    SliceVolume,
    column_drift,
    column_drift_from_profiles,
    dataset_drift,
    dataset_state,
    prediction_drift,
    slice_volume,
)

__all__ = [
    "ColumnDrift",
    "DatasetDrift",
    "DriftState",
    "Estimate",
    "SliceVolume",
    "TestResult",
    "categorical_jensen_shannon",
    "categorical_psi",
    "chi_square",
    "column_drift",
    "column_drift_from_profiles",
    "dataset_drift",
    "dataset_state",
    "jensen_shannon",
    "ks",
    "ks_from_quantiles",
    "l_infinity",
    "prediction_drift",
    "psi",
    "slice_volume",
    "wasserstein_normed",
    "wasserstein_normed_from_quantiles",
]
