"""The ctr pipeline's gate (yarnit.evaluation) blocks deliberately worse models, giving every reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.evaluation import EvaluationStore, MissingDistribution
from yarnit.recipes import ctr_pipeline
from yarnit.recipes.ctr import gate
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner, RunResult, StepContext

SMALL: dict[str, Any] = {"days": 3, "sessions_per_day": 400, "bootstrap_resamples": 300}


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, RunResult]]:
    """A workspace whose production model (v1) was trained on clean data."""
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ctr-gate") / "home"),
                        SimulatedClock(utc(2026, 1, 5, 9)))
    result = PipelineRunner(ws).run(ctr_pipeline(), config=SMALL)
    assert result.value("gate", "verdict")["blessed"] is True
    yield ws, result
    ws.close()


def _candidate(ws: Workspace, **config: Any) -> RunResult:
    return PipelineRunner(ws).run(ctr_pipeline(), config=SMALL | {"promote": False} | config)


def test_a_model_trained_on_biased_data_loss_is_blocked_with_its_reasons(
        production: tuple[Workspace, RunResult]) -> None:
    ws, _ = production
    # Spain's events vanish for the two training days (book ch. 7: biased data loss); the holdout day is intact.
    # Validation would stop this run (slice volume); relaxing it shows the gate is a second line of defence.
    result = _candidate(ws, faults=["biased_loss@0:48,country=ES,events=all"], validation={"slice_max_drop": 1.0})
    verdict = result.value("gate", "verdict")
    assert verdict["blessed"] is False
    coverage = [r for r in verdict["reasons"] if r.startswith("Gate 'slice_coverage' failed")]
    assert any("slice country=ES is 9.5% of time-ordered holdout: 2026-01-07 to 2026-01-07" in r
               and "but 0.0% of the training data (0 rows; ratio 0.00 < 0.5)" in r
               and "biased data loss, book ch. 7" in r for r in coverage), verdict["reasons"]
    registered = result.value("register", "model_version")
    registry = ModelRegistry(ws)
    assert registry.aliases("ctr")["production"] == 1
    version = registry.get("ctr", registered["version"])
    assert version.metrics["blessed"] is False and version.metrics["gate_reasons"] == verdict["reasons"]
    stored = EvaluationStore(ws).get(verdict["evaluation_id"])
    assert stored.blessed is False and stored.verdict["reasons"] == verdict["reasons"]


def test_a_collapsed_worse_model_fails_validity_and_quality(production: tuple[Workspace, RunResult]) -> None:
    ws, _ = production
    result = _candidate(ws, trainer_params={"c": 1e-6})
    verdict = result.value("gate", "verdict")
    reasons = "\n".join(verdict["reasons"])
    assert verdict["blessed"] is False
    assert "Validity check 'not_collapsed' failed: predictions of ctr candidate" in reasons
    assert "collapsed (below 0.001)" in reasons
    assert "Gate 'auc_vs_production' failed" in reasons and "< production v1 " in reasons
    assert "does not beat the popularity baseline" in reasons
    assert "Gate 'golden_auc_vs_production' failed" in reasons
    report = result.value("evaluate", "report")
    assert report["validity_passed"] is False and report["production_version"] == 1
    assert report["auc_production"] > report["auc"]


def test_a_retrain_on_more_days_of_the_same_world_is_blessed(production: tuple[Workspace, RunResult]) -> None:
    ws, _ = production
    result = _candidate(ws, days=5, holdout_days=2)
    verdict = result.value("gate", "verdict")
    assert verdict["blessed"] is True, verdict["reasons"]
    compared = [c for c in verdict["checks"] if c["gate"] == "auc_per_slice_vs_production"]
    assert compared and {c["status"] for c in compared} <= {"pass", "skip"}
    names = [d["name"] for d in result.value("evaluate", "report")["evaluation"]["distributions"]]
    assert names[:3] == ["holdout", "day:2026-01-08", "day:2026-01-09"]  # progressive validation, day by day


def test_the_evaluation_is_stored_with_its_distributions_and_lineage(production: tuple[Workspace, RunResult]) -> None:
    ws, result = production
    report = result.value("evaluate", "report")
    evaluation = report["evaluation"]
    names = [d["name"] for d in evaluation["distributions"]]
    assert names == ["holdout", "cold_start", "new_products", "golden"]
    assert report["distribution"] == evaluation["distributions"][0]["description"]
    stored = EvaluationStore(ws).get(report["evaluation_id"])
    assert stored.run_id == result.id and stored.dataset_version_ids == [result.value("select", "dataset")["id"]]
    metrics = EvaluationStore(ws).metrics(stored.id, metric="auc", distribution="holdout", subject="candidate")
    assert metrics[0].slice == "" and metrics[0].ci is not None and len(metrics) > 10


def test_the_gate_refuses_a_report_that_names_no_distribution(production: tuple[Workspace, RunResult]) -> None:
    ws, result = production
    ctx = StepContext(workspace=ws, run_id=result.id, pipeline="yarnit-ctr", step="gate",
                      config=dict(ctr_pipeline().config), seed=0)
    with pytest.raises(MissingDistribution, match="names no distribution"):
        gate(ctx, {"auc": 0.9, "distribution": ""})
