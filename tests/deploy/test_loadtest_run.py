"""``yarnit loadtest`` for real: staging server processes, the C open-loop generator, the gate, the stored result.

The two runs are short and low-rate (50 req/s and 20 req/s for 2 s per version) and judged so that speed
cannot decide them: the passing run uses generous tolerances, and the failing one puts a 200 ms delay into
every candidate scoring call, some forty times production's median on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sqlalchemy import select
from testsupport.loadtest import LOGGED, cli

from yarnit.core import Settings
from yarnit.loadtest import LoadTestPlan, LoadTestStore, Tolerances, run_loadtest
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log

GENEROUS = ("--p95-tolerance", "20", "--p99-tolerance", "20", "--slack-ms", "1000",
            "--max-error-rate-increase", "0.5")


def test_a_real_run_gives_a_verdict_and_stores_it(loadtest_home: Path) -> None:
    done = cli(loadtest_home, "loadtest", "ctr", "--version", "2", "--rps", "50", "--duration", "2s", *GENEROUS, "--json")
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
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and shutil.which("taskset"):  # isolated by default: the generator apart from the servers
        assert result["cpus"] == {"generator": str(cpus[-1]), "servers": ",".join(map(str, cpus[:-1]))}
    with open_workspace(Settings.for_home(loadtest_home)) as ws:
        assert LoadTestStore(ws).latest("ctr", 2) == result
        with ws.metadata.begin() as conn:
            audited = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "loadtest.run")).all()
    assert [row[0]["id"] for row in audited] == [result["id"]]
    assert not (loadtest_home / "loadtest" / result["id"]).exists()  # the scratch (bodies, staging logs) is gone
    listed = cli(loadtest_home, "loadtest", "ctr", "--history", "--json")
    assert listed.exit_code == 0 and [r["id"] for r in json.loads(listed.stdout)] == [result["id"]]


def test_a_candidate_200ms_slower_fails_the_gate(loadtest_ws: Workspace) -> None:
    # Tolerances that pass anything within 2x production + 50 ms and up to 50 % more errors: only a version
    # that really is slower (or failing) can fail them.
    tolerances = Tolerances(p95_tolerance=1.0, p99_tolerance=1.0, slack_ms=50.0, max_error_rate_increase=0.5)
    plan = LoadTestPlan(rps=20, duration_s=2, tolerances=tolerances, inject_delay_ms=200)
    result = run_loadtest(loadtest_ws, "ctr", 2, plan, actor="test")
    assert result["passed"] is False and result["injected_delay_ms"] == 200
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert failed & {"p95", "error_rate"}, result["checks"]
    candidate, baseline = result["candidate"], result["baseline"]
    if candidate["answered"]:  # whatever the candidate answered itself took the delay
        assert candidate["p50_ms"] >= 200 > baseline["p50_ms"]
    stored = LoadTestStore(loadtest_ws).latest("ctr", 2)
    assert stored is not None and stored["id"] == result["id"] and stored["passed"] is False


def test_a_staging_app_serves_exactly_its_pinned_version_and_nothing_else(loadtest_ws: Workspace, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from yarnit.api import create_app
    from yarnit.api.staging import staging_options
    from yarnit.serving import read_prediction_log

    logged_before = len(list(read_prediction_log(prediction_log_dir(loadtest_ws.home))))
    app = create_app(loadtest_ws, serving=staging_options("ctr", 2, tmp_path / "staging-log"))
    with TestClient(app) as client:
        body = {"instances": [{"fiber": "merino", "price": 12.0}]}
        answer = client.post("/v1/models/ctr:predict", json=body)
        assert answer.status_code == 200 and answer.headers["x-yarnit-model-version"] == "2"  # production is v1
        other = client.post("/v1/models/other:predict", json=body)
        assert other.status_code == 404 and "serves only ctr" in other.text
    assert ModelRegistry(loadtest_ws).aliases("ctr") == {"production": 1}  # nothing moved
    assert len(list(read_prediction_log(prediction_log_dir(loadtest_ws.home)))) == logged_before == LOGGED
    staged = list(read_prediction_log(tmp_path / "staging-log"))  # its traffic went to the scratch log
    assert [(r["model"], r["version"], r["status"]) for r in staged if r.get("status") == 200] == [("ctr", 2, 200)]


def test_placement_keeps_the_generator_off_the_staging_servers_cpus() -> None:
    from yarnit.loadtest import placement

    plan = LoadTestPlan(rps=10, duration_s=1)
    if shutil.which("taskset"):
        assert placement(plan, {0, 1}) == {"generator": "1", "servers": "0"}
        assert placement(plan, {0, 2, 3, 5}) == {"generator": "5", "servers": "0,2,3"}
        # an explicit generator CPU: the servers get the rest
        assert placement(LoadTestPlan(rps=10, duration_s=1, cpu="0-1"), {0, 1, 2, 3}) == \
            {"generator": "0-1", "servers": "2,3"}
    assert placement(plan, {3}) == {"generator": None, "servers": None}  # one CPU: nothing to keep apart
    assert placement(LoadTestPlan(rps=10, duration_s=1, isolate=False), {0, 1}) == \
        {"generator": None, "servers": None}


@pytest.mark.skipif(not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2, reason="needs taskset, 2 CPUs")
def test_a_staging_server_given_cpus_runs_only_on_them(loadtest_ws: Workspace, tmp_path: Path) -> None:
    import time

    from yarnit.loadtest import StagingServer

    cpu = sorted(os.sched_getaffinity(0))[0]
    with StagingServer(loadtest_ws, "ctr", 1, tmp_path, role="pinned", cpus=str(cpu)) as server:
        server.start()
        server.wait_ready(time.monotonic() + 300)
        assert server.proc is not None
        threads = list((Path("/proc") / str(server.proc.pid) / "task").iterdir())
        assert len(threads) > 1  # the server's own threads, started after exec, all inherit the CPU
        assert {cpu} == set(os.sched_getaffinity(server.proc.pid))
        assert all(set(os.sched_getaffinity(int(t.name))) == {cpu} for t in threads)
