"""The FastAPI app factory: data plane, control plane, health, metrics, dashboard."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

import yarnit
from yarnit.access import Tokens
from yarnit.core.errors import YarnitError
from yarnit.features import FeatureStore
from yarnit.serving import InferenceService, ServingOptions
from yarnit.serving.featurestore import FeatureStoreSource
from yarnit.storage import Workspace

from . import (
    access,
    actions,
    control,
    dataplane,
    datasets,
    evaluations,
    loadtests,
    rater_page,
    readiness,
    rollouts,
    slos,
)
from . import dashboard as dashboard_ui
from . import features as features_api
from . import incidents as incidents_api
from . import labels as labels_api
from . import monitoring as monitoring_api
from . import quality as quality_api
from .auth import token_middleware
from .errors import install_error_handlers
from .limits import BodySizeLimit
from .metrics import ApiMetrics
from .worker_metrics import SCOPE_WORKER, WorkerPeers, worker_exposition

log = logging.getLogger("yarnit.api")


def iter_api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, including those inside included routers (newer FastAPI nests them).

    Used by the auth inventory test: a route that this walk misses could not be
    proven to need the token, so the test also cross-checks the OpenAPI schema.
    """
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        nested = getattr(route, "original_router", None) or getattr(route, "router", None)
        if nested is not None and hasattr(nested, "routes"):
            yield from iter_api_routes(nested.routes)
        elif hasattr(route, "routes"):
            yield from iter_api_routes(route.routes)


def _export_feature_freshness(app: FastAPI, workspace: Workspace) -> None:
    """Export each feature view's freshness (age of its newest online value) as a metric and SLI."""
    from yarnit.features import FeatureRegistry, FreshnessCollector, open_online_store

    def views() -> list[object]:
        return [v.view for v in FeatureRegistry(workspace).list()]

    online = open_online_store(workspace.settings.online_store_url)
    app.state.metrics.shared.register(FreshnessCollector(views, online, workspace.clock))


def create_app(workspace: Workspace, *, refresh_s: float = 0.25, serving: ServingOptions | None = None) -> FastAPI:
    """Build the HTTP app over an open workspace (``serving``: data-plane options, see yarnit.serving)."""
    app = FastAPI(
        title="yarnit",
        version=yarnit.__version__,
        description="Reliable ML in production: data plane (v1, OIP v2), control plane (/api), metrics.",
    )
    app.state.workspace = workspace
    app.state.metrics = ApiMetrics()
    if workspace.settings.api_token is None and not Tokens(workspace).any_issued():
        log.warning("No YARNIT_API_TOKEN and no named token: control-plane writes are accepted only from loopback.")
    install_error_handlers(app)
    dashboard_ui.install_error_pages(app)  # the same errors as HTML pages on the dashboard's routes

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics: ApiMetrics = app.state.metrics
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.latency.labels(request.method, template).observe(time.perf_counter() - started)
        return response

    # Added last so it runs first: nothing reaches a write route without passing it.
    app.middleware("http")(token_middleware(Tokens(workspace)))
    app.add_middleware(BodySizeLimit)  # /api bodies: 413 over 1 MiB, before they are read

    @app.get("/v2/health/live", tags=["health"])
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    def ready(response: Response) -> dict[str, object]:
        """Ready when the metadata store answers and every served model's production version is loaded,
        warmed and is the version the registry names (a replica stuck on an older one is not ready)."""
        try:
            with workspace.metadata.begin() as conn:
                conn.execute(text("SELECT 1"))
        except YarnitError as exc:
            response.status_code = 503
            response.headers["Retry-After"] = "1"
            return {"ready": False, "reason": str(exc)}
        runtime = app.state.runtime
        problems = runtime.readiness()
        if problems:
            response.status_code = 503
            response.headers["Retry-After"] = "1"
            return {"ready": False, "reason": "; ".join(problems.values()), "models": runtime.ready()}
        return {"ready": True, "models": runtime.ready()}

    @app.get("/v2", tags=["health"])
    def server_metadata() -> dict[str, object]:
        return {"name": "yarnit", "version": yarnit.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        api_metrics: ApiMetrics = app.state.metrics
        api_metrics.flush()  # on the event loop, where the data plane counts: no race with its requests
        peers: WorkerPeers | None = getattr(app.state, "worker_peers", None)
        if peers is None:  # one process: everything it counts, and the shared gauges
            body = await run_in_threadpool(generate_latest, api_metrics.registry)
        elif request.query_params.get("scope") == SCOPE_WORKER:  # another worker asks for this one's counts
            return Response(worker_exposition(api_metrics.registry, peers.slot), media_type=CONTENT_TYPE_LATEST)
        else:  # yarnit serve --workers: every worker's counts, labelled by slot (api/worker_metrics.py)
            body = await peers.exposition(api_metrics.registry)
        # Shared collectors may read the database or Redis (feature freshness): off the loop, in a worker thread.
        body += await run_in_threadpool(generate_latest, api_metrics.shared)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(control.router)
    app.include_router(datasets.router)
    app.include_router(access.router)
    app.include_router(evaluations.router)
    app.include_router(loadtests.router)
    app.include_router(features_api.router)
    app.include_router(monitoring_api.router)
    app.include_router(quality_api.router)
    app.include_router(slos.router)
    app.include_router(actions.router)
    app.include_router(rollouts.router)
    app.include_router(incidents_api.router)
    app.include_router(labels_api.router)
    app.include_router(rater_page.router)
    app.include_router(readiness.router)  # GET /api/readiness[/{name}]: the ML Test Score
    app.include_router(dashboard_ui.router)  # the pages: /, /ui/…
    _export_feature_freshness(app, workspace)
    # SLO gauges from the monitor's state file (yarnit monitor run): read, never computed, at scrape time.
    app.state.metrics.shared.register(slos.SLOCollector(workspace.home, workspace.clock))
    # Models read their declared online features (e.g. the ranker's shopper history) from the feature store.
    app.state.feature_store = FeatureStore(workspace)
    app.router.on_shutdown.append(app.state.feature_store.close)
    # Last: the data plane's fast path must be the outermost middleware (serving issue #9).
    # The source samples the feature rows it serves into the skew log (yarnit features skew).
    source = FeatureStoreSource(app.state.feature_store,
                                log_sample_rate=(serving or ServingOptions()).feature_log_sample_rate)
    service = dataplane.install(app, workspace, options=serving, refresh_s=refresh_s, feature_source=source)
    # Every production model is loaded and warmed before the app takes its first request: at the ASGI
    # server's startup, or in BackgroundServer / prepare_for_traffic (which run without lifespan events).
    app.router.on_startup.append(lambda: _preload(service))
    return app


def _preload(service: InferenceService) -> None:
    for name, outcome in service.runtime.preload().items():
        log.info("model %s: %s", name, outcome)
    service.runtime.watch()


__all__ = ["create_app", "iter_api_routes"]
