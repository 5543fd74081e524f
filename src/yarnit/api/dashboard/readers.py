"""What the dashboard reads: stored records and summaries only, never a recomputation per page load.

Each reader wraps a store the API already has (registry, runs, datasets, the monitor's state, alert and
history files, the incident store, rollout files, the loop's state) and answers plain dicts. The one
computed view, the last day's served drift, is computed from the stored hourly summaries as ``GET
/api/monitoring/drift`` does (a few file reads); drift over time is the monitor's daily record of it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from yarnit.continuous import actions
from yarnit.continuous.loop import continuous_dir, loop_status, state_path
from yarnit.continuous.rollout import RolloutController, rollouts_dir
from yarnit.core.errors import YarnitError
from yarnit.data import Datasets, Lineage, Node
from yarnit.data.deletion import Deletions
from yarnit.incidents import IncidentStore
from yarnit.monitoring import quality as quality_mod
from yarnit.monitoring import served_drift, traffic
from yarnit.monitoring.alerts import alerts_path
from yarnit.monitoring.slo_history import drift_path, history_path
from yarnit.monitoring.workspace import monitoring_dir
from yarnit.registry import ModelRegistry
from yarnit.serving.router import TrafficPolicyStore
from yarnit.storage import Workspace
from yarnit.training import RunStore

from ..slos import cached, monitor_state


def slo_state(ws: Workspace) -> dict[str, Any]:
    """The monitor's last evaluation (``slos``: one entry per SLO); empty when it has not run."""
    return monitor_state(ws.home) or {}


def slos_of(ws: Workspace, model: str | None = None) -> list[dict[str, Any]]:
    return [s for s in slo_state(ws).get("slos", []) if isinstance(s, dict) and (model is None or
                                                                                   s.get("model") == model)]


def slo_history(ws: Workspace) -> list[dict[str, Any]]:
    """Hourly points of every SLO's budget and burn rates (the monitor writes them: slo_history)."""
    data = cached(history_path(ws.home))
    points = data.get("points") if isinstance(data, dict) else None
    return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def alerts(ws: Workspace) -> list[dict[str, Any]]:
    """Every stored alert, newest first."""
    data = cached(alerts_path(monitoring_dir(ws.home)))
    rows = [a for a in (data.get("alerts", []) if isinstance(data, dict) else []) if isinstance(a, dict)]
    rows.sort(key=lambda a: (str(a.get("started_at")), str(a.get("id"))), reverse=True)
    return rows


def alerts_since(ws: Workspace, hours: float = 24.0) -> list[dict[str, Any]]:
    """Alerts that started, changed or are still firing within the last ``hours`` (workspace clock)."""
    since = (ws.clock.now() - timedelta(hours=hours)).isoformat()
    return [a for a in alerts(ws) if a.get("state") == "firing" or str(a.get("updated_at") or "") >= since
            or str(a.get("started_at") or "") >= since]


def incidents(ws: Workspace, state: str = "all", limit: int = 200) -> list[Any]:
    return IncidentStore.open(ws.home, ws.clock).list(state, limit=limit)


def incident(ws: Workspace, incident_id: str) -> Any:
    return IncidentStore.open(ws.home, ws.clock).get(incident_id)


def models(ws: Workspace) -> list[dict[str, Any]]:
    return ModelRegistry(ws).list_models()


def rollout(ws: Workspace, model: str) -> dict[str, Any] | None:
    """The model's latest staged rollout (running or finished), or None when it never had one."""
    if not (rollouts_dir(ws.home) / f"{model}.json").is_file():
        return None
    try:
        return RolloutController(ws, model, clock=ws.clock).status()
    except YarnitError:
        return None


def has_rollout(ws: Workspace, model: str) -> bool:
    return (rollouts_dir(ws.home) / f"{model}.json").is_file()


def rollout_models(ws: Workspace) -> list[str]:
    return sorted(p.stem for p in rollouts_dir(ws.home).glob("*.json"))


def loop(ws: Workspace, model: str) -> dict[str, Any] | None:
    """The continuous loop's days for ``model`` (data checks, quarantine, training), or None without a loop."""
    if not state_path(ws.home, model).is_file():
        return None
    try:
        return loop_status(ws.home, model, clock=ws.clock)
    except YarnitError:
        return None


def loop_models(ws: Workspace) -> list[str]:
    return sorted(p.stem.removeprefix("loop-") for p in continuous_dir(ws.home).glob("loop-*.json"))


def switches(ws: Workspace, model: str) -> dict[str, Any]:
    """The model's emergency switches (training frozen?, forced to its fallback?, what a rollback goes to) and its
    last emergency actions: the cheap parts of ``actions.switches`` (one query each)."""

    return {"training_frozen": actions.training_frozen(ws, model),
            "force_fallback": TrafficPolicyStore(ws).get(model).force_fallback,
            "rollback_target": ModelRegistry(ws).rollback_target(model, "production"),
            "history": actions.history(ws, model=model, limit=20)}


def quality(ws: Workspace, model: str, window_s: int = 86400, by: str | None = None) -> dict[str, Any] | None:
    """Realized quality over the last ``window_s`` per version (and value of the slice field ``by``), from the
    label join's stored state."""
    try:
        return quality_mod.quality_report(ws, model, window_s=window_s, by=by)
    except (YarnitError, OSError):
        return None


def drift(ws: Workspace, model: str) -> dict[str, Any] | None:
    """Served drift in the last day, from the stored hourly summaries (what GET /api/monitoring/drift answers)."""
    try:
        return traffic.drift_report(ws, model, window="1d")
    except (YarnitError, OSError, ValueError):
        return None


def feature_histograms(ws: Workspace, model: str, feature: str, window_s: int, end: Any,
                       reference: str) -> dict[str, Any] | None:
    """One feature's reference and current histograms and drift (``served_drift.feature_histograms``)."""
    try:
        return served_drift.feature_histograms(ws, model, feature, window=window_s, at=end, reference=reference)
    except (YarnitError, OSError) as exc:
        return {"reason": str(exc)}


def drift_history(ws: Workspace, model: str) -> list[dict[str, Any]]:
    """The model's daily drift points the monitor kept (slo_history.record_drift), oldest first."""
    data = cached(drift_path(ws.home))
    models = data.get("models") if isinstance(data, dict) else None
    points = models.get(model) if isinstance(models, dict) else None
    return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def runs(ws: Workspace, limit: int = 50) -> list[Any]:
    return RunStore(ws).list(None, limit)


def run(ws: Workspace, run_id: str) -> tuple[Any, list[Any]]:
    store = RunStore(ws)
    return store.get(run_id), store.steps(run_id)


def pipeline_inputs(pipeline: str) -> dict[str, dict[str, str]] | None:
    """A built-in pipeline's steps in run order and each one's declared inputs (``param -> "step.output"``),
    or None for a pipeline defined elsewhere (a Python file: the dashboard does not import user code)."""
    from yarnit.recipes import BUILTIN_PIPELINES

    make = BUILTIN_PIPELINES.get(pipeline)
    if make is None:
        return None
    try:
        return {s.name: dict(s.inputs) for s in make().order()}
    except YarnitError:
        return None


def datasets(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    """The newest dataset versions, newest first, without their statistics (those are the heavy part)."""
    return Datasets(ws).summaries(limit=limit)


def receipts(ws: Workspace) -> list[Any]:
    try:
        return Deletions(ws).receipts()
    except (YarnitError, OSError):
        return []


def lineage_up(ws: Workspace, version_id: str) -> dict[str, Any] | None:
    """What a model version was made from (its runs and dataset versions, up to the raw data)."""
    try:
        return Lineage(ws).upstream(Node("model_version", version_id), depth=6).to_dict()
    except (YarnitError, OSError):
        return None


__all__ = ["alerts", "alerts_since", "datasets", "drift", "drift_history", "feature_histograms", "has_rollout", "incident", "incidents",
           "lineage_up", "loop", "loop_models", "models", "pipeline_inputs", "quality", "receipts", "rollout", "rollout_models", "run",
           "runs", "slo_history", "slo_state", "slos_of", "switches"]
