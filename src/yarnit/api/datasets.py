"""Read-only control-plane routes for datasets and lineage: ``/api/datasets…`` and ``/api/lineage…``.

Nothing here writes: ingest, forget and retention run from the CLI or Python,
where they are audited. Responses never contain subject ids or PII values
(statistics of PII columns are redacted at ingest).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from yarnit.data import Datasets, Lineage, Node, Schemas
from yarnit.data.lineage import LineageGraph
from yarnit.data.versions import DatasetVersion

router = APIRouter(prefix="/api", tags=["datasets"])

DatasetName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647)]
NodeKind = Annotated[str, Path(pattern=r"^[a-z][a-z_]{0,31}$")]
NodeId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]  # never ".", ".." or "..."
DirectionQuery = Annotated[Literal["up", "down"], Query(description="up: made from; down: made from it")]
DepthQuery = Annotated[int | None, Query(ge=1, le=100)]


class DatasetSummary(BaseModel):
    id: str
    ref: str
    name: str
    version: int
    row_count: int
    content_sha256: str
    created_at: str
    source: str
    status: str
    retention_class: str | None
    subject_count: int | None


class DatasetManifest(DatasetSummary):
    artifact_sha256: str
    columns: dict[str, str]
    parents: list[str]
    run_id: str | None
    pii_columns: list[str]
    subject_column: str | None
    subjects_sha256: str | None
    schema_id: str | None
    privacy: dict[str, Any]
    superseded_by: str | None
    status_changed_at: str | None
    retain_from: str


def _datasets(request: Request) -> Datasets:
    return Datasets(request.app.state.workspace)


def _summary(v: DatasetVersion) -> DatasetSummary:
    return DatasetSummary(id=v.id, ref=v.ref, name=v.name, version=v.version, row_count=v.row_count,
                          content_sha256=v.content_sha256, created_at=v.created_at.isoformat(), source=v.source,
                          status=v.status, retention_class=v.retention_class, subject_count=v.subject_count)


def _manifest(v: DatasetVersion) -> dict[str, Any]:
    data = v.to_dict()
    data.pop("schema")
    return data | {"columns": v.schema}


@router.get("/datasets", response_model=list[DatasetSummary])
def list_datasets(request: Request, active: bool = False) -> list[DatasetSummary]:
    """Every dataset version (``?active=true``: only readable ones)."""
    return [_summary(v) for v in _datasets(request).list(include_inactive=not active)]


@router.get("/datasets/{name}", response_model=list[DatasetSummary])
def dataset_versions(name: DatasetName, request: Request) -> list[DatasetSummary]:
    """The versions of one dataset, oldest first."""
    datasets = _datasets(request)
    versions = datasets.list(name)
    if not versions:
        datasets.get(name)  # raises DatasetNotFound → 404
    return [_summary(v) for v in versions]


@router.get("/datasets/{name}/versions/{version}", response_model=DatasetManifest)
def dataset_manifest(name: DatasetName, version: VersionNumber, request: Request) -> dict[str, Any]:
    """A version's manifest."""
    return _manifest(_datasets(request).get(name, version))


@router.get("/datasets/{name}/versions/{version}/statistics")
def dataset_statistics(name: DatasetName, version: VersionNumber, request: Request) -> dict[str, Any]:
    """The statistics profile recorded at ingest."""
    v = _datasets(request).get(name, version)
    return {"ref": v.ref, "statistics": v.statistics or None}


@router.get("/datasets/{name}/versions/{version}/schema")
def dataset_schema(name: DatasetName, version: VersionNumber, request: Request) -> dict[str, Any]:
    """The column types, and the curated schema version it was ingested with (if any)."""
    v = _datasets(request).get(name, version)
    curated = None if v.schema_id is None else Schemas(request.app.state.workspace).get_by_id(v.schema_id).to_dict()
    return {"ref": v.ref, "columns": v.schema, "curated": curated}


def _graph(lineage: Lineage, node: Node, direction: str, depth: int | None) -> LineageGraph:
    return lineage.upstream(node, depth=depth) if direction == "up" else lineage.downstream(node, depth=depth)


@router.get("/datasets/{name}/versions/{version}/lineage")
def dataset_lineage(name: DatasetName, version: VersionNumber, request: Request,
                    direction: DirectionQuery = "down", depth: DepthQuery = None) -> dict[str, Any]:
    """What this version was made from (``up``) or what was made from it (``down``)."""
    v = _datasets(request).get(name, version)
    lineage = Lineage(request.app.state.workspace)
    return _graph(lineage, Node("dataset_version", v.id), direction, depth).to_dict()


@router.get("/lineage")
def lineage_by_ref(request: Request, ref: Annotated[str, Query(min_length=1, max_length=200)],
                   direction: DirectionQuery = "down", depth: DepthQuery = None) -> dict[str, Any]:
    """Lineage of ``ref`` (dataset:NAME:vN, model:NAME:vN, KIND:ID or an id)."""
    lineage = Lineage(request.app.state.workspace)
    return _graph(lineage, lineage.resolve(ref), direction, depth).to_dict()


@router.get("/lineage/openlineage")
def lineage_openlineage(request: Request, ref: Annotated[str, Query(min_length=1, max_length=200)],
                        namespace: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:/-]{1,100}$")] = "yarnit"
                        ) -> list[dict[str, Any]]:
    """Everything linked to ``ref`` as OpenLineage run events (POST each to Marquez's ``/api/v1/lineage``)."""
    from yarnit.data.openlineage import openlineage_json

    workspace = request.app.state.workspace
    lineage = Lineage(workspace)
    return openlineage_json(workspace, lineage.connected(lineage.resolve(ref)), namespace=namespace)


@router.get("/lineage/{kind}/{node_id}")
def lineage_by_node(kind: NodeKind, node_id: NodeId, request: Request, direction: DirectionQuery = "down",
                    depth: DepthQuery = None) -> dict[str, Any]:
    """Lineage of one node by kind and id (e.g. ``/api/lineage/model_version/mv_…?direction=up``)."""
    lineage = Lineage(request.app.state.workspace)
    return _graph(lineage, Node(kind, node_id), direction, depth).to_dict()


__all__ = ["router"]
