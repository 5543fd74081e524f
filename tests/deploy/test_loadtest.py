"""``yarnit loadtest``: real staging servers, the C open-loop generator, the gate and the stored result.

The two real runs are short and low-rate (50 req/s and 20 req/s for 2 s per version) and judged so that
speed cannot decide them: the passing run uses generous tolerances, and the failing one puts a 200 ms
delay into every candidate scoring call, some forty times production's median on this machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from testsupport import register_ctr
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.core.errors import InvalidInput, MissingDependency
from yarnit.loadtest import (
    LoadTestPlan,
    LoadTestStore,
    Tolerances,
    figures,
    generator,
    hard_inputs,
    judge,
    run_loadtest,
)
from yarnit.loadtest.generator import Sample
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry, ModelVersionNotFound
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log

runner = CliRunner()
LOGGED = 300  # distinct instances production served (more than a run needs: 100 per version)
GENEROUS = ("--p95-tolerance", "20", "--p99-tolerance", "20", "--slack-ms", "1000",
            "--max-error-rate-increase", "0.5")


def cli(home: Path, *args: str):  # noqa: ANN201 - typer's Result
    return runner.invoke(app, list(args), env={"YARNIT_HOME": str(home)})


def _log_traffic(ws: Workspace, n: int) -> None:
    """``n`` distinct requests ctr's production answered, written by the real prediction log."""
    log = PredictionLog(prediction_log_dir(ws.home), ws.clock, fsync=False)
    for i in range(n):
        log.append({"request_id": f"r{i}", "time": ws.clock.now(), "role": "primary", "protocol": "v1",
                    "model": "ctr", "status": 200, "version": 1, "alias": "production", "served_by": "model",
                    "latency_ms": 1.0, "predictions": [0.5],
                    "instances": [{"fiber": ("merino", "acrylic", "alpaca")[i % 3], "price": float(i)}]})
    log.close()


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ctr v1 (production) and v2, and production's logged traffic; built once, copied per test."""
    home = tmp_path_factory.mktemp("loadtest") / "home"
    with open_workspace(Settings.for_home(home)) as ws:
        register_ctr(ws)
        _log_traffic(ws, LOGGED)
        generator.build(ws.home / "loadtest" / "bin")  # compiled once; the copies reuse it
    return home


@pytest.fixture
def home(tmp_path: Path, template_home: Path) -> Path:
    shutil.copytree(template_home, tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def ws(home: Path) -> Iterator[Workspace]:
    with open_workspace(Settings.for_home(home)) as workspace:
        yield workspace


def test_a_real_run_gives_a_verdict_and_stores_it(home: Path) -> None:
    done = cli(home, "loadtest", "ctr", "--version", "2", "--rps", "50", "--duration", "2s", *GENEROUS, "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["passed"] is True and result["model"] == "ctr"
    assert (result["version"], result["baseline_version"]) == (2, 1)
    for side, version in (("candidate", 2), ("baseline", 1)):
        figures_ = result[side]
        assert figures_["version"] == version and figures_["sent"] == 100  # 50 req/s x 2 s, all scheduled
        assert figures_["answered"] > 0 and figures_["p95_ms"] <= figures_["p99_ms"] <= figures_["max_ms"]
    assert result["inputs"] == {"requests_per_version": 100, "distinct_rows": 100, "distinct_seen": LOGGED,
                                "log_records_read": LOGGED, "repeats": 0, "prediction_cache": "off"}
    assert [c["name"] for c in result["checks"]] == ["p95", "p99", "error_rate"]
    with open_workspace(Settings.for_home(home)) as ws:
        assert LoadTestStore(ws).latest("ctr", 2) == result
        with ws.metadata.begin() as conn:
            audited = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "loadtest.run")).all()
    assert [row[0]["id"] for row in audited] == [result["id"]]
    assert not (home / "loadtest" / result["id"]).exists()  # the scratch (bodies, staging logs) is gone
    listed = cli(home, "loadtest", "ctr", "--history", "--json")
    assert listed.exit_code == 0 and [r["id"] for r in json.loads(listed.stdout)] == [result["id"]]


def test_a_candidate_200ms_slower_fails_the_gate(ws: Workspace) -> None:
    # Tolerances that pass anything within 2x production + 50 ms and up to 50 % more errors: only a version
    # that really is slower (or failing) can fail them.
    tolerances = Tolerances(p95_tolerance=1.0, p99_tolerance=1.0, slack_ms=50.0, max_error_rate_increase=0.5)
    plan = LoadTestPlan(rps=20, duration_s=2, tolerances=tolerances, inject_delay_ms=200)
    result = run_loadtest(ws, "ctr", 2, plan, actor="test")
    assert result["passed"] is False and result["injected_delay_ms"] == 200
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert failed & {"p95", "error_rate"}, result["checks"]
    candidate, baseline = result["candidate"], result["baseline"]
    if candidate["answered"]:  # whatever the candidate answered itself took the delay
        assert candidate["p50_ms"] >= 200 > baseline["p50_ms"]
    stored = LoadTestStore(ws).latest("ctr", 2)
    assert stored is not None and stored["id"] == result["id"] and stored["passed"] is False


@pytest.mark.parametrize(("args", "message"), [
    (("nope", "--version", "1"), "no model named 'nope'"),
    (("ctr", "--version", "9"), "has no version 9"),
    (("ctr", "--version", "2", "--rps", "0"), "--rps must be"),
    (("ctr", "--version", "2", "--rps", "-5"), "--rps must be"),
    (("ctr", "--version", "2", "--duration", "0s"), "--duration must be"),
    (("ctr", "--version", "2", "--duration", "-3s"), "Cannot read the duration"),
    (("ctr", "--version", "2", "--rps", "1e9"), "--rps must be"),
    (("ctr", "--version", "2", "--rps", "500", "--duration", "10m"), "at most 200,000"),
    (("ctr", "--version", "2", "--p95-tolerance", "-1"), "p95_tolerance must be"),
    (("ctr",), "Pass --version V"),
])
def test_bad_input_is_one_clear_error_with_exit_code_2(home: Path, args: tuple[str, ...], message: str) -> None:
    done = cli(home, "loadtest", *args, "--json")
    assert done.exit_code == 2, done.output
    assert message in done.output and done.output.count("error:") == 1 and "Traceback" not in done.output
    with open_workspace(Settings.for_home(home)) as ws:
        assert LoadTestStore(ws).history("ctr") == []
    assert not [p for p in (home / "loadtest").iterdir() if p.name != "bin"]  # nothing was started


def test_a_missing_version_raises_not_found_before_anything_starts(ws: Workspace) -> None:
    with pytest.raises(ModelVersionNotFound, match="'ctr' has no version 7.*models show ctr"):
        run_loadtest(ws, "ctr", 7, LoadTestPlan(rps=10, duration_s=1), actor="test")
    with pytest.raises(InvalidInput, match="at least 2"):
        LoadTestPlan(rps=1, duration_s=1)


def test_no_logged_traffic_is_a_clear_error_exit_code_3(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    with open_workspace(Settings.for_home(home)) as ws:
        register_ctr(ws)
    done = cli(home, "loadtest", "ctr", "--version", "2", "--rps", "10", "--duration", "1s")
    assert done.exit_code == 3 and "holds no served request of ctr" in done.output


def test_without_a_c_compiler_the_build_says_what_to_install(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang there
    with pytest.raises(MissingDependency, match=r"no C compiler \(cc, gcc, clang\).*apt-get install gcc"):
        generator.build(tmp_path / "bin")


def _samples(latencies_ms: list[float], errors: int = 0) -> list[Sample]:
    return [Sample(200, ms, 0.0) for ms in latencies_ms] + [Sample(0, 0.0, 0.0)] * errors


def test_the_gate_compares_p95_p99_and_errors_with_production() -> None:
    base = figures(1, _samples([float(i) for i in range(1, 101)]), fallbacks=0)  # 1 … 100 ms
    assert (base.p50_ms, base.p95_ms, base.p99_ms, base.error_rate) == (51.0, 96.0, 100.0, 0.0)
    same = judge(figures(2, _samples([float(i) for i in range(1, 101)]), 0), base, Tolerances())
    assert same.passed
    slower = figures(2, _samples([float(i) * 1.4 for i in range(1, 101)]), 0)  # p95 134.4 > 96 * 1.25 + 2
    verdict = judge(slower, base, Tolerances())
    assert not verdict.passed and [c.name for c in verdict.checks if not c.passed] == ["p95"]
    assert "p95 134.40 ms > 122.00 ms" in verdict.reason
    # a fallback's 200 is an error: 2 fallbacks + 1 unanswered of 100 scheduled
    erring = figures(2, _samples([1.0] * 99, errors=1), fallbacks=2)
    assert (erring.errors, erring.answered, erring.error_rate) == (3, 97, 0.03)
    assert [c.name for c in judge(erring, base, Tolerances()).checks if not c.passed] == ["error_rate"]
    budget = judge(base, base, Tolerances(max_p95_ms=50.0))
    assert [c.name for c in budget.checks if not c.passed] == ["p95_budget"]


def test_hard_inputs_are_distinct_and_the_heaviest(tmp_path: Path, ws: Workspace) -> None:
    log = PredictionLog(tmp_path / "log", ws.clock, fsync=False)
    rows = [{"a": 1}, {"a": 1}, {"a": 2, "b": "long text value"}, {"a": 3}, {"b": "x"}]
    for i, row in enumerate(rows):
        log.append({"request_id": f"r{i}", "time": ws.clock.now(), "role": "primary", "model": "m", "status": 200,
                    "instances": [row]})
    log.append({"request_id": "other", "time": ws.clock.now(), "role": "primary", "model": "other",
                "status": 200, "instances": [{"z": "a much longer row that belongs to another model"}]})
    log.append({"request_id": "failed", "time": ws.clock.now(), "role": "primary", "model": "m", "status": 500,
                "instances": [{"z": "a much longer row that failed"}]})
    log.close()
    found = hard_inputs(tmp_path / "log", "m", 2, pool_factor=10)
    assert found.distinct_seen == 4  # {"a": 1} once
    assert [json.loads(r) for r in found.rows] == [{"a": 2, "b": "long text value"}, {"b": "x"}]


def test_a_staging_app_serves_exactly_its_pinned_version_and_nothing_else(ws: Workspace, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app
    from yarnit.api.staging import staging_options

    from yarnit.serving import read_prediction_log

    logged_before = len(list(read_prediction_log(prediction_log_dir(ws.home))))
    app = create_app(ws, serving=staging_options("ctr", 2, tmp_path / "staging-log"))
    with TestClient(app) as client:
        body = {"instances": [{"fiber": "merino", "price": 12.0}]}
        answer = client.post("/v1/models/ctr:predict", json=body)
        assert answer.status_code == 200 and answer.headers["x-yarnit-model-version"] == "2"  # production is v1
        other = client.post("/v1/models/other:predict", json=body)
        assert other.status_code == 404 and "serves only ctr" in other.text
    assert ModelRegistry(ws).aliases("ctr") == {"production": 1}  # nothing moved
    assert len(list(read_prediction_log(prediction_log_dir(ws.home)))) == logged_before == LOGGED
    staged = list(read_prediction_log(tmp_path / "staging-log"))  # its traffic went to the scratch log
    assert [(r["model"], r["version"], r["status"]) for r in staged if r.get("status") == 200] == [("ctr", 2, 200)]
