"""Quality with delayed labels: the prediction log (real writer) joined with label files on a simulated clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core.clock import SimulatedClock
from yarnit.core.errors import ConfigError, InvalidInput
from yarnit.core.settings import Settings
from yarnit.evaluation.metrics import expected_calibration_error
from yarnit.monitoring import quality
from yarnit.monitoring.quality_summary import QualitySummary
from yarnit.monitoring.slo import parse_slo_file
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import open_workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
M0 = int(T0.timestamp()) // 60


@pytest.fixture
def clock():
    return SimulatedClock(T0)


@pytest.fixture
def ws(tmp_path, clock):
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    yield workspace
    workspace.close()


def log_requests(ws, clock, requests):
    """Write (request_id, scores, instances, at) as answered requests with the real PredictionLog writer."""
    log = PredictionLog(ws.home / "prediction_log", clock, fsync=False)
    for request_id, scores, instances, at in requests:
        record = {"request_id": request_id, "time": at or clock.now(), "role": "primary", "protocol": "v1",
                  "model": "ctr", "status": 200, "latency_ms": 3.0, "key": None, "version": 2,
                  "alias": "production", "served_by": "model", "predictions": list(scores)}
        if instances is not None:
            record["instances"] = instances
        log.append(record)
    log.close()


def write_labels(path, rows, lines=()):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        for line in lines:
            f.write(line + "\n")
    return path


def label(request_id, index, value, event, arrival=None, kind="click"):
    row = {"request_id": request_id, "index": index, "kind": kind, "value": value, "event_time": event.isoformat()}
    if arrival is not None:
        row["arrival_time"] = arrival.isoformat()
    return row


def test_labels_are_joined_and_bad_ones_are_counted_never_fatal(ws, clock, tmp_path):
    log_requests(ws, clock, [("r1", [0.1, 0.2, 0.3], None, None), ("r2", [0.5], None, None)])
    clock.advance(timedelta(minutes=10))
    t = clock.now()
    path = write_labels(tmp_path / "labels.jsonl", [
        label("r1", 0, 1, t), label("r1", 1, 0, t), label("r1", 2, 0, t),
        label("r1", 0, 0, t),  # the same key twice in one file: a duplicate
        label("r2", 0, 1, T0 - timedelta(hours=1)),  # before its prediction
        label("zz", 0, 1, t),  # no such request
        label("r2", 0, 1, t, arrival=t + timedelta(hours=2)),  # arrives after now: a skewed clock
        label("r1", 1, 1, t, kind="purchase"),  # not the models' label kind
        {"request_id": "bad id!", "index": 0, "kind": "click", "value": 1, "event_time": t.isoformat()},
        {"request_id": "r1", "index": -1, "kind": "click", "value": 1, "event_time": t.isoformat()},
        {"request_id": "r1", "index": 0, "kind": "click", "value": 7, "event_time": t.isoformat()},
    ], lines=["{not json"])
    ingested = quality.ingest_labels(ws, path)
    assert (ingested.rows, ingested.stored, ingested.invalid, ingested.duplicate, ingested.future,
            ingested.ignored_kind) == (12, 5, 4, 1, 1, 1)
    report = quality.update(ws)
    assert report["this_run"]["labels_joined"] == 3 and report["this_run"]["early"] == 1
    assert report["labels_waiting"] == 1  # zz: the log may trail the labels; it waits for its grace period
    clock.advance(timedelta(hours=1))
    assert quality.update(ws)["this_run"] == {"unknown": 1, "estimates": 1}  # and the hour that ended is estimated
    again = quality.ingest_labels(ws, path)  # the same file twice: every joined label is now a duplicate
    assert again.stored == 5
    run = quality.update(ws)["this_run"]
    assert run["duplicate"] == 3 and run["early"] == 1 and "labels_joined" not in run
    totals = quality.update(ws)["totals"]
    assert totals["predictions"] == 4 and totals["labels_joined"] == 3


def test_unreadable_label_files_are_clear_errors(ws, tmp_path):
    with pytest.raises(InvalidInput, match=r"must end in one of \.jsonl"):
        quality.ingest_labels(ws, tmp_path / "labels.txt")
    bad = tmp_path / "labels.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        quality.ingest_labels(ws, bad)


def test_a_crash_before_commit_reads_nothing_twice(ws, clock, tmp_path):
    log_requests(ws, clock, [(f"r{i}", [0.2, 0.4], None, None) for i in range(5)])
    first = quality.update(ws)
    assert first["totals"]["predictions"] == 10 and first["bytes_read"] > 0
    again = quality.update(ws)
    assert again["bytes_read"] == 0 and again["totals"]["predictions"] == 10
    # a run that dies inside its transaction leaves the previous state: the next one reads the same bytes once
    log_requests(ws, clock, [("r9", [0.3], None, None)])
    store = quality.QualityStore(quality.quality_db_path(ws.home))
    join = quality.QualityJoin(store, ws.home / "prediction_log", quality.QualityConfig(), clock)
    join._complete = None  # type: ignore[assignment]  # dies after reading the log, before the commit
    with pytest.raises(TypeError):
        join.run()
    store.close()
    after = quality.update(ws)
    assert after["totals"]["predictions"] == 11 and after["totals"]["duplicate_predictions"] == 0


def test_realized_auc_and_calibration_equal_sklearn_within_the_stated_bound(ws, clock, tmp_path):
    rng = np.random.default_rng(7)
    p = np.round(rng.beta(2, 12, 3000), 6)
    y = (rng.random(3000) < p).astype(int)
    country = rng.choice(["DE", "FR", "US"], 3000)
    requests = [(f"q{i}", p[i * 100:(i + 1) * 100].tolist(),
                 [{"country": c, "user_id": "u1"} for c in country[i * 100:(i + 1) * 100]], None) for i in range(30)]
    log_requests(ws, clock, requests)
    clock.advance(timedelta(minutes=30))
    rows = [label(f"q{i // 100}", i % 100, int(y[i]), clock.now()) for i in range(3000)]
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", rows))
    quality.update(ws)
    report = quality.quality_report(ws, "ctr", window_s=86400)
    (group,) = report["groups"]
    r = group["realized"]
    assert r["labelled"] == 3000 and r["positives"] == int(y.sum())
    assert abs(r["auc"] - roc_auc_score(y, p)) <= r["auc_bound"] and r["auc_bound"] < 2e-3
    assert r["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-9)
    assert r["ctr"] == pytest.approx(y.mean(), abs=1e-12) and r["bias"] == pytest.approx(p.mean() - y.mean(), abs=1e-9)
    assert r["calibration"] == pytest.approx(p.mean() / y.mean(), rel=1e-9)
    assert r["ctr_ci"][0] < r["ctr"] < r["ctr_ci"][1]
    by = quality.quality_report(ws, "ctr", window_s=86400, by="country")
    assert sorted(g["slice"] for g in by["groups"]) == ["DE", "FR", "US"]
    de = next(g for g in by["groups"] if g["slice"] == "DE")["realized"]
    mask = country == "DE"
    assert de["labelled"] == int(mask.sum()) and abs(de["auc"] - roc_auc_score(y[mask], p[mask])) <= de["auc_bound"]
    with pytest.raises(InvalidInput, match="Cannot slice by 'user_id'"):
        quality.quality_report(ws, "ctr", window_s=86400, by="user_id")
    db = quality.quality_db_path(ws.home).read_bytes()
    assert b"u1" not in db  # personal data never reaches the summaries


SLO_FILE = {"service": "shop", "slos": [
    {"name": "ctr-labels", "sli": "label_completeness", "model": "ctr", "objective": 90, "window": "7d",
     "params": {"label_delay": "1h"}},
    {"name": "ctr-quality", "sli": "prediction_quality", "model": "ctr", "objective": 90, "window": "7d",
     "params": {"calibration_band": [0.8, 1.25], "ctr_ratio_min": 0.9, "baseline": "pop"}},
]}


def test_label_completeness_counts_each_prediction_when_its_label_is_due(ws, clock, tmp_path):
    (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLO_FILE))
    spec = parse_slo_file(SLO_FILE)
    slo = spec.get("ctr-labels")
    log_requests(ws, clock, [("c1", [0.1, 0.2, 0.3, 0.4], None, None)])
    source = quality.for_workspace(ws, spec, clock=clock)
    clock.advance(timedelta(minutes=20))
    quality.ingest_labels(ws, write_labels(tmp_path / "a.jsonl", [
        label("c1", 0, 1, T0 + timedelta(minutes=5), arrival=T0 + timedelta(minutes=10))]))
    assert source.counts(slo, until_s=clock.now().timestamp()).buckets() == []  # nothing is due yet
    clock.advance(timedelta(minutes=20))
    quality.ingest_labels(ws, write_labels(tmp_path / "b.jsonl", [label("c1", 3, 0, T0 + timedelta(minutes=30))]))
    clock.advance(timedelta(minutes=21))  # T0 + 61 min: all four are due (label_delay 1h)
    due_minute = M0 + 60
    assert source.counts(slo, until_s=clock.now().timestamp()).buckets() == [(due_minute, 2, 4)]
    clock.advance(timedelta(hours=1))
    quality.ingest_labels(ws, write_labels(tmp_path / "c.jsonl", [label("c1", 1, 1, T0 + timedelta(minutes=90))]))
    report = quality.update(ws)
    # late: it counts for quality, not for completeness (and the hour's estimate is scored now its labels are due)
    assert report["this_run"] == {"labels_joined": 1, "late": 1, "estimates_scored": 1}
    assert source.counts(slo, until_s=clock.now().timestamp()).buckets() == [(due_minute, 2, 4)]


def test_quality_events_judge_each_labelled_minute_on_the_hour_before_it():
    band, ratio = (0.8, 1.25), 0.9
    # minute -> (labelled n, sum of predictions, positives)
    own = {0: (10, 1.0, 1), 1: (10, 0.5, 1), 70: (10, 1.0, 1), 71: (10, 1.0, 0), 200: (10, 2.0, 2)}
    base = {200: (10, 1.0, 3)}
    events = quality.quality_events(own, base, band=band, ratio_min=ratio)
    # 0: 1.0/1 in band; 1: window 0..1 = 1.5/2 = 0.75 out; 70: window 11..70 = 1.0/1 in;
    # 71: 2.0/1 = 2 out; 200: calibrated (2.0/2) but CTR 0.2 < 0.9 x baseline 0.3: bad; no labels elsewhere: no event
    assert events == {0: True, 1: False, 70: True, 71: False, 200: False}
    assert quality.quality_events({5: (4, 0.0, 0)}, {}, band=band, ratio_min=ratio) == {5: False}  # no positive


def test_prediction_quality_source_counts_equal_the_hand_computed_minutes(ws, clock, tmp_path):
    spec = parse_slo_file(SLO_FILE)
    slo = spec.get("ctr-quality")
    at = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    log_requests(ws, clock, [("m0", [0.25, 0.25, 0.25, 0.25], None, at[0]),  # Σp 1.0, 1 positive: in band
                             ("m1", [0.5, 0.5], None, at[1]),  # hour so far: Σp 2.0, 1 positive: 2.0, out
                             ("m2", [0.0, 0.0], None, at[2])])  # no label ever: no event
    clock.advance(timedelta(minutes=30))
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", [
        label("m0", 0, 1, at[0]), label("m0", 1, 0, at[0]), label("m0", 2, 0, at[0]), label("m0", 3, 0, at[0]),
        label("m1", 0, 0, at[1]), label("m1", 1, 0, at[1])]))
    source = quality.for_workspace(ws, spec, clock=clock)
    assert source.counts(slo, until_s=clock.now().timestamp()).buckets() == [(M0, 1, 1), (M0 + 1, 0, 1)]
    bad = parse_slo_file({"service": "s", "slos": [{**SLO_FILE["slos"][1], "params": {"calibration_band": [2, 3]}}]})
    with pytest.raises(ConfigError, match="calibration_band must be"):
        quality.for_workspace(ws, bad, clock=clock)


def test_cbpe_estimates_calibrated_scores_close_to_realized_and_says_it_is_an_estimate():
    rng = np.random.default_rng(1)
    p = rng.beta(1.5, 8, 200_000)
    y = (rng.random(len(p)) < p).astype(int)
    summary = QualitySummary()
    summary.add_predictions(p)
    estimate = summary.estimate()
    assert estimate["estimated"] is True
    assert abs(estimate["auc"] - roc_auc_score(y, p)) < 0.005
    assert abs(estimate["accuracy"] - np.mean((p > 0.5) == y)) < 0.005
    assert abs(estimate["ctr"] - y.mean()) < 0.005


def test_estimates_are_frozen_before_labels_and_scored_once_they_come(ws, clock, tmp_path):
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(1.5, 6, 4000), 6)
    y = (rng.random(4000) < p).astype(int)
    log_requests(ws, clock, [(f"e{i}", p[i * 200:(i + 1) * 200].tolist(), None, None) for i in range(20)])
    clock.advance(timedelta(hours=1, minutes=1))
    first = quality.update(ws)
    assert first["this_run"]["estimates"] == 1  # the hour ended: estimated from the scores alone
    before = quality.quality_report(ws, "ctr", window_s=86400)
    assert before["groups"][0]["estimate"]["estimated"] is True and before["groups"][0]["pending"] == 4000
    assert before["groups"][0]["realized"]["auc"] is None and before["estimate_history"] == []
    rows = [label(f"e{i // 200}", i % 200, int(y[i]), clock.now()) for i in range(4000)]
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", rows))
    clock.advance(timedelta(days=1))
    assert quality.update(ws)["this_run"]["estimates_scored"] == 1
    (row,) = quality.quality_report(ws, "ctr", window_s=3 * 86400)["estimate_history"]
    assert row["realized_auc"] == pytest.approx(roc_auc_score(y, p), abs=2e-3)
    assert abs(row["auc_error"]) < 0.02 and row["auc_error"] == row["estimated_auc"] - row["realized_auc"]


def test_cli_ingests_labels_and_shows_quality_with_json(tmp_path, monkeypatch):
    from yarnit.core.clock import SystemClock

    # the CLI runs on the machine's clock: the log is written on it too (an hour back, so nothing is in the future)
    now = SystemClock().now() - timedelta(hours=1)
    clock = SimulatedClock(now)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    ws.close()
    log_requests(ws, clock, [("k1", [0.2, 0.6], None, None)])
    path = write_labels(tmp_path / "l.jsonl", [label("k1", 0, 0, now), label("k1", 1, 1, now), {"request_id": "k1"}])
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    runner = CliRunner()
    out = runner.invoke(app, ["monitor", "labels", "ingest", str(path), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["ingest"]["stored"] == 2 and data["ingest"]["invalid"] == 1
    assert data["join"]["this_run"]["labels_joined"] == 2
    shown = runner.invoke(app, ["monitor", "quality", "ctr", "--window", "1d", "--json"])
    assert shown.exit_code == 0, shown.output
    realized = json.loads(shown.stdout)["groups"][0]["realized"]
    assert realized["labelled"] == 2 and realized["auc"] == 1.0
    table = runner.invoke(app, ["monitor", "quality", "ctr", "--window", "1d"])
    assert table.exit_code == 0 and "label completeness" in table.output
    bad = runner.invoke(app, ["monitor", "quality", "ctr", "--window", "soon"])
    assert bad.exit_code == 1 and "--window must be a duration" in bad.output


def test_the_api_answers_quality_from_the_join_state_and_refuses_bad_queries(ws, clock, tmp_path):
    from fastapi.testclient import TestClient

    from yarnit.api import create_app

    log_requests(ws, clock, [("a1", [0.2, 0.6, 0.7], [{"country": "DE"}, {"country": "FR"}, {"country": "FR"}], None)])
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", [label("a1", 0, 0, T0), label("a1", 1, 1, T0)]))
    quality.update(ws)
    with TestClient(create_app(ws)) as http:
        body = http.get("/api/monitoring/quality/ctr", params={"window": "1d", "by": "country"}).json()
        assert {g["slice"]: g["realized"]["labelled"] for g in body["groups"]} == {"DE": 1, "FR": 1}
        assert {g["slice"]: g["pending"] for g in body["groups"]} == {"DE": 0, "FR": 1}
        assert http.get("/api/monitoring/quality/ctr", params={"window": "soon"}).status_code == 422
        assert http.get("/api/monitoring/quality/ctr", params={"by": "user_id"}).status_code == 422


def test_csv_and_parquet_label_files_are_read_like_json_lines(ws, clock, tmp_path):
    import pandas as pd

    log_requests(ws, clock, [("f1", [0.1, 0.9], None, None), ("f2", [0.4], None, None)])
    clock.advance(timedelta(minutes=5))
    (tmp_path / "a.csv").write_text("request_id,index,kind,value,event_time\n"
                                    f"f1,0,click,0,{T0.isoformat()}\nf1,1,click,1,{T0.isoformat()}\n"
                                    "f1,x,click,1,never\n")
    csv_report = quality.ingest_labels(ws, tmp_path / "a.csv")
    assert (csv_report.stored, csv_report.invalid) == (2, 1) and "index must be an integer" in csv_report.examples[0]
    pd.DataFrame({"request_id": ["f2"], "index": [0], "kind": ["click"], "value": [1],
                  "event_time": [pd.Timestamp(T0)], "arrival_time": [pd.Timestamp(T0 + timedelta(minutes=1))]}
                 ).to_parquet(tmp_path / "b.parquet")
    assert quality.ingest_labels(ws, tmp_path / "b.parquet").stored == 1
    (tmp_path / "c.csv").write_text("request_id,index\n" + "f" * 200_000 + ",0\n")
    with pytest.raises(InvalidInput, match="not a readable CSV file"):
        quality.ingest_labels(ws, tmp_path / "c.csv")
    assert quality.update(ws)["this_run"]["labels_joined"] == 3


def test_paged_join_and_a_small_summary_cache_give_the_same_summaries(ws, clock, tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "JOIN_PAGE", 3)
    monkeypatch.setattr(quality, "MAX_CACHED_SUMMARIES", 1)
    at = [T0 + timedelta(hours=h) for h in range(3)]
    log_requests(ws, clock, [(f"h{h}-{i}", [0.1 * (i + 1), 0.05], [{"country": "DE"}, {"country": "US"}], at[h])
                             for h in range(3) for i in range(4)])
    clock.advance(timedelta(hours=3))
    rows = [label(f"h{h}-{i}", j, int(i % 2 == 0 and j == 0), at[h]) for h in range(3) for i in range(4)
            for j in range(2)]
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", rows))
    assert quality.update(ws)["this_run"]["labels_joined"] == 24
    report = quality.quality_report(ws, "ctr", window_s=86400, by="country")
    got = {g["slice"]: (g["realized"]["labelled"], g["realized"]["positives"], g["pending"]) for g in report["groups"]}
    assert got == {"DE": (12, 6, 0), "US": (12, 0, 0)}


def test_odd_instance_values_do_not_slice_and_do_not_break_the_join(ws, clock):
    log_requests(ws, clock, [("o1", [0.3, 0.4, 0.5], [{"country": ["DE"]}, {"country": "x" * 40},
                                                    {"country": "DE", "device": {"a": 1}}], None)])
    assert quality.update(ws)["totals"]["predictions"] == 3
    slices = {g["slice"]: g["realized"]["count"] for g in quality.quality_report(ws, "ctr", window_s=3600,
                                                                                   by="country")["groups"]}
    assert slices == {"DE": 1}


def test_a_candidate_never_shown_expects_no_label(ws, clock, tmp_path):
    (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLO_FILE))
    log_requests(ws, clock, [("s1", [0.2, 0.4, 0.6], None, None)])
    clock.advance(timedelta(minutes=10))
    quality.ingest_labels(ws, write_labels(tmp_path / "l.jsonl", [
        label("s1", 0, 1, clock.now()), label("s1", 1, 0, clock.now(), kind="shown"),
        label("s1", 1, 1, clock.now(), kind="shown")]))  # shown = 1 says nothing new: ignored
    report = quality.update(ws)
    assert report["this_run"] == {"records": 1, "predictions": 3, "labels_joined": 1, "not_shown": 1}
    assert report["totals"]["ignored_kind"] == 1
    (group,) = quality.quality_report(ws, "ctr", window_s=3600)["groups"]
    assert group["realized"]["count"] == 2 and group["pending"] == 1  # s1/1 left; s1/2 still awaits its label
    clock.advance(timedelta(hours=1))
    slo = parse_slo_file(SLO_FILE).get("ctr-labels")
    counts = quality.for_workspace(ws, parse_slo_file(SLO_FILE), clock=clock).counts(
        slo, until_s=clock.now().timestamp())
    assert counts.buckets() == [(M0 + 60, 1, 2)]  # s1/0 labelled in time, s1/2 not; s1/1 is no event


def test_quality_of_an_unknown_model_is_not_found_not_an_empty_report(ws, clock, tmp_path, monkeypatch):
    """Like drift: a typo in the model name is a 404 naming the known models, never a 200 with no groups."""
    from fastapi.testclient import TestClient

    from yarnit.api import create_app
    from yarnit.core.errors import NotFound

    log_requests(ws, clock, [("u1", [0.2, 0.6], None, None)])
    quality.update(ws)
    with pytest.raises(NotFound, match=r"model 'crt' has no quality summarized and is not registered; known: ctr"):
        quality.quality_report(ws, "crt", window_s=86400)
    assert quality.quality_report(ws, "ctr", window_s=86400)["groups"]  # the known one still answers
    with TestClient(create_app(ws)) as http:
        missing = http.get("/api/monitoring/quality/crt")
        assert missing.status_code == 404 and "known: ctr" in missing.json()["detail"]
    monkeypatch.setenv("YARNIT_HOME", str(ws.home))
    out = CliRunner().invoke(app, ["monitor", "quality", "crt", "--json"])
    assert out.exit_code == 1 and "no quality summarized" in out.output


def test_label_completeness_kept_between_passes_equals_a_fresh_count(ws, clock, tmp_path):
    """The source keeps its completeness counts and re-reads only the minutes changed since (h29): after late
    predictions, retention and a writer that notes nothing, a kept source counts what a new one counts."""
    from yarnit.monitoring.quality_store import COMPLETENESS_KEY, QualityStore
    from yarnit.monitoring.retention import expire_quality

    (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLO_FILE))
    spec = parse_slo_file(SLO_FILE)
    slo = spec.get("ctr-labels")
    kept = quality.for_workspace(ws, spec, clock=clock)

    def same() -> list:
        until = clock.now().timestamp()
        mine = kept.counts(slo, until_s=until).buckets()
        assert mine == quality.for_workspace(ws, spec, clock=clock).counts(slo, until_s=until).buckets()
        return mine

    for hour in range(6):
        at = clock.now()
        log_requests(ws, clock, [(f"h{hour}", [0.1, 0.2, 0.3], None, at)])
        quality.ingest_labels(ws, write_labels(tmp_path / f"l{hour}.jsonl", [
            label(f"h{hour}", 0, 1, at + timedelta(minutes=1), arrival=at + timedelta(minutes=2))]))
        clock.advance(timedelta(minutes=70))
        assert len(same()) == hour + 1  # each hour's predictions fall due in their own minute
    # a request logged late, with a time hours back: its predictions fall due in a minute already counted
    log_requests(ws, clock, [("late", [0.5, 0.6], None, T0 + timedelta(minutes=1))])
    clock.advance(timedelta(minutes=5))
    buckets = same()
    assert (M0 + 61, 0, 2) in buckets
    # a writer that notes nothing (an older yarnit): the counter moved, so the kept counts are recounted
    store = QualityStore(quality.quality_db_path(ws.home))
    with store.transaction() as conn:
        conn.execute("UPDATE completeness SET total = total + 5 WHERE minute = ?", (M0 + 60,))
        counters = store.counters()
        counters["completeness_events"] += 5
        store.set_meta("counters", counters)
    store.close()
    assert (M0 + 60, 1, 8) in same()
    # retention deletes old minutes: the kept counts forget them too
    expire_quality(ws, T0 + timedelta(hours=2, minutes=30), dry_run=False)
    assert [b[0] for b in same()][0] > M0 + 120
    # a store whose changes were never noted (written before h29) is counted in full, then kept
    store = QualityStore(quality.quality_db_path(ws.home))
    with store.transaction() as conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (COMPLETENESS_KEY,))
    store.close()
    fresh = quality.for_workspace(ws, spec, clock=clock)
    assert fresh.counts(slo, until_s=clock.now().timestamp()).buckets() == same()
