"""Point-in-time joins in memory and in DuckDB (views over the memory budget) agree with a brute-force oracle."""

from __future__ import annotations

import bisect
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from yarnit.core import InvalidInput
from yarnit.features import FeatureView, OfflineStore, feature_view

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00Z
HOUR_US = 3_600_000_000
FEATURES = {"n": "int64", "x": "float64", "s": "string", "b": "bool"}
TS = pa.timestamp("us", tz="UTC")


@feature_view(entities={"country": "string", "product_id": "int64"}, features=FEATURES, ttl=timedelta(hours=6))
def by_country_product() -> None: ...


@feature_view(entities={"product_id": "int64"}, features=FEATURES, ttl=timedelta(hours=6))
def by_product() -> None: ...


@feature_view(entities={"user": "string"}, features=FEATURES, ttl=None)
def by_user() -> None: ...


def _store(tmp_path: Path, path: str) -> OfflineStore:
    # A zero budget leaves every join to DuckDB; the default budget holds these small views in memory.
    return OfflineStore(tmp_path / "offline", in_memory_join_limit="0B" if path == "duckdb" else None)


def _keys(kind: str, rng: np.random.Generator, n: int, pool: int) -> dict[str, list[Any]]:
    """Entity keys of ``kind`` drawn from ``pool`` entities (the first is drawn far more often)."""
    picks = np.where(rng.random(n) < 0.3, 0, rng.integers(0, pool, n))
    if kind == "composite":
        return {"country": [["ES", "DE", "FR"][int(p) % 3] for p in picks], "product_id": [int(p) // 3 for p in picks]}
    if kind == "dense_int":  # negative and positive ids close together: coded by offset
        return {"product_id": [int(p) - pool // 2 for p in picks]}
    if kind == "sparse_int":  # ids far apart, up to the int64 limit: coded by hashing
        return {"product_id": [(2**62 if p % 2 else -(2**62)) + int(p) * 10**12 for p in picks]}
    return {"user": [f"u{int(p)}" for p in picks]}


VIEWS = {"composite": by_country_product, "dense_int": by_product, "sparse_int": by_product, "string": by_user}


def _feature_rows(kind: str, rng: np.random.Generator, n: int) -> pa.Table:
    keys = _keys(kind, rng, n, 40)
    times = T0_US + rng.integers(0, 48, n) * HOUR_US + rng.integers(0, 3, n)  # many near-ties
    return pa.table({
        **keys,
        "event_time": pa.array(times, pa.int64()).cast(TS),
        "n": pa.array(rng.integers(0, 100, n), mask=rng.random(n) < 0.1),
        "x": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.1),
        "s": pa.array([f"s{i}" for i in range(n)], mask=rng.random(n) < 0.1),
        "b": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1),
    })


def _oracle(view: FeatureView, rows: pa.Table, entities: pa.Table) -> list[dict[str, Any] | None]:
    """For each entity row, by brute force: the newest row at or before its time within the TTL, else None."""
    history: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = {}
    for row in rows.to_pylist():
        key = tuple(row[k] for k in view.entity_names)
        history.setdefault(key, []).append((_us(row["event_time"]), {f: row[f] for f in FEATURES}))
    for runs in history.values():
        runs.sort(key=lambda r: r[0])
    out: list[dict[str, Any] | None] = []
    for row in entities.to_pylist():
        runs = history.get(tuple(row[k] for k in view.entity_names), [])
        at = _us(row["event_time"])
        i = bisect.bisect_right([t for t, _ in runs], at)
        if i == 0 or (view.ttl_us is not None and at - runs[i - 1][0] > view.ttl_us):
            out.append(None)
        else:
            out.append(runs[i - 1][1])
    return out


def _us(when: Any) -> int:
    return int(pa.scalar(when, TS).cast(pa.int64()).as_py())


@pytest.mark.parametrize("path", ["memory", "duckdb"])
@pytest.mark.parametrize("kind", list(VIEWS))
def test_both_join_paths_match_a_brute_force_oracle_for_every_key_kind(tmp_path: Path, path: str, kind: str) -> None:
    rng = np.random.default_rng(11)
    view = VIEWS[kind]
    rows = _feature_rows(kind, rng, 3000)
    store = _store(tmp_path, path)
    store.write(view, rows)
    n = 2500
    keys = _keys(kind, rng, n, 46)  # entities 40-45 have no feature rows
    at = T0_US + rng.integers(-2, 52, n) * HOUR_US + rng.integers(0, 3, n)
    # Some rows exactly at a feature row's time and one microsecond before it.
    sample = rng.choice(rows.num_rows, 300, replace=False)
    stamps = rows.column("event_time").cast(pa.int64()).to_numpy()[sample]
    at[:300], at[300:600] = stamps, stamps - 1
    for name in view.entity_names:
        keys[name][:300] = keys[name][300:600] = rows.column(name).take(pa.array(sample)).to_pylist()
    # Entity rows whose key is null (or, for a composite key, half null) match nothing.
    keys[view.entity_names[-1]][600:620] = [None] * 20
    if kind == "dense_int":
        keys["product_id"][620:622] = [2**63 - 1, -(2**63)]  # far outside the range of stored ids
    entities = pa.table({**keys, "event_time": pa.array(at, pa.int64()).cast(TS), "label": np.arange(n)})

    got = store.point_in_time_join(entities, [(view, list(FEATURES))])

    assert (tmp_path / "offline" / ".duckdb").exists() is (path == "duckdb")  # the path under test ran
    assert got.column_names == [*entities.column_names, *FEATURES]
    assert got.column("label").to_pylist() == list(range(n))  # every entity row, in the order given
    assert [got.schema.field(f).type for f in FEATURES] == [pa.int64(), pa.float64(), pa.string(), pa.bool_()]
    expected = _oracle(view, rows, entities)
    actual = got.select(list(FEATURES)).to_pylist()
    assert [a for a, e in zip(actual, expected, strict=True) if a != (e or dict.fromkeys(FEATURES))] == []
    assert sum(e is None for e in expected) > 100 and sum(e is not None for e in expected) > 1000
    assert any(e is not None and e["x"] is None for e in expected)  # stored nulls stay null when matched


def test_a_time_span_too_wide_to_pack_with_the_entity_still_joins_correctly(tmp_path: Path) -> None:
    # 2,000 entities over two centuries: (entity, microsecond) no longer fits one int64, so the
    # in-memory join sorts by the two columns instead.
    rng = np.random.default_rng(3)
    n, century_us, day_us = 6000, 100 * 365 * 86_400_000_000, 86_400_000_000
    days = np.linspace(-century_us, century_us, 12).astype(np.int64) // day_us * day_us  # 12 day files

    def when(k: int) -> pa.Array:
        return pa.array(T0_US + rng.choice(days, k) + rng.integers(0, day_us, k), pa.int64()).cast(TS)

    rows = pa.table({
        "user": [f"u{i % 2000}" for i in range(n)],
        "event_time": when(n),
        "n": rng.integers(0, 100, n), "x": rng.normal(size=n), "s": [f"s{i}" for i in range(n)],
        "b": rng.random(n) < 0.5,
    })
    assert 2000 * 2 * century_us >= 2**62
    store = OfflineStore(tmp_path / "offline")
    store.write(by_user, rows)
    entities = pa.table({"user": [f"u{i}" for i in rng.integers(0, 2100, 3000)],
                         "event_time": when(3000)})
    got = store.point_in_time_join(entities, [(by_user, list(FEATURES))])
    expected = _oracle(by_user, rows, entities)
    actual = got.select(list(FEATURES)).to_pylist()
    assert not (tmp_path / "offline" / ".duckdb").exists()
    assert [a for a, e in zip(actual, expected, strict=True) if a != (e or dict.fromkeys(FEATURES))] == []
    assert sum(e is None for e in expected) > 100 and sum(e is not None for e in expected) > 1000


@pytest.mark.parametrize("path", ["memory", "duckdb"])
@pytest.mark.parametrize("kind", ["string", "dense_int"])
def test_no_entity_rows_give_an_empty_table_with_the_feature_types(tmp_path: Path, path: str, kind: str) -> None:
    store = _store(tmp_path, path)
    view = VIEWS[kind]
    store.write(view, _feature_rows(kind, np.random.default_rng(1), 50))
    key_type = pa.string() if kind == "string" else pa.int64()
    entities = pa.table({view.entity_names[0]: pa.array([], key_type), "event_time": pa.array([], TS)})
    got = store.point_in_time_join(entities, [(view, ["x", "s"])])
    assert got.num_rows == 0
    assert (got.schema.field("x").type, got.schema.field("s").type) == (pa.float64(), pa.string())


def test_a_memory_budget_that_is_not_a_size_is_refused_naming_the_option(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "offline", in_memory_join_limit="lots")
    store.write(by_user, _feature_rows("string", np.random.default_rng(1), 10))
    entities = pa.table({"user": ["u1"], "event_time": pa.array([T0_US], pa.int64()).cast(TS)})
    with pytest.raises(InvalidInput, match=r"in_memory_join_limit 'lots' is not a size.*'512MB'"):
        store.point_in_time_join(entities, [(by_user, ["x"])])
