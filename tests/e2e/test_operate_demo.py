"""The operate demo, shortened: ten days of YarnIt over real HTTP, twice, with a serving and a data fault.

The platform is told nothing about the faults: the partner-feature outage must be paged by the input
completeness SLO within two simulated hours and answered by the fall-back policy (and undone when it clears);
the lost English-language logs must be ticketed by the loop's data checks before the next day is over and answered by
removing the bad window. The clean month (same seed) pages no one, and no request fails because of a rollout,
a rollback or a fallback. Both months run side by side in two processes, as ``yarnit demo`` runs them.
"""

from __future__ import annotations

import json
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest

from yarnit.core.errors import InvalidInput
from yarnit.demo.operate import OperateConfig, prepare_out, run_operate

# two simulated months in two processes: minutes, not the suite's default per-test timeout
pytestmark = pytest.mark.timeout(1800)
# the click model's pipeline with its evaluation trimmed to what a test needs (the gates still judge every run)
PIPELINE = {"bootstrap_resamples": 10, "golden_rows": 200, "slices": ["device"], "fairness_groups": []}
FAULTS = (
    ("partner_lookup@7+12:6", "serving", "ch. 11 story 2: suddenly useless partners"),
    ("biased_loss@8+12,language=en,events=all", "data", "ch. 11 story 1: searching but not finding"),
)


def test_ten_days_twice_catch_both_faults_page_no_one_when_clean_and_write_one_self_contained_report(tmp_path) -> None:
    """One test on purpose: the two months are minutes of work, and a module fixture shared by several tests
    would be built once per xdist worker."""
    out = tmp_path / "out"
    config = OperateConfig(days=10, sessions_per_day=150, faults=FAULTS, pipeline=PIPELINE)  # small: a test's budget
    report = run_operate(out, config), out
    _each_fault_is_detected_in_time_by_its_own_detector_and_mitigated(report)
    _the_clean_month_pages_no_one_and_no_request_failed_because_of_a_rollout_or_fallback(report)
    _the_report_is_one_self_contained_page_and_json(report)


def _each_fault_is_detected_in_time_by_its_own_detector_and_mitigated(report) -> None:
    data, _out = report
    rows = {f["name"]: f for f in data["faults"]}
    partner = rows["partner_lookup"]
    assert partner["detected_by"] == "ctr-inputs (page)" and partner["ttd_h"] is not None
    assert 0 < partner["ttd_h"] <= 2.0 and partner["met"]
    assert partner["action"] == "fall_back" and partner["recovered_at"] is not None
    loss = rows["biased_loss"]
    assert loss["detected_by"] == "loop data slice_volume (ticket)" and 0 < loss["ttd_h"] <= 24.0 and loss["met"]
    assert loss["action"] == "remove_bad_data"
    assert all(f["ctr_clean"] is not None and f["revenue_clean"] > 0 for f in data["faults"])


def _the_clean_month_pages_no_one_and_no_request_failed_because_of_a_rollout_or_fallback(report) -> None:
    data, _out = report
    targets = {t["name"].split(" (")[0]: t for t in data["targets"]}
    assert targets["pages in the clean month"]["met"], data["clean_alerts"]
    assert targets["failed requests not explained by an injected fault"]["met"]
    assert targets["platform steps that raised"]["met"], data["hook_errors"]
    clean = data["answered_by"]["clean"]
    assert not any(who.startswith("HTTP") for who in clean), clean  # the clean month: every page answered
    faulted = data["answered_by"]["faulted"]
    # the only refusals are the partner outage's own pages, before the fall-back switch answered them
    assert {w for w in faulted if not w.startswith(("ctr:v", "yarnit-ranker:v"))} <= {
        "HTTP 422", "ctr:heuristic", "HTTP 422 (yarnit-ranker)"}, faulted
    # a share of the pages went to yarnit-ranker, in both months, answered by named versions
    for run in ("faulted", "clean"):
        ranker = data["ranker"][run]["pages"]["yarnit-ranker"]
        assert sum(n for who, n in ranker.items() if who.startswith("yarnit-ranker:v")) > 0, data["ranker"]
    assert faulted.get("ctr:heuristic", 0) > 0  # the fall-back answered, named as the heuristic
    productions = {d["faulted"]["production"] for d in data["daily"]}
    assert len(productions) > 1, "daily retraining with staged rollouts promoted newer versions"
    assert targets["staged rollouts that reached production"]["met"]


def _the_report_is_one_self_contained_page_and_json(report) -> None:
    data, out = report
    page = (out / "report.html").read_text(encoding="utf-8")
    HTMLParser().feed(page)
    assert "partner_lookup" in page and "biased_loss" in page and "<svg" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert json.loads((out / "report.json").read_text())["faults"] == data["faults"]
    # the months ran on scratch workspaces (atomic writes, no fsync), and the report says so beside its wall time
    wall = next(t for t in data["targets"] if t["name"].startswith("wall time"))
    assert data["durable"] is False and "no fsync" in wall["value"]
    db = sqlite3.connect(out / "faulted" / "home" / "yarnit.db")  # unsynced, and still consistent
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def test_the_output_directory_is_replaced_only_when_it_holds_a_previous_demo(tmp_path) -> None:
    out = tmp_path / "out"
    (out / "faulted").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    assert prepare_out(out) == out and list(out.iterdir()) == []
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not a previous demo"):
        prepare_out(out)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(InvalidInput, match="10 to 60 days"):
        OperateConfig(days=5)
    with pytest.raises(InvalidInput, match="needs a day after it"):
        OperateConfig(days=10, faults=(("stockout@9", "data", "late"),))
