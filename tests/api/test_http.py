"""The app over real HTTP on 127.0.0.1: data plane, control plane, health, metrics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ModelRegistry, ModelVersion, Predictor
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace

from testsupport import TOKEN


@pytest.fixture
def client(token_ws: Workspace) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(token_ws, refresh_s=0.0)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def test_v1_predict_names_the_version_that_answered(client: httpx.Client) -> None:
    response = client.post("/v1/models/ctr:predict",
                           json={"instances": [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "ctr" and body["model_version"] == 1 and body["served_by"] == "model"
    assert len(body["predictions"]) == 2 and body["predictions"][0] > 0.5 > body["predictions"][1]


def test_v2_infer_speaks_the_open_inference_protocol(client: httpx.Client) -> None:
    body = {"id": "r1", "inputs": [
        {"name": "fiber", "shape": [2], "datatype": "BYTES", "data": ["merino", "acrylic"]},
        {"name": "price", "shape": [2, 1], "datatype": "FP64", "data": [12.0, 3.0]},
    ]}
    response = client.post("/v2/models/ctr/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["model_name"] == "ctr" and out["model_version"] == "1" and out["id"] == "r1"
    assert out["outputs"][0]["shape"] == [2] and out["outputs"][0]["datatype"] == "FP64"
    assert client.get("/v2/models/ctr/ready").json()["ready"] is True
    meta = client.get("/v2/models/ctr").json()
    assert meta["name"] == "ctr" and {i["name"] for i in meta["inputs"]} == {"fiber", "price"}


def test_moving_the_alias_switches_the_served_version(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=headers).status_code == 200
    assert client.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "x"}]}).json()["model_version"] == 2
    assert client.post("/api/models/ctr/rollback", json={}, headers=headers).json()["to_version"] == 1
    assert client.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "x"}]}).json()["model_version"] == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/models/ctr:predict", {"instances": []}, 422),
        ("/v1/models/ctr:predict", {"rows": [{}]}, 422),
        ("/v1/models/ctr:predict", {"instances": [{"fiber": {"nested": 1}}]}, 422),
        ("/v1/models/ctr:predict", {"instances": "merino"}, 422),
        ("/v1/models/nope:predict", {"instances": [{"a": 1}]}, 404),
        ("/v1/models/..%2F..%2Fetc:predict", {"instances": [{"a": 1}]}, 404),
        ("/v2/models/ctr/infer", {"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1]}]}, 422),
        ("/v2/models/ctr/infer", {"inputs": []}, 422),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(client: httpx.Client, path: str, body: object, status: int) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()


def test_malformed_json_is_a_4xx(client: httpx.Client) -> None:
    response = client.post("/v1/models/ctr:predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_health_metrics_openapi_and_dashboard(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    client.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino"}]})
    metrics = client.get("/metrics").text
    assert 'yarnit_predictions_total{model="ctr",served_by="model",version="1"} 1.0' in metrics
    assert 'route="/v1/models/{name}:predict",status="200"' in metrics
    assert "/v1/models/{name}:predict" in client.get("/openapi.json").json()["paths"]
    assert "ctr" in client.get("/").text


def test_control_plane_reads_are_open(client: httpx.Client) -> None:
    models = client.get("/api/models").json()
    assert models[0]["name"] == "ctr" and models[0]["aliases"] == {"production": 1}
    detail = client.get("/api/models/ctr").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert client.get("/api/models/none").status_code == 404


def test_runs_are_readable_over_the_control_plane(token_ws: Workspace) -> None:
    from fastapi.testclient import TestClient

    from yarnit.training import Pipeline, PipelineRunner, Step, ValueKind

    def one(ctx: object) -> dict[str, object]:
        return {"ref": {"n": 1}}

    run = PipelineRunner(token_ws).run(Pipeline("tiny", [Step("one", one, outputs={"ref": ValueKind.REF})]))
    client = TestClient(create_app(token_ws))
    listed = client.get("/api/runs", params={"pipeline": "tiny"}).json()
    assert [r["id"] for r in listed] == [run.id]
    detail = client.get(f"/api/runs/{run.id}").json()
    assert detail["state"] == "succeeded" and detail["steps"][0]["outputs"]["ref"]["value"] == {"n": 1}
    assert client.get("/api/runs/run_00000000000000000000000000").status_code == 404
    assert client.get("/api/runs/../../etc").status_code == 404


def test_a_fresh_server_has_loaded_and_warmed_production_before_its_first_request(token_ws: Workspace) -> None:
    loads: list[int] = []

    def counting(version: ModelVersion, native: Predictor) -> Predictor:
        loads.append(version.version)
        return native

    app = create_app(token_ws, serving=ServingOptions(deadline_ms=60_000, log_fsync=False))
    app.state.serving.runtime.wrap_predictor = counting
    assert app.state.serving.runtime.loaded_state("ctr") is None  # nothing loads while the app is built
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        state = app.state.serving.runtime.loaded_state("ctr")
        assert state is not None and state.production.version.version == 1 and loads == [1]
        assert state.production.warm_up is not None and state.production.warm_up.rows > 0
        assert http.get("/v2/health/ready").json()["ready"] is True
        body = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino"}]}).json()
        assert (body["served_by"], body["model_version"]) == ("model", 1)
        assert loads == [1], "the first request found its version loaded: nothing loaded on the request path"


def test_readiness_is_503_while_production_cannot_be_served_by_its_own_version(token_ws: Workspace,
                                                                                client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/v2/health/ready").status_code == 200
    path = token_ws.artifacts.path_for(ModelRegistry(token_ws).get("ctr", 2).artifact_sha256)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(b"not the artifact")
    assert client.post("/api/models/ctr/aliases/production", json={"version": 2}, headers=headers).status_code == 200
    assert client.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "x"}]}).json()["model_version"] == 1
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
    assert "ctr production v2 cannot be served (v1 serves instead)" in ready.json()["reason"]
    model_ready = client.get("/v2/models/ctr/ready")
    assert model_ready.status_code == 503 and model_ready.json()["ready"] is False
    assert 'yarnit_serving_alias_unservable{alias="production",model="ctr",version="2"} 1.0' in \
        client.get("/metrics").text
    path.write_bytes(good)  # restored: the next try after the backoff serves it
    token_ws.clock.advance(1.0)
    assert client.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "x"}]}).json()["model_version"] == 2
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/ctr/ready").json() == {"name": "ctr", "ready": True, "version": "2"}
    assert "yarnit_serving_alias_unservable{" not in client.get("/metrics").text
