"""The shop's pages carry the world's times as pandas writes them, whether numpy or pandas formats them (h35)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yarnit.world import World, WorldConfig
from yarnit.world.rankers import popularity_ranker
from yarnit.world.traffic import _json_ready, _utc_text


def _times(*texts: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(texts), utc=True, format="ISO8601")).astype("datetime64[us, UTC]")


def test_a_world_days_event_times_are_pandas_text_character_for_character() -> None:
    pages = []

    class Keep:
        model_version, exploration_rate = "popularity", 0.0

        def rank_batch(self, batch):  # noqa: ANN001, ANN202 - a world ranker
            pages.append(batch.candidates)
            return np.asarray(popularity_ranker.rank_batch(batch))

    next(iter(World(WorldConfig(seed=0, sessions_per_day=60, n_users=300), ranker=Keep()).run(1)))
    times = pages[0]["event_time"]
    assert _utc_text(times) is not None  # the fast path is the one the demo takes
    rows = _json_ready(pages[0])
    assert [r["event_time"] for r in rows] == times.astype(str).tolist()


@pytest.mark.parametrize("texts", [
    ("2026-01-05 00:02:24", "2026-01-05 00:02:25"),  # no fraction: pandas writes none
    ("2026-01-05 00:02:24.5", "2026-01-05 00:02:25"),  # whole milliseconds: pandas writes three digits
    ("2026-01-05 00:02:24.000001", None),  # a missing time
    ("1999-12-31 23:59:59.123456", "2026-01-05 00:00:00"),  # microseconds: six digits for every value
])
def test_other_time_columns_read_as_pandas_writes_them(texts: tuple[str | None, ...]) -> None:
    series = _times(*texts)
    expected = [None if pd.isna(t) else str(v) for t, v in zip(series, series.astype(str), strict=True)]
    assert [r["t"] for r in _json_ready(pd.DataFrame({"t": series}))] == expected
