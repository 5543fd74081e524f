"""GET /api/datasets… and /api/lineage…: manifests, statistics, schema, lineage; 404/422 with reasons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from yarnit.api.datasets import router
from yarnit.api.errors import yarnit_error_handler
from yarnit.core.errors import YarnitError
from yarnit.data import Datasets, DatasetSchema, Deletions
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    ws.settings = replace(ws.settings, hmac_key="api-test-key-0123456789abcdef0123")
    app = FastAPI()
    app.state.workspace = ws
    app.add_exception_handler(YarnitError, yarnit_error_handler)
    app.include_router(router)
    schema = DatasetSchema.from_yaml("subject: user_id\ncolumns:\n  user_id: {type: string, pii: hash}\n"
                                     "  price: {type: float64, min: 0}\n")
    datasets = Datasets(ws)
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u1"], "price": [1.0, 2.0, 3.0, 4.0]})
    v1 = datasets.ingest_frame("clicks", frame, source="day1", schema=schema)
    datasets.ingest_frame("clicks", frame.head(3), source="day2", schema=schema, parents=[v1.ref])
    ModelRegistry(ws).register("ctr", dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                               ArtifactFormat.SKOPS, dataset_version_ids=[v1.id])
    with TestClient(app) as http:
        yield http


def test_list_is_a_superset_of_the_old_control_plane_fields(client: TestClient) -> None:
    body = client.get("/api/datasets").json()
    assert [d["ref"] for d in body] == ["clicks:v1", "clicks:v2"]
    assert {"id", "name", "version", "row_count", "content_sha256", "created_at", "source"} <= set(body[0])
    assert client.get("/api/datasets/clicks").json()[1]["source"] == "day2"


def test_manifest_statistics_and_schema(client: TestClient) -> None:
    manifest = client.get("/api/datasets/clicks/versions/1").json()
    assert manifest["row_count"] == 4 and manifest["columns"] == {"user_id": "string", "price": "float64"}
    assert manifest["subject_count"] == 3 and manifest["privacy"]["subject_encoding"] == "hmac"
    stats = client.get("/api/datasets/clicks/versions/1/statistics").json()
    assert stats["statistics"]["columns"]["price"]["max"] == 4.0
    assert stats["statistics"]["columns"]["user_id"]["top_k"] == []  # never values of a PII column
    schema = client.get("/api/datasets/clicks/versions/1/schema").json()
    assert schema["curated"]["document"]["columns"]["user_id"]["pii"] == "hash"


def test_lineage_routes(client: TestClient) -> None:
    down = client.get("/api/datasets/clicks/versions/1/lineage", params={"direction": "down"}).json()
    assert [n["label"] for n in down["nodes"]] == ["dataset:clicks:v1", "dataset:clicks:v2", "model:ctr:v1"]
    up = client.get("/api/lineage", params={"ref": "model:ctr:v1", "direction": "up"}).json()
    assert [n["label"] for n in up["nodes"]] == ["model:ctr:v1", "dataset:clicks:v1"]
    model_id = up["root"]["id"]
    same = client.get(f"/api/lineage/model_version/{model_id}", params={"direction": "up", "depth": 1}).json()
    assert same["nodes"] == up["nodes"]


def test_taint_after_forget_is_visible(client: TestClient) -> None:
    ws = client.app.state.workspace  # type: ignore[attr-defined]
    Deletions(ws).forget("u2")
    statuses = {d["ref"]: d["status"] for d in client.get("/api/datasets").json()}
    assert statuses["clicks:v1"] == "forgotten" and statuses["clicks:v3"] == "active"
    active = client.get("/api/datasets", params={"active": "true"}).json()
    assert all(d["status"] == "active" for d in active)
    down = client.get("/api/lineage", params={"ref": "clicks:v1"}).json()
    model = [n for n in down["nodes"] if n["kind"] == "model_version"][0]
    assert model["tainted"] and "forgotten data subject" in model["taints"][0]


@pytest.mark.parametrize(("path", "status", "needle"), [
    ("/api/datasets/nothing", 404, "no dataset 'nothing'"),
    ("/api/datasets/clicks/versions/9", 404, "no version 9 of dataset 'clicks'"),
    ("/api/datasets/..%2Fetc/versions/1", 404, ""),
    ("/api/datasets/Bad Name", 422, ""),
    ("/api/datasets/clicks/versions/0", 422, ""),
    ("/api/lineage?ref=nothing:v3", 404, "matches no dataset version"),
    ("/api/lineage/model_version/mv_x?direction=sideways", 422, ""),
])
def test_bad_requests_get_4xx_with_a_reason(client: TestClient, path: str, status: int, needle: str) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_no_write_routes(client: TestClient) -> None:
    methods = {m for r in router.routes for m in getattr(r, "methods", set())}
    assert methods == {"GET"}
