"""``/api/labels`` (open reads, token-protected writes, 4xx on bad input) and ``yarnit labels …``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.api.app import create_app
from yarnit.cli.app import app as cli
from yarnit.core import Settings
from yarnit.data import Datasets
from yarnit.storage import Workspace, open_workspace
from yarnit.world import INTENTS, labeling_queries

TOKEN = "labels-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def ws(tmp_path: Path, clock) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    frame = labeling_queries(seed=8, n=30)
    Datasets(workspace).ingest_frame("queries", frame[["query_id", "query"]], source="world")
    yield workspace
    workspace.close()


def test_the_api_creates_a_task_takes_answers_and_refuses_writes_without_the_token(ws: Workspace) -> None:
    with TestClient(create_app(ws)) as http:
        schema = {"name": "intent", "classes": list(INTENTS), "guideline": "Choose the intent."}
        assert http.post("/api/labels/schemas", json=schema).status_code == 401
        assert http.post("/api/labels/schemas", json=schema, headers=AUTH).json()["ref"] == "intent:v1"
        body = {"name": "t", "dataset": "queries", "schema": "intent", "raters": ["ana", "bo", "cy"], "overlap": 2,
                "key_column": "query_id", "text_column": "query", "golden": {"q00001": "brand"}}
        assert http.post("/api/labels/tasks", json=body).status_code == 401
        made = http.post("/api/labels/tasks", json=body, headers=AUTH).json()
        assert made["counts"] == {"items": 30, "golden": 1, "assigned": 29 * 2 + 3, "answers": 0}
        assert made["created_by"] == "token:admin"
        queue = http.get("/api/labels/tasks/t/next", params={"rater": "ana", "limit": 3}).json()["items"]
        assert len(queue) == 3 and set(queue[0]) == {"item_key", "text", "prelabel"}
        answers = {"rater": "ana", "answers": [{"item_key": q["item_key"], "label": "how_to"} for q in queue]}
        assert http.post("/api/labels/tasks/t/answers", json=answers).status_code == 401
        assert http.post("/api/labels/tasks/t/answers", json=answers, headers=AUTH).json()["recorded"] == 3
        again = http.post("/api/labels/tasks/t/answers", json=answers, headers=AUTH)
        assert again.status_code == 409 and "already answered" in again.json()["detail"]
        bad = {"rater": "ana", "answers": [{"item_key": queue[0]["item_key"], "label": "colour"}]}
        refused = http.post("/api/labels/tasks/t/answers", json=bad, headers=AUTH)
        assert refused.status_code == 422 and "how_to" in refused.json()["detail"]
        missing = http.post("/api/labels/tasks/t/answers", headers=AUTH,
                            json={"rater": "ana", "answers": [{"item_key": "zz", "label": "brand"}]})
        assert missing.status_code == 404
        assert http.get("/api/labels/tasks/nope").status_code == 404
        assert http.post("/api/labels/tasks/t/answers", json={"rater": "ana"}, headers=AUTH).status_code == 422
        assert http.get("/api/labels/tasks/t").json()["counts"]["answers"] == 3
        quality = http.get("/api/labels/tasks/t/quality").json()
        assert {r["rater"] for r in quality["raters"]} == {"ana", "bo", "cy"}
        assert len(http.get("/api/labels/tasks/t/consensus", params={"method": "majority"}).json()["labels"]) == 30
        exported = http.get("/api/labels/tasks/t/export").json()
        assert len(exported) == 30
        imported = http.post("/api/labels/import", headers=AUTH, json={"task": "t2", "dataset": "queries-ls",
                                                                      "schema": "intent", "tasks": exported})
        assert imported.status_code == 200 and imported.json()["counts"]["answers"] == 3
        guideline = {"guideline": "brand wins over everything.", "classes": list(INTENTS)}
        assert http.post("/api/labels/tasks/t/guideline", json=guideline).status_code == 401
        assert http.post("/api/labels/tasks/t/guideline", json=guideline, headers=AUTH).json()["version"] == 2
        queue_now = http.get("/api/labels/tasks/t/review").json()["queue"]
        assert isinstance(queue_now, list)
        settled = http.post("/api/labels/tasks/t/review", headers=AUTH,
                            json={"item_key": queue[1]["item_key"], "label": "brand"})
        assert settled.status_code == 200 and settled.json()["reviewed_by"] == "token:admin"
        assert len(http.post("/api/labels/tasks/t/prioritize", headers=AUTH, json={"n": 4}).json()["prioritized"]) == 4
        assert http.post("/api/labels/tasks/t/prelabels", headers=AUTH, json={"show_share": 1.0}).json() == {
            "prelabelled": 30}
        assert http.get("/api/labels/tasks/t/next", params={"rater": "bo"}).json()["items"][0]["prelabel"] in INTENTS
        bad_policy = dict(body, name="t9", policy={"min_accuracy": 2.0})
        assert http.post("/api/labels/tasks", json=bad_policy, headers=AUTH).status_code == 422
        published = http.post("/api/labels/tasks/t/publish", headers=AUTH, json={"dataset": "intent-labels"})
        assert published.status_code == 200 and published.json()["name"] == "intent-labels"


runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_the_cli_runs_a_task_from_schema_to_label_set(ws: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    guideline = tmp_path / "guideline.txt"
    guideline.write_text("brand: names a brand.\nhow_to: asks how.\n")
    assert _cli("labels", "schema", "intent", "--classes", ",".join(INTENTS), "--guideline", str(guideline))[0] == 0
    code, out = _cli("labels", "create", "t", "--dataset", "queries:v1", "--schema", "intent", "--rater", "ana",
                     "--rater", "bo", "--overlap", "2", "--key", "query_id", "--text", "query", "--json")
    assert code == 0 and json.loads(out)["counts"]["items"] == 30
    code, out = _cli("labels", "next", "t", "ana", "--limit", "2", "--json")
    first = json.loads(out)["items"][0]["item_key"]
    assert _cli("labels", "answer", "t", first, "ana", "brand")[0] == 0
    code, out = _cli("labels", "answer", "t", first, "ana", "brand")
    assert code == 1 and "already answered" in out
    code, out = _cli("labels", "answer", "t", first, "bo", "colour")
    assert code == 1 and "is not a class of label schema intent:v1" in out
    code, out = _cli("labels", "prelabel", "t", "--show-share", "1.0", "--json")
    assert code == 0 and json.loads(out) == {"prelabelled": 30}
    code, out = _cli("labels", "quality", "t", "--json")
    assert code == 0 and {r["rater"] for r in json.loads(out)["raters"]} == {"ana", "bo"}
    assert json.loads(out)["prelabels"]["shown"]["answers"] == 0  # the one answer came before the pre-labels
    assert _cli("labels", "export", "t", "--out", str(tmp_path / "ls.json"))[0] == 0
    assert len(json.loads((tmp_path / "ls.json").read_text())) == 30
    (tmp_path / "bad.json").write_text("[{\"data\": {}}]")
    code, out = _cli("labels", "import", str(tmp_path / "bad.json"), "--task", "t3", "--dataset", "x",
                     "--schema", "intent")
    assert code == 1 and "task #1: data.text must be non-empty text" in out
    code, out = _cli("labels", "publish", "t", "intent-labels", "--json")
    assert code == 0 and json.loads(out)["name"] == "intent-labels"
    code, out = _cli("labels", "show", "nope")
    assert code == 1 and "No label task 'nope'" in out


def test_world_task_lets_the_simulated_pool_answer_the_worlds_queries(ws: Workspace,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    code, out = _cli("labels", "world-task", "wq", "--items", "40", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"items": 40, "golden": 4, "assigned": 36 * 3 + 4 * 8, "answers": 140}
    code, out = _cli("labels", "quality", "wq", "--json")
    assert code == 0 and len(json.loads(out)["raters"]) == 8
