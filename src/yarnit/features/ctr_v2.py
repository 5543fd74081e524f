"""``ctr_features_v2``: v1 plus what the click model needs to learn shoppers' tastes and products' appeal.

It adds:

* ``product_id``, so the model can learn each product's appeal.
* The share of the query's tokens found in the product name.
* The log net price, and price sensitivity × log net price (the price
  effect).
* The shopper's affinities: the share of their past clicks on this fiber,
  weight and colour, and the log of their past click count. The caller
  supplies these (point-in-time in training, from the shopper's history at
  serving). Missing affinities count as a new shopper (0).
* The product's log click count over 7 days.

The dict version serves single requests and the frame version trains. A test
checks on a fixture that both give the same values (RELIABILITY.md target 15).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .request_time import _number, _text, ctr_features_v1, query_tokens
from .request_time_frame import _as_number, _categorical, _pairs, _text_codes, ctr_features_v1_frame
from .shopper_history import AFFINITIES, with_history


def _name_match(query: Any, name: Any) -> float:
    tokens = query_tokens(query)
    if not tokens:
        return 0.0
    return len(tokens & query_tokens(_text(name))) / len(tokens)


def _finite(value: Any) -> float:
    number = _number(value)
    return 0.0 if number is None or not math.isfinite(number) else number


def ctr_features_v2(record: dict[str, Any]) -> dict[str, Any]:
    record = with_history(record)  # a served request may carry the shopper_history view's row instead
    out = ctr_features_v1(record)
    out["product_id"] = _text(record.get("product_id"))
    out["query_name_match"] = _name_match(record.get("query"), record.get("product_name"))
    price, discount = _finite(record.get("price_usd")), _finite(record.get("discount"))
    net = price * (1.0 - discount)
    out["log_net_price"] = math.log(net) if net > 0 else 0.0
    out["sensitivity_x_log_net_price"] = out["user_price_sensitivity"] * out["log_net_price"]
    for attribute in AFFINITIES:
        out[f"user_affinity_{attribute}"] = _finite(record.get(f"user_affinity_{attribute}"))
    out["user_history_clicks_log"] = math.log1p(max(0.0, _finite(record.get("user_history_clicks"))))
    out["log_product_clicks_7d"] = math.log1p(max(0.0, _finite(record.get("product_clicks_7d"))))
    return out


def _finite_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame))
    values = _as_number(frame[name])
    return np.where(np.isfinite(values), values, 0.0)


def ctr_features_v2_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = ctr_features_v1_frame(frame)
    empty = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out["product_id"] = _categorical(*_text_codes(frame["product_id"] if "product_id" in frame else empty))
    q_codes, q_texts = _text_codes(frame["query"] if "query" in frame else empty)
    n_codes, n_texts = _text_codes(frame["product_name"] if "product_name" in frame else empty)
    uniques, inverse = _pairs(q_codes, n_codes, len(n_texts))
    shares = np.array([_name_match(q_texts[u // len(n_texts)], n_texts[u % len(n_texts)]) for u in uniques])
    out["query_name_match"] = shares[inverse] if len(shares) else np.zeros(len(frame))
    net = _finite_column(frame, "price_usd") * (1.0 - _finite_column(frame, "discount"))
    out["log_net_price"] = np.where(net > 0, np.log(np.where(net > 0, net, 1.0)), 0.0)
    out["sensitivity_x_log_net_price"] = out["user_price_sensitivity"].to_numpy() * out["log_net_price"].to_numpy()
    for attribute in AFFINITIES:
        out[f"user_affinity_{attribute}"] = _finite_column(frame, f"user_affinity_{attribute}")
    out["user_history_clicks_log"] = np.log1p(np.maximum(0.0, _finite_column(frame, "user_history_clicks")))
    out["log_product_clicks_7d"] = np.log1p(np.maximum(0.0, _finite_column(frame, "product_clicks_7d")))
    return out


__all__ = ["AFFINITIES", "ctr_features_v2", "ctr_features_v2_frame"]


def _register() -> None:
    from .request_time import TRANSFORMS
    from .request_time_frame import FRAME_TRANSFORMS

    TRANSFORMS.setdefault("ctr_features_v2", ctr_features_v2)
    FRAME_TRANSFORMS.setdefault("ctr_features_v2", ctr_features_v2_frame)


_register()
