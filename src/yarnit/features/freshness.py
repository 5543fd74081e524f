"""Freshness: how old the newest online value of each feature view is, as a report, a metric and an SLI.

The age is measured from the newest event time in the online table to "now"
by the injected clock; it grows when the source stops producing rows *or* when
materialization stops running, which are the two ways serving goes stale.

Metrics (a Prometheus collector; register it on the app's registry)::

    yarnit_feature_freshness_seconds{view,version}        age of the newest online value
    yarnit_feature_materialization_lag_seconds{view,version} now - the last materialization's window end
    yarnit_feature_online_rows{view,version}               entities in the online table

Example:
    >>> f = Freshness("user_stats", "abc", None, None, None, None, 0, 3600.0)
    >>> f.status, f.within(600)
    ('empty', False)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from yarnit.core.clock import Clock
from yarnit.core.errors import YarnitError

from .definitions import FeatureView
from .online import OnlineStore, from_us, table_name, to_us

log = logging.getLogger("yarnit.features.freshness")


@dataclass(frozen=True)
class Freshness:
    """The freshness of one view version's online table at one moment."""

    view: str
    version: str
    newest_event_time: datetime | None
    age_s: float | None
    watermark: datetime | None
    materialized_at: datetime | None
    rows: int
    ttl_s: float | None
    lag_s: float | None = None

    @property
    def status(self) -> str:
        """``empty`` (never materialized or no rows), ``stale`` (newest value older than the TTL) or ``fresh``."""
        if self.newest_event_time is None or self.age_s is None:
            return "empty"
        if self.ttl_s is not None and self.age_s > self.ttl_s:
            return "stale"
        return "fresh"

    def within(self, objective_s: float) -> bool:
        """The SLI's good event: the newest value is at most ``objective_s`` old."""
        return self.age_s is not None and self.age_s <= objective_s

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {"view": self.view, "version": self.version, "status": self.status,
                "newest_event_time": iso(self.newest_event_time), "age_s": self.age_s,
                "watermark": iso(self.watermark), "lag_s": self.lag_s,
                "materialized_at": iso(self.materialized_at), "rows": self.rows, "ttl_s": self.ttl_s}


def view_freshness(view: FeatureView, online: OnlineStore, clock: Clock) -> Freshness:
    """The freshness of ``view`` in ``online`` now (by ``clock``)."""
    state = online.state(table_name(view))
    ttl_s = None if view.ttl is None else view.ttl.total_seconds()
    if state is None:
        return Freshness(view.name, view.version, None, None, None, None, 0, ttl_s)
    now_us = to_us(clock.now())
    newest = state.newest_event_us
    return Freshness(
        view=view.name,
        version=view.version,
        newest_event_time=None if newest is None else from_us(newest),
        age_s=None if newest is None else (now_us - newest) / 1e6,
        watermark=None if state.watermark_us is None else from_us(state.watermark_us),
        materialized_at=None if state.materialized_at_us is None else from_us(state.materialized_at_us),
        rows=state.rows,
        ttl_s=ttl_s,
        lag_s=None if state.watermark_us is None else (now_us - state.watermark_us) / 1e6,
    )


class FreshnessCollector:
    """A Prometheus collector exporting the freshness of the views ``views()`` returns.

    Register it with ``registry.register(FreshnessCollector(...))``; it reads
    the online store's small state records at each scrape. A store that does not
    answer (Redis or the metadata store down) never fails the scrape: the views it
    could not read are left out and ``yarnit_feature_freshness_up`` is 0, so the
    other metrics (the defaults served meanwhile among them) are still exported.
    """

    def __init__(self, views: Callable[[], Sequence[FeatureView]], online: OnlineStore, clock: Clock) -> None:
        self._views = views
        self._online = online
        self._clock = clock

    def describe(self) -> list[Any]:
        return []  # collected lazily; the views are only known at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        age = GaugeMetricFamily("yarnit_feature_freshness_seconds",
                                "Age of the newest online value of a feature view.", labels=["view", "version"])
        lag = GaugeMetricFamily("yarnit_feature_materialization_lag_seconds",
                                "Time since the end of the last materialized window.", labels=["view", "version"])
        rows = GaugeMetricFamily("yarnit_feature_online_rows", "Entities in the online table of a feature view.",
                                 labels=["view", "version"])
        up = GaugeMetricFamily("yarnit_feature_freshness_up",
                               "1 if every feature view's freshness was read at this scrape, 0 if a store failed.")
        ok = True
        try:
            views = list(self._views())
        except YarnitError as exc:
            log.warning("feature freshness not exported: %s", exc)
            views, ok = [], False
        for view in views:
            try:
                f = view_freshness(view, self._online, self._clock)
            except YarnitError as exc:
                log.warning("freshness of feature view %s not exported: %s", view.name, exc)
                ok = False
                continue
            labels = [f.view, f.version]
            if f.age_s is not None:
                age.add_metric(labels, f.age_s)
            if f.lag_s is not None:
                lag.add_metric(labels, f.lag_s)
            rows.add_metric(labels, float(f.rows))
        up.add_metric([], 1.0 if ok else 0.0)
        yield age
        yield lag
        yield rows
        yield up


__all__ = ["Freshness", "FreshnessCollector", "view_freshness"]
