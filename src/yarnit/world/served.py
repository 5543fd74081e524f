"""Features as YarnIt serves them to the ranker and writes them to the logs.

One code path computes a feature for the ranker's candidates, for the
impression log and for the catalog snapshot, so that what a model is trained
on is exactly what it was served (no train/serve skew inside the world). The
faults that corrupt features (partner lookups, stale pipelines, upstream
changes) hook in here, through :meth:`FaultKind.serve`.

Shoppers, by contrast, see the true product: the ground truth reads the
catalog directly, never these values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import frames
from . import vocab as v
from .sessions import US_PER_HOUR

if TYPE_CHECKING:
    from .simulation import DayContext

#: Columns describing the request: the shopper, the query and the context.
REQUEST_COLUMNS = (
    "session_id", "user_id", "event_time", "day", "query", "country", "language", "device", "currency",
    "user_price_sensitivity", "user_is_new", "hour", "day_of_week",
)  # fmt: skip
#: Columns describing a candidate product, as served.
PRODUCT_COLUMNS = (
    "product_id", "product_name", "product_type", "fiber", "weight_class", "color", "brand", "is_partner",
    "price_usd", "price_local", "discount", "in_stock", "product_clicks_7d", "product_age_days",
)  # fmt: skip
#: What a ranker sees for each candidate: request + product columns.
CANDIDATE_COLUMNS = REQUEST_COLUMNS + PRODUCT_COLUMNS
#: The impression log: one row per impression, directly usable to train a click model.
IMPRESSION_COLUMNS = (
    "impression_id", "event_time", "day", "session_id", "user_id", "product_id", "position", "query",
    "country", "language", "device", "product_name", "product_type", "fiber", "weight_class", "color", "brand",
    "is_partner", "price_usd", "price_local", "currency", "discount", "in_stock", "product_clicks_7d",
    "product_age_days", "user_price_sensitivity", "user_is_new", "hour", "day_of_week", "model_version",
    "score", "propensity", "clicked", "added_to_cart", "purchased",
)  # fmt: skip
CATALOG_COLUMNS = (
    "product_id", "day", "product_name", "product_type", "fiber", "weight_class", "color", "brand", "is_partner",
    "price_usd", "discount", "stock", "in_stock", "product_clicks_7d", "listed_date", "product_age_days",
)  # fmt: skip

CATEGORIES: dict[str, tuple[str, ...]] = {
    "product_type": v.PRODUCT_TYPES,
    "fiber": v.FIBERS,
    "weight_class": v.WEIGHT_CLASSES,
    "color": v.COLORS,
    "brand": v.BRANDS,
    "currency": v.CURRENCIES,
    "country": v.COUNTRY_CODES,
    "language": v.LANGUAGES,
    "device": v.DEVICES,
}
_QUERY_VOCAB = np.array([*v.QUERY_TEXTS, ""], dtype=object)
_FLOAT = frozenset({"price_usd", "price_local", "discount", "user_price_sensitivity"})
_BOOL = frozenset({"is_partner", "in_stock", "user_is_new"})


class ServedRows:
    """Served feature values for a set of (session, product) rows; each column computed once, on demand.

    Product-only rows (the catalog snapshot) pass no session arrays.
    """

    def __init__(self, ctx: DayContext, *, product: np.ndarray, t_us: np.ndarray, seq: np.ndarray | None = None,
                 user: np.ndarray | None = None, device: np.ndarray | None = None,
                 qid: np.ndarray | None = None) -> None:
        self.ctx = ctx
        self.product = product
        self.t_us = t_us
        self.seq = seq if seq is not None else np.zeros(len(product), dtype=np.int64)
        self.user = user
        self.device = device
        self.qid = qid
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.product)

    def values(self, name: str) -> np.ndarray:
        """The column as numbers or integer codes (-1 = null), after the active faults."""
        if name not in self._cache:
            values = self._base(name)
            for inj in self.ctx.injections:
                if name in inj.kind.served_columns and inj.overlaps_day:
                    values = inj.kind.serve(inj, self.ctx, name, values, self)
            self._cache[name] = values
        return self._cache[name]

    def series(self, name: str) -> pd.Series:
        """The column as pandas would log it (strings decoded, timestamps tz-aware)."""
        values = self.values(name)
        del self._cache[name]  # the decoded column replaces the raw one: keep memory to one copy
        catalog = self.ctx.catalog
        if name in CATEGORIES:
            return frames.strings(values, CATEGORIES[name])
        if name == "product_id":
            return frames.strings(values, catalog.ids)
        if name == "product_name":
            return frames.strings(values, catalog.names)
        if name == "query":
            return frames.strings(np.where(values < 0, len(_QUERY_VOCAB) - 1, values), _QUERY_VOCAB)
        if name == "session_id":
            return frames.numbered(f"s{self.ctx.date:%Y%m%d}-", values, 8)
        if name == "user_id":
            return frames.numbered("u", values, 7)
        if name == "event_time":
            return frames.timestamps(values)
        if name == "day":
            return pd.Series(frames.dates(len(values), self.ctx.date))
        if name == "listed_date":
            start = np.datetime64(self.ctx.date) - np.timedelta64(self.ctx.index, "D")
            return pd.Series((start + values.astype("timedelta64[D]")).astype(object))
        return pd.Series(values)

    def frame(self, names: tuple[str, ...], renames: dict[str, str] | None = None) -> pd.DataFrame:
        out = frames.frame({name: self.series(name) for name in names})
        return out.rename(columns=renames) if renames else out

    def _base(self, name: str) -> np.ndarray:
        ctx, catalog, p = self.ctx, self.ctx.catalog, self.product
        product_columns = {
            "product_id": lambda: p,
            "product_name": lambda: p,
            "product_type": lambda: catalog.ptype[p].astype(np.int64),
            "fiber": lambda: catalog.fiber[p].astype(np.int64),
            "weight_class": lambda: catalog.weight[p].astype(np.int64),
            "color": lambda: catalog.color[p].astype(np.int64),
            "brand": lambda: catalog.brand[p].astype(np.int64),
            "is_partner": lambda: catalog.is_partner[p],
            "price_usd": lambda: catalog.price_usd[p],
            "discount": lambda: catalog.discount[p],
            "in_stock": lambda: ctx.in_stock(p, self.t_us),
            "stock": lambda: catalog.stock[p],
            "product_clicks_7d": lambda: ctx.popularity[p],
            "product_age_days": lambda: (ctx.index - catalog.listed_day[p]).astype(np.int64),
            "listed_date": lambda: catalog.listed_day[p],
            "event_time": lambda: self.t_us,
            "day": lambda: self.t_us,
        }
        if name in product_columns:
            return product_columns[name]()
        if self.user is None or self.device is None or self.qid is None:
            raise KeyError(f"{name!r} needs session rows; these rows describe products only")
        user, shoppers = self.user, ctx.shoppers
        currency = v.COUNTRY_CURRENCY[shoppers.country[user]]
        session_columns = {
            "session_id": lambda: self.seq,
            "user_id": lambda: user,
            "query": lambda: self.qid,
            "country": lambda: shoppers.country[user].astype(np.int64),
            "language": lambda: shoppers.language[user].astype(np.int64),
            "device": lambda: self.device.astype(np.int64),
            "currency": lambda: currency.astype(np.int64),
            "price_local": lambda: np.round(catalog.price_usd[p] * ctx.env.fx_per_usd[currency], 2),
            "user_price_sensitivity": lambda: shoppers.price_sensitivity[user],
            "user_is_new": lambda: shoppers.created_day[user] == ctx.index,
            "hour": lambda: (self.t_us // US_PER_HOUR) % 24,
            "day_of_week": lambda: np.full(len(p), ctx.date.weekday(), dtype=np.int64),
        }
        if name in session_columns:
            return session_columns[name]()
        raise KeyError(f"unknown served column {name!r}; known: {', '.join(CANDIDATE_COLUMNS)}")


__all__ = [
    "CANDIDATE_COLUMNS",
    "CATALOG_COLUMNS",
    "CATEGORIES",
    "IMPRESSION_COLUMNS",
    "PRODUCT_COLUMNS",
    "REQUEST_COLUMNS",
    "ServedRows",
]
