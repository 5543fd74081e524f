"""`yarnit capacity MODEL`: demand from a prediction log with known numbers, replicas for the peak with N+2.

The fixture log covers three whole UTC days of ``ctr`` traffic: 36 requests an hour, 180 in the evening peak
hour (20:00), and days two and three at 1.5× and 2× day one. So, exactly:

* day totals 1008, 1512, 2016 requests → daily means 1008/86400, 1512/86400, 2016/86400 req/s;
* growth: slope 504/86400 req/s per day over a mean of 1512/86400 → 1/3 per day;
* peak 360 requests in day three's 20:00 hour → 0.1 req/s; mean 4536 / (72 × 3600) = 0.0175 req/s.

Day three's peak hour also holds a `rejected` window record (10 shed requests: demand too), shadow copies,
404s and another model's requests, which must not count.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.monitoring.capacity import (
    CapacityStep,
    judge_step,
    latency_objective,
    plan_capacity,
    search_capacity,
    traffic_profile,
)
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import open_workspace

runner = CliRunner()
START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def _write_log(log: Path) -> None:
    log.mkdir(parents=True)
    records = []
    for day, factor in enumerate((1.0, 1.5, 2.0)):
        for hour in range(24):
            at = START + timedelta(days=day, hours=hour)
            n = round((180 if hour == 20 else 36) * factor)
            shed = 10 if (day, hour) == (2, 20) else 0
            for i in range(n - shed):
                t = (at + timedelta(seconds=i * 3600 / n)).isoformat()
                records.append({"time": t, "model": "ctr", "role": "primary", "status": 200, "version": 1})
            if shed:
                records.append({"time": (at + timedelta(minutes=59)).isoformat(), "model": "ctr", "role": "rejected",
                                "status": 503, "count": shed})
                records += [{"time": (at + timedelta(minutes=5)).isoformat(), "model": "ctr", "role": "shadow",
                             "status": 200}] * 50
                records += [{"time": (at + timedelta(minutes=6)).isoformat(), "model": "ctr", "role": "primary",
                             "status": 404}] * 5
                records += [{"time": (at + timedelta(minutes=7)).isoformat(), "model": "yarnit-ranker",
                             "role": "primary", "status": 200}] * 100
    for name, part in (("seg-000001.log", records[: len(records) // 2]), ("seg-000002.log", records[len(records) // 2:])):
        lines = [json.dumps(r) for r in part]
        (log / name).write_text("".join(f"{zlib.crc32(line.encode()):08x} {line}\n" for line in lines))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    _write_log(tmp_path / "home" / "prediction_log")
    return tmp_path / "home"


def test_the_profile_counts_demand_exactly(home: Path) -> None:
    profile = traffic_profile(home / "prediction_log", "ctr")
    assert (profile.requests, profile.hours, profile.whole_days) == (4536, 72, 3)
    assert profile.peak_hour == "2026-03-04T20:00:00+00:00" and profile.peak_rps == pytest.approx(0.1)
    assert profile.mean_rps == pytest.approx(0.0175)
    assert profile.peak_to_mean == pytest.approx(0.1 / 0.0175)
    assert profile.daily_mean_rps == pytest.approx([1008 / 86400, 1512 / 86400, 2016 / 86400])
    assert profile.growth_per_day == pytest.approx(1 / 3) and profile.notes == []


def test_capacity_plans_the_forecast_peak_with_n_plus_2(home: Path) -> None:
    # 3 days ahead: trend 1 + 3 × 1/3 = 2 → peak 0.2 req/s; × 1.25 headroom ÷ 0.03 req/s = 8.33 → 9, + 2 = 11
    result = runner.invoke(app, ["capacity", "ctr", "--replica-rps", "0.03", "--horizon-days", "3", "--json"],
                           env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["forecast_peak_rps"] == pytest.approx(0.2) and plan["forecast_mean_rps"] == pytest.approx(0.035)
    assert (plan["replicas_for_peak"], plan["redundancy"], plan["replicas"]) == (9, 2, 11)
    # the autoscaler's floor: forecast mean 0.035 × 1.25 ÷ 0.03 = 1.46 → 2, + 2 = 4
    assert (plan["hpa_min_replicas"], plan["hpa_max_replicas"]) == (4, 11)
    assert plan["deploy"] == "yarnit deploy k8s --replicas 4 --min-replicas 4 --max-replicas 11"
    # one host carrying the peak: one worker per process the peak needs
    assert (plan["serve_workers"], plan["serve"]) == (9, "yarnit serve --workers 9")
    assert plan["traffic"]["peak_rps"] == pytest.approx(0.1) and plan["replica_rps_source"] == "--replica-rps"

    # a conference that triples the peak, no growth horizon, a 1.5 headroom, N+1:
    # 0.1 × 3 × 1.5 ÷ 0.03 = 15 exactly → 15 (not 16), + 1 = 16
    spiked = plan_capacity(traffic_profile(home / "prediction_log", "ctr"), replica_rps=0.03, horizon_days=0,
                           spike=3.0, headroom=1.5, redundancy=1)
    assert (spiked.replicas_for_peak, spiked.replicas) == (15, 16)

    human = runner.invoke(app, ["capacity", "ctr", "--replica-rps", "0.03", "--horizon-days", "3"],
                          env={"YARNIT_HOME": str(home)})
    assert human.exit_code == 0 and "replicas: 11 = 9 for the peak + 2 (N+2)" in human.output
    assert "one host: yarnit serve --workers 9" in " ".join(human.output.split())
    # beyond 64 workers (what --workers accepts), the line stays valid and the rest goes to other hosts
    huge = plan_capacity(traffic_profile(home / "prediction_log", "ctr"), replica_rps=0.001, horizon_days=0)
    assert huge.replicas_for_peak == 125 and huge.to_dict()["serve"] == "yarnit serve --workers 64"


@pytest.mark.parametrize(("args", "message"), [
    (["ctr"], "exactly one of --replica-rps"),
    (["ctr", "--replica-rps", "1", "--measure-s", "1"], "exactly one of --replica-rps"),
    (["ctr", "--replica-rps", "1", "--workers", "2"], "give --measure-s S with it"),
    (["ctr", "--replica-rps", "-1"], "exactly one of --replica-rps"),
    (["ctr", "--replica-rps", "1", "--headroom", "0.5"], "headroom factor must be a finite number >= 1"),
    (["ctr", "--replica-rps", "1", "--since", "yesterday"], "'yesterday' is not a date"),
    (["nothing-served", "--replica-rps", "1"], "has no requests to 'nothing-served'"),
])
def test_bad_input_gets_one_clear_error(home: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["capacity", *args], env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert "Traceback" not in result.output


def _promote_a_ctr_model(home: Path) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(rows, [1, 0] * 10)
        registry = ModelRegistry(ws)
        version = registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS, signature={
            "inputs": {"fiber": "string", "price": "double"},
            "golden": [{"instance": {"fiber": "merino", "price": 12.0}}, {"instance": {"fiber": "acrylic",
                                                                                        "price": 3.0}}]})
        registry.promote("ctr", version.version)


def _check_search(steps: list[dict], best: int | None) -> None:
    """The ramp doubles until its first failure; each bisection lies strictly inside the bracket the steps
    before it left (highest pass, lowest failure); the figure is the highest passing offered rate."""
    rates = [s["offered_rps"] for s in steps]
    ramp = [s for s in steps if s["phase"] == "ramp"]
    assert steps[: len(ramp)] == ramp and all(b["offered_rps"] == 2 * a["offered_rps"] for a, b in itertools.pairwise(ramp))
    assert all(s["passed"] for s in ramp[:-1])  # the ramp stops at its first failure
    for k in range(len(ramp), len(steps)):
        low = max((s["offered_rps"] for s in steps[:k] if s["passed"]), default=0.0)
        high = min(s["offered_rps"] for s in steps[:k] if not s["passed"])
        assert low < rates[k] < high and rates[k] == pytest.approx((low + high) / 2)
    passing = [s["offered_rps"] for s in steps if s["passed"]]
    assert (best is None) == (not passing)
    if passing:
        assert steps[best]["passed"] and rates[best] == max(passing)
        assert all(not s["passed"] for s in steps if s["offered_rps"] > rates[best])  # monotone: nothing above passed


def test_the_search_ramps_then_bisects_and_keeps_the_highest_passing_rate() -> None:
    # a replica that meets its SLO up to 100 req/s: 10, 20, 40, 80 pass, 160 fails; then 120 ✗, 100 ✓, 110 ✗
    def step(phase: str, rate: float) -> CapacityStep:
        return judge_step(phase, rate, 1.0, [200] * 10, [5.0 if rate <= 100 else 500.0] * 10, latency_ms=50)

    steps, best = search_capacity(step, time_left=lambda: True)
    assert [s.offered_rps for s in steps] == [10, 20, 40, 80, 160, 120, 100, 110]
    assert best == 6 and steps[best].offered_rps == 100
    _check_search([s.to_dict() for s in steps], best)
    # errors break the SLO too (one of 100 is 1 % > 0.1 %), and nothing passing gives no figure
    failing = judge_step("ramp", 10, 1.0, [200] * 99 + [503], [1.0] * 100, latency_ms=50)
    assert not failing.passed and failing.reason.startswith("error rate 1.00%")
    steps, best = search_capacity(lambda phase, rate: judge_step(phase, rate, 1.0, [200] * 99 + [503], [1.0] * 100,
                                                                 latency_ms=50), time_left=lambda: True)
    assert best is None and [(s.phase, s.offered_rps) for s in steps] == [
        ("ramp", 10), ("bisect", 5), ("bisect", 2.5), ("bisect", 1.25)]
    # the budget is asked before every step
    budget = iter([True, True, False])
    steps, _ = search_capacity(step, time_left=lambda: next(budget))
    assert len(steps) == 2


@pytest.mark.slow  # a real `yarnit serve` process starts (about 3 s of CPU; longer on a loaded machine)
def test_a_measured_run_finds_the_rate_at_the_slo_open_loop_and_logs_nothing_into_the_demand(home: Path) -> None:
    _promote_a_ctr_model(home)
    before = sorted(p.name for p in (home / "prediction_log").iterdir())
    result = runner.invoke(app, ["capacity", "ctr", "--measure-s", "4", "--latency-ms", "1000", "--json"],
                           env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    measured = plan["measurement"]
    steps, best = measured["steps"], measured["best_step"]
    assert steps and all(s["sent"] > 0 for s in steps)
    _check_search(steps, best)
    # the figure is the offered rate of a passing step, and that step says so
    assert plan["replica_rps"] == measured["rps"] == steps[best]["offered_rps"] and steps[best]["passed"]
    assert steps[best]["p99_ms"] <= 1000 and steps[best]["error_rate"] <= measured["max_error_rate"]
    assert (measured["latency_objective_ms"], measured["latency_source"]) == (1000, "--latency-ms")
    # scoring was measured, not the prediction cache: two golden rows sent hundreds of times hit it otherwise
    assert measured["cache_hits"] == 0
    assert plan["replica_rps_source"].startswith("measured open-loop at the latency SLO (p99 <= 1000 ms")
    assert plan["replicas"] == plan["replicas_for_peak"] + 2 >= 3
    assert sorted(p.name for p in (home / "prediction_log").iterdir()) == before  # its requests are not demand


def test_the_latency_objective_comes_from_the_slo_file_else_the_option(home: Path) -> None:
    assert latency_objective(home, "ctr") == (100.0, "default (100 ms; no serving_latency SLO for ctr)")
    assert latency_objective(home, "ctr", 250) == (250.0, "--latency-ms")
    (home / "slos.yaml").write_text(
        "service: yarnit-serving\nslos:\n"
        "  - {name: ctr-latency, sli: serving_latency, model: ctr, objective: 99, window: 30d, params: {threshold_ms: 80}}\n"
        "  - {name: any-latency, sli: serving_latency, objective: 99, window: 30d, params: {threshold_ms: 300}}\n"
        "  - {name: ranker-latency, sli: serving_latency, model: yarnit-ranker, objective: 99, window: 30d, "
        "params: {threshold_ms: 20}}\n")
    assert latency_objective(home, "ctr") == (80.0, "SLO yarnit-serving-ctr-latency (threshold_ms)")
    assert latency_objective(home, "other") == (300.0, "SLO yarnit-serving-any-latency (threshold_ms)")
    assert latency_objective(home, "ctr", 250) == (250.0, "--latency-ms")


@pytest.mark.slow  # `yarnit serve --workers 2`: a supervisor and two worker processes start
def test_a_measured_run_of_two_workers_plans_with_the_per_worker_figure(home: Path) -> None:
    _promote_a_ctr_model(home)
    result = runner.invoke(app, ["capacity", "ctr", "--measure-s", "2", "--latency-ms", "1000", "--workers", "2",
                                 "--json"], env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    measured = plan["measurement"]
    assert measured["workers"] == 2 and measured["steps"][measured["best_step"]]["passed"]
    assert measured["cache_hits"] == 0  # every worker ran without the prediction cache
    assert measured["rps_per_worker"] == pytest.approx(measured["rps"] / 2)
    assert plan["replica_rps"] == measured["rps_per_worker"]  # one replica is one process
    assert "2 workers" in plan["replica_rps_source"]
    peak = plan["forecast_peak_rps"] * plan["headroom"]
    assert plan["replicas_for_peak"] == max(1, math.ceil(peak / measured["rps_per_worker"] - 1e-9))


def test_a_measured_run_without_a_c_compiler_says_so_and_does_not_fall_back(home: Path, tmp_path: Path) -> None:
    _promote_a_ctr_model(home)
    (tmp_path / "no-compilers").mkdir()
    result = runner.invoke(app, ["capacity", "ctr", "--measure-s", "2"],
                           env={"YARNIT_HOME": str(home), "PATH": str(tmp_path / "no-compilers")})
    assert result.exit_code != 0 and "no C compiler (cc, gcc, clang) is on PATH" in result.stderr, result.output
    assert "Traceback" not in result.output and not (home / "loadtest" / "bin").exists()
