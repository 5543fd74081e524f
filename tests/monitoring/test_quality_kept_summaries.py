"""The quality join keeps the summaries it wrote for its next run: the same store as a fresh process each run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring import quality
from yarnit.monitoring.quality_store import (
    SUMMARIES_TOKEN,
    QualityStore,
    quality_db_path,
)
from yarnit.monitoring.quality_summary import QualitySummary, bin_of
from yarnit.monitoring.retention import expire_quality
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
SCORE = 0.1001  # three of these added one by one, then taken back two and one, leave 2.8e-17 in an empty bin


def _log(ws, clock, requests):
    log = PredictionLog(ws.home / "prediction_log", clock, fsync=False)
    for request_id, score, at in requests:
        log.append({"request_id": request_id, "time": at, "role": "primary", "protocol": "v1", "model": "ctr",
                    "status": 200, "latency_ms": 3.0, "key": None, "version": 2, "alias": "production",
                    "served_by": "model", "predictions": [score], "instances": [{"country": "DE"}]})
    log.close()


def _labels(ws, path, rows):
    path.write_text("".join(json.dumps({"request_id": r, "index": 0, "kind": kind, "value": value,
                                        "event_time": at.isoformat()}) + "\n" for r, kind, value, at in rows))
    quality.ingest_labels(ws, path)


def _stored(ws) -> list[tuple]:
    store = QualityStore(quality_db_path(ws.home))
    try:
        return store.conn.execute("SELECT model, version, slice, hour, data FROM summaries ORDER BY 1, 2, 3, 4"
                                  ).fetchall()
    finally:
        store.close()


def _month(root, *, fresh: bool):
    """Records and labels over four runs; ``fresh``: every run starts as a new process would (nothing kept)."""
    clock = SimulatedClock(T0)
    ws = open_workspace(Settings.for_home(root / "home"), clock)

    def run():
        if fresh:
            quality._KEPT_RUNS.clear()
        return quality.update(ws)

    try:
        _log(ws, clock, [(f"r{i}", SCORE, T0 + timedelta(minutes=i)) for i in range(3)])
        clock.advance(timedelta(minutes=30))
        run()
        _labels(ws, root / "a.jsonl", [("r0", "shown", 0, clock.now()), ("r1", "shown", 0, clock.now())])
        assert run()["this_run"]["not_shown"] == 2
        _labels(ws, root / "b.jsonl", [("r2", "shown", 0, clock.now())])
        assert run()["this_run"]["not_shown"] == 1
        _log(ws, clock, [("r3", SCORE, T0 + timedelta(minutes=20))])  # logged late, into the same hour and bin
        _labels(ws, root / "c.jsonl", [("r3", "click", 1, clock.now())])
        assert run()["this_run"]["labels_joined"] == 1
        return _stored(ws), ws.home
    finally:
        ws.close()


def test_kept_summaries_store_what_a_fresh_process_stores_and_drop_an_emptied_bins_residue(tmp_path):
    fresh, _home = _month(tmp_path / "fresh", fresh=True)
    kept, home = _month(tmp_path / "kept", fresh=False)
    assert kept == fresh
    assert quality._file_identity(quality_db_path(home)) in quality._KEPT_RUNS  # the kept path was the one taken
    (whole,) = [json.loads(data) for _m, _v, slice_, _h, data in kept if slice_ == ""]
    assert whole["bins"] == [int(bin_of([SCORE])[0])] and whole["p"] == [SCORE] and whole["n"] == [1]


def test_a_summary_written_by_another_writer_is_read_from_the_file(tmp_path):
    clock = SimulatedClock(T0)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        _log(ws, clock, [("r0", 0.3, T0)])
        clock.advance(timedelta(minutes=5))
        quality.update(ws)
        hour = int(T0.timestamp()) // 3600
        store = QualityStore(quality_db_path(ws.home))
        before = store.meta(SUMMARIES_TOKEN)
        other = store.summary("ctr", "2", "", hour)
        other.add_predictions([0.7])  # another process's join (or a repair) changed the hour meanwhile
        store.put_summary("ctr", "2", "", hour, other)
        assert store.meta(SUMMARIES_TOKEN) != before
        store.close()
        _labels(ws, tmp_path / "l.jsonl", [("r0", "click", 1, clock.now())])
        quality.update(ws)
        (data,) = [d for _m, _v, s, _h, d in _stored(ws) if s == ""]
        assert json.loads(data)["n"] == [1, 1] and json.loads(data)["pos"] == [1, 0]  # 0.3 labelled; 0.7 kept
    finally:
        ws.close()


def test_retention_and_a_failed_run_leave_nothing_kept_to_use(tmp_path):
    clock = SimulatedClock(T0)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        _log(ws, clock, [("r0", 0.3, T0)])
        clock.advance(timedelta(minutes=5))
        quality.update(ws)
        path = quality_db_path(ws.home)
        store = QualityStore(path)
        token = store.meta(SUMMARIES_TOKEN)
        store.close()
        assert expire_quality(ws, T0 + timedelta(hours=2), dry_run=False)  # the hour's summaries are gone
        store = QualityStore(path)
        assert store.meta(SUMMARIES_TOKEN) != token
        _log(ws, clock, [("r1", 0.4, T0 + timedelta(minutes=2))])
        join = quality.QualityJoin(store, ws.home / "prediction_log", quality.QualityConfig(), clock)
        join._complete = None  # type: ignore[assignment]  # dies after the summaries are written, before commit
        with pytest.raises(TypeError):
            join.run()
        store.close()
        assert quality._file_identity(path) not in quality._KEPT_RUNS
        quality.update(ws)
        (data,) = [d for _m, _v, s, _h, d in _stored(ws) if s == ""]
        assert json.loads(data)["n"] == [1]  # r1 alone: r0's hour was expired and not written back from memory
    finally:
        ws.close()


def test_sparse_form_is_what_the_json_form_parses_back():
    summary = QualitySummary()
    summary.add_predictions([SCORE] * 3 + [0.0, 1.0, 0.5])
    summary.add_labelled([0.0, 0.5], [1, 0])
    summary.remove_predictions(np.array([SCORE, SCORE]))
    summary.remove_predictions(np.array([SCORE]))  # a residue in an empty bin
    back = QualitySummary.from_sparse(summary.to_sparse())
    parsed = QualitySummary.from_json(json.loads(json.dumps(summary.to_json())))
    for name in ("n", "p", "pos", "neg", "lab_p"):
        assert np.array_equal(getattr(back, name), getattr(parsed, name))
        assert getattr(back, name).dtype == getattr(parsed, name).dtype
    emptied = int(bin_of([SCORE])[0])
    assert summary.n[emptied] == 0 and summary.p[emptied] > 0 == back.p[emptied]  # a residue neither form keeps
