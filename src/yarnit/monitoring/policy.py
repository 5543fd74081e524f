"""The error-budget policy: while a model's budget is spent, its releases halt (RELIABILITY.md §2.2).

The SRE Workbook's policy: "If the service has exceeded its error budget for
the preceding four-week window, we will halt all changes and releases other
than P0 issues or security fixes until the service is back within its SLO."
Here a *change* is a promotion to a gated alias (production, canary) of a
model named by an SLO's ``model:``; the registry asks
:meth:`ErrorBudgetPolicy.refusal` before each one
(``ModelRegistry(ws, release_gate=policy)``); the traffic-policy store asks
it before raising a canary's share. A P0 or security fix goes through with an
``override_reason`` (CLI ``--override-reason``, HTTP ``"override_reason"``):
the registry audits it as an ``override-promote`` carrying the actor, the
reason and this refusal's text, in the alias history and the audit log.
Rollbacks, moves back to a version the alias served before, moves of
non-gated aliases and lowering a canary's share are never refused: a spent
budget must never block the fix.

Where the policy comes from: :func:`workspace_policy` builds it from the
workspace's SLO file (``$YARNIT_HOME/slos.yaml``, written by ``yarnit slo
apply``), counted by :class:`~yarnit.monitoring.workspace.WorkspaceSLISource`
on the workspace clock. ``ModelRegistry(ws)`` and ``TrafficPolicyStore(ws)``
use it by default, so a library caller is gated like the CLI and HTTP; no SLO
file, no gate. An SLO whose SLI kind has no source in this installation is
skipped (like no data: there is no budget figure to act on).

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

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from yarnit.core.clock import Clock

from .burn import SLISource, evaluate
from .counts import EventCounts
from .slo import SLO, SLOFile, format_duration
from .workspace import SourceUnavailable, WorkspaceSLISource, load_workspace_slos

if TYPE_CHECKING:
    from yarnit.storage.workspace import Workspace


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
            if slo.model != model_name or slo.sli in REMEDIED_BY_RELEASE:
                continue
            try:
                counts = self.source.counts(slo, until_s=now.timestamp())
            except SourceUnavailable:
                continue  # no source, no budget figure: like no data, it halts nothing
            status = evaluate(slo, counts, now)
            if status.budget_exhausted:
                period = status.period
                allowed = slo.error_budget * period.total
                return (f"the error budget of SLO {slo.id} is spent: {period.bad} bad of {period.total} events in "
                        f"the last {format_duration(slo.window_s)}, budget {float(allowed):g} "
                        f"(left {status.budget_remaining:.0%})")
        return None


#: SLIs whose budget a release spends nothing of and restores: a stale production model is fixed by promoting a
#: newer one, so halting releases when model freshness is spent would keep the model stale for ever.
REMEDIED_BY_RELEASE = frozenset({"model_freshness"})


def workspace_policy(workspace: Workspace) -> ErrorBudgetPolicy | None:
    """The error-budget policy of the workspace's SLO file, or None when no file was applied.

    A broken file raises :class:`~yarnit.core.errors.ConfigError` naming the field (fix it or re-apply it
    with ``yarnit slo apply``): a release is not let through on a policy that cannot be read.
    """
    spec = load_workspace_slos(workspace.home)
    if spec is None:
        return None
    return ErrorBudgetPolicy(spec.slos, shared_source(workspace, spec), workspace.clock)


def shared_source(workspace: Workspace, spec: SLOFile) -> _Serialized:
    """The counting source of ``spec`` on this workspace object, one per process, kept between uses.

    Kept between releases, it reads only what the log and the labels gained since the last release instead of
    recounting every window (a loop releases daily). A :class:`~yarnit.monitoring.runner.Monitor` on the same
    workspace object and SLO file counts through it too: the monitor's hourly pass brings it up to date, so the
    release gate's next question reads at most the hour since (the operate demo's month: about 0.4 CPU-s a day
    of a second source re-reading the day's log and labels, measured at 10 days).
    """
    cached: tuple[SLOFile, _Serialized] | None = getattr(workspace, _SOURCE_ATTR, None)
    if cached is None or cached[0] != spec:
        cached = (spec, _Serialized(WorkspaceSLISource(workspace, spec, clock=workspace.clock)))
        setattr(workspace, _SOURCE_ATTR, cached)
    return cached[1]


_SOURCE_ATTR = "_yarnit_release_gate_source"


class _Serialized:
    """A source shared by the threads of one process (a server's API, its loop and its monitor): one user at a
    time. Reentrant: a monitor's pass holds it (:meth:`one_read`) and counts inside."""

    def __init__(self, source: WorkspaceSLISource) -> None:
        self.source = source
        self._lock = threading.RLock()

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        with self._lock:
            return self.source.counts(slo, until_s=until_s)

    @contextlib.contextmanager
    def one_read(self) -> Iterator[None]:
        with self._lock, self.source.one_read():
            yield

    def updated(self, module: str, report: dict[str, Any], at_s: float) -> None:
        with self._lock:
            self.source.updated(module, report, at_s)

    def reports(self) -> dict[str, Any]:
        with self._lock:
            return self.source.reports()


__all__ = ["REMEDIED_BY_RELEASE", "ErrorBudgetPolicy", "workspace_policy"]
