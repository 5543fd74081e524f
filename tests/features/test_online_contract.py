"""The online store contract, run against SQLite (embedded) and Redis (real server)."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest
from features.support import user_rows

from yarnit.core import SimulatedClock, utc
from yarnit.features import (
    EntityKeyError,
    FeatureStatus,
    FeatureView,
    OnlineFeatures,
    OnlineStore,
    UnknownFeature,
    table_name,
    write_online,
)
from yarnit.features._codec import EncodedChunk, ViewCodec


def _reader(online: OnlineStore, clock: SimulatedClock, *views: FeatureView) -> OnlineFeatures:
    return OnlineFeatures(online, views, clock)


def test_unknown_entity_is_missing_with_no_values_or_age(online: OnlineStore, user_view: FeatureView,
                                                         clock: SimulatedClock) -> None:
    row = _reader(online, clock, user_view).read_one("user_activity", "nobody")
    assert row.status is FeatureStatus.MISSING
    assert row.values == dict.fromkeys(user_view.feature_names)
    assert row.event_time is None and row.age_s is None


def test_written_values_come_back_present_with_event_time_and_age_from_the_clock(
        online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    rows = user_rows(("u1", "2026-01-05T06:00Z", 12, 0.25, "ES", True),
                     ("u2", "2026-01-05T08:30Z", None, None, None, None))
    summary = write_online(user_view, online, [rows], clock=clock, full=True)
    assert (summary.rows_offered, summary.rows_written, summary.rows_total) == (2, 2, 2)
    got = _reader(online, clock, user_view).read("user_activity", ["u1", "u2"])
    assert [r.status for r in got] == [FeatureStatus.PRESENT, FeatureStatus.PRESENT]
    assert got[0].values == {"clicks_7d": 12, "ctr_7d": 0.25, "country": "ES", "is_new": True}
    assert got[1].values == {"clicks_7d": None, "ctr_7d": None, "country": None, "is_new": None}
    assert got[0].event_time == utc(2026, 1, 5, 6) and got[0].age_s == 3 * 3600.0  # clock: 2026-01-05 09:00
    assert got[1].age_s == 1800.0
    as_values = got[0].features()
    assert [(v.name, v.status, v.age_s) for v in as_values][:1] == [("clicks_7d", FeatureStatus.PRESENT, 10800.0)]
    assert got[0].to_dict()["features"]["ctr_7d"] == {
        "value": 0.25, "status": "present", "event_time": "2026-01-05T06:00:00+00:00", "age_s": 10800.0}


def test_a_value_older_than_the_ttl_is_stale_and_never_returned_as_present(
        online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T09:00Z", 5, 0.5, "NO", False))], clock=clock,
                 full=True)
    reader = _reader(online, clock, user_view)
    clock.advance(timedelta(hours=24))  # exactly the TTL: still valid
    at_ttl = reader.read_one("user_activity", "u1")
    assert at_ttl.status is FeatureStatus.PRESENT and at_ttl.values["clicks_7d"] == 5
    clock.advance(timedelta(microseconds=1))
    stale = reader.read_one("user_activity", "u1")
    assert stale.status is FeatureStatus.STALE
    assert stale.values == dict.fromkeys(user_view.feature_names)  # withheld
    assert stale.event_time == utc(2026, 1, 5, 9) and stale.age_s == 86400.000001
    assert all(v.status is FeatureStatus.STALE and v.value is None for v in stale.features())


def test_views_without_ttl_never_go_stale(online: OnlineStore, composite_view: FeatureView,
                                          clock: SimulatedClock) -> None:
    rows = pd.DataFrame({"country": ["ES"], "product_id": [7], "views": [3],
                         "event_time": [pd.Timestamp("2020-01-01", tz="UTC")]})
    write_online(composite_view, online, [rows], clock=clock, full=True)
    row = _reader(online, clock, composite_view).read_one("country_product", ("ES", 7))
    assert row.status is FeatureStatus.PRESENT and row.values == {"views": 3} and row.key == ("ES", 7)
    assert _reader(online, clock, composite_view).read_one("country_product", {"country": "ES", "product_id": 8}
                                                           ).status is FeatureStatus.MISSING


def test_incremental_write_keeps_the_newer_value_and_full_write_replaces_everything(
        online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True),
                                               ("u2", "2026-01-05T06:00Z", 2, 0.2, "ES", True))],
                 clock=clock, full=True)
    summary = write_online(user_view, online, [user_rows(("u1", "2026-01-05T05:00Z", 99, 0.9, "XX", False),
                                                         ("u2", "2026-01-05T07:00Z", 3, 0.3, "DE", False),
                                                         ("u3", "2026-01-05T07:00Z", 4, 0.4, "FR", False))],
                           clock=clock, full=False)
    assert (summary.rows_offered, summary.rows_written, summary.rows_total) == (3, 2, 3)
    reader = _reader(online, clock, user_view)
    values = [r.values["clicks_7d"] for r in reader.read("user_activity", ["u1", "u2", "u3"])]
    assert values == [1, 3, 4]  # the older u1 value did not replace the newer one
    write_online(user_view, online, [user_rows(("u3", "2026-01-05T08:00Z", 5, 0.5, "FR", False))],
                 clock=clock, full=True)
    statuses = [r.status for r in reader.read("user_activity", ["u1", "u2", "u3"])]
    assert statuses == [FeatureStatus.MISSING, FeatureStatus.MISSING, FeatureStatus.PRESENT]


def test_duplicate_keys_within_one_write_keep_the_newest(online: OnlineStore, user_view: FeatureView,
                                                         clock: SimulatedClock) -> None:
    codec = ViewCodec(user_view)
    a = codec.encode(_conformed(user_view, user_rows(("u1", "2026-01-05T07:00Z", 7, 0.7, "ES", True))))
    b = codec.encode(_conformed(user_view, user_rows(("u1", "2026-01-05T06:00Z", 6, 0.6, "ES", True))))
    online.write(table_name(user_view), [a, b], full=True, watermark_us=0, now_us=0)
    assert _reader(online, clock, user_view).read_one("user_activity", "u1").values["clicks_7d"] == 7


def _conformed(view: FeatureView, frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    from yarnit.features import conform

    return conform(view, frame)


def test_a_failed_write_leaves_previous_values_and_state_intact(online: OnlineStore, user_view: FeatureView,
                                                                clock: SimulatedClock) -> None:
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True))],
                 clock=clock, full=True)
    before = online.state(table_name(user_view))
    codec = ViewCodec(user_view)

    def chunks() -> Iterator[EncodedChunk]:
        yield codec.encode(_conformed(user_view, user_rows(("u1", "2026-01-05T08:00Z", 2, 0.2, "DE", False),
                                                           ("u2", "2026-01-05T08:00Z", 3, 0.3, "DE", False))))
        raise RuntimeError("source died mid-materialization")

    for full in (True, False):
        with pytest.raises(RuntimeError, match="mid-materialization"):
            online.write(table_name(user_view), chunks(), full=full, watermark_us=10**16, now_us=10**16)
        assert online.state(table_name(user_view)) == before
        rows = _reader(online, clock, user_view).read("user_activity", ["u1", "u2"])
        assert [r.values["clicks_7d"] for r in rows] == [1, None]
        assert [r.status for r in rows] == [FeatureStatus.PRESENT, FeatureStatus.MISSING]


def test_floats_ints_and_strings_round_trip_exactly(online: OnlineStore, product_view: FeatureView,
                                                    user_view: FeatureView, clock: SimulatedClock) -> None:
    specials = [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan, 1 / 3, -2.5, 1e-300]
    # Arrow keeps NaN as a value (pandas would turn it into a missing value).
    stats = pa.table({"product_id": [1], "event_time": pa.array([utc(2026, 1, 5, 8)], pa.timestamp("us", "UTC")),
                      **{f"f{i}": [v] for i, v in enumerate(specials)}})
    write_online(product_view, online, [stats], clock=clock, full=True)
    got = _reader(online, clock, product_view).read_one("product_stats", 1).values
    packed = [struct.pack("<d", got[f"f{i}"]) for i in range(10)]
    assert packed == [struct.pack("<d", v) for v in specials]  # bit for bit, NaN and -0.0 included
    users = user_rows(("ü-ñ 🧶", "2026-01-05T08:00Z", 2**63 - 1, 0.0, "", True),
                      ("u,2", "2026-01-05T08:00Z", -(2**63), -1.5, "Straße 漢字", False))
    write_online(user_view, online, [users], clock=clock, full=True)
    rows = _reader(online, clock, user_view).read("user_activity", ["ü-ñ 🧶", "u,2"])
    assert rows[0].values == {"clicks_7d": 2**63 - 1, "ctr_7d": 0.0, "country": "", "is_new": True}
    assert rows[1].values == {"clicks_7d": -(2**63), "ctr_7d": -1.5, "country": "Straße 漢字", "is_new": False}


def test_reads_keep_order_and_duplicates_across_large_batches(online: OnlineStore, product_view: FeatureView,
                                                              clock: SimulatedClock) -> None:
    n = 1500
    stats = pd.DataFrame({"product_id": range(n), "event_time": pd.Timestamp("2026-01-05T08:00Z"),
                          **{f"f{i}": [float(p * 10 + i) for p in range(n)] for i in range(10)}})
    write_online(product_view, online, [stats.iloc[:700], stats.iloc[700:]], clock=clock, full=True)
    keys = [1499, 3, 3, 5000, 0, *range(100, 1300)]
    rows = _reader(online, clock, product_view).read("product_stats", keys)
    assert [r.key for r in rows] == keys
    assert [r.values["f3"] for r in rows[:5]] == [14993.0, 33.0, 33.0, None, 3.0]
    assert rows[3].status is FeatureStatus.MISSING
    assert all(r.values["f0"] == r.key * 10 for r in rows[5:])
    assert online.state(table_name(product_view)).rows == n  # type: ignore[union-attr]


def test_state_tracks_rows_newest_value_watermark_and_generation(online: OnlineStore, user_view: FeatureView,
                                                                 clock: SimulatedClock) -> None:
    table = table_name(user_view)
    assert online.state(table) is None
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T06:00Z", 1, 0.1, "ES", True))], clock=clock,
                 full=True, watermark=utc(2026, 1, 5, 7))
    first = online.state(table)
    assert first is not None and (first.rows, first.generation) == (1, 1)
    assert first.newest_event_us == 1767592800000000 and first.watermark_us == 1767596400000000
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T05:00Z", 1, 0.1, "ES", True))], clock=clock,
                 full=False, watermark=utc(2026, 1, 5, 6))
    second = online.state(table)
    assert second is not None and second.generation == 2
    assert second.newest_event_us == first.newest_event_us  # an older row does not move it back
    assert second.watermark_us == first.watermark_us  # nor does an older watermark
    assert table in online.tables()
    online.drop(table)
    assert online.state(table) is None and table not in online.tables()
    assert _reader(online, clock, user_view).read_one("user_activity", "u1").status is FeatureStatus.MISSING


def test_wrong_key_types_and_unknown_views_are_refused_with_the_valid_choices(
        online: OnlineStore, user_view: FeatureView, product_view: FeatureView, composite_view: FeatureView,
        clock: SimulatedClock) -> None:
    reader = _reader(online, clock, user_view, product_view, composite_view)
    with pytest.raises(EntityKeyError, match=r"'product_stats'.*product_id must be an int, got str"):
        reader.read_one("product_stats", "12")
    with pytest.raises(EntityKeyError, match=r"user_id must be a str, got int.*user_id: string"):
        reader.read("user_activity", [7])
    with pytest.raises(EntityKeyError, match=r"product_id must be an int, got bool"):
        reader.read_one("product_stats", True)
    with pytest.raises(EntityKeyError, match=r"expected 2 values"):
        reader.read_one("country_product", "ES")
    with pytest.raises(EntityKeyError, match=r"lacks \['product_id'\]"):
        reader.read_one("country_product", {"country": "ES"})
    with pytest.raises(UnknownFeature, match=r"Unknown feature view 'users'.*country_product, product_stats, "
                                             r"user_activity"):
        reader.read_one("users", "u1")
    with pytest.raises(UnknownFeature, match=r"Unknown feature 'clicks'.*clicks_7d, country, ctr_7d, is_new"):
        reader.get(["user_activity:clicks"], [{"user_id": "u1"}])


def test_get_returns_values_by_reference_across_views(online: OnlineStore, user_view: FeatureView,
                                                      product_view: FeatureView, clock: SimulatedClock) -> None:
    write_online(user_view, online, [user_rows(("u1", "2026-01-05T06:00Z", 4, 0.4, "ES", True))], clock=clock,
                 full=True)
    stats = pd.DataFrame({"product_id": [9], "event_time": [pd.Timestamp("2026-01-01T00:00Z")],
                          **{f"f{i}": [float(i)] for i in range(10)}})
    write_online(product_view, online, [stats], clock=clock, full=True)
    got = _reader(online, clock, user_view, product_view).get(
        ["user_activity:clicks_7d", "product_stats:f2"], [{"user_id": "u1", "product_id": 9}])
    assert got[0]["user_activity:clicks_7d"].value == 4
    assert got[0]["user_activity:clicks_7d"].status is FeatureStatus.PRESENT
    assert got[0]["product_stats:f2"].status is FeatureStatus.STALE  # 4 days old, TTL 2 days
    assert got[0]["product_stats:f2"].value is None


def test_delete_removes_only_the_named_entities(online: OnlineStore, user_view: FeatureView,
                                                clock: SimulatedClock) -> None:
    from yarnit.features import table_name

    rows = user_rows(("u1", "2026-01-05T06:00Z", 12, 0.25, "ES", True),
                     ("u2", "2026-01-05T08:30Z", 3, 0.5, "NO", False))
    write_online(user_view, online, [rows], clock=clock, full=True)
    assert online.delete(table_name(user_view), ["u1", "nobody"]) == 1
    assert online.delete(table_name(user_view), []) == 0
    got = _reader(online, clock, user_view).read("user_activity", ["u1", "u2"])
    assert [r.status for r in got] == [FeatureStatus.MISSING, FeatureStatus.PRESENT]
    assert online.delete("never_written@0000000000000000", ["u1"]) == 0


def test_keys_lists_every_stored_entity_including_composite_ones(online: OnlineStore, composite_view: FeatureView,
                                                                 clock: SimulatedClock) -> None:
    from yarnit.features import table_name
    from yarnit.features._codec import ViewCodec

    rows = pd.DataFrame({"country": ["ES", "NO", "ES"], "product_id": [7, 7, 8], "views": [3, 4, 5],
                         "event_time": [pd.Timestamp("2026-01-01", tz="UTC")] * 3})
    write_online(composite_view, online, [rows], clock=clock, full=True)
    codec = ViewCodec(composite_view)
    assert sorted(codec.key_values(k) for k in online.keys(table_name(composite_view))) == [
        ("ES", 7), ("ES", 8), ("NO", 7)]
    assert list(online.keys("never_written@0000000000000000")) == []


def test_read_one_agrees_with_batch_reads_for_present_stale_and_missing(
        online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    rows = user_rows(("fresh", "2026-01-05T08:00Z", 4, 0.5, "ES", True),
                     ("old", "2025-12-01T00:00Z", 9, 0.1, "NO", False))
    write_online(user_view, online, [rows], clock=clock, full=True)
    reader = _reader(online, clock, user_view)
    keys = ["fresh", "old", "nobody"]
    singles = [reader.read_one("user_activity", k) for k in keys]
    batch = reader.read("user_activity", keys)
    assert [r.status for r in singles] == [FeatureStatus.PRESENT, FeatureStatus.STALE, FeatureStatus.MISSING]
    for one, many in zip(singles, batch, strict=True):
        assert (one.key, one.status, one.event_us, one.age_us, one.values) == \
            (many.key, many.status, many.event_us, many.age_us, many.values)
    assert singles[1].values == dict.fromkeys(user_view.feature_names)  # stale: never returned as present
    clock.advance(timedelta(hours=2))  # ages follow the injected clock on the hot path too
    assert reader.read_one("user_activity", "fresh").age_s == 3 * 3600.0


def test_warm_reads_the_tables_of_served_views_and_changes_no_value(
        online: OnlineStore, user_view: FeatureView, clock: SimulatedClock) -> None:
    reader = _reader(online, clock, user_view)
    assert reader.warm() == 0  # nothing written yet: nothing to map
    rows = user_rows(("u1", "2026-01-05T06:00Z", 12, 0.25, "ES", True))
    write_online(user_view, online, [rows], clock=clock, full=True)
    before = reader.read_one("user_activity", "u1").values
    warmed = reader.warm()
    if hasattr(online, "warm"):  # SQLite maps its pages; Redis keeps everything in memory already
        assert warmed > 0
    else:
        assert warmed == 0
    assert reader.read_one("user_activity", "u1").values == before
