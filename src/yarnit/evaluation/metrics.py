"""Quality metrics for click models and rankings, vectorized with numpy, equal to scikit-learn's.

Binary metrics take labels (0/1) and scores:

* :func:`roc_auc` equals ``sklearn.metrics.roc_auc_score`` (ties count one half);
* :func:`pr_auc` is the area under the precision-recall curve as average
  precision, equal to ``sklearn.metrics.average_precision_score``;
* :func:`log_loss` clips probabilities to ``[eps, 1 - eps]`` first (book ch. 5:
  a wrong prediction of exactly 0 or 1 makes it infinite), so it equals
  ``sklearn.metrics.log_loss(y, np.clip(p, eps, 1 - eps))``;
* :func:`brier_score` equals ``sklearn.metrics.brier_score_loss``;
* :func:`calibration` gives per-bucket reliability equal to
  ``sklearn.calibration.calibration_curve(strategy="uniform")`` and the
  expected calibration error (ECE: bucket-weighted mean |mean prediction -
  positive rate|);
* :func:`bias` is mean prediction minus mean label (book ch. 5: about 0).

Ranking metrics take labels, scores and a group per row (a query or session):
:func:`precision_at_k`, :func:`recall_at_k`, :func:`ndcg_at_k` (equal to
``sklearn.metrics.ndcg_score``) and :func:`mean_average_precision` (the mean
over groups of ``average_precision_score``). Tied scores are averaged the way
scikit-learn's NDCG averages them, so no metric depends on input order.

A metric that has no value (one label class, no relevant item in any group)
raises :class:`UndefinedMetric` with the reason, never a bare numpy warning.

Example:
    >>> round(roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.75
    >>> round(log_loss([0, 1], [1.0, 0.0]), 3)  # confidently wrong, yet finite: clipped to 1e-7
    16.118
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from yarnit.core.errors import InvalidInput

from .errors import UndefinedMetric

EPS = 1e-7  # log-loss clipping: predictions are taken as lying in [EPS, 1 - EPS]
CALIBRATION_BINS = 10


# --- input checks ---------------------------------------------------------------------------
def check_binary(y_true: Any, y_score: Any, *, probabilities: bool = False,
                 what: str = "predictions") -> tuple[np.ndarray, np.ndarray]:
    """Labels as int8 0/1 and scores as float64, or an InvalidInput naming the problem."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64) if not isinstance(y_score, np.ndarray) else y_score
    if y.ndim != 1 or s.ndim != 1:
        raise InvalidInput(f"Labels and {what} must be 1-D arrays; got shapes {y.shape} and {s.shape}.")
    if len(y) != len(s):
        raise InvalidInput(f"Got {len(y)} labels but {len(s)} {what}; they must have the same length, one per row.")
    if len(y) == 0:
        raise InvalidInput(f"Got 0 labels and 0 {what}: there is nothing to evaluate.")
    if s.dtype != np.float64:
        s = s.astype(np.float64)
    finite = np.isfinite(s)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InvalidInput(
            f"{len(bad)} of {len(s)} {what} are NaN or infinite (first at row {int(bad[0])}: {s[bad[0]]!r}); "
            "every prediction must be a finite number. Check the model's outputs (validity check 'finite')."
        )
    if y.dtype == bool:
        y = y.astype(np.int8)
    elif y.dtype.kind in "iuf":
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise InvalidInput("Labels contain NaN: rows without a label cannot be evaluated "
                               "(wait for the label join).")
        ok = (y == 0) | (y == 1)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise InvalidInput(f"Labels must be 0 or 1; row {bad} has {y[bad].item()!r}. Binarize the label first.")
        y = y.astype(np.int8)
    else:
        raise InvalidInput(f"Labels must be 0/1 numbers or booleans, got dtype {y.dtype}.")
    if probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise InvalidInput(
            f"{what.capitalize()} must be probabilities in [0, 1] for this metric; got values from {s.min():.6g} to "
            f"{s.max():.6g}."
        )
    return y, s


def _both_classes(metric: str, y: np.ndarray) -> None:
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        value = 1 if positives else 0
        raise UndefinedMetric(
            metric, f"all {len(y)} labels are {value}, and it needs both positive and negative labels "
                    "(a click-log outage, or a slice too small to contain a click?)")


# --- tie runs: the shared core of AUC and average precision ----------------------------------
@dataclass(frozen=True)
class Runs:
    """Rows sorted by ascending score and grouped into runs of equal score."""

    count: np.ndarray  # rows per run
    positives: np.ndarray  # positive labels per run
    score: np.ndarray  # the run's score

    @classmethod
    def from_sorted(cls, y_sorted: np.ndarray, s_sorted: np.ndarray) -> Runs:
        n = len(s_sorted)
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, np.zeros(0))
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(s_sorted[1:], s_sorted[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        count = np.diff(np.append(starts, n))
        positives = np.add.reduceat(y_sorted.astype(np.int64), starts)
        return cls(count, positives, s_sorted[starts])

    @classmethod
    def from_scores(cls, y: np.ndarray, s: np.ndarray) -> Runs:
        order = np.argsort(s, kind="stable")
        return cls.from_sorted(y[order], s[order])


def auc_from_counts(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC from per-run (or per-bin) counts in ascending score order; last axis is the runs.

    Each positive scores 1 against every negative below it and 1/2 against ties
    (Mann-Whitney U), which is what scikit-learn's trapezoidal ROC area gives.
    Rows of the result with no positive or no negative are NaN.
    """
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    neg_below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=-1)
    denom = pos.sum(axis=-1) * neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, wins / np.where(denom > 0, denom, 1.0), np.nan)


def average_precision_from_counts(positives: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision from per-run counts in ascending score order (last axis); NaN without positives."""
    pos = np.asarray(positives, dtype=np.float64)[..., ::-1]
    cnt = np.asarray(counts, dtype=np.float64)[..., ::-1]
    tps = np.cumsum(pos, axis=-1)
    seen = np.cumsum(cnt, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tps / np.where(seen > 0, seen, 1.0), 0.0)
        total = pos.sum(axis=-1)
        return np.where(total > 0, (pos * precision).sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)


# --- binary metrics -----------------------------------------------------------------------------
def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve; equals ``sklearn.metrics.roc_auc_score``."""
    y, s = check_binary(y_true, y_score)
    _both_classes("AUC-ROC", y)
    runs = Runs.from_scores(y, s)
    return float(auc_from_counts(runs.positives, runs.count - runs.positives))


def pr_auc(y_true: Any, y_score: Any) -> float:
    """Area under the precision-recall curve as average precision (``average_precision_score``)."""
    y, s = check_binary(y_true, y_score)
    if not y.any():
        raise UndefinedMetric("PR-AUC", f"none of the {len(y)} labels is positive, so recall is undefined")
    runs = Runs.from_scores(y, s)
    return float(average_precision_from_counts(runs.positives, runs.count))


def log_loss(y_true: Any, y_prob: Any, *, eps: float = EPS) -> float:
    """Mean negative log-likelihood with predictions clipped to ``[eps, 1 - eps]``."""
    y, p = check_binary(y_true, y_prob, probabilities=True)
    return float(np.mean(_log_loss_terms(y, p, eps)))


def _log_loss_terms(y: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    clipped = np.clip(p, eps, 1.0 - eps)
    return -np.where(y == 1, np.log(clipped), np.log1p(-clipped))


def brier_score(y_true: Any, y_prob: Any) -> float:
    """Mean squared difference between prediction and label (``brier_score_loss``)."""
    y, p = check_binary(y_true, y_prob, probabilities=True)
    return float(np.mean((p - y) ** 2))


def bias(y_true: Any, y_prob: Any) -> float:
    """Mean prediction minus mean label: about 0 for a calibrated model (book ch. 5 canary metric)."""
    y, p = check_binary(y_true, y_prob, probabilities=True)
    return float(p.mean() - y.mean())


@dataclass(frozen=True)
class CalibrationBucket:
    """One equal-width bucket of predictions: how many, their mean, and the observed positive rate."""

    low: float
    high: float
    n: int
    mean_prediction: float | None
    positive_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Calibration:
    """Reliability buckets and the expected calibration error (ECE)."""

    ece: float
    buckets: tuple[CalibrationBucket, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ece": self.ece, "buckets": [b.to_dict() for b in self.buckets]}


def calibration_bins(p: np.ndarray, n_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The bucket of each prediction, as ``calibration_curve(strategy="uniform")`` assigns it."""
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p)


def calibration_from_sums(count: np.ndarray, prob_sum: np.ndarray, positives: np.ndarray,
                          n_bins: int = CALIBRATION_BINS) -> Calibration:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = count.sum()
    buckets = []
    for b in range(n_bins):
        n = int(count[b])
        buckets.append(CalibrationBucket(
            float(edges[b]), float(edges[b + 1]), n,
            float(prob_sum[b] / n) if n else None, float(positives[b] / n) if n else None))
    ece = float(np.abs(prob_sum - positives).sum() / total) if total else float("nan")
    return Calibration(ece, tuple(buckets))


def calibration(y_true: Any, y_prob: Any, *, n_bins: int = CALIBRATION_BINS) -> Calibration:
    """Per-bucket reliability (mean prediction vs positive rate) and ECE over ``n_bins`` equal-width buckets."""
    if not isinstance(n_bins, int) or n_bins < 1:
        raise InvalidInput(f"n_bins must be a positive int, got {n_bins!r}.")
    y, p = check_binary(y_true, y_prob, probabilities=True)
    bins = calibration_bins(p, n_bins)
    return calibration_from_sums(np.bincount(bins, minlength=n_bins), np.bincount(bins, weights=p, minlength=n_bins),
                                 np.bincount(bins, weights=y, minlength=n_bins), n_bins)


def expected_calibration_error(y_true: Any, y_prob: Any, *, n_bins: int = CALIBRATION_BINS) -> float:
    """Bucket-weighted mean of |mean prediction - positive rate| over equal-width buckets."""
    return calibration(y_true, y_prob, n_bins=n_bins).ece


# --- ranking metrics -------------------------------------------------------------------------------
GroupsWithoutRelevant = Literal["skip", "zero"]


@dataclass(frozen=True)
class RankingPerGroup:
    """Ranking metrics of every group (query or session); NaN where a group's metric is undefined."""

    k: int
    n: np.ndarray
    relevant: np.ndarray
    precision_at_k: np.ndarray
    recall_at_k: np.ndarray
    ndcg_at_k: np.ndarray
    average_precision: np.ndarray


def ranking_per_group(y_true: Any, y_score: Any, groups: Any, *, k: int) -> RankingPerGroup:
    """Per-group precision@k, recall@k, NDCG@k and average precision in one vectorized pass.

    ``y_true`` holds gains (0/1 clicks, or graded relevance >= 0); precision,
    recall and average precision count a row as relevant when its gain > 0.
    Ties in ``y_score`` are averaged: a run of equal scores contributes its mean
    gain at each of its positions, as ``sklearn.metrics.ndcg_score`` does.
    Precision@k divides by ``min(k, group size)``.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInput(f"k must be a positive int, got {k!r}.")
    gain = np.asarray(y_true, dtype=np.float64)
    score = np.asarray(y_score, dtype=np.float64)
    group = np.asarray(groups)
    if not (len(gain) == len(score) == len(group)):
        raise InvalidInput(f"Got {len(gain)} labels, {len(score)} scores and {len(group)} group ids; they must match.")
    if len(gain) == 0:
        raise InvalidInput("Got 0 rows: there is nothing to rank.")
    if not np.isfinite(score).all() or not np.isfinite(gain).all():
        raise InvalidInput("Ranking labels and scores must be finite numbers (found NaN or infinity).")
    if (gain < 0).any():
        raise InvalidInput("Ranking gains must be >= 0 (0 = not relevant).")
    _, codes = np.unique(group, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.lexsort((-score, codes))
    g, ys, ss = codes[order], gain[order], score[order]
    n = len(g)
    idx = np.arange(n)
    group_new = np.empty(n, dtype=bool)
    group_new[0] = True
    np.not_equal(g[1:], g[:-1], out=group_new[1:])
    group_starts = np.flatnonzero(group_new)
    group_start_of_row = np.maximum.accumulate(np.where(group_new, idx, 0))
    position = idx - group_start_of_row
    n_groups = len(group_starts)
    group_id = np.cumsum(group_new) - 1
    sizes = np.diff(np.append(group_starts, n))

    run_new = group_new.copy()
    run_new[1:] |= ss[1:] != ss[:-1]
    run_starts = np.flatnonzero(run_new)
    run_len = np.diff(np.append(run_starts, n))
    run_gain_mean = np.add.reduceat(ys, run_starts) / run_len
    run_group = group_id[run_starts]

    discount = np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)
    in_top = (position < k).astype(np.float64)
    dcg_runs = run_gain_mean * np.add.reduceat(discount, run_starts)
    dcg = np.bincount(run_group, weights=dcg_runs, minlength=n_groups)
    relevant_row = (ys > 0).astype(np.float64)
    run_relevant_mean = np.add.reduceat(relevant_row, run_starts) / run_len
    hits = np.bincount(run_group, weights=run_relevant_mean * np.add.reduceat(in_top, run_starts), minlength=n_groups)

    ideal_order = np.lexsort((-ys, g))
    ideal = np.bincount(g[ideal_order], weights=ys[ideal_order] * discount, minlength=n_groups)
    relevant = np.bincount(g, weights=relevant_row, minlength=n_groups)

    # average precision with tied runs as one threshold, as average_precision_score does
    run_relevant = np.add.reduceat(relevant_row, run_starts)
    cum_relevant = np.cumsum(run_relevant)
    group_offset = np.concatenate(([0.0], cum_relevant))[np.searchsorted(run_starts, group_starts)]
    tps = cum_relevant - group_offset[run_group]
    seen = position[run_starts + run_len - 1] + 1.0
    ap_sum = np.bincount(run_group, weights=run_relevant * tps / seen, minlength=n_groups)

    with np.errstate(invalid="ignore", divide="ignore"):
        has_relevant = relevant > 0
        precision = hits / np.minimum(sizes, k)
        recall = np.where(has_relevant, hits / np.where(has_relevant, relevant, 1.0), np.nan)
        ndcg = np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), np.nan)
        ap = np.where(has_relevant, ap_sum / np.where(has_relevant, relevant, 1.0), np.nan)
    return RankingPerGroup(int(k), sizes, relevant, precision, recall, ndcg, ap)


def _mean_over_groups(metric: str, values: np.ndarray, skip: bool) -> float:
    if skip:
        defined = values[~np.isnan(values)]
        if len(defined) == 0:
            raise UndefinedMetric(metric, f"none of the {len(values)} groups has a relevant item")
        return float(defined.mean())
    return float(np.nan_to_num(values, nan=0.0).mean())


def precision_at_k(y_true: Any, y_score: Any, groups: Any, *, k: int) -> float:
    """Mean over groups of the share of relevant rows among the top ``k`` (``min(k, size)``)."""
    return float(ranking_per_group(y_true, y_score, groups, k=k).precision_at_k.mean())


def recall_at_k(y_true: Any, y_score: Any, groups: Any, *, k: int) -> float:
    """Mean over groups with a relevant row of the share of their relevant rows found in the top ``k``."""
    return _mean_over_groups(f"recall@{k}", ranking_per_group(y_true, y_score, groups, k=k).recall_at_k, True)


def ndcg_at_k(y_true: Any, y_score: Any, groups: Any, *, k: int,
              groups_without_relevant: GroupsWithoutRelevant = "skip") -> float:
    """Mean NDCG@k over groups. ``groups_without_relevant="zero"`` counts them as 0, as scikit-learn does."""
    per_group = ranking_per_group(y_true, y_score, groups, k=k)
    return _mean_over_groups(f"NDCG@{k}", per_group.ndcg_at_k, groups_without_relevant == "skip")


def mean_average_precision(y_true: Any, y_score: Any, groups: Any) -> float:
    """Mean over groups with a relevant row of their average precision (``average_precision_score``)."""
    per_group = ranking_per_group(y_true, y_score, groups, k=1)
    return _mean_over_groups("MAP", per_group.average_precision, True)


# --- the metric catalogue ---------------------------------------------------------------------------
Direction = Literal["higher", "lower", "zero"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric name means and which way is better (``zero``: closer to 0 is better)."""

    name: str
    direction: Direction
    description: str


METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("auc", "higher", "area under the ROC curve"),
    MetricInfo("pr_auc", "higher", "area under the precision-recall curve (average precision)"),
    MetricInfo("log_loss", "lower", f"log loss with predictions clipped to [{EPS:g}, 1 - {EPS:g}]"),
    MetricInfo("brier", "lower", "Brier score (mean squared error of the probability)"),
    MetricInfo("ece", "lower", f"expected calibration error over {CALIBRATION_BINS} equal-width buckets"),
    MetricInfo("bias", "zero", "mean prediction minus mean label"),
    MetricInfo("mean_prediction", "zero", "mean predicted probability"),
    MetricInfo("positive_rate", "zero", "share of positive labels (the CTR of the distribution)"),
    MetricInfo("prediction_std", "higher", "standard deviation of the predictions (collapse detector)"),
    MetricInfo("n", "higher", "rows evaluated"),
    MetricInfo("precision_at_k", "higher", "precision in the top k of each group, averaged over groups"),
    MetricInfo("recall_at_k", "higher", "recall in the top k of each group with a relevant row"),
    MetricInfo("ndcg_at_k", "higher", "normalized discounted cumulative gain at k, groups with a relevant row"),
    MetricInfo("map", "higher", "mean average precision over groups with a relevant row"),
    MetricInfo("selection_rate", "zero", "share of rows predicted positive at the fairness threshold"),
    MetricInfo("true_positive_rate", "higher", "share of positives predicted positive at the threshold"),
    MetricInfo("false_positive_rate", "lower", "share of negatives predicted positive at the threshold"),
    MetricInfo("demographic_parity_difference", "lower", "largest minus smallest group selection rate"),
    MetricInfo("equalized_odds_difference", "lower", "larger of the TPR and FPR differences between groups"),
)}

BINARY_METRICS: tuple[str, ...] = ("auc", "pr_auc", "log_loss", "brier", "ece", "bias", "mean_prediction",
                                   "positive_rate", "prediction_std")
RANKING_METRICS: tuple[str, ...] = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map")


def metric_info(name: str) -> MetricInfo:
    from .errors import UnknownMetric

    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetric(name, list(METRICS)) from None


def check_metrics(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        metric_info(name)
    return tuple(names)


__all__ = [
    "BINARY_METRICS",
    "CALIBRATION_BINS",
    "EPS",
    "METRICS",
    "RANKING_METRICS",
    "Calibration",
    "CalibrationBucket",
    "MetricInfo",
    "RankingPerGroup",
    "Runs",
    "auc_from_counts",
    "average_precision_from_counts",
    "bias",
    "brier_score",
    "calibration",
    "calibration_bins",
    "check_binary",
    "check_metrics",
    "expected_calibration_error",
    "log_loss",
    "mean_average_precision",
    "metric_info",
    "ndcg_at_k",
    "pr_auc",
    "precision_at_k",
    "ranking_per_group",
    "recall_at_k",
    "roc_auc",
]
