"""A pipeline never rolls production back to a worse model, and every run says what it did to the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.recipes import ctr_pipeline
from yarnit.recipes.common import HoldoutComparison, not_promotable
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace
from yarnit.training import PipelineRunner, RunStore

SMALL: dict[str, Any] = {"days": 3, "sessions_per_day": 400, "bootstrap_resamples": 300}
NEWER = SMALL | {"trainer_params": {"c": 0.05}}  # stronger regularisation: the better model on this world
OLDER = SMALL  # the default C=1.0: within the gate's allowed regression of NEWER, but worse


def test_rerunning_an_older_config_does_not_roll_production_back(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "home"), SimulatedClock(utc(2026, 1, 5, 9)))
    runner = PipelineRunner(ws)
    first = runner.run(ctr_pipeline(), config=NEWER).value("register", "model_version")
    assert (first["version"], first["promoted"], first["alias_moved"]) == (1, True, "production → v1")

    result = runner.run(ctr_pipeline(), config=OLDER)
    report, verdict = result.value("evaluate", "report"), result.value("gate", "verdict")
    assert verdict["blessed"] is True  # the change gate allows up to 0.01 of AUC: blessing is not promotion
    assert report["production_version"] == 1 and report["auc"] < report["auc_production"]
    second = result.value("register", "model_version")
    assert (second["version"], second["registered"], second["blessed"], second["promoted"]) == (2, True, True, False)
    assert second["alias_moved"] is None and second["production"] == 1
    assert second["decision"].startswith(f"not promoted: auc {report['auc']:.4f} < production v1 "
                                         f"{report['auc_production']:.4f} on time-ordered holdout")
    assert "yarnit models promote ctr 2 --force --reason" in second["decision"]

    registry = ModelRegistry(ws)
    assert registry.aliases("ctr") == {"production": 1}
    assert [(e.from_version, e.to_version) for e in registry.history("ctr")] == [(None, 1)]
    metrics = RunStore(ws).get(result.id).metrics
    assert metrics["summary"] == second["summary"] and metrics["promoted"] is False and metrics["alias_moved"] is None
    assert second["summary"].startswith("ctr v2 registered by this run · blessed · not promoted: auc ")
    ws.close()


def test_production_moved_since_the_evaluation_blocks_promotion() -> None:
    evaluated_against_v1 = HoldoutComparison("auc", 0.80, 0.70, production_version=1)
    assert not_promotable(evaluated_against_v1, 1) is None
    assert not_promotable(evaluated_against_v1, 3) == (
        "its evaluation compared it with production v1, but production is v3 now; rerun the pipeline to compare "
        "them on the same holdout")
    never_compared = HoldoutComparison("auc", 0.80, None, production_version=None)
    assert not_promotable(never_compared, None) is None  # the first production version
    assert "compared it with no production version, but production is v2" in str(not_promotable(never_compared, 2))
    assert not_promotable(HoldoutComparison("auc", 0.70, 0.70, production_version=2), 2) is None  # a tie is not worse
    assert not_promotable(None, 2) is None  # recipes that do not compare with production (recommenders, ranker)
