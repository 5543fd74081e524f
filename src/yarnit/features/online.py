"""The online store: the newest value of each (view, entity), read with its event time, age and status.

A read never lies about freshness: every value comes back with the event time
it was computed for, its age by the injected clock, and a status:

* ``present``: stored and younger than the view's TTL;
* ``stale``: stored but older than the TTL — the values are withheld (``None``),
  the event time and age say how old they are;
* ``missing``: nothing stored for that entity.

Backends (chosen by URL scheme): ``sqlite:///path/online.db`` (embedded
default) and ``redis://host:6379/0`` (optionally ``?prefix=...`` for the key
namespace). Both pass one contract suite (tests/features/test_online_contract.py).

Example:
    >>> from datetime import timedelta
    >>> import pandas as pd
    >>> from yarnit.core import SimulatedClock, utc
    >>> from yarnit.features import feature_view, open_online_store, OnlineFeatures, conform
    >>> @feature_view(entities={"user_id": "string"}, features={"clicks_7d": "int64"}, ttl=timedelta(days=1))
    ... def user_clicks(): ...
    >>> clock = SimulatedClock(utc(2026, 1, 5))
    >>> store = open_online_store("sqlite:///:memory:")
    >>> rows = pd.DataFrame({"user_id": ["u1"], "event_time": [pd.Timestamp("2026-01-04T12:00Z")], "clicks_7d": [3]})
    >>> from yarnit.features.materialize import write_online
    >>> _ = write_online(user_clicks, store, [conform(user_clicks, rows)], clock=clock, full=True)
    >>> reader = OnlineFeatures(store, [user_clicks], clock)
    >>> row = reader.read_one("user_clicks", "u1")
    >>> row.status.value, row.values, row.age_s
    ('present', {'clicks_7d': 3}, 43200.0)
    >>> clock.advance(timedelta(days=1))
    >>> reader.read_one("user_clicks", "u1").status.value, reader.read_one("user_clicks", "u2").status.value
    ('stale', 'missing')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from yarnit.core.clock import Clock, now_us_of
from yarnit.core.errors import ConfigError, InvalidInput, MissingDependency

from ._codec import EncodedChunk, StorageKey, ViewCodec
from .definitions import FeatureView
from .errors import EntityKeyError, UnknownFeature

if TYPE_CHECKING:
    from .skew import ServingLog

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_US = timedelta(microseconds=1)
SCHEMES = ("sqlite", "redis", "rediss")


def to_us(when: datetime) -> int:
    """Exact microseconds since the Unix epoch of an aware datetime."""
    return (when - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class FeatureStatus(str, Enum):
    """What an online read found for one entity of one view."""

    PRESENT = "present"
    MISSING = "missing"
    STALE = "stale"


PRESENT, MISSING, STALE = FeatureStatus.PRESENT, FeatureStatus.MISSING, FeatureStatus.STALE


class FeatureValue(NamedTuple):
    """One feature value as served, with its provenance."""

    name: str
    value: Any
    status: FeatureStatus
    event_time: datetime | None
    age_s: float | None


class OnlineRow:
    """The values of one view for one entity, with their event time, age (by the clock) and status.

    All features of a view are written together, so they share one event time;
    ``values`` maps every feature name to its value, or to ``None`` when the
    status is ``missing`` or ``stale``.
    """

    __slots__ = ("view", "key", "status", "event_us", "age_us", "values")

    def __init__(self, view: str, key: Any, status: FeatureStatus, event_us: int | None, age_us: int | None,
                 values: dict[str, Any]) -> None:
        self.view = view
        self.key = key
        self.status = status
        self.event_us = event_us
        self.age_us = age_us
        self.values = values

    @property
    def event_time(self) -> datetime | None:
        return None if self.event_us is None else from_us(self.event_us)

    @property
    def age_s(self) -> float | None:
        return None if self.age_us is None else self.age_us / 1e6

    @property
    def present(self) -> bool:
        return self.status is PRESENT

    def value(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise UnknownFeature(name, self.values, where=f"feature view {self.view!r}") from None

    def features(self) -> list[FeatureValue]:
        """Each value with its status, event time and age."""
        when, age = self.event_time, self.age_s
        return [FeatureValue(n, v, self.status, when, age) for n, v in self.values.items()]

    def to_dict(self) -> dict[str, Any]:
        when = self.event_time
        stamp = None if when is None else when.isoformat()
        return {
            "view": self.view,
            "entity": self.key,
            "status": self.status.value,
            "event_time": stamp,
            "age_s": self.age_s,
            "features": {n: {"value": v, "status": self.status.value, "event_time": stamp, "age_s": self.age_s}
                         for n, v in self.values.items()},
        }

    def __repr__(self) -> str:
        return (f"OnlineRow(view={self.view!r}, key={self.key!r}, status={self.status.value!r}, "
                f"event_time={self.event_time}, age_s={self.age_s}, values={self.values!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OnlineRow):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class TableState:
    """What an online store knows about one view version's table."""

    rows: int
    newest_event_us: int | None
    watermark_us: int | None
    materialized_at_us: int | None
    generation: int
    source_seq: int | None = None


@dataclass(frozen=True)
class WriteSummary:
    """The outcome of one all-or-nothing online write."""

    rows_offered: int
    rows_written: int
    rows_total: int
    newest_event_us: int | None
    watermark_us: int


class OnlineStore(Protocol):
    """Keeps the newest packed value per (view version, entity). Default: SQLite file. Alternative: Redis.

    ``table`` names a view version (``name@version``). Writes are all-or-nothing:
    a write that fails (or is interrupted) leaves every previous value, and the
    table's state, as they were.
    """

    url: str

    def get(self, table: str, key: StorageKey) -> bytes | None: ...

    def get_many(self, table: str, keys: Sequence[StorageKey]) -> list[bytes | None]:
        """Blobs aligned with ``keys`` (``None`` where absent)."""
        ...

    def write(self, table: str, chunks: Iterable[EncodedChunk], *, full: bool, watermark_us: int,
              now_us: int, source_seq: int | None = None) -> WriteSummary:
        """Store ``chunks``: ``full`` replaces the table; otherwise upsert where the event time is not older.

        ``source_seq`` (the offline write sequence the rows reflect) is kept in the
        table's state; None keeps the previous value.
        """
        ...

    def state(self, table: str) -> TableState | None: ...

    def tables(self) -> list[str]: ...

    def drop(self, table: str) -> None: ...

    def delete(self, table: str, keys: Sequence[StorageKey]) -> int:
        """Remove these entities' rows (deletion requests); return how many existed."""
        ...

    def keys(self, table: str) -> Iterator[StorageKey]:
        """Every entity key stored in ``table`` (for deletion requests on composite keys; a full scan)."""
        ...

    def close(self) -> None: ...


def table_name(view: FeatureView) -> str:
    """The online table of a view version."""
    return f"{view.name}@{view.version}"


def open_online_store(url: str, **options: Any) -> OnlineStore:
    """The online store at ``url``: ``sqlite:///path.db`` (default) or ``redis://host:port/db``."""
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        from ._sqlite import SqliteOnlineStore

        return SqliteOnlineStore(url, **options)
    if scheme in ("redis", "rediss"):
        try:
            import redis  # noqa: F401
        except ImportError as exc:  # pragma: no cover - redis is a core dependency
            raise MissingDependency("The Redis online store needs the redis client: pip install 'redis>=5'") from exc
        from ._redis import RedisOnlineStore

        return RedisOnlineStore(url, **options)
    raise ConfigError(
        f"No online store for URL scheme {scheme!r} in {url.split('@')[-1]!r}. Supported schemes: "
        f"{', '.join(SCHEMES)} (e.g. sqlite:///.yarnit/online.db or redis://127.0.0.1:6379/0)."
    )


class _ViewReader:
    __slots__ = ("view", "codec", "table", "ttl_us", "storage_key", "decode", "nulls", "single")

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self.codec = ViewCodec(view)
        self.table = table_name(view)
        self.ttl_us = view.ttl_us
        self.storage_key = self.codec.storage_key
        self.decode = self.codec.decode
        self.nulls = dict.fromkeys(view.feature_names)
        self.single = len(view.entities) == 1


class OnlineFeatures:
    """Reads views from an online store and reports each value's status and age by ``clock``.

    Args:
        store: the online store.
        views: the view versions to serve (reads of other names are refused, listing these).
        clock: where "now" comes from (ages and TTL checks).
        log: optional :class:`~yarnit.features.skew.ServingLog` that samples served rows for skew checks.
    """

    def __init__(self, store: OnlineStore, views: Iterable[FeatureView], clock: Clock, *,
                 log: ServingLog | None = None) -> None:
        self.store = store
        self.clock = clock
        self._clock_us = now_us_of(clock)
        self._get = store.get
        self.log = log
        self._readers: dict[str, _ViewReader] = {v.name: _ViewReader(v) for v in views}

    @property
    def views(self) -> list[FeatureView]:
        return [r.view for r in self._readers.values()]

    def _reader(self, view: str) -> _ViewReader:
        try:
            return self._readers[view]
        except KeyError:
            raise UnknownFeature(view, self._readers, kind="feature view") from None

    def _now_us(self) -> int:
        return self._clock_us()

    def warm(self) -> int:
        """Pre-read every served view's table where the store supports it (SQLite: maps its pages).

        Call it once when a serving process starts, so that its first requests do
        not pay the page faults a long-running process has already paid. Returns
        the bytes read (0 for stores that keep everything in memory, like Redis).
        """
        warm = getattr(self.store, "warm", None)
        if warm is None:
            return 0
        return sum(int(warm(r.table)) for r in self._readers.values())

    def read_one(self, view: str, key: Any) -> OnlineRow:
        """One entity's values of ``view``."""
        r = self._readers.get(view) or self._reader(view)
        skey = r.storage_key(key)
        blob = self._get(r.table, skey)
        now_us = self._clock_us()
        if r.single:  # the hot path, inlined: one decode, one dict, one row
            if blob is None:
                row = OnlineRow(r.view.name, skey, MISSING, None, None, r.nulls.copy())
            else:
                event_us, values = r.decode(blob)
                age_us = now_us - event_us
                ttl = r.ttl_us
                if ttl is not None and age_us > ttl:
                    row = OnlineRow(r.view.name, skey, STALE, event_us, age_us, r.nulls.copy())
                else:
                    row = OnlineRow(r.view.name, skey, PRESENT, event_us, age_us, values)
        else:
            row = self._row(r, skey, blob, now_us)
        if self.log is not None:
            self.log.record(r.view, [row], now_us)
        return row

    def read(self, view: str, keys: Sequence[Any]) -> list[OnlineRow]:
        """Values of ``view`` for each key, in the order given (one backend round trip)."""
        r = self._readers.get(view) or self._reader(view)
        if hasattr(keys, "tolist") and not isinstance(keys, (list, tuple)):
            keys = keys.tolist()  # numpy arrays and pandas Series
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise InvalidInput(
                f"keys must be a list of entity keys for view {view!r}, got {type(keys).__name__}; "
                "for a single entity use read_one()."
            )
        encode = r.storage_key
        skeys = [encode(k) for k in keys]
        blobs = self.store.get_many(r.table, skeys)
        now_us = self._clock_us()
        if r.single:
            # The hot loop of batch reads, inlined (one decode, which builds the values dict, per row).
            name, decode, ttl, nulls = r.view.name, r.decode, r.ttl_us, r.nulls
            rows = []
            append = rows.append
            for k, b in zip(skeys, blobs, strict=True):
                if b is None:
                    append(OnlineRow(name, k, MISSING, None, None, nulls.copy()))
                    continue
                event_us, values = decode(b)
                age_us = now_us - event_us
                if ttl is not None and age_us > ttl:
                    append(OnlineRow(name, k, STALE, event_us, age_us, nulls.copy()))
                else:
                    append(OnlineRow(name, k, PRESENT, event_us, age_us, values))
        else:
            row = self._row
            rows = [row(r, k, b, now_us) for k, b in zip(skeys, blobs, strict=True)]
        if self.log is not None:
            self.log.record(r.view, rows, now_us)
        return rows

    @staticmethod
    def _row(r: _ViewReader, key: StorageKey, blob: bytes | None, now_us: int) -> OnlineRow:
        if not r.single:
            key = r.codec.key_values(key)  # type: ignore[assignment]
        if blob is None:
            return OnlineRow(r.view.name, key, MISSING, None, None, r.nulls.copy())
        event_us, values = r.decode(blob)
        age_us = now_us - event_us
        if r.ttl_us is not None and age_us > r.ttl_us:
            return OnlineRow(r.view.name, key, STALE, event_us, age_us, r.nulls.copy())
        return OnlineRow(r.view.name, key, PRESENT, event_us, age_us, values)

    def get(self, features: Sequence[str], entities: Sequence[Mapping[str, Any]]) -> list[dict[str, FeatureValue]]:
        """Feature values by reference (``view:feature`` or ``view`` for all) for each entity row.

        Each entity row is a mapping holding the key columns of every view
        referenced. Returns, per entity, ``{"view:feature": FeatureValue}``.
        """
        wanted = parse_refs(features, {v.name: v for v in self.views})
        results: list[dict[str, FeatureValue]] = [{} for _ in entities]
        for view_name, names in wanted.items():
            r = self._readers[view_name]
            for entity in entities:
                if not isinstance(entity, Mapping):
                    raise InvalidInput(
                        f"Each entity row must be a mapping of key column to value (e.g. "
                        f"{dict.fromkeys(r.view.entity_names, '...')}), got {entity!r}."
                    )
            rows = self.read(view_name, [{n: e.get(n) for n in r.view.entity_names if n in e} for e in entities])
            for out, row in zip(results, rows, strict=True):
                when, age = row.event_time, row.age_s
                for n in names:
                    out[f"{view_name}:{n}"] = FeatureValue(n, row.values[n], row.status, when, age)
        return results


def parse_key(view: FeatureView, raw: str) -> Any:
    """An entity key of ``view`` from text: the value itself, or a JSON list for a composite key."""
    if len(view.entities) == 1:
        (field,) = view.entities
        if field.dtype == "string":
            return raw
        try:
            return int(raw)
        except ValueError:
            raise EntityKeyError(
                f"Entity key {raw!r} for feature view {view.name!r} is not an integer; the view is keyed by "
                f"{field.name}: int64."
            ) from None
    try:
        parts = json.loads(raw)
    except json.JSONDecodeError:
        parts = None
    if not isinstance(parts, list):
        example = json.dumps(["..." if f.dtype == "string" else 0 for f in view.entities])
        raise EntityKeyError(
            f"Feature view {view.name!r} has a composite key {list(view.entity_names)}; pass each key as a JSON "
            f"list such as '{example}'. Got {raw!r}."
        )
    return tuple(parts)


def parse_refs(refs: Sequence[str], views: Mapping[str, FeatureView]) -> dict[str, list[str]]:
    """``["view:feature", "view"]`` → ``{view: [features]}``; unknown names list the valid choices."""
    if isinstance(refs, str) or not refs:
        raise InvalidInput(
            f"features must be a non-empty list of 'view:feature' (or 'view' for all its features), got {refs!r}."
        )
    out: dict[str, list[str]] = {}
    for ref in refs:
        if not isinstance(ref, str):
            raise InvalidInput(f"Feature reference {ref!r} must be a string like 'view:feature'.")
        view_name, _, feature = ref.partition(":")
        view = views.get(view_name)
        if view is None:
            raise UnknownFeature(view_name, views, kind="feature view", where=f"reference {ref!r}")
        names = out.setdefault(view_name, [])
        if feature:
            view.feature(feature)
            if feature not in names:
                names.append(feature)
        else:
            names.extend(n for n in view.feature_names if n not in names)
    return out


__all__ = [
    "FeatureStatus",
    "FeatureValue",
    "OnlineFeatures",
    "OnlineRow",
    "OnlineStore",
    "TableState",
    "WriteSummary",
    "from_us",
    "open_online_store",
    "parse_key",
    "parse_refs",
    "table_name",
    "to_us",
]
