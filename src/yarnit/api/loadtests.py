"""Read-only control-plane routes for load tests: ``GET /api/loadtests…``.

Load tests are run by ``yarnit loadtest`` (which starts its staging servers and the generator: minutes of
work that no HTTP request should hold open); over HTTP their recorded results are only read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from yarnit.loadtest import LoadTestStore
from yarnit.registry import ModelNotFound, ModelRegistry

router = APIRouter(prefix="/api", tags=["loadtests"])

LoadTestId = Annotated[str, Path(pattern=r"^lt_[0-9a-z]{26}$", description="A load-test id (lt_…).")]


@router.get("/loadtests")
def list_loadtests(request: Request, model: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")],
                   version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    """A model's load-test results (of one version), newest first; 404 for a model that does not exist."""
    ws = request.app.state.workspace
    if not ModelRegistry(ws).exists(model):
        raise ModelNotFound(model)
    return LoadTestStore(ws).history(model, version, limit=limit)


@router.get("/loadtests/{loadtest_id}")
def show_loadtest(loadtest_id: LoadTestId, request: Request) -> dict[str, Any]:
    """One load test's report: both versions' figures, the gate's checks and verdict, the inputs."""
    return LoadTestStore(request.app.state.workspace).get(loadtest_id)


__all__ = ["router"]
