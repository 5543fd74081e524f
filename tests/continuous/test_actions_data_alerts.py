"""Remove bad data and roll through, against a real server; and the ``yarnit emergency`` CLI.

Remove bad data: one POST records a new dataset version without the rows of
the window (lineage edge from the old version), and a retrain request for the
model trained on the old one. Roll through: one POST acknowledges a firing
alert, and the monitor (real prediction log, real HTTP receivers) does not
send it again — not even Alertmanager's keepalive — until it resolves and a
new one fires.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import select
from testsupport import TOKEN, register_ctr
from testsupport.monitoring import Traffic, write_slos
from testsupport.receiver import Receiver
from typer.testing import CliRunner

from yarnit.access import cli_actor
from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.cli.app import app as cli_app
from yarnit.continuous import actions
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.data import Datasets
from yarnit.monitoring.alerts import AlertStore, alerts_path
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos, monitoring_dir
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import lineage_edges

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def ws(tmp_path: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    register_ctr(workspace)
    yield workspace
    workspace.close()


@pytest.fixture
def http(ws: Workspace) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(ws, refresh_s=0.25)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def events(n_hours: int = 72) -> pd.DataFrame:
    """One row an hour for three days from 2026-01-01 00:00 UTC."""
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    return pd.DataFrame({"event_time": [start + pd.Timedelta(hours=h) for h in range(n_hours)],
                         "product_type": ["yarn", "needles", "kit"] * (n_hours // 3),
                         "clicked": [h % 2 for h in range(n_hours)]})


def test_remove_bad_data_records_a_version_without_the_window_and_asks_for_a_retrain(http: httpx.Client,
                                                                                     ws: Workspace) -> None:
    datasets = Datasets(ws)
    old = datasets.ingest_frame("shop-events", events(), source="test")
    registry = ModelRegistry(ws)
    trained = registry.register("ctr", ws.artifacts.get_bytes(registry.get("ctr", 1).artifact_sha256),
                                registry.get("ctr", 1).artifact_format, dataset_version_ids=[old.id])
    body = {"start": "2026-01-02T06:00:00Z", "end": "2026-01-02T12:00:00+00:00", "reason": "spam flood at 6am"}
    response = http.post("/api/datasets/shop-events/actions/remove-data", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["from"], result["to"], result["rows_removed"], result["rows_kept"]) == (
        "shop-events:v1", "shop-events:v2", 6, 66)
    assert result["window"] == {"time_column": "event_time", "start": "2026-01-02T06:00:00+00:00",
                                "end": "2026-01-02T12:00:00+00:00"}
    [request] = result["retrain_requests"]
    assert (request["model"], request["model_versions"], request["status"]) == ("ctr", [trained.version], "pending")

    new = datasets.get("shop-events")  # what a pipeline taking the newest version trains on now
    assert new.ref == "shop-events:v2" and new.parents == (old.id,)
    times = datasets.read(new)["event_time"]
    window = (times >= pd.Timestamp(body["start"])) & (times < pd.Timestamp(body["end"]))
    assert len(times) == 66 and not window.any()
    assert datasets.read(datasets.get("shop-events", 1)).shape[0] == 72  # the old version is untouched
    with ws.metadata.begin() as conn:
        relations = conn.execute(select(lineage_edges.c.relation).where(
            lineage_edges.c.src_id == old.id, lineage_edges.c.dst_id == new.id)).scalars().all()
    assert relations == ["bad_data_removed"]
    assert "spam flood at 6am" in new.source

    assert [r["id"] for r in actions.pending_retrains(ws)] == [request["id"]]
    again = http.post("/api/datasets/shop-events:v1/actions/remove-data", headers=AUTH,
                      json=body | {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}).json()
    assert again["retrain_requests"] == [] and len(actions.pending_retrains(ws)) == 1  # one request per data
    done = actions.complete_retrain(ws, request["id"], actor="loop", note="ctr v4 trained on shop-events:v2")
    assert done["status"] == "done" and actions.pending_retrains(ws) == []

    [audit, _] = [h for h in actions.history(ws) if h["action"] == "remove_bad_data"][::-1]
    assert (audit["id"], audit["actor"], audit["detail"]["reason"]) == (result["audit_id"], "token:admin",
                                                                        "spam flood at 6am")
    assert audit["subject"] == "dataset:shop-events:v1" and audit["detail"]["to"] == "shop-events:v2"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"start": "2026-02-01T00:00:00Z", "end": "2026-02-02T00:00:00Z"}, 422, "nothing to remove"),
    ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 422, "is not before end"),
    ({"start": "yesterday", "end": "2026-01-01T00:00:00Z"}, 422, "not an ISO 8601 time"),
    ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "time_column": "clicked"}, 422,
     "is not a timestamp"),
])
def test_remove_bad_data_refuses_bad_windows_clearly_and_records_nothing(http: httpx.Client, ws: Workspace,
                                                                         body: dict, status: int, words: str) -> None:
    Datasets(ws).ingest_frame("shop-events", events(), source="test")
    response = http.post("/api/datasets/shop-events/actions/remove-data", json=body | {"reason": "r"}, headers=AUTH)
    assert response.status_code == status and words in response.json()["detail"], response.text
    assert [v.ref for v in Datasets(ws).list("shop-events")] == ["shop-events:v1"] and actions.history(ws) == []
    missing = http.post("/api/datasets/nope/actions/remove-data", headers=AUTH,
                        json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "reason": "r"})
    assert missing.status_code == 404


def test_roll_through_acks_an_alert_and_the_runner_does_not_resend_it_until_it_fires_again(
        ws: Workspace, clock: SimulatedClock) -> None:
    with Receiver() as webhook, Receiver() as am:
        write_slos(ws.home, sinks=[{"type": "webhook", "url": webhook.url, "timeout_s": 5},
                                   {"type": "alertmanager", "url": am.url, "timeout_s": 5}])
        traffic = Traffic(ws, clock)
        traffic.healthy(120)
        monitor = Monitor(ws, load_workspace_slos(ws.home), clock=clock)
        monitor.run_once()
        traffic.minute("fallback")
        assert monitor.run_once()["alerts"]["opened"] == 2  # page and ticket
        store = AlertStore.open(alerts_path(monitoring_dir(ws.home)))
        page = next(a for a in store.list("firing") if a.alert == "page")
        with BackgroundServer(create_app(ws)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            path = "/api/alerts/actions/roll-through"
            assert http.post(path, json={"slo": "ctr-availability", "reason": "r"}).status_code == 401
            both = http.post(path, json={"slo": "ctr-availability", "alert_ids": [page.id], "reason": "r"},
                             headers=AUTH)
            assert both.status_code == 422 and "not both" in both.json()["detail"]
            response = http.post(path, json={"alert_ids": [page.id], "reason": "known: the 2am batch, let it wash out"},
                                 headers=AUTH)
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["acked"] == [page.id] and result["alerts"][0]["acked_by"] == "token:admin"
            again = http.post(path, json={"alert_ids": [page.id], "reason": "twice"}, headers=AUTH).json()
            assert again["acked"] == [] and again["already_acked"] == [page.id] and again["audit_id"] is None
            unknown = http.post(path, json={"alert_ids": ["alert_0000"], "reason": "r"}, headers=AUTH)
            assert unknown.status_code == 404

        def pages_sent_to_am() -> int:
            return sum(1 for body in am.bodies("/api/v2/alerts") for item in body
                       if item["labels"]["sloth_severity"] == "page" and "endsAt" not in item)

        webhook_before, am_pages_before = len(webhook.bodies()), pages_sent_to_am()
        for _ in range(3):  # the outage goes on: the page stays open, acknowledged
            traffic.minute("fallback")
            monitor.run_once()
        assert AlertStore.open(alerts_path(monitoring_dir(ws.home))).get(page.id).state == "firing"
        assert len(webhook.bodies()) == webhook_before  # nothing new was sent
        assert pages_sent_to_am() == am_pages_before  # and Alertmanager's keepalive skips the acked page

        for _ in range(60):  # healthy again: the page resolves (its end is sent), then a new outage pages anew
            traffic.minute("model")
            monitor.run_once()
            if AlertStore.open(alerts_path(monitoring_dir(ws.home))).get(page.id).state == "resolved":
                break
        resolved = [b for b in webhook.bodies() if b["alert"]["id"] == page.id]
        assert [b["status"] for b in resolved] == ["firing", "resolved"]
        assert resolved[-1]["alert"]["acked_by"] == "token:admin"
        clock.advance(timedelta(hours=7).total_seconds())
        traffic.healthy(120)
        traffic.minute("fallback")
        monitor.run_once()
        traffic.close()
        fresh = [b["alert"] for b in webhook.bodies() if b["alert"]["alert"] == "page" and b["status"] == "firing"]
        assert len(fresh) == 2 and fresh[-1]["id"] != page.id and fresh[-1]["acked_by"] is None
        assert pages_sent_to_am() > am_pages_before
    [audit] = [h for h in actions.history(ws, model="ctr") if h["action"] == "roll_through"]
    assert (audit["actor"], audit["detail"]["reason"], audit["detail"]["alerts"]) == (
        "token:admin", "known: the 2am batch, let it wash out", [page.id])


def test_an_alert_store_written_before_acks_existed_reads_as_unacknowledged(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    old = {"id": "alert_1", "slo_id": "s", "service": "svc", "slo": "x", "sli": "serving_availability",
           "model": "ctr", "alert": "page", "alert_name": "X", "severity": "page", "state": "firing",
           "started_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00", "ended_at": None,
           "summary": "s", "runbook": "", "evidence": {}}
    path.write_text(json.dumps({"version": 1, "alerts": [old], "outbox": [], "stats": {}}))
    store = AlertStore.open(path)
    assert not store.recovered and store.get("alert_1").acked is False


# -- the CLI ----------------------------------------------------------------------------------------------------
runner = CliRunner()


def cli(home: Path, *args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(cli_app, ["emergency", *args], env={"YARNIT_HOME": str(home)})


def test_the_emergency_cli_acts_reports_json_and_refuses_clearly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5, 9))) as ws:
        register_ctr(ws)
        ModelRegistry(ws).promote("ctr", 2)
    no_reason = cli(home, "stop-training", "ctr")
    assert no_reason.exit_code != 0 and "--reason" in no_reason.output
    frozen = cli(home, "stop-training", "ctr", "--reason", "labels late", "--json")
    assert frozen.exit_code == 0, frozen.output
    assert json.loads(frozen.stdout)["to"] == {"frozen": True}
    refused = cli(home, "fall-back", "ctr", "--reason", "bad")
    assert refused.exit_code == 1 and "declares no fallback" in refused.output
    rolled = cli(home, "roll-back", "ctr", "--reason", "v2 regressed", "--json")
    assert rolled.exit_code == 0, rolled.output
    assert (json.loads(rolled.stdout)["from"], json.loads(rolled.stdout)["to"]) == ({"version": 2}, {"version": 1})
    nothing = cli(home, "abort-canary", "ctr", "--reason", "no canary", "--json")
    assert nothing.exit_code == 0 and json.loads(nothing.stdout)["changed"] is False, nothing.output
    status = cli(home, "status", "ctr", "--json")
    data = json.loads(status.stdout)
    assert data["training_frozen"]["reason"] == "labels late" and data["production"] == 1
    assert [(h["action"], h["actor"]) for h in data["history"]] == [("roll_back", cli_actor()),
                                                                   ("stop_training", cli_actor())]
    human = cli(home, "status", "ctr")
    assert human.exit_code == 0 and "FROZEN: labels late" in human.output
    through = cli(home, "roll-through", "--reason", "r")
    assert through.exit_code == 1 and "--alert ID" in through.output
