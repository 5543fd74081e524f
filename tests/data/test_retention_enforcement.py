"""Retention classes: versions past their age expire, files purge after grace, forget never extends retention."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from yarnit.access import cli_actor
from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets, DatasetUnavailable, Deletions, Retention, parse_duration_days
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log, dataset_versions, retention_policies


def test_versions_expire_by_class_and_purge_after_grace(
        keyed_ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    ws = keyed_ws
    datasets, retention = Datasets(ws), Retention(ws)
    retention.set_policy("events", "30d", grace="2d")
    retention.set_policy("golden", "1y")
    old = datasets.ingest_frame("clicks", make_clicks(50, seed=1), source="a", retention_class="events",
                                subject="user_id")
    golden = datasets.ingest_frame("golden", make_clicks(50, seed=2), source="b", retention_class="golden",
                                   subject="user_id")
    odd = datasets.ingest_frame("misc", make_clicks(5, seed=3), source="c", retention_class="mystery",
                                subject="user_id")
    model = ModelRegistry(ws).register("ctr", dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                                       ArtifactFormat.SKOPS, dataset_version_ids=[old.id])
    ws.clock.advance(timedelta(days=20))
    fresh = datasets.ingest_frame("clicks", make_clicks(50, seed=4), source="d", retention_class="events",
                                  subject="user_id")
    ws.clock.advance(timedelta(days=11))

    preview = retention.enforce(dry_run=True)
    assert preview.expired == ["clicks:v1"] and datasets.get("clicks", 1).status == "active"
    report = retention.enforce()
    assert report.expired == ["clicks:v1"] and report.no_longer_reproducible == [model.ref]
    assert report.unknown_classes == {"mystery": 1} and report.purge is not None and report.purge.pending == 2
    assert datasets.get("clicks", 1).status == "expired" and datasets.get("clicks").id == fresh.id
    with pytest.raises(DatasetUnavailable, match="passed its retention period"):
        datasets.read_table(datasets.get("clicks", 1))
    assert ws.artifacts.exists(old.artifact_sha256)
    ws.clock.advance(timedelta(days=2, seconds=1))
    report = retention.enforce()
    assert set(report.purge.purged) == {old.artifact_sha256, old.subjects_sha256}  # type: ignore[union-attr]
    assert not ws.artifacts.exists(old.artifact_sha256)
    assert datasets.get("clicks", 1).status == "purged"
    assert datasets.get("golden").id == golden.id and datasets.get("misc").id == odd.id


def test_a_rewritten_version_keeps_its_original_age(keyed_ws: Workspace,
                                                     make_clicks: Callable[..., pd.DataFrame]) -> None:
    datasets, retention = Datasets(keyed_ws), Retention(keyed_ws)
    retention.set_policy("events", "10d")
    datasets.ingest_frame("clicks", make_clicks(50), source="a", retention_class="events", subject="user_id")
    keyed_ws.clock.advance(timedelta(days=8))
    Deletions(keyed_ws).forget("u001", grace=timedelta(0))
    keyed_ws.clock.advance(timedelta(days=3))
    assert retention.enforce().expired == ["clicks:v2"]  # 11 days after the original ingest, not 3


@pytest.mark.parametrize(("text", "days"), [("400d", 400), ("8w", 56), ("2y", 730), ("7", 7), (3, 3)])
def test_durations_parse(text: str | int, days: int) -> None:
    assert parse_duration_days(text) == days


def test_bad_durations_say_what_is_valid() -> None:
    with pytest.raises(InvalidInput, match="400d, 8w or 1y"):
        parse_duration_days("forever")


# --- issue 16, item 3 -------------------------------------------------------------------------------------
def _yarnit(env: dict[str, str], *args: str, code: int = 0, stdin: str | None = None) -> str:
    from yarnit.cli.app import app

    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    assert result.exit_code == code, result.output
    return result.output


def _state(home: Path) -> dict[str, Any]:
    """The policy table, the manifests, purges and audit log, and every byte of every data file."""
    from yarnit.core.settings import load_settings
    from yarnit.storage.schema import artifact_purges

    ws = open_workspace(load_settings({"YARNIT_HOME": str(home)}))
    try:
        with ws.metadata.begin() as conn:
            tables = {t.name: [dict(r) for r in conn.execute(t.select()).mappings().all()]
                      for t in (retention_policies, dataset_versions, artifact_purges, audit_log)}
    finally:
        ws.close()
    files = {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(home.rglob("*")) if p.is_file() and not p.name.startswith("yarnit.db")}
    return {"tables": json.loads(json.dumps(tables, default=str)), "files": files}


@pytest.fixture
def cli_home(tmp_path: Path, make_clicks: Callable[..., pd.DataFrame]) -> tuple[dict[str, str], Path]:
    home = tmp_path / "home"
    env = {"YARNIT_HOME": str(home), "YARNIT_HMAC_KEY": "retention-test-key-0123456789abcdef0123"}
    data = tmp_path / "clicks.csv"
    make_clicks(100).to_csv(data, index=False)
    _yarnit(env, "data", "ingest", str(data), "--name", "clicks", "--retention", "events", "--subject", "user_id")
    return env, home


def test_a_dry_run_with_a_what_if_policy_stores_nothing_and_changes_nothing(
        cli_home: tuple[dict[str, str], Path]) -> None:
    env, home = cli_home
    before = _state(home)
    out = json.loads(_yarnit(env, "data", "enforce-retention", "--set", "events=0d:0d", "--dry-run", "--json"))
    assert out["expired"] == ["clicks:v1"] and out["dry_run"]  # what the what-if policy would do
    assert _state(home) == before  # ...and nothing was written: policy table and data byte for byte
    plain = json.loads(_yarnit(env, "data", "enforce-retention", "--json"))
    assert plain["expired"] == [] and plain["policies"]["events"]["source"] == "default"
    refused = _yarnit(env, "data", "enforce-retention", "--set", "events=0d:0d", code=1)
    assert "data retention set" in refused and _state(home)["tables"]["retention_policies"] == []


def test_changing_a_policy_shows_what_it_would_expire_asks_and_is_audited(
        cli_home: tuple[dict[str, str], Path]) -> None:
    env, home = cli_home
    before = _state(home)
    answered_no = _yarnit(env, "data", "retention", "set", "events", "0d", code=1, stdin="n\n")
    assert "would expire: clicks:v1" in answered_no and "not stored" in answered_no
    assert _state(home) == before
    _yarnit(env, "data", "retention", "set", "events", "0d", stdin="y\n")
    after = _state(home)["tables"]
    assert [(p["class_name"], p["max_age_days"]) for p in after["retention_policies"]] == [("events", 0)]
    (audit,) = [a for a in after["audit_log"] if a["action"] == "data.retention.set"]
    assert audit["actor"] == cli_actor() and audit["subject"] == "events"  # the OS user, not a claimed name
    assert audit["detail"]["would_expire"] == ["clicks:v1"] and audit["detail"]["from"]["max_age_days"] == 400
    assert json.loads(_yarnit(env, "data", "enforce-retention", "--json"))["expired"] == ["clicks:v1"]


def test_retention_show_lists_the_defaults_of_the_worlds_classes(cli_home: tuple[dict[str, str], Path]) -> None:
    env, _ = cli_home
    shown = {p["class"]: p for p in json.loads(_yarnit(env, "data", "retention", "show", "--json"))}
    assert {"events", "features", "prediction_log"} <= set(shown)
    assert all(p["source"] == "default" and p["max_age_days"] > 0 for p in shown.values())
    _yarnit(env, "data", "retention", "set", "events", "30d", "--yes")
    shown = {p["class"]: p for p in json.loads(_yarnit(env, "data", "retention", "show", "--json"))}
    assert shown["events"]["source"] == "set" and shown["events"]["max_age_days"] == 30
    assert "events" in _yarnit(env, "data", "retention", "show")


def test_retention_covers_the_prediction_log_and_the_feature_store(sqlite_ws: Workspace) -> None:
    from yarnit.features import FeatureStore, feature_view
    from yarnit.features.retention import FeatureStoreRetention
    from yarnit.serving.erasure import PredictionLogRetention
    from yarnit.serving.predlog import PredictionLog, read_prediction_log

    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=None)
    def user_clicks() -> None: ...

    ws = sqlite_ws
    log_dir = ws.home / "prediction_log"
    old_log = PredictionLog(log_dir, ws.clock)
    old_log.append({"request_id": "old", "time": ws.clock.now()})
    old_log.close()
    with FeatureStore(ws) as store:
        store.write_offline(user_clicks, pd.DataFrame({
            "user_id": ["u1", "u2"], "clicks": [1, 2],
            "event_time": [ws.clock.now() - timedelta(days=1), ws.clock.now() + timedelta(days=60)]}))
        ws.clock.advance(timedelta(days=61))
        store.materialize("user_clicks")
        new_log = PredictionLog(log_dir, ws.clock)
        new_log.append({"request_id": "new", "time": ws.clock.now()})
        new_log.flush()  # still open: a live segment is never pruned
        retention = Retention(ws, targets=[FeatureStoreRetention(store), PredictionLogRetention(ws)])
        retention.set_policy("prediction_log", "30d")
        retention.set_policy("features", "30d")
        files = sorted(p.name for p in (ws.home / "features").rglob("*.parquet"))
        preview = retention.enforce(dry_run=True)
        assert len(preview.targets["prediction-log"]) == 1 and len(preview.targets["feature-store"]) == 2
        assert sorted(p.name for p in (ws.home / "features").rglob("*.parquet")) == files
        assert [r["request_id"] for r in read_prediction_log(log_dir)] == ["old", "new"]
        report = retention.enforce()
        assert report.targets == preview.targets
        assert [r["request_id"] for r in read_prediction_log(log_dir)] == ["new"]
        assert [r.status.value for r in store.read_online("user_clicks", ["u1", "u2"])] == ["missing", "present"]
        assert store.offline.read(user_clicks).to_pandas()["user_id"].tolist() == ["u2"]
        new_log.close()
