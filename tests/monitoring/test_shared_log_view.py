"""One view of the prediction log per monitor pass (h29): its readers share one listing, one stat per segment and
the records decoded from each segment's new bytes; an erasure is never hidden by a view."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.slo import parse_slo_file
from yarnit.serving import predlog
from yarnit.serving.predlog import PredictionLog, erase_from_prediction_log, read_segment, segment_paths, \
    shared_log_view
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
SLOS = {"service": "shop", "slos": [
    {"name": "avail", "sli": "serving_availability", "model": "ctr", "objective": 99, "window": "7d"},
    {"name": "labels", "sli": "label_completeness", "model": "ctr", "objective": 90, "window": "7d",
     "params": {"label_delay": "1h"}},
]}


@pytest.fixture
def ws(tmp_path):
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), SimulatedClock(T0))
    yield workspace
    workspace.close()


def write(ws, n, prefix="r", instance=None):
    log = PredictionLog(ws.home / "prediction_log", ws.clock, fsync=False)
    for i in range(n):
        log.append({"request_id": f"{prefix}{i}", "time": ws.clock.now(), "role": "primary", "protocol": "v1",
                    "model": "ctr", "status": 200, "latency_ms": 3.0, "key": None, "version": 2,
                    "alias": "production", "served_by": "model", "predictions": [0.2, 0.3],
                    "instances": [instance or {"device": "web"}, {"device": "ios"}]})
    log.close()


def test_a_monitor_pass_decodes_each_new_line_once(ws, monkeypatch):
    (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLOS))
    monitor = Monitor(ws, parse_slo_file(SLOS), sinks=[])
    write(ws, 30)
    ws.clock.advance(60)
    parsed = []
    real = predlog._parse_line
    monkeypatch.setattr(predlog, "_parse_line", lambda line: parsed.append(1) or real(line))
    monitor.run_once()  # traffic summaries, the quality join and the SLI counts all read the 30 records
    assert len(parsed) == 30
    state = monitor.run_once()
    assert state["modules"]["traffic"]["report"]["records"] == 0  # nothing new: nothing read again
    write(ws, 5, prefix="s")
    ws.clock.advance(60)
    parsed.clear()
    state = monitor.run_once()
    assert len(parsed) == 5
    assert state["modules"]["traffic"]["report"]["records"] == 5
    assert state["modules"]["quality"]["report"]["this_run"]["records"] == 5


def test_a_view_shares_reads_and_an_erasure_empties_it(ws):
    write(ws, 3, instance={"device": "web", "email": "x"})
    (segment,) = segment_paths(ws.home / "prediction_log")
    assert read_segment(segment) is not read_segment(segment)  # no view: each read its own
    with shared_log_view():
        first = read_segment(segment)
        assert read_segment(segment) is first
        assert read_segment(segment, max_bytes=1 << 20) is first  # a bounded read that the whole rest fits in
        with shared_log_view():  # nested: the same view
            assert read_segment(segment) is first
        erase_from_prediction_log(ws.home / "prediction_log", ["r1"])
        after = read_segment(segment)
        assert [r["request_id"] for r in after.records] == ["r0", "r2"]
    assert [r["request_id"] for r in read_segment(segment).records] == ["r0", "r2"]


def test_a_view_is_not_seen_by_other_threads(ws):
    import threading

    write(ws, 2)
    (segment,) = segment_paths(ws.home / "prediction_log")
    seen = {}
    with shared_log_view():
        mine = read_segment(segment)
        thread = threading.Thread(target=lambda: seen.setdefault("read", read_segment(segment)))
        thread.start()
        thread.join()
    assert seen["read"] is not mine and seen["read"].records == mine.records
    assert ws.clock.now() < T0 + timedelta(days=1)
