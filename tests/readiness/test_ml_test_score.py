"""The ML Test Score: the paper's arithmetic, and the score of a real ctr workspace (records and CI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.readiness import CI_PROOF, SECTIONS, TESTS, Finding, Score, assess, interpretation
from yarnit.readiness import ci as ci_proof
from yarnit.readiness.rubric import AUTOMATED, MANUAL, NONE
from yarnit.registry import ModelNotFound
from yarnit.storage import Workspace, open_workspace

REPO_TESTS = Path(__file__).resolve().parents[1]


# -- the paper's arithmetic, table-driven --------------------------------------------------------------

def _levels(spec: dict[str, str]) -> dict[str, Finding]:
    """``spec``: section -> 7 characters, A (automated), M (manual) or - (none), for tests 1…7."""
    code = {"A": AUTOMATED, "M": MANUAL, "-": NONE}
    return {f"{s}.{i + 1}": Finding(f"{s}.{i + 1}", code[c]) for s, row in spec.items() for i, c in enumerate(row)}


@pytest.mark.parametrize(("spec", "sections", "final"), [
    ({"data": "AAAAAAA", "model": "AAAAAAA", "infrastructure": "AAAAAAA", "monitoring": "AAAAAAA"},
     (7.0, 7.0, 7.0, 7.0), 7.0),
    ({"data": "-------", "model": "AAAAAAA", "infrastructure": "AAAAAAA", "monitoring": "AAAAAAA"},
     (0.0, 7.0, 7.0, 7.0), 0.0),
    ({"data": "MMMMMMM", "model": "AAAAAAA", "infrastructure": "AAAAAAA", "monitoring": "AAAAAAA"},
     (3.5, 7.0, 7.0, 7.0), 3.5),  # seven manual tests are worth 3.5, not 7
    ({"data": "AAM----", "model": "AMMMAAA", "infrastructure": "A-A-A-A", "monitoring": "MMMMMMA"},
     (2.5, 5.5, 4.0, 4.0), 2.5),
    ({"data": "AAAAA--", "model": "AAAAAM-", "infrastructure": "AAAAMM-", "monitoring": "AAAAA-M"},
     (5.0, 5.5, 5.0, 5.5), 5.0),  # the minimum, not the mean (5.25) nor the sum (21)
])
def test_sections_are_sums_and_the_final_score_is_their_minimum(spec: dict[str, str], sections: tuple[float, ...],
                                                                 final: float) -> None:
    score = Score.of(_levels(spec))
    assert tuple(score.sections[s] for s in SECTIONS) == sections
    assert score.final == final
    assert score.to_dict()["final"] == final and len(score.to_dict()["tests"]) == 28


def test_a_score_needs_all_28_tests_and_reads_as_the_papers_bands() -> None:
    assert len(TESTS) == 28 and [sum(t.section == s for t in TESTS) for s in SECTIONS] == [7, 7, 7, 7]
    partial = _levels({"data": "AAAAAAA"})
    with pytest.raises(ValueError, match="missing"):
        Score.of(partial)
    assert interpretation(0).startswith("More of a research project")
    assert interpretation(2.5).startswith("Reasonably tested")
    assert interpretation(5.0).startswith("Strong levels")
    assert interpretation(5.5).startswith("Exceptional")


def test_the_package_exports_what_it_lists_and_pulls_in_no_web_or_cli_code() -> None:
    import subprocess
    import sys

    import yarnit.readiness as readiness

    assert all(hasattr(readiness, name) for name in readiness.__all__)
    assert len(set(readiness.__all__)) == len(readiness.__all__)
    code = ("import sys, yarnit.readiness; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fastapi', 'typer') or m.startswith(('yarnit.world', 'yarnit.demo', 'yarnit.api', 'yarnit.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_ci_proof_names_a_test_that_exists_in_the_suite() -> None:
    root = ci_proof.tests_root(REPO_TESTS)
    nodes = {n for entry in CI_PROOF.values() for ns in entry.values() for n in ns}
    missing = [c for c in (ci_proof.check_node(root, n) for n in sorted(nodes)) if not c.present]
    assert not missing, missing
    assert not ci_proof.check_node(root, "tests/recipes/test_ctr_pipeline.py::test_no_such_test").present
    assert not ci_proof.check_node(root, "tests/../pyproject.toml::x").present


def test_a_test_marked_skip_or_xfail_is_not_counted_as_run(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='later')\ndef test_skipped():\n    pass\n\n\n"
        "@pytest.mark.parametrize('x', [\n    1,\n])\n@pytest.mark.skipif(False, reason='never')\n"
        "def test_runs(x):\n    pass\n\n\n@pytest.mark.xfail\ndef test_expected_to_fail():\n    pass\n")
    root = tmp_path / "tests"
    assert ci_proof.check_node(root, "tests/test_a.py::test_runs").present
    assert ci_proof.check_node(root, "tests/test_a.py::test_runs[1]").present
    for name in ("test_skipped", "test_expected_to_fail"):
        check = ci_proof.check_node(root, f"tests/test_a.py::{name}")
        assert not check.present and "marked skip or xfail" in check.why
    finding = ci_proof.ci_finding("ctr", "model.3", root, {"model.3": {"*": ["tests/test_a.py::test_skipped"]}})
    assert finding.level == NONE and "marked skip" in finding.note and finding.to_earn


# -- a real workspace: the yarnit-ctr pipeline on a small world, the demo's SLOs, one monitor pass ----------

PIPELINE: dict[str, Any] = {"days": 3, "sessions_per_day": 300, "holdout_days": 2, "bootstrap_resamples": 10,
                            "golden_rows": 200, "slices": ["device"], "fairness_groups": ["language"]}


@pytest.fixture(scope="module")
def ctr_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from yarnit.demo.operate import DEMO_SLOS
    from yarnit.monitoring import load_slo_file
    from yarnit.monitoring.runner import Monitor
    from yarnit.monitoring.workspace import slo_path
    from yarnit.recipes import ctr_pipeline
    from yarnit.training import PipelineRunner

    home = tmp_path_factory.mktemp("readiness") / "home"
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 9, 7)))
    PipelineRunner(ws).run(ctr_pipeline(), config=PIPELINE)
    slo_path(home).write_text(yaml.safe_dump(DEMO_SLOS))
    Monitor(ws, load_slo_file(slo_path(home))).run_once()
    ws.close()
    yield home


@pytest.fixture
def ws(ctr_home: Path) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(ctr_home), SimulatedClock(utc(2026, 1, 9, 8)))
    yield workspace
    workspace.close()


def test_the_ctr_evaluation_measures_quality_day_by_day_after_training(ws: Workspace) -> None:
    """The impact of staleness (ML Test Score model.4): each holdout day after the cut-off is its own distribution."""
    from yarnit.evaluation import EvaluationStore

    stored = EvaluationStore(ws).list("ctr")[0]
    days = [d for d in stored.distributions if d["kind"] == "progressive"]
    assert [d["name"] for d in days] == ["day:2026-01-06", "day:2026-01-07"]
    for d in days:
        auc = EvaluationStore(ws).metrics(stored.id, metric="auc", distribution=d["name"], subject="candidate")
        assert auc and auc[0].value is not None and 0.5 < auc[0].value <= 1.0


def test_ctr_counting_only_what_ci_runs_scores_at_least_5_with_every_section_at_least_3(ws: Workspace) -> None:
    score = assess(ws, "ctr", ci=True, tests=REPO_TESTS).score
    assert score.final >= 5 and all(v >= 3 for v in score.sections.values()), score.sections
    ranker = Score.of(ci_proof.ci_findings("yarnit-ranker", ci_proof.tests_root(REPO_TESTS)))
    assert ranker.final >= 5 and all(v >= 3 for v in ranker.sections.values()), ranker.sections


def test_the_workspace_records_prove_each_test_with_evidence_or_say_how_to_earn_it(ws: Workspace) -> None:
    found = {f.test_id: f for f in assess(ws, "ctr").score.findings}
    automated = {k for k, f in found.items() if f.level == AUTOMATED}
    # what one pipeline run, the SLO file and one monitor pass prove, each with the record that proves it
    assert {"data.1", "data.2", "data.3", "data.4", "data.5", "data.7", "model.4", "model.5", "model.6",
            "model.7", "infrastructure.2", "infrastructure.3", "infrastructure.4", "monitoring.2", "monitoring.3",
            "monitoring.4", "monitoring.5", "monitoring.6"} <= automated
    from yarnit.registry import ModelRegistry

    code = ModelRegistry(ws).get("ctr", 1).code_version  # the checkout's commit; "+dirty" with local changes
    assert found["model.1"].level == (AUTOMATED if code and not code.endswith("+dirty") else NONE)
    run_id = found["data.1"].evidence[0].ref.split("/")[0]
    assert run_id.startswith("run_") and found["data.1"].evidence[0].kind == "step"
    assert found["model.6"].evidence[0].ref.startswith("ev_") and "device" in found["model.6"].evidence[0].detail
    assert "language" in found["model.7"].evidence[0].detail
    assert found["monitoring.4"].evidence[0].ref == "yarnit-shop-ctr-model-fresh"
    for f in found.values():
        assert f.evidence or f.level == NONE, f
        assert (f.to_earn is None) == (f.level == AUTOMATED), f
    # no rollout, loop or reproduction yet: 0, with the exact command that would earn the point
    assert found["infrastructure.6"].level == NONE and found["infrastructure.6"].to_earn == \
        "yarnit rollout start ctr --version V"
    assert found["monitoring.1"].to_earn == "yarnit loop run --world DIR --model ctr"
    assert found["infrastructure.1"].to_earn.startswith("yarnit runs reproduce run_")
    # one training day (a two-day holdout of three): the tune step had nothing to validate on, so no point
    assert found["model.3"].level == NONE and found["model.3"].evidence[0].ref.endswith("/tune")
    assert found["model.3"].to_earn == "yarnit pipeline run yarnit-ctr --set days=4"


def test_a_bundle_takes_its_data_and_model_evidence_from_the_model_it_pins(ws: Workspace) -> None:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn

    registry = ModelRegistry(ws)
    if not registry.exists("bundle"):
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())])
        model.fit([{"price": 1.0}, {"price": 9.0}] * 5, [1, 0] * 5)
        registry.register("bundle", dump_sklearn(model), ArtifactFormat.SKOPS, params={"click_model": "ctr:v1"})
    found = {f.test_id: f for f in assess(ws, "bundle").score.findings}
    assert found["data.1"].level == AUTOMATED and found["data.1"].note.startswith("via ctr:")
    assert found["model.6"].level == AUTOMATED and found["model.6"].note.startswith("via ctr:")
    # a canary or a served-quality SLO of ctr proves nothing about the bundle: those sections are its own
    assert found["infrastructure.3"].level == NONE and found["infrastructure.3"].to_earn == "yarnit pipeline run bundle"


def test_a_documented_manual_run_earns_half_a_point_but_never_in_ci(ws: Workspace, tmp_path: Path) -> None:
    from yarnit.readiness import attest

    doc = tmp_path / "tuning.md"
    doc.write_text("grid over C in {0.01, 0.1, 1, 10}: C=1 best on the holdout\n")
    before = assess(ws, "ctr").score
    attest(ws, "ctr", "model.3", doc, reason="grid search by hand", actor="user:test")
    after = assess(ws, "ctr").score
    tuned = next(f for f in after.findings if f.test_id == "model.3")
    assert tuned.level == MANUAL and tuned.points == 0.5 and tuned.evidence[0].ref == str(doc.resolve())
    assert after.sections["model"] == before.sections["model"] + 0.5
    ci = next(f for f in assess(ws, "ctr", ci=True, tests=REPO_TESTS).score.findings if f.test_id == "model.3")
    assert ci.level == NONE
    with pytest.raises(Exception, match="No ML Test Score test 'model.9'"):
        attest(ws, "ctr", "model.9", doc, reason="x", actor="user:test")


def test_an_unknown_model_is_a_clear_error_in_the_library_the_cli_and_http(ws: Workspace, ctr_home: Path) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nosuch'"):
        assess(ws, "nosuch")
    from yarnit.cli.app import app

    result = CliRunner().invoke(app, ["readiness", "nosuch"], env={"YARNIT_HOME": str(ctr_home)})
    assert result.exit_code == 1 and "no model named 'nosuch'" in result.output
    from yarnit.api import create_app

    with TestClient(create_app(ws)) as client:
        missing = client.get("/api/readiness/nosuch")
        assert missing.status_code == 404 and "yarnit models list" in missing.json()["detail"]
        assert client.get("/api/readiness/NOT A NAME").status_code == 422
        ok = client.get("/api/readiness/ctr", params={"ci": "true"})
        assert ok.status_code == 200 and ok.json()["mode"] == "ci" and ok.json()["final"] >= 5
        page = client.get("/ui/readiness")
        assert page.status_code == 200 and "ctr" in page.text and "Monitoring" in page.text
        detail = client.get("/ui/readiness/ctr")
        assert detail.status_code == 200 and "Feature expectations are captured in a schema" in detail.text


def test_the_cli_prints_a_table_and_json(ctr_home: Path) -> None:
    from yarnit.cli.app import app

    env = {"YARNIT_HOME": str(ctr_home)}
    result = CliRunner().invoke(app, ["readiness", "ctr", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "ctr" and data["mode"] == "workspace" and len(data["tests"]) == 28
    assert data["final"] == min(data["sections"].values())
    human = CliRunner().invoke(app, ["readiness", "ctr", "--ci"], env=env)
    assert human.exit_code == 0, human.output
    assert "ML Test Score of ctr" in human.output and "final" in human.output.lower()


def test_the_cli_records_an_attestation_with_its_document_and_refuses_one_without(ctr_home: Path,
                                                                                 tmp_path: Path) -> None:
    from yarnit.cli.app import app

    env = {"YARNIT_HOME": str(ctr_home)}
    doc = tmp_path / "ab-test.md"
    doc.write_text("two-week A/B test: offline AUC +0.01 matched online CTR +2 %\n")
    result = CliRunner().invoke(app, ["readiness", "ctr", "--attest", "model.2", "--doc", str(doc), "--reason",
                                      "A/B test read by the team", "--json"], env=env)
    assert result.exit_code == 0, result.output
    found = next(t for t in json.loads(result.stdout)["tests"] if t["id"] == "model.2")
    assert found["level"] == "manual" and found["evidence"][0]["ref"] == str(doc.resolve())
    refused = CliRunner().invoke(app, ["readiness", "ctr", "--attest", "model.2", "--doc", str(tmp_path / "nope"),
                                       "--reason", "x"], env=env)
    assert refused.exit_code == 1 and "is not a file" in refused.output


def test_production_scored_beside_the_candidate_proves_staleness_is_measured(sqlite_ws: Workspace) -> None:
    """model.4 without progressive days: production (older data) and the candidate on the same newest day."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from yarnit.evaluation import EvaluationReport, EvaluationStore, MetricValue, time_ordered_holdout
    from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn

    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())])
    model.fit([{"price": 1.0}, {"price": 9.0}] * 5, [1, 0] * 5)
    version = ModelRegistry(sqlite_ws).register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS)
    bare = {f.test_id: f for f in assess(sqlite_ws, "ctr").score.findings}
    assert bare["model.4"].level == NONE and bare["model.4"].to_earn == "yarnit pipeline run yarnit-ctr --set " \
                                                                         "holdout_days=2"
    assert assess(sqlite_ws, "ctr").score.final == 0  # a bare registered model: evidence missing everywhere
    holdout = time_ordered_holdout("2026-01-07", "2026-01-07", rows=100, dataset_version_ids=["ds_eval"])
    stored = EvaluationStore(sqlite_ws).add(EvaluationReport(
        "ctr", {"artifact_sha256": version.artifact_sha256}, (holdout,),
        (MetricValue("auc", "holdout", 0.74, n=100), MetricValue("auc", "holdout", 0.70, subject="production", n=100)),
        compared_with={"alias": "production", "version": 1, "id": version.id}))
    staleness = next(f for f in assess(sqlite_ws, "ctr").score.findings if f.test_id == "model.4")
    assert staleness.level == AUTOMATED and staleness.evidence[0].ref == stored.id
    assert "auc 0.7000 vs the fresh candidate's 0.7400" in staleness.evidence[0].detail
