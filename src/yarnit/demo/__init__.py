"""``yarnit demo``: the end-to-end path from data to a prediction served over HTTP.

The ``yarnit-ctr`` pipeline runs these steps: simulate the world → record the
dataset version → validate → features → train → evaluate on the
time-ordered holdout → gate → register the model (skops artifact, sha256,
lineage) → promote it to ``production``. The demo then starts the HTTP server
on a loopback port (which loads and warms the production version before it
takes traffic) and sends real ``POST /v1/models/ctr:predict`` requests. It
reports how many requests each version answered, and fails when the model it
trained answered none of them: a demo that "works" on the fallback proves
nothing.

Each step is recorded and cached. A rerun does no work, and a run killed
with ``kill -9`` at any point is resumed, or re-run, cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core.errors import InvalidInput, Unavailable
from yarnit.recipes import ctr_pipeline
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner

MODEL = "ctr"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    run_id: str
    cached_steps: int
    dataset_version: str
    model_version: int
    model_ref: str
    blessed: bool
    auc_holdout: float | None
    auc_oracle: float | None
    auc_popularity: float | None
    ctr_holdout: float
    served_prediction: float
    served_by_version: int
    served_by: str
    server_url: str
    requests_sent: int
    answered_by: dict[str, int]  # "ctr:v1" (or "heuristic", or "HTTP 503") → requests it answered


    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_demo(ws: Workspace, *, days: int = 3, seed: int = 0, sessions_per_day: int = 1500,
             progress: Progress = lambda _m: None) -> DemoResult:
    if days < 2:
        raise InvalidInput(f"--days {days} is too few: the demo holds out the last day, so it needs at least 2.")
    pipeline = ctr_pipeline()
    result = PipelineRunner(ws).run(
        pipeline, config={"days": days, "world_seed": seed, "sessions_per_day": sessions_per_day}, seed=seed,
        source="builtin:yarnit-ctr", progress=lambda step, state: progress(f"pipeline yarnit-ctr: {step} {state}"),
    )
    dataset = result.value("select", "dataset")
    report = result.value("evaluate", "report")
    verdict = result.value("gate", "verdict")
    registered = result.value("register", "model_version")
    progress(f"run {result.id}: {dataset['ref']} → {MODEL}:v{registered['version']} "
             f"(auc {report['auc']:.4f}, oracle {report.get('auc_oracle') or float('nan'):.4f}, "
             f"{'blessed' if verdict['blessed'] else 'not blessed: ' + '; '.join(verdict['reasons'])})")
    registry = ModelRegistry(ws)
    version = registry.get(MODEL, registered["version"])
    examples = version.signature.get("probe", [])[:20]
    if not examples:
        raise Unavailable(f"{version.ref} has no probe requests to send; retrain with a newer yarnit.")
    with BackgroundServer(create_app(ws)) as server:
        progress(f"serving on {server.url}")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers: list[dict[str, Any]] = []
            answered_by: dict[str, int] = {}
            for example in examples:
                response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [example]})
                if response.status_code == 200:
                    answers.append(response.json())
                who = answered_by_label(response.status_code, answers[-1] if response.status_code == 200 else None)
                answered_by[who] = answered_by.get(who, 0) + 1
    progress("answered by: " + ", ".join(f"{who} {n}" for who, n in answered_by.items()))
    require_answers_from(version.ref, answered_by)
    first = next(a for a in answers if f"{MODEL}:v{a['model_version']}" == version.ref and a["served_by"] == "model")
    return DemoResult(
        run_id=result.id, cached_steps=sum(1 for s in result.steps if s.state == "cached"),
        dataset_version=dataset["ref"], model_version=version.version, model_ref=version.ref,
        blessed=verdict["blessed"], auc_holdout=report["auc"], auc_oracle=report.get("auc_oracle"),
        auc_popularity=report.get("auc_popularity"), ctr_holdout=report["ctr"],
        served_prediction=first["predictions"][0], served_by_version=first["model_version"],
        served_by=first["served_by"], server_url=server.url, requests_sent=len(examples), answered_by=answered_by,
    )


def require_answers_from(ref: str, answered_by: dict[str, int]) -> None:
    """Raise :class:`Unavailable` unless version ``ref`` answered at least one request itself."""
    if answered_by.get(ref, 0) == 0:
        total = sum(answered_by.values())
        raise Unavailable(f"The model the demo trained, {ref}, answered none of its {total} requests (answered by: "
                          f"{answered_by}). Check `yarnit models show {ref.split(':')[0]}` (was it promoted?) and the "
                          "server log for why it was not served.")


def answered_by_label(status: int, answer: dict[str, Any] | None) -> str:
    """Who answered one request: ``ctr:v1`` for a model version, ``heuristic``, or ``HTTP 503`` for an error.

    Example:
        >>> answered_by_label(200, {"model_name": "ctr", "model_version": 1, "served_by": "model"})
        'ctr:v1'
        >>> answered_by_label(200, {"model_name": "ctr", "model_version": 0, "served_by": "fallback"})
        'heuristic'
        >>> answered_by_label(503, None)
        'HTTP 503'
    """
    if answer is None:
        return f"HTTP {status}"
    if answer["model_version"] == 0:
        return "heuristic"
    label = f"{answer['model_name']}:v{answer['model_version']}"
    return label if answer["served_by"] == "model" else f"{label} ({answer['served_by']})"


__all__ = ["DemoResult", "answered_by_label", "require_answers_from", "run_demo"]
