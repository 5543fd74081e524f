"""The lineage graph as OpenLineage run events, for Marquez or any other OpenLineage consumer.

OpenLineage describes lineage as *jobs* whose *runs* read input datasets and
write output datasets. yarnit's graph maps onto it like this:

* things that are made and read become **datasets** (namespace ``yarnit`` by
  default, named by their label): dataset versions (``dataset:clicks:v3``),
  feature view versions, model versions and prediction-log segments;
* things that happen become **runs** of a job: a pipeline run (job
  ``pipeline:<name>``), a materialization (``materialize:<view>``), an
  evaluation (``evaluate``) and an alias move (``deploy:<model>:<alias>``);
  their inputs and outputs are their neighbours in the graph;
* an edge between two datasets with nothing in between (``trained_on``,
  ``derived_from``, ``features_for``, ``logged_to`` from a model version)
  becomes a run of a job named after the relation, one per output dataset.

Run ids are UUIDs derived from the node's kind and id (uuid5), so exporting
twice gives the same ids and a consumer that stores events deduplicates
them. Every event is ``COMPLETE`` and is built with the ``openlineage-python``
client's event model (``pip install 'yarnit[openlineage]'``), whose
validators check the run ids, times and URIs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select

from yarnit.core.errors import MissingDependency
from yarnit.storage import Workspace
from yarnit.storage.schema import runs

from .lineage import Edge, LineageGraph, Node

PRODUCER = "https://github.com/yarnit/yarnit"
#: Kinds that are things happening (OpenLineage runs); every other kind is a dataset.
PROCESS_KINDS = {"run": "TRAINING", "materialization": "MATERIALIZATION", "deployment": "DEPLOYMENT",
                 "evaluation": "EVALUATION"}
_NAMESPACE = uuid.UUID("6f1c2b1e-7d0a-4f5e-9a51-5b8f0a9c2d11")


def _client() -> Any:
    try:
        from openlineage.client import event_v2, serde
        from openlineage.client.facet_v2 import dataset_version_dataset, job_type_job
    except ImportError as exc:
        raise MissingDependency("Exporting OpenLineage events needs the OpenLineage client: "
                                "pip install 'yarnit[openlineage]'") from exc
    return event_v2, serde, dataset_version_dataset, job_type_job


def run_id(kind: str, node_id: str) -> str:
    """A stable UUID for the run that stands for ``kind:node_id`` (the same on every export)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{node_id}"))


def _job_name(node: Node, pipelines: dict[str, str]) -> str:
    if node.kind == "run":
        return f"pipeline:{pipelines.get(node.id, 'unknown')}"
    if node.kind == "materialization":  # label materialization:<view>:<id>
        parts = node.label.split(":")
        return f"materialize:{parts[1] if len(parts) == 3 else node.id}"
    if node.kind == "deployment":  # label deployment:<model>:<alias>→vN#id
        model, _, rest = node.label.removeprefix("deployment:").partition(":")
        return f"deploy:{model}:{rest.split('→', 1)[0]}" if rest else f"deploy:{node.id}"
    if node.kind == "evaluation":
        return "evaluate"
    return f"{node.kind}:{node.id}"


def _time(edges: list[Edge], fallback: datetime) -> str:
    times = [e.created_at for e in edges if isinstance(e.created_at, datetime)]
    return (max(times) if times else fallback).isoformat()


def openlineage_events(workspace: Workspace, graph: LineageGraph, *, namespace: str = "yarnit") -> list[Any]:
    """``graph`` as OpenLineage ``RunEvent`` objects (the client's model), oldest first."""
    event_v2, _serde, dataset_version_dataset, job_type_job = _client()
    run_ids = [n.id for n in graph.nodes if n.kind == "run"]
    with workspace.metadata.begin() as conn:
        pipelines = {r[0]: r[1] for r in conn.execute(select(runs.c.id, runs.c.pipeline)
                                                       .where(runs.c.id.in_(run_ids[:1000]))).all()}
    fallback = workspace.clock.now()

    def dataset(node: Node, cls: Any) -> Any:
        facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=node.id)}
        return cls(namespace=namespace, name=node.label or f"{node.kind}:{node.id}", facets=facets)

    def event(job: str, rid: str, job_type: str, inputs: list[Node], outputs: list[Node],
              edges: list[Edge]) -> Any:
        facet = job_type_job.JobTypeJobFacet(processingType="BATCH", integration="YARNIT", jobType=job_type)
        return event_v2.RunEvent(
            eventType=event_v2.RunState.COMPLETE, eventTime=_time(edges, fallback), producer=PRODUCER,
            run=event_v2.Run(runId=rid), job=event_v2.Job(namespace=namespace, name=job, facets={"jobType": facet}),
            inputs=[dataset(n, event_v2.InputDataset) for n in inputs],
            outputs=[dataset(n, event_v2.OutputDataset) for n in outputs])

    into: dict[Node, list[Edge]] = defaultdict(list)
    out_of: dict[Node, list[Edge]] = defaultdict(list)
    for edge in graph.edges:
        into[edge.dst].append(edge)
        out_of[edge.src].append(edge)
    events = []
    for node in graph.nodes:
        if node.kind in PROCESS_KINDS:
            ins = [e.src for e in into[node] if e.src.kind not in PROCESS_KINDS]
            outs = [e.dst for e in out_of[node] if e.dst.kind not in PROCESS_KINDS]
            events.append(event(_job_name(node, pipelines), run_id(node.kind, node.id), PROCESS_KINDS[node.kind],
                                ins, outs, into[node] + out_of[node]))
            continue
        direct: dict[str, list[Edge]] = defaultdict(list)  # dataset → dataset edges into this node, by relation
        for e in into[node]:
            if e.src.kind not in PROCESS_KINDS:
                direct[e.relation].append(e)
        for relation, edges in sorted(direct.items()):
            events.append(event(relation, run_id(relation, f"{node.kind}:{node.id}"), relation.upper(),
                                [e.src for e in edges], [node], edges))
    return sorted(events, key=lambda e: e.eventTime)


def openlineage_json(workspace: Workspace, graph: LineageGraph, *, namespace: str = "yarnit") -> list[dict[str, Any]]:
    """The events as JSON-ready dicts (what ``POST /api/v1/lineage`` of Marquez takes, one per request)."""
    _event_v2, serde, _dv, _jt = _client()
    return [serde.Serde.to_dict(e) for e in openlineage_events(workspace, graph, namespace=namespace)]


__all__ = ["PROCESS_KINDS", "PRODUCER", "openlineage_events", "openlineage_json", "run_id"]
