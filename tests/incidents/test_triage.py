"""Triage on SQLite and PostgreSQL: every kind of recorded change in the window, placed by lineage distance to the
affected model and ranked (own path first, then before the outage start, then nearest in time)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pandas as pd
from features.support import user_activity
from incidents.helpers import ROWS

from yarnit.data import Datasets
from yarnit.features import FeatureRegistry
from yarnit.incidents import triage
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.training.runs import RunStore


def _register(registry, name, **kwargs):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(ROWS, [1, 0] * 5)
    return registry.register(name, dump_sklearn(model), ArtifactFormat.SKOPS, **kwargs)


def test_triage_ranks_the_models_own_lineage_first_then_by_time_before_the_outage(ws, clock):
    t0 = clock.now()
    datasets, features, registry, runs = Datasets(ws), FeatureRegistry(ws), ModelRegistry(ws), RunStore(ws)
    clicks = datasets.ingest_frame("clicks", pd.DataFrame({"x": [1, 2]}), source="test", no_subject="synthetic")
    (view_v1,) = features.apply([user_activity])
    train = runs.start("train_ctr", {})
    runs.finish(train.id, "succeeded")
    mv = _register(registry, "ctr", dataset_version_ids=[clicks.id], run_id=train.id,
                   signature={"inputs": {"fiber": "string", "price": "double"},
                              "features": ["user_activity:clicks_7d"]})
    registry.set_alias("ctr", "production", mv.version, actor="user:alice")
    clock.advance(3600)  # t0+1h: the changes begin
    clicks_v2 = datasets.ingest_frame("clicks", pd.DataFrame({"x": [3]}), source="test", no_subject="synthetic")
    clock.advance(600)
    (view_v2,) = features.apply([dataclasses.replace(user_activity, ttl=timedelta(hours=48))])
    clock.advance(600)
    failed = runs.start("train_ctr", {})
    runs.finish(failed.id, "failed", error="validation: 40% of rows lost the discount column")
    clock.advance(600)
    _register(registry, "other")
    registry.set_alias("other", "production", 1, actor="user:bob")
    faults = ws.home / "world"
    faults.mkdir()
    (faults / "faults.json").write_text(json.dumps([
        {"name": "partner_outage", "book": "ch. 11 story 2", "day": 0, "hours": 24,
         "start": (t0 + timedelta(hours=1, minutes=40)).isoformat(), "end": (t0 + timedelta(days=1)).isoformat(),
         "params": {}, "spec": "partner_outage@0"},
        {"name": "long_ago", "start": (t0 - timedelta(days=30)).isoformat(),
         "end": (t0 - timedelta(days=29)).isoformat()}]))
    clock.advance(900)
    outage = clock.now()  # t0+1h45
    clock.advance(300)
    registry.set_alias("ctr", "production", mv.version, actor="user:carol", reason="re-pin during the outage")
    detected = clock.now() + timedelta(minutes=1)

    items = triage(ws, models=["ctr"], outage_start=outage, detected_at=detected, lookback_s=86400)
    got = [(i["kind"], i["lineage_distance"], i["relation"], i["before_outage_s"]) for i in items]
    assert got == [
        ("alias_move", 0, "the model itself", 6300),  # the deployment of the production version
        ("alias_move", 0, "the model itself", -300),  # after the outage start: after every earlier own change
        ("dataset_version", 1, "lineage", 6300),  # the data it was trained on
        ("feature_definition", 1, "lineage", 6300),  # the features it reads
        ("pipeline_run", 1, "lineage", 6300),  # the run that made the version
        ("pipeline_run", 2, "new version of an input", 1500),  # a failed run of the pipeline that made it
        ("feature_definition", 2, "new version of an input", 2100),  # the view's new definition
        ("dataset_version", 2, "new version of an input", 2700),  # a new version of its training data
        ("fault", None, "unrelated", 300),  # unrelated: nearest in time first
        ("alias_move", None, "unrelated", 900),
    ]
    assert [i["rank"] for i in items] == list(range(1, 11))
    by_id = {i["id"]: i for i in items}
    assert by_id[f"dataset_version:{clicks_v2.id}"]["data_refs"] == ["dataset:clicks:v2"]
    assert by_id[f"feature_definition:{view_v2.id}"]["subject"] == "feature_view:user_activity:v2"
    assert "lost the discount column" in by_id[f"pipeline_run:{failed.id}"]["summary"]
    assert view_v1.id != view_v2.id and "world fault partner_outage" in by_id["fault:world:0"]["summary"]
    # nothing about the model: every change is listed, none on a path
    unrelated = triage(ws, models=["nobody"], outage_start=outage, detected_at=detected, lookback_s=86400)
    assert {i["lineage_distance"] for i in unrelated} == {None} and len(unrelated) == 10
