"""Staged rollouts on the simulated clock, judged from the real prediction log (RELIABILITY.md §7 target 10).

Traffic is written by the real :class:`PredictionLog`; each request is routed by the real :class:`Router`
with the policy the real :class:`TrafficPolicyStore` holds at that moment, as a server would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from testsupport import register_ctr

from yarnit.continuous.rollout import (
    PROMOTED,
    ROLLED_BACK,
    RUNNING,
    RolloutConfig,
    RolloutController,
    parse_duration,
    parse_stages,
)
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.monitoring.workspace import prediction_log_dir, slo_path
from yarnit.registry import ModelRegistry
from yarnit.serving.predlog import PredictionLog
from yarnit.serving.router import Router, TrafficPolicyStore
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log

INTERVAL = 60.0  # the analysis interval = each stage's bake time
PER_INTERVAL = 2000


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(utc(2026, 3, 2, 9))


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed workspace with ctr v1 (production) and v2 to roll out, built once and copied for each test."""
    home = tmp_path_factory.mktemp("template") / "home"
    with open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 3, 2, 9))) as workspace:
        register_ctr(workspace)
    return home


@pytest.fixture
def ws(tmp_path: Path, clock: SimulatedClock, template_home: Path) -> Iterator[Workspace]:
    shutil.copytree(template_home, tmp_path / "home")
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    yield workspace
    workspace.close()


@pytest.fixture
def store_ws(tmp_path: Path, clock: SimulatedClock, db_url: str) -> Iterator[Workspace]:
    """The same on each metadata store (SQLite and PostgreSQL)."""
    workspace = open_workspace(Settings.for_home(tmp_path / "home", db_url=db_url), clock)
    register_ctr(workspace)
    yield workspace
    workspace.close()


class Shop:
    """Requests to ``ctr`` routed as the server routes them, written to the workspace's prediction log."""

    def __init__(self, ws: Workspace, clock: SimulatedClock, *, seed: int = 10) -> None:
        self.ws, self.clock = ws, clock
        self.store = TrafficPolicyStore(ws)
        self.log = PredictionLog(prediction_log_dir(ws.home), clock, fsync=False, aggregate_window_s=1e9,
                                 exemplars=10**9, max_exemplars=10**9)
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.served: list[tuple[str, int | None, int]] = []  # (alias, version, status) per request

    def interval(self, *, canary_errors: float, baseline_errors: float = 0.001, n: int = PER_INTERVAL) -> None:
        """``n`` requests spread over one interval, then the clock is at its end."""
        router = Router()
        router.set_policy("ctr", self.store.get("ctr"))  # the policy in force, read once per interval
        aliases = ModelRegistry(self.ws).aliases("ctr")
        step = INTERVAL / n
        for _ in range(n):
            self.n += 1
            key = f"shopper-{self.n}"
            alias = router.choose("ctr", key, has_canary="canary" in aliases)
            version = aliases[alias]
            failed = self.rng.random() < (canary_errors if alias == "canary" else baseline_errors)
            record: dict[str, Any] = {"request_id": f"r{self.n}", "time": self.clock.now(), "role": "primary",
                                      "protocol": "v1", "model": "ctr", "key": key,
                                      "latency_ms": float(self.rng.lognormal(np.log(5.0), 0.3))}
            if failed and alias == "canary":  # as the data plane does: the canary failed, production answered
                record.update(status=200, version=aliases["production"], alias="production", served_by="previous",
                              reason="RuntimeError: boom", predictions=[float(self.rng.beta(2, 8))])
            elif failed:
                record.update(status=500, error="RuntimeError: boom")
            else:
                record.update(status=200, version=version, alias=alias, served_by="model",
                              predictions=[float(self.rng.beta(2, 8))])
            self.served.append((alias, record.get("version") if record.get("served_by") == "model" else None,
                                record["status"]))
            self.log.append(record)
            self.clock.advance(step)
        assert self.log.flush()

    def close(self) -> None:
        self.log.close()


def audit(ws: Workspace, action: str) -> list[dict[str, Any]]:
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id))
        return [dict(r) for r in rows.mappings()]


def config(stages: tuple[float, ...] = (5, 25, 50, 100), **kw: Any) -> RolloutConfig:
    return RolloutConfig(stages=stages, bake_s=INTERVAL, min_requests=50, **kw)


def test_a_canary_failing_every_request_is_rolled_back(ws: Workspace, clock: SimulatedClock) -> None:
    shop = Shop(ws, clock, seed=16)
    controller = RolloutController(ws, "ctr", clock=clock, config=config())
    controller.start(2, "alice")
    shop.interval(canary_errors=1.0)
    result = controller.step()
    assert result["action"] == "rollback", result["reason"]
    metrics = {m["name"]: m["verdict"] for m in result["analysis"]["metrics"]}
    assert metrics["error_rate"] == "High"
    shop.close()


@pytest.mark.parametrize("threshold", [1, 2])
def test_target10_bad_canary_rolled_back_within_interval_times_threshold(
        store_ws: Workspace, clock: SimulatedClock, threshold: int) -> None:
    ws = store_ws
    shop = Shop(ws, clock)
    controller = RolloutController(ws, "ctr", clock=clock, config=config(threshold=threshold, success_rate=0.99))
    started = clock.now()
    controller.start(2, "alice")
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 5
    result: dict[str, Any] = {}
    for _ in range(10):
        shop.interval(canary_errors=0.05)
        result = controller.step()
        if result["action"] != "hold":
            break
    assert result["action"] == "rollback" and result["status"] == ROLLED_BACK, result["reason"]
    took = (clock.now() - started).total_seconds()
    assert took <= INTERVAL * threshold + 1e-6, f"rolled back after {took} s"
    # traffic to canary is 0 % afterwards, and the canary alias no longer names the bad version
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    assert ModelRegistry(ws).aliases("ctr") == {"production": 1, "canary": 1}
    before = len(shop.served)
    shop.interval(canary_errors=0.05)
    assert {alias for alias, _v, _s in shop.served[before:]} == {"production"}
    # the previous version never stopped serving: production answered in every interval, before and after
    production_ok = [i for i, (alias, version, status) in enumerate(shop.served)
                     if alias == "production" and version == 1 and status == 200]
    assert len(production_ok) > 0.9 * len(shop.served)
    assert max(np.diff([0, *production_ok, len(shop.served)])) < 50
    # the decision is audited with who and why: the failing metric and the scores
    (row,) = audit(ws, "rollout.rollback")
    assert row["actor"] == f"rollout:{result['id']}" and row["detail"]["analysis"]["score"] == 0
    verdicts = {m["name"]: m["verdict"] for m in row["detail"]["analysis"]["metrics"]}
    assert verdicts["error_rate"] == "High"
    assert len(audit(ws, "rollout.hold")) == threshold - 1
    shop.close()


@pytest.mark.parametrize(("stages", "analysed"), [((5, 25, 50, 100), 3), ((10, 20, 30, 40, 50, 100), 5)])
def test_target10_minimum_promotion_time_is_interval_times_max_over_step(
        ws: Workspace, clock: SimulatedClock, stages: tuple[float, ...], analysed: int) -> None:
    shop = Shop(ws, clock, seed=11)
    controller = RolloutController(ws, "ctr", clock=clock, config=config(stages))
    started = clock.now()
    controller.start(2, "alice")
    shares, actions = [], []
    while True:
        shares.append(TrafficPolicyStore(ws).get("ctr").canary_percent)
        shop.interval(canary_errors=0.001)
        result = controller.step()
        actions.append(result["action"])
        if result["status"] != RUNNING or len(actions) > 20:
            break
    assert result["status"] == PROMOTED, actions
    assert actions == ["advance"] * (analysed - 1) + ["promote"]
    assert shares == list(stages[:-1])
    # Flagger: interval × (maxWeight / stepWeight), maxWeight being the last analysed weight
    assert (clock.now() - started).total_seconds() == pytest.approx(INTERVAL * analysed)
    assert ModelRegistry(ws).aliases("ctr")["production"] == 2
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    (row,) = audit(ws, "rollout.promote")
    assert row["detail"]["analysis"]["decision"] == "pass" and row["detail"]["analysis"]["score"] >= 95
    shop.close()


def test_a_canary_without_traffic_holds_and_says_so(ws: Workspace, clock: SimulatedClock) -> None:
    shop = Shop(ws, clock)
    controller = RolloutController(ws, "ctr", clock=clock, config=config())
    controller.start(2, "alice")
    for _ in range(5):  # the canary gets nothing: an hour later it still holds at its first stage
        clock.advance(3600)
        result = controller.step()
        assert result["action"] == "hold" and "no traffic" in result["reason"], result["reason"]
    assert result["status"] == RUNNING and result["stage"] == 1
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 5
    # too little traffic: judged no data (score 0), still a hold, never an advance
    shop.interval(canary_errors=0.0, n=200)
    result = controller.step()
    assert result["action"] == "hold" and result["analysis"]["decision"] == "nodata"
    assert result["analysis"]["score"] == 0
    shop.close()


def test_a_progress_deadline_rolls_back_a_stage_that_never_passes(ws: Workspace, clock: SimulatedClock) -> None:
    controller = RolloutController(ws, "ctr", clock=clock, config=config(deadline_s=7200))
    controller.start(2, "alice")
    clock.advance(7199)
    assert controller.step()["action"] == "hold"
    clock.advance(1)
    result = controller.step()
    assert result["action"] == "rollback" and result["reason"].startswith("progress deadline: stage 1 held 7200 s")
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    with pytest.raises(InvalidInput, match="longer than the bake time"):
        config(deadline_s=30)


def test_killed_controller_resumes_and_heals_a_half_applied_stage(ws: Workspace, clock: SimulatedClock) -> None:
    shop = Shop(ws, clock, seed=12)
    RolloutController(ws, "ctr", clock=clock, config=config()).start(2, "alice")
    shop.interval(canary_errors=0.001)
    assert RolloutController(ws, "ctr", clock=clock).step()["action"] == "advance"
    # a new process knows where the rollout is (the config comes from the state, not the caller)
    status = RolloutController(ws, "ctr", clock=clock).status()
    assert status["stage"] == 2 and status["stage_share"] == 25 and status["canary_percent"] == 25
    # the share in force is not the saved stage's (a controller killed between the two writes, or a hand-made
    # change): the next step first sets the stage's share again, audited, then judges
    for wrong in (5.0, 50.0):
        TrafficPolicyStore(ws, release_gate=None).set("ctr", canary_percent=wrong, actor="test", reason="crash")
        result = RolloutController(ws, "ctr", clock=clock).step()
        last = TrafficPolicyStore(ws).history("ctr")[-1]
        assert (last.from_canary_percent, last.to_canary_percent) == (wrong, 25) and last.actor.startswith("rollout:")
        assert result["action"] == "hold" and result["status"] == RUNNING
    # one rollout per model at a time
    with pytest.raises(Conflict, match="already running"):
        RolloutController(ws, "ctr", clock=clock).start(2, "bob")
    aborted = RolloutController(ws, "ctr", clock=clock).abort(actor="bob", reason="change freeze")
    assert aborted["status"] == "aborted" and aborted["canary_percent"] == 0
    assert audit(ws, "rollout.abort")[0]["detail"]["reason"] == "aborted by bob: change freeze"
    shop.close()


def test_error_budget_gate_holds_the_raise_but_never_the_rollback(ws: Workspace, clock: SimulatedClock) -> None:
    shop = Shop(ws, clock, seed=13)
    shop.interval(canary_errors=0.0, baseline_errors=0.2)  # production burnt its budget (before the rollout)
    clock.advance(3600)
    controller = RolloutController(ws, "ctr", clock=clock, config=config())
    controller.start(2, "alice")
    slo_path(ws.home).write_text("service: shop\nslos:\n  - name: avail\n    sli: serving_availability\n"
                                 "    model: ctr\n    objective: 99\n    window: 28d\n")
    shop.interval(canary_errors=0.001, baseline_errors=0.001)
    result = controller.step()
    assert result["action"] == "hold" and "error budget" in result["reason"], result["reason"]
    assert result["analysis"]["decision"] == "pass" and TrafficPolicyStore(ws).get("ctr").canary_percent == 5
    (row,) = audit(ws, "rollout.hold")
    assert "gate_refusal" in row["detail"]
    # a spent budget never blocks the fix
    shop.interval(canary_errors=0.3)
    result = controller.step()
    assert result["action"] == "rollback" and TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    # and a new rollout is refused by the gate at its start
    with pytest.raises(Conflict, match="budget"):
        controller.start(2, "alice")
    shop.close()


def test_bad_input_is_refused_clearly(ws: Workspace, clock: SimulatedClock) -> None:
    with pytest.raises(NotFound, match="No rollout of ctr"):
        RolloutController(ws, "ctr", clock=clock).step()
    with pytest.raises(InvalidInput, match="already in production"):
        RolloutController(ws, "ctr", clock=clock).start(1, "alice")
    with pytest.raises(InvalidInput, match="increase"):
        RolloutConfig(stages=(5, 1))
    with pytest.raises(InvalidInput, match="duration"):
        parse_duration("soon")
    assert parse_duration("30m") == 1800 and parse_stages("1,5,25%") == (1, 5, 25)
    with pytest.raises(InvalidInput, match="model name"):
        RolloutController(ws, "../etc", clock=clock)


def shadow_interval(shop: Shop, *, shadow_errors: float, n: int = 400) -> None:
    """Production answers everything; v2 scores a copy of each request in the shadow (as the data plane logs it)."""
    step = INTERVAL / n
    for _ in range(n):
        shop.n += 1
        now = shop.clock.now()
        base = {"request_id": f"r{shop.n}", "time": now, "model": "ctr", "key": f"shopper-{shop.n}"}
        shop.log.append(base | {"role": "primary", "protocol": "v1", "status": 200, "version": 1,
                                "alias": "production", "served_by": "model", "predictions": [0.2],
                                "latency_ms": float(shop.rng.lognormal(np.log(5.0), 0.3))})
        failed = shop.rng.random() < shadow_errors
        shop.log.append(base | {"role": "shadow", "version": 2, "alias": "shadow", "served_by": "shadow",
                                "status": 500 if failed else 200, "predictions": None if failed else [0.2],
                                "latency_ms": float(shop.rng.lognormal(np.log(4.0), 0.3))})
        shop.clock.advance(step)
    assert shop.log.flush()


@pytest.mark.parametrize("shadow_errors", [0.0, 0.2])
def test_shadow_stage_judges_the_shadow_scores_then_hands_over_to_the_canary(
        ws: Workspace, clock: SimulatedClock, shadow_errors: float) -> None:
    shop = Shop(ws, clock, seed=14)
    controller = RolloutController(ws, "ctr", clock=clock, config=config(parse_stages("shadow,5,100")))
    controller.start(2, "alice")
    policy = TrafficPolicyStore(ws).get("ctr")
    assert policy.canary_percent == 0 and policy.shadow and ModelRegistry(ws).aliases("ctr")["shadow"] == 2
    assert controller.step()["reason"].startswith("the canary got no traffic in this stage (0 s at shadow)")
    shadow_interval(shop, shadow_errors=shadow_errors)
    result = controller.step()
    if shadow_errors:
        assert result["action"] == "rollback", result["reason"]
        assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    else:
        assert result["action"] == "advance", result["reason"]
        assert TrafficPolicyStore(ws).get("ctr").canary_percent == 5
    assert result["analysis"]["metrics"][0]["canary_n"] == 400  # every shadow score was judged
    # the shadow stage is over: v2 no longer scores copies (there was no shadow alias before)
    assert TrafficPolicyStore(ws).get("ctr").shadow is False
    shop.close()


def test_a_production_move_outside_the_rollout_aborts_it(ws: Workspace, clock: SimulatedClock) -> None:
    registry = ModelRegistry(ws)
    registry.register("ctr", registry.ws.artifacts.get_bytes(registry.get("ctr", 1).artifact_sha256),
                      registry.get("ctr", 1).artifact_format, signature=registry.get("ctr", 1).signature)
    controller = RolloutController(ws, "ctr", clock=clock, config=config())
    controller.start(2, "alice")
    registry.promote("ctr", 3, actor="oncall", reason="emergency")  # e.g. an emergency action moved production
    result = controller.step()
    assert result["action"] == "abort" and "baseline is gone" in result["reason"]
    assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
    assert registry.aliases("ctr") == {"production": 3, "canary": 3}


def test_ctr_from_joined_labels_is_judged_and_a_drop_rolls_back(ws: Workspace, clock: SimulatedClock,
                                                                 tmp_path: Path) -> None:
    from yarnit.monitoring import quality

    shop = Shop(ws, clock, seed=15)
    controller = RolloutController(ws, "ctr", clock=clock, config=config((25, 50, 100)))
    controller.start(2, "alice")
    shop.interval(canary_errors=0.0, baseline_errors=0.0)
    # shoppers click v1's slates 10 % of the time and v2's 2 %: labels arrive, keyed by request id
    rng = np.random.default_rng(5)
    rows = [{"request_id": f"r{i + 1}", "index": 0, "kind": "click", "event_time": clock.now().isoformat(),
             "value": int(rng.random() < (0.02 if version == 2 else 0.10))}
            for i, (_alias, version, status) in enumerate(shop.served) if status == 200]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    quality.ingest_labels(ws, labels)
    quality.update(ws)
    result = controller.step()
    metrics = {m["name"]: m for m in result["analysis"]["metrics"]}
    assert metrics["ctr"]["verdict"] == "Low" and metrics["ctr"]["canary_n"] > 300, metrics["ctr"]
    assert result["action"] == "rollback" and "ctr" in result["reason"]
    shop.close()


def test_kill_9_during_steps_leaves_a_state_the_next_controller_opens(ws: Workspace, clock: SimulatedClock) -> None:
    import os
    import signal
    import subprocess
    import sys

    RolloutController(ws, "ctr", clock=clock, config=config()).start(2, "alice")
    script = ("import sys\nfrom yarnit.core import Settings\nfrom yarnit.storage import open_workspace\n"
              "from yarnit.continuous.rollout import RolloutController\n"
              "ws = open_workspace(Settings.for_home(sys.argv[1]))\nc = RolloutController(ws, 'ctr')\n"
              "while True:\n    c.step()\n    print('stepped', flush=True)\n")
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", script, str(ws.home)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        for _ in range(5):  # five decisions written, then killed wherever it is
            assert child.stdout.readline() == b"stepped\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    controller = RolloutController(ws, "ctr", clock=clock)
    before = controller.status()
    assert before["status"] == RUNNING and before["stage"] == 1 and before["decisions"][-1]["action"] == "hold"
    result = controller.step()  # the dead process's lock died with it
    assert result["action"] == "hold" and len(audit(ws, "rollout.hold")) >= 6
