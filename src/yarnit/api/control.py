"""Control plane under /api/: reads are open, writes need the token (see auth.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.data import Datasets
from yarnit.registry import ModelRegistry

router = APIRouter(prefix="/api", tags=["control plane"])

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
AliasName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def _registry(request: Request) -> ModelRegistry:
    return ModelRegistry(request.app.state.workspace)


@router.get("/models")
def list_models(request: Request) -> list[dict[str, Any]]:
    rows = _registry(request).list_models()
    return [r | {"created_at": r["created_at"].isoformat()} for r in rows]


@router.get("/models/{name}")
def show_model(name: ModelName, request: Request) -> dict[str, Any]:
    registry = _registry(request)
    return {"name": name, "aliases": registry.aliases(name),
            "versions": [v.to_dict() for v in registry.versions(name)]}


@router.get("/models/{name}/history")
def alias_history(name: ModelName, request: Request) -> list[dict[str, Any]]:
    registry = _registry(request)
    registry.versions(name)  # 404 for an unknown model
    return [e.to_dict() for e in registry.history(name)]


class AliasMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    reason: str = Field(default="", max_length=1000)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(default="production", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    reason: str = Field(default="", max_length=1000)


@router.post("/models/{name}/aliases/{alias}")
def move_alias(name: ModelName, alias: AliasName, body: AliasMove, request: Request) -> dict[str, Any]:
    event = _registry(request).set_alias(name, alias, body.version, actor="api", reason=body.reason,
                                         action="promote")
    return event.to_dict()


@router.post("/models/{name}/rollback")
def roll_back(name: ModelName, body: Rollback, request: Request) -> dict[str, Any]:
    event = _registry(request).roll_back(name, alias=body.alias, actor="api", reason=body.reason)
    return event.to_dict()


@router.get("/datasets")
def list_datasets(request: Request) -> list[dict[str, Any]]:
    return [
        {"id": d.id, "name": d.name, "version": d.version, "row_count": d.row_count,
         "content_sha256": d.content_sha256, "created_at": d.created_at.isoformat(), "source": d.source}
        for d in Datasets(request.app.state.workspace).list()
    ]


__all__ = ["router"]
