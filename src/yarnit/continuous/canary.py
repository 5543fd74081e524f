"""Canary analysis: a Kayenta-like judge that compares a canary with its baseline, metric by metric.

Each metric is classified **Pass**, **High**, **Low** or **NoData**
(RELIABILITY.md §3.1, Kayenta's NetflixACAJudge), then the verdicts are
scored:

* **latency-like samples** (:func:`mann_whitney`): a two-sided Mann-Whitney U
  test (``scipy.stats.mannwhitneyu``) at ``confidence`` (default 0.98), and
  the Hodges-Lehmann estimate of the shift (canary − baseline: the median of
  all pairwise differences) with its distribution-free confidence interval.
  ``tolerance`` (default 0.25) is the allowed deviation relative to the
  baseline's median: the metric is High (Low) only when the test is
  significant *and* the estimated shift is above (below) ``+tolerance ×
  median`` (``-tolerance × median``). Fewer than ``min_samples`` (50) on
  either side is NoData.
* **rates** (:func:`proportions`: error rate, fallback rate, CTR from joined
  labels): a two-proportion z-test (Fisher's exact test when an expected
  count is below 5: rare errors), with the allowed deviation ``tolerance ×
  baseline rate`` (at least ``abs_tolerance``); and optionally Flagger's
  absolute bound ``max_rate`` on the canary's rate (a success-rate threshold
  of 99 % is ``max_rate=0.01`` on the error rate), checked once there are
  ``min_samples`` canary events: High when the lower end of the rate's Wilson
  interval at ``confidence`` is above it (one error in 99 requests is not
  proof of a 1 % error rate; Flagger's plain comparison would fail it).
* **distributions** (:func:`distribution`: the predictions): KS from
  :mod:`yarnit.monitoring.distances`; it has no direction, so a significant
  KS statistic above ``tolerance`` is High ("differs").

Scoring (:func:`score`) follows Kayenta's weighted-sum scorer: a group's score
is ``Pass / (Pass + High + Low + required NoData) × 100`` (a NoData metric
that is not ``required`` leaves the group's denominator: CTR before any label
has arrived is not a failure; a required one counts as a failure, never as a
pass); the summary is the weighted sum of group scores (groups without a
weight share what is left of 100; a group with nothing to count is left out
and the weights renormalised); **a failing critical metric → 0** with
``decision: "fail"`` (even when the other metrics have no data: a canary
that fails every request has no latencies to compare); **≥ 50 % of the
metrics NoData → 0** with ``decision: "nodata"`` (a caller holds: no
data is never a pass). The decision: ``pass`` at ≥ ``pass_score`` (95),
``fail`` below ``marginal`` (75), ``marginal`` between.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> mann_whitney(rng.normal(100, 10, 60), rng.normal(150, 15, 60), MetricSpec("latency_ms")).verdict
    'High'
    >>> proportions(1, 1000, 40, 500, MetricSpec("error_rate", kind="rate")).verdict
    'High'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from yarnit.core.errors import InvalidInput
from yarnit.monitoring.distances import ks, numeric_values

PASS, HIGH, LOW, NODATA = "Pass", "High", "Low", "NoData"
KINDS = ("latency", "rate", "distribution")
DIRECTIONS = ("increase", "decrease", "either")
MIN_SAMPLES = 50  # Kayenta's "need >= 50 data points per metric"
MAX_PAIRS = 250_000  # Hodges-Lehmann on at most this many pairwise differences (samples are thinned evenly)


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a canary config.

    ``direction`` is the deviation that fails: ``increase`` (latency, error
    rate: only High fails), ``decrease`` (CTR: only Low fails) or ``either``.
    """

    name: str
    kind: str = "latency"
    group: str = "default"
    direction: str = "increase"
    critical: bool = False
    required: bool = True
    weight: float = 1.0
    confidence: float = 0.98
    tolerance: float = 0.25
    abs_tolerance: float = 0.001  # rates: the smallest deviation (absolute) that may fail
    max_rate: float | None = None  # rates: Flagger's absolute bound on the canary's observed rate
    min_samples: int = MIN_SAMPLES

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"Metric {self.name!r}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}.")
        if self.direction not in DIRECTIONS:
            raise InvalidInput(f"Metric {self.name!r}: direction must be one of {', '.join(DIRECTIONS)}; "
                               f"got {self.direction!r}.")
        if not 0.5 <= self.confidence < 1.0:
            raise InvalidInput(f"Metric {self.name!r}: confidence must be in [0.5, 1); got {self.confidence}.")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise InvalidInput(f"Metric {self.name!r}: tolerance must be a number >= 0; got {self.tolerance}.")
        if self.min_samples < 1:
            raise InvalidInput(f"Metric {self.name!r}: min_samples must be >= 1; got {self.min_samples}.")
        if self.max_rate is not None and not 0.0 <= self.max_rate <= 1.0:
            raise InvalidInput(f"Metric {self.name!r}: max_rate must be in [0, 1]; got {self.max_rate}.")


@dataclass
class MetricResult:
    """One metric's verdict, with the figures it was decided on (JSON-able: the dashboard draws it)."""

    name: str
    kind: str
    group: str
    verdict: str
    critical: bool
    required: bool
    reason: str
    canary_n: int = 0
    baseline_n: int = 0
    canary: float | None = None  # median (latency), rate, or mean (distribution)
    baseline: float | None = None
    estimate: float | None = None  # latency: Hodges-Lehmann shift; rates: canary − baseline; KS: statistic
    interval: list[float] | None = None
    allowed: float | None = None  # the tolerance band's half-width, in the metric's unit
    p_value: float | None = None

    @property
    def failed(self) -> bool:
        return self.verdict in (HIGH, LOW)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fails(spec: MetricSpec, high: bool) -> str:
    """The verdict of a significant deviation upwards (``high``) or downwards, given the failing direction."""
    if high:
        return HIGH if spec.direction in ("increase", "either") else PASS
    return LOW if spec.direction in ("decrease", "either") else PASS


def _result(spec: MetricSpec, verdict: str, reason: str, **figures: Any) -> MetricResult:
    return MetricResult(spec.name, spec.kind, spec.group, verdict, spec.critical, spec.required, reason, **figures)


def _samples(baseline: Any, canary: Any, spec: MetricSpec) -> tuple[np.ndarray, np.ndarray, MetricResult | None]:
    """The finite values of both sides, and a NoData result when either has fewer than ``min_samples``."""
    b, c = numeric_values(baseline), numeric_values(canary)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if b.size < spec.min_samples or c.size < spec.min_samples:
        return b, c, _result(spec, NODATA, f"{c.size} canary and {b.size} baseline values; {spec.min_samples} each "
                             "needed", canary_n=int(c.size), baseline_n=int(b.size))
    return b, c, None


def hodges_lehmann(baseline: np.ndarray, canary: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """The shift canary − baseline (median of pairwise differences) and its distribution-free interval.

    The interval is the order statistics ``k`` and ``N - 1 - k`` of the ``N``
    pairwise differences, ``k`` from the normal approximation of U's null
    distribution (Hollander & Wolfe); past :data:`MAX_PAIRS` both samples are
    thinned evenly (sorted, every j-th value) first.
    """
    b, c = np.sort(baseline), np.sort(canary)
    while b.size * c.size > MAX_PAIRS:
        if b.size >= c.size:
            b = b[::2]
        else:
            c = c[::2]
    diffs = np.sort((c[:, None] - b[None, :]).ravel())
    n1, n2, n = c.size, b.size, diffs.size
    z = stats.norm.ppf(0.5 + confidence / 2)
    k = int(math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    k = min(max(k, 0), n - 1)
    return float(np.median(diffs)), float(diffs[k]), float(diffs[n - 1 - k])


def mann_whitney(baseline: Any, canary: Any, spec: MetricSpec) -> MetricResult:
    """Kayenta's Mann-Whitney classifier for one latency-like metric (see the module docstring)."""
    b, c, missing = _samples(baseline, canary, spec)
    if missing is not None:
        return missing
    p_value = float(stats.mannwhitneyu(c, b, alternative="two-sided", method="asymptotic").pvalue)
    estimate, low, high = hodges_lehmann(b, c, spec.confidence)
    centre = float(np.median(b))
    allowed = spec.tolerance * abs(centre)
    significant = p_value < 1.0 - spec.confidence
    verdict, reason = PASS, "no significant difference"
    if significant and estimate > allowed:
        verdict = _fails(spec, True)
        reason = f"canary higher by {estimate:.4g} (allowed {allowed:.4g}; p = {p_value:.2g})"
    elif significant and estimate < -allowed:
        verdict = _fails(spec, False)
        reason = f"canary lower by {-estimate:.4g} (allowed {allowed:.4g}; p = {p_value:.2g})"
    elif significant:
        reason = f"significant (p = {p_value:.2g}) but within tolerance ({estimate:.4g} of ±{allowed:.4g})"
    return _result(spec, verdict, reason, canary_n=int(c.size), baseline_n=int(b.size), canary=float(np.median(c)),
                   baseline=centre, estimate=estimate, interval=[low, high], allowed=allowed, p_value=p_value)


def _wilson_lower(events: int, n: int, z: float) -> float:
    """The lower end of the Wilson score interval of ``events / n``."""
    p = events / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


def proportions(baseline_events: int, baseline_n: int, canary_events: int, canary_n: int,
                spec: MetricSpec) -> MetricResult:
    """A two-proportion z-test of canary against baseline (and Flagger's ``max_rate`` bound, if set)."""
    for name, value in (("baseline_events", baseline_events), ("baseline_n", baseline_n),
                        ("canary_events", canary_events), ("canary_n", canary_n)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise InvalidInput(f"Metric {spec.name!r}: {name} must be a count >= 0; got {value!r}.")
    if baseline_events > baseline_n or canary_events > canary_n:
        raise InvalidInput(f"Metric {spec.name!r}: more events than trials "
                           f"({baseline_events}/{baseline_n}, {canary_events}/{canary_n}).")
    if canary_n < spec.min_samples or (baseline_n < spec.min_samples and spec.max_rate is None):
        return _result(spec, NODATA, f"{canary_n} canary and {baseline_n} baseline trials; "
                       f"{spec.min_samples} needed", canary_n=int(canary_n), baseline_n=int(baseline_n))
    pc = canary_events / canary_n
    pb = baseline_events / baseline_n if baseline_n else None
    figures: dict[str, Any] = {"canary_n": int(canary_n), "baseline_n": int(baseline_n), "canary": pc,
                               "baseline": pb}
    z = stats.norm.ppf(0.5 + spec.confidence / 2)
    if spec.max_rate is not None:
        lower = _wilson_lower(canary_events, canary_n, z)
        if lower > spec.max_rate:
            return _result(spec, HIGH, f"canary rate {pc:.4%} above the bound {spec.max_rate:.4%} (lower confidence "
                           f"bound {lower:.4%})", **figures, estimate=None if pb is None else pc - pb,
                           allowed=spec.max_rate)
    if pb is None or baseline_n < spec.min_samples:
        return _result(spec, PASS, f"canary rate {pc:.4%} within the bound (too few baseline trials to compare)",
                       **figures)
    pooled = (canary_events + baseline_events) / (canary_n + baseline_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / canary_n + 1 / baseline_n))
    diff = pc - pb
    p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(diff) / se))
    if min(pooled * canary_n, (1 - pooled) * canary_n, pooled * baseline_n, (1 - pooled) * baseline_n) < 5:
        # rare events (an error rate of 0.1 %): the normal approximation lies; Fisher's exact test does not
        table = [[canary_events, canary_n - canary_events], [baseline_events, baseline_n - baseline_events]]
        p_value = float(stats.fisher_exact(table).pvalue)
    se_diff = math.sqrt(pc * (1 - pc) / canary_n + pb * (1 - pb) / baseline_n)
    allowed = max(spec.tolerance * pb, spec.abs_tolerance)
    significant = p_value < 1.0 - spec.confidence
    verdict, reason = PASS, "no significant difference"
    if significant and diff > allowed:
        verdict, reason = _fails(spec, True), f"canary {pc:.4%} vs baseline {pb:.4%} (allowed +{allowed:.4%})"
    elif significant and diff < -allowed:
        verdict, reason = _fails(spec, False), f"canary {pc:.4%} vs baseline {pb:.4%} (allowed -{allowed:.4%})"
    return _result(spec, verdict, reason, **figures, estimate=diff,
                   interval=[diff - z * se_diff, diff + z * se_diff], allowed=allowed, p_value=p_value)


def distribution(baseline: Any, canary: Any, spec: MetricSpec) -> MetricResult:
    """KS of the canary's values against the baseline's: High ("differs") when significant and above ``tolerance``."""
    b, c, missing = _samples(baseline, canary, spec)
    if missing is not None:
        return missing
    test = ks(b, c)
    significant = test.p_value < 1.0 - spec.confidence and test.statistic > spec.tolerance
    reason = (f"distributions differ (KS {test.statistic:.3f} > {spec.tolerance:g}, p = {test.p_value:.2g})"
              if significant else f"KS {test.statistic:.3f} (p = {test.p_value:.2g}): no material difference")
    return _result(spec, HIGH if significant else PASS, reason, canary_n=int(c.size), baseline_n=int(b.size),
                   canary=float(c.mean()), baseline=float(b.mean()), estimate=test.statistic,
                   allowed=spec.tolerance, p_value=test.p_value)


@dataclass(frozen=True)
class Thresholds:
    """Kayenta's starting points: a run below ``marginal`` fails, one at ``pass_score`` or above passes."""

    pass_score: float = 95.0
    marginal: float = 75.0

    def __post_init__(self) -> None:
        if not 0 <= self.marginal <= self.pass_score <= 100:
            raise InvalidInput(f"Score thresholds need 0 <= marginal <= pass <= 100; got marginal {self.marginal}, "
                               f"pass {self.pass_score}.")


@dataclass
class Judgement:
    """The canary analysis of one window: per-metric results, group scores, summary score, decision."""

    score: float
    decision: str  # "pass" | "marginal" | "fail" | "nodata"
    reason: str
    groups: dict[str, float | None] = field(default_factory=dict)
    metrics: list[MetricResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "decision": self.decision, "reason": self.reason, "groups": self.groups,
                "metrics": [m.to_dict() for m in self.metrics]}


def score(results: Sequence[MetricResult], *, group_weights: Mapping[str, float] | None = None,
          thresholds: Thresholds | None = None) -> Judgement:
    """Kayenta's weighted-sum scoring of per-metric results (see the module docstring)."""
    thresholds = thresholds or Thresholds()
    results = list(results)
    if not results:
        return Judgement(0.0, "nodata", "no metrics to judge")
    nodata = sum(r.verdict == NODATA for r in results)
    critical = [r for r in results if r.critical and r.failed]
    by_group: dict[str, list[MetricResult]] = {}
    for r in results:
        by_group.setdefault(r.group, []).append(r)
    groups: dict[str, float | None] = {}
    for name, members in by_group.items():
        counted = [r for r in members if r.verdict != NODATA or r.required]
        groups[name] = 100.0 * sum(r.verdict == PASS for r in counted) / len(counted) if counted else None
    weights = dict(group_weights or {})
    unknown = set(weights) - set(by_group)
    if unknown:
        raise InvalidInput(f"Group weights name groups without metrics: {', '.join(sorted(unknown))}.")
    scored = [g for g, s in groups.items() if s is not None]
    given = sum(weights.get(g, 0.0) for g in scored if g in weights)
    rest = [g for g in scored if g not in weights]
    share = max(100.0 - given, 0.0) / len(rest) if rest else 0.0
    w = {g: (weights[g] if g in weights else share) for g in scored}
    total_w = sum(w.values())
    summary = sum(groups[g] * w[g] for g in scored) / total_w if total_w > 0 else 0.0  # type: ignore[operator]
    if critical:  # before the no-data rule: a canary failing every request has no latencies, and must fail
        return Judgement(0.0, "fail", "critical metric failed: " + "; ".join(f"{r.name} {r.verdict} ({r.reason})"
                                                                            for r in critical), groups, results)
    if nodata * 2 >= len(results):
        return Judgement(0.0, "nodata", f"{nodata} of {len(results)} metrics have no data (>= 50 %): score 0, "
                         "no data is never a pass", groups, results)
    summary = round(summary, 2)
    failing = "; ".join(f"{r.name} {r.verdict}" for r in results if r.failed or (r.verdict == NODATA and r.required))
    if summary >= thresholds.pass_score:
        return Judgement(summary, "pass", f"score {summary:g} >= {thresholds.pass_score:g}", groups, results)
    if summary < thresholds.marginal:
        return Judgement(summary, "fail", f"score {summary:g} < {thresholds.marginal:g}: {failing}", groups, results)
    return Judgement(summary, "marginal", f"score {summary:g} between {thresholds.marginal:g} and "
                     f"{thresholds.pass_score:g}: {failing}", groups, results)


def failed_names(results: Iterable[MetricResult]) -> list[str]:
    return [r.name for r in results if r.failed]


__all__ = ["DIRECTIONS", "HIGH", "KINDS", "LOW", "MIN_SAMPLES", "NODATA", "PASS", "Judgement", "MetricResult",
           "MetricSpec", "Thresholds", "distribution", "failed_names", "hodges_lehmann", "mann_whitney",
           "proportions", "score"]
