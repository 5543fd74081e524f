"""Lineage: upstream and downstream across datasets, runs, features, models and deployments."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core.errors import NotFound
from yarnit.data import Datasets, Lineage, Node
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
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
