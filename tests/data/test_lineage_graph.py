"""Lineage: upstream and downstream across datasets, feature views, materializations, runs, models,
deployments and prediction-log segments; the OpenLineage export."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core.errors import NotFound
from yarnit.data import Datasets, Lineage, Node
from yarnit.features import FeatureStore, feature_view
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import Workspace
from yarnit.training import RunStore


def tiny_model() -> bytes:
    return dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))


def test_lineage_up_and_down_through_every_kind(ws: Workspace) -> None:
    datasets = Datasets(ws)
    raw = datasets.ingest_frame("raw", pd.DataFrame({"x": [1, 2]}), source="world")
    run = RunStore(ws).start("etl", {})
    clean = datasets.ingest_frame("clean", pd.DataFrame({"x": [1]}), source="etl", parents=[raw.ref], run_id=run.id)
    lineage = Lineage(ws)
    lineage.record(Node("dataset_version", clean.id), Node("feature_view", "yarn_ctr_features"), "materialized_from")
    train = RunStore(ws).start("train", {})
    mv = ModelRegistry(ws).register("ctr", tiny_model(), ArtifactFormat.SKOPS, dataset_version_ids=[clean.id],
                                    run_id=train.id)
    lineage.record(Node("model_version", mv.id), Node("deployment", "ctr-prod"), "deployed_as")

    down = lineage.downstream(lineage.resolve("dataset:raw:v1"))
    assert [n.label for n in down.nodes] == ["dataset:raw:v1", "dataset:clean:v1", "feature_view:yarn_ctr_features",
                                             "model:ctr:v1", "deployment:ctr-prod"]
    assert {(e.src.label, e.relation, e.dst.label) for e in down.edges} >= {
        ("dataset:raw:v1", "derived_from", "dataset:clean:v1"),
        ("dataset:clean:v1", "trained_on", "model:ctr:v1")}
    up = lineage.upstream(lineage.resolve("model:ctr:v1"))
    assert {n.label for n in up.nodes} == {"model:ctr:v1", "dataset:clean:v1", "dataset:raw:v1",
                                           f"run:{train.id}", f"run:{run.id}"}
    assert up.depth[lineage.resolve("dataset:raw:v1")] == 2
    assert {n.label for n in lineage.upstream(lineage.resolve(mv.id), depth=1).nodes} == \
        {"model:ctr:v1", f"run:{train.id}", "dataset:clean:v1"}
    from_run = lineage.downstream(Node("run", train.id))
    assert [n.label for n in from_run.nodes] == [f"run:{train.id}", "model:ctr:v1", "deployment:ctr-prod"]


def test_resolve_accepts_every_reference_form_and_explains_misses(ws: Workspace) -> None:
    v = Datasets(ws).ingest_frame("yarn", pd.DataFrame({"x": [1]}), source="t")
    lineage = Lineage(ws)
    for ref in ("yarn:v1", "dataset:yarn:v1", "dataset:yarn", v.id, f"dataset_version:{v.id}"):
        assert lineage.resolve(ref).id == v.id, ref
    with pytest.raises(NotFound, match="matches no dataset version or model version"):
        lineage.resolve("nothing:v3")


def test_taints_show_on_nodes(ws: Workspace) -> None:
    lineage = Lineage(ws)
    node = Node("feature_view", "fv1")
    lineage.record(Node("dataset_version", "ds_x"), node, "materialized_from")
    lineage.taint(node, "built from forgotten data")
    graph = lineage.downstream(Node("dataset_version", "ds_x"))
    assert graph.nodes[1].tainted and graph.nodes[1].taints == ("built from forgotten data",)


@feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=2),
              sources=("activity",))
def user_clicks() -> str:
    """Clicks per shopper (a view over the ``activity`` dataset)."""
    return "SELECT user_id, event_time, clicks FROM activity"


def _wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30.0  # generous: the edge is written by a background thread
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def full_chain(ws: Workspace, tmp_path: Path) -> dict[str, Any]:
    """dataset → feature view → materialization; dataset + feature view + run → model version → deployment →
    prediction-log segment, each edge recorded by the domain where it happens."""
    raw = Datasets(ws).ingest_frame("activity", pd.DataFrame({
        "user_id": ["u1", "u2"], "event_time": pd.to_datetime(["2026-01-05T06:00Z", "2026-01-05T07:00Z"]),
        "clicks": [1, 2]}), source="world", subject="user_id")
    with FeatureStore(ws, online_url=f"sqlite:///{tmp_path}/online.db") as store:
        store.backfill(user_clicks)
        store.materialize("user_clicks")
    run = RunStore(ws).start("train", {})
    registry = ModelRegistry(ws)
    mv = registry.register("ctr", tiny_model(), ArtifactFormat.SKOPS, dataset_version_ids=[raw.id], run_id=run.id,
                           signature={"features": ["user_clicks:clicks"]})
    registry.promote("ctr", 1, reason="first")
    log = PredictionLog(tmp_path / "plog", ws.clock, fsync=False, on_segment=Lineage(ws).prediction_log_recorder())
    try:
        log.append({"request_id": "r1", "model": "ctr", "version": 1, "alias": "production", "status": 200})
        assert log.flush()
    finally:
        log.close()
    segment = next((tmp_path / "plog").glob("seg-*.log")).name
    lineage = Lineage(ws)
    _wait_for(lambda: len(lineage.upstream(Node("prediction_log", segment)).nodes) > 1, "the segment's edge")
    return {"raw": raw, "run": run, "mv": mv, "segment": segment}


def test_one_graph_from_dataset_to_prediction_log_both_ways(ws: Workspace, full_chain: dict[str, Any]) -> None:
    lineage = Lineage(ws)
    down = lineage.downstream(lineage.resolve("dataset:activity:v1"))
    labels = [n.label for n in down.nodes]
    assert labels[:3] == ["dataset:activity:v1", "feature_view:user_clicks:v1", "model:ctr:v1"]
    deployment = next(n for n in down.nodes if n.kind == "deployment")
    assert deployment.label == f"deployment:ctr:production→v1#{deployment.id}" and deployment.status == "promote"
    assert any(n.kind == "materialization" and n.label.startswith("materialization:user_clicks:mat_")
               for n in down.nodes)
    assert labels[-1] == f"prediction_log:{full_chain['segment']}"
    assert {(e.src.kind, e.relation, e.dst.kind) for e in down.edges} == {
        ("dataset_version", "computed_from", "feature_view"), ("dataset_version", "trained_on", "model_version"),
        ("feature_view", "materialized", "materialization"), ("feature_view", "features_for", "model_version"),
        ("model_version", "deployed_as", "deployment"), ("deployment", "logged_to", "prediction_log")}

    up = lineage.upstream(lineage.resolve(f"prediction_log:{full_chain['segment']}"))
    assert {n.label for n in up.nodes} == {
        f"prediction_log:{full_chain['segment']}", deployment.label, "model:ctr:v1", "feature_view:user_clicks:v1",
        f"run:{full_chain['run'].id}", "dataset:activity:v1"}
    assert lineage.resolve("feature_view:user_clicks").label == "feature_view:user_clicks:v1"


def test_the_api_walks_the_same_graph_both_ways(ws: Workspace, full_chain: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    client = TestClient(create_app(ws))
    up = client.get("/api/lineage", params={"ref": f"prediction_log:{full_chain['segment']}", "direction": "up"})
    assert up.status_code == 200, up.text
    assert "dataset:activity:v1" in {n["label"] for n in up.json()["nodes"]}
    exported = client.get("/api/lineage/openlineage", params={"ref": "model:ctr:v1", "namespace": "shop"})
    assert exported.status_code == 200, exported.text
    assert {e["job"]["namespace"] for e in exported.json()} == {"shop"} and len(exported.json()) == 6
    down = client.get("/api/lineage", params={"ref": "feature_view:user_clicks:v1", "direction": "down"})
    assert {n["kind"] for n in down.json()["nodes"]} == {"feature_view", "materialization", "model_version",
                                                         "deployment", "prediction_log"}


def _rebuilt(event: dict[str, Any]) -> Any:
    """The exported JSON read back through the OpenLineage client's model (its validators run)."""
    from openlineage.client import event_v2
    from openlineage.client.facet_v2 import dataset_version_dataset, job_type_job

    def dataset(d: dict[str, Any], cls: Any) -> Any:
        version = d["facets"]["version"]["datasetVersion"]
        return cls(namespace=d["namespace"], name=d["name"],
                   facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)})

    job_type = event["job"]["facets"]["jobType"]
    return event_v2.RunEvent(
        eventType=event_v2.RunState(event["eventType"]), eventTime=event["eventTime"], producer=event["producer"],
        run=event_v2.Run(runId=event["run"]["runId"]),
        job=event_v2.Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets={
            "jobType": job_type_job.JobTypeJobFacet(processingType=job_type["processingType"],
                                                    integration=job_type["integration"],
                                                    jobType=job_type["jobType"])}),
        inputs=[dataset(d, event_v2.InputDataset) for d in event["inputs"]],
        outputs=[dataset(d, event_v2.OutputDataset) for d in event["outputs"]])


def test_the_graph_exports_as_openlineage_events_the_client_validates(ws: Workspace,
                                                                       full_chain: dict[str, Any]) -> None:
    from openlineage.client.serde import Serde

    from yarnit.data.openlineage import openlineage_json

    lineage = Lineage(ws)
    events = openlineage_json(ws, lineage.connected(lineage.resolve("model:ctr:v1")))
    for event in events:
        assert Serde.to_dict(_rebuilt(json.loads(json.dumps(event)))) == event
    jobs = {e["job"]["name"]: e for e in events}
    assert set(jobs) == {"pipeline:train", "materialize:user_clicks", "deploy:ctr:production", "computed_from",
                         "trained_on", "features_for"}
    assert [d["name"] for d in jobs["deploy:ctr:production"]["inputs"]] == ["model:ctr:v1"]
    assert [d["name"] for d in jobs["deploy:ctr:production"]["outputs"]] == [f"prediction_log:{full_chain['segment']}"]
    assert [d["name"] for d in jobs["pipeline:train"]["outputs"]] == ["model:ctr:v1"]
    assert sorted(d["name"] for d in jobs["trained_on"]["inputs"]) == ["dataset:activity:v1"]
    again = openlineage_json(ws, lineage.connected(lineage.resolve("dataset:activity:v1")))
    assert sorted(e["run"]["runId"] for e in again) == sorted(e["run"]["runId"] for e in events)  # stable ids


def _pick(ctx: Any) -> dict[str, Any]:
    version = Datasets(ctx.workspace).get("activity")
    return {"dataset": {"id": version.id, "ref": version.ref}}


def _count(ctx: Any, dataset: dict[str, Any]) -> dict[str, Any]:
    return {"report": {"rows": Datasets(ctx.workspace).get_by_id(dataset["id"]).row_count}}


def test_a_run_that_reads_a_version_made_elsewhere_is_linked_to_it(ws: Workspace) -> None:
    from yarnit.training import Pipeline, PipelineRunner, Step, ValueKind

    made = RunStore(ws).start("ingest", {})
    raw = Datasets(ws).ingest_frame("activity", pd.DataFrame({"x": [1, 2, 3]}), source="world", run_id=made.id)
    pipeline = Pipeline("count", [Step("pick", _pick, outputs={"dataset": ValueKind.REF}),
                                  Step("count", _count, inputs={"dataset": "pick.dataset"},
                                       outputs={"report": ValueKind.REPORT})])
    result = PipelineRunner(ws).run(pipeline)
    down = Lineage(ws).downstream(Node("dataset_version", raw.id))
    assert {(e.relation, e.dst.id) for e in down.edges} == {("read_by", result.id)}
    up = Lineage(ws).upstream(Node("run", made.id), depth=1)
    assert [n.id for n in up.nodes] == [made.id]  # the producing run is not made to read its own output


def test_a_served_request_links_its_deployment_to_the_prediction_log_segment(ws: Workspace, tmp_path: Path) -> None:
    import httpx
    from testsupport import register_ctr

    from yarnit.api import create_app
    from yarnit.api.server import BackgroundServer
    from yarnit.serving import ServingOptions

    register_ctr(ws)
    app = create_app(ws, refresh_s=0.0, serving=ServingOptions(log_fsync=False, log_dir=str(tmp_path / "plog")))
    try:
        with BackgroundServer(app) as server:
            response = httpx.post(f"{server.url}/v1/models/ctr:predict", timeout=30,
                                  json={"instances": [{"fiber": "merino", "price": 12.0}]})
            assert response.status_code == 200, response.text
    finally:
        app.state.serving.close()
    segment = next((tmp_path / "plog").glob("seg-*.log")).name
    lineage = Lineage(ws)
    _wait_for(lambda: len(lineage.upstream(Node("prediction_log", segment)).nodes) > 1, "the segment's edge")
    up = lineage.upstream(Node("prediction_log", segment))
    assert [n.label for n in up.nodes][:3] == [f"prediction_log:{segment}", "deployment:ctr:production→v1#1",
                                               "model:ctr:v1"]
