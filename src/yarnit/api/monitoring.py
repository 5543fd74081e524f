"""Read-only monitoring routes: ``GET /api/monitoring/drift/{model}`` (drift of served traffic).

The answer is the JSON of ``yarnit monitor drift MODEL --json`` (without the
update step): computed from the stored hourly summaries only, never from the
prediction log, so a request costs a few file reads whatever the traffic.
``summaries.updated_at``/``age_s`` say how old they are (the monitor runner
or ``yarnit monitor summarize`` refreshes them). Reads are open like the other
``GET /api`` routes; summaries hold no personal data.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
WindowQuery = Annotated[str, Query(max_length=16, description="Window length: 1h, 6h, 1d, 7d …")]
AtQuery = Annotated[str | None, Query(max_length=64, description="End of the window, ISO 8601 with a zone")]
ReferenceQuery = Annotated[str | None, Query(max_length=140, description="START/END (ISO 8601) or a shift such "
                                             "as 7d; default: the serving version's training data")]
ThresholdQuery = Annotated[float | None, Query(ge=0.0, le=10.0, description="Effect-size threshold")]


@router.get("/drift/{model}")
async def drift(model: ModelName, request: Request, window: WindowQuery = "1d", at: AtQuery = None,
                reference_window: ReferenceQuery = None, threshold: ThresholdQuery = None) -> dict[str, Any]:
    """Drift of MODEL's served traffic in the window ending ``at`` (default now), from the stored summaries."""
    from yarnit.monitoring import served_drift, traffic

    workspace = request.app.state.workspace
    when = served_drift.parse_time(at, "at") if at is not None else None
    served_drift.parse_window(window, "window")
    return await run_in_threadpool(traffic.drift_report, workspace, model, window=window, at=when,
                                   reference_window=reference_window, threshold=threshold)


__all__ = ["router"]
