"""No point without its record: tuning (model.3), code identity (model.1) and fairness (model.7) of a real workspace.

Each test here would fail if the probe claimed the point from a config, a default or a look-alike record
instead of the record the platform wrote while running the test for that very version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.readiness import assess
from yarnit.readiness.rubric import AUTOMATED, NONE, Finding
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.storage import Workspace, open_workspace

# c=100: barely regularised, so the run's own search finds a better value; no fairness group
UNTUNED: dict[str, Any] = {"days": 3, "sessions_per_day": 300, "holdout_days": 1, "bootstrap_resamples": 10,
                           "golden_rows": 100, "slices": ["device"], "fairness_groups": [],
                           "trainer_params": {"c": 100.0}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from yarnit.recipes import ctr_pipeline
    from yarnit.training import PipelineRunner

    home = tmp_path_factory.mktemp("evidence") / "home"
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 9, 7)))
    first = PipelineRunner(ws).run(ctr_pipeline(), config=UNTUNED)
    best = first.value("tune", "report")["best"]["trainer_params"]
    # the same data (select is cached) trained with the search's best value and judged for fairness, as ctr-tuned
    PipelineRunner(ws).run(ctr_pipeline(), config=UNTUNED | {"model": "ctr-tuned", "trainer_params": best,
                                                             "fairness_groups": ["language"]})
    ws.close()
    yield home


@pytest.fixture
def ws(home: Path) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 9, 8)))
    yield workspace
    workspace.close()


def _finding(ws: Workspace, model: str, test_id: str) -> Finding:
    return next(f for f in assess(ws, model).score.findings if f.test_id == test_id)


def _tune_report(ws: Workspace, model: str) -> dict[str, Any]:
    from yarnit.training import RunStore
    from yarnit.training.values import load_value

    version = ModelRegistry(ws).versions(model)[-1]
    step = next(s for s in RunStore(ws).steps(version.run_id) if s.step == "tune")
    return load_value(ws.artifacts, step.outputs["report"])


def test_a_model_trained_with_values_its_own_search_beat_earns_no_tuning_point(ws: Workspace) -> None:
    report = _tune_report(ws, "ctr")
    assert not report["tuned"] and report["configured"]["trainer_params"] == {"c": 100.0}
    tuned = _finding(ws, "ctr", "model.3")
    assert tuned.level == NONE and tuned.evidence[0].kind == "step" and tuned.evidence[0].ref.endswith("/tune")
    assert tuned.evidence[0].detail.startswith("NOT tuned: logistic c in [0.01, 0.1, 1.0, 100.0]")
    assert tuned.to_earn == ("yarnit pipeline run yarnit-ctr --set 'trainer_params="
                             f"{json.dumps(report['best']['trainer_params'])}'  (then, unless the run promotes it: "
                             "yarnit rollout start ctr --version V)")


def test_the_tuning_point_needs_the_versions_own_run_to_have_tuned_the_values_it_trained_with(
        ws: Workspace) -> None:
    tuned = _finding(ws, "ctr-tuned", "model.3")
    version = ModelRegistry(ws).versions("ctr-tuned")[-1]
    assert tuned.level == AUTOMATED and tuned.evidence[0].ref == f"{version.run_id}/tune"
    assert tuned.evidence[0].detail.startswith("tuned: logistic c in")
    # a version claiming that run but trained with another value: the run's search says nothing about it
    registry = ModelRegistry(ws)
    artifact = ws.artifacts.get_bytes(version.artifact_sha256)
    if not registry.exists("ctr-forged"):
        registry.register("ctr-forged", artifact, ArtifactFormat(version.artifact_format),
                          params=version.params | {"C": 5.0}, run_id=version.run_id)
        registry.register("ctr-bare", artifact, ArtifactFormat(version.artifact_format), params=version.params)
    forged = _finding(ws, "ctr-forged", "model.3")
    assert forged.level == NONE and "C tuned" in forged.note and "trained 5.0" in forged.note
    # no run at all: no tune record, and no pipeline of its own that tunes: a manual study is the way
    bare = _finding(ws, "ctr-bare", "model.3")
    assert bare.level == NONE and not bare.evidence and "--attest model.3" in bare.to_earn


def test_fairness_counts_only_when_the_versions_evaluation_measured_groups(ws: Workspace) -> None:
    off = _finding(ws, "ctr", "model.7")
    assert off.level == NONE and off.to_earn == \
        "yarnit pipeline run yarnit-ctr --set 'fairness_groups=[\"language\"]'"
    on = _finding(ws, "ctr-tuned", "model.7")
    assert on.level == AUTOMATED and on.evidence[0].ref.startswith("ev_") and "language" in on.evidence[0].detail


@pytest.mark.parametrize(("code", "level"), [
    ("8132b55c04b5be88b192c5ec64820c419ba97080", AUTOMATED),
    ("8132b55c04b5be88b192c5ec64820c419ba97080+dirty", NONE),  # uncommitted changes: not what the commit holds
    (None, NONE),  # outside git (an installed package): nothing names a reviewed, checked-in revision
])
def test_checked_in_code_needs_a_clean_commit_recorded_for_the_version(sqlite_ws: Workspace, code: str | None,
                                                                       level: str) -> None:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from yarnit.registry import dump_sklearn

    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())])
    model.fit([{"price": 1.0}, {"price": 9.0}] * 5, [1, 0] * 5)
    ModelRegistry(sqlite_ws).register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS, code_version=code)
    found = _finding(sqlite_ws, "ctr", "model.1")
    assert found.level == level and found.evidence and found.evidence[0].ref == "ctr:v1"
    assert (found.to_earn is None) == (level == AUTOMATED)
    if level == NONE:
        assert found.to_earn.startswith("git commit, then yarnit pipeline run")
