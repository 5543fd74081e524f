"""Validity: the right artifact loads in the serving runtime (separate process), fits its budgets, answers golden
requests with finite in-range scores equal to training-time ones, and has not collapsed; broken ones fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.core.hashing import sha256_bytes
from yarnit.evaluation import Candidate, ValidityBudget, ValidityProbe, check_validity, check_version
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn, load_predictor
from yarnit.storage import Workspace, open_workspace

SIGNATURE: dict[str, Any] = {"inputs": {"x": "double", "c": "string"}, "output": "click probability"}


def _rows(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    # many distinct categories make a model whose in-memory size is clearly measurable
    c = [f"tok{int(v)}" for v in rng.integers(0, 20_000, n)]
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    return [{"x": float(a), "c": b} for a, b in zip(x, c, strict=True)], y


def _fit(final: Any, seed: int) -> bytes:
    rows, y = _rows(4_000, seed)
    return dump_sklearn(Pipeline([("vectorize", DictVectorizer()), ("model", final)]).fit(rows, y))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path_factory.mktemp("validity") / "home"),
                               SimulatedClock(utc(2026, 1, 5, 9)))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def probe_rows() -> list[dict[str, Any]]:
    return _rows(32, seed=99)[0]


@pytest.fixture(scope="module")
def candidates(ws: Workspace, probe_rows: list[dict[str, Any]]) -> dict[str, Candidate]:
    """One good and several broken candidates, all stored in the artifact store."""
    registry = ModelRegistry(ws)
    good = registry.register("toy", _fit(LogisticRegression(max_iter=200), 0), ArtifactFormat.SKOPS,
                             signature=SIGNATURE | {"probe": probe_rows})
    nan_model = Pipeline([("vectorize", DictVectorizer()), ("model", LogisticRegression())]).fit(*_rows(500, 1))
    nan_model.named_steps["model"].coef_[:] = np.nan
    # collapsed: every weight zero, so every row scores the intercept (a type yarnit's trainers write, unlike
    # sklearn's DummyClassifier, which the skops allow-list refuses)
    collapsed = Pipeline([("vectorize", DictVectorizer()), ("model", LogisticRegression())]).fit(*_rows(4_000, 2))
    collapsed.named_steps["model"].coef_[:] = 0.0
    out = {"good": Candidate.from_version(good)}
    for name, data in (("nan", dump_sklearn(nan_model)), ("collapsed", dump_sklearn(collapsed)),
                       ("corrupted", _fit(LogisticRegression(max_iter=50), 3))):
        sha = ws.artifacts.put_bytes(data).sha256
        out[name] = Candidate("toy", sha, "skops", SIGNATURE | {"probe": probe_rows})
    path: Path = ws.artifacts.path_for(out["corrupted"].artifact_sha256)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    os.chmod(path, 0o444)
    return out


@pytest.fixture(scope="module")
def probes(ws: Workspace, candidates: dict[str, Candidate],
           probe_rows: list[dict[str, Any]]) -> dict[str, ValidityProbe]:
    # Started together: the worker processes load in parallel, which keeps this module fast.
    return {name: ValidityProbe(ws, c, probe_rows, ValidityBudget(latency_calls=50))
            for name, c in candidates.items()}


def _checks(report: Any) -> dict[str, bool | None]:
    return {c.name: c.passed for c in report.checks}


def test_a_good_model_passes_every_check(ws: Workspace, candidates: dict[str, Candidate],
                                         probes: dict[str, ValidityProbe], probe_rows: list[dict[str, Any]]) -> None:
    good = candidates["good"]
    artifact = ws.artifacts.get_bytes(good.artifact_sha256)
    expected = load_predictor(artifact, "skops").predict_proba(probe_rows)
    report = check_validity(ws, good, probe=probes["good"], expected=expected)
    assert report.passed, report.reasons
    assert _checks(report) == {name: True for name in (
        "right_artifact", "loads", "memory", "latency", "golden_requests", "finite_in_range",
        "serving_matches_training", "not_collapsed")}
    assert report.measured["path"] == "linear-onnx"  # the serving runtime's compiled fast path was checked
    assert report.measured["memory_mb"] > 0 and report.measured["latency_ms"]["calls"] == 50


def test_a_broken_artifact_fails_validity(ws: Workspace, candidates: dict[str, Candidate],
                                          probes: dict[str, ValidityProbe]) -> None:
    corrupted = check_validity(ws, candidates["corrupted"], probe=probes["corrupted"])
    assert not corrupted.passed and _checks(corrupted)["loads"] is False
    assert "does not load in the serving runtime (separate process): ArtifactCorrupted" in corrupted.reasons[0]
    assert _checks(corrupted)["golden_requests"] is None  # not run, and said so


def test_nan_weights_are_refused_before_serving(ws: Workspace, candidates: dict[str, Candidate],
                                                probes: dict[str, ValidityProbe]) -> None:
    report = check_validity(ws, candidates["nan"], probe=probes["nan"])
    assert not report.passed
    assert "golden requests gave scores outside [0, 1]: [nan" in report.reasons[0]


def test_a_collapsed_model_fails_validity(ws: Workspace, candidates: dict[str, Candidate],
                                          probes: dict[str, ValidityProbe]) -> None:
    report = check_validity(ws, candidates["collapsed"], probe=probes["collapsed"])
    assert _checks(report)["loads"] is True and _checks(report)["not_collapsed"] is False
    assert report.reasons == [next(c.detail for c in report.checks if c.name == "not_collapsed")]
    assert "standard deviation 0.000000 over 1 distinct values: collapsed (below 0.001)" in report.reasons[0]
    # an evaluation set can be given for the collapse check instead of the golden answers
    spread = check_validity(ws, candidates["collapsed"], probe=probes["collapsed"],
                            reference_scores=np.linspace(0.1, 0.9, 50))
    assert _checks(spread)["not_collapsed"] is True


def test_the_wrong_artifact_and_broken_budgets_and_skew_each_fail(ws: Workspace, candidates: dict[str, Candidate],
                                                                  probes: dict[str, ValidityProbe],
                                                                  probe_rows: list[dict[str, Any]]) -> None:
    good = candidates["good"]
    wrong = check_validity(ws, good, probe=probes["good"], intended_sha256=candidates["collapsed"].artifact_sha256)
    assert _checks(wrong)["right_artifact"] is False
    assert "is not the model that was meant to ship: artifact sha256" in wrong.reasons[0]
    wrong_id = check_validity(ws, good, probe=probes["good"], intended_version_id="mv_other")
    assert "version id" in wrong_id.reasons[0] and "is not the intended mv_other" in wrong_id.reasons[0]
    tight = check_validity(ws, good, probe=probes["good"], budget=ValidityBudget(max_memory_mb=1e-6,
                                                                                max_latency_ms=1e-6))
    assert {c.name for c in tight.checks if c.passed is False} == {"memory", "latency"}
    assert "more than the budget of 1e-06 MB" in " ".join(tight.reasons)
    skewed = check_validity(ws, good, probe=probes["good"], expected=np.full(len(probe_rows), 0.5))
    assert _checks(skewed)["serving_matches_training"] is False
    assert "training/serving skew" in skewed.reasons[0]
    with pytest.raises(ValueError, match="Got 2 expected predictions for 32 golden requests"):
        check_validity(ws, good, probe=probes["good"], expected=[0.1, 0.2])


def test_a_registered_version_is_checked_against_its_native_scores(ws: Workspace, probes: dict[str, ValidityProbe]
                                                                    ) -> None:
    version = ModelRegistry(ws).get("toy", 1)
    report = check_version(ws, version, intended_sha256=version.artifact_sha256, intended_version_id=version.id,
                           probe=probes["good"])
    assert report.passed and report.candidate["version"] == 1
    assert _checks(report)["serving_matches_training"] is True  # compiled (ONNX) path == native model
    assert sha256_bytes(ws.artifacts.get_bytes(version.artifact_sha256)) == report.checks[0].value


_CLI_LIKE_MAIN = '''
import json
import sys

import yarnit.cli.app  # noqa: F401 - what the `yarnit` console script (the __main__ of `yarnit demo`) imports

if __name__ == "__main__":
    from yarnit.core import Settings
    from yarnit.evaluation import Candidate, ValidityBudget, ValidityProbe
    from yarnit.storage import open_workspace

    args = json.loads(sys.argv[1])
    ws = open_workspace(Settings.for_home(args["home"]))
    probe = ValidityProbe(ws, Candidate(**args["candidate"]), args["rows"], ValidityBudget(latency_calls=5))
    print(json.dumps(probe.result(), default=str))
    ws.close()
'''


def test_a_check_child_does_not_import_the_callers_main_again(ws: Workspace, candidates: dict[str, Candidate],
                                                              probe_rows: list[dict[str, Any]],
                                                              tmp_path: Path) -> None:
    """A fork server's child re-runs its parent's ``__main__`` (the whole CLI for ``yarnit demo``); the fork server
    holds the parent's yarnit modules, so that re-run imports nothing and no check pays for it again."""
    import json
    import subprocess
    import sys

    script = tmp_path / "cli_like_main.py"
    script.write_text(_CLI_LIKE_MAIN, encoding="utf-8")
    good = candidates["good"]
    args = {"home": str(ws.settings.home), "rows": probe_rows[:4],
            "candidate": {"model_name": good.model_name, "artifact_sha256": good.artifact_sha256,
                          "artifact_format": good.artifact_format, "signature": dict(good.signature)}}
    done = subprocess.run([sys.executable, str(script), json.dumps(args)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] is True and result["n_scores"] == 4, result
    assert result["prepare_imports"] == [], result["prepare_imports"]
