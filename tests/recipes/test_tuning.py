"""The ctr recipe's tune step: a grid over the regularisation judged on the last training day, never the holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yarnit.recipes import ctr_pipeline
from yarnit.recipes.tuning import grid_search, summary
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner

SMALL = {"days": 3, "sessions_per_day": 200, "holdout_days": 1, "bootstrap_resamples": 0, "golden_rows": 100,
         "slices": ["device"], "fairness_groups": []}


def _noisy(seed: int, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One real signal and forty noise columns: little data, so weak regularisation overfits the noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"noise_{i}": rng.choice(list("abcdefgh"), rows) for i in range(40)})
    frame["signal"] = rng.choice(["hi", "lo"], rows)
    y = (rng.random(rows) < np.where(frame["signal"] == "hi", 0.3, 0.1)).astype(int)
    return frame, y


def test_the_grid_search_picks_the_lowest_validation_loss_and_judges_the_configured_value() -> None:
    x, y = _noisy(0, 1200)
    vx, vy = _noisy(1, 3000)
    weak = grid_search("logistic", {"c": 100.0}, {"c": [0.01, 0.1, 1.0]}, x, y, vx, vy, seed=0)
    losses = {p["trainer_params"]["c"]: p["log_loss"] for p in weak["points"]}
    assert sorted(losses) == [0.01, 0.1, 1.0, 100.0]  # the configured value is always one of the points
    assert weak["best"]["log_loss"] == min(losses.values())
    assert weak["configured"]["trainer_params"] == {"c": 100.0} and weak["configured"]["params"]["C"] == 100.0
    assert weak["gap"] == pytest.approx(losses[100.0] - weak["best"]["log_loss"])
    assert weak["gap"] > 2 * weak["gap_se"] and weak["gap"] > weak["tolerance"] and not weak["tuned"]
    assert summary(weak).startswith("NOT tuned: logistic c in [0.01, 0.1, 1.0, 100.0]")
    best = weak["best"]["trainer_params"]
    again = grid_search("logistic", best, {"c": [0.01, 0.1, 1.0]}, x, y, vx, vy, seed=0)
    assert again["tuned"] and again["gap"] == 0.0 and again["configured"]["trainer_params"] == best


def test_no_grid_or_too_little_data_is_never_called_tuned() -> None:
    x, y = _noisy(0, 50)
    no_grid = grid_search("hist_gbm", {}, {}, x, y, x, y, seed=0)
    assert not no_grid["tuned"] and no_grid["reason"] == "no_grid"
    none = grid_search("logistic", {}, {"c": [0.1]}, x, y, x.iloc[:0], y[:0], seed=0)
    assert not none["tuned"] and none["points"] == [] and none["reason"] == "little_data"
    assert "too little data" in none["note"]
    with pytest.raises(Exception, match="does not take"):
        grid_search("logistic", {}, {"depth": [1]}, x, y, x, y, seed=0)


def test_the_tune_step_fits_earlier_training_days_and_scores_the_last_one_never_the_holdout(
        sqlite_ws: Workspace) -> None:
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"tune"}), config=SMALL)
    split = result.value("split", "split")
    report = result.value("tune", "report")
    assert report["validation_days"] == split["train_days"][-1:]
    assert split["holdout_from"] not in report["validation_days"]
    from yarnit.recipes.ctr import _read

    class Ctx:
        workspace = sqlite_ws

    days = _read(Ctx, result.value("select", "dataset"), ["day"])["day"].astype(str).value_counts()
    assert report["fit_rows"] == days[split["train_days"][0]]
    assert report["validation_rows"] == days[split["train_days"][-1]]
    assert [p["trainer_params"]["c"] for p in report["points"]] == [0.01, 0.1, 1.0]
    step = next(s for s in result.steps if s.step == "tune")
    assert step.logs[-1] == summary(report)
    assert result.run.metrics["tune.tuned"] is report["tuned"]


def test_an_in_memory_fit_scores_exactly_as_the_artifact_fit_would_build() -> None:
    """Tuning scores its grid points without saving and loading each model: that must change no score."""
    import numpy as np
    import pandas as pd

    from yarnit.registry import load_predictor
    from yarnit.training.trainers import make_trainer

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.choice(["u", "v", "w"], 3000), "b": rng.normal(size=3000)})
    y = (rng.random(3000) < np.where(x["a"] == "u", 0.3, 0.1)).astype(int)
    trainer = make_trainer("logistic", c=0.1)
    model = trainer.fit(x, y, seed=0)
    predictor, params = trainer.fit_in_memory(x, y, seed=0)
    saved = load_predictor(model.artifact, model.artifact_format)
    rows = x.to_dict(orient="records")
    assert np.array_equal(np.asarray(predictor.predict_proba(rows)), np.asarray(saved.predict_proba(rows)))
    assert params == model.params
