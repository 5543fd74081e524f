"""Where yarnit reads the time: a real clock, or a simulated one that tests drive.

Nothing else in yarnit calls ``datetime.now()``. Code that needs the time takes
a :class:`Clock` argument, so the YarnIt world can run 30 days in a minute and
tests are exact.

Example:
    >>> from datetime import datetime, timedelta, timezone
    >>> clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> clock.advance(timedelta(hours=36))
    >>> clock.now().isoformat()
    '2026-01-02T12:00:00+00:00'
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .errors import InvalidInput


@runtime_checkable
class Clock(Protocol):
    """A source of the current time (always timezone-aware UTC)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards (for durations)."""
        ...


class SystemClock:
    """The wall clock of the machine."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def now_us(self) -> int:
        """Microseconds since the Unix epoch (no datetime built: for hot paths)."""
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()


class SimulatedClock:
    """A clock that only moves when told to; safe to share between threads."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise InvalidInput(
                f"SimulatedClock needs a timezone-aware start, got naive {start.isoformat()!r}. "
                "Pass e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)."
            )
        self._now = start.astimezone(timezone.utc)
        self._now_us = _epoch_us(self._now)
        self._origin = self._now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def now_us(self) -> int:
        """Microseconds since the Unix epoch (no datetime built: for hot paths)."""
        return self._now_us  # one attribute read: atomic, set together with _now under the lock

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - self._origin).total_seconds()

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward by ``delta`` (a timedelta, or seconds)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=float(delta))
        if step < timedelta(0):
            raise InvalidInput(f"A clock cannot go backwards; got advance({step}). Use a positive delta.")
        with self._lock:
            self._now += step
            self._now_us = _epoch_us(self._now)

    def set(self, when: datetime) -> None:
        """Jump to ``when``, which must not be earlier than now."""
        if when.tzinfo is None:
            raise InvalidInput(f"Clock.set needs a timezone-aware time, got {when.isoformat()!r}.")
        with self._lock:
            target = when.astimezone(timezone.utc)
            if target < self._now:
                raise InvalidInput(
                    f"A clock cannot go backwards: now {self._now.isoformat()}, asked {target.isoformat()}."
                )
            self._now = target
            self._now_us = _epoch_us(target)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch_us(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def now_us_of(clock: Clock) -> Callable[[], int]:
    """A fast "microseconds since the epoch" reader for ``clock`` (its ``now_us`` when it has one)."""
    fast = getattr(clock, "now_us", None)
    if callable(fast):
        return fast  # type: ignore[no-any-return]
    return lambda: _epoch_us(clock.now())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A timezone-aware UTC datetime; shorthand for fixtures and configs."""
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


__all__ = ["Clock", "SimulatedClock", "SystemClock", "now_us_of", "utc"]
