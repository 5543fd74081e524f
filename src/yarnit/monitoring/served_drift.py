"""Drift of served traffic, from the hourly summaries of :mod:`yarnit.monitoring.traffic`.

:func:`drift_report` compares a window of a model's served traffic with a
reference: by default the statistics profile of the training dataset of the
version serving in the window (followed through the registry's
``dataset_version_ids``), or an earlier window of served traffic. Every column
goes through :func:`yarnit.monitoring.drift.column_drift_from_profiles`, with
the served side's quantiles carrying the KLL sketch's rank error (and a
sampled training profile its DKW bound), so the intervals reported hold for
the sketches too. Categories kept on one side and folded into the other's
``other`` bucket are folded on both sides. It reads stored summaries only,
never the log, and says how old they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from yarnit.core.clock import Clock
from yarnit.core.errors import InvalidInput

from .traffic import (
    OTHER,
    RANK_ERROR,
    ColumnSummary,
    NumericSummary,
    is_private_name,
    iso_utc,
    status,
    window_column,
    window_prediction,
    window_summary,
)


@dataclass(frozen=True)
class ProfileColumn:
    """What :func:`~yarnit.monitoring.drift.column_drift_from_profiles` reads, with the quantiles' rank error."""

    type: str
    quantiles: list[float] | None
    std: float | None
    value_counts: dict[str, int] | None
    present: int
    rank_error: float = 0.0


def dkw_rank_error(n: int, confidence: float = 0.99) -> float:
    """Dvoretzky-Kiefer-Wolfowitz bound on a sample CDF's error: quantiles of an ``n``-row sample."""
    return math.sqrt(math.log(2 / (1 - confidence)) / (2 * n)) if n > 0 else 1.0


def _collapse(ref: Mapping[str, int], ref_other: int, cur: Mapping[str, int],
              cur_other: int) -> tuple[dict[str, int], dict[str, int]]:
    """Both sides' counts over the values each side knows exactly; the rest (and each ``other``) in ``__other__``.

    A value kept on one side may hide in the other side's ``other`` (when it has one): it is folded into
    ``__other__`` on both, so the two tables partition the same way and chi-square stays valid.
    """
    known = [k for k in dict.fromkeys([*ref, *cur]) if (k in ref or not ref_other) and (k in cur or not cur_other)]
    r = {k: int(ref.get(k, 0)) for k in known}
    c = {k: int(cur.get(k, 0)) for k in known}
    r_rest, c_rest = sum(ref.values()) - sum(r.values()) + ref_other, sum(cur.values()) - sum(c.values()) + cur_other
    if r_rest or c_rest:
        r[OTHER], c[OTHER] = r_rest, c_rest
    return r, c


def _numeric_column(summary: NumericSummary) -> ProfileColumn:
    from .distances import DEFAULT_LEVELS

    return ProfileColumn("float64", summary.quantiles(DEFAULT_LEVELS), summary.std, None, summary.count, RANK_ERROR)


def _column_pair(name: str, reference: Any, current: ColumnSummary | None) -> tuple[Any, Any] | str:
    """(reference, current) profile columns of one feature, or why it cannot be compared."""
    from yarnit.data.statistics import SAMPLE_ROWS

    if current is None or current.rows == current.nulls:
        return "the current window has no values of this column"
    if reference is None:
        return "the reference has no values of this column"
    if isinstance(reference, ColumnSummary):  # a window of served traffic
        if reference.rows == reference.nulls:
            return "the reference window has no values of this column"
        if reference.kind == "numeric" and current.numeric.count:
            return _numeric_column(reference.numeric), _numeric_column(current.numeric)
        rc, cc = reference.categorical, current.categorical
        r, c = _collapse(rc.counts, rc.other, cc.counts, cc.other)
        return (ProfileColumn("string", None, None, r, rc.count), ProfileColumn("string", None, None, c, cc.count))
    # a training dataset's statistics profile (yarnit.data.statistics.ColumnStatistics)
    if reference.type in ("float32", "float64") or (reference.value_counts is None and reference.quantiles):
        if not reference.quantiles:
            return "the reference profile holds no quantiles of this column (redacted)"
        if not current.numeric.count:
            return "the current window holds no numeric values of this column"
        error = dkw_rank_error(SAMPLE_ROWS) if reference.present > SAMPLE_ROWS else 0.0
        ref = ProfileColumn("float64", list(reference.quantiles), reference.std, None, reference.present, error)
        return ref, _numeric_column(current.numeric)
    if reference.value_counts is None:
        return "the reference profile holds no quantiles or value counts (redacted or high-cardinality)"
    cc = current.categorical
    if not cc.count:
        return "the current window holds no categorical values of this column"
    r, c = _collapse(reference.value_counts, 0, cc.counts, cc.other)
    return (ProfileColumn("string", None, None, r, reference.present), ProfileColumn("string", None, None, c, cc.count))


def _no_data(name: str, reason: str, threshold: float, alpha: float) -> Any:
    from .drift import ColumnDrift, DriftState

    return ColumnDrift(name, "unknown", "ks+wasserstein_normed|chi2+jensen_shannon", None, threshold, 0, 0,
                       DriftState.NO_DATA, alpha=alpha, detail={"reason": reason})


def _training_reference(workspace: Any, model: str, version: str | None,
                        features: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    """The statistics profile of the training dataset of ``model``'s serving version, and how it was found."""
    from yarnit.core.errors import NotFound
    from yarnit.data import Datasets
    from yarnit.registry import ModelRegistry

    registry = ModelRegistry(workspace)
    found: dict[str, Any] = {"kind": "training_dataset"}
    try:
        mv = registry.get(model, int(version)) if version not in (None, "none") and str(version).isdigit() \
            else registry.resolve(model, "production")
    except NotFound as exc:
        found["reason"] = f"no registered model version to follow to its training data ({exc})"
        return None, found
    found["model_version"] = mv.version
    found["version_source"] = "most requests in the window" if version not in (None, "none") else "production alias"
    wanted = set(features)
    best, best_overlap = None, -1
    for dataset_id in mv.dataset_version_ids:
        try:
            dv = Datasets(workspace).get_by_id(dataset_id)
        except NotFound:
            continue
        stats = dv.stats()
        if stats is None:
            continue
        stats = stats.redact(dv.personal_columns)
        overlap = len(wanted & set(stats.columns))
        if overlap > best_overlap:
            best, best_overlap = (dv, stats), overlap
    if best is None:
        found["reason"] = (f"model version {mv.ref} records no training dataset with a statistics profile "
                           f"(dataset_version_ids: {list(mv.dataset_version_ids)})")
        return None, found
    dv, stats = best
    found.update(dataset=dv.ref, rows=stats.row_count, personal_columns=sorted(dv.personal_columns))
    importance = None
    for where in (mv.metrics, mv.signature, mv.params):
        value = where.get("feature_importance") if isinstance(where, Mapping) else None
        if isinstance(value, Mapping) and value:
            importance = {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))}
            break
    found["importance"] = importance
    found["inputs"] = sorted(mv.signature.get("inputs", {})) if isinstance(mv.signature.get("inputs"), Mapping) \
        else None
    found["personal"] = set(dv.personal_columns)
    return stats, found


def parse_window(text: str, what: str = "--window") -> int:
    """Seconds in ``1h``/``1d``/``7d``… (InvalidInput naming ``what`` otherwise)."""
    from yarnit.core.errors import ConfigError

    from .slo import parse_duration

    try:
        return parse_duration(text, what)
    except ConfigError as exc:
        raise InvalidInput(str(exc)) from None


def parse_time(text: str, what: str = "--at") -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO 8601 time such as 2026-03-01T10:00:00Z, got {text!r}.") from None
    if when.tzinfo is None:
        raise InvalidInput(f"{what} needs a time zone (e.g. {text}Z for UTC), got {text!r}.")
    return when.astimezone(timezone.utc)


def _earlier(when: datetime, seconds: float, what: str) -> datetime:
    """``when`` minus ``seconds``; a window reaching before year 1 is the caller's mistake, not a crash (a 422)."""
    from datetime import timedelta

    try:
        return when - timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidInput(f"{what} reaches before the year 1 from {when.isoformat()}: give a shorter window or a "
                           "later time.") from None


def parse_reference_window(text: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``START/END`` (ISO 8601) or a duration ``7d``: the window as long as the current one, that much earlier."""

    if "/" in text:
        a, b = text.split("/", 1)
        ref = (parse_time(a, "--reference-window start"), parse_time(b, "--reference-window end"))
        if ref[1] <= ref[0]:
            raise InvalidInput(f"--reference-window must end after it starts, got {text!r}.")
        return ref
    shift = parse_window(text, "--reference-window (a START/END interval or a shift such as 7d)")
    return _earlier(start, shift, "--reference-window"), _earlier(end, shift, "--reference-window")


def drift_report(workspace: Any, model: str, *, window: int | str = 86400, at: datetime | None = None,
                 reference_window: tuple[datetime, datetime] | str | None = None,
                 threshold: float | None = None, alpha: float | None = None, drift_share: float | None = None,
                 clock: Clock | None = None) -> dict[str, Any]:
    """Drift of ``model``'s served traffic in ``[at - window, at)`` against a reference, from stored summaries.

    The reference is the training dataset of the version serving in the window (the one that answered most
    requests, else the ``production`` alias), found through the registry, with its statistics profile; or
    ``reference_window`` (an earlier window of served traffic). Per feature: the default rule of
    :mod:`yarnit.monitoring.drift` (test + effect size) from the profiles, with the intervals of the
    estimates widened by the sketch's rank error. Predictions are compared with the reference window, or
    with the previous window of the same length when the reference is a training dataset (it holds no
    predictions). Slice volume against the training profile's slices when it has them, else that window.
    Never reads the log: ``summaries`` says how old the stored summaries are.
    """

    from yarnit.core.errors import NotFound

    from . import drift as dr

    clock = clock or workspace.clock
    seconds = parse_window(window) if isinstance(window, str) else int(window)
    if seconds <= 0:
        raise InvalidInput(f"window must be positive, got {window!r}.")
    now = clock.now().astimezone(timezone.utc)
    end = (at or now).astimezone(timezone.utc)
    start = _earlier(end, seconds, "--window")
    limit = dr.EFFECT_THRESHOLD if threshold is None else float(threshold)
    a = dr.ALPHA if alpha is None else float(alpha)
    share = dr.DRIFT_SHARE if drift_share is None else float(drift_share)
    if not 0 < a < 1 or limit < 0:
        raise InvalidInput(f"alpha must be in (0, 1) and threshold ≥ 0; got alpha={a}, threshold={limit}.")
    info = status(workspace)
    known = model in info["models"]
    if not known:
        from yarnit.registry import ModelRegistry

        if not ModelRegistry(workspace).exists(model):
            raise NotFound(f"model {model!r} has no served traffic summarized and is not registered; known: "
                           f"{', '.join(sorted(info['models'])) or 'none (run yarnit monitor summarize)'}.")
    current = window_summary(workspace, model, start, end)
    # the model version that answered most requests; fallback answers (version 0, the owner's heuristic) have no
    # training data to compare with, so a day the fallback answered most still follows the model that served
    answered = {v: n for v, n in current.versions.items() if str(v).isdigit() and int(v) > 0}
    serving = max(answered.items(), key=lambda kv: (kv[1], kv[0]))[0] if answered else None
    if isinstance(reference_window, str):
        reference_window = parse_reference_window(reference_window, start, end)
    previous = reference_window or (_earlier(start, seconds, "the previous window"), start)
    past = window_summary(workspace, model, previous[0], previous[1])
    features = {k: v for k, v in current.summary.features.items() if not is_private_name(k)}
    if reference_window is not None:
        reference_info: dict[str, Any] = {"kind": "window", "start": iso_utc(previous[0].timestamp()),
                                          "end": iso_utc(previous[1].timestamp()), "requests": past.summary.requests,
                                          "rows": past.summary.rows}
        ref_columns: Mapping[str, Any] = past.summary.features
        importance = None
        names = sorted(set(features) | {k for k in ref_columns if not is_private_name(k)})
        ref_slices = {k: dict(v.counts) | ({OTHER: v.other} if v.other else {}) for k, v in past.summary.slices.items()}
    else:
        stats, reference_info = _training_reference(workspace, model, serving, features)
        personal = reference_info.pop("personal", set())
        importance = reference_info.get("importance")
        ref_columns = {} if stats is None else {k: v for k, v in stats.columns.items() if k not in personal}
        inputs = reference_info.get("inputs")
        names = sorted((set(features) | set(inputs or ())) - personal if inputs else set(features) - personal)
        names = [n for n in names if not is_private_name(n)]
        ref_slices = {} if stats is None else dict(stats.slices)
    columns = []
    for name in names:
        pair = _column_pair(name, ref_columns.get(name), features.get(name))
        if isinstance(pair, str):
            columns.append(_no_data(name, pair, limit, a))
        else:
            columns.append(dr.column_drift_from_profiles(pair[0], pair[1], column=name, threshold=limit, alpha=a))
    dataset = dr.dataset_state(columns, drift_share=share, importance=importance)
    # predictions: same version on both sides (a new version's scores differ by design)
    cur_pred = window_prediction(workspace, model, start, end, serving) if serving is not None else ColumnSummary()
    ref_pred = window_prediction(workspace, model, previous[0], previous[1], serving) \
        if serving is not None else ColumnSummary()
    pair = _column_pair("prediction", ref_pred, cur_pred)
    prediction = _no_data("prediction", pair, limit, a) if isinstance(pair, str) else \
        dr.column_drift_from_profiles(pair[0], pair[1], column="prediction", threshold=limit, alpha=a)
    slices: dict[str, Any] = {}
    for name, counts in sorted(current.summary.slices.items()):
        cur_counts = dict(counts.counts) | ({OTHER: counts.other} if counts.other else {})
        source = "reference"
        ref_counts = ref_slices.get(name)
        if ref_counts is None:
            source = "previous_window"
            p = past.summary.slices.get(name)
            ref_counts = {} if p is None else dict(p.counts) | ({OTHER: p.other} if p.other else {})
        slices[name] = {"against": source, "values": [v.to_dict() for v in dr.slice_volume(ref_counts, cur_counts)]}
    updated = info["updated_at"]
    age = None if updated is None else max(0.0, now.timestamp() - datetime.fromisoformat(updated).timestamp())
    state = dataset.state.value if current.summary.requests else dr.DriftState.NO_DATA.value
    return _finite({
        "model": model, "state": state,
        "reason": None if current.summary.requests else "no served traffic of this model in the window",
        "at": iso_utc(end.timestamp()), "window": {**current.to_dict(), "summary": None,
                                                "requests": current.summary.requests, "rows": current.summary.rows,
                                                "serving_version": serving},
        "reference": reference_info | {"previous_window": None if reference_window else
                                       [iso_utc(previous[0].timestamp()), iso_utc(previous[1].timestamp())]},
        "dataset": {k: v for k, v in dataset.to_dict().items() if k != "columns"},
        "columns": [c.to_dict() for c in columns],
        "prediction": prediction.to_dict() | {"version": serving,
                                              "against": "reference window" if reference_window else
                                              "previous window of the same length"},
        "slices": slices,
        "private_columns": sorted(current.summary.private_columns),
        "rank_error": {"served_quantiles": RANK_ERROR, "confidence": 0.99},
        "summaries": {"updated_at": updated, "age_s": age, "epoch": info["epoch"]},
    })


HISTOGRAM_BINS = 12
HISTOGRAM_CATEGORIES = 12


def _cdf(quantiles: list[float], levels: Iterable[float], x: Any) -> Any:
    """A quantile sketch's CDF at ``x``: the levels interpolated between the stored quantile values."""
    import numpy as np

    return np.interp(x, np.asarray(quantiles, dtype=float), np.asarray(list(levels), dtype=float), left=0.0,
                     right=1.0)


def _numeric_bins(ref: ProfileColumn, cur: ProfileColumn, bins: int) -> dict[str, Any]:
    """Shares per equal-width bin over both sides' 1st to 99th percentiles; the tails go to the end bins."""
    import numpy as np

    from .distances import DEFAULT_LEVELS

    # both sides' quantiles are at these 101 levels (a training profile's too)
    sides = [(q, DEFAULT_LEVELS) for q in (ref.quantiles or [], cur.quantiles or [])]
    lo = min(float(np.interp(0.01, lv, q)) for q, lv in sides)
    hi = max(float(np.interp(0.99, lv, q)) for q, lv in sides)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5  # one value on both sides: a single visible bin around it
    edges = np.linspace(lo, hi, bins + 1)
    shares = []
    for q, lv in sides:
        f = _cdf(q, lv, edges[1:-1])
        shares.append([float(v) for v in np.diff(np.concatenate([[0.0], f, [1.0]]))])
    width = (hi - lo) / bins
    digits = max(0, min(6, 2 - math.floor(math.log10(width)))) if width > 0 else 2
    labels = [f"{e:.{digits}f}" for e in edges[:-1]]
    return {"kind": "numeric", "edges": [float(e) for e in edges], "labels": labels, "reference": shares[0],
            "current": shares[1]}


def _category_bins(ref: ProfileColumn, cur: ProfileColumn, keep: int) -> dict[str, Any]:
    """Shares per category: the ``keep`` largest (by the larger side), the rest together as ``other``."""
    r, c = ref.value_counts or {}, cur.value_counts or {}
    rn, cn = sum(r.values()) or 1, sum(c.values()) or 1
    names = sorted(set(r) | set(c), key=lambda k: (k == OTHER, -max(r.get(k, 0) / rn, c.get(k, 0) / cn), k))
    shown = [k for k in names if k != OTHER][:keep]
    rest = [k for k in names if k not in shown]
    ref_shares = [r.get(k, 0) / rn for k in shown]
    cur_shares = [c.get(k, 0) / cn for k in shown]
    labels = list(shown)
    if rest:
        labels.append("other")
        ref_shares.append(sum(r.get(k, 0) for k in rest) / rn)
        cur_shares.append(sum(c.get(k, 0) for k in rest) / cn)
    return {"kind": "categorical", "edges": None, "labels": labels, "reference": ref_shares, "current": cur_shares}


def feature_histograms(workspace: Any, model: str, feature: str, *, window: int | str = 86400,
                       at: datetime | None = None, reference: str = "training", bins: int = HISTOGRAM_BINS,
                       clock: Clock | None = None) -> dict[str, Any]:
    """Reference and current distributions of one feature (or ``prediction``), as shares per bin, and its drift.

    The same sides as :func:`drift_report`: the current window ``[at - window, at)`` of served traffic against
    the training dataset's statistics profile of the version that served most of it (``reference="training"``)
    or the window of the same length before it (``"previous"``; always so for ``prediction``). Numeric values:
    ``bins`` equal-width bins over both sides' 1st to 99th percentiles, read off the stored quantile sketches
    (each side's CDF interpolated between its quantiles; the tails count in the end bins). Categories: the most
    common ones, the rest as ``other``. Reads stored summaries and the profile only.
    """
    from . import drift as dr

    if reference not in ("training", "previous"):
        raise InvalidInput(f"reference must be 'training' or 'previous', got {reference!r}.")
    clock = clock or workspace.clock
    seconds = parse_window(window) if isinstance(window, str) else int(window)
    if seconds <= 0:
        raise InvalidInput(f"window must be positive, got {window!r}.")
    end = (at or clock.now()).astimezone(timezone.utc)
    start = _earlier(end, seconds, "--window")
    if feature != "prediction" and is_private_name(feature):
        raise InvalidInput(f"{feature!r} is a private column: its values are not summarized.")
    current, versions = window_column(workspace, model, start, end, feature)
    answered = {v: n for v, n in versions.items() if str(v).isdigit() and int(v) > 0}
    serving = max(answered.items(), key=lambda kv: (kv[1], kv[0]))[0] if answered else None
    previous = (_earlier(start, seconds, "the previous window"), start)

    def merged(columns: Mapping[str, ColumnSummary], only: str | None = None) -> ColumnSummary:
        out = ColumnSummary()
        for version, column in columns.items():
            if only is None or version == only:
                out.merge(column)
        return out

    # predictions: the serving version's on both sides (a new version's scores differ by design)
    only = serving if feature == "prediction" else None
    cur_col: Any = merged(current, only) if only is not None or feature != "prediction" else ColumnSummary()
    if reference == "previous" or feature == "prediction":
        past, _ = window_column(workspace, model, *previous, feature)
        ref_col: Any = merged(past, only) if only is not None or feature != "prediction" else ColumnSummary()
        ref_info: dict[str, Any] = {"kind": "window", "start": iso_utc(previous[0].timestamp()),
                                    "end": iso_utc(previous[1].timestamp())}
    else:
        stats, ref_info = _training_reference(workspace, model, serving, [feature])
        personal = ref_info.pop("personal", set())
        if feature in personal:
            raise InvalidInput(f"{feature!r} is personal data in the training set: it is not profiled.")
        ref_col = None if stats is None else stats.columns.get(feature)
        ref_info = {k: v for k, v in ref_info.items() if k in ("kind", "dataset", "rows", "model_version", "reason")}
    out: dict[str, Any] = {"model": model, "feature": feature, "window": {"start": iso_utc(start.timestamp()),
                                                                         "end": iso_utc(end.timestamp()),
                                                                         "requests": sum(versions.values()),
                                                                         "serving_version": serving},
                           "reference": ref_info, "histogram": None, "drift": None}
    pair = _column_pair(feature, ref_col, cur_col)
    if isinstance(pair, str):
        out["reason"] = pair
        return _finite(out)
    ref, cur = pair
    limit, alpha = dr.EFFECT_THRESHOLD, dr.ALPHA
    out["drift"] = dr.column_drift_from_profiles(ref, cur, column=feature, threshold=limit, alpha=alpha).to_dict()
    out["histogram"] = (_numeric_bins(ref, cur, bins) if ref.quantiles and cur.quantiles
                        else _category_bins(ref, cur, HISTOGRAM_CATEGORIES)) | {"reference_n": ref.present,
                                                                                "current_n": cur.present}
    return _finite(out)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no NaN; a NaN p-value means "not computable")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


__all__ = ["ProfileColumn", "dkw_rank_error", "drift_report", "feature_histograms", "parse_reference_window", "parse_time", "parse_window"]
