"""``yarnit slo check`` and ``yarnit slo rules`` through the real CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from yarnit.cli.app import app

runner = CliRunner()
SLOS = """\
service: yarnit-serving
slos:
  - name: ctr-availability
    sli: serving_availability
    model: ctr
    objective: 99.9
    window: 28d
    prometheus:
      errors: 'yarnit_serving_requests_total{model="ctr",served_by!="model"}'
      total: 'yarnit_serving_requests_total{model="ctr"}'
  - name: training-data-freshness
    sli: data_freshness
    objective: 99
    params: {max_age: 26h}
"""


def test_slo_rules_writes_sloth_named_rules_and_says_what_it_skipped(tmp_path):
    (tmp_path / "slos.yaml").write_text(SLOS)
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["slo", "rules", str(tmp_path / "slos.yaml"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["groups"] == 1 and summary["skipped"] == ["training-data-freshness"]
    doc = yaml.safe_load(out.read_text())
    rules = doc["groups"][0]["rules"]
    assert rules[0]["record"] == "slo:sli_error:ratio_rate5m" and rules[0]["labels"]["sloth_window"] == "5m"
    period = next(r for r in rules if r["record"] == "slo:sli_error:ratio_rate28d" if "record" in r)
    assert period["labels"]["sloth_slo"] == "ctr-availability"


def test_slo_check_lists_the_slos_and_rejects_a_100_percent_objective(tmp_path):
    (tmp_path / "slos.yaml").write_text(SLOS)
    listed = json.loads(runner.invoke(app, ["slo", "check", str(tmp_path / "slos.yaml"), "--json"]).stdout)
    assert [s["slo"] for s in listed["slos"]] == ["ctr-availability", "training-data-freshness"]
    assert listed["slos"][0]["alerts"][0] == {"severity": "page", "long": "1h", "short": "5m", "burn_rate": 14.4}
    (tmp_path / "bad.yaml").write_text(SLOS.replace("objective: 99.9", "objective: 100"))
    result = runner.invoke(app, ["slo", "check", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1
    assert "slos[0] (ctr-availability).objective is 100; it must satisfy 0 < objective < 100" in result.output
    assert str(tmp_path) not in result.output


def _counts_line(slo: str, at: str, good: int, total: int) -> str:
    return json.dumps({"slo": slo, "at": at, "good": good, "total": total})


def test_slo_status_reads_counts_and_reports_page_budget_and_no_data(tmp_path):
    (tmp_path / "slos.yaml").write_text(SLOS)
    lines = [_counts_line("ctr-availability", f"2026-03-01T10:{m:02d}:00Z", 1000, 1000) for m in range(50)]
    lines += [_counts_line("ctr-availability", f"2026-03-01T10:{m:02d}:00Z", 0, 1000) for m in range(50, 55)]
    (tmp_path / "counts.jsonl").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["slo", "status", str(tmp_path / "slos.yaml"), "--counts",
                                 str(tmp_path / "counts.jsonl"), "--at", "2026-03-01T10:55:00Z", "--json"])
    assert result.exit_code == 0, result.output
    by_name = {s["slo"]: s for s in json.loads(result.stdout)["slos"]}
    ctr = by_name["ctr-availability"]
    assert ctr["state"] == "page" and ctr["budget_exhausted"]
    assert ctr["period"] == {"window": "28d", "good": 50_000, "total": 55_000, "error_ratio": 5 / 55,
                             "burn_rate": pytest.approx(5 / 55 * 1000)}
    assert by_name["training-data-freshness"]["state"] == "no_data"
    assert by_name["training-data-freshness"]["budget_remaining"] is None
    human = runner.invoke(app, ["slo", "status", str(tmp_path / "slos.yaml"), "--counts",
                                str(tmp_path / "counts.jsonl"), "--at", "2026-03-01T10:55:00Z"])
    assert human.exit_code == 0 and "page" in human.output and "no data" in human.output


@pytest.mark.parametrize(("line", "message"), [
    ('{"slo": "ctr-availability", "at": "2026-03-01T10:00:00", "good": 1, "total": 1}', "with a zone"),
    ('{"slo": "nope", "at": 0, "good": 1, "total": 1}', "slo 'nope' is not in the SLO file; known: ctr-availability"),
    ('{"slo": "ctr-availability", "at": 0, "good": 2, "total": 1}', "0 <= good <= total, got good=2, total=1"),
    ('{"slo": "ctr-availability", "at": 0}', "exactly the keys slo, at, good, total"),
    ("not json", "is not JSON"),
])
def test_slo_status_names_the_bad_counts_line(tmp_path, line, message):
    (tmp_path / "slos.yaml").write_text(SLOS)
    good = _counts_line("ctr-availability", "2026-03-01T10:00:00Z", 1, 1)
    (tmp_path / "counts.jsonl").write_text(good + "\n" + line + "\n")
    result = runner.invoke(app, ["slo", "status", str(tmp_path / "slos.yaml"), "--counts",
                                 str(tmp_path / "counts.jsonl")])
    assert result.exit_code == 1
    assert "counts.jsonl line 2" in result.output and message in result.output
