"""Request-time features: one definition used by training and by serving.

Both paths call the same function on the same kind of record (a dict of raw
attributes), so train/serve skew cannot come from duplicated logic (book
CH4-R2, CH7-R3). A model version records the name of its transform in its
signature; the serving runtime looks the name up here. Names are versioned:
changing what a transform computes means adding ``..._v2``, never editing v1.
"""

from __future__ import annotations

import math
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


def query_tokens(query: str | None) -> set[str]:
    return {t for t in (query or "").lower().replace(",", " ").split() if t}


def _query_match(tokens: set[str], value: Any) -> int:
    return int(value is not None and str(value).lower() in tokens)


# Raw attributes that pass through unchanged (categorical or numeric).
CTR_CATEGORICAL = ("country", "language", "device", "product_type", "fiber", "weight_class", "color", "brand")
CTR_NUMERIC = ("discount", "user_price_sensitivity")


def ctr_features_v1(record: Record) -> Record:
    """Features of one impression for the click model.

    ``position`` is a training feature (to absorb position bias); at serving it
    is absent and set to 1, so scores compare items as if shown first.
    """
    out: Record = {}
    for name in CTR_CATEGORICAL:
        value = record.get(name)
        out[name] = "" if value is None else str(value)
    for name in CTR_NUMERIC:
        value = record.get(name)
        out[name] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    price = record.get("price_usd")
    price_f = float(price) if isinstance(price, int | float) and not isinstance(price, bool) else None
    out["price_bucket"] = str(price_bucket(price_f))
    out["log_price_usd"] = math.log1p(price_f) if price_f is not None and price_f > 0 else 0.0
    out["is_partner"] = float(bool(record.get("is_partner")))
    out["in_stock"] = float(record.get("in_stock", True) is not False)
    hour = record.get("hour")
    out["hour_block"] = str(int(hour) // 4) if isinstance(hour, int | float) and not isinstance(hour, bool) else ""
    dow = record.get("day_of_week")
    out["day_of_week"] = str(int(dow)) if isinstance(dow, int | float) and not isinstance(dow, bool) else ""
    tokens = query_tokens(record.get("query"))
    out["has_query"] = float(bool(tokens))
    out["query_match_fiber"] = float(_query_match(tokens, record.get("fiber")))
    out["query_match_weight"] = float(_query_match(tokens, record.get("weight_class")))
    out["query_match_color"] = float(_query_match(tokens, record.get("color")))
    out["query_match_type"] = float(_query_match(tokens, record.get("product_type")))
    position = record.get("position")
    out["position"] = str(int(position)) if isinstance(position, int | float) and not isinstance(position, bool) else "1"
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
