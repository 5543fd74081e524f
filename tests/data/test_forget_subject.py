"""Forgetting a data subject (target 23): rewrite, taint, receipt, purge after grace, zero rows left."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

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
from yarnit.storage import Workspace
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
    golden = datasets.ingest_frame("golden", make_clicks(60, seed=5), source="hand-labelled", schema=schema,
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
