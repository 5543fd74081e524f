"""The vectorized twin of :func:`ctr_features_v1`, for training on millions of rows.

Serving scores one record at a time with the dict version; training turns a
whole impression log into features at once with this one. The two must agree
value for value: ``tests/features/test_request_time_frame.py`` checks that on
a 10,000-row fixture (RELIABILITY.md target 15), so a change to one without
the other fails CI instead of creating train/serve skew.

Text features come back as pandas ``Categorical`` columns: every per-value
computation runs once per distinct value (or distinct pair) and is spread
back with integer codes, which keeps 6 million rows in seconds.
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
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = np.array([np.nan if (n := _number(v)) is None else n for v in uniques] + [np.nan], dtype=float)
    return values[codes]


def _text_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their texts (``_text`` of each distinct value; missing → '')."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts: list[str] = []
    index: dict[str, int] = {}
    remap = np.empty(len(uniques) + 1, dtype=np.int64)
    for i, value in enumerate([*uniques, None]):
        text = _text(value)
        remap[i] = index.setdefault(text, len(texts))
        if remap[i] == len(texts):
            texts.append(text)
    return remap[codes], texts


def _categorical(codes: np.ndarray, texts: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=pd.Index(texts, dtype=object))


def _as_flag(series: pd.Series, default: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=float)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    values = np.array([_flag(v, default) for v in uniques] + [float(default)], dtype=float)
    return values[codes]


def _int_text(values: np.ndarray, missing: str, divisor: int = 1) -> pd.Categorical:
    finite = np.isfinite(values)
    whole = np.trunc(np.where(finite, values, 0)).astype(np.int64) // divisor
    keys = np.where(finite, whole, np.iinfo(np.int64).min)
    codes, uniques = pd.factorize(keys)
    texts = [missing if u == np.iinfo(np.int64).min else str(int(u)) for u in uniques]
    deduped: dict[str, int] = {}
    remap = np.array([deduped.setdefault(t, len(deduped)) for t in texts], dtype=np.int64)
    return _categorical(remap[codes], list(deduped))


def _pairs(a: np.ndarray, b: np.ndarray, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) code pairs and each row's index into them."""
    inverse, uniques = pd.factorize(a.astype(np.int64) * n_b + b)
    return np.asarray(uniques), inverse


def ctr_features_v1_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``ctr_features_v1`` applied to every row of ``frame``, vectorized."""
    out: dict[str, Any] = {}
    text: dict[str, tuple[np.ndarray, list[str]]] = {}
    for name in CTR_CATEGORICAL:
        text[name] = _text_codes(_column(frame, name))
        out[name] = _categorical(*text[name])
    for name in CTR_NUMERIC:
        values = _as_number(_column(frame, name))
        out[name] = np.where(np.isnan(values), 0.0, values)
    price = _as_number(_column(frame, "price_usd"))
    finite = np.isfinite(price)
    safe = np.where(finite, price, 0.0)
    bucket = np.where(~finite | (safe < 1.0), 0, np.where(safe < 5.0, 1, 1 + np.floor(safe / 5.0))).astype(np.int64)
    out["price_bucket"] = _int_text(bucket.astype(float), "0")
    out["log_price_usd"] = np.where(finite & (safe > 0), np.log1p(np.where(safe > 0, safe, 0.0)), 0.0)
    out["is_partner"] = _as_flag(_column(frame, "is_partner"), default=False)
    out["in_stock"] = _as_flag(_column(frame, "in_stock"), default=True)
    out["hour_block"] = _int_text(_as_number(_column(frame, "hour")), "", 4)
    out["day_of_week"] = _int_text(_as_number(_column(frame, "day_of_week")), "")
    q_codes, q_texts = _text_codes(_column(frame, "query"))
    q_tokens = [query_tokens(q) for q in q_texts]
    out["has_query"] = np.array([float(bool(t)) for t in q_tokens])[q_codes] if q_texts else np.zeros(len(frame))
    for feature, column in (("query_match_fiber", "fiber"), ("query_match_weight", "weight_class"),
                            ("query_match_color", "color"), ("query_match_type", "product_type")):
        v_codes, v_texts = text[column]
        uniques, inverse = _pairs(q_codes, v_codes, len(v_texts))
        hits = np.array([float(v_texts[u % len(v_texts)] != ""
                               and v_texts[u % len(v_texts)].lower() in q_tokens[u // len(v_texts)])
                         for u in uniques])
        out[feature] = hits[inverse] if len(hits) else np.zeros(len(frame))
    out["position"] = _int_text(_as_number(_column(frame, "position")), "1")
    (c_codes, c_texts), (f_codes, f_texts) = text["country"], text["fiber"]
    uniques, inverse = _pairs(c_codes, f_codes, len(f_texts))
    out["country_x_fiber"] = _categorical(
        inverse, [f"{c_texts[u // len(f_texts)]}|{f_texts[u % len(f_texts)]}" for u in uniques])
    out["sensitivity_x_bucket"] = out["user_price_sensitivity"] * bucket.astype(float)
    return pd.DataFrame(out, index=frame.index)


FRAME_TRANSFORMS = {"ctr_features_v1": ctr_features_v1_frame}

__all__ = ["FRAME_TRANSFORMS", "ctr_features_v1_frame"]
