"""The load-test gate: the candidate's p95, p99 and error rate against production's, measured in the same run.

Each side's figures come from every request the generator scheduled for it
(:class:`SideFigures`): latency from the *scheduled* send time to the last
byte of a ``200`` answered by the version itself; an error is a request with
no answer, any other status, or a ``200`` that a fallback answered (the
staging server counts those; a version that times out and lets the heuristic
answer is not a fast version). The gate (:func:`judge`) passes when, for the
candidate C and production P:

* ``p95(C) <= p95(P) * (1 + p95_tolerance) + slack_ms`` and the same for p99
  with ``p99_tolerance`` (the slack keeps sub-millisecond scheduling noise of a
  shared machine from failing a version that is as fast);
* ``error_rate(C) <= error_rate(P) + max_error_rate_increase``;
* and, when set, ``p95(C) <= max_p95_ms`` and ``p99(C) <= max_p99_ms``: the
  absolute budget of the product (book ch. 15 case 4: p95 under a second),
  whatever production does.

Percentiles are nearest-rank on the sorted latencies (index ``floor(q * n)``),
the generator's own definition, so the gate's p99 is the one the serving
benchmark reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from yarnit.core.errors import InvalidInput

from .generator import Sample


@dataclass(frozen=True)
class Tolerances:
    """How much worse than production the candidate may be (see the module docstring)."""

    p95_tolerance: float = 0.25
    p99_tolerance: float = 0.5
    slack_ms: float = 2.0
    max_error_rate_increase: float = 0.001
    max_p95_ms: float | None = None
    max_p99_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("p95_tolerance", "p99_tolerance", "slack_ms", "max_error_rate_increase"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"The load-test tolerance {name} must be a finite number >= 0; got {value!r}.")
        if self.max_error_rate_increase > 1:
            raise InvalidInput(f"max_error_rate_increase is a fraction in [0, 1]; got {self.max_error_rate_increase}.")
        for name in ("max_p95_ms", "max_p99_ms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0):
                raise InvalidInput(f"{name} must be a positive number of milliseconds, or unset; got {value!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of ascending ``sorted_values`` (openloop.c's definition); None when empty.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    3.0
    """
    if not sorted_values:
        return None
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


@dataclass(frozen=True)
class SideFigures:
    """What one version did under the load: requests scheduled, errors, latency percentiles of its answers."""

    version: int
    sent: int
    answered: int  # 200s answered by the version itself
    errors: int  # no answer, another status, or a fallback's 200
    fallbacks: int
    statuses: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    late_sends: int  # sent more than 1 ms after their scheduled time (the generator's own lateness)

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"error_rate": self.error_rate}


def figures(version: int, samples: Sequence[Sample], fallbacks: int) -> SideFigures:
    """One side's figures from its requests' samples and the fallback answers its server counted."""
    statuses: dict[str, int] = {}
    latencies = []
    for sample in samples:
        key = str(sample.status) if sample.status else "error"
        statuses[key] = statuses.get(key, 0) + 1
        if sample.status == 200:
            latencies.append(sample.latency_ms)
    latencies.sort()
    ok = statuses.get("200", 0)
    fallbacks = min(max(0, fallbacks), ok)
    return SideFigures(
        version=version, sent=len(samples), answered=ok - fallbacks, errors=len(samples) - ok + fallbacks,
        fallbacks=fallbacks, statuses=statuses, p50_ms=percentile(latencies, 0.5),
        p95_ms=percentile(latencies, 0.95), p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else None,
        late_sends=sum(1 for s in samples if s.status and s.send_lag_ms > 1.0))


@dataclass(frozen=True)
class Check:
    """One comparison of the gate."""

    name: str
    candidate: float | None
    limit: float | None
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def reason(self) -> str:
        failed = [c.reason for c in self.checks if not c.passed]
        return "; ".join(failed) if failed else "; ".join(c.reason for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "checks": [c.to_dict() for c in self.checks]}


def _latency_check(name: str, cand: float | None, base: float | None, tolerance: float, slack_ms: float) -> Check:
    if cand is None:
        return Check(name, None, None, False, f"{name}: the candidate answered no request itself")
    if base is None:
        return Check(name, cand, None, False, f"{name}: production answered no request in the same run, so "
                                              "there is nothing to compare with")
    limit = base * (1.0 + tolerance) + slack_ms
    ok = cand <= limit
    word = "<=" if ok else ">"
    return Check(name, cand, limit, ok, f"{name} {cand:.2f} ms {word} {limit:.2f} ms (production {base:.2f} ms "
                                        f"x {1 + tolerance:g} + {slack_ms:g} ms)")


def _ceiling_check(name: str, cand: float | None, ceiling: float) -> Check:
    ok = cand is not None and cand <= ceiling
    shown = "none" if cand is None else f"{cand:.2f} ms"
    return Check(f"{name}_budget", cand, ceiling, ok, f"{name} {shown} {'<=' if ok else '>'} budget {ceiling:g} ms")


def judge(candidate: SideFigures, baseline: SideFigures, tolerances: Tolerances) -> Verdict:
    """The gate's verdict on ``candidate`` against ``baseline`` (production, same run)."""
    t = tolerances
    checks = [
        _latency_check("p95", candidate.p95_ms, baseline.p95_ms, t.p95_tolerance, t.slack_ms),
        _latency_check("p99", candidate.p99_ms, baseline.p99_ms, t.p99_tolerance, t.slack_ms),
    ]
    limit = baseline.error_rate + t.max_error_rate_increase
    ok = candidate.error_rate <= limit
    checks.append(Check("error_rate", candidate.error_rate, limit, ok,
                        f"error rate {candidate.error_rate:.2%} ({candidate.errors} of {candidate.sent}) "
                        f"{'<=' if ok else '>'} {limit:.2%} (production {baseline.error_rate:.2%} + "
                        f"{t.max_error_rate_increase:.2%})"))
    if t.max_p95_ms is not None:
        checks.append(_ceiling_check("p95", candidate.p95_ms, t.max_p95_ms))
    if t.max_p99_ms is not None:
        checks.append(_ceiling_check("p99", candidate.p99_ms, t.max_p99_ms))
    return Verdict(all(c.passed for c in checks), tuple(checks))


__all__ = ["Check", "SideFigures", "Tolerances", "Verdict", "figures", "judge", "percentile"]
