"""``yarnit loadtest`` without running one: bad input, the gate's arithmetic, the choice of inputs, the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testsupport import register_ctr
from testsupport.loadtest import cli

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
from yarnit.registry import ModelVersionNotFound
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import Workspace, open_workspace


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
def test_bad_input_is_one_clear_error_with_exit_code_2(loadtest_home: Path, args: tuple[str, ...], message: str) -> None:
    done = cli(loadtest_home, "loadtest", *args, "--json")
    assert done.exit_code == 2, done.output
    assert message in done.output and done.output.count("error:") == 1 and "Traceback" not in done.output
    with open_workspace(Settings.for_home(loadtest_home)) as ws:
        assert LoadTestStore(ws).history("ctr") == []
    assert not [p for p in (loadtest_home / "loadtest").iterdir() if p.name != "bin"]  # nothing was started


def test_a_missing_version_raises_not_found_before_anything_starts(loadtest_ws: Workspace) -> None:
    with pytest.raises(ModelVersionNotFound, match="'ctr' has no version 7.*models show ctr"):
        run_loadtest(loadtest_ws, "ctr", 7, LoadTestPlan(rps=10, duration_s=1), actor="test")
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


def test_hard_inputs_are_distinct_and_the_heaviest(tmp_path: Path, loadtest_ws: Workspace) -> None:
    log = PredictionLog(tmp_path / "log", loadtest_ws.clock, fsync=False)
    rows = [{"a": 1}, {"a": 1}, {"a": 2, "b": "long text value"}, {"a": 3}, {"b": "x"}]
    for i, row in enumerate(rows):
        log.append({"request_id": f"r{i}", "time": loadtest_ws.clock.now(), "role": "primary", "model": "m", "status": 200,
                    "instances": [row]})
    log.append({"request_id": "other", "time": loadtest_ws.clock.now(), "role": "primary", "model": "other",
                "status": 200, "instances": [{"z": "a much longer row that belongs to another model"}]})
    log.append({"request_id": "failed", "time": loadtest_ws.clock.now(), "role": "primary", "model": "m", "status": 500,
                "instances": [{"z": "a much longer row that failed"}]})
    log.close()
    found = hard_inputs(tmp_path / "log", "m", 2, pool_factor=10)
    assert found.distinct_seen == 4  # {"a": 1} once
    assert [json.loads(r) for r in found.rows] == [{"a": 2, "b": "long text value"}, {"b": "x"}]


def test_the_package_exports_its_names_once_and_imports_no_web_code() -> None:
    import subprocess
    import sys

    import yarnit.loadtest as loadtest

    assert len(loadtest.__all__) == len(set(loadtest.__all__))
    assert [name for name in loadtest.__all__ if not hasattr(loadtest, name)] == []
    # the staging server is a process (python -m yarnit.api.staging), never an import of the domain package
    code = "import sys, yarnit.loadtest; print(sorted(m for m in ('fastapi', 'typer', 'uvicorn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
