"""The shopper_history view serves the very history ctr_features_v2/v3 trained on (one definition, two paths)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.features import FeatureStore
from yarnit.recipes.affinity import HISTORY_COLUMNS, add_user_affinity
from yarnit.recipes.history import DEFAULTS, FEATURES, ShopperHistory, history_rows, latest_by_user, shopper_history
from yarnit.storage import open_workspace

START = pd.Timestamp("2026-01-05", tz="UTC")


def _log(n: int = 1500, days: int = 5, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    event_time = (START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, n)), unit="s")).floor("us")
    return pd.DataFrame({
        "event_time": event_time, "day": event_time.date,
        "user_id": rng.choice([f"u{i}" for i in range(12)], n), "product_id": rng.choice(["p1", "p2", "p3"], n),
        "fiber": rng.choice(["wool", "merino", "silk"], n), "weight_class": rng.choice(["dk", "lace"], n),
        "color": rng.choice(["red", "blue", "grey"], n), "clicked": (rng.random(n) < 0.3).astype(int),
    })


def _served(log: pd.DataFrame, view_rows: pd.DataFrame) -> pd.DataFrame:
    """Each impression's history columns as serving computes them from the view row it could read then."""
    out = []
    for record, features in zip(log.to_dict("records"), view_rows.to_dict("records"), strict=True):
        present = {f: features.get(f) for f in FEATURES if features.get(f) is not None
                   and not (isinstance(features.get(f), float) and np.isnan(features.get(f)))}
        out.append(ShopperHistory.of(present).columns(record))
    return pd.DataFrame(out)[list(HISTORY_COLUMNS)]


def _assert_same(served: pd.DataFrame, trained: pd.DataFrame) -> None:
    for column in HISTORY_COLUMNS:
        np.testing.assert_allclose(served[column].to_numpy(dtype=float), trained[column].to_numpy(dtype=float),
                                   rtol=0, atol=1e-12, err_msg=column)


def test_an_as_of_read_of_the_view_gives_the_training_history() -> None:
    log = _log()
    rows = history_rows(log)
    assert rows["event_time"].dt.hour.eq(6).all()
    rows = rows.astype({"event_time": log["event_time"].dtype})
    asof = pd.merge_asof(log.reset_index().sort_values("event_time"), rows.sort_values("event_time"),
                         on="event_time", by="user_id", direction="backward").sort_values("index")
    trained = add_user_affinity(log)
    _assert_same(_served(log, asof.reset_index(drop=True)), trained)
    assert trained["user_history_impressions"].max() > 100  # the check covers real histories, not only zeros


def test_the_feature_store_joins_and_serves_the_view(tmp_path) -> None:
    clock = SimulatedClock(utc(2026, 1, 11))
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    log = _log()
    try:
        with FeatureStore(ws) as store:
            written = store.backfill(shopper_history, sources={"impressions": log})
            assert written.rows == len(history_rows(log))
            entities = log[["user_id", "event_time"]]
            joined = store.training_frame(entities, [f"shopper_history:{f}" for f in FEATURES])
            assert len(joined) == len(log)  # every impression, a new shopper's with nulls
            _assert_same(_served(log, joined), add_user_affinity(log))
            store.materialize("shopper_history", full=True)
            latest = latest_by_user(history_rows(log))
            online = store.read_online("shopper_history", sorted(latest))
            assert all(r.present for r in online)
            assert {r.key: r.values for r in online} == latest
    finally:
        ws.close()


def test_a_new_shopper_or_a_damaged_value_is_served_as_no_history() -> None:
    product = {"fiber": "wool", "weight_class": "dk", "color": "red"}
    new = ShopperHistory.of(DEFAULTS).columns(product)
    assert set(new) == set(HISTORY_COLUMNS) and not any(new.values())
    damaged = ShopperHistory.of({"history_impressions": 5, "history_clicks": float("nan"),
                                 "history_fiber": "{not json", "history_color": "[1, 2]",
                                 "history_weight_class": '{"dk": ["x", 1]}'}).columns(product)
    assert damaged["user_history_impressions"] == 5.0
    assert damaged["user_history_clicks"] == 0.0
    assert damaged["user_impressions_fiber"] == damaged["user_clicks_color"] == damaged["user_impressions_weight_class"] == 0.0


def test_an_empty_log_has_no_rows() -> None:
    empty = pd.DataFrame(columns=["user_id", "day", "clicked", "fiber", "weight_class", "color"])
    rows = history_rows(empty)
    assert rows.empty and list(rows.columns) == ["user_id", "event_time", *FEATURES]


def test_served_requests_carrying_the_view_row_get_the_training_features() -> None:
    from yarnit.features.ctr_v3 import ctr_features_v3, ctr_features_v3_frame

    log = _log(n=400)
    extra = {"country": "GB", "language": "en", "device": "app", "product_type": "yarn", "brand": "b",
             "is_partner": False, "in_stock": True, "price_usd": 12.0, "discount": 0.1, "user_price_sensitivity": 1.2,
             "hour": 20, "day_of_week": 5, "query": "merino dk", "product_name": "merino dk red",
             "product_clicks_7d": 3, "position": 1}
    log = log.assign(**extra)
    rows = history_rows(log).astype({"event_time": log["event_time"].dtype})
    asof = pd.merge_asof(log.reset_index().sort_values("event_time"), rows.sort_values("event_time"),
                         on="event_time", by="user_id", direction="backward").sort_values("index")
    trained = ctr_features_v3_frame(add_user_affinity(log))
    for i, record in enumerate(asof.to_dict("records")):
        request = {k: v for k, v in record.items() if not (isinstance(v, float) and np.isnan(v))}
        served = ctr_features_v3(request)
        for name, value in served.items():
            expected = trained[name].iloc[i]
            if isinstance(value, str):
                assert value == str(expected), (i, name)
            else:
                assert value == pytest.approx(float(expected), abs=1e-9), (i, name)
