"""EventCounts.add_many and buckets() equal the one-at-a-time path they replace on the monitor's hot loop."""

from __future__ import annotations

import numpy as np
import pytest

from yarnit.core.errors import InvalidInput
from yarnit.monitoring.counts import EventCounts


def _state(counts: EventCounts) -> tuple[list[tuple[int, int, int]], int, int | None]:
    return counts.buckets(), counts.dropped, counts.head


@pytest.mark.parametrize("seed", range(25))
def test_add_many_is_the_same_as_adding_in_time_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    capacity = int(rng.integers(1, 40))
    one, many = EventCounts(capacity=capacity), EventCounts(capacity=capacity)
    for _batch in range(3):  # later batches also meet a ring that already holds counts (late events are refused)
        n = int(rng.integers(0, 60))
        at = np.sort(rng.uniform(0, 80 * 60, n))
        total = rng.integers(0, 5, n)
        good = np.minimum(rng.integers(0, 5, n), total)
        for a, g, t in zip(at, good, total, strict=True):
            one.add(float(a), good=int(g), total=int(t))
        many.add_many(at, good=good, total=total)
        assert _state(many) == _state(one)
        end = float(rng.uniform(0, 90 * 60))
        assert many.window(end_s=end, window_s=1800) == one.window(end_s=end, window_s=1800)


def test_add_many_refuses_bad_counts_naming_them() -> None:
    counts = EventCounts(capacity=10)
    with pytest.raises(InvalidInput, match="good=3, total=2"):
        counts.add_many([0.0, 60.0], good=[1, 3], total=[1, 2])
    with pytest.raises(InvalidInput, match="equally long"):
        counts.add_many([0.0], good=[1, 1], total=[1, 1])
    assert counts.buckets() == [] and counts.head is None  # nothing was counted
