"""The click model's pipeline on world data: trains, gates, registers; refuses bad labels."""

from __future__ import annotations

import pytest

from yarnit.recipes import ctr_pipeline
from yarnit.registry import ModelRegistry
from yarnit.serving.inputs import Contract, conform
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner, RunStore, StepFailed
from yarnit.training.reproduce import reproduce

SMALL = {"days": 3, "sessions_per_day": 400}


def test_the_pipeline_trains_a_blessed_model_better_than_popularity(sqlite_ws: Workspace) -> None:
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline(), config=SMALL)
    report = result.value("evaluate", "report")
    assert report["distribution"].startswith("time-ordered holdout: 2026-01-07")
    assert report["auc"] > report["auc_popularity"] > 0.5
    assert report["auc"] <= report["auc_oracle"] + 0.02
    verdict = result.value("gate", "verdict")
    assert verdict["blessed"] is True and verdict["reasons"] == []
    registered = result.value("register", "model_version")
    registry = ModelRegistry(sqlite_ws)
    version = registry.get("ctr", registered["version"])
    assert registry.aliases("ctr") == {"production": version.version}
    assert version.run_id == result.id and version.signature["transform"] == "ctr_features_v1"
    assert version.dataset_version_ids == (result.value("select", "dataset")["id"],)
    assert version.params["trainer"] == "logistic" and len(version.signature["probe"]) == 64
    # the input contract chosen from the training rows: every probe (holdout) request meets it
    policy = version.signature["input_policy"]
    assert policy["position"]["fixed"] == 1 and policy["price_usd"]["missing"] == "reject"
    assert policy["price_usd"]["min"] == 0.0 and policy["hour"]["min"] == 0.0
    rows = conform(Contract.of(version.signature), version.signature["probe"])
    assert {r["position"] for r in rows} == {1}
    # a second run is served from the cache and does not register a duplicate
    again = PipelineRunner(sqlite_ws).run(ctr_pipeline(), config=SMALL)
    assert {s.step: s.state for s in again.steps}["train"] == "cached"
    assert [v.version for v in registry.versions("ctr")] == [1]


def test_reproducing_a_run_gives_identical_bytes(sqlite_ws: Workspace) -> None:
    runner = PipelineRunner(sqlite_ws)
    original = runner.run(ctr_pipeline(), config=SMALL)
    report = reproduce(runner, original.id, ctr_pipeline())
    assert report.reproduced and [m.identical_bytes for m in report.models] == [True]
    assert RunStore(sqlite_ws).get(report.reproduced_run).reproduces == original.id


def test_a_click_log_outage_is_caught_by_label_sanity_before_training(sqlite_ws: Workspace) -> None:
    config = SMALL | {"faults": ["click_log_outage@2"]}
    with pytest.raises(StepFailed, match=r"Step 'validate'.*positive rate 0\.0000 on 2026-01-07 is outside the "
                                         r"expected band"):
        PipelineRunner(sqlite_ws).run(ctr_pipeline(), config=config)
    assert not ModelRegistry(sqlite_ws).exists("ctr")


def test_a_worse_candidate_is_not_promoted(sqlite_ws: Workspace) -> None:
    runner = PipelineRunner(sqlite_ws)
    runner.run(ctr_pipeline(), config=SMALL)
    weak = runner.run(ctr_pipeline(), config=SMALL | {"trainer_params": {"c": 1e-6},
                                                      "max_regression_vs_production": 0.0})
    verdict = weak.value("gate", "verdict")
    assert verdict["blessed"] is False and any("production v1" in r for r in verdict["reasons"])
    assert ModelRegistry(sqlite_ws).aliases("ctr") == {"production": 1}
    assert ModelRegistry(sqlite_ws).get("ctr", 2).metrics["blessed"] is False
