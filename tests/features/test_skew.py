"""Training-serving skew: the batch and online paths agree, and injected skew is caught."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from yarnit.core import InvalidInput, SimulatedClock, utc
from yarnit.features import (
    FeatureStatus,
    FeatureStore,
    OfflineStore,
    OnlineFeatures,
    OnlineStore,
    ServingLog,
    feature_view,
    materialize,
    skew_report,
    write_online,
)
from yarnit.storage import Workspace


@feature_view(entities={"product_id": "int64"},
              features={"price": "float64", "clicks_7d": "int64", "fiber": "string", "in_stock": "bool"},
              ttl=timedelta(days=2), sources=("catalog",))
def product_state(catalog: pd.DataFrame) -> pd.DataFrame:
    """The catalog's state of each product, one row per product and day."""
    return catalog


def _catalog(n_products: int, day: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "product_id": np.arange(n_products),
        "event_time": pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 3600, n_products), unit="s"),
        "price": rng.gamma(2.0, 6.0, n_products) * (1 + rng.normal(0, 1e-3, n_products)),
        "clicks_7d": rng.integers(0, 500, n_products),
        "fiber": rng.choice(["merino", "cotton", "alpaca", "acrylic"], n_products),
        "in_stock": rng.random(n_products) < 0.9,
    })


def test_batch_and_online_paths_give_bitwise_identical_values_on_10000_rows(
        tmp_path: Path, online: OnlineStore, clock: SimulatedClock) -> None:
    """RELIABILITY.md target 15: 100% of a 10,000-row fixture identical (floats bit for bit)."""
    offline = OfflineStore(tmp_path / "offline")
    catalog = _catalog(10_000, "2026-01-05T00:00Z", seed=3)
    catalog.loc[::97, "price"] = np.nan  # some missing values too
    offline.write(product_state, catalog)
    materialize(product_state, offline, online, clock=clock)
    entities = pd.DataFrame({"product_id": np.arange(10_000), "event_time": clock.now()})
    batch = offline.point_in_time_join(entities, [(product_state, list(product_state.feature_names))])
    served = OnlineFeatures(online, [product_state], clock).read("product_state", list(range(10_000)))
    assert all(r.status is FeatureStatus.PRESENT for r in served)
    mismatches = 0
    for name in product_state.feature_names:
        expected = batch.column(name).to_pylist()
        got = [r.values[name] for r in served]
        if name == "price":
            mismatches += sum(
                (e is None) != (g is None) or (e is not None and struct.pack("<d", e) != struct.pack("<d", g))
                for e, g in zip(expected, got, strict=True))
        else:
            mismatches += sum(e != g for e, g in zip(expected, got, strict=True))
    assert mismatches == 0


def _serve(store: FeatureStore, log: ServingLog, keys: list[int]) -> None:
    reader = store.reader(["product_state"], log=log)
    for start in range(0, len(keys), 100):
        reader.read("product_state", keys[start:start + 100])
    log.flush()


def test_the_skew_report_is_clean_when_healthy_and_catches_a_stale_feature_pipeline(
        sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    keys = list(range(2000))
    with FeatureStore(sqlite_ws) as store:
        log = store.serving_log(sample_rate=0.5, seed=1)
        store.backfill(product_state, sources={"catalog": _catalog(2000, "2026-01-05T00:00Z", seed=1)})
        clock.set(utc(2026, 1, 5, 12))
        store.materialize("product_state")
        _serve(store, log, keys)
        healthy = store.skew("product_state")
        assert 900 < healthy.rows < 1100  # half of the rows were sampled
        assert not healthy.skewed and all(f.mismatches == 0 for f in healthy.features)
        assert healthy.served_status == {"present": healthy.rows}

        # Day 2: the catalog changes offline, but the materialization job silently stops.
        store.backfill(product_state, sources={"catalog": pd.concat([
            _catalog(2000, "2026-01-05T00:00Z", seed=1), _catalog(2000, "2026-01-06T00:00Z", seed=2)])})
        clock.set(utc(2026, 1, 6, 12))
        _serve(store, log, keys)
        report = store.skew("product_state", since=utc(2026, 1, 6))
        assert report.skewed and set(report.skewed_features) == {"price", "clicks_7d", "fiber", "in_stock"}
        price = report.feature("price")
        assert price.mismatch_rate == 1.0 and price.distance_kind == "wasserstein_normed"
        assert report.feature("fiber").mismatch_rate > 0.6 and report.feature("fiber").distance is not None
        assert price.examples and price.examples[0]["status"] == "present"
        assert report.to_dict()["skewed_features"] == report.skewed_features
        # Restarting the job makes serving agree with training again.
        clock.advance(timedelta(minutes=1))
        store.materialize("product_state")
        _serve(store, log, keys)
        assert not store.skew("product_state", since=utc(2026, 1, 6, 12, 1)).skewed


def test_the_skew_report_pinpoints_one_corrupted_feature_and_withheld_stale_values(
        tmp_path: Path, online: OnlineStore, clock: SimulatedClock) -> None:
    offline = OfflineStore(tmp_path / "offline")
    catalog = _catalog(500, "2026-01-05T00:00Z", seed=4)
    offline.write(product_state, catalog)
    bad = catalog.assign(clicks_7d=catalog["clicks_7d"] + (np.arange(500) % 10 == 0))  # 10% off by one online
    write_online(product_state, online, [bad], clock=clock, full=True)
    log = ServingLog(tmp_path / "log", sample_rate=1.0)
    reader = OnlineFeatures(online, [product_state], clock, log=log)
    reader.read("product_state", list(range(500)))
    log.flush()
    report = skew_report(product_state, log.read(product_state), offline, max_mismatch_rate=0.05)
    assert report.skewed_features == ["clicks_7d"]
    assert report.feature("clicks_7d").mismatches == 50 and report.feature("price").mismatches == 0
    tolerant = skew_report(product_state, log.read(product_state), offline, max_mismatch_rate=0.2)
    assert not tolerant.skewed

    clock.advance(timedelta(days=3))  # now every served value is stale and withheld; offline nulls them too
    reader.read("product_state", list(range(500)))
    log.flush()
    late = skew_report(product_state, log.read(product_state, since=utc(2026, 1, 7)), offline)
    assert late.served_status == {"stale": 500} and not late.skewed
    with pytest.raises(InvalidInput, match=r"max_mismatch_rate must be in \[0, 1\)"):
        skew_report(product_state, log.read(product_state), offline, max_mismatch_rate=1.5)
    with pytest.raises(InvalidInput, match=r"sample_rate must be in \(0, 1\]"):
        ServingLog(tmp_path, sample_rate=0)
    empty = skew_report(product_state, pa.Table.from_pylist([], schema=log.read(product_state).schema), offline)
    assert empty.rows == 0 and not empty.skewed


def test_request_time_transforms_are_one_code_path_for_training_and_serving() -> None:
    from yarnit.features import apply_transform, ctr_features_v1, get_transform

    records = [{"price_usd": p, "fiber": "merino", "query": "Merino DK", "hour": h, "day_of_week": 2}
               for p, h in ((0.5, 1), (4.99, 13), (27.0, 23))]
    assert apply_transform("ctr_features_v1", records) == [ctr_features_v1(r) for r in records]
    assert get_transform("ctr_features_v1") is ctr_features_v1
    assert [r["price_bucket"] for r in apply_transform("ctr_features_v1", records)] == ["0", "1", "6"]


@feature_view(entities={"product_id": "string"}, features={"product_clicks_7d": "int64"}, ttl=timedelta(days=1),
              sources=("catalog",))
def product_popularity(catalog: pd.DataFrame) -> pd.DataFrame:
    """YarnIt's popularity feature as the nightly job computes it (the catalog at midnight)."""
    return catalog.assign(event_time=pd.to_datetime(catalog["day"]).dt.tz_localize("UTC"))


def _world_days(faults: tuple[object, ...]) -> list[object]:
    from yarnit.world import World, WorldConfig

    return list(World(WorldConfig(seed=0, sessions_per_day=200, n_products=300, n_users=2000,
                                  faults=faults)).run(3))  # type: ignore[arg-type]


def _served_log(days: list[object]) -> pa.Table:
    from yarnit.features.skew import EVENT_TIME, REQUEST_TIME, STATUS

    served = pd.concat([d.impressions for d in days])  # type: ignore[attr-defined]
    midnight = served["event_time"].dt.floor("D")
    return pa.table({
        "product_id": pa.array(served["product_id"].astype(str)),
        REQUEST_TIME: pa.array(served["event_time"]).cast(pa.timestamp("us", "UTC")),
        STATUS: pa.array(["present"] * len(served)),
        EVENT_TIME: pa.array(midnight).cast(pa.timestamp("us", "UTC")),
        "product_clicks_7d": pa.array(served["product_clicks_7d"].astype("int64")),
    })


def test_the_skew_report_catches_the_worlds_stale_feature_fault(tmp_path: Path) -> None:
    world = pytest.importorskip("yarnit.world")
    healthy = _world_days(())
    offline = OfflineStore(tmp_path / "offline")
    offline.write(product_popularity, product_popularity.compute(
        {"catalog": pd.concat([d.catalog for d in healthy])}))  # type: ignore[attr-defined]
    clean = skew_report(product_popularity, _served_log(healthy), offline)
    assert clean.rows > 1000 and not clean.skewed  # the healthy world serves what the job computed
    # The pipeline goes stale on day 1: from day 2 on, serving keeps day 1's values.
    faulty = _world_days((world.parse_fault("stale_features@1:48,feature=product_clicks_7d"),))
    by_day = {d.index: _served_log([d]) for d in faulty}  # type: ignore[attr-defined]
    assert not skew_report(product_popularity, by_day[1], offline).skewed
    stale = skew_report(product_popularity, by_day[2], offline)
    assert stale.skewed_features == ["product_clicks_7d"]
    assert stale.feature("product_clicks_7d").mismatch_rate > 0.5
