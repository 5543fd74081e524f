"""Features: one definition for training and serving, point-in-time joins, honest online reads, skew checks.

* :func:`feature_view` defines named features over DuckDB SQL or pandas/Arrow,
  versioned by their code and parameters (:mod:`.definitions`);
* :class:`OfflineStore` keeps them as Parquet and builds point-in-time-correct
  training sets with DuckDB ASOF joins (:mod:`.offline`);
* :func:`open_online_store` (SQLite or Redis) and :class:`OnlineFeatures` serve
  the newest values with status ``present``/``missing``/``stale`` and age (:mod:`.online`);
* :func:`materialize` copies offline → online in bounded memory, all or nothing (:mod:`.materialize`);
* :class:`ServingLog` and :func:`skew_report` catch training-serving skew (:mod:`.skew`);
* :func:`view_freshness` reports the age of the newest value (:mod:`.freshness`);
* :class:`FeatureStore` ties them to a workspace (:mod:`.store`);
* request-time transforms shared by training and serving (:mod:`.request_time`).
"""

from __future__ import annotations

from .request_time import TRANSFORMS, apply_transform, ctr_features_v1, get_transform, price_bucket
from .ctr_v2 import ctr_features_v2  # also registers ctr_features_v2 in TRANSFORMS  # noqa: I001
from .ctr_v3 import ctr_features_v3  # also registers ctr_features_v3 in TRANSFORMS  # noqa: I001

from .definitions import (
    FEATURE_DTYPES,
    KEY_DTYPES,
    FeatureView,
    Field,
    check_unique,
    conform,
    feature_view,
    load_definitions,
)
from .errors import (
    DuplicateFeatureView,
    EntityKeyError,
    FeatureComputeError,
    FeatureViewNotFound,
    MaterializationConflict,
    NaiveTimestamp,
    UnknownFeature,
)
from .freshness import Freshness, FreshnessCollector, view_freshness
from .materialize import MaterializationResult, materialize, write_online
from .offline import OfflineStore, OfflineWrite, backfill
from .online import (
    FeatureStatus,
    FeatureValue,
    OnlineFeatures,
    OnlineRow,
    OnlineStore,
    TableState,
    WriteSummary,
    open_online_store,
    parse_key,
    parse_refs,
    table_name,
)
from .registry import Consumer, FeatureRegistry, MaterializationRun, ViewVersion
from .skew import FeatureSkew, ServingLog, SkewReport, skew_report
from .store import FeatureStore

__all__ = [
    "FEATURE_DTYPES",
    "KEY_DTYPES",
    "TRANSFORMS",
    "ctr_features_v2",
    "ctr_features_v3",
    "Consumer",
    "DuplicateFeatureView",
    "EntityKeyError",
    "FeatureComputeError",
    "FeatureRegistry",
    "FeatureSkew",
    "FeatureStatus",
    "FeatureStore",
    "FeatureValue",
    "FeatureView",
    "FeatureViewNotFound",
    "Field",
    "Freshness",
    "FreshnessCollector",
    "MaterializationConflict",
    "MaterializationResult",
    "MaterializationRun",
    "NaiveTimestamp",
    "OfflineStore",
    "OfflineWrite",
    "OnlineFeatures",
    "OnlineRow",
    "OnlineStore",
    "ServingLog",
    "SkewReport",
    "TableState",
    "UnknownFeature",
    "ViewVersion",
    "WriteSummary",
    "apply_transform",
    "backfill",
    "check_unique",
    "conform",
    "ctr_features_v1",
    "feature_view",
    "get_transform",
    "load_definitions",
    "materialize",
    "open_online_store",
    "parse_key",
    "parse_refs",
    "price_bucket",
    "skew_report",
    "table_name",
    "view_freshness",
    "write_online",
]
