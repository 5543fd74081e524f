"""The error-budget policy: while a model's budget is spent, its releases halt (RELIABILITY.md §2.2).

The SRE Workbook's policy: "If the service has exceeded its error budget for
the preceding four-week window, we will halt all changes and releases other
than P0 issues or security fixes until the service is back within its SLO."
Here a *change* is a promotion to a gated alias (production, canary) of a
model named by an SLO's ``model:``; the registry asks
:meth:`ErrorBudgetPolicy.refusal` before each one
(``ModelRegistry(ws, release_gate=policy)``). A P0 or security fix goes
through with ``force`` and a ``reason``; the registry audits it as a
``force-promote`` carrying this refusal's text.

A budget is *spent* when the window's bad events reach (1 - objective) of its
events. An SLO with no events in its window does not halt anything (there is
no budget figure to act on); its no-data alert is what pages.

Example:
    >>> from yarnit.core.clock import SimulatedClock, utc
    >>> from yarnit.monitoring.slo import parse_slo_file
    >>> from yarnit.monitoring.sources import CountsSource
    >>> slo = parse_slo_file({"service": "shop", "slos": [{"name": "avail", "sli": "serving_availability",
    ...                       "model": "ctr", "objective": 99, "window": "28d"}]}).slos[0]
    >>> clock = SimulatedClock(utc(2026, 1, 2))
    >>> source = CountsSource()
    >>> source.counts_for(slo).add(utc(2026, 1, 1, 12).timestamp(), good=90, total=100)
    >>> print(ErrorBudgetPolicy([slo], source, clock).refusal("ctr", "production"))
    the error budget of SLO shop-avail is spent: 10 bad of 100 events in the last 28d, budget 1 (left -900%)
"""

from __future__ import annotations

from collections.abc import Sequence

from yarnit.core.clock import Clock

from .burn import SLISource, evaluate
from .slo import SLO, format_duration


class ErrorBudgetPolicy:
    """Halts promotions of a model while any of its SLOs has spent its error budget."""

    def __init__(self, slos: Sequence[SLO], source: SLISource, clock: Clock) -> None:
        self.slos = list(slos)
        self.source = source
        self.clock = clock

    def refusal(self, model_name: str, alias: str) -> str | None:
        """Why promotions of ``model_name`` are halted now (the first spent SLO), or None."""
        now = self.clock.now()
        for slo in self.slos:
            if slo.model != model_name:
                continue
            status = evaluate(slo, self.source.counts(slo, until_s=now.timestamp()), now)
            if status.budget_exhausted:
                period = status.period
                allowed = slo.error_budget * period.total
                return (f"the error budget of SLO {slo.id} is spent: {period.bad} bad of {period.total} events in "
                        f"the last {format_duration(slo.window_s)}, budget {float(allowed):g} "
                        f"(left {status.budget_remaining:.0%})")
        return None


__all__ = ["ErrorBudgetPolicy"]
