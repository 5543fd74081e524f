"""Views and rows shared by the feature store tests (import as ``features.support``)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from yarnit.features import feature_view

@feature_view(
    entities={"user_id": "string"},
    features={"clicks_7d": "int64", "ctr_7d": "float64", "country": "string", "is_new": "bool"},
    ttl=timedelta(hours=24),
    sources=("activity",),
    owner="ranking@yarnit",
)
def user_activity(activity: pd.DataFrame) -> pd.DataFrame:
    """Clicks and click-through rate of each shopper over the last 7 days."""
    return activity


@feature_view(
    entities={"product_id": "int64"},
    features={f"f{i}": "float64" for i in range(10)},
    ttl=timedelta(days=2),
    sources=("stats",),
)
def product_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """Ten numeric product features."""
    return stats


@feature_view(
    entities={"country": "string", "product_id": "int64"},
    features={"views": "int64"},
    ttl=None,
    sources=("views",),
)
def country_product(views: pd.DataFrame) -> pd.DataFrame:
    """Views of a product per country (composite key, never stale)."""
    return views



def user_rows(*rows: tuple[str, str, int | None, float | None, str | None, bool | None]) -> pd.DataFrame:
    """Rows of user_activity: (user_id, event_time, clicks_7d, ctr_7d, country, is_new)."""
    frame = pd.DataFrame(rows, columns=["user_id", "event_time", "clicks_7d", "ctr_7d", "country", "is_new"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["clicks_7d"] = frame["clicks_7d"].astype("Int64")
    frame["ctr_7d"] = frame["ctr_7d"].astype("Float64")
    frame["is_new"] = frame["is_new"].astype("boolean")
    frame["country"] = frame["country"].astype("string")
    return frame
