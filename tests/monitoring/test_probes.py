"""Probe SLIs (data freshness, model freshness, pipeline success, golden correctness) equal hand-computed counts, from real records
in SQLite and PostgreSQL.

Times below are minutes after T (the fixture clock's start, 2026-01-05 09:00 UTC). A freshness probe at
minute s counts in the bucket [s-1, s); a window of W minutes read at minute t holds the probes at t-W+1 .. t.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sqlalchemy import insert

from yarnit.core.errors import ConfigError
from yarnit.monitoring.probes import ProbeSource, for_workspace, timeline_counts
from yarnit.monitoring.slo import parse_slo_file
from yarnit.monitoring.workspace import WorkspaceSLISource
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage.schema import dataset_versions, feature_materializations
from yarnit.training.runs import RunStore

ALERTING = {"page": [{"long": "1h", "short": "5m", "burn_rate": 14.4}], "ticket": []}


def spec_of(*slos):
    return parse_slo_file({"service": "yarnit-data", "slos": [
        {"objective": 99, "window": "1d", "alerting": ALERTING, **s} for s in slos]})


def minutes(clock, t0, m):
    return (t0 + timedelta(minutes=m)).timestamp()


def test_feature_view_freshness_counts_one_probe_a_minute_from_the_materialization_history(ws, clock):
    t0 = clock.now()
    rows = [("m1", 5, 4, "succeeded"), ("m2", 20, 18, "failed"), ("m3", 30, 28, "succeeded")]
    with ws.metadata.begin() as conn:
        for run_id, ended, window_end, state in rows:
            conn.execute(insert(feature_materializations).values(
                id=run_id, view_name="user_stats", view_version="v1", mode="incremental", state=state,
                store="sqlite", window_end=t0 + timedelta(minutes=window_end),
                started_at=t0 + timedelta(minutes=ended - 1), ended_at=t0 + timedelta(minutes=ended)))
    spec = spec_of({"name": "user-stats-fresh", "sli": "data_freshness",
                    "params": {"feature_view": "user_stats", "max_age": "10m"}})
    slo = spec.slos[0]
    until = minutes(clock, t0, 60)
    counts = for_workspace(ws, spec, clock=clock).counts(slo, until_s=until)
    # probes 5..60 (56): data time 4 until the run that ended at 30, then 28 (the failed run changes nothing);
    # good while age <= 10: 5..14 (10) and 30..38 (9)
    assert counts.window(end_s=until, window_s=3600) == (19, 56)
    assert counts.window(end_s=until, window_s=1800) == (8, 30)  # probes 31..60
    assert counts.window(end_s=until, window_s=300) == (0, 5)
    assert counts.window(end_s=minutes(clock, t0, 20), window_s=1200) == (10, 16)  # probes 5..20
    # a restarted monitor (a new source), later, reads the same history: nothing was sampled and lost
    later = ProbeSource(ws, spec, clock=clock).counts(slo, until_s=minutes(clock, t0, 120) + 30)
    assert later.window(end_s=until, window_s=3600) == (19, 56)
    assert later.window(end_s=minutes(clock, t0, 120), window_s=3600) == (0, 60)


def test_dataset_freshness_uses_the_newest_data_time_so_a_rewrite_by_forget_does_not_make_data_older(ws, clock):
    t0 = clock.now()
    versions = [(1, 0, None), (2, 40, None), (3, 50, 0)]  # v3: v1 rewritten by forget at 50, keeps v1's time
    with ws.metadata.begin() as conn:
        for number, created, retain_from in versions:
            conn.execute(insert(dataset_versions).values(
                id=f"ds{number}", name="clicks", version=number, content_sha256=str(number) * 64,
                artifact_sha256="0" * 64,
                row_count=1, schema={}, source="test", created_at=t0 + timedelta(minutes=created), parents=[],
                pii_columns=[], retain_from=None if retain_from is None else t0 + timedelta(minutes=retain_from)))
    spec = spec_of({"name": "clicks-fresh", "sli": "data_freshness", "params": {"dataset": "clicks", "max_age": "30m"}})
    until = minutes(clock, t0, 90)
    counts = ProbeSource(ws, spec, clock=clock).counts(spec.slos[0], until_s=until)
    # probes 1..90: data time 0 until 40 (good 1..30, bad 31..39), then 40 (good 40..70, bad 71..90)
    assert counts.window(end_s=until, window_s=90 * 60) == (61, 90)


def _register(registry):
    rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 5
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(rows, [1, 0] * 5)
    return registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS,
                             signature={"inputs": {"fiber": "string", "price": "double"}})


def test_model_freshness_follows_the_production_alias_history_including_a_rollback(ws, clock):
    t0 = clock.now()
    registry = ModelRegistry(ws)
    _register(registry)
    registry.set_alias("ctr", "production", 1)  # at 0: v1, made at 0
    clock.advance(600)
    _register(registry)  # v2 made at 10
    clock.advance(600)
    registry.set_alias("ctr", "production", 2)  # at 20
    clock.advance(1200)
    registry.set_alias("ctr", "production", 1, action="rollback")  # at 40: back to the older v1
    clock.advance(1200)
    spec = spec_of({"name": "ctr-model-fresh", "sli": "model_freshness", "model": "ctr",
                    "params": {"max_age": "30m"}})
    counts = WorkspaceSLISource(ws, spec, clock=clock).counts(spec.slos[0], until_s=clock.now().timestamp())
    # probes 1..60: v1 (age s) good 1..19; v2 (age s-10) good 20..39; v1 again (age >= 40) bad 40..60
    assert counts.window(end_s=minutes(clock, t0, 60), window_s=3600) == (39, 60)
    assert counts.window(end_s=minutes(clock, t0, 60), window_s=1200) == (0, 20)


def test_pipeline_success_counts_each_finished_run_and_a_dead_run_once_its_lease_expired(ws, clock):
    t0 = clock.now()
    store = RunStore(ws)

    def run(pipeline, start_m, end_m=None, state="succeeded"):
        clock.set(t0 + timedelta(minutes=start_m))
        r = store.start(pipeline, {})
        if end_m is not None:
            clock.set(t0 + timedelta(minutes=end_m))
            store.finish(r.id, state)

    run("train_ctr", 0, 5)
    run("train_ctr", 10, 12, "failed")
    run("train_ctr", 20, 20.5)
    run("other", 24, 25, "failed")  # another pipeline: not this SLO's
    run("train_ctr", 30)  # its process died: no heartbeat after 30, lease 60 s: a failure at 31
    run("train_ctr", 59.5)  # still within its lease at 60: not counted yet
    clock.set(t0 + timedelta(minutes=60))
    spec = spec_of({"name": "train-ok", "sli": "pipeline_success", "params": {"pipeline": "train_ctr"}},
                   {"name": "all-ok", "sli": "pipeline_success"})
    source = for_workspace(ws, spec, clock=clock)
    until = clock.now().timestamp()
    assert source.counts(spec.get("train-ok"), until_s=until).window(end_s=until, window_s=3600) == (2, 4)
    assert source.counts(spec.get("train-ok"), until_s=until).window(end_s=until, window_s=1800) == (0, 1)
    assert source.counts(spec.get("all-ok"), until_s=until).window(end_s=until, window_s=3600) == (2, 5)


def test_golden_correctness_counts_each_injected_record_of_each_finished_run(ws, clock):
    t0 = clock.now()
    store = RunStore(ws)

    def run(pipeline, start_m, end_m, state, golden=None):
        clock.set(t0 + timedelta(minutes=start_m))
        r = store.start(pipeline, {})
        clock.set(t0 + timedelta(minutes=end_m))
        metrics = {"auc": 0.7} if golden is None else {"golden.injected": golden[1], "golden.correct": golden[0]}
        store.finish(r.id, state, metrics)

    run("yarnit-ctr", 0, 2, "succeeded", (6, 6))
    run("yarnit-ctr", 10, 11, "failed", (4, 6))  # the golden step failed the run: 2 records wrong
    run("yarnit-ctr", 20, 21, "failed")  # failed before its golden step: nothing injected, nothing counted
    run("yarnit-recs", 30, 31, "succeeded", (0, 3))  # another pipeline
    run("yarnit-ctr", 40, 45, "succeeded", (6, 6))
    clock.set(t0 + timedelta(minutes=60))
    spec = spec_of({"name": "ctr-golden", "sli": "golden_correctness", "params": {"pipeline": "yarnit-ctr"}},
                   {"name": "all-golden", "sli": "golden_correctness"})
    source = for_workspace(ws, spec, clock=clock)
    until = clock.now().timestamp()
    assert source.counts(spec.get("ctr-golden"), until_s=until).window(end_s=until, window_s=3600) == (16, 18)
    assert source.counts(spec.get("ctr-golden"), until_s=until).window(end_s=until, window_s=1800) == (6, 6)
    assert source.counts(spec.get("all-golden"), until_s=until).window(end_s=until, window_s=3600) == (16, 21)
    assert source.last.records[spec.get("ctr-golden").id] == 3
    # the workspace source sends the kind to the probes
    assert WorkspaceSLISource(ws, spec, clock=clock).counts(spec.get("ctr-golden"), until_s=until).window(
        end_s=until, window_s=3600) == (16, 18)


def test_timeline_edges_no_probe_before_the_first_record_and_a_missing_value_is_bad():
    t = 1_800_000_000  # a whole minute
    assert timeline_counts([], max_age_s=60, until_s=t, span_s=3600).window(end_s=t, window_s=3600) == (0, 0)
    counts = timeline_counts([(t - 600 + 30, t - 600.0), (t - 300, None)], max_age_s=600, until_s=t, span_s=3600)
    # first probe at t-540 (the first whole minute after the record); t-540..t-360 good (4), deleted from t-300 (6)
    assert counts.window(end_s=t, window_s=3600) == (4, 10)


@pytest.mark.parametrize("slo, message", [
    ({"name": "x", "sli": "data_freshness", "params": {"max_age": "1h"}},
     "needs exactly one of params.feature_view or params.dataset"),
    ({"name": "x", "sli": "data_freshness", "params": {"max_age": "1h", "dataset": "a", "feature_view": "b"}},
     "got feature_view, dataset"),
    ({"name": "x", "sli": "model_freshness", "params": {"max_age": "1h"}}, "needs model"),
])
def test_a_probe_without_its_subject_is_refused_naming_the_field(sqlite_ws, clock, slo, message):
    spec = spec_of(slo)
    with pytest.raises(ConfigError, match=message):
        for_workspace(sqlite_ws, spec, clock=clock).counts(spec.slos[0], until_s=clock.now().timestamp())
