"""Retention for monitoring summaries (class ``monitoring``): hourly traffic windows and the quality join's rows.

Both grow by one entry per model and hour (or minute) for as long as a model
serves. :class:`MonitoringRetention` is a ``RetentionTarget``: ``yarnit data
retention enforce`` applies it with the other classes, and every ``yarnit
monitor run`` applies it too (:func:`expire_monitoring`), so a monitor left
running keeps its files bounded by the policy (default 400 days,
``yarnit data retention set monitoring 90d`` to change it).

What goes, for a cutoff ``c`` (now − the class's age):

* traffic: every hourly window whose end is at or before ``c``. It leaves the
  index and the checkpoint is written (the commit point); the files go after
  that, under the traffic update's lock, so a crash in between leaves files the
  next update removes as garbage;
* quality (``monitoring/quality.sqlite3``, one transaction): hourly summaries
  and frozen estimates whose hour ended by ``c``, per-minute quality and
  completeness counts before ``c``, predictions made and labels whose event
  happened before ``c``.

Drift and quality reports over a window that reaches past ``c`` then see
fewer hours, never wrong ones; the SLO windows (28 days by default) are far
inside the default.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from yarnit.core.atomic import atomic_write_text

RETENTION_CLASS = "monitoring"
DEFAULT_MAX_AGE_DAYS = 400


def expire_traffic(workspace: Any, older_than: datetime, *, dry_run: bool) -> list[str]:
    """Hourly traffic windows that ended by ``older_than``: dropped from the index, then their files."""
    from . import traffic

    base = traffic.traffic_dir(workspace.home)
    if not (base / "state.json").is_file():
        return []
    cutoff = older_than.timestamp()
    with traffic._locked(base):
        state = traffic._load_state(base)
        gone: list[tuple[str, int]] = [(model, int(window)) for model, windows in sorted(state.index.items())
                                       for window in sorted(windows, key=int)
                                       if int(window) + state.bucket_s <= cutoff]
        if gone and not dry_run:
            for model, window in gone:
                del state.index[model][str(window)]
                if not state.index[model]:
                    del state.index[model]
            atomic_write_text(base / "state.json", json.dumps(state.to_dict(), separators=(",", ":")), mode=0o600)
            traffic._collect_garbage(base, state)
    return [f"traffic window {model} {traffic.iso_utc(window)}" for model, window in gone]


_QUALITY_TABLES = (  # table, time column, unit: rows whose time (start of hour/minute, or seconds) is before the cut
    ("summaries", "hour", 3600),
    ("estimates", "hour", 3600),
    ("quality_minutes", "minute", 60),
    ("completeness", "minute", 60),
    ("predictions", "time_s", 1),
    ("labels", "event_s", 1),
)


def expire_quality(workspace: Any, older_than: datetime, *, dry_run: bool) -> list[str]:
    """Quality rows older than ``older_than`` (see the module text), in one transaction; one item per table."""
    from .quality_store import QualityStore, quality_db_path

    path = quality_db_path(workspace.home)
    if not path.is_file():
        return []
    cutoff = older_than.timestamp()
    store = QualityStore(path)
    out: list[str] = []
    try:
        with store.transaction() as conn:
            for table, column, unit in _QUALITY_TABLES:
                # bucket t covers [t·unit, (t+1)·unit) and goes once it ended by the cutoff: t < ⌊cutoff/unit⌋
                bound = math.floor(cutoff / unit) if unit > 1 else cutoff
                where = f"{column} < ?"
                (n,) = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", (bound,)).fetchone()  # noqa: S608
                if n:
                    out.append(f"quality {table}: {n} row(s) before {older_than.isoformat()}")
                    if not dry_run:
                        conn.execute(f"DELETE FROM {table} WHERE {where}", (bound,))  # noqa: S608
                        if table == "completeness":
                            # readers that keep the counts recount them
                            store.note_completeness(None, 0)
    finally:
        store.close()
    return out


def expire_monitoring(workspace: Any, older_than: datetime, *, dry_run: bool = False) -> list[str]:
    """Everything of the ``monitoring`` class older than ``older_than`` (traffic windows, then quality rows)."""
    return [*expire_traffic(workspace, older_than, dry_run=dry_run),
            *expire_quality(workspace, older_than, dry_run=dry_run)]


class MonitoringRetention:
    """``RetentionTarget`` for the monitoring summaries (class ``monitoring``)."""

    name = "monitoring"
    retention_class = RETENTION_CLASS

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace

    def expire(self, older_than: datetime, *, dry_run: bool) -> list[str]:
        return expire_monitoring(self.workspace, older_than, dry_run=dry_run)


def monitoring_cutoff(workspace: Any) -> tuple[datetime, int]:
    """The cutoff the effective ``monitoring`` policy gives now (stored policy, else the default), and its days."""
    from datetime import timedelta

    from yarnit.data.retention import Retention

    policy = Retention(workspace).effective_policies().get(RETENTION_CLASS)
    days = policy.max_age_days if policy is not None else DEFAULT_MAX_AGE_DAYS
    return workspace.clock.now() - timedelta(days=days), days


__all__ = ["DEFAULT_MAX_AGE_DAYS", "RETENTION_CLASS", "MonitoringRetention", "expire_monitoring", "expire_quality",
           "expire_traffic", "monitoring_cutoff"]
