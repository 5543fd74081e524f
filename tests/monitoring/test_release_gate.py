"""Target 7 where releases happen: the workspace SLO file's error-budget policy gates the CLI, the HTTP
control plane and the library; a spent budget (from a real prediction log) refuses promotions and canary
raises, an override needs a reason and is audited with the actor, and rollbacks are never refused."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from testsupport import TOKEN, register_ctr
from typer.testing import CliRunner

from yarnit.access import cli_actor
from yarnit.api import create_app
from yarnit.cli.app import app
from yarnit.core import Settings, SimulatedClock, SystemClock
from yarnit.core.atomic import atomic_write_text
from yarnit.monitoring import workspace as monitoring_workspace
from yarnit.monitoring.workspace import prediction_log_dir, slo_path
from yarnit.registry import ModelRegistry, ReleaseHalted
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log

SLOS = """\
service: shop
slos:
  - name: ctr-availability
    sli: serving_availability
    model: ctr
    objective: 99
    window: 28d
  - name: ctr-freshness
    sli: model_freshness
    model: ctr
    objective: 99
    params: {max_age: 30d}
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
runner = CliRunner()


def write_log(home: Path, clock: SimulatedClock, *, minutes: int, status: int) -> None:
    """``minutes`` of traffic on ``clock`` (two ``ctr`` requests a minute), written by the real log writer."""
    log = PredictionLog(prediction_log_dir(home), clock, fsync=False, aggregate_window_s=1e9, exemplars=10**6)
    for i in range(minutes * 2):
        record = {"request_id": f"r{clock.now().timestamp():.0f}-{i}", "time": clock.now(), "role": "primary",
                  "protocol": "v1", "model": "ctr", "status": status, "latency_ms": 5.0, "key": None}
        if status == 200:
            record.update(version=1, alias="production", served_by="model", predictions=[0.5])
        log.append(record)
        if i % 2:
            clock.advance(60)
    assert log.flush()
    log.close()


def audit_rows(ws: Workspace, action: str) -> list[dict]:
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id))
        return [dict(r) for r in rows.mappings()]


@pytest.fixture
def missing_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """model_freshness's source module is absent (as on a build without it), whatever this tree holds."""
    monkeypatch.setitem(monitoring_workspace.SOURCE_MODULES, "model_freshness", "yarnit.monitoring._not_installed")


# -- CLI ----------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    with open_workspace(Settings.for_home(home)) as ws:
        register_ctr(ws)  # v1 production, v2 blessed: only the budget can stop it
    return home


def cli(home: Path, *args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(app, list(args), env={"YARNIT_HOME": str(home)})


def test_slo_apply_refuses_a_bad_file_naming_the_field_and_writes_nothing(cli_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SLOS.replace("objective: 99\n    window: 28d", "objective: 100\n    window: 28d"))
    result = cli(cli_home, "slo", "apply", str(bad))
    assert result.exit_code == 1
    assert "slos[0] (ctr-availability).objective is 100; it must satisfy 0 < objective < 100" in result.output
    assert not slo_path(cli_home).exists()
    with open_workspace(Settings.for_home(cli_home)) as ws:
        assert audit_rows(ws, "slo.apply") == []


def test_cli_target_7_refusal_override_rollback_and_canary(cli_home: Path, tmp_path: Path, missing_probes) -> None:
    (tmp_path / "slos.yaml").write_text(SLOS)
    applied = cli(cli_home, "slo", "apply", str(tmp_path / "slos.yaml"), "--json")
    assert applied.exit_code == 0, applied.output
    summary = json.loads(applied.stdout)
    assert slo_path(cli_home).read_text() == SLOS and summary["slos"] == ["ctr-availability", "ctr-freshness"]
    # A full outage over the last 30 minutes of the CLI's (system) clock: the 1 % budget is spent many times.
    write_log(cli_home, SimulatedClock(SystemClock().now() - timedelta(minutes=31)), minutes=30, status=500)

    status = cli(cli_home, "slo", "status", "--json")  # no FILE: the workspace's; every kind from its source
    assert status.exit_code == 0, status.output
    by_name = {s["slo"]: s for s in json.loads(status.stdout)["slos"]}
    assert by_name["ctr-availability"]["budget_exhausted"] and by_name["ctr-availability"]["period"]["total"] == 60
    assert by_name["ctr-freshness"]["state"] == "no_source"
    assert "'model_freshness' has no source" in by_name["ctr-freshness"]["detail"]

    refused = cli(cli_home, "models", "promote", "ctr", "2")
    assert refused.exit_code == 1
    assert ("Refusing to promote model 'ctr' v2 to 'production': the error budget of SLO shop-ctr-availability is "
            "spent: 60 bad of 60 events in the last 28d") in refused.output
    assert "yarnit models rollback ctr" in refused.output and "--override-reason" in refused.output
    forced = cli(cli_home, "models", "promote", "ctr", "2", "--force", "--reason", "ship it")
    assert forced.exit_code == 1 and "error budget" in forced.output  # --force is about blessing only

    staged = cli(cli_home, "models", "promote", "ctr", "2", "--alias", "staging", "--json")
    assert staged.exit_code == 0, staged.output  # a non-gated alias is never halted
    override = cli(cli_home, "models", "promote", "ctr", "2", "--override-reason", "P0: checkout is down", "--json")
    assert override.exit_code == 0, override.output
    event = json.loads(override.stdout)
    assert (event["action"], event["actor"], event["to_version"]) == ("override-promote", cli_actor(), 2)
    assert "P0: checkout is down" in event["reason"] and "error budget of SLO shop-ctr-availability" in event["reason"]

    rolled = cli(cli_home, "models", "rollback", "ctr", "--json")  # the fix is never blocked by a spent budget
    assert rolled.exit_code == 0 and json.loads(rolled.stdout)["to_version"] == 1
    back = cli(cli_home, "models", "promote", "ctr", "2", "--json")  # v2 was rolled away: a new release, refused
    assert back.exit_code == 1

    raised = cli(cli_home, "models", "traffic", "ctr", "--canary-percent", "10")
    assert raised.exit_code == 1 and "Refusing to raise the canary share of model 'ctr' from 0% to 10%" in \
        raised.output and "--override-reason" in raised.output
    raised = cli(cli_home, "models", "traffic", "ctr", "--canary-percent", "10", "--override-reason", "P0 canary",
                 "--json")
    assert raised.exit_code == 0, raised.output
    lowered = cli(cli_home, "models", "traffic", "ctr", "--canary-percent", "2", "--json")
    assert lowered.exit_code == 0 and json.loads(lowered.stdout)["policy"]["canary_percent"] == 2

    with open_workspace(Settings.for_home(cli_home)) as ws:
        (apply_row,) = audit_rows(ws, "slo.apply")
        overrides = audit_rows(ws, "error_budget.override")
        assert ModelRegistry(ws).aliases("ctr") == {"production": 1, "staging": 2}
    assert apply_row["actor"] == cli_actor() and apply_row["detail"]["sha256"] == summary["sha256"]
    assert [(r["actor"], r["subject"], r["detail"]["override_reason"]) for r in overrides] == [
        (cli_actor(), "model:ctr:production", "P0: checkout is down"),
        (cli_actor(), "model:ctr:canary_share", "P0 canary")]
    assert all(r["detail"]["refusal"].startswith("the error budget of SLO shop-ctr-availability is spent")
               for r in overrides)


def test_cli_without_an_slo_file_has_no_gate(cli_home: Path) -> None:
    write_log(cli_home, SimulatedClock(SystemClock().now() - timedelta(minutes=31)), minutes=30, status=500)
    assert cli(cli_home, "models", "promote", "ctr", "2").exit_code == 0
    assert cli(cli_home, "models", "traffic", "ctr", "--canary-percent", "50").exit_code == 0
    no_file = cli(cli_home, "slo", "status")
    assert no_file.exit_code == 1 and "No SLO file has been applied" in no_file.output


# -- HTTP and the library (token_ws: tests/conftest.py) ---------------------------------------------------------
@pytest.fixture
def spent(token_ws: Workspace, clock: SimulatedClock, missing_probes) -> Workspace:
    atomic_write_text(slo_path(token_ws.home), SLOS)
    writer_clock = SimulatedClock(clock.now())
    write_log(token_ws.home, writer_clock, minutes=30, status=500)
    clock.advance(writer_clock.now() - clock.now())
    return token_ws


def test_http_target_7_409_override_rollback_canary_and_recovery(spent: Workspace, clock: SimulatedClock) -> None:
    client = TestClient(create_app(spent), raise_server_exceptions=False)
    refused = client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=AUTH)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "ReleaseHalted" and "the error budget of SLO shop-ctr-availability is spent" in \
        body["detail"] and '"override_reason"' in body["detail"]
    blank = client.post("/api/models/ctr/aliases/production", json={"version": 2, "override_reason": "  "},
                        headers=AUTH)
    assert blank.status_code == 409
    assert client.post("/api/models/ctr/aliases/production", json={"version": 2, "override_reason": "bad\nline"},
                       headers=AUTH).status_code == 422
    moved = client.post("/api/models/ctr/aliases/production",
                        json={"version": 2, "reason": "hotfix", "override_reason": "security fix"}, headers=AUTH)
    assert moved.status_code == 200, moved.text
    event = moved.json()
    assert event["action"] == "override-promote" and event["reason"].startswith("hotfix [override by ")
    (row,) = audit_rows(spent, "error_budget.override")
    assert row["actor"] == event["actor"] and row["actor"] != "api:anonymous"
    assert row["detail"]["override_reason"] == "security fix" and "is spent" in row["detail"]["refusal"]

    rolled = client.post("/api/models/ctr/rollback", json={"reason": "budget spent"}, headers=AUTH)
    assert rolled.status_code == 200 and rolled.json()["to_version"] == 1
    again = client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=AUTH)
    assert again.status_code == 409  # v2 left production by a rollback: moving it back is a new release

    up = client.put("/api/models/ctr/traffic", json={"canary_percent": 20}, headers=AUTH)
    assert up.status_code == 409 and up.json()["error"] == "CanaryHalted"
    up = client.put("/api/models/ctr/traffic", json={"canary_percent": 20, "override_reason": "P0 canary"},
                    headers=AUTH)
    assert up.status_code == 200, up.text
    down = client.put("/api/models/ctr/traffic", json={"canary_percent": 5}, headers=AUTH)
    assert down.status_code == 200 and down.json()["policy"]["canary_percent"] == 5

    # 29 days on, the outage has left the 28-day window; a day of healthy traffic: the budget is back.
    clock.advance(timedelta(days=29))
    writer_clock = SimulatedClock(clock.now())
    write_log(spent.home, writer_clock, minutes=60, status=200)
    clock.advance(writer_clock.now() - clock.now())
    promoted = client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=AUTH)
    assert promoted.status_code == 200 and promoted.json()["action"] == "promote"
    assert client.put("/api/models/ctr/traffic", json={"canary_percent": 50}, headers=AUTH).status_code == 200


def test_the_library_default_reads_the_workspace_slo_file_and_none_turns_it_off(spent: Workspace) -> None:
    with pytest.raises(ReleaseHalted):
        ModelRegistry(spent).promote("ctr", 2)  # no release_gate given: the workspace's policy
    ModelRegistry(spent, release_gate=None).promote("ctr", 2)  # explicitly off (a staging tool): moves
    registry = ModelRegistry(spent)
    back = registry.promote("ctr", 1)  # to the previous version: a rollback, never refused, audited as one
    assert (back.action, back.to_version) == ("rollback", 1)
    with pytest.raises(ReleaseHalted):  # and v2 is no "previous version" to flip back to
        registry.promote("ctr", 2)
    assert registry.release_refusal("ctr", 2, "staging") is None


def test_a_pipeline_does_not_promote_into_a_spent_budget_and_says_why(tmp_path: Path, missing_probes) -> None:
    from yarnit.core import utc
    from yarnit.recipes import ctr_pipeline
    from yarnit.training import PipelineRunner

    clock = SimulatedClock(utc(2026, 1, 5, 9))
    with open_workspace(Settings.for_home(tmp_path / "home"), clock) as ws:
        atomic_write_text(slo_path(ws.home), SLOS)
        write_log(ws.home, SimulatedClock(clock.now() - timedelta(minutes=31)), minutes=30, status=500)
        result = PipelineRunner(ws).run(ctr_pipeline(), config={"days": 2, "sessions_per_day": 250,
                                                                "bootstrap_resamples": 100})
        report = result.value("register", "model_version")
        assert (report["blessed"], report["promoted"], report["production"]) == (True, False, None)
        assert report["decision"].startswith("not promoted: releases of ctr are halted (the error budget of SLO "
                                             "shop-ctr-availability is spent")
        assert ModelRegistry(ws).aliases("ctr") == {}


def test_the_monitor_and_the_release_gate_of_one_process_count_with_one_source(spent: Workspace,
                                                                               clock: SimulatedClock) -> None:
    """A monitor on the workspace's clock counts through the release gate's source: after its pass, the gate's
    refusal reads no byte of the log again (it read the whole log once, in the monitor's pass)."""
    from yarnit.monitoring.policy import workspace_policy
    from yarnit.monitoring.runner import Monitor
    from yarnit.monitoring.workspace import load_workspace_slos

    monitor = Monitor(spent, load_workspace_slos(spent.home))
    state = monitor.run_once()
    assert state["sources"]["predlog_source"]["records"] == 60  # 30 minutes, two requests a minute
    policy = workspace_policy(spent)
    assert policy is not None and policy.source is monitor.source
    assert "the error budget of SLO shop-ctr-availability is spent" in (policy.refusal("ctr", "production") or "")
    assert monitor.source.reports()["predlog_source"]["bytes_read"] == 0  # the gate found nothing new to read
    # a monitor on a clock of its own (a replay) keeps a source of its own
    assert Monitor(spent, load_workspace_slos(spent.home), clock=SimulatedClock(clock.now())).source \
        is not monitor.source
