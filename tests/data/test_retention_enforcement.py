"""Retention classes: versions past their age expire, files purge after grace, forget never extends retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets, DatasetUnavailable, Deletions, Retention, parse_duration_days
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace


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
