"""The curated schema of the YarnIt impression log: what the click model's validate step checks.

Curated, not inferred: ranges are what is *valid* for the store (a price is
0.99 to 500 dollars), not what one sample showed; closed sets are the store's
countries, languages, devices and product types. The step checks each day of a
dataset against this schema and against the previous training data (volume,
per-slice volume, distribution), so an upstream change (prices in cents) or a
biased loss (one country's events gone) stops the run before training.

A run can relax thresholds it knows to be wrong for its data with
``--set validation='{"slice_max_drop": 0.8}'`` (see :data:`OVERRIDABLE`).

Example:
    >>> schema = impressions_schema()
    >>> schema.columns["price_usd"].max, schema.slices
    (500.0, ('country', 'language', 'device'))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from pydantic import ConfigDict

from yarnit.core.errors import InvalidInput
from yarnit.data.schema import DatasetSchema

IMPRESSIONS_SCHEMA = """
dataset: yarnit-impressions
description: One row per product shown to a shopper on a search or browse page, with the shopper's response.
subject: user_id
slices: [country, language, device]
# a day may carry half the rows of an average day of the previous training data (a slow Sunday, not an outage)
volume: {max_drop: 0.5}
# a country, language or device may shrink by at most 60% more than the whole day did; slices smaller than
# 150 impressions a day (about 15 sessions) are too noisy to judge
slice_volume: {max_drop: 0.6, min_rows: 150}
drift: {threshold: 0.25}
allow_extra_columns: true
columns:
  impression_id: {type: string, nullable: false, unique: true}
  event_time: {type: timestamp_utc, nullable: false}
  day: {type: date, nullable: false}
  session_id: {type: string, nullable: false}
  user_id: {type: string, nullable: false, pii: keep}
  product_id: {type: string, nullable: false}
  position: {type: int64, nullable: false, min: 1, max: 100}
  query: {type: string, nullable: false}
  country: {type: string, nullable: false, domain: [CA, DE, ES, FR, GB, MX, 'NO', SE, US]}
  language: {type: string, nullable: false, domain: [de, en, es, fr, 'no', sv]}
  device: {type: string, nullable: false, domain: [app, desktop, mobile]}
  product_name: {type: string, nullable: false}
  product_type: {type: string, nullable: false, domain: [hook, needles, notion, yarn]}
  fiber: {type: string, nullable: false}
  weight_class: {type: string, nullable: false}
  color: {type: string, nullable: false}
  brand: {type: string, nullable: false}
  is_partner: {type: bool, nullable: false}
  price_usd: {type: float64, nullable: false, min: 0.99, max: 500, drift_threshold: 0.5,
              description: 'list price in US dollars (not cents)'}
  price_local: {type: float64, nullable: false, min: 0.5, max: 10000}
  currency: {type: string, nullable: false, domain: [CAD, EUR, GBP, MXN, NOK, SEK, USD]}
  discount: {type: float64, nullable: false, min: 0, max: 0.9}
  in_stock: {type: bool, nullable: false}
  product_clicks_7d: {type: int64, nullable: false, min: 0}
  product_age_days: {type: int64, nullable: false, min: 0}
  user_price_sensitivity: {type: float64, nullable: false, min: 0, max: 10}
  hour: {type: int64, nullable: false, min: 0, max: 23}
  day_of_week: {type: int64, nullable: false, min: 0, max: 6}
  clicked: {type: int64, nullable: false, min: 0, max: 1}
"""

class ValidationOverrides(TypedDict, total=False):
    """The ``validation`` parameter of the click-model pipeline: thresholds a run may relax."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    volume_max_drop: float
    slice_max_drop: float
    slice_min_rows: int
    drift_threshold: float
    slices: list[str]


#: ``validation`` keys a run may set, and the schema field each one changes.
OVERRIDABLE = {"volume_max_drop": "volume_max_drop", "slice_max_drop": "slice_max_drop",
               "slice_min_rows": "slice_min_rows", "drift_threshold": "drift_threshold", "slices": "slices"}

#: Columns that differ from day to day by construction: their day-to-day distribution change is no anomaly.
DAILY_COLUMNS = ("day", "event_time", "day_of_week")


def impressions_schema(overrides: Mapping[str, Any] | None = None) -> DatasetSchema:
    """The curated impression schema, with a run's ``validation`` overrides applied."""
    schema = _curated()
    unknown = sorted(set(overrides or {}) - set(OVERRIDABLE))
    if unknown:
        raise InvalidInput(f"validation keys {unknown} are not known; known: {', '.join(OVERRIDABLE)}.")
    changes = {OVERRIDABLE[k]: tuple(v) if k == "slices" else v for k, v in (overrides or {}).items()}
    return replace(schema, columns=dict(schema.columns), **changes)  # its own dict: a caller may change it


@functools.lru_cache(maxsize=1)
def _curated() -> DatasetSchema:
    """The schema parsed from :data:`IMPRESSIONS_SCHEMA`, once per process: a fixed text gives a fixed schema
    (parsing it took about 20 ms, and every ctr run's validate and golden steps asked for it)."""
    return DatasetSchema.from_yaml(IMPRESSIONS_SCHEMA, path="yarnit/recipes/impressions_schema.py")


__all__ = ["DAILY_COLUMNS", "IMPRESSIONS_SCHEMA", "OVERRIDABLE", "ValidationOverrides", "impressions_schema"]
