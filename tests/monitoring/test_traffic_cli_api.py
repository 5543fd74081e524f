"""``yarnit monitor summarize|drift --json`` and ``GET /api/monitoring/drift/{model}`` on a real log and app."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.core.clock import SimulatedClock, SystemClock
from yarnit.monitoring import traffic
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import open_workspace


def _write(home, clock, base, *, hours):
    """Requests at ``base`` + h hours + 10 min for each (h, n, shift) in ``hours`` (the real log writer)."""
    log = PredictionLog(prediction_log_dir(home), clock, fsync=False)
    rng = np.random.default_rng(3)
    i = 0
    for h, n, shift in hours:
        at = base + timedelta(hours=h, minutes=10)
        for _ in range(n):
            i += 1
            price = float(rng.normal(10 + shift, 2))
            log.append({"request_id": f"r{i}", "time": at, "role": "primary", "model": "ctr", "version": 1,
                        "status": 200, "served_by": "model", "instances": [{"price": price, "country": "fr"}],
                        "predictions": [price / 20]})
    log.close()


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    open_workspace(Settings.for_home(home)).close()
    return home


def test_cli_summarize_and_drift_json(cli_home):
    # The CLI runs on the system clock: the records are placed relative to it (2 and 3 hours ago).
    now = SystemClock().now()
    base = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    _write(cli_home, SystemClock(), base, hours=[(0, 600, 0.0), (1, 600, 5.0)])
    runner = CliRunner()
    summary = runner.invoke(app, ["monitor", "summarize", "--json"])
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.stdout)["records"] == 1200
    at = (base + timedelta(hours=2)).isoformat()
    result = runner.invoke(app, ["monitor", "drift", "ctr", "--window", "1h", "--at", at,
                                 "--reference-window", "1h", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["state"] == "drift" and body["update"]["records"] == 0  # nothing new since summarize
    price = [c for c in body["columns"] if c["column"] == "price"][0]
    assert price["state"] == "drift" and price["threshold"] == 0.1 and price["p_value"] < 0.05
    assert body["window"]["requests"] == 600 and body["reference"]["requests"] == 600
    human = runner.invoke(app, ["monitor", "drift", "ctr", "--window", "1h", "--at", at, "--reference-window", "1h"])
    assert human.exit_code == 0 and "DRIFT" in human.output and "price" in human.output
    # off a terminal the (transient) progress bar prints nothing: the report is the first line, no blank one
    assert human.output.startswith("ctr: DRIFT"), human.output[:80]
    again = runner.invoke(app, ["monitor", "summarize"])
    assert again.exit_code == 0 and again.output.startswith("read 0 records"), again.output[:80]
    bad = runner.invoke(app, ["monitor", "drift", "ctr", "--window", "soon"])
    assert bad.exit_code == 1 and "--window must be a duration" in bad.output


def test_api_drift_reads_stored_summaries_only(sqlite_ws):
    clock = SimulatedClock(sqlite_ws.clock.now())
    base = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    _write(sqlite_ws.home, clock, base, hours=[(0, 400, 0.0), (1, 400, 0.0)])
    traffic.update(sqlite_ws, clock=clock)
    _write(sqlite_ws.home, clock, base, hours=[(1, 400, 5.0)])  # logged, not summarized yet
    client = TestClient(create_app(sqlite_ws))
    at = (base + timedelta(hours=2)).isoformat()
    ok = client.get("/api/monitoring/drift/ctr", params={"window": "1h", "at": at, "reference_window": "1h"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["state"] == "no_drift" and body["window"]["requests"] == 400  # the unsummarized shift is unseen
    assert body["summaries"]["updated_at"] is not None and body["summaries"]["age_s"] >= 0
    clock.advance(600)
    traffic.update(sqlite_ws, clock=clock)
    shifted = client.get("/api/monitoring/drift/ctr", params={"window": "1h", "at": at, "reference_window": "1h"})
    assert shifted.json()["state"] == "drift" and shifted.json()["window"]["requests"] == 800
    assert client.get("/api/monitoring/drift/nope").status_code == 404
    bad_window = client.get("/api/monitoring/drift/ctr", params={"window": "soon"})
    assert bad_window.status_code == 422 and "window must be a duration" in bad_window.text
    assert client.get("/api/monitoring/drift/ctr", params={"at": "yesterday"}).status_code == 422
    assert client.get("/api/monitoring/drift/ctr", params={"reference_window": "b/a"}).status_code == 422
    assert client.get("/api/monitoring/drift/bad%20name").status_code == 422


def test_api_drift_windows_reaching_before_year_1_are_a_422_not_a_500(sqlite_ws):
    """Date arithmetic overflowed into a 500 for a huge window, a huge reference shift or an `at` near year 1."""
    from testsupport import register_ctr

    register_ctr(sqlite_ws, 1)
    client = TestClient(create_app(sqlite_ws), raise_server_exceptions=False)
    for params in ({"window": "9999999w"}, {"window": "1d", "reference_window": "9999999w"},
                   {"window": "1d", "at": "0001-01-01T00:00:00Z"}):
        response = client.get("/api/monitoring/drift/ctr", params=params)
        assert response.status_code == 422, (params, response.text)
        assert "before the year 1" in response.json()["detail"]
