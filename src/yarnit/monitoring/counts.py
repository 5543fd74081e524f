"""Good/total event counts per time bucket: small, bounded and mergeable.

An SLI only needs, per minute, how many events happened and how many were
good; a window's ratio is a sum of buckets. So a month of a busy service is
two ring buffers of 43,200 integers (≈700 KB), whatever the traffic, and one
object per request never exists. Two series with the same bucket width merge
by adding counts (two serving replicas, or a replayed log and a live one).

Buckets are aligned to the Unix epoch (bucket ``k`` covers ``[k·b, (k+1)·b)``
seconds). The ring holds the newest ``capacity`` buckets; a count older than
that is refused and counted in :attr:`EventCounts.dropped` (never silently
folded into a younger bucket). A window ``W`` read at time ``t`` sums the
``W/b`` buckets that start in ``[t - W, t)``: at a bucket boundary these are
exactly the events between the counter samples at ``t - W`` and ``t``, which is
what Prometheus' ``increase(x[W])`` sees with one sample per bucket (see
:mod:`.rules`).

Example:
    >>> counts = EventCounts(bucket_s=60, capacity=60)
    >>> counts.add(0, good=9, total=10)
    >>> counts.add(61, good=5, total=5)
    >>> counts.window(end_s=120, window_s=120)
    (14, 15)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from yarnit.core.errors import InvalidInput


class EventCounts:
    """A ring of per-bucket (good, total) counts; the newest ``capacity`` buckets are kept."""

    def __init__(self, *, bucket_s: int = 60, capacity: int = 43_200) -> None:
        if bucket_s <= 0 or capacity <= 0:
            raise InvalidInput(f"EventCounts needs bucket_s > 0 and capacity > 0, got {bucket_s} and {capacity}.")
        self.bucket_s = bucket_s
        self.capacity = capacity
        self._good = np.zeros(capacity, dtype=np.int64)
        self._total = np.zeros(capacity, dtype=np.int64)
        self._head: int | None = None  # newest bucket index held; slots hold buckets (head - capacity, head]
        self.dropped = 0  # events refused because they were older than the ring

    @classmethod
    def for_span(cls, span_s: int, *, bucket_s: int = 60) -> EventCounts:
        """A ring just long enough to answer windows up to ``span_s`` seconds."""
        return cls(bucket_s=bucket_s, capacity=max(1, math.ceil(span_s / bucket_s)))

    @property
    def head(self) -> int | None:
        """Index of the newest bucket written (None while empty)."""
        return self._head

    def add(self, at_s: float, *, good: int, total: int) -> None:
        """Count ``total`` events at ``at_s`` (epoch seconds), ``good`` of them good."""
        bucket = math.floor(at_s / self.bucket_s)
        self._add(bucket, bucket, good, total)

    def add_span(self, start_s: float, end_s: float, *, good_per_bucket: int, total_per_bucket: int) -> None:
        """Count the same (good, total) in every bucket that starts in ``[start_s, end_s)``: steady traffic, fast."""
        self._add(math.ceil(start_s / self.bucket_s), math.ceil(end_s / self.bucket_s) - 1, good_per_bucket,
                  total_per_bucket)

    def add_many(self, at_s: Sequence[float] | np.ndarray, *, good: Sequence[int] | np.ndarray,
                 total: Sequence[int] | np.ndarray) -> None:
        """Count many (good, total) pairs at once: the same as :meth:`add` for each, in time order.

        Example:
            >>> counts = EventCounts(bucket_s=60, capacity=60)
            >>> counts.add_many([0, 30, 61], good=[9, 1, 5], total=[10, 1, 5])
            >>> counts.window(end_s=120, window_s=120)
            (15, 16)
        """
        at = np.asarray(at_s, dtype=np.float64)
        goods = np.asarray(good, dtype=np.int64)
        totals = np.asarray(total, dtype=np.int64)
        if not at.shape == goods.shape == totals.shape or at.ndim != 1:
            raise InvalidInput(f"add_many needs three equally long 1-d sequences, got shapes {at.shape}, "
                               f"{goods.shape} and {totals.shape}.")
        if not (np.all(goods >= 0) and np.all(goods <= totals)):
            bad = int(np.flatnonzero((goods < 0) | (goods > totals))[0])
            raise InvalidInput(f"Event counts need 0 <= good <= total, got good={int(goods[bad])}, "
                               f"total={int(totals[bad])}.")
        keep = totals > 0
        if not keep.any():
            return
        buckets = np.floor(at[keep] / self.bucket_s).astype(np.int64)
        goods, totals = goods[keep], totals[keep]
        if self._head is not None:  # older than the ring before this call: refused, as add() would
            late = buckets < self._head - self.capacity + 1
            self.dropped += int(totals[late].sum())
            buckets, goods, totals = buckets[~late], goods[~late], totals[~late]
            if not len(buckets):
                return
        self._advance(int(buckets.max()))
        assert self._head is not None
        inside = buckets >= self._head - self.capacity + 1  # the rest fell out of the ring as time moved on
        slots = buckets[inside] % self.capacity
        np.add.at(self._good, slots, goods[inside])
        np.add.at(self._total, slots, totals[inside])

    def _add(self, first: int, last: int, good: int, total: int) -> None:
        if not (0 <= good <= total):
            raise InvalidInput(f"Event counts need 0 <= good <= total, got good={good}, total={total}.")
        if last < first or total == 0:
            return
        self._advance(last)
        assert self._head is not None
        oldest = self._head - self.capacity + 1
        if first < oldest:
            self.dropped += (min(last, oldest - 1) - first + 1) * total
            first = oldest
        if last < first:
            return
        for lo, hi in self._slices(first, last):
            self._good[lo:hi] += good
            self._total[lo:hi] += total

    def window(self, *, end_s: float, window_s: int) -> tuple[int, int]:
        """(good, total) over the buckets that start in ``[end_s - window_s, end_s)``."""
        if self._head is None:
            return 0, 0
        first = math.ceil((end_s - window_s) / self.bucket_s)
        last = min(math.ceil(end_s / self.bucket_s) - 1, self._head)
        first = max(first, self._head - self.capacity + 1)
        good = total = 0
        if last >= first:
            for lo, hi in self._slices(first, last):
                good += int(self._good[lo:hi].sum())
                total += int(self._total[lo:hi].sum())
        return good, total

    def buckets(self) -> list[tuple[int, int, int]]:
        """Every non-empty bucket as (bucket index, good, total), oldest first."""
        keys, good, totals = self.bucket_arrays()
        return list(zip(keys.tolist(), good.tolist(), totals.tolist(), strict=True))

    def bucket_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`buckets` as three arrays (bucket indexes, good, total), oldest first."""
        if self._head is None:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        oldest = self._head - self.capacity + 1
        order = (np.arange(self.capacity) + oldest) % self.capacity  # slots, oldest bucket first
        totals = self._total[order]
        nonzero = np.flatnonzero(totals)
        return (nonzero + oldest).astype(np.int64), self._good[order][nonzero], totals[nonzero]

    def merge(self, other: EventCounts) -> None:
        """Add ``other``'s counts into this series (same bucket width); older-than-ring buckets are dropped."""
        if other.bucket_s != self.bucket_s:
            raise InvalidInput(f"Cannot merge event counts with {other.bucket_s} s buckets into {self.bucket_s} s "
                               "buckets; re-bucket one of them first.")
        for k, good, total in other.buckets():
            self.add(k * self.bucket_s, good=good, total=total)
        self.dropped += other.dropped

    def _advance(self, bucket: int) -> None:
        """Make ``bucket`` the head, zeroing the slots of the buckets that fall out of the ring."""
        if self._head is None:
            self._head = bucket
            return
        if bucket <= self._head:
            return
        if bucket - self._head >= self.capacity:
            self._good[:] = 0
            self._total[:] = 0
        else:
            for lo, hi in self._slices(self._head + 1, bucket):
                self._good[lo:hi] = 0
                self._total[lo:hi] = 0
        self._head = bucket

    def _slices(self, first: int, last: int) -> list[tuple[int, int]]:
        """Slot ranges [lo, hi) covering buckets first..last (at most ``capacity`` of them)."""
        lo = first % self.capacity
        n = last - first + 1
        if lo + n <= self.capacity:
            return [(lo, lo + n)]
        return [(lo, self.capacity), (0, lo + n - self.capacity)]


__all__ = ["EventCounts"]
