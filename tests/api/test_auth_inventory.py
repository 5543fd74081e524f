"""Every control-plane write refuses a request without the token (RELIABILITY.md target 20)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from yarnit.api import create_app
from yarnit.api.app import iter_api_routes
from yarnit.api.auth import needs_token
from yarnit.storage import Workspace

from testsupport import TOKEN, register_ctr


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "production" if "alias" in m.group(0) else "ctr", path)


def test_every_mutating_api_route_refuses_missing_or_wrong_tokens(token_ws: Workspace) -> None:
    app = create_app(token_ws)
    client = TestClient(app)
    routes = list(iter_api_routes(app.routes))
    inventory = {(m, r.path) for r in routes for m in r.methods}
    documented = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= inventory, f"routes the walk missed: {documented - inventory}"
    writes = sorted((method, path) for method, path in inventory if needs_token(method, path))
    assert len(writes) >= 2, "the inventory found no write routes: the check would prove nothing"
    for method, path in writes:
        url = _concrete(path)
        assert client.request(method, url, json={}).status_code == 401, (method, path)
        bad = client.request(method, url, json={}, headers={"Authorization": "Bearer wrong-token-0000000000"})
        assert bad.status_code == 401, (method, path)
        basic = client.request(method, url, json={}, headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401, (method, path)


def test_no_write_route_lives_outside_the_protected_prefix(token_ws: Workspace) -> None:
    app = create_app(token_ws)
    data_plane = re.compile(r"^/v[12]/models/\{name\}(:predict|/infer)$")
    for route in iter_api_routes(app.routes):
        for method in route.methods - {"GET", "HEAD", "OPTIONS"}:
            assert needs_token(method, route.path) or data_plane.match(route.path), (method, route.path)


def test_the_right_token_is_accepted(token_ws: Workspace) -> None:
    client = TestClient(create_app(token_ws))
    response = client.post("/api/models/ctr/aliases/canary", json={"version": 2, "reason": "try v2"},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.json()["to_version"] == 2
    history = client.get("/api/models/ctr/history").json()
    assert history[-1]["actor"] == "token:admin" and history[-1]["reason"] == "try v2"


def test_without_a_configured_token_writes_come_only_from_loopback(sqlite_ws: Workspace) -> None:
    register_ctr(sqlite_ws)
    app = create_app(sqlite_ws)
    remote = TestClient(app, client=("203.0.113.9", 5000))
    assert remote.post("/api/models/ctr/rollback", json={}).status_code == 403
    local = TestClient(app, client=("127.0.0.1", 5000))
    response = local.post("/api/models/ctr/aliases/production", json={"version": 2})
    assert response.status_code == 200, response.text
