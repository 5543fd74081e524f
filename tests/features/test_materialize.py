"""Materialization offline → online (both stores): full, incremental, chunked, all or nothing; freshness."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from features.support import user_rows
from prometheus_client import CollectorRegistry

from yarnit.core import SimulatedClock, utc
from yarnit.features import (
    FeatureStatus,
    FeatureStore,
    FeatureView,
    FreshnessCollector,
    MaterializationConflict,
    OfflineStore,
    OnlineFeatures,
    OnlineStore,
    materialize,
    table_name,
    view_freshness,
    write_online,
)
from yarnit.storage import Workspace


def _products(n: int, at: str, base: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"product_id": range(n), "event_time": pd.Timestamp(at),
                         **{f"f{i}": [base + p + i / 10 for p in range(n)] for i in range(10)}})


def test_full_then_incremental_materialization_moves_only_newer_values(
        tmp_path: Path, online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    offline = OfflineStore(tmp_path / "offline")
    offline.write(user_view, user_rows(("u1", "2026-01-04T10:00Z", 1, 0.1, "ES", True),
                                       ("u1", "2026-01-05T08:00Z", 2, 0.2, "ES", True),
                                       ("u2", "2026-01-05T08:30Z", 3, 0.3, "DE", False),
                                       ("u3", "2026-01-05T10:00Z", 4, 0.4, "FR", False)))  # after "now"
    first = materialize(user_view, offline, online, clock=clock)
    assert (first.mode, first.rows_offered, first.rows_total) == ("full", 2, 2)
    assert first.window_end == utc(2026, 1, 5, 9) and first.newest_event_time == utc(2026, 1, 5, 8, 30)
    reader = OnlineFeatures(online, [user_view], clock)
    assert [r.values["clicks_7d"] for r in reader.read("user_activity", ["u1", "u2", "u3"])] == [2, 3, None]

    clock.advance(timedelta(hours=2))
    # Late rows: a backfill rewrites day 4 (an older u2 row) and day 5 gains u4 at 08:45, before the
    # watermark. Incremental runs re-read days rewritten since the last run, so nothing is missed.
    offline.write(user_view, user_rows(("u1", "2026-01-04T10:00Z", 1, 0.1, "ES", True),
                                       ("u2", "2026-01-04T23:00Z", 9, 0.9, "DE", False)))
    offline.write(user_view, user_rows(("u1", "2026-01-05T08:00Z", 2, 0.2, "ES", True),
                                       ("u2", "2026-01-05T08:30Z", 3, 0.3, "DE", False),
                                       ("u4", "2026-01-05T08:45Z", 5, 0.5, "NO", True),
                                       ("u3", "2026-01-05T10:00Z", 4, 0.4, "FR", False)))
    second = materialize(user_view, offline, online, clock=clock)
    assert second.mode == "incremental" and second.window_start == utc(2026, 1, 5, 9)
    assert (second.rows_offered, second.rows_total) == (4, 4)
    values = [r.values["clicks_7d"] for r in reader.read("user_activity", ["u1", "u2", "u3", "u4"])]
    assert values == [2, 3, 4, 5]  # the older u2 row did not replace the newer one; u4 arrived late
    again = materialize(user_view, offline, online, clock=clock)
    assert (again.rows_offered, again.rows_written) == (0, 0)
    clock.advance(timedelta(hours=16))
    offline.write(user_view, user_rows(("u5", "2026-01-06T00:30Z", 6, 0.6, "SE", True)))
    third = materialize(user_view, offline, online, clock=clock)
    assert (third.rows_offered, third.rows_total) == (1, 5)  # only the new day is read


def test_streaming_in_small_chunks_gives_the_same_table(tmp_path: Path, online: OnlineStore,
                                                         product_view: FeatureView, clock: SimulatedClock) -> None:
    offline = OfflineStore(tmp_path / "offline")
    offline.write(product_view, pd.concat([_products(2500, "2026-01-04T00:00Z"),
                                           _products(2000, "2026-01-05T00:00Z", base=0.5)]))
    seen: list[tuple[int, int | None]] = []
    result = materialize(product_view, offline, online, clock=clock, chunk_rows=1000,
                         progress=lambda done, total: seen.append((done, total)))
    assert result.rows_total == 2500 and result.rows_written == 2500
    assert seen == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    rows = OnlineFeatures(online, [product_view], clock).read("product_stats", [0, 1999, 2000, 2499])
    assert [r.values["f1"] for r in rows] == [0.6, 1999.6, 2000.1, 2499.1]
    assert [r.event_time for r in rows] == [utc(2026, 1, 5)] * 2 + [utc(2026, 1, 4)] * 2


def test_a_materialization_that_fails_midway_leaves_the_previous_values_intact(
        tmp_path: Path, online: OnlineStore, product_view: FeatureView, clock: SimulatedClock) -> None:
    offline = OfflineStore(tmp_path / "offline")
    offline.write(product_view, _products(3000, "2026-01-04T00:00Z"))
    materialize(product_view, offline, online, clock=clock)
    before = online.state(table_name(product_view))
    offline.write(product_view, _products(3000, "2026-01-05T10:00Z", base=100.0))
    clock.advance(timedelta(hours=2))

    def crash(done: int, total: int | None) -> None:
        if done >= 2000:
            raise OSError("disk of the source went away")

    for full in (False, True):
        with pytest.raises(OSError, match="went away"):
            materialize(product_view, offline, online, clock=clock, chunk_rows=1000, full=full, progress=crash)
        assert online.state(table_name(product_view)) == before
        rows = OnlineFeatures(online, [product_view], clock).read("product_stats", [0, 1500, 2999])
        assert [r.values["f0"] for r in rows] == [0.0, 1500.0, 2999.0]
    assert materialize(product_view, offline, online, clock=clock).rows_written == 3000


def test_freshness_reports_the_age_of_the_newest_value_and_exports_metrics(
        tmp_path: Path, online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    empty = view_freshness(user_view, online, clock)
    assert (empty.status, empty.rows, empty.age_s) == ("empty", 0, None)
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T07:00Z", 1, 0.1, "ES", True))], clock=clock,
                 full=True)
    fresh = view_freshness(user_view, online, clock)
    assert (fresh.status, fresh.rows, fresh.age_s, fresh.lag_s) == ("fresh", 1, 7200.0, 0.0)
    assert fresh.within(3 * 3600) and not fresh.within(3600)
    clock.advance(timedelta(days=1))  # the pipeline stops: nothing new arrives
    stale = view_freshness(user_view, online, clock)
    assert stale.status == "stale" and stale.age_s == 93600.0 and stale.to_dict()["status"] == "stale"
    registry = CollectorRegistry()
    registry.register(FreshnessCollector(lambda: [user_view], online, clock))
    labels = {"view": "user_activity", "version": user_view.version}
    assert registry.get_sample_value("yarnit_feature_freshness_seconds", labels) == 93600.0
    assert registry.get_sample_value("yarnit_feature_online_rows", labels) == 1.0
    assert registry.get_sample_value("yarnit_feature_materialization_lag_seconds", labels) == 86400.0


def test_the_feature_store_records_runs_and_serves_what_it_materialized(
        sqlite_ws: Workspace, online_url: str, user_view: FeatureView, clock: SimulatedClock) -> None:
    with FeatureStore(sqlite_ws, online_url=online_url) as store:
        sources = {"activity": user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True),
                                         ("u2", "2026-01-05T07:00Z", 2, 0.2, "DE", False))}
        assert store.backfill(user_view, sources=sources).rows == 2
        result = store.materialize("user_activity")
        assert result.rows_written == 2
        rows = store.read_online("user_activity", ["u1", "u2", "u3"])
        assert [r.status for r in rows] == [FeatureStatus.PRESENT, FeatureStatus.PRESENT, FeatureStatus.MISSING]
        assert store.freshness(["user_activity"])[0].age_s == 7200.0
        with pytest.raises(Exception, match="Naive|no time zone"):
            store.materialize("user_activity", end=utc(2026, 1, 5).replace(tzinfo=None))
        (run, *_older) = store.registry.runs("user_activity")
        assert (run.state, run.mode, run.rows_written) == ("succeeded", "full", 2)


def test_a_failed_run_is_recorded_as_failed(sqlite_ws: Workspace, tmp_path: Path, user_view: FeatureView) -> None:
    with FeatureStore(sqlite_ws, online_url=f"sqlite:///{tmp_path}/online.db") as store:
        store.backfill(user_view, sources={"activity": user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True))})

        def boom(done: int, total: int | None) -> None:
            if done:
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store.materialize("user_activity", progress=boom)
        run = store.registry.runs("user_activity")[0]
        assert run.state == "failed" and run.error == "RuntimeError: boom"


def test_redis_refuses_a_commit_when_another_materialization_committed_first(
        online_url: str, online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    if not online_url.startswith("redis"):
        pytest.skip("SQLite serialises writers with its write lock; the race exists only on Redis")
    from yarnit.features import conform
    from yarnit.features._codec import ViewCodec

    codec = ViewCodec(user_view)
    table = table_name(user_view)

    def racing_chunks():  # type: ignore[no-untyped-def]
        yield codec.encode(conform(user_view, user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True))))
        write_online(user_view, online, [user_rows(("u2", "2026-01-05T06:00Z", 2, 0.2, "DE", True))], clock=clock,
                     full=False)

    with pytest.raises(MaterializationConflict, match="committed while this one ran; nothing from this write"):
        online.write(table, racing_chunks(), full=False, watermark_us=0, now_us=0)
    rows = OnlineFeatures(online, [user_view], clock).read("user_activity", ["u1", "u2"])
    assert [r.status for r in rows] == [FeatureStatus.MISSING, FeatureStatus.PRESENT]
