"""Shared, cached world runs for the world tests (small worlds: the whole folder runs in seconds)."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from yarnit.world import DayPartition, World, WorldConfig, oracle_ranker, parse_fault, popularity_ranker, random_ranker

SEED = 11
SESSIONS = 1000
USERS = 3000
DAYS = 3
RANKERS = {"popularity": popularity_ranker, "random": random_ranker, "oracle": oracle_ranker}


@functools.lru_cache(maxsize=64)
def run(specs: tuple[str, ...] = (), ranker: str = "popularity", days: int = DAYS,
        sessions: int = SESSIONS) -> tuple[DayPartition, ...]:
    """A small world with the faults ``specs`` (cached: tests must not modify the frames)."""
    start = WorldConfig().start
    faults = tuple(parse_fault(spec, start=start) for spec in specs)
    config = WorldConfig(seed=SEED, sessions_per_day=sessions, n_users=USERS, faults=faults)
    return tuple(World(config, ranker=RANKERS[ranker]).run(days))


def assert_day_equal(a: DayPartition, b: DayPartition, tables: tuple[str, ...] = DayPartition.TABLES) -> None:
    for name in tables:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=f"{name} of day {a.day}")


def without(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    return frame[~mask.to_numpy()].reset_index(drop=True)


@pytest.fixture(scope="session")
def baseline() -> tuple[DayPartition, ...]:
    return run()
