"""Emergency actions over HTTP: one POST each, token-protected like every control-plane write (auth.py).

* ``POST /api/models/{name}/actions/{action}`` with ``{"reason": "…"}``;
  ``action``: ``stop-training``, ``resume-training``, ``fall-back``,
  ``restore``, ``roll-back``;
* ``POST /api/datasets/{name}/actions/remove-data`` with ``start``, ``end``
  (ISO 8601), ``reason`` and optionally ``time_column``;
* ``POST /api/alerts/actions/roll-through`` with ``alert_ids`` or ``slo``;
* ``GET /api/models/{name}/switches``: which switches are set, and the model's
  emergency actions from the audit log.

The actor is the caller's token (``token:<name>``). This server applies a
switch at once; other replicas within their refresh interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.continuous import actions
from yarnit.core.errors import InvalidInput

from .auth import actor_of
from .control import PLAIN_TEXT, ModelName

router = APIRouter(prefix="/api", tags=["emergency actions"])

Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=PLAIN_TEXT,
                              description="Why (required; kept in the audit history): one line of plain text")]
DatasetRef = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}(:v?[0-9]{1,18})?$")]
ModelAction = Literal["stop-training", "resume-training", "fall-back", "restore", "roll-back", "abort-canary"]

MODEL_ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "stop-training": actions.stop_training,
    "resume-training": actions.resume_training,
    "fall-back": actions.fall_back,
    "restore": actions.restore_model,
    "roll-back": actions.roll_back,
    "abort-canary": actions.abort_canary,
}


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class RemoveData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(max_length=64, description="First instant removed (ISO 8601; UTC when no zone is given)")
    end: str = Field(max_length=64, description="End of the window, exclusive (ISO 8601)")
    time_column: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    reason: Reason


class RollThrough(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_ids: list[Annotated[str, Field(max_length=64, pattern=r"^alert_[0-9a-z]+$")]] | None = \
        Field(default=None, max_length=100)
    slo: str | None = Field(default=None, max_length=128, pattern=PLAIN_TEXT)
    reason: Reason


def _apply_now(request: Request, name: str, action: str) -> None:
    """This server takes a serving change at once (the others at their next poll)."""
    serving = getattr(request.app.state, "serving", None)
    if serving is None:
        return
    if action in ("fall-back", "roll-back"):
        # the fallback the action found (the ``fallback`` alias) or the previous version is loaded now, before
        # the router takes the switch: the first answer after it comes from that version
        serving.runtime.refresh(name)
    if action in ("fall-back", "restore"):
        serving.router.refresh()


@router.post("/models/{name}/actions/{action}")
def model_action(name: ModelName, action: ModelAction, body: ActionBody, request: Request) -> dict[str, Any]:
    """One emergency action on a model: 404 unknown model, 409 when its state refuses (no fallback declared,
    nothing to roll back to), 422 bad input; the answer says what changed and the audit row's id."""
    result = MODEL_ACTIONS[action](request.app.state.workspace, name, actor=actor_of(request), reason=body.reason)
    _apply_now(request, name, action)
    return result


@router.post("/datasets/{name}/actions/remove-data")
def remove_data(name: DatasetRef, body: RemoveData, request: Request) -> dict[str, Any]:
    """Drop a time window of the dataset from training: a new version without it; retrains requested."""
    return actions.remove_bad_data(request.app.state.workspace, name, start=body.start, end=body.end,
                                   time_column=body.time_column, actor=actor_of(request), reason=body.reason)


@router.post("/alerts/actions/roll-through")
def roll_through(body: RollThrough, request: Request) -> dict[str, Any]:
    """Acknowledge alerts (by id, or every open alert of one SLO) and keep going."""
    if (body.alert_ids is None) == (body.slo is None):
        raise InvalidInput('Send "alert_ids" (a list of alert ids) or "slo" (an SLO name or id), not both.')
    return actions.roll_through(request.app.state.workspace, alert_ids=body.alert_ids, slo=body.slo,
                                actor=actor_of(request), reason=body.reason)


@router.get("/models/{name}/switches")
def switches(name: ModelName, request: Request) -> dict[str, Any]:
    """Which emergency switches are set for the model, and its emergency actions (newest first)."""
    ws = request.app.state.workspace
    return actions.switches(ws, name) | {"history": actions.history(ws, model=name, limit=50)}


__all__ = ["router"]
