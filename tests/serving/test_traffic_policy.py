"""The traffic policy (canary %, shadow) is stored per model, audited, and read by every server process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.core import InvalidInput, Settings, SimulatedClock
from yarnit.registry import ModelNotFound, ModelRegistry
from yarnit.serving import ServingOptions
from yarnit.serving.router import Router, TrafficPolicy, TrafficPolicyStore
from yarnit.storage import Workspace, open_workspace

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(tmp_path: Path, clock: SimulatedClock) -> Iterator[Path]:
    """A workspace home with 'ctr' v1 (production) and v2 (canary), on disk for several 'processes'."""
    with open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock) as ws:
        register_ctr(ws)
        ModelRegistry(ws).set_alias("ctr", "canary", 2)
    return tmp_path / "home"


@pytest.fixture
def open_ws(home: Path, clock: SimulatedClock) -> Iterator[Callable[[], Workspace]]:
    opened: list[Workspace] = []

    def opener() -> Workspace:
        ws = open_workspace(Settings.for_home(home, api_token=TOKEN), clock)
        opened.append(ws)
        return ws

    yield opener
    for ws in opened:
        ws.close()


def test_a_change_is_stored_and_audited_with_who_when_old_and_new(ws: Workspace, clock: SimulatedClock) -> None:
    register_ctr(ws)  # on SQLite and (when YARNIT_TEST_POSTGRES_URL is set) PostgreSQL
    store = TrafficPolicyStore(ws)
    assert store.get("ctr") == TrafficPolicy(canary_percent=0.0, shadow=True) and store.history("ctr") == []
    first = store.set("ctr", canary_percent=10.0, actor="ana", reason="start the canary")
    clock.advance(timedelta(minutes=5))
    second = store.set("ctr", shadow=False, actor="ben")  # a field left out keeps its value
    assert store.get("ctr") == TrafficPolicy(canary_percent=10.0, shadow=False)
    history = store.history("ctr")
    assert history == [first, second]
    assert (first.from_canary_percent, first.to_canary_percent, first.from_shadow, first.to_shadow) == \
        (None, 10.0, None, True)
    assert (second.from_canary_percent, second.to_canary_percent, second.from_shadow, second.to_shadow) == \
        (10.0, 10.0, True, False)
    assert (second.actor, second.at - first.at) == ("ben", timedelta(minutes=5))
    assert first.reason == "start the canary" and history[0].at.tzinfo is not None


def test_bad_changes_are_refused_and_leave_nothing(ws: Workspace) -> None:
    register_ctr(ws)
    store = TrafficPolicyStore(ws)
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        store.set("nope", canary_percent=5.0, actor="t")
    with pytest.raises(InvalidInput, match=r"within \[0, 100\]; got 150"):
        store.set("ctr", canary_percent=150.0, actor="t")
    with pytest.raises(InvalidInput, match="finite"):
        store.set("ctr", canary_percent=float("nan"), actor="t")
    assert store.history("ctr") == [] and store.all() == {}


def _canary_share(router: Router, n: int = 2000) -> float:
    return sum(router.choose("ctr", f"user-{i}", has_canary=True) == "canary" for i in range(n)) / n


def test_every_router_over_the_workspace_follows_a_change_and_a_restart_keeps_it(open_ws) -> None:
    worker_a = Router(TrafficPolicyStore(open_ws()), refresh_s=0.02)
    worker_b = Router(TrafficPolicyStore(open_ws()), refresh_s=0.02)
    try:
        assert _canary_share(worker_a) == _canary_share(worker_b) == 0.0
        worker_a.set_policy("ctr", TrafficPolicy(canary_percent=25.0, shadow=False), actor="ana")
        assert 0.2 < _canary_share(worker_a) < 0.3  # the process that took the change applies it at once
        deadline = time.monotonic() + 5
        while worker_b.policy("ctr").canary_percent != 25.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker_b.policy("ctr") == TrafficPolicy(25.0, shadow=False)
        # Same keys, same side, in both processes: the split is sticky across workers.
        assert [worker_a.choose("ctr", f"u{i}", has_canary=True) for i in range(500)] == \
            [worker_b.choose("ctr", f"u{i}", has_canary=True) for i in range(500)]
    finally:
        worker_a.close()
        worker_b.close()
    restarted = Router(TrafficPolicyStore(open_ws()), refresh_s=0.02)
    try:
        assert restarted.policy("ctr") == TrafficPolicy(25.0, shadow=False)
    finally:
        restarted.close()


def test_the_control_api_sets_the_policy_with_the_token_and_other_servers_follow(open_ws) -> None:
    options = ServingOptions(refresh_s=0.02, cache_entries=0, log_fsync=False)
    app_a, app_b = create_app(open_ws(), refresh_s=0.02, serving=options), \
        create_app(open_ws(), refresh_s=0.02, serving=options)
    try:
        with TestClient(app_a) as a, TestClient(app_b) as b:
            assert a.put("/api/models/ctr/traffic", json={"canary_percent": 50}).status_code == 401
            response = a.put("/api/models/ctr/traffic", json={"canary_percent": 100, "reason": "all in"},
                             headers=AUTH)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["policy"] == {"canary_percent": 100.0, "shadow": True}
            assert body["event"]["actor"] == "token:admin" and body["event"]["reason"] == "all in"
            assert body["event"]["from_canary_percent"] is None and body["event"]["to_canary_percent"] == 100.0
            instances = {"instances": [{"fiber": "merino", "price": 12.0}], "key": "user-7"}
            assert a.post("/v1/models/ctr:predict", json=instances).json()["alias"] == "canary"
            deadline = time.monotonic() + 5
            while b.post("/v1/models/ctr:predict", json=instances).json()["alias"] != "canary":
                assert time.monotonic() < deadline, "the other server never picked up the new policy"
                time.sleep(0.02)
            shown = b.get("/api/models/ctr/traffic").json()
            assert shown["policy"]["canary_percent"] == 100.0 and len(shown["history"]) == 1
            assert a.put("/api/models/ctr/traffic", json={"canary_percent": 101}, headers=AUTH).status_code == 422
            assert a.put("/api/models/ctr/traffic", json={}, headers=AUTH).status_code == 422
            assert a.put("/api/models/nope/traffic", json={"shadow": False}, headers=AUTH).status_code == 404
            assert a.get("/api/models/nope/traffic").status_code == 404
    finally:
        app_a.state.serving.close()
        app_b.state.serving.close()
