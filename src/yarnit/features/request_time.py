"""Request-time features: one definition used by training and by serving.

Both paths call the same function on the same kind of record (a dict of raw
attributes), so train/serve skew cannot come from duplicated logic (book
CH4-R2, CH7-R3). A model version records the name of its transform in its
signature; the serving runtime looks the name up here. Names are versioned:
changing what a transform computes means adding ``..._v2``, never editing v1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from yarnit.core.errors import InvalidInput

Record = dict[str, Any]


def price_bucket(price_usd: float | None) -> int:
    """The book's bucketing: under $1 → 0, $1–5 → 1, then one bucket per $5 step.

    >>> [price_bucket(p) for p in (0.5, 1.0, 4.99, 5.0, 9.99, 10.0, 27.0)]
    [0, 1, 1, 2, 2, 3, 6]
    """
    if price_usd is None or not math.isfinite(price_usd) or price_usd < 1.0:
        return 0
    if price_usd < 5.0:
        return 1
    return 1 + int(price_usd // 5.0)


def query_tokens(query: Any) -> set[str]:
    """Lowercase tokens of a search query (empty for browsing, None or NaN)."""
    if not isinstance(query, str):
        return set()
    return {t for t in query.lower().replace(",", " ").split() if t}


def _text(value: Any) -> str:
    """A categorical value as text; missing (None or NaN) becomes ''."""
    if type(value) is str:  # the usual case, first: this runs for every feature of every row served
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _query_match(tokens: set[str], value: Any) -> int:
    text = _text(value)
    return int(text != "" and text.lower() in tokens)


# Raw attributes that pass through unchanged (categorical or numeric).
CTR_CATEGORICAL = ("country", "language", "device", "product_type", "fiber", "weight_class", "color", "brand")
CTR_NUMERIC = ("discount", "user_price_sensitivity")


def _number(value: Any) -> float | None:
    """A real number (Python or numpy, not bool) as float; None otherwise."""
    kind = type(value)
    if kind is float or kind is int:  # the usual cases without the ABC check below (bool is not int's type)
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _flag(value: Any, default: bool) -> float:
    """1.0/0.0 for a boolean-like value (bool, numpy bool, 0/1); ``default`` when missing or NaN."""
    if value is None:
        return float(default)
    if value is True or value is False:
        return float(value)
    if hasattr(value, "dtype") and value.dtype == bool:  # numpy bool scalar
        return float(bool(value))
    if isinstance(value, bool):
        return float(value)
    number = _number(value)
    if number is None or math.isnan(number):
        return float(default)
    return float(number != 0.0)


def ctr_features_v1(record: Record) -> Record:
    """Features of one impression for the click model.

    ``position`` is a training feature (to absorb position bias). A model's
    signature fixes it to 1 for every scoring path (``input_policy``, applied by
    ``serving/inputs.py`` online and in batch), so scores compare items as if
    shown first; absent from a record, it is 1 here too.
    """
    out: Record = {}
    for name in CTR_CATEGORICAL:
        out[name] = _text(record.get(name))
    for name in CTR_NUMERIC:
        number = _number(record.get(name))
        out[name] = 0.0 if number is None or math.isnan(number) else number
    price_f = _number(record.get("price_usd"))
    out["price_bucket"] = str(price_bucket(price_f))
    out["log_price_usd"] = math.log1p(price_f) if price_f is not None and math.isfinite(price_f) and price_f > 0 else 0.0
    out["is_partner"] = _flag(record.get("is_partner"), default=False)
    out["in_stock"] = _flag(record.get("in_stock"), default=True)
    hour = _number(record.get("hour"))
    out["hour_block"] = str(int(hour) // 4) if hour is not None and math.isfinite(hour) else ""
    dow = _number(record.get("day_of_week"))
    out["day_of_week"] = str(int(dow)) if dow is not None and math.isfinite(dow) else ""
    tokens = query_tokens(record.get("query"))
    out["has_query"] = float(bool(tokens))
    out["query_match_fiber"] = float(_query_match(tokens, record.get("fiber")))
    out["query_match_weight"] = float(_query_match(tokens, record.get("weight_class")))
    out["query_match_color"] = float(_query_match(tokens, record.get("color")))
    out["query_match_type"] = float(_query_match(tokens, record.get("product_type")))
    position = _number(record.get("position"))
    out["position"] = str(int(position)) if position is not None and math.isfinite(position) else "1"
    out["country_x_fiber"] = f"{out['country']}|{out['fiber']}"
    out["sensitivity_x_bucket"] = out["user_price_sensitivity"] * float(out["price_bucket"])
    return out


TRANSFORMS: dict[str, Callable[[Record], Record]] = {"ctr_features_v1": ctr_features_v1}


def get_transform(name: str) -> Callable[[Record], Record]:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown feature transform {name!r}; known transforms: {', '.join(sorted(TRANSFORMS))}. "
            "The model was trained with a newer yarnit: upgrade yarnit on the server."
        ) from None


def apply_transform(name: str, records: Iterable[Record]) -> list[Record]:
    transform = get_transform(name)
    return [transform(r) for r in records]


__all__ = ["TRANSFORMS", "apply_transform", "ctr_features_v1", "get_transform", "price_bucket", "query_tokens"]
