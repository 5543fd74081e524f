"""Traffic: a sticky canary split by a hash of the request key, and shadow scoring in the background.

* :class:`Router` sends ``canary_percent`` % of *keys* (a user, a session) to
  the ``canary`` alias: the same key always lands on the same side while the
  percentage holds, and raising the percentage only moves keys from
  production to canary (buckets below the threshold stay below it).
* :class:`ShadowScorer` scores a copy of the request with the ``shadow``
  version on a background thread. Its output goes to the prediction log
  only: it is never returned and the response never waits for it. When the
  shadow thread cannot keep up its bounded queue drops work (counted), so
  shadow traffic sheds itself before it can slow the primary path.

Example:
    >>> router = Router()
    >>> router.set_policy("ctr", TrafficPolicy(canary_percent=10))
    >>> router.choose("ctr", "user-42", has_canary=True) == router.choose("ctr", "user-42", has_canary=True)
    True
    >>> sum(router.choose("ctr", f"u{i}", has_canary=True) == "canary" for i in range(10_000))
    977
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarnit.core.errors import InvalidInput

log = logging.getLogger("yarnit.serving.router")

BUCKETS = 10_000


@dataclass(frozen=True)
class TrafficPolicy:
    """How one model's traffic is split. ``canary_percent`` in [0, 100]; ``shadow`` on/off."""

    canary_percent: float = 0.0
    shadow: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_percent <= 100.0:
            raise InvalidInput(f"canary_percent must be within [0, 100]; got {self.canary_percent}.")


def bucket(model: str, key: str) -> int:
    """The key's bucket in [0, 10000): a keyed hash, so one key's buckets differ across models."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=model.encode("utf-8")[:64]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class Router:
    """Chooses the alias (``production`` or ``canary``) that answers a request."""

    def __init__(self) -> None:
        self._policies: dict[str, TrafficPolicy] = {}

    def set_policy(self, model: str, policy: TrafficPolicy) -> None:
        self._policies[model] = policy

    def policy(self, model: str) -> TrafficPolicy:
        return self._policies.get(model, _DEFAULT)

    def choose(self, model: str, key: str | None, *, has_canary: bool) -> str:
        if not has_canary:
            return "production"
        percent = self.policy(model).canary_percent
        if percent <= 0.0 or key is None:
            return "production"
        if percent >= 100.0:
            return "canary"
        return "canary" if bucket(model, key) < percent * (BUCKETS / 100.0) else "production"


_DEFAULT = TrafficPolicy()


class ShadowScorer:
    """One background thread scoring shadow jobs from a bounded queue; drops are counted."""

    def __init__(self, *, max_queue: int = 1_000) -> None:
        self.max_queue = max_queue
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, job: Callable[[], Any]) -> bool:
        """Queue ``job`` without blocking; False (and counted) when the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return False
        self.submitted += 1
        return True

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued job has run (tests, shutdown)."""
        done = threading.Event()
        if self._thread is None:
            return True
        try:
            self._queue.put(done.set, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=5.0)
        except queue.Full:
            pass
        thread.join(timeout=5.0)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="yarnit-shadow", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            try:
                job()
                self.completed += 1
            except Exception:  # a shadow failure is logged and counted, never raised to anyone
                self.failed += 1
                log.exception("shadow scoring failed")
        self._thread = None


__all__ = ["BUCKETS", "Router", "ShadowScorer", "TrafficPolicy", "bucket"]
