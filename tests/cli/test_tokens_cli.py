"""``yarnit tokens`` and ``yarnit access``: named tokens, the CLI's OS-user actor, audited raw reads."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from yarnit.access import RestrictedReads, cli_actor
from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.storage import open_workspace

from testsupport import ingest_shoppers, register_ctr

runner = CliRunner()


def _env(home: Path) -> dict[str, str]:
    return {"YARNIT_HOME": str(home)}


def test_tokens_issue_list_revoke_and_the_secret_is_shown_once(tmp_path: Path) -> None:
    env = _env(tmp_path / "ws")
    issued = runner.invoke(app, ["tokens", "issue", "retrain-bot", "--role", "write", "--json"], env=env)
    assert issued.exit_code == 0, issued.output
    body = json.loads(issued.stdout)
    secret = body["token"]
    assert secret.startswith("yit_") and body["created_by"] == cli_actor() and body["status"] == "active"
    listed = runner.invoke(app, ["tokens", "list", "--json"], env=env)
    assert secret not in listed.stdout and json.loads(listed.stdout)[0]["roles"] == ["write"]
    assert secret.encode() not in (tmp_path / "ws" / "yarnit.db").read_bytes()  # hashed at rest
    revoked = json.loads(runner.invoke(app, ["tokens", "revoke", "retrain-bot", "--json"], env=env).stdout)
    assert revoked["status"] == "revoked" and revoked["revoked_by"] == cli_actor()
    again = runner.invoke(app, ["tokens", "issue", "retrain-bot", "--role", "write"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    unknown = runner.invoke(app, ["tokens", "revoke", "nobody"], env=env)
    assert unknown.exit_code == 1 and "No token named 'nobody'" in unknown.output


def test_cli_alias_moves_record_the_os_user(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    register_ctr(ws)
    ws.close()
    env = _env(tmp_path / "ws")
    assert runner.invoke(app, ["models", "promote", "ctr", "2", "--json"], env=env).exit_code == 0
    assert runner.invoke(app, ["models", "rollback", "ctr", "--json"], env=env).exit_code == 0
    history = json.loads(runner.invoke(app, ["models", "history", "ctr", "--json"], env=env).stdout)
    assert cli_actor().startswith("user:") and len(cli_actor()) > len("user:")
    assert [h["actor"] for h in history[-2:]] == [cli_actor(), cli_actor()]


def test_access_read_is_compliant_and_raw_needs_a_token_file_with_the_role(tmp_path: Path) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    ingest_shoppers(ws)
    ws.close()
    env = _env(tmp_path / "ws")
    plain = runner.invoke(app, ["access", "read", "shoppers", "--json"], env=env)
    assert plain.exit_code == 0, plain.output
    rows = json.loads(plain.stdout)["rows"]
    assert "age" not in rows[0] and [r["age_band"] for r in rows] == ["<18", "25-35", "35-50", "65+"]
    no_token = runner.invoke(app, ["access", "read", "shoppers", "--raw", "age", "--purpose", "audit"], env=env)
    assert no_token.exit_code == 1 and "--token-file" in no_token.output
    writer = json.loads(runner.invoke(app, ["tokens", "issue", "ops", "--role", "write", "--json"], env=env).stdout)
    (tmp_path / "ops.token").write_text(writer["token"] + "\n")
    refused = runner.invoke(app, ["access", "read", "shoppers", "--raw", "age", "--purpose", "audit",
                                  "--token-file", str(tmp_path / "ops.token")], env=env)
    assert refused.exit_code == 1 and "not 'read-restricted'" in refused.output
    reader = json.loads(runner.invoke(app, ["tokens", "issue", "legal", "--role", "read-restricted", "--json"],
                                      env=env).stdout)
    raw = runner.invoke(app, ["access", "read", "shoppers:v1", "--column", "age", "--raw", "age", "--purpose",
                              "legal hold review", "--token-file", "-", "--json"], env=env, input=reader["token"])
    assert raw.exit_code == 0, raw.output
    assert [r["age"] for r in json.loads(raw.stdout)["rows"]] == [17, 30, 44, 70]
    log = json.loads(runner.invoke(app, ["access", "log", "--dataset", "shoppers", "--json"], env=env).stdout)
    assert [(r["actor"], r["via"], r["columns"], r["purpose"]) for r in log] == [
        ("token:legal", "cli", ["age"], "legal hold review")]
    runner.invoke(app, ["tokens", "revoke", "legal"], env=env)
    revoked = runner.invoke(app, ["access", "read", "shoppers", "--raw", "age", "--purpose", "again",
                                  "--token-file", "-"], env=env, input=reader["token"])
    assert revoked.exit_code == 1 and "wrong or revoked" in revoked.output
    ws = open_workspace(Settings.for_home(tmp_path / "ws"))
    assert len(RestrictedReads(ws).log()) == 1
    ws.close()
