"""The data plane over real HTTP: v1 and OIP v2, who answered, and bad input as 4xx (never 5xx)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions, scan_prediction_log
from yarnit.storage import Workspace

OPTIONS = ServingOptions(max_body_bytes=4096, log_flush_interval_s=0.01, log_fsync=False)


@pytest.fixture
def served(token_ws: Workspace) -> Iterator[tuple[httpx.Client, object]]:
    app = create_app(token_ws, refresh_s=0.0, serving=OPTIONS)
    try:
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            yield http, app
    finally:
        app.state.serving.close()


def test_every_answer_names_model_version_and_path_in_body_and_headers(served) -> None:
    http, app = served
    app.state.serving.runtime.preload()  # as `yarnit serve` does: a cold load can eat the first request's deadline
    response = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino", "price": 12.0}]},
                         headers={"x-request-id": "client-req-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "ctr" and body["model_version"] == 1 and body["served_by"] == "model"
    assert body["alias"] == "production" and body["request_id"] == "client-req-1"
    assert response.headers["x-yarnit-model-version"] == "1" and response.headers["x-yarnit-served-by"] == "model"
    assert response.headers["x-request-id"] == "client-req-1"


def test_oip_v2_accepts_one_tensor_per_feature_or_one_matrix(served, token_ws: Workspace) -> None:
    http, app = served
    numeric = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(
        [{"price": 12.0, "discount": 0.1}, {"price": 3.0, "discount": 0.0}] * 5, [1, 0] * 5)
    registry = ModelRegistry(token_ws)
    registry.register("numeric", dump_sklearn(numeric), ArtifactFormat.SKOPS,
                      signature={"inputs": {"price": "double", "discount": "double"}})
    registry.promote("numeric", 1)
    app.state.serving.runtime.preload()
    by_column = http.post("/v2/models/ctr/infer", json={"inputs": [
        {"name": "fiber", "shape": [2], "datatype": "BYTES", "data": ["merino", "acrylic"]},
        {"name": "price", "shape": [2, 1], "datatype": "FP64", "data": [[12.0], [3.0]]}]})
    assert by_column.status_code == 200, by_column.text
    out = by_column.json()
    assert out["model_version"] == "1" and out["parameters"]["served_by"] == "model"
    assert out["outputs"][0]["name"] == "probability" and out["outputs"][0]["shape"] == [2]
    matrix = http.post("/v2/models/numeric/infer", json={"id": "m1", "inputs": [
        {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [12.0, 0.1, 3.0, 0.0]}]})
    assert matrix.status_code == 200, matrix.text
    assert matrix.json()["id"] == "m1" and matrix.json()["outputs"][0]["shape"] == [2]
    # A BYTES matrix cannot carry numbers: the model's signature types each column (one tensor per feature does)
    strings = http.post("/v2/models/ctr/infer", json={"inputs": [
        {"name": "input-0", "shape": [2, 2], "datatype": "BYTES", "data": ["merino", "12", "acrylic", "3"]}]})
    assert strings.status_code == 422 and strings.json() | {"detail": "", "request_id": ""} == {
        "error": "InputRejected", "detail": "", "request_id": "", "row": 0, "field": "price", "expected": "double"}
    meta = http.get("/v2/models/ctr").json()
    assert [i["name"] for i in meta["inputs"]] == ["fiber", "price"] and meta["versions"] == ["1"]
    assert http.get("/v2/models/ctr/ready").json() == {"name": "ctr", "ready": True, "version": "1"}


@pytest.mark.parametrize(("path", "content", "status", "fragment"), [
    ("/v1/models/ctr:predict", b'{"instances": [{"price": NaN}]}', 422, "not valid JSON"),
    ("/v1/models/ctr:predict", b'{"instances": [{"price": Infinity}]}', 422, "not valid JSON"),
    ("/v1/models/ctr:predict", b'{"instances": [{"price": 1e999}]}', 422, "not valid JSON"),
    ("/v1/models/ctr:predict", b'{"instances": [{"price": 1}], "extra": 1}', 422, "Unknown field"),
    ("/v1/models/ctr:predict", b'{"instances": [[1, 2]]}', 422, "must be an object"),
    ("/v1/models/ctr:predict", b'{"instances": [{"tags": ["a"]}]}', 422, "feature values must be"),
    ("/v1/models/ctr:predict", b"", 422, "empty"),
    ("/v1/models/ctr:predict", b"[1, 2]", 422, "JSON object"),
    ("/v1/models/Not-A-Name:predict", b'{"instances": [{}]}', 404, "no model named"),
    ("/v2/models/ctr/infer", b'{"inputs": [{"name": "price", "shape": [1], "datatype": "FP64", "data": ["x"]}]}',
     422, "declared FP64"),
    ("/v2/models/ctr/infer", b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP128", "data": [1]}]}',
     422, "datatype"),
    ("/v2/models/ctr/infer", b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1]}]}',
     422, "expected 2"),
    ("/v2/models/ctr/infer", b'{"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}',
     422, "declares 2 inputs"),
    ("/v2/models/ctr/infer", b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], '
     b'"outputs": [{"name": "logits"}]}', 422, "outputs"),
    ("/v2/models/nope/infer", b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}]}',
     404, "no model named 'nope'"),
])
def test_bad_input_is_a_4xx_with_a_reason(served, path: str, content: bytes, status: int, fragment: str) -> None:
    http, _app = served
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


def test_a_body_over_the_limit_is_413_with_or_without_content_length(served) -> None:
    http, _app = served
    big = b'{"instances": [{"fiber": "' + b"m" * 5000 + b'"}]}'
    assert http.post("/v1/models/ctr:predict", content=big).status_code == 413
    chunked = http.post("/v1/models/ctr:predict", content=iter([big[:3000], big[3000:]]))
    assert chunked.status_code == 413 and "limit is 4,096 bytes" in chunked.json()["detail"]


def test_headers_are_validated(served) -> None:
    http, _app = served
    body = {"instances": [{"fiber": "merino"}]}
    assert http.post("/v1/models/ctr:predict", json=body, headers={"x-yarnit-deadline-ms": "soon"}).status_code == 422
    assert http.post("/v1/models/ctr:predict", json=body, headers={"x-request-id": "a b"}).status_code == 422
    assert http.post("/v1/models/ctr:predict", json=body, headers={"x-yarnit-deadline-ms": "50"}).status_code == 200


def test_every_request_is_logged_and_counted_including_failures(served, token_ws: Workspace) -> None:
    http, app = served
    ok = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino", "user_id": "u7"}]})
    bad = http.post("/v1/models/ctr:predict", json={"instances": "merino"})
    missing = http.post("/v2/models/nope/infer", json={"inputs": [{"name": "a", "shape": [1], "datatype": "FP64",
                                                                   "data": [1]}]})
    assert (ok.status_code, bad.status_code, missing.status_code) == (200, 422, 404)
    assert app.state.serving.log.flush()
    records = {r["request_id"]: r for r in scan_prediction_log(token_ws.home / "prediction_log").records}
    assert records[ok.json()["request_id"]]["version"] == 1
    assert "user_id" not in records[ok.json()["request_id"]]["instances"][0]  # no HMAC key: PII dropped
    assert records[bad.json()["request_id"]]["status"] == 422
    assert records[missing.json()["request_id"]]["status"] == 404
    metrics = http.get("/metrics").text
    assert ('yarnit_serving_requests_total{alias="production",code="200",model="ctr",served_by="model",'
            'version="1"} 1.0') in metrics
    assert 'yarnit_serving_requests_total{alias="",code="422",model="ctr",served_by="none",version=""} 1.0' in metrics
    assert 'yarnit_serving_model_info{alias="production",model="ctr",path="linear-onnx",version="1"} 1.0' in metrics
    assert 'yarnit_serving_model_age_seconds{alias="production",model="ctr",version="1"}' in metrics
    assert 'yarnit_prediction_log_records_total{state="dropped"} 0.0' in metrics
    assert 'yarnit_serving_request_duration_seconds_bucket{le="+Inf",model="ctr",version="1"} 1.0' in metrics
    assert 'yarnit_model_version_serving{alias="production",model="ctr"} 1.0' in metrics


def test_a_fallback_answer_says_so(served, token_ws: Workspace) -> None:
    http, app = served
    ModelRegistry(token_ws).promote("ctr", 2)
    app.state.serving.runtime.wrap_predictor = _raising_for(2)
    response = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino"}]})
    body = response.json()
    assert (body["served_by"], body["model_version"], body["reason"]) == ("previous", 1, "not_loaded")
    assert 'yarnit_serving_fallbacks_total{model="ctr",reason="not_loaded",served_by="previous"} 1.0' in \
        http.get("/metrics").text


def _raising_for(version: int):
    class Raising:
        def predict_proba(self, instances):
            raise RuntimeError("boom")

    return lambda v, native: Raising() if v.version == version else native
