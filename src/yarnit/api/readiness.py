"""Read-only routes for the ML Test Score: ``GET /api/readiness[/{name}]``.

The score is computed from stored records on each request (a few reads per store, no evaluation), or with
``ci=true`` from the tests yarnit's CI runs (:mod:`yarnit.readiness.ci`; the server needs the checkout's
``tests/`` directory for that, else a 422 says so). An unknown model is a 404 naming how to list models.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from yarnit.readiness import assess
from yarnit.registry import ModelRegistry

router = APIRouter(prefix="/api", tags=["readiness"])

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$", description="A registered model name.")]
CiQuery = Annotated[bool, Query(description="count only what CI runs (tests in yarnit's suite)")]


@router.get("/readiness")
def all_models(request: Request, ci: CiQuery = False) -> list[dict[str, Any]]:
    """Every registered model's section scores and final score (the tests themselves: the per-model route)."""
    ws = request.app.state.workspace
    out = []
    for entry in ModelRegistry(ws).list_models():
        result = assess(ws, entry["name"], ci=ci).to_dict()
        out.append({k: result[k] for k in ("model", "mode", "at", "final", "sections", "interpretation")})
    return out


@router.get("/readiness/{name}")
def one_model(name: ModelName, request: Request, ci: CiQuery = False) -> dict[str, Any]:
    """One model's 28 tests: points, evidence, and the command that would earn each missing point."""
    return assess(request.app.state.workspace, name, ci=ci).to_dict()


__all__ = ["router"]
