"""Emergency actions against a real HTTP server on 127.0.0.1: fall back, restore, roll back, stop training.

Each action is one POST with a token; the next prediction from the running
server shows the change (who answered, which version), the prediction log
records fallbacks as fallbacks, and the audit history names the actor and the
reason. A switch written by another process (another workspace handle on the
same home) reaches the running server through its policy refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.continuous import actions
from yarnit.core import Settings, SimulatedClock
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry
from yarnit.serving.predlog import read_prediction_log
from yarnit.storage import Workspace, open_workspace

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"instances": [{"fiber": "merino", "price": 12.0}]}
WAIT_S = 30.0  # generous bound for a condition to become true; never a sleep


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ws(home: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(home, api_token=TOKEN), clock)
    register_ctr(workspace, versions=3)  # v1 production; v2, v3 registered and blessed
    ModelRegistry(workspace).promote("ctr", 2)  # production v2; v1 is what a rollback goes to
    yield workspace
    workspace.close()


@pytest.fixture
def server(ws: Workspace) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(ws, refresh_s=0.25)) as background:
        yield background


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def predict(http: httpx.Client) -> dict[str, Any]:
    response = http.post("/v1/models/ctr:predict", json=ROW)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(condition, what: str) -> None:  # noqa: ANN001
    done = threading.Event()
    deadline = 0.0
    while deadline < WAIT_S:
        if condition():
            return
        done.wait(0.02)
        deadline += 0.02
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def audit_of(http: httpx.Client, action: str) -> list[dict[str, Any]]:
    body = http.get("/api/models/ctr/switches").json()
    return [h for h in body["history"] if h["action"] == action]


PATHS = ["/api/models/ctr/actions/fall-back", "/api/models/ctr/actions/restore", "/api/models/ctr/actions/roll-back",
         "/api/models/ctr/actions/abort-canary",
         "/api/models/ctr/actions/stop-training", "/api/models/ctr/actions/resume-training",
         "/api/datasets/shop/actions/remove-data", "/api/alerts/actions/roll-through"]


def test_every_action_refuses_a_missing_or_wrong_token_and_changes_nothing(http: httpx.Client, ws: Workspace) -> None:
    from yarnit.access import Tokens

    _, reader = Tokens(ws).issue("reader", ["read-restricted"], actor="user:ops")
    body = {"reason": "try without a token"}
    for path in PATHS:
        assert http.post(path, json=body).status_code == 401, path
        wrong = {"Authorization": "Bearer wrong-token-0000000000"}
        assert http.post(path, json=body, headers=wrong).status_code == 401, path
        assert http.post(path, json=body, headers={"Authorization": f"Bearer {reader}"}).status_code == 403, path
    assert actions.history(ws) == [] and actions.training_frozen(ws, "ctr") is None
    assert predict(http)["model_version"] == 2


def test_fall_back_is_refused_when_the_model_declares_no_fallback(http: httpx.Client, ws: Workspace) -> None:
    response = http.post("/api/models/ctr/actions/fall-back", json={"reason": "bad answers"}, headers=AUTH)
    assert response.status_code == 409
    assert "declares no fallback" in response.json()["detail"] and "--alias fallback" in response.json()["detail"]
    assert predict(http)["served_by"] == "model" and actions.history(ws) == []


def test_fall_back_serves_the_fallback_alias_says_so_and_restore_brings_the_model_back(
        http: httpx.Client, server: BackgroundServer, ws: Workspace, home: Path) -> None:
    ModelRegistry(ws).set_alias("ctr", "fallback", 1, reason="owner's declared fallback")
    missing = http.post("/api/models/ctr/actions/fall-back", json={}, headers=AUTH)
    assert missing.status_code == 422  # a reason is required
    response = http.post("/api/models/ctr/actions/fall-back", json={"reason": "v2 predicts nonsense"}, headers=AUTH)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["changed"], result["from"], result["to"]) == (True, {"force_fallback": False},
                                                                 {"force_fallback": True})
    assert result["fallback"] == {"kind": "alias", "alias": "fallback", "version": 1}
    answer = predict(http)  # this server applied it at once
    assert (answer["served_by"], answer["model_version"]) == ("fallback", 1)
    again = http.post("/api/models/ctr/actions/fall-back", json={"reason": "twice"}, headers=AUTH).json()
    assert again["changed"] is False and again["audit_id"] is None  # a retried call changes and audits nothing

    switches = http.get("/api/models/ctr/switches").json()
    assert switches["force_fallback"] is True and switches["production"] == 2
    restored = http.post("/api/models/ctr/actions/restore", json={"reason": "v2 fixed upstream"}, headers=AUTH)
    assert restored.status_code == 200 and restored.json()["to"] == {"force_fallback": False}
    answer = predict(http)
    assert (answer["served_by"], answer["model_version"]) == ("model", 2)

    [fell] = audit_of(http, "fall_back")
    [back] = audit_of(http, "restore_model")
    assert (fell["actor"], fell["detail"]["reason"], fell["id"]) == ("token:admin", "v2 predicts nonsense",
                                                                      result["audit_id"])
    assert (back["actor"], back["detail"]["reason"]) == ("token:admin", "v2 fixed upstream")
    server.app.state.serving.log.flush()
    primary = [r for r in read_prediction_log(prediction_log_dir(home)) if r.get("role") == "primary"]
    assert [(r["served_by"], r["version"], r.get("reason")) for r in primary] == [
        ("fallback", 1, "forced"), ("model", 2, None)]


def test_a_switch_set_by_another_process_reaches_the_running_server_and_the_heuristic_answers_as_version_0(
        http: httpx.Client, ws: Workspace, home: Path, clock: SimulatedClock) -> None:
    registry = ModelRegistry(ws)
    with_prior = registry.register("ctr", ws.artifacts.get_bytes(registry.get("ctr", 2).artifact_sha256),
                                   registry.get("ctr", 2).artifact_format,
                                   signature={"inputs": {"fiber": "string", "price": "double"},
                                              "fallback": {"key": "fiber", "table": {"merino": 0.07},
                                                           "default": 0.02}})
    registry.promote("ctr", with_prior.version)
    wait_for(lambda: predict(http)["model_version"] == with_prior.version, "the server serves v4")
    other = open_workspace(Settings.for_home(home, api_token=TOKEN), clock)  # another process's handle
    try:
        result = actions.fall_back(other, "ctr", actor="user:oncall", reason="v4 burns the budget")
    finally:
        other.close()
    assert result["fallback"] == {"kind": "heuristic", "source": "signature", "of_version": with_prior.version}
    wait_for(lambda: predict(http)["served_by"] == "fallback", "the running server falls back")
    answer = predict(http)
    assert (answer["model_version"], answer["predictions"]) == (0, [0.07])  # the declared prior, labelled 0


def during_traffic(server: BackgroundServer, act) -> tuple[list[int], list[tuple[str, int]], Any]:  # noqa: ANN001
    """Four clients predicting while ``act()`` runs: every status, every (served_by, version), act's result."""
    statuses: list[int] = []
    answers: list[tuple[str, int]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as own:
            while not stop.is_set():
                response = own.post("/v1/models/ctr:predict", json=ROW)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    answers.append((response.json()["served_by"], response.json()["model_version"]))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(statuses) >= 40, "the clients are sending")
        result = act()
        before = len(statuses)
        wait_for(lambda: len(statuses) >= before + 40, "the clients keep sending after the switch")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    return statuses, answers, result


def test_fall_back_and_restore_fail_no_request_under_concurrent_clients(http: httpx.Client,
                                                                        server: BackgroundServer,
                                                                        ws: Workspace) -> None:
    ModelRegistry(ws).set_alias("ctr", "fallback", 1)
    post = lambda action: http.post(f"/api/models/ctr/actions/{action}", json={"reason": "drill"},  # noqa: E731
                                    headers=AUTH)
    statuses, answers, response = during_traffic(server, lambda: post("fall-back"))
    assert response.status_code == 200 and set(statuses) == {200}
    assert answers[0] == ("model", 2) and answers[-1] == ("fallback", 1)
    statuses, answers, response = during_traffic(server, lambda: post("restore"))
    assert response.status_code == 200 and set(statuses) == {200}
    assert answers[0] == ("fallback", 1) and answers[-1] == ("model", 2)


def test_roll_back_moves_production_back_with_zero_failed_requests_under_concurrent_clients(
        http: httpx.Client, server: BackgroundServer, ws: Workspace) -> None:
    statuses, answers, response = during_traffic(server, lambda: http.post(
        "/api/models/ctr/actions/roll-back", json={"reason": "v2 regressed CTR"}, headers=AUTH))
    assert response.status_code == 200, response.text
    versions = [v for _, v in answers]
    result = response.json()
    assert (result["from"], result["to"]) == ({"version": 2}, {"version": 1})
    assert "yarnit models promote ctr 2" in result["undo"]
    assert set(statuses) == {200} and len(statuses) >= 80  # zero failed requests during the switch
    assert versions[0] == 2 and versions[-1] == 1 and set(versions) == {1, 2}
    assert predict(http)["model_version"] == 1
    event = ModelRegistry(ws).history("ctr", "production")[-1]
    assert (event.action, event.actor, event.reason) == ("rollback", "token:admin", "v2 regressed CTR")
    [audit] = audit_of(http, "roll_back")
    assert audit["id"] == result["audit_id"] and audit["detail"]["reason"] == "v2 regressed CTR"


def test_roll_back_is_not_refused_by_a_spent_error_budget(http: httpx.Client, ws: Workspace) -> None:
    class Spent:
        def refusal(self, model_name: str, alias: str) -> str:
            return "the error budget of SLO shop-ctr-availability is spent"

    halted = ModelRegistry(ws, release_gate=Spent())
    assert halted.release_refusal("ctr", 3, "production") is not None  # a promotion would be refused
    # The action uses the workspace's gate; with the same refusal it must still go through: it never asks.
    from yarnit.registry import service

    original = service.ModelRegistry.gate
    service.ModelRegistry.gate = lambda self: Spent()  # type: ignore[method-assign]
    try:
        result = actions.roll_back(ws, "ctr", actor="user:oncall", reason="budget spent, v2 is the cause")
    finally:
        service.ModelRegistry.gate = original  # type: ignore[method-assign]
    assert result["to"] == {"version": 1}
    wait_for(lambda: predict(http)["model_version"] == 1, "the server rolls back")


def test_nothing_to_roll_back_to_is_a_409(http: httpx.Client, ws: Workspace) -> None:
    assert http.post("/api/models/ctr/actions/roll-back", json={"reason": "first"}, headers=AUTH).status_code == 200
    second = http.post("/api/models/ctr/actions/roll-back", json={"reason": "again"}, headers=AUTH)
    assert second.status_code == 409 and "roll" in second.json()["detail"].lower()
    unknown = http.post("/api/models/nope/actions/roll-back", json={"reason": "x"}, headers=AUTH)
    assert unknown.status_code == 404
    bad = http.post("/api/models/ctr/actions/explode", json={"reason": "x"}, headers=AUTH)
    assert bad.status_code == 422


def test_stop_training_via_the_api_keeps_the_ctr_pipeline_from_promoting_and_it_says_why(tmp_path: Path) -> None:
    from yarnit.core import utc
    from yarnit.recipes import ctr_pipeline
    from yarnit.training import PipelineRunner

    ws = open_workspace(Settings.for_home(tmp_path / "pipe", api_token=TOKEN), SimulatedClock(utc(2026, 1, 5, 9)))
    try:
        with BackgroundServer(create_app(ws, refresh_s=0.25)) as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            # Frozen before its first version: the first run registers it but nothing reaches serving.
            response = http.post("/api/models/ctr/actions/stop-training", json={"reason": "labels are late"},
                                 headers=AUTH)
            assert response.status_code == 200, response.text
            assert (response.json()["to"], response.json()["registered"]) == ({"frozen": True}, False)
        config = {"days": 2, "sessions_per_day": 300, "bootstrap_resamples": 100}
        second = PipelineRunner(ws).run(ctr_pipeline(), config=config).value("register", "model_version")
        assert (second["version"], second["registered"], second["promoted"], second["production"]) == (1, True, False,
                                                                                                       None)
        assert second["blessed"] is True  # only the freeze held it back
        assert second["decision"].startswith("not promoted: training of ctr is frozen (labels are late (frozen by "
                                             "token:admin at ")
        with BackgroundServer(create_app(ws, refresh_s=0.25)) as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            frozen = http.get("/api/models/ctr/switches").json()["training_frozen"]
            assert (frozen["reason"], frozen["frozen_by"]) == ("labels are late", "token:admin")
        assert "yarnit emergency resume-training ctr" in second["decision"]
        assert ModelRegistry(ws).aliases("ctr") == {}
        resumed = actions.resume_training(ws, "ctr", actor="user:oncall", reason="labels caught up")
        assert resumed["from"]["reason"] == "labels are late" and actions.training_frozen(ws, "ctr") is None
        assert [(h["action"], h["actor"]) for h in actions.history(ws, model="ctr")] == [
            ("resume_training", "user:oncall"), ("stop_training", "token:admin")]
    finally:
        ws.close()
