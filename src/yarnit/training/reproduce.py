"""Reproduce a run from its records and compare the models it trains (CH7-R7, CH7-R14).

The reproduction reuses the original run's recorded data versions (steps
marked ``reuse_in_reproduction``), then reruns every step that leads to a
model output, bypassing the cache, with the original config and seed. For
each model it reports identical bytes, or scores on the model's probe requests
that agree within a tolerance, or the largest difference it found. Two
trained models are never assumed equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yarnit.features import get_transform
from yarnit.registry import load_predictor

from .pipeline import Pipeline
from .runner import PipelineRunner, Progress
from .values import TrainedModel, ValueKind, load_value


@dataclass(frozen=True)
class ModelComparison:
    output: str
    original_sha256: str
    reproduced_sha256: str
    identical_bytes: bool
    max_abs_diff: float | None
    within_tolerance: bool


@dataclass(frozen=True)
class Reproduction:
    original_run: str
    reproduced_run: str
    tolerance: float
    models: list[ModelComparison] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return bool(self.models) and all(m.within_tolerance for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        return {"original_run": self.original_run, "reproduced_run": self.reproduced_run,
                "tolerance": self.tolerance, "reproduced": self.reproduced,
                "models": [m.__dict__ for m in self.models]}


def _scores(model: TrainedModel) -> np.ndarray:
    transform_name = model.signature.get("transform")
    rows = model.probe
    if transform_name:
        transform = get_transform(transform_name)
        rows = [transform(r) for r in rows]
    return np.asarray(load_predictor(model.artifact, model.artifact_format).predict_proba(rows), dtype=float)


def reproduce(runner: PipelineRunner, run_id: str, pipeline: Pipeline, *, tolerance: float = 1e-6,
              progress: Progress | None = None) -> Reproduction:
    original = runner.runs.get(run_id)
    records = {r.step: r for r in runner.runs.steps(run_id)}
    model_steps = {s.name for s in pipeline.steps if ValueKind.MODEL in s.outputs.values()}
    target = pipeline.subset(model_steps)
    reuse = {s.name: records[s.name].outputs for s in target.steps
             if s.reuse_in_reproduction and s.name in records and records[s.name].outputs}
    result = runner.run(target, config=original.config, seed=original.seed or 0, source=original.source,
                        force=True, progress=progress, reproduces=run_id, reuse=reuse)
    comparisons = []
    for step in target.steps:
        for output, kind in step.outputs.items():
            if kind is not ValueKind.MODEL or step.name not in records or not records[step.name].outputs:
                continue
            before_entry = records[step.name].outputs[output]
            after_entry = result.entry(step.name, output)
            before: TrainedModel = load_value(runner.ws.artifacts, before_entry)
            after: TrainedModel = load_value(runner.ws.artifacts, after_entry)
            identical = before_entry["sha256"] == after_entry["sha256"]
            diff = 0.0 if identical else (float(np.max(np.abs(_scores(before) - _scores(after))))
                                         if before.probe else None)
            comparisons.append(ModelComparison(
                output=f"{step.name}.{output}", original_sha256=before_entry["sha256"],
                reproduced_sha256=after_entry["sha256"], identical_bytes=identical, max_abs_diff=diff,
                within_tolerance=identical or (diff is not None and diff <= tolerance)))
    return Reproduction(run_id, result.id, tolerance, comparisons)


__all__ = ["ModelComparison", "Reproduction", "reproduce"]
