"""``yarnit data …`` and ``yarnit lineage show``: JSON output, progress, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from yarnit.cli import data, lineage

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(data.app, name="data")
cli.add_typer(lineage.app, name="lineage")

SCHEMA = """\
subject: user_id
slices: [country]
retention: events
columns:
  user_id: {type: string, nullable: false}
  country: {type: string, domain: [DE, FR]}
  price: {type: float64, min: 0, max: 100}
"""


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {"YARNIT_HOME": str(tmp_path / "home"), "YARNIT_DB_URL": db_url,
            "YARNIT_HMAC_KEY": "cli-test-key-0123456789abcdef0123"}


def run(env: dict[str, str], *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(cli, list(args), env=env, input=stdin)
    assert result.exit_code == code, result.output
    return result.stdout


def human(env: dict[str, str], *args: str) -> str:
    result = runner.invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output  # tables go to stderr, beside the progress bar


def write(tmp_path: Path, name: str, rows: int, *, country_fr: bool = True, bad_price: bool = False) -> Path:
    frame = pd.DataFrame({"user_id": [f"u{i % 7}" for i in range(rows)],
                          "country": ["DE", "FR"] * (rows // 2) if country_fr else ["DE"] * rows,
                          "price": [float(i % 90) for i in range(rows)]})
    if bad_price:
        frame.loc[0, "price"] = 999.0
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_data_commands_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA)
    day1 = write(tmp_path, "day1.csv", 400)
    made = json.loads(run(env, "data", "ingest", str(day1), "--name", "clicks", "--schema", str(schema), "--json"))
    assert made["ref"] == "clicks:v1" and made["row_count"] == 400 and made["subject_count"] == 7
    again = json.loads(run(env, "data", "ingest", str(day1), "--name", "clicks", "--schema", str(schema), "--json"))
    assert again["id"] == made["id"]
    listed = json.loads(run(env, "data", "list", "--json"))
    assert [r["ref"] for r in listed] == ["clicks:v1"]
    assert {"id", "name", "version", "row_count", "content_sha256", "created_at", "source"} <= set(listed[0])
    shown = json.loads(run(env, "data", "show", "clicks:v1", "--json"))
    assert shown["curated_schema"]["version"] == 1 and shown["retention_class"] == "events"
    stats = json.loads(run(env, "data", "stats", "clicks", "--column", "price", "--json"))
    assert stats["columns"]["price"]["max"] == 89.0 and stats["slices"]["country"] == {"DE": 200, "FR": 200}
    assert "clicks:v1" in human(env, "data", "list")

    ok = json.loads(run(env, "data", "validate", "clicks", "--json"))
    assert ok["ok"] and ok["anomalies"] == []
    # France vanishes and one price is out of range: validate exits non-zero and says why.
    day2 = write(tmp_path, "day2.csv", 400, country_fr=False, bad_price=True)
    run(env, "data", "ingest", str(day2), "--name", "clicks", "--schema", str(schema), "--parent", "clicks:v1")
    bad = json.loads(run(env, "data", "validate", "clicks:v2", "--json", code=1))
    assert {(a["kind"], a["column"]) for a in bad["anomalies"] if a["blocking"]} >= {
        ("out_of_range", "price"), ("slice_volume_change", "country")}
    assert bad["baseline"] == "clicks:v1"
    file_check = json.loads(run(env, "data", "validate", str(day2), "--schema", str(schema), "--json", code=1))
    assert file_check["target"] == str(day2)

    up = json.loads(run(env, "lineage", "show", "clicks:v2", "--up", "--json"))
    assert [n["label"] for n in up["nodes"]] == ["dataset:clicks:v2", "dataset:clicks:v1"]
    both = json.loads(run(env, "lineage", "show", "dataset:clicks:v1", "--json"))
    assert set(both) == {"up", "down"}
    assert "clicks:v2" in human(env, "lineage", "show", "clicks:v1", "--down")

    receipt = json.loads(run(env, "data", "forget", "--subject", "-", "--grace", "0d", "--json", stdin="u3\n"))
    assert [r["from"] for r in receipt["rewritten"]] == ["clicks:v1", "clicks:v2"]
    assert "u3" not in json.dumps(receipt)  # the id never appears in the receipt
    receipts = json.loads(run(env, "data", "receipts", "--json"))
    assert receipts[0]["id"] == receipt["id"]
    run(env, "data", "retention", "set", "events", "400d", "--grace", "7d", "--yes")
    retention = json.loads(run(env, "data", "enforce-retention", "--json"))
    assert retention["policies"]["events"]["max_age_days"] == 400 and retention["expired"] == []
    assert receipt["status"] == "completed" and receipt["remaining"] == []  # grace 0d: the old files went at once
    assert [v["status"] for v in json.loads(run(env, "data", "list", "--json"))][:2] == ["purged", "purged"]

    inferred = run(env, "data", "infer-schema", "clicks")
    assert "price:" in inferred and "type: float64" in inferred


def test_errors_are_one_line_with_the_location(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    result = runner.invoke(cli, ["data", "ingest", str(bad), "--name", "bad"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: {bad}, line 3: has 1 fields where the header has 2 (a, b). "
                                     "Quote values that contain ',', or fix the line.")
    typo = tmp_path / "s.yaml"
    typo.write_text("columns:\n  a: {type: int64, nulable: true}\n")
    result = runner.invoke(cli, ["data", "validate", str(bad), "--schema", str(typo)], env=env)
    assert result.exit_code == 1 and "line 2: unknown key 'nulable'" in result.output
    result = runner.invoke(cli, ["data", "show", "nothing:v4"], env=env)
    assert result.exit_code == 1 and "no version 4 of dataset 'nothing'" in result.output
