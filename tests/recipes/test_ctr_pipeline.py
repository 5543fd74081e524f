"""The click model's pipeline on world data: trains, gates, registers; validation stops faulty data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from yarnit.recipes import ctr_pipeline
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.recipes.ctr import REQUIRED
from yarnit.recipes.impressions_schema import impressions_schema
from yarnit.registry import ModelRegistry
from yarnit.serving.inputs import Contract, conform
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner, RunResult, RunStore, StepFailed
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


# --- validate: the curated schema and the previous training data (issue 16 item 7) ---------------------------
BIASED_LOSS = "biased_loss@1,country=DE,events=all"  # Germany's events vanish on 2026-01-06 (a training day)
PRICE_CENTS = "upstream_change@2,change=price_cents"  # prices switch to cents on 2026-01-07 (the holdout day)
NAMED = {
    BIASED_LOSS: r"slice_volume_change in 'country' on 2026-01-06: rows with country=DE fell from \d+ to 0 \(-100\.0%\)",
    PRICE_CENTS: r"out_of_range in 'price_usd' on 2026-01-07: \d+ values are outside \[0\.99, 500\]",
}


def _validate_only(ws: Workspace, **config: object) -> RunResult:
    return PipelineRunner(ws).run(ctr_pipeline().subset({"validate"}), config=SMALL | config)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace whose previous training data is a clean world (seed 5): a full run that succeeded."""
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ctr-validate") / "home"),
                        SimulatedClock(utc(2026, 1, 5, 9)))
    PipelineRunner(ws).run(ctr_pipeline(), config=SMALL | {"world_seed": 5, "promote": False})
    yield ws
    ws.close()


@pytest.mark.parametrize("fault", [BIASED_LOSS, PRICE_CENTS])
def test_faulty_data_stops_the_run_at_validate_with_the_anomaly_named(sqlite_ws: Workspace, fault: str) -> None:
    with pytest.raises(StepFailed, match=r"Step 'validate'.*BlockingAnomalies: .*" + NAMED[fault]):
        PipelineRunner(sqlite_ws).run(ctr_pipeline(), config=SMALL | {"faults": [fault]})
    run = RunStore(sqlite_ws).list()[0]
    assert run.state == "failed"
    assert {s.step: s.state for s in RunStore(sqlite_ws).steps(run.id)} == {
        "select": "succeeded", "reference": "succeeded", "validate": "failed"}
    assert not ModelRegistry(sqlite_ws).exists("ctr")


@pytest.mark.parametrize("fault", [BIASED_LOSS, PRICE_CENTS])
def test_faulty_data_is_compared_with_the_previous_training_data(trained: Workspace, fault: str) -> None:
    with pytest.raises(StepFailed, match=r"an average day of the previous training data yarnit-impressions:v1 "
                                         r"found \d+ blocking anomalies: .*" + NAMED[fault]):
        _validate_only(trained, faults=[fault])
    if fault == PRICE_CENTS:  # against real training data the shift is named as well as the range
        with pytest.raises(StepFailed, match=r"distribution_change in 'price_usd' on 2026-01-07: distribution "
                                             r"moved by normalized Wasserstein \d+"):
            _validate_only(trained, faults=[fault])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_clean_world_passes_validate_with_or_without_previous_training_data(
        tmp_path: Path, trained: Workspace, seed: int) -> None:
    fresh = open_workspace(Settings.for_home(tmp_path / "fresh"), SimulatedClock(utc(2026, 1, 5, 9)))
    try:
        for ws in (fresh, trained):
            report = _validate_only(ws, world_seed=seed).value("validate", "report")
            assert report["blocking"] == 0, report["anomalies"]
            assert report["rows"] > 10_000
    finally:
        fresh.close()


def test_the_curated_schema_declares_every_column_the_pipeline_reads() -> None:
    schema = impressions_schema()
    assert set(REQUIRED) <= set(schema.columns)
    assert schema.columns["price_usd"].max == 500 and "country" in schema.slices


def test_validate_is_cached_for_the_same_data_and_reference(sqlite_ws: Workspace, trained: Workspace) -> None:
    for ws, seed, expected in ((sqlite_ws, 0, None), (trained, 7, "yarnit-impressions:v1")):
        first, again = _validate_only(ws, world_seed=seed), _validate_only(ws, world_seed=seed)
        assert [{s.step: s.state for s in r.steps}["validate"] for r in (first, again)] == ["succeeded", "cached"]
        assert {s.step: s.state for s in again.steps}["reference"] == "succeeded"  # never cached: it keys validate
        assert again.value("reference", "previous").get("ref") == expected  # validate-only runs never train
