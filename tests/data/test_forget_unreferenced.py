"""`forget` reaches personal data in blobs that a crashed writer left unreferenced (issue 20)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from yarnit.core import SimulatedClock
from yarnit.data import Datasets, DatasetSchema, Deletions, PurgeQueue
from yarnit.storage import Workspace


def _crashed_ingest(ws: Workspace, frame: pd.DataFrame) -> str:
    """What an ingest killed between storing its Parquet and recording its row leaves: a blob and no row."""
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return ws.artifacts.put_bytes(sink.getvalue()).sha256


def test_forget_purges_the_subject_from_an_unreferenced_blob(
        keyed_ws: Workspace, schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    ws = keyed_ws
    Datasets(ws).ingest_frame("clicks", make_clicks(200, seed=1), source="day1", schema=schema)
    orphan = _crashed_ingest(ws, make_clicks(100, seed=2, start_id=200))
    deletions = Deletions(ws, erasers=())
    assert any(f.artifact_sha256 == orphan for f in deletions.scan("u007"))  # it is there, reachable by nothing

    receipt = deletions.forget("u007", grace=timedelta(days=2))
    assert orphan in receipt.detail["scheduled_purges"]
    assert any("unreferenced artifacts" in s for s in receipt.detail["searched"])
    waiting = [r for r in receipt.detail["remaining"] if r.get("sha256") == orphan]
    assert receipt.status == "partial" and waiting[0]["kind"] == "purge"
    assert "left by an interrupted write" in waiting[0]["where"]

    assert isinstance(ws.clock, SimulatedClock)
    ws.clock.advance(timedelta(days=2, seconds=1))
    report = PurgeQueue(ws).purge_due()
    assert orphan in report.purged and not ws.artifacts.exists(orphan)
    assert deletions.scan("u007") == [] and deletions.receipt(receipt.id).status == "completed"


def test_an_unreferenced_blob_without_the_subject_is_left_to_the_gc(
        keyed_ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    ws = keyed_ws
    frame = make_clicks(50, seed=3)
    orphan = _crashed_ingest(ws, frame[frame["user_id"] != "u007"])
    receipt = Deletions(ws, erasers=()).forget("u007", grace=timedelta(0))
    assert receipt.status == "completed" and orphan not in receipt.detail["scheduled_purges"]
    assert ws.artifacts.exists(orphan)
