"""``/api/incidents`` (open reads, token-protected writes, 404/422 on bad input) and ``yarnit incidents …``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from incidents.helpers import make_alert
from testsupport import TOKEN
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.cli.app import app as cli
from yarnit.core import Settings
from yarnit.incidents import IncidentStore, process_alerts
from yarnit.incidents.config import parse_config
from yarnit.storage import open_workspace

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def seeded(tmp_path: Path, clock) -> Iterator[tuple]:
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    report = process_alerts(ws, [make_alert("alert_1", clock.now())], clock=clock,
                            config=parse_config({"policies": []}))
    yield ws, report["opened"][0]
    ws.close()


@pytest.fixture
def client(seeded) -> Iterator[TestClient]:
    with TestClient(create_app(seeded[0])) as http:
        yield http


def test_reads_are_open_and_writes_need_the_token_and_record_the_caller(client, seeded):
    ws, incident_id = seeded
    listed = client.get("/api/incidents").json()
    assert listed["count"] == 1 and listed["incidents"][0]["id"] == incident_id
    assert listed["incidents"][0]["severity"] == "SEV2" and listed["incidents"][0]["acked"] is False
    shown = client.get(f"/api/incidents/{incident_id}").json()
    assert shown["phases"]["detection"] is not None and shown["events"][0]["kind"] == "opened"

    for path, body in ((f"/api/incidents/{incident_id}/ack", None), (f"/api/incidents/{incident_id}/notes",
                                                                     {"text": "x"}),
                       (f"/api/incidents/{incident_id}/resolve", {"reason": "x"})):
        assert client.post(path, json=body).status_code == 401
        assert client.post(path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert IncidentStore.open(ws.home, ws.clock).get(incident_id).acked_by is None  # nothing changed

    acked = client.post(f"/api/incidents/{incident_id}/ack", headers=AUTH).json()
    assert acked["acked"] is True and acked["acked_by"] == "token:admin"
    noted = client.post(f"/api/incidents/{incident_id}/notes", headers=AUTH,
                        json={"text": "rollback to v1 done; CTR back"}).json()
    assert noted["events"][-1]["kind"] == "note" and noted["events"][-1]["actor"] == "token:admin"
    done = client.post(f"/api/incidents/{incident_id}/resolve", headers=AUTH, json={"reason": "fixed"}).json()
    assert done["state"] == "resolved" and done["phases"]["resolution"] == ws.clock.now().isoformat()
    assert client.get("/api/incidents").json()["count"] == 0  # active only by default
    assert client.get("/api/incidents", params={"state": "resolved"}).json()["count"] == 1
    again = client.post(f"/api/incidents/{incident_id}/resolve", headers=AUTH, json={"reason": "again"})
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    markdown = client.get(f"/api/incidents/{incident_id}", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown") and "## Phases" in markdown.text


def test_bad_requests_are_4xx_with_the_next_step(client, seeded):
    _ws, incident_id = seeded
    missing = client.get("/api/incidents/inc_nope")
    assert missing.status_code == 404 and "yarnit incidents list" in missing.json()["detail"]
    assert client.post("/api/incidents/inc_nope/ack", headers=AUTH).status_code == 404
    bad = client.post(f"/api/incidents/{incident_id}/notes", headers=AUTH, json={"text": "a\x1b[31mred"})
    assert bad.status_code == 422 and "control character" in bad.json()["detail"]
    assert client.post(f"/api/incidents/{incident_id}/notes", headers=AUTH, json={"text": ""}).status_code == 422
    assert client.post(f"/api/incidents/{incident_id}/notes", headers=AUTH,
                       json={"text": "x", "admin": True}).status_code == 422
    assert client.get("/api/incidents", params={"state": "burning"}).status_code == 422


runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_the_cli_lists_shows_acks_assigns_notes_resolves_and_writes_the_postmortem(seeded, monkeypatch, tmp_path):
    ws, incident_id = seeded
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    monkeypatch.setenv("YARNIT_API_TOKEN", TOKEN)
    code, out = _cli("incidents", "list", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)["incidents"]] == [incident_id]
    code, out = _cli("incidents", "ack", incident_id, "--json")
    assert code == 0 and json.loads(out)["acked_by"].startswith("user:")
    code, out = _cli("incidents", "assign", incident_id, "--role", "commander", "--who", "dana", "--json")
    assert code == 0 and json.loads(out)["roles"] == {"commander": "dana"}
    code, out = _cli("incidents", "assign", incident_id, "--role", "operations", "--who", "eli", "--json")
    code, out = _cli("incidents", "assign", incident_id, "--role", "operations", "--clear", "--json")
    assert code == 0 and json.loads(out)["roles"] == {"commander": "dana"}
    code, out = _cli("incidents", "note", incident_id, "v2 trained on a day without discounts", "--json")
    assert code == 0 and json.loads(out)["events"][-1]["summary"] == "v2 trained on a day without discounts"
    code, out = _cli("incidents", "show", incident_id, "--json")
    shown = json.loads(out)
    assert code == 0 and [e["kind"] for e in shown["events"]].count("assigned") == 2
    assert [e["kind"] for e in shown["events"]].count("unassigned") == 1
    assert shown["durations"]["time_to_detect_s"] == 15 * 60  # estimated from the evidence: 60 bad / 20 per 5 min
    code, out = _cli("incidents", "resolve", incident_id, "--reason", "rolled back", "--json")
    assert code == 0 and json.loads(out)["state"] == "resolved"
    target = tmp_path / "pm.md"
    code, out = _cli("incidents", "postmortem", incident_id, "-o", str(target), "--json")
    assert code == 0 and json.loads(out)["out"] == str(target)
    text = target.read_text()
    assert "## Phases" in text and "- Time to detect: **15 min**" in text and "commander: dana" in text
    code, out = _cli("incidents", "show", incident_id)
    assert code == 0 and "time to detect 15 min" in out


@pytest.mark.parametrize(("args", "message"), [
    (["incidents", "show", "inc_nope"], "No incident 'inc_nope'"),
    (["incidents", "assign", "{id}", "--role", "captain", "--who", "x"], "Unknown incident role 'captain'"),
    (["incidents", "assign", "{id}", "--role", "commander"], "Give --who NAME"),
    (["incidents", "note", "{id}", "bad\x07bell"], "control character"),
    (["incidents", "list", "--state", "burning"], "Unknown incident state"),
    (["incidents", "trigger", "{id}", "alias_move:999"], "has no triage item"),
    (["incidents", "mitigate", "{id}", "--action", "no_such_action"], "failed"),
])
def test_bad_cli_input_is_one_clear_line_and_exit_1(seeded, monkeypatch, args, message):
    ws, incident_id = seeded
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    monkeypatch.setenv("YARNIT_API_TOKEN", TOKEN)
    code, out = _cli(*[a.replace("{id}", incident_id) for a in args])
    assert code == 1 and message in out and "Traceback" not in out
