"""Shopper affinities are point-in-time: a day's own clicks never feed that day's features."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from yarnit.recipes.affinity import AffinityHistory, add_user_affinity

D1, D2, D3 = dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)


def log() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u1", "u2", "u1"],
        "day": [D1, D1, D2, D2, D2, D3],
        "fiber": ["merino", "cotton", "merino", "merino", "merino", "merino"],
        "weight_class": ["dk"] * 6, "color": ["blue", "red", "blue", "red", "blue", "blue"],
        "clicked": [1, 1, 1, 0, 1, 0],
    })


def test_affinities_use_only_earlier_days() -> None:
    out = add_user_affinity(log())
    assert out["user_history_clicks"].tolist() == [0, 0, 2, 2, 0, 3]
    assert out["user_affinity_fiber"].tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 2 / 3]
    assert out["user_affinity_color"].tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 2 / 3]


def test_live_history_matches_the_training_computation() -> None:
    history = AffinityHistory()
    frame = log()
    history.observe_all([frame[frame["day"] < D3]])
    live = history.annotate(frame[frame["day"] == D3].reset_index(drop=True))
    offline = add_user_affinity(frame)
    offline = offline[offline["day"] == D3].reset_index(drop=True)
    for column in ("user_history_clicks", "user_affinity_fiber", "user_affinity_weight_class", "user_affinity_color"):
        assert live[column].tolist() == offline[column].tolist()
