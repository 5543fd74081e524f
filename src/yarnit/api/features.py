"""Read-only control-plane routes for feature views: ``/api/features…``.

Definitions, freshness, consumers and recent materializations, plus an online
read that returns each value with its status (``present``/``missing``/``stale``),
event time and age. Nothing here writes: backfills and materializations run
from the CLI or Python.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from yarnit.features import FeatureStore, OnlineFeatures, parse_key

router = APIRouter(prefix="/api", tags=["features"])

ViewName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
MAX_KEYS = 1000
_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}, "detail": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such feature view", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    422: {"description": "Invalid name, key or parameter", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
    503: {"description": "The metadata or online store did not answer",
          "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
}
_lock = threading.Lock()


def _store(request: Request) -> FeatureStore:
    """One FeatureStore per app (its online store keeps long-lived connections)."""
    store: FeatureStore | None = getattr(request.app.state, "feature_store", None)
    if store is None:
        with _lock:
            store = getattr(request.app.state, "feature_store", None)
            if store is None:
                store = FeatureStore(request.app.state.workspace)
                request.app.state.feature_store = store
    return store


@router.get("/features", responses=_ERRORS)
def list_feature_views(request: Request) -> list[dict[str, Any]]:
    """Every feature view (newest version) with its entities, features, TTL, owner and consumers."""
    registry = _store(request).registry
    consumers = registry.consumers()
    return [v.to_dict() | {"consumers": sorted({c.consumer for c in consumers if c.view_name == v.name})}
            for v in registry.list()]


@router.get("/features/{name}", responses=_ERRORS)
def show_feature_view(name: ViewName, request: Request) -> dict[str, Any]:
    """A view's newest definition, its versions, consumers, freshness and recent materializations."""
    store = _store(request)
    newest = store.registry.get(name)
    return {
        "view": newest.to_dict(),
        "versions": [{"number": v.number, "version": v.version, "created_at": v.created_at.isoformat()}
                     for v in store.registry.versions(name)],
        "consumers": [c.to_dict() for c in store.registry.consumers(name)],
        "freshness": store.freshness([name])[0].to_dict(),
        "materializations": [r.to_dict() for r in store.registry.runs(name, limit=10)],
    }


@router.get("/features/{name}/freshness", responses=_ERRORS)
def feature_view_freshness(name: ViewName, request: Request) -> dict[str, Any]:
    """Age of the view's newest online value (the freshness SLI), rows and last materialization."""
    return _store(request).freshness([name])[0].to_dict()


@router.get("/features/{name}/online", responses=_ERRORS)
def read_online_features(
    name: ViewName,
    request: Request,
    key: Annotated[list[str], Query(min_length=1, max_length=MAX_KEYS,
                                    description="Entity key (repeat for several); a JSON list for composite keys")],
) -> dict[str, Any]:
    """Online values for entities, each with status (present/missing/stale), event time and age."""
    store = _store(request)
    view = store.view(name)
    keys = [parse_key(view, k) for k in key]
    rows = OnlineFeatures(store.online, [view], store.clock).read(name, keys)
    return {"view": name, "version": view.version, "rows": [r.to_dict() for r in rows]}


__all__ = ["router"]
