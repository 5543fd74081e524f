"""What the monitor keeps over time for the dashboard: SLO budgets and burn rates, and daily served drift.

SLOs: one point per SLO per hour.

``monitoring/slo-history.json`` holds the last :data:`MAX_POINTS` points (about 60 days at one an
hour). The monitor appends the run's figures when the newest point is at least :data:`MIN_GAP_S`
old (a monitor run every minute still keeps hourly points) and rewrites the file atomically, so a
reader (the dashboard's SLO page) never sees half a file and never evaluates an SLO itself.

Drift: once a day closes (UTC midnight), the monitor computes each served model's drift for that day from
the stored hourly traffic summaries (what ``GET /api/monitoring/drift`` computes) and keeps each feature's
distance, threshold and state in ``monitoring/drift-history.json`` (:data:`MAX_DAYS` days), so the
dashboard draws drift over time from one file instead of recomputing a month of windows per page load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from yarnit.core.atomic import UNSYNCED_OPS, atomic_write_bytes, atomic_write_text
from yarnit.core.jsonfile import state_json

from .workspace import monitoring_dir

HISTORY_FILENAME = "slo-history.json"
MAX_POINTS = 1500
MIN_GAP_S = 3600.0
DRIFT_FILENAME = "drift-history.json"
MAX_DAYS = 120

log = logging.getLogger("yarnit.monitoring")


def history_path(home: str | Path) -> Path:
    return monitoring_dir(home) / HISTORY_FILENAME


def read_history(home: str | Path) -> list[dict[str, Any]]:
    """The stored points, oldest first (empty when the monitor has not run or the file is unreadable)."""
    try:
        data = json.loads(history_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    points = data.get("points") if isinstance(data, dict) else None
    return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def _cached_points(home: str | Path) -> list[dict[str, Any]]:
    """:func:`read_history`, parsed again only when the file changed since this process last wrote or read it
    (a monitor appends every hour to a file of up to 1,500 points)."""
    path = history_path(home)
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _POINTS.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    points = read_history(home)
    _POINTS[str(path)] = (key, points)
    return points


_POINTS: dict[str, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}


def record(home: str | Path, at: datetime, entries: Sequence[dict[str, Any]]) -> bool:
    """Append one point for the SLO entries of a monitor run (the state file's ``slos``); False if too soon."""
    points = _cached_points(home)
    if points:
        try:
            last = datetime.fromisoformat(str(points[-1].get("at")))
        except ValueError:
            last = None
        if last is not None and (at - last).total_seconds() < MIN_GAP_S:
            return False
    point = {"at": at.isoformat(), "slos": {
        str(e.get("id")): {"budget": e.get("budget_remaining"), "burn": e.get("burn_rates") or {},
                           "state": e.get("state")}
        for e in entries if isinstance(e, dict)}}
    points = [*points[-(MAX_POINTS - 1):], point]
    path = history_path(home)
    # a chart's history: atomic (never torn), not synced (a power cut may lose the newest points, nothing else)
    atomic_write_bytes(path, state_json({"version": 1, "points": points}, text_fallback=True, indent=False),
                       mode=0o644, ops=UNSYNCED_OPS)
    stat = path.stat()
    _POINTS[str(path)] = ((stat.st_mtime_ns, stat.st_size, stat.st_ino), points)
    return True


def drift_path(home: str | Path) -> Path:
    return monitoring_dir(home) / DRIFT_FILENAME


def read_drift(home: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Per model, its daily drift points oldest first: ``{"end", "state", "window", "reference", "dataset",
    "columns"}`` (the drift report of the day ending at ``end``, without the per-column detail)."""
    try:
        data = json.loads(drift_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    return {str(k): [p for p in v if isinstance(p, dict)] for k, v in models.items()
            if isinstance(v, list)} if isinstance(models, dict) else {}


def record_drift(workspace: Any, at: datetime, *, max_days_back: int = 3) -> int:
    """Add each served model's drift for the days that closed since its last point (at most ``max_days_back``
    a run); the number of points added. Never raises for a model's data."""
    from . import traffic

    try:
        models = traffic.models(workspace)
    except (OSError, ValueError):
        return 0
    midnight = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    done_key = str(drift_path(workspace.home))
    if _DRIFT_DONE.get(done_key) == (midnight, tuple(models)):
        return 0  # this process recorded every model up to this midnight already: nothing new has closed
    history = read_drift(workspace.home)
    added = 0
    for model in models:
        points = history.setdefault(model, [])
        last = datetime.fromisoformat(points[-1]["end"]) if points and points[-1].get("end") else None
        ends = [midnight - timedelta(days=k) for k in range(max_days_back - 1, -1, -1)]
        for end in [e for e in ends if last is None or e > last]:
            try:
                report = traffic.drift_report(workspace, model, window="1d", at=end)
            except Exception as exc:  # noqa: BLE001 - one model's unreadable summaries never stop the monitor
                # recorded as an error point, so the day is not tried again every run
                log.warning("drift history of %s for the day ending %s: %s", model, end.isoformat(), exc)
                points.append({"end": end.isoformat(), "state": "error", "reason": str(exc)[:300], "columns": []})
                added += 1
                continue
            columns = [{k: v for k, v in c.items() if k != "detail"} for c in report.get("columns") or []
                       if isinstance(c, dict)]
            points.append({"end": end.isoformat(), "state": report.get("state"), "reason": report.get("reason"),
                           "window": report.get("window"), "reference": report.get("reference"),
                           "dataset": report.get("dataset"), "columns": columns})
            added += 1
        history[model] = points[-MAX_DAYS:]
    if added:
        atomic_write_text(drift_path(workspace.home), json.dumps({"version": 1, "models": history},
                                                                 separators=(",", ":"), default=str), mode=0o644)
    _DRIFT_DONE[done_key] = (midnight, tuple(models))
    return added


_DRIFT_DONE: dict[str, tuple[datetime, tuple[str, ...]]] = {}


__all__ = ["DRIFT_FILENAME", "HISTORY_FILENAME", "drift_path", "history_path", "read_drift", "read_history",
           "record", "record_drift"]
