"""Forgetting a data subject (target 23): rewrite, taint, receipt, purge after grace, zero rows left."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import textwrap
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from yarnit.core.errors import InvalidInput
from yarnit.data import (
    Datasets,
    DatasetSchema,
    DatasetUnavailable,
    Deletions,
    Lineage,
    Node,
    PurgeQueue,
)
from yarnit.registry import ArtifactFormat, ModelRegistry, TaintedVersion, dump_sklearn
from yarnit.core.settings import load_settings
from yarnit.serving.predlog import LogPolicy, PredictionLog, read_prediction_log
from yarnit.storage import Workspace, open_workspace
from yarnit.storage.schema import audit_log, deletion_receipts


def tiny_model() -> bytes:
    return dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))


class FakeOnlineStore:
    name = "online-store"

    def __init__(self) -> None:
        self.rows = {"u007": 3, "u008": 1}

    def erase(self, subject_id: str) -> int:
        return self.rows.pop(subject_id, 0)


def test_forget_rewrites_taints_receipts_and_purges(
        keyed_ws: Workspace, schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    ws = keyed_ws
    datasets, registry, lineage = Datasets(ws), ModelRegistry(ws), Lineage(ws)
    day1 = datasets.ingest_frame("clicks", make_clicks(400, seed=1), source="day1", schema=schema)
    day2 = datasets.ingest_frame("clicks", make_clicks(400, seed=2, start_id=400), source="day2", schema=schema)
    other = datasets.ingest_frame("clicks-other", make_clicks(50, seed=3, users=5), source="x", subject="user_id")
    datasets.ingest_frame("golden", make_clicks(60, seed=5), source="hand-labelled", schema=schema,
                          retention_class="golden")
    assert "u007" in set(make_clicks(60, seed=5)["user_id"])
    model = registry.register("ctr", tiny_model(), ArtifactFormat.SKOPS, dataset_version_ids=[day1.id, day2.id])
    unrelated = registry.register("ctr", tiny_model(), ArtifactFormat.SKOPS, dataset_version_ids=[other.id])
    lineage.record(Node("dataset_version", day2.id), Node("materialization", "mat_1"), "materialized_from")

    deletions = Deletions(ws, erasers=[FakeOnlineStore()])
    found = {v.ref for v in deletions.find("u007")}
    assert found == {"clicks:v1", "clicks:v2", "golden:v1"}  # lineage query finds 100% of holders
    assert {m for m in deletions.forget("u007", dry_run=True).detail["would_taint"]} == {"ctr:v1"}

    receipt = deletions.forget("u007", grace=timedelta(days=3), actor="privacy-team")
    rewritten = {r["from"]: r for r in receipt.detail["rewritten"]}
    assert set(rewritten) == found and all(r["rows_removed"] > 0 for r in rewritten.values())
    assert receipt.detail["tainted_models"] == ["ctr:v1"] and receipt.to_retrain == ["ctr:v1"]
    assert receipt.detail["tainted_nodes"] == ["materialization:mat_1"]
    assert receipt.detail["rebuilt_datasets"] == ["clicks:v3", "clicks:v4", "golden:v2"]
    assert receipt.detail["erased"] == {"online-store": 3}
    assert receipt.status == "partial" and receipt.due_by - receipt.requested_at == timedelta(days=30)
    # partial, and it says why: the old files wait for the grace period
    waiting = receipt.detail["remaining"]
    assert {r["where"].split(" ")[3] for r in waiting} == found and {r["kind"] for r in waiting} == {"purge"}
    assert all("grace period" in r["why"] for r in waiting)
    assert receipt.purge_after == ws.clock.now() + timedelta(days=3)

    # The rewritten versions hold everyone but the subject; the old ones can no longer be read.
    for old_ref, entry in rewritten.items():
        old, new = datasets.resolve(old_ref), datasets.resolve(entry["to"])
        assert old.status == "forgotten" and old.superseded_by == new.id
        assert new.row_count == old.row_count - entry["rows_removed"]
        assert "u007" not in set(datasets.read(new)["user_id"])
        assert new.retain_from == old.created_at and new.retention_class == old.retention_class
        with pytest.raises(DatasetUnavailable, match=f"{old_ref} was rewritten.*Use {entry['to']} instead"):
            datasets.read_table(old)
    assert datasets.get("golden").ref == "golden:v2"  # the golden test set is rebuilt without the subject
    assert datasets.get("clicks-other").id == other.id  # never held the subject: untouched

    # Dependent models are tainted and cannot be promoted; the unrelated one can.
    assert registry.get("ctr", 1).tainted and "forgotten data subject" in (registry.get("ctr", 1).taint_reason or "")
    with pytest.raises(TaintedVersion):
        registry.promote("ctr", model.version)
    registry.promote("ctr", unrelated.version)

    # Before the grace period ends the old files still exist; afterwards a full scan finds zero rows.
    assert deletions.scan("u007")
    assert PurgeQueue(ws).purge_due().purged == []
    ws.clock.advance(timedelta(days=3, seconds=1))
    report = PurgeQueue(ws).purge_due()
    assert len(set(report.purged)) == len(set(receipt.detail["scheduled_purges"])) - 0
    assert receipt.id in report.receipts_completed
    assert deletions.scan("u007") == []
    assert deletions.scan("u008")  # other subjects are still there
    closed = deletions.receipt(receipt.id)
    assert closed.status == "completed" and closed.completed_at is not None and closed.completed_at <= closed.due_by
    assert datasets.resolve("clicks:v1").status == "purged"

    # No raw subject id anywhere in receipts, the audit log, manifests or statistics.
    with ws.metadata.begin() as conn:
        stored = json.dumps([dict(r) for r in conn.execute(deletion_receipts.select()).mappings().all()]
                            + [dict(r) for r in conn.execute(audit_log.select()).mappings().all()], default=str)
    manifests = json.dumps([v.to_dict(with_statistics=True) for v in datasets.list()], default=str)
    assert "u007" not in stored and "u007" not in manifests
    assert deletions.receipts_for("u007")[0].id == receipt.id


def test_forget_is_idempotent_and_refuses_reingest_of_forgotten_content(
        keyed_ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    datasets = Datasets(keyed_ws)
    frame = make_clicks(100)
    datasets.ingest_frame("clicks", frame, source="day1", subject="user_id")
    deletions = Deletions(keyed_ws)
    first = deletions.forget("u001", grace=timedelta(0))
    second = deletions.forget("u001", grace=timedelta(0))
    assert len(first.detail["rewritten"]) == 1 and second.detail["rewritten"] == []
    # The same export again: the subject's rows are suppressed, which gives exactly the rewritten version.
    again = datasets.ingest_frame("clicks", frame, source="day1 again", subject="user_id")
    assert again.ref == first.detail["rewritten"][0]["to"]
    assert again.suppressed_rows == first.detail["rewritten"][0]["rows_removed"] > 0
    with pytest.raises(DatasetUnavailable, match="clicks:v1 was purged.*Use clicks:v2 instead"):
        datasets.ingest_frame("clicks", frame, source="day1 again", no_subject="test: no subject column, so "
                              "nothing can be suppressed")


def test_subject_hashed_at_ingest_is_still_found_and_removed(
        keyed_ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    schema = DatasetSchema.from_yaml("subject: user_id\ncolumns:\n  user_id: {type: string, pii: hash}\n"
                                     "  price: {type: float64}\n", path="s.yaml")
    datasets = Datasets(keyed_ws)
    v = datasets.ingest_frame("hashed", make_clicks(100)[["user_id", "price"]], source="t", schema=schema)
    assert "u003" not in set(datasets.read(v)["user_id"])
    receipt = Deletions(keyed_ws).forget("u003", grace=timedelta(0))
    assert [r["from"] for r in receipt.detail["rewritten"]] == ["hashed:v1"]
    PurgeQueue(keyed_ws).purge_due()
    assert Deletions(keyed_ws).scan("u003") == []


def test_forget_reports_datasets_it_cannot_see_into_and_rejects_bad_input(sqlite_ws: Workspace) -> None:
    Datasets(sqlite_ws).ingest_frame("no-subject", pd.DataFrame({"user": ["a"]}), source="t")
    receipt = Deletions(sqlite_ws).forget("a")
    assert receipt.detail["no_personal_data"] == ["no-subject:v1"] and receipt.status == "completed"
    with pytest.raises(InvalidInput, match="0 to 30 days"):
        Deletions(sqlite_ws).forget("a", grace=timedelta(days=45))
    with pytest.raises(InvalidInput, match="non-empty string"):
        Deletions(sqlite_ws).forget("  ")


def test_end_to_end_forget_on_world_data(keyed_ws: Workspace) -> None:
    world = pytest.importorskip("yarnit.world")
    sim = world.World(world.WorldConfig(seed=3, sessions_per_day=60))
    frames = [p.impressions for p in sim.run(2)]
    log = pd.concat(frames, ignore_index=True)
    datasets, registry = Datasets(keyed_ws), ModelRegistry(keyed_ws)
    versions = [datasets.ingest_frame("impressions", f, source=f"world day {i}", subject="user_id",
                                      retention_class="events") for i, f in enumerate(frames)]
    model = registry.register("ctr", tiny_model(), ArtifactFormat.SKOPS, dataset_version_ids=[v.id for v in versions])
    subject = str(log["user_id"].value_counts().index[0])
    holders = {v.ref for v in versions if subject in set(datasets.read(v)["user_id"].astype(str))}
    receipt = Deletions(keyed_ws).forget(subject, grace=timedelta(days=1))
    assert {r["from"] for r in receipt.detail["rewritten"]} == holders
    assert receipt.detail["tainted_models"] == [model.ref]
    assert registry.get("ctr", model.version).tainted
    keyed_ws.clock.advance(timedelta(days=2))
    PurgeQueue(keyed_ws).purge_due()
    assert Deletions(keyed_ws).scan(subject) == []
    assert Deletions(keyed_ws).receipt(receipt.id).status == "completed"


# --- issue 16, item 1: the scenario of the issue, through the CLI -------------------------------------------
VIEWS = textwrap.dedent('''
    from datetime import timedelta
    from yarnit.features import feature_view

    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=3650),
                  sources=("impressions",))
    def user_clicks():
        return "SELECT user_id, event_time, CAST(clicked AS BIGINT) AS clicks FROM impressions"

    @feature_view(entities={"product_id": "string", "user_id": "string"}, features={"clicks": "int64"},
                  ttl=timedelta(days=3650), sources=("impressions",))
    def user_product_clicks():
        return "SELECT product_id, user_id, event_time, CAST(clicked AS BIGINT) AS clicks FROM impressions"
''')
HMAC_KEY = "forget-test-key-0123456789abcdef0123456789"
PIPELINE = ["pipeline", "run", "yarnit-ctr", "--set", "days=3", "--set", "sessions_per_day=25",
            "--set", "bootstrap_resamples=20", "--set", "golden_rows=50"]


def _invoke(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    from yarnit.cli.app import app

    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def _yarnit(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = _invoke(env, *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def ctr_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after ``yarnit pipeline run yarnit-ctr`` on a small world, plus the world's first day of
    impressions ingested from its file (``yarnit world generate``: the file declares its subject column), with
    two subject-keyed feature views backfilled over it (built once, copied by each test; the tests
    materialize, because an online store's URL holds its absolute path)."""
    root = tmp_path_factory.mktemp("ctr")
    env = {"YARNIT_HOME": str(root / "home"), "YARNIT_HMAC_KEY": HMAC_KEY, "YARNIT_ONLINE_STORE": ""}
    _yarnit(env, *PIPELINE)
    _yarnit(env, "world", "generate", "--days", "1", "--sessions-per-day", "25", "--out", str(root / "world"))
    (day,) = (root / "world" / "impressions").glob("day=*/part-0.parquet")
    _yarnit(env, "data", "ingest", str(day), "--name", "impressions")
    (root / "views.py").write_text(VIEWS)
    _yarnit(env, "features", "backfill", "--definitions", str(root / "views.py"))
    return root


def _online_keys(url: str, view: str) -> list[str]:
    """Every entity key of ``view`` (all its versions) in the online store at ``url``, read with the store's
    own client (an oracle independent of yarnit's online store code)."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return [str(k) for t in tables if t.startswith(f"fv:{view}@")
                    for (k,) in conn.execute(f'SELECT k FROM "{t}"')]
    import redis

    base, _, prefix = url.partition("?prefix=")
    client = redis.Redis.from_url(base)
    return [k.decode() for name in client.scan_iter(f"{prefix}fv:{view}@*") for k in client.hkeys(name)]


def _forget_everywhere(ctr_home: Path, tmp_path: Path, second_store: str) -> None:
    home = tmp_path / "home"
    shutil.copytree(ctr_home / "home", home)
    first_store = f"sqlite:///{home / 'online.db'}"
    env = {"YARNIT_HOME": str(home), "YARNIT_HMAC_KEY": HMAC_KEY, "YARNIT_ONLINE_STORE": second_store}
    _yarnit({**env, "YARNIT_ONLINE_STORE": first_store}, "features", "materialize")
    # The workspace switches online stores; the first one keeps every shopper it was given.
    _yarnit(env, "features", "materialize", "--full")
    ws = open_workspace(load_settings(env))
    try:
        datasets = Datasets(ws)
        log = datasets.read(datasets.get("impressions"))
        subject = str(log["user_id"].value_counts().index[0])
        assert subject in set(datasets.read(datasets.get("yarnit-impressions"))["user_id"])
        # A served request of the subject, logged the way serving logs it (user_id as a keyed hash).
        plog = PredictionLog(home / "prediction_log", ws.clock, policy=LogPolicy(hmac_key=HMAC_KEY.encode()))
        plog.append({"request_id": "r1", "time": ws.clock.now(), "instances": [{"user_id": subject, "x": 1}]})
        plog.append({"request_id": "r2", "time": ws.clock.now(), "instances": [{"user_id": "someone-else"}]})
        plog.close()
    finally:
        ws.close()
    for url in (first_store, second_store):
        for view in ("user_clicks", "user_product_clicks"):
            assert any(subject in str(k) for k in _online_keys(url, view)), f"{view}: not in {url}: proves nothing"

    receipt = json.loads(_yarnit(env, "data", "forget", "--subject", "-", "--grace", "0d", "--json",
                                 stdin=subject + "\n"))
    ws = open_workspace(load_settings(env))
    try:
        assert Deletions(ws).scan(subject) == []  # every stored Parquet version
        offline = list((home / "features" / "offline").rglob("*.parquet"))
        assert offline and all(subject not in set(pq.read_table(p).column("user_id").to_pylist()) for p in offline)
        for url in (first_store, second_store):
            for view in ("user_clicks", "user_product_clicks"):
                keys = _online_keys(url, view)
                assert keys and not any(subject in str(k) for k in keys), (url, view)
        logged = [r["request_id"] for r in read_prediction_log(home / "prediction_log")]
        assert logged == ["r2"]
    finally:
        ws.close()
    # ...and the receipt says so, naming everything it searched.
    assert receipt["status"] == "completed", receipt["remaining"]
    assert receipt["remaining"] == [] and receipt["unchecked_datasets"] == []
    assert {r["from"] for r in receipt["rewritten"]} == {"impressions:v1", "yarnit-impressions:v1",
                                                         "yarnit-impressions-truth:v1"}
    assert receipt["no_personal_data"] == ["ctr-golden:v1"]
    searched = " | ".join(receipt["searched"])
    for place in ("yarnit-impressions-truth:v2", "user_product_clicks@", first_store, second_store,
                  "prediction log: 1 segments"):
        assert place.split("///")[-1] in searched, place
    assert "issue 17" in receipt["monitoring_summaries"]
    assert subject not in json.dumps(receipt)


def test_forget_after_the_ctr_pipeline_leaves_no_row_of_the_subject_anywhere(
        ctr_home: Path, tmp_path: Path) -> None:
    _forget_everywhere(ctr_home, tmp_path, f"sqlite:///{tmp_path / 'second-online.db'}")


@pytest.mark.redis
def test_forget_reaches_a_redis_online_store_and_the_one_used_before(ctr_home: Path, tmp_path: Path) -> None:
    import redis

    url = os.environ.get("YARNIT_TEST_REDIS_URL") or pytest.skip("set YARNIT_TEST_REDIS_URL to run Redis tests")
    prefix = f"yarnit-forget-{uuid.uuid4().hex[:8]}:"
    try:
        _forget_everywhere(ctr_home, tmp_path, f"{url}?prefix={prefix}")
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


def test_a_default_grace_receipt_is_partial_and_names_the_files_waiting_for_purge(
        ctr_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ctr_home / "home", home)
    env = {"YARNIT_HOME": str(home), "YARNIT_HMAC_KEY": HMAC_KEY, "YARNIT_ONLINE_STORE": ""}
    _yarnit(env, "features", "materialize")
    ws = open_workspace(load_settings(env))
    try:
        subject = str(Datasets(ws).read(Datasets(ws).get("yarnit-impressions"))["user_id"].iloc[0])
    finally:
        ws.close()
    result = _invoke(env, "data", "forget", "--subject", "-", stdin=subject + "\n")
    out = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 0 and "(partial)" in out and "(completed)" not in out, out
    assert "remains" in out and "yarnit-impressions:v1" in out and "grace period" in out
    for blank in ("", "   "):
        refused = _invoke(env, "data", "forget", "--subject", "-", stdin=blank + "\n")
        assert refused.exit_code == 1 and "empty or only whitespace" in refused.output


# --- issue 16, item 2: a forgotten subject who reappears; composite keys ------------------------------------
def test_a_forgotten_subject_who_reappears_in_a_later_ingest_is_dropped_and_counted(
        keyed_ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    from yarnit.data import hmac_hex, workspace_key

    datasets = Datasets(keyed_ws)
    datasets.ingest_frame("clicks", make_clicks(200, seed=1), source="day1", subject="user_id")
    receipt = Deletions(keyed_ws).forget("u007", grace=timedelta(0))
    later = make_clicks(300, seed=9)
    comeback = int((later["user_id"] == "u007").sum())
    assert comeback > 0, "the later export must bring the subject back, or the test proves nothing"
    v = datasets.ingest_frame("clicks", later, source="day2", subject="user_id")
    assert v.suppressed_rows == comeback and v.row_count == len(later) - comeback
    assert v.to_dict()["suppressed_rows"] == comeback
    assert "u007" not in set(datasets.read(v)["user_id"]) and Deletions(keyed_ws).find("u007") == []
    # also when the subject column is hashed at ingest
    hashed = DatasetSchema.from_yaml("subject: user_id\ncolumns:\n  user_id: {type: string, pii: hash}\n"
                                     "  price: {type: float64}\n")
    h = datasets.ingest_frame("hashed", later[["user_id", "price"]], source="t", schema=hashed)
    assert h.suppressed_rows == comeback and Deletions(keyed_ws).find("u007") == []
    # the list holds keyed hashes, never the id
    from yarnit.storage.schema import subject_suppressions

    with keyed_ws.metadata.begin() as conn:
        rows = [dict(r) for r in conn.execute(subject_suppressions.select()).mappings().all()]
    assert [(r["subject_hmac"], r["receipt_id"]) for r in rows] == [
        (hmac_hex(workspace_key(keyed_ws), "u007"), receipt.id)]
    assert "u007" not in json.dumps(rows, default=str)


def test_forget_erases_views_with_composite_keys_offline_and_online(sqlite_ws: Workspace) -> None:
    from yarnit.features import FeatureStore, feature_view
    from yarnit.features.erasure import FeatureStoreEraser

    @feature_view(entities={"product_id": "int64", "user_id": "string"}, features={"clicks": "int64"},
                  ttl=timedelta(days=3650))
    def user_product_clicks() -> None: ...

    rows = pd.DataFrame({"product_id": [1, 2, 1, 3], "user_id": ["u1", "u1", "u2", "u3"], "clicks": [1, 2, 3, 4],
                         "event_time": pd.to_datetime(["2026-01-01"] * 4, utc=True)})
    with FeatureStore(sqlite_ws) as store:
        store.write_offline(user_product_clicks, rows)
        store.materialize("user_product_clicks")
        report = FeatureStoreEraser(store).erase("u1")
        assert report.removed == 4 and report.remaining == []  # 2 offline rows, 2 online entities
        assert any("online store" in s for s in report.searched)
        left = store.offline.read(user_product_clicks).to_pandas()
        assert sorted(left["user_id"]) == ["u2", "u3"]
        online = store.read_online("user_product_clicks", [(1, "u1"), (2, "u1"), (1, "u2"), (3, "u3")])
        assert [r.status.value for r in online] == ["missing", "missing", "present", "present"]
