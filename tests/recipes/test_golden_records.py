"""The golden-data prober (RELIABILITY.md target 8): known records through every yarnit-ctr run, 100 % must come out
exactly as computed by hand, a wrong one fails the run naming the record and the field, and none reaches training."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from yarnit.data import Datasets
from yarnit.features.request_time import ctr_features_v1
from yarnit.features.request_time_frame import ctr_features_v1_frame
from yarnit.monitoring.burn import evaluate
from yarnit.monitoring.probes import for_workspace
from yarnit.monitoring.slo import parse_slo_file
from yarnit.recipes import ctr_pipeline
from yarnit.recipes.ctr import split as ctr_split
from yarnit.recipes.golden_records import (
    EXPECTED, GOLDEN_PREFIX, GOLDEN_RECORDS, check_golden, golden_frame, golden_id,
)
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner, RunStore, StepFailed

SMALL = {"days": 3, "sessions_per_day": 200}
SPLIT = {"train_days": ["2026-01-05", "2026-01-06"], "holdout_days": ["2026-01-07"], "holdout_from": "2026-01-07"}


def _parts(transform, split=SPLIT):
    """The golden frame cut at the split and turned into features, as the run's feature path does."""
    frame = golden_frame(split)
    cut = pd.Timestamp(split["holdout_from"]).date()
    out = {}
    for part in ("train", "holdout"):
        rows = frame[(frame["day"] < cut) if part == "train" else (frame["day"] >= cut)].reset_index(drop=True)
        out[part] = (transform(rows), rows[["impression_id", "clicked"]])
    return out


def test_the_hand_computed_values_agree_with_the_serving_definition_record_by_record():
    # EXPECTED is written by hand; the dict transform the serving path uses must give the same values
    for record in GOLDEN_RECORDS:
        served = ctr_features_v1({k: v for k, v in record.items() if k not in ("id", "part", "clicked")})
        for name, want in EXPECTED[record["id"]].items():
            got = served[name]
            assert (got == want) if isinstance(want, str) else math.isclose(got, want, abs_tol=1e-12), \
                (record["id"], name, got, want)
    result = check_golden(_parts(ctr_features_v1_frame), label="clicked")
    assert result.passed and (result.correct, result.injected) == (6, 6) and result.failures == ()
    assert "price_bucket" in result.checked_fields and "clicked" in result.checked_fields


def _bucket_off_by_one(frame: pd.DataFrame) -> pd.DataFrame:
    """ctr_features_v1 with one subtle defect: $5.00 falls in the $1-5 bucket (``<=`` where the book has ``<``)."""
    out = ctr_features_v1_frame(frame)
    price = pd.to_numeric(frame["price_usd"]).to_numpy(dtype=float)
    wrong = price == 5.0
    if wrong.any():
        bucket = out["price_bucket"].astype(str).to_numpy(dtype=object)
        bucket[wrong] = "1"
        out["price_bucket"] = pd.Categorical(bucket)
        out.loc[wrong, "sensitivity_x_bucket"] = out.loc[wrong, "user_price_sensitivity"] * 1.0
    return out


def test_a_subtly_wrong_feature_definition_is_caught_naming_the_record_and_the_field():
    result = check_golden(_parts(_bucket_off_by_one), label="clicked")
    assert not result.passed and (result.correct, result.injected) == (5, 6)
    assert result.correctness == pytest.approx(5 / 6)
    assert {(f.record, f.field, f.expected, f.got) for f in result.failures} == {
        ("golden-5", "price_bucket", "2", "1"), ("golden-5", "sensitivity_x_bucket", 6.0, 3.0)}
    assert "golden-5.price_bucket: expected '2', got '1'" in result.summary()


def test_dropped_duplicated_and_mislabelled_records_are_each_named():
    parts = _parts(ctr_features_v1_frame)
    features, kept = parts["train"]
    kept = kept.copy()
    kept.loc[kept["impression_id"] == golden_id(1), "clicked"] = 0  # label lost in a join
    keep = kept["impression_id"] != golden_id(3)  # dropped
    features, kept = features[keep.to_numpy()], kept[keep]
    twice = kept["impression_id"] == golden_id(4)  # duplicated
    parts["train"] = (pd.concat([features, features[twice.to_numpy()]]), pd.concat([kept, kept[twice]]))
    result = check_golden(parts, label="clicked")
    assert result.correct == 3
    assert {(f.record, f.field) for f in result.failures} == {
        ("golden-1", "clicked"), ("golden-3", "rows"), ("golden-4", "rows")}
    assert {f.got for f in result.failures if f.field == "rows"} == {0, 2}


def test_a_record_that_validation_rejects_counts_as_wrong():
    result = check_golden(_parts(ctr_features_v1_frame), label="clicked", rejected=["out_of_range in price_usd"])
    assert result.correct == 0 and {f.field for f in result.failures} == {"validation"}


def test_every_run_records_all_golden_records_correct_and_none_reaches_training(sqlite_ws: Workspace):
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"golden", "train"}), config=SMALL)
    steps = {s.step: s for s in result.steps}
    assert sorted(steps) == ["golden", "select", "split", "train"]
    assert {k: v for k, v in result.run.metrics.items() if k.startswith("golden.")} == {
        "golden.injected": 6, "golden.correct": 6, "golden.correctness": 1.0}
    report = result.value("golden", "report")
    assert report["passed"] and report["failures"] == [] and len(report["checked_fields"]) == 25
    assert steps["golden"].logs[0].startswith("golden records: 6/6 correct")
    # the golden records are their own dataset version, searchable by a deletion request: never the training data
    datasets = Datasets(sqlite_ws)
    golden = datasets.get_by_id(report["dataset"]["id"])
    assert golden.name == "yarnit-impressions-golden" and golden.row_count == 6 and golden.subject_column == "user_id"
    training = result.value("select", "dataset")
    table = pq.read_table(sqlite_ws.artifacts.verify(datasets.get_by_id(training["id"]).artifact_sha256),
                          columns=["impression_id", "user_id", "day"])
    ids = table.column("impression_id").to_pylist()
    assert not [i for i in ids if i.startswith(GOLDEN_PREFIX)]
    assert not [u for u in table.column("user_id").to_pylist() if u.startswith(GOLDEN_PREFIX)]
    # train saw exactly the real rows of the training days: not one golden row more
    cut = pd.Timestamp(result.value("split", "split")["holdout_from"]).date()
    real_train_rows = int(np.sum(np.array(table.column("day").to_pylist()) < cut))
    assert steps["train"].rows == real_train_rows
    # and a second run reuses the training data and the trained model, but probes again (never cached)
    again = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"golden", "train"}), config=SMALL)
    states = {s.step: s.state for s in again.steps}
    assert states["train"] == "cached" and states["golden"] == "succeeded"
    assert again.run.metrics["golden.correct"] == 6
    assert [v.name for v in datasets.list("yarnit-impressions-golden")] == ["yarnit-impressions-golden"]  # reused


def _split_one_day_early(ctx, dataset):
    """A corrupted split step: it lists the days right but cuts the data one day early (an off-by-one)."""
    out = ctr_split(ctx, dataset)
    days = out["split"]["train_days"]
    out["split"]["holdout_from"] = days[-1]
    return out


def test_a_run_whose_golden_records_come_out_wrong_fails_before_training_and_the_slo_pages(sqlite_ws, clock):
    pipeline = ctr_pipeline()
    broken = dataclasses.replace(pipeline, steps=[
        dataclasses.replace(s, fn=_split_one_day_early) if s.name == "split" else s for s in pipeline.steps])
    start = clock.now()
    with pytest.raises(StepFailed, match=r"Step 'golden'.*2 of 6 golden records wrong.*golden-2\.split: "
                                         r"expected 'train', got 'holdout'"):
        PipelineRunner(sqlite_ws).run(broken, config=SMALL)
    run = RunStore(sqlite_ws).list()[0]
    assert run.state == "failed" and "golden-4.split" in (run.error or "")
    assert (run.metrics["golden.injected"], run.metrics["golden.correct"]) == (6, 4)  # kept though the step failed
    steps = {s.step: s.state for s in RunStore(sqlite_ws).steps(run.id)}
    assert steps["golden"] == "failed" and "train" not in steps
    assert not ModelRegistry(sqlite_ws).exists("ctr")
    # the golden_correctness SLI counts each injected record of the run; 2 bad of 6 burns a 99.9 % budget
    spec = parse_slo_file({"service": "yarnit-pipelines", "slos": [{
        "name": "ctr-golden", "sli": "golden_correctness", "objective": 99.9, "window": "1d",
        "params": {"pipeline": "yarnit-ctr"},
        "alerting": {"min_events": 1, "page": [{"long": "1h", "short": "5m", "burn_rate": 14.4}], "ticket": []}}]})
    slo = spec.slos[0]
    clock.set(run.ended_at + timedelta(minutes=1))
    until = clock.now().timestamp()
    counts = for_workspace(sqlite_ws, spec, clock=clock).counts(slo, until_s=until)
    assert counts.window(end_s=until, window_s=3600) == (4, 6)
    assert evaluate(slo, counts, clock.now()).firing("page")
    assert run.ended_at >= start


# --- the loop's day: label join and quarantine --------------------------------------------------------------
def _day_check(join=None):
    from datetime import date, datetime, timezone

    from yarnit.continuous.loop_steps import DAY_DEFAULTS, label_join, quarantine_reasons
    from yarnit.recipes.golden_records import check_day, golden_day

    as_of = datetime(2026, 1, 8, 6, tzinfo=timezone.utc)
    impressions, labels, expected = golden_day(date(2026, 1, 7), as_of)
    joined = (join or label_join)(impressions, labels, as_of)
    return check_day(joined, quarantine_reasons(joined, pd.DataFrame(), DAY_DEFAULTS), expected), expected


def test_the_loop_day_golden_records_come_out_of_the_label_join_and_quarantine_as_worked_out_by_hand():
    result, expected = _day_check()
    assert result.passed and (result.correct, result.injected) == (6, 6)
    assert expected == {"golden-1": 1, "golden-2": 0, "golden-3": 0, "golden-4": 0, "golden-5": 0, "golden-6": 1}


def test_a_label_join_that_ignores_arrival_time_is_caught_on_the_late_click():
    def join_any_time(impressions, labels, as_of):  # the defect: a click counts before it has arrived
        clicks = labels[labels["kind"] == "click"]
        return impressions.assign(clicked=impressions["impression_id"].isin(set(clicks["impression_id"])).astype(int))

    result, _ = _day_check(join_any_time)
    assert (result.correct, result.injected) == (5, 6)
    assert [(f.record, f.field, f.expected, f.got) for f in result.failures] == [("golden-4", "clicked", 0, 1)]


def test_every_loop_day_run_probes_the_golden_records_first(sqlite_ws, tmp_path):
    from yarnit.continuous.loop_steps import day_pipeline

    # no world is written: collect fails, but the golden step ran first and recorded its counts
    config = {"world": str(tmp_path / "no-world"), "day": "2026-01-07", "as_of": "2026-01-08T06:00:00+00:00"}
    with pytest.raises(StepFailed, match="Step 'collect'"):
        PipelineRunner(sqlite_ws).run(day_pipeline(), config=config)
    run = RunStore(sqlite_ws).list()[0]
    assert (run.metrics["golden.injected"], run.metrics["golden.correct"]) == (6, 6)
    assert {s.step: s.state for s in RunStore(sqlite_ws).steps(run.id)}["golden"] == "succeeded"
