"""Pipeline parameters are declared with types: unknown keys and bad values are refused before any step runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.recipes import BUILTIN_PIPELINES, ctr_pipeline
from yarnit.storage import Workspace, open_workspace
from yarnit.training import InvalidParameter, Param, Pipeline, PipelineRunner, RunStore, Step, ValueKind
from yarnit.training.params import check_config

cli = CliRunner()


def test_an_unknown_key_is_refused_with_the_known_keys_before_a_run_is_recorded(sqlite_ws: Workspace) -> None:
    with pytest.raises(InvalidParameter, match=r"'yarnit-ctr' has no parameter 'nosuchkey'\. Known parameters: "
                                               r"bootstrap_resamples, .*\bdays\b.*world_seed"):
        PipelineRunner(sqlite_ws).run(ctr_pipeline(), config={"nosuchkey": 1})
    assert RunStore(sqlite_ws).list() == []


def test_a_typo_names_the_closest_parameter(sqlite_ws: Workspace) -> None:
    with pytest.raises(InvalidParameter, match=r"no parameter 'train\.trainr'\. Did you mean 'trainer'\?"):
        PipelineRunner(sqlite_ws).run(ctr_pipeline(), config={"train.trainr": "lightgbm"})


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("days", "abc", r"'days' of pipeline 'yarnit-ctr' must be an integer in \[1, 3660\]; got 'abc' \(str"),
    ("days", 0, r"'days' .* must be an integer in \[1, 3660\]; got 0 \(int"),
    ("days", True, r"'days' .* must be an integer .*; got True \(bool"),
    ("faults", "biased_loss@1", r"'faults' .* must be a list of texts; got 'biased_loss@1' \(str"),
    ("train.trainer", "xgboost", r"'train\.trainer' .* must be one of 'logistic', 'hist_gbm', 'lightgbm'; "
                                 r"got 'xgboost'"),
    ("positive_rate_band", [0.1], r"'positive_rate_band' .* must be a list of numbers; got \[0\.1\]"),
])
def test_a_bad_value_is_refused_with_the_key_the_value_and_the_expected_type(
        sqlite_ws: Workspace, key: str, value: Any, expected: str) -> None:
    with pytest.raises(InvalidParameter, match=expected):
        PipelineRunner(sqlite_ws).run(ctr_pipeline(), config={key: value})
    assert RunStore(sqlite_ws).list() == []


def test_valid_values_pass_and_ints_fill_float_parameters() -> None:
    checked = check_config(ctr_pipeline(), {"min_auc": 1, "dataset_version": None, "train.trainer": "lightgbm",
                                            "faults": ["biased_loss@1,country=DE,events=all"]})
    assert checked["min_auc"] == 1.0 and isinstance(checked["min_auc"], float)
    assert checked["train.trainer"] == "lightgbm"


def test_every_builtin_pipeline_declares_every_default_and_accepts_it() -> None:
    for name, build in BUILTIN_PIPELINES.items():
        pipeline = build()
        assert {p.name for p in pipeline.params or ()} == set(pipeline.config), name
        assert check_config(pipeline, dict(pipeline.config)) == dict(pipeline.config)


def test_a_pipeline_without_declarations_infers_types_from_its_defaults() -> None:
    pipeline = Pipeline("numbers", [Step("load", lambda ctx: {"t": {}}, outputs={"t": ValueKind.REF},
                                         config={"rows": 3})], config={"n": 10, "label": "x"})
    assert check_config(pipeline, {"n": 5, "load.rows": 4}) == {"n": 5, "load.rows": 4}
    with pytest.raises(InvalidParameter, match=r"'n' of pipeline 'numbers' must be an integer; got '5' \(str"):
        check_config(pipeline, {"n": "5"})
    with pytest.raises(InvalidParameter, match="has no parameter 'm'"):
        check_config(pipeline, {"m": 1})


def test_a_declared_parameter_without_a_default_is_a_definition_error() -> None:
    pipeline = Pipeline("numbers", [Step("load", lambda ctx: {"t": {}}, outputs={"t": ValueKind.REF})],
                        config={}, params=[Param("n", int)])
    with pytest.raises(Exception, match=r"declares parameters \['n'\] without a default"):
        pipeline.order()


@pytest.mark.parametrize(("setting", "expected"), [
    ("nosuchkey=1", "has no parameter 'nosuchkey'. Known parameters:"),
    ("days=abc", "Parameter 'days' of pipeline 'yarnit-ctr' must be an integer in [1, 3660]; got 'abc'"),
])
def test_the_cli_refuses_bad_settings_before_any_step(tmp_path: Path, setting: str, expected: str) -> None:
    home = tmp_path / "ws"
    result = cli.invoke(app, ["pipeline", "run", "yarnit-ctr", "--set", setting, "--json"],
                        env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 1
    assert expected in result.stderr and "Traceback" not in result.stderr and "ValueError" not in result.stderr
    ws = open_workspace(Settings.for_home(home))
    try:
        assert RunStore(ws).list() == []
    finally:
        ws.close()
    listed = cli.invoke(app, ["runs", "list", "--json"], env={"YARNIT_HOME": str(home)})
    assert json.loads(listed.stdout) == []


def test_pipeline_list_shows_each_parameter_with_its_type_range_and_default() -> None:
    result = cli.invoke(app, ["pipeline", "list", "--json"])
    assert result.exit_code == 0, result.output
    ctr = next(p for p in json.loads(result.stdout) if p["name"] == "yarnit-ctr")
    days = next(p for p in ctr["params"] if p["name"] == "days")
    assert days == {"name": "days", "expected": "an integer in [1, 3660]", "default": 3,
                    "help": "days of world data (the last holdout_days are the holdout)"}
