"""Bootstrap confidence intervals that stay fast at a million rows.

A textbook bootstrap redraws every row ``resamples`` times: 10⁹ draws for a
million predictions and 1,000 resamples, far beyond a 10 s budget. yarnit
draws *cells* instead and keeps the result exact where it can:

* Rows are grouped into cells of (score bin, label). When a distribution has
  at most ``max_bins`` distinct scores, a bin is one distinct score and the
  cells lose nothing. Otherwise bins are score quantiles (never splitting a
  run of equal scores or crossing a calibration bucket edge).
* Each resample draws every cell's count from Poisson(observed count): the
  Poisson bootstrap (each row weighted by a Poisson(1) draw), summed per cell.
  Count-based metrics (positive rate, selection rate, TPR, FPR, parity
  differences) are exact under it.
* For metrics that are means of per-row values (log loss, Brier, bias, ECE),
  a cell's resampled sum is its count times its mean plus normal noise with
  the cell's own variance, so the spread inside a bin is kept.
* Rank metrics (AUC, PR-AUC) treat a bin as a run of ties. The interval is
  re-centred on the exact estimate: ``exact + quantiles(resampled - binned)``,
  so binning shifts nothing and only (slightly) changes the width.

The intervals are percentile intervals at ``confidence``. Tests compare them
with a row-level bootstrap on small data.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput

from .metrics import auc_from_counts, average_precision_from_counts


@dataclass(frozen=True)
class Bootstrap:
    """How confidence intervals are computed.

    ``max_bins`` bounds the score bins of a whole distribution and
    ``max_slice_bins`` those of a slice (fewer rows need fewer bins).
    ``workers`` threads share the slices; numpy's random draws release the GIL.
    """

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    max_bins: int = 2048
    max_slice_bins: int = 256
    workers: int = 2

    def __post_init__(self) -> None:
        resamples = self.resamples
        if isinstance(resamples, bool) or not isinstance(resamples, int) or not 10 <= resamples <= 100_000:
            raise InvalidInput(f"bootstrap resamples must be an int in [10, 100000], got {self.resamples!r}.")
        if not isinstance(self.confidence, float | int) or not 0.5 <= float(self.confidence) < 1.0:
            raise InvalidInput(f"bootstrap confidence must be in [0.5, 1), got {self.confidence!r} (e.g. 0.95).")
        for name in ("max_bins", "max_slice_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 1_000_000:
                raise InvalidInput(f"bootstrap {name} must be an int in [8, 1000000], got {value!r}.")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InvalidInput(f"bootstrap workers must be a positive int, got {self.workers!r}.")

    def rng(self, key: str) -> np.random.Generator:
        """A generator for one subset (distribution, slice, subject): the same key gives the same draws."""
        return np.random.default_rng([int(self.seed), zlib.crc32(key.encode())])

    def to_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "confidence": self.confidence, "seed": self.seed,
                "method": "Poisson bootstrap over (score bin, label) cells, percentile interval",
                "max_bins": self.max_bins, "max_slice_bins": self.max_slice_bins}


def percentile_interval(samples: np.ndarray, estimate: float, centre: float, confidence: float,
                        max_undefined: float = 0.5) -> tuple[float | None, float | None]:
    """``estimate + quantiles(samples - centre)``; None when too many resamples were undefined (NaN)."""
    finite = samples[np.isfinite(samples)]
    if len(samples) == 0 or len(finite) < (1.0 - max_undefined) * len(samples) or not np.isfinite(estimate):
        return None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite - centre, [alpha, 1.0 - alpha])
    return float(estimate + low), float(estimate + high)


# --- binary cells ----------------------------------------------------------------------------------
_TERMS = ("p", "p2", "se", "ll")


@dataclass(frozen=True)
class BinaryCells:
    """A sorted subset compressed to (score bin, label) cells, with per-cell sums of per-row terms."""

    count: np.ndarray  # (K,) rows per cell; cell 2g is bin g's negatives, 2g+1 its positives
    sums: dict[str, np.ndarray]  # term -> (K,) sum
    sigma: dict[str, np.ndarray] | None  # term -> (K,) within-cell standard deviation (None: exact cells)
    bin_bucket: np.ndarray  # (K/2,) the calibration bucket of each bin

    @property
    def bins(self) -> int:
        return len(self.count) // 2


def binary_cells(y_sorted: np.ndarray, p_sorted: np.ndarray, run_new: np.ndarray, calibration_bin: np.ndarray,
                 log_loss_terms: np.ndarray, max_bins: int) -> BinaryCells:
    """Cells of a subset sorted by ascending score; ``run_new`` marks the first row of each run of equal scores."""
    n = len(y_sorted)
    run_starts = np.flatnonzero(run_new)
    if len(run_starts) <= max_bins:
        starts, exact = run_starts, True
    else:
        target = n / max_bins
        key = calibration_bin[run_starts].astype(np.int64) * (max_bins + 2) + (run_starts / target).astype(np.int64)
        change = np.empty(len(key), dtype=bool)
        change[0] = True
        np.not_equal(key[1:], key[:-1], out=change[1:])
        starts, exact = run_starts[change], False
    flag = np.zeros(n, dtype=np.int64)
    flag[starts] = 1
    cell = (np.cumsum(flag) - 1) * 2 + y_sorted
    k = 2 * len(starts)
    count = np.bincount(cell, minlength=k).astype(np.float64)
    yf = y_sorted.astype(np.float64)
    terms = {"p": p_sorted, "p2": p_sorted * p_sorted, "se": (p_sorted - yf) ** 2, "ll": log_loss_terms}
    sums = {name: np.bincount(cell, weights=values, minlength=k) for name, values in terms.items()}
    sigma = None
    if not exact:
        sigma = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, values in terms.items():
                squares = np.bincount(cell, weights=values * values, minlength=k)
                mean = np.where(count > 0, sums[name] / np.where(count > 0, count, 1.0), 0.0)
                var = np.where(count > 0, squares / np.where(count > 0, count, 1.0) - mean * mean, 0.0)
                sigma[name] = np.sqrt(np.maximum(var, 0.0))
    return BinaryCells(count, sums, sigma, calibration_bin[starts].astype(np.int64))


def _binary_metrics(cells: BinaryCells, keep: np.ndarray, draws: np.ndarray,
                    noise: np.ndarray | None) -> dict[str, np.ndarray]:
    """Binary metrics for each row of ``draws`` (resamples x kept cells).

    Sums of per-row terms are matrix products (count x cell mean, plus noise x
    cell sigma), so no (resamples x cells) array is built per term.
    """
    r = draws.shape[0]
    bins = cells.bins
    per_cell = np.zeros((r, 2 * bins))
    per_cell[:, keep] = draws
    neg, pos = per_cell[:, 0::2], per_cell[:, 1::2]
    n = draws.sum(axis=1)
    positives = pos.sum(axis=1)
    count = cells.count[keep]
    means = {name: cells.sums[name][keep] / count for name in _TERMS}
    # einsum, not BLAS: these products are small, and BLAS threads fight the slice threads for 2 cores.
    totals = {name: np.einsum("rk,k->r", draws, means[name]) for name in ("p2", "se", "ll")}
    p_cells = draws * means["p"]
    if noise is not None and cells.sigma is not None:
        for name in ("p2", "se", "ll"):
            totals[name] = totals[name] + np.einsum("rk,k->r", noise, cells.sigma[name][keep])
        p_cells += noise * cells.sigma["p"][keep]
    # kept cells are in score order, hence grouped by calibration bucket
    bucket = cells.bin_bucket[keep // 2]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]]) if len(bucket) else np.zeros(0, dtype=np.int64)
    p_bucket = np.add.reduceat(p_cells, starts, axis=1)
    pos_bucket = np.add.reduceat(draws * (keep % 2 == 1), starts, axis=1)
    totals["p"] = p_bucket.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = totals["p"] / n
        return {
            "auc": auc_from_counts(pos, neg),
            "pr_auc": average_precision_from_counts(pos, neg + pos),
            "log_loss": totals["ll"] / n,
            "brier": totals["se"] / n,
            "mean_prediction": mean_p,
            "positive_rate": positives / n,
            "bias": mean_p - positives / n,
            "prediction_std": np.sqrt(np.maximum(totals["p2"] / n - mean_p * mean_p, 0.0)),
            "ece": np.abs(p_bucket - pos_bucket).sum(axis=1) / n,
        }


def binary_intervals(cells: BinaryCells, exact: dict[str, float], boot: Bootstrap, key: str
                     ) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals for every binary metric of ``exact`` (metric -> exact estimate)."""
    rng = boot.rng(key)
    keep = np.flatnonzero(cells.count > 0)
    draws = rng.poisson(cells.count[keep], size=(boot.resamples, len(keep))).astype(np.float64)
    noise = None
    if cells.sigma is not None:
        noise = np.sqrt(draws) * rng.standard_normal(draws.shape)
    resampled = _binary_metrics(cells, keep, draws, noise)
    observed = _binary_metrics(cells, keep, cells.count[keep][None, :], None)
    out: dict[str, tuple[float | None, float | None]] = {}
    for metric, estimate in exact.items():
        if metric not in resampled:
            continue
        out[metric] = percentile_interval(resampled[metric], estimate, float(observed[metric][0]), boot.confidence)
    return out


# --- means of per-group values (ranking metrics) ---------------------------------------------------
def mean_interval(values: np.ndarray, boot: Bootstrap, key: str) -> tuple[float | None, float | None]:
    """Percentile interval of the mean of ``values`` (NaN entries are left out), by the same cell method."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    if len(v) < 2:
        return None, None
    rng = boot.rng(key)
    new = np.empty(len(v), dtype=bool)
    new[0] = True
    np.not_equal(v[1:], v[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    if len(starts) > boot.max_bins:
        idx = (np.arange(len(v)) * boot.max_bins) // len(v)
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    flag = np.zeros(len(v), dtype=np.int64)
    flag[starts] = 1
    cell = np.cumsum(flag) - 1
    count = np.bincount(cell).astype(np.float64)
    total = np.bincount(cell, weights=v)
    mean = total / count
    sigma = np.sqrt(np.maximum(np.bincount(cell, weights=v * v) / count - mean * mean, 0.0))
    draws = rng.poisson(count, size=(boot.resamples, len(count))).astype(np.float64)
    sums = (draws * mean).sum(axis=1)
    if sigma.any():
        sums += (np.sqrt(draws) * sigma * rng.standard_normal(draws.shape)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = sums / draws.sum(axis=1)
    estimate = float(v.mean())
    return percentile_interval(resampled, estimate, float(total.sum() / count.sum()), boot.confidence)


def poisson_counts(boot: Bootstrap, key: str, counts: np.ndarray) -> np.ndarray:
    """Resampled counts, shape (resamples, *counts.shape): the exact Poisson bootstrap of a count table."""
    rng = boot.rng(key)
    flat = np.asarray(counts, dtype=np.float64).reshape(-1)
    return rng.poisson(flat, size=(boot.resamples, len(flat))).astype(np.float64).reshape(
        (boot.resamples, *np.shape(counts)))


__all__ = [
    "BinaryCells",
    "Bootstrap",
    "binary_cells",
    "binary_intervals",
    "mean_interval",
    "percentile_interval",
    "poisson_counts",
]
