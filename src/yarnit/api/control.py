"""Control plane under /api/: reads are open, writes need the token (see auth.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.core.errors import InvalidInput
from yarnit.core.ids import MAX_VERSION
from yarnit.registry import ModelRegistry
from yarnit.serving.router import TrafficPolicyStore
from yarnit.training import RunStore

from .auth import actor_of

router = APIRouter(prefix="/api", tags=["control plane"])

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
AliasName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# Body fields: bounded integers (a 2**70 version is a 422, not a database overflow) and one line of plain text
# (no escape sequences in the audit history: yarnit.core.text).
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]
PLAIN_TEXT = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$"
Reason = Annotated[str, Field(default="", max_length=1000, pattern=PLAIN_TEXT,
                              description="Why (kept in the audit history): one line, no control characters")]


def _registry(request: Request) -> ModelRegistry:
    return ModelRegistry(request.app.state.workspace)


def _refresh(request: Request, name: str) -> None:
    """Make this server switch at once; other replicas follow at their next alias poll."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.refresh(name)


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
    version: VersionNumber
    reason: Reason = ""
    force: bool = Field(default=False, description="Move production/canary without a blessed evaluation; needs a "
                                                   "reason and is audited as force-promote")
    # Move production/canary although the model's error budget is spent (a P0 or security fix): why. Audited
    # with the actor and the refusal (alias history and audit log).
    override_reason: Reason = ""


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(default="production", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    reason: Reason = ""


@router.post("/models/{name}/aliases/{alias}")
def move_alias(name: ModelName, alias: AliasName, body: AliasMove, request: Request) -> dict[str, Any]:
    # 409 when the version is not blessed (production/canary), the model's error budget is spent (no override),
    # or its artifact could not serve; nothing moves. 409, not 403: the state of the model refuses the change,
    # not the caller's rights (the same token succeeds once the budget recovers, or with "override_reason").
    event = _registry(request).promote(name, body.version, alias=alias, actor=actor_of(request),
                                       reason=body.reason, require_blessing=True, force=body.force,
                                       override_reason=body.override_reason)
    _refresh(request, name)
    return event.to_dict()


@router.post("/models/{name}/rollback")
def roll_back(name: ModelName, body: Rollback, request: Request) -> dict[str, Any]:
    event = _registry(request).roll_back(name, alias=body.alias, actor=actor_of(request), reason=body.reason)
    _refresh(request, name)
    return event.to_dict()


class TrafficUpdate(BaseModel):
    """A new traffic policy; a field left out keeps its current value."""

    model_config = ConfigDict(extra="forbid")
    canary_percent: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False,
                                         description="Share of routing keys sent to the canary alias, in %")
    shadow: bool | None = Field(default=None, description="Whether the shadow alias scores a copy of requests")
    reason: Reason = ""
    # Raise the canary share although the model's error budget is spent (a P0 or security fix): why; audited.
    override_reason: Reason = ""


def _traffic(store: TrafficPolicyStore, name: str) -> dict[str, Any]:
    return {"name": name, "policy": store.get(name).as_dict(),
            "history": [e.to_dict() for e in store.history(name)]}


@router.get("/models/{name}/traffic")
def show_traffic(name: ModelName, request: Request) -> dict[str, Any]:
    """The model's traffic policy (canary %, shadow on/off) and every audited change of it."""
    _registry(request).versions(name)  # 404 for an unknown model
    return _traffic(TrafficPolicyStore(request.app.state.workspace), name)


@router.put("/models/{name}/traffic")
def set_traffic(name: ModelName, body: TrafficUpdate, request: Request) -> dict[str, Any]:
    """Change the model's traffic policy: stored, audited (who, when, old → new), read by every server process."""
    if body.canary_percent is None and body.shadow is None:
        raise InvalidInput('Nothing to change: send "canary_percent" (0-100) and/or "shadow" (true/false).')
    store = TrafficPolicyStore(request.app.state.workspace)
    # 409 when raising the canary share while the model's error budget is spent (no override); lowering never
    event = store.set(name, canary_percent=body.canary_percent, shadow=body.shadow, actor=actor_of(request),
                      reason=body.reason, override_reason=body.override_reason)
    serving = getattr(request.app.state, "serving", None)
    if serving is not None:  # this server applies it now; the others at their next policy poll
        serving.router.refresh()
    return _traffic(store, name) | {"event": event.to_dict()}


@router.get("/runs")
def list_runs(request: Request, pipeline: str | None = None, limit: int = Query(50, ge=1, le=1000)
              ) -> list[dict[str, Any]]:
    return [r.to_dict() for r in RunStore(request.app.state.workspace).list(pipeline, limit)]


@router.get("/runs/{run_id}")
def show_run(run_id: Annotated[str, Path(pattern=r"^run_[0-9a-z]{26}$")], request: Request) -> dict[str, Any]:
    store = RunStore(request.app.state.workspace)
    run = store.get(run_id)
    steps = []
    for s in store.steps(run_id):
        step = dict(s.__dict__)
        step["started_at"] = s.started_at.isoformat() if s.started_at else None
        step["ended_at"] = s.ended_at.isoformat() if s.ended_at else None
        steps.append(step)
    return run.to_dict() | {"steps": steps}


__all__ = ["router"]


@router.get("/models/{name}/dependencies")
def model_dependencies(name: ModelName, request: Request,
                       limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    """What the model reads, who reads it, and its (upstream, model, dataset) evaluations, newest first."""
    from yarnit.continuous.dependencies import ModelDependencies, dependency_summary

    return dependency_summary(ModelDependencies(request.app.state.workspace), name, limit=limit)
