"""ingest_label_rows: labels from memory are stored exactly as the same labels read from a file."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring import quality
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def _labels() -> pd.DataFrame:
    """The operate demo's pending labels (request_labels' columns), with a refused and a future row."""
    t = pd.Timestamp(T0 - timedelta(minutes=5))
    return pd.DataFrame({
        "request_id": ["shop-1", "shop-1", "shop-2", "bad id!", "shop-3", "shop-4"],
        "index": [0, 1, 0, 0, 2, 0], "kind": ["click", "click", "purchase", "click", "shown", "click"],
        "value": [1, 0, 1, 1, 0, 1],
        "event_time": [t, t, t, t, t, t + timedelta(hours=3)],
        "arrival_time": [t, t, t, t, t, t + timedelta(hours=3)]})


def _stored(home) -> list[tuple]:
    with sqlite3.connect(quality.quality_db_path(home)) as conn:
        return sorted(conn.execute("SELECT request_id, idx, value, event_s, arrival_s FROM labels").fetchall())


def test_rows_from_memory_store_what_the_same_parquet_file_stores(tmp_path) -> None:
    frame = _labels()
    reports, stored = [], []
    for name in ("file", "memory"):
        ws = open_workspace(Settings.for_home(tmp_path / name), SimulatedClock(T0))
        try:
            if name == "file":
                path = tmp_path / "labels.parquet"
                frame.to_parquet(path)
                report = quality.ingest_labels(ws, path)
            else:
                rows = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
                report = quality.ingest_label_rows(ws, rows, name="labels.parquet")
            reports.append(report)
            stored.append(_stored(ws.home))
        finally:
            ws.close()
    assert reports[0] == reports[1]
    assert (reports[1].rows, reports[1].stored, reports[1].invalid, reports[1].ignored_kind, reports[1].future) == \
        (6, 3, 1, 1, 1)
    assert stored[0] == stored[1] and len(stored[1]) == 3
