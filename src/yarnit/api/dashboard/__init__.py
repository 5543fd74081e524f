"""The dashboard: the daily review of every model, as server-rendered pages (CH10-R5).

Routes (reads, open like every GET; the pages are HTML, left out of the OpenAPI schema):

* ``/`` overview: each model's production and canary, error budgets, freshness, open incidents,
  the last day's alerts;
* ``/ui/models/{name}`` versions, quality (window and slice pickers), alias history, emergency actions, lineage,
  model card; ``/ui/models/{name}/card`` the whole model card of a version;
* ``/ui/rollouts/{model}`` stage and per-metric canary analysis; ``/ui/slos`` budgets and burn rates
  over time with the alert thresholds; ``/ui/drift/{model}``; ``/ui/data``; ``/ui/incidents[/{id}]``;
  ``/ui/runs[/{id}]``; ``/ui/readiness[/{name}]`` the ML Test Score per section and per test;
* ``/ui/static/dashboard.js`` the one script: it sends the action forms to the token-protected
  control-plane endpoints (``/api/...``) after a confirmation, so an action is authorised, refused
  and audited exactly as the same call from the CLI or curl would be.

An error on a page (an unknown model or run, a bad picker value, an unknown path) is a page too, in the layout
and with the same status (:mod:`.errors`); the JSON API keeps its JSON errors.

Pages read stored records and summaries only (:mod:`.readers`); charts are the demo report's inline
SVG (:mod:`yarnit.charts`), so nothing is fetched from outside and the pages work offline.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from yarnit.core.errors import InvalidInput
from yarnit.monitoring.quality_store import SLICE_FIELDS
from yarnit.storage import Workspace

from .cache import PageCache
from .errors import install_error_pages
from .health_pages import FeaturePick, drift_page, slos_page
from .models_pages import READINESS_SLOT, card_page, model_page, overview, rollout_page
from .readiness_pages import (
    ReadinessCache,
    readiness_overview,
    readiness_page,
    readiness_pending,
    readiness_section,
)
from .records_pages import data_page, incident_page, incidents_page, run_page, runs_page

router = APIRouter(tags=["dashboard"], include_in_schema=False)

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
IncidentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{1,80}$")]
RunId = Annotated[str, Path(pattern=r"^run_[0-9a-z]{26}$")]
CACHE = {"Cache-Control": "no-store"}


def _html(request: Request, render: Callable[[], str]) -> HTMLResponse:
    """The page ``render`` draws, through the app's page cache (see :mod:`.cache`)."""
    cache = getattr(request.app.state, "dashboard_cache", None)
    if cache is None:
        cache = request.app.state.dashboard_cache = PageCache()
    fresh = "cache-control" in request.headers
    return HTMLResponse(cache.page(str(request.url), render, fresh=fresh), headers=CACHE)


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


def _readiness(request: Request) -> ReadinessCache:
    """The app's kept ML Test Score assessments (see :class:`.readiness_pages.ReadinessCache`)."""
    cache = getattr(request.app.state, "readiness_cache", None)
    if cache is None:
        cache = request.app.state.readiness_cache = ReadinessCache()
    return cache


def _model_page(request: Request, name: str, window: str, by: str | None) -> str:
    ws = _ws(request)
    html = model_page(ws, name, window, by)  # ModelNotFound first: a 404 before any scoring
    # Never scored inline, never waited for: an assessment takes longer than the page's first-render budget
    # (a warm-up thread scoring every model beside the first pages made them 2x slower: 796 ms cold).
    kept = _readiness(request).peek(ws, name)
    return html.replace(READINESS_SLOT, readiness_pending(name) if kept is None
                        else readiness_section(kept[0], age_s=kept[1]))


@router.get("/", response_class=HTMLResponse)
def overview_route(request: Request) -> HTMLResponse:
    return _html(request, lambda: overview(_ws(request)))


@router.get("/ui/models/{name}", response_class=HTMLResponse)
def model_route(name: ModelName, request: Request,
                window: Annotated[Literal["1d", "7d"], Query(description="quality window")] = "1d",
                by: Annotated[str, Query(max_length=40, description="a slice field, or empty")] = "") -> HTMLResponse:
    if by and by not in SLICE_FIELDS:
        raise InvalidInput(f"Cannot slice quality by {by!r}: the label join keeps slices by "
                           f"{', '.join(SLICE_FIELDS)}. Leave it empty for the whole traffic.")
    return _html(request, lambda: _model_page(request, name, window, by or None))


@router.get("/ui/models/{name}/card", response_class=HTMLResponse)
def card_route(name: ModelName, request: Request,
               version: Annotated[int | None, Query(ge=1, description="version (default: production)")] = None
               ) -> HTMLResponse:
    return _html(request, lambda: card_page(_ws(request), name, version))


@router.get("/ui/rollouts/{model}", response_class=HTMLResponse)
def rollout_route(model: ModelName, request: Request) -> HTMLResponse:
    return _html(request, lambda: rollout_page(_ws(request), model))


@router.get("/ui/slos", response_class=HTMLResponse)
def slos_route(request: Request) -> HTMLResponse:
    return _html(request, lambda: slos_page(_ws(request)))


@router.get("/ui/drift/{model}", response_class=HTMLResponse)
def drift_route(model: ModelName, request: Request,
                days: Annotated[int, Query(ge=1, le=120, description="days of history drawn")] = 30,
                live: Annotated[bool, Query(description="the last 24 h computed now, not the last closed day")] = False,
                feature: Annotated[str, Query(max_length=200, description="the feature drawn as histograms")] = "",
                window: Annotated[Literal["1h", "6h", "1d", "7d"], Query(description="its window")] = "1d",
                end: Annotated[str, Query(max_length=40, description="the window's end (ISO time)")] = "",
                reference: Annotated[Literal["training", "previous"], Query(description="its reference")] = "training"
                ) -> HTMLResponse:
    pick = FeaturePick(feature, window, end, reference)
    return _html(request, lambda: drift_page(_ws(request), model, days, live, pick))


@router.get("/ui/data", response_class=HTMLResponse)
def data_route(request: Request) -> HTMLResponse:
    return _html(request, lambda: data_page(_ws(request)))


@router.get("/ui/incidents", response_class=HTMLResponse)
def incidents_route(request: Request) -> HTMLResponse:
    return _html(request, lambda: incidents_page(_ws(request)))


@router.get("/ui/incidents/{incident_id}", response_class=HTMLResponse)
def incident_route(incident_id: IncidentId, request: Request) -> HTMLResponse:
    return _html(request, lambda: incident_page(_ws(request), incident_id))


@router.get("/ui/runs", response_class=HTMLResponse)
def runs_route(request: Request) -> HTMLResponse:
    return _html(request, lambda: runs_page(_ws(request)))


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_route(run_id: RunId, request: Request) -> HTMLResponse:
    return _html(request, lambda: run_page(_ws(request), run_id))


@router.get("/ui/readiness", response_class=HTMLResponse)
def readiness_route(request: Request, ci: Annotated[bool, Query(description="count only what CI runs")] = False
                    ) -> HTMLResponse:
    return _html(request, lambda: readiness_overview(_ws(request), ci))


@router.get("/ui/readiness/{name}", response_class=HTMLResponse)
def readiness_model_route(name: ModelName, request: Request,
                          ci: Annotated[bool, Query(description="count only what CI runs")] = False) -> HTMLResponse:
    return _html(request, lambda: readiness_page(_ws(request), name, ci))


_SCRIPT = files(__package__).joinpath("static", "dashboard.js").read_bytes()


@router.get("/ui/static/dashboard.js")
def script() -> Response:
    return Response(_SCRIPT, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "max-age=300"})


__all__ = ["install_error_pages", "router"]
