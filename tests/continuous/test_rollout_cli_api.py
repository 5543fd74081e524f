"""``yarnit rollout …`` with --json, and /api/rollouts with and without a token."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from testsupport import TOKEN, register_ctr
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.cli.app import app
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.serving.router import TrafficPolicyStore
from yarnit.storage import open_workspace

AUTH = {"Authorization": f"Bearer {TOKEN}"}
runner = CliRunner()


def cli(home: Path, *args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(app, list(args), env={"YARNIT_HOME": str(home)})


def test_cli_start_step_status_abort_as_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_workspace(Settings.for_home(home)) as ws:
        register_ctr(ws)
    started = cli(home, "rollout", "start", "ctr", "--version", "2", "--stages", "5,50,100", "--bake", "10m",
                  "--min-requests", "100", "--json")
    assert started.exit_code == 0, started.output
    body = json.loads(started.stdout)
    assert body["status"] == "running" and body["canary_percent"] == 5 and body["config"]["bake_s"] == 600
    again = cli(home, "rollout", "start", "ctr", "--version", "2")
    assert again.exit_code == 1 and "already running" in again.output
    stepped = json.loads(cli(home, "rollout", "step", "ctr", "--json").stdout)
    assert stepped["action"] == "hold" and "no traffic" in stepped["reason"]
    status = json.loads(cli(home, "rollout", "status", "ctr", "--json").stdout)
    assert status["analysis"]["decision"] == "nodata" and len(status["analysis"]["metrics"]) == 5
    human = cli(home, "rollout", "status", "ctr")
    assert human.exit_code == 0 and "latency_ms" in human.output
    aborted = json.loads(cli(home, "rollout", "abort", "ctr", "--reason", "test over", "--json").stdout)
    assert aborted["status"] == "aborted" and aborted["canary_percent"] == 0
    bad = cli(home, "rollout", "start", "ctr", "--version", "2", "--bake", "soon")
    assert bad.exit_code == 1 and "duration" in bad.output
    missing = cli(home, "rollout", "status", "nope", "--json")
    assert missing.exit_code == 1 and "No rollout of nope" in missing.output


def test_api_rollouts_need_the_token_for_writes(tmp_path: Path) -> None:
    clock = SimulatedClock(utc(2026, 3, 2, 9))
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    try:
        register_ctr(ws)
        client = TestClient(create_app(ws), raise_server_exceptions=False)
        body = {"version": 2, "stages": [5, 25, 100], "bake": "5m", "min_requests": 50}
        assert client.post("/api/rollouts/ctr", json=body).status_code == 401
        assert client.post("/api/rollouts/ctr", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/rollouts/ctr").status_code == 404
        started = client.post("/api/rollouts/ctr", json=body, headers=AUTH)
        assert started.status_code == 200, started.text
        assert started.json()["started_by"].startswith("token:") and TrafficPolicyStore(ws).get("ctr").canary_percent == 5
        assert client.post("/api/rollouts/ctr", json=body, headers=AUTH).status_code == 409
        assert client.post("/api/rollouts/ctr/step").status_code == 401
        step = client.post("/api/rollouts/ctr/step", headers=AUTH)
        assert step.status_code == 200 and step.json()["action"] == "hold"
        shown = client.get("/api/rollouts/ctr").json()
        assert {m["name"] for m in shown["analysis"]["metrics"]} == {"error_rate", "fallback_rate", "latency_ms",
                                                                   "predictions", "ctr"}
        listed = client.get("/api/rollouts").json()
        assert [(r["model"], r["status"], r["score"]) for r in listed] == [("ctr", "running", 0.0)]
        assert client.post("/api/rollouts/ctr/abort", json={"reason": "x"}).status_code == 401
        assert client.post("/api/rollouts/ctr/abort", json={"reason": "bad\nline"}, headers=AUTH).status_code == 422
        assert client.post("/api/rollouts/ctr/abort", json={"reason": "done"}, headers=AUTH).json()["status"] == "aborted"
        assert client.post("/api/rollouts/ctr/abort", json={"reason": "again"}, headers=AUTH).status_code == 409
        assert client.post("/api/rollouts/ctr", json=body | {"stages": [50, 5]}, headers=AUTH).status_code in (400, 422)
    finally:
        ws.close()
