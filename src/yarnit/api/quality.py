"""``GET /api/monitoring/quality/{model}``: realized quality and the estimate before labels, as the monitor left them.

A read: it answers from the join's state (``yarnit monitor run`` or
``yarnit monitor labels ingest`` bring it up to date) and never runs the join
on the request path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from yarnit.core.errors import ConfigError, InvalidInput
from yarnit.monitoring import quality
from yarnit.monitoring.slo import parse_duration

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]


@router.get("/quality/{model}")
async def model_quality(model: ModelName, request: Request,
                        window: Annotated[str, Query(max_length=12, description="1h, 1d, 7d …")] = "1d",
                        by: Annotated[str | None, Query(max_length=32, description="a slice field")] = None
                        ) -> dict[str, Any]:
    """Per version (and slice): realized CTR, AUC, calibration, bias, ECE with intervals; CBPE for the unlabelled."""
    try:
        window_s = parse_duration(window, "window")
    except ConfigError as exc:  # a bad query parameter is the client's mistake: 422, not a server error
        raise InvalidInput(str(exc)) from None
    ws = request.app.state.workspace
    return await run_in_threadpool(quality.quality_report, ws, model, window_s=window_s, by=by)
