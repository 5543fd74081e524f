"""Read-only control-plane routes for evaluations: ``GET /api/evaluations…``.

Evaluations are written by the pipeline and by ``yarnit eval run``/``gate``
(audited through their runs); over HTTP they are only read: the list, one
evaluation with its full report, its metric values, a model's metric history
and the model card (Markdown or HTML).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from yarnit.evaluation import EvaluationStore, card_for

router = APIRouter(prefix="/api", tags=["evaluations"])

EvaluationId = Annotated[str, Path(pattern=r"^ev_[0-9a-z]{26}$", description="An evaluation id (ev_…).")]
ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
ModelQuery = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
MetricQuery = Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")]
DistributionQuery = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,127}$")]
SubjectQuery = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
VersionQuery = Annotated[int | None, Query(ge=1, le=2_147_483_647)]


def _store(request: Request) -> EvaluationStore:
    return EvaluationStore(request.app.state.workspace)


@router.get("/evaluations")
def list_evaluations(request: Request, model: ModelQuery = None, version: VersionQuery = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    """Evaluations, newest first (optionally of one model and version)."""
    return [e.to_dict() for e in _store(request).list(model, version=version, limit=limit)]


@router.get("/evaluations/models/{name}/history")
def metric_history(name: ModelName, request: Request, metric: Annotated[str, Query(pattern=r"^[a-z_]{1,64}$")] = "auc",
                   distribution: DistributionQuery = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """One metric across a model's evaluations, oldest first (the whole distribution, candidate only)."""
    return _store(request).history(name, metric=metric, distribution=distribution, limit=limit)


@router.get("/evaluations/{evaluation_id}")
def show_evaluation(evaluation_id: EvaluationId, request: Request) -> dict[str, Any]:
    """One evaluation: its record, verdict and full report (distributions, metrics, sections)."""
    store = _store(request)
    return store.get(evaluation_id).to_dict() | {"report": store.report(evaluation_id).to_dict()}


@router.get("/evaluations/{evaluation_id}/metrics")
def evaluation_metrics(evaluation_id: EvaluationId, request: Request, metric: MetricQuery = None,
                       distribution: DistributionQuery = None, subject: SubjectQuery = None) -> list[dict[str, Any]]:
    """Metric values of one evaluation, each with its distribution, slice, subject and interval."""
    return [m.to_dict() for m in _store(request).metrics(evaluation_id, metric=metric, distribution=distribution,
                                                          subject=subject)]


@router.get("/evaluations/{evaluation_id}/card", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "text/html": {}}}})
def model_card(evaluation_id: EvaluationId, request: Request,
               format: Annotated[Literal["markdown", "html"], Query()] = "markdown") -> Response:
    """The model card built from this evaluation (Markdown, or HTML with ``format=html``)."""
    ws = request.app.state.workspace
    stored = EvaluationStore(ws).get(evaluation_id)
    card = card_for(ws, stored.model_name, evaluation_id=evaluation_id)
    if format == "html":
        return HTMLResponse(card.to_html())
    return PlainTextResponse(card.to_markdown(), media_type="text/markdown; charset=utf-8")


__all__ = ["router"]
