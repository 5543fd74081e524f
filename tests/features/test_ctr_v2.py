"""ctr_features_v2: the frame and record paths agree (target 15); it is registered for serving."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from testsupport import transform_mismatches

from yarnit.features import TRANSFORMS, ctr_features_v2
from yarnit.features.ctr_v2 import ctr_features_v2_frame
from yarnit.features.request_time_frame import FRAME_TRANSFORMS


def _fixture(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "country": rng.choice(["ES", "NO", "US"], n), "fiber": rng.choice(["merino", "cotton", "wool"], n),
        "weight_class": rng.choice(["dk", "lace"], n), "color": rng.choice(["blue", "red"], n),
        "product_type": rng.choice(["yarn", "needles"], n), "brand": rng.choice(["Drops", "Rowan"], n),
        "query": rng.choice(np.array(["merino dk blue", "red yarn", "", None], dtype=object), n),
        "product_name": rng.choice(["Drops merino dk yarn blue", "Rowan cotton lace yarn red", None], n),
        "product_id": rng.choice(np.array(["p1", "p2", "p3", None], dtype=object), n),
        "price_usd": np.where(rng.random(n) < 0.02, np.nan, rng.gamma(2.0, 6.0, n)),
        "discount": rng.choice([0.0, 0.2, np.nan], n), "user_price_sensitivity": rng.random(n),
        "user_affinity_fiber": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        "user_affinity_weight_class": rng.random(n), "user_affinity_color": rng.random(n),
        "user_history_clicks": rng.integers(0, 50, n), "product_clicks_7d": rng.integers(0, 500, n),
        "hour": rng.integers(0, 24, n), "day_of_week": rng.integers(0, 7, n), "position": rng.integers(1, 11, n),
        "is_partner": rng.random(n) < 0.3, "in_stock": rng.random(n) < 0.9, "device": rng.choice(["app", "web"], n),
        "language": rng.choice(["es", "en"], n),
    })


def test_frame_and_record_paths_agree_on_10000_rows() -> None:
    assert transform_mismatches(_fixture(), ctr_features_v2, ctr_features_v2_frame) == []


def test_v2_is_registered_for_both_paths_and_extends_v1() -> None:
    assert TRANSFORMS["ctr_features_v2"] is ctr_features_v2 and "ctr_features_v2" in FRAME_TRANSFORMS
    out = ctr_features_v2({"query": "merino dk", "product_name": "Drops merino aran", "price_usd": 10.0,
                           "discount": 0.5, "user_price_sensitivity": 2.0})
    assert out["query_name_match"] == 0.5 and math.isclose(out["log_net_price"], math.log(5.0))
    assert math.isclose(out["sensitivity_x_log_net_price"], 2.0 * math.log(5.0))
    assert out["user_affinity_fiber"] == 0.0 and out["user_history_clicks_log"] == 0.0  # a new shopper
    assert out["price_bucket"] == "3"  # v1's features are all still there
