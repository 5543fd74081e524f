"""Model-on-model dependencies: yarnit-ranker re-evaluated on each new click model, its rollout held on a regression.

Real parts: a SQLite workspace, click models trained on a world day and registered, the yarnit-recs and
yarnit-ranker pipelines through the runner, the CLI runner and the HTTP app.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.cli.app import app
from yarnit.continuous.dependencies import ModelDependencies
from yarnit.continuous.rollout import RolloutConfig, RolloutController
from yarnit.core import Settings
from yarnit.data import Datasets
from yarnit.evaluation import EvaluationStore
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.recipes.ctr import RAW_INPUTS
from yarnit.recipes.pipelines import builtin_pipeline
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import PipelineRunner
from yarnit.training.trainers import make_trainer
from yarnit.world import World, WorldConfig

RANKER = "yarnit-ranker"
SMALL = {"days": 3, "sessions_per_day": 300, "n_users": 600, "min_eval_users": 5}
runner = CliRunner()


def _days() -> list:
    return list(World(WorldConfig(seed=2, sessions_per_day=300, n_users=600)).run(2))


def _register_ctr(ws: Workspace, log, *, dataset_id: str, shuffle: bool = False, seed: int = 0) -> int:
    """A logistic click model; ``shuffle`` trains it on permuted labels (a broken click-log join)."""
    y = log["clicked"].to_numpy()
    if shuffle:
        y = np.random.default_rng(seed).permutation(y)
    model = make_trainer("logistic").fit(FRAME_TRANSFORMS["ctr_features_v1"](log), y, seed=seed)
    return ModelRegistry(ws).register("ctr", model.artifact, model.artifact_format, dataset_version_ids=[dataset_id],
                                      signature={"inputs": RAW_INPUTS, "output": "click probability",
                                                 "transform": "ctr_features_v1"}).version


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The trained workspace, built once per module (per xdist worker); tests take a copy (``home``)."""
    home = tmp_path_factory.mktemp("deps") / "home"
    day1, day2 = _days()
    with open_workspace(Settings.for_home(home)) as ws:
        train = Datasets(ws).ingest_frame("impressions", day1.impressions, source="world seed=2 day 1",
                                          pii_columns=["user_id"], subject="user_id")
        Datasets(ws).ingest_frame("impressions-eval", day2.impressions, source="world seed=2 day 2",
                                  pii_columns=["user_id"], subject="user_id")
        first = _register_ctr(ws, day1.impressions, dataset_id=train.id)
        ModelRegistry(ws).promote("ctr", first)
        runs = PipelineRunner(ws)
        runs.run(builtin_pipeline("yarnit-recs"), config=SMALL)
        runs.run(builtin_pipeline(RANKER), config={"loop_days": 0})
        # a second ranker version (other rules, same parts) to roll out
        runs.run(builtin_pipeline(RANKER), config={"loop_days": 0, "rules": {"max_per_value": 4},
                                                   "promote": False})
        assert [v.version for v in ModelRegistry(ws).versions(RANKER)] == [1, 2]
    yield home


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Path:
    """A copy of the trained workspace of its own: a test does not depend on which tests ran before it in its
    process (under pytest-xdist the module's tests are spread over workers, each with its own ``built``)."""
    return Path(shutil.copytree(built, tmp_path / "home"))


@pytest.fixture
def declared(home: Path) -> None:
    """``home`` with yarnit-ranker's dependency on ctr declared, as the first test does through the CLI."""
    with open_workspace(Settings.for_home(home)) as ws:
        ModelDependencies(ws).declare(RANKER, "ctr", actor="test", dataset="impressions-eval")


def _cli(home: Path, *args: str):
    return runner.invoke(app, [*args], env={"YARNIT_HOME": str(home)})


def _words(output: str) -> str:
    """Human output with its line wrapping undone: the console's width is the environment's (under xdist the
    worker's COLUMNS, read once when the console is made), so a line may wrap anywhere between words."""
    return " ".join(output.split())


def test_a_declaration_evaluates_the_current_triple_and_refuses_what_nothing_could_check(home: Path) -> None:
    bad = _cli(home, "models", "depend", "ctr", "--on", RANKER)
    assert bad.exit_code == 1 and "cannot take another upstream version" in bad.stderr and "Traceback" not in bad.output
    itself = _cli(home, "models", "depend", RANKER, "--on", RANKER)
    assert itself.exit_code == 1 and "cannot depend on itself" in itself.stderr
    unknown = _cli(home, "models", "depend", RANKER, "--on", "no-such-model")
    assert unknown.exit_code == 1 and "no-such-model" in unknown.stderr

    made = _cli(home, "models", "depend", RANKER, "--on", "ctr", "--dataset", "impressions-eval", "--json")
    assert made.exit_code == 0, made.output
    declared = json.loads(made.stdout)
    assert (declared["consumer"], declared["upstream"], declared["alias"]) == (RANKER, "ctr", "production")
    [first] = declared["evaluations"]
    # ranker v1 re-pinned to the click model it already pins: the same scores as production, a zero difference
    assert (first["upstream_version"], first["consumer_version"], first["baseline_version"]) == (1, 1, 1)
    assert first["trigger"] == "alias:production" and first["regressed"] is False
    assert first["value"] == first["baseline_value"] and first["delta"] == 0.0 and 0.5 < first["value"] < 1.0


@pytest.mark.usefixtures("declared")
def test_a_new_upstream_version_is_evaluated_on_the_triple_and_a_regression_holds_the_rollout(home: Path) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        train = Datasets(ws).get("impressions")
        log = Datasets(ws).read(train)
        broken = _register_ctr(ws, log, dataset_id=train.id, shuffle=True, seed=3)
        rollout = RolloutController(ws, RANKER, config=RolloutConfig(stages=(5.0, 100.0), bake_s=60.0,
                                                                     min_requests=1))
        rollout.start(2, actor="test")
        decision = rollout.step()  # the step evaluates ranker v2 with the new click model first
        assert decision["action"] == "hold" and decision["reason"].startswith("held by a model dependency")
        assert f"(ctr:v{broken}, {RANKER}:v2, " in decision["reason"] and "auc_vs_production" in decision["reason"]
        assert rollout.status()["dependency_hold"] == decision["reason"][len("held by a model dependency: "):]
        assert rollout.status()["canary_percent"] == 5.0  # held: not raised

    shown = _cli(home, "models", "deps", RANKER, "--evaluate", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["dependencies"][0]["upstream"] == "ctr" and data["errors"] == []
    triples = {(e["upstream_version"], e["consumer_version"]): e for e in data["evaluations"]}
    assert set(triples) == {(1, 1), (broken, 1), (broken, 2), (1, 2)}  # production and canary × ctr v1, new ctr
    worse = triples[(broken, 1)]
    assert worse["trigger"] == "registered" and worse["regressed"] is True
    assert worse["delta"] < -0.01 and worse["value"] < 0.6  # a click model of shuffled labels ranks at random
    assert "auc_vs_production" in worse["reasons"][0]
    assert triples[(1, 2)]["regressed"] is False  # v2's own click model is production's: no regression
    human = _cli(home, "models", "deps", RANKER)
    text = _words(human.output)
    assert human.exit_code == 0 and f"{RANKER} reads ctr (production)" in text
    assert f"ctr:v{broken} × {RANKER}:v1 × " in text and "REGRESSED: Gate 'auc_vs_production'" in text

    with open_workspace(Settings.for_home(home)) as ws:
        body = TestClient(create_app(ws)).get(f"/api/models/{RANKER}/dependencies").json()
        assert [(e["upstream_version"], e["consumer_version"]) for e in body["evaluations"]] == \
            [(e["upstream_version"], e["consumer_version"]) for e in data["evaluations"]]
        # the report behind each triple is a stored evaluation of the ranker, with the gate's verdict
        report = EvaluationStore(ws).report(worse["evaluation_id"])
        assert report.model == RANKER and report.candidate["upstream"]["version"] == broken
        assert report.value("ndcg_at_k") is not None
        assert EvaluationStore(ws).get(worse["evaluation_id"]).blessed is False

        # a sound newer click model, then moved into production: the hold lifts (no traffic is the next reason)
        good = _register_ctr(ws, log, dataset_id=train.id, seed=5)
        assert ModelDependencies(ws).hold_reason(RANKER, 2) is None  # newest is sound; production v1 too
        ModelRegistry(ws).promote("ctr", good)
        again = RolloutController(ws, RANKER).step()
        assert again["action"] == "hold" and "dependency" not in again["reason"], again["reason"]
        assert "no traffic" in again["reason"]
        moved = [e for e in ModelDependencies(ws).evaluations(RANKER) if e.upstream_version == good]
        assert {e.trigger for e in moved} == {"registered"} and not any(e.regressed for e in moved)
        RolloutController(ws, RANKER).abort(actor="test", reason="test over")


@pytest.mark.usefixtures("declared")
def test_an_alias_move_to_a_version_never_evaluated_triggers_its_triple(home: Path) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        train = Datasets(ws).get("impressions")
        log = Datasets(ws).read(train)
        skipped = _register_ctr(ws, log, dataset_id=train.id, seed=7)
        _register_ctr(ws, log, dataset_id=train.id, seed=8)  # newer: the registration trigger takes this one
        deps = ModelDependencies(ws)
        deps.sync(upstream="ctr")
        assert not [e for e in deps.evaluations(RANKER) if e.upstream_version == skipped]
        ModelRegistry(ws).promote("ctr", skipped)
        outcomes = deps.sync(upstream="ctr")
        [moved] = [o for o in outcomes if o.get("upstream_version") == skipped]
        assert moved["trigger"] == "alias:production" and moved["consumer_version"] == 1
        assert deps.sync(upstream="ctr") == [o for o in deps.sync(upstream="ctr")]  # idempotent: rows, not new runs
        assert len(deps.evaluations(RANKER, limit=1000)) == len({(e.upstream_version, e.consumer_version)
                                                                  for e in deps.evaluations(RANKER, limit=1000)})
