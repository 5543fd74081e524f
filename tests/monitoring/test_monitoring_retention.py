"""Retention class ``monitoring``: hourly traffic windows and quality rows older than the policy go, newer stay."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from testsupport.monitoring import write_slos
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.data.retention import DEFAULT_POLICIES, Retention
from yarnit.monitoring import quality, traffic
from yarnit.monitoring.quality_store import QualityStore, quality_db_path
from yarnit.monitoring.retention import MonitoringRetention
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos, prediction_log_dir
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def ws(tmp_path):
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), SimulatedClock(T0))
    yield workspace
    workspace.close()


def _serve(ws, n: int) -> None:
    """``n`` answered requests at the clock's now, into the real prediction log."""
    log = PredictionLog(prediction_log_dir(ws.home), ws.clock, fsync=False)
    for i in range(n):
        log.append({"request_id": f"r{ws.clock.now().timestamp():.0f}-{i}", "time": ws.clock.now(), "role": "primary",
                    "protocol": "v1", "model": "ctr", "status": 200, "latency_ms": 3.0, "version": 1,
                    "alias": "production", "served_by": "model", "predictions": [0.3],
                    "instances": [{"country": "fr", "price": 3.0}]})
    log.close()


def _two_days_of_summaries(ws) -> None:
    _serve(ws, 3)  # day 0, 10:00
    ws.clock.advance(timedelta(days=2))
    _serve(ws, 5)  # day 2, 10:00
    traffic.update(ws)
    quality.update(ws)


def _quality_hours(ws) -> list[int]:
    store = QualityStore(quality_db_path(ws.home))
    try:
        return sorted({int(r[0]) for r in store.conn.execute("SELECT hour FROM summaries")})
    finally:
        store.close()


def test_the_monitoring_class_expires_old_hours_of_traffic_and_quality_and_keeps_the_rest(ws):
    assert DEFAULT_POLICIES["monitoring"].max_age_days == 400
    _two_days_of_summaries(ws)
    windows = sorted((traffic.traffic_dir(ws.home) / "windows").glob("*/*.json"))
    assert len(windows) == 2 and len(_quality_hours(ws)) == 2
    whole = traffic.window_summary(ws, "ctr", T0 - timedelta(days=1), ws.clock.now() + timedelta(hours=1))
    assert whole.summary.requests == 8

    retention = Retention(ws, targets=[MonitoringRetention(ws)])
    assert retention.enforce().targets == {"monitoring": []}  # the default 400 days keeps both days
    ws.clock.advance(timedelta(days=400) - timedelta(hours=12))  # day 0's hour is 400 d 12 h old, day 2's 398 d
    report = Retention(ws, targets=[MonitoringRetention(ws)]).enforce(dry_run=True)
    assert report.targets["monitoring"][0] == "traffic window ctr 2026-03-01T10:00:00Z"
    # day 0's quality: summarized overall and by country (two rows), its frozen estimate, its completeness minute
    assert report.targets["monitoring"][1:] == [f"quality {t}: {n} row(s) before 2026-03-02T22:00:00+00:00"
                                                for t, n in (("summaries", 2), ("estimates", 1), ("completeness", 1))]
    assert len(sorted((traffic.traffic_dir(ws.home) / "windows").glob("*/*.json"))) == 2  # a dry run removes nothing

    done = Retention(ws, targets=[MonitoringRetention(ws)]).enforce()
    assert done.targets == report.targets
    left = sorted((traffic.traffic_dir(ws.home) / "windows").glob("*/*.json"))
    assert left == [windows[1]]  # the file is gone, not only the index entry
    after = traffic.window_summary(ws, "ctr", T0 - timedelta(days=1), ws.clock.now())
    assert after.summary.requests == 5  # the newer hour is untouched
    assert _quality_hours(ws) == [int((T0 + timedelta(days=2)).timestamp()) // 3600]
    traffic.update(ws)  # the next update opens the checkpoint retention wrote
    assert Retention(ws, targets=[MonitoringRetention(ws)]).enforce().targets == {"monitoring": []}


def test_the_monitor_run_applies_the_stored_policy(ws, monkeypatch):
    write_slos(ws.home, sinks=[{"type": "log"}])
    _two_days_of_summaries(ws)
    Retention(ws).set_policy("monitoring", "1d", actor="test")
    result = Monitor(ws, load_workspace_slos(ws.home)).run_once()
    kept = result["modules"]["retention"]
    assert kept["state"] == "ok" and kept["report"]["max_age_days"] == 1
    assert "traffic window ctr 2026-03-01T10:00:00Z" in kept["report"]["removed"]
    assert traffic.window_summary(ws, "ctr", T0 - timedelta(days=1), ws.clock.now() + timedelta(hours=1)
                                  ).summary.requests == 5
    # `yarnit data enforce-retention` applies the class with the others (here: a what-if of 0 days)
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    runner = CliRunner()
    shown = runner.invoke(app, ["data", "retention", "show", "--json"])
    assert shown.exit_code == 0, shown.output and "monitoring" in shown.stdout
    what_if = runner.invoke(app, ["data", "enforce-retention", "--dry-run", "--set", "monitoring=0d", "--json"])
    assert what_if.exit_code == 0, what_if.output
    body = json.loads(what_if.stdout)
    assert body["targets"]["monitoring"][0].startswith("traffic window ctr 2026-03-03T10:00:00Z")
    assert body["policies"]["monitoring"]["max_age_days"] == 0
