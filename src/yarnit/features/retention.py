"""Retention for the feature store (class ``features``), a ``RetentionTarget`` for ``yarnit data enforce-retention``.

Offline, a day file whose whole day is older than the cutoff is deleted (and
dropped from the view's write manifest). Online, an entity whose newest value
is older than the cutoff is deleted from the current online store. A dry run
only lists them and touches no file (not even the offline lock file).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

from yarnit.core.atomic import atomic_write_bytes

from ._codec import ViewCodec
from .definitions import FeatureView
from .online import table_name, to_us
from .online_targets import online_store_urls, recorded_form
from .store import FeatureStore


def _day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)


class FeatureStoreRetention:
    """Expires feature rows older than the ``features`` class allows."""

    name = "feature-store"
    retention_class = "features"

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def _views(self) -> list[FeatureView]:
        return [v.view for current in self.store.registry.list() for v in self.store.registry.versions(current.name)]

    def expire(self, older_than: datetime, *, dry_run: bool) -> list[str]:
        items: list[str] = []
        for view in self._views():
            items += self._offline(view, older_than, dry_run)
            items += self._online(view, older_than, dry_run)
        return items

    def _offline(self, view: FeatureView, older_than: datetime, dry_run: bool) -> list[str]:
        offline = self.store.offline
        old = [p for p in offline.files(view) if _day_end(date.fromisoformat(p.name[5:15])) <= older_than]
        items = [f"feature view {table_name(view)} offline day {p.name[5:15]}" for p in old]
        if dry_run or not old:
            return items
        with offline._locked(view):  # the offline store's own write lock (same package)
            manifest = offline._read_manifest(view)
            for path in old:
                path.unlink(missing_ok=True)
                manifest["days"].pop(path.name[5:15], None)
            manifest["seq"] = int(manifest["seq"]) + 1
            atomic_write_bytes(offline._manifest_path(view), json.dumps(manifest, sort_keys=True).encode())
        return items

    def _online(self, view: FeatureView, older_than: datetime, dry_run: bool) -> list[str]:
        if recorded_form(self.store.online_url) not in online_store_urls(self.store.ws):
            return []  # never materialized into: do not even open (a SQLite store would create its file)
        online, table = self.store.online, table_name(view)
        if table not in online.tables():
            return []
        keys = list(online.keys(table))
        cutoff_us = to_us(older_than)
        blobs = online.get_many(table, keys) if keys else []
        old = [k for k, b in zip(keys, blobs, strict=True) if b is not None and ViewCodec.event_us_of(b) < cutoff_us]
        if not old:
            return []
        if not dry_run:
            online.delete(table, old)
        return [f"feature view {table} online: {len(old)} entities"]


__all__ = ["FeatureStoreRetention"]
