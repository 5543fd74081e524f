"""ctr_features_v3: the frame and record paths agree (target 15); it is registered for serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
from testsupport import transform_mismatches

from yarnit.features import TRANSFORMS, get_transform
from yarnit.features.ctr_v3 import ctr_features_v3, ctr_features_v3_frame, query_type
from yarnit.features.request_time_frame import FRAME_TRANSFORMS


def _fixture(n: int = 5_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    history = rng.integers(0, 200, n).astype(float)
    return pd.DataFrame({
        "country": rng.choice(np.array(["ES", "NO", "US", "MX", "ZZ", None], dtype=object), n),
        "fiber": rng.choice(["merino", "cotton", "none"], n), "weight_class": rng.choice(["dk", "lace"], n),
        "color": rng.choice(["blue", "red"], n), "product_type": rng.choice(["yarn", "needles", "hook", "notion"], n),
        "brand": rng.choice(["Drops", "Rowan"], n),
        "query": rng.choice(np.array(["merino dk blue", "red yarn", "dk knitting needles", "crochet hook",
                                      "yarn scissors", "notions", "", None], dtype=object), n),
        "product_name": rng.choice(["Drops merino dk yarn blue", "Rowan cotton lace yarn red", None], n),
        "product_id": rng.choice(np.array(["p1", "p2", "p3", None], dtype=object), n),
        "price_usd": np.where(rng.random(n) < 0.02, np.nan, rng.gamma(2.0, 6.0, n)),
        "discount": rng.choice([0.0, 0.2, np.nan], n), "user_price_sensitivity": rng.random(n),
        "user_history_impressions": np.where(rng.random(n) < 0.05, np.nan, history),
        "user_history_clicks": np.floor(history * rng.random(n) * 0.2),
        "user_impressions_fiber": np.floor(history * rng.random(n)), "user_clicks_fiber": rng.integers(0, 3, n),
        "user_impressions_weight_class": np.floor(history * rng.random(n)),
        "user_clicks_weight_class": rng.integers(0, 3, n),
        "user_impressions_color": np.floor(history * rng.random(n)),
        "user_clicks_color": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 3, n)),
        "user_affinity_fiber": rng.random(n), "user_affinity_weight_class": rng.random(n),
        "user_affinity_color": rng.random(n), "product_clicks_7d": rng.integers(0, 500, n),
        "hour": np.where(rng.random(n) < 0.02, np.nan, rng.integers(0, 24, n)),
        "day_of_week": rng.integers(0, 7, n), "position": rng.integers(1, 11, n),
        "is_partner": rng.random(n) < 0.3, "in_stock": rng.random(n) < 0.9, "device": rng.choice(["app", "web"], n),
        "language": rng.choice(["es", "en"], n),
    })


def test_frame_and_record_paths_agree_on_5000_rows() -> None:
    assert transform_mismatches(_fixture(), ctr_features_v3, ctr_features_v3_frame) == []


def test_v3_is_registered_for_serving_and_training() -> None:
    assert get_transform("ctr_features_v3") is ctr_features_v3 and TRANSFORMS["ctr_features_v3"] is ctr_features_v3
    assert FRAME_TRANSFORMS["ctr_features_v3"] is ctr_features_v3_frame


def test_v3_terms_of_one_request() -> None:
    out = ctr_features_v3({"query": "dk knitting needles", "product_type": "yarn", "country": "US", "hour": 2,
                           "day_of_week": 6, "user_price_sensitivity": 1.5, "user_history_impressions": 80,
                           "user_history_clicks": 4, "user_impressions_fiber": 20, "user_clicks_fiber": 3})
    assert out["type_mismatch"] == 1.0 and out["local_hour"] == "21" and out["weekend"] == 1.0
    assert out["sensitivity_x_yarn"] == 1.5 and out["sensitivity_x_needles"] == 0.0
    assert out["user_impression_share_fiber"] == 0.25 and out["user_ctr_lift_fiber"] > 0  # 3/20 beats 4/80
    new = ctr_features_v3({"query": "merino", "product_type": "yarn"})  # a new shopper: no history terms
    assert new["type_mismatch"] == 0.0 and new["user_history_impressions_log"] == 0.0
    assert new["user_ctr_lift_color"] == 0.0 and new["user_impression_share_color"] == 0.0
    assert [query_type(q) for q in ("red project bag", "crochet hook", "merino")] == ["notion", "hook", "yarn"]
