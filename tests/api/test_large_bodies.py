"""Large bodies over real HTTP: parsed off the event loop, and logged as a digest past a row limit."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from yarnit.api import create_app, dataplane
from yarnit.api.server import BackgroundServer
from yarnit.serving import ServingOptions, scan_prediction_log
from yarnit.serving.predlog import MAX_LOGGED_ROWS
from yarnit.storage import Workspace

OPTIONS = ServingOptions(log_flush_interval_s=0.01, log_fsync=False, deadline_ms=60_000)
ROWS = 8_000


@pytest.fixture
def served(token_ws: Workspace) -> Iterator[tuple[httpx.Client, Any]]:
    app = create_app(token_ws, refresh_s=0.0, serving=OPTIONS)
    app.state.serving.runtime.preload()
    try:
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            yield http, app
    finally:
        app.state.serving.close()


def _logged(app: Any, ws: Workspace, request_id: str) -> dict[str, Any]:
    """The request's log record, once written (it is logged just after the answer is sent)."""
    for _ in range(100):
        app.state.serving.log.flush()
        found = [r for r in scan_prediction_log(ws.home / "prediction_log").records if r["request_id"] == request_id]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"{request_id} was never logged")


def _big_v2(rows: int) -> bytes:
    body = orjson.dumps({"inputs": [
        {"name": "fiber", "shape": [rows], "datatype": "BYTES", "data": ["merino", "acrylic"] * (rows // 2)},
        {"name": "price", "shape": [rows], "datatype": "FP64", "data": [12.5, 3.25] * (rows // 2)}]})
    assert len(body) > dataplane.PARSE_INLINE_BYTES
    return body


@pytest.mark.parametrize("path", ["/v2/models/ctr/infer", "/v2/models/ctr/infer?via=asgi"])
def test_the_loop_answers_health_checks_while_a_big_body_is_parsed(served, monkeypatch: pytest.MonkeyPatch,
                                                                   path: str, token_ws: Workspace) -> None:
    """The parse of a big body is held until a health check has been answered: only a free loop answers it.

    (A query string sends the request through the ASGI path instead of the HTTP fast lane.)
    """
    http, app = served
    started, answered = threading.Event(), threading.Event()
    held: list[bool] = []
    original = dataplane.loads

    def held_loads(body: bytes) -> Any:
        if len(body) > dataplane.PARSE_INLINE_BYTES:
            started.set()
            held.append(answered.wait(timeout=20))  # on the event loop, no health check could answer meanwhile
        return original(body)

    monkeypatch.setattr(dataplane, "loads", held_loads)
    big: list[httpx.Response] = []
    url = str(http.base_url).rstrip("/") + path
    body = _big_v2(ROWS)
    sender = threading.Thread(target=lambda: big.append(httpx.post(
        url, content=body, headers={"content-type": "application/json"}, timeout=60)))
    sender.start()
    try:
        assert started.wait(timeout=30), "the big body was never parsed"
        with httpx.Client(base_url=http.base_url, timeout=60) as other:
            assert other.get("/v2/health/live").status_code == 200
        answered.set()
    finally:
        answered.set()
        sender.join(timeout=60)
    assert held == [True], "the health check waited for the big body's parse: it ran on the event loop"
    assert big[0].status_code == 200 and big[0].json()["outputs"][0]["shape"] == [ROWS], big[0].text
    logged = _logged(app, token_ws, big[0].json()["parameters"]["request_id"])
    assert logged["instances"] == {"rows": ROWS, "sha256": hashlib.sha256(body).hexdigest(), "of": "request body"}


def test_a_request_past_the_row_limit_is_logged_as_its_row_count_and_digest(served, token_ws: Workspace) -> None:
    http, app = served
    rows = [{"fiber": "merino", "price": float(i % 40)} for i in range(MAX_LOGGED_ROWS + 1)]
    big = http.post("/v1/models/ctr:predict", json={"instances": rows})
    small = http.post("/v1/models/ctr:predict", json={"instances": rows[:2]})
    assert big.status_code == small.status_code == 200
    logged = _logged(app, token_ws, big.json()["request_id"])
    assert logged["instances"] == {"rows": len(rows), "sha256": hashlib.sha256(orjson.dumps(rows)).hexdigest(),
                                   "of": "rows"}
    assert logged["predictions"] == {"rows": len(rows), "sha256": hashlib.sha256(
        orjson.dumps(big.json()["predictions"])).hexdigest(), "of": "rows"}
    assert _logged(app, token_ws, small.json()["request_id"])["instances"] == rows[:2]
