"""Incidents over HTTP: list and read (open, like every GET under /api), acknowledge, note, resolve (token).

``GET /api/incidents[?state=active|open|mitigated|resolved|all]``,
``GET /api/incidents/{id}`` (with timeline and triage; ``?format=markdown``
answers the postmortem), ``POST /api/incidents/{id}/ack``,
``POST /api/incidents/{id}/notes`` ``{"text": …}`` and
``POST /api/incidents/{id}/resolve`` ``{"reason": …}``. The writes need the
control-plane token (the app's middleware refuses them otherwise) and record
the caller (``token:<name>``) on the timeline. An unknown id is a 404 naming
the way to list incidents; bad text is a 422.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from yarnit.incidents import IncidentStore, render_postmortem

from .auth import actor_of

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
IncidentId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_\-]+$")]


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


def _store(request: Request) -> IncidentStore:
    ws = request.app.state.workspace
    return IncidentStore.open(ws.home, ws.clock)


@router.get("")
def list_incidents(request: Request, state: Literal["active", "open", "mitigated", "resolved", "all"] = "active",
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Incidents newest first (``state=active``: not resolved)."""
    chosen = _store(request).list(state, limit=limit)
    return {"state": state, "count": len(chosen), "incidents": [i.summary() for i in chosen]}


@router.get("/{incident_id}", response_model=None)
def show_incident(request: Request, incident_id: str,
                  format: Literal["json", "markdown"] = "json") -> dict[str, Any] | Response:
    """One incident with its phases, roles, impact, triage and timeline (``format=markdown``: the postmortem)."""
    incident = _store(request).get(incident_id[:80])
    if format == "markdown":
        return PlainTextResponse(render_postmortem(incident), media_type="text/markdown; charset=utf-8")
    return incident.to_dict()


def _change(request: Request, incident_id: str, how: Any) -> dict[str, Any]:
    ws = request.app.state.workspace
    with IncidentStore.locked(ws.home, ws.clock) as store:
        incident = how(store, incident_id[:80], actor_of(request))
        return incident.to_dict()


@router.post("/{incident_id}/ack")
def ack_incident(request: Request, incident_id: str) -> dict[str, Any]:
    """Acknowledge: someone has the incident (recorded with the caller)."""
    return _change(request, incident_id, lambda s, i, a: s.ack(i, actor=a))


@router.post("/{incident_id}/notes")
def add_note(request: Request, incident_id: str, body: NoteBody) -> dict[str, Any]:
    """Add a note to the timeline."""
    def note(store: IncidentStore, i: str, actor: str) -> Any:
        store.note(i, body.text, actor=actor)
        return store.get(i)
    return _change(request, incident_id, note)


@router.post("/{incident_id}/resolve")
def resolve_incident(request: Request, incident_id: str, body: ResolveBody) -> dict[str, Any]:
    """Resolve with a reason (sets the resolution phase)."""
    return _change(request, incident_id, lambda s, i, a: s.resolve(i, reason=body.reason, actor=a))


__all__ = ["router"]
