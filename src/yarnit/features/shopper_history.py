"""A shopper's history as serving receives it: the ``shopper_history`` view's row, decoded per candidate.

The view (defined in :mod:`yarnit.recipes.history`) keeps, per shopper, the
impressions and clicks so far in total and per fiber, weight and colour; the
per-value counts are small JSON maps ``{"merino": [12, 3], ...}`` (impressions,
clicks). ``ctr_features_v2`` and ``v3`` need, for each candidate product, the
counts on *that product's* values (the columns training computes with
``yarnit.recipes.affinity.add_user_affinity``). :class:`ShopperHistory` turns
the row into those columns, and :func:`with_history` lets the per-request
transforms accept either form, so a request enriched with the view's row by
the data plane is scored exactly as training scored its impressions.

Example:
    >>> row = {"history_impressions": 4, "history_clicks": 2, "history_fiber": '{"wool": [3, 2]}'}
    >>> cols = ShopperHistory.of(row).columns({"fiber": "wool", "color": "red"})
    >>> cols["user_impressions_fiber"], cols["user_affinity_fiber"], cols["user_clicks_color"]
    (3.0, 1.0, 0.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

#: The product attributes a shopper's history is counted on.
AFFINITIES = ("fiber", "weight_class", "color")
#: The view's per-value map feature of each attribute.
MAP_FEATURES = {attribute: f"history_{attribute}" for attribute in AFFINITIES}
#: The view's features and their types.
FEATURES: dict[str, str] = {"history_impressions": "int64", "history_clicks": "int64",
                            **dict.fromkeys(MAP_FEATURES.values(), "string")}
#: What serving uses when a shopper has no (fresh) row: a new shopper.
DEFAULTS: dict[str, Any] = {"history_impressions": 0, "history_clicks": 0, **dict.fromkeys(MAP_FEATURES.values(), "")}


def _count(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0.0 and math.isfinite(number) else 0.0


class ShopperHistory:
    """One shopper's history: the counts each candidate product's history columns come from."""

    __slots__ = ("clicks", "impressions", "maps")

    def __init__(self, impressions: float, clicks: float, maps: Mapping[str, Mapping[str, Any]]) -> None:
        self.impressions = impressions
        self.clicks = clicks
        self.maps = maps

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ShopperHistory:
        """From the view's features (absent or empty: a new shopper).

        A map that is not valid JSON counts as empty, so a damaged value degrades the features instead of
        failing the request.
        """
        maps = {}
        for attribute, feature in MAP_FEATURES.items():
            raw = values.get(feature)
            parsed: Any = {}
            if isinstance(raw, str) and raw:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = {}
            maps[attribute] = parsed if isinstance(parsed, dict) else {}
        return cls(_count(values.get("history_impressions")), _count(values.get("history_clicks")), maps)

    def columns(self, product: Mapping[str, Any]) -> dict[str, float]:
        """The history columns training computes (``user_history_*``, ``user_{impressions,clicks,affinity}_*``)."""
        out = {"user_history_impressions": self.impressions, "user_history_clicks": self.clicks}
        for attribute in AFFINITIES:
            found = self.maps[attribute].get(str(product.get(attribute)))
            shown, clicked = (_count(found[0]), _count(found[1])) if isinstance(found, list) and len(found) == 2 \
                else (0.0, 0.0)
            out[f"user_impressions_{attribute}"] = shown
            out[f"user_clicks_{attribute}"] = clicked
            out[f"user_affinity_{attribute}"] = clicked / self.clicks if self.clicks > 0 else 0.0
        return out


def with_history(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` plus its history columns when it carries the view's row instead of them."""
    if "history_impressions" not in record or "user_history_impressions" in record:
        return record
    return {**record, **ShopperHistory.of(record).columns(record)}


def history_features() -> list[dict[str, Any]]:
    """The ``online_features`` a model version declares to be served the view (defaults: a new shopper)."""
    return [{"name": name, "entity": "user_id", "default": DEFAULTS[name]} for name in FEATURES]


__all__ = ["AFFINITIES", "DEFAULTS", "FEATURES", "MAP_FEATURES", "ShopperHistory", "history_features", "with_history"]
