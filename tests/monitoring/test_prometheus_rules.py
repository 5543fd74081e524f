"""Generated Prometheus rules pass promtool, and fire on the same minutes as yarnit's evaluator.

Each scenario of test_burn_rate_alerts.py is replayed twice: through
:class:`BurnRateMonitor` on a simulated clock, and as two counters in a
``promtool test rules`` case that expects, at every minute where yarnit's page,
ticket or no-data state changed (and the minute before), exactly the alerts
yarnit reported.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from testsupport.slo_scenarios import (
    PROMETHEUS,
    Segment,
    counter_values,
    promtool_test,
    run_scenario,
    transition_minutes,
)
from yarnit.monitoring import parse_slo_file
from yarnit.monitoring.rules import rules_yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install "
                                                             "prometheus; .ci/run installs it)")
# promtool evaluates every rule every minute from the first sample, so the replays keep history to one day
# and swap the 3 d / 6 h ticket for the workbook's other ticket pair, 24 h / 2 h at 3x (the 3 d pair at 1.2x
# is timed by test_burn_rate_alerts.py, on yarnit's evaluator alone).
CLEAN_1D = Segment(24 * 60, 10_000, 10_000)
TICKET_1D = {"ticket": [{"long": "1d", "short": "2h", "burn_rate": 3}]}
CLEAN_6H, PAGE_ONLY = Segment(6 * 60, 10_000, 10_000), {"ticket": []}  # page pairs need six hours of history


def _spec(**alerting: Any):
    item = {"name": "ctr-availability", "sli": "serving_availability", "model": "ctr", "objective": 99.9,
            "window": "30d", "prometheus": PROMETHEUS}
    if alerting:
        item["alerting"] = alerting
    return parse_slo_file({"service": "yarnit-serving", "slos": [item]})


def _promtool(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _rules_file(spec, tmp_path):
    (tmp_path / "rules.yml").write_text(rules_yaml(spec))
    return "rules.yml"


@needs_promtool
def test_generated_rules_pass_promtool_check_and_use_sloth_names(tmp_path):
    spec = _spec()
    result = _promtool("check", "rules", _rules_file(spec, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = yaml.safe_load((tmp_path / "rules.yml").read_text())
    records = {r.get("record") for g in doc["groups"] for r in g["rules"]}
    assert {"slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate1h", "slo:sli_error:ratio_rate30d",
            "slo:error_budget:ratio", "slo:objective:ratio", "slo:time_period:days", "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio", "slo:period_error_budget_remaining:ratio", "sloth_slo_info"} <= records
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    assert [(a["alert"], a["labels"].get("sloth_severity")) for a in alerts] == [
        ("CtrAvailabilityErrorBudgetBurn", "page"), ("CtrAvailabilityErrorBudgetBurn", "ticket"),
        ("CtrAvailabilityNoData", "ticket")]


SCENARIOS = {
    # name: (segments, history, alerting overrides, evaluate_from)
    "full_outage_then_recovery": ([Segment(10, 0, 10_000), Segment(45, 10_000, 10_000)], CLEAN_1D, TICKET_1D, 1),
    "burn_15x": ([Segment(70, 9_850, 10_000)], CLEAN_6H, PAGE_ONLY, 1),
    "burn_28_8x": ([Segment(40, 9_712, 10_000)], CLEAN_6H, PAGE_ONLY, 1),
    "burn_6_5x": ([Segment(340, 9_935, 10_000)], CLEAN_6H, PAGE_ONLY, 1),
    "exactly_14_4x": ([Segment(130, 9_856, 10_000)], CLEAN_6H, PAGE_ONLY, 1),
    "five_minutes_of_one_percent": ([Segment(5, 9_900, 10_000), Segment(70, 10_000, 10_000)], CLEAN_6H, PAGE_ONLY, 1),
    "low_traffic_guarded": ([Segment(5, 0, 0), Segment(1, 1, 1)] * 20 + [Segment(5, 0, 0), Segment(1, 0, 1),
                                                                          Segment(10, 0, 0)], None, TICKET_1D, 1),
    "low_traffic_min_events_10": ([Segment(5, 0, 0), Segment(1, 1, 1)] * 20 + [Segment(5, 0, 0), Segment(1, 0, 1),
                                                                                Segment(10, 0, 0)], None,
                                  {**TICKET_1D, "min_events": 10}, 1),
    "ticket_5x": ([Segment(880, 9_950, 10_000)], CLEAN_1D, TICKET_1D, 840),
    "traffic_stops": ([Segment(20, 10_000, 10_000), Segment(80, 0, 0)], CLEAN_1D, TICKET_1D, 1),
}


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_prometheus_rules_fire_on_the_same_minutes_as_yarnit(name, tmp_path):
    segments, history, alerting, evaluate_from = SCENARIOS[name]
    spec = _spec(**alerting)
    slo = spec.slos[0]
    trace = run_scenario(slo, segments, history=history, evaluate_from=evaluate_from)
    minutes = transition_minutes(trace)
    case = promtool_test(slo, trace, segments, history, minutes)
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, (minutes, result.stdout[-3000:] + result.stderr[-3000:])
    fired = [c for c in case["alert_rule_test"] if c["exp_alerts"] and c["alertname"] == slo.alert_name]
    silent = name in ("exactly_14_4x", "five_minutes_of_one_percent", "low_traffic_guarded", "traffic_stops")
    assert (not fired) == silent  # the scenarios that alert are compared on the firing minutes too
    if name == "traffic_stops":
        assert any(c["exp_alerts"] for c in case["alert_rule_test"] if c["alertname"].endswith("NoData"))


@needs_promtool
def test_promtool_would_catch_a_rule_that_fires_one_minute_late(tmp_path):
    """The comparison can fail: expecting the 15x page one minute early is reported by promtool."""
    spec = _spec(**PAGE_ONLY)
    slo = spec.slos[0]
    segments = [Segment(70, 9_850, 10_000)]
    trace = run_scenario(slo, segments, history=CLEAN_6H)
    fired = trace.first("page")
    trace.statuses[fired - 1] = trace.statuses[fired]  # a wrong expectation: firing a minute before yarnit did
    case = promtool_test(slo, trace, segments, CLEAN_6H, [fired - 1])
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "CtrAvailabilityErrorBudgetBurn" in result.stdout + result.stderr


@needs_promtool
def test_two_slos_in_one_file_do_not_read_each_others_series(tmp_path):
    """Recording names are shared (as in Sloth); the sloth_* matchers keep a burning SLO from paging the other."""
    recs = {"name": "recs-availability", "sli": "serving_availability", "model": "recs", "objective": 99,
            "window": "30d", "alerting": PAGE_ONLY,
            "prometheus": {key: value.replace('model="ctr"', 'model="recs"') for key, value in PROMETHEUS.items()}}
    ctr = {**recs, "name": "ctr-availability", "model": "ctr", "objective": 99.9, "prometheus": PROMETHEUS}
    spec = parse_slo_file({"service": "yarnit-serving", "slos": [ctr, recs]})
    segments = [Segment(70, 9_850, 10_000)]  # ctr burns 15x of its 0.1 % budget; recs (1 % budget) is clean
    ctr_slo, recs_slo = spec.slos
    trace = run_scenario(ctr_slo, segments, history=CLEAN_6H)
    fired = trace.first("page")
    case = promtool_test(ctr_slo, trace, segments, CLEAN_6H, [fired - 1, fired])
    clean = Segment(CLEAN_6H.minutes + 70, 10_000, 10_000)
    recs_case = promtool_test(recs_slo, run_scenario(recs_slo, [clean]), [clean], None, [CLEAN_6H.minutes + fired])
    case["input_series"] += [{"series": s["series"].replace('model="ctr"', 'model="recs"'), "values": s["values"]}
                             for s in recs_case["input_series"]]
    case["alert_rule_test"] += recs_case["alert_rule_test"]
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [c["exp_alerts"] for c in recs_case["alert_rule_test"]] == [[], []]


@needs_promtool
def test_the_example_slo_file_in_docs_validates_and_its_rules_pass_promtool(tmp_path):
    from pathlib import Path

    from yarnit.monitoring import SLI_KINDS, load_slo_file

    spec = load_slo_file(Path(__file__).parents[2] / "docs" / "slos.yaml")
    assert sorted({s.sli for s in spec.slos}) == sorted(SLI_KINDS)  # one example per SLI kind
    result = _promtool("check", "rules", _rules_file(spec, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: " in result.stdout


@needs_promtool
def test_a_latency_slo_counts_bad_events_as_total_minus_good(tmp_path):
    latency = {"name": "ctr-latency", "sli": "serving_latency", "objective": 99.9, "window": "30d",
               "params": {"threshold_ms": 100}, "alerting": PAGE_ONLY,
               "prometheus": {"good": 'lat_bucket{le="0.1"}', "total": "lat_count"}}
    spec = parse_slo_file({"service": "yarnit-serving", "slos": [latency]})
    slo = spec.slos[0]
    segments = [Segment(70, 9_850, 10_000)]
    trace = run_scenario(slo, segments, history=CLEAN_6H)
    fired = trace.first("page")
    case = promtool_test(slo, trace, segments, CLEAN_6H, [fired - 1, fired])
    runs = [CLEAN_6H, *segments]  # the same scenario as a histogram: a good-bucket counter and a total counter
    case["input_series"] = [{"series": 'lat_bucket{le="0.1"}', "values": counter_values([(r.good, r.minutes)
                                                                                          for r in runs])},
                            {"series": "lat_count", "values": counter_values([(r.total, r.minutes) for r in runs])}]
    assert case["alert_rule_test"][2]["exp_alerts"]  # at the firing minute yarnit pages; promtool must agree
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@needs_promtool
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])  # seeds 3-12 also agreed when this was written
def test_random_bursts_agree_with_prometheus_on_every_minute(seed, tmp_path):
    """Seeded bursts, quiet stretches and an hour of silence: page and no-data compared minute by minute."""
    import random

    rng = random.Random(seed)
    segments: list[Segment] = []
    for _ in range(25):
        total = rng.choice([0, 100, 10_000, 10_000])
        bad = min(total, rng.choice([0, 0, 5, 50, 144, 145, 300, 10_000]) * total // 10_000)
        segments.append(Segment(rng.randint(1, 12), total - bad, total))
    segments.insert(rng.randint(5, 20), Segment(65, 0, 0))  # long enough for the no-data state
    spec = _spec(**PAGE_ONLY, min_events=50)
    slo = spec.slos[0]
    trace = run_scenario(slo, segments, history=CLEAN_6H)
    case = promtool_test(slo, trace, segments, CLEAN_6H, sorted(trace.statuses))
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    states = {s.state for s in trace.statuses.values()}
    assert {"ok", "page", "no_data"} <= states  # the comparison covered all three states


@needs_promtool
def test_a_missing_counter_is_no_data_not_silence(tmp_path):
    """No series at all (the exporter is gone): the no-data alert fires from absent(), and no burn alert does."""
    from yarnit.monitoring.rules import alert_annotations, alert_labels, no_data_alert_name

    spec = _spec(**PAGE_ONLY)
    slo = spec.slos[0]
    nodata = [{"exp_labels": alert_labels(slo, "no_data"), "exp_annotations": alert_annotations(slo, "no_data")}]
    case = {"interval": "1m", "input_series": [{"series": 'up{job="yarnit"}', "values": "1x30"}],
            "alert_rule_test": [{"eval_time": "10m", "alertname": no_data_alert_name(slo), "exp_alerts": nodata},
                                {"eval_time": "10m", "alertname": slo.alert_name, "exp_alerts": []}]}
    doc = {"rule_files": [_rules_file(spec, tmp_path)], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
