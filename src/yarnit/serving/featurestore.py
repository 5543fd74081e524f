"""Serving's :class:`~yarnit.serving.onlinefeatures.FeatureSource` over the workspace's feature store.

A model version declares the online features it reads by name and entity
(``{"name": "history_clicks", "entity": "user_id", ...}``). This source finds
the registered feature view that has that entity as its single key and a
feature of that name, reads the view's online rows for the request's keys in
one round trip per view, and hands serving each value with its status: the
store's ``present`` values as ``ok``, its ``stale`` ones (older than the
view's TTL, values withheld) as ``stale``, and nothing for ``missing`` keys.
Serving then applies each feature's default and counts why.

Views are looked up in the feature registry when first asked for, and again
(at most every ``refresh_s``) when a feature is not found, so a view applied
after the server started is served without a restart.

Every read goes through the store's reader with a
:class:`~yarnit.features.ServingLog` attached: a sample
(``log_sample_rate``) of the rows served is written under
``$YARNIT_HOME/features/serving_log``, which ``yarnit features skew``
compares with the offline recomputation. :meth:`FeatureStoreSource.close`
writes what is buffered (the service closes it on shutdown).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from yarnit.core.errors import InvalidInput

from .onlinefeatures import FeatureStatus, FeatureValue

if TYPE_CHECKING:
    from yarnit.features import FeatureStore, OnlineFeatures, ServingLog


class FeatureStoreSource:
    """Online features of the workspace's registered views, for serving (see module docstring)."""

    def __init__(self, store: FeatureStore, *, refresh_s: float = 30.0, log_sample_rate: float = 0.01,
                 log_seed: int | None = None) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.log_sample_rate = log_sample_rate
        self.log_seed = log_seed
        self._log: ServingLog | None = None
        self._reader: OnlineFeatures | None = None
        self._views: dict[tuple[str, str], list[str]] = {}  # (entity, feature) -> views that have it
        self._int_keyed: dict[str, bool] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < self.refresh_s:
                return
            if self._log is None:
                seed = self.log_seed if self.log_seed is not None else int.from_bytes(os.urandom(4), "big")
                self._log = self.store.serving_log(sample_rate=self.log_sample_rate, seed=seed)
            reader = self.store.reader(log=self._log)
            views: dict[tuple[str, str], list[str]] = {}
            int_keyed: dict[str, bool] = {}
            for view in reader.views:
                if len(view.entities) == 1:  # serving looks features up by one entity key
                    int_keyed[view.name] = view.entities[0].dtype == "int64"
                    for feature in view.feature_names:
                        views.setdefault((view.entity_names[0], feature), []).append(view.name)
            self._reader, self._views, self._int_keyed = reader, views, int_keyed
            self._loaded_at = time.monotonic()

    def _plan(self, entity: str, features: Sequence[str]) -> dict[str, list[str]]:
        """Which view serves each feature: ``{view: [feature, ...]}``."""
        if self._reader is None or any((entity, f) not in self._views for f in features):
            self._refresh()
        plan: dict[str, list[str]] = {}
        for feature in features:
            found = self._views.get((entity, feature), [])
            if len(found) > 1:
                raise InvalidInput(f"Online feature {feature!r} of entity {entity!r} is in several views "
                                   f"({', '.join(sorted(found))}); rename one of them.")
            if found:
                plan.setdefault(found[0], []).append(feature)
        return plan  # a feature no view has is missing for every key (serving counts it)

    def get(self, entity: str, keys: Sequence[str], features: Sequence[str]) -> list[Mapping[str, FeatureValue]]:
        plan = self._plan(entity, features)
        out: list[dict[str, FeatureValue]] = [{} for _ in keys]
        reader = self._reader
        if reader is None or not plan:
            return out
        for view, names in plan.items():
            positions, typed = range(len(keys)), list(keys)
            if self._int_keyed[view]:  # keys arrive as text; a key that is not a number matches no row
                numbers = {i: int(k) for i, k in enumerate(keys) if _is_int(k)}
                positions, typed = list(numbers), list(numbers.values())
            for i, row in zip(positions, reader.read(view, typed), strict=True):
                status = row.status.value
                if status == "missing":
                    continue
                found, when = out[i], row.event_time
                if status == "stale":  # the store withheld the values: serving applies the default
                    for name in names:
                        found[name] = FeatureValue(None, FeatureStatus.STALE, when)
                else:
                    for name in names:
                        found[name] = FeatureValue(row.values[name], FeatureStatus.OK, when)
        return out


    def close(self) -> None:
        """Write the sampled rows still buffered (idempotent)."""
        with self._lock:
            log = self._log
        if log is not None:
            log.flush()


def _is_int(key: str) -> bool:
    try:
        int(key)
    except ValueError:
        return False
    return True


__all__ = ["FeatureStoreSource"]
