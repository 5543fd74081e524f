"""The offline store: day partitions, point-in-time joins without leakage, TTL, every entity row back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from features.support import user_activity, user_rows

from yarnit.core import InvalidInput, utc
from yarnit.features import EntityKeyError, NaiveTimestamp, OfflineStore, UnknownFeature, backfill, feature_view

T0 = pd.Timestamp("2026-01-01T00:00Z")


@feature_view(entities={"user_id": "int64"}, features={"score": "float64", "level": "int64"},
              ttl=timedelta(hours=12), sources=("scores",))
def user_score(scores: pd.DataFrame) -> pd.DataFrame:
    """A score per user, recomputed at random times."""
    return scores


def _random_scores(rng: np.random.Generator, n_rows: int, n_users: int) -> pd.DataFrame:
    offsets = rng.integers(0, 5 * 86400, n_rows)  # five days, second resolution: many near-ties
    return pd.DataFrame({
        "user_id": rng.integers(0, n_users, n_rows),
        "event_time": T0 + pd.to_timedelta(offsets, unit="s"),
        "score": rng.normal(size=n_rows),
        "level": rng.integers(0, 5, n_rows),
    }).drop_duplicates(["user_id", "event_time"])


def _oracle(scores: pd.DataFrame, user: int, at: pd.Timestamp, ttl: pd.Timedelta) -> tuple[float, int] | None:
    rows = scores[(scores.user_id == user) & (scores.event_time <= at)]
    if rows.empty:
        return None
    last = rows.loc[rows.event_time.idxmax()]
    if at - last.event_time > ttl:
        return None
    return float(last.score), int(last.level)


def test_point_in_time_join_never_leaks_a_later_value_and_matches_a_brute_force_oracle(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    scores = _random_scores(rng, 2000, 40)
    store = OfflineStore(tmp_path / "offline")
    store.write(user_score, scores)
    n = 1200
    entities = pd.DataFrame({
        "user_id": rng.integers(0, 46, n),  # users 40-45 have no feature rows at all
        "event_time": T0 + pd.to_timedelta(rng.integers(-3600, 6 * 86400, n), unit="s"),
        "label": rng.integers(0, 2, n),
    })
    # Some entity rows exactly at a feature row's timestamp, and one microsecond before it.
    exact = scores.sample(200, random_state=1)
    entities.loc[:199, ["user_id", "event_time"]] = exact[["user_id", "event_time"]].to_numpy()
    entities.loc[200:399, ["user_id", "event_time"]] = exact.assign(
        event_time=exact.event_time - pd.Timedelta(microseconds=1))[["user_id", "event_time"]].to_numpy()
    entities["user_id"] = entities["user_id"].astype("int64")
    entities["event_time"] = pd.to_datetime(entities["event_time"], utc=True)
    joined = store.point_in_time_join(entities, [(user_score, ["score", "level"])]).to_pandas()

    assert len(joined) == n  # every entity row comes back …
    assert joined["label"].tolist() == entities["label"].tolist()  # … in the order given
    assert joined["event_time"].tolist() == entities["event_time"].tolist()
    ttl = pd.Timedelta(hours=12)
    by_user = {u: g for u, g in scores.groupby("user_id")}
    mismatches = []
    for i, (user, at) in enumerate(zip(entities.user_id, entities.event_time, strict=True)):
        expected = _oracle(by_user.get(user, scores.iloc[:0]), user, at, ttl)
        got = joined.iloc[i]
        if expected is None:
            ok = pd.isna(got.score) and pd.isna(got.level)
        else:
            ok = got.score == expected[0] and got.level == expected[1]
        if not ok:
            mismatches.append((i, user, at, expected, got.score))
    assert mismatches == []
    # The rows stamped exactly at a feature time get that value; one microsecond earlier never does.
    assert joined.score.iloc[:200].tolist() == exact.score.tolist()
    assert not (joined.score.iloc[200:400].to_numpy() == exact.score.to_numpy()).any()
    assert joined.score.isna().sum() > 0 and joined.score.notna().sum() > 0


def test_ttl_nulls_old_values_and_rows_without_history_are_kept(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "offline")
    store.write(user_activity, user_rows(("u1", "2026-01-03T00:00Z", 1, 0.1, "ES", True),
                                         ("u1", "2026-01-04T00:00Z", 2, 0.2, "ES", False)))
    entities = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u9", "u1"],
                             "event_time": pd.to_datetime(["2026-01-02T23:59", "2026-01-03T12:00",
                                                           "2026-01-05T00:00", "2026-01-04T00:00",
                                                           "2026-01-05T00:00:00.000001"], utc=True, format="ISO8601")})
    got = store.point_in_time_join(entities, [(user_activity, ["clicks_7d", "is_new"])]).to_pandas()
    assert got["clicks_7d"].iloc[1:3].tolist() == [1, 2]
    assert pd.isna(got["clicks_7d"].iloc[0])  # before any value
    assert pd.isna(got["clicks_7d"].iloc[3])  # an entity with no feature rows at all: kept, with nulls
    assert got["clicks_7d"].iloc[2] == 2  # exactly 24 h old: at the TTL, still valid
    assert pd.isna(got["clicks_7d"].iloc[4])  # 1 µs past the TTL
    assert len(got) == 5


def test_several_views_join_side_by_side_and_name_clashes_are_refused(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "offline")
    store.write(user_activity, user_rows(("u1", "2026-01-03T00:00Z", 1, 0.1, "ES", True)))
    store.write(user_score, pd.DataFrame({"user_id": [5], "event_time": [T0], "score": [0.5], "level": [3]}))
    entities = pd.DataFrame({"user_id": ["u1"], "uid": [5], "event_time": [pd.Timestamp("2026-01-03T06:00Z")]})
    renamed = user_score_by_uid()
    store.write(renamed, pd.DataFrame({"uid": [5], "event_time": [pd.Timestamp("2026-01-03T01:00Z")],
                                       "score": [0.5], "level": [3]}))
    got = store.point_in_time_join(entities, [(user_activity, ["clicks_7d"]), (renamed, ["score"])]).to_pandas()
    assert got[["clicks_7d", "score"]].iloc[0].tolist() == [1, 0.5]
    full = store.point_in_time_join(entities, [(user_activity, ["country"])], full_names=True)
    assert full.column_names == ["user_id", "uid", "event_time", "user_activity__country"]
    with pytest.raises(InvalidInput, match=r"Output column 'user_id'.*clashes.*full_names=True"):
        clash = entities.rename(columns={"user_id": "u"}).assign(user_id="x")
        store.point_in_time_join(clash, [(user_activity, ["clicks_7d"]), (_view_with_feature("user_id"), ["user_id"])])


def user_score_by_uid():  # type: ignore[no-untyped-def]
    @feature_view(entities={"uid": "int64"}, features={"score": "float64", "level": "int64"}, ttl=None)
    def uid_score() -> None: ...

    return uid_score


def _view_with_feature(name: str):  # type: ignore[no-untyped-def]
    @feature_view(entities={"u": "string"}, features={name: "string"}, ttl=None)
    def other() -> None: ...

    return other


def test_bad_entity_rows_are_refused_naming_the_column(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "offline")
    good = pd.DataFrame({"user_id": ["u1"], "event_time": [pd.Timestamp("2026-01-03T06:00Z")]})
    with pytest.raises(NaiveTimestamp, match=r"Entity column 'event_time' has no time zone"):
        store.point_in_time_join(good.assign(event_time=pd.Timestamp("2026-01-03")), [(user_activity, ["ctr_7d"])])
    with pytest.raises(EntityKeyError, match=r"lack key column 'user_id' needed by feature view 'user_activity'"):
        store.point_in_time_join(good.drop(columns=["user_id"]), [(user_activity, ["ctr_7d"])])
    with pytest.raises(EntityKeyError, match=r"Entity key column 'user_id' \(for view 'user_activity'\) has type "
                                             r"int64, but the entity key is declared string"):
        store.point_in_time_join(good.assign(user_id=[1]), [(user_activity, ["ctr_7d"])])
    with pytest.raises(InvalidInput, match=r"no timestamp column 'ts'.*timestamp_column"):
        store.point_in_time_join(good, [(user_activity, ["ctr_7d"])], timestamp_column="ts")
    with pytest.raises(UnknownFeature, match=r"Unknown feature 'ctr' in feature view 'user_activity'"):
        store.point_in_time_join(good, [(user_activity, ["ctr"])])
    # A view with no offline data yet still returns every row, with nulls.
    empty = store.point_in_time_join(good, [(user_activity, ["ctr_7d", "country"])]).to_pandas()
    assert len(empty) == 1 and empty[["ctr_7d", "country"]].isna().all(axis=None)


def test_writes_replace_whole_days_keep_the_last_duplicate_and_backfills_are_idempotent(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path / "offline")
    first = store.write(user_activity, user_rows(("u1", "2026-01-03T10:00Z", 1, 0.1, "ES", True),
                                                 ("u1", "2026-01-03T10:00Z", 9, 0.9, "ES", True),
                                                 ("u2", "2026-01-04T10:00Z", 2, 0.2, "DE", True)))
    assert [d.isoformat() for d in first.days] == ["2026-01-03", "2026-01-04"] and first.rows == 2
    assert store.read(user_activity)["clicks_7d"].to_pylist() == [9, 2]  # the later duplicate won
    store.write(user_activity, user_rows(("u3", "2026-01-04T11:00Z", 3, 0.3, "FR", False)))
    assert store.read(user_activity)["user_id"].to_pylist() == ["u1", "u3"]  # day 4 replaced as a whole
    sources = {"activity": user_rows(("u1", "2026-01-02T10:00Z", 1, 0.1, "ES", True),
                                     ("u5", "2026-01-05T10:00Z", 5, 0.5, "ES", True))}
    for _ in range(2):
        result = backfill(user_activity, sources, store, start=utc(2026, 1, 2), end=utc(2026, 1, 5))
    assert [d.isoformat() for d in result.days] == ["2026-01-02"]
    assert [d.isoformat() for d in result.removed_days] == []  # removed on the first run
    table = store.read(user_activity)
    assert table["user_id"].to_pylist() == ["u1"]  # days 3 and 4 held no rows in the range: cleared
    assert store.stats(user_activity).rows == 1 and store.stats(user_activity).days == 1
    with pytest.raises(InvalidInput, match=r"1 rows of view 'user_activity' lie outside replace_range"):
        store.write(user_activity, sources["activity"], replace_range=(utc(2026, 1, 2), utc(2026, 1, 3)))
    window = store.read(user_activity, start=utc(2026, 1, 2, 10), end=utc(2026, 1, 2, 10, 1))
    assert window.num_rows == 1 and window.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
