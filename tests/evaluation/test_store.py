"""Evaluation reports are stored with lineage beside the model's versions (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.core import SimulatedClock
from yarnit.core.errors import InvalidInput
from yarnit.data import Lineage, Node
from yarnit.evaluation import (
    EvaluationNotFound,
    EvaluationReport,
    EvaluationStore,
    MetricValue,
    MissingDistribution,
    Verdict,
    time_ordered_holdout,
)
from yarnit.evaluation.gates import GateResult
from yarnit.registry import ArtifactFormat, ModelRegistry, ModelVersion, dump_sklearn
from yarnit.storage import Workspace


def _version(ws: Workspace) -> ModelVersion:
    rows = [{"x": float(i % 7), "c": "ab"[i % 2]} for i in range(40)]
    model = Pipeline([("v", DictVectorizer()), ("m", LogisticRegression())]).fit(rows, [i % 2 for i in range(40)])
    return ModelRegistry(ws).register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS,
                                      dataset_version_ids=["ds_train"])


def _report(version: ModelVersion, auc: float, run_id: str | None = "run_x") -> EvaluationReport:
    holdout = time_ordered_holdout("2026-01-07", "2026-01-07", rows=100, dataset_version_ids=["ds_eval"])
    return EvaluationReport(
        "ctr", {"artifact_sha256": version.artifact_sha256}, (holdout,),
        (MetricValue("auc", "holdout", auc, ci_low=auc - 0.02, ci_high=auc + 0.02, n=100, positives=9),
         MetricValue("auc", "holdout", auc - 0.1, slice="country=ES", n=30, positives=3),
         MetricValue("auc", "holdout", 0.70, subject="production", n=100),
         MetricValue("positive_rate", "holdout", 0.09, n=100, positives=9)),
        sections={"validity": {"passed": True, "checks": []}}, dataset_version_ids=("ds_eval",), run_id=run_id)


def test_a_report_is_stored_read_back_verified_and_queried(ws: Workspace, clock: SimulatedClock) -> None:
    version = _version(ws)
    store = EvaluationStore(ws)
    first = store.add(_report(version, 0.74))
    clock.advance(60)
    second = store.add(_report(version, 0.76), model_version=version)
    assert store.get(first.id).summary["auc"] == 0.74 and first.summary["auc_ci"] == [0.72, 0.76]
    assert first.summary["auc_production"] == 0.70 and first.validity_passed is True and first.blessed is None
    assert second.model_version == version.version and second.model_version_id == version.id
    assert store.report(first.id) == _report(version, 0.74)
    assert [e.id for e in store.list("ctr")] == [second.id, first.id]
    assert [e.id for e in store.for_version(version)] == [second.id, first.id]  # the candidate's bytes count too
    assert [m.slice for m in store.metrics(first.id, metric="auc", subject="candidate")] == ["", "country=ES"]
    assert [h["value"] for h in store.history("ctr")] == [0.74, 0.76]


def test_lineage_links_datasets_run_and_version_to_the_evaluation(ws: Workspace) -> None:
    version = _version(ws)
    stored = EvaluationStore(ws).add(_report(version, 0.74), model_version=version)
    lineage = Lineage(ws)
    target = Node("evaluation", stored.id)
    assert target in lineage.downstream(Node("dataset_version", "ds_eval")).nodes
    assert target in lineage.downstream(Node("run", "run_x")).nodes
    upstream = {(n.kind, n.id) for n in lineage.upstream(target).nodes}
    assert ("model_version", version.id) in upstream


def test_the_verdict_is_recorded_with_the_evaluation(ws: Workspace) -> None:
    version = _version(ws)
    store = EvaluationStore(ws)
    stored = store.add(_report(version, 0.74))
    verdict = Verdict((GateResult("min_auc", "absolute", "fail", "Gate 'min_auc' failed: auc 0.74 < 0.8."),))
    after = store.record_verdict(stored.id, verdict)
    assert after.blessed is False and after.verdict["reasons"] == ["Gate 'min_auc' failed: auc 0.74 < 0.8."]
    assert after.gated_at is not None


def test_reports_without_a_distribution_or_artifact_are_refused(ws: Workspace) -> None:
    store = EvaluationStore(ws)
    with pytest.raises(MissingDistribution, match="names no distribution"):
        store.add({"model": "ctr", "candidate": {"artifact_sha256": "a" * 64}, "metrics": []})
    version = _version(ws)
    bad = _report(version, 0.7)
    with pytest.raises(InvalidInput, match="must name the evaluated artifact by sha256"):
        store.add(EvaluationReport(bad.model, {}, bad.distributions, bad.metrics))
    other = EvaluationReport(bad.model, {"artifact_sha256": "b" * 64}, bad.distributions, bad.metrics)
    with pytest.raises(InvalidInput, match="but ctr:v1 is"):
        store.add(other, model_version=version)
    with pytest.raises(EvaluationNotFound, match="No evaluation has id 'ev_nope'.*yarnit eval show"):
        store.get("ev_nope")
