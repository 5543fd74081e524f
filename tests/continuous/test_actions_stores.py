"""The emergency switches on both metadata stores (SQLite, PostgreSQL): one transaction each, idempotent, audited."""

from __future__ import annotations

import pytest
from testsupport import register_ctr

from yarnit.continuous import actions
from yarnit.core.errors import InvalidInput
from yarnit.registry import ModelNotFound, ModelRegistry
from yarnit.serving.router import Router, TrafficPolicyStore
from yarnit.storage import Workspace


def test_switches_flip_once_are_audited_and_a_router_over_the_store_sees_them(ws: Workspace) -> None:
    register_ctr(ws)
    ModelRegistry(ws).set_alias("ctr", "fallback", 1)
    router = Router(TrafficPolicyStore(ws), refresh_s=0.0)
    assert router.forced_fallback("ctr") is False
    first = actions.fall_back(ws, "ctr", actor="user:a", reason="bad")
    assert first["changed"] and router.forced_fallback("ctr") is True
    assert actions.fall_back(ws, "ctr", actor="user:a", reason="again")["changed"] is False
    TrafficPolicyStore(ws).set("ctr", canary_percent=5, actor="user:b")  # a canary change keeps the switch
    assert TrafficPolicyStore(ws).get("ctr").force_fallback is True and router.forced_fallback("ctr") is True
    assert actions.restore_model(ws, "ctr", actor="user:a", reason="ok")["changed"] is True
    assert router.forced_fallback("ctr") is False and TrafficPolicyStore(ws).get("ctr").canary_percent == 5
    assert actions.stop_training(ws, "ctr", actor="user:a", reason="late labels")["changed"] is True
    assert actions.stop_training(ws, "ctr", actor="user:b", reason="twice")["changed"] is False
    assert actions.training_frozen(ws, "ctr").startswith("late labels (frozen by user:a at 2026-01-05T09:00:00")
    assert actions.training_frozen(ws, "other") is None
    actions.resume_training(ws, "ctr", actor="user:a", reason="caught up")
    assert [h["action"] for h in actions.history(ws, model="ctr")] == [
        "resume_training", "stop_training", "restore_model", "fall_back"]
    router.close()


def test_bad_requests_are_refused_before_anything_changes(ws: Workspace) -> None:
    register_ctr(ws)
    with pytest.raises(InvalidInput, match="needs a reason"):
        actions.roll_back(ws, "ctr", actor="user:a", reason="  ")
    with pytest.raises(InvalidInput, match="control character"):
        actions.stop_training(ws, "ctr", actor="user:a", reason="evil\x1b[2J")
    with pytest.raises(ModelNotFound):
        actions.fall_back(ws, "nope", actor="user:a", reason="r")
    with pytest.raises(InvalidInput, match="--alert ID"):
        actions.roll_through(ws, actor="user:a", reason="r")
    assert actions.history(ws) == []
