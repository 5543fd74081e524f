"""The history behind ctr_features_v2/v3 is point-in-time: a click stamped after an impression never changes it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from yarnit.features.ctr_v3 import ctr_features_v3_frame
from yarnit.recipes.affinity import HISTORY_COLUMNS, LOG_CLOSE, AffinityHistory, add_user_affinity

START = pd.Timestamp("2026-01-05", tz="UTC")


def _log(n: int = 600, days: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    event_time = START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, n)), unit="s")
    return pd.DataFrame({
        "event_time": event_time, "day": event_time.date,
        "user_id": rng.choice(["u1", "u2", "u3"], n), "product_id": rng.choice(["p1", "p2", "p3", "p4"], n),
        "position": rng.integers(1, 11, n), "device": rng.choice(["app", "desktop"], n),
        "fiber": rng.choice(["wool", "merino"], n), "weight_class": rng.choice(["dk", "lace"], n),
        "color": rng.choice(["red", "blue"], n), "clicked": (rng.random(n) < 0.3).astype(int),
    })


def _close(day: dt.date) -> pd.Timestamp:
    """When a day's log closes: the last moment any of its clicks can be stamped and still be logged."""
    return pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) + LOG_CLOSE


def test_clicks_that_could_be_stamped_after_an_impression_never_change_its_features() -> None:
    log = _log()
    before = add_user_affinity(log)
    rng = np.random.default_rng(1)
    closes = np.array([_close(d) for d in log["day"]])
    for target in rng.choice(len(log), 40, replace=False):
        t = log["event_time"].iloc[target]
        # a click on impression j can be stamped any time up to its log's close: those closing after t may
        # carry clicks stamped after t, so re-draw all their labels
        later = closes > t
        changed = log.assign(clicked=np.where(later, 1 - log["clicked"], log["clicked"]))
        after = add_user_affinity(changed)
        for column in HISTORY_COLUMNS:
            assert after[column].iloc[target] == before[column].iloc[target], (target, column)
        v3_before = ctr_features_v3_frame(before.iloc[[target]]).iloc[0]
        v3_after = ctr_features_v3_frame(after.iloc[[target]]).iloc[0]
        assert v3_before.equals(v3_after)


def test_a_day_counts_only_once_its_log_has_closed() -> None:
    log = pd.DataFrame({
        "event_time": pd.to_datetime(["2026-01-05 23:59", "2026-01-06 05:59", "2026-01-06 06:01"], utc=True),
        "user_id": ["u1"] * 3, "product_id": ["p1"] * 3, "position": [1, 1, 1], "device": ["app"] * 3,
        "fiber": ["wool"] * 3, "weight_class": ["dk"] * 3, "color": ["red"] * 3, "clicked": [1, 0, 0],
    })
    log["day"] = log["event_time"].dt.date
    out = add_user_affinity(log)
    # 05:59 on Jan 6: Jan 5's log is still open (its late clicks may be arriving), so no history yet
    assert out["user_history_clicks"].tolist() == [0.0, 0.0, 1.0]
    assert out["user_affinity_fiber"].tolist() == [0.0, 0.0, 1.0]


def test_live_history_equals_the_training_history() -> None:
    log = _log(days=4)
    last = max(log["day"])
    history = AffinityHistory()
    for _, day_log in log[log["day"] < last].groupby("day"):
        history.observe(day_log)  # what a ranker sees: each closed day, once
    today = log[log["day"] == last].reset_index(drop=True)
    live = history.annotate(today.drop(columns=["clicked"]))
    offline = add_user_affinity(log)
    offline = offline[offline["day"] == last].reset_index(drop=True)
    for column in HISTORY_COLUMNS:
        assert live[column].tolist() == offline[column].tolist(), column
