"""The vectorized twin of :func:`ctr_features_v1`, for training on millions of rows.

Serving scores one record at a time with the dict version; training turns a
whole impression log into features at once with this one. The two must agree
value for value: ``tests/features/test_request_time_frame.py`` checks that on
world data (RELIABILITY.md target 15), so a change to one without the other
fails CI instead of creating train/serve skew.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .request_time import CTR_CATEGORICAL, CTR_NUMERIC, _flag, _number, _text, query_tokens


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_number(series: pd.Series) -> np.ndarray:
    """Float values with NaN where the dict version's ``_number`` would give None (or NaN)."""
    if _is_numeric(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return np.array([np.nan if (n := _number(v)) is None else n for v in series], dtype=float)


def _as_text(series: pd.Series) -> pd.Series:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = np.array([_text(v) for v in uniques] + [""], dtype=object)
    return pd.Series(texts[codes], index=series.index, dtype=object)


def _as_flag(series: pd.Series, default: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=float)
    return np.array([_flag(v, default) for v in series], dtype=float)


def _int_text(values: np.ndarray, missing: str, divisor: int = 1) -> np.ndarray:
    finite = np.isfinite(values)
    whole = np.trunc(np.where(finite, values, 0)).astype(np.int64) // divisor
    return np.where(finite, whole.astype(str), missing).astype(object)


def _query_match(queries: pd.Series, values: pd.Series) -> np.ndarray:
    """1.0 where the value (lowercased) is one of the query's tokens; computed per unique pair."""
    pairs = pd.DataFrame({"q": _as_text(queries).to_numpy(), "v": _as_text(values).to_numpy()})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs))
    hits = np.array([float(v != "" and v.lower() in query_tokens(q)) for q, v in uniques], dtype=float)
    return hits[codes]


def ctr_features_v1_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``ctr_features_v1`` applied to every row of ``frame``, vectorized."""
    out: dict[str, Any] = {}
    for name in CTR_CATEGORICAL:
        out[name] = _as_text(_column(frame, name)).to_numpy()
    for name in CTR_NUMERIC:
        values = _as_number(_column(frame, name))
        out[name] = np.where(np.isnan(values), 0.0, values)
    price = _as_number(_column(frame, "price_usd"))
    finite = np.isfinite(price)
    safe = np.where(finite, price, 0.0)
    bucket = np.where(~finite | (safe < 1.0), 0, np.where(safe < 5.0, 1, 1 + np.floor(safe / 5.0))).astype(np.int64)
    out["price_bucket"] = bucket.astype(str).astype(object)
    out["log_price_usd"] = np.where(finite & (safe > 0), np.log1p(np.where(safe > 0, safe, 0.0)), 0.0)
    out["is_partner"] = _as_flag(_column(frame, "is_partner"), default=False)
    out["in_stock"] = _as_flag(_column(frame, "in_stock"), default=True)
    out["hour_block"] = _int_text(_as_number(_column(frame, "hour")), "", 4)
    out["day_of_week"] = _int_text(_as_number(_column(frame, "day_of_week")), "")
    queries = _column(frame, "query")
    q_codes, q_uniques = pd.factorize(queries, use_na_sentinel=True)
    has_tokens = np.array([float(bool(query_tokens(q))) for q in q_uniques] + [0.0])
    out["has_query"] = has_tokens[q_codes]
    for feature, column in (("query_match_fiber", "fiber"), ("query_match_weight", "weight_class"),
                            ("query_match_color", "color"), ("query_match_type", "product_type")):
        out[feature] = _query_match(queries, _column(frame, column))
    out["position"] = _int_text(_as_number(_column(frame, "position")), "1")
    out["country_x_fiber"] = (pd.Series(out["country"], dtype=object) + "|"
                              + pd.Series(out["fiber"], dtype=object)).to_numpy()
    out["sensitivity_x_bucket"] = out["user_price_sensitivity"] * bucket.astype(float)
    return pd.DataFrame(out, index=frame.index)


FRAME_TRANSFORMS = {"ctr_features_v1": ctr_features_v1_frame}

__all__ = ["FRAME_TRANSFORMS", "ctr_features_v1_frame"]
