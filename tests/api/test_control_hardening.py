"""The control plane answers hostile input with 4xx: huge integers, non-finite numbers, giant bodies,
control characters; and its error text carries no server paths and never echoes the request."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.core.errors import Unavailable
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def client(token_ws: Workspace) -> TestClient:
    return TestClient(create_app(token_ws), raise_server_exceptions=False)


def test_a_version_past_64_bits_is_a_422_not_a_database_overflow(client: TestClient) -> None:
    response = client.post("/api/models/ctr/aliases/canary", content=b'{"version": 1180591620717411303424}',
                           headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "version"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_a_non_finite_canary_percent_is_a_422(client: TestClient, number: bytes) -> None:
    response = client.put("/api/models/ctr/traffic", content=b'{"canary_percent": ' + number + b"}", headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "finite_number"


@pytest.mark.parametrize("ref", ["x:v99999999999999999999", "model:ctr:v99999999999999999999",
                                 "dataset:x:v" + "9" * 5000, "ctr:v0"])
def test_a_lineage_ref_with_an_out_of_range_version_is_a_422(client: TestClient, ref: str) -> None:
    response = client.get("/api/lineage", params={"ref": ref[:200]})
    assert response.status_code == 422, response.text
    assert "versions are whole numbers from 1 to 2147483647" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_413_before_it_is_read(client: TestClient) -> None:
    big = b'{"reason": "' + b"a" * (2 << 20) + b'"}'
    response = client.post("/api/models/ctr/rollback", content=big, headers=AUTH)
    assert response.status_code == 413 and len(response.content) < 1000
    chunked = client.post("/api/models/ctr/rollback", content=iter([big[:1 << 19]] * 4), headers=AUTH)
    assert chunked.status_code == 413 and len(chunked.content) < 1000


def test_a_422_never_echoes_the_request(client: TestClient) -> None:
    marker = "ECHO-" + "z" * 5000
    response = client.post("/api/models/ctr/aliases/canary", json={"version": marker}, headers=AUTH)
    assert response.status_code == 422
    assert "ECHO-" not in response.text and "input" not in response.json()["detail"][0]


@pytest.mark.parametrize("reason", ["\x1b[2J cleared", "line\nbreak", "tab\there", "bidi \u202e reversed", "\x9b31m"])
def test_a_reason_with_control_characters_is_refused(client: TestClient, token_ws: Workspace, reason: str) -> None:
    for method, url, body in (("POST", "/api/models/ctr/aliases/canary", {"version": 2, "reason": reason}),
                              ("POST", "/api/models/ctr/rollback", {"reason": reason}),
                              ("PUT", "/api/models/ctr/traffic", {"canary_percent": 5, "reason": reason})):
        response = client.request(method, url, json=body, headers=AUTH)
        assert response.status_code == 422, (url, response.text)
    assert ModelRegistry(token_ws).history("ctr")[-1].reason == ""  # nothing written


def test_errors_sent_to_clients_carry_no_server_paths(token_ws: Workspace, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(token_ws)

    @app.get("/api/boom")
    def boom() -> None:
        raise Unavailable(f"The metadata store at sqlite:///{tmp_path}/home/yarnit.db did not answer; artifact "
                          f"{tmp_path}/home/artifacts/sha256/ab/cd is unreadable. See /api/models/ctr.")

    response = TestClient(app).get("/api/boom")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert str(tmp_path) not in detail and "sqlite:///" not in detail and "/home/" not in detail
    assert detail.count("<server path>") == 2 and "/api/models/ctr" in detail  # route advice is kept
    assert str(tmp_path) in caplog.text  # the operator still sees where


def test_client_safe_keeps_urls_and_routes_and_escapes_controls() -> None:
    from yarnit.api.errors import client_safe

    text = client_safe("Use redis://127.0.0.1:6379/0 or GET /v2/health/ready; bad \x1b[31m")
    assert text == "Use redis://127.0.0.1:6379/0 or GET /v2/health/ready; bad \\x1b[31m"


def test_a_real_server_answers_a_declared_50mb_body_413_without_reading_it(token_ws: Workspace) -> None:
    import socket

    from yarnit.api.server import BackgroundServer

    app = create_app(token_ws)
    try:
        with BackgroundServer(app) as server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(b"POST /api/models/ctr/rollback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 52428800\r\n\r\n{")
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
    finally:
        if getattr(app.state, "serving", None) is not None:
            app.state.serving.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1,048,576 bytes" in answer


def test_data_plane_error_bodies_carry_no_server_paths(tmp_path: Path) -> None:
    import json

    from yarnit.api.codecs import error_body

    body = json.loads(error_body(Unavailable(f"The metadata store at sqlite:///{tmp_path}/yarnit.db did not "
                                             "answer."), "req_1"))
    assert body == {"error": "Unavailable", "detail": "The metadata store at <server path> did not answer.",
                    "request_id": "req_1"}
