"""Monitoring: one statistics module and drift; SLOs, error budgets, burn-rate alerts and their Prometheus rules.

``distances.py`` holds every distribution distance (exact on arrays, bounded
from summaries); ``drift.py`` turns them into verdicts with defaults by type
and sample size (a significance test and an effect-size threshold).

``slo.py`` parses the SLO file; ``counts.py`` holds good/total events per
minute; ``burn.py`` turns them into budgets, burn rates and alerts on the
injected clock; ``rules.py`` writes the same SLOs as Prometheus rules named as
Sloth names them; ``policy.py`` refuses promotions while a budget is spent;
``sources.py`` holds what feeds the counts.
"""

from .burn import AlertReading, AlertTransition, BurnRateMonitor, SLISource, SLOStatus, WindowReading, evaluate
from .counts import EventCounts
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
from .policy import ErrorBudgetPolicy
from .slo import SLI_KINDS, SLO, AlertWindow, SLOFile, format_duration, load_slo_file, parse_duration, parse_slo_file
from .sources import CountsSource, read_counts_jsonl

__all__ = [
    "AlertReading",
    "AlertTransition",
    "AlertWindow",
    "BurnRateMonitor",
    "ColumnDrift",
    "CountsSource",
    "DatasetDrift",
    "DriftState",
    "ErrorBudgetPolicy",
    "Estimate",
    "EventCounts",
    "SLISource",
    "SLI_KINDS",
    "SLO",
    "SLOFile",
    "SLOStatus",
    "SliceVolume",
    "TestResult",
    "WindowReading",
    "categorical_jensen_shannon",
    "categorical_psi",
    "chi_square",
    "column_drift",
    "column_drift_from_profiles",
    "dataset_drift",
    "dataset_state",
    "evaluate",
    "format_duration",
    "jensen_shannon",
    "ks",
    "ks_from_quantiles",
    "l_infinity",
    "load_slo_file",
    "parse_duration",
    "parse_slo_file",
    "prediction_drift",
    "psi",
    "read_counts_jsonl",
    "slice_volume",
    "wasserstein_normed",
    "wasserstein_normed_from_quantiles",
]
