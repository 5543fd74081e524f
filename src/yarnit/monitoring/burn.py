"""Error budgets and multi-window, multi-burn-rate alerts, evaluated on the injected clock.

The rules (SRE Workbook ch. 5; numbers in RELIABILITY.md §2.1):

* the **burn rate** of a window is its error ratio divided by the error budget
  (1 - objective): 1 spends the budget in exactly the SLO window;
* an alert pair **fires** when the long window *and* the short window both burn
  faster than its threshold, with a strict ``>`` (so exactly 14.4x never pages);
  a severity fires when any of its pairs does. There is no ``for:``: the short
  window is what makes the alert clear soon after errors stop;
* a pair whose long window holds fewer than ``min_events`` events is
  **guarded**: it does not fire (at 10 requests an hour one failure is a
  1,000x burn) and the reading says so;
* when the no-data window holds no event at all the SLO is in state
  ``no_data``: no alert fires (no false page) and it is not ``ok`` either (no
  false pass); the budget is ``None``, not 100 %.

Comparisons are exact (``bad > threshold · total`` in fractions), the same
strict inequality the generated Prometheus rules compute (:mod:`.rules`).

What feeds the counts is a :class:`SLISource`; :class:`BurnRateMonitor` reads
the time from a :class:`~yarnit.core.clock.Clock`, so the simulated world (or
a test) moves time and watches alerts fire and clear.

Example:
    >>> from yarnit.core.clock import SimulatedClock, utc
    >>> from yarnit.monitoring.slo import parse_slo_file
    >>> slo = parse_slo_file({"service": "shop", "slos": [{"name": "avail", "sli": "serving_availability",
    ...                       "objective": 99.9, "window": "30d"}]}).slos[0]
    >>> clock = SimulatedClock(utc(2026, 1, 1))
    >>> monitor = BurnRateMonitor(slo, clock)
    >>> t = clock.now().timestamp()
    >>> monitor.counts.add_span(t - 7200, t, good_per_bucket=1000, total_per_bucket=1000)
    >>> monitor.evaluate().state
    'ok'
    >>> monitor.counts.add(t, good=0, total=1000)     # one minute of full outage
    >>> clock.advance(60)
    >>> monitor.evaluate().state
    'page'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, Literal, Protocol

from yarnit.core.clock import Clock

from .counts import EventCounts
from .slo import SLO, AlertWindow, Severity, format_duration

State = Literal["ok", "ticket", "page", "no_data"]


class SLISource(Protocol):
    """Where an SLO's good/total events come from (the prediction log, pipeline runs, freshness probes)."""

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        """The SLO's event counts up to ``until_s`` (epoch seconds), covering at least its window."""
        ...


@dataclass(frozen=True)
class WindowReading:
    """Good and total events in one window, and the burn rate they give."""

    window_s: int
    good: int
    total: int
    budget: Fraction

    @property
    def bad(self) -> int:
        return self.total - self.good

    @property
    def error_ratio(self) -> float | None:
        return self.bad / self.total if self.total else None

    @property
    def burn_rate(self) -> float | None:
        return float(Fraction(self.bad, self.total) / self.budget) if self.total else None

    def exceeds(self, burn_rate: Fraction) -> bool:
        """Strictly faster than ``burn_rate`` (never with no events)."""
        return self.total > 0 and self.bad > burn_rate * self.budget * self.total

    def to_dict(self) -> dict[str, Any]:
        return {"window": format_duration(self.window_s), "good": self.good, "total": self.total,
                "error_ratio": self.error_ratio, "burn_rate": self.burn_rate}


@dataclass(frozen=True)
class AlertReading:
    """One alert pair at one instant: firing, or why not."""

    pair: AlertWindow
    long: WindowReading
    short: WindowReading
    min_events: int

    @property
    def guarded(self) -> bool:
        """The long window has too few events to trust the ratio (the pair may not fire)."""
        return self.long.total < self.min_events

    @property
    def firing(self) -> bool:
        return (not self.guarded and self.long.exceeds(self.pair.burn_rate)
                and self.short.exceeds(self.pair.burn_rate))

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.pair.severity, "long": self.long.to_dict(), "short": self.short.to_dict(),
                "burn_rate_threshold": float(self.pair.burn_rate), "firing": self.firing, "guarded": self.guarded}


@dataclass(frozen=True)
class SLOStatus:
    """An SLO at one instant: state, budget left over its window and every alert pair."""

    slo: SLO
    at: datetime
    period: WindowReading
    no_data_window: WindowReading
    alerts: tuple[AlertReading, ...]

    @property
    def no_data(self) -> bool:
        return self.no_data_window.total == 0

    @property
    def state(self) -> State:
        if self.no_data:
            return "no_data"
        for severity in ("page", "ticket"):
            if self.firing(severity):  # type: ignore[arg-type]
                return severity  # type: ignore[return-value]
        return "ok"

    def firing(self, severity: Severity) -> bool:
        return not self.no_data and any(a.firing for a in self.alerts if a.pair.severity == severity)

    @property
    def budget_remaining(self) -> float | None:
        """Share of the window's error budget left (negative when overspent); None without events."""
        if not self.period.total:
            return None
        return float(1 - Fraction(self.period.bad, self.period.total) / self.slo.error_budget)

    @property
    def budget_exhausted(self) -> bool:
        """The window's bad events reached the budget (the error-budget policy halts changes)."""
        return self.period.total > 0 and self.period.bad >= self.slo.error_budget * self.period.total

    def to_dict(self) -> dict[str, Any]:
        return {"slo": self.slo.name, "service": self.slo.service, "sli": self.slo.sli, "model": self.slo.model,
                "objective": float(self.slo.objective), "window": format_duration(self.slo.window_s),
                "at": self.at.isoformat(), "state": self.state, "budget_remaining": self.budget_remaining,
                "budget_exhausted": self.budget_exhausted, "period": self.period.to_dict(),
                "alerts": [a.to_dict() for a in self.alerts]}


def evaluate(slo: SLO, counts: EventCounts, at: datetime) -> SLOStatus:
    """Read every window of ``slo`` ending at ``at`` and decide each alert pair."""
    end_s = at.timestamp()
    cache: dict[int, WindowReading] = {}

    def read(window_s: int) -> WindowReading:
        if window_s not in cache:
            good, total = counts.window(end_s=end_s, window_s=window_s)
            cache[window_s] = WindowReading(window_s, good, total, slo.error_budget)
        return cache[window_s]

    alerts = tuple(AlertReading(pair, read(pair.long_s), read(pair.short_s), slo.min_events) for pair in slo.alerts)
    return SLOStatus(slo=slo, at=at, period=read(slo.window_s), no_data_window=read(slo.no_data_window_s),
                     alerts=alerts)


@dataclass(frozen=True)
class AlertTransition:
    """A change of one alert: ``fired``/``cleared`` for page and ticket, ``no_data``/``data`` for the SLO."""

    slo: str
    alert: Literal["page", "ticket", "no_data"]
    change: Literal["fired", "cleared"]
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass
class BurnRateMonitor:
    """The fire/clear state machine of one SLO's alerts, evaluated on ``clock``.

    ``counts`` holds the events (filled by the caller or from a
    :class:`SLISource` with :meth:`refresh`); each :meth:`evaluate` compares the
    new status with the last one and records transitions in ``history``.
    """

    slo: SLO
    clock: Clock
    counts: EventCounts = field(default=None)  # type: ignore[assignment]
    history: list[AlertTransition] = field(default_factory=list)
    _active: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.counts is None:
            span = max([self.slo.window_s, *self.slo.windows_s()])
            self.counts = EventCounts.for_span(span)

    def refresh(self, source: SLISource) -> None:
        """Replace the counts with the source's, up to now."""
        self.counts = source.counts(self.slo, until_s=self.clock.now().timestamp())

    def evaluate(self) -> SLOStatus:
        status = evaluate(self.slo, self.counts, self.clock.now().astimezone(timezone.utc))
        now = {"page": status.firing("page"), "ticket": status.firing("ticket"), "no_data": status.no_data}
        for alert, on in now.items():
            if on != self._active.get(alert, False):
                self.history.append(AlertTransition(self.slo.name, alert, "fired" if on else "cleared",  # type: ignore[arg-type]
                                                    status.at))
        self._active = now
        return status

    def active(self) -> Mapping[str, bool]:
        """Which of page, ticket and no_data are firing after the last evaluation."""
        return dict(self._active)


__all__ = ["AlertReading", "AlertTransition", "BurnRateMonitor", "SLISource", "SLOStatus", "State",
           "WindowReading", "evaluate"]
