"""A slow model scores on the scoring pool, so the event loop keeps answering health checks, 503s and fast models.

The slow model blocks on a gate the test holds closed (not on a sleep that a loaded machine may outlast): what
the loop answers while the gate is closed was answered while the model was still scoring."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ArtifactFormat, ModelRegistry, ModelVersion, Predictor, dump_sklearn
from yarnit.serving import ServingOptions, scan_prediction_log
from yarnit.serving.admission import ScoringPool, ScoringTimeout, scores_inline
from yarnit.storage import Workspace

ROW = {"fiber": "merino", "price": 12.0}
ACRYLIC = {"fiber": "acrylic", "price": 3.0}
GATE = threading.Event()  # open (set) unless a test holds the slow model's scoring with _held()


class SlowPredictor:
    """Waits for the gate before answering (the GIL is free meanwhile, as in a C library call or an I/O wait)."""

    def __init__(self, native: Predictor) -> None:
        self.native = native

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        if not GATE.wait(timeout=60):
            raise TimeoutError("the test never opened the slow model's gate")
        return self.native.predict_proba(instances)


def _slow_wrap(version: ModelVersion, native: Predictor) -> Predictor:
    return SlowPredictor(native) if version.model_name == "slow" else native


@contextmanager
def _held() -> Iterator[None]:
    """The slow model scores nothing until the block ends."""
    GATE.clear()
    try:
        yield
    finally:
        GATE.set()


def _wait_busy(pool: Any, n: int) -> None:
    deadline = time.monotonic() + 30
    while pool.busy < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert pool.busy == n, f"{n} slow request(s) should be scoring on the pool"


@pytest.fixture
def served(token_ws: Workspace) -> Iterator[tuple[str, Any]]:
    """A server with 'ctr' (compiled, inline) and 'slow' (the same model, scoring when the gate opens)."""
    registry = ModelRegistry(token_ws)
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit([ROW, ACRYLIC] * 10, [1, 0] * 10)
    registry.register("slow", dump_sklearn(model), ArtifactFormat.SKOPS,
                      signature={"inputs": {"fiber": "string", "price": "double"},
                                 "fallback": {"key": "fiber", "table": {"merino": 0.25}, "default": 0.05}})
    registry.promote("slow", 1)
    GATE.set()
    app = create_app(token_ws, serving=ServingOptions(max_in_flight=2, cache_entries=0, log_fsync=False,
                                                      deadline_ms=60_000))
    app.state.serving.runtime.wrap_predictor = _slow_wrap  # the fault-injection seam, before anything loads
    with BackgroundServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:  # load both models before timing anything
            assert http.post("/v1/models/ctr:predict", json={"instances": [ROW]}).status_code == 200
            assert http.post("/v1/models/slow:predict", json={"instances": [ROW]}).status_code == 200
        yield server.url, app
    app.state.serving.close()


def _in_background(fn: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_health_fast_models_and_503s_answer_while_a_slow_model_scores(served) -> None:
    url, app = served
    slow_answers: list[httpx.Response] = []

    def slow_request() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            slow_answers.append(http.post("/v1/models/slow:predict", json={"instances": [ROW]}))

    pool = app.state.serving.admission.pool
    with _held():
        threads = [_in_background(slow_request) for _ in range(2)]  # fills max_in_flight=2
        _wait_busy(pool, 2)
        with httpx.Client(base_url=url, timeout=10) as http:
            health = http.get("/v2/health/live")
            shed = http.post("/v1/models/ctr:predict", json={"instances": [ROW]})
        assert pool.busy == 2, "the slow model was still scoring while the loop answered"
    for thread in threads:
        thread.join(timeout=30)
    assert health.status_code == 200
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert [r.status_code for r in slow_answers] == [200, 200]
    assert all(r.json()["served_by"] == "model" for r in slow_answers)


def test_a_shed_request_is_answered_before_its_body_is_read_and_still_logged_and_counted(served) -> None:
    url, app = served
    service = app.state.serving
    with _held():
        threads = [_in_background(lambda: httpx.post(f"{url}/v1/models/slow:predict", json={"instances": [ROW]},
                                                     timeout=60)) for _ in range(2)]  # fills max_in_flight=2
        _wait_busy(service.admission.pool, 2)
        with httpx.Client(base_url=url, timeout=10) as http:
            # Not JSON at all: a 503, not a 422, because a shed request's body is never parsed.
            v1 = http.post("/v1/models/ctr:predict", content=b"{not json", headers={"x-request-id": "shed-v1"})
            v2 = http.post("/v2/models/ctr/infer", json={"inputs": []}, headers={"x-request-id": "shed-v2"})
        assert service.admission.pool.busy == 2, "both slow requests were still in flight"
    for thread in threads:
        thread.join(timeout=30)
    for response, request_id in ((v1, "shed-v1"), (v2, "shed-v2")):
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.headers["x-request-id"] == request_id
        assert response.json() == {
            "error": "Overloaded", "request_id": request_id,
            "detail": "Request shed: the server is at its limit of requests in flight. Retry after 1 s, or lower "
                      "the request rate."}
    assert service.log.flush()
    records = {r["request_id"]: r for r in scan_prediction_log(service.log.directory).records}
    for protocol in ("v1", "v2"):
        record = records[f"shed-{protocol}"]
        assert (record["protocol"], record["model"], record["status"], record["error"]) == \
            (protocol, "ctr", 503, "concurrency")
        assert "instances" not in record and "predictions" not in record
    assert service.stats.shed[("ctr", "concurrency")] == 2
    metrics = httpx.get(f"{url}/metrics").text
    assert 'yarnit_serving_shed_total{model="ctr",reason="concurrency"} 2.0' in metrics
    for template in ("/v1/models/{name}:predict", "/v2/models/{name}/infer"):
        assert f'yarnit_http_requests_total{{method="POST",route="{template}",status="503"}} 1.0' in metrics


def test_a_compiled_model_answers_while_a_slow_one_scores(served) -> None:
    url, app = served
    done = threading.Event()

    def slow_request() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            http.post("/v1/models/slow:predict", json={"instances": [ROW]})
        done.set()

    with _held():
        thread = _in_background(slow_request)
        _wait_busy(app.state.serving.admission.pool, 1)
        with httpx.Client(base_url=url, timeout=10) as http:
            fast = http.post("/v1/models/ctr:predict", json={"instances": [ROW]})
        assert not done.is_set(), "the slow request should still be scoring"
    thread.join(timeout=30)
    assert fast.status_code == 200 and fast.json()["served_by"] == "model"
    assert done.is_set()


def test_an_offloaded_request_past_its_deadline_gets_the_fallback_and_is_counted(served) -> None:
    url, app = served
    service = app.state.serving
    with _held(), httpx.Client(base_url=url, timeout=30) as http:  # the model cannot answer before the block ends
        response = http.post("/v1/models/slow:predict", json={"instances": [ROW]},
                             headers={"x-yarnit-deadline-ms": "100"})
    body = response.json()
    assert response.status_code == 200
    assert (body["served_by"], body["reason"], body["model_version"]) == ("fallback", "timeout", 0)
    assert body["predictions"] == [0.25]  # the heuristic table of the signature
    assert service.admission.pool.timeouts == 1
    assert service.stats.fallbacks[("slow", "fallback", "timeout")] == 1


def test_small_compiled_requests_stay_inline_and_big_or_native_ones_are_offloaded(served) -> None:
    url, app = served
    service = app.state.serving
    pool = service.admission.pool
    cost = service.runtime.current("ctr").compile.row_cost_s
    limit = int(service.admission.limits.inline_budget_ms / 1000 / cost)  # rows that fit the loop budget
    assert 1 < limit < 10_000
    with httpx.Client(base_url=url, timeout=10) as http:
        before = pool.offloaded
        assert http.post("/v1/models/ctr:predict", json={"instances": [ROW] * limit}).status_code == 200
        assert pool.offloaded == before, "a compiled model's small batch is scored inline"
        assert http.post("/v1/models/ctr:predict", json={"instances": [ROW] * (limit + 1)}).status_code == 200
        assert pool.offloaded == before + 1, "a batch over the loop budget goes to the pool"
        assert http.post("/v2/models/slow/infer", json={"inputs": [
            {"name": "fiber", "shape": [1], "datatype": "BYTES", "data": ["merino"]},
            {"name": "price", "shape": [1], "datatype": "FP64", "data": [12.0]}]}).status_code == 200
        assert pool.offloaded == before + 2, "a model without a compiled path goes to the pool"


def test_scores_inline_needs_every_likely_answering_version_compiled(served) -> None:
    _url, app = served
    runtime = app.state.serving.runtime
    ctr, slow = runtime.state("ctr"), runtime.state("slow")
    assert ctr.production.path == "linear-onnx" and slow.production.path == "native"
    cost = ctr.production.compile.row_cost_s
    assert 0 < cost < 1e-3, "the per-row cost is timed when the version is compiled"
    assert scores_inline(ctr, 0.0, 100, 100 * cost) and not scores_inline(ctr, 0.0, 101, 100 * cost)
    assert not scores_inline(slow, 0.0, 1, 1.0)
    assert not scores_inline(None, 0.0, 1, 1.0), "a model not loaded yet loads off the loop"
    mixed = type(ctr)(ctr.model, ctr.production, canary=slow.production)
    assert scores_inline(mixed, 0.0, 1, 1.0) and not scores_inline(mixed, 5.0, 1, 1.0)


def test_the_pool_is_bounded_and_a_call_waiting_for_a_thread_times_out() -> None:
    release = threading.Event()

    async def scenario() -> tuple[list[str], ScoringPool]:
        pool = ScoringPool(threads=1)
        outcomes: list[str] = []
        stuck = asyncio.ensure_future(pool.run(lambda: release.wait(5) and "late", 0.05))
        with pytest.raises(ScoringTimeout, match="longer than 50 ms"):
            await stuck
        assert pool.busy == 1, "a timed-out call keeps its thread until it returns"
        with pytest.raises(ScoringTimeout, match="no scoring thread was free"):
            await pool.run(lambda: "never runs", 0.05)
        waiting = asyncio.ensure_future(pool.run(lambda: "ran", 5.0))
        await asyncio.sleep(0.02)
        assert pool.waiting == 1
        release.set()  # the stuck call returns; its thread goes to the waiting call
        outcomes.append(await waiting)
        await asyncio.sleep(0.02)
        return outcomes, pool

    outcomes, pool = asyncio.run(scenario())
    assert outcomes == ["ran"] and pool.busy == 0 and pool.timeouts == 2 and pool.offloaded == 2
    pool.close()


def test_requests_for_models_that_are_not_served_share_one_metrics_label(served) -> None:
    url, app = served
    service = app.state.serving
    with httpx.Client(base_url=url, timeout=10) as http:
        for i in range(50):  # a scanner trying names: memory and series must not grow per name
            assert http.post(f"/v1/models/nope{i}:predict", json={"instances": [ROW]}).status_code == 404
    labels = {key[0] for key in service.stats.requests}
    assert labels == {"ctr", "slow", "_unknown"}
    assert service.stats.requests[("_unknown", "", "", "none", "404")] == 50
