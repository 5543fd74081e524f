"""What a dependency check loads and scores: the same bytes on the same rows once, with the same figures.

Real parts: the SQLite workspace of ``test_dependencies.py`` (click models trained on a world day, the
yarnit-recs and yarnit-ranker pipelines through the runner). The consumer class is the real ``RankingModel``;
the test's subclass only counts the bundles it loads.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from yarnit.continuous import dependencies as dependencies_module
from yarnit.continuous.dependencies import ModelDependencies
from yarnit.core import Settings
from yarnit.core.hashing import sha256_bytes
from yarnit.data import Datasets
from yarnit.evaluation import EvaluationStore
from yarnit.recipes.ranker import RankingModel
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.storage import open_workspace

from .test_dependencies import RANKER, _register_ctr, built  # noqa: F401  (the module's trained workspace)

LOADED: Counter[str] = Counter()


class CountingRanker(RankingModel):
    """The real ranker bundle; each load is counted by the bytes' sha256."""

    @classmethod
    def from_bytes(cls, data: bytes, *, seed: int = 0) -> RankingModel:
        LOADED[sha256_bytes(data)] += 1
        return super().from_bytes(data, seed=seed)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    monkeypatch.setitem(dependencies_module._CONSUMERS, ArtifactFormat.RANKER, (__name__, "CountingRanker"))
    LOADED.clear()
    return LOADED


def _copy(built: Path, to: Path) -> Path:  # noqa: F811
    return Path(shutil.copytree(built, to))


def _figures(ws: Any, row: Any) -> tuple:
    report = EvaluationStore(ws).report(row.evaluation_id).to_dict()
    metrics = sorted(json.dumps(m, sort_keys=True) for m in report["metrics"])  # every value and interval
    return (row.value, row.baseline_value, row.baseline_version, row.regressed, tuple(row.reasons), metrics)


def test_a_triple_identical_to_production_is_loaded_and_scored_once_with_the_figures_it_had(
        built: Path, tmp_path: Path, counted: Counter[str]) -> None:  # noqa: F811
    with open_workspace(Settings.for_home(_copy(built, tmp_path / "home"))) as ws:
        deps = ModelDependencies(ws)
        deps.declare(RANKER, "ctr", actor="test", dataset="impressions-eval")
        production = ModelRegistry(ws).resolve(RANKER, "production")
        LOADED.clear()  # the declaration read the newest ranker's pin
        # ranker v1 already pins ctr v1: the composite is production's own bytes
        [row] = deps.sync(upstream="ctr")
        assert (row["upstream_version"], row["consumer_version"], row["baseline_version"]) == (1, 1, 1)
        assert dict(counted) == {production.artifact_sha256: 1}  # without the change: the same bytes loaded twice
        # the figures are what the two loads gave: production against itself, no regression
        assert row["value"] == row["baseline_value"] and row["delta"] == 0.0 and row["regressed"] is False
        report = EvaluationStore(ws).report(row["evaluation_id"])
        assert report.candidate["artifact_sha256"] == production.artifact_sha256
        assert report.value("auc") == report.value("auc", subject="production") == row["value"]


def test_one_sync_reads_the_rows_and_scores_production_once_and_every_figure_is_the_one_a_lone_evaluation_gives(
        built: Path, tmp_path: Path, counted: Counter[str]) -> None:  # noqa: F811
    homes = [_copy(built, tmp_path / name) for name in ("synced", "alone")]
    results = []
    for home, together in zip(homes, (True, False), strict=True):
        with open_workspace(Settings.for_home(home)) as ws:
            deps = ModelDependencies(ws)
            train = Datasets(ws).get("impressions")
            log = Datasets(ws).read(train)
            broken = _register_ctr(ws, log, dataset_id=train.id, shuffle=True, seed=3)
            ModelRegistry(ws).set_alias(RANKER, "canary", 2, actor="test")
            deps.declare(RANKER, "ctr", actor="test", dataset="impressions-eval")
            LOADED.clear()
            if together:
                outcomes = deps.sync(upstream="ctr")
                assert all("error" not in o for o in outcomes), outcomes
                production = ModelRegistry(ws).resolve(RANKER, "production").artifact_sha256
                # ctr v1 (production) and the newest ctr, each with ranker v1 (production) and v2 (canary):
                # production's bundle loaded once (ctr v1 with ranker v1 is those bytes), each other composite
                # once (without the change: production loaded with each of the 4 triples, and once more as the
                # identical composite)
                assert counted[production] == 1 and sum(counted.values()) == 4, dict(counted)
            else:
                for upstream_version in (1, broken):  # each evaluation on its own: nothing shared
                    for consumer_version in (1, 2):
                        deps.evaluate(deps.of(RANKER)[0], upstream_version, consumer_version,
                                      trigger="alias:production" if upstream_version == 1 else "registered")
            rows = {(e.upstream_version, e.consumer_version): e for e in deps.evaluations(RANKER, limit=100)}
            assert set(rows) == {(1, 1), (1, 2), (broken, 1), (broken, 2)}
            assert rows[(broken, 1)].regressed is True and rows[(broken, 2)].regressed is True
            results.append({key: _figures(ws, row) for key, row in rows.items()})
            # the rollout's question is answered the same
            assert "dependency regression on (ctr:v" in (deps.hold_reason(RANKER, 2) or "")
    assert results[0] == results[1]  # the same AUCs, intervals and verdicts to the last digit


def test_a_sync_with_nothing_new_reads_the_rows_in_a_few_statements_and_returns_what_evaluate_would(
        built: Path, tmp_path: Path) -> None:  # noqa: F811
    from sqlalchemy import event

    with open_workspace(Settings.for_home(_copy(built, tmp_path / "home"))) as ws:
        deps = ModelDependencies(ws)
        train = Datasets(ws).get("impressions")
        for seed in (5, 6):  # more versions than the sync wants: it reads only the newest and production
            _register_ctr(ws, Datasets(ws).read(train), dataset_id=train.id, seed=seed)
        ModelRegistry(ws).set_alias(RANKER, "canary", 2, actor="test")
        deps.declare(RANKER, "ctr", actor="test", dataset="impressions-eval")
        first = deps.sync(upstream="ctr")
        assert len(first) == 4 and all("error" not in o for o in first), first

        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # (conn, cursor, statement, ...)
        event.listen(ws.metadata.engine, "before_cursor_execute", listener)
        try:
            again = deps.sync(upstream="ctr")
        finally:
            event.remove(ws.metadata.engine, "before_cursor_execute", listener)
        assert again == first  # the recorded rows, in the same order
        # dependents, newest ctr, ctr's production, the ranker's aliases, the dataset, the rows (without the
        # change: the versions list, then two versions, the dataset and the rows again for each of the 4 triples)
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) <= 8, selects
        # and none decodes a version's signature (a click model's holds hundreds of golden rows): the sync needs
        # only the upstream versions' numbers and dataset ids to know which rows are its triples' (h47)
        assert not [s for s in selects if "model_versions.signature" in s], selects
        alone = deps.of(RANKER)[0]
        assert [deps.evaluate(alone, o["upstream_version"], o["consumer_version"], trigger=o["trigger"]).to_dict()
                for o in again] == again

        # a row on another dataset version is not this triple's: declared on another dataset, each is evaluated
        other = Datasets(ws).ingest_frame("impressions-other", Datasets(ws).read(train).head(2000),
                                          source="a part of day 1", pii_columns=["user_id"], subject="user_id")
        deps.declare(RANKER, "ctr", actor="test", dataset="impressions-other")
        moved = deps.sync(upstream="ctr")
        assert {o["dataset_version_id"] for o in moved} == {other.id} and len(moved) == 4
        assert len(deps.evaluations(RANKER, limit=100)) == 8


def test_the_newest_version_is_the_last_of_the_versions(built: Path, tmp_path: Path) -> None:  # noqa: F811
    with open_workspace(Settings.for_home(_copy(built, tmp_path / "home"))) as ws:
        registry = ModelRegistry(ws)
        assert registry.newest("ctr") == registry.versions("ctr")[-1]
        assert registry.newest(RANKER).version == 2
        with pytest.raises(Exception, match="no-such-model"):
            registry.newest("no-such-model")
