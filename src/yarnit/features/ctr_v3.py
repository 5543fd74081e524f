"""``ctr_features_v3``: v2 plus the terms of the click formula that v2 cannot express.

It drops v2's ``product_id``: a weight per product is learned only for the
products the logging policy happened to show and never moves while a ranker
serves, and in the closed loop it cost 3 points of CTR lift (20% instead of
23%); the store's click count (``product_clicks_7d``, renewed every night)
carries the products' appeal instead. It adds:

* ``position_x_device``: how far down a page shoppers look depends on the
  device (phones scroll less), so position bias is learned per device.
* ``local_hour`` (the UTC hour moved to the shopper's country) and
  ``weekend``: shoppers click more in their evening.
* ``type_mismatch``: the query asks for one product type (yarn, needles,
  hooks, notions) and the product is another.
* ``sensitivity_x_<type>``: price sensitivity per product type. With v2's
  sensitivity × log net price, this lets the model learn each type's
  reference price, so the price effect is sensitivity × log(net / reference).
* The shopper's history, smoothed: log impressions seen, and per fiber,
  weight and colour the share of their impressions on this value and the
  log-lift of their click rate on it over their overall rate (both rates are
  shrunk towards :data:`PRIOR_CTR` by :data:`PRIOR_IMPRESSIONS` impressions).

The caller supplies the counts, point-in-time (``yarnit.recipes.affinity``),
or at serving the ``shopper_history`` view's row, which the dict version
decodes (``yarnit.features.shopper_history``); missing counts are a new
shopper.

The dict version serves single requests and the frame version trains; a test
checks on a fixture that both give the same values (RELIABILITY.md target 15).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .ctr_v2 import AFFINITIES, _finite, _finite_column, ctr_features_v2, ctr_features_v2_frame
from .request_time import _number, query_tokens
from .request_time_frame import _as_number, _categorical, _column, _pairs, _text_codes
from .shopper_history import with_history

PRODUCT_TYPES = ("yarn", "needles", "hook", "notion")
#: Hours from UTC of the countries YarnIt ships to (no daylight saving in the simulated winter).
COUNTRY_UTC_OFFSET_H = {"US": -5, "GB": 0, "CA": -5, "DE": 1, "FR": 1, "ES": 1, "MX": -6, "NO": 1, "SE": 1}
#: Query words that name a product type other than yarn (YarnIt's search vocabulary).
TYPE_WORDS = {"needles": "needles", "hook": "hook", "markers": "notion", "bag": "notion", "counter": "notion",
              "scissors": "notion", "measure": "notion", "notions": "notion"}
PRIOR_CTR = 0.05
PRIOR_IMPRESSIONS = 20.0


def query_type(query: Any) -> str:
    """The product type a search asks for ('' when browsing).

    >>> [query_type(q) for q in ("merino dk", "dk knitting needles", "yarn scissors", "", None)]
    ['yarn', 'needles', 'notion', '', '']
    """
    tokens = query_tokens(query)
    if not tokens:
        return ""
    named = {TYPE_WORDS[t] for t in tokens if t in TYPE_WORDS}
    for kind in PRODUCT_TYPES[1:]:
        if kind in named:
            return kind
    return "yarn"


def _local_hour(hour: float, country: str) -> str:
    if not math.isfinite(hour):
        return ""
    return str((int(hour) + COUNTRY_UTC_OFFSET_H.get(country, 0)) % 24)


def _category_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    return column.cat.codes.to_numpy(dtype=np.int64), [str(c) for c in column.cat.categories]


def _count(value: Any) -> float:
    return max(0.0, _finite(value))


def _lift(clicks: float, impressions: float, rate: float) -> float:
    return math.log((clicks + PRIOR_IMPRESSIONS * rate) / (impressions + PRIOR_IMPRESSIONS)) - math.log(rate)


def ctr_features_v3(record: dict[str, Any]) -> dict[str, Any]:
    record = with_history(record)  # a served request may carry the shopper_history view's row instead
    out = ctr_features_v2(record)
    del out["product_id"]
    out["position_x_device"] = f"{out['position']}|{out['device']}"
    hour = _number(record.get("hour"))
    out["local_hour"] = _local_hour(math.nan if hour is None else hour, out["country"])
    dow = _number(record.get("day_of_week"))
    out["weekend"] = float(dow is not None and math.isfinite(dow) and int(dow) >= 5)
    kind = query_type(record.get("query"))
    out["type_mismatch"] = float(kind != "" and kind != out["product_type"])
    for product_type in PRODUCT_TYPES:
        out[f"sensitivity_x_{product_type}"] = out["user_price_sensitivity"] if out["product_type"] == product_type \
            else 0.0
    impressions, clicks = _count(record.get("user_history_impressions")), _count(record.get("user_history_clicks"))
    out["user_history_impressions_log"] = math.log1p(impressions)
    rate = (clicks + PRIOR_IMPRESSIONS * PRIOR_CTR) / (impressions + PRIOR_IMPRESSIONS)
    for attribute in AFFINITIES:
        seen = _count(record.get(f"user_impressions_{attribute}"))
        out[f"user_impression_share_{attribute}"] = seen / impressions if impressions > 0 else 0.0
        out[f"user_ctr_lift_{attribute}"] = _lift(_count(record.get(f"user_clicks_{attribute}")), seen, rate)
    return out


def _counts(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.maximum(0.0, _finite_column(frame, name))


def ctr_features_v3_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = ctr_features_v2_frame(frame).drop(columns=["product_id"])
    (p_codes, p_texts), (d_codes, d_texts) = _category_codes(out["position"]), _category_codes(out["device"])
    uniques, inverse = _pairs(p_codes, d_codes, len(d_texts))
    out["position_x_device"] = _categorical(
        inverse, [f"{p_texts[u // len(d_texts)]}|{d_texts[u % len(d_texts)]}" for u in uniques])
    c_codes, c_texts = _category_codes(out["country"])
    offset = np.array([COUNTRY_UTC_OFFSET_H.get(c, 0) for c in c_texts] + [0], dtype=float)[c_codes]
    hour = _as_number(_column(frame, "hour"))
    finite = np.isfinite(hour)
    local = np.where(finite, (np.trunc(np.where(finite, hour, 0.0)) + offset) % 24, -1).astype(np.int64)
    codes, uniques = pd.factorize(local)
    out["local_hour"] = _categorical(codes, ["" if u < 0 else str(int(u)) for u in uniques])
    dow = _as_number(_column(frame, "day_of_week"))
    out["weekend"] = (np.isfinite(dow) & (np.trunc(np.where(np.isfinite(dow), dow, 0.0)) >= 5)).astype(float)
    q_codes, q_texts = _text_codes(_column(frame, "query"))
    kinds = np.array([query_type(q) for q in q_texts], dtype=object)[q_codes]
    product_type = out["product_type"].astype(object).to_numpy()
    out["type_mismatch"] = ((kinds != "") & (kinds != product_type)).astype(float)
    sensitivity = out["user_price_sensitivity"].to_numpy()
    for kind in PRODUCT_TYPES:
        out[f"sensitivity_x_{kind}"] = np.where(product_type == kind, sensitivity, 0.0)
    impressions, clicks = _counts(frame, "user_history_impressions"), _counts(frame, "user_history_clicks")
    out["user_history_impressions_log"] = np.log1p(impressions)
    rate = (clicks + PRIOR_IMPRESSIONS * PRIOR_CTR) / (impressions + PRIOR_IMPRESSIONS)
    for attribute in AFFINITIES:
        seen = _counts(frame, f"user_impressions_{attribute}")
        out[f"user_impression_share_{attribute}"] = np.where(impressions > 0, seen / np.maximum(impressions, 1.0),
                                                             0.0)
        hits = _counts(frame, f"user_clicks_{attribute}")
        out[f"user_ctr_lift_{attribute}"] = (np.log((hits + PRIOR_IMPRESSIONS * rate) / (seen + PRIOR_IMPRESSIONS))
                                             - np.log(rate))
    return out


__all__ = ["COUNTRY_UTC_OFFSET_H", "PRODUCT_TYPES", "ctr_features_v3", "ctr_features_v3_frame", "query_type"]


def _register() -> None:
    from .request_time import TRANSFORMS
    from .request_time_frame import FRAME_TRANSFORMS

    TRANSFORMS.setdefault("ctr_features_v3", ctr_features_v3)
    FRAME_TRANSFORMS.setdefault("ctr_features_v3", ctr_features_v3_frame)


_register()
