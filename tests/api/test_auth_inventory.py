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


# --- named tokens (issue 16 item 6): who wrote is recorded, a revoked token is refused at once ---

def test_a_named_token_write_is_recorded_as_token_name(token_ws: Workspace) -> None:
    from yarnit.access import Tokens

    _, secret = Tokens(token_ws).issue("release-bot", ["write"], actor="user:ops")
    client = TestClient(create_app(token_ws))
    response = client.post("/api/models/ctr/aliases/canary", json={"version": 2, "reason": "canary v2"},
                           headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    traffic = client.put("/api/models/ctr/traffic", json={"canary_percent": 5},
                         headers={"Authorization": f"Bearer {secret}"})
    assert traffic.status_code == 200, traffic.text
    assert client.get("/api/models/ctr/history").json()[-1]["actor"] == "token:release-bot"
    assert traffic.json()["event"]["actor"] == "token:release-bot"


def test_a_token_without_the_write_role_cannot_write(token_ws: Workspace) -> None:
    from yarnit.access import Tokens

    _, secret = Tokens(token_ws).issue("analyst", ["read-restricted"], actor="user:ops")
    client = TestClient(create_app(token_ws))
    response = client.post("/api/models/ctr/rollback", json={}, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 403 and "token:analyst lacks the 'write' role" in response.json()["detail"]


def test_once_a_token_is_issued_loopback_writes_need_one_too(sqlite_ws: Workspace) -> None:
    from yarnit.access import Tokens

    register_ctr(sqlite_ws)
    Tokens(sqlite_ws).issue("ops", ["write"], actor="user:ops")
    local = TestClient(create_app(sqlite_ws), client=("127.0.0.1", 5000))
    assert local.post("/api/models/ctr/aliases/production", json={"version": 2}).status_code == 401


def test_a_loopback_write_without_tokens_is_recorded_as_loopback(sqlite_ws: Workspace) -> None:
    register_ctr(sqlite_ws)
    local = TestClient(create_app(sqlite_ws), client=("127.0.0.1", 5000))
    assert local.post("/api/models/ctr/aliases/production", json={"version": 2}).status_code == 200
    assert local.get("/api/models/ctr/history").json()[-1]["actor"] == "loopback:anonymous"


def test_a_revoked_token_is_refused_by_the_next_request_over_real_http(token_ws: Workspace) -> None:
    import httpx

    from yarnit.access import Tokens
    from yarnit.api.server import BackgroundServer

    tokens = Tokens(token_ws)
    _, secret = tokens.issue("deployer", ["write"], actor="user:ops")
    auth = {"Authorization": f"Bearer {secret}"}
    with BackgroundServer(create_app(token_ws, refresh_s=0.0)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.post("/api/models/ctr/aliases/canary", json={"version": 2}, headers=auth)
        assert first.status_code == 200, first.text
        tokens.revoke("deployer", actor="user:ops")
        refused = http.post("/api/models/ctr/aliases/canary", json={"version": 1}, headers=auth)
        assert refused.status_code == 401, refused.text
        assert "revoked" in refused.json()["detail"]
        reads_with_it = http.get("/api/models/ctr", headers=auth)
        assert reads_with_it.status_code == 401  # a read that sends a bad token is refused, not served anonymously
    assert [e["to_version"] for e in TestClient(create_app(token_ws)).get("/api/models/ctr/history").json()
            if e["alias"] == "canary"] == [2]


def test_every_api_write_route_refuses_a_body_over_the_limit_with_the_right_token(token_ws: Workspace) -> None:
    from yarnit.api.limits import MAX_CONTROL_BODY_BYTES

    app = create_app(token_ws)
    client = TestClient(app)
    writes = sorted((m, r.path) for r in iter_api_routes(app.routes) for m in r.methods if needs_token(m, r.path))
    assert len(writes) >= 2, "the inventory found no write routes: the check would prove nothing"
    body = b'{"reason": "' + b"x" * MAX_CONTROL_BODY_BYTES + b'"}'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for method, path in writes:
        response = client.request(method, _concrete(path), content=body, headers=headers)
        assert response.status_code == 413, (method, path, response.status_code)
        assert len(response.content) < 1000, (method, path)  # nothing of the body comes back
