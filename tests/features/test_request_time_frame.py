"""The vectorized training transform equals the per-record serving transform (target 15)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from yarnit.features import ctr_features_v1
from yarnit.features.request_time_frame import ctr_features_v1_frame


def _fixture(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fibers = np.array(["merino", "wool", "cotton", "acrylic", "alpaca", None], dtype=object)
    frame = pd.DataFrame({
        "country": rng.choice(np.array(["ES", "NO", "US", None], dtype=object), n),
        "language": rng.choice(["es", "nb", "en"], n),
        "device": rng.choice(["web", "app"], n),
        "product_type": rng.choice(["yarn", "needles", "hook"], n),
        "fiber": rng.choice(fibers, n),
        "weight_class": rng.choice(np.array(["dk", "lace", "bulky", None], dtype=object), n),
        "color": rng.choice(["blue", "red", "grey"], n),
        "brand": rng.choice(["drops", "malabrigo"], n),
        "is_partner": rng.random(n) < 0.3,
        "in_stock": rng.random(n) < 0.9,
        "price_usd": np.where(rng.random(n) < 0.02, np.nan, rng.gamma(2.0, 6.0, n)),
        "discount": np.where(rng.random(n) < 0.01, np.nan, rng.choice([0.0, 0.1, 0.25], n)),
        "user_price_sensitivity": rng.random(n),
        "hour": rng.integers(0, 24, n),
        "day_of_week": rng.integers(0, 7, n),
        "query": rng.choice(np.array(["merino dk blue", "Cotton, red", "", "bulky wool", None], dtype=object), n),
        "position": rng.integers(1, 21, n),
    })
    frame.loc[frame.index[:5], "price_usd"] = [0.5, 1.0, 4.99, 5.0, 27.0]
    return frame


def _equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


def test_frame_and_record_paths_agree_on_every_value_of_10000_rows() -> None:
    frame = _fixture(10_000)
    vectorized = ctr_features_v1_frame(frame).to_dict("records")
    mismatches = []
    for i, record in enumerate(frame.to_dict("records")):
        expected = ctr_features_v1(record)
        got = vectorized[i]
        assert list(got) == list(expected)
        mismatches += [(i, k, got[k], v) for k, v in expected.items() if not _equal(got[k], v)]
    assert mismatches == []


def test_missing_columns_behave_like_missing_keys() -> None:
    frame = pd.DataFrame({"fiber": ["merino"], "query": ["merino"]})
    assert ctr_features_v1_frame(frame).to_dict("records")[0] == ctr_features_v1({"fiber": "merino",
                                                                                  "query": "merino"})
