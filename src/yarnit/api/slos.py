"""SLOs and alerts over HTTP, and the SLO gauges on /metrics, all read from the monitor's files.

``GET /api/slos`` and ``GET /api/alerts`` (open reads, like every GET under
/api) and the ``yarnit_slo_*`` gauges only read what ``yarnit monitor run``
wrote (``monitoring/slo-status.json`` and ``monitoring/alerts.json``): no SLO
is evaluated on a request path. Each file is parsed again only when its
mtime or size changed (:class:`CachedJson`), so a scrape costs one ``stat``.

Gauges (labels as Sloth's, so dashboards built for Sloth's rules line up)::

    yarnit_slo_budget_remaining_ratio{sloth_service,sloth_slo}
    yarnit_slo_burn_rate{sloth_service,sloth_slo,window}
    yarnit_slo_alert_firing{sloth_service,sloth_slo,alert,severity}
        alert: page, ticket or no_data (an alert record's ``alert``, the rules' ``yarnit_alert``);
        severity: page or ticket (a no-data alert is a ticket, as in ``yarnit alerts list`` and the rules)
    yarnit_slo_state_age_seconds                                  now - the monitor's last run (workspace clock)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from yarnit.core.clock import Clock
from yarnit.monitoring.alerts import alerts_path
from yarnit.monitoring.runner import STATE_VERSION, state_path
from yarnit.monitoring.workspace import monitoring_dir

router = APIRouter(prefix="/api", tags=["slos"])
NOT_RUN = "The monitor has not run yet: apply an SLO file (yarnit slo apply FILE) and run: yarnit monitor run"


class CachedJson:
    """A JSON file parsed once per change (mtime and size), safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._value: Any = None

    def read(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                try:
                    value = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError, UnicodeDecodeError):
                    value = None  # replaced atomically, so only a foreign file reads as broken
                self._key, self._value = key, value
            return self._value


_CACHE: dict[Path, CachedJson] = {}
_CACHE_LOCK = threading.Lock()


def cached(path: Path) -> Any:
    with _CACHE_LOCK:
        entry = _CACHE.get(path)
        if entry is None:
            entry = _CACHE[path] = CachedJson(path)
    return entry.read()


def monitor_state(home: Path) -> dict[str, Any] | None:
    data = cached(state_path(home))
    return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else None


def _age_s(at: str | None, clock: Clock) -> float | None:
    if not at:
        return None
    try:
        return (clock.now() - datetime.fromisoformat(at)).total_seconds()
    except (ValueError, TypeError):
        return None


@router.get("/slos")
def list_slos(request: Request) -> dict[str, Any]:
    """Each SLO as the monitor last evaluated it: objective, budget left, burn rate per window, state."""
    ws = request.app.state.workspace
    state = monitor_state(ws.home)
    if state is None:
        return {"service": None, "at": None, "age_s": None, "slos": [], "detail": NOT_RUN}
    slos = [{k: s.get(k) for k in ("slo", "id", "sli", "model", "objective", "window", "state", "budget_remaining",
                                   "budget_exhausted", "burn_rates", "firing", "at", "error", "alerts")}
            for s in state.get("slos", []) if isinstance(s, dict)]
    return {"service": state.get("service"), "at": state.get("at"), "age_s": _age_s(state.get("at"), ws.clock),
            "slos": slos, "sinks": state.get("sinks", {})}


@router.get("/alerts")
def list_alerts(request: Request, state: Literal["firing", "resolved", "all"] = "all",
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Alerts newest first, with their evidence and runbook (``state``: firing, resolved or all)."""
    ws = request.app.state.workspace
    data = cached(alerts_path(monitoring_dir(ws.home)))
    alerts = data.get("alerts", []) if isinstance(data, dict) else []
    chosen = [a for a in alerts if isinstance(a, dict) and (state == "all" or a.get("state") == state)]
    chosen.sort(key=lambda a: (str(a.get("started_at")), str(a.get("id"))), reverse=True)
    return {"state": state, "count": len(chosen[:limit]), "alerts": chosen[:limit]}


class SLOCollector:
    """The ``yarnit_slo_*`` gauges from the monitor's state file (one stat per scrape unless it changed)."""

    def __init__(self, home: Path, clock: Clock) -> None:
        self.home = Path(home)
        self.clock = clock

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        ids = ["sloth_service", "sloth_slo"]
        budget = GaugeMetricFamily("yarnit_slo_budget_remaining_ratio",
                                   "Share of the SLO's error budget left over its window (negative: overspent).",
                                   labels=ids)
        burn = GaugeMetricFamily("yarnit_slo_burn_rate", "Error ratio over the window divided by the error budget.",
                                 labels=[*ids, "window"])
        firing = GaugeMetricFamily("yarnit_slo_alert_firing", "1 while the SLO's alert (page, ticket or no_data) is "
                                   "open; severity is the alert's (a no-data alert is a ticket).",
                                   labels=[*ids, "alert", "severity"])
        age = GaugeMetricFamily("yarnit_slo_state_age_seconds", "Seconds since the monitor last evaluated the SLOs.")
        state = monitor_state(self.home)
        if state is not None:
            for s in state.get("slos", []):
                if not isinstance(s, dict):
                    continue
                labels = [str(s.get("service")), str(s.get("slo"))]
                if isinstance(s.get("budget_remaining"), (int, float)):
                    budget.add_metric(labels, float(s["budget_remaining"]))
                for window, value in (s.get("burn_rates") or {}).items():
                    if isinstance(value, (int, float)):
                        burn.add_metric([*labels, str(window)], float(value))
                for alert, on in (s.get("firing") or {}).items():
                    severity = "ticket" if alert == "no_data" else str(alert)
                    firing.add_metric([*labels, str(alert), severity], 1.0 if on else 0.0)
            seconds = _age_s(state.get("at"), self.clock)
            if seconds is not None:
                age.add_metric([], seconds)
        yield budget
        yield burn
        yield firing
        yield age


__all__ = ["CachedJson", "SLOCollector", "router"]
