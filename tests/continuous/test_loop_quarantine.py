"""The loop's data rules on one real world day: label join as of a time, duplicates, spam, no false floods."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from testsupport.loop_world import write_small_world

from yarnit.continuous.loop import LoopConfig
from yarnit.continuous.loop_steps import (
    DAY_DEFAULTS,
    closes_at,
    label_join,
    quarantine_reasons,
)
from yarnit.core.errors import InvalidInput

DAY = date(2026, 1, 6)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_world(tmp_path_factory.mktemp("world") / "w", 2, faults=("click_log_outage@1",))


def _tables(world: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from yarnit.world.writer import read_table

    history = read_table(world, "impressions", [DAY - timedelta(days=1)])
    return read_table(world, "impressions", [DAY]), read_table(world, "labels", [DAY]), history


def test_the_label_join_sees_only_the_clicks_that_had_arrived(world: Path) -> None:
    impressions, labels, _ = _tables(world)
    clicks = labels[labels["kind"] == "click"]
    at_close = label_join(impressions, labels, closes_at(DAY))
    late = label_join(impressions, labels, closes_at(DAY) + timedelta(days=3))
    assert at_close["clicked"].dtype == impressions["clicked"].dtype  # the curated schema's int type
    assert int(at_close["clicked"].sum()) == int((clicks["arrival_time"] <= pd.Timestamp(closes_at(DAY))).sum())
    assert int(at_close["clicked"].sum()) * 5 < int(late["clicked"].sum())  # the outage held the clicks back
    assert int(late["clicked"].sum()) == clicks["impression_id"].nunique()


def test_duplicates_and_a_spamming_shopper_are_quarantined_and_an_ordinary_day_is_not(world: Path) -> None:
    impressions, labels, history = _tables(world)
    frame = label_join(impressions, labels, closes_at(DAY))
    hist = history[["user_id", "query", "session_id", "device", "day"]]
    assert (quarantine_reasons(frame, hist, DAY_DEFAULTS) == "").all()  # nothing on an ordinary day
    bot = frame.head(1).copy()
    spam = pd.concat([bot.assign(impression_id=[f"spam-{i}"], user_id="u-bot") for i in range(400)])
    dirty = pd.concat([frame, frame.head(50), spam], ignore_index=True)
    reasons = quarantine_reasons(dirty, hist, DAY_DEFAULTS)
    assert reasons.value_counts().to_dict() == {"": len(frame), "duplicate": 50, "spam": 400}
    assert (reasons.iloc[: len(frame)] == "").all()  # the first copy of a duplicated impression stays


def test_loop_config_refuses_a_window_it_cannot_train() -> None:
    with pytest.raises(InvalidInput, match="min_window_days must be in"):
        LoopConfig(window_days=2, min_window_days=3)
    with pytest.raises(InvalidInput, match="max_attempts must be at least 1"):
        LoopConfig(max_attempts=0)


@pytest.mark.parametrize("ids", [
    pd.Series(["imp-1", None, "imp-3"], dtype="string[pyarrow]"),  # a day read back from Parquet
    pd.Series(["imp-1", None, float("nan")], dtype=object),
    pd.Series([3, 1, 2]),
    pd.Series(["b", "a", "b"], dtype="category"),
])
def test_the_rejoin_keys_id_text_is_the_text_of_iterating_the_ids(ids: pd.Series) -> None:
    from yarnit.continuous.loop_steps import _id_text

    assert _id_text(ids) == "\x00".join(map(str, ids))
