"""`yarnit backup`, `yarnit restore`, `yarnit artifacts gc`: --json, clear refusals with exit 1."""

from __future__ import annotations

import json
from pathlib import Path

from testsupport import register_ctr
from typer.testing import CliRunner

from yarnit.access import cli_actor
from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace

runner = CliRunner()


def test_backup_verify_restore_and_gc_from_the_command_line(tmp_path: Path) -> None:
    source, target, repo = tmp_path / "source", tmp_path / "target", str(tmp_path / "repo")
    with open_workspace(Settings.for_home(source)) as ws:
        register_ctr(ws, versions=2)
        orphan = ws.artifacts.put_bytes(b"left by a crashed writer").sha256
    made = runner.invoke(app, ["backup", "--repo", repo, "--json"], env={"YARNIT_HOME": str(source)})
    assert made.exit_code == 0, made.output
    report = json.loads(made.stdout)
    assert report["artifacts"] == 4 and report["skipped_unreferenced"] == 1  # 2 models + 2 reports; not the orphan
    assert report["tables"]["model_versions"] == 2

    listed = json.loads(runner.invoke(app, ["backup", "list", "--repo", repo, "--json"]).stdout)
    assert [b["id"] for b in listed] == [report["id"]]
    verified = runner.invoke(app, ["backup", "verify", "--repo", repo, "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"] is True
    pruned = runner.invoke(app, ["backup", "prune", "--repo", repo, "--keep", "1", "--json"],
                           env={"YARNIT_HOME": str(source)})
    assert pruned.exit_code == 0 and json.loads(pruned.stdout)["kept_backups"] == [report["id"]]

    restored = runner.invoke(app, ["restore", "--repo", repo, "--json"], env={"YARNIT_HOME": str(target)})
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["artifacts_added"] == 4
    with open_workspace(Settings.for_home(target)) as ws:
        assert ModelRegistry(ws).aliases("ctr") == {"production": 1}
    again = runner.invoke(app, ["restore", "--repo", repo], env={"YARNIT_HOME": str(target)})
    assert again.exit_code == 1 and "error: The target workspace is not empty" in again.stderr
    assert "--force" in again.stderr and "Traceback" not in again.output

    lkg = runner.invoke(app, ["restore", "--repo", repo, "--model", "ctr", "--json"], env={"YARNIT_HOME": str(target)})
    assert lkg.exit_code == 0, lkg.output
    assert json.loads(lkg.stdout) | {"backup_id": "", "artifact_sha256": ""} == {
        "backup_id": "", "model": "ctr", "version": 1, "alias": "production", "artifact_sha256": "",
        "artifact": "present", "version_row": "present", "evaluations_added": 0, "feature_views": [], "notes": []}
    with open_workspace(Settings.for_home(target)) as ws:  # the alias move names who ran it, like every CLI move
        assert [(e.action, e.actor) for e in ModelRegistry(ws).history("ctr", "production")][-1] == \
            ("restore", cli_actor())

    gc = runner.invoke(app, ["artifacts", "gc", "--json"], env={"YARNIT_HOME": str(source)})
    assert gc.exit_code == 0 and json.loads(gc.stdout)["newly_marked"] == [orphan]
    now = runner.invoke(app, ["artifacts", "gc", "--grace-hours", "0", "--json"], env={"YARNIT_HOME": str(source)})
    assert json.loads(now.stdout)["removed"] == [orphan]


def test_a_missing_repository_is_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["restore", "--repo", str(tmp_path / "nowhere")],
                           env={"YARNIT_HOME": str(tmp_path / "ws")})
    assert result.exit_code == 1 and "is not a yarnit backup repository" in result.stderr
    assert "yarnit backup --repo DIR" in result.stderr
