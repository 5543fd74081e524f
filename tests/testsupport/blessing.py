"""Record a gate verdict for a registered version, as ``yarnit eval run`` + ``yarnit eval gate`` would."""

from __future__ import annotations

from yarnit.evaluation import EvaluationReport, EvaluationStore, Verdict, time_ordered_holdout
from yarnit.evaluation.gates import GateResult
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace


def record_verdict(ws: Workspace, model: str, version: int, *, blessed: bool = True, validity: bool = True) -> str:
    """Store an evaluation of the version's exact bytes and its verdict; returns the evaluation id."""
    mv = ModelRegistry(ws).get(model, version)
    report = EvaluationReport(
        model=model, candidate={"artifact_sha256": mv.artifact_sha256, "version": version},
        distributions=(time_ordered_holdout("2026-01-01", "2026-01-01", rows=100),),
        sections={"validity": {"passed": validity, "checks": [], "reasons": []}})
    store = EvaluationStore(ws)
    stored = store.add(report, model_version=mv)
    status = "pass" if blessed else "fail"
    verdict = Verdict((GateResult("min_auc", "absolute", status, f"Gate 'min_auc' {status}ed for {model} "
                                  f"v{version}: auc 0.5500 < minimum 0.6." if not blessed else "auc within bounds"),))
    store.record_verdict(stored.id, verdict)
    return stored.id
