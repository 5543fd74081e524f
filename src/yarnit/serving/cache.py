"""A bounded prediction cache for repeated instances (book CH8-R7).

Keys are (model version id, the instance after online-feature enrichment), so a
hot swap or a changed online feature never returns a stale score. Least
recently used entries are evicted beyond ``max_entries``. A lock guards it:
the data plane scores small requests on the event loop and slow ones on its
scoring threads (``admission.ScoringPool``), and both use the cache.

Example:
    >>> cache = PredictionCache(max_entries=2)
    >>> cache.put(("mv_1", (("fiber", "merino"),)), 0.7)
    >>> cache.get(("mv_1", (("fiber", "merino"),)))
    0.7
    >>> cache.get(("mv_2", (("fiber", "merino"),))) is None
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


def instance_key(version_id: str, instance: dict[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """A hashable key for ``instance`` scored by ``version_id`` (None if a value is unhashable)."""
    try:
        items = tuple(sorted(instance.items()))
        hash(items)
    except TypeError:
        return None
    return version_id, items


class PredictionCache:
    """LRU map from instance keys to scores, at most ``max_entries`` long (0 disables it)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get(self, key: Hashable) -> float | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: float) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


__all__ = ["PredictionCache", "instance_key"]
