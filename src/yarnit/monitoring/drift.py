"""Column and dataset drift between a reference window and a current one.

Every statistic comes from :mod:`yarnit.monitoring.distances`. The default
rule works at any sample size because it asks two questions at once:

* **Is the change real?** A two-sample test: KS for numbers, chi-square for
  categories; p-value below ``alpha`` (default 0.05).
* **Is it big enough to matter?** An effect size: normed Wasserstein for
  numbers, Jensen-Shannon distance (base 2) for categories; at least
  ``threshold`` (default 0.1, Evidently's large-sample threshold).

A column drifts only when both say yes. On a 200-row window the effect size
of pure noise often passes 0.1, but the test holds false alarms to ``alpha``;
on a 10-million-row window every trivial shift is "significant", but the
effect-size threshold ignores it. This is the sample-size rule: below about
1,000 rows the test decides, above it the effect size does (Evidently switches
method at 1,000 reference rows; we let both gates run at every size).

A numeric column with at most ``CATEGORICAL_MAX_UNIQUE`` distinct reference
values is treated as categorical (Evidently's rule). Any single method can be
asked for instead (``method="psi"``, ``"l_infinity"``, ``"ks"``, …): then the
one statistic is compared with ``threshold`` alone (p-value methods drift
when p < threshold, distances when value ≥ threshold).

A side with no values (after dropping nulls) gives state ``no_data``, never a
crash and never ``no_drift``. Dataset drift is raised iff the share of drifted
columns, among columns with data, is at least ``drift_share`` (default 0.5),
optionally weighted by feature importance; with no column holding data the
dataset state is ``no_data``.

Windows too big to hold are compared from their mergeable statistics profiles
(:func:`column_drift_from_profiles`, bounded estimates); :func:`slice_volume`
checks per-slice row counts; :func:`prediction_drift` reads model outputs.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = column_drift(rng.normal(size=5000), rng.normal(1.0, size=5000), column="price")
    >>> (r.state.value, r.method, r.threshold)
    ('drift', 'ks+wasserstein_normed', 0.1)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np
from scipy import stats

from yarnit.core.errors import InvalidInput

from . import distances as d

ALPHA = 0.05
EFFECT_THRESHOLD = 0.1
DRIFT_SHARE = 0.5
CATEGORICAL_MAX_UNIQUE = 5

_P_VALUE_METHODS = ("ks", "chi2")
_NUMERIC_METHODS = ("ks", "wasserstein_normed", "psi", "jensen_shannon")
_CATEGORICAL_METHODS = ("chi2", "psi", "jensen_shannon", "l_infinity")
_DEFAULT_THRESHOLDS = {"ks": ALPHA, "chi2": ALPHA, "wasserstein_normed": 0.1, "psi": 0.1, "jensen_shannon": 0.1,
                       "l_infinity": 0.01}


class DriftState(str, Enum):
    DRIFT = "drift"
    NO_DRIFT = "no_drift"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column.

    ``value``/``threshold`` are the effect size (or the single statistic when a
    method was chosen); ``p_value``/``alpha`` the significance gate of the
    default rule (None when not used).
    """

    column: str
    kind: str
    method: str
    value: float | None
    threshold: float
    reference_size: int
    current_size: int
    state: DriftState
    p_value: float | None = None
    alpha: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.state is DriftState.DRIFT

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "method": self.method, "value": self.value,
                "threshold": self.threshold, "p_value": self.p_value, "alpha": self.alpha,
                "reference_size": self.reference_size, "current_size": self.current_size,
                "state": self.state.value, "detail": self.detail}


@dataclass(frozen=True)
class DatasetDrift:
    """Dataset-level drift: raised iff the (importance-weighted) share of drifted columns ≥ ``drift_share``."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    share: float | None
    state: DriftState
    weighted: bool = False

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise InvalidInput(f"No drift result for column {name!r}; columns: {[c.column for c in self.columns]}.")

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "share": self.share, "drift_share": self.drift_share,
                "weighted": self.weighted, "drifted_columns": self.drifted_columns,
                "columns": [c.to_dict() for c in self.columns]}


def _is_numeric(values: Any) -> bool:
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "iuf":
        return True
    if arr.dtype.kind == "b":
        return False
    present = [v for v in arr.ravel().tolist() if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def _category_counts(values: Any) -> dict[Hashable, int]:
    """Counts of the present values; nulls (None/NaN) are dropped like for numbers (missingness is its own check)."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind in "iubUS":  # no nulls possible: count in one vectorized pass
        keys, counts = np.unique(arr.ravel(), return_counts=True)
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))
    if arr.dtype.kind == "f":
        keys, counts = np.unique(arr[~np.isnan(arr)], return_counts=True)
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))
    counts_all = d.category_counts(arr.ravel().tolist())
    counts_all.pop(None, None)
    return counts_all


def _sorted_values(values: Any, slot: str) -> np.ndarray:
    """The present numbers, sorted, in a reusable buffer (``slot``) inside :func:`d.reusing_buffers`.

    The caller's array is never modified; the result lives until the next call with the same slot.
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        arr = values.astype(np.float64, copy=False).ravel()
        present = ~np.isnan(arr)
        size = arr.size if present.all() else int(np.count_nonzero(present))
        out = d._scratch(slot, size, np.float64)
        if size == arr.size:
            out[:] = arr
        else:
            np.compress(present, arr, out=out)
    else:
        out = d.numeric_values(values)
    out.sort()
    return out


def _distinct_sorted(values: np.ndarray) -> int:
    """How many distinct values a sorted array holds, exactly up to CATEGORICAL_MAX_UNIQUE + 1 (a cheap bound)."""
    if values.size == 0:
        return 0
    probe = values[:: max(1, values.size // 64)]  # already more distinct values than a category: done
    if int(np.count_nonzero(probe[1:] != probe[:-1])) + 1 > CATEGORICAL_MAX_UNIQUE:
        return CATEGORICAL_MAX_UNIQUE + 1
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1


def column_drift(reference: Any, current: Any, *, column: str = "value", kind: str | None = None,
                 method: str | None = None, threshold: float | None = None, alpha: float = ALPHA) -> ColumnDrift:
    """Drift of one column between ``reference`` and ``current`` values (arrays, lists or Series).

    Args:
        kind: ``"numeric"`` or ``"categorical"``; inferred from the values when None (numbers with at most
            ``CATEGORICAL_MAX_UNIQUE`` distinct reference values count as categorical).
        method: None for the default rule (test + effect size), or one statistic of
            ``_NUMERIC_METHODS`` / ``_CATEGORICAL_METHODS``.
        threshold: the effect-size threshold (default rule) or the single method's threshold.
        alpha: significance level of the default rule's test.
    """
    ref_sorted: np.ndarray | None = None  # sorted once: the distinct count, KS and Wasserstein all read it
    if kind is None:
        kind = "numeric" if _is_numeric(reference) and _is_numeric(current) else "categorical"
        if kind == "numeric":
            ref_sorted = _sorted_values(reference, "reference")
            if 0 < _distinct_sorted(ref_sorted) <= CATEGORICAL_MAX_UNIQUE:
                kind = "categorical"
    if kind not in ("numeric", "categorical"):
        raise InvalidInput(f"kind must be 'numeric' or 'categorical', got {kind!r}.")
    allowed = _NUMERIC_METHODS if kind == "numeric" else _CATEGORICAL_METHODS
    if method is not None and method not in allowed:
        raise InvalidInput(f"method {method!r} does not apply to a {kind} column; choose one of {list(allowed)}.")
    if kind == "numeric":
        ref = ref_sorted if ref_sorted is not None else _sorted_values(reference, "reference")
        cur = _sorted_values(current, "current")
        n_ref, n_cur = int(ref.size), int(cur.size)
    else:
        ref_c, cur_c = _category_counts(reference), _category_counts(current)
        n_ref, n_cur = sum(ref_c.values()), sum(cur_c.values())
    name = method or ("ks+wasserstein_normed" if kind == "numeric" else "chi2+jensen_shannon")
    limit = threshold if threshold is not None else _DEFAULT_THRESHOLDS.get(method or "", EFFECT_THRESHOLD)
    if n_ref == 0 or n_cur == 0:
        return ColumnDrift(column, kind, name, None, limit, n_ref, n_cur, DriftState.NO_DATA,
                           alpha=None if method else alpha,
                           detail={"reason": f"{'reference' if n_ref == 0 else 'current'} window has no values"})
    detail: dict[str, Any] = {}
    if method is None:
        if kind == "numeric":
            test, effect = d.ks_and_wasserstein_normed(ref, cur, presorted=True)
        else:
            test, effect = d.chi_square(ref_c, cur_c), d.categorical_jensen_shannon(ref_c, cur_c)
        drifted = test.p_value < alpha and effect >= limit
        detail["statistic"] = test.statistic
        return ColumnDrift(column, kind, name, effect, limit, n_ref, n_cur,
                           DriftState.DRIFT if drifted else DriftState.NO_DRIFT, test.p_value, alpha, detail)
    if kind == "numeric":
        value = {"ks": lambda: d.ks(ref, cur).p_value, "wasserstein_normed": lambda: d.wasserstein_normed(ref, cur),
                 "psi": lambda: d.psi(ref, cur), "jensen_shannon": lambda: d.jensen_shannon(ref, cur)}[method]()
    elif method == "chi2":
        value = d.chi_square(ref_c, cur_c).p_value
    elif method == "l_infinity":
        value, category = d.l_infinity(ref_c, cur_c)
        detail["most_changed_value"] = category
    else:
        value = (d.categorical_psi if method == "psi" else d.categorical_jensen_shannon)(ref_c, cur_c)
    drifted = value < limit if method in _P_VALUE_METHODS else value >= limit
    return ColumnDrift(column, kind, name, value, limit, n_ref, n_cur,
                       DriftState.DRIFT if drifted else DriftState.NO_DRIFT, detail=detail)


class ColumnSummary(Protocol):
    """What drift reads from a statistics profile (``yarnit.data.statistics.ColumnStatistics``)."""

    @property
    def type(self) -> str: ...
    @property
    def quantiles(self) -> list[float] | None: ...
    @property
    def std(self) -> float | None: ...
    @property
    def value_counts(self) -> dict[str, int] | None: ...
    @property
    def present(self) -> int: ...


def column_drift_from_profiles(reference: ColumnSummary, current: ColumnSummary, *, column: str = "value",
                               threshold: float = EFFECT_THRESHOLD, alpha: float = ALPHA,
                               levels: Sequence[float] = d.DEFAULT_LEVELS) -> ColumnDrift:
    """The default rule from two mergeable profiles instead of the values (for windows too big to hold).

    Categories (exact value counts): chi-square and Jensen-Shannon are exact. Numbers (quantiles): the effect
    size is :func:`~yarnit.monitoring.distances.wasserstein_normed_from_quantiles`'s estimate (its interval
    in ``detail``); the test is the asymptotic KS p-value at the *lower* bound of the KS statistic from
    quantiles, so a summary never raises an alarm the values would not. A profile without quantiles or value
    counts (redacted, high-cardinality) gives ``no_data`` with the reason. A summary with a ``rank_error``
    attribute (quantiles from a sketch, e.g. a KLL sketch of served traffic) widens both intervals by it.
    """
    n_ref, n_cur = int(reference.present), int(current.present)
    categorical = reference.value_counts is not None and current.value_counts is not None and \
        reference.type not in ("float32", "float64")
    kind = "categorical" if categorical else "numeric"
    name = "chi2+jensen_shannon" if categorical else "ks+wasserstein_normed"
    if n_ref == 0 or n_cur == 0 or not categorical and not (reference.quantiles and current.quantiles):
        reason = ("reference" if n_ref == 0 else "current") + " window has no values" if not (n_ref and n_cur) \
            else "the profiles hold no quantiles or value counts for this column (redacted or high-cardinality)"
        return ColumnDrift(column, kind, name, None, threshold, n_ref, n_cur, DriftState.NO_DATA, alpha=alpha,
                           detail={"reason": reason})
    detail: dict[str, Any] = {"from": "profiles"}
    errors = (float(getattr(reference, "rank_error", 0.0) or 0.0), float(getattr(current, "rank_error", 0.0) or 0.0))
    if categorical:
        test = d.chi_square(reference.value_counts or {}, current.value_counts or {})
        effect, p_value = d.categorical_jensen_shannon(reference.value_counts or {}, current.value_counts or {}), \
            test.p_value
    else:
        w = d.wasserstein_normed_from_quantiles(reference.quantiles, current.quantiles, reference.std, levels=levels,
                                                rank_error=errors)
        k = d.ks_from_quantiles(reference.quantiles, current.quantiles, levels=levels, rank_error=errors)
        assert w is not None and k is not None  # both summaries checked above
        effect = w.value
        p_value = float(stats.kstwobign.sf(k.lower * np.sqrt(n_ref * n_cur / (n_ref + n_cur))))
        detail |= {"effect_interval": [w.lower, w.upper], "ks_statistic_interval": [k.lower, k.upper]}
        if any(errors):
            detail["rank_error"] = list(errors)
    drifted = p_value < alpha and effect >= threshold
    return ColumnDrift(column, kind, name, effect, threshold, n_ref, n_cur,
                       DriftState.DRIFT if drifted else DriftState.NO_DRIFT, p_value, alpha, detail)


@dataclass(frozen=True)
class SliceVolume:
    """Rows of one slice value in the current window against the reference, relative to the whole."""

    slice: str
    reference_rows: int
    current_rows: int
    change: float | None
    overall_change: float | None
    state: DriftState

    def to_dict(self) -> dict[str, Any]:
        return {"slice": self.slice, "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "change": self.change, "overall_change": self.overall_change, "state": self.state.value}


def slice_volume(reference: Mapping[str, int], current: Mapping[str, int], *, max_drop: float = 0.5,
                 min_rows: int = 20) -> list[SliceVolume]:
    """Per-slice volume: a slice drifts when its rows fell more than ``max_drop`` below the overall change.

    One country's rows vanishing while the total barely moves is biased data loss (ch. 2 and 7). Slices with
    fewer than ``min_rows`` reference rows are ``no_data`` (too few to judge); so is every slice when either
    window is empty. A slice only in the current window is reported with ``change`` None and ``no_drift``.
    """
    if not 0 < max_drop <= 1:
        raise InvalidInput(f"max_drop must be in (0, 1], got {max_drop!r} (0.5: a slice may lose half its rows).")
    keys = sorted(set(reference) | set(current), key=str)
    before = np.array([reference.get(k, 0) for k in keys], dtype=float)
    after = np.array([current.get(k, 0) for k in keys], dtype=float)
    total_before, total_after = before.sum(), after.sum()
    if total_before == 0 or total_after == 0:
        return [SliceVolume(str(k), int(b), int(a), None, None, DriftState.NO_DATA)
                for k, b, a in zip(keys, before, after, strict=True)]
    overall = total_after / total_before
    ratio = np.divide(after, before, out=np.full_like(after, np.nan), where=before > 0)
    out = []
    for k, b, a, r in zip(keys, before, after, ratio, strict=True):
        if b == 0:
            out.append(SliceVolume(str(k), 0, int(a), None, overall - 1, DriftState.NO_DRIFT))
            continue
        state = DriftState.NO_DATA if b < min_rows else \
            DriftState.DRIFT if r < overall * (1 - max_drop) else DriftState.NO_DRIFT
        out.append(SliceVolume(str(k), int(b), int(a), float(r - 1), float(overall - 1), state))
    return out


def prediction_drift(reference: Any, current: Any, **options: Any) -> ColumnDrift:
    """Drift of a model's predictions (scores are numeric, labels categorical): :func:`column_drift` on them."""
    return column_drift(reference, current, column="prediction", **options)


def dataset_state(results: Sequence[ColumnDrift], *, drift_share: float = DRIFT_SHARE,
                  importance: Mapping[str, float] | None = None) -> DatasetDrift:
    """Combine column verdicts: drift iff the share of drifted columns (among those with data) ≥ ``drift_share``.

    With ``importance`` (feature → non-negative weight, e.g. the model's gain importance) each column counts
    with its weight, so drift in the features the model leans on weighs more; a column absent from
    ``importance`` weighs 0.
    """
    if not 0 < drift_share <= 1:
        raise InvalidInput(f"drift_share must be in (0, 1], got {drift_share!r} (0.5: half the columns drift).")
    judged = [r for r in results if r.state is not DriftState.NO_DATA]
    weights = np.array([1.0 if importance is None else float(importance.get(r.column, 0.0)) for r in judged])
    if (weights < 0).any():
        raise InvalidInput("feature importance weights must be ≥ 0.")
    if not judged or weights.sum() == 0:
        return DatasetDrift(tuple(results), drift_share, None, DriftState.NO_DATA, importance is not None)
    share = float(np.sum(weights * np.array([r.drifted for r in judged])) / weights.sum())
    state = DriftState.DRIFT if share >= drift_share - 1e-12 else DriftState.NO_DRIFT
    return DatasetDrift(tuple(results), drift_share, share, state, importance is not None)


def dataset_drift(reference: Mapping[str, Any] | Any, current: Mapping[str, Any] | Any, *,
                  columns: Iterable[str] | None = None, drift_share: float = DRIFT_SHARE,
                  importance: Mapping[str, float] | None = None, **options: Any) -> DatasetDrift:
    """Column drift of every monitored column (mappings of arrays, DataFrames or Arrow tables) and the verdict.

    A column missing from the current window is ``no_data`` for that column.
    """
    ref_cols, cur_cols = _columns(reference), _columns(current)
    names = list(columns) if columns is not None else list(ref_cols)
    unknown = [n for n in names if n not in ref_cols]
    if unknown:
        raise InvalidInput(f"columns {unknown} are not in the reference data; it has {list(ref_cols)[:50]}.")
    with d.reusing_buffers():  # one set of merge temporaries for every column, released at the end
        results = [column_drift(ref_cols[n], cur_cols.get(n, []), column=n, **options) for n in names]
    return dataset_state(results, drift_share=drift_share, importance=importance)


def _columns(data: Any) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    if hasattr(data, "column_names") and hasattr(data, "column"):  # pyarrow.Table
        return {n: data.column(n).to_numpy(zero_copy_only=False) for n in data.column_names}
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # pandas.DataFrame
        return {str(n): data[n].to_numpy() for n in data.columns}
    raise InvalidInput(f"drift needs a mapping of columns, a DataFrame or an Arrow table, got {type(data).__name__}.")


__all__ = [
    "ALPHA",
    "DRIFT_SHARE",
    "EFFECT_THRESHOLD",
    "ColumnDrift",
    "ColumnSummary",
    "DatasetDrift",
    "DriftState",
    "SliceVolume",
    "column_drift",
    "column_drift_from_profiles",
    "dataset_drift",
    "dataset_state",
    "prediction_drift",
    "slice_volume",
]
