from datetime import datetime, timedelta

import pytest

from yarnit.core import InvalidInput, SimulatedClock, SystemClock, check_name, new_id, sha256_bytes, sha256_json, utc
from yarnit.core.clock import now_us_of


def test_simulated_clock_moves_only_when_told() -> None:
    clock = SimulatedClock(utc(2026, 1, 1))
    assert clock.now() == utc(2026, 1, 1)
    clock.advance(timedelta(days=30))
    assert clock.now() == utc(2026, 1, 31)
    assert clock.monotonic() == 30 * 86400


def test_simulated_clock_refuses_to_go_backwards_or_naive_times() -> None:
    clock = SimulatedClock(utc(2026, 1, 2))
    with pytest.raises(InvalidInput, match="cannot go backwards"):
        clock.set(utc(2026, 1, 1))
    with pytest.raises(InvalidInput, match="cannot go backwards"):
        clock.advance(-1)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        SimulatedClock(datetime(2026, 1, 1))


def test_now_us_agrees_with_now_on_both_clocks() -> None:
    clock = SimulatedClock(utc(2026, 1, 1))
    epoch = datetime(1970, 1, 1, tzinfo=utc(2026, 1, 1).tzinfo)
    for step in (timedelta(0), timedelta(microseconds=7), timedelta(days=3, seconds=1)):
        clock.advance(step)
        assert clock.now_us() == (clock.now() - epoch) // timedelta(microseconds=1)
    clock.set(utc(2027, 6, 1))
    assert now_us_of(clock)() == (utc(2027, 6, 1) - epoch) // timedelta(microseconds=1)
    system = SystemClock()
    before = (system.now() - epoch) // timedelta(microseconds=1)
    reading = system.now_us()
    after = (system.now() - epoch) // timedelta(microseconds=1)
    assert before <= reading <= after

    class DatetimeOnlyClock:
        def now(self) -> datetime:
            return utc(2026, 2, 1)

    assert now_us_of(DatetimeOnlyClock())() == (utc(2026, 2, 1) - epoch) // timedelta(microseconds=1)


def test_ids_sort_by_creation_time() -> None:
    clock = SimulatedClock(utc(2026, 1, 1))
    first = new_id("run", clock, randomness=b"\xff" * 10)
    clock.advance(0.001)
    second = new_id("run", clock, randomness=b"\x00" * 10)
    assert first.startswith("run_") and len(first) == 4 + 26
    assert first < second


@pytest.mark.parametrize("bad", ["", "Upper", "1starts-with-digit", "has space", "../etc", "a" * 64, "x/y"])
def test_names_that_could_escape_paths_or_urls_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="name .* is not valid"):
        check_name("Model", bad)


def test_hashes_are_stable() -> None:
    assert sha256_bytes(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_json({"b": 1, "a": [1, 2]}) == sha256_json({"a": [1, 2], "b": 1})
