"""The CLI: version, init, --json, one-line errors with non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testsupport import register_ctr
from typer.testing import CliRunner

import yarnit
from yarnit.access import cli_actor
from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.storage import head_revision, open_workspace

runner = CliRunner()


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"YARNIT_HOME": str(home), **extra}


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"yarnit {yarnit.__version__}"


def test_init_creates_the_workspace_and_reports_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "--json"], env=env_for(tmp_path / "ws"))
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["home"] == str(tmp_path / "ws") and info["schema_revision"] == head_revision()
    assert (tmp_path / "ws" / "yarnit.db").exists() and (tmp_path / "ws" / "artifacts").is_dir()


def test_models_commands_promote_and_roll_back(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    register_ctr(ws)
    ws.close()
    env = env_for(tmp_path / "ws")
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"], env=env).stdout)
    assert listed[0]["name"] == "ctr" and listed[0]["aliases"] == {"production": 1}
    promoted = runner.invoke(app, ["models", "promote", "ctr", "2", "--reason", "better", "--json"], env=env)
    assert promoted.exit_code == 0 and json.loads(promoted.stdout)["to_version"] == 2
    rolled = runner.invoke(app, ["models", "rollback", "ctr", "--json"], env=env)
    assert json.loads(rolled.stdout)["to_version"] == 1
    history = json.loads(runner.invoke(app, ["models", "history", "ctr", "--json"], env=env).stdout)
    assert [h["action"] for h in history] == ["promote", "promote", "rollback"]
    shown = json.loads(runner.invoke(app, ["models", "show", "ctr", "--json"], env=env).stdout)
    assert [v["version"] for v in shown["versions"]] == [1, 2]


def test_user_errors_print_one_line_and_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "show", "nope"], env=env_for(tmp_path / "ws"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: There is no model named 'nope'. List models with: yarnit models list"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [("YARNIT_DB_URL", "oracle://db", "has scheme 'oracle'"), ("YARNIT_API_TOKEN", "abc", "at least 16")],
)
def test_bad_environment_fails_fast_with_one_line(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    env.update(env_for(tmp_path / "ws", **{variable: value}))
    proc = subprocess.run([sys.executable, "-m", "yarnit", "init"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("error: ")


def test_workspace_from_a_newer_yarnit_is_a_clear_error(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    with ws.metadata.begin() as conn:
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('ffff')")
    ws.close()
    result = runner.invoke(app, ["init"], env=env_for(tmp_path / "ws"))
    assert result.exit_code == 1 and "written by a newer yarnit" in result.stderr


def test_models_traffic_sets_the_canary_share_audited_and_kept_for_every_process(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    register_ctr(ws)
    ws.close()
    env = env_for(tmp_path / "ws")
    shown = json.loads(runner.invoke(app, ["models", "traffic", "ctr", "--json"], env=env).stdout)
    assert shown["policy"] == {"canary_percent": 0.0, "shadow": True} and shown["history"] == []
    changed = runner.invoke(app, ["models", "traffic", "ctr", "--canary-percent", "12.5", "--no-shadow",
                                  "--reason", "try v2", "--json"], env=env)
    assert changed.exit_code == 0, changed.output
    body = json.loads(changed.stdout)
    assert body["policy"] == {"canary_percent": 12.5, "shadow": False}
    assert (body["changed"]["actor"], body["changed"]["reason"]) == (cli_actor(), "try v2")
    # another process (a server worker) reads the same policy from the workspace database
    from yarnit.serving.router import TrafficPolicyStore
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    try:
        assert TrafficPolicyStore(ws).get("ctr").canary_percent == 12.5
    finally:
        ws.close()
    bad = runner.invoke(app, ["models", "traffic", "ctr", "--canary-percent", "150"], env=env)
    assert bad.exit_code == 1 and "canary_percent must be within [0, 100]; got 150" in bad.output
    unknown = runner.invoke(app, ["models", "traffic", "nope"], env=env)
    assert unknown.exit_code == 1 and "nope" in unknown.output


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    """The single 'error: …' line a failed command printed (and that it printed nothing else on stderr)."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def ctr_home(tmp_path: Path) -> Path:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    register_ctr(ws)
    import pandas as pd

    from yarnit.data import Datasets
    Datasets(ws).ingest_frame("okname", pd.DataFrame({"x": [1, 2]}), source="test")
    ws.close()
    return tmp_path / "ws"


@pytest.mark.parametrize("args", [
    ["data", "show", "okname:v99999999999999999999"],
    ["models", "promote", "ctr", "99999999999999999999"],
    ["lineage", "show", "okname:v99999999999999999999"],
    ["lineage", "show", "model:ctr:v99999999999999999999"],
])
def test_a_version_past_64_bits_is_a_one_line_error(ctr_home: Path, args: list[str]) -> None:
    line = _one_error_line(runner.invoke(app, args, env=env_for(ctr_home)))
    assert "versions are whole numbers from 1 to 2147483647" in line and "99999999999999999999" in line


def test_predict_batch_of_a_non_parquet_file_is_a_one_line_error(ctr_home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("fiber,price\nmerino,3\n")
    env = env_for(ctr_home)
    line = _one_error_line(runner.invoke(app, ["predict-batch", "ctr", str(csv), str(tmp_path / "o.parquet")], env=env))
    assert "is not a readable Parquet file" in line
    line = _one_error_line(runner.invoke(app, ["predict-batch", "../../x", str(csv), str(tmp_path / "o.parquet")],
                                         env=env))
    assert "no model named '../../x'" in line


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(ctr_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from yarnit.registry import ModelRegistry

    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(ModelRegistry, "list_models", broken)
    line = _one_error_line(runner.invoke(app, ["models", "list"], env=env_for(ctr_home)))
    assert line.startswith("error: unexpected RuntimeError: disk on fire second line") and "--debug" in line
    debug = runner.invoke(app, ["--debug", "models", "list"], env=env_for(ctr_home))
    assert isinstance(debug.exception, RuntimeError)


def test_a_reason_with_an_escape_sequence_is_refused(ctr_home: Path) -> None:
    env = env_for(ctr_home)
    line = _one_error_line(runner.invoke(app, ["models", "promote", "ctr", "2", "--reason", "ok\x1b[2J"], env=env))
    assert "control character \\x1b at position 2" in line
    line = _one_error_line(runner.invoke(app, ["models", "traffic", "ctr", "--canary-percent", "5", "--reason",
                                               "\x1b]0;pwned\x07"], env=env))
    assert "control character" in line
    history = json.loads(runner.invoke(app, ["models", "history", "ctr", "--json"], env=env).stdout)
    assert [h["to_version"] for h in history] == [1]  # nothing was written


def test_history_shows_control_characters_already_stored_as_escapes(ctr_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from yarnit.cli.common import console
    from yarnit.storage.schema import alias_events

    monkeypatch.setattr(console, "width", 200)  # wide enough that the reason stays on one line (the console's
    # width is read once, when it is created, so COLUMNS alone depends on which test imported the CLI first)

    ws = open_workspace(Settings.for_home(ctr_home))
    with ws.metadata.begin() as conn:  # a row written before input was checked
        conn.execute(update(alias_events).values(reason="evil\x1b]0;pwned\x07\x1b[2J\x9b1m"))
    ws.close()
    result = runner.invoke(app, ["models", "history", "ctr"], env={**env_for(ctr_home), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "\x1b]" not in result.output and "\x07" not in result.output and "\x9b" not in result.output
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x9b1m" in result.output
    as_json = runner.invoke(app, ["models", "history", "ctr", "--json"], env=env_for(ctr_home)).stdout
    assert "\x1b" not in as_json and json.loads(as_json)[0]["reason"].startswith("evil\x1b]")


def test_lineage_show_upstream_and_export_openlineage(ctr_home: Path, tmp_path: Path) -> None:
    env = env_for(ctr_home)
    up = runner.invoke(app, ["lineage", "show", "model:ctr:v1", "--upstream", "--json"], env=env)
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["direction"] == "up"
    down = json.loads(runner.invoke(app, ["lineage", "show", "model:ctr:v1", "--downstream", "--json"],
                                    env=env).stdout)
    assert {n["kind"] for n in down["nodes"]} == {"model_version", "evaluation", "deployment"}  # blessed, promoted
    exported = runner.invoke(app, ["lineage", "export", "model:ctr:v1", "--format", "openlineage"], env=env)
    assert exported.exit_code == 0, exported.output
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted((e["eventType"], e["job"]["name"]) for e in events) == [("COMPLETE", "deploy:ctr:production"),
                                                                          ("COMPLETE", "evaluate")]
    target = tmp_path / "events.jsonl"
    assert runner.invoke(app, ["lineage", "export", "model:ctr:v1", "-o", str(target)], env=env).exit_code == 0
    assert target.read_text() == exported.stdout
    line = _one_error_line(runner.invoke(app, ["lineage", "export", "model:ctr:v1", "--format", "dot"], env=env))
    assert "--format 'dot' is not supported" in line


def test_history_does_not_turn_stored_markup_into_terminal_hyperlinks(ctr_home: Path) -> None:
    from sqlalchemy import update

    from yarnit.storage.schema import alias_events

    ws = open_workspace(Settings.for_home(ctr_home))
    with ws.metadata.begin() as conn:
        conn.execute(update(alias_events).values(reason="see [link=https://evil.example]the runbook[/link]"))
    ws.close()
    env = {**os.environ, "YARNIT_HOME": str(ctr_home), "FORCE_COLOR": "1", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "yarnit", "models", "history", "ctr"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" in proc.stderr  # a colour terminal: rich does emit escapes of its own here
    assert "\x1b]8;" not in proc.stderr and "[link=https://evil.example]the runbook[/link]" in proc.stderr


@pytest.mark.parametrize(("columns", "expected"), [(None, "160"), ("100", "100")])
def test_human_output_into_a_pipe_or_a_log_is_not_squeezed_to_80_columns(columns: str | None, expected: str) -> None:
    # `make demo > demo.log` printed the fault table one word a line: rich lays out for 80 columns off a terminal
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | ({"COLUMNS": columns} if columns else {})
    done = subprocess.run([sys.executable, "-c", "from yarnit.cli.common import console; print(console.width)"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=True)
    assert done.stdout.strip() == expected
