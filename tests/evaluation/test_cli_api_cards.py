"""On the demo model: the stored evaluation, ``yarnit eval run|show|gate|card``, ``GET /api/evaluations…``, the card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.api.errors import yarnit_error_handler
from yarnit.api.evaluations import router
from yarnit.cli.evaluation import app as eval_app
from yarnit.core import Settings, SimulatedClock, YarnitError, utc
from yarnit.demo import run_demo
from yarnit.evaluation import CHECKLIST, EvaluationStore, card_for
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path]]:
    home = tmp_path_factory.mktemp("demo") / "home"
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5, 9)))
    result = run_demo(ws, days=2, sessions_per_day=200)
    assert result.blessed and result.model_ref == "ctr:v1"
    yield ws, home
    ws.close()


def _cli(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(eval_app, list(args), env={"YARNIT_HOME": str(home), "YARNIT_DB_URL": ""})
    return result


def test_the_pipeline_stored_its_evaluation_with_the_verdict(demo: tuple[Workspace, Path]) -> None:
    ws, _home = demo
    version = ModelRegistry(ws).get("ctr", 1)
    [stored] = EvaluationStore(ws).for_version(version)
    assert stored.blessed is True and stored.validity_passed is True and stored.run_id == version.run_id
    report = EvaluationStore(ws).report(stored.id)
    assert [d.name for d in report.distributions] == ["holdout", "cold_start", "new_products", "golden"]
    assert report.get("auc", slice="country=ES") is not None and report.get("ndcg_at_k") is not None
    assert report.get("demographic_parity_difference", slice="language=*") is not None
    assert version.metrics["evaluation_id"] == stored.id


def test_eval_run_show_gate_and_card_from_the_command_line(demo: tuple[Workspace, Path], tmp_path: Path) -> None:
    _ws, home = demo
    run = _cli(home, "run", "ctr", "--version", "1", "--slice", "country", "--fairness", "language", "--group",
               "session_id", "--k", "5", "--resamples", "200", "--json")
    assert run.exit_code == 0, run.output
    evaluation = json.loads(run.stdout)
    assert evaluation["model_version"] == 1 and evaluation["validity_passed"] is True
    assert evaluation["primary_distribution"] == "holdout"  # the training run's split gave the holdout
    shown = json.loads(_cli(home, "show", evaluation["id"], "--json").stdout)
    assert shown["report"]["distributions"][0]["description"].startswith("time-ordered holdout: 2026-01-06")
    listed = json.loads(_cli(home, "show", "--model", "ctr", "--json").stdout)
    assert [e["id"] for e in listed][0] == evaluation["id"] and len(listed) == 2
    gated = _cli(home, "gate", evaluation["id"], "--json")
    assert gated.exit_code == 0 and json.loads(gated.stdout)["blessed"] is True
    strict = tmp_path / "gates.yaml"
    strict.write_text("gates:\n  - {name: very_high_auc, kind: absolute, metric: auc, min: 0.99}\n")
    refused = _cli(home, "gate", "--model", "ctr", "--gates", str(strict))
    assert refused.exit_code == 1 and "Gate 'very_high_auc' failed for ctr v1" in refused.output
    card_path = tmp_path / "card.html"
    card = _cli(home, "card", "ctr", "--format", "html", "--out", str(card_path))
    assert card.exit_code == 0 and card_path.read_text().startswith("<!doctype html>")
    bad = _cli(home, "gate", "--model", "ctr", "--gates", str(tmp_path / "missing.yaml"))
    assert bad.exit_code == 1 and "Cannot read gates file" in bad.output
    unknown = _cli(home, "run", "ctr", "--version", "1", "--slice", "contry", "--no-validity")
    assert unknown.exit_code == 1 and "Cannot slice by 'contry'" in unknown.output


def test_the_api_serves_evaluations_read_only(demo: tuple[Workspace, Path]) -> None:
    ws, _home = demo
    app = FastAPI()
    app.state.workspace = ws
    app.add_exception_handler(YarnitError, yarnit_error_handler)
    app.include_router(router)
    client = TestClient(app)
    listed = client.get("/api/evaluations", params={"model": "ctr"}).json()
    evaluation_id = listed[-1]["id"]
    one = client.get(f"/api/evaluations/{evaluation_id}").json()
    assert one["report"]["primary"] == "holdout" and one["blessed"] is not None
    metrics = client.get(f"/api/evaluations/{evaluation_id}/metrics", params={"metric": "auc",
                                                                              "subject": "candidate"}).json()
    assert {m["distribution"] for m in metrics} >= {"holdout", "golden"}
    history = client.get("/api/evaluations/models/ctr/history").json()
    assert history and all(h["value"] is not None for h in history)
    markdown = client.get(f"/api/evaluations/{evaluation_id}/card")
    assert markdown.status_code == 200 and markdown.text.startswith("# Model card: ctr v1")
    html = client.get(f"/api/evaluations/{evaluation_id}/card", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and "<table>" in html.text
    missing = client.get("/api/evaluations/ev_0000000000000000000000000z")
    assert missing.status_code == 404 and "No evaluation has id" in missing.json()["detail"]
    assert client.get("/api/evaluations/not-an-id").status_code == 422
    # read the route methods without mutating them: the router is shared by every app in the process
    assert {m for r in router.routes for m in r.methods} == {"GET"}  # type: ignore[attr-defined]


def test_a_model_card_is_produced_for_the_demo_model(demo: tuple[Workspace, Path]) -> None:
    ws, _home = demo
    card = card_for(ws, "ctr")
    text = card.to_markdown()
    for heading in ("# Model card: ctr v1", "## Intended use", "## Data", "## Metrics by distribution",
                    "## Compared with other models", "## Slices of holdout", "## Calibration", "## Ranking",
                    "## Fairness by language", "## Validity", "## Gate verdict", "## Responsible-AI checklist"):
        assert heading in text, heading
    for _key, question in CHECKLIST:
        assert question in text
    assert "7 of 7 items answered." in text and "**missing**" not in text
    assert "cold-start products" in text and "popularity baseline evaluated beside the model" in text
    assert "dataset:" not in text and "yarnit-impressions:v1" in text
    html = card.to_html()
    assert "<h2>Responsible-AI checklist (book CH6-R1)</h2>" in html


def test_unanswered_checklist_items_show_as_missing_and_text_cannot_inject_markup(demo: tuple[Workspace, Path]
                                                                                 ) -> None:
    ws, _home = demo
    card = card_for(ws, "ctr", info={"user_recourse": "", "intended_use": "<script>alert(1)</script>"})
    assert "User recourse: how a person affected by a decision can contest or avoid it | **missing**" in \
        card.to_markdown()
    assert "6 of 7 items answered; missing: user_recourse." in card.to_markdown()
    html = card.to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html
