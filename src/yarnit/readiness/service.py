"""Assess one model: the 28 findings, the section sums and the final score (the minimum)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yarnit.registry import ModelNotFound, ModelRegistry
from yarnit.storage import Workspace

from .ci import ci_findings, tests_root
from .probes import run_probe
from .records import Records
from .rubric import TESTS, Score

Mode = Literal["workspace", "ci"]


@dataclass(frozen=True)
class Assessment:
    model: str
    mode: Mode
    at: str
    score: Score

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "mode": self.mode, "at": self.at, **self.score.to_dict()}


def assess(ws: Workspace, model: str, *, ci: bool = False, tests: Path | None = None) -> Assessment:
    """Score ``model`` from the workspace's records, or (``ci``) from the tests CI runs.

    Either way the model must be registered in the workspace (:class:`ModelNotFound` otherwise, a 404).
    """
    if not ModelRegistry(ws).exists(model):
        raise ModelNotFound(model)
    if ci:
        findings = ci_findings(model, tests_root(tests))
    else:
        records = Records(ws, model)
        findings = {t.id: run_probe(t.id, records) for t in TESTS}
    return Assessment(model, "ci" if ci else "workspace", ws.clock.now().isoformat(), Score.of(findings))


__all__ = ["Assessment", "Mode", "assess"]
