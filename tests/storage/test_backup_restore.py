"""Backup and restore (issue 20): the DR drill across backends, incremental blobs, refusals, all-or-nothing,
and the last-known-good restore of one model with its feature views."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import _pg_schema_url, postgres_url
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from yarnit.api import create_app
from yarnit.core import MissingDependency, Settings, SimulatedClock, utc
from yarnit.features import FeatureRegistry, FeatureView, feature_view
from yarnit.recipes import ctr_pipeline
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn, restore_last_known_good
from yarnit.storage import ArtifactCorrupted, Workspace, open_workspace
from yarnit.storage.backup import BackupCorrupted, BackupRepository, create_backup, prune_backups, verify_backup
from yarnit.storage.restore import RestoreFailed, WorkspaceNotEmpty, restore_workspace, target_contents
from yarnit.training import PipelineRunner

pytestmark = pytest.mark.timeout(240)

TRAIN = {"days": 2, "sessions_per_day": 200}


def _view(window_days: int = 7) -> FeatureView:
    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=1),
                  sources=("impressions",), params={"window_days": window_days}, owner="ranking")
    def user_clicks(window_days: int) -> str:
        return f"SELECT user_id, max(event_time) AS event_time, count(*) AS clicks FROM impressions " \
               f"WHERE event_time > now() - INTERVAL {window_days} DAY GROUP BY user_id"

    return user_clicks


class Source:
    """A trained, served workspace (ctr recipe, production v1, a feature view it reads) and its backup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = SimulatedClock(utc(2026, 1, 5, 9))
        self.ws = open_workspace(Settings.for_home(root / "source"), self.clock)
        PipelineRunner(self.ws).run(ctr_pipeline(), config=TRAIN)
        FeatureRegistry(self.ws).apply([_view()])
        FeatureRegistry(self.ws).add_consumer("user_clicks", "ctr")
        self.probe = ModelRegistry(self.ws).get("ctr", 1).signature["probe"]
        self.predictions = predictions(self.ws, self.probe)
        self.repo = BackupRepository(root / "repo")
        self.first = create_backup(self.ws, self.repo)

    def fresh(self, name: str, db_url: str | None = None) -> Workspace:
        return open_workspace(Settings.for_home(self.root / name, db_url=db_url), self.clock)


def predictions(ws: Workspace, instances: list[dict[str, Any]]) -> bytes:
    """What the data plane answers for ``instances``: the predictions, as the bytes of their JSON."""
    app = create_app(ws, refresh_s=0.0)
    try:
        with TestClient(app) as http:
            response = http.post("/v1/models/ctr:predict", json={"instances": instances})
    finally:
        app.state.serving.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == 1 and body["served_by"] == "model"
    return json.dumps(body["predictions"]).encode()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    made = Source(tmp_path_factory.mktemp("backup"))
    yield made
    made.ws.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_schema_url(postgres_url())


def test_dr_drill_restores_onto_the_other_backend_and_serves_byte_identical_predictions(
        source: Source, pg_url: str, tmp_path: Path) -> None:
    # SQLite -> PostgreSQL
    pg = source.fresh("drill-pg", db_url=pg_url)
    restored = restore_workspace(pg, source.repo)
    assert (restored.source_dialect, restored.target_dialect) == ("sqlite", "postgresql")
    assert restored.tables == source.first.tables and restored.artifacts_added == source.first.artifacts
    assert predictions(pg, source.probe) == source.predictions
    # the restored workspace keeps working: a new audited alias move gets the next id (sequences moved on)
    event = ModelRegistry(pg).set_alias("ctr", "canary", 1, reason="drill")
    assert [e.to_version for e in ModelRegistry(pg).history("ctr")] == [1, 1] and event.alias == "canary"
    # PostgreSQL -> SQLite, through the same repository: every artifact is reused; new are only the changed dump,
    # this workspace's own prediction-log segment and (--native) pg_dump's own copy
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:  # a runner without the client
        with pytest.raises(MissingDependency, match="needs pg_dump on PATH"):
            create_backup(pg, source.repo, native=True)
        again = create_backup(pg, source.repo)
        assert (again.blobs_copied, again.artifacts) == (2, source.first.artifacts)
    else:
        again = create_backup(pg, source.repo, native=True)
        assert (again.blobs_copied, again.artifacts, again.native) == (3, source.first.artifacts, "pg_dump")
        native = source.repo.blob_path(source.repo.manifest()["metadata"]["native"]["sha256"])
        listing = subprocess.run(["pg_restore", "--list", str(native)], capture_output=True, text=True, check=True)
        assert "TABLE DATA" in listing.stdout and "model_versions" in listing.stdout
    assert again.tables["alias_events"] == source.first.tables["alias_events"] + 1
    back = source.fresh("drill-sqlite")
    assert restore_workspace(back, source.repo).source_dialect == "postgresql"
    assert predictions(back, source.probe) == source.predictions
    assert ModelRegistry(back).aliases("ctr") == {"canary": 1, "production": 1}
    pg.close()
    back.close()


def test_a_second_backup_copies_only_new_blobs(source: Source, tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path / "repo")
    full = create_backup(source.ws, repo)
    assert full.blobs_copied == full.artifacts + full.files + 1 and full.bytes_copied == full.bytes_total
    same = create_backup(source.ws, repo)
    assert (same.blobs_copied, same.bytes_copied, same.blobs_reused) == (0, 0, full.blobs_copied)
    ws = source.fresh("incremental")
    restore_workspace(ws, repo)
    new = ModelRegistry(ws).register("ctr", dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                                     ArtifactFormat.SKOPS)
    third = create_backup(ws, repo)  # the new model's blob and the changed dump; every other blob is reused
    assert third.blobs_copied == 2 and third.artifacts == full.artifacts + 1
    assert repo.blob_path(new.artifact_sha256).is_file() and verify_backup(repo).ok
    assert [b["id"] for b in _listing(repo)] == [full.id, same.id, third.id]
    # pruning to the newest backup removes the two older manifests and the one blob only they named (their dump)
    pruned = prune_backups(repo, keep=1)
    assert (pruned.removed_backups, pruned.kept_backups, pruned.removed_blobs) == ([full.id, same.id], [third.id], 1)
    assert verify_backup(repo).ok and restore_workspace(source.fresh("after-prune"), repo).tables == third.tables
    ws.close()


def _listing(repo: BackupRepository) -> list[dict[str, Any]]:
    from yarnit.storage.backup import list_backups

    return list_backups(repo)


def _copy_repo(source: Source, tmp_path: Path) -> BackupRepository:
    target = tmp_path / "repo-copy"
    shutil.copytree(source.repo.root, target)
    return BackupRepository(target)


def _untouched(ws: Workspace) -> None:
    assert target_contents(ws) is None
    assert not (ws.home / "hmac.key").exists() and list(ws.artifacts.iter_shas()) == []


def test_restore_refuses_a_backup_whose_checksums_fail_and_touches_nothing(source: Source, tmp_path: Path) -> None:
    repo = _copy_repo(source, tmp_path)
    model_sha = ModelRegistry(source.ws).get("ctr", 1).artifact_sha256
    blob = repo.blob_path(model_sha)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    blob.write_bytes(bytes(data))
    target = source.fresh("refuse-corrupt")
    with pytest.raises(BackupCorrupted, match=rf"fails its checksums \(1 problems: blob {model_sha[:12]}…: bytes hash "
                                              r"to [0-9a-f]{64}, not " + model_sha + r"\)\. Nothing was restored"):
        restore_workspace(target, repo)
    _untouched(target)
    assert verify_backup(repo).problems[0].startswith(f"blob {model_sha[:12]}…: bytes hash to")
    # a manifest edited after it was written is refused too
    manifest = repo.manifest_path(repo.resolve(None))
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"size": ', '"size": 1', 1))
    with pytest.raises(BackupCorrupted, match="was changed after it was written"):
        restore_workspace(target, repo)
    _untouched(target)
    target.close()


def test_a_backup_stops_at_an_artifact_whose_bytes_changed(source: Source, tmp_path: Path) -> None:
    ws = source.fresh("rotten")
    restore_workspace(ws, source.repo, source.first.id)
    sha = ModelRegistry(ws).get("ctr", 1).artifact_sha256
    path = ws.artifacts.path_for(sha)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    with pytest.raises(ArtifactCorrupted, match=f"Artifact sha256:{sha} is corrupted"):
        create_backup(ws, BackupRepository(tmp_path / "repo"))
    assert BackupRepository(tmp_path / "repo").ids() == []  # no manifest: no backup
    ws.close()


def test_restore_over_a_non_empty_workspace_refuses_unless_forced(source: Source) -> None:
    target = source.fresh("non-empty")
    ModelRegistry(target).register("other", dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                                   ArtifactFormat.SKOPS)
    with pytest.raises(WorkspaceNotEmpty, match=r"not empty \(table models has 1 rows\).*--force"):
        restore_workspace(target, source.repo)
    assert ModelRegistry(target).exists("other") and not ModelRegistry(target).exists("ctr")
    forced = restore_workspace(target, source.repo, force=True)
    assert forced.forced and not ModelRegistry(target).exists("other")
    assert predictions(target, source.probe) == source.predictions
    target.close()


def test_a_restore_that_fails_while_writing_rows_leaves_the_target_as_it_was(source: Source, tmp_path: Path) -> None:
    repo = _copy_repo(source, tmp_path)
    manifest = repo.manifest()
    with gzip.open(repo.blob_path(manifest["metadata"]["dump"]["sha256"])) as stream:
        lines = stream.read().splitlines()
    table = ""
    for i, line in enumerate(lines):  # the alias now points at a version that does not exist (a foreign key)
        item = json.loads(line)
        if isinstance(item, dict) and "table" in item:
            table, columns = item["table"], item["columns"]
        elif table == "aliases":
            item[columns.index("version")] = 99
            lines[i] = json.dumps(item).encode()
    sha, size, _ = repo.add_stream(io.BytesIO(gzip.compress(b"\n".join(lines) + b"\n")))
    repo.write_manifest(manifest | {"id": "bk_broken", "sequence": manifest["sequence"] + 1,
                                    "metadata": manifest["metadata"] | {"dump": {"sha256": sha, "size": size}}})
    target = source.fresh("atomic")
    with pytest.raises(RestoreFailed, match="could not be written.*Nothing was restored"):
        restore_workspace(target, repo, "bk_broken")
    _untouched(target)
    target.close()


def test_last_known_good_brings_back_one_model_with_its_feature_views(source: Source) -> None:
    # A workspace where things went wrong: a bad v2 in production, v1's artifact damaged, the view redefined.
    ws = source.fresh("damaged")
    restore_workspace(ws, source.repo, source.first.id)
    registry = ModelRegistry(ws)
    bad = registry.register("ctr", dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                            ArtifactFormat.SKOPS)
    registry.set_alias("ctr", "production", bad.version)
    path = ws.artifacts.path_for(registry.get("ctr", 1).artifact_sha256)
    path.chmod(0o644)
    path.write_bytes(b"not the model any more")
    FeatureRegistry(ws).apply([_view(window_days=30)])
    report = restore_last_known_good(ws, source.repo, "ctr")
    assert (report.version, report.artifact, report.version_row) == (1, "repaired", "present")
    assert report.feature_views == [{"view": "user_clicks", "version": _view().version, "number": 1,
                                     "state": "older"}]
    assert "v2 is newer" in report.notes[0]
    assert registry.aliases("ctr") == {"production": 1}
    assert registry.history("ctr")[-1].action == "restore"
    assert path.with_name(path.name + ".corrupt").is_file()
    assert predictions(ws, source.probe) == source.predictions
    ws.close()
    # A workspace that never had the model: the model, its blessing and its feature view arrive together.
    empty = source.fresh("empty-lkg")
    report = restore_last_known_good(empty, source.repo, "ctr")
    assert (report.artifact, report.version_row, report.evaluations_added) == ("added", "added", 1)
    assert [v["state"] for v in report.feature_views] == ["added"]
    assert FeatureRegistry(empty).get("user_clicks").view == _view()
    assert [c.consumer for c in FeatureRegistry(empty).consumers("user_clicks")] == ["ctr"]
    assert ModelRegistry(empty).blessing_problem(ModelRegistry(empty).get("ctr", 1)) is None
    assert predictions(empty, source.probe) == source.predictions
    empty.close()
