"""Clients name their requests (X-Request-Id, or the OIP v2 body id): validated, echoed, and the log's join key."""

from __future__ import annotations

import time

import httpx
import pytest
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.serving import ServingOptions, read_prediction_log
from yarnit.storage import Workspace

OPTIONS = ServingOptions(log_flush_interval_s=0.01, log_fsync=False)
V1 = {"instances": [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}]}


def v2(request_id: str | None = None) -> dict:
    body = {"inputs": [{"name": "fiber", "shape": [1], "datatype": "BYTES", "data": ["merino"]},
                       {"name": "price", "shape": [1], "datatype": "FP64", "data": [12.0]}]}
    if request_id is not None:
        body["id"] = request_id
    return body


@pytest.fixture
def served(sqlite_ws: Workspace):
    register_ctr(sqlite_ws)
    app = create_app(sqlite_ws, refresh_s=0.0, serving=OPTIONS)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, app, sqlite_ws


def logged(app, ws: Workspace, *wanted: str) -> dict[str, dict]:
    """The log's primary records by request id, once ``wanted`` are all in it (written after the answer is sent)."""
    deadline = time.monotonic() + 30
    while True:
        assert app.state.serving.log.flush()
        records = {r["request_id"]: r for r in read_prediction_log(ws.home / "prediction_log")
                   if r.get("role") == "primary"}
        if set(wanted) <= set(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


def test_a_bad_request_id_header_is_a_422_that_says_what_is_allowed(served) -> None:
    client, _app, _ws = served
    for bad in (b"has space", b"x" * 65, b"semi;colon", "\u00fcn".encode("latin-1")):
        for path in ("/v1/models/ctr:predict", "/v2/models/ctr/infer"):
            answer = client.post(path, json=V1 if "v1" in path else v2(), headers={b"x-request-id": bad})
            assert answer.status_code == 422, (bad, path)
            assert "x-request-id must be 1-64 characters of A-Z a-z 0-9 . _ : -" in answer.json()["detail"]


def test_a_named_request_is_echoed_and_logged_under_its_name(served) -> None:
    client, app, ws = served
    answer = client.post("/v1/models/ctr:predict", json=V1, headers={"x-request-id": "shop-1.page:7_a"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "shop-1.page:7_a" and answer.json()["request_id"] == "shop-1.page:7_a"
    record = logged(app, ws, "shop-1.page:7_a")["shop-1.page:7_a"]
    assert len(record["predictions"]) == 2 and record["instances"][1]["fiber"] == "acrylic"  # index = position


def test_a_bad_oip_v2_id_is_a_422(served) -> None:
    client, _app, _ws = served
    for bad in ("has space", "y" * 65, 12, ""):
        answer = client.post("/v2/models/ctr/infer", json=v2(bad))
        assert answer.status_code == 422 and "'id' must be 1-64 characters" in answer.json()["detail"], bad


def test_the_oip_v2_id_names_the_request_unless_the_header_did(served) -> None:
    client, app, ws = served
    by_body = client.post("/v2/models/ctr/infer", json=v2("oip-1"))
    assert by_body.status_code == 200 and by_body.json()["id"] == "oip-1"
    assert by_body.headers["x-request-id"] == "oip-1"
    both = client.post("/v2/models/ctr/infer", json=v2("oip-2"), headers={"x-request-id": "hdr-2"})
    assert both.status_code == 200 and both.json()["id"] == "oip-2" and both.headers["x-request-id"] == "hdr-2"
    records = logged(app, ws, "oip-1", "hdr-2")
    assert "oip-1" in records and "hdr-2" in records and "oip-2" not in records
