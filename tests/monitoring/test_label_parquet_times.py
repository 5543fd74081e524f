"""Parquet label files: timestamp columns are converted to epoch seconds by column (issue 18), to the very numbers
the row-by-row path (``to_pylist``, one datetime per value, then ``_epoch_s``) gives."""

from __future__ import annotations

import sqlite3
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring import labels, quality
from yarnit.monitoring.quality_store import quality_db_path
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def _seconds(value):
    with warnings.catch_warnings():  # pandas warns when a Timestamp drops nanoseconds
        warnings.simplefilter("ignore")
        return labels._epoch_s(value)


def _column(unit: str, tz: str | None, micros: np.ndarray, nulls: np.ndarray) -> pa.Array:
    scale = {"s": 10**6, "ms": 10**3, "us": 1}
    values = micros * 1000 if unit == "ns" else micros // scale[unit]
    return pa.array(values, type=pa.int64(), mask=nulls).cast(pa.timestamp(unit, tz=tz))


@pytest.mark.parametrize("tz", [None, "UTC"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_a_timestamp_column_gives_the_seconds_each_datetime_gives(unit: str, tz: str | None) -> None:
    rng = np.random.default_rng(0)
    micros = np.concatenate([rng.integers(-10**15, 3 * 10**15, 5000), [0, -1, 1, 2**52, -(2**52)]])
    nulls = rng.random(len(micros)) < 0.05
    table = pa.table({"event_time": _column(unit, tz, micros, nulls), "index": pa.array(np.arange(len(micros)))})
    fast = list(labels._batch_rows(table.to_batches()[0]))
    slow = table.to_pylist()
    assert [r["index"] for r in fast] == [r["index"] for r in slow]
    assert [_seconds(r["event_time"]) for r in fast] == [_seconds(r["event_time"]) for r in slow]
    assert labels._epoch_column(table.column("event_time").combine_chunks()) is not None


@pytest.mark.parametrize("column", [
    pa.array([1_000_000_007], type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")),  # finer than a datetime holds
    pa.array([2**60], type=pa.int64()).cast(pa.timestamp("us")),  # past what a float holds to the microsecond
    pa.array([0], type=pa.int64()).cast(pa.timestamp("us", tz="Europe/Paris")),  # another zone
    pa.array([None, None], type=pa.timestamp("us", tz="UTC")),
    pa.array([19_000], type=pa.date32()),
    pa.array(["2026-03-01T10:00:00Z"]),
])
def test_other_columns_go_row_by_row_as_before(column: pa.Array) -> None:
    if pa.types.is_timestamp(column.type) and column.null_count == len(column):
        assert labels._epoch_column(column) == [None, None]  # all missing: each stays None
        return
    assert labels._epoch_column(column) is None
    table = pa.table({"event_time": column})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = table.to_pylist()
        except (ValueError, OverflowError) as exc:  # pyarrow cannot make a datetime of it: nor can the ingest
            with pytest.raises(type(exc)):
                list(labels._batch_rows(table.to_batches()[0]))
            return
        assert list(labels._batch_rows(table.to_batches()[0])) == expected


def test_a_parquet_file_stores_the_labels_its_json_lines_twin_stores(tmp_path) -> None:
    """The same labels from Parquet (pandas' nanosecond UTC columns, as the operate demo writes them) and from JSON
    Lines (ISO text, parsed by ``datetime.fromisoformat``) store identical rows, times to the last bit."""
    rng = np.random.default_rng(1)
    n = 300
    event = pd.Timestamp(T0) - pd.to_timedelta(rng.integers(0, 86_400 * 10**6, n), unit="us")
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "index": rng.integers(0, 30, n),
                          "kind": np.where(rng.random(n) < 0.9, "click", "shown"), "value": rng.integers(0, 2, n),
                          "event_time": event, "arrival_time": event + pd.Timedelta(minutes=3)})
    stored = {}
    for name in ("parquet", "jsonl"):
        clock = SimulatedClock(T0)
        ws = open_workspace(Settings.for_home(tmp_path / name), clock)
        try:
            path = tmp_path / f"labels.{name}"
            if name == "parquet":
                frame.to_parquet(path)
            else:
                frame.assign(event_time=[t.isoformat() for t in frame["event_time"]],
                             arrival_time=[t.isoformat() for t in frame["arrival_time"]]).to_json(
                    path, orient="records", lines=True)
            report = quality.ingest_labels(ws, path)
            assert (report.rows, report.invalid) == (n, 0)
            with sqlite3.connect(quality_db_path(ws.home)) as conn:
                stored[name] = conn.execute("SELECT * FROM labels ORDER BY request_id, idx").fetchall()
        finally:
            ws.close()
    assert stored["parquet"] == stored["jsonl"] and len(stored["parquet"]) > 0
    assert stored["parquet"][0][3] == (event[0] - pd.Timestamp("1970-01-01", tz="UTC")) // timedelta(microseconds=1) / 1e6
