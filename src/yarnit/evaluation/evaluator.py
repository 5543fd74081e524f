"""Compute every binary and ranking metric, per slice, with intervals, in a few vectorized passes.

:func:`evaluate_binary` sorts each model's scores once; a slice is then a
boolean mask over the sorted rows, so AUC and PR-AUC on 20 slices need no
further sort. Intervals come from :mod:`.bootstrap`, one independent random
stream per (distribution, slice, subject), so results do not depend on the
order or the threads the work ran in.

:func:`paired_deltas` compares two models on the same rows: DeLong's variance
for the AUC difference, and the normal interval of the mean per-row difference
for log loss, Brier and bias. Paired comparisons are much tighter than two
separate intervals, which is what a per-slice "not worse than production" gate
needs.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1])
    >>> result = evaluate_binary(y, {"candidate": np.array([.1, .2, .7, .6, .3, .4])}, distribution="holdout",
    ...                          bootstrap=None)
    >>> next(m.value for m in result.metrics if m.metric == "auc")
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput

from .bootstrap import Bootstrap, binary_cells, binary_intervals, mean_interval
from .metrics import (
    BINARY_METRICS,
    CALIBRATION_BINS,
    Calibration,
    _log_loss_terms,
    auc_from_counts,
    average_precision_from_counts,
    calibration_bins,
    calibration_from_sums,
    check_binary,
    check_metrics,
    ranking_per_group,
)
from .report import MetricValue
from .slices import Slice, Slices


@dataclass(frozen=True)
class BinaryEvaluation:
    """Metric values of every subject on the whole distribution and each slice; calibration buckets."""

    metrics: list[MetricValue]
    calibration: dict[str, Calibration] = field(default_factory=dict)


class _SortedView:
    """One subject's rows sorted by ascending score, with per-row terms precomputed."""

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.order = np.argsort(p, kind="stable")
        self.y = y[self.order]
        self.p = p[self.order]
        n = len(p)
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(self.p[1:], self.p[:-1], out=new[1:])
        self.run_new = new
        self.tie_id = np.cumsum(new)
        self.calib = calibration_bins(self.p, CALIBRATION_BINS)
        self.ll = _log_loss_terms(self.y, self.p)

    def subset(self, mask_sorted: np.ndarray | None) -> tuple[np.ndarray, ...]:
        if mask_sorted is None:
            return self.y, self.p, self.run_new, self.calib, self.ll
        y, p, calib, ll = self.y[mask_sorted], self.p[mask_sorted], self.calib[mask_sorted], self.ll[mask_sorted]
        tie = self.tie_id[mask_sorted]
        run_new = np.empty(len(tie), dtype=bool)
        if len(tie):
            run_new[0] = True
            np.not_equal(tie[1:], tie[:-1], out=run_new[1:])
        return y, p, run_new, calib, ll


def _exact_binary(y: np.ndarray, p: np.ndarray, run_new: np.ndarray, calib: np.ndarray, ll: np.ndarray,
                  where: str) -> tuple[dict[str, float | None], dict[str, str], int, int, Calibration | None]:
    n = len(y)
    values: dict[str, float | None] = {}
    undefined: dict[str, str] = {}
    if n == 0:
        reason = f"{where} has no rows"
        return {m: None for m in BINARY_METRICS}, {m: reason for m in BINARY_METRICS}, 0, 0, None
    starts = np.flatnonzero(run_new)
    count = np.diff(np.append(starts, n))
    pos = np.add.reduceat(y.astype(np.int64), starts)
    positives = int(pos.sum())
    if 0 < positives < n:
        values["auc"] = float(auc_from_counts(pos, count - pos))
    else:
        values["auc"] = None
        undefined["auc"] = (f"all {n} labels in {where} are {1 if positives else 0}; AUC needs both positive and "
                            "negative labels")
    if positives:
        values["pr_auc"] = float(average_precision_from_counts(pos, count))
    else:
        values["pr_auc"] = None
        undefined["pr_auc"] = f"{where} has no positive label, so recall (and PR-AUC) is undefined"
    mean_p = float(p.mean())
    values["log_loss"] = float(ll.mean())
    values["brier"] = float(np.mean((p - y) ** 2))
    values["mean_prediction"] = mean_p
    values["positive_rate"] = positives / n
    values["bias"] = mean_p - positives / n
    values["prediction_std"] = float(p.std())
    cal = calibration_from_sums(np.bincount(calib, minlength=CALIBRATION_BINS),
                                np.bincount(calib, weights=p, minlength=CALIBRATION_BINS),
                                np.bincount(calib, weights=y, minlength=CALIBRATION_BINS), CALIBRATION_BINS)
    values["ece"] = cal.ece
    return values, undefined, n, positives, cal


def evaluate_binary(y_true: Any, predictions: Mapping[str, Any], *, distribution: str,
                    slices: Slices | None = None, bootstrap: Bootstrap | None = None,
                    intervals_for: Sequence[str] = ("candidate",), metrics: Sequence[str] = BINARY_METRICS
                    ) -> BinaryEvaluation:
    """Every metric in ``metrics`` for every subject of ``predictions``, on the whole distribution and each slice.

    ``predictions`` maps a subject name (``candidate``, ``production``,
    ``popularity``…) to its probabilities, one per row of ``y_true``.
    Intervals are computed for the subjects in ``intervals_for`` when a
    ``bootstrap`` is given. A slice with no rows, or a metric without a value
    (one label class), comes back with ``value=None`` and the reason.
    """
    if not predictions:
        raise InvalidInput("evaluate_binary needs at least one subject's predictions, e.g. {'candidate': scores}.")
    wanted = check_metrics(metrics)
    slice_list: list[Slice] = list(slices) if slices is not None else []
    views: dict[str, _SortedView] = {}
    y = None
    for subject, scores in predictions.items():
        y_checked, p = check_binary(y_true, scores, probabilities=True, what=f"{subject} predictions")
        if y is None:
            y = y_checked
        if slices is not None and slices.n_rows != len(p):
            raise InvalidInput(f"The slices were built over {slices.n_rows} rows but {subject} has {len(p)} "
                               "predictions; build them from the same evaluation frame.")
        views[subject] = _SortedView(y_checked, p)

    jobs: list[tuple[str, Slice | None]] = [(s, None) for s in views]
    jobs += [(subject, sl) for subject in views for sl in slice_list]
    sorted_codes: dict[tuple[str, str], np.ndarray] = {}
    if slices is not None:
        for subject, view in views.items():
            for column, encoded in slices.columns.items():
                sorted_codes[(subject, column)] = encoded.codes[view.order]

    def run(job: tuple[str, Slice | None]) -> tuple[list[MetricValue], Calibration | None]:
        subject, sl = job
        view = views[subject]
        if sl is None:
            mask, where, slice_name = None, f"distribution {distribution!r}", ""
        else:
            mask = sorted_codes[(subject, sl.column)] == sl.code if sl.code >= 0 else np.zeros(len(view.p), bool)
            where, slice_name = f"slice {sl.name} of {distribution!r}", sl.name
        arrays = view.subset(mask)
        values, undefined, n, positives, cal = _exact_binary(*arrays, where=where)
        intervals: dict[str, tuple[float | None, float | None]] = {}
        if bootstrap is not None and subject in intervals_for and n > 1:
            defined = {m: v for m, v in values.items() if v is not None and m in wanted}
            cap = bootstrap.max_bins if sl is None else bootstrap.max_slice_bins
            max_bins = min(cap, max(32, n // 8))  # ~8 rows a bin: small data needs few cells
            cells = binary_cells(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], max_bins)
            intervals = binary_intervals(cells, defined, bootstrap, f"{distribution}|{slice_name}|{subject}")
        out = []
        for metric in wanted:
            low, high = intervals.get(metric, (None, None))
            out.append(MetricValue(metric, distribution, values.get(metric), subject=subject, slice=slice_name,
                                   ci_low=low, ci_high=high, n=n, positives=positives,
                                   undefined=undefined.get(metric)))
        return out, cal

    workers = bootstrap.workers if bootstrap is not None else 1
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, jobs))
    else:
        results = [run(job) for job in jobs]
    values_out: list[MetricValue] = []
    calibration: dict[str, Calibration] = {}
    for (subject, sl), (found, cal) in zip(jobs, results, strict=True):
        values_out.extend(found)
        if sl is None and cal is not None:
            calibration[subject] = cal
    return BinaryEvaluation(values_out, calibration)


# --- paired comparisons ------------------------------------------------------------------------------
def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = len(x)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    ranks = np.empty(n)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float | None]:
    """AUC of ``a``, AUC of ``b`` and the standard error of their difference (DeLong et al. 1988)."""
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    placements = []
    for x in (a, b):
        r = _midranks(x)
        v10 = (r[pos] - _midranks(x[pos])) / n
        v01 = 1.0 - (r[~pos] - _midranks(x[~pos])) / m
        placements.append((v10, v01))
    auc_a, auc_b = float(placements[0][0].mean()), float(placements[1][0].mean())
    if m < 2 or n < 2:
        return auc_a, auc_b, None
    s10 = np.cov(np.vstack([placements[0][0], placements[1][0]]))
    s01 = np.cov(np.vstack([placements[0][1], placements[1][1]]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return auc_a, auc_b, math.sqrt(max(float(var), 0.0))


PAIRED_METRICS = ("auc", "log_loss", "brier", "bias")


def paired_deltas(y_true: Any, candidate: Any, reference: Any, *, distribution: str, reference_name: str,
                  slices: Slices | None = None, confidence: float = 0.95,
                  metrics: Sequence[str] = PAIRED_METRICS) -> list[MetricValue]:
    """Candidate minus reference on the same rows, with a paired interval, for the whole and each slice.

    The values carry subject ``delta:<reference_name>``.
    """
    y, c = check_binary(y_true, candidate, probabilities=True, what="candidate predictions")
    _, r = check_binary(y_true, reference, probabilities=True, what=f"{reference_name} predictions")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    terms = {
        "log_loss": _log_loss_terms(y, c) - _log_loss_terms(y, r),
        "brier": (c - y) ** 2 - (r - y) ** 2,
        "bias": c - r,
    }
    subsets: list[tuple[str, np.ndarray | None]] = [("", None)]
    if slices is not None:
        subsets += [(s.name, slices.mask(s)) for s in slices]
    subject = f"delta:{reference_name}"
    out: list[MetricValue] = []
    for name, mask in subsets:
        ys = y if mask is None else y[mask]
        n, positives = len(ys), int(ys.sum())
        where = f"distribution {distribution!r}" if not name else f"slice {name} of {distribution!r}"
        for metric in metrics:
            if n == 0:
                out.append(MetricValue(metric, distribution, None, subject=subject, slice=name, n=0,
                                       undefined=f"{where} has no rows"))
                continue
            if metric == "auc":
                if positives == 0 or positives == n:
                    out.append(MetricValue(metric, distribution, None, subject=subject, slice=name, n=n,
                                           positives=positives, undefined=f"AUC is undefined: all labels in {where} "
                                                                          f"are {1 if positives else 0}"))
                    continue
                cs, rs = (c, r) if mask is None else (c[mask], r[mask])
                auc_c, auc_r, se = delong(ys, cs, rs)
                delta = auc_c - auc_r
            elif metric in terms:
                d = terms[metric] if mask is None else terms[metric][mask]
                delta = float(d.mean())
                se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else None
            else:
                raise InvalidInput(f"paired_deltas supports {', '.join(PAIRED_METRICS)}; got {metric!r}.")
            low, high = (None, None) if se is None else (delta - z * se, delta + z * se)
            out.append(MetricValue(metric, distribution, delta, subject=subject, slice=name, ci_low=low, ci_high=high,
                                   n=n, positives=positives))
    return out


# --- ranking ----------------------------------------------------------------------------------------------
RANKING_KEYS = {"precision_at_k": "precision_at_k", "recall_at_k": "recall_at_k", "ndcg_at_k": "ndcg_at_k",
                "map": "average_precision"}


def evaluate_ranking(y_true: Any, scores: Any, groups: Any, *, k: int, distribution: str,
                     subject: str = "candidate", bootstrap: Bootstrap | None = None,
                     slice: str = "") -> list[MetricValue]:
    """precision@k, recall@k, NDCG@k and MAP over groups (queries, sessions), with intervals over groups."""
    per_group = ranking_per_group(y_true, scores, groups, k=k)
    n_groups = len(per_group.n)
    with_relevant = int((per_group.relevant > 0).sum())
    out = []
    for metric, attr in RANKING_KEYS.items():
        values = getattr(per_group, attr)
        defined = values[~np.isnan(values)]
        if len(defined) == 0:
            out.append(MetricValue(metric, distribution, None, subject=subject, slice=slice, n=n_groups,
                                   positives=with_relevant,
                                   undefined=f"none of the {n_groups} groups of {distribution!r} has a relevant row"))
            continue
        low, high = (None, None)
        if bootstrap is not None:
            low, high = mean_interval(defined, bootstrap, f"{distribution}|{slice}|{subject}|{metric}")
        out.append(MetricValue(metric, distribution, float(defined.mean()), subject=subject, slice=slice,
                               ci_low=low, ci_high=high, n=len(defined), positives=with_relevant))
    return out


__all__ = ["PAIRED_METRICS", "BinaryEvaluation", "delong", "evaluate_binary", "evaluate_ranking", "paired_deltas"]
