"""The staged rollout's load-test stage: no canary traffic until a passing ``yarnit loadtest`` is recorded.

Results are written through the real :class:`LoadTestStore` (the table ``yarnit loadtest`` writes), on the
simulated clock; the real runs that produce them are tested in tests/deploy/test_loadtest_run.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testsupport import TOKEN, register_ctr
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.continuous.rollout import ABORTED, RUNNING, RolloutConfig, RolloutController
from yarnit.core import Settings, SimulatedClock
from yarnit.core.errors import InvalidInput, NotFound
from yarnit.core.ids import new_id
from yarnit.loadtest import LoadTestStore
from yarnit.registry import ModelRegistry
from yarnit.serving.router import TrafficPolicyStore
from yarnit.storage import Workspace, open_workspace

STAGES = (5.0, 50.0, 100.0)


@pytest.fixture
def ws(sqlite_ws: Workspace) -> Workspace:
    """ctr v1 (production) and v2 to roll out, on the simulated clock."""
    register_ctr(sqlite_ws)
    return sqlite_ws


def record(ws: Workspace, *, passed: bool, version: int = 2, baseline: int = 1, delay_ms: float = 0.0) -> str:
    """A load-test result as ``yarnit loadtest`` stores it (the fields the rollout reads)."""
    loadtest_id = new_id("lt", ws.clock)
    reason = "p95 3.00 ms <= 5.00 ms" if passed else "p95 240.00 ms > 5.00 ms"
    report: dict[str, Any] = {"id": loadtest_id, "model": "ctr", "version": version, "baseline_version": baseline,
                              "created_at": ws.clock.now().isoformat(), "passed": passed, "reason": reason,
                              "rps": 50.0, "duration_s": 2.0, "injected_delay_ms": delay_ms}
    LoadTestStore(ws).add(report, at=ws.clock.now(), actor="test")
    return loadtest_id


def controller(ws: Workspace, **config: Any) -> RolloutController:
    return RolloutController(ws, "ctr", config=RolloutConfig(stages=STAGES, bake_s=60, min_requests=10,
                                                             loadtest=True, **config))


def test_the_canary_waits_for_a_passing_load_test_then_starts(ws: Workspace, clock: SimulatedClock) -> None:
    traffic, registry = TrafficPolicyStore(ws), ModelRegistry(ws)
    started = controller(ws).start(2, "test")
    assert started["status"] == RUNNING and started["awaiting"] == "loadtest"
    assert "canary" not in registry.aliases("ctr") and traffic.get("ctr").canary_percent == 0
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "hold" and "no load test of v2 against production v1" in step["reason"]
    assert "yarnit loadtest ctr --version 2" in step["reason"]

    failing = record(ws, passed=False)
    clock.advance(60)
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "hold" and f"({failing}) failed: p95 240.00 ms" in step["reason"]
    # neither a passing drill (injected delay) nor a pass against another production version clears it
    record(ws, passed=True, delay_ms=200.0)
    record(ws, passed=True, baseline=3)
    clock.advance(60)
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "hold" and failing in step["reason"]
    assert "canary" not in registry.aliases("ctr") and traffic.get("ctr").canary_percent == 0

    passing = record(ws, passed=True)
    clock.advance(60)
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "advance" and f"load test {passing} passed" in step["reason"]
    assert step["awaiting"] is None and step["loadtest"]["id"] == passing
    assert registry.aliases("ctr")["canary"] == 2 and traffic.get("ctr").canary_percent == 5.0
    # from here on it is the ordinary first stage, judged from the prediction log (no traffic yet: hold)
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "hold" and "no traffic" in step["reason"]


def test_a_stale_load_test_does_not_count_when_a_maximum_age_is_set(ws: Workspace, clock: SimulatedClock) -> None:
    record(ws, passed=True)
    clock.advance(7200)
    controller(ws, loadtest_max_age_s=3600).start(2, "test")
    step = RolloutController(ws, "ctr").step()
    assert step["action"] == "hold" and "in the last 3600 s" in step["reason"]
    record(ws, passed=True)
    assert RolloutController(ws, "ctr").step()["action"] == "advance"


def test_the_deadline_ends_a_rollout_that_never_got_a_passing_load_test(ws: Workspace,
                                                                       clock: SimulatedClock) -> None:
    controller(ws, deadline_s=600).start(2, "test")
    record(ws, passed=False)
    clock.advance(601)
    step = RolloutController(ws, "ctr").step()
    assert step["status"] == ABORTED and "no passing load test within 600 s" in step["reason"]
    assert "canary" not in ModelRegistry(ws).aliases("ctr")


def test_without_the_stage_the_canary_starts_at_once(ws: Workspace) -> None:
    started = RolloutController(ws, "ctr", config=RolloutConfig(stages=STAGES)).start(2, "test")
    assert started["awaiting"] is None and ModelRegistry(ws).aliases("ctr")["canary"] == 2
    with pytest.raises(InvalidInput, match="maximum age"):
        RolloutConfig(loadtest=True, loadtest_max_age_s=0)


def test_cli_require_loadtest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_workspace(Settings.for_home(home)) as workspace:
        register_ctr(workspace)
    done = CliRunner().invoke(app, ["rollout", "start", "ctr", "--version", "2", "--require-loadtest",
                                    "--loadtest-max-age", "1d", "--json"], env={"YARNIT_HOME": str(home)})
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["awaiting"] == "loadtest" and body["config"]["loadtest_max_age_s"] == 86400
    human = CliRunner().invoke(app, ["rollout", "status", "ctr"], env={"YARNIT_HOME": str(home)})
    assert human.exit_code == 0 and "stage: load test" in human.output


def test_results_are_stored_and_read_back_on_each_metadata_store(tmp_path: Path, clock: SimulatedClock,
                                                                  db_url: str) -> None:
    with open_workspace(Settings.for_home(tmp_path / "home", db_url=db_url), clock) as workspace:
        register_ctr(workspace)
        first = record(workspace, passed=False)
        clock.advance(1)
        second = record(workspace, passed=True)
        record(workspace, passed=True, version=1)
        store = LoadTestStore(workspace)
        assert [r["id"] for r in store.history("ctr", 2)] == [second, first]
        assert store.latest("ctr", 2)["passed"] is True and store.latest("ctr", 3) is None
        assert len(store.history("ctr")) == 3 and store.get(first)["reason"].startswith("p95 240.00")
        with pytest.raises(NotFound, match="No load test 'lt_nope'"):
            store.get("lt_nope")


def test_the_api_reads_results_and_answers_404_for_an_unknown_model(ws: Workspace) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    done = record(ws, passed=True)
    with TestClient(create_app(ws)) as client:
        listed = client.get("/api/loadtests", params={"model": "ctr", "version": 2})
        assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [done]
        assert client.get(f"/api/loadtests/{done}").json()["passed"] is True
        missing = client.get("/api/loadtests", params={"model": "nope"})
        assert missing.status_code == 404 and "no model named 'nope'" in missing.text
        assert client.get("/api/loadtests/lt_" + "0" * 26).status_code == 404


def test_the_rollout_api_starts_with_a_load_test_stage(tmp_path: Path, clock: SimulatedClock) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    with open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock) as workspace:
        register_ctr(workspace)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with TestClient(create_app(workspace)) as client:
            started = client.post("/api/rollouts/ctr", headers=auth,
                                  json={"version": 2, "stages": [5, 100], "require_loadtest": True,
                                        "loadtest_max_age": "1h"})
            assert started.status_code == 200 and started.json()["awaiting"] == "loadtest"
            assert started.json()["config"]["loadtest_max_age_s"] == 3600
            assert client.post("/api/rollouts/ctr/step", headers=auth).json()["action"] == "hold"
            assert "the canary starts after a passing yarnit loadtest" in client.get("/ui/rollouts/ctr").text
            done = record(workspace, passed=True)
            stepped = client.post("/api/rollouts/ctr/step", headers=auth).json()
            assert stepped["action"] == "advance" and stepped["canary_percent"] == 5.0
            page = client.get("/ui/rollouts/ctr", headers={"Cache-Control": "no-cache"}).text  # a reload
            assert "1 of 2 (5%, 100%)" in page and done in page
