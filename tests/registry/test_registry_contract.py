"""ModelRegistry contract on SQLite and PostgreSQL: versions, aliases, audit, rollback."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from yarnit.core import SimulatedClock
from yarnit.registry import (
    AliasNotFound,
    ArtifactFormat,
    ModelNotFound,
    ModelRegistry,
    ModelVersionNotFound,
    NothingToRollBackTo,
    TaintedVersion,
)
from yarnit.storage import Workspace


def test_register_numbers_versions_and_records_lineage(ws: Workspace, artifact: bytes, rows: list) -> None:
    registry = ModelRegistry(ws)
    v1 = registry.register("ctr", artifact, ArtifactFormat.SKOPS, dataset_version_ids=["ds_a"], seed=7,
                           metrics={"auc": 0.7})
    v2 = registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.artifact_sha256 == v2.artifact_sha256  # identical bytes stored once
    assert v1.dataset_version_ids == ("ds_a",) and v1.seed == 7 and v1.metrics == {"auc": 0.7}
    assert [v.version for v in registry.versions("ctr")] == [1, 2]
    predictions = registry.load(v1).predict_proba(rows[:2])
    assert predictions[0] > 0.5 > predictions[1]


def test_unknown_names_and_versions_say_how_to_look(ws: Workspace, artifact: bytes) -> None:
    registry = ModelRegistry(ws)
    with pytest.raises(ModelNotFound, match="no model named 'fraud'.*yarnit models list"):
        registry.versions("fraud")
    registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    with pytest.raises(ModelVersionNotFound, match="'ctr' has no version 3.*yarnit models show ctr"):
        registry.get("ctr", 3)
    with pytest.raises(AliasNotFound, match="no alias 'production'.*models promote ctr"):
        registry.resolve("ctr", "production")


def test_rollback_walks_back_through_history_and_never_forward(ws: Workspace, artifact: bytes,
                                                               clock: SimulatedClock) -> None:
    registry = ModelRegistry(ws)
    for _ in range(4):
        registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    for version in (1, 2, 3):
        clock.advance(timedelta(hours=1))
        registry.promote("ctr", version)
    assert registry.roll_back("ctr").to_version == 2
    assert registry.roll_back("ctr").to_version == 1
    with pytest.raises(NothingToRollBackTo):
        registry.roll_back("ctr")
    registry.promote("ctr", 4)
    assert registry.roll_back("ctr").to_version == 1
    actions = [(e.action, e.from_version, e.to_version) for e in registry.history("ctr", "production")]
    assert actions == [("promote", None, 1), ("promote", 1, 2), ("promote", 2, 3), ("rollback", 3, 2),
                       ("rollback", 2, 1), ("promote", 1, 4), ("rollback", 4, 1)]


def test_history_answers_which_version_served_when(ws: Workspace, artifact: bytes, clock: SimulatedClock) -> None:
    registry = ModelRegistry(ws)
    registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    start = clock.now()
    registry.promote("ctr", 1)
    clock.advance(timedelta(days=1))
    registry.promote("ctr", 2)
    assert registry.version_at("ctr", "production", start - timedelta(seconds=1)) is None
    assert registry.version_at("ctr", "production", start + timedelta(hours=12)) == 1
    assert registry.version_at("ctr", "production", clock.now()) == 2


def test_tainted_versions_cannot_be_promoted_and_rollback_skips_them(ws: Workspace, artifact: bytes) -> None:
    registry = ModelRegistry(ws)
    for _ in range(3):
        registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    for version in (1, 2, 3):
        registry.promote("ctr", version)
    registry.taint("ctr", 2, "trained on data of a forgotten subject")
    with pytest.raises(TaintedVersion, match="ctr:v2 is tainted .*forgotten subject"):
        registry.promote("ctr", 2)
    assert registry.roll_back("ctr").to_version == 1


def test_aliases_are_independent(ws: Workspace, artifact: bytes, other_artifact: bytes) -> None:
    registry = ModelRegistry(ws)
    registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    registry.register("ctr", other_artifact, ArtifactFormat.SKOPS)
    registry.promote("ctr", 1)
    registry.set_alias("ctr", "canary", 2)
    assert registry.aliases("ctr") == {"production": 1, "canary": 2}
    assert registry.list_models()[0]["aliases"] == {"production": 1, "canary": 2}


def test_concurrent_registrations_get_distinct_numbers(ws: Workspace, artifact: bytes) -> None:
    registry = ModelRegistry(ws)
    registry.register("ctr", artifact, ArtifactFormat.SKOPS)
    errors: list[BaseException] = []

    def register() -> None:
        try:
            for _ in range(3):
                ModelRegistry(ws).register("ctr", artifact, ArtifactFormat.SKOPS)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [v.version for v in registry.versions("ctr")] == list(range(1, 14))
