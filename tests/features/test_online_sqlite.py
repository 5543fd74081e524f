"""The SQLite online store's table layout, and the value codec's generated decoder."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
from features.support import product_stats, user_activity, user_rows

from yarnit.core import SimulatedClock, utc
from yarnit.features import FeatureStatus, OnlineFeatures, conform, feature_view, open_online_store, table_name
from yarnit.features._codec import ViewCodec
from yarnit.features.materialize import write_online


def _stats(*rows: tuple[int, str, float]) -> pd.DataFrame:
    """Rows of product_stats: (product_id, event_time, value of every feature)."""
    return pd.DataFrame({"product_id": [r[0] for r in rows],
                         "event_time": pd.to_datetime([r[1] for r in rows], utc=True),
                         **{f"f{i}": [r[2] + i for r in rows] for i in range(10)}})


def _ddl(path: Path, table: str) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (f"fv:{table}",)).fetchone()[0])


def test_integer_keys_are_the_rowid_and_string_keys_cluster_a_without_rowid_table(
        tmp_path: Path, clock: SimulatedClock) -> None:
    online = open_online_store(f"sqlite:///{tmp_path}/online.db")
    write_online(product_stats, online, [_stats((7, "2026-01-05T08:00Z", 1.0))], clock=clock, full=True)
    write_online(user_activity, online, [user_rows(("u1", "2026-01-05T08:00Z", 1, 0.1, "ES", True))],
                 clock=clock, full=False)
    online.close()
    assert "k INTEGER PRIMARY KEY" in _ddl(tmp_path / "online.db", table_name(product_stats))
    assert "WITHOUT ROWID" not in _ddl(tmp_path / "online.db", table_name(product_stats))
    assert _ddl(tmp_path / "online.db", table_name(user_activity)).endswith("WITHOUT ROWID")


def test_an_integer_keyed_table_written_by_an_earlier_version_is_still_read_upserted_and_replaced(
        tmp_path: Path, clock: SimulatedClock) -> None:
    # Before the rowid layout, every data table was WITHOUT ROWID with an untyped key.
    path = tmp_path / "online.db"
    table = table_name(product_stats)
    with sqlite3.connect(path) as conn:
        conn.execute(f'CREATE TABLE "fv:{table}" (k PRIMARY KEY, event_us INTEGER NOT NULL, payload BLOB NOT NULL) '
                     "WITHOUT ROWID")
    online = open_online_store(f"sqlite:///{path}")
    reader = OnlineFeatures(online, [product_stats], clock)
    write_online(product_stats, online, [_stats((1, "2026-01-05T06:00Z", 10.0), (2, "2026-01-05T06:00Z", 20.0))],
                 clock=clock, full=False)
    write_online(product_stats, online, [_stats((2, "2026-01-05T07:00Z", 30.0), (1, "2026-01-05T05:00Z", 0.0))],
                 clock=clock, full=False)
    assert _ddl(path, table).endswith("WITHOUT ROWID")  # an incremental write keeps the table it finds
    assert [r.values["f1"] for r in reader.read("product_stats", [1, 2, 3])] == [11.0, 31.0, None]
    assert reader.read_one("product_stats", 2).event_time == utc(2026, 1, 5, 7)
    write_online(product_stats, online, [_stats((3, "2026-01-05T08:00Z", 5.0))], clock=clock, full=True)
    assert "k INTEGER PRIMARY KEY" in _ddl(path, table)  # a full write rebuilds it in the current layout
    assert [r.status for r in reader.read("product_stats", [1, 3])] == [FeatureStatus.MISSING, FeatureStatus.PRESENT]
    assert online.delete(table, [3, 4]) == 1
    assert reader.read_one("product_stats", 3).status is FeatureStatus.MISSING
    online.close()


def test_the_generated_decoder_restores_every_value_and_null_across_two_mask_words() -> None:
    # 70 features need two 64-bit null-mask words; strings sit between numbers in both halves.
    kinds = ["int64", "float64", "string", "bool", "float64"]
    features = {f"c{i}": kinds[i % len(kinds)] for i in range(70)}

    @feature_view(entities={"id": "int64"}, features=features, ttl=timedelta(days=1))
    def wide() -> None: ...

    values = {"int64": lambda i: i * 1000, "float64": lambda i: i / 7, "string": lambda i: f"é{i}" * (i % 4),
              "bool": lambda i: i % 3 == 0}
    rows = []
    for r in range(3):
        nulls = {0, 2, 63, 64, 67, 69} if r == 1 else set()  # r 0: none null; r 2: all null
        rows.append({"id": r, "event_time": utc(2026, 1, 5, r),
                     **{n: None if r == 2 or i in nulls else values[t](i + r)
                        for i, (n, t) in enumerate(features.items())}})
    table = conform(wide, pa.Table.from_pylist(rows))
    codec = ViewCodec(wide)
    decoded = [codec.decode(blob) for blob in codec.encode(table).payloads]
    expected = [{n: row[n] for n in features} for row in rows]
    assert [d[1] for d in decoded] == expected
    assert [d[0] for d in decoded] == [int(utc(2026, 1, 5, r).timestamp()) * 10**6 for r in range(3)]
    assert all(list(d[1]) == list(features) for d in decoded)  # in declared order
