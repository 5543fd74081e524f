"""The seam between serving and the online feature store, with a per-feature missing/stale policy.

A model version may declare the online features it needs in its signature::

    "online_features": [
        {"name": "user_ctr_7d", "entity": "user_id", "default": 0.0, "max_age_s": 86400},
        {"name": "item_views_1d", "entity": "product_id", "default": 0}
    ]

At request time the runtime asks a :class:`FeatureSource` for the values of
each entity key found in the instances. A value that is missing, older than
``max_age_s`` (by the injected clock), or lost because the store failed,
is replaced by the feature's ``default``; each replacement is counted per
model, feature and reason and exported. A feature problem never becomes a 500.

Any online store (the feature store's SQLite or Redis store) plugs in by
implementing the one-method :class:`FeatureSource` protocol.

Example:
    >>> from yarnit.core import SimulatedClock, utc
    >>> clock = SimulatedClock(utc(2026, 1, 5))
    >>> source = StaticFeatureSource({("user_id", "u1"): {"user_ctr_7d": 0.12}})
    >>> online = OnlineFeatures(source, clock)
    >>> specs = [FeatureSpec("user_ctr_7d", entity="user_id", default=0.05)]
    >>> rows, report = online.enrich("ctr", specs, [{"user_id": "u1"}, {"user_id": "u2"}])
    >>> [r["user_ctr_7d"] for r in rows], report.defaults
    ([0.12, 0.05], {('user_ctr_7d', 'missing'): 1})
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from yarnit.core.clock import Clock
from yarnit.core.errors import InvalidInput

log = logging.getLogger("yarnit.serving.features")


class FeatureStatus(str, Enum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    ERROR = "error"


@dataclass(frozen=True)
class FeatureValue:
    """One feature value as the store returned it (``event_time`` lets serving judge staleness)."""

    value: Any
    status: FeatureStatus = FeatureStatus.OK
    event_time: datetime | None = None


@runtime_checkable
class FeatureSource(Protocol):
    """An online store, seen from serving: values of ``features`` for each key of one entity.

    Returns one mapping per key, in the order of ``keys``; a feature absent from
    a mapping counts as missing. May raise: serving treats that as every value
    missing (reason ``error``).
    """

    def get(self, entity: str, keys: Sequence[str], features: Sequence[str]) -> list[Mapping[str, FeatureValue]]: ...


@dataclass(frozen=True)
class FeatureSpec:
    """One online feature of a model version and what to do when it is missing or stale."""

    name: str
    entity: str
    default: Any = 0.0
    max_age_s: float | None = None

    @classmethod
    def from_signature(cls, signature: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
        specs = []
        for item in signature.get("online_features", []) or []:
            if not isinstance(item, Mapping) or not item.get("name") or not item.get("entity"):
                raise InvalidInput(
                    f"online_features entry {item!r} needs at least 'name' and 'entity', e.g. "
                    "{'name': 'user_ctr_7d', 'entity': 'user_id', 'default': 0.0, 'max_age_s': 86400}."
                )
            max_age = item.get("max_age_s")
            specs.append(cls(str(item["name"]), str(item["entity"]), item.get("default", 0.0),
                             float(max_age) if max_age is not None else None))
        return tuple(specs)


@dataclass
class EnrichReport:
    """What enrichment did for one request: defaults used, by (feature, reason)."""

    defaults: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, feature: str, reason: str) -> None:
        self.defaults[(feature, reason)] = self.defaults.get((feature, reason), 0) + 1


class StaticFeatureSource:
    """An in-memory :class:`FeatureSource` (tests, demos): ``{(entity, key): {feature: value}}``."""

    def __init__(self, table: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
                 event_time: datetime | None = None) -> None:
        self.table = {k: dict(v) for k, v in (table or {}).items()}
        self.event_time = event_time
        self.calls = 0

    def get(self, entity: str, keys: Sequence[str], features: Sequence[str]) -> list[Mapping[str, FeatureValue]]:
        self.calls += 1
        out: list[Mapping[str, FeatureValue]] = []
        for key in keys:
            row = self.table.get((entity, key), {})
            out.append({f: FeatureValue(row[f], FeatureStatus.OK, self.event_time) for f in features if f in row})
        return out


class OnlineFeatures:
    """Fetches declared online features and applies each feature's missing/stale policy."""

    def __init__(self, source: FeatureSource | None, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self.defaults_total: dict[tuple[str, str, str], int] = {}

    def enrich(self, model: str, specs: Sequence[FeatureSpec],
               instances: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], EnrichReport]:
        """Instances with the online features set (store value, or the default and a count)."""
        report = EnrichReport()
        if not specs:
            return instances, report
        rows = [dict(i) for i in instances]
        by_entity: dict[str, list[FeatureSpec]] = {}
        for spec in specs:
            by_entity.setdefault(spec.entity, []).append(spec)
        now = self.clock.now()
        for entity, group in by_entity.items():
            keys = [None if r.get(entity) is None else str(r.get(entity)) for r in rows]
            wanted = [k for k in dict.fromkeys(keys) if k is not None]
            fetched: dict[str, Mapping[str, FeatureValue]] = {}
            failed = False
            if self.source is not None and wanted:
                try:
                    values = self.source.get(entity, wanted, [s.name for s in group])
                    fetched = dict(zip(wanted, values, strict=True))
                except Exception as exc:  # the store failing must not fail the request
                    log.warning("online feature source failed for entity %r: %s", entity, exc)
                    failed = True
            for row, key in zip(rows, keys, strict=True):
                got = fetched.get(key, {}) if key is not None else {}
                for spec in group:
                    value = got.get(spec.name)
                    reason = self._problem(spec, value, failed, now)
                    if reason is None:
                        row[spec.name] = value.value  # type: ignore[union-attr]
                    else:
                        row[spec.name] = spec.default
                        report.count(spec.name, reason)
                        label = (model, spec.name, reason)
                        self.defaults_total[label] = self.defaults_total.get(label, 0) + 1
        return rows, report

    @staticmethod
    def _problem(spec: FeatureSpec, value: FeatureValue | None, failed: bool, now: datetime) -> str | None:
        if failed:
            return FeatureStatus.ERROR.value
        if value is None or value.status is FeatureStatus.MISSING or value.value is None:
            return FeatureStatus.MISSING.value
        if value.status is not FeatureStatus.OK:
            return value.status.value
        if spec.max_age_s is not None and value.event_time is not None:
            if (now - value.event_time).total_seconds() > spec.max_age_s:
                return FeatureStatus.STALE.value
        return None


__all__ = [
    "EnrichReport",
    "FeatureSource",
    "FeatureSpec",
    "FeatureStatus",
    "FeatureValue",
    "OnlineFeatures",
    "StaticFeatureSource",
]
