"""Mergeable summaries of predictions and their labels: realized quality, and an estimate before labels.

A :class:`QualitySummary` holds, for one window (an hour of one model
version and slice), fixed-bin histograms of the predicted probabilities:
:data:`N_BINS` (2,000) equal-width bins on ``[0, 1]``, bin ``b`` holding
``(b / 2000, (b + 1) / 2000]`` (the first also holds 0), the convention of
``sklearn.calibration.calibration_curve``. Per bin it keeps the number of
predictions and their sum (every prediction), and the labelled ones split by
label with the sum of their scores. Two summaries merge by adding arrays, so
a day or a week is a sum of hours and no prediction is kept.

What it answers, and how exact:

* **counts, CTR, mean prediction, bias, calibration** (mean prediction /
  observed rate): exact sums. CTR comes with a Wilson score interval.
* **ECE**: the expected calibration error over ten equal-width buckets
  (``|Σ p − Σ y| / n`` summed over buckets), exact: the deciles are bin
  edges, so it equals :func:`yarnit.evaluation.metrics.expected_calibration_error`.
* **AUC**: Mann-Whitney over the bins (:func:`~yarnit.evaluation.metrics.auc_from_counts`).
  Pairs of a positive and a negative in different bins are ordered exactly;
  a pair in the same bin counts 1/2 where the exact AUC counts 0, 1/2 or 1,
  so the binned AUC is within ``auc_bound = ½ Σ_b pos_b·neg_b / (P·N)`` of
  ``sklearn.metrics.roc_auc_score`` — a bound computed and reported with
  every answer (about 3e-4 on a click model with scores spread over 0-0.3).
  Its confidence interval is Hanley & McNeil's (1982).
* **CBPE estimate** (NannyML's confidence-based performance estimation):
  if the scores are calibrated probabilities, a prediction ``p`` is an
  expected ``p`` positives and ``1 − p`` negatives, so the expected ROC curve
  and its area follow from the scores alone; the expected accuracy at the
  0.5 threshold is the mean of ``max(p, 1 − p)``. With labelled history a
  calibration map (isotonic regression over the bins, as NannyML fits one on
  its reference set) first turns scores into probabilities. The estimate is
  marked ``estimated: true`` wherever it is shown.

Example:
    >>> s = QualitySummary()
    >>> s.add_predictions([0.1, 0.4, 0.8])
    >>> s.add_labelled([0.1, 0.4, 0.8], [0, 1, 1])
    >>> s.metrics()["auc"], round(s.metrics()["ctr"], 4)
    (1.0, 0.6667)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput
from yarnit.evaluation.metrics import auc_from_counts, calibration_from_sums

N_BINS = 2000
_DECILE = N_BINS // 10
_INTERIOR_EDGES = np.linspace(0.0, 1.0, N_BINS + 1)[1:-1]
_ARRAYS = ("n", "p", "pos", "neg", "lab_p")
Z95 = 1.959963984540054


def bin_of(scores: Any) -> np.ndarray:
    """The bin of each score (``calibration_curve``'s rule: a score on an edge goes to the lower bin)."""
    return np.searchsorted(_INTERIOR_EDGES, np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0), side="left")


@dataclass
class QualitySummary:
    """Histograms of predictions (all, and labelled by label) in :data:`N_BINS` bins; merge by adding."""

    n: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, dtype=np.int64))  # predictions per bin
    p: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS))  # sum of their scores
    pos: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, dtype=np.int64))  # labelled 1
    neg: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, dtype=np.int64))  # labelled 0
    lab_p: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS))  # sum of the labelled ones' scores

    def add_predictions(self, scores: Iterable[float]) -> None:
        s = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=np.float64)
        b = bin_of(s)
        self.n += np.bincount(b, minlength=N_BINS)
        self.p += np.bincount(b, weights=s, minlength=N_BINS)

    def remove_predictions(self, scores: np.ndarray) -> None:
        """Take back predictions added before (a candidate that turned out never to be shown)."""
        b = bin_of(scores)
        self.n -= np.minimum(np.bincount(b, minlength=N_BINS), self.n)
        self.p = np.maximum(self.p - np.bincount(b, weights=np.asarray(scores, dtype=np.float64), minlength=N_BINS),
                            0.0)

    def add_labelled(self, scores: Iterable[float], labels: Iterable[int]) -> None:
        s = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=np.float64)
        y = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels, dtype=np.int64)
        if s.shape != y.shape:
            raise InvalidInput(f"{len(s)} scores but {len(y)} labels; give one label per score.")
        b = bin_of(s)
        self.pos += np.bincount(b[y == 1], minlength=N_BINS)
        self.neg += np.bincount(b[y != 1], minlength=N_BINS)
        self.lab_p += np.bincount(b, weights=s, minlength=N_BINS)

    def copy(self) -> QualitySummary:
        """An independent summary with the same counts."""
        return QualitySummary(**{name: getattr(self, name).copy() for name in _ARRAYS})

    def merge(self, other: QualitySummary) -> QualitySummary:
        """Add ``other`` into this summary (in place) and return it."""
        for name in _ARRAYS:
            getattr(self, name).__iadd__(getattr(other, name))
        return self

    # -- persistence: sparse, JSON-able ------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        used = np.flatnonzero(self.n | self.pos | self.neg)
        return {"bins": used.tolist(), **{name: getattr(self, name)[used].tolist() for name in _ARRAYS}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QualitySummary:
        out = cls()
        bins = np.asarray(data.get("bins", []), dtype=np.int64)
        if len(bins) and (bins.min() < 0 or bins.max() >= N_BINS):
            raise InvalidInput(f"A quality summary names bins outside 0..{N_BINS - 1}.")
        for name in _ARRAYS:
            values = np.asarray(data.get(name, []), dtype=getattr(out, name).dtype)
            if values.shape != bins.shape:
                raise InvalidInput(f"A quality summary's {name!r} has {len(values)} values for {len(bins)} bins.")
            getattr(out, name)[bins] = values
        return out

    # -- metrics --------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.n.sum())

    @property
    def labelled(self) -> int:
        return int(self.pos.sum() + self.neg.sum())

    @property
    def positives(self) -> int:
        return int(self.pos.sum())

    def metrics(self) -> dict[str, Any]:
        """Realized metrics over the labelled predictions (None where undefined), with their error bounds."""
        n_lab, n_pos = self.labelled, self.positives
        n_neg = n_lab - n_pos
        out: dict[str, Any] = {"count": self.count, "labelled": n_lab, "positives": n_pos,
                               "mean_prediction": _r(self.p.sum() / self.count) if self.count else None}
        if not n_lab:
            return {**out, "accuracy": None, "ctr": None, "ctr_ci": None, "mean_prediction_labelled": None,
                    "bias": None,
                    "calibration": None, "ece": None, "auc": None, "auc_ci": None, "auc_bound": None}
        mean_lab = float(self.lab_p.sum()) / n_lab
        rate = n_pos / n_lab
        above = np.arange(N_BINS) >= N_BINS // 2  # scores over 0.5 are predicted positive
        out["accuracy"] = _r(float(self.pos[above].sum() + self.neg[~above].sum()) / n_lab)
        out.update(ctr=_r(rate), ctr_ci=[_r(v) for v in wilson(n_pos, n_lab)], mean_prediction_labelled=_r(mean_lab),
                   bias=_r(mean_lab - rate), calibration=_r(mean_lab / rate) if n_pos else None,
                   ece=_r(self.ece()))
        if n_pos and n_neg:
            auc = float(auc_from_counts(self.pos, self.neg))
            out.update(auc=_r(auc), auc_ci=[_r(v) for v in hanley_mcneil(auc, n_pos, n_neg)],
                       auc_bound=_r(self.auc_bound()))
        else:
            out.update(auc=None, auc_ci=None, auc_bound=None)
        return out

    def ece(self) -> float:
        """Expected calibration error over ten equal-width buckets (exact: the deciles are bin edges)."""
        count = (self.pos + self.neg).reshape(10, _DECILE).sum(axis=1)
        return calibration_from_sums(count, self.lab_p.reshape(10, _DECILE).sum(axis=1),
                                     self.pos.reshape(10, _DECILE).sum(axis=1)).ece

    def auc_bound(self) -> float:
        """How far the binned AUC can be from the exact one: ½ · (positive-negative pairs sharing a bin) / (P·N)."""
        n_pos, n_neg = self.positives, self.labelled - self.positives
        if not (n_pos and n_neg):
            return 0.0
        return 0.5 * float((self.pos.astype(np.float64) * self.neg).sum()) / (n_pos * n_neg)

    def estimate(self, calibration: np.ndarray | None = None) -> dict[str, Any]:
        """CBPE: expected AUC, accuracy and CTR of all predictions from their scores alone (``estimated: true``).

        ``calibration`` maps each bin to a probability (:func:`calibration_map`);
        without it the scores are taken as calibrated (each bin's mean score).
        """
        n = self.n.astype(np.float64)
        total = float(n.sum())
        if not total:
            return {"estimated": True, "count": 0, "auc": None, "accuracy": None, "ctr": None}
        expected_pos = self.p.copy() if calibration is None else n * calibration
        expected_pos = np.clip(expected_pos, 0.0, n)
        expected_neg = n - expected_pos
        above = np.arange(N_BINS) >= N_BINS // 2  # bins of scores over 0.5: predicted positive
        accuracy = (expected_pos[above].sum() + expected_neg[~above].sum()) / total
        auc = float(auc_from_counts(expected_pos, expected_neg)) if expected_pos.sum() and expected_neg.sum() \
            else None
        return {"estimated": True, "count": int(total), "auc": _r(auc) if auc is not None else None,
                "accuracy": _r(float(accuracy)), "ctr": _r(float(expected_pos.sum()) / total),
                "calibrated_by": "scores" if calibration is None else "isotonic map from labelled history"}


def calibration_map(reference: QualitySummary, *, min_labelled: int = 1000) -> np.ndarray | None:
    """A probability per bin, fitted by isotonic regression on the labelled bins of ``reference``.

    None (trust the scores) when the reference has fewer than ``min_labelled``
    labels or only one class. Bins without labels get the fitted value at their
    mean score (or their centre).
    """
    count = (reference.pos + reference.neg).astype(np.float64)
    if count.sum() < min_labelled or not reference.positives or reference.positives == reference.labelled:
        return None
    used = count > 0
    x = reference.lab_p[used] / count[used]
    y = reference.pos[used] / count[used]
    xs, fitted = isotonic_fit(x, y, count[used])
    centres = (np.arange(N_BINS) + 0.5) / N_BINS
    return np.interp(centres, xs, np.clip(fitted, 0.0, 1.0))  # flat beyond the ends: out_of_bounds="clip"


def isotonic_fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted isotonic (non-decreasing) regression of ``y`` on ``x`` by pool-adjacent-violators.

    Returns the distinct ``x`` in order and the fitted value at each; between them the fit is linear, as
    ``sklearn.isotonic.IsotonicRegression`` predicts (equal ``x`` are first pooled into their weighted mean,
    as it does). numpy only: the label join and the dashboard need no scikit-learn import for it.

    >>> xs, fit = isotonic_fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 0.5, 0.2, 1.0]), np.ones(4))
    >>> xs.tolist(), [round(float(v), 3) for v in fit]
    ([0.1, 0.2, 0.3, 0.4], [0.0, 0.35, 0.35, 1.0])
    """
    order = np.lexsort((y, x))
    x, y, w = x[order], y[order], weight[order]
    xs, start = np.unique(x, return_index=True)
    wsum = np.add.reduceat(w, start)
    ymean = np.add.reduceat(w * y, start) / wsum
    # blocks as a stack of (weighted mean, weight, length); merge while the last two are out of order
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for v, wt in zip(ymean.tolist(), wsum.tolist(), strict=True):
        values.append(v)
        weights.append(wt)
        sizes.append(1)
        while len(values) > 1 and values[-2] >= values[-1]:
            w2 = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w2
            weights[-2] = w2
            sizes[-2] += sizes[-1]
            del values[-1], weights[-1], sizes[-1]
    return xs, np.repeat(np.asarray(values), sizes)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default)."""
    if n <= 0:
        return (0.0, 1.0)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """Hanley & McNeil's (1982) normal interval of an AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    half = z * math.sqrt(max(var, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def _r(value: float, *, up: bool = False) -> float:
    return float(value)


__all__ = ["N_BINS", "QualitySummary", "bin_of", "calibration_map", "hanley_mcneil", "isotonic_fit", "wilson"]
