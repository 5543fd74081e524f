"""Staged rollouts over HTTP: status with the per-metric canary analysis, start, one step, abort.

``GET /api/rollouts`` lists every model's latest rollout; ``GET /api/rollouts/{model}`` is an open read (like every GET under /api): the
rollout's stage, the share in force, the last canary analysis (each metric's
verdict, figures and interval: what the dashboard draws) and the last
decisions. The POSTs are control-plane writes: the token middleware refuses
them without a token holding the ``write`` role; the actor recorded is the
token's. A second start while one runs, a refused promotion (a spent error
budget) and an abort of a finished rollout are 409s; an unknown model or
rollout is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.continuous.rollout import (
    RolloutConfig,
    RolloutController,
    parse_duration,
    rollouts_dir,
)
from yarnit.core.errors import YarnitError
from yarnit.core.ids import MAX_VERSION

from .auth import actor_of
from .control import PLAIN_TEXT

router = APIRouter(prefix="/api", tags=["rollouts"])

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
Reason = Annotated[str, Field(default="", max_length=1000, pattern=PLAIN_TEXT)]


class Start(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    stages: list[Annotated[float, Field(gt=0, le=100)]] | None = Field(default=None, max_length=50)
    bake: Annotated[str, Field(max_length=32)] = "30m"
    min_requests: Annotated[int, Field(ge=0, le=10**9)] = 500
    threshold: Annotated[int, Field(ge=1, le=1000)] = 1
    deadline: Annotated[str, Field(max_length=32)] | None = None
    require_loadtest: bool = False  # a load-test stage first (yarnit loadtest must have passed for the version)
    loadtest_max_age: Annotated[str, Field(max_length=32)] | None = None
    reason: Reason = ""


class Abort(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=PLAIN_TEXT)]


def _controller(request: Request, model: str, config: RolloutConfig | None = None) -> RolloutController:
    ws = request.app.state.workspace
    return RolloutController(ws, model, clock=ws.clock, config=config)


@router.get("/rollouts")
def list_rollouts(request: Request) -> list[dict[str, Any]]:
    """Every model's latest rollout (running or finished), without the per-metric detail."""
    ws = request.app.state.workspace
    out = []
    for path in sorted(rollouts_dir(ws.home).glob("*.json")):
        try:
            report = RolloutController(ws, path.stem, clock=ws.clock).status()
        except YarnitError:  # a foreign or unreadable file: not a rollout to list
            continue
        out.append({k: v for k, v in report.items() if k not in ("analysis", "decisions", "config")}
                   | {"score": (report.get("analysis") or {}).get("score")})
    return out


@router.get("/rollouts/{model}")
def rollout_status(model: ModelName, request: Request) -> dict[str, Any]:
    return _controller(request, model).status()


@router.post("/rollouts/{model}")
def start_rollout(model: ModelName, body: Start, request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {"bake_s": parse_duration(body.bake), "min_requests": body.min_requests,
                              "threshold": body.threshold,
                              "deadline_s": parse_duration(body.deadline) if body.deadline else None,
                              "loadtest": body.require_loadtest,
                              "loadtest_max_age_s": parse_duration(body.loadtest_max_age)
                              if body.loadtest_max_age else None}
    if body.stages is not None:
        values["stages"] = tuple(body.stages)
    return _controller(request, model, RolloutConfig(**values)).start(
        body.version, actor_of(request), reason=body.reason, require_blessing=True)


@router.post("/rollouts/{model}/step")
def step_rollout(model: ModelName, request: Request) -> dict[str, Any]:
    return _controller(request, model).step()


@router.post("/rollouts/{model}/abort")
def abort_rollout(model: ModelName, body: Abort, request: Request) -> dict[str, Any]:
    return _controller(request, model).abort(actor=actor_of(request), reason=body.reason)
