"""The shopper history as a feature view, so a served ranker reads the same history the click model trained on.

``ctr_features_v2`` and ``v3`` need each shopper's impressions and clicks,
in total and per fiber, weight and colour (:mod:`yarnit.recipes.affinity`).
Training computes them point-in-time from the impression log. Serving cannot
recompute them per request, and must not keep them inside a model artifact
(``forget`` could not reach them), so they live in the feature store:

* :data:`shopper_history` is a feature view keyed by ``user_id`` over the
  ``impressions`` source. It has one row per shopper and per closed day on
  which the shopper was shown something: the shopper's cumulative counts
  through that day, stamped when that day's log closed (06:00 UTC the next
  day, :data:`~yarnit.recipes.affinity.LOG_CLOSE`). The per-value counts are
  small JSON maps, ``{"merino": [12, 3], ...}`` (impressions, clicks).
* An as-of read of that view at an impression's time is exactly what
  :func:`~yarnit.recipes.affinity.add_user_affinity` gives in training; a
  test checks the two agree on a world's log.
* :class:`~yarnit.features.shopper_history.ShopperHistory` turns one
  shopper's row (as serving's feature enrichment hands it over) into the
  history columns of each candidate product; ``ctr_features_v2``/``v3``
  do that themselves when a request carries the row.
* :func:`publish_history` is the nightly job: backfill the view from the
  impression log, then materialize the new rows online.

The counts are built by the same ``_daily_counts`` as training's. A shopper
not shown anything for :data:`HISTORY_TTL` is served as a new shopper: the
online store withholds values older than the view's TTL.

Example:
    >>> import datetime as dt, pandas as pd
    >>> log = pd.DataFrame({"user_id": ["u1", "u1"], "fiber": ["wool", "silk"], "weight_class": ["dk", "dk"],
    ...                     "color": ["red", "red"], "clicked": [1, 0],
    ...                     "day": [dt.date(2026, 1, 5), dt.date(2026, 1, 5)],
    ...                     "event_time": pd.to_datetime(["2026-01-05 10:00", "2026-01-05 11:00"], utc=True)})
    >>> row = history_rows(log).iloc[0]
    >>> str(row["event_time"]), int(row["history_impressions"]), row["history_fiber"]
    ('2026-01-06 06:00:00+00:00', 2, '{"silk":[1,0],"wool":[1,1]}')
    >>> ShopperHistory.of(row.to_dict()).columns({"fiber": "wool", "weight_class": "dk", "color": "red"})[
    ...     "user_clicks_fiber"]
    1.0
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from yarnit.features import feature_view
from yarnit.features.ctr_v2 import AFFINITIES
from yarnit.features.shopper_history import DEFAULTS, FEATURES, MAP_FEATURES, ShopperHistory, history_features

from .affinity import LOG_CLOSE, _daily_counts

if TYPE_CHECKING:
    from yarnit.features import FeatureStore, MaterializationResult

VIEW = "shopper_history"
HISTORY_TTL = timedelta(days=30)


def _encode(counts: Mapping[str, list[int]]) -> str:
    return json.dumps(counts, sort_keys=True, separators=(",", ":"))


def history_rows(impressions: pd.DataFrame) -> pd.DataFrame:
    """The view's rows for an impression log (``user_id``, ``day``, ``clicked`` and the attribute columns).

    One row per (shopper, day with impressions): cumulative counts through that day, stamped at the
    day's log close.
    """
    columns = ["user_id", "event_time", *FEATURES]
    if impressions.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    counts = _daily_counts(impressions)
    totals = counts[("user_id",)].sort_values(["user_id", "day"], kind="stable").reset_index(drop=True)
    grouped = totals.groupby("user_id", sort=False)
    out = pd.DataFrame({
        "user_id": totals["user_id"].astype(str),
        "event_time": pd.to_datetime(totals["day"].astype(str), utc=True) + pd.Timedelta(days=1) + LOG_CLOSE,
        "history_impressions": grouped["impressions"].cumsum().astype("int64"),
        "history_clicks": grouped["clicks"].cumsum().round().astype("int64"),
    })
    position = {(u, d): i for i, (u, d) in enumerate(zip(out["user_id"], totals["day"], strict=True))}
    for attribute, feature in MAP_FEATURES.items():
        table = counts[("user_id", attribute)].sort_values(["user_id", "day"], kind="stable")
        encoded = np.empty(len(out), dtype=object)
        rows = zip(table["user_id"], table["day"], table[attribute], table["impressions"], table["clicks"],
                   strict=True)
        for user, by_user in groupby(rows, key=lambda r: r[0]):
            running: dict[str, list[int]] = {}
            for day, by_day in groupby(by_user, key=lambda r: r[1]):
                for _u, _d, value, shown, clicked in by_day:
                    seen = running.setdefault(str(value), [0, 0])
                    seen[0] += int(shown)
                    seen[1] += int(round(clicked))
                encoded[position[(str(user), day)]] = _encode(running)
        out[feature] = encoded
    return out[columns]


@feature_view(
    entities={"user_id": "string"},
    features=FEATURES,
    ttl=HISTORY_TTL,
    sources=("impressions",),
    owner="ranking@yarnit",
)
def shopper_history(impressions: pd.DataFrame) -> pd.DataFrame:
    """Each shopper's impressions and clicks so far, in total and per fiber, weight and colour (the history
    behind ctr_features_v2/v3), stamped when the day's log closed."""
    return history_rows(impressions)


def latest_by_user(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The newest row of each shopper (what a materialization leaves online), as feature dicts."""
    newest = rows.sort_values("event_time", kind="stable").drop_duplicates("user_id", keep="last")
    return {str(r["user_id"]): {f: r[f] for f in FEATURES} for r in newest.to_dict("records")}


def publish_history(store: FeatureStore, impressions: pd.DataFrame, *,
                    end: datetime | None = None) -> MaterializationResult:
    """The nightly job: recompute :data:`shopper_history` from the impression log of every closed day into the
    offline store, then materialize the rows not yet online (up to ``end``, default the store's clock)."""
    store.backfill(shopper_history, sources={"impressions": impressions})
    return store.materialize(shopper_history, end=end)


class LoopHistory:
    """The view's online rows for an in-process closed loop: each closed day in, what serving reads out.

    It plays the nightly backfill + materialization of :data:`shopper_history` and hands the rows to
    serving's own enrichment (:class:`~yarnit.serving.OnlineFeatures`), so a ranker checked in process
    sees its history the way the data plane gives it.
    """

    def __init__(self, clock: Any) -> None:
        from yarnit.serving import FeatureSpec, OnlineFeatures, StaticFeatureSource

        self.source = StaticFeatureSource()
        self.online = OnlineFeatures(self.source, clock)
        self.specs = FeatureSpec.from_signature({"online_features": history_features()})
        self._logs: list[pd.DataFrame] = []

    def observe(self, impressions: pd.DataFrame) -> None:
        """Add one closed day's impression log."""
        self._logs.append(impressions[["user_id", "day", "clicked", *AFFINITIES]])
        rows = history_rows(pd.concat(self._logs, ignore_index=True))
        self.source.table = {("user_id", user): values for user, values in latest_by_user(rows).items()}

    def enrich(self, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``instances`` with each shopper's history features (the defaults for a shopper not seen yet)."""
        rows, _report = self.online.enrich("yarnit-ranker", self.specs, instances)
        return rows


__all__ = ["DEFAULTS", "FEATURES", "HISTORY_TTL", "MAP_FEATURES", "VIEW", "LoopHistory", "ShopperHistory",
           "history_features", "history_rows", "latest_by_user", "publish_history", "shopper_history"]
