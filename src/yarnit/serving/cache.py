"""A bounded prediction cache for repeated instances (book CH8-R7).

Keys are (model version id, a 16-byte digest of the instance after
online-feature enrichment), so a hot swap or a changed online feature never
returns a stale score, and an entry costs about 200 bytes however wide the row
is (keying on the row's values kept 10,000 rows of a wide batch alive, about
100 MB for 10,000 rows of 72 fields; issue 15 item 10). Requests of more
than ``ServingOptions.cache_max_batch`` rows bypass the cache. Least
recently used entries are evicted beyond ``max_entries``. A lock guards it:
the data plane scores small requests on the event loop and slow ones on its
scoring threads (``admission.ScoringPool``), and both use the cache.

Example:
    >>> cache = PredictionCache(max_entries=2)
    >>> cache.put(instance_key("mv_1", {"fiber": "merino"}), 0.7)
    >>> cache.get(instance_key("mv_1", {"fiber": "merino"}))
    0.7
    >>> cache.get(instance_key("mv_2", {"fiber": "merino"})) is None
    True
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson


def instance_key(version_id: str, instance: dict[str, Any]) -> tuple[str, bytes] | None:
    """A key for ``instance`` scored by ``version_id``: a 16-byte blake2b digest of the canonical row.

    The row is serialised with sorted keys (orjson), so two rows share a key only
    if they are equal field by field and type by type (``1``, ``1.0`` and ``True``
    differ). orjson writes NaN and infinities as ``null``, so a row with a
    ``null`` is serialised by ``repr`` instead, which tells them apart from None.
    Two distinct rows collide with probability about n²/2¹²⁹: nil for any cache
    size. None if the row cannot be serialised (e.g. a non-string key, an
    unknown type): that row is scored, not cached.
    """
    try:
        blob = orjson.dumps(instance, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        if b"null" in blob:
            blob = b"repr:" + repr(sorted(instance.items())).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return None
    return version_id, hashlib.blake2b(blob, digest_size=16).digest()


class PredictionCache:
    """LRU map from instance keys to scores, at most ``max_entries`` long (0 disables it).

    A value is a score (a float), or for a classifier with named classes a (class index, probability) pair.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
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
