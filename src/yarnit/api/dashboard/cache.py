"""Rendered pages kept for a couple of seconds, so a room of auto-refreshing dashboards costs the data plane little.

A page rendered for a request without a ``Cache-Control`` header (an automatic refresh, a poller,
a link followed) is kept for ``ttl_s`` seconds of real elapsed time (``time.monotonic``: how long
a rendering stays fresh, not domain time) and served again to such requests. A request that asks
for freshness (a browser reload sends ``Cache-Control: max-age=0`` or ``no-cache``) always renders
anew, so the reload after an action shows its effect. ``ttl_s`` 0 turns the cache off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_TTL_S = 2.0
MAX_PAGES = 256


class PageCache:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._pages: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def page(self, key: str, render: Callable[[], str], *, fresh: bool = False) -> str:
        """The page under ``key``: kept if still fresh and ``fresh`` is not asked for, else rendered and kept."""
        now = time.monotonic()
        if self.ttl_s > 0 and not fresh:
            with self._lock:
                kept = self._pages.get(key)
            if kept is not None and kept[0] > now:
                return kept[1]
        text = render()
        if self.ttl_s > 0:
            with self._lock:
                if len(self._pages) >= MAX_PAGES:
                    self._pages = {k: v for k, v in self._pages.items() if v[0] > now}
                    if len(self._pages) >= MAX_PAGES:
                        self._pages.clear()
                self._pages[key] = (now + self.ttl_s, text)
        return text


__all__ = ["DEFAULT_TTL_S", "PageCache"]
