"""An alias moves only onto a version that can serve, and operators promote to production/canary only what a gate
blessed (or force it, with a reason the audit trail keeps). Checked through the registry, the CLI and HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from testsupport import TOKEN, register_ctr
from testsupport.blessing import record_verdict
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.cli.app import app
from yarnit.core import Settings, SimulatedClock
from yarnit.registry import ModelRegistry, NotBlessed, UnservableVersion
from yarnit.storage import Workspace, open_workspace

runner = CliRunner()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(tmp_path: Path, clock: SimulatedClock) -> Iterator[Path]:
    """A workspace with ctr v1 (production) and v2; production then moved to v2 and back is possible."""
    path = tmp_path / "home"
    ws = open_workspace(Settings.for_home(path, api_token=TOKEN), clock)
    register_ctr(ws, blessed=False)  # v1 → production; no evaluations yet
    ws.close()
    yield path


def _open(home: Path, clock: SimulatedClock) -> Workspace:
    return open_workspace(Settings.for_home(home, api_token=TOKEN), clock)


def _cli(home: Path, *args: str) -> object:
    return runner.invoke(app, list(args), env={"YARNIT_HOME": str(home), "YARNIT_API_TOKEN": TOKEN})


def _delete_artifact(ws: Workspace, version: int) -> None:
    assert ws.artifacts.delete(ModelRegistry(ws).get("ctr", version).artifact_sha256)


def _corrupt_artifact(ws: Workspace, version: int) -> bytes:
    path = ws.artifacts.path_for(ModelRegistry(ws).get("ctr", version).artifact_sha256)
    good = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    return good


# --- the target must be able to serve (issue 15, item 6) ------------------------------------------------
@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_promote_and_rollback_refuse_a_target_whose_artifact_cannot_serve(home: Path, clock: SimulatedClock,
                                                                          damage: str) -> None:
    ws = _open(home, clock)
    registry = ModelRegistry(ws)
    registry.promote("ctr", 2)
    events = len(registry.history("ctr"))
    (_delete_artifact if damage == "deleted" else _corrupt_artifact)(ws, 1)
    problem = "is missing from the artifact store" if damage == "deleted" else "is corrupted"
    for move in (lambda: registry.promote("ctr", 1), lambda: registry.roll_back("ctr"),
                 lambda: registry.set_alias("ctr", "fallback", 1)):
        with pytest.raises(UnservableVersion, match=f"at v1: its artifact sha256:.*{problem}.*Nothing was moved. "
                                                    "Repair it with: yarnit models restore ctr 1 --file COPY"):
            move()
    assert registry.aliases("ctr") == {"production": 2}
    assert len(registry.history("ctr")) == events  # no alias_events row
    ws.close()


def test_the_cli_refuses_with_exit_1_and_the_repair_command_then_restore_repairs(home: Path, clock: SimulatedClock,
                                                                                 tmp_path: Path) -> None:
    ws = _open(home, clock)
    ModelRegistry(ws).promote("ctr", 2)
    good = _corrupt_artifact(ws, 1)
    ws.close()
    before = json.loads(_cli(home, "models", "history", "ctr", "--json").stdout)
    for args in (["models", "rollback", "ctr"], ["models", "promote", "ctr", "1", "--force", "--reason", "x"]):
        result = _cli(home, *args)
        assert result.exit_code == 1, result.output
        assert "at v1: its artifact sha256:" in result.stderr and "is corrupted" in result.stderr
        assert "yarnit models restore ctr 1 --file COPY" in result.stderr
    assert json.loads(_cli(home, "models", "history", "ctr", "--json").stdout) == before

    wrong = tmp_path / "wrong.skops"
    wrong.write_bytes(good[:-1])
    refused = _cli(home, "models", "restore", "ctr", "1", "--file", str(wrong))
    assert refused.exit_code == 1 and "it is not the same model" in refused.stderr
    copy = tmp_path / "v1.skops"
    copy.write_bytes(good)
    restored = _cli(home, "models", "restore", "ctr", "1", "--file", str(copy), "--json")
    assert restored.exit_code == 0, restored.output and json.loads(restored.stdout)["restored"] is True
    rolled = _cli(home, "models", "rollback", "ctr", "--json")
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["to_version"] == 1


def test_http_answers_409_naming_the_version_and_the_repair_without_server_paths(home: Path,
                                                                                  clock: SimulatedClock) -> None:
    ws = _open(home, clock)
    ModelRegistry(ws).promote("ctr", 2)
    record_verdict(ws, "ctr", 1)
    _delete_artifact(ws, 1)
    client = TestClient(create_app(ws, refresh_s=0.0))
    events = client.get("/api/models/ctr/history").json()
    for path, body in (("/api/models/ctr/aliases/production", {"version": 1}), ("/api/models/ctr/rollback", {})):
        response = client.post(path, json=body, headers=AUTH)
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert "at v1: its artifact sha256:" in detail and "is missing from the artifact store" in detail
        assert "yarnit models restore ctr 1 --file COPY" in detail and str(home) not in detail
    assert client.get("/api/models/ctr/history").json() == events
    assert ModelRegistry(ws).aliases("ctr") == {"production": 2}
    ws.close()


# --- production and canary need a blessed evaluation of the exact version (issue 16, item 4) -----------
@pytest.mark.parametrize(("verdict", "why"), [
    (None, "no gate verdict has been recorded"),
    ({"blessed": False}, "did not bless it (1 reasons; first reason: Gate 'min_auc' failed"),
    ({"validity": False}, "the validity check of its blessed evaluation ev_"),
])
def test_cli_promote_refuses_an_unblessed_version(home: Path, clock: SimulatedClock, verdict: dict[str, bool] | None,
                                                   why: str) -> None:
    if verdict is not None:
        ws = _open(home, clock)
        record_verdict(ws, "ctr", 2, **verdict)
        ws.close()
    for alias in ("production", "canary"):
        result = _cli(home, "models", "promote", "ctr", "2", "--alias", alias)
        assert result.exit_code == 1, result.output
        assert f"Refusing to promote model 'ctr' v2 to {alias!r}: " in result.stderr and why in result.stderr
        assert "--force --reason" in result.stderr
    listed = json.loads(_cli(home, "models", "list", "--json").stdout)
    assert listed[0]["aliases"] == {"production": 1}


def test_a_blessed_version_promotes_and_other_aliases_need_no_blessing(home: Path, clock: SimulatedClock) -> None:
    ws = _open(home, clock)
    record_verdict(ws, "ctr", 2)
    ws.close()
    assert _cli(home, "models", "promote", "ctr", "2", "--alias", "canary").exit_code == 0
    assert _cli(home, "models", "promote", "ctr", "1", "--alias", "shadow").exit_code == 0
    history = json.loads(_cli(home, "models", "history", "ctr", "--json").stdout)
    assert [(h["alias"], h["to_version"], h["action"]) for h in history] == [
        ("production", 1, "promote"), ("canary", 2, "promote"), ("shadow", 1, "promote")]


def test_a_forced_promotion_needs_a_reason_and_the_history_shows_it(home: Path, clock: SimulatedClock) -> None:
    no_reason = _cli(home, "models", "promote", "ctr", "2", "--force")
    assert no_reason.exit_code == 1 and "needs a reason for the audit trail" in no_reason.stderr
    forced = _cli(home, "models", "promote", "ctr", "2", "--force", "--reason", "hotfix for incident 7", "--json")
    assert forced.exit_code == 0, forced.output
    last = json.loads(_cli(home, "models", "history", "ctr", "--json").stdout)[-1]
    assert (last["from_version"], last["to_version"], last["action"]) == (1, 2, "force-promote")
    assert last["reason"].startswith("hotfix for incident 7 [forced: no gate verdict has been recorded")
    shown = _cli(home, "models", "history", "ctr")
    assert "force-promote" in shown.stdout + shown.stderr


def test_http_promotion_needs_a_blessing_or_force_with_a_reason(home: Path, clock: SimulatedClock) -> None:
    ws = _open(home, clock)
    client = TestClient(create_app(ws, refresh_s=0.0))
    refused = client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=AUTH)
    assert refused.status_code == 409 and "Refusing to promote model 'ctr' v2" in refused.json()["detail"]
    no_reason = client.post("/api/models/ctr/aliases/production", json={"version": 2, "force": True}, headers=AUTH)
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["detail"]
    assert ModelRegistry(ws).aliases("ctr") == {"production": 1}
    forced = client.post("/api/models/ctr/aliases/production", json={"version": 2, "force": True,
                                                                     "reason": "rollout by hand"}, headers=AUTH)
    assert forced.status_code == 200, forced.text
    assert forced.json()["action"] == "force-promote" and forced.json()["actor"] == "api"
    with pytest.raises(NotBlessed):
        ModelRegistry(ws).promote("ctr", 1, alias="canary", require_blessing=True)
    ws.close()
