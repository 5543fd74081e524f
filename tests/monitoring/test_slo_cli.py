"""``yarnit slo check`` and ``yarnit slo rules`` through the real CLI."""

from __future__ import annotations

import json

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
