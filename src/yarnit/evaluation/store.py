"""Evaluation reports stored beside the model's earlier versions, with lineage (book CH7-R2).

Each evaluation is a row in ``evaluations`` (migration 0006) that points at
the full report (canonical JSON in the artifact store, sha256-verified on
read) and at the artifact it evaluated. Every metric value is also a row of
``evaluation_metrics`` keyed by (subject, distribution, slice, metric), so
"AUC on the golden set for every version of ctr" is one query. Lineage edges
link the dataset versions evaluated on, the producing run and the model
version to the evaluation.

A pipeline evaluates a candidate before it is registered; its evaluations are
found later by artifact sha256 (same bytes, same model): see :meth:`for_version`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update

from yarnit.core.errors import InvalidInput
from yarnit.core.hashing import canonical_json, is_sha256
from yarnit.core.ids import new_id
from yarnit.registry import ModelVersion
from yarnit.storage import Workspace
from yarnit.storage.schema import evaluation_metrics, evaluations

from .errors import EvaluationNotFound
from .gates import Verdict
from .report import EvaluationReport, MetricValue

HEADLINE = ("auc", "pr_auc", "log_loss", "brier", "ece", "bias", "positive_rate", "mean_prediction")


@dataclass(frozen=True)
class StoredEvaluation:
    """The row of one stored evaluation (the report itself: :meth:`EvaluationStore.report`)."""

    id: str
    model_name: str
    model_version: int | None
    model_version_id: str | None
    artifact_sha256: str
    run_id: str | None
    created_at: datetime
    primary_distribution: str
    distributions: list[dict[str, Any]]
    dataset_version_ids: list[str]
    report_sha256: str
    summary: dict[str, Any]
    compared_with: dict[str, Any] | None
    validity_passed: bool | None
    blessed: bool | None
    verdict: dict[str, Any] | None
    gated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = self.created_at.isoformat()
        data["gated_at"] = None if self.gated_at is None else self.gated_at.isoformat()
        return data


def _row(r: Mapping[str, Any]) -> StoredEvaluation:
    return StoredEvaluation(
        id=r["id"], model_name=r["model_name"], model_version=r["model_version"],
        model_version_id=r["model_version_id"], artifact_sha256=r["artifact_sha256"], run_id=r["run_id"],
        created_at=r["created_at"], primary_distribution=r["primary_distribution"],
        distributions=list(r["distributions"] or []), dataset_version_ids=list(r["dataset_version_ids"] or []),
        report_sha256=r["report_sha256"], summary=dict(r["summary"] or {}), compared_with=r["compared_with"],
        validity_passed=r["validity_passed"], blessed=r["blessed"], verdict=r["verdict"], gated_at=r["gated_at"])


def _summary(report: EvaluationReport) -> dict[str, Any]:
    out: dict[str, Any] = {"distribution": report.distribution().description}
    for metric in HEADLINE:
        m = report.get(metric)
        if m is not None:
            out[metric] = m.value
            if m.ci is not None:
                out[f"{metric}_ci"] = list(m.ci)
    whole = report.get("positive_rate")
    if whole is not None:
        out["n"] = whole.n
    for subject in report.subjects():
        if subject != "candidate" and not subject.startswith("delta:"):
            value = report.value("auc", subject=subject)
            if value is not None:
                out[f"auc_{subject}"] = value
    return out


class EvaluationStore:
    """Store, find and read evaluation reports in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def add(self, report: EvaluationReport | Mapping[str, Any], *,
            model_version: ModelVersion | None = None) -> StoredEvaluation:
        """Store ``report`` (a report without a distribution is refused) and return its row."""
        if not isinstance(report, EvaluationReport):
            report = EvaluationReport.from_dict(report)
        sha = str(report.candidate.get("artifact_sha256", ""))
        if not is_sha256(sha):
            raise InvalidInput(f"The report's candidate must name the evaluated artifact by sha256 "
                               f"(candidate.artifact_sha256); got {sha!r}.")
        if model_version is not None and model_version.artifact_sha256 != sha:
            raise InvalidInput(f"The report evaluated artifact {sha[:12]}…, but {model_version.ref} is "
                               f"{model_version.artifact_sha256[:12]}…; store it without model_version or fix it.")
        body = report.to_dict()
        report_ref = self.ws.artifacts.put_bytes(canonical_json(body))
        now = self.ws.clock.now()
        evaluation_id = new_id("ev", self.ws.clock)
        version = model_version.version if model_version is not None else report.candidate.get("version")
        version_id = model_version.id if model_version is not None else report.candidate.get("version_id")
        validity = report.sections.get("validity")
        row = {
            "id": evaluation_id, "model_name": report.model, "model_version": version, "model_version_id": version_id,
            "artifact_sha256": sha, "run_id": report.run_id, "created_at": now,
            "primary_distribution": report.primary, "distributions": [d.to_dict() for d in report.distributions],
            "dataset_version_ids": list(report.dataset_version_ids), "report_sha256": report_ref.sha256,
            "summary": json.loads(canonical_json(_summary(report))),
            "compared_with": None if report.compared_with is None else dict(report.compared_with),
            "validity_passed": None if not validity else bool(validity.get("passed")),
            "blessed": None, "verdict": None, "gated_at": None,
        }
        metric_rows = [{"evaluation_id": evaluation_id, "subject": m.subject, "distribution": m.distribution,
                        "slice": m.slice, "metric": m.metric, "value": m.value, "ci_low": m.ci_low,
                        "ci_high": m.ci_high, "n": m.n, "positives": m.positives, "undefined": m.undefined}
                       for m in report.metrics]
        from yarnit.data import Lineage, Node  # the lineage graph belongs to the data domain

        lineage = Lineage(self.ws)
        target = Node("evaluation", evaluation_id)
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(evaluations).values(**row))
            if metric_rows:
                conn.execute(insert(evaluation_metrics), metric_rows)
            for dataset_id in report.dataset_version_ids:
                lineage.record(Node("dataset_version", dataset_id), target, "evaluated_on", conn=conn)
            if report.run_id:
                lineage.record(Node("run", report.run_id), target, "produced", conn=conn)
            if version_id:
                lineage.record(Node("model_version", version_id), target, "evaluated", conn=conn)
        return self.get(evaluation_id)

    def get(self, evaluation_id: str) -> StoredEvaluation:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(evaluations).where(evaluations.c.id == evaluation_id)).mappings().first()
        if row is None:
            raise EvaluationNotFound(evaluation_id)
        return _row(row)

    def report(self, evaluation_id: str) -> EvaluationReport:
        """The full report, read from sha256-verified bytes."""
        stored = self.get(evaluation_id)
        return EvaluationReport.from_dict(json.loads(self.ws.artifacts.get_bytes(stored.report_sha256)))

    def list(self, model_name: str | None = None, *, version: int | None = None,
             artifact_sha256: str | None = None, limit: int = 50) -> list[StoredEvaluation]:
        """Evaluations, newest first, optionally of one model, version or artifact."""
        query = select(evaluations)
        if model_name is not None:
            query = query.where(evaluations.c.model_name == model_name)
        if version is not None:
            query = query.where(evaluations.c.model_version == version)
        if artifact_sha256 is not None:
            query = query.where(evaluations.c.artifact_sha256 == artifact_sha256)
        query = query.order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc()).limit(max(1, int(limit)))
        with self.ws.metadata.begin() as conn:
            return [_row(r) for r in conn.execute(query).mappings().all()]

    def for_version(self, version: ModelVersion, *, limit: int = 50) -> list[StoredEvaluation]:
        """Evaluations of this version's bytes: as a registered version, or as the candidate it was."""
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(evaluations).where(and_(
                evaluations.c.model_name == version.model_name,
                evaluations.c.artifact_sha256 == version.artifact_sha256))
                .order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc()).limit(limit)).mappings().all()
        return [_row(r) for r in rows]

    def metrics(self, evaluation_id: str, *, metric: str | None = None, distribution: str | None = None,
                subject: str | None = None) -> list[MetricValue]:
        self.get(evaluation_id)
        query = select(evaluation_metrics).where(evaluation_metrics.c.evaluation_id == evaluation_id)
        if metric is not None:
            query = query.where(evaluation_metrics.c.metric == metric)
        if distribution is not None:
            query = query.where(evaluation_metrics.c.distribution == distribution)
        if subject is not None:
            query = query.where(evaluation_metrics.c.subject == subject)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query.order_by(evaluation_metrics.c.id)).mappings().all()
        return [MetricValue(metric=r["metric"], distribution=r["distribution"], value=r["value"], subject=r["subject"],
                            slice=r["slice"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=r["n"],
                            positives=r["positives"], undefined=r["undefined"]) for r in rows]

    def history(self, model_name: str, *, metric: str = "auc", distribution: str | None = None,
                subject: str = "candidate", limit: int = 100) -> list[dict[str, Any]]:
        """One metric across a model's evaluations, oldest first (whole distribution only; by default each
        evaluation's primary distribution)."""
        query = (select(evaluations.c.id, evaluations.c.created_at, evaluations.c.model_version,
                        evaluations.c.artifact_sha256, evaluations.c.blessed, evaluation_metrics.c.distribution,
                        evaluation_metrics.c.value, evaluation_metrics.c.ci_low, evaluation_metrics.c.ci_high)
                 .select_from(evaluations.join(evaluation_metrics,
                                               evaluation_metrics.c.evaluation_id == evaluations.c.id))
                 .where(and_(evaluations.c.model_name == model_name, evaluation_metrics.c.metric == metric,
                             evaluation_metrics.c.subject == subject, evaluation_metrics.c.slice == "")))
        if distribution is not None:
            query = query.where(evaluation_metrics.c.distribution == distribution)
        else:
            query = query.where(evaluation_metrics.c.distribution == evaluations.c.primary_distribution)
        query = query.order_by(evaluations.c.created_at.desc(), evaluations.c.id.desc()).limit(limit)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [dict(r) | {"created_at": r["created_at"].isoformat()} for r in reversed(rows)]

    def record_verdict(self, evaluation_id: str, verdict: Verdict | Mapping[str, Any]) -> StoredEvaluation:
        """Attach a gate verdict (the latest one wins; each gate run is also in the pipeline's records)."""
        data = verdict.to_dict() if isinstance(verdict, Verdict) else dict(verdict)
        if "blessed" not in data or "reasons" not in data:
            raise InvalidInput("A verdict needs 'blessed' and 'reasons'.")
        self.get(evaluation_id)
        with self.ws.metadata.begin() as conn:
            conn.execute(update(evaluations).where(evaluations.c.id == evaluation_id).values(
                blessed=bool(data["blessed"]), verdict=json.loads(canonical_json(data)), gated_at=self.ws.clock.now()))
        return self.get(evaluation_id)


def metric_rows(values: Sequence[MetricValue]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in values]


__all__ = ["HEADLINE", "EvaluationStore", "StoredEvaluation", "metric_rows"]
