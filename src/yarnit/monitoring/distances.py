"""The one statistics module: every distribution distance yarnit reports.

Data validation (``data/validation.py``), training-serving skew
(``features/skew.py``) and drift monitoring (``monitoring/drift.py``) all call
these functions, so one column gets one number whoever asks.

Two families:

* **Exact, on arrays** (the data fit in memory): :func:`ks`,
  :func:`wasserstein_normed`, :func:`psi`, :func:`jensen_shannon` for numbers;
  :func:`chi_square`, :func:`categorical_psi`, :func:`l_infinity`,
  :func:`categorical_jensen_shannon` for category counts. KS, Wasserstein and
  chi-square delegate to SciPy and equal ``scipy.stats.ks_2samp``,
  ``scipy.stats.wasserstein_distance`` / reference std and
  ``scipy.stats.chi2_contingency`` (tested within 1e-9).
* **From mergeable summaries** (a statistics profile of
  ``data/statistics.py``: 101 quantiles, exact value counts):
  :func:`wasserstein_normed_from_quantiles` and :func:`ks_from_quantiles`
  return an estimate with a guaranteed ``[lower, upper]`` interval; the
  categorical distances are exact from value counts (they take counts).

Conventions shared by every function:

* The first argument is the **reference** (training data, previous version,
  offline values), the second the **current** window.
* Numbers: NaN and None are dropped before computing (missingness is its own
  check); a side with no values left gives ``nan`` (the callers turn that
  into an explicit "no data" state, never a pass).
* Categories: the caller passes counts (``{value: count}``) or raw values;
  :func:`category_counts` keeps ``None`` as a category of its own. A category
  absent on one side has count 0 there.
* ε for empty bins (PSI, log terms): a share of 0 is replaced by
  ``EPSILON = 1e-4`` (Evidently's choice), then shares are *not* renormalized.
* Logs: PSI uses the natural log; Jensen-Shannon uses **base 2**, so the
  distance (square root of the divergence) lies in [0, 1].
* std: population std (ddof = 0) of the reference, floored at ``STD_FLOOR =
  1e-3`` so a constant reference does not divide by zero (as Evidently).
* Numeric binning (PSI, Jensen-Shannon): ``bins`` (default 30) equal-frequency
  bins on the **reference** quantiles, outer edges open (−∞, +∞), duplicate
  edges merged; a value equal to an edge falls in the bin on its right.
  Equal-frequency edges keep a heavy-tailed column's mass spread over bins
  instead of piling it into the first of 30 equal-width ones.

Example:
    >>> import numpy as np
    >>> round(wasserstein_normed(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0])), 4)
    0.1622
    >>> value, category = l_infinity({"a": 5, "b": 5}, {"a": 8, "b": 2})
    >>> (round(value, 6), category)
    (0.3, 'a')
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats
from scipy.spatial import distance as _spatial

from yarnit.core.errors import InvalidInput

EPSILON = 1e-4
STD_FLOOR = 1e-3
PSI_BINS = 30
DEFAULT_LEVELS: tuple[float, ...] = tuple(i / 100 for i in range(101))


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: its statistic and p-value."""

    statistic: float
    p_value: float


@dataclass(frozen=True)
class Estimate:
    """A distance computed from summaries: the estimate and an interval that contains the exact value."""

    value: float
    lower: float
    upper: float

    @property
    def max_error(self) -> float:
        return max(self.value - self.lower, self.upper - self.value)


# -- inputs ---------------------------------------------------------------------
def numeric_values(values: Any) -> np.ndarray:
    """``values`` as a float64 array with NaN and None dropped."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        arr = values.astype(np.float64, copy=False).ravel()
    else:
        arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return arr[~np.isnan(arr)]


def category_counts(values: Iterable[Hashable]) -> dict[Any, int]:
    """Counts of each value; ``None`` is a category of its own (NaN too, as ``None``)."""
    out: dict[Any, int] = {}
    for v in values:
        if isinstance(v, float) and v != v:
            v = None
        out[v] = out.get(v, 0) + 1
    return out


def _counts(values: Mapping[Any, float] | Iterable[Hashable]) -> dict[Any, float]:
    return dict(values) if isinstance(values, Mapping) else category_counts(values)


def _aligned(reference: Mapping[Any, float] | Iterable[Hashable],
             current: Mapping[Any, float] | Iterable[Hashable]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Categories (union, reference order first) and the two count vectors."""
    ref, cur = _counts(reference), _counts(current)
    keys = list(ref) + [k for k in cur if k not in ref]
    return keys, np.array([ref.get(k, 0) for k in keys], float), np.array([cur.get(k, 0) for k in keys], float)


def _shares(counts: np.ndarray) -> np.ndarray | None:
    total = counts.sum()
    return counts / total if total > 0 else None


# -- numeric, exact ------------------------------------------------------------
def ks(reference: Any, current: Any) -> TestResult:
    """Two-sample Kolmogorov-Smirnov: ``scipy.stats.ks_2samp(reference, current)`` (two-sided, method 'auto').

    NaN/None dropped; ``nan`` statistic and p-value when a side is empty.
    """
    a, b = numeric_values(reference), numeric_values(current)
    if a.size == 0 or b.size == 0:
        return TestResult(float("nan"), float("nan"))
    r = stats.ks_2samp(a, b)
    return TestResult(float(r.statistic), float(r.pvalue))


def ks_statistic_batch(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """KS statistics of many sample pairs at once: rows of ``reference`` (t, n) against rows of ``current`` (t, m).

    The same statistic as :func:`ks` for each row (no NaN allowed); one sort per
    row instead of a Python loop, for power and false-alarm studies.
    """
    a, b = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    n, m = a.shape[1], b.shape[1]
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    values = np.take_along_axis(both, order, axis=1)
    step = np.where(order < n, 1.0 / n, -1.0 / m)  # Fa - Fb moves up at a reference value, down at a current one
    gap = np.cumsum(step, axis=1)
    last_of_tie = np.ones_like(values, dtype=bool)  # the CDFs are read after the last of equal values
    last_of_tie[:, :-1] = values[:, 1:] != values[:, :-1]
    return np.max(np.where(last_of_tie, np.abs(gap), 0.0), axis=1)


def wasserstein(reference: Any, current: Any) -> float:
    """Earth mover's distance W1 between the two samples (``scipy.stats.wasserstein_distance``); NaN/None dropped."""
    a, b = numeric_values(reference), numeric_values(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(stats.wasserstein_distance(a, b))


def wasserstein_normed(reference: Any, current: Any) -> float:
    """W1 divided by the reference's population std (ddof 0, floored at ``STD_FLOOR``).

    Exact: ``scipy.stats.wasserstein_distance(reference, current) / max(np.std(reference), 1e-3)``,
    NaN/None dropped first, ``nan`` when a side is empty. Reads as "how many reference standard
    deviations the mass had to move"; 0.1 is Evidently's threshold.
    """
    a, b = numeric_values(reference), numeric_values(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(stats.wasserstein_distance(a, b)) / max(float(np.std(a)), STD_FLOOR)


_SCRATCH = threading.local()


@contextmanager
def reusing_buffers() -> Iterator[None]:
    """Within the block, this thread's drift merges reuse their large temporary arrays from call to call.

    A 100,000-row pair needs about 10 MB of temporaries; allocated afresh per column, the pages are
    faulted in and returned to the system every time, which costs about as much as the arithmetic.
    :func:`yarnit.monitoring.drift.dataset_drift` holds this for its columns. The buffers grow to the
    largest pair seen and are released when the outermost block ends (bounded by that pair's size).
    """
    outer = getattr(_SCRATCH, "buffers", None)
    if outer is None:
        _SCRATCH.buffers = {}
    try:
        yield
    finally:
        if outer is None:
            _SCRATCH.buffers = None


def _scratch(name: str, size: int, dtype: Any) -> np.ndarray:
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        return np.empty(size, dtype)
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size:
        buffer = buffers[name] = np.empty(size, dtype)
    return buffer[:size]


def _scratch_count(size: int) -> np.ndarray:
    """1, 2, …, size (int64), kept with the other buffers."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        return np.arange(1, size + 1, dtype=np.int64)
    count = buffers.get("count")
    if count is None or count.size < size:
        count = buffers["count"] = np.arange(1, size + 1, dtype=np.int64)
    return count[:size]


def _smirnov_twice(n: float, x: float) -> float:
    """``2 * scipy.special.smirnov(n, x)``: Smirnov's exact one-sided tail, summed in log space with numpy.

    P(D+ >= x) = x * sum_{j=0}^{floor(n(1-x))} C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1)
    (Birnbaum & Tingey 1951). Every term is positive, so the sum is well conditioned; vectorized, it costs
    a few milliseconds at n = 50,000 where scipy's scalar loop takes 0.1–0.3 s. Agrees with scipy to about
    1e-11 (tests/monitoring/test_drift_merge.py).
    """
    j = np.arange(0, int(np.floor(n * (1 - x))) + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):  # 1 - x - j/n may reach 0 at the last j: that term is 0
        logs = (special.gammaln(n + 1) - special.gammaln(j + 1) - special.gammaln(n - j + 1)
                + (n - j) * np.log(1 - x - j / n) + (j - 1) * np.log(x + j / n))
    return 2 * x * float(np.sum(np.exp(logs)))


def kstwo_sf(statistic: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(statistic, n)``, the p-value ``ks_2samp`` gives large samples (within 1e-9).

    Follows scipy's own choice of method (Simard & L'Ecuyer); only where scipy takes ``2 * smirnov(n, x)``
    (n > 140, 2.2 <= n x^2 < 370, 1 < n x < n - 1, x < 0.5), which its scalar loop makes slow for large n,
    the same sum is computed vectorized (:func:`_smirnov_twice`).
    """
    x = float(statistic)
    t = n * x
    if n > 140 and 0 < x < 0.5 and 1.0 < t < n - 1 and 2.2 <= t * x < 370.0:
        return float(np.clip(_smirnov_twice(n, x), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(x, n), 0.0, 1.0))


def ks_and_wasserstein_normed(reference: Any, current: Any, *, presorted: bool = False) -> tuple[TestResult, float]:
    """:func:`ks` and :func:`wasserstein_normed` of one pair from a single merge of the two sorted samples.

    The same numbers as the two functions (the CDFs are the same integer counts
    divided by the same sizes, summed in the same order as scipy), at a fraction
    of the cost: each side is sorted once and merged once (a stable argsort of two
    sorted runs is one linear merge), instead of scipy's four sorts and four
    binary searches of every value. ``presorted`` says both
    inputs are already sorted float arrays without NaN. ``nan`` values when a side is empty.
    """
    if presorted:
        a, b = reference, current
    else:
        a, b = numeric_values(reference), numeric_values(current)
        a, b = (a.copy() if a.base is not None else a), (b.copy() if b.base is not None else b)
        a.sort()
        b.sort()
    n, m = a.size, b.size
    if n == 0 or m == 0:
        return TestResult(float("nan"), float("nan")), float("nan")
    if max(n, m) <= 10_000:  # scipy's exact small-sample p-value: let scipy compute it
        return ks(a, b), wasserstein_normed(a, b)
    total = n + m
    both = _scratch("both", total, np.float64)
    both[:n], both[n:] = a, b
    order = np.argsort(both, kind="stable")  # two sorted runs: one linear merge; ties keep reference first
    merged = np.take(both, order, out=_scratch("merged", total, np.float64))
    seen_current = np.cumsum(np.greater_equal(order, n, out=_scratch("flag", total, np.bool_)), out=order)
    seen_reference = np.subtract(_scratch_count(total), seen_current, out=_scratch("seen", total, np.int64))
    # Fa - Fb just after each merged value: scipy's counts / sizes, then the difference
    gap = np.divide(seen_reference, n, out=_scratch("gap", total, np.float64))
    gap -= np.divide(seen_current, m, out=_scratch("fb", total, np.float64))
    steps = np.subtract(merged[1:], merged[:-1], out=_scratch("steps", total - 1, np.float64))  # np.diff
    last_of_tie = _scratch("last", total, np.bool_)  # the CDFs are read after the last of equal values
    np.not_equal(steps, 0.0, out=last_of_tie[:-1])
    last_of_tie[-1] = True
    lowest = float(np.clip(-np.min(gap, where=last_of_tie, initial=np.inf), 0, 1))
    highest = float(np.max(gap, where=last_of_tie, initial=-np.inf))
    statistic = lowest if lowest > highest else highest
    big, small = sorted([float(n), float(m)], reverse=True)
    p_value = kstwo_sf(statistic, float(np.round(big * small / (big + small))))
    # W1 = sum |Fa - Fb| * (next value - value): inside a run of ties the step is 0, so the running counts
    # there (rather than the counts after the run) change nothing and the sum equals scipy's term by term.
    steps *= np.abs(gap[:-1], out=gap[:-1])
    distance = float(np.sum(steps))
    return TestResult(statistic, p_value), distance / max(float(np.std(a)), STD_FLOOR)


def bin_edges(reference: Any, bins: int = PSI_BINS) -> np.ndarray:
    """Inner edges of ``bins`` equal-frequency bins of the reference (duplicates merged; outer edges open)."""
    a = numeric_values(reference)
    if a.size == 0:
        return np.array([])
    inner = np.quantile(a, np.arange(1, bins) / bins)
    return np.unique(inner)


def binned_shares(values: Any, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin (−∞, e0), [e0, e1), …, [e_last, +∞)."""
    v = numeric_values(values)
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1).astype(float)
    return counts / v.size if v.size else counts


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.where(p == 0, EPSILON, p), np.where(q == 0, EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    return float(_spatial.jensenshannon(p, q, base=2))


def psi(reference: Any, current: Any, *, bins: int = PSI_BINS) -> float:
    """Population stability index over equal-frequency reference bins.

    PSI = Σ (cur% − ref%) · ln(cur% / ref%), natural log, empty shares → ``EPSILON``, ``bins`` (30)
    equal-frequency bins on the reference (see the module notes); NaN/None dropped, ``nan`` when a side is empty.
    Rule of thumb: < 0.1 little change, 0.1–0.25 moderate, > 0.25 large (no stated error rates).
    """
    a, b = numeric_values(reference), numeric_values(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    edges = bin_edges(a, bins)
    return _psi(binned_shares(a, edges), binned_shares(b, edges))


def jensen_shannon(reference: Any, current: Any, *, bins: int = PSI_BINS) -> float:
    """Jensen-Shannon **distance** (sqrt of the divergence, log base 2, in [0, 1]) over equal-frequency reference bins.

    Equals ``scipy.spatial.distance.jensenshannon(ref_shares, cur_shares, base=2)``; no ε needed (an empty
    bin contributes 0). NaN/None dropped, ``nan`` when a side is empty.
    """
    a, b = numeric_values(reference), numeric_values(current)
    if a.size == 0 or b.size == 0:
        return float("nan")
    edges = bin_edges(a, bins)
    return _js(binned_shares(a, edges), binned_shares(b, edges))


# -- categorical (exact from counts) ------------------------------------------
def chi_square(reference: Mapping[Any, float] | Iterable[Hashable],
               current: Mapping[Any, float] | Iterable[Hashable]) -> TestResult:
    """Chi-square test of homogeneity on the 2 × k table of counts (categories: the union of both sides).

    Exactly ``scipy.stats.chi2_contingency([ref_counts, cur_counts])`` with its defaults (Yates' correction
    only when there is one degree of freedom). One category in all gives statistic 0, p-value 1; a side with
    no counts gives ``nan``. Nulls count only if the caller counted them (:func:`category_counts` does).
    """
    _keys, r, c = _aligned(reference, current)
    if r.sum() == 0 or c.sum() == 0:
        return TestResult(float("nan"), float("nan"))
    if len(r) < 2:
        return TestResult(0.0, 1.0)
    res = stats.chi2_contingency(np.vstack([r, c]))
    return TestResult(float(res.statistic), float(res.pvalue))


def l_infinity(reference: Mapping[Any, float] | Iterable[Hashable],
               current: Mapping[Any, float] | Iterable[Hashable]) -> tuple[float, Any]:
    """Largest absolute difference in any category's share, and that category (TFDV's ``infinity_norm``).

    Shares are counts over each side's total, no ε. Ties go to the category seen first (reference order).
    ``(nan, None)`` when a side is empty; nulls count only if the caller counted them.
    """
    keys, r, c = _aligned(reference, current)
    p, q = _shares(r), _shares(c)
    if p is None or q is None:
        return float("nan"), None
    diff = np.abs(p - q)
    i = int(np.argmax(diff))
    return float(diff[i]), keys[i]


def categorical_psi(reference: Mapping[Any, float] | Iterable[Hashable],
                    current: Mapping[Any, float] | Iterable[Hashable]) -> float:
    """PSI over categories: Σ (cur% − ref%) · ln(cur% / ref%), natural log, empty shares → ``EPSILON``.

    ``nan`` when a side is empty; nulls count only if the caller counted them.
    """
    _keys, r, c = _aligned(reference, current)
    p, q = _shares(r), _shares(c)
    return float("nan") if p is None or q is None else _psi(p, q)


def categorical_jensen_shannon(reference: Mapping[Any, float] | Iterable[Hashable],
                               current: Mapping[Any, float] | Iterable[Hashable]) -> float:
    """Jensen-Shannon distance over categories (sqrt of the divergence, log base 2, in [0, 1]).

    ``nan`` when a side is empty; nulls count only if the caller counted them.
    """
    _keys, r, c = _aligned(reference, current)
    p, q = _shares(r), _shares(c)
    return float("nan") if p is None or q is None else _js(p, q)


# -- numeric, from quantile summaries -----------------------------------------
def _check_quantiles(reference: Sequence[float] | None, current: Sequence[float] | None,
                     levels: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not reference or not current:
        return None
    qa, qb, p = (np.asarray(x, dtype=float) for x in (reference, current, levels))
    if not (len(qa) == len(qb) == len(p)) or p[0] != 0.0 or p[-1] != 1.0:
        raise InvalidInput(f"quantile summaries must both have one value per level from 0 to 1 ({len(p)} levels); "
                           f"got {len(qa)} and {len(qb)} values. Compare profiles made with the same levels "
                           "(data/statistics.py QUANTILE_POINTS) or pass levels=.")
    return qa, qb, p


def wasserstein_normed_from_quantiles(reference: Sequence[float] | None, current: Sequence[float] | None,
                                      reference_std: float | None, *,
                                      levels: Sequence[float] = DEFAULT_LEVELS,
                                      rank_error: tuple[float, float] = (0.0, 0.0)) -> Estimate | None:
    """Normed W1 from two quantile summaries (values at ``levels``, 0 and 1 being min and max).

    W1 = ∫₀¹ |Fa⁻¹(p) − Fb⁻¹(p)| dp. Between two stored levels each quantile
    function is monotone, so it stays between its two stored values: that gives,
    per interval, a guaranteed lower bound (the gap between the two value ranges)
    and upper bound (their widest spread); ``lower``/``upper`` sum them. The
    estimate is the trapezoid rule over the interior levels (1 %…99 % by
    default) plus, for the two extreme intervals, the difference at the inner
    level: the sample min and max (noisy for heavy tails, which is what made
    unchanged heavy-tailed columns read as drifted) only widen ``upper``, never
    move the estimate. The interval holds for the piecewise-linear quantile
    function the summaries define (the one ``data/statistics.py`` stores and
    merges); the sample's step function may differ by one order statistic per
    level, and profiles of more than ``SAMPLE_ROWS`` rows add their sampling
    rank error (about 0.3 %). Divided by ``max(reference_std, 1e-3)``.
    Returns None when a summary is missing.

    ``rank_error`` (reference, current): when a side's stored quantiles come
    from a sketch whose value at level p has a true rank within ± ε of p (a
    KLL sketch), its quantile function over [p_i, p_{i+1}] is only known to
    lie between the stored values at p_i − ε and p_{i+1} + ε (rounded outward
    to stored levels); the interval uses those wider envelopes. (0, 0) is the
    exact case above.
    """
    checked = _check_quantiles(reference, current, levels)
    if checked is None or reference_std is None:
        return None
    qa, qb, p = checked
    width = np.diff(p)
    (a_lo, a_hi), (b_lo, b_hi) = _envelope(qa, p, rank_error[0]), _envelope(qb, p, rank_error[1])
    lower = float(np.sum(width * np.maximum(0.0, np.maximum(a_lo - b_hi, b_lo - a_hi))))
    upper = float(np.sum(width * np.maximum(np.abs(a_hi - b_lo), np.abs(b_hi - a_lo))))
    d = np.abs(qa - qb)
    inner = np.sum(width[1:-1] * (d[1:-2] + d[2:-1]) / 2)
    estimate = float(inner + width[0] * d[1] + width[-1] * d[-2])
    scale = max(float(reference_std), STD_FLOOR)
    return Estimate(estimate / scale, lower / scale, upper / scale)


def _envelope(quantiles: np.ndarray, levels: np.ndarray, rank_error: float) -> tuple[np.ndarray, np.ndarray]:
    """Per level interval [p_i, p_{i+1}]: stored values that bound the quantile function there, given ± rank error."""
    if not 0.0 <= rank_error < 1.0:
        raise InvalidInput(f"rank_error must be in [0, 1), got {rank_error!r}.")
    last = len(levels) - 1
    lo = np.clip(np.searchsorted(levels, levels[:-1] - rank_error + 1e-12, side="right") - 1, 0, last)
    hi = np.clip(np.searchsorted(levels, levels[1:] + rank_error - 1e-12, side="left"), 0, last)
    return quantiles[lo], quantiles[hi]


def _summary_cdf(quantiles: np.ndarray, levels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The CDF a quantile summary defines, right-continuous at repeated values (an atom takes its last level)."""
    last = np.r_[quantiles[1:] != quantiles[:-1], True]
    return np.interp(x, quantiles[last], levels[last], left=0.0, right=1.0)


def ks_from_quantiles(reference: Sequence[float] | None, current: Sequence[float] | None, *,
                      levels: Sequence[float] = DEFAULT_LEVELS,
                      rank_error: tuple[float, float] = (0.0, 0.0)) -> Estimate | None:
    """KS statistic sup |Fa − Fb| from two quantile summaries, within ± the widest level step of the exact one.

    Each CDF is interpolated linearly through its stored (value, level) points
    and read on the union of both value grids. At any x the true CDF lies
    between the two stored levels around x, and so does the interpolation: each
    CDF is off by at most the widest level step (0.01 by default), the statistic
    by at most twice that (the interval is clipped to [0, 1]). No p-value: a
    summary does not carry the test's sampling distribution. ``rank_error``
    (reference, current): a sketch's stored levels are off by up to that much
    rank each, which widens the interval by their sum.
    """
    checked = _check_quantiles(reference, current, levels)
    if checked is None:
        return None
    qa, qb, p = checked
    grid = np.unique(np.concatenate([qa, qb]))
    fa, fb = _summary_cdf(qa, p, grid), _summary_cdf(qb, p, grid)
    value = float(np.max(np.abs(fa - fb)))
    step = 2 * float(np.max(np.diff(p))) + float(rank_error[0]) + float(rank_error[1])
    return Estimate(value, max(0.0, value - step), min(1.0, value + step))


__all__ = [
    "DEFAULT_LEVELS",
    "EPSILON",
    "PSI_BINS",
    "STD_FLOOR",
    "Estimate",
    "TestResult",
    "bin_edges",
    "binned_shares",
    "categorical_jensen_shannon",
    "categorical_psi",
    "category_counts",
    "chi_square",
    "jensen_shannon",
    "ks",
    "ks_and_wasserstein_normed",
    "ks_from_quantiles",
    "ks_statistic_batch",
    "kstwo_sf",
    "l_infinity",
    "numeric_values",
    "psi",
    "reusing_buffers",
    "wasserstein",
    "wasserstein_normed",
    "wasserstein_normed_from_quantiles",
]
